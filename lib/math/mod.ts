/**
 * Float64 numerics the evaluation needs and TensorFlow.js does not give: a symmetric
 * eigendecomposition (blocked Householder tridiagonalisation, then implicit QL for eigenvalues
 * or Cuppen's divide and conquer for eigenvectors) and BLAS-style float64 kernels (`gemm`,
 * `symvLower`) that run in OpenBLAS through FFI when it loads, else in TypeScript.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { symmetricEigen } from "./mod.ts";
 *
 * const { values } = symmetricEigen(new Float64Array([2, 1, 1, 2]), 2);
 * assert.deepEqual(Array.from(values, Math.round), [1, 3]);
 * ```
 * @module
 */
export { blas64Info, gemm, type GemmArgs, setBlas64Enabled, symvLower } from "./blas64.ts";
export type { SymvArgs } from "./blas64.ts";
export {
  applyReflectors,
  solveSecular,
  type SymmetricEigen,
  symmetricEigen,
  type SymmetricEigenOptions,
  type Tridiagonal,
  tridiagonalEigen,
  tridiagonalEigenvalues,
  tridiagonalize,
} from "./eigen.ts";
export { percentileInterval, quantileSorted } from "./quantile.ts";
