/**
 * DPM-Solver++(2M) as diffusers' `DPMSolverMultistepScheduler` defaults (`algorithm_type`
 * dpmsolver++, `solver_order` 2, `solver_type` midpoint, `lower_order_final`, final sigma 0):
 * data-prediction multistep in log-SNR `lambda = log(alpha_t / sigma_t)`, first order on the
 * first step and on the final step (to sigma = 0).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sampleDpmSolverPP2M } from "./dpmpp_2m.ts";
 * import { makeSchedule } from "./schedule.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * // The ideal denoiser for data that is all 0.5: eps = (x - sqrt(abar) 0.5) / sqrt(1 - abar).
 * const schedule = makeSchedule();
 * const model = (x: Float32Array, t: number) => {
 *   const ab = schedule.alphaBarAt(t);
 *   return Promise.resolve(x.map((v) => (v - Math.sqrt(ab) * 0.5) / Math.sqrt(1 - ab)));
 * };
 * const x = await sampleDpmSolverPP2M(model, Rng.stream(1).normal(4), schedule, { steps: 10 });
 * x.forEach((v) => assert.ok(Math.abs(v - 0.5) < 1e-5));
 * ```
 * @module
 */

import { callModel, plan, scaled, vpNoise } from "./sampler_common.ts";
import type { ModelFn, NoiseSchedule, SamplerOptions } from "./types.ts";

/** VP (alpha_t, sigma_t) from the sigma-space sigma. */
function alphaSigma(sigma: number): [number, number] {
  const a = 1 / Math.sqrt(sigma * sigma + 1);
  return [a, sigma * a];
}

/**
 * DPM-Solver++ 2M sampler (deterministic; `steps` model calls).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sampleDpmSolverPP2M } from "./dpmpp_2m.ts";
 * import { makeSchedule } from "./schedule.ts";
 *
 * let calls = 0;
 * const zero = (x: Float32Array) => (calls++, Promise.resolve(new Float32Array(x.length)));
 * const x = await sampleDpmSolverPP2M(zero, new Float32Array(4).fill(1), makeSchedule(), {
 *   steps: 20,
 * });
 * assert.equal(calls, 20); // one model call per step
 * assert.equal(x.length, 4);
 * ```
 */
export async function sampleDpmSolverPP2M(
  model: ModelFn,
  x: Float32Array,
  schedule: NoiseSchedule,
  opts: SamplerOptions,
): Promise<Float32Array> {
  const p = plan("dpmpp_2m", x, schedule, opts);
  const L = p.all.length;
  const sigmas = [...p.all.map((t) => schedule.sigmaAt(t)), 0];
  const n = x.length;
  let cur = p.img2img
    ? vpNoise(p.img2img.x0, p.img2img.noise, schedule.alphaBarAt(p.all[p.start]))
    : scaled(x, 1);
  let prevX0: Float64Array | null = null;
  let lowerOrderNums = 0;
  for (let k = p.start; k < L; k++) {
    const t = p.all[k];
    const pred = await callModel("dpmpp_2m", model, cur, t);
    const [aS, sS] = alphaSigma(sigmas[k]);
    const x0 = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      x0[i] = schedule.predictionType === "epsilon"
        ? (cur[i] - sS * pred[i]) / aS
        : aS * cur[i] - sS * pred[i];
    }
    const [aT, sT] = alphaSigma(sigmas[k + 1]);
    const lamT = Math.log(aT) - Math.log(sT); // +Infinity at sigma = 0, handled by exp(-h) = 0
    const lamS = Math.log(aS) - Math.log(sS);
    const h = lamT - lamS;
    const phi = aT * (Math.exp(-h) - 1);
    const ratio = sT / sS;
    // The final step goes to sigma = 0, where diffusers always drops to first order.
    const firstOrder = lowerOrderNums < 1 || k === L - 1;
    const next = new Float64Array(n);
    if (firstOrder) {
      for (let i = 0; i < n; i++) next[i] = ratio * cur[i] - phi * x0[i];
    } else {
      const [aP, sP] = alphaSigma(sigmas[k - 1]);
      const lamP = Math.log(aP) - Math.log(sP);
      const r0 = (lamS - lamP) / h;
      const m1 = prevX0!;
      for (let i = 0; i < n; i++) {
        const d1 = (x0[i] - m1[i]) / r0;
        next[i] = ratio * cur[i] - phi * x0[i] - 0.5 * phi * d1;
      }
    }
    cur = next;
    prevX0 = x0;
    if (lowerOrderNums < 2) lowerOrderNums++;
    opts.onStep?.(k - p.start, L - p.start, t);
  }
  return Float32Array.from(cur);
}
