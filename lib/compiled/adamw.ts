/**
 * AdamW on packed buffers ({@link PackedBuffers}): every parameter of a compiled step updated by
 * one WGSL dispatch (two with global-norm gradient clipping), with the Adam moments and an
 * optional EMA of the weights in flat buffers of the same layout, all kept on the GPU and
 * updated in place. The per-step values (bias-corrected step size, `sqrt(1 - beta2^t)`, the
 * weight-decay factor `1 - lr wd`, the EMA decay) are four floats the caller writes once per step
 * ({@link adamWStepScalars}); everything else is fixed at build time.
 *
 * The update is lib/train's AdamW (`adamWValues`, float32 here):
 * `m' = b1 m + (1 - b1) g`, `v' = b2 v + (1 - b2) g^2`,
 * `p' = decay p - stepSize m' / (sqrt(v') / sqrtBc2 + eps)`, with `decay = 1 - lr wd` for the
 * decayed parameters (packed first: elements below `decayEnd`) and 1 for the others. With
 * clipping, `g` is first scaled by `min(1, clip / (norm + 1e-6))` of the global L2 norm
 * (lib/train's `clipGradNorm`); the EMA then moves `s' = d s + (1 - d) p'` (lib/train's `Ema`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { adamWStepScalars } from "./adamw.ts";
 *
 * // First step at lr 0.1: stepSize = lr / (1 - beta1), sqrtBc2 = sqrt(1 - beta2).
 * const s = adamWStepScalars({ t: 1, lr: 0.1, beta1: 0.9, beta2: 0.999, weightDecay: 0.01 });
 * assert.ok(Math.abs(s[0] - 1) < 1e-6 && Math.abs(s[1] - Math.sqrt(0.001)) < 1e-6);
 * assert.ok(Math.abs(s[2] - 0.999) < 1e-7);
 * ```
 * @module
 */
import type { ExtraDispatch, PackedBuffers } from "./webgpu_executor.ts";
import { f32Bits } from "./wgsl_common.ts";

/** Workgroups of the clipping norm's first pass (its partial sums). */
const PARTIALS = 256;
/** Workgroups of the update (a grid-stride loop over all elements). */
const UPDATE_GROUPS = 1024;

/** The fixed settings of {@link adamWDispatches}. */
export interface PackedAdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  /** Packed elements `[0, decayEnd)` get weight decay, the rest none. */
  decayEnd: number;
  /** Global-norm clipping threshold (undefined: no clipping, one dispatch). */
  clipNorm?: number;
  /** A buffer of EMA shadows in the packed layout, updated after the parameters. */
  ema?: GPUBuffer;
  /** Adam moments in the packed layout (zero-initialised by the caller's `createBuffer`). */
  m: GPUBuffer;
  v: GPUBuffer;
  /** Four float32 written every step: see {@link adamWStepScalars}. */
  scalars: GPUBuffer;
  /** Scratch of at least `(PARTIALS + 1) * 4` bytes for the norm (the norm lands at index 256). */
  partials: GPUBuffer;
  /**
   * Dynamic loss scaling, all on the GPU: the gradients arrive multiplied by the float32 at
   * `scale` (the loss seed the graph reads); the update divides it out, skips the whole step
   * (parameters, moments, EMA untouched) when the gradients hold an inf or NaN, and a last
   * dispatch halves the scale on such an overflow or doubles it after `growEvery` good steps
   * (bounds 2^-24, 2^24). The scale's range holds {@link LOSS_SCALE_STATE} floats
   * `[scale, applied, goodSteps, skipped]`: AdamW's step count (`applied`, skipped steps
   * excluded) then lives on the GPU, and the step scalars' first word is the plain `lr`
   * ({@link adamWStepScalars} with `gpuT`).
   */
  lossScale?: { buffer: GPUBuffer; offset: number; growEvery: number };
}

/**
 * Floats of the loss-scale state: `[scale, applied, goodSteps, skipped]` (applied: steps not
 * skipped, AdamW's step count; skipped: steps skipped for an overflow so far).
 */
export const LOSS_SCALE_STATE = 4;

/** Bytes the `partials` buffer of {@link PackedAdamWOptions} needs. */
export const ADAMW_PARTIALS_BYTES = (PARTIALS + 4) * 4;

/**
 * The four per-step floats: `[lr / (1 - b1^t), sqrt(1 - b2^t), 1 - lr wd, emaDecay]`, computed
 * in float64 as lib/train's AdamW does.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { adamWStepScalars } from "./adamw.ts";
 *
 * const s = adamWStepScalars({ t: 2, lr: 1, beta1: 0.5, beta2: 0.5, weightDecay: 0, emaDecay: 0.9 });
 * const want = [1 / 0.75, Math.sqrt(0.75), 1, 0.9].map(Math.fround);
 * assert.deepEqual(Array.from(s), want);
 * ```
 */
export function adamWStepScalars(o: {
  t: number;
  lr: number;
  beta1: number;
  beta2: number;
  weightDecay: number;
  emaDecay?: number;
  /** The step count is on the GPU (loss scaling): the first word is `lr`, the second unused. */
  gpuT?: boolean;
}): Float32Array<ArrayBuffer> {
  const bc1 = 1 - Math.pow(o.beta1, o.t), bc2 = 1 - Math.pow(o.beta2, o.t);
  const decay = o.weightDecay > 0 ? 1 - o.lr * o.weightDecay : 1;
  if (o.gpuT) return new Float32Array([o.lr, 0, decay, o.emaDecay ?? 1]);
  return new Float32Array([o.lr / bc1, Math.sqrt(bc2), decay, o.emaDecay ?? 1]);
}

const COMMON = `
struct C { n: u32, decayEnd: u32, clip: f32, b1: f32, b2: f32, eps: f32, pad0: u32, pad1: u32 };
@group(0) @binding(0) var<uniform> c: C;
var<workgroup> red: array<f32, 64>;
fn wg_sum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
`;

const NORM_WGSL = COMMON + `
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> part: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lidv: vec3<u32>) {
  let lid = lidv.x;
  var acc = 0.0;
  for (var i = wid.x * 64u + lid; i < c.n; i += ${PARTIALS * 64}u) { acc += g[i] * g[i]; }
  let s = wg_sum(acc, lid);
  if (lid == 0u) { part[wid.x] = s; }
}
`;

/** An exponent of all ones: inf or NaN (by bits: a compiler may assume finite floats). */
const NON_FINITE =
  `fn nonFinite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u; }
`;

function updateWgsl(clip: boolean, ema: boolean, scaled = false): string {
  const b = 6 + (clip || scaled ? 1 : 0) + (ema ? 1 : 0);
  const head = scaled
    ? `  var acc = 0.0;
  for (var k = lid; k < ${PARTIALS}u; k += 64u) { acc += part[k]; }
  let n2 = wg_sum(acc, lid);
  // Overflow: skip the step (the scale dispatch halves the scale).
  if (nonFinite(n2)) { return; }
  let inv = 1.0 / ls[0];
  let norm = sqrt(n2) * inv;
  coef = inv${clip ? " * min(c.clip / (norm + 1e-6), 1.0)" : ""};
  if (wid.x == 0u && lid == 0u) { part[${PARTIALS}] = norm; }
  let tt = ls[1] + 1.0;
  let stepSize = st[0] / (1.0 - pow(c.b1, tt)); let sqrtBc2 = sqrt(1.0 - pow(c.b2, tt));`
    : `${
      clip
        ? `  var acc = 0.0;
  for (var k = lid; k < ${PARTIALS}u; k += 64u) { acc += part[k]; }
  let norm = sqrt(wg_sum(acc, lid));
  coef = min(c.clip / (norm + 1e-6), 1.0);
  if (wid.x == 0u && lid == 0u) { part[${PARTIALS}] = norm; }`
        : ""
    }
  let stepSize = st[0]; let sqrtBc2 = st[1];`;
  return COMMON + NON_FINITE + `
@group(0) @binding(1) var<storage, read> st: array<f32, 4>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> p: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;
${clip || scaled ? "@group(0) @binding(6) var<storage, read_write> part: array<f32>;" : ""}
${
    ema
      ? `@group(0) @binding(${clip || scaled ? 7 : 6}) var<storage, read_write> sh: array<f32>;`
      : ""
  }
${scaled ? `@group(0) @binding(${b}) var<storage, read> ls: array<f32>;` : ""}
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lidv: vec3<u32>) {
  let lid = lidv.x;
  var coef = 1.0;
${head}
  let wd = st[2]; let ed = st[3];
  for (var i = wid.x * 64u + lid; i < c.n; i += ${UPDATE_GROUPS * 64}u) {
    let gi = g[i] * coef;
    let mi = c.b1 * m[i] + (1.0 - c.b1) * gi;
    let vi = c.b2 * v[i] + (1.0 - c.b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    let decay = select(1.0, wd, i < c.decayEnd);
    let pi = decay * p[i] - stepSize * (mi / (sqrt(vi) / sqrtBc2 + c.eps));
    p[i] = pi;
${ema ? "    sh[i] = sh[i] * ed + pi * (1.0 - ed);" : ""}
  }
}
`;
}

/** The loss-scale update: one workgroup after the parameter update (see `lossScale`). */
const SCALE_WGSL = COMMON + NON_FINITE + `
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read_write> ls: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(local_invocation_id) lidv: vec3<u32>) {
  let lid = lidv.x;
  var acc = 0.0;
  for (var k = lid; k < ${PARTIALS}u; k += 64u) { acc += part[k]; }
  let n2 = wg_sum(acc, lid);
  if (lid != 0u) { return; }
  if (nonFinite(n2)) {
    ls[0] = max(ls[0] * 0.5, 5.9604645e-8);
    ls[2] = 0.0; ls[3] = ls[3] + 1.0;
    return;
  }
  ls[1] = ls[1] + 1.0;
  ls[2] = ls[2] + 1.0;
  if (ls[2] >= f32(c.pad0)) { ls[0] = min(ls[0] * 2.0, 16777216.0); ls[2] = 0.0; }
}
`;

/**
 * Build the AdamW dispatches over `packed` (one, or two with clipping): pipelines, the constant
 * uniforms and bind groups made once; pass the result as `compileGraph`'s `after`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ADAMW_PARTIALS_BYTES, adamWDispatches, adamWStepScalars } from "./adamw.ts";
 *
 * const adapter = await navigator.gpu?.requestAdapter();
 * if (adapter) {
 *   const device = await adapter.requestDevice();
 *   const U = GPUBufferUsage, S = U.STORAGE | U.COPY_DST | U.COPY_SRC;
 *   const buf = (n: number) => device.createBuffer({ size: 4 * n, usage: S });
 *   const packed = { params: buf(64), grads: buf(64), offsets: new Map(), elements: 64 };
 *   device.queue.writeBuffer(packed.params, 0, new Float32Array(64).fill(1));
 *   device.queue.writeBuffer(packed.grads, 0, new Float32Array(64).fill(0.5));
 *   const scalars = buf(4), m = buf(64), v = buf(64);
 *   const partials = device.createBuffer({ size: ADAMW_PARTIALS_BYTES, usage: S });
 *   const o = { beta1: 0.9, beta2: 0.999, eps: 1e-8, decayEnd: 64, m, v, scalars, partials };
 *   const [d] = await adamWDispatches(device, packed, o);
 *   const st = adamWStepScalars({ t: 1, lr: 0.1, beta1: 0.9, beta2: 0.999, weightDecay: 0 });
 *   device.queue.writeBuffer(scalars, 0, st);
 *   const enc = device.createCommandEncoder(), pass = enc.beginComputePass();
 *   pass.setPipeline(d.pipeline);
 *   pass.setBindGroup(0, d.bindGroup);
 *   pass.dispatchWorkgroups(...d.workgroups);
 *   pass.end();
 *   const rb = device.createBuffer({ size: 4, usage: U.MAP_READ | U.COPY_DST });
 *   enc.copyBufferToBuffer(packed.params, 0, rb, 0, 4);
 *   device.queue.submit([enc.finish()]);
 *   await rb.mapAsync(GPUMapMode.READ);
 *   assert.ok(Math.abs(new Float32Array(rb.getMappedRange())[0] - 0.9) < 1e-5); // p - lr
 *   device.destroy();
 * }
 * ```
 */
export async function adamWDispatches(
  device: GPUDevice,
  packed: PackedBuffers,
  o: PackedAdamWOptions,
): Promise<ExtraDispatch[]> {
  const clip = o.clipNorm !== undefined;
  const ls = o.lossScale;
  if (ls && !(Number.isInteger(ls.growEvery) && ls.growEvery > 0)) {
    throw new Error(`adamw: lossScale.growEvery must be an integer > 0, got ${ls.growEvery}`);
  }
  const words = new Uint32Array([
    packed.elements,
    o.decayEnd,
    f32Bits(o.clipNorm ?? 0),
    f32Bits(o.beta1),
    f32Bits(o.beta2),
    f32Bits(o.eps),
    ls?.growEvery ?? 0,
    0,
  ]);
  const uniforms = device.createBuffer({
    size: words.byteLength,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    label: "adamw constants",
  });
  device.queue.writeBuffer(uniforms, 0, words);
  device.pushErrorScope("validation");
  type Res = GPUBuffer | GPUBufferBinding;
  const make = (code: string, resources: Res[], groups: number): ExtraDispatch => {
    const module = device.createShaderModule({ code, label: "adamw" });
    const pipeline = device.createComputePipeline({
      layout: "auto",
      compute: { module, entryPoint: "main" },
      label: "adamw",
    });
    const bindGroup = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: resources.map((r, binding) => ({
        binding,
        resource: r instanceof GPUBuffer ? { buffer: r } : r,
      })),
    });
    return { pipeline, bindGroup, workgroups: [groups, 1, 1] };
  };
  const out: ExtraDispatch[] = [];
  if (clip || ls) out.push(make(NORM_WGSL, [uniforms, packed.grads, o.partials], PARTIALS));
  const res: Res[] = [uniforms, o.scalars, packed.grads, packed.params, o.m, o.v];
  if (clip || ls) res.push(o.partials);
  if (o.ema) res.push(o.ema);
  const scale = ls && { buffer: ls.buffer, offset: ls.offset, size: 4 * LOSS_SCALE_STATE };
  if (ls) res.push(scale!);
  out.push(make(updateWgsl(clip, !!o.ema, !!ls), res, UPDATE_GROUPS));
  if (ls) out.push(make(SCALE_WGSL, [uniforms, o.partials, scale!], 1));
  const err = await device.popErrorScope();
  if (err) throw new Error(`adamw: pipeline failed: ${err.message}`);
  return out;
}
