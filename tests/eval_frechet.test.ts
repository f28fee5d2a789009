import assert from "node:assert/strict";
import {
  type FeatureStats,
  featureStats,
  FeatureStatsAccumulator,
  frechetDistance,
  frechetDistanceDetailed,
} from "../lib/eval/clip_fid/mod.ts";
import { Rng } from "../lib/util/rng.ts";
import { randomOrthogonal } from "./helpers/linalg.ts";

function diagStats(mu: number[], diag: number[]): FeatureStats {
  const d = mu.length, sigma = new Float64Array(d * d);
  diag.forEach((v, i) => (sigma[i * d + i] = v));
  return { mu: Float64Array.from(mu), sigma, n: 100 };
}

/** Random covariance with a power-law spectrum in random directions: R diag(l) R^T. */
function randomStats(d: number, rng: Rng, alpha: number): FeatureStats {
  const r = randomOrthogonal(d, rng), sigma = new Float64Array(d * d);
  const l = Array.from({ length: d }, (_, i) => (i + 1) ** -alpha * (0.5 + rng.uniform()));
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += r[i * d + k] * l[k] * r[j * d + k];
      sigma[i * d + j] = s;
    }
  }
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < i; j++) sigma[i * d + j] = sigma[j * d + i];
  }
  return { mu: Float64Array.from({ length: d }, () => rng.gaussian()), sigma, n: 1000 };
}

function rotate(s: FeatureStats, r: Float64Array): FeatureStats {
  const d = s.mu.length, mu = new Float64Array(d), rs = new Float64Array(d * d);
  const sigma = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let k = 0; k < d; k++) mu[i] += r[i * d + k] * s.mu[k];
    for (let j = 0; j < d; j++) {
      let t = 0;
      for (let k = 0; k < d; k++) t += r[i * d + k] * s.sigma[k * d + j];
      rs[i * d + j] = t;
    }
  }
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let t = 0;
      for (let k = 0; k < d; k++) t += rs[i * d + k] * r[j * d + k];
      sigma[i * d + j] = t;
      sigma[j * d + i] = t;
    }
  }
  return { mu, sigma, n: s.n };
}

Deno.test("Frechet distance of diagonal covariances = |mu diff|^2 + sum (sqrt a - sqrt b)^2", () => {
  const rng = Rng.stream(5, [1]);
  for (const d of [1, 3, 50]) {
    const mu1 = Array.from({ length: d }, () => rng.gaussian());
    const mu2 = Array.from({ length: d }, () => rng.gaussian());
    const a = Array.from({ length: d }, () => 0.01 + 3 * rng.uniform());
    const b = Array.from({ length: d }, () => 0.01 + 3 * rng.uniform());
    let want = 0;
    for (let i = 0; i < d; i++) {
      want += (mu1[i] - mu2[i]) ** 2 + (Math.sqrt(a[i]) - Math.sqrt(b[i])) ** 2;
    }
    const r = frechetDistanceDetailed(diagStats(mu1, a), diagStats(mu2, b));
    assert.ok(
      Math.abs(r.distance - want) <= 1e-12 * Math.max(1, want),
      `d=${d}: ${r.distance} vs ${want}`,
    );
    assert.equal(r.regularized, false);
    assert.equal(r.eps, 0);
  }
});

Deno.test("Frechet distance of identical statistics is 0 (to 1e-9 of the trace scale)", () => {
  const rng = Rng.stream(5, [2]);
  for (const d of [4, 40, 120]) {
    const s = randomStats(d, rng, 1.5);
    const r = frechetDistanceDetailed(s, s);
    assert.ok(Math.abs(r.distance) <= 1e-9 * r.traces, `d=${d}: ${r.distance}`);
  }
});

Deno.test("Frechet distance is invariant under a common rotation of both distributions", () => {
  const rng = Rng.stream(5, [3]);
  for (const d of [5, 64]) {
    const a = randomStats(d, rng, 1.2), b = randomStats(d, rng, 0.8);
    const r = randomOrthogonal(d, rng);
    const f0 = frechetDistance(a, b), f1 = frechetDistance(rotate(a, r), rotate(b, r));
    assert.ok(f0 > 0.1);
    assert.ok(Math.abs(f0 - f1) <= 1e-10 * f0, `d=${d}: ${f0} vs ${f1}`);
    // And symmetric in its arguments.
    assert.ok(Math.abs(frechetDistance(b, a) - f0) <= 1e-10 * f0);
  }
});

Deno.test("commuting covariances: trace term = sum sqrt(a_i b_i) in a shared eigenbasis", () => {
  const rng = Rng.stream(5, [4]);
  const d = 30, r = randomOrthogonal(d, rng);
  const a = Array.from({ length: d }, () => 0.1 + rng.uniform()),
    b = Array.from({ length: d }, () => 0.1 + rng.uniform());
  const sa = rotate(diagStats(new Array(d).fill(0), a), r),
    sb = rotate(diagStats(new Array(d).fill(1), b), r);
  let want = 0;
  for (let i = 0; i < d; i++) want += (Math.sqrt(a[i]) - Math.sqrt(b[i])) ** 2 + 1;
  assert.ok(Math.abs(frechetDistance(sa, sb) - want) <= 1e-11 * want);
});

Deno.test("near-singular product: eps fallback is applied, flagged and matches its closed form", () => {
  const eps = 1e-6;
  // Rank-deficient diagonal covariances (as with fewer images than dimensions).
  const a = [2, 0, 1, 0], b = [1, 3, 0, 0.5];
  const s1 = diagStats([0, 0, 0, 0], a), s2 = diagStats([1, 0, 0, 0], b);
  const r = frechetDistanceDetailed(s1, s2);
  assert.equal(r.regularized, true);
  assert.equal(r.eps, eps);
  assert.equal(r.rcond, 0);
  assert.match(r.note!, /near singular.*1e-6/);
  let tr = 0, trReg = 0, reg = 0;
  for (let i = 0; i < 4; i++) {
    tr += a[i] + b[i];
    reg += Math.sqrt(a[i] * b[i]);
    trReg += Math.sqrt((a[i] + eps) * (b[i] + eps));
  }
  // pytorch-fid keeps tr(S1) + tr(S2) unregularized; only the square-root term gets eps.
  assert.ok(Math.abs(r.distance - (1 + tr - 2 * trReg)) < 1e-12);
  assert.ok(Math.abs(r.unregularized - (1 + tr - 2 * reg)) < 1e-12);
  const never = frechetDistanceDetailed(s1, s2, { regularize: "never" });
  assert.equal(never.regularized, false);
  assert.ok(Math.abs(never.distance - (1 + tr - 2 * reg)) < 1e-12);
  // Fewer samples than dimensions from real features also triggers it.
  const rng = Rng.stream(5, [5]);
  const x = Float64Array.from({ length: 5 * 8 }, () => rng.gaussian());
  const y = Float64Array.from({ length: 20 * 8 }, () => rng.gaussian());
  assert.equal(
    frechetDistanceDetailed(featureStats(x, 5, 8), featureStats(y, 20, 8)).regularized,
    true,
  );
  // A well-conditioned pair is left alone even with "auto".
  assert.equal(
    frechetDistanceDetailed(diagStats([0], [1]), diagStats([0], [2])).regularized,
    false,
  );
  assert.equal(
    frechetDistanceDetailed(diagStats([0], [1]), diagStats([0], [2]), { regularize: "always" })
      .regularized,
    true,
  );
});

Deno.test("Frechet distance of sample statistics: streaming stats give the same distance", () => {
  const rng = Rng.stream(5, [6]);
  const d = 12, n = 700;
  const x = Float32Array.from({ length: n * d }, (_, i) => rng.gaussian() * (1 + (i % d)) + 3);
  const y = Float32Array.from({ length: n * d }, () => rng.gaussian());
  const acc = new FeatureStatsAccumulator(d);
  for (let s = 0; s < n; s += 97) {
    acc.add(x.subarray(s * d, Math.min(n, s + 97) * d), Math.min(97, n - s));
  }
  const ref = featureStats(y, n, d);
  const f1 = frechetDistance(featureStats(x, n, d), ref), f2 = frechetDistance(acc.stats(), ref);
  assert.ok(Math.abs(f1 - f2) <= 1e-11 * f1);
});

Deno.test("frechetDistance rejects mismatched dimensions", () => {
  assert.throws(
    () => frechetDistance(diagStats([0, 0], [1, 1]), diagStats([0], [1])),
    /dimensions differ/,
  );
  const bad = diagStats([0, 0], [1, 1]);
  bad.sigma[1] = 5;
  assert.throws(() => frechetDistance(bad, diagStats([0, 0], [1, 1])), /sigma1 is not symmetric/);
});
