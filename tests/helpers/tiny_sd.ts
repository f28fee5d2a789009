/**
 * The committed tiny SD folders (tests/fixtures/tiny_sd/, written by torch.onnx.export through
 * tests/fixtures/make_tiny_sd.py) and their reference images: `reference.json` (make_tiny_sd.py's
 * own DDIM loop) and `reference_diffusers_{pndm,ddim}.json` (diffusers' scheduler classes, by
 * tests/fixtures/make_tiny_sd_references.py).
 */
import assert from "node:assert/strict";
import type { RgbImage } from "../../lib/plot/mod.ts";

/** Folder holding the variants (`fp32_int64_t/`, `fp16/`, `fp32_scalar_t/`), with a slash. */
export const TINY_SD = new URL("../fixtures/tiny_sd/", import.meta.url).pathname;

/**
 * Max level difference allowed against a PyTorch reference
 * (make_tiny_sd.py's own loop or diffusers' schedulers). float32: 1 level is rounding of
 * (x + 1) * 127.5 near .5 after float32 reassociation (onnxruntime vs torch kernels); 2 leaves room.
 * float16 (measured: max 1, mean ~0.05 levels, against ~1e-4 for float32): the reference rounds
 * the weights and each model's inputs and outputs to float16 but keeps the tensors inside a model
 * in float32; onnxruntime's CPU provider has float16 kernels for few ops and runs the rest in
 * float32 behind inserted casts, so it rounds a few more intermediate tensors to float16 (relative
 * 2^-11 each). Guidance 4 amplifies (cond - uncond) over the 4 steps; a build with more float16
 * kernels (CUDA, ARM) rounds more tensors, hence 3 rather than float32's 2.
 */
export const LEVEL_TOLERANCE: Readonly<Record<string, number>> = { float32: 2, float16: 3 };

/** A variant's `reference.json` or `reference_diffusers_*.json`. */
export interface Reference {
  prompt: string;
  negative_prompt: string;
  ids: number[][];
  scheduler: string;
  steps: number;
  /** The timesteps of the sampled job, in model evaluation order. */
  timesteps: number[];
  guidance: number;
  latents: { file: string; shape: number[] };
  image: { file: string; shape: number[] };
  model_dtype: string;
  timestep: string;
  /** diffusers references: the version and commit whose scheduler made them. */
  diffusers_version?: string;
  diffusers_commit?: string;
  /** diffusers references: `scheduler.timesteps` by timestep_spacing, then by step count. */
  timesteps_by_spacing?: Record<string, Record<string, number[]>>;
}

/**
 * A variant's reference job from `dir/file`: its ids, NHWC initial latents, the reference uint8
 * image, and `job`, the `txt2img` options that sample it (seed 0; the latents fix the noise).
 */
export async function readReference(dir: string, file = "reference.json") {
  const ref = JSON.parse(await Deno.readTextFile(`${dir}/${file}`)) as Reference;
  const lat = await Deno.readFile(`${dir}/${ref.latents.file}`);
  const nchw = new Float32Array(lat.buffer, lat.byteOffset, lat.byteLength / 4);
  const [n, c, h, w] = ref.latents.shape;
  const nhwc = new Float32Array(nchw.length);
  for (let b = 0; b < n; b++) {
    for (let k = 0; k < c; k++) {
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          nhwc[((b * h + y) * w + x) * c + k] = nchw[((b * c + k) * h + y) * w + x];
        }
      }
    }
  }
  const [, H, W] = ref.image.shape;
  const image: RgbImage = {
    data: await Deno.readFile(`${dir}/${ref.image.file}`),
    width: W,
    height: H,
  };
  const job = {
    prompts: [ref.prompt],
    negativePrompt: ref.negative_prompt,
    guidance: ref.guidance,
    steps: ref.steps,
    scheduler: ref.scheduler,
    seed: 0,
    latents: nhwc,
  };
  return { ref, latents: nhwc, image, size: [H, W] as const, job };
}

/** Largest and mean absolute difference of two images, in levels of 255. */
export function levelDiff(a: RgbImage, b: RgbImage): { max: number; mean: number } {
  assert.equal(a.width, b.width);
  assert.equal(a.height, b.height);
  let max = 0, sum = 0;
  for (let k = 0; k < a.data.length; k++) {
    const d = Math.abs(a.data[k] - b.data[k]);
    max = Math.max(max, d);
    sum += d;
  }
  return { max, mean: sum / a.data.length };
}
