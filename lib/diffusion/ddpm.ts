/**
 * Ancestral DDPM sampling as diffusers' `DDPMScheduler` (variance `fixed_small`), with fewer
 * inference steps than training steps: each step jumps to the next timestep in the list.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sampleDdpm } from "./ddpm.ts";
 * import { makeSchedule } from "./schedule.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * // The ideal denoiser for data that is all 0.5 lands on 0.5 despite DDPM's fresh noise.
 * const schedule = makeSchedule();
 * const model = (x: Float32Array, t: number) => {
 *   const ab = schedule.alphaBarAt(t);
 *   return Promise.resolve(x.map((v) => (v - Math.sqrt(ab) * 0.5) / Math.sqrt(1 - ab)));
 * };
 * const x = await sampleDdpm(model, Rng.stream(1).normal(4), schedule, { steps: 10, seed: 1 });
 * x.forEach((v) => assert.ok(Math.abs(v - 0.5) < 1e-5));
 * ```
 * @module
 */

import { callModel, clipInPlace, plan, scaled, toX0Eps, vpNoise } from "./sampler_common.ts";
import type { ModelFn, NoiseSchedule, SamplerOptions } from "./types.ts";

/**
 * DDPM sampler (stochastic; noise from the seeded sampler stream).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sampleDdpm } from "./ddpm.ts";
 * import { makeSchedule } from "./schedule.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const zero = (x: Float32Array) => Promise.resolve(new Float32Array(x.length));
 * const noise = Rng.stream(0).normal(4);
 * const a = await sampleDdpm(zero, noise, makeSchedule(), { steps: 10, seed: 0 });
 * const b = await sampleDdpm(zero, noise, makeSchedule(), { steps: 10, seed: 0 });
 * assert.deepEqual(a, b); // same seed, same sampler noise
 * ```
 */
export async function sampleDdpm(
  model: ModelFn,
  x: Float32Array,
  schedule: NoiseSchedule,
  opts: SamplerOptions,
): Promise<Float32Array> {
  const p = plan("ddpm", x, schedule, opts);
  const ac = schedule.alphasCumprod;
  const cfg = schedule.config;
  const ts = p.all.slice(p.start);
  let cur = p.img2img ? vpNoise(p.img2img.x0, p.img2img.noise, ac[ts[0]]) : scaled(x, 1);
  for (let i = 0; i < ts.length; i++) {
    const t = ts[i];
    const prevT = p.start + i + 1 < p.all.length ? p.all[p.start + i + 1] : -1;
    const aT = ac[t];
    const aPrev = prevT >= 0 ? ac[prevT] : 1;
    const pred = await callModel("ddpm", model, cur, t);
    const { x0 } = toX0Eps(pred, cur, aT, schedule.predictionType);
    if (cfg.clipSample) clipInPlace(x0, cfg.clipSampleRange);
    const alphaT = aT / aPrev;
    const betaT = 1 - alphaT;
    // Posterior q(x_prev | x_t, x0) mean (Ho et al. eq. 7) and fixed_small variance.
    const cx0 = Math.sqrt(aPrev) * betaT / (1 - aT);
    const cxt = Math.sqrt(alphaT) * (1 - aPrev) / (1 - aT);
    const std = t > 0 ? Math.sqrt(Math.max((1 - aPrev) / (1 - aT) * betaT, 1e-20)) : 0;
    const next = new Float64Array(cur.length);
    for (let k = 0; k < cur.length; k++) {
      next[k] = cx0 * x0[k] + cxt * cur[k] + (std > 0 ? std * p.rng.gaussian() : 0);
    }
    cur = next;
    opts.onStep?.(i, ts.length, t);
  }
  return Float32Array.from(cur);
}
