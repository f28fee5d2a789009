/**
 * Shared types of the diffusion module: schedule configuration, the noise schedule object, the
 * model-function and sampler contracts from ARCHITECTURE.md.
 *
 * @module
 */

import type { Rng } from "../util/rng.ts";

/**
 * How betas are laid out over the training timesteps (diffusers `beta_schedule`).
 */
export type BetaSchedule = "linear" | "scaled_linear" | "squaredcos_cap_v2";

/**
 * What the network predicts (diffusers `prediction_type`).
 */
export type PredictionType = "epsilon" | "v_prediction";

/**
 * How inference timesteps are picked (diffusers `timestep_spacing`).
 */
export type TimestepSpacing = "leading" | "trailing" | "linspace";

/**
 * Names of the implemented samplers.
 */
export type SamplerName = "ddpm" | "ddim" | "pndm" | "euler" | "dpmpp_2m";

/**
 * Noise schedule configuration, the camelCase mirror of a diffusers `scheduler_config.json`.
 *
 * `timestepSpacing` left undefined means "each sampler uses its diffusers class default"
 * (`leading` for DDPM/DDIM/PNDM, `linspace` for Euler and DPM-Solver++), which is what diffusers
 * does when a config file without `timestep_spacing` (such as Stable Diffusion v1's) is loaded
 * into another scheduler class.
 */
export interface ScheduleConfig {
  numTrainTimesteps: number;
  betaStart: number;
  betaEnd: number;
  betaSchedule: BetaSchedule;
  /** Explicit betas (length `numTrainTimesteps`); overrides `betaSchedule` when set. */
  trainedBetas?: readonly number[] | null;
  predictionType: PredictionType;
  stepsOffset: number;
  /** DDIM/PNDM: alpha-bar used after the last step is 1 (true) or `alphasCumprod[0]` (false). */
  setAlphaToOne: boolean;
  /** PNDM: skip the Runge-Kutta warm-up (only `true` is implemented). */
  skipPrkSteps: boolean;
  /** DDPM/DDIM: clip the predicted x0 to [-clipSampleRange, clipSampleRange]. */
  clipSample: boolean;
  clipSampleRange: number;
  timestepSpacing?: TimestepSpacing;
  /** diffusers `_class_name` the config came from, informational. */
  className?: string;
}

/**
 * Predicted clean sample and noise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { makeSchedule } from "./schedule.ts";
 * import type { X0Eps } from "./types.ts";
 *
 * const schedule = makeSchedule({ predictionType: "v_prediction" });
 * const t = [10, 500]; // one timestep per sample of a batch of two
 * const xt = schedule.addNoise([1, 1], [0.5, -0.5], t);
 * const pred = schedule.vTarget([1, 1], [0.5, -0.5], t);
 * const { x0, eps }: X0Eps = schedule.predToX0Eps(pred, xt, t);
 * x0.forEach((v) => assert.ok(Math.abs(v - 1) < 1e-5));
 * assert.ok(Math.abs(eps[0] - 0.5) < 1e-5 && Math.abs(eps[1] + 0.5) < 1e-5);
 * ```
 */
export interface X0Eps {
  x0: Float32Array;
  eps: Float32Array;
}

/**
 * A discretised variance-preserving noise schedule: `x_t = sqrt(abar_t) x0 + sqrt(1-abar_t) eps`.
 *
 * Timestep arguments `t` may be one number for the whole array or one per sample (the array is
 * then split into `t.length` equal chunks), which is what a training batch needs. Fractional `t`
 * (Euler's float timesteps) use diffusers' interpolation of `sigma = sqrt((1-abar)/abar)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { makeSchedule, SD_SCHEDULER_CONFIG } from "./schedule.ts";
 *
 * const s = makeSchedule(SD_SCHEDULER_CONFIG);
 * const xt = s.addNoise([1, 1, 1, 1], [0, 0, 0, 0], [10, 500]); // a batch of two samples
 * assert.ok(Math.abs(xt[0] - Math.sqrt(s.alphasCumprod[10])) < 1e-6);
 * assert.ok(Math.abs(xt[3] - Math.sqrt(s.alphasCumprod[500])) < 1e-6);
 * ```
 */
export interface NoiseSchedule {
  readonly config: Readonly<ScheduleConfig>;
  readonly numTrainTimesteps: number;
  readonly predictionType: PredictionType;
  readonly betas: Float64Array;
  readonly alphas: Float64Array;
  readonly alphasCumprod: Float64Array;
  /** `sqrt((1 - abar) / abar)` per training timestep (ascending with t). */
  readonly sigmas: Float64Array;
  /** Alpha-bar after the last DDIM/PNDM step (`setAlphaToOne` ? 1 : alphasCumprod[0]). */
  readonly finalAlphaCumprod: number;
  /** Alpha-bar at (possibly fractional) timestep t. */
  alphaBarAt(t: number): number;
  /** Sigma (`sqrt((1-abar)/abar)`) at (possibly fractional) timestep t, interpolated linearly. */
  sigmaAt(t: number): number;
  /** Signal-to-noise ratio `abar / (1 - abar)`. */
  snr(t: number): number;
  /** Forward process `sqrt(abar) x0 + sqrt(1-abar) eps`. */
  addNoise(
    x0: ArrayLike<number>,
    eps: ArrayLike<number>,
    t: number | ArrayLike<number>,
  ): Float32Array;
  /** v-prediction target `sqrt(abar) eps - sqrt(1-abar) x0`. */
  vTarget(
    x0: ArrayLike<number>,
    eps: ArrayLike<number>,
    t: number | ArrayLike<number>,
  ): Float32Array;
  /** Training target for this schedule's prediction type (eps itself or v). */
  target(
    x0: ArrayLike<number>,
    eps: ArrayLike<number>,
    t: number | ArrayLike<number>,
  ): Float32Array;
  /** Convert a model prediction (epsilon or v, per schedule) at x_t into (x0, eps). */
  predToX0Eps(
    pred: ArrayLike<number>,
    xt: ArrayLike<number>,
    t: number | ArrayLike<number>,
  ): X0Eps;
}

/**
 * Model prediction (epsilon or v, per schedule) at timestep t, same length as x.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ModelFn } from "./types.ts";
 * import { sampleDdim } from "./ddim.ts";
 * import { makeSchedule } from "./schedule.ts";
 *
 * // A model that predicts no noise at all: deterministic DDIM then only rescales x.
 * const model: ModelFn = (x, _t) => Promise.resolve(new Float32Array(x.length));
 * const x = await sampleDdim(model, new Float32Array([1, -1]), makeSchedule(), { steps: 5 });
 * assert.ok(Math.abs(x[0] + x[1]) < 1e-6);
 * ```
 */
export type ModelFn = (x: Float32Array, t: number) => Promise<Float32Array>;

/**
 * Options shared by all samplers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { SamplerOptions } from "./types.ts";
 * import { sampleDdim } from "./ddim.ts";
 * import { makeSchedule } from "./schedule.ts";
 *
 * const seen: number[] = [];
 * const opts: SamplerOptions = { steps: 4, seed: 1, eta: 0, onStep: (_i, _n, t) => seen.push(t) };
 * const zero = (x: Float32Array) => Promise.resolve(new Float32Array(x.length));
 * await sampleDdim(zero, new Float32Array(2), makeSchedule(), opts);
 * assert.deepEqual(seen, [751, 501, 251, 1]); // "leading" spacing with stepsOffset 1
 * ```
 */
export interface SamplerOptions {
  /** Number of inference steps (diffusers `num_inference_steps`). */
  steps: number;
  /** Seed of the sampler's noise stream (`Rng.stream(seed, [STREAM.sampler])`); default 0. */
  seed?: number;
  /** Explicit noise stream; takes precedence over `seed`. */
  rng?: Rng;
  /** DDIM stochasticity (0 = deterministic DDIM, 1 = DDPM-like). */
  eta?: number;
  /**
   * img2img: `x` is then the clean init latent, noised to the diffusers img2img start timestep
   * (`init = floor(steps * strength)`, `tStart = steps - init`).
   */
  strength?: number;
  /** img2img noise; drawn from the sampler's stream when omitted. */
  noise?: Float32Array;
  /** Called after each model evaluation with its index, the number of evaluations and t. */
  onStep?: (i: number, total: number, t: number) => void;
  /** Overrides the config's spacing (and the sampler default). */
  timestepSpacing?: TimestepSpacing;
}

/**
 * A sampler: runs the reverse process from `x` (unit-variance noise, or a clean latent when
 * `strength` is set) and returns the final sample.
 */
export type Sampler = (
  model: ModelFn,
  x: Float32Array,
  schedule: NoiseSchedule,
  opts: SamplerOptions,
) => Promise<Float32Array>;
