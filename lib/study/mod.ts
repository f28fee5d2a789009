/**
 * Experiments of the study that need only the recipe: the data-parallel seeding experiment
 * (`rankSeedsExperiment`: one UNet job on several in-process ranks with shared and with per-rank
 * loss streams) and the step-to-step loss variance it compares, with moving-block bootstrap
 * intervals (`stepToStepVariance`, `stepNoiseComparison`); and the study report of
 * `deno task study` (`report.ts`: sections, headlines, one self-contained HTML file; its sizes,
 * step cache and one module per section, run by `studyRun` in lib/jobs).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stepToStepVariance } from "./mod.ts";
 *
 * assert.equal(stepToStepVariance([3, 2, 1]), 0); // falls steadily: no step-to-step swing
 * ```
 * @module
 */
export * from "./step_noise.ts";
export * from "./rank_seeds.ts";
export * from "./report.ts";
export * from "./report_sizes.ts";
export * from "./report_steps.ts";
export * from "./report_prompts.ts";
export * from "./report_data.ts";
export * from "./report_rank_seeds.ts";
export * from "./report_clip_fid.ts";
export * from "./report_best_of_n.ts";
export * from "./report_touch_ups.ts";
export * from "./report_source.ts";
export * from "./report_human.ts";
export * from "./report_training.ts";
