/**
 * The inputs of a tiny UNet stage: a shapes-world shard set, a frozen tiny autoencoder and CLIP
 * (two steps each: enough to give the UNet real latents and text states), and their conditioning
 * set, for tests that train or resume the UNet stage.
 *
 * @example
 * ```ts
 * const { data, cond } = await tinyConditioning(dir, { seed: 1, count: 32 });
 * ```
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import {
  autoencoderStage,
  buildConditioning,
  clipStage,
  type ConditioningSet,
  type ImageSet,
  loadImageSet,
  resolvePreset,
} from "../../lib/recipe/mod.ts";
import type { TextContext } from "../../lib/models/text_context.ts";
import { buildShapesWorldShards } from "../../lib/data/mod.ts";

/** Options of {@link tinyConditioning}. */
export interface TinyConditioningOptions {
  /** Seed of the images and of both frozen stages (default 1). */
  seed?: number;
  /** Images, 16 x 16, in shards of 32 (default 32). */
  count?: number;
  /** What the conditioning keeps of the text (default: the tiny preset's UNet's). */
  textContext?: TextContext;
}

/**
 * Build `count` shapes-world images under `dir/data`, train the tiny autoencoder (`dir/ae`) and
 * CLIP (`dir/clip`) two steps each, encode the set with them and free their weights.
 *
 * @example
 * ```ts
 * const { cond } = await tinyConditioning(dir, { textContext: "states" });
 * ```
 */
export async function tinyConditioning(
  dir: string,
  o: TinyConditioningOptions = {},
): Promise<{ data: ImageSet; cond: ConditioningSet }> {
  const preset = resolvePreset("tiny");
  const seed = o.seed ?? 1;
  await buildShapesWorldShards({
    outDir: `${dir}/data`,
    seed,
    count: o.count ?? 32,
    perShard: 32,
    size: 16,
  });
  const data = await loadImageSet(`${dir}/data`);
  const common = { data, seed, resume: false, progress: false };
  const ae = await autoencoderStage({
    ...common,
    dir: `${dir}/ae`,
    settings: { ...preset.autoencoder, steps: 2 },
  });
  const clip = await clipStage({
    ...common,
    dir: `${dir}/clip`,
    settings: { ...preset.clip, steps: 2 },
  });
  const textContext = o.textContext ?? preset.unet.textContext;
  const cond = await buildConditioning(data, ae, clip, undefined, textContext);
  tf.dispose([...Object.values(ae.params), ...Object.values(clip.params)]);
  return { data, cond };
}
