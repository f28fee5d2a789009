/**
 * The committed tiny SD folders (tests/fixtures/tiny_sd/, written by torch.onnx.export through
 * tests/fixtures/make_tiny_sd.py) and their PyTorch reference images.
 */
import assert from "node:assert/strict";
import type { RgbImage } from "../../lib/plot/mod.ts";

/** Folder holding the variants (`fp32_int64_t/`, `fp16/`, `fp32_scalar_t/`), with a slash. */
export const TINY_SD = new URL("../fixtures/tiny_sd/", import.meta.url).pathname;

/** `reference.json` of a variant. */
export interface Reference {
  prompt: string;
  negative_prompt: string;
  ids: number[][];
  scheduler: string;
  steps: number;
  guidance: number;
  latents: { file: string; shape: number[] };
  image: { file: string; shape: number[] };
  model_dtype: string;
  timestep: string;
}

/**
 * A variant's reference job: its ids, NHWC initial latents, the PyTorch uint8 image, and `job`,
 * the `txt2img` options that sample it (seed 0; the latents fix the noise).
 */
export async function readReference(dir: string) {
  const ref = JSON.parse(await Deno.readTextFile(`${dir}/reference.json`)) as Reference;
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
