/**
 * Best-of-N statistics: the exact order-statistics estimator against brute-force enumeration of
 * every subset, exact binomial ratios (BigInt) at M = 256, a seeded Monte Carlo check at M = 32,
 * the judge's score and win rate under the tie rule of `argmaxFirst`, and the bootstrap intervals.
 */
import assert from "node:assert/strict";
import {
  argmaxFirst,
  bestOfNCurve,
  bestOfNPoolCurves,
  bestOfNWeights,
  bootstrapMeans,
  expectedBestOfN,
  judgeBestOfNPools,
  type Scorer,
} from "../lib/inference/mod.ts";
import { Rng } from "../lib/util/rng.ts";
import { assertClose } from "./helpers/assert_close.ts";

/** Every size-n subset of 0..m-1 (as index lists, ascending). */
function subsets(m: number, n: number): number[][] {
  const out: number[][] = [];
  for (let mask = 0; mask < 1 << m; mask++) {
    const s: number[] = [];
    for (let i = 0; i < m; i++) if (mask & (1 << i)) s.push(i);
    if (s.length === n) out.push(s);
  }
  return out;
}

/** Brute force over every subset: mean max, mean judge of the first-argmax, mean win rate. */
function bruteForce(sel: number[], judge: number[], n: number) {
  const m = sel.length;
  let score = 0, judged = 0, win = 0;
  const all = subsets(m, n);
  for (const s of all) {
    const w = s[argmaxFirst(s.map((i) => sel[i]))]; // bestOfN's own pick, lowest index on ties
    score += sel[w];
    judged += judge[w];
    let beat = 0;
    for (let j = 0; j < m; j++) beat += judge[w] > judge[j] ? 1 : judge[w] === judge[j] ? 0.5 : 0;
    win += beat / m;
  }
  return { score: score / all.length, judge: judged / all.length, win: win / all.length };
}

Deno.test("bestOfNPoolCurves equals brute force over every subset of 7 (ties included)", () => {
  // Ties in the selector (0.5 twice, 2 twice) test the tie rule; ties in the judge the half wins.
  const sel = [0.5, 2, -1.25, 0.5, 3.75, 2, 1];
  const judge = [10, 30, 20, 40, 10, 25, 30];
  const c = bestOfNPoolCurves({ selector: sel, judge });
  for (let n = 1; n <= 7; n++) {
    const b = bruteForce(sel, judge, n);
    assertClose(c.score[n - 1], b.score, 1e-12, `score n=${n}`, { scale: "absolute" });
    assertClose(c.judgeScore![n - 1], b.judge, 1e-12, `judge n=${n}`, { scale: "absolute" });
    assertClose(c.winRate![n - 1], b.win, 1e-12, `win n=${n}`, { scale: "absolute" });
  }
  const mean = sel.reduce((a, b) => a + b, 0) / 7;
  assertClose(c.score[0], mean, 1e-15, "N = 1 is the mean", { scale: "absolute" });
  assert.equal(c.score[6], Math.max(...sel), "N = M is the maximum");
  assert.equal(c.winRate![0], 0.5, "best of 1 against best of 1");
  // N = M: the pick is candidate 4 (3.75), judged 10: it beats nothing, ties candidates 0 and 4.
  assert.equal(c.judgeScore![6], 10);
  assertClose(c.winRate![6], 1 / 7, 1e-15, "win at N = M", { scale: "absolute" });
  assert.deepEqual(Array.from(expectedBestOfN(sel)), Array.from(c.score));
});

Deno.test("tie rule: among equal selector scores the lowest candidate index wins", () => {
  // Candidates 0 and 1 tie at 5: bestOfN keeps candidate 0, so its judge score (1) counts.
  const c = bestOfNPoolCurves({ selector: [5, 5, 1], judge: [1, 2, 3] });
  // N = 2: {0,1} -> 0, {0,2} -> 0, {1,2} -> 1, judged 1, 1, 2.
  assertClose(c.judgeScore![1], 4 / 3, 1e-15, "judge n=2", { scale: "absolute" });
  assert.equal(c.judgeScore![2], 1);
});

Deno.test("bestOfNWeights equals C(i-1, N-1) / C(M, N) exactly computed, at M = 256", () => {
  const binom = (n: number, k: number): bigint => {
    let r = 1n;
    for (let i = 0; i < k; i++) r = r * BigInt(n - i) / BigInt(i + 1);
    return r;
  };
  const m = 256;
  for (const n of [1, 2, 7, 32, 128, 200, 255, 256]) {
    const w = bestOfNWeights(m, n);
    const den = binom(m, n);
    let sum = 0;
    for (let i = 1; i <= m; i++) {
      // The exact ratio, scaled by 2^400 before the integer division (every weight > 2^-260).
      const want = i < n ? 0 : Number((binom(i - 1, n - 1) << 400n) / den) / 2 ** 400;
      assertClose(w[i - 1], want, 1e-12, `w(${m}, ${n})[${i}]`, { scale: "each", minScale: 0 });
      sum += w[i - 1];
    }
    assertClose(sum, 1, 1e-12, `sum of w(${m}, ${n})`, { scale: "absolute" });
  }
  assert.throws(() => bestOfNWeights(4, 5), /^Error: bestOfNWeights: n must be an integer in 1..4/);
});

Deno.test("expectedBestOfN matches seeded Monte Carlo subset draws at M = 32", () => {
  const rng = Rng.stream(7, [1]);
  const m = 32, draws = 20000;
  const sel = Array.from(rng.normal(m));
  const judge = sel.map((s) => s + 2 * rng.gaussian()); // a judge that half agrees
  const c = bestOfNPoolCurves({ selector: sel, judge });
  for (const n of [1, 4, 16, 31]) {
    const figs = [[], [], []] as number[][];
    for (let d = 0; d < draws; d++) {
      const idx = rng.permutation(m).slice(0, n).sort((a, b) => a - b);
      const w = idx[argmaxFirst(idx.map((i) => sel[i]))];
      figs[0].push(sel[w]);
      figs[1].push(judge[w]);
      figs[2].push(judge.filter((b) => b < judge[w]).length / m + 0.5 / m);
    }
    const exact = [c.score[n - 1], c.judgeScore![n - 1], c.winRate![n - 1]];
    figs.forEach((f, k) => {
      const mean = f.reduce((a, b) => a + b, 0) / draws;
      const sd = Math.sqrt(f.reduce((a, b) => a + (b - mean) ** 2, 0) / (draws - 1));
      // Five standard errors (plus a hair for N = 31, where almost every draw has one value).
      const bound = 5 * sd / Math.sqrt(draws) + 1e-9;
      assert.ok(Math.abs(mean - exact[k]) <= bound, `n=${n} figure ${k}: ${mean} vs ${exact[k]}`);
    });
  }
  assert.ok(c.score[15] > c.score[3] && c.score[3] > c.score[0], "the curve rises");
});

Deno.test("bestOfNCurve: prompt means, intervals hold the estimate, deterministic per seed", () => {
  const rng = Rng.stream(3, [2]);
  const pools = Array.from({ length: 24 }, () => {
    const selector = Array.from(rng.normal(16));
    return { selector, judge: selector.map((s) => s + rng.gaussian()) };
  });
  const curve = bestOfNCurve(pools, { resamples: 500, seed: 5 });
  assert.deepEqual([curve.prompts, curve.maxN, curve.judged, curve.points.length], [
    24,
    16,
    true,
    16,
  ]);
  const per = pools.map((p) => bestOfNPoolCurves(p));
  for (const p of curve.points) {
    const k = p.n - 1;
    const avg = (f: (c: (typeof per)[0]) => Float64Array) =>
      per.reduce((a, c) => a + f(c)[k], 0) / per.length;
    assertClose(p.score.value, avg((c) => c.score), 1e-12, `score ${p.n}`, { scale: "absolute" });
    assertClose(p.judgeScore!.value, avg((c) => c.judgeScore!), 1e-12, `judge ${p.n}`, {
      scale: "absolute",
    });
    assertClose(p.winRate!.value, avg((c) => c.winRate!), 1e-12, `win ${p.n}`, {
      scale: "absolute",
    });
    for (const e of [p.score, p.judgeScore!, p.winRate!]) {
      assert.ok(e.lo <= e.value && e.value <= e.hi, `n=${p.n}: ${e.lo} ${e.value} ${e.hi}`);
      assert.deepEqual([e.level, e.resamples], [0.95, 500]);
    }
  }
  // Best of 1 against itself is 1/2 on every prompt, so on every resample too.
  assert.deepEqual([curve.points[0].winRate!.lo, curve.points[0].winRate!.hi], [0.5, 0.5]);
  // The judge agrees with the selector here, so selecting pays under the judge as well.
  assert.ok(curve.points[15].winRate!.lo > 0.5);
  assert.deepEqual(bestOfNCurve(pools, { resamples: 500, seed: 5 }), curve, "same seed");
  const other = bestOfNCurve(pools, { resamples: 500, seed: 6 });
  assert.notEqual(other.points[7].score.lo, curve.points[7].score.lo, "another seed");
  assert.equal(other.points[7].score.value, curve.points[7].score.value);
  // maxN trims the curve; pools of different sizes stop at the smallest.
  assert.equal(bestOfNCurve(pools, { maxN: 4, resamples: 10 }).points.length, 4);
  const mixed = bestOfNCurve([{ selector: [1, 2, 3] }, { selector: [4, 5] }], { resamples: 10 });
  assert.deepEqual([mixed.maxN, mixed.judged], [2, false]);
  // Best of 2: 8/3 of [1, 2, 3] and 5 of [4, 5], averaged.
  assertClose(mixed.points[1].score.value, 23 / 6, 1e-15, "mixed", { scale: "absolute" });
  assert.equal(mixed.points[1].winRate, undefined);
});

Deno.test("bestOfNCurve and bootstrapMeans refuse bad input in one line", () => {
  assert.throws(() => bestOfNCurve([]), /^Error: bestOfNCurve: pools must be a non-empty array/);
  assert.throws(
    () => bestOfNCurve([{ selector: [1], judge: [1] }, { selector: [2] }]),
    /^Error: bestOfNCurve: pool 1 lacks judge scores, pool 0 not$/,
  );
  assert.throws(
    () => bestOfNCurve([{ selector: [1, NaN] }]),
    /^Error: bestOfNCurve: pool 0 selector: score 1 is NaN, not a finite number$/,
  );
  assert.throws(
    () => bestOfNCurve([{ selector: [1, 2], judge: [1] }]),
    /^Error: bestOfNCurve: pool 0: bestOfNPoolCurves: judge has 1 scores, selector 2$/,
  );
  assert.throws(() => bestOfNCurve([{ selector: [1, 2] }], { maxN: 3 }), /maxN must be an integer/);
  assert.throws(() => bootstrapMeans([[1], [1, 2]]), /row 1 has 2 values, row 0 has 1/);
  assert.throws(() => bootstrapMeans([[1]], { resamples: 1 }), /resamples must be an integer >= 2/);
});

Deno.test("judgeBestOfNPools scores kept candidates in chunks; refuses picks without them", async () => {
  const flat = (v: number) => ({ data: new Uint8Array(3).fill(v), width: 1, height: 1 });
  const calls: number[] = [];
  const judge: Scorer = {
    name: "value",
    score: (_p, ims) => {
      calls.push(ims.length);
      return Promise.resolve(Float32Array.from(ims, (im) => im.data[0]));
    },
  };
  const picks = [{
    prompt: "a",
    scores: new Float32Array([0, 1, 2, 3, 4]),
    candidates: [5, 4, 3, 2, 1].map(flat),
  }];
  const pools = await judgeBestOfNPools(picks, judge, { batchSize: 2 });
  assert.deepEqual(calls, [2, 2, 1]);
  assert.deepEqual(Array.from(pools[0].judge!), [5, 4, 3, 2, 1]);
  // The judge disagrees with the selector entirely: best of 5 loses to every other candidate.
  const c = bestOfNCurve(pools, { resamples: 10 });
  assertClose(c.points[4].winRate!.value, 0.1, 1e-15, "win", { scale: "absolute" });
  await assert.rejects(
    judgeBestOfNPools([{ prompt: "a", scores: new Float32Array(2) }], judge),
    /^Error: judgeBestOfNPools: pick 0 has no candidates for 2 scores; run bestOfN with keepCandidates$/,
  );
});
