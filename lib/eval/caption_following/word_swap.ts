/**
 * Does a trained UNet use a caption word? Denoise the same noised latents of real images twice,
 * once with their captions and once with one word swapped, and compare the training loss per
 * timestep. The difference (`delta`) is how much worse the model predicts when that word is
 * wrong: near 0 means the word is ignored. It needs no sampling and no classifier, and because
 * both passes share images, noise and timesteps it resolves differences that 8 samples per prompt
 * cannot (it is how the kit found that its UNet ignored shape words under `states` conditioning).
 *
 * @example
 * ```ts
 * import { wordSwapLoss } from "./word_swap.ts";
 * import { loadRun } from "../../recipe/generate.ts";
 *
 * async function example(
 *   images: Uint8Array[], // RGB bytes of the run's image size
 * ) {
 *   const run = await loadRun("runs/default");
 *   const rows = await wordSwapLoss(run, {
 *     images,
 *     captions: ["a red star", "a blue square"],
 *     swapped: ["a red circle", "a blue star"],
 *   });
 *   rows.map((r) => `${r.t}: ${r.delta}`);
 * }
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import { latentShape } from "../../models/autoencoder.ts";
import { concatBytes } from "../../util/concat.ts";
import { unetForward } from "../../models/unet.ts";
import { Rng } from "../../util/rng.ts";
import type { LoadedRun } from "../../recipe/generate.ts";
import { contextTokens, encodeCaptions, encodeLatents } from "../../recipe/stages.ts";

/** Options of {@link wordSwapLoss}. */
export interface WordSwapLossOptions {
  /** Images as RGB bytes (`size * size * 3` each, the run's image size). */
  images: Uint8Array[];
  /** One caption per image. */
  captions: string[];
  /** The same captions with the word under test changed, one per image. */
  swapped: string[];
  /**
   * Timesteps to probe (default 200, 300, ..., 600: with SD's schedule the middle noise levels,
   * where an object's outline is decided).
   */
  timesteps?: number[];
  /** Seed of the shared noise (default 0). */
  seed?: number;
  /** Images per UNet call (default 64). */
  batchSize?: number;
}

/** Mean losses at one timestep. */
export interface WordSwapLossRow {
  t: number;
  /** Mean squared error of the prediction against its training target, right captions. */
  loss: number;
  /** The same with the swapped captions. */
  swappedLoss: number;
  /** `swappedLoss - loss`: what the word is worth to the model at this noise level. */
  delta: number;
}

/**
 * Loss with the right and with the swapped captions at each timestep, over the same images and
 * noise (unweighted: the plain error of the run's prediction type). Throws, naming the field, on
 * mismatched lengths or image sizes.
 */
export async function wordSwapLoss(
  run: LoadedRun,
  o: WordSwapLossOptions,
): Promise<WordSwapLossRow[]> {
  const n = o.images.length, size = run.imageSize;
  if (n === 0) throw new Error("wordSwapLoss: images is empty");
  for (const [field, list] of [["captions", o.captions], ["swapped", o.swapped]] as const) {
    if (list.length !== n) {
      throw new Error(
        `wordSwapLoss: ${field} has ${list.length} entries, expected ${n} (one per image)`,
      );
    }
  }
  o.images.forEach((im, i) => {
    if (im.length !== size * size * 3) {
      throw new Error(
        `wordSwapLoss: images[${i}] has ${im.length} bytes, expected ${size}x${size}x3 = ${
          size * size * 3
        }`,
      );
    }
  });
  const timesteps = o.timesteps ?? [200, 300, 400, 500, 600];
  for (const t of timesteps) {
    if (!Number.isInteger(t) || t < 0 || t >= run.schedule.numTrainTimesteps) {
      throw new Error(
        `wordSwapLoss: timestep ${t} is not an integer in [0, ${run.schedule.numTrainTimesteps})`,
      );
    }
  }
  const batch = o.batchSize ?? 64;
  const [T, D] = [contextTokens(run.clip, run.textContext), run.clip.config.textWidth];
  const right = await encodeCaptions(run.clip, o.captions, run.textContext);
  const wrong = await encodeCaptions(run.clip, o.swapped, run.textContext);
  const z0 = await encodeLatents(
    run.ae,
    { images: concatBytes(o.images), width: size, height: size },
    o.images.map((_, i) => i),
  );
  const [h, w, c] = latentShape(run.ae.config, size, size), per = h * w * c;
  const rows: WordSwapLossRow[] = [];
  for (const t of timesteps) {
    // One noise draw per timestep, shared by both caption sets.
    const eps = Rng.stream(o.seed ?? 0, [t]).normal(z0.length);
    const xt = run.schedule.addNoise(z0, eps, t);
    const target = run.schedule.target(z0, eps, t);
    let sumRight = 0, sumWrong = 0;
    for (let i = 0; i < n; i += batch) {
      const b = Math.min(batch, n - i);
      // Summed per-image mean squared error of one batch under one caption set.
      const batchError = async (ctx: Float32Array) => {
        const s = tf.tidy(() => {
          const pred = unetForward(run.unet.params, run.unet.config, {
            x: tf.tensor4d(xt.subarray(i * per, (i + b) * per), [b, h, w, c]),
            t: tf.fill([b], t) as tf.Tensor1D,
            context: tf.tensor3d(ctx.subarray(i * T * D, (i + b) * T * D), [b, T, D]),
          });
          const y = tf.tensor4d(target.subarray(i * per, (i + b) * per), [b, h, w, c]);
          return tf.sum(tf.mean(tf.square(tf.sub(pred, y)), [1, 2, 3]));
        });
        const v = (await s.data())[0];
        s.dispose();
        return v;
      };
      sumRight += await batchError(right);
      sumWrong += await batchError(wrong);
    }
    rows.push({
      t,
      loss: sumRight / n,
      swappedLoss: sumWrong / n,
      delta: (sumWrong - sumRight) / n,
    });
  }
  return rows;
}
