/**
 * Frechet distance between two Gaussians fitted to feature sets (the FID formula):
 *
 *   `||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2})`
 *
 * computed through symmetric eigendecompositions instead of an iterative or Schur-based matrix
 * square root: with `S1 = V diag(l) V^T`, `F = V diag(sqrt(l))`, the eigenvalues of `S1 S2`
 * are those of the symmetric PSD matrix `F^T S2 F` (similar to `S1^{1/2} S2 S1^{1/2}`), so
 * `tr((S1 S2)^{1/2})` is the sum of the square roots of its eigenvalues. Tiny negative eigenvalues
 * from rounding are clipped to 0; directions where `S1` is zero are dropped before the product.
 *
 * Near-singular products (reciprocal condition below `d * 2^-52`, e.g. fewer images than feature
 * dimensions) get clean-fid/pytorch-fid's fallback: `eps * I` (eps = 1e-6) is added to both
 * covariances inside the square-root term only, and the result says so.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { frechetDistance } from "./frechet.ts";
 * import type { FeatureStats } from "./stats.ts";
 *
 * // Diagonal covariances: FID = |mu1 - mu2|^2 + sum(s1 + s2 - 2 sqrt(s1 s2)) = 5 + 1 + 1.
 * const gen: FeatureStats = { mu: new Float64Array([0, 0]), sigma: new Float64Array([1, 0, 0, 4]), n: 10 };
 * const ref: FeatureStats = { mu: new Float64Array([1, 2]), sigma: new Float64Array([4, 0, 0, 1]), n: 10 };
 * assert.ok(Math.abs(frechetDistance(gen, ref) - 7) < 1e-9);
 * assert.ok(Math.abs(frechetDistance(gen, gen)) < 1e-9); // identical statistics
 * ```
 * @module
 */
import { gemm } from "../../math/blas64.ts";
import { symmetricEigen } from "../../math/eigen.ts";
import type { FeatureStats } from "./stats.ts";

/** Options of {@link frechetDistanceDetailed}. */
export interface FrechetOptions {
  /** Diagonal offset for the near-singular fallback (default 1e-6, as clean-fid/pytorch-fid). */
  eps?: number;
  /** "auto" (default): add eps only when the product is near singular; "always" or "never". */
  regularize?: "auto" | "always" | "never";
}

/** Frechet distance with its parts and how it was obtained. */
export interface FrechetDetails {
  /** The distance reported (with the eps offset when `regularized`). */
  distance: number;
  /** `||mu1 - mu2||^2`. */
  meanTerm: number;
  /** `tr(S1) + tr(S2)` (never offset, as in pytorch-fid). */
  traces: number;
  /** `tr((S1 S2)^{1/2})` used for `distance`. */
  traceSqrt: number;
  /** Whether `eps * I` was added to both covariances in the square-root term. */
  regularized: boolean;
  /** The offset used (0 when not regularized). */
  eps: number;
  /** Smallest / largest eigenvalue of the (unregularized) product `S1 S2`; 0 when singular. */
  rcond: number;
  /** Distance without the offset (equal to `distance` when not regularized). */
  unregularized: number;
  /** Eigenvalues clipped to 0 (below 0 by rounding) in S1 and in the product. */
  clipped: { sigma1: number; product: number };
  /** Human-readable note, set when the fallback ran. */
  note?: string;
}

const EPS = 2 ** -52;

function check(a: FeatureStats, b: FeatureStats): number {
  const d = a.mu.length;
  if (b.mu.length !== d) {
    throw new Error(`frechetDistance: feature dimensions differ (${d} vs ${b.mu.length})`);
  }
  for (const [name, s] of [["a", a], ["b", b]] as const) {
    if (s.sigma.length !== d * d) {
      throw new Error(
        `frechetDistance: ${name}.sigma has ${s.sigma.length} values, expected ${d}x${d}`,
      );
    }
    for (let i = 0; i < d; i++) {
      if (!Number.isFinite(s.mu[i])) {
        throw new Error(`frechetDistance: ${name}.mu[${i}] is not finite`);
      }
    }
  }
  return d;
}

interface SqrtTrace {
  trace: number;
  rcond: number;
  clipped: { sigma1: number; product: number };
}

/** `tr((S1 S2)^{1/2})` via eigendecompositions (see module notes). */
function traceSqrtProduct(s1: Float64Array, s2: Float64Array, d: number): SqrtTrace {
  const { values: l, vectors: v } = symmetricEigen(s1, d, { name: "sigma1" });
  let clip1 = 0;
  const keep: number[] = [];
  for (let j = 0; j < d; j++) {
    if (l[j] < 0) clip1++;
    if (l[j] > 0) keep.push(j);
  }
  const r = keep.length;
  if (r === 0) return { trace: 0, rcond: 0, clipped: { sigma1: clip1, product: 0 } };
  // F = V[:, keep] diag(sqrt(l[keep])), d x r.
  const f = new Float64Array(d * r);
  for (let i = 0; i < d; i++) {
    for (let c = 0; c < r; c++) f[i * r + c] = v![i * d + keep[c]] * Math.sqrt(l[keep[c]]);
  }
  const g = new Float64Array(d * r);
  gemm({ m: d, n: r, k: d, a: s2, b: f, c: g });
  const m = new Float64Array(r * r);
  gemm({ m: r, n: r, k: d, a: f, transA: true, b: g, c: m });
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < i; j++) {
      const x = 0.5 * (m[i * r + j] + m[j * r + i]);
      m[i * r + j] = x;
      m[j * r + i] = x;
    }
  }
  const { values: mu } = symmetricEigen(m, r, { vectors: false, name: "S1^1/2 S2 S1^1/2" });
  let trace = 0, clip2 = 0;
  for (let i = 0; i < r; i++) {
    if (mu[i] < 0) clip2++;
    else trace += Math.sqrt(mu[i]);
  }
  const top = mu[r - 1];
  const rcond = r < d || !(top > 0) ? 0 : Math.max(mu[0], 0) / top;
  return { trace, rcond, clipped: { sigma1: clip1, product: clip2 } };
}

function withOffset(s: Float64Array, d: number, eps: number): Float64Array {
  const o = Float64Array.from(s);
  for (let i = 0; i < d; i++) o[i * d + i] += eps;
  return o;
}

/**
 * Frechet distance with its parts, the eps-fallback flag and the product's conditioning.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { frechetDistanceDetailed } from "./frechet.ts";
 * import { featureStats } from "./stats.ts";
 *
 * // 2 images in 3 dimensions: a rank-1 covariance, so the eps fallback runs.
 * const gen = featureStats(new Float32Array([0, 0, 0, 1, 2, 3]), 2, 3);
 * const r = frechetDistanceDetailed(gen, gen);
 * assert.equal(r.regularized, true);
 * assert.equal(r.eps, 1e-6);
 * assert.ok(Math.abs(r.distance) < 1e-5 && r.note!.includes("near singular"));
 * ```
 */
export function frechetDistanceDetailed(
  a: FeatureStats,
  b: FeatureStats,
  opts: FrechetOptions = {},
): FrechetDetails {
  const d = check(a, b);
  const eps = opts.eps ?? 1e-6;
  const mode = opts.regularize ?? "auto";
  if (!(eps > 0)) throw new Error(`frechetDistance: eps must be > 0, got ${eps}`);
  let meanTerm = 0, traces = 0;
  for (let i = 0; i < d; i++) {
    const x = a.mu[i] - b.mu[i];
    meanTerm += x * x;
    traces += a.sigma[i * d + i] + b.sigma[i * d + i];
  }
  const plain = traceSqrtProduct(a.sigma, b.sigma, d);
  const unregularized = meanTerm + traces - 2 * plain.trace;
  const singular = !(plain.rcond > d * EPS);
  if (mode === "never" || (mode === "auto" && !singular)) {
    return {
      distance: unregularized,
      meanTerm,
      traces,
      traceSqrt: plain.trace,
      regularized: false,
      eps: 0,
      rcond: plain.rcond,
      unregularized,
      clipped: plain.clipped,
    };
  }
  const reg = traceSqrtProduct(withOffset(a.sigma, d, eps), withOffset(b.sigma, d, eps), d);
  const distance = meanTerm + traces - 2 * reg.trace;
  const why = singular
    ? `the covariance product is near singular (rcond ${plain.rcond.toExponential(2)})`
    : "regularization was requested";
  return {
    distance,
    meanTerm,
    traces,
    traceSqrt: reg.trace,
    regularized: true,
    eps,
    rcond: plain.rcond,
    unregularized,
    clipped: plain.clipped,
    note:
      `${why}: added ${eps.toExponential()} to the diagonals of both covariances in the square-root term ` +
      `(clean-fid/pytorch-fid fallback); without it the distance is ${unregularized}`,
  };
}

/**
 * Frechet distance between two feature statistics (see {@link frechetDistanceDetailed}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { frechetDistance } from "./frechet.ts";
 * import { featureStats } from "./stats.ts";
 *
 * const x = new Float32Array([0, 0, 2, 2, 1, 3]);
 * const y = new Float32Array([1, 1, 3, 3, 2, 4]); // x shifted by (1, 1)
 * const fid = frechetDistance(featureStats(x, 3, 2), featureStats(y, 3, 2));
 * assert.ok(Math.abs(fid - 2) < 1e-6); // |mu_x - mu_y|^2, same covariance
 * ```
 */
export function frechetDistance(
  a: FeatureStats,
  b: FeatureStats,
  opts: FrechetOptions = {},
): number {
  return frechetDistanceDetailed(a, b, opts).distance;
}
