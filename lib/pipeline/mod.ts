/**
 * The embedded default pipeline: presets, the three training stages, generation with a trained
 * run, best-of-N rejection sampling with its scorers, caption-following evaluation, and the
 * end-to-end `trainPipeline` job.
 *
 * @example
 * ```ts
 * import { initCompute, resolvePreset, trainPipeline } from "./mod.ts";
 * await initCompute("auto");
 * await trainPipeline({ out: "runs/tiny", preset: resolvePreset("tiny"), seed: 0, resume: true, backend: "cpu" });
 * ```
 * @module
 */
export * from "./presets.ts";
export * from "./memory_data.ts";
export * from "./model_files.ts";
export * from "./stages.ts";
export * from "./generate.ts";
export * from "./caption_following.ts";
export * from "./train_pipeline.ts";
export * from "./reuse_parts.ts";
export * from "./compute.ts";
export * from "./best_of_n.ts";
export * from "./scorers.ts";
export * from "./word_swap.ts";
