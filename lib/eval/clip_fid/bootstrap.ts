/**
 * Percentile bootstrap intervals for the reported figures: resample the images with replacement
 * (seeded {@link Rng}, stream `[STREAM.eval, 3]`), recompute the statistic, and take the
 * `(1 - level)/2` and `(1 + level)/2` quantiles (linear interpolation, numpy's default).
 *
 * For FID each replicate recomputes the generated set's statistics and the Frechet distance
 * (O(n d^2 + d^3) each), so the default replicate count is smaller than for the CLIP score; the
 * reference set is resampled too when it is given as features rather than cached statistics.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clipScoreWithInterval, formatEstimate } from "./bootstrap.ts";
 *
 * // Every pair at 45 degrees: each CLIP score is 100 / sqrt(2), so is every resample.
 * const img = { data: new Float32Array([1, 0, 0, 1]), n: 2, d: 2 };
 * const txt = { data: new Float32Array([1, 1, 1, 1]), n: 2, d: 2 };
 * const cs = clipScoreWithInterval(img, txt, { resamples: 100, seed: 0 });
 * assert.equal(formatEstimate(cs), "70.71 [70.71, 70.71] (95% bootstrap, 100 resamples)");
 * ```
 * @module
 */
import { quantileSorted as quantileOf } from "../../math/quantile.ts";
import { Rng, STREAM } from "../../util/rng.ts";
import { clipScore } from "./clip_score.ts";
import { checkFeatureMatrix, type FeatureMatrix, gatherRows } from "./feature_matrix.ts";
import { type FrechetDetails, frechetDistanceDetailed, type FrechetOptions } from "./frechet.ts";
import { type FeatureStats, featureStats } from "./stats.ts";

/** A figure with its bootstrap interval. */
export interface Estimate {
  /** The statistic on the full data. */
  value: number;
  lo: number;
  hi: number;
  /** Coverage level, e.g. 0.95. */
  level: number;
  resamples: number;
}

/** Options of the bootstrap functions. */
export interface BootstrapOptions {
  /** Replicates (default 1000; 50 for FID). */
  resamples?: number;
  /** Coverage (default 0.95). */
  level?: number;
  /** Seed (default 0). */
  seed?: number;
}

function opts(o: BootstrapOptions, defaultResamples: number) {
  const resamples = o.resamples ?? defaultResamples;
  const level = o.level ?? 0.95;
  if (!Number.isInteger(resamples) || resamples < 2) {
    throw new Error(`bootstrap: resamples must be an integer >= 2, got ${resamples}`);
  }
  if (!(level > 0 && level < 1)) {
    throw new Error(`bootstrap: level must be in (0, 1), got ${level}`);
  }
  return { resamples, level, seed: o.seed ?? 0 };
}

/**
 * Quantile `q` of ascending `sorted` with linear interpolation between order statistics.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { quantileSorted } from "./bootstrap.ts";
 *
 * assert.equal(quantileSorted(new Float64Array([1, 2, 3, 4]), 0.5), 2.5);
 * ```
 */
export function quantileSorted(sorted: Float64Array, q: number): number {
  // An empty bootstrap is a caller's bug here, not a NaN to carry into a report.
  if (sorted.length === 0) throw new Error("quantileSorted: empty sample");
  return quantileOf(sorted, q);
}

/**
 * Generic percentile bootstrap over `n` items: `statistic(indices)` gets a resample (with
 * replacement) of `0..n-1`. Returns the interval and the sorted replicate values.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bootstrap } from "./bootstrap.ts";
 *
 * const x = [1, 2, 3, 4, 5];
 * const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
 * const b = bootstrap(x.length, (idx) => mean(Array.from(idx, (i) => x[i])), { resamples: 500 });
 * assert.ok(b.lo <= 3 && 3 <= b.hi);
 * ```
 */
export function bootstrap(
  n: number,
  statistic: (indices: Int32Array) => number,
  options: BootstrapOptions = {},
): { lo: number; hi: number; level: number; resamples: number; replicates: Float64Array } {
  if (!Number.isInteger(n) || n < 1) throw new Error(`bootstrap: n must be >= 1, got ${n}`);
  const { resamples, level, seed } = opts(options, 1000);
  const rng = Rng.stream(seed, [STREAM.eval, 3]);
  const reps = new Float64Array(resamples);
  const idx = new Int32Array(n);
  for (let b = 0; b < resamples; b++) {
    for (let i = 0; i < n; i++) idx[i] = rng.int(n);
    reps[b] = statistic(idx);
  }
  reps.sort();
  const alpha = (1 - level) / 2;
  return {
    lo: quantileSorted(reps, alpha),
    hi: quantileSorted(reps, 1 - alpha),
    level,
    resamples,
    replicates: reps,
  };
}

/**
 * CLIP score with a percentile bootstrap interval over image/caption pairs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clipScoreWithInterval } from "./bootstrap.ts";
 *
 * // Pair 0 matches (100), pair 1 is orthogonal (0): the score is 50, resamples span 0..100.
 * const img = { data: new Float32Array([1, 0, 0, 1]), n: 2, d: 2 };
 * const txt = { data: new Float32Array([1, 0, 1, 0]), n: 2, d: 2 };
 * const e = clipScoreWithInterval(img, txt, { resamples: 200 });
 * assert.equal(e.value, 50);
 * assert.ok(e.lo >= 0 && e.lo <= 50 && e.hi >= 50 && e.hi <= 100);
 * ```
 */
export function clipScoreWithInterval(
  images: FeatureMatrix,
  texts: FeatureMatrix,
  options: BootstrapOptions = {},
): Estimate {
  const { score, perImage } = clipScore(images, texts);
  const n = perImage.length;
  const b = bootstrap(n, (idx) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += perImage[idx[i]];
    return s / n;
  }, options);
  return { value: score, lo: b.lo, hi: b.hi, level: b.level, resamples: b.resamples };
}

/** Frechet distance with its bootstrap interval and details. */
export interface FrechetEstimate extends Estimate {
  details: FrechetDetails;
  /** Replicates that needed the eps fallback. */
  regularizedReplicates: number;
}

/**
 * Frechet distance of `features` to `reference` with a percentile bootstrap interval. The
 * generated images are resampled; a reference given as features is resampled too, cached
 * statistics are held fixed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { frechetWithInterval } from "./bootstrap.ts";
 * import { featureStats } from "./stats.ts";
 *
 * const feats = new Float32Array([0, 0, 2, 2, 1, 3, 3, 1]); // 4 generated images, d = 2
 * const refStats = featureStats(feats, 4, 2); // cached reference statistics, held fixed
 * const e = frechetWithInterval({ data: feats, n: 4, d: 2 }, refStats, { resamples: 20 });
 * assert.ok(Math.abs(e.value) < 1e-9); // same statistics as the reference
 * assert.ok(e.lo >= -1e-9 && e.hi >= e.lo && e.resamples === 20);
 * ```
 */
export function frechetWithInterval(
  features: FeatureMatrix,
  reference: FeatureStats | FeatureMatrix,
  options: BootstrapOptions & FrechetOptions = {},
): FrechetEstimate {
  checkFeatureMatrix(features, "frechetWithInterval: features");
  const refMatrix = "data" in reference ? reference : null;
  if (refMatrix) checkFeatureMatrix(refMatrix, "frechetWithInterval: reference");
  const refStats = refMatrix
    ? featureStats(refMatrix.data, refMatrix.n, refMatrix.d)
    : reference as FeatureStats;
  const fopts: FrechetOptions = { eps: options.eps, regularize: options.regularize };
  const details = frechetDistanceDetailed(
    featureStats(features.data, features.n, features.d),
    refStats,
    fopts,
  );
  const { resamples, level, seed } = opts(options, 50);
  // Independent streams for the two sets, so adding the reference does not change the draws.
  const rngGen = Rng.stream(seed, [STREAM.eval, 4]);
  const rngRef = Rng.stream(seed, [STREAM.eval, 5]);
  const reps = new Float64Array(resamples);
  let regularizedReplicates = 0;
  const draw = (rng: Rng, n: number) => {
    const idx = new Int32Array(n);
    for (let i = 0; i < n; i++) idx[i] = rng.int(n);
    return idx;
  };
  for (let b = 0; b < resamples; b++) {
    const g = gatherRows(features, draw(rngGen, features.n));
    const gs = featureStats(g, features.n, features.d);
    const rs = refMatrix
      ? featureStats(gatherRows(refMatrix, draw(rngRef, refMatrix.n)), refMatrix.n, refMatrix.d)
      : refStats;
    const r = frechetDistanceDetailed(gs, rs, fopts);
    if (r.regularized) regularizedReplicates++;
    reps[b] = r.distance;
  }
  reps.sort();
  const alpha = (1 - level) / 2;
  return {
    value: details.distance,
    lo: quantileSorted(reps, alpha),
    hi: quantileSorted(reps, 1 - alpha),
    level,
    resamples,
    details,
    regularizedReplicates,
  };
}

/**
 * One-line rendering of an estimate: `value [lo, hi] (95% bootstrap, N resamples)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatEstimate } from "./bootstrap.ts";
 *
 * const e = { value: 1, lo: 0.9, hi: 1.1, level: 0.95, resamples: 1000 };
 * assert.equal(formatEstimate(e, 2), "1.00 [0.90, 1.10] (95% bootstrap, 1000 resamples)");
 * ```
 */
export function formatEstimate(e: Estimate, digits = 2): string {
  const pct = Math.round(e.level * 1000) / 10;
  return `${e.value.toFixed(digits)} [${e.lo.toFixed(digits)}, ${e.hi.toFixed(digits)}] ` +
    `(${pct}% bootstrap, ${e.resamples} resamples)`;
}
