/**
 * Percentile bootstrap of column means over resampled rows: the interval the inference
 * statistics (`best_of_n_stats.ts`, `touch_up_stats.ts`) put on their figures. A row is one unit
 * of the design (a prompt's pool of candidates, a touched-up image), a column one figure (the
 * best-of-N score at one N, a before or after score); every replicate draws the rows once with
 * replacement and averages every column over that same draw, so the figures of one call (all N
 * of a curve, before and after of a pair) move together, and a paired difference column gets a
 * paired interval. Draws come from `Rng.stream(seed, [STREAM.eval, 0xb0f5])`; quantiles are
 * numpy's default (linear interpolation), via lib/eval/human's `quantileSorted`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bootstrapMeans } from "./bootstrap_means.ts";
 *
 * // Two prompts, one figure each: the mean is 2, a resample's mean is 1, 2 or 3.
 * const [e] = bootstrapMeans([[1], [3]], { resamples: 200, seed: 0 });
 * assert.deepEqual([e.value, e.lo, e.hi], [2, 1, 3]);
 * ```
 * @module
 */
import { quantileSorted } from "../math/quantile.ts";
import { Rng, STREAM } from "../util/rng.ts";

// Its own sub-stream of STREAM.eval (lib/eval/clip_fid uses 3..5), so these draws never
// coincide with another interval's for the same seed.
const MEANS_STREAM = 0xb0f5;

/** A mean with its percentile bootstrap interval. */
export interface MeanEstimate {
  /** The mean over all rows. */
  value: number;
  /** Lower end of the interval. */
  lo: number;
  /** Upper end of the interval. */
  hi: number;
  /** Coverage, e.g. 0.95. */
  level: number;
  /** Bootstrap replicates behind `lo` and `hi`. */
  resamples: number;
}

/** Options of {@link bootstrapMeans} and the statistics built on it. */
export interface MeanBootstrapOptions {
  /** Replicates (default 2000). */
  resamples?: number;
  /** Coverage in (0, 1) (default 0.95). */
  level?: number;
  /** Seed of the resampling stream (default 0). */
  seed?: number;
}

/**
 * The options with their defaults filled in, checked: one line naming `where` and the field on
 * bad input.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { meanBootstrapSettings } from "./bootstrap_means.ts";
 *
 * assert.deepEqual(meanBootstrapSettings({}, "x"), { resamples: 2000, level: 0.95, seed: 0 });
 * assert.throws(() => meanBootstrapSettings({ level: 95 }, "x"), /^Error: x: level must be in/);
 * ```
 */
export function meanBootstrapSettings(
  o: MeanBootstrapOptions,
  where: string,
): Required<MeanBootstrapOptions> {
  const resamples = o.resamples ?? 2000, level = o.level ?? 0.95, seed = o.seed ?? 0;
  if (!Number.isInteger(resamples) || resamples < 2) {
    throw new Error(`${where}: resamples must be an integer >= 2, got ${resamples}`);
  }
  if (!(level > 0 && level < 1)) throw new Error(`${where}: level must be in (0, 1), got ${level}`);
  if (!Number.isInteger(seed)) throw new Error(`${where}: seed must be an integer, got ${seed}`);
  return { resamples, level, seed };
}

/**
 * Mean of every column of `rows` with a percentile bootstrap interval over rows (see the module
 * doc). Every row must have the same length and finite values.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bootstrapMeans } from "./bootstrap_means.ts";
 *
 * // A constant column has no spread; the second column's interval holds its mean.
 * const rows = [[5, 0], [5, 1], [5, 3], [5, 4]];
 * const [a, b] = bootstrapMeans(rows, { resamples: 500, seed: 1 });
 * assert.deepEqual([a.value, a.lo, a.hi], [5, 5, 5]);
 * assert.ok(b.value === 2 && b.lo < 2 && b.hi > 2 && b.lo >= 0 && b.hi <= 4);
 * ```
 */
export function bootstrapMeans(
  rows: readonly ArrayLike<number>[],
  options: MeanBootstrapOptions = {},
): MeanEstimate[] {
  const where = "bootstrapMeans";
  const { resamples, level, seed } = meanBootstrapSettings(options, where);
  const n = rows.length;
  if (n === 0) throw new Error(`${where}: no rows`);
  const cols = rows[0].length;
  for (let r = 0; r < n; r++) {
    if (rows[r].length !== cols) {
      throw new Error(`${where}: row ${r} has ${rows[r].length} values, row 0 has ${cols}`);
    }
    for (let c = 0; c < cols; c++) {
      if (!Number.isFinite(rows[r][c])) {
        throw new Error(`${where}: row ${r} column ${c} is ${rows[r][c]}, not a finite number`);
      }
    }
  }
  const value = new Float64Array(cols);
  for (const row of rows) for (let c = 0; c < cols; c++) value[c] += row[c];
  for (let c = 0; c < cols; c++) value[c] /= n;
  // Column-major replicates, so each column's are one contiguous slice to sort.
  const reps = new Float64Array(cols * resamples);
  const sum = new Float64Array(cols);
  const rng = Rng.stream(seed, [STREAM.eval, MEANS_STREAM]);
  for (let b = 0; b < resamples; b++) {
    sum.fill(0);
    for (let i = 0; i < n; i++) {
      const row = rows[rng.int(n)];
      for (let c = 0; c < cols; c++) sum[c] += row[c];
    }
    for (let c = 0; c < cols; c++) reps[c * resamples + b] = sum[c] / n;
  }
  const alpha = (1 - level) / 2;
  return Array.from({ length: cols }, (_, c) => {
    const col = reps.subarray(c * resamples, (c + 1) * resamples).sort();
    const lo = quantileSorted(col, alpha), hi = quantileSorted(col, 1 - alpha);
    return { value: value[c], lo, hi, level, resamples };
  });
}
