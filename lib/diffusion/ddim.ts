/**
 * DDIM sampling (diffusers `DDIMScheduler`, with `eta`) and its deterministic inversion.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ddimInvert, sampleDdim } from "./ddim.ts";
 * import { makeSchedule } from "./schedule.ts";
 *
 * // A model that predicts no noise: DDIM then only rescales, so inversion undoes sampling exactly.
 * const zero = (x: Float32Array) => Promise.resolve(new Float32Array(x.length));
 * const schedule = makeSchedule();
 * const latent = new Float32Array([0.1, -0.2, 0.3, 0.4]);
 * const z = await ddimInvert(zero, latent, schedule, { steps: 10 }); // back to noise
 * const x = await sampleDdim(zero, z, schedule, { steps: 10, eta: 0 });
 * x.forEach((v, i) => assert.ok(Math.abs(v - latent[i]) < 1e-6));
 * ```
 * @module
 */

import { callModel, clipInPlace, plan, scaled, toX0Eps, vpNoise } from "./sampler_common.ts";
import { timesteps } from "./timesteps.ts";
import type { ModelFn, NoiseSchedule, SamplerOptions } from "./types.ts";

/** diffusers DDIM always steps back by `N // steps`, whatever the spacing. */
function prevAlpha(schedule: NoiseSchedule, t: number, steps: number): number {
  const prevT = t - Math.floor(schedule.numTrainTimesteps / steps);
  return prevT >= 0 ? schedule.alphasCumprod[prevT] : schedule.finalAlphaCumprod;
}

/**
 * DDIM sampler. `eta` = 0 (default) is deterministic; `eta` > 0 draws noise from the sampler stream.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sampleDdim } from "./ddim.ts";
 * import { makeSchedule } from "./schedule.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * // The ideal denoiser for data that is all 0.5: eps = (x - sqrt(abar) 0.5) / sqrt(1 - abar).
 * const schedule = makeSchedule({ setAlphaToOne: true });
 * const model = (x: Float32Array, t: number) => {
 *   const ab = schedule.alphaBarAt(t);
 *   return Promise.resolve(x.map((v) => (v - Math.sqrt(ab) * 0.5) / Math.sqrt(1 - ab)));
 * };
 * const x = await sampleDdim(model, Rng.stream(1).normal(4), schedule, {
 *   steps: 10,
 *   eta: 1,
 *   seed: 4,
 * });
 * x.forEach((v) => assert.ok(Math.abs(v - 0.5) < 1e-5));
 * ```
 */
export async function sampleDdim(
  model: ModelFn,
  x: Float32Array,
  schedule: NoiseSchedule,
  opts: SamplerOptions,
): Promise<Float32Array> {
  const p = plan("ddim", x, schedule, opts);
  const eta = opts.eta ?? 0;
  if (!(eta >= 0)) throw new Error(`ddim: eta must be >= 0, got ${opts.eta}`);
  const ac = schedule.alphasCumprod;
  const cfg = schedule.config;
  const ts = p.all.slice(p.start);
  let cur = p.img2img ? vpNoise(p.img2img.x0, p.img2img.noise, ac[ts[0]]) : scaled(x, 1);
  for (let i = 0; i < ts.length; i++) {
    const t = ts[i];
    const aT = ac[t];
    const aPrev = prevAlpha(schedule, t, opts.steps);
    const pred = await callModel("ddim", model, cur, t);
    const { x0, eps } = toX0Eps(pred, cur, aT, schedule.predictionType);
    if (cfg.clipSample) clipInPlace(x0, cfg.clipSampleRange);
    // Song et al. eq. 16: sigma_t = eta * sqrt((1-a_prev)/(1-a_t)) * sqrt(1 - a_t/a_prev).
    const variance = (1 - aPrev) / (1 - aT) * (1 - aT / aPrev);
    const std = eta * Math.sqrt(variance);
    const cDir = Math.sqrt(Math.max(1 - aPrev - std * std, 0));
    const sa = Math.sqrt(aPrev);
    const next = new Float64Array(cur.length);
    for (let k = 0; k < cur.length; k++) {
      next[k] = sa * x0[k] + cDir * eps[k] + (eta > 0 ? std * p.rng.gaussian() : 0);
    }
    cur = next;
    opts.onStep?.(i, ts.length, t);
  }
  return Float32Array.from(cur);
}

/**
 * Deterministic DDIM (eta = 0) run backwards: maps a sample at the final alpha-bar (what
 * {@link sampleDdim} returns) to noise at the first timestep. Each backward step is the exact
 * algebraic inverse of the matching forward step, evaluating the model at the less noisy state
 * with the step's timestep, so for a model whose output does not depend on x the round trip
 * invert -> sample returns the input to float precision. `opts.strength` is not supported.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ddimInvert, sampleDdim } from "./ddim.ts";
 * import { makeSchedule } from "./schedule.ts";
 *
 * const zero = (x: Float32Array) => Promise.resolve(new Float32Array(x.length));
 * const schedule = makeSchedule();
 * const latent = new Float32Array([0.5, -1, 2]);
 * const z = await ddimInvert(zero, latent, schedule, { steps: 5 });
 * const back = await sampleDdim(zero, z, schedule, { steps: 5 }); // ~ latent
 * back.forEach((v, i) => assert.ok(Math.abs(v - latent[i]) < 1e-5));
 * ```
 */
export async function ddimInvert(
  model: ModelFn,
  x0: Float32Array,
  schedule: NoiseSchedule,
  opts: SamplerOptions,
): Promise<Float32Array> {
  if (opts.strength !== undefined) throw new Error("ddimInvert: strength is not supported");
  if (!(x0 instanceof Float32Array) || x0.length === 0) {
    throw new Error("ddimInvert: x0 must be a non-empty Float32Array");
  }
  const cfg = opts.timestepSpacing
    ? { ...schedule.config, timestepSpacing: opts.timestepSpacing }
    : schedule.config;
  const ts = timesteps("ddim", opts.steps, cfg);
  const ac = schedule.alphasCumprod;
  let cur = scaled(x0, 1);
  for (let j = ts.length - 1, i = 0; j >= 0; j--, i++) {
    const t = ts[j];
    const aT = ac[t];
    const aPrev = prevAlpha(schedule, t, opts.steps);
    const pred = await callModel("ddimInvert", model, cur, t);
    // The model's eps at timestep t, read off at the current (less noisy) state.
    const { eps } = toX0Eps(pred, cur, aT, schedule.predictionType);
    const sPrev = Math.sqrt(1 - aPrev);
    const ratio = Math.sqrt(aT / aPrev);
    const sT = Math.sqrt(1 - aT);
    const next = new Float64Array(cur.length);
    for (let k = 0; k < cur.length; k++) {
      next[k] = ratio * (cur[k] - sPrev * eps[k]) + sT * eps[k];
    }
    cur = next;
    opts.onStep?.(i, ts.length, t);
  }
  return Float32Array.from(cur);
}
