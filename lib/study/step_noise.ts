/**
 * How much a training loss swings from one step to the next, with a bootstrap interval over
 * steps.
 *
 * The statistic is half the sample variance of successive differences,
 * `var(L[i+1] - L[i]) / 2`. If the logged loss is a slowly moving trend plus step noise that is
 * independent from step to step, each difference is the noise's difference plus the trend's
 * small change, so half their variance estimates the noise's variance without choosing a
 * smoothing window; centring the differences (the sample variance subtracts their mean) also
 * removes a trend of constant slope, which matters early in training where the loss falls fast.
 *
 * Successive differences are not independent (neighbours share a loss, so their correlation is
 * -1/2 for white noise, and the loss noise itself may be autocorrelated), so the interval comes
 * from a moving-block bootstrap: blocks of consecutive differences drawn with replacement and
 * joined, which keeps the dependence inside a block. Two series of one experiment are resampled
 * with the same blocks (paired), because runs on one seed see the same data and share part of
 * their draws, so their step noise is correlated.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stepToStepVariance } from "./step_noise.ts";
 *
 * // A falling line plus alternating +-0.1: differences -1.2, -0.8, -1.2, -0.8 around their
 * // mean -1, so the slope drops out: (4 * 0.2^2 / 3) / 2.
 * const losses = [10.1, 8.9, 8.1, 6.9, 6.1];
 * assert.ok(Math.abs(stepToStepVariance(losses) - 0.16 / 3 / 2) < 1e-12);
 * ```
 * @module
 */
import { Rng, STREAM } from "../util/rng.ts";
import type { Interval } from "../eval/human/stats.ts";
import { percentileInterval } from "../math/quantile.ts";

/**
 * Half the sample variance (denominator n - 1) of the successive differences of `losses`; needs
 * at least three losses (two differences).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stepToStepVariance } from "./step_noise.ts";
 *
 * assert.equal(stepToStepVariance([1, 2, 3, 4]), 0); // a straight line does not swing
 * const v = stepToStepVariance([0, 1, 0, 1]); // differences 1, -1, 1: sample variance 4/3
 * assert.ok(Math.abs(v - 2 / 3) < 1e-12);
 * ```
 */
export function stepToStepVariance(losses: ArrayLike<number>): number {
  return halfVariance(differences(losses, "stepToStepVariance"));
}

/** Successive differences, checked: at least two, all finite. */
function differences(losses: ArrayLike<number>, who: string): Float64Array {
  if (losses.length < 3) {
    throw new Error(`${who}: need at least 3 losses (2 differences), got ${losses.length}`);
  }
  const d = new Float64Array(losses.length - 1);
  for (let i = 0; i < d.length; i++) {
    d[i] = losses[i + 1] - losses[i];
    if (!Number.isFinite(d[i])) {
      throw new Error(
        `${who}: loss ${i} or ${i + 1} is not finite (${losses[i]}, ${losses[i + 1]})`,
      );
    }
  }
  return d;
}

/** Half the sample variance of `d` (n - 1 denominator). */
function halfVariance(d: ArrayLike<number>): number {
  const n = d.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += d[i];
  mean /= n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (d[i] - mean) ** 2;
  return ss / (n - 1) / 2;
}

/** Options of {@link stepNoiseComparison}. */
export interface StepNoiseOptions {
  /** Bootstrap resamples (default 2000). */
  resamples?: number;
  /**
   * Consecutive differences per bootstrap block (default `max(2, round(cbrt(n)))` for n
   * differences, the usual n^(1/3) rate, at least 2 so the lag-1 dependence stays in blocks).
   */
  blockLength?: number;
  /** Interval coverage (default 0.95). */
  confidence?: number;
  /** Seed of the bootstrap stream (default 0). */
  seed?: number;
}

/** A point estimate with its bootstrap percentile interval. */
export interface Estimate {
  estimate: number;
  lo: number;
  hi: number;
}

/** What {@link stepNoiseComparison} returns. */
export interface StepNoiseComparison {
  /** {@link stepToStepVariance} of the first series. */
  a: Estimate;
  /** {@link stepToStepVariance} of the second series. */
  b: Estimate;
  /** `a / b`. */
  ratio: Estimate;
  /** The block length and resample count used. */
  blockLength: number;
  resamples: number;
}

/**
 * Step-to-step variance of two equally long loss series, their ratio `a / b`, and moving-block
 * bootstrap percentile intervals of all three, from paired resamples (the same blocks of steps
 * for both series).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stepNoiseComparison } from "./step_noise.ts";
 *
 * // b swings half as far as a around the same trend, so a's variance is 4 times b's; paired
 * // resamples keep that in every replicate, so the ratio's interval is 4 too.
 * const a = [0, 2, 0, 2, 0, 2, 0, 2, 0, 2].map((v, i) => v - i * 0.1);
 * const b = [0, 1, 0, 1, 0, 1, 0, 1, 0, 1].map((v, i) => v - i * 0.1);
 * const r = stepNoiseComparison(a, b, { resamples: 200 });
 * for (const v of [r.ratio.estimate, r.ratio.lo, r.ratio.hi]) assert.ok(Math.abs(v - 4) < 1e-9);
 * assert.ok(r.a.lo <= r.a.estimate && r.a.estimate <= r.a.hi);
 * ```
 */
export function stepNoiseComparison(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  o: StepNoiseOptions = {},
): StepNoiseComparison {
  if (a.length !== b.length) {
    throw new Error(`stepNoiseComparison: series lengths differ (${a.length} vs ${b.length})`);
  }
  const da = differences(a, "stepNoiseComparison: series a");
  const db = differences(b, "stepNoiseComparison: series b");
  const n = da.length;
  const resamples = o.resamples ?? 2000;
  if (!Number.isInteger(resamples) || resamples < 1) {
    throw new Error(`stepNoiseComparison: resamples must be a positive integer, got ${resamples}`);
  }
  const blockLength = o.blockLength ?? Math.max(2, Math.round(Math.cbrt(n)));
  if (!Number.isInteger(blockLength) || blockLength < 1 || blockLength > n) {
    throw new Error(
      `stepNoiseComparison: blockLength must be an integer in [1, ${n}], got ${blockLength}`,
    );
  }
  const confidence = o.confidence ?? 0.95;
  if (!(confidence > 0 && confidence < 1)) {
    throw new Error(`stepNoiseComparison: confidence must be in (0, 1), got ${confidence}`);
  }
  const rng = Rng.stream(o.seed ?? 0, [STREAM.eval, 0x5eed]);
  const ra = new Float64Array(resamples), rb = new Float64Array(resamples);
  const rr = new Float64Array(resamples);
  const sa = new Float64Array(n), sb = new Float64Array(n);
  const starts = n - blockLength + 1;
  for (let r = 0; r < resamples; r++) {
    for (let k = 0; k < n;) {
      const s = rng.int(starts);
      for (let j = 0; j < blockLength && k < n; j++, k++) {
        sa[k] = da[s + j];
        sb[k] = db[s + j];
      }
    }
    ra[r] = halfVariance(sa);
    rb[r] = halfVariance(sb);
    rr[r] = ra[r] / rb[r]; // NaN where b's resample is flat; percentileInterval skips those
  }
  const est = (x: number, reps: Float64Array): Estimate => {
    const iv: Interval = percentileInterval(reps, confidence);
    return { estimate: x, lo: iv.lo, hi: iv.hi };
  };
  const va = halfVariance(da), vb = halfVariance(db);
  return {
    a: est(va, ra),
    b: est(vb, rb),
    ratio: est(va / vb, rr),
    blockLength,
    resamples,
  };
}
