/**
 * Shared types of the diffusion module: schedule configuration, the noise schedule object, the
 * model-function and sampler contracts from ARCHITECTURE.md.
 *
 * @example
 * ```ts
 * import type { ModelFn } from "./types.ts";
 * const zero: ModelFn = (x) => Promise.resolve(new Float32Array(x.length));
 * ```
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
 * import { type NoiseSchedule, X0Eps } from "./types.ts";
 *
 * function example(
 *   pred: Float32Array,
 *   schedule: NoiseSchedule,
 *   t: number[],
 *   xt: Float32Array,
 * ) {
 *   const { x0, eps }: X0Eps = schedule.predToX0Eps(pred, xt, t);
 * }
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
 * import { makeSchedule, SD_SCHEDULER_CONFIG } from "./schedule.ts";
 *
 * function example(
 *   eps: Float32Array,
 *   x0: Float32Array,
 * ) {
 *   const s = makeSchedule(SD_SCHEDULER_CONFIG);
 *   const xt = s.addNoise(x0, eps, [10, 500]); // a batch of two samples
 * }
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
 * import type { ModelFn } from "./types.ts";
 * // a model that predicts no noise at all
 * const model: ModelFn = (x, _t) => Promise.resolve(new Float32Array(x.length));
 * ```
 */
export type ModelFn = (x: Float32Array, t: number) => Promise<Float32Array>;

/**
 * Options shared by all samplers.
 *
 * @example
 * ```ts
 * const opts: SamplerOptions = { steps: 50, seed: 1, eta: 0, onStep: (i, n) => console.log(i, n) };
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
