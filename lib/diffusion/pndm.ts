/**
 * PNDM in its PLMS form (diffusers `PNDMScheduler` with `skip_prk_steps`), the Stable Diffusion v1
 * default. Reproduces diffusers' quirks: the timestep list repeats its second entry; the first
 * step is plain Euler from t0 to t1; the second call (at the repeated t1) redoes that same step
 * from the saved x_t0 with the average of both predictions (a Heun-like warm-up); then
 * Adams-Bashforth of order 2, 3 and 4 on the stored predictions. With v-prediction the raw v
 * outputs are combined and then converted to epsilon with the current sample, as diffusers does;
 * that loses PLMS's high order (on a Gaussian toy at 50 steps the endpoint error is ~0.2 for v
 * against ~0.002 for epsilon), so prefer DPM-Solver++ for v models.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { samplePndm } from "./pndm.ts";
 * import { makeSchedule, SD_SCHEDULER_CONFIG } from "./schedule.ts";
 *
 * // A model predicting no noise: PLMS only rescales x, by sqrt(final abar / first abar).
 * const zero = (x: Float32Array) => Promise.resolve(new Float32Array(x.length));
 * const s = makeSchedule(SD_SCHEDULER_CONFIG);
 * const x = await samplePndm(zero, new Float32Array([1, 2]), s, { steps: 10 });
 * const k = Math.sqrt(s.finalAlphaCumprod / s.alphasCumprod[901]); // first of [901, 801, 801, ...]
 * assert.ok(Math.abs(x[0] - k) < 1e-4 && Math.abs(x[1] - 2 * k) < 1e-4);
 * ```
 * @module
 */

import { callModel, plan, scaled, vpNoise } from "./sampler_common.ts";
import type { ModelFn, NoiseSchedule, SamplerOptions } from "./types.ts";

/**
 * PNDM/PLMS sampler (deterministic; `steps` + 1 model calls).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { samplePndm } from "./pndm.ts";
 * import { makeSchedule } from "./schedule.ts";
 *
 * const zero = (x: Float32Array) => Promise.resolve(new Float32Array(x.length));
 * const seen: number[] = [];
 * await samplePndm(zero, new Float32Array(4), makeSchedule(), {
 *   steps: 4,
 *   onStep: (_i, _n, t) => seen.push(t),
 * });
 * assert.deepEqual(seen, [751, 501, 501, 251, 1]); // steps + 1 model calls
 * ```
 */
export async function samplePndm(
  model: ModelFn,
  x: Float32Array,
  schedule: NoiseSchedule,
  opts: SamplerOptions,
): Promise<Float32Array> {
  const p = plan("pndm", x, schedule, opts);
  const ac = schedule.alphasCumprod;
  const ratio = Math.floor(schedule.numTrainTimesteps / opts.steps);
  const ts = p.all.slice(p.start);
  const n = x.length;
  let cur = p.img2img ? vpNoise(p.img2img.x0, p.img2img.noise, ac[ts[0]]) : scaled(x, 1);
  const ets: Float32Array[] = [];
  let saved: Float64Array | null = null; // diffusers' cur_sample
  for (let counter = 0; counter < ts.length; counter++) {
    const tIn = ts[counter];
    const out = await callModel("pndm", model, cur, tIn);
    let t = tIn;
    let prevT = tIn - ratio;
    if (counter !== 1) {
      if (ets.length > 3) ets.shift();
      ets.push(out);
    } else {
      // Second call: redo the first step (t0 -> t1) from the saved x_t0.
      prevT = tIn;
      t = tIn + ratio;
    }
    const e = new Float64Array(n);
    let sample = cur;
    const m = ets.length;
    if (m === 1 && counter === 0) {
      e.set(out);
      saved = cur;
    } else if (m === 1 && counter === 1) {
      for (let k = 0; k < n; k++) e[k] = (out[k] + ets[0][k]) / 2;
      sample = saved!;
      saved = null;
    } else if (m === 2) {
      const [a, b] = ets;
      for (let k = 0; k < n; k++) e[k] = (3 * b[k] - a[k]) / 2;
    } else if (m === 3) {
      const [a, b, c] = ets;
      for (let k = 0; k < n; k++) e[k] = (23 * c[k] - 16 * b[k] + 5 * a[k]) / 12;
    } else {
      const [a, b, c, d] = ets;
      for (let k = 0; k < n; k++) e[k] = (55 * d[k] - 59 * c[k] + 37 * b[k] - 9 * a[k]) / 24;
    }
    cur = prevSample(schedule, sample, e, t, prevT, ac);
    opts.onStep?.(counter, ts.length, tIn);
  }
  return Float32Array.from(cur);
}

/** PNDM's transfer x_t -> x_prev given an epsilon (or v) estimate (Liu et al. eq. 9). */
function prevSample(
  schedule: NoiseSchedule,
  sample: Float64Array,
  e: Float64Array,
  t: number,
  prevT: number,
  ac: Float64Array,
): Float64Array {
  const aT = ac[t];
  const aP = prevT >= 0 ? ac[prevT] : schedule.finalAlphaCumprod;
  const bT = 1 - aT;
  const bP = 1 - aP;
  if (schedule.predictionType === "v_prediction") {
    for (let k = 0; k < e.length; k++) e[k] = Math.sqrt(aT) * e[k] + Math.sqrt(bT) * sample[k];
  }
  const cs = Math.sqrt(aP / aT);
  const denom = aT * Math.sqrt(bP) + Math.sqrt(aT * bT * aP);
  const ce = (aP - aT) / denom;
  const out = new Float64Array(sample.length);
  for (let k = 0; k < out.length; k++) out[k] = cs * sample[k] - ce * e[k];
  return out;
}
