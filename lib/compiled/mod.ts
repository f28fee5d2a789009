/**
 * A training step compiled once, owned by the kit (the GPU-independent part): an SSA graph IR
 * recorded from the one model definition through lib/nn's `Ops` ({@link GraphOps}), reverse-mode
 * differentiation by per-op VJP rules ({@link gradients}), the UNet step as one graph
 * ({@link unetTrainingGraph}), a TensorFlow.js reference interpreter ({@link interpret}) and a
 * WebGPU executor ({@link compileGraph}: WGSL kernels per node, buffers, pipelines, bind groups
 * and uniforms planned once; one pass, one submit per run), a fusion pass ({@link fuseGraph}) and
 * the whole step with clipping, AdamW and EMA on packed GPU buffers ({@link compileTrainStep}).
 * The UNet stage trains through it with `engine: "compiled"` ({@link compiledTrainLoop}); see
 * docs/webgpu_compiled_step.md.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { unetTrainingGraph } from "./mod.ts";
 * import { UNET_PRESETS } from "../models/unet.ts";
 *
 * const cfg = UNET_PRESETS.tiny;
 * const s = unetTrainingGraph({ cfg, batch: 1, height: 8, width: 8, tokens: 4 });
 * assert.ok(s.graph.opCounts(0, s.forwardNodes).conv2d > 0);
 * ```
 * @module
 */
export * from "./ir_ops.ts";
export * from "./graph.ts";
export * from "./autodiff.ts";
export * from "./interpret.ts";
export * from "./training_graph.ts";
export * from "./webgpu_executor.ts";
export * from "./mixed_precision.ts";
export { NO_KERNEL_OPS } from "./wgsl_lower.ts";
export * from "./fuse.ts";
export * from "./adamw.ts";
export * from "./train_step.ts";
export * from "./train_loop.ts";
