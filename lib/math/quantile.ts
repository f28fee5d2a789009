/**
 * Quantiles of sorted samples, as numpy's default (linear interpolation between order
 * statistics, "type 7"), and the percentile interval of bootstrap replicates built on them: the
 * one definition the bootstrap intervals of the evaluations, the study and the inference
 * statistics share.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { quantileSorted } from "./quantile.ts";
 *
 * assert.equal(quantileSorted([1, 2, 3, 4], 0.5), 2.5);
 * assert.equal(quantileSorted([1, 2, 3, 4], 1), 4);
 * ```
 * @module
 */

/**
 * Quantile `q` (0..1) of ascending `sorted` with linear interpolation; NaN for an empty sample.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { quantileSorted } from "./quantile.ts";
 *
 * assert.equal(quantileSorted(new Float64Array([0, 10]), 0.25), 2.5);
 * assert.ok(Number.isNaN(quantileSorted([], 0.5)));
 * ```
 */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const pos = q * (n - 1), i = Math.floor(pos), f = pos - i;
  return i + 1 < n ? sorted[i] + f * (sorted[i + 1] - sorted[i]) : sorted[n - 1];
}

/**
 * Percentile interval of bootstrap replicates at `confidence` (NaN replicates are ignored):
 * the `(1 - confidence) / 2` and `(1 + confidence) / 2` quantiles.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { percentileInterval } from "./quantile.ts";
 *
 * const { lo, hi } = percentileInterval([0.4, NaN, 0.5, 0.6], 0.5);
 * assert.ok(Math.abs(lo - 0.45) < 1e-12 && Math.abs(hi - 0.55) < 1e-12);
 * ```
 */
export function percentileInterval(
  values: ArrayLike<number>,
  confidence = 0.95,
): { lo: number; hi: number } {
  const v = Float64Array.from(Array.from(values).filter((x) => !Number.isNaN(x))).sort();
  const a = (1 - confidence) / 2;
  return { lo: quantileSorted(v, a), hi: quantileSorted(v, 1 - a) };
}
