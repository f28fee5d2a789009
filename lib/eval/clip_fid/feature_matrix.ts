/**
 * Shared shape of a feature matrix: `n` row-major vectors of dimension `d`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkFeatureMatrix, type FeatureMatrix } from "./feature_matrix.ts";
 *
 * const m: FeatureMatrix = { data: new Float32Array(6), n: 2, d: 3 }; // 2 images, 3 features
 * checkFeatureMatrix(m, "generated");
 * assert.throws(() => checkFeatureMatrix({ ...m, n: 3 }, "generated"), /generated/);
 * ```
 * @module
 */

/** `n` feature vectors of dimension `d`, row-major. */
export interface FeatureMatrix {
  data: Float32Array | Float64Array;
  n: number;
  d: number;
}

/**
 * Throw a clear error unless `m` is a consistent, finite `n x d` matrix.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkFeatureMatrix } from "./feature_matrix.ts";
 *
 * checkFeatureMatrix({ data: new Float32Array(6), n: 2, d: 3 }, "x"); // ok
 * const bad = { data: new Float32Array([0, NaN]), n: 1, d: 2 };
 * assert.throws(() => checkFeatureMatrix(bad, "x"), /x: value \[0, 1\] is not finite/);
 * ```
 */
export function checkFeatureMatrix(m: FeatureMatrix, what: string): void {
  if (!m || !(m.data instanceof Float32Array || m.data instanceof Float64Array)) {
    throw new Error(`${what}: data must be a Float32Array or Float64Array`);
  }
  if (!Number.isInteger(m.n) || m.n < 0) throw new Error(`${what}: n must be an integer >= 0`);
  if (!Number.isInteger(m.d) || m.d < 1) throw new Error(`${what}: d must be an integer >= 1`);
  if (m.data.length !== m.n * m.d) {
    throw new Error(`${what}: ${m.data.length} values, expected n*d = ${m.n}*${m.d}`);
  }
  for (let i = 0; i < m.data.length; i++) {
    if (!Number.isFinite(m.data[i])) {
      throw new Error(`${what}: value [${Math.floor(i / m.d)}, ${i % m.d}] is not finite`);
    }
  }
}

/**
 * Rows `idx` of `m` gathered into a new float64 matrix.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gatherRows } from "./feature_matrix.ts";
 *
 * const data = new Float32Array(10 * 4).map((_, i) => i);
 * const sub = gatherRows({ data, n: 10, d: 4 }, new Int32Array([0, 0, 3])); // 3 x 4
 * assert.deepEqual(Array.from(sub.slice(8)), [12, 13, 14, 15]);
 * ```
 */
export function gatherRows(m: FeatureMatrix, idx: ArrayLike<number>): Float64Array {
  const d = m.d, out = new Float64Array(idx.length * d);
  for (let i = 0; i < idx.length; i++) {
    const r = idx[i];
    if (!(r >= 0 && r < m.n)) throw new Error(`gatherRows: row ${r} out of range [0, ${m.n})`);
    for (let j = 0; j < d; j++) out[i * d + j] = m.data[r * d + j];
  }
  return out;
}
