/**
 * Experiments of the study that need only the recipe: the data-parallel seeding experiment
 * (`rankSeedsExperiment`: one UNet job on several in-process ranks with shared and with per-rank
 * loss streams) and the step-to-step loss variance it compares, with moving-block bootstrap
 * intervals (`stepToStepVariance`, `stepNoiseComparison`).
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
