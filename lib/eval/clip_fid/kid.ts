/**
 * Kernel Inception Distance (Binkowski et al. 2018) as clean-fid and torch-fidelity compute it:
 * the unbiased MMD^2 estimate with the cubic polynomial kernel `k(x, y) = (x.y / d + 1)^3`,
 * averaged over random subsets of size `m` drawn without replacement from each set, reported
 * with the standard deviation over subsets (population std, as torch-fidelity's `np.std`).
 *
 * Per subset: `sum_{i!=j} k(x_i,x_j) / (m(m-1)) + sum_{i!=j} k(y_i,y_j) / (m(m-1))
 * - 2 sum_{i,j} k(x_i,y_j) / m^2`. The estimate is unbiased, so it can be slightly negative.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { kernelInceptionDistance } from "./kid.ts";
 *
 * const gen = { data: new Float32Array([0, 1, 2, 3, 4, 5]), n: 3, d: 2 };
 * const ref = { data: new Float32Array([9, 9, 8, 8, 7, 7, 6, 6]), n: 4, d: 2 };
 * const r = kernelInceptionDistance(gen, ref, { subsets: 10, subsetSize: 1000, seed: 0 });
 * assert.equal(r.subsetSize, 3); // min(1000, 3, 4)
 * assert.equal(r.values.length, 10);
 * assert.ok(r.mean > 0 && r.std >= 0);
 * ```
 * @module
 */
import { Rng, STREAM } from "../../util/rng.ts";
import { gemm } from "../../math/blas64.ts";
import { checkFeatureMatrix, type FeatureMatrix, gatherRows } from "./feature_matrix.ts";

/** Options of {@link kernelInceptionDistance}. */
export interface KidOptions {
  /** Number of subsets (default 100). */
  subsets?: number;
  /** Largest subset size (default 1000); the size used is min(this, n_a, n_b). */
  subsetSize?: number;
  /** Seed of the subset draws (default 0); stream `[STREAM.eval, 2]`. */
  seed?: number;
}

/** KID mean and spread over subsets. */
export interface KidResult {
  mean: number;
  /** Population standard deviation of the per-subset estimates. */
  std: number;
  /** Per-subset MMD^2 estimates. */
  values: Float64Array;
  /** Subset size used. */
  subsetSize: number;
}

function sample(rng: Rng, n: number, m: number): Int32Array {
  // Partial Fisher-Yates: the first m entries are a uniform draw without replacement.
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = 0; i < m; i++) {
    const j = i + rng.int(n - i);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p.subarray(0, m);
}

/**
 * Unbiased MMD^2 with the cubic kernel between two equal-size samples (`m x d` each, m >= 2).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mmdPolynomial } from "./kid.ts";
 *
 * // k(1,-1) = 0 twice over 2 pairs, k(0,0) = 1 twice, cross terms sum to 4: 0 + 1 - 2 = -1.
 * assert.equal(mmdPolynomial(new Float64Array([1, -1]), new Float64Array([0, 0]), 2, 1), -1);
 * ```
 */
export function mmdPolynomial(x: Float64Array, y: Float64Array, m: number, d: number): number {
  if (m < 2) throw new Error(`mmdPolynomial: need at least 2 samples per set, got ${m}`);
  if (x.length !== m * d || y.length !== m * d) {
    throw new Error(`mmdPolynomial: expected two ${m}x${d} matrices`);
  }
  const g = new Float64Array(m * m);
  const kernelSum = (a: Float64Array, b: Float64Array, skipDiag: boolean) => {
    gemm({ m, n: m, k: d, a, b, transB: true, c: g, alpha: 1 / d });
    let s = 0;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < m; j++) {
        if (skipDiag && i === j) continue;
        const v = g[i * m + j] + 1;
        s += v * v * v;
      }
    }
    return s;
  };
  const kxx = kernelSum(x, x, true), kyy = kernelSum(y, y, true), kxy = kernelSum(x, y, false);
  return (kxx + kyy) / (m * (m - 1)) - (2 * kxy) / (m * m);
}

/**
 * KID between two feature sets of the same dimension.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { kernelInceptionDistance } from "./kid.ts";
 *
 * const a = { data: new Float32Array([1, -1, 1, -1]), n: 4, d: 1 };
 * const r = kernelInceptionDistance(a, a, { subsets: 5 }); // every subset is the whole set
 * // Unbiased, so a set against itself gives 2 * 32/12 - 2 * 64/16 = -8/3 < 0, in every subset.
 * assert.ok(Math.abs(r.mean + 8 / 3) < 1e-12 && r.std < 1e-12);
 * ```
 */
export function kernelInceptionDistance(
  a: FeatureMatrix,
  b: FeatureMatrix,
  opts: KidOptions = {},
): KidResult {
  checkFeatureMatrix(a, "kernelInceptionDistance: a");
  checkFeatureMatrix(b, "kernelInceptionDistance: b");
  if (a.d !== b.d) throw new Error(`kernelInceptionDistance: dimensions differ (${a.d} vs ${b.d})`);
  const subsets = opts.subsets ?? 100;
  if (!Number.isInteger(subsets) || subsets < 1) {
    throw new Error(`kernelInceptionDistance: subsets must be a positive integer, got ${subsets}`);
  }
  const m = Math.min(opts.subsetSize ?? 1000, a.n, b.n);
  if (!(m >= 2)) {
    throw new Error(`kernelInceptionDistance: need subsets of at least 2 (n_a=${a.n}, n_b=${b.n})`);
  }
  const rng = Rng.stream(opts.seed ?? 0, [STREAM.eval, 2]);
  const values = new Float64Array(subsets);
  for (let s = 0; s < subsets; s++) {
    const x = gatherRows(a, sample(rng, a.n, m));
    const y = gatherRows(b, sample(rng, b.n, m));
    values[s] = mmdPolynomial(x, y, m, a.d);
  }
  let mean = 0;
  for (const v of values) mean += v;
  mean /= subsets;
  let varSum = 0;
  for (const v of values) varSum += (v - mean) ** 2;
  return { mean, std: Math.sqrt(varSum / subsets), values, subsetSize: m };
}
