/**
 * Training infrastructure: AdamW, clipping, accumulation, EMA, LR schedules, safetensors,
 * crash-safe checkpoints over lib/storage's stores (read on rank 0 and broadcast), metrics logs,
 * the resumable training loop, and {@link initBackendAndConvGrad} (a backend plus the
 * convolution-gradient strategy that is fast on it).
 *
 * @example
 * ```ts
 * import { trainLoop, warmupCosine } from "./mod.ts";
 * ```
 * @module
 */
export * from "./tensor_data.ts";
export * from "./optim.ts";
export * from "./lr.ts";
export * from "./safetensors.ts";
export * from "./checkpoint.ts";
export * from "./metrics.ts";
export * from "./loop.ts";
export * from "./loop_parts.ts";
export * from "./checkpoint_broadcast.ts";
export * from "./init_backend.ts";
