/**
 * Plumbing shared by the samplers: option checks, the noise stream, the img2img start
 * (diffusers' `get_timesteps`), model calls with length checks, and float64 state helpers.
 *
 * Samplers keep their running state in float64 and hand the model float32 copies, so a sampler
 * adds no rounding of its own beyond what the model sees.
 *
 * @example
 * ```ts
 * const rng = samplerRng({ steps: 50, seed: 3 }); // Rng.stream(3, [STREAM.sampler])
 * ```
 * @module
 */

import { Rng, STREAM } from "../util/rng.ts";
import { checkSamplerName, timesteps } from "./timesteps.ts";
import type { ModelFn, NoiseSchedule, SamplerName, SamplerOptions } from "./types.ts";

/**
 * The noise stream a sampler draws from: `opts.rng`, else `Rng.stream(seed ?? 0, [STREAM.sampler])`.
 * For img2img the first `x.length` normals of this stream are the noise added to the init latent.
 *
 * @example
 * ```ts
 * const noise = samplerRng({ steps: 50, seed: 7 }).normal(4 * 64 * 64);
 * ```
 */
export function samplerRng(opts: SamplerOptions): Rng {
  if (opts.rng) return opts.rng;
  const seed = opts.seed ?? 0;
  if (!Number.isFinite(seed)) throw new Error(`sampler: seed must be a finite number, got ${seed}`);
  return Rng.stream(seed, [STREAM.sampler]);
}

/**
 * diffusers img2img start: `init = min(floor(steps * strength), steps)`, `tStart = steps - init`;
 * the sampler skips its first `tStart` timesteps (all schedulers here have order 1).
 *
 * @example
 * ```ts
 * img2imgStart(50, 0.6); // 20
 * ```
 */
export function img2imgStart(steps: number, strength: number): number {
  if (!(strength > 0 && strength <= 1)) {
    throw new Error(`sampler: strength must be in (0, 1], got ${strength}`);
  }
  const init = Math.min(Math.floor(steps * strength), steps);
  if (init < 1) {
    throw new Error(
      `sampler: strength ${strength} with ${steps} steps gives floor(steps*strength)=0 denoising steps`,
    );
  }
  return Math.max(steps - init, 0);
}

/**
 * Everything a sampler needs before its loop.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { plan } from "./sampler_common.ts";
 * import { makeSchedule } from "./schedule.ts";
 *
 * const x = new Float32Array(4); // the clean init latent for img2img
 * const { all, start, img2img } = plan("ddim", x, makeSchedule(), { steps: 50, strength: 0.6 });
 * assert.equal(all.length, 50);
 * assert.equal(start, 20);
 * assert.equal(img2img?.noise.length, 4);
 * ```
 */
export interface SamplerPlan {
  /** Full timestep list for `steps` (what diffusers' `scheduler.timesteps` holds). */
  all: number[];
  /** Index in `all` of the first timestep to run (0 for txt2img). */
  start: number;
  rng: Rng;
  /** Clean init latent and its noise when `strength` is set. */
  img2img: { x0: Float32Array; noise: Float32Array } | null;
}

/**
 * Validate options and compute the timestep plan for sampler `name`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { plan } from "./sampler_common.ts";
 * import { makeSchedule } from "./schedule.ts";
 *
 * const p = plan("pndm", new Float32Array(4), makeSchedule(), { steps: 50 });
 * assert.equal(p.all.length, 51);
 * assert.equal(p.start, 0);
 * ```
 */
export function plan(
  name: SamplerName,
  x: Float32Array,
  schedule: NoiseSchedule,
  opts: SamplerOptions,
): SamplerPlan {
  checkSamplerName(name);
  if (!opts || typeof opts !== "object") throw new Error(`${name}: options object is required`);
  if (!(x instanceof Float32Array) || x.length === 0) {
    throw new Error(`${name}: x must be a non-empty Float32Array`);
  }
  const cfg = opts.timestepSpacing
    ? { ...schedule.config, timestepSpacing: opts.timestepSpacing }
    : schedule.config;
  const all = timesteps(name, opts.steps, cfg);
  for (const t of all) {
    if (!(t >= 0 && t <= schedule.numTrainTimesteps - 1)) {
      throw new Error(
        `${name}: timestep ${t} from steps=${opts.steps}, stepsOffset=${cfg.stepsOffset} is outside [0, ${
          schedule.numTrainTimesteps - 1
        }]`,
      );
    }
  }
  const rng = samplerRng(opts);
  if (opts.strength === undefined) {
    if (opts.noise) throw new Error(`${name}: noise is only used with strength (img2img)`);
    return { all, start: 0, rng, img2img: null };
  }
  const start = img2imgStart(opts.steps, opts.strength);
  const noise = opts.noise ?? rng.normal(x.length);
  if (noise.length !== x.length) {
    throw new Error(`${name}: noise has ${noise.length} values, x has ${x.length}`);
  }
  return { all, start, rng, img2img: { x0: x, noise } };
}

/**
 * Call the model on a float32 copy of `x` and check what it returns.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { callModel } from "./sampler_common.ts";
 *
 * const state = new Float64Array([0.5, -1]); // the sampler's float64 latents
 * const double = (x: Float32Array) => Promise.resolve(x.map((v) => 2 * v));
 * assert.deepEqual(await callModel("ddim", double, state, 981), new Float32Array([1, -2]));
 * const short = () => Promise.resolve(new Float32Array(1));
 * await assert.rejects(callModel("ddim", short, state, 981), /expected a Float32Array of 2/);
 * ```
 */
export async function callModel(
  name: string,
  model: ModelFn,
  x: Float64Array,
  t: number,
): Promise<Float32Array> {
  const out = await model(Float32Array.from(x), t);
  if (!(out instanceof Float32Array) || out.length !== x.length) {
    throw new Error(
      `${name}: model returned ${
        out instanceof Float32Array ? `${out.length} values` : typeof out
      } at t=${t}, expected a Float32Array of ${x.length}`,
    );
  }
  return out;
}

/**
 * Float64 copy of `x` scaled by `k`.
 *
 * @example
 * ```ts
 * scaled(new Float32Array([1, 2]), 0.5); // Float64Array [0.5, 1]
 * ```
 */
export function scaled(x: ArrayLike<number>, k: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] * k;
  return out;
}

/**
 * `sqrt(abar) x0 + sqrt(1 - abar) noise` in float64.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { vpNoise } from "./sampler_common.ts";
 * import { makeSchedule } from "./schedule.ts";
 *
 * const schedule = makeSchedule();
 * const ab = schedule.alphasCumprod[581];
 * const xt = vpNoise([1, 0], [0, 1], ab);
 * assert.deepEqual(xt, new Float64Array([Math.sqrt(ab), Math.sqrt(1 - ab)]));
 * ```
 */
export function vpNoise(
  x0: ArrayLike<number>,
  noise: ArrayLike<number>,
  abar: number,
): Float64Array {
  const a = Math.sqrt(abar);
  const b = Math.sqrt(1 - abar);
  const out = new Float64Array(x0.length);
  for (let i = 0; i < x0.length; i++) out[i] = a * x0[i] + b * noise[i];
  return out;
}

/**
 * (x0, eps) in float64 from an epsilon or v prediction at a state with alpha-bar `abar`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { toX0Eps } from "./sampler_common.ts";
 * import { makeSchedule, SD_SCHEDULER_CONFIG } from "./schedule.ts";
 *
 * const schedule = makeSchedule(SD_SCHEDULER_CONFIG);
 * const ab = schedule.alphasCumprod[500];
 * // x0 = 1 and eps = 0 give state sqrt(ab) and v prediction -sqrt(1 - ab).
 * const state = new Float64Array([Math.sqrt(ab)]);
 * const { x0, eps } = toX0Eps([-Math.sqrt(1 - ab)], state, ab, "v_prediction");
 * assert.ok(Math.abs(x0[0] - 1) < 1e-12 && Math.abs(eps[0]) < 1e-12);
 * ```
 */
export function toX0Eps(
  pred: ArrayLike<number>,
  x: ArrayLike<number>,
  abar: number,
  predictionType: string,
): { x0: Float64Array; eps: Float64Array } {
  const sa = Math.sqrt(abar);
  const sb = Math.sqrt(1 - abar);
  const n = x.length;
  const x0 = new Float64Array(n);
  const eps = new Float64Array(n);
  if (predictionType === "epsilon") {
    for (let i = 0; i < n; i++) {
      eps[i] = pred[i];
      x0[i] = (x[i] - sb * pred[i]) / sa;
    }
  } else {
    for (let i = 0; i < n; i++) {
      x0[i] = sa * x[i] - sb * pred[i];
      eps[i] = sa * pred[i] + sb * x[i];
    }
  }
  return { x0, eps };
}

/**
 * Clip to [-r, r] in place (diffusers `clip_sample`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clipInPlace } from "./sampler_common.ts";
 *
 * const x0 = new Float64Array([-2, 0.5, 3]);
 * clipInPlace(x0, 1);
 * assert.deepEqual(x0, new Float64Array([-1, 0.5, 1]));
 * ```
 */
export function clipInPlace(x: Float64Array, r: number): void {
  for (let i = 0; i < x.length; i++) x[i] = Math.min(r, Math.max(-r, x[i]));
}
