/**
 * The embedded default recipe, and what a run of it is: presets (every size, step count and
 * learning rate), the three training stages (autoencoder, CLIP, then the UNet on frozen parts),
 * the run folder's frozen model files, reuse of another run's frozen parts, loading a run and
 * generating from it with TensorFlow.js (`generate`, an `ImageGenerator`), and exporting a run to
 * an ONNX Stable Diffusion folder (`exportRun`, `ensureOnnxExport`). The end-to-end training job
 * is lib/jobs' `trainRun`.
 *
 * @example
 * ```ts
 * import { generate, loadRun } from "./mod.ts";
 *
 * async function example() {
 *   const run = await loadRun("runs/default");
 *   const images = await generate(run, { prompts: ["a red circle"], n: 4, guidance: 4, steps: 25, scheduler: "dpmpp_2m", seed: 0 });
 * }
 * ```
 * @module
 */
export * from "./presets.ts";
export * from "./memory_data.ts";
export * from "./model_files.ts";
export * from "./stages.ts";
export * from "./compiled_unet.ts";
export * from "./generate.ts";
export * from "./parts_checkpoints.ts";
export * from "./reuse_parts.ts";
export * from "./onnx_export.ts";
export * from "./model_index.ts";
export * from "./latent_cache_file.ts";
export * from "./latent_cache.ts";
export * from "./parts_export.ts";
