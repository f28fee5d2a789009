/**
 * Small exact statistics for preference studies: Wilson score intervals, the exact binomial
 * (sign) test, Holm's step-down correction, normal quantiles and percentile intervals.
 *
 * Everything is plain double arithmetic with no dependencies, so the numbers can be checked by
 * hand (see tests/human_eval_stats.test.ts).
 *
 * @example
 * ```ts
 * wilsonInterval(81, 263); // { lo: 0.2553, hi: 0.3662 }
 * binomialTwoSidedP(0, 10); // 2 / 1024
 * holm([0.01, 0.04, 0.03, 0.005]); // [0.03, 0.06, 0.06, 0.02]
 * ```
 * @module
 */
import { percentileInterval, quantileSorted } from "../../math/quantile.ts";

/** A two-sided interval. */
export interface Interval {
  lo: number;
  hi: number;
}

/**
 * Standard normal CDF, from the everywhere-convergent series
 * `Φ(x) = 1/2 + φ(x) (x + x^3/3 + x^5/(3·5) + ...)` for |x| < 8 (double precision there), and
 * the tail limits beyond.
 *
 * @example
 * ```ts
 * normalCdf(0); // 0.5
 * ```
 */
export function normalCdf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x <= -8) return 0;
  if (x >= 8) return 1;
  let term = x;
  let sum = x;
  for (let i = 1; i < 500; i++) {
    term *= (x * x) / (2 * i + 1);
    sum += term;
    if (Math.abs(term) < 1e-17 * Math.abs(sum)) break;
  }
  return 0.5 + sum * Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
}

/**
 * Standard normal quantile (inverse CDF) by bisection then Newton on {@link normalCdf}.
 *
 * @example
 * ```ts
 * normalQuantile(0.975); // 1.959963984540054
 * ```
 */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new Error(`normalQuantile: p must be in (0, 1), got ${p}`);
  let lo = -8;
  let hi = 8;
  for (let i = 0; i < 60; i++) {
    const mid = 0.5 * (lo + hi);
    if (normalCdf(mid) < p) lo = mid;
    else hi = mid;
  }
  let x = 0.5 * (lo + hi);
  for (let i = 0; i < 3; i++) {
    const pdf = Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
    if (pdf < 1e-300) break;
    x -= (normalCdf(x) - p) / pdf;
  }
  return x;
}

/** z for a two-sided interval at `confidence` (0.95 -> 1.95996...). */
export function zForConfidence(confidence: number): number {
  if (!(confidence > 0 && confidence < 1)) {
    throw new Error(`confidence must be in (0, 1), got ${confidence}`);
  }
  return normalQuantile(1 - (1 - confidence) / 2);
}

/**
 * Wilson score interval for `k` successes in `n` trials:
 * `(k + z²/2)/(n + z²) ± z/(n + z²) · sqrt(k(n-k)/n + z²/4)`. `k` may be fractional (ties
 * counted as half a win), which keeps the formula's centre and width continuous. `n = 0` gives
 * `[0, 1]`.
 *
 * @example
 * ```ts
 * wilsonInterval(5, 10); // { lo: 0.2366, hi: 0.7634 }
 * ```
 */
export function wilsonInterval(k: number, n: number, confidence = 0.95): Interval {
  if (!(n >= 0) || !(k >= 0) || k > n) {
    throw new Error(`wilsonInterval: need 0 <= k <= n, got k=${k}, n=${n}`);
  }
  if (n === 0) return { lo: 0, hi: 1 };
  const z = zForConfidence(confidence);
  const z2 = z * z;
  const centre = (k + z2 / 2) / (n + z2);
  const half = (z / (n + z2)) * Math.sqrt((k * (n - k)) / n + z2 / 4);
  return { lo: Math.max(0, centre - half), hi: Math.min(1, centre + half) };
}

const logFactorials: number[] = [0];

/** log(n!) from a growing table of cumulative logs (exact to rounding, fine for n up to 1e7). */
export function logFactorial(n: number): number {
  if (!Number.isInteger(n) || n < 0) throw new Error(`logFactorial: n must be a natural, got ${n}`);
  for (let i = logFactorials.length; i <= n; i++) {
    logFactorials.push(logFactorials[i - 1] + Math.log(i));
  }
  return logFactorials[n];
}

/**
 * Binomial probability mass `P(X = k)` for `X ~ Bin(n, p)`.
 *
 * @example
 * ```ts
 * binomialPmf(2, 4, 0.5); // 6 / 16
 * ```
 */
export function binomialPmf(k: number, n: number, p: number): number {
  if (k < 0 || k > n) return 0;
  if (p === 0) return k === 0 ? 1 : 0;
  if (p === 1) return k === n ? 1 : 0;
  return Math.exp(
    logFactorial(n) - logFactorial(k) - logFactorial(n - k) + k * Math.log(p) +
      (n - k) * Math.log(1 - p),
  );
}

/**
 * Exact two-sided binomial test p-value (the sign test when `p = 0.5`): the total probability of
 * every outcome no more likely than the observed one (R's `binom.test` convention, with a 1e-7
 * relative tolerance for ties in probability).
 *
 * @example
 * ```ts
 * binomialTwoSidedP(2, 10); // 112 / 1024
 * ```
 */
export function binomialTwoSidedP(k: number, n: number, p = 0.5): number {
  if (!Number.isInteger(k) || !Number.isInteger(n) || k < 0 || k > n) {
    throw new Error(`binomialTwoSidedP: need integers 0 <= k <= n, got k=${k}, n=${n}`);
  }
  if (!(p >= 0 && p <= 1)) throw new Error(`binomialTwoSidedP: p must be in [0, 1], got ${p}`);
  if (n === 0) return 1;
  const d = binomialPmf(k, n, p) * (1 + 1e-7);
  let total = 0;
  for (let i = 0; i <= n; i++) {
    const q = binomialPmf(i, n, p);
    if (q <= d) total += q;
  }
  return Math.min(1, total);
}

/**
 * Holm's step-down adjusted p-values (same order as the input; NaN entries stay NaN and do not
 * count towards the number of hypotheses).
 *
 * @example
 * ```ts
 * holm([0.01, 0.04, 0.03, 0.005]); // [0.03, 0.06, 0.06, 0.02]
 * ```
 */
export function holm(pValues: readonly number[]): number[] {
  const idx = pValues.map((p, i) => [p, i] as const).filter(([p]) => !Number.isNaN(p));
  idx.sort((a, b) => a[0] - b[0]);
  const m = idx.length;
  const out = pValues.map(() => NaN);
  let running = 0;
  idx.forEach(([p, i], rank) => {
    running = Math.max(running, Math.min(1, (m - rank) * p));
    out[i] = running;
  });
  return out;
}

/** Quantile of a sorted array (type 7, numpy's default); defined in lib/math. */
export { quantileSorted };

/** Percentile interval of bootstrap replicates; defined in lib/math. */
export { percentileInterval };
