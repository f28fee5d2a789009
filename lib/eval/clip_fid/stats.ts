/**
 * Streaming feature statistics (mean and covariance) in float64.
 *
 * Each batch is reduced exactly around its own mean (`M2_b = sum (x - mean_b)(x - mean_b)^T`,
 * one GEMM), then folded into the running totals with Chan et al.'s parallel update
 * `M2 = M2_a + M2_b + delta delta^T n_a n_b / n`. Nothing ever subtracts two large raw moments, so
 * features with a large common offset lose no precision, memory stays `O(d^2)` whatever the
 * number of images, and accumulators from different batches or processes merge exactly like
 * batches. The covariance uses `n - 1` (numpy's `np.cov` default, as pytorch-fid and clean-fid).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FeatureStatsAccumulator, featureStats } from "./stats.ts";
 *
 * const acc = new FeatureStatsAccumulator(2);
 * acc.add(new Float32Array([0, 0, 2, 2]), 2);
 * acc.add(new Float32Array([4, 8]), 1);
 * const all = featureStats(new Float32Array([0, 0, 2, 2, 4, 8]), 3, 2);
 * const merged = acc.stats(); // same as one batch, up to rounding
 * assert.equal(merged.n, all.n);
 * merged.mu.forEach((v, i) => assert.ok(Math.abs(v - all.mu[i]) < 1e-12));
 * merged.sigma.forEach((v, i) => assert.ok(Math.abs(v - all.sigma[i]) < 1e-12));
 * ```
 * @module
 */
import { gemm } from "../../math/blas64.ts";

/** Mean and covariance of `n` feature vectors of dimension `d`. */
export interface FeatureStats {
  /** Mean, length d. */
  mu: Float64Array;
  /** Covariance (n - 1 normalisation), row-major d x d. */
  sigma: Float64Array;
  /** Number of feature vectors. */
  n: number;
}

/** Serialisable accumulator state: count, mean and centred scatter matrix. */
export interface FeatureStatsState {
  d: number;
  n: number;
  mean: Float64Array;
  /** `sum (x - mean)(x - mean)^T`, row-major d x d. */
  m2: Float64Array;
}

/** Rows per GEMM chunk, so a huge batch never needs a huge float64 copy. */
const CHUNK = 1024;

function checkBatch(features: Float32Array | Float64Array, n: number, d: number, what: string) {
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(`${what}: n must be an integer >= 0, got ${n}`);
  }
  if (!Number.isInteger(d) || d < 1) {
    throw new Error(`${what}: d must be an integer >= 1, got ${d}`);
  }
  if (features.length !== n * d) {
    throw new Error(`${what}: features have ${features.length} values, expected n*d = ${n}*${d}`);
  }
}

/** Running mean/covariance of feature vectors; see the module notes for the update used. */
export class FeatureStatsAccumulator {
  readonly d: number;
  private count = 0;
  private mean: Float64Array;
  private m2: Float64Array;

  /**
   * An empty accumulator for `d`-dimensional features.
   */
  constructor(d: number) {
    if (!Number.isInteger(d) || d < 1) {
      throw new Error(`FeatureStatsAccumulator: d must be an integer >= 1, got ${d}`);
    }
    this.d = d;
    this.mean = new Float64Array(d);
    this.m2 = new Float64Array(d * d);
  }

  /**
   * Rebuild an accumulator from saved statistics (`m2 = sigma * (n - 1)`), e.g. to extend a
   * cached reference set.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { FeatureStatsAccumulator, featureStats } from "./stats.ts";
   *
   * const cached = featureStats(new Float32Array([0, 0, 2, 2]), 2, 2);
   * const acc = FeatureStatsAccumulator.fromStats(cached).add(new Float32Array([4, 8]), 1);
   * assert.equal(acc.stats().n, 3);
   * ```
   */
  static fromStats(s: FeatureStats): FeatureStatsAccumulator {
    const d = s.mu.length;
    if (s.sigma.length !== d * d) {
      throw new Error(`FeatureStatsAccumulator.fromStats: sigma must be ${d}x${d}`);
    }
    const acc = new FeatureStatsAccumulator(d);
    acc.count = s.n;
    acc.mean.set(s.mu);
    const f = Math.max(s.n - 1, 0);
    for (let i = 0; i < d * d; i++) acc.m2[i] = s.sigma[i] * f;
    return acc;
  }

  /**
   * Restore from {@link FeatureStatsAccumulator.state} (e.g. sent by another process).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { FeatureStatsAccumulator } from "./stats.ts";
   *
   * const other = new FeatureStatsAccumulator(2).add(new Float32Array([0, 0, 2, 2]), 2);
   * const acc = FeatureStatsAccumulator.fromState(other.state());
   * assert.deepEqual(acc.stats(), other.stats());
   * ```
   */
  static fromState(st: FeatureStatsState): FeatureStatsAccumulator {
    const acc = new FeatureStatsAccumulator(st.d);
    if (st.mean.length !== st.d || st.m2.length !== st.d * st.d || !(st.n >= 0)) {
      throw new Error(`FeatureStatsAccumulator.fromState: inconsistent state for d=${st.d}`);
    }
    acc.count = st.n;
    acc.mean.set(st.mean);
    acc.m2.set(st.m2);
    return acc;
  }

  /** Number of feature vectors seen. */
  get n(): number {
    return this.count;
  }

  /**
   * Add `n` feature vectors (row-major `n x d`). Returns `this`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { FeatureStatsAccumulator } from "./stats.ts";
   *
   * // Features as a FeatureExtractor's `extract(images)` returns them: 2 images x 3 dimensions.
   * const acc = new FeatureStatsAccumulator(3).add(new Float32Array([1, 2, 3, 3, 2, 1]), 2);
   * assert.equal(acc.n, 2);
   * assert.deepEqual(Array.from(acc.stats().mu), [2, 2, 2]);
   * ```
   */
  add(features: Float32Array | Float64Array, n: number): this {
    checkBatch(features, n, this.d, "FeatureStatsAccumulator.add");
    for (let s = 0; s < n; s += CHUNK) {
      const b = Math.min(CHUNK, n - s);
      this.addChunk(features.subarray(s * this.d, (s + b) * this.d), b);
    }
    return this;
  }

  private addChunk(x: Float32Array | Float64Array, b: number): void {
    const d = this.d;
    const mb = new Float64Array(d);
    for (let i = 0; i < b; i++) {
      const o = i * d;
      for (let j = 0; j < d; j++) {
        const v = x[o + j];
        if (!Number.isFinite(v)) {
          throw new Error(`FeatureStatsAccumulator.add: feature [${i}, ${j}] is not finite (${v})`);
        }
        mb[j] += v;
      }
    }
    for (let j = 0; j < d; j++) mb[j] /= b;
    const xc = new Float64Array(b * d);
    for (let i = 0; i < b; i++) {
      const o = i * d;
      for (let j = 0; j < d; j++) xc[o + j] = x[o + j] - mb[j];
    }
    const m2b = new Float64Array(d * d);
    gemm({ m: d, n: d, k: b, a: xc, lda: d, transA: true, b: xc, ldb: d, c: m2b });
    this.combine(b, mb, m2b);
  }

  /** Chan's update with a block of `nb` vectors of mean `mb` and scatter `m2b`. */
  private combine(nb: number, mb: Float64Array, m2b: Float64Array): void {
    if (nb === 0) return;
    const d = this.d, na = this.count, n = na + nb;
    if (na === 0) {
      this.mean.set(mb);
      this.m2.set(m2b);
      this.count = nb;
      return;
    }
    const delta = new Float64Array(d);
    for (let j = 0; j < d; j++) delta[j] = mb[j] - this.mean[j];
    const f = (na * nb) / n;
    for (let i = 0; i < d; i++) {
      const o = i * d, di = delta[i] * f;
      for (let j = 0; j < d; j++) this.m2[o + j] += m2b[o + j] + di * delta[j];
    }
    const w = nb / n;
    for (let j = 0; j < d; j++) this.mean[j] += delta[j] * w;
    this.count = n;
  }

  /**
   * Fold another accumulator (same d) into this one; equal to having added its vectors here.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { FeatureStatsAccumulator } from "./stats.ts";
   *
   * const rank0 = new FeatureStatsAccumulator(2).add(new Float32Array([0, 0]), 1);
   * const rank1State = new FeatureStatsAccumulator(2).add(new Float32Array([2, 2]), 1).state();
   * rank0.merge(FeatureStatsAccumulator.fromState(rank1State));
   * assert.equal(rank0.stats().n, 2);
   * ```
   */
  merge(other: FeatureStatsAccumulator): this {
    if (other.d !== this.d) {
      throw new Error(`FeatureStatsAccumulator.merge: dimension ${other.d} differs from ${this.d}`);
    }
    this.combine(other.count, other.mean, other.m2);
    return this;
  }

  /**
   * Copy of the raw state (count, mean, scatter), for saving or sending to another process.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { FeatureStatsAccumulator } from "./stats.ts";
   *
   * const st = new FeatureStatsAccumulator(1).add(new Float32Array([1, 3]), 2).state();
   * assert.deepEqual([st.d, st.n, Array.from(st.mean), Array.from(st.m2)], [1, 2, [2], [2]]);
   * ```
   */
  state(): FeatureStatsState {
    return { d: this.d, n: this.count, mean: this.mean.slice(), m2: this.m2.slice() };
  }

  /**
   * Mean and covariance (`n - 1`); needs at least 2 vectors.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { FeatureStatsAccumulator } from "./stats.ts";
   *
   * const s = new FeatureStatsAccumulator(2).add(new Float32Array([0, 0, 2, 4]), 2).stats();
   * assert.deepEqual([Array.from(s.mu), Array.from(s.sigma), s.n], [[1, 2], [2, 4, 4, 8], 2]);
   * ```
   */
  stats(): FeatureStats {
    if (this.count < 2) {
      throw new Error(
        `FeatureStatsAccumulator.stats: need at least 2 feature vectors, have ${this.count}`,
      );
    }
    const d = this.d, f = 1 / (this.count - 1);
    const sigma = new Float64Array(d * d);
    // Average the two triangles so the result is exactly symmetric.
    for (let i = 0; i < d; i++) {
      for (let j = 0; j <= i; j++) {
        const v = 0.5 * (this.m2[i * d + j] + this.m2[j * d + i]) * f;
        sigma[i * d + j] = v;
        sigma[j * d + i] = v;
      }
    }
    return { mu: this.mean.slice(), sigma, n: this.count };
  }
}

/**
 * Mean and covariance of `n` feature vectors (row-major `n x d`) in one call.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { featureStats } from "./stats.ts";
 *
 * const s = featureStats(new Float32Array([0, 0, 2, 2]), 2, 2);
 * assert.deepEqual([Array.from(s.mu), Array.from(s.sigma)], [[1, 1], [2, 2, 2, 2]]);
 * ```
 */
export function featureStats(
  features: Float32Array | Float64Array,
  n: number,
  d: number,
): FeatureStats {
  checkBatch(features, n, d, "featureStats");
  return new FeatureStatsAccumulator(d).add(features, n).stats();
}
