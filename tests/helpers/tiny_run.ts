/**
 * A tiny, untrained run folder saved the way the pipeline's stages save their frozen models
 * (`clip/` with tokenizer, `autoencoder/`, `unet/`), for tests of sampling, export, rejection
 * sampling and touch-ups that need a run but not a trained one.
 */
import * as tf from "@tensorflow/tfjs-core";
import { Rng, STREAM } from "../../lib/util/rng.ts";
import { disposeParams, type Params } from "../../lib/nn/mod.ts";
import { WordTokenizer } from "../../lib/models/tokenizer.ts";
import { CLIP_PRESETS, type ClipConfig, initClip } from "../../lib/models/clip.ts";
import { AUTOENCODER_PRESETS, initAutoencoder } from "../../lib/models/autoencoder.ts";
import { initUnet, UNET_PRESETS } from "../../lib/models/unet.ts";
import { saveModel } from "../../lib/recipe/model_files.ts";
import { unetConfigFor } from "../../lib/recipe/stages.ts";
import type { ScheduleConfig } from "../../lib/diffusion/mod.ts";

/**
 * Perturb every 1-D parameter (norm scales and biases) by N(0, 0.3^2) noise: freshly initialised
 * ones are exactly 1 or 0, which would hide layout bugs in exports and make images uniform.
 *
 * @example
 * ```ts
 * const p = perturb(initClip(cfg, Rng.stream(1)), 11);
 * ```
 */
export function perturb(p: Params, seed: number): Params {
  const rng = Rng.stream(seed);
  for (const v of Object.values(p)) {
    if (v.rank === 1) v.assign(tf.add(v, tf.tensor(rng.normal(v.size), v.shape).mul(0.3)));
  }
  return p;
}

/** Options of {@link makeTinyRun}. */
export interface TinyRunOptions {
  /** Captions the word tokenizer is built from (its vocabulary). */
  captions: string[];
  /** Noise schedule recorded with the UNet (default: the schedule's defaults). */
  schedule?: Partial<ScheduleConfig>;
}

/**
 * Write a tiny run folder: tiny-preset CLIP (context 16), autoencoder (scaling factor 0.8) and
 * UNet, perturbed so outputs vary; deterministic for the same options.
 *
 * @example
 * ```ts
 * await makeTinyRun(`${dir}/run`, { captions: ["a red circle"] });
 * ```
 */
export async function makeTinyRun(dir: string, o: TinyRunOptions): Promise<void> {
  const tok = WordTokenizer.build(o.captions, { contextLength: 16 });
  await Deno.mkdir(`${dir}/clip`, { recursive: true });
  await tok.save(`${dir}/clip/tokenizer.json`);
  const clipCfg: ClipConfig = { ...CLIP_PRESETS.tiny, vocabSize: tok.vocabSize };
  const clip = perturb(initClip(clipCfg, Rng.stream(1, [STREAM.init, 2])), 11);
  await saveModel(`${dir}/clip/model`, { kind: "clip", config: clipCfg, params: clip });
  const aeCfg = AUTOENCODER_PRESETS.tiny;
  const ae = perturb(initAutoencoder(aeCfg, Rng.stream(1, [STREAM.init, 1])), 12);
  await saveModel(`${dir}/autoencoder/model`, {
    kind: "autoencoder",
    config: aeCfg,
    params: ae,
    extra: { scalingFactor: 0.8 },
  });
  const unetCfg = unetConfigFor(UNET_PRESETS.tiny, {
    latentChannels: aeCfg.latentChannels,
    contextDim: clipCfg.textWidth,
  });
  const unet = perturb(initUnet(unetCfg, Rng.stream(1, [STREAM.init, 3])), 13);
  await saveModel(`${dir}/unet/model`, {
    kind: "unet",
    config: unetCfg,
    params: unet,
    extra: { schedule: o.schedule ?? {}, ema: false },
  });
  for (const p of [clip, ae, unet]) disposeParams(p);
}
