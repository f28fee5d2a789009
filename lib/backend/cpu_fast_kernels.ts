/**
 * Allocation-free element-wise kernels for a `MathBackendCPU` backend.
 *
 * Once GEMMs run in BLAS, most of a training step is the stock cpu backend's element-wise code,
 * whose broadcasting path builds index arrays for every element (bias adds, norm scale/shift),
 * and whose reductions over leading axes transpose first (bias gradients). These kernels do the
 * same arithmetic with collapsed-dimension odometer loops over the typed arrays. They handle
 * float32 only and hand everything else to the stock kernel.
 *
 * @example
 * ```ts
 * for (const k of fastElementwiseConfigs("cpu-blas")) tf.registerKernel(k);
 * ```
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { MathBackendCPU } from "@tensorflow/tfjs-backend-cpu";

type Info = tf.TensorInfo;
// deno-lint-ignore no-explicit-any
type Attrs = Record<string, any>;
interface KernelArgs {
  inputs: Record<string, Info>;
  backend: MathBackendCPU;
  attrs?: Attrs;
}

function stock(name: string, args: KernelArgs): Info | Info[] {
  const k = tf.getKernel(name, "cpu");
  if (!k) throw new Error(`backend cpu: stock kernel '${name}' is not registered`);
  return k.kernelFunc(args as unknown as Parameters<tf.KernelFunc>[0]) as Info | Info[];
}

/** Loop plan for a broadcast binary op: merged output dims and per-operand strides. */
export interface BroadcastPlan {
  dims: number[];
  aStrides: number[];
  bStrides: number[];
}

/**
 * Collapse a numpy-style broadcast of `aShape` and `bShape` into as few dims as possible
 * (adjacent dims merge when each operand is broadcast along both or neither).
 *
 * @example
 * ```ts
 * broadcastPlan([8, 4, 4, 64], [64]); // { dims: [128, 64], aStrides: [64, 1], bStrides: [0, 1] }
 * ```
 */
export function broadcastPlan(aShape: number[], bShape: number[]): BroadcastPlan {
  const out = tf.broadcast_util.assertAndGetBroadcastShape(aShape, bShape);
  const r = out.length;
  const pa = Array(r - aShape.length).fill(1).concat(aShape);
  const pb = Array(r - bShape.length).fill(1).concat(bShape);
  const dims: number[] = [], fa: boolean[] = [], fb: boolean[] = [];
  for (let d = 0; d < r; d++) {
    if (out[d] === 1) continue;
    const ba = pa[d] === 1, bb = pb[d] === 1;
    const last = dims.length - 1;
    if (last >= 0 && fa[last] === ba && fb[last] === bb) dims[last] *= out[d];
    else {
      dims.push(out[d]);
      fa.push(ba);
      fb.push(bb);
    }
  }
  if (dims.length === 0) return { dims: [1], aStrides: [1], bStrides: [1] };
  const strides = (flags: boolean[]) => {
    const s = new Array<number>(dims.length);
    let acc = 1;
    for (let d = dims.length - 1; d >= 0; d--) {
      s[d] = flags[d] ? 0 : acc;
      if (!flags[d]) acc *= dims[d];
    }
    return s;
  };
  return { dims, aStrides: strides(fa), bStrides: strides(fb) };
}

type BinOp = "add" | "sub" | "mul" | "div" | "sqdiff";

function inner(
  op: BinOp,
  o: Float32Array,
  oo: number,
  a: Float32Array,
  ia: number,
  sa: number,
  b: Float32Array,
  ib: number,
  sb: number,
  n: number,
): void {
  // One loop per op keeps the JIT's inner loop free of calls and branches.
  switch (op) {
    case "add":
      for (let j = 0; j < n; j++) o[oo + j] = a[ia + j * sa] + b[ib + j * sb];
      break;
    case "sub":
      for (let j = 0; j < n; j++) o[oo + j] = a[ia + j * sa] - b[ib + j * sb];
      break;
    case "mul":
      for (let j = 0; j < n; j++) o[oo + j] = a[ia + j * sa] * b[ib + j * sb];
      break;
    case "div":
      for (let j = 0; j < n; j++) o[oo + j] = a[ia + j * sa] / b[ib + j * sb];
      break;
    case "sqdiff":
      for (let j = 0; j < n; j++) {
        const d = a[ia + j * sa] - b[ib + j * sb];
        o[oo + j] = d * d;
      }
      break;
  }
}

/**
 * `op(a, b)` with numpy broadcasting, on Float32Arrays.
 *
 * @example
 * ```ts
 * const { values, shape } = broadcastBinary("add", x, [2, 3], bias, [3]);
 * ```
 */
export function broadcastBinary(
  op: BinOp,
  a: Float32Array,
  aShape: number[],
  b: Float32Array,
  bShape: number[],
): { values: Float32Array; shape: number[] } {
  const shape = tf.broadcast_util.assertAndGetBroadcastShape(aShape, bShape);
  const size = tf.util.sizeFromShape(shape);
  const o = new Float32Array(size);
  if (size === 0) return { values: o, shape };
  const { dims, aStrides, bStrides } = broadcastPlan(aShape, bShape);
  const r = dims.length;
  const n = dims[r - 1], sa = aStrides[r - 1], sb = bStrides[r - 1];
  const idx = new Array<number>(r).fill(0);
  let ia = 0, ib = 0;
  for (let oo = 0; oo < size; oo += n) {
    inner(op, o, oo, a, ia, sa, b, ib, sb, n);
    // Odometer over the outer dims.
    for (let d = r - 2; d >= 0; d--) {
      idx[d]++;
      ia += aStrides[d];
      ib += bStrides[d];
      if (idx[d] < dims[d]) break;
      ia -= aStrides[d] * dims[d];
      ib -= bStrides[d] * dims[d];
      idx[d] = 0;
    }
  }
  return { values: o, shape };
}

/**
 * Sum of `x` over `axes` (any set), accumulated in float64; returns values and the kept shape.
 *
 * @example
 * ```ts
 * const { values } = reduceSum(dy, [8, 32, 32, 64], [0, 1, 2]); // bias gradient, 64 values
 * ```
 */
export function reduceSum(
  x: Float32Array,
  shape: number[],
  axes: number[],
): { values: Float32Array; shape: number[] } {
  const r = shape.length;
  const red = new Array<boolean>(r).fill(false);
  for (const a of axes) red[a] = true;
  const outShape = shape.filter((_, d) => !red[d]);
  const dims: number[] = [], flags: boolean[] = [];
  for (let d = 0; d < r; d++) {
    if (shape[d] === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && flags[last] === red[d]) dims[last] *= shape[d];
    else {
      dims.push(shape[d]);
      flags.push(red[d]);
    }
  }
  const outSize = tf.util.sizeFromShape(outShape);
  const acc = new Float64Array(outSize);
  if (x.length > 0) {
    if (dims.length === 0) {
      acc[0] = x[0];
    } else {
      // Output stride of each merged dim (0 for reduced dims).
      const os = new Array<number>(dims.length);
      let s = 1;
      for (let d = dims.length - 1; d >= 0; d--) {
        os[d] = flags[d] ? 0 : s;
        if (!flags[d]) s *= dims[d];
      }
      const k = dims.length - 1;
      const n = dims[k], so = os[k];
      const idx = new Array<number>(dims.length).fill(0);
      let oi = 0;
      for (let xi = 0; xi < x.length; xi += n) {
        if (so === 0) {
          let t = 0;
          for (let j = 0; j < n; j++) t += x[xi + j];
          acc[oi] += t;
        } else {
          for (let j = 0; j < n; j++) acc[oi + j] += x[xi + j];
        }
        for (let d = k - 1; d >= 0; d--) {
          idx[d]++;
          oi += os[d];
          if (idx[d] < dims[d]) break;
          oi -= os[d] * dims[d];
          idx[d] = 0;
        }
      }
    }
  }
  return { values: Float32Array.from(acc), shape: outShape };
}

/**
 * `x` (shape `shape`) transposed by `perm`, for any typed array.
 *
 * @example
 * ```ts
 * transposeValues(Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3], [1, 0]); // [1, 4, 2, 5, 3, 6]
 * ```
 */
export function transposeValues<T extends Float32Array | Int32Array | Uint8Array>(
  x: T,
  shape: number[],
  perm: number[],
): T {
  const r = shape.length;
  const out = new (x.constructor as { new (n: number): T })(x.length);
  if (x.length === 0 || r === 0) {
    out.set(x);
    return out;
  }
  const inStrides = new Array<number>(r);
  let acc = 1;
  for (let d = r - 1; d >= 0; d--) {
    inStrides[d] = acc;
    acc *= shape[d];
  }
  const dims = perm.map((p) => shape[p]);
  const st = perm.map((p) => inStrides[p]);
  const n = dims[r - 1], sn = st[r - 1];
  const idx = new Array<number>(r).fill(0);
  let ii = 0;
  for (let o = 0; o < out.length; o += n) {
    for (let j = 0; j < n; j++) out[o + j] = x[ii + j * sn];
    for (let d = r - 2; d >= 0; d--) {
      idx[d]++;
      ii += st[d];
      if (idx[d] < dims[d]) break;
      ii -= st[d] * dims[d];
      idx[d] = 0;
    }
  }
  return out;
}

/**
 * Softmax over the last axis of rows of length `n`, computed stably (max subtracted).
 *
 * @example
 * ```ts
 * softmaxRows(Float32Array.from([0, 0]), 2); // [0.5, 0.5]
 * ```
 */
export function softmaxRows(x: Float32Array, n: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let o = 0; o < x.length; o += n) {
    let m = -Infinity;
    for (let j = 0; j < n; j++) if (x[o + j] > m) m = x[o + j];
    let s = 0;
    for (let j = 0; j < n; j++) {
      const e = Math.exp(x[o + j] - m);
      out[o + j] = e;
      s += e;
    }
    const inv = 1 / s;
    for (let j = 0; j < n; j++) out[o + j] *= inv;
  }
  return out;
}

function f32(backend: MathBackendCPU, t: Info): Float32Array {
  return backend.data.get(t.dataId).values as Float32Array;
}

/**
 * Fast Add/Sub/Multiply/RealDiv/SquaredDifference/Sum/Mean/Transpose/Softmax configs for `backendName`.
 *
 * @example
 * ```ts
 * for (const k of fastElementwiseConfigs("cpu-blas")) tf.registerKernel(k);
 * ```
 */
export function fastElementwiseConfigs(backendName: string): tf.KernelConfig[] {
  const binary = (name: string, op: BinOp) => (args: KernelArgs): Info | Info[] => {
    const { a, b } = args.inputs;
    if (a.dtype !== "float32" || b.dtype !== "float32") return stock(name, args);
    const { values, shape } = broadcastBinary(
      op,
      f32(args.backend, a),
      a.shape,
      f32(args.backend, b),
      b.shape,
    );
    return args.backend.makeTensorInfo(shape, "float32", values);
  };
  const reduction = (name: string, mean: boolean) => (args: KernelArgs): Info | Info[] => {
    const { x } = args.inputs;
    if (x.dtype !== "float32") return stock(name, args);
    const attrs = args.attrs ?? {};
    const axes = tf.util.parseAxisParam(attrs.axis, x.shape);
    const { values, shape } = reduceSum(f32(args.backend, x), x.shape, axes);
    if (mean) {
      const count = axes.reduce((p, a) => p * x.shape[a], 1);
      for (let i = 0; i < values.length; i++) values[i] /= count;
    }
    const outShape = attrs.keepDims ? tf.backend_util.expandShapeToKeepDim(shape, axes) : shape;
    return args.backend.makeTensorInfo(outShape, "float32", values);
  };
  const transpose = (args: KernelArgs): Info | Info[] => {
    const { x } = args.inputs;
    const v = args.backend.data.get(x.dataId).values;
    if (!(v instanceof Float32Array || v instanceof Int32Array || v instanceof Uint8Array)) {
      return stock("Transpose", args);
    }
    const perm: number[] = args.attrs?.perm;
    const out = transposeValues(v, x.shape, perm);
    return args.backend.makeTensorInfo(perm.map((p) => x.shape[p]), x.dtype, out);
  };
  const softmax = (args: KernelArgs): Info | Info[] => {
    const { logits } = args.inputs;
    const r = logits.shape.length;
    const dim = args.attrs?.dim ?? -1;
    if (logits.dtype !== "float32" || r === 0 || (dim !== -1 && dim !== r - 1)) {
      return stock("Softmax", args);
    }
    const out = softmaxRows(f32(args.backend, logits), logits.shape[r - 1]);
    return args.backend.makeTensorInfo(logits.shape, "float32", out);
  };
  const table: [string, (a: KernelArgs) => Info | Info[]][] = [
    ["Transpose", transpose],
    ["Softmax", softmax],
    ["Add", binary("Add", "add")],
    ["Sub", binary("Sub", "sub")],
    ["Multiply", binary("Multiply", "mul")],
    ["RealDiv", binary("RealDiv", "div")],
    ["SquaredDifference", binary("SquaredDifference", "sqdiff")],
    ["Sum", reduction("Sum", false)],
    ["Mean", reduction("Mean", true)],
  ];
  return table.map(([kernelName, f]) => ({
    kernelName,
    backendName,
    kernelFunc: f as unknown as tf.KernelFunc,
  }));
}
