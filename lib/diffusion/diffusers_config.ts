/**
 * Read and write diffusers `scheduler_config.json` files (snake_case keys) as
 * {@link ScheduleConfig}s, refusing settings the kit's samplers do not implement.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readDiffusersConfig } from "./diffusers_config.ts";
 * import { makeSchedule } from "./schedule.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/scheduler_config.json`;
 * await Deno.writeTextFile(
 *   path,
 *   JSON.stringify({ _class_name: "DDIMScheduler", beta_schedule: "linear" }),
 * );
 * const schedule = makeSchedule(await readDiffusersConfig(path));
 * assert.equal(schedule.config.setAlphaToOne, true); // the DDIMScheduler default
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */

import { validateConfig } from "./schedule.ts";
import type { ScheduleConfig, TimestepSpacing } from "./types.ts";

/**
 * Stable Diffusion v1's `scheduler/scheduler_config.json`, verbatim.
 *
 * @example
 * ```ts
 * fromDiffusersConfig(SD_SCHEDULER_JSON); // equals SD_SCHEDULER_CONFIG
 * ```
 */
export const SD_SCHEDULER_JSON: Readonly<Record<string, unknown>> = Object.freeze({
  _class_name: "PNDMScheduler",
  _diffusers_version: "0.7.0.dev0",
  beta_end: 0.012,
  beta_schedule: "scaled_linear",
  beta_start: 0.00085,
  num_train_timesteps: 1000,
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  trained_betas: null,
  clip_sample: false,
});

// Keys whose value must equal the given one (or be absent/null) because only that behaviour is
// implemented; anything else would silently sample differently from diffusers.
const MUST_BE: Record<string, unknown> = {
  use_karras_sigmas: false,
  use_exponential_sigmas: false,
  use_beta_sigmas: false,
  use_lu_lambdas: false,
  use_flow_sigmas: false,
  use_dynamic_shifting: false,
  thresholding: false,
  rescale_betas_zero_snr: false,
  variance_type: "fixed_small",
  algorithm_type: "dpmsolver++",
  solver_order: 2,
  solver_type: "midpoint",
  lower_order_final: true,
  euler_at_final: false,
  final_sigmas_type: "zero",
  interpolation_type: "linear",
  timestep_type: "discrete",
};

/**
 * Convert a parsed (or raw string) diffusers `scheduler_config.json` into a {@link ScheduleConfig}.
 * Missing keys take the diffusers class defaults of `_class_name` (DDPM/DDIM clip samples, DDIM
 * sets alpha to one, PNDM does not skip PRK steps); `timestep_spacing` stays undefined when absent.
 * `source` names the file in error messages.
 *
 * @example
 * ```ts
 * const cfg = fromDiffusersConfig({ beta_schedule: "squaredcos_cap_v2" }, "my.json");
 * ```
 */
export function fromDiffusersConfig(
  json: unknown,
  source = "scheduler_config.json",
): ScheduleConfig {
  if (typeof json === "string") {
    try {
      json = JSON.parse(json);
    } catch (e) {
      throw new Error(`${source}: not valid JSON (${(e as Error).message})`);
    }
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new Error(`${source}: expected a JSON object, got ${JSON.stringify(json)}`);
  }
  const j = json as Record<string, unknown>;
  const fail = (key: string, expected: string): never => {
    throw new Error(`${source}: "${key}" must be ${expected}, got ${JSON.stringify(j[key])}`);
  };
  const get = <T>(key: string, type: "number" | "boolean" | "string", dflt: T): T => {
    const v = j[key];
    if (v === undefined || v === null) return dflt;
    const actual: string = typeof v;
    if (actual !== type) fail(key, `a ${type}`);
    return v as T;
  };

  const className = get<string | undefined>("_class_name", "string", undefined);
  for (const [key, want] of Object.entries(MUST_BE)) {
    const v = j[key];
    if (v !== undefined && v !== null && v !== want) {
      fail(key, `${JSON.stringify(want)} (the only value xgen-kit implements)`);
    }
  }
  const prediction: string = get<string>("prediction_type", "string", "epsilon");
  if (prediction === "sample") {
    fail("prediction_type", '"epsilon" or "v_prediction" ("sample" is not supported)');
  }
  if (prediction !== "epsilon" && prediction !== "v_prediction") {
    fail("prediction_type", '"epsilon" or "v_prediction"');
  }
  const schedule = get("beta_schedule", "string", "linear");
  if (!["linear", "scaled_linear", "squaredcos_cap_v2"].includes(schedule)) {
    fail("beta_schedule", '"linear", "scaled_linear" or "squaredcos_cap_v2"');
  }
  const spacing = get<string | undefined>("timestep_spacing", "string", undefined);
  if (spacing !== undefined && !["leading", "trailing", "linspace"].includes(spacing)) {
    fail("timestep_spacing", '"leading", "trailing" or "linspace"');
  }
  const lmc = j.lambda_min_clipped;
  if (typeof lmc === "number" && Number.isFinite(lmc)) {
    fail("lambda_min_clipped", "-inf or absent (clipping is not implemented)");
  }
  const trained = j.trained_betas;
  if (trained !== undefined && trained !== null && !Array.isArray(trained)) {
    fail("trained_betas", "null or an array of numbers");
  }

  const cfg: ScheduleConfig = {
    numTrainTimesteps: get("num_train_timesteps", "number", 1000),
    betaStart: get("beta_start", "number", 0.0001),
    betaEnd: get("beta_end", "number", 0.02),
    betaSchedule: schedule as ScheduleConfig["betaSchedule"],
    trainedBetas: (trained as number[] | null | undefined) ?? null,
    predictionType: prediction as ScheduleConfig["predictionType"],
    stepsOffset: get("steps_offset", "number", 0),
    setAlphaToOne: get("set_alpha_to_one", "boolean", className === "DDIMScheduler"),
    skipPrkSteps: get("skip_prk_steps", "boolean", className !== "PNDMScheduler"),
    clipSample: get(
      "clip_sample",
      "boolean",
      className === "DDIMScheduler" || className === "DDPMScheduler",
    ),
    clipSampleRange: get("clip_sample_range", "number", 1),
  };
  if (spacing !== undefined) cfg.timestepSpacing = spacing as TimestepSpacing;
  if (className !== undefined) cfg.className = className;
  validateConfig(cfg, source);
  return cfg;
}

/**
 * The snake_case `scheduler_config.json` form of a {@link ScheduleConfig}
 * (inverse of {@link fromDiffusersConfig}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fromDiffusersConfig, toDiffusersConfig } from "./diffusers_config.ts";
 * import { SD_SCHEDULER_CONFIG } from "./schedule.ts";
 *
 * const cfg = { ...SD_SCHEDULER_CONFIG, predictionType: "v_prediction" as const };
 * const json = toDiffusersConfig(cfg);
 * assert.equal(json.prediction_type, "v_prediction");
 * assert.deepEqual(fromDiffusersConfig(json), cfg);
 * ```
 */
export function toDiffusersConfig(cfg: ScheduleConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {
    _class_name: cfg.className ?? "PNDMScheduler",
    num_train_timesteps: cfg.numTrainTimesteps,
    beta_start: cfg.betaStart,
    beta_end: cfg.betaEnd,
    beta_schedule: cfg.betaSchedule,
    trained_betas: cfg.trainedBetas ? [...cfg.trainedBetas] : null,
    prediction_type: cfg.predictionType,
    steps_offset: cfg.stepsOffset,
    set_alpha_to_one: cfg.setAlphaToOne,
    skip_prk_steps: cfg.skipPrkSteps,
    clip_sample: cfg.clipSample,
    clip_sample_range: cfg.clipSampleRange,
  };
  if (cfg.timestepSpacing !== undefined) out.timestep_spacing = cfg.timestepSpacing;
  return out;
}

/**
 * Read a diffusers `scheduler_config.json` from disk.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readDiffusersConfig } from "./diffusers_config.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/scheduler_config.json`, '{"prediction_type": "v_prediction"}');
 * const cfg = await readDiffusersConfig(`${dir}/scheduler_config.json`);
 * assert.equal(cfg.predictionType, "v_prediction");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readDiffusersConfig(path: string): Promise<ScheduleConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`${path}: cannot read scheduler config (${(e as Error).message})`);
  }
  return fromDiffusersConfig(text, path);
}
