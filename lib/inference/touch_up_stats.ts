/**
 * What regional touch-ups buy, over K touched-up images: the region's score before and after
 * (a {@link Scorer} of the region's crop against its prompt, e.g. the CLIP score of
 * `clipScoreScorer`), the mean paired difference `after - before` with a percentile bootstrap
 * interval over images (paired: each replicate resamples whole images, see
 * `bootstrap_means.ts`), and the check that `touchUp` kept its contract: the count of pixels
 * outside the regenerated box that changed at all, which must be 0.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { touchUpSummary } from "./touch_up_stats.ts";
 *
 * // Scores already computed: every image gains 2 points, nothing outside the boxes changed.
 * const s = touchUpSummary({ before: [20, 25], after: [22, 27], outsideChanged: [0, 0] });
 * assert.deepEqual([s.difference.value, s.difference.lo, s.difference.hi], [2, 2, 2]);
 * assert.equal(s.outsideUnchanged, true);
 * ```
 * @module
 */
import type { RgbImage } from "../plot/mod.ts";
import { cropRgb, type PixelBox } from "../image/preprocess.ts";
import type { Scorer } from "./best_of_n.ts";
import type { TouchUpResult } from "./touch_up.ts";
import {
  bootstrapMeans,
  type MeanBootstrapOptions,
  meanBootstrapSettings,
  type MeanEstimate,
} from "./bootstrap_means.ts";

/**
 * Pixels of `after` outside `box` that differ from `before` in any channel.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { countChangedOutside } from "./touch_up_stats.ts";
 *
 * const before = { data: new Uint8Array(4 * 4 * 3), width: 4, height: 4 };
 * const after = { ...before, data: before.data.slice() };
 * after.data[0] = 1; // pixel (0, 0): outside the box
 * after.data[(1 * 4 + 1) * 3 + 2] = 9; // pixel (1, 1): inside
 * assert.equal(countChangedOutside(before, after, { x: 1, y: 1, width: 2, height: 2 }), 1);
 * ```
 */
export function countChangedOutside(before: RgbImage, after: RgbImage, box: PixelBox): number {
  const where = "countChangedOutside";
  const { width: w, height: h } = before;
  for (const [what, im] of [["before", before], ["after", after]] as const) {
    if (!(im?.data instanceof Uint8Array) || im.data.length !== im.width * im.height * 3) {
      throw new Error(`${where}: ${what} is not an RGB image (width * height * 3 bytes)`);
    }
  }
  if (after.width !== w || after.height !== h) {
    throw new Error(`${where}: after is ${after.width}x${after.height}, before ${w}x${h}`);
  }
  let changed = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (x >= box.x && x < box.x + box.width && y >= box.y && y < box.y + box.height) continue;
      const p = (y * w + x) * 3;
      const a = before.data, b = after.data;
      if (a[p] !== b[p] || a[p + 1] !== b[p + 1] || a[p + 2] !== b[p + 2]) changed++;
    }
  }
  return changed;
}

/** Per-image figures {@link touchUpSummary} takes. */
export interface TouchUpScores {
  /** The region's score in each input image. */
  before: ArrayLike<number>;
  /** The region's score in each touched-up image. */
  after: ArrayLike<number>;
  /** Changed pixels outside each image's box ({@link countChangedOutside}). */
  outsideChanged: ArrayLike<number>;
}

/** What {@link touchUpSummary} and {@link touchUpStats} return. */
export interface TouchUpStats {
  /** Images. */
  count: number;
  /** Mean region score before the touch-up, with its interval. */
  before: MeanEstimate;
  /** Mean region score after. */
  after: MeanEstimate;
  /** Mean paired difference `after - before`, with its paired interval. */
  difference: MeanEstimate;
  /** Fraction of images whose region scores higher after. */
  improved: number;
  /** Changed pixels outside the box, summed over images (0 when `touchUp` kept its contract). */
  outsideChanged: number;
  /** Whether `outsideChanged` is 0. */
  outsideUnchanged: boolean;
  /** The per-image figures. */
  perImage: { before: number; after: number; outsideChanged: number }[];
}

/**
 * Summarise per-image before/after scores and outside-pixel counts (see the module doc): one
 * bootstrap over images for before, after and their paired difference.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { touchUpSummary } from "./touch_up_stats.ts";
 *
 * const s = touchUpSummary(
 *   { before: [10, 10, 10, 10], after: [11, 13, 9, 15], outsideChanged: [0, 0, 0, 0] },
 *   { resamples: 400, seed: 0 },
 * );
 * assert.deepEqual([s.difference.value, s.improved, s.outsideChanged], [2, 0.75, 0]);
 * assert.ok(s.difference.lo < 2 && s.difference.hi > 2);
 * ```
 */
export function touchUpSummary(
  scores: TouchUpScores,
  options: MeanBootstrapOptions = {},
): TouchUpStats {
  const where = "touchUpSummary";
  const { before, after, outsideChanged } = scores;
  const k = before?.length;
  if (!(k >= 1)) throw new Error(`${where}: before must list at least one score`);
  if (after?.length !== k || outsideChanged?.length !== k) {
    throw new Error(
      `${where}: before has ${k} values, after ${after?.length}, outsideChanged ` +
        `${outsideChanged?.length}; expected one per image`,
    );
  }
  let changed = 0, improved = 0;
  const perImage = [];
  const rows: Float64Array[] = [];
  for (let i = 0; i < k; i++) {
    const b = before[i], a = after[i], o = outsideChanged[i];
    if (!Number.isFinite(b) || !Number.isFinite(a)) {
      throw new Error(`${where}: image ${i} scores ${b} before, ${a} after; expected finite`);
    }
    if (!Number.isInteger(o) || o < 0) {
      throw new Error(`${where}: image ${i} outsideChanged is ${o}, expected a count`);
    }
    changed += o;
    if (a > b) improved++;
    perImage.push({ before: b, after: a, outsideChanged: o });
    rows.push(Float64Array.of(b, a, a - b));
  }
  const [eb, ea, ed] = bootstrapMeans(rows, options);
  return {
    count: k,
    before: eb,
    after: ea,
    difference: ed,
    improved: improved / k,
    outsideChanged: changed,
    outsideUnchanged: changed === 0,
    perImage,
  };
}

/** One touched-up image for {@link touchUpStats}. */
export interface TouchUpSample {
  /** The image `touchUp` was given. */
  image: RgbImage;
  /** What `touchUp` returned for it. */
  result: TouchUpResult;
  /** The text the region is scored against ("a detailed face"). */
  prompt: string;
  /** The region to score (default `result.box`, the regenerated box). */
  region?: PixelBox;
}

/** Options of {@link touchUpStats}. */
export interface TouchUpStatsOptions extends MeanBootstrapOptions {
  /** Scores the region crops, e.g. `clipScoreScorer(towers)` for the CLIP score. */
  scorer: Scorer;
}

/**
 * Score each sample's region crop before and after with `scorer` (one call per image, the two
 * crops together), count changed pixels outside `result.box`, and summarise
 * ({@link touchUpSummary}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { touchUpStats } from "./touch_up_stats.ts";
 * import type { Scorer } from "./best_of_n.ts";
 *
 * // A stand-in scorer: mean brightness of the crop. The touch-up brightened its 2x2 box.
 * const mean = (d: Uint8Array) => d.reduce((a, b) => a + b, 0) / d.length;
 * const scorer: Scorer = {
 *   name: "brightness",
 *   score: (_p, ims) => Promise.resolve(Float32Array.from(ims, (im) => mean(im.data))),
 * };
 * const image = { data: new Uint8Array(4 * 4 * 3).fill(100), width: 4, height: 4 };
 * const box = { x: 1, y: 1, width: 2, height: 2 };
 * const out = image.data.slice();
 * for (const p of [5, 6, 9, 10]) out.fill(140, p * 3, p * 3 + 3); // the box's pixels
 * const mask = { mask: new Float32Array(16), width: 4, height: 4 };
 * const result = { image: { ...image, data: out }, box, mask, patch: image };
 * const s = await touchUpStats([{ image, result, prompt: "a face" }], { scorer, resamples: 10 });
 * assert.deepEqual([s.before.value, s.after.value, s.difference.value], [100, 140, 40]);
 * assert.equal(s.outsideChanged, 0);
 * ```
 */
export async function touchUpStats(
  samples: readonly TouchUpSample[],
  options: TouchUpStatsOptions,
): Promise<TouchUpStats> {
  const where = "touchUpStats";
  if (!Array.isArray(samples) || samples.length === 0) {
    throw new Error(`${where}: samples must be a non-empty array`);
  }
  if (typeof options?.scorer?.score !== "function") {
    throw new Error(`${where}: scorer must be a Scorer ({ name, score(prompt, images) })`);
  }
  meanBootstrapSettings(options, where); // bad options fail before any scoring
  const before: number[] = [], after: number[] = [], outside: number[] = [];
  for (let i = 0; i < samples.length; i++) {
    const { image, result, prompt } = samples[i];
    const region = samples[i].region ?? result?.box;
    if (!result?.image || !region) {
      throw new Error(`${where}: sample ${i} needs result (what touchUp returned) with its box`);
    }
    const { width: w, height: h } = image;
    if (result.image.width !== w || result.image.height !== h) {
      throw new Error(
        `${where}: sample ${i} result is ${result.image.width}x${result.image.height}, ` +
          `the image ${w}x${h}`,
      );
    }
    const inside = region.x >= 0 && region.y >= 0 && region.width >= 1 && region.height >= 1 &&
      region.x + region.width <= w && region.y + region.height <= h;
    if (!inside) {
      throw new Error(
        `${where}: sample ${i} region ${JSON.stringify(region)} is not inside the ${w}x${h} image`,
      );
    }
    outside.push(countChangedOutside(image, result.image, result.box));
    const s = await options.scorer.score(prompt, [
      cropRgb(image, region),
      cropRgb(result.image, region),
    ]);
    if (s.length !== 2) {
      throw new Error(`${where}: scorer "${options.scorer.name}" gave ${s.length} scores for 2`);
    }
    before.push(s[0]);
    after.push(s[1]);
  }
  try {
    return touchUpSummary({ before, after, outsideChanged: outside }, options);
  } catch (e) {
    throw new Error(`${where} (scorer "${options.scorer.name}"): ${(e as Error).message}`);
  }
}
