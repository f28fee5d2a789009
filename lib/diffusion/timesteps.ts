/**
 * Inference timesteps exactly as diffusers' schedulers pick them in `set_timesteps`.
 *
 * - DDPM/DDIM: integer timesteps, `leading` default: `arange(n) * (N // n) + steps_offset`.
 * - PNDM (PLMS, `skip_prk_steps`): the DDIM list with its second entry duplicated
 *   (`[981, 961, 961, 941, ..., 1]` for 50 steps: n + 1 model calls).
 * - Euler: float timesteps, `linspace` default (`linspace(0, N-1, n)` as float32).
 * - DPM-Solver++: integer timesteps, `linspace` default over n + 1 points, the last dropped.
 *
 * @example
 * ```ts
 * import { timesteps } from "./timesteps.ts";
 * import { SD_SCHEDULER_CONFIG } from "./schedule.ts";
 *
 * timesteps("pndm", 50, SD_SCHEDULER_CONFIG); // [981, 961, 961, 941, ..., 21, 1]
 * ```
 * @module
 */

import { arange, linspace, roundHalfEven } from "./numpy_compat.ts";
import type { NoiseSchedule, SamplerName, ScheduleConfig, TimestepSpacing } from "./types.ts";

/**
 * Spacing each diffusers scheduler class uses when its config has no `timestep_spacing`.
 *
 * @example
 * ```ts
 * DEFAULT_SPACING.euler; // "linspace"
 * ```
 */
export const DEFAULT_SPACING: Readonly<Record<SamplerName, TimestepSpacing>> = Object.freeze({
  ddpm: "leading",
  ddim: "leading",
  pndm: "leading",
  euler: "linspace",
  dpmpp_2m: "linspace",
});

const NAMES = Object.keys(DEFAULT_SPACING) as SamplerName[];

/**
 * Throws unless `name` is a known sampler.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkSamplerName } from "./timesteps.ts";
 *
 * checkSamplerName("ddim");
 * assert.throws(() => checkSamplerName("lms"), /unknown sampler "lms"; expected one of ddpm, /);
 * ```
 */
export function checkSamplerName(name: string): asserts name is SamplerName {
  if (!(NAMES as string[]).includes(name)) {
    throw new Error(`unknown sampler "${name}"; expected one of ${NAMES.join(", ")}`);
  }
}

/**
 * Spacing a sampler uses for `config` (its own default when the config has none).
 *
 * @example
 * ```ts
 * import { spacingFor } from "./timesteps.ts";
 * import { SD_SCHEDULER_CONFIG } from "./schedule.ts";
 *
 * spacingFor("euler", SD_SCHEDULER_CONFIG); // "linspace"
 * ```
 */
export function spacingFor(name: SamplerName, config: ScheduleConfig): TimestepSpacing {
  return config.timestepSpacing ?? DEFAULT_SPACING[name];
}

/**
 * The timesteps diffusers' scheduler for `name` picks for `steps` inference steps under `config`
 * (model evaluation order, first = noisiest). Pass `{ ...config, timestepSpacing }` to override.
 *
 * @example
 * ```ts
 * import { timesteps } from "./timesteps.ts";
 * import { SD_SCHEDULER_CONFIG } from "./schedule.ts";
 *
 * timesteps("ddim", 50, SD_SCHEDULER_CONFIG); // [981, 961, ..., 1]
 * timesteps("euler", 50, SD_SCHEDULER_CONFIG); // [999, 978.61224..., ..., 0]
 * ```
 */
export function timesteps(
  name: SamplerName,
  steps: number,
  config: ScheduleConfig | NoiseSchedule,
): number[] {
  checkSamplerName(name);
  const cfg: ScheduleConfig = "alphasCumprod" in config ? config.config : config;
  const N = cfg.numTrainTimesteps;
  if (!Number.isInteger(steps) || steps < 1 || steps > N) {
    throw new Error(`${name}: steps must be an integer in [1, ${N}], got ${steps}`);
  }
  const spacing = spacingFor(name, cfg);
  const off = cfg.stepsOffset;
  switch (name) {
    case "ddpm":
    case "ddim":
      return integerSpacing(spacing, steps, N, off).reverse();
    case "pndm": {
      if (!cfg.skipPrkSteps) {
        throw new Error("pndm: skipPrkSteps=false (Runge-Kutta warm-up) is not implemented");
      }
      const asc = integerSpacing(spacing, steps, N, off);
      // diffusers: concat(ts[:-1], ts[-2:-1], ts[-1:])[::-1]: the second step repeats a timestep.
      const plms = [...asc.slice(0, -1), ...asc.slice(-2, -1), ...asc.slice(-1)];
      return plms.reverse();
    }
    case "euler": {
      let ts: number[];
      if (spacing === "linspace") ts = linspace(0, N - 1, steps).reverse();
      else if (spacing === "leading") {
        const r = Math.floor(N / steps);
        ts = Array.from({ length: steps }, (_, i) => i * r + off).reverse();
      } else ts = arange(N, 0, -N / steps).map((v) => roundHalfEven(v) - 1);
      return ts.map(Math.fround); // diffusers keeps them as float32
    }
    case "dpmpp_2m": {
      if (spacing === "linspace") {
        return linspace(0, N - 1, steps + 1).map(roundHalfEven).reverse().slice(0, -1);
      }
      if (spacing === "leading") {
        const r = Math.floor(N / (steps + 1));
        return Array.from({ length: steps + 1 }, (_, i) => i * r).reverse().slice(0, -1)
          .map((v) => v + off);
      }
      return arange(N, 0, -N / steps).map((v) => roundHalfEven(v) - 1);
    }
  }
}

/** DDIM/DDPM/PNDM integer timesteps in ascending order. */
function integerSpacing(spacing: TimestepSpacing, n: number, N: number, off: number): number[] {
  if (spacing === "linspace") return linspace(0, N - 1, n).map(roundHalfEven);
  if (spacing === "leading") {
    const r = Math.floor(N / n);
    return Array.from({ length: n }, (_, i) => i * r + off);
  }
  return arange(N, 0, -N / n).map((v) => roundHalfEven(v) - 1).reverse();
}
