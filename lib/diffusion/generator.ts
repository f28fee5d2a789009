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
 * import assert from "node:assert/strict";
 * import { type ImageGenerator, initialNoise } from "./generator.ts";
 *
 * // A stand-in engine (gray 8x8 images); the real ones are `generate` and `txt2img`.
 * const gray = { data: new Uint8Array(8 * 8 * 3).fill(128), width: 8, height: 8 };
 * const gen: ImageGenerator = (o) => Promise.resolve(Array(o.prompts.length * o.n).fill(gray));
 * const o = { prompts: ["a red star"], n: 2, guidance: 7.5, steps: 20, scheduler: "ddim", seed: 0 };
 * assert.equal((await gen(o)).length, 2);
 * assert.equal(initialNoise(0, 0, 0, 4 * 8 * 8).length, 256); // prompt 0, sample 0
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
 * import assert from "node:assert/strict";
 * import type { ImageGenerator } from "./generator.ts";
 *
 * // The real ones: `(o) => generate(run, o)` (lib/recipe), `(o) => txt2img(pipe, o)` (lib/onnx).
 * const img = { data: new Uint8Array(4 * 4 * 3), width: 4, height: 4 };
 * const black: ImageGenerator = (o) => Promise.resolve(Array(o.prompts.length * o.n).fill(img));
 * const o = { prompts: ["a", "b"], n: 3, guidance: 5, steps: 10, scheduler: "ddim", seed: 1 };
 * assert.equal((await black(o)).length, 6);
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
