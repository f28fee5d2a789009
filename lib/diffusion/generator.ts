/**
 * What every text-to-image engine of the kit implements, so the tricks and evaluations on top
 * (best-of-N, caption following, the guidance sweep) take any of them: {@link GenerateOptions},
 * the {@link ImageGenerator} function type, and {@link initialNoise}, the one place an image's
 * starting latent is drawn. `generate` (TensorFlow.js on a run, lib/recipe) and `txt2img`
 * (onnxruntime on an ONNX Stable Diffusion folder, lib/onnx) both draw it here, so for a seed they
 * give the same images.
 *
 * @example
 * ```ts
 * import { ImageGenerator, initialNoise } from "./generator.ts";
 * import { type OnnxPipeline, txt2img } from "../onnx/sd_pipeline.ts";
 *
 * function example(pipe: OnnxPipeline) {
 *   const gen: ImageGenerator = (o) => txt2img(pipe, o);
 *   const x = initialNoise(0, 0, 0, 4 * 8 * 8); // prompt 0, sample 0
 * }
 * ```
 * @module
 */
import type { RgbImage } from "../plot/mod.ts";
import { Rng, STREAM } from "../util/rng.ts";

/** Options of an {@link ImageGenerator} (and of `generate` / `txt2img`). */
export interface GenerateOptions {
  prompts: string[];
  /** Images per prompt. */
  n: number;
  guidance: number;
  steps: number;
  /** Sampler name: ddpm, ddim, pndm, euler, dpmpp_2m. */
  scheduler: string;
  seed: number;
  /** Images per UNet batch (default 32). */
  batchSize?: number;
  /** Called after each finished batch with images done and total. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Anything that turns prompts into images with {@link GenerateOptions}: `generate` bound to a
 * TensorFlow.js run (lib/recipe), or onnxruntime on an exported one (`(o) => txt2img(pipe, o)`
 * from lib/onnx). Both draw the same initial noise, so for a seed they give the same images.
 *
 * @example
 * ```ts
 * import type { ImageGenerator } from "./generator.ts";
 * import { generate, loadRun } from "../recipe/generate.ts";
 *
 * async function example() {
 *   const run = await loadRun("runs/default");
 *   const gen: ImageGenerator = (o) => generate(run, o);
 * }
 * ```
 */
export type ImageGenerator = (o: GenerateOptions) => Promise<RgbImage[]>;

/**
 * Initial noise of image `sample` of prompt `prompt`: one stream per (prompt, sample), so an image
 * does not depend on which other images share its batch.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { initialNoise } from "./generator.ts";
 *
 * const [seed, prompt, sample, h, w, c] = [0, 2, 1, 8, 8, 4];
 * const x = initialNoise(seed, prompt, sample, h * w * c);
 * assert.deepEqual(initialNoise(seed, prompt, sample, h * w * c), x); // same seed, same noise
 * ```
 */
export function initialNoise(
  seed: number,
  prompt: number,
  sample: number,
  size: number,
): Float32Array {
  return Rng.stream(seed, [STREAM.sampler, prompt, sample]).normal(size);
}
