/**
 * CLIP score (Hessel et al. 2021, torchmetrics' `CLIPScore` definition): for each image/caption
 * pair, `100 * max(cos(image_embedding, text_embedding), 0)`, averaged over pairs. Embeddings
 * are L2-normalised here, so raw (unnormalised) encoder outputs can be passed.
 *
 * Note: torchmetrics' implementation clamps the *mean* at 0 rather than each pair; the two agree
 * whenever no pair has a negative cosine. This module clamps each pair, as the formula states.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clipScore } from "./clip_score.ts";
 *
 * const img = { data: new Float32Array([2, 0, 0, 1]), n: 2, d: 2 }; // raw, not normalised
 * const txt = { data: new Float32Array([1, 0, 0, -3]), n: 2, d: 2 };
 * const { score, perImage } = clipScore(img, txt);
 * assert.deepEqual([score, Array.from(perImage)], [50, [100, 0]]); // cos -1 is clamped to 0
 * ```
 * @module
 */
import { checkFeatureMatrix, type FeatureMatrix } from "./feature_matrix.ts";

/** CLIP score and its per-pair terms. */
export interface ClipScoreResult {
  /** Mean over pairs of `100 * max(cos, 0)`. */
  score: number;
  /** `100 * max(cos, 0)` per pair. */
  perImage: Float64Array;
}

/**
 * CLIP score of `n` image embeddings against their `n` caption embeddings (row i with row i).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clipScore } from "./clip_score.ts";
 *
 * const img = { data: new Float32Array([1, 0]), n: 1, d: 2 };
 * const { score } = clipScore(img, { data: new Float32Array([1, 1]), n: 1, d: 2 });
 * assert.ok(Math.abs(score - 100 / Math.sqrt(2)) < 1e-9);
 * ```
 */
export function clipScore(images: FeatureMatrix, texts: FeatureMatrix): ClipScoreResult {
  checkFeatureMatrix(images, "clipScore: image embeddings");
  checkFeatureMatrix(texts, "clipScore: text embeddings");
  if (images.n !== texts.n || images.d !== texts.d) {
    throw new Error(
      `clipScore: image embeddings are ${images.n}x${images.d} but text embeddings ` +
        `${texts.n}x${texts.d}; expected one caption per image, same width`,
    );
  }
  if (images.n === 0) throw new Error("clipScore: no pairs");
  const { n, d } = images;
  const perImage = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    let dot = 0, na = 0, nb = 0;
    for (let j = 0; j < d; j++) {
      const a = images.data[i * d + j], b = texts.data[i * d + j];
      dot += a * b;
      na += a * a;
      nb += b * b;
    }
    if (na === 0 || nb === 0) {
      throw new Error(`clipScore: pair ${i} has a zero ${na === 0 ? "image" : "text"} embedding`);
    }
    const s = 100 * Math.max(dot / Math.sqrt(na * nb), 0);
    perImage[i] = s;
    sum += s;
  }
  return { score: sum / n, perImage };
}
