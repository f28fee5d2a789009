/**
 * All samplers behind one registry, for the CLI (`--sampler ddim`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getSampler } from "./samplers.ts";
 * import { makeSchedule } from "./schedule.ts";
 *
 * const zero = (x: Float32Array) => Promise.resolve(new Float32Array(x.length));
 * const x = await getSampler("dpmpp_2m")(zero, new Float32Array(4).fill(1), makeSchedule(), {
 *   steps: 10,
 * });
 * assert.equal(x.length, 4);
 * assert.throws(() => getSampler("lms"), /unknown sampler "lms"/);
 * ```
 * @module
 */

import { ddimInvert, sampleDdim } from "./ddim.ts";
import { sampleDdpm } from "./ddpm.ts";
import { sampleDpmSolverPP2M } from "./dpmpp_2m.ts";
import { sampleEuler } from "./euler.ts";
import { samplePndm } from "./pndm.ts";
import { checkSamplerName } from "./timesteps.ts";
import type { Sampler, SamplerName } from "./types.ts";

export { ddimInvert, sampleDdim, sampleDdpm, sampleDpmSolverPP2M, sampleEuler, samplePndm };

/**
 * Samplers by name.
 *
 * @example
 * ```ts
 * Object.keys(SAMPLERS); // ["ddpm", "ddim", "pndm", "euler", "dpmpp_2m"]
 * ```
 */
export const SAMPLERS: Readonly<Record<SamplerName, Sampler>> = Object.freeze({
  ddpm: sampleDdpm,
  ddim: sampleDdim,
  pndm: samplePndm,
  euler: sampleEuler,
  dpmpp_2m: sampleDpmSolverPP2M,
});

/**
 * The sampler called `name`, with a clear error listing the valid names otherwise.
 *
 * @example
 * ```ts
 * import { getSampler } from "./samplers.ts";
 *
 * const sample = getSampler("dpmpp_2m");
 * ```
 */
export function getSampler(name: string): Sampler {
  checkSamplerName(name);
  return SAMPLERS[name];
}

/**
 * The kit's sampler for a diffusers scheduler `_class_name`, or undefined when not implemented.
 *
 * @example
 * ```ts
 * samplerForClass("PNDMScheduler"); // "pndm"
 * ```
 */
export function samplerForClass(className: string): SamplerName | undefined {
  const map: Record<string, SamplerName> = {
    DDPMScheduler: "ddpm",
    DDIMScheduler: "ddim",
    PNDMScheduler: "pndm",
    EulerDiscreteScheduler: "euler",
    DPMSolverMultistepScheduler: "dpmpp_2m",
  };
  return map[className];
}
