/**
 * WGSL kernels of the compiled step's contractions: a 16x16-tiled matrix product (transposes
 * as strides, optional bias: `matMul`, `linear`) and direct NHWC / HWIO convolutions with their
 * two gradients, one thread per output element. Correct and simple rather than fast.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { matMulKernel } from "./wgsl_linalg.ts";
 *
 * const k = matMulKernel({ m: 3, n: 40, k: 5, transposeA: false, transposeB: true, bias: false });
 * assert.deepEqual(k.workgroups, [3, 1, 1]);
 * assert.deepEqual(k.uniforms, [3, 40, 5, 5, 1, 1, 5]);
 * ```
 * @module
 */
import { grid1d, header, sizeOf, THREAD_INDEX } from "./wgsl_common.ts";
import type { KernelBody } from "./wgsl_elementwise.ts";

const T = 16;

function matMulWgsl(bias: boolean): string {
  return header(bias ? 3 : 2) + `
var<workgroup> As: array<array<f32, ${T}>, ${T}>;
var<workgroup> Bs: array<array<f32, ${T}>, ${T}>;
@compute @workgroup_size(${T}, ${T}) fn main(@builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = wid.y * ${T}u + lid.y; let col = wid.x * ${T}u + lid.x;
  let M = P(0); let N = P(1); let K = P(2);
  var acc = 0.0;
  for (var t = 0u; t < (K + ${T - 1}u) / ${T}u; t++) {
    let ka = t * ${T}u + lid.x; let kb = t * ${T}u + lid.y;
    var a = 0.0; var b = 0.0;
    if (row < M && ka < K) { a = in0[row * P(3) + ka * P(4)]; }
    if (kb < K && col < N) { b = in1[kb * P(5) + col * P(6)]; }
    As[lid.y][lid.x] = a; Bs[lid.y][lid.x] = b;
    workgroupBarrier();
    for (var kk = 0u; kk < ${T}u; kk++) { acc += As[lid.y][kk] * Bs[kk][lid.x]; }
    workgroupBarrier();
  }
  if (row < M && col < N) { out[row * N + col] = acc${bias ? " + in2[col]" : ""}; }
}
`;
}

/** Sizes of `op(a) [m, k] @ op(b) [k, n]` (+ bias `[n]`). */
export interface MatMulSizes {
  m: number;
  n: number;
  k: number;
  transposeA: boolean;
  transposeB: boolean;
  bias: boolean;
}

/**
 * `out[m, n] = op(a) @ op(b) (+ bias)`, row-major; a transpose is a swap of strides.
 * Uniforms: M, N, K, a's row and k strides, b's k and column strides.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { matMulKernel } from "./wgsl_linalg.ts";
 *
 * const k = matMulKernel({ m: 4, n: 2, k: 3, transposeA: true, transposeB: false, bias: true });
 * assert.deepEqual(k.uniforms.slice(3), [1, 4, 2, 1]); // a stored [3, 4]
 * assert.ok(k.wgsl.includes("in2[col]"));
 * ```
 */
export function matMulKernel(s: MatMulSizes): KernelBody {
  const [ar, ak] = s.transposeA ? [1, s.m] : [s.k, 1];
  const [bk, bc] = s.transposeB ? [1, s.k] : [s.n, 1];
  const gy = Math.ceil(s.m / T);
  if (gy > 65535) throw new Error(`wgsl matMul: ${s.m} rows exceed one grid dimension`);
  return {
    wgsl: matMulWgsl(s.bias),
    uniforms: [s.m, s.n, s.k, ar, ak, bk, bc],
    workgroups: [Math.max(1, Math.ceil(s.n / T)), Math.max(1, gy), 1],
  };
}

/** Geometry of a convolution: NHWC input, HWIO filter, output `[B, OH, OW, O]`. */
export interface ConvGeometry {
  x: readonly number[];
  w: readonly number[];
  out: readonly number[];
  stride: number;
  pad: readonly number[];
}

/** Uniform words 1..12 of every conv kernel (word 0 is the thread count). */
function convWords(g: ConvGeometry): number[] {
  const [b, h, w, c] = g.x, [kh, kw] = g.w, [, oh, ow, o] = g.out;
  return [b, h, w, c, oh, ow, o, kh, kw, g.stride, g.pad[0], g.pad[1]];
}

const CONV_HEAD = `  if (i >= P(0)) { return; }
  let B = P(1); let H = P(2); let W = P(3); let C = P(4); let OH = P(5); let OW = P(6);
  let O = P(7); let KH = P(8); let KW = P(9); let S = P(10); let PH = I(11); let PW = I(12);
  var acc = 0.0;
`;

function convWgsl(bias: boolean): string {
  return header(bias ? 3 : 2) + THREAD_INDEX + CONV_HEAD + `  let o = i % O; var r = i / O;
  let ox = r % OW; r = r / OW; let oy = r % OH; let b = r / OH;
  for (var di = 0u; di < KH; di++) {
    let iy = i32(oy * S + di) - PH;
    if (iy < 0 || iy >= i32(H)) { continue; }
    for (var dj = 0u; dj < KW; dj++) {
      let ix = i32(ox * S + dj) - PW;
      if (ix < 0 || ix >= i32(W)) { continue; }
      let xb = ((b * H + u32(iy)) * W + u32(ix)) * C;
      let wb = (di * KW + dj) * C * O + o;
      for (var c = 0u; c < C; c++) { acc += in0[xb + c] * in1[wb + c * O]; }
    }
  }
  out[i] = acc${bias ? " + in2[o]" : ""};
}
`;
}

/**
 * `conv2d` (zero padding, stride, optional bias), one thread per output element.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { conv2dKernel } from "./wgsl_linalg.ts";
 *
 * const g = { x: [1, 4, 4, 2], w: [3, 3, 2, 5], out: [1, 2, 2, 5], stride: 2, pad: [1, 1] };
 * assert.deepEqual(conv2dKernel(g, false).uniforms, [20, 1, 4, 4, 2, 2, 2, 5, 3, 3, 2, 1, 1]);
 * ```
 */
export function conv2dKernel(g: ConvGeometry, bias: boolean): KernelBody {
  const n = sizeOf(g.out);
  return { wgsl: convWgsl(bias), uniforms: [n, ...convWords(g)], workgroups: grid1d(n) };
}

const CONV_DX = header(2) + THREAD_INDEX + CONV_HEAD + `  let c = i % C; var r = i / C;
  let x = r % W; r = r / W; let y = r % H; let b = r / H;
  for (var di = 0u; di < KH; di++) {
    let ty = i32(y) + PH - i32(di);
    if (ty < 0 || ty % i32(S) != 0) { continue; }
    let oy = u32(ty) / S;
    if (oy >= OH) { continue; }
    for (var dj = 0u; dj < KW; dj++) {
      let tx = i32(x) + PW - i32(dj);
      if (tx < 0 || tx % i32(S) != 0) { continue; }
      let ox = u32(tx) / S;
      if (ox >= OW) { continue; }
      let db = ((b * OH + oy) * OW + ox) * O;
      let wb = ((di * KW + dj) * C + c) * O;
      for (var o = 0u; o < O; o++) { acc += in0[db + o] * in1[wb + o]; }
    }
  }
  out[i] = acc;
}
`;

/**
 * `conv2dBackpropInput` (inputs dy, w): each input position sums the outputs it fed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { conv2dBackpropInputKernel } from "./wgsl_linalg.ts";
 *
 * const g = { x: [1, 4, 4, 2], w: [3, 3, 2, 5], out: [1, 2, 2, 5], stride: 2, pad: [1, 1] };
 * assert.equal(conv2dBackpropInputKernel(g).uniforms[0], 32);
 * ```
 */
export function conv2dBackpropInputKernel(g: ConvGeometry): KernelBody {
  const n = sizeOf(g.x);
  return { wgsl: CONV_DX, uniforms: [n, ...convWords(g)], workgroups: grid1d(n) };
}

const CONV_DW = header(2) + THREAD_INDEX + CONV_HEAD + `  let o = i % O; var r = i / O;
  let c = r % C; r = r / C; let dj = r % KW; let di = r / KW;
  for (var b = 0u; b < B; b++) {
    for (var oy = 0u; oy < OH; oy++) {
      let iy = i32(oy * S + di) - PH;
      if (iy < 0 || iy >= i32(H)) { continue; }
      for (var ox = 0u; ox < OW; ox++) {
        let ix = i32(ox * S + dj) - PW;
        if (ix < 0 || ix >= i32(W)) { continue; }
        acc += in0[((b * H + u32(iy)) * W + u32(ix)) * C + c] * in1[((b * OH + oy) * OW + ox) * O + o];
      }
    }
  }
  out[i] = acc;
}
`;

/**
 * `conv2dBackpropFilter` (inputs x, dy): each filter tap sums over batch and output positions.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { conv2dBackpropFilterKernel } from "./wgsl_linalg.ts";
 *
 * const g = { x: [1, 4, 4, 2], w: [3, 3, 2, 5], out: [1, 2, 2, 5], stride: 2, pad: [1, 1] };
 * assert.equal(conv2dBackpropFilterKernel(g).uniforms[0], 90);
 * ```
 */
export function conv2dBackpropFilterKernel(g: ConvGeometry): KernelBody {
  const n = sizeOf(g.w);
  return { wgsl: CONV_DW, uniforms: [n, ...convWords(g)], workgroups: grid1d(n) };
}
