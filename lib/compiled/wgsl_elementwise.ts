/**
 * WGSL kernels of the compiled step that touch each output element once: unary maps, binary
 * maps with NumPy broadcasting (and the element-wise gradients), strided copies (slice,
 * broadcastTo, upsample2x), zero padding, concatenation and axis reductions (sum, mean,
 * sumPool2x). One thread per output element; shapes up to rank {@link MAX_RANK} ride in the
 * uniforms, so one source serves every shape.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { binaryKernel } from "./wgsl_elementwise.ts";
 *
 * const k = binaryKernel("add", {}, [2, 3], [3], [2, 3]);
 * assert.ok(k.wgsl.includes("a + b"));
 * assert.deepEqual(k.uniforms.slice(0, 4), [6, 2, 2, 3]);
 * ```
 * @module
 */
import type { Attrs } from "./ir_ops.ts";
import {
  f32Bits,
  grid1d,
  header,
  type KernelSpec,
  padTo,
  sizeOf,
  stridesOf,
  THREAD_INDEX,
} from "./wgsl_common.ts";

/** Highest rank the shape-generic kernels take. */
export const MAX_RANK = 6;

/** A kernel before its inputs are bound. */
export type KernelBody = Omit<KernelSpec, "reads">;

/** WGSL helpers of the GELU variants and their derivatives (tanh clamped: no inf / inf). */
const MATH = `
const GELU_C: f32 = 0.7978845608028654;
fn tanh_c(z: f32) -> f32 { return tanh(clamp(z, -15.0, 15.0)); }
fn erf_as(x: f32) -> f32 {
  // Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7): WGSL has no erf.
  let t = 1.0 / (1.0 + 0.3275911 * abs(x));
  let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
    + 0.254829592) * t * exp(-x * x);
  return select(-y, y, x >= 0.0);
}
fn sigm(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
fn gelu_tanh(x: f32) -> f32 { return 0.5 * x * (1.0 + tanh_c(GELU_C * (x + 0.044715 * x * x * x))); }
fn gelu_erf(x: f32) -> f32 { return 0.5 * x * (1.0 + erf_as(x * 0.7071067811865476)); }
fn dgelu_tanh(x: f32) -> f32 {
  let th = tanh_c(GELU_C * (x + 0.044715 * x * x * x));
  let du = GELU_C * (1.0 + 3.0 * 0.044715 * x * x);
  return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * du;
}
fn dgelu_erf(x: f32) -> f32 {
  return 0.5 * (1.0 + erf_as(x * 0.7071067811865476)) + x * exp(-0.5 * x * x) * 0.3989422804014327;
}
`;

/** The expression of a unary op on `x` (`F(1)`, `F(2)`: its scalar attributes). */
function unaryExpr(op: string, attrs: Attrs): string {
  switch (op) {
    case "silu":
      return "x * sigm(x)";
    case "gelu":
      return attrs.kind === "erf" ? "gelu_erf(x)" : "gelu_tanh(x)";
    case "sin":
      return "sin(x)";
    case "cos":
      return "cos(x)";
    case "clip":
      return "clamp(x, F(1), F(2))";
    case "addScalar":
      return "x + F(1)";
    case "mulScalar":
      return "x * F(1)";
  }
  throw new Error(`wgsl unary: no kernel for op "${op}"`);
}

/**
 * A unary element-wise op over `n` elements (`silu`, `gelu`, `sin`, `cos`, `clip`,
 * `addScalar`, `mulScalar`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { f32Bits } from "./wgsl_common.ts";
 * import { unaryKernel } from "./wgsl_elementwise.ts";
 *
 * const k = unaryKernel("mulScalar", { s: 2 }, 10);
 * assert.deepEqual(k.uniforms, [10, f32Bits(2), 0]);
 * ```
 */
export function unaryKernel(op: string, attrs: Attrs, n: number): KernelBody {
  const expr = unaryExpr(op, attrs);
  const p1 = op === "clip" ? attrs.min : attrs.s ?? 0;
  const p2 = op === "clip" ? attrs.max : 0;
  return {
    wgsl: header(1) + MATH + THREAD_INDEX +
      `  if (i >= P(0)) { return; }\n  let x = in0[i];\n  out[i] = ${expr};\n}\n`,
    uniforms: [n, f32Bits(p1 as number), f32Bits(p2 as number)],
    workgroups: grid1d(n),
  };
}

/** The expression of a binary op on `a`, `b` (the gradients: `a` = x, `b` = dy). */
function binaryExpr(op: string, attrs: Attrs): string {
  switch (op) {
    case "add":
      return "a + b";
    case "mul":
      return "a * b";
    case "siluGrad":
      return "b * sigm(a) * (1.0 + a * (1.0 - sigm(a)))";
    case "geluGrad":
      return attrs.kind === "erf" ? "b * dgelu_erf(a)" : "b * dgelu_tanh(a)";
    case "clipGrad":
      return "select(0.0, b, a >= F(20) && a <= F(21))";
  }
  throw new Error(`wgsl binary: no kernel for op "${op}"`);
}

/** Strides of `shape` broadcast into `out` (0 on broadcast axes), aligned to the right. */
function broadcastStrides(shape: readonly number[], out: readonly number[]): number[] {
  const st = stridesOf(shape);
  const lead = out.length - shape.length;
  return out.map((d, i) => {
    const j = i - lead;
    return j < 0 || shape[j] === 1 && d !== 1 ? 0 : st[j];
  });
}

/**
 * A binary element-wise op (`add`, `mul` with NumPy broadcasting; `siluGrad`, `geluGrad`,
 * `clipGrad` on x and dy). Uniforms: n, rank, out dims, a strides, b strides, two scalars.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { binaryKernel } from "./wgsl_elementwise.ts";
 *
 * const k = binaryKernel("mul", {}, [4, 1], [3], [4, 3]);
 * assert.deepEqual(k.uniforms.slice(8, 10), [1, 0]); // a's strides: row 1, broadcast columns
 * ```
 */
export function binaryKernel(
  op: string,
  attrs: Attrs,
  a: readonly number[],
  b: readonly number[],
  out: readonly number[],
): KernelBody {
  const expr = binaryExpr(op, attrs);
  const n = sizeOf(out);
  // Same shapes: one flat axis, so the index walk is a single step.
  const flat = a.length === out.length && b.length === out.length &&
    out.every((d, i) => a[i] === d && b[i] === d);
  const dims = flat ? [n] : out.length ? [...out] : [1];
  const sa = flat ? [1] : out.length ? broadcastStrides(a, out) : [0];
  const sb = flat ? [1] : out.length ? broadcastStrides(b, out) : [0];
  const s1 = attrs.min ?? 0, s2 = attrs.max ?? 0;
  return {
    wgsl: header(2) + MATH + THREAD_INDEX + `  if (i >= P(0)) { return; }
  var r = i; var ia = 0u; var ib = 0u;
  for (var d = 0u; d < P(1); d++) {
    let ax = P(1) - 1u - d;
    let c = r % P(2u + ax);
    r = r / P(2u + ax);
    ia += c * P(8u + ax);
    ib += c * P(14u + ax);
  }
  let a = in0[ia]; let b = in1[ib];
  out[i] = ${expr};
}
`,
    uniforms: [
      n,
      dims.length,
      ...padTo(dims, MAX_RANK, 1),
      ...padTo(sa, MAX_RANK),
      ...padTo(sb, MAX_RANK),
      f32Bits(s1 as number),
      f32Bits(s2 as number),
    ],
    workgroups: grid1d(n),
  };
}

const COPY_WGSL = header(1) + THREAD_INDEX + `  if (i >= P(0)) { return; }
  var r = i; var src = P(14);
  for (var d = 0u; d < P(1); d++) {
    let ax = P(1) - 1u - d;
    let c = r % P(2u + ax);
    r = r / P(2u + ax);
    src += c * P(8u + ax);
  }
  out[i] = in0[src];
}
`;

/**
 * A strided gather: output element at coordinates `c` (of `outDims`) reads input element
 * `base + sum c_k inStrides_k`. Slices, broadcasts and nearest-neighbour upsampling are all this.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { copyKernel } from "./wgsl_elementwise.ts";
 *
 * // Column 1 of a [3, 4] matrix: 3 elements, stride 4, starting at 1.
 * const k = copyKernel([3], [4], 1);
 * assert.deepEqual([k.uniforms[0], k.uniforms[8], k.uniforms[14]], [3, 4, 1]);
 * ```
 */
export function copyKernel(
  outDims: readonly number[],
  inStrides: readonly number[],
  base = 0,
): KernelBody {
  const n = sizeOf(outDims);
  const dims = outDims.length ? outDims : [1], st = outDims.length ? inStrides : [0];
  return {
    wgsl: COPY_WGSL,
    uniforms: [n, dims.length, ...padTo(dims, MAX_RANK, 1), ...padTo(st, MAX_RANK), base],
    workgroups: grid1d(n),
  };
}

/** `slice` of `x` as a {@link copyKernel}. */
export function sliceKernel(
  x: readonly number[],
  begin: readonly number[],
  size: readonly number[],
): KernelBody {
  const st = stridesOf(x);
  return copyKernel(size, st, begin.reduce((a, b, i) => a + b * st[i], 0));
}

/** `broadcastTo` of `x` to `out` as a {@link copyKernel}. */
export function broadcastKernel(x: readonly number[], out: readonly number[]): KernelBody {
  return copyKernel(out, broadcastStrides(x, out));
}

/** `upsample2x` of NHWC `x`: the output viewed `[b, h, 2, w, 2, c]` reads stride 0 twice. */
export function upsampleKernel(x: readonly number[]): KernelBody {
  const [b, h, w, c] = x;
  return copyKernel([b, h, 2, w, 2, c], [h * w * c, w * c, 0, c, 0, 1]);
}

const PAD_WGSL = header(1) + THREAD_INDEX + `  if (i >= P(0)) { return; }
  var r = i; var src = 0u; var st = 1u; var inside = true;
  for (var d = 0u; d < P(1); d++) {
    let ax = P(1) - 1u - d;
    let c = i32(r % P(2u + ax)) - I(14u + ax);
    r = r / P(2u + ax);
    inside = inside && c >= 0 && c < i32(P(8u + ax));
    src += u32(max(c, 0)) * st;
    st *= P(8u + ax);
  }
  out[i] = select(0.0, in0[min(src, arrayLength(&in0) - 1u)], inside);
}
`;

/**
 * `pad` with zeros: uniforms n, rank, out dims, in dims, `before` per axis.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { padKernel } from "./wgsl_elementwise.ts";
 *
 * assert.equal(padKernel([2, 3], [[1, 0], [0, 2]]).uniforms[0], 3 * 5);
 * ```
 */
export function padKernel(x: readonly number[], paddings: readonly [number, number][]): KernelBody {
  const out = x.map((d, i) => d + paddings[i][0] + paddings[i][1]);
  const n = sizeOf(out);
  return {
    wgsl: PAD_WGSL,
    uniforms: [
      n,
      out.length,
      ...padTo(out, MAX_RANK, 1),
      ...padTo(x, MAX_RANK, 1),
      ...padTo(paddings.map((p) => p[0]), MAX_RANK),
    ],
    workgroups: grid1d(n),
  };
}

/**
 * `concat` of `shapes` along `axis`, viewed as `[outer, axis, inner]`: one branch per input.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { concatKernel } from "./wgsl_elementwise.ts";
 *
 * const k = concatKernel([[2, 3], [2, 1]], 1);
 * assert.deepEqual(k.uniforms, [8, 1, 4, 3, 1]);
 * ```
 */
export function concatKernel(shapes: readonly (readonly number[])[], axis: number): KernelBody {
  const inner = sizeOf(shapes[0].slice(axis + 1));
  const along = shapes.map((s) => s[axis]);
  const total = along.reduce((a, b) => a + b, 0);
  const n = sizeOf(shapes[0].slice(0, axis)) * total * inner;
  let body = `  if (i >= P(0)) { return; }
  let inner = P(1); let o = i / (P(2) * inner); let e = i % inner;
  var j = (i / inner) % P(2);
`;
  shapes.forEach((_, k) => {
    body += `  if (j < P(${3 + k})) { out[i] = in${k}[(o * P(${3 + k}) + j) * inner + e]; return; }
  j -= P(${3 + k});
`;
  });
  return {
    wgsl: header(shapes.length) + THREAD_INDEX + body + "}\n",
    uniforms: [n, inner, total, ...along],
    workgroups: grid1d(n),
  };
}

const REDUCE_WGSL = header(1) + THREAD_INDEX + `  if (i >= P(0)) { return; }
  var r = i; var base = 0u;
  for (var d = 0u; d < P(1); d++) {
    let ax = P(1) - 1u - d;
    base += (r % P(2u + ax)) * P(8u + ax);
    r = r / P(2u + ax);
  }
  var acc = 0.0;
  for (var m = 0u; m < P(14); m++) {
    var q = m; var off = base;
    for (var d = 0u; d < P(15); d++) {
      let ax = P(15) - 1u - d;
      off += (q % P(16u + ax)) * P(22u + ax);
      q = q / P(16u + ax);
    }
    acc += in0[off];
  }
  out[i] = acc * F(28);
}
`;

/**
 * A reduction: each output element (coordinates over `keptDims`, input strides `keptStrides`)
 * sums the input over `redDims` / `redStrides`, times `scale` (1 for `sum`, 1 / count for `mean`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reduceKernel } from "./wgsl_elementwise.ts";
 *
 * const k = reduceKernel({ keptDims: [2], keptStrides: [3], redDims: [3], redStrides: [1] });
 * assert.deepEqual([k.uniforms[0], k.uniforms[14]], [2, 3]);
 * ```
 */
export function reduceKernel(o: {
  keptDims: readonly number[];
  keptStrides: readonly number[];
  redDims: readonly number[];
  redStrides: readonly number[];
  scale?: number;
}): KernelBody {
  const n = sizeOf(o.keptDims);
  return {
    wgsl: REDUCE_WGSL,
    uniforms: [
      n,
      o.keptDims.length,
      ...padTo(o.keptDims, MAX_RANK, 1),
      ...padTo(o.keptStrides, MAX_RANK),
      sizeOf(o.redDims),
      o.redDims.length,
      ...padTo(o.redDims, MAX_RANK, 1),
      ...padTo(o.redStrides, MAX_RANK),
      f32Bits(o.scale ?? 1),
    ],
    workgroups: grid1d(n),
  };
}

/** `sum` / `mean` of `x` over `axes`. */
export function axesReduceKernel(x: readonly number[], axes: readonly number[], mean: boolean) {
  const st = stridesOf(x);
  const kept = x.map((_, i) => i).filter((i) => !axes.includes(i));
  const red = [...axes];
  const count = sizeOf(red.map((i) => x[i]));
  return reduceKernel({
    keptDims: kept.map((i) => x[i]),
    keptStrides: kept.map((i) => st[i]),
    redDims: red.map((i) => x[i]),
    redStrides: red.map((i) => st[i]),
    scale: mean ? 1 / count : 1,
  });
}

/** `sumPool2x` of NHWC `x`: input viewed `[b, h/2, 2, w/2, 2, c]`, the two 2s summed. */
export function sumPoolKernel(x: readonly number[]): KernelBody {
  const [b, h, w, c] = x;
  return reduceKernel({
    keptDims: [b, h / 2, w / 2, c],
    keptStrides: [h * w * c, 2 * w * c, 2 * c, 1],
    redDims: [2, 2],
    redStrides: [w * c, c],
  });
}
