/**
 * Diffusion schedules, training targets and samplers on flat Float32Array latents, mirroring
 * Hugging Face diffusers (DDPM, DDIM, PNDM/PLMS, Euler, DPM-Solver++ 2M) so the same code drives
 * TensorFlow.js and ONNX models, and the {@link ImageGenerator} contract both engines implement
 * (options, and the initial noise each image starts from).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { classifierFreeGuidance, makeSchedule, SAMPLERS, SD_SCHEDULER_CONFIG } from "./mod.ts";
 *
 * // UNet stand-in on both halves: the ideal denoiser for data that is all 0.5, ignoring captions.
 * const schedule = makeSchedule({ ...SD_SCHEDULER_CONFIG, setAlphaToOne: true });
 * const batched = (x2: Float32Array, t: number) => {
 *   const ab = schedule.alphaBarAt(t);
 *   return Promise.resolve(x2.map((v) => (v - Math.sqrt(ab) * 0.5) / Math.sqrt(1 - ab)));
 * };
 * const noise = new Float32Array([1, -1, 0.5, 2]);
 * const x = await SAMPLERS.pndm(classifierFreeGuidance(batched, 7.5), noise, schedule, {
 *   steps: 10,
 * });
 * x.forEach((v) => assert.ok(Math.abs(v - 0.5) < 1e-5));
 * ```
 * @module
 */

export type {
  BetaSchedule,
  ModelFn,
  NoiseSchedule,
  PredictionType,
  Sampler,
  SamplerName,
  SamplerOptions,
  ScheduleConfig,
  TimestepSpacing,
  X0Eps,
} from "./types.ts";
export { makeSchedule, SD_SCHEDULER_CONFIG, validateConfig } from "./schedule.ts";
export {
  fromDiffusersConfig,
  readDiffusersConfig,
  SD_SCHEDULER_JSON,
  toDiffusersConfig,
} from "./diffusers_config.ts";
export { DEFAULT_SPACING, timesteps } from "./timesteps.ts";
export { captionDropout, type MinSnrOptions, minSnrWeights, sampleTimesteps } from "./loss.ts";
export { img2imgStart, samplerRng } from "./sampler_common.ts";
export {
  ddimInvert,
  getSampler,
  sampleDdim,
  sampleDdpm,
  sampleDpmSolverPP2M,
  sampleEuler,
  samplePndm,
  samplerForClass,
  SAMPLERS,
} from "./samplers.ts";
export { classifierFreeGuidance } from "./guidance.ts";
export { type GenerateOptions, type ImageGenerator, initialNoise } from "./generator.ts";
