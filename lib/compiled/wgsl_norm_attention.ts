/**
 * WGSL kernels of the compiled step's normalisations and attention. Norms run one workgroup of
 * 64 threads per normalisation set (two-pass mean and biased variance in workgroup memory, as
 * `ir_ops.ts` defines them); `groupNorm` and `layerNorm` share one kernel (a layer norm is a
 * group norm of `[rows, 1, C]` with one group), and so do their gradients. Attention runs one
 * thread per output element with the softmax recomputed per element; `attentionGrad` runs one
 * workgroup per (sample, head): first each query row's max, normaliser and `rowsum(dP P)` into
 * scratch, then every output element from them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { normKernel } from "./wgsl_norm_attention.ts";
 *
 * // GroupNorm of [2, 4, 4, 8] in 4 groups: 8 sets of 16 positions x 2 channels.
 * const k = normKernel({ x: [2, 4, 4, 8], groups: 4, eps: 1e-5, affine: true, silu: true });
 * assert.deepEqual(k.workgroups, [8, 1, 1]);
 * assert.deepEqual(k.uniforms.slice(0, 5), [8, 4, 16, 8, 2]);
 * ```
 * @module
 */
import { f32Bits, header, sizeOf } from "./wgsl_common.ts";
import type { KernelBody } from "./wgsl_elementwise.ts";

const NWG = 64;

/** Workgroup-wide sum (all 64 threads must call it, in uniform control flow). */
const REDUCE = `
var<workgroup> red: array<f32, ${NWG}>;
fn wg_sum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${NWG / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
fn sigm(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
`;

/** Set `wid.x` of x `[B, N, C]` in G groups: element e of the set at `base + (e / cg) C + e % cg`. */
const SET = `
@compute @workgroup_size(${NWG}) fn main(@builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lidv: vec3<u32>) {
  let lid = lidv.x;
  let G = P(1); let N = P(2); let C = P(3); let cg = P(4); let cnt = N * cg;
  let g = wid.x % G;
  let base = (wid.x / G) * N * C + g * cg;
`;

/** Mean and rstd of the set, of input `src`. */
const MOMENTS = (src: string) => `
  var acc = 0.0;
  for (var e = lid; e < cnt; e += ${NWG}u) { acc += ${src}[base + (e / cg) * C + e % cg]; }
  let mean = wg_sum(acc, lid) / f32(cnt);
  var acc2 = 0.0;
  for (var e = lid; e < cnt; e += ${NWG}u) {
    let d = ${src}[base + (e / cg) * C + e % cg] - mean;
    acc2 += d * d;
  }
  let rstd = 1.0 / sqrt(wg_sum(acc2, lid) / f32(cnt) + F(5));
`;

/** A norm over sets of `x` viewed `[B, N, C]` in `groups` groups of channels. */
export interface NormSizes {
  x: readonly number[];
  /** Groups of the last axis; a layer norm passes 0 (each row one set). */
  groups: number;
  eps: number;
  affine: boolean;
  silu?: boolean;
}

function normWords(s: NormSizes): { words: number[]; sets: number } {
  const c = s.x.at(-1)!;
  const layer = s.groups === 0;
  const b = layer ? sizeOf(s.x) / c : s.x[0];
  const n = layer ? 1 : sizeOf(s.x) / (s.x[0] * c);
  const g = layer ? 1 : s.groups;
  const sets = b * g;
  if (sets > 65535) throw new Error(`wgsl norm: ${sets} sets exceed one grid dimension`);
  return { words: [sets, g, n, c, c / g, f32Bits(s.eps)], sets };
}

/**
 * `groupNorm` (`groups` > 0) or `layerNorm` (`groups` 0), optionally affine then SiLU.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { normKernel } from "./wgsl_norm_attention.ts";
 *
 * // LayerNorm of [2, 3, 8]: six rows, one set each.
 * assert.deepEqual(normKernel({ x: [2, 3, 8], groups: 0, eps: 1e-5, affine: false }).workgroups, [
 *   6,
 *   1,
 *   1,
 * ]);
 * ```
 */
export function normKernel(s: NormSizes): KernelBody {
  const { words, sets } = normWords(s);
  let y = "(in0[off] - mean) * rstd";
  const lines = [`    var y = ${y};`];
  if (s.affine) lines.push(`    y = y * in1[g * cg + e % cg] + in2[g * cg + e % cg];`);
  if (s.silu) lines.push(`    y = y * sigm(y);`);
  y = lines.join("\n");
  const wgsl = header(s.affine ? 3 : 1) + REDUCE + SET + MOMENTS("in0") +
    `  for (var e = lid; e < cnt; e += ${NWG}u) {
    let off = base + (e / cg) * C + e % cg;
${y}
    out[off] = y;
  }
}
`;
  return { wgsl, uniforms: words, workgroups: [sets, 1, 1] };
}

/**
 * `groupNormGrad` / `layerNormGrad` (inputs dy, x, gamma?): per set,
 * `dx = rstd (g - mean(g) - xhat mean(g xhat))` with `g = dy gamma`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { normGradKernel } from "./wgsl_norm_attention.ts";
 *
 * const k = normGradKernel({ x: [1, 2, 2, 4], groups: 2, eps: 1e-5, affine: true });
 * assert.ok(k.wgsl.includes("in2[ch]"));
 * ```
 */
export function normGradKernel(s: NormSizes): KernelBody {
  const { words, sets } = normWords(s);
  const gv = s.affine ? "in0[off] * in2[ch]" : "in0[off]";
  const wgsl = header(s.affine ? 3 : 2) + REDUCE + SET + MOMENTS("in1") + `
  var sg = 0.0; var sgx = 0.0;
  for (var e = lid; e < cnt; e += ${NWG}u) {
    let off = base + (e / cg) * C + e % cg; let ch = g * cg + e % cg;
    let gv = ${gv};
    sg += gv;
    sgx += gv * (in1[off] - mean) * rstd;
  }
  let mg = wg_sum(sg, lid) / f32(cnt);
  let mgx = wg_sum(sgx, lid) / f32(cnt);
  for (var e = lid; e < cnt; e += ${NWG}u) {
    let off = base + (e / cg) * C + e % cg; let ch = g * cg + e % cg;
    let gv = ${gv};
    out[off] = rstd * (gv - mg - (in1[off] - mean) * rstd * mgx);
  }
}
`;
  return { wgsl, uniforms: words, workgroups: [sets, 1, 1] };
}

/** Attention sizes: q `[B, Tq, Dq]`, k `[B, Tk, Dq]`, v `[B, Tk, Dv]`. */
export interface AttentionSizes {
  q: readonly number[];
  k: readonly number[];
  v: readonly number[];
  heads: number;
  causal: boolean;
  mask: boolean;
}

function attnWords(s: AttentionSizes): number[] {
  const [b, tq, dq] = s.q, tk = s.k[1], dv = s.v[2];
  return [0, b, tq, tk, dq, dv, s.heads, s.causal ? 1 : 0, f32Bits(1 / Math.sqrt(dq / s.heads))];
}

/** `score(b, qi, j, h)`: the scaled, masked logit of query qi and key j in head h. */
const SCORE = (mask: string | undefined) => `
fn score(b: u32, qi: u32, j: u32, h: u32) -> f32 {
  let Tq = P(2); let Tk = P(3); let Dq = P(4); let dh = Dq / P(6);
  let qb = (b * Tq + qi) * Dq + h * dh; let kb = (b * Tk + j) * Dq + h * dh;
  var s = 0.0;
  for (var e = 0u; e < dh; e++) { s += in0[qb + e] * in1[kb + e]; }
  s = s * F(8);
  if (P(7) == 1u && j > qi) { s += -1e9; }
  ${mask ? `if (${mask}[b * Tk + j] == 0.0) { s += -1e9; }` : ""}
  return s;
}
`;

/** Value columns one attention thread accumulates (a private array of this many floats). */
const ATTN_CHUNK = 32;

/**
 * `attention` (inputs q, k, v, keyMask?) in the flash style: one thread per (sample, query,
 * head, chunk of up to 32 value columns) walks the keys once with an online softmax (running
 * maximum and sum, the partial output rescaled when the maximum grows), so each score is
 * computed once per chunk rather than once per output element, and no score matrix is stored.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { attentionKernel } from "./wgsl_norm_attention.ts";
 *
 * const s = { q: [1, 4, 8], k: [1, 3, 8], v: [1, 3, 6], heads: 2, causal: false, mask: false };
 * // 1 sample x 4 queries x 2 heads x 1 chunk (3 value columns per head) threads
 * assert.deepEqual(attentionKernel(s).uniforms.slice(0, 10), [8, 1, 4, 3, 8, 6, 2, 0, 1056964608, 1]);
 * ```
 */
export function attentionKernel(s: AttentionSizes): KernelBody {
  const words = attnWords(s);
  const dhv = s.v[2] / s.heads;
  const chunks = Math.ceil(dhv / ATTN_CHUNK);
  const n = s.q[0] * s.q[1] * s.heads * chunks;
  words[0] = n;
  words[9] = chunks;
  // The chunk's sums as named scalars (no private array indexed in a loop: a software driver
  // would keep it in memory and gather per lane).
  const ds = [...Array(ATTN_CHUNK).keys()];
  const wgsl = header(s.mask ? 4 : 3) + SCORE(s.mask ? "in3" : undefined) + `
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= P(0)) { return; }
  let Tq = P(2); let Tk = P(3); let Dv = P(5); let H = P(6); let dhv = Dv / H; let NC = P(9);
  let c = i % NC; var r = i / NC; let h = r % H; r = r / H; let qi = r % Tq; let b = r / Tq;
  let d0 = c * ${ATTN_CHUNK}u; let cw = min(${ATTN_CHUNK}u, dhv - d0);
  var m = -3.0e38; var l = 0.0;
${ds.map((d) => `  var a${d} = 0.0;`).join("\n")}
  for (var j = 0u; j < Tk; j++) {
    let sc = score(b, qi, j, h);
    let mNew = max(m, sc);
    let corr = exp(m - mNew); let p = exp(sc - mNew);
    l = l * corr + p;
    let vb = (b * Tk + j) * Dv + h * dhv + d0;
${ds.map((d) => `    if (${d}u < cw) { a${d} = a${d} * corr + p * in2[vb + ${d}u]; }`).join("\n")}
    m = mNew;
  }
  let ob = (b * Tq + qi) * Dv + h * dhv + d0;
${ds.map((d) => `  if (${d}u < cw) { out[ob + ${d}u] = a${d} / l; }`).join("\n")}
}
`;
  const groups = Math.ceil(n / 64);
  if (groups > 65535) throw new Error(`wgsl attention: ${n} threads exceed one grid dimension`);
  return { wgsl, uniforms: words, workgroups: [groups, 1, 1] };
}

/**
 * `attentionGrad` wrt `q`, `k` or `v` (inputs q, k, v, dy, keyMask?): one workgroup per
 * (sample, head) with `3 Tq` scratch floats per (sample, head). `"all"` (the fused
 * `attentionGradAll`) writes dq to `out`, dk to `out1`, dv to `out2` from one scratch pass.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { attentionGradKernel } from "./wgsl_norm_attention.ts";
 *
 * const s = { q: [2, 4, 8], k: [2, 3, 8], v: [2, 3, 8], heads: 2, causal: true, mask: false };
 * const k = attentionGradKernel(s, "k");
 * assert.deepEqual([k.workgroups[0], k.scratch], [4, 2 * 2 * 4 * 3]);
 * ```
 */
export function attentionGradKernel(
  s: AttentionSizes,
  wrt: "q" | "k" | "v" | "all",
): KernelBody {
  const words = attnWords(s);
  const [b, tq] = s.q;
  const needR = wrt !== "v";
  // dP(qi, j) = dy_i . v_j over the head's value width.
  const dp = `fn dP(b: u32, qi: u32, j: u32, h: u32) -> f32 {
  let Tq = P(2); let Tk = P(3); let Dv = P(5); let dh = Dv / P(6);
  let yb = (b * Tq + qi) * Dv + h * dh; let vb = (b * Tk + j) * Dv + h * dh;
  var s = 0.0;
  for (var e = 0u; e < dh; e++) { s += in3[yb + e] * in2[vb + e]; }
  return s;
}
`;
  // Each thread owns one (row, chunk of up to ATTN_CHUNK output columns) and walks the other
  // side once: the probability and dS = P (dP - rowsum(dP P)) of each (query, key) pair are
  // computed once per chunk, not once per output element (dh times fewer score evaluations).
  const ds = [...Array(ATTN_CHUNK).keys()];
  const phase = (w: "q" | "k" | "v", out: string) => {
    // Rows: queries for dq, keys for dk and dv; the read side and its width.
    const rows = w === "q" ? "Tq" : "Tk", width = w === "v" ? "dhv" : "dhq";
    const other = w === "q" ? "Tk" : "Tq";
    const pair = w === "q" ? "let qi = r; let j = o;" : "let qi = o; let j = r;";
    const weight = w === "v" ? "p" : "p * (dP(b, qi, j, h) - scr[st + 2u])";
    const src = w === "q"
      ? "in1[(b * Tk + j) * Dq + h * dhq + d0"
      : w === "k"
      ? "in0[(b * Tq + qi) * Dq + h * dhq + d0"
      : "in3[(b * Tq + qi) * Dv + h * dhv + d0";
    const dst = w === "v"
      ? `(b * Tk + r) * Dv + h * dhv + d0`
      : w === "q"
      ? `(b * Tq + r) * Dq + h * dhq + d0`
      : `(b * Tk + r) * Dq + h * dhq + d0`;
    const scale = w === "v" ? "" : " * F(8)";
    return `  {
    let nc = (${width} + ${ATTN_CHUNK - 1}u) / ${ATTN_CHUNK}u;
    for (var e = lid; e < ${rows} * nc; e += 64u) {
      let r = e / nc; let d0 = (e % nc) * ${ATTN_CHUNK}u; let cw = min(${ATTN_CHUNK}u, ${width} - d0);
${ds.map((d) => `      var a${d} = 0.0;`).join("\n")}
      for (var o = 0u; o < ${other}; o++) {
        ${pair}
        let st = sb + qi * 3u;
        let p = exp(score(b, qi, j, h) - scr[st]) / scr[st + 1u];
        let wt = ${weight};
${ds.map((d) => `        if (${d}u < cw) { a${d} += wt * ${src} + ${d}u]; }`).join("\n")}
      }
${ds.map((d) => `      if (${d}u < cw) { ${out}[${dst} + ${d}u] = a${d}${scale}; }`).join("\n")}
    }
  }
`;
  };
  const phase2 = wrt === "all"
    ? phase("q", "out") + phase("k", "out1") + phase("v", "out2")
    : phase(wrt, "out");
  const extra = wrt === "all" ? 2 : 0;
  const wgsl = header(s.mask ? 5 : 4, true, extra) + SCORE(s.mask ? "in4" : undefined) + dp + `
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lidv: vec3<u32>) {
  let lid = lidv.x; let H = P(6);
  let b = wid.x / H; let h = wid.x % H;
  let Tq = P(2); let Tk = P(3); let Dq = P(4); let Dv = P(5);
  let dhq = Dq / H; let dhv = Dv / H;
  let sb = wid.x * Tq * 3u;
  for (var qi = lid; qi < Tq; qi += 64u) {
    var m = -3.0e38;
    for (var j = 0u; j < Tk; j++) { m = max(m, score(b, qi, j, h)); }
    var l = 0.0; var r = 0.0;
    for (var j = 0u; j < Tk; j++) {
      let p = exp(score(b, qi, j, h) - m);
      l += p;
      ${needR ? "r += p * dP(b, qi, j, h);" : ""}
    }
    scr[sb + qi * 3u] = m;
    scr[sb + qi * 3u + 1u] = l;
    scr[sb + qi * 3u + 2u] = r / l;
  }
  storageBarrier();
  workgroupBarrier();
${phase2}
}
`;
  const groups = b * s.heads;
  if (groups > 65535) throw new Error(`wgsl attentionGrad: ${groups} (sample, head) pairs`);
  return {
    wgsl,
    uniforms: words,
    workgroups: [groups, 1, 1],
    scratch: groups * tq * 3,
    ...(extra ? { extraOutputs: extra } : {}),
  };
}

/**
 * The fused `normBackward` (inputs dy, x, gamma, beta when `silu`): per set, recompute the
 * statistics, `xhat`, and with `silu` the pre-activation `xhat gamma + beta` and
 * `d = dy silu'(pre)` (else `d = dy`); write `dx` (as `normGradKernel`) to `out`, `d xhat` to
 * `out1` and, with `silu`, `d` to `out2`: the inputs of the affine gradients' sums.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { normBackwardKernel } from "./wgsl_norm_attention.ts";
 *
 * const k = normBackwardKernel({ x: [1, 2, 2, 4], groups: 2, eps: 1e-5, affine: true, silu: true });
 * assert.equal(k.extraOutputs, 2);
 * ```
 */
export function normBackwardKernel(s: NormSizes): KernelBody {
  const { words, sets } = normWords(s);
  const d = s.silu
    ? `let pre = xh * in2[ch] + in3[ch]; let sg1 = sigm(pre);
    let d = in0[off] * sg1 * (1.0 + pre * (1.0 - sg1));`
    : "let d = in0[off];";
  const wgsl = header(s.silu ? 4 : 3, false, s.silu ? 2 : 1) + REDUCE + SET + MOMENTS("in1") + `
  var sg = 0.0; var sgx = 0.0;
  for (var e = lid; e < cnt; e += ${NWG}u) {
    let off = base + (e / cg) * C + e % cg; let ch = g * cg + e % cg;
    let xh = (in1[off] - mean) * rstd;
    ${d}
    let gv = d * in2[ch];
    sg += gv;
    sgx += gv * xh;
  }
  let mg = wg_sum(sg, lid) / f32(cnt);
  let mgx = wg_sum(sgx, lid) / f32(cnt);
  for (var e = lid; e < cnt; e += ${NWG}u) {
    let off = base + (e / cg) * C + e % cg; let ch = g * cg + e % cg;
    let xh = (in1[off] - mean) * rstd;
    ${d}
    let gv = d * in2[ch];
    out[off] = rstd * (gv - mg - xh * mgx);
    out1[off] = d * xh;
    ${s.silu ? "out2[off] = d;" : ""}
  }
}
`;
  return { wgsl, uniforms: words, workgroups: [sets, 1, 1], extraOutputs: s.silu ? 2 : 1 };
}

/**
 * The fused `sumRows2` (inputs a, b of one shape `[..., C]`): the column sums of both, `a`'s to
 * `out` and `b`'s to `out1`, one 64-thread workgroup per column.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sumRows2Kernel } from "./wgsl_norm_attention.ts";
 *
 * assert.deepEqual(sumRows2Kernel([2, 3, 8]).workgroups, [8, 1, 1]);
 * ```
 */
export function sumRows2Kernel(x: readonly number[]): KernelBody {
  const c = x.at(-1)!, rows = sizeOf(x) / c;
  if (c > 65535) throw new Error(`wgsl sumRows2: ${c} columns exceed one grid dimension`);
  const wgsl = header(2, false, 1) + REDUCE + `
@compute @workgroup_size(${NWG}) fn main(@builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lidv: vec3<u32>) {
  let lid = lidv.x; let C = P(0); let rows = P(1); let c = wid.x;
  var a = 0.0; var b = 0.0;
  for (var r = lid; r < rows; r += ${NWG}u) { a += in0[r * C + c]; b += in1[r * C + c]; }
  let sa = wg_sum(a, lid);
  let sb = wg_sum(b, lid);
  if (lid == 0u) { out[c] = sa; out1[c] = sb; }
}
`;
  return { wgsl, uniforms: [c, rows], workgroups: [c, 1, 1], extraOutputs: 1 };
}
