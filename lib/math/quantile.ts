/**
 * Quantiles of sorted samples, as numpy's default (linear interpolation between order
 * statistics, "type 7"): the one definition the bootstrap intervals of the evaluations and the
 * inference statistics share.
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
