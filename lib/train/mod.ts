/**
 * Training infrastructure: AdamW, clipping, accumulation, EMA, LR schedules, safetensors,
 * crash-safe checkpoints over pluggable stores, metrics logs and the resumable training loop.
 *
 * @example
 * ```ts
 * import { trainLoop, warmupCosine } from "./lib/train/mod.ts";
 * ```
 * @module
 */
export * from "./tensor_data.ts";
export * from "./optim.ts";
export * from "./lr.ts";
export * from "./safetensors.ts";
export * from "./store.ts";
export * from "./gcs_store.ts";
export * from "./checkpoint.ts";
export * from "./metrics.ts";
export * from "./loop.ts";
export * from "./checkpoint_broadcast.ts";
export * from "./data_parallel.ts";
