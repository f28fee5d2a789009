/**
 * What rejection sampling buys, measured from ONE pool of M scored candidates per prompt
 * (`bestOfN` with `keepCandidates`, or its recorded scores): the expected score of the best of N
 * for every N = 1..M, computed exactly over all size-N subsets of the pool instead of by repeated
 * random draws, averaged over prompts, with a percentile bootstrap interval over prompts.
 *
 * The estimator: sort the pool ascending, `s_(1) <= ... <= s_(M)`. In a uniformly random
 * N-subset the largest member is `s_(i)` with probability `C(i-1, N-1) / C(M, N)` (the other N-1
 * members come from the i-1 below it), so `E[best of N] = sum_i s_(i) C(i-1, N-1) / C(M, N)`.
 * It is the unbiased estimate of the best-of-N score of the generator, because a random N-subset
 * of M exchangeable draws is itself N exchangeable draws. The weights are built by a recurrence
 * of ratios below 1 (`w_M = N / M`, `w_(i-1) = w_i (i - N) / (i - 1)`), so no binomial
 * coefficient is formed and nothing overflows for any M.
 *
 * The selection-bias check needs a second scorer B that did not select: the pool's B-scores
 * judge the candidate A picked. Ties in A are broken as `bestOfN` breaks them (`argmaxFirst`:
 * the lowest candidate index wins), so candidates are ranked by A ascending, then by index
 * descending, and the subset's winner is its highest-ranked member. For each N:
 * - `judgeScore`: the expected B-score of the A-winner of a random N-subset;
 * - `winRate`: the probability that B scores the A-winner above best-of-1, a candidate drawn
 *   uniformly from the same pool independently of the subset, ties in B counting one half. With
 *   the B mid-rank `r_j` of candidate j (1-based, ties averaged) a winner j beats the random
 *   candidate with probability `(r_j - 1/2) / M`, so `winRate(1) = 1/2` exactly.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bestOfNCurve } from "./best_of_n_stats.ts";
 *
 * // One prompt, four candidates: best of 1 is the mean, best of 4 the maximum.
 * const curve = bestOfNCurve([{ selector: [1, 2, 3, 4] }], { resamples: 100 });
 * assert.deepEqual(curve.points.map((p) => +p.score.value.toFixed(4)), [2.5, 3.3333, 3.75, 4]);
 * ```
 * @module
 */
import type { BestOfNPick, Scorer } from "./best_of_n.ts";
import { bootstrapMeans, type MeanBootstrapOptions, type MeanEstimate } from "./bootstrap_means.ts";

/**
 * Probability that the `i`-th smallest of `m` values (index `i - 1`) is the largest member of a
 * uniformly random `n`-subset: `C(i-1, n-1) / C(m, n)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bestOfNWeights } from "./best_of_n_stats.ts";
 *
 * // m = 4, n = 2: C(i-1, 1) / C(4, 2) = [0, 1, 2, 3] / 6.
 * assert.deepEqual(Array.from(bestOfNWeights(4, 2), (w) => w * 6), [0, 1, 2, 3]);
 * ```
 */
export function bestOfNWeights(m: number, n: number): Float64Array {
  if (!Number.isInteger(m) || m < 1) {
    throw new Error(`bestOfNWeights: m must be a positive integer, got ${m}`);
  }
  if (!Number.isInteger(n) || n < 1 || n > m) {
    throw new Error(`bestOfNWeights: n must be an integer in 1..${m}, got ${n}`);
  }
  const w = new Float64Array(m);
  // w_i / w_(i-1) = C(i-1, n-1) / C(i-2, n-1) = (i-1) / (i-n): walk down from the top, where
  // w_m = C(m-1, n-1) / C(m, n) = n / m; every factor is below 1, so it only shrinks.
  w[m - 1] = n / m;
  for (let i = m; i > n; i--) w[i - 2] = w[i - 1] * (i - n) / (i - 1);
  return w;
}

/** Throw unless `v` is a non-empty list of finite numbers. */
function checkScores(v: ArrayLike<number>, where: string): void {
  if (v === null || typeof v !== "object" || typeof v.length !== "number" || v.length < 1) {
    throw new Error(`${where}: expected a non-empty list of scores`);
  }
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i])) {
      throw new Error(`${where}: score ${i} is ${v[i]}, not a finite number`);
    }
  }
}

/**
 * Expected best-of-N score for N = 1..M of one pool of M scores (entry `N - 1`), exact over all
 * N-subsets (see the module doc).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { expectedBestOfN } from "./best_of_n_stats.ts";
 *
 * // N = 1 is the mean, N = M the maximum; N = 2 of [1, 2, 3, 4] is (2 + 2*3 + 3*4) / 6.
 * assert.deepEqual(Array.from(expectedBestOfN([4, 1, 3, 2]), (v) => v * 12), [30, 40, 45, 48]);
 * ```
 */
export function expectedBestOfN(scores: ArrayLike<number>): Float64Array {
  checkScores(scores, "expectedBestOfN");
  const sorted = Float64Array.from(scores).sort();
  return curveOver(sorted, sorted.length);
}

/** `out[N-1] = sum_i values[i] * w_i(N)` for N = 1..maxN, values in rank order. */
function curveOver(values: ArrayLike<number>, maxN: number): Float64Array {
  const m = values.length;
  const out = new Float64Array(maxN);
  for (let n = 1; n <= maxN; n++) {
    const w = bestOfNWeights(m, n);
    let s = 0;
    for (let i = n - 1; i < m; i++) s += w[i] * values[i];
    out[n - 1] = s;
  }
  return out;
}

/**
 * A prompt's pool of candidates: the selecting scorer's scores (A) and, for the selection-bias
 * check, a second scorer's scores (B) of the same candidates in the same order.
 *
 * @example
 * ```ts
 * const pool: BestOfNPool = { selector: [0.2, 0.9, 0.5], judge: [21, 20, 25] };
 * ```
 */
export interface BestOfNPool {
  /** Scores by the scorer that selects (PickScore in the study), one per candidate. */
  selector: ArrayLike<number>;
  /** Scores by a scorer that did not select, same candidates and order. */
  judge?: ArrayLike<number>;
}

/** One prompt's exact curves for N = 1..maxN. */
export interface BestOfNPoolCurves {
  /** Expected selector score of the best of N. */
  score: Float64Array;
  /** Expected judge score of the selector's best of N (with a judge). */
  judgeScore?: Float64Array;
  /** Probability that the judge prefers it to a uniformly drawn candidate (with a judge). */
  winRate?: Float64Array;
}

/**
 * Candidate indices ranked by the selector ascending, ties by index descending: the winner of
 * any subset is its last member in this order, as `argmaxFirst` picks the lowest index on ties.
 */
function selectorRanking(selector: ArrayLike<number>): number[] {
  return Array.from({ length: selector.length }, (_, i) => i)
    .sort((a, b) => selector[a] - selector[b] || b - a);
}

/** 1-based ranks of `v` ascending, tied values sharing the mean of their ranks. */
function midRanks(v: ArrayLike<number>): Float64Array {
  const order = Array.from({ length: v.length }, (_, i) => i).sort((a, b) => v[a] - v[b]);
  const r = new Float64Array(v.length);
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && v[order[j + 1]] === v[order[i]]) j++;
    for (let k = i; k <= j; k++) r[order[k]] = (i + j) / 2 + 1;
    i = j + 1;
  }
  return r;
}

/**
 * One prompt's exact best-of-N curves for N = 1..`maxN` (default: the pool size): the selector's
 * expected best score and, with a judge, the judge's score of the selector's pick and its win
 * rate against a uniformly drawn candidate (see the module doc for the tie rules).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bestOfNPoolCurves } from "./best_of_n_stats.ts";
 *
 * // The selector and the judge disagree completely: the more A selects, the worse B finds it.
 * const c = bestOfNPoolCurves({ selector: [1, 2, 3], judge: [30, 20, 10] });
 * const times = (k: number, v: Float64Array) => Array.from(v, (x) => +(x * k).toFixed(9));
 * assert.deepEqual(times(3, c.score), [6, 8, 9]); // 2, 8/3, 3
 * assert.deepEqual(times(3, c.judgeScore!), [60, 40, 30]); // 20, 40/3, 10
 * // Best of 1 ties itself; best of 3 (judge 10) loses to any other draw and ties itself.
 * assert.deepEqual(times(18, c.winRate!), [9, 5, 3]); // 1/2, 5/18, 1/6
 * ```
 */
export function bestOfNPoolCurves(pool: BestOfNPool, maxN?: number): BestOfNPoolCurves {
  const where = "bestOfNPoolCurves";
  checkScores(pool?.selector, `${where}: selector`);
  const m = pool.selector.length;
  const top = maxN ?? m;
  if (!Number.isInteger(top) || top < 1 || top > m) {
    throw new Error(`${where}: maxN must be an integer in 1..${m} (the pool size), got ${top}`);
  }
  const rank = selectorRanking(pool.selector);
  const score = curveOver(rank.map((i) => pool.selector[i]), top);
  if (pool.judge === undefined) return { score };
  checkScores(pool.judge, `${where}: judge`);
  if (pool.judge.length !== m) {
    throw new Error(`${where}: judge has ${pool.judge.length} scores, selector ${m}`);
  }
  const judge = pool.judge;
  const mid = midRanks(judge);
  return {
    score,
    judgeScore: curveOver(rank.map((i) => judge[i]), top),
    winRate: curveOver(rank.map((i) => (mid[i] - 0.5) / m), top),
  };
}

/** One N of a {@link BestOfNCurve}, each figure averaged over prompts with its interval. */
export interface BestOfNPoint {
  /** Candidates per pick. */
  n: number;
  /** Expected selector score of the best of N. */
  score: MeanEstimate;
  /** Expected judge score of the selector's best of N (with judges). */
  judgeScore?: MeanEstimate;
  /** Judge's win rate of best of N against best of 1 (with judges). */
  winRate?: MeanEstimate;
}

/** What {@link bestOfNCurve} returns. */
export interface BestOfNCurve {
  /** Prompts (pools) averaged over. */
  prompts: number;
  /** The largest N: the smallest pool size. */
  maxN: number;
  /** Whether the judge figures are there. */
  judged: boolean;
  /** N = 1..maxN. */
  points: BestOfNPoint[];
}

/** Options of {@link bestOfNCurve}. */
export interface BestOfNCurveOptions extends MeanBootstrapOptions {
  /** Largest N (default: the smallest pool size). */
  maxN?: number;
}

/**
 * The best-of-N curve over prompts: each prompt's exact curves ({@link bestOfNPoolCurves}),
 * averaged with every prompt weighing the same, with percentile bootstrap intervals over prompts
 * (pointwise per N; one set of prompt resamples for every N and figure, see
 * `bootstrap_means.ts`). Either every pool has judge scores or none has.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bestOfNCurve } from "./best_of_n_stats.ts";
 *
 * const pools = [
 *   { selector: [1, 2, 3], judge: [1, 2, 3] }, // the judge agrees
 *   { selector: [1, 2, 3], judge: [3, 2, 1] }, // the judge disagrees
 * ];
 * const c = bestOfNCurve(pools, { resamples: 200, seed: 0 });
 * const p3 = c.points[2]; // best of 3 wins 5/6 on one prompt, 1/6 on the other
 * assert.deepEqual([c.prompts, c.maxN, p3.score.value, p3.judgeScore!.value], [2, 3, 3, 2]);
 * assert.equal(p3.winRate!.value, 0.5);
 * assert.ok(p3.winRate!.lo < 0.5 && p3.winRate!.hi > 0.5);
 * ```
 */
export function bestOfNCurve(
  pools: readonly BestOfNPool[],
  options: BestOfNCurveOptions = {},
): BestOfNCurve {
  const where = "bestOfNCurve";
  if (!Array.isArray(pools) || pools.length === 0) {
    throw new Error(`${where}: pools must be a non-empty array (one pool per prompt)`);
  }
  const judged = pools[0]?.judge !== undefined;
  let smallest = Infinity;
  pools.forEach((p, i) => {
    if ((p?.judge !== undefined) !== judged) {
      throw new Error(`${where}: pool ${i} ${judged ? "lacks" : "has"} judge scores, pool 0 not`);
    }
    checkScores(p?.selector, `${where}: pool ${i} selector`);
    smallest = Math.min(smallest, p.selector.length);
  });
  const maxN = options.maxN ?? smallest;
  if (!Number.isInteger(maxN) || maxN < 1 || maxN > smallest) {
    throw new Error(`${where}: maxN must be an integer in 1..${smallest} (the smallest pool)`);
  }
  // One row per prompt: [score(1..maxN), judgeScore(1..maxN), winRate(1..maxN)].
  const rows = pools.map((p, i) => {
    let c: BestOfNPoolCurves;
    try {
      c = bestOfNPoolCurves(p, maxN);
    } catch (e) {
      throw new Error(`${where}: pool ${i}: ${(e as Error).message}`);
    }
    if (!judged) return c.score;
    const row = new Float64Array(3 * maxN);
    row.set(c.score, 0);
    row.set(c.judgeScore!, maxN);
    row.set(c.winRate!, 2 * maxN);
    return row;
  });
  const est = bootstrapMeans(rows, options);
  const points = Array.from({ length: maxN }, (_, k): BestOfNPoint => ({
    n: k + 1,
    score: est[k],
    ...(judged ? { judgeScore: est[maxN + k], winRate: est[2 * maxN + k] } : {}),
  }));
  return { prompts: pools.length, maxN, judged, points };
}

/**
 * Score every kept candidate of `picks` (`bestOfN` with `keepCandidates`) with a second scorer,
 * giving the pools {@link bestOfNCurve} takes: `selector` is each pick's own scores, `judge` the
 * new ones. Scoring goes in chunks of `batchSize` (default 32) images.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { judgeBestOfNPools } from "./best_of_n_stats.ts";
 * import type { BestOfNPick, Scorer } from "./best_of_n.ts";
 *
 * const flat = (v: number) => ({ data: new Uint8Array(3).fill(v), width: 1, height: 1 });
 * const candidates = [flat(10), flat(30), flat(20)];
 * const pick = { scores: new Float32Array([3, 1, 2]), candidates, prompt: "p" } as BestOfNPick;
 * const judge: Scorer = {
 *   name: "brightness",
 *   score: (_p, ims) => Promise.resolve(Float32Array.from(ims, (im) => im.data[0])),
 * };
 * const [pool] = await judgeBestOfNPools([pick], judge);
 * assert.deepEqual(Array.from(pool.judge!), [10, 30, 20]);
 * ```
 */
export async function judgeBestOfNPools(
  picks: readonly Pick<BestOfNPick, "prompt" | "scores" | "candidates">[],
  judge: Scorer,
  options: { batchSize?: number } = {},
): Promise<BestOfNPool[]> {
  const where = "judgeBestOfNPools";
  const bs = options.batchSize ?? 32;
  if (!Number.isInteger(bs) || bs < 1) {
    throw new Error(`${where}: batchSize must be a positive integer, got ${bs}`);
  }
  const pools: BestOfNPool[] = [];
  for (let i = 0; i < picks.length; i++) {
    const { prompt, scores, candidates } = picks[i];
    if (!candidates || candidates.length !== scores.length) {
      throw new Error(
        `${where}: pick ${i} has ${candidates?.length ?? "no"} candidates for ${scores.length} ` +
          `scores; run bestOfN with keepCandidates`,
      );
    }
    const out = new Float64Array(candidates.length);
    for (let k = 0; k < candidates.length; k += bs) {
      const part = candidates.slice(k, k + bs);
      const s = await judge.score(prompt, part);
      if (s.length !== part.length) {
        throw new Error(
          `${where}: scorer "${judge.name}" gave ${s.length} scores for ${part.length} images`,
        );
      }
      out.set(s, k);
    }
    checkScores(out, `${where}: pick ${i} judge "${judge.name}"`);
    pools.push({ selector: scores, judge: out });
  }
  return pools;
}
