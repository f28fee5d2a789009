/**
 * Data-movement kernels (Slice, SplitV, Concat, PadV2, StridedSlice, Tile) for a `MathBackendCPU`
 * backend.
 *
 * The stock cpu backend copies non-contiguous slices (and so SplitV, the gradient of a channel
 * concat, and the Slice that is the gradient of a pad) one element at a time through
 * `TensorBuffer.get/set` with index arrays, and pads through `indexToLoc`/`locToIndex` per
 * element: about a microsecond per float. These kernels reduce every copy to a "box copy": rows of
 * contiguous runs, each moved with `TypedArray.set` (or a plain loop when runs are short). They
 * are pure copies, so their results are bit-identical to the stock kernels. Strings and complex
 * tensors go to the stock kernels.
 *
 * @example
 * ```ts
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { fastCopyConfigs } from "./cpu_copy_kernels.ts";
 *
 * for (const k of fastCopyConfigs("cpu-blas")) tf.registerKernel(k);
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import type { MathBackendCPU } from "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
import { takeF32 } from "./cpu_buffer_pool.ts";

type Info = tf.TensorInfo;
// deno-lint-ignore no-explicit-any
type Attrs = Record<string, any>;
interface KernelArgs {
  inputs: Record<string, Info> | Info[];
  backend: MathBackendCPU;
  attrs?: Attrs;
}

/** The typed arrays the cpu backend stores numeric tensors in. */
export type NumericArray = Float32Array | Int32Array | Uint8Array;

function stock(name: string, args: KernelArgs): Info | Info[] {
  const k = tf.getKernel(name, "cpu");
  if (!k) throw new Error(`backend cpu: stock kernel '${name}' is not registered`);
  return k.kernelFunc(args as unknown as Parameters<tf.KernelFunc>[0]) as Info | Info[];
}

function numericValues(backend: MathBackendCPU, t: Info): NumericArray | null {
  if (t.dtype === "string" || t.dtype === "complex64") return null;
  const v = backend.data.get(t.dataId).values;
  return v instanceof Float32Array || v instanceof Int32Array || v instanceof Uint8Array ? v : null;
}

function newLike<T extends NumericArray>(v: T, n: number): T {
  return new (v.constructor as { new (n: number): T })(n);
}

/** Allocates an output array like `like` (same type) of `n` elements, contents arbitrary. */
export type AllocLike = <T extends NumericArray>(like: T, n: number) => T;

const allocNew: AllocLike = newLike;

/** An allocator for kernels on `backend`: float32 outputs come from its pool. */
function poolAlloc(backend: MathBackendCPU): AllocLike {
  return <T extends NumericArray>(like: T, n: number): T =>
    like instanceof Float32Array ? takeF32(backend, n) as T : newLike(like, n);
}

// Below this run length a plain loop beats creating a subarray view for `set`.
const SET_MIN_RUN = 32;

/** Where a box lies in a row-major array: the array's shape and the box's corner in it. */
export interface BoxPlace {
  /** Shape of the whole row-major array. */
  shape: number[];
  /** Index of the box's first element in each dim. */
  begin: number[];
}

/**
 * Copy the box of extent `size` at `from.begin` in `src` (shape `from.shape`) to `to.begin` in
 * `dst` (shape `to.shape`). Trailing dims that the box covers fully in both arrays merge into one
 * contiguous run, so each run moves with a single `set`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { copyBox } from "./cpu_copy_kernels.ts";
 *
 * // x[:, 1:3] of a [2, 4] array into a fresh [2, 2] array
 * const x = new Float32Array([0, 1, 2, 3, 4, 5, 6, 7]);
 * const out = new Float32Array(4);
 * copyBox(x, { shape: [2, 4], begin: [0, 1] }, out, { shape: [2, 2], begin: [0, 0] }, [2, 2]);
 * assert.deepEqual(out, new Float32Array([1, 2, 5, 6]));
 * ```
 */
export function copyBox(
  src: NumericArray,
  from: BoxPlace,
  dst: NumericArray,
  to: BoxPlace,
  size: number[],
): void {
  const r = size.length;
  for (let d = 0; d < r; d++) if (size[d] === 0) return;
  if (r === 0) {
    dst[0] = src[0];
    return;
  }
  // Merge trailing dims covered fully by the box in both arrays into the innermost run.
  let k = r - 1;
  let run = size[k];
  while (k > 0 && size[k] === from.shape[k] && size[k] === to.shape[k]) {
    k--;
    run *= size[k];
  }
  // Row-major strides of both arrays for the outer dims 0..k-1 (dim k is inside the run).
  const ss = new Array<number>(r), ds = new Array<number>(r);
  let sa = 1, da = 1;
  for (let d = r - 1; d >= 0; d--) {
    ss[d] = sa;
    ds[d] = da;
    sa *= from.shape[d];
    da *= to.shape[d];
  }
  let si = 0, di = 0;
  for (let d = 0; d < r; d++) {
    si += from.begin[d] * ss[d];
    di += to.begin[d] * ds[d];
  }
  if (k === 0) {
    copyRun(src, si, dst, di, run);
    return;
  }
  const idx = new Array<number>(k).fill(0);
  for (;;) {
    copyRun(src, si, dst, di, run);
    let d = k - 1;
    for (; d >= 0; d--) {
      idx[d]++;
      si += ss[d];
      di += ds[d];
      if (idx[d] < size[d]) break;
      si -= ss[d] * size[d];
      di -= ds[d] * size[d];
      idx[d] = 0;
    }
    if (d < 0) return;
  }
}

function copyRun(src: NumericArray, si: number, dst: NumericArray, di: number, n: number): void {
  if (n >= SET_MIN_RUN) dst.set(src.subarray(si, si + n), di);
  else for (let j = 0; j < n; j++) dst[di + j] = src[si + j];
}

/**
 * `x[begin : begin + size]` of a row-major array, as a fresh array (no view of `x`).
 *
 * @example
 * ```ts
 * sliceValues(Float32Array.from([0, 1, 2, 3, 4, 5]), [2, 3], [0, 1], [2, 2]); // [1, 2, 4, 5]
 * ```
 */
export function sliceValues<T extends NumericArray>(
  x: T,
  shape: number[],
  begin: number[],
  size: number[],
  alloc: AllocLike = allocNew,
): T {
  const out = alloc(x, tf.util.sizeFromShape(size));
  copyBox(x, { shape, begin }, out, { shape: size, begin: size.map(() => 0) }, size);
  return out;
}

/**
 * Pad a row-major array with `constant` (`paddings[d] = [before, after]`).
 *
 * @example
 * ```ts
 * padValues(Float32Array.from([1, 2]), [2], [[1, 2]], 0); // [0, 1, 2, 0, 0]
 * ```
 */
export function padValues<T extends NumericArray>(
  x: T,
  shape: number[],
  paddings: [number, number][],
  constant: number,
  alloc: AllocLike = allocNew,
): { values: T; shape: number[] } {
  const outShape = shape.map((s, d) => paddings[d][0] + s + paddings[d][1]);
  const out = alloc(x, tf.util.sizeFromShape(outShape));
  // Fill everything (pooled arrays are dirty); the box copy then overwrites the interior.
  out.fill(constant);
  copyBox(x, { shape, begin: shape.map(() => 0) }, out, {
    shape: outShape,
    begin: paddings.map((p) => p[0]),
  }, shape);
  return { values: out, shape: outShape };
}

/**
 * Concatenate row-major arrays along `axis` (all shapes equal except on `axis`).
 *
 * @example
 * ```ts
 * concatValues([Float32Array.from([1, 2]), Float32Array.from([3])], [[1, 2], [1, 1]], 1); // [1,2,3]
 * ```
 */
export function concatValues<T extends NumericArray>(
  xs: T[],
  shapes: number[][],
  axis: number,
  alloc: AllocLike = allocNew,
): { values: T; shape: number[] } {
  const outShape = shapes[0].slice();
  outShape[axis] = shapes.reduce((s, sh) => s + sh[axis], 0);
  const outer = tf.util.sizeFromShape(outShape.slice(0, axis));
  const inner = tf.util.sizeFromShape(outShape.slice(axis + 1));
  const outRow = outShape[axis] * inner;
  const out = alloc(xs[0], outer * outRow);
  let col = 0;
  for (let i = 0; i < xs.length; i++) {
    const row = shapes[i][axis] * inner;
    // Each input is an [outer, row] matrix placed at column `col` of the [outer, outRow] output.
    copyBox(xs[i], { shape: [outer, row], begin: [0, 0] }, out, {
      shape: [outer, outRow],
      begin: [0, col],
    }, [outer, row]);
    col += row;
  }
  return { values: out, shape: outShape };
}

/**
 * Tile a row-major array `reps[d]` times along each dim.
 *
 * @example
 * ```ts
 * tileValues(Float32Array.from([1, 2]), [1, 2], [2, 2]); // [1, 2, 1, 2, 1, 2, 1, 2]
 * ```
 */
export function tileValues<T extends NumericArray>(
  x: T,
  shape: number[],
  reps: number[],
  alloc: AllocLike = allocNew,
): { values: T; shape: number[] } {
  const outShape = shape.map((s, d) => s * reps[d]);
  const out = alloc(x, tf.util.sizeFromShape(outShape));
  const r = shape.length;
  const idx = new Array<number>(r).fill(0);
  const zeros = new Array<number>(r).fill(0);
  if (out.length === 0) return { values: out, shape: outShape };
  // One box copy of the whole input per tile position.
  for (;;) {
    copyBox(x, { shape, begin: zeros }, out, {
      shape: outShape,
      begin: idx.map((t, d) => t * shape[d]),
    }, shape);
    let d = r - 1;
    for (; d >= 0; d--) {
      if (++idx[d] < reps[d]) break;
      idx[d] = 0;
    }
    if (d < 0) break;
  }
  return { values: out, shape: outShape };
}

/**
 * Fast Slice/SplitV/Concat/PadV2/StridedSlice/Tile configs for `backendName`.
 *
 * @example
 * ```ts
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { fastCopyConfigs } from "./cpu_copy_kernels.ts";
 *
 * for (const k of fastCopyConfigs("cpu-blas")) tf.registerKernel(k);
 * ```
 */
export function fastCopyConfigs(backendName: string): tf.KernelConfig[] {
  const slice = (args: KernelArgs): Info | Info[] => {
    const { x } = args.inputs as Record<string, Info>;
    const v = numericValues(args.backend, x);
    if (!v) return stock("Slice", args);
    const [begin, size] = tf.slice_util.parseSliceParams(
      x as tf.Tensor,
      args.attrs!.begin,
      args.attrs!.size,
    );
    tf.slice_util.assertParamsValid(x as tf.Tensor, begin, size);
    const out = sliceValues(v, x.shape, begin, size, poolAlloc(args.backend));
    return args.backend.makeTensorInfo(size, x.dtype, out);
  };
  const splitV = (args: KernelArgs): Info | Info[] => {
    const { x } = args.inputs as Record<string, Info>;
    const v = numericValues(args.backend, x);
    if (!v) return stock("SplitV", args);
    const axis = tf.util.parseAxisParam(args.attrs!.axis, x.shape)[0];
    const sizes = tf.backend_util.prepareSplitSize(
      x as tf.Tensor,
      args.attrs!.numOrSizeSplits,
      axis,
    );
    const begin = x.shape.map(() => 0);
    return sizes.map((s) => {
      const size = x.shape.slice();
      size[axis] = s;
      const out = sliceValues(v, x.shape, begin, size, poolAlloc(args.backend));
      begin[axis] += s;
      return args.backend.makeTensorInfo(size, x.dtype, out);
    });
  };
  const concat = (args: KernelArgs): Info | Info[] => {
    const inputs = args.inputs as Info[];
    const vals = inputs.map((t) => numericValues(args.backend, t));
    if (
      inputs.length === 0 || vals.some((v) => !v) ||
      inputs.some((t) => t.dtype !== inputs[0].dtype)
    ) {
      return stock("Concat", args);
    }
    const axis = tf.util.parseAxisParam(args.attrs!.axis, inputs[0].shape)[0];
    const shapes = inputs.map((t) => t.shape);
    tf.backend_util.assertParamsConsistent(shapes, axis);
    const { values, shape } = concatValues(
      vals as NumericArray[],
      shapes,
      axis,
      poolAlloc(args.backend),
    );
    return args.backend.makeTensorInfo(shape, inputs[0].dtype, values);
  };
  const padV2 = (args: KernelArgs): Info | Info[] => {
    const { x } = args.inputs as Record<string, Info>;
    const v = numericValues(args.backend, x);
    if (!v) return stock("PadV2", args);
    const { values, shape } = padValues(
      v,
      x.shape,
      args.attrs!.paddings,
      args.attrs!.constantValue,
      poolAlloc(args.backend),
    );
    return args.backend.makeTensorInfo(shape, x.dtype, values);
  };
  const stridedSlice = (args: KernelArgs): Info | Info[] => {
    const { x } = args.inputs as Record<string, Info>;
    const v = numericValues(args.backend, x);
    if (!v) return stock("StridedSlice", args);
    const a = args.attrs!;
    const info = tf.slice_util.sliceInfo(
      x.shape,
      a.begin,
      a.end,
      a.strides,
      a.beginMask,
      a.endMask,
      a.ellipsisMask,
      a.newAxisMask,
      a.shrinkAxisMask,
    );
    // Only unit strides are box copies; stepped slices keep the stock path.
    if (info.isIdentity || !info.isSimpleSlice || info.strides.some((s) => s !== 1)) {
      return stock("StridedSlice", args);
    }
    const size = tf.slice_util.computeOutShape(info.begin, info.end, info.strides);
    const out = sliceValues(v, x.shape, info.begin, size, poolAlloc(args.backend));
    return args.backend.makeTensorInfo(info.finalShape, x.dtype, out);
  };
  const tile = (args: KernelArgs): Info | Info[] => {
    const { x } = args.inputs as Record<string, Info>;
    const v = numericValues(args.backend, x);
    const reps: number[] = args.attrs!.reps;
    if (!v || reps.length !== x.shape.length) return stock("Tile", args);
    const { values, shape } = tileValues(v, x.shape, reps, poolAlloc(args.backend));
    return args.backend.makeTensorInfo(shape, x.dtype, values);
  };
  const table: [string, (a: KernelArgs) => Info | Info[]][] = [
    ["Slice", slice],
    ["SplitV", splitV],
    ["Concat", concat],
    ["PadV2", padV2],
    ["StridedSlice", stridedSlice],
    ["Tile", tile],
  ];
  return table.map(([kernelName, f]) => ({
    kernelName,
    backendName,
    kernelFunc: f as unknown as tf.KernelFunc,
  }));
}
