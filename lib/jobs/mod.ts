/**
 * End-to-end jobs chaining the steps below them: {@link trainRun} (`deno task train`) builds the
 * embedded data, trains the recipe's stages into a run folder, then leaves samples and
 * caption-following scores there; {@link studyRun} (`deno task study`) trains such a run with kept
 * checkpoints, runs every experiment of the study on it and writes one HTML report.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { trainRun } from "./mod.ts";
 * import { resolvePreset } from "../recipe/mod.ts";
 *
 * const out = await Deno.makeTempDir(); // e.g. "runs/tiny"
 * const preset = resolvePreset("tiny", { unetSteps: 1, unetBatchSize: 2 }); // 1 step a stage: quick
 * preset.data.trainCount = 16;
 * preset.autoencoder.batchSize = preset.clip.batchSize = 2;
 * const opts = { seed: 0, resume: false, backend: "cpu-blas", skipEval: true, progress: false, log: () => {} };
 * const summary = await trainRun({ out, preset, ...opts });
 * assert.deepEqual(Object.keys(summary.finalLoss), ["autoencoder", "clip", "unet"]);
 * await Deno.remove(out, { recursive: true });
 * ```
 * @module
 */
export * from "./train_run.ts";
export * from "./train_parts.ts";
export * from "./study_run.ts";
