import assert from "node:assert/strict";
import {
  bootstrap,
  clipScore,
  clipScoreWithInterval,
  type FeatureStats,
  featureStats,
  formatEstimate,
  frechetDistance,
  frechetWithInterval,
  kernelInceptionDistance,
  mmdPolynomial,
  quantileSorted,
} from "../lib/eval/clip_fid/mod.ts";
import { Rng } from "../lib/util/rng.ts";

const k3 = (x: number[], y: number[]) =>
  (x.reduce((s, v, i) => s + v * y[i], 0) / x.length + 1) ** 3;

Deno.test("KID closed form: d=1, X={1,-1}, Y={0,0} gives (0+0)/2 + (1+1)/2 - 2*4/4 = -1", () => {
  assert.equal(mmdPolynomial(new Float64Array([1, -1]), new Float64Array([0, 0]), 2, 1), -1);
  // Whole-set subsets: every subset is the same set, so the std is 0 and the mean is exact.
  const r = kernelInceptionDistance(
    { data: new Float32Array([1, -1]), n: 2, d: 1 },
    { data: new Float32Array([0, 0]), n: 2, d: 1 },
    { subsets: 5 },
  );
  assert.equal(r.subsetSize, 2);
  assert.ok(Math.abs(r.mean + 1) < 1e-15);
  assert.equal(r.std, 0);
});

Deno.test("KID of a set with itself = (2/m)(mean off-diagonal k - mean diagonal k), plain loops", () => {
  const rng = Rng.stream(2, [1]);
  const m = 12, d = 5;
  const x = Float64Array.from({ length: m * d }, () => rng.gaussian());
  const rows = Array.from({ length: m }, (_, i) => Array.from(x.subarray(i * d, (i + 1) * d)));
  let off = 0, diag = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < m; j++) {
      i === j ? (diag += k3(rows[i], rows[j])) : (off += k3(rows[i], rows[j]));
    }
  }
  const want = (2 / m) * (off / (m * (m - 1)) - diag / m);
  const got = kernelInceptionDistance({ data: x, n: m, d }, { data: x, n: m, d }, { subsets: 3 });
  assert.ok(Math.abs(got.mean - want) < 1e-12 * Math.abs(want), `${got.mean} vs ${want}`);
});

Deno.test("KID of two samples of one distribution is ~0; a shifted distribution is clearly > 0", () => {
  const rng = Rng.stream(2, [2]);
  const n = 600, d = 8;
  const draw = (shift: number) =>
    Float32Array.from({ length: n * d }, () => rng.gaussian() + shift);
  const a = { data: draw(0), n, d }, b = { data: draw(0), n, d }, c = { data: draw(0.5), n, d };
  const same = kernelInceptionDistance(a, b, { subsets: 20, subsetSize: 200, seed: 1 });
  const diff = kernelInceptionDistance(a, c, { subsets: 20, subsetSize: 200, seed: 1 });
  assert.ok(Math.abs(same.mean) < 0.02, `same ${same.mean} +- ${same.std}`);
  assert.ok(diff.mean > 10 * Math.abs(same.mean) && diff.mean > 0.05, `shifted ${diff.mean}`);
  assert.ok(same.std > 0 && same.values.length === 20);
  // The seed fixes the subsets.
  const again = kernelInceptionDistance(a, b, { subsets: 20, subsetSize: 200, seed: 1 });
  assert.equal(again.mean, same.mean);
});

Deno.test("CLIP score = mean of 100 * max(cos, 0) on hand-made embeddings", () => {
  const img = new Float32Array([1, 0, /**/ 0, 2, /**/ 3, 0, /**/ 1, 1]);
  const txt = new Float32Array([1, 1, /**/ 0, 5, /**/ -1, 0.5, /**/ 2, 0]);
  const r = clipScore({ data: img, n: 4, d: 2 }, { data: txt, n: 4, d: 2 });
  const want = [100 / Math.SQRT2, 100, 0, /* cos < 0 clipped */ 100 / Math.SQRT2];
  want.forEach((w, i) => assert.ok(Math.abs(r.perImage[i] - w) < 1e-12, `pair ${i}`));
  assert.ok(Math.abs(r.score - want.reduce((s, v) => s + v) / 4) < 1e-12);
  assert.throws(
    () => clipScore({ data: img, n: 4, d: 2 }, { data: txt.subarray(0, 6), n: 3, d: 2 }),
    /one caption per image/,
  );
  assert.throws(
    () =>
      clipScore({ data: new Float32Array([0, 0]), n: 1, d: 2 }, {
        data: new Float32Array([1, 0]),
        n: 1,
        d: 2,
      }),
    /zero image embedding/,
  );
});

Deno.test("percentile quantiles interpolate like numpy", () => {
  const s = new Float64Array([1, 2, 3, 4, 10]);
  assert.equal(quantileSorted(s, 0), 1);
  assert.equal(quantileSorted(s, 1), 10);
  assert.equal(quantileSorted(s, 0.5), 3);
  assert.equal(quantileSorted(s, 0.875), 4 + 0.5 * 6);
});

Deno.test("bootstrap 95% interval of a normal mean covers the true mean ~95% of the time", () => {
  const reps = 300, n = 60, rng = Rng.stream(4, [1]);
  let covered = 0;
  for (let r = 0; r < reps; r++) {
    const x = Float64Array.from({ length: n }, () => 2 + rng.gaussian());
    const b = bootstrap(n, (idx) => {
      let s = 0;
      for (let i = 0; i < n; i++) s += x[idx[i]];
      return s / n;
    }, { resamples: 400, seed: r });
    if (b.lo <= 2 && 2 <= b.hi) covered++;
  }
  // Percentile intervals under-cover slightly at n = 60 (~93-94%); binomial sd here is ~1.3%.
  const rate = covered / reps;
  assert.ok(rate > 0.89 && rate < 0.985, `coverage ${rate}`);
});

/** Two-sided 95% normal quantile. */
const Z95 = 1.959963984540054;

/**
 * Standard error of the FID for resampling the rows of `x` (the other side held at `other`),
 * by the infinitesimal jackknife: `sqrt(sum IF_i^2) / n` with IF_i the derivative of the FID
 * when the plug-in mean and covariance move towards row i. It predicts the bootstrap spread
 * without resampling, so it checks the interval independently of the bootstrap code.
 */
function frechetInfluenceSe(
  x: Float32Array,
  n: number,
  d: number,
  other: FeatureStats,
  side: "generated" | "reference",
): number {
  const s = featureStats(x, n, d);
  const sigma = s.sigma.map((v) => v * (n - 1) / n); // the plug-in covariance the bootstrap sees
  const fid = (mu: Float64Array, sg: Float64Array) => {
    const st = { mu, sigma: sg, n };
    return side === "generated" ? frechetDistance(st, other) : frechetDistance(other, st);
  };
  const h = 1e-5;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const dx = Float64Array.from({ length: d }, (_, j) => x[i * d + j] - s.mu[j]);
    const at = (e: number) =>
      fid(
        s.mu.map((v, j) => v + e * dx[j]),
        sigma.map((v, k) => v + e * (dx[Math.floor(k / d)] * dx[k % d] - v)),
      );
    sum += ((at(h) - at(-h)) / (2 * h)) ** 2;
  }
  return Math.sqrt(sum) / n;
}

Deno.test("CLIP score and FID come with bootstrap intervals around the full-data value", () => {
  const rng = Rng.stream(4, [2]);
  const n = 200, d = 6;
  const img = Float32Array.from({ length: n * d }, () => rng.gaussian());
  const txt = img.map((v) => v + 0.8 * rng.gaussian());
  const cs = clipScoreWithInterval({ data: img, n, d }, { data: txt, n, d }, {
    resamples: 500,
    seed: 3,
  });
  assert.equal(cs.value, clipScore({ data: img, n, d }, { data: txt, n, d }).score);
  assert.ok(cs.lo < cs.value && cs.value < cs.hi && cs.hi - cs.lo < 10, formatEstimate(cs));
  assert.match(
    formatEstimate(cs),
    /^\d+\.\d\d \[\d+\.\d\d, \d+\.\d\d\] \(95% bootstrap, 500 resamples\)$/,
  );
  const again = clipScoreWithInterval({ data: img, n, d }, { data: txt, n, d }, {
    resamples: 500,
    seed: 3,
  });
  assert.deepEqual([again.lo, again.hi], [cs.lo, cs.hi]);
  // The score is a mean, so its 95% interval is 2 * 1.96 * sd / sqrt(n) wide (sd of the per-image
  // scores, population form as the bootstrap's plug-in); 2000 resamples put the percentile
  // width within ~2% (one sd) of that.
  const per = clipScore({ data: img, n, d }, { data: txt, n, d }).perImage;
  const m = per.reduce((a, v) => a + v, 0) / n;
  const sd = Math.sqrt(per.reduce((a, v) => a + (v - m) ** 2, 0) / n);
  const wide = clipScoreWithInterval({ data: img, n, d }, { data: txt, n, d }, {
    resamples: 2000,
    seed: 3,
  });
  const csRatio = (wide.hi - wide.lo) / (2 * Z95 * sd / Math.sqrt(n));
  assert.ok(wide.lo <= wide.value && wide.value <= wide.hi, formatEstimate(wide));
  assert.ok(csRatio > 0.9 && csRatio < 1.1, `CLIP interval width / normal theory = ${csRatio}`);

  const gen = Float32Array.from({ length: n * d }, () => 0.3 + rng.gaussian() * 1.2);
  const refStats = featureStats(img, n, d), genStats = featureStats(gen, n, d);
  const fid = frechetWithInterval({ data: gen, n, d }, refStats, { resamples: 400, seed: 1 });
  assert.equal(fid.value, frechetDistance(genStats, refStats));
  assert.ok(fid.lo < fid.hi && fid.lo <= fid.value * 1.5 && fid.hi >= fid.value * 0.5);
  assert.ok(fid.lo <= fid.value && fid.value <= fid.hi, formatEstimate(fid));
  assert.equal(fid.details.regularized, false);
  // Resampling the reference too widens the interval: the two sets' variances add.
  const both = frechetWithInterval({ data: gen, n, d }, { data: img, n, d }, {
    resamples: 400,
    seed: 1,
  });
  assert.ok(Math.abs(both.value - fid.value) < 1e-12);
  assert.ok(both.lo <= both.value && both.value <= both.hi, formatEstimate(both));
  const seGen = frechetInfluenceSe(gen, n, d, refStats, "generated");
  const seRef = frechetInfluenceSe(img, n, d, genStats, "reference");
  const seBoth = Math.hypot(seGen, seRef);
  // Percentile widths from 400 replicates scatter by ~5% (one sd) around the prediction.
  const genRatio = (fid.hi - fid.lo) / (2 * Z95 * seGen);
  const bothRatio = (both.hi - both.lo) / (2 * Z95 * seBoth);
  assert.ok(genRatio > 0.85 && genRatio < 1.15, `FID width / jackknife prediction ${genRatio}`);
  assert.ok(bothRatio > 0.85 && bothRatio < 1.15, `both-sides width / prediction ${bothRatio}`);
  // Here the reference adds about as much again (predicted widening ~1.4x), far above noise.
  const widening = (both.hi - both.lo) / (fid.hi - fid.lo);
  assert.ok(seBoth / seGen > 1.25, `predicted widening ${seBoth / seGen}`);
  assert.ok(
    Math.abs(widening / (seBoth / seGen) - 1) < 0.15,
    `widening ${widening} vs predicted ${seBoth / seGen}`,
  );
});
