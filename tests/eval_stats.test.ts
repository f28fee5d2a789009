import assert from "node:assert/strict";
import { featureStats, FeatureStatsAccumulator } from "../lib/eval/clip_fid/mod.ts";
import { Rng } from "../lib/util/rng.ts";
import { retainedBytes } from "./helpers/retained_bytes.ts";
import { assertClose, maxAbsDiff } from "./helpers/assert_close.ts";

/** Two-pass mean and covariance (n - 1) with plain loops: the independent reference. */
function twoPass(x: ArrayLike<number>, n: number, d: number) {
  const mu = new Float64Array(d), sigma = new Float64Array(d * d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mu[j] += x[i * d + j] / n;
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < d; p++) {
      for (let q = 0; q < d; q++) {
        sigma[p * d + q] += (x[i * d + p] - mu[p]) * (x[i * d + q] - mu[q]) / (n - 1);
      }
    }
  }
  return { mu, sigma };
}

function sample(n: number, d: number, seed: number, offset = 0): Float64Array {
  const rng = Rng.stream(seed, [9]);
  // Correlated columns: x_j = g_j + 0.5 g_{j-1}, scaled per column.
  const x = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    let prev = 0;
    for (let j = 0; j < d; j++) {
      const g = rng.gaussian();
      x[i * d + j] = offset + (g + 0.5 * prev) * (1 + j);
      prev = g;
    }
  }
  return x;
}

Deno.test("featureStats equals the two-pass mean and (n-1) covariance", () => {
  const n = 300, d = 7, x = sample(n, d, 1);
  const s = featureStats(x, n, d), ref = twoPass(x, n, d);
  assert.equal(s.n, n);
  assertClose(s.mu, ref.mu, 1e-13, "s.mu vs ref.mu", { scale: "absolute" });
  assertClose(s.sigma, ref.sigma, 1e-12, "s.sigma vs ref.sigma", { scale: "absolute" });
  // Float32 input gives the statistics of the float32 values, accumulated in float64.
  const x32 = Float32Array.from(x), s32 = featureStats(x32, n, d), ref32 = twoPass(x32, n, d);
  assertClose(s32.sigma, ref32.sigma, 1e-12, "s32.sigma vs ref32.sigma", { scale: "absolute" });
});

Deno.test("streaming batches (any split, incl. > 1024-row chunks) equal one-shot statistics", () => {
  const n = 2500, d = 5, x = sample(n, d, 2);
  const once = featureStats(x, n, d);
  for (const sizes of [[1, 1, 2498], [2500], [1300, 1200], [7, 993, 1, 1499]]) {
    const acc = new FeatureStatsAccumulator(d);
    let s = 0;
    for (const b of sizes) {
      acc.add(x.subarray(s * d, (s + b) * d), b);
      s += b;
    }
    const st = acc.stats();
    assert.equal(st.n, n);
    assertClose(st.mu, once.mu, 1e-12, `${sizes}`, { scale: "absolute" });
    assertClose(st.sigma, once.sigma, 1e-11, `${sizes}`, { scale: "absolute" });
  }
});

Deno.test("merged accumulators (e.g. from two processes) equal pooled statistics", () => {
  const d = 6, a = sample(400, d, 3), b = sample(150, d, 4, 5);
  const pooled = new Float64Array(550 * d);
  pooled.set(a);
  pooled.set(b, 400 * d);
  const ref = twoPass(pooled, 550, d);
  const accA = new FeatureStatsAccumulator(d).add(a, 400);
  const accB = new FeatureStatsAccumulator(d).add(b, 150);
  // Round-trip B through its serialisable state, as another process would send it.
  const merged = accA.merge(FeatureStatsAccumulator.fromState(accB.state())).stats();
  assert.equal(merged.n, 550);
  assertClose(merged.mu, ref.mu, 1e-12, "merged.mu vs ref.mu", { scale: "absolute" });
  assertClose(merged.sigma, ref.sigma, 1e-11, "merged.sigma vs ref.sigma", { scale: "absolute" });
  // Rebuilding from (mu, sigma, n) and merging again is also exact.
  const viaStats = FeatureStatsAccumulator.fromStats(featureStats(a, 400, d))
    .merge(new FeatureStatsAccumulator(d).add(b, 150)).stats();
  assertClose(viaStats.sigma, ref.sigma, 1e-11, "viaStats.sigma vs ref.sigma", {
    scale: "absolute",
  });
  // Merging an empty accumulator changes nothing.
  const same = new FeatureStatsAccumulator(d).add(a, 400).merge(new FeatureStatsAccumulator(d))
    .stats();
  assert.ok(maxAbsDiff(same.sigma, featureStats(a, 400, d).sigma) === 0);
});

Deno.test("a large common offset costs no precision (no raw second moments)", () => {
  // Features around 1e8 with unit spread: E[x^2] - E[x]^2 in float64 would lose everything.
  const n = 2000, d = 3, base = sample(n, d, 5), x = base.map((v) => v + 1e8);
  const acc = new FeatureStatsAccumulator(d);
  for (let s = 0; s < n; s += 250) acc.add(x.subarray(s * d, (s + 250) * d), 250);
  const st = acc.stats(), ref = twoPass(base, n, d);
  assertClose(st.sigma, ref.sigma, 1e-6, "st.sigma vs ref.sigma", { scale: "absolute" });
});

Deno.test("memory does not grow with the number of images: state is O(d^2)", () => {
  const d = 4, rows = 100, batches = 50, acc = new FeatureStatsAccumulator(d);
  const held: number[] = [];
  for (let i = 0; i < batches; i++) {
    acc.add(sample(rows, d, 10 + i), rows);
    held.push(retainedBytes(acc));
  }
  // The float64 mean (d) and scatter matrix (d^2) must be reachable (so the measurement sees the
  // state at all); allow as much again for scratch, which is still far below one batch
  // (8 * rows * d = 3200 bytes here), let alone the 160 kB of all the rows added.
  const minimal = 8 * (d + d * d);
  assert.ok(held[0] >= minimal && held[0] <= 2 * minimal, `one batch holds ${held[0]} bytes`);
  assert.deepEqual(held, new Array(batches).fill(held[0]), "held bytes change with the batches");
  const st = acc.state();
  assert.equal(st.n, 5000);
  assert.equal(st.mean.length, d);
  assert.equal(st.m2.length, d * d);
});

Deno.test("statistics inputs are validated", () => {
  assert.throws(() => featureStats(new Float32Array(5), 2, 3), /expected n\*d = 2\*3/);
  assert.throws(
    () => featureStats(new Float32Array([1, NaN, 0, 0]), 2, 2),
    /\[0, 1\] is not finite/,
  );
  assert.throws(() => featureStats(new Float32Array(3), 1, 3), /at least 2/);
  assert.throws(
    () => new FeatureStatsAccumulator(3).merge(new FeatureStatsAccumulator(4)),
    /dimension 4 differs from 3/,
  );
});
