/**
 * Text-to-image generation with a trained run through TensorFlow.js: CLIP text states, a sampler
 * from `lib/diffusion` with classifier-free guidance (unconditional and conditional halves in one
 * batch), then the autoencoder's decoder.
 *
 * Each image's initial noise comes from `initialNoise` (lib/diffusion/generator.ts, one stream per
 * prompt and sample), so an image does not depend on which other images share its batch, and a
 * guidance sweep starts every scale from the same noise. `(o) => generate(run, o)` is an
 * `ImageGenerator`.
 *
 * @example
 * ```ts
 * async function example() {
 *   const run = await loadRun("runs/default");
 *   const images = await generate(run, { prompts: ["a red circle"], n: 4, guidance: 4, steps: 25, scheduler: "dpmpp_2m", seed: 0 });
 * }
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import { decode } from "../models/autoencoder.ts";
import { unetForward } from "../models/unet.ts";
import {
  classifierFreeGuidance,
  type GenerateOptions,
  getSampler,
  initialNoise,
  makeSchedule,
  type ModelFn,
  type NoiseSchedule,
  type ScheduleConfig,
} from "../diffusion/mod.ts";
import type { RgbImage } from "../plot/mod.ts";
import {
  contextTokens,
  encodeCaptions,
  type FrozenAutoencoder,
  type FrozenClip,
  type TrainedUnet,
} from "./stages.ts";
import { type LoadedModel, loadModel } from "./model_files.ts";
import { checkpointName, loadCheckpoint } from "../train/mod.ts";
import type { Params } from "../nn/mod.ts";
import type { RecipePreset } from "./presets.ts";
import type { TextContext } from "../models/text_context.ts";
import { unetConfigFor } from "./stages.ts";
import { WordTokenizer } from "../models/tokenizer.ts";
import type { AutoencoderConfig } from "../models/autoencoder.ts";
import type { ClipConfig } from "../models/clip.ts";
import type { UnetConfig } from "../models/unet.ts";

/** The frozen parts of a trained run. */
export interface LoadedRun {
  dir: string;
  ae: FrozenAutoencoder;
  clip: FrozenClip;
  unet: TrainedUnet;
  schedule: NoiseSchedule;
  imageSize: number;
  /** What the UNet was trained to cross-attend to (see the preset's `unet.textContext`). */
  textContext: TextContext;
}

/** Load a run folder written by `deno task train`; errors say which part is missing. */
/** Options of {@link loadRun}. */
export interface LoadRunOptions {
  /**
   * UNet weights from a training checkpoint instead of the finished model: a step number or a
   * `ckpt-XXXXXXXX` name under `<run>/unet/`. Its EMA weights are used when it has them, as the
   * finished model does. Only the autoencoder and CLIP must be finished.
   */
  checkpoint?: number | string;
}

export async function loadRun(dir: string, opts: LoadRunOptions = {}): Promise<LoadedRun> {
  try {
    await Deno.stat(dir);
  } catch {
    throw new Error(`run folder ${dir} does not exist`);
  }
  // A part without model.json was never finished; one with it must load cleanly, and a corrupt
  // one gets loadModel's precise error (file, size or field).
  const parts = opts.checkpoint === undefined
    ? ["autoencoder", "clip", "unet"]
    : ["autoencoder", "clip"];
  for (const part of parts) {
    if (!(await exists(`${dir}/${part}/model/model.json`))) {
      throw new Error(
        `${dir}/${part}/model: no finished ${part} model (train it with: deno task train --out ${dir} --resume)`,
      );
    }
  }
  const a = await loadModel<AutoencoderConfig>(`${dir}/autoencoder/model`, "autoencoder");
  const c = await loadModel<ClipConfig>(`${dir}/clip/model`, "clip");
  const u = opts.checkpoint === undefined
    ? await loadModel<UnetConfig>(`${dir}/unet/model`, "unet")
    : await loadUnetCheckpoint(dir, opts.checkpoint);
  const tokenizer = await WordTokenizer.load(`${dir}/clip/tokenizer.json`);
  const schedule = makeSchedule((u.info.extra.schedule ?? {}) as Partial<ScheduleConfig>);
  return {
    dir,
    ae: {
      params: a.params,
      config: a.info.config,
      scalingFactor: a.info.extra.scalingFactor as number,
    },
    clip: { params: c.params, config: c.info.config, tokenizer },
    unet: { params: u.params, config: u.info.config },
    schedule,
    imageSize: c.info.config.imageSize,
    // Models saved before the option existed were trained on the states alone.
    textContext: (u.info.extra.textContext ?? "states") as TextContext,
  };
}

/** A `ModelFn` for a batch of contexts, with classifier-free guidance (skipped at scale 1). */
export function guidedUnet(
  run: LoadedRun,
  ctx: Float32Array,
  b: number,
  guidance: number,
): ModelFn {
  const { config: cfg, params } = run.unet;
  const [T, D] = [contextTokens(run.clip, run.textContext), run.clip.config.textWidth];
  const [h, w, c] = latentDims(run);
  const call = async (x: Float32Array, t: number, context: Float32Array, n: number) => {
    const out = tf.tidy(() =>
      unetForward(params, cfg, {
        x: tf.tensor4d(x, [n, h, w, c]),
        t: tf.fill([n], t),
        context: tf.tensor3d(context, [n, T, D]),
      })
    );
    const data = await out.data<"float32">();
    out.dispose();
    return new Float32Array(data);
  };
  if (guidance === 1) return (x, t) => call(x, t, ctx.subarray(b * T * D), b);
  return classifierFreeGuidance((x2, t) => call(x2, t, ctx, 2 * b), guidance);
}

function latentDims(run: LoadedRun): [number, number, number] {
  const f = 2 ** (run.ae.config.blockChannels.length - 1);
  return [run.imageSize / f, run.imageSize / f, run.ae.config.latentChannels];
}

/** Decode scaled latents to RGB images. */
export async function decodeLatents(
  run: LoadedRun,
  z: Float32Array,
  n: number,
): Promise<RgbImage[]> {
  const [h, w, c] = latentDims(run);
  const img = tf.tidy(() => {
    const x = decode(
      run.ae.params,
      run.ae.config,
      tf.div(tf.tensor4d(z, [n, h, w, c]), run.ae.scalingFactor) as tf.Tensor4D,
    );
    return tf.clipByValue(tf.mul(tf.add(x, 1), 127.5), 0, 255);
  });
  const data = await img.data<"float32">();
  img.dispose();
  const s = run.imageSize, px = s * s * 3;
  return Array.from({ length: n }, (_, i) => ({
    data: Uint8Array.from(data.subarray(i * px, (i + 1) * px), (v) => Math.round(v)),
    width: s,
    height: s,
  }));
}

/** Generate `n` images per prompt (prompt-major order). */
export async function generate(run: LoadedRun, o: GenerateOptions): Promise<RgbImage[]> {
  if (!o.prompts.length) throw new Error("generate: no prompts given");
  const sampler = getSampler(o.scheduler);
  const [h, w, c] = latentDims(run);
  const per = h * w * c;
  const jobs: [number, number][] = [];
  o.prompts.forEach((_, p) => {
    for (let k = 0; k < o.n; k++) jobs.push([p, k]);
  });
  const states = await encodeCaptions(run.clip, ["", ...o.prompts], run.textContext);
  const ctxPer = contextTokens(run.clip, run.textContext) * run.clip.config.textWidth;
  const bs = o.batchSize ?? 32;
  const images: RgbImage[] = [];
  for (let i = 0; i < jobs.length; i += bs) {
    const part = jobs.slice(i, i + bs), b = part.length;
    const x = new Float32Array(b * per);
    // Context layout: [uncond x b, cond x b], matching classifierFreeGuidance's [uncond, cond].
    const ctx = new Float32Array(2 * b * ctxPer);
    part.forEach(([p, k], j) => {
      x.set(initialNoise(o.seed, p, k, per), j * per);
      ctx.set(states.subarray(0, ctxPer), j * ctxPer);
      ctx.set(states.subarray((p + 1) * ctxPer, (p + 2) * ctxPer), (b + j) * ctxPer);
    });
    const model = guidedUnet(run, ctx, b, o.guidance);
    const z = await sampler(model, x, run.schedule, { steps: o.steps, seed: o.seed + i });
    images.push(...await decodeLatents(run, z, b));
    o.onProgress?.(images.length, jobs.length);
  }
  return images;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/**
 * UNet weights (EMA when present) and config from a checkpoint `unet/<which>` of a run folder (a
 * kit run or a run trained on an SD folder's parts); the caller disposes the parameters.
 *
 * @example
 * ```ts
 * import { loadUnetCheckpoint } from "./generate.ts";
 *
 * async function example() { // a run with checkpoints, e.g. runs/default
 *   const u = await loadUnetCheckpoint("runs/default", 500); // or "ckpt-00000500"
 *   console.log(u.info.config.blockChannels, u.info.extra?.step);
 * }
 * ```
 */
export async function loadUnetCheckpoint(
  dir: string,
  which: number | string,
): Promise<LoadedModel<UnetConfig>> {
  const name = typeof which === "number" ? checkpointName(which) : which;
  const ck = await loadCheckpoint(`${dir}/unet/${name}`);
  const settings = (ck.state.config as { settings?: RecipePreset["unet"] } | undefined)?.settings;
  if (!settings) throw new Error(`${dir}/unet/${name}/state.json: no UNet settings recorded`);
  const weights = Object.keys(ck.tensors.ema ?? {}).length ? ck.tensors.ema! : ck.tensors.model;
  const cfg = unetConfigFor(settings.model, weights);
  const params: Params = {};
  for (const [k, t] of Object.entries(weights)) {
    params[k] = tf.variable(tf.tensor(t.data, t.shape, "float32"), false);
  }
  return {
    params,
    info: {
      format: "xgen-kit-model/1",
      kind: "unet",
      config: cfg,
      weights: name,
      weightsBytes: 0,
      params: Object.values(weights).reduce((a, t) => a + t.data.length, 0),
      extra: {
        schedule: settings.schedule,
        checkpoint: name,
        step: ck.step,
        textContext: settings.textContext ?? "states",
      },
    },
  };
}
