/**
 * Euler sampling in sigma space as diffusers' `EulerDiscreteScheduler` (no churn): sigmas are
 * `sqrt((1-abar)/abar)` interpolated at the (float) timesteps, the state is `x0 + sigma * eps`,
 * the model sees `x / sqrt(sigma^2 + 1)` (scale_model_input), and the initial noise is scaled by
 * `init_noise_sigma` (the largest sigma for linspace/trailing spacing, `sqrt(max^2 + 1)` for
 * leading).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sampleEuler } from "./euler.ts";
 * import { makeSchedule } from "./schedule.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * // The ideal denoiser for data that is all 0.5 (Euler hands the model VP-scaled x at float t).
 * const schedule = makeSchedule();
 * const model = (x: Float32Array, t: number) => {
 *   const ab = schedule.alphaBarAt(t);
 *   return Promise.resolve(x.map((v) => (v - Math.sqrt(ab) * 0.5) / Math.sqrt(1 - ab)));
 * };
 * const x = await sampleEuler(model, Rng.stream(1).normal(4), schedule, { steps: 10 });
 * x.forEach((v) => assert.ok(Math.abs(v - 0.5) < 1e-5));
 * ```
 * @module
 */

import { callModel, plan } from "./sampler_common.ts";
import { spacingFor } from "./timesteps.ts";
import type { ModelFn, NoiseSchedule, SamplerOptions } from "./types.ts";

/**
 * Euler sampler (deterministic).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sampleEuler } from "./euler.ts";
 * import { makeSchedule } from "./schedule.ts";
 *
 * const seen: number[] = [];
 * const zero = (
 *   x: Float32Array,
 *   t: number,
 * ) => (seen.push(t), Promise.resolve(new Float32Array(x.length)));
 * await sampleEuler(zero, new Float32Array(4), makeSchedule(), {
 *   steps: 5,
 *   timestepSpacing: "trailing",
 * });
 * assert.deepEqual(seen, [999, 799, 599, 399, 199]);
 * ```
 */
export async function sampleEuler(
  model: ModelFn,
  x: Float32Array,
  schedule: NoiseSchedule,
  opts: SamplerOptions,
): Promise<Float32Array> {
  const p = plan("euler", x, schedule, opts);
  const sigmas = [...p.all.map((t) => schedule.sigmaAt(t)), 0];
  const spacing = opts.timestepSpacing ?? spacingFor("euler", schedule.config);
  const maxSigma = Math.max(...sigmas);
  const n = x.length;
  let cur = new Float64Array(n);
  if (p.img2img) {
    // diffusers' Euler add_noise: x0 + sigma * noise (sigma space, unscaled).
    const s = sigmas[p.start];
    for (let k = 0; k < n; k++) cur[k] = p.img2img.x0[k] + s * p.img2img.noise[k];
  } else {
    const init = spacing === "leading" ? Math.sqrt(maxSigma * maxSigma + 1) : maxSigma;
    for (let k = 0; k < n; k++) cur[k] = x[k] * init;
  }
  const total = p.all.length - p.start;
  for (let i = p.start; i < p.all.length; i++) {
    const t = p.all[i];
    const sigma = sigmas[i];
    const c = 1 / Math.sqrt(sigma * sigma + 1);
    const pred = await callModel("euler", model, scale(cur, c), t);
    const dt = sigmas[i + 1] - sigma;
    const next = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      const x0 = schedule.predictionType === "epsilon"
        ? cur[k] - sigma * pred[k]
        : pred[k] * (-sigma * c) + cur[k] * c * c;
      next[k] = cur[k] + (cur[k] - x0) / sigma * dt;
    }
    cur = next;
    opts.onStep?.(i - p.start, total, t);
  }
  return Float32Array.from(cur);
}

function scale(x: Float64Array, c: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let k = 0; k < x.length; k++) out[k] = x[k] * c;
  return out;
}
