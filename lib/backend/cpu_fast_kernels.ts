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
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { fastElementwiseConfigs } from "./cpu_fast_kernels.ts";
 *
 * for (const k of fastElementwiseConfigs("cpu-blas")) tf.registerKernel(k);
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import type { MathBackendCPU } from "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
import { takeF32 } from "./cpu_buffer_pool.ts";
import { tileValues } from "./cpu_copy_kernels.ts";
import { activeNativeKernels, type NativeBinOp, type NativeKernels } from "./native_kernels.ts";

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

/** Binary ops `broadcastBinary` computes (`max`/`min`/`pow` as `Math.max`/`Math.min`/`Math.pow`). */
export type BinOp = "add" | "sub" | "mul" | "div" | "sqdiff" | "max" | "min" | "pow";

/** Strides of one loop level of a block: output, left and right operand. */
interface Level {
  count: number;
  a: number;
  b: number;
}

/**
 * `op` over a 3-level block `outer x rows x n` (row-major in the output, starting at `oo`), the
 * operands stepping by each level's strides. One loop nest per op keeps the JIT's inner loops free
 * of calls and branches.
 */
function block(
  op: BinOp,
  o: Float32Array,
  oo: number,
  a: Float32Array,
  ia: number,
  b: Float32Array,
  ib: number,
  outer: Level,
  rows: Level,
  n: Level,
): void {
  const no = outer.count, nr = rows.count, nn = n.count;
  const a0 = outer.a, b0 = outer.b, a1 = rows.a, b1 = rows.b, sa = n.a, sb = n.b;
  let po = oo;
  switch (op) {
    case "add":
      for (let k = 0; k < no; k++) {
        for (let i = 0; i < nr; i++) {
          let pa = ia + k * a0 + i * a1, pb = ib + k * b0 + i * b1;
          const end = po + nn;
          for (; po < end; po++) {
            const x = a[pa], y = b[pb];
            o[po] = x + y;
            pa += sa;
            pb += sb;
          }
        }
      }
      return;
    case "sub":
      for (let k = 0; k < no; k++) {
        for (let i = 0; i < nr; i++) {
          let pa = ia + k * a0 + i * a1, pb = ib + k * b0 + i * b1;
          const end = po + nn;
          for (; po < end; po++) {
            const x = a[pa], y = b[pb];
            o[po] = x - y;
            pa += sa;
            pb += sb;
          }
        }
      }
      return;
    case "mul":
      for (let k = 0; k < no; k++) {
        for (let i = 0; i < nr; i++) {
          let pa = ia + k * a0 + i * a1, pb = ib + k * b0 + i * b1;
          const end = po + nn;
          for (; po < end; po++) {
            const x = a[pa], y = b[pb];
            o[po] = x * y;
            pa += sa;
            pb += sb;
          }
        }
      }
      return;
    case "div":
      for (let k = 0; k < no; k++) {
        for (let i = 0; i < nr; i++) {
          let pa = ia + k * a0 + i * a1, pb = ib + k * b0 + i * b1;
          const end = po + nn;
          for (; po < end; po++) {
            const x = a[pa], y = b[pb];
            o[po] = x / y;
            pa += sa;
            pb += sb;
          }
        }
      }
      return;
    case "sqdiff":
      for (let k = 0; k < no; k++) {
        for (let i = 0; i < nr; i++) {
          let pa = ia + k * a0 + i * a1, pb = ib + k * b0 + i * b1;
          const end = po + nn;
          for (; po < end; po++) {
            const x = a[pa], y = b[pb];
            o[po] = (x - y) * (x - y);
            pa += sa;
            pb += sb;
          }
        }
      }
      return;
    case "max":
      for (let k = 0; k < no; k++) {
        for (let i = 0; i < nr; i++) {
          let pa = ia + k * a0 + i * a1, pb = ib + k * b0 + i * b1;
          const end = po + nn;
          for (; po < end; po++) {
            const x = a[pa], y = b[pb];
            o[po] = Math.max(x, y);
            pa += sa;
            pb += sb;
          }
        }
      }
      return;
    case "min":
      for (let k = 0; k < no; k++) {
        for (let i = 0; i < nr; i++) {
          let pa = ia + k * a0 + i * a1, pb = ib + k * b0 + i * b1;
          const end = po + nn;
          for (; po < end; po++) {
            const x = a[pa], y = b[pb];
            o[po] = Math.min(x, y);
            pa += sa;
            pb += sb;
          }
        }
      }
      return;
    case "pow":
      for (let k = 0; k < no; k++) {
        for (let i = 0; i < nr; i++) {
          let pa = ia + k * a0 + i * a1, pb = ib + k * b0 + i * b1;
          const end = po + nn;
          for (; po < end; po++) {
            const x = a[pa], y = b[pb];
            o[po] = Math.pow(x, y);
            pa += sa;
            pb += sb;
          }
        }
      }
      return;
  }
}

// The loops below are written out once per operation on purpose: a switch outside a tight loop
// keeps each loop monomorphic, while calling an `op(x, y)` closure per element was several times
// slower in V8 on these shapes. The repetition is the price of that speed.

/** `o[i] = op(a[i], b[i])`: same shapes, the most common case. */
function same(op: BinOp, o: Float32Array, a: Float32Array, b: Float32Array): void {
  const n = o.length;
  switch (op) {
    case "add":
      for (let i = 0; i < n; i++) {
        const x = a[i], y = b[i];
        o[i] = x + y;
      }
      return;
    case "sub":
      for (let i = 0; i < n; i++) {
        const x = a[i], y = b[i];
        o[i] = x - y;
      }
      return;
    case "mul":
      for (let i = 0; i < n; i++) {
        const x = a[i], y = b[i];
        o[i] = x * y;
      }
      return;
    case "div":
      for (let i = 0; i < n; i++) {
        const x = a[i], y = b[i];
        o[i] = x / y;
      }
      return;
    case "sqdiff":
      for (let i = 0; i < n; i++) {
        const x = a[i], y = b[i];
        o[i] = (x - y) * (x - y);
      }
      return;
    case "max":
      for (let i = 0; i < n; i++) {
        const x = a[i], y = b[i];
        o[i] = Math.max(x, y);
      }
      return;
    case "min":
      for (let i = 0; i < n; i++) {
        const x = a[i], y = b[i];
        o[i] = Math.min(x, y);
      }
      return;
    case "pow":
      for (let i = 0; i < n; i++) {
        const x = a[i], y = b[i];
        o[i] = Math.pow(x, y);
      }
      return;
  }
}

/** `o[i] = op(a[i], y)`: a scalar right operand. */
function scalarRight(op: BinOp, o: Float32Array, a: Float32Array, y: number): void {
  const n = o.length;
  switch (op) {
    case "add":
      for (let i = 0; i < n; i++) {
        const x = a[i];
        o[i] = x + y;
      }
      return;
    case "sub":
      for (let i = 0; i < n; i++) {
        const x = a[i];
        o[i] = x - y;
      }
      return;
    case "mul":
      for (let i = 0; i < n; i++) {
        const x = a[i];
        o[i] = x * y;
      }
      return;
    case "div":
      for (let i = 0; i < n; i++) {
        const x = a[i];
        o[i] = x / y;
      }
      return;
    case "sqdiff":
      for (let i = 0; i < n; i++) {
        const x = a[i];
        o[i] = (x - y) * (x - y);
      }
      return;
    case "max":
      for (let i = 0; i < n; i++) {
        const x = a[i];
        o[i] = Math.max(x, y);
      }
      return;
    case "min":
      for (let i = 0; i < n; i++) {
        const x = a[i];
        o[i] = Math.min(x, y);
      }
      return;
    case "pow":
      for (let i = 0; i < n; i++) {
        const x = a[i];
        o[i] = Math.pow(x, y);
      }
      return;
  }
}

/** `o[i] = op(x, b[i])`: a scalar left operand. */
function scalarLeft(op: BinOp, o: Float32Array, x: number, b: Float32Array): void {
  const n = o.length;
  switch (op) {
    case "add":
      for (let i = 0; i < n; i++) {
        const y = b[i];
        o[i] = x + y;
      }
      return;
    case "sub":
      for (let i = 0; i < n; i++) {
        const y = b[i];
        o[i] = x - y;
      }
      return;
    case "mul":
      for (let i = 0; i < n; i++) {
        const y = b[i];
        o[i] = x * y;
      }
      return;
    case "div":
      for (let i = 0; i < n; i++) {
        const y = b[i];
        o[i] = x / y;
      }
      return;
    case "sqdiff":
      for (let i = 0; i < n; i++) {
        const y = b[i];
        o[i] = (x - y) * (x - y);
      }
      return;
    case "max":
      for (let i = 0; i < n; i++) {
        const y = b[i];
        o[i] = Math.max(x, y);
      }
      return;
    case "min":
      for (let i = 0; i < n; i++) {
        const y = b[i];
        o[i] = Math.min(x, y);
      }
      return;
    case "pow":
      for (let i = 0; i < n; i++) {
        const y = b[i];
        o[i] = Math.pow(x, y);
      }
      return;
  }
}

/** Allocates an output array of `n` floats whose every element the caller then writes. */
export type AllocF32 = (n: number) => Float32Array;

const newF32: AllocF32 = (n) => new Float32Array(n);

function lastOf(xs: number[]): number {
  return xs[xs.length - 1];
}

/** Shortest innermost run worth looping over; shorter ones are widened first. */
const MIN_RUN = 32;

/**
 * Broadcast shapes whose innermost run is short (a group norm's [B, HW, G, C/G] * [B, 1, G, 1]
 * loops over runs of C/G) run several times slower than long ones. When the operand broadcast
 * along the trailing dims is small, materialize it over those dims (a cheap tile) so that the
 * trailing dims merge into one long run. Returns null when nothing is gained.
 */
function expandTrailing(
  a: Float32Array,
  aShape: number[],
  b: Float32Array,
  bShape: number[],
  shape: number[],
): { a: Float32Array; aShape: number[]; b: Float32Array; bShape: number[] } | null {
  const r = shape.length, size = tf.util.sizeFromShape(shape);
  let t = 0, run = 1;
  while (t < r && run < MIN_RUN) run *= shape[r - 1 - t++];
  if (t === r) return null; // the whole output is one short run: nothing to merge
  const expand = (x: Float32Array, xShape: number[]) => {
    const px = Array(r - xShape.length).fill(1).concat(xShape);
    const reps = px.map((s, d) => (d >= r - t && s !== shape[d] ? shape[d] : 1));
    if (reps.every((k) => k === 1)) return { v: x, s: xShape, ok: true };
    const grown = x.length * reps.reduce((p, k) => p * k, 1);
    if (grown * 4 > size) return { v: x, s: xShape, ok: false };
    const { values, shape: s } = tileValues(x, px, reps);
    return { v: values, s, ok: true };
  };
  const ea = expand(a, aShape), eb = expand(b, bShape);
  if (!ea.ok || !eb.ok || (ea.v === a && eb.v === b)) return null;
  return { a: ea.v, aShape: ea.s, b: eb.v, bShape: eb.s };
}

/**
 * `op(a, b)` with numpy broadcasting, on Float32Arrays (`alloc` supplies the output array).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { broadcastBinary } from "./cpu_fast_kernels.ts";
 *
 * const x = new Float32Array([0, 0, 0, 1, 1, 1]), bias = new Float32Array([1, 2, 3]);
 * const { values, shape } = broadcastBinary("add", x, [2, 3], bias, [3]);
 * assert.deepEqual([Array.from(values), shape], [[1, 2, 3, 2, 3, 4], [2, 3]]);
 * ```
 */
export function broadcastBinary(
  op: BinOp,
  a: Float32Array,
  aShape: number[],
  b: Float32Array,
  bShape: number[],
  alloc: AllocF32 = newF32,
): { values: Float32Array; shape: number[] } {
  const shape = tf.broadcast_util.assertAndGetBroadcastShape(aShape, bShape);
  const size = tf.util.sizeFromShape(shape);
  const general = size > 0 && a.length > 1 && b.length > 1 &&
    !(a.length === size && b.length === size);
  if (general && lastOf(broadcastPlan(aShape, bShape).dims) < MIN_RUN) {
    const ex = expandTrailing(a, aShape, b, bShape, shape);
    if (ex) return broadcastBinary(op, ex.a, ex.aShape, ex.b, ex.bShape, alloc);
  }
  const o = alloc(size);
  if (size === 0) return { values: o, shape };
  if (a.length === size && b.length === size) {
    same(op, o, a, b);
    return { values: o, shape };
  }
  if (b.length === 1 && a.length === size) {
    scalarRight(op, o, a, b[0]);
    return { values: o, shape };
  }
  if (a.length === 1 && b.length === size) {
    scalarLeft(op, o, a[0], b);
    return { values: o, shape };
  }
  const { dims, aStrides, bStrides } = broadcastPlan(aShape, bShape);
  const r = dims.length;
  // The last three dims run as plain loops: broadcast shapes such as a group norm's
  // [B, HW, G, C/G] * [B, 1, G, 1] have very short rows, and stepping the odometer per row
  // would cost more than the arithmetic.
  const level = (d: number): Level =>
    d >= 0 ? { count: dims[d], a: aStrides[d], b: bStrides[d] } : { count: 1, a: 0, b: 0 };
  const n = level(r - 1), rows = level(r - 2), outer = level(r - 3);
  const blockSize = n.count * rows.count * outer.count;
  const idx = new Array<number>(r).fill(0);
  let ia = 0, ib = 0;
  for (let oo = 0; oo < size; oo += blockSize) {
    block(op, o, oo, a, ia, b, ib, outer, rows, n);
    // Odometer over the remaining outer dims.
    for (let d = r - 4; d >= 0; d--) {
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
 * The merged loop plan of a sum over `axes`: adjacent dims merge when both are reduced or both
 * kept (size-1 dims drop out), and `outStrides[d]` is the output stride of merged dim `d` (0 for
 * reduced dims). Empty `dims` means a single element.
 *
 * @example
 * ```ts
 * sumPlan([8, 4, 4, 64], [0, 1, 2]); // { dims: [128, 64], outStrides: [0, 1] }
 * ```
 */
export function sumPlan(shape: number[], axes: number[]): { dims: number[]; outStrides: number[] } {
  const red = new Array<boolean>(shape.length).fill(false);
  for (const a of axes) red[a] = true;
  const dims: number[] = [], flags: boolean[] = [];
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && flags[last] === red[d]) dims[last] *= shape[d];
    else {
      dims.push(shape[d]);
      flags.push(red[d]);
    }
  }
  const outStrides = new Array<number>(dims.length);
  let s = 1;
  for (let d = dims.length - 1; d >= 0; d--) {
    outStrides[d] = flags[d] ? 0 : s;
    if (!flags[d]) s *= dims[d];
  }
  return { dims, outStrides };
}

/**
 * {@link reduceSum} on the native kernels: the same merged plan and float64 accumulation order
 * (the TypeScript version's detour for short reduced tails is a speed trick it does not need).
 */
function nativeSum(
  nk: NativeKernels,
  x: Float32Array,
  shape: number[],
  axes: number[],
  alloc: AllocF32,
): { values: Float32Array; shape: number[] } {
  const red = new Set(axes);
  const outShape = shape.filter((_, d) => !red.has(d));
  const values = alloc(tf.util.sizeFromShape(outShape));
  const plan = sumPlan(shape, axes);
  if (x.length === 0) values.fill(0);
  else if (plan.dims.length === 0) values[0] = x[0];
  else nk.sum(x, plan, values);
  return { values, shape: outShape };
}

/**
 * Output dims of `x` transposed by `perm` and the input stride of each (the gather plan).
 *
 * @example
 * ```ts
 * transposePlan([2, 3], [1, 0]); // { dims: [3, 2], strides: [1, 3] }
 * ```
 */
export function transposePlan(
  shape: number[],
  perm: number[],
): { dims: number[]; strides: number[] } {
  const inStrides = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    inStrides[d] = acc;
    acc *= shape[d];
  }
  return { dims: perm.map((p) => shape[p]), strides: perm.map((p) => inStrides[p]) };
}

const NATIVE_BIN_OPS: Record<string, true> = {
  add: true,
  sub: true,
  mul: true,
  div: true,
  sqdiff: true,
};

/** Broadcast plan for the native binary kernel (same-size and scalar operands as one run). */
function nativePlan(aShape: number[], bShape: number[], size: number) {
  const na = tf.util.sizeFromShape(aShape), nb = tf.util.sizeFromShape(bShape);
  if (na === size && nb === size) return { dims: [size], aStrides: [1], bStrides: [1] };
  if (nb === 1 && na === size) return { dims: [size], aStrides: [1], bStrides: [0] };
  if (na === 1 && nb === size) return { dims: [size], aStrides: [0], bStrides: [1] };
  return broadcastPlan(aShape, bShape);
}

/**
 * Sum of `x` over `axes` (any set), accumulated in float64; returns values and the kept shape.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reduceSum } from "./cpu_fast_kernels.ts";
 *
 * // A [2, 2, 2, 3] gradient of ones: the bias gradient sums over all but the channel axis.
 * const dy = new Float32Array(2 * 2 * 2 * 3).fill(1);
 * const { values, shape } = reduceSum(dy, [2, 2, 2, 3], [0, 1, 2]);
 * assert.deepEqual([Array.from(values), shape], [[8, 8, 8], [3]]);
 * ```
 */
export function reduceSum(
  x: Float32Array,
  shape: number[],
  axes: number[],
  alloc: AllocF32 = newF32,
): { values: Float32Array; shape: number[] } {
  const r = shape.length;
  const red = new Array<boolean>(r).fill(false);
  for (const a of axes) red[a] = true;
  const outShape = shape.filter((_, d) => !red[d]);
  // A short reduced innermost run (a group norm's sum of [B, HW, G, C/G] over HW and C/G) is
  // slow to loop over: reduce the other axes first (long runs), then the short run.
  let t0 = r;
  while (t0 > 0 && (red[t0 - 1] || shape[t0 - 1] === 1)) t0--;
  const tail = shape.slice(t0).reduce((p, s) => p * s, 1);
  if (t0 < r && tail > 1 && tail < MIN_RUN && axes.some((a) => a < t0 && shape[a] > 1)) {
    const first = reduceSum(x, shape, axes.filter((a) => a < t0));
    const kept = first.shape.length - (r - t0);
    const rest = Array.from({ length: r - t0 }, (_, i) => kept + i);
    return reduceSum(first.values, first.shape, rest, alloc);
  }
  const { dims, outStrides: os } = sumPlan(shape, axes);
  const outSize = tf.util.sizeFromShape(outShape);
  const acc = new Float64Array(outSize);
  if (x.length > 0) {
    if (dims.length === 0) {
      acc[0] = x[0];
    } else {
      const k = dims.length - 1;
      const n = dims[k], so = os[k];
      // As in broadcastBinary, the last two dims run as plain loops (rows x n).
      const rows = k >= 1 ? dims[k - 1] : 1, ro = k >= 1 ? os[k - 1] : 0;
      const block = rows * n;
      const idx = new Array<number>(dims.length).fill(0);
      let oi = 0;
      for (let xb = 0; xb < x.length; xb += block) {
        for (let i = 0; i < rows; i++) {
          const xi = xb + i * n, oj = oi + i * ro;
          if (so === 0) {
            let t = 0;
            for (let j = 0; j < n; j++) t += x[xi + j];
            acc[oj] += t;
          } else {
            for (let j = 0; j < n; j++) acc[oj + j] += x[xi + j];
          }
        }
        for (let d = k - 2; d >= 0; d--) {
          idx[d]++;
          oi += os[d];
          if (idx[d] < dims[d]) break;
          oi -= os[d] * dims[d];
          idx[d] = 0;
        }
      }
    }
  }
  const values = alloc(outSize);
  for (let i = 0; i < outSize; i++) values[i] = acc[i];
  return { values, shape: outShape };
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
  alloc?: (n: number) => T,
): T {
  const r = shape.length;
  const out = alloc ? alloc(x.length) : new (x.constructor as { new (n: number): T })(x.length);
  if (x.length === 0 || r === 0) {
    out.set(x);
    return out;
  }
  const { dims, strides: st } = transposePlan(shape, perm);
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
export function softmaxRows(x: Float32Array, n: number, alloc: AllocF32 = newF32): Float32Array {
  const out = alloc(x.length);
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
 * Fast Add/Sub/Multiply/RealDiv/SquaredDifference/Maximum/Minimum/Sum/Mean/Transpose/Softmax
 * configs for `backendName`.
 *
 * @example
 * ```ts
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { fastElementwiseConfigs } from "./cpu_fast_kernels.ts";
 *
 * for (const k of fastElementwiseConfigs("cpu-blas")) tf.registerKernel(k);
 * ```
 */
export function fastElementwiseConfigs(backendName: string): tf.KernelConfig[] {
  const binary = (name: string, op: BinOp) => (args: KernelArgs): Info | Info[] => {
    const { a, b } = args.inputs;
    if (a.dtype !== "float32" || b.dtype !== "float32") return stock(name, args);
    const nk = activeNativeKernels();
    if (nk && op in NATIVE_BIN_OPS) {
      const shape = tf.broadcast_util.assertAndGetBroadcastShape(a.shape, b.shape);
      const size = tf.util.sizeFromShape(shape);
      const o = takeF32(args.backend, size);
      if (size > 0) {
        nk.binary(
          op as NativeBinOp,
          o,
          f32(args.backend, a),
          f32(args.backend, b),
          nativePlan(a.shape, b.shape, size),
        );
      }
      return args.backend.makeTensorInfo(shape, "float32", o);
    }
    const { values, shape } = broadcastBinary(
      op,
      f32(args.backend, a),
      a.shape,
      f32(args.backend, b),
      b.shape,
      (n) => takeF32(args.backend, n),
    );
    return args.backend.makeTensorInfo(shape, "float32", values);
  };
  const reduction = (name: string, mean: boolean) => (args: KernelArgs): Info | Info[] => {
    const { x } = args.inputs;
    if (x.dtype !== "float32") return stock(name, args);
    const attrs = args.attrs ?? {};
    const axes = tf.util.parseAxisParam(attrs.axis, x.shape);
    const nk = activeNativeKernels();
    const { values, shape } = nk
      ? nativeSum(nk, f32(args.backend, x), x.shape, axes, (n) => takeF32(args.backend, n))
      : reduceSum(f32(args.backend, x), x.shape, axes, (n) => takeF32(args.backend, n));
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
    const nk = activeNativeKernels();
    if (nk && !(v instanceof Uint8Array) && v.length > 0 && x.shape.length > 0) {
      const out = v instanceof Float32Array
        ? takeF32(args.backend, v.length)
        : new Int32Array(v.length);
      nk.transpose32(v, out, transposePlan(x.shape, perm));
      return args.backend.makeTensorInfo(perm.map((p) => x.shape[p]), x.dtype, out);
    }
    const alloc = v instanceof Float32Array
      ? (n: number) => takeF32(args.backend, n) as typeof v
      : undefined;
    const out = transposeValues(v, x.shape, perm, alloc);
    return args.backend.makeTensorInfo(perm.map((p) => x.shape[p]), x.dtype, out);
  };
  const softmax = (args: KernelArgs): Info | Info[] => {
    const { logits } = args.inputs;
    const r = logits.shape.length;
    const dim = args.attrs?.dim ?? -1;
    if (logits.dtype !== "float32" || r === 0 || (dim !== -1 && dim !== r - 1)) {
      return stock("Softmax", args);
    }
    const xv = f32(args.backend, logits), cols = logits.shape[r - 1];
    const nk = activeNativeKernels();
    let out: Float32Array;
    if (nk && cols > 0) {
      out = takeF32(args.backend, xv.length);
      nk.softmax(xv, out, cols, 1);
    } else out = softmaxRows(xv, cols, (n) => takeF32(args.backend, n));
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
    ["Maximum", binary("Maximum", "max")],
    ["Minimum", binary("Minimum", "min")],
    ["Sum", reduction("Sum", false)],
    ["Mean", reduction("Mean", true)],
  ];
  return table.map(([kernelName, f]) => ({
    kernelName,
    backendName,
    kernelFunc: f as unknown as tf.KernelFunc,
  }));
}
