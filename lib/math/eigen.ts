/**
 * Symmetric eigendecomposition in float64, written for the Frechet distance:
 *
 * 1. Householder reduction to tridiagonal form, blocked like LAPACK's `dsytrd` (a panel of
 *    reflectors is built with symmetric matrix-vector products, then the trailing matrix gets one
 *    rank-2k update through GEMM), so most of the O(d^3) work runs in BLAS.
 * 2. Eigenvalues only: implicit QL with Wilkinson shifts on the tridiagonal matrix (O(d^2)).
 *    Eigenvectors: Cuppen's divide and conquer with deflation, the secular equation solved per
 *    root from its nearer pole, and the Gu-Eisenstat recomputation of the rank-one vector, which
 *    keeps the computed eigenvectors orthogonal to working precision without reorthogonalisation.
 *    Small blocks (<= 32) use implicit QL with rotations.
 * 3. Eigenvectors are mapped back through the reflectors in blocks (compact WY form, GEMM).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { symmetricEigen } from "./eigen.ts";
 *
 * const { values, vectors } = symmetricEigen(new Float64Array([2, 1, 1, 2]), 2);
 * assert.deepEqual(Array.from(values, Math.round), [1, 3]);
 * // column j of the row-major `vectors` is the eigenvector of values[j]
 * assert.ok(Math.abs(Math.abs(vectors![0]) - Math.SQRT1_2) < 1e-12);
 * ```
 * @module
 */
import { gemm, symvLower } from "./blas64.ts";

const EPS = 2 ** -52;
const BLOCK = 32;
/** Reflectors per block when mapping eigenvectors back (wider GEMMs; T costs O(b^2 n)). */
const BACK_BLOCK = 128;
const DC_LEAF = 32;

/** Result of {@link symmetricEigen}. */
export interface SymmetricEigen {
  /** Eigenvalues, ascending. */
  values: Float64Array;
  /** Row-major `n x n`; column `j` is the unit eigenvector of `values[j]` (when requested). */
  vectors?: Float64Array;
}

/** Options of {@link symmetricEigen}. */
export interface SymmetricEigenOptions {
  /** Compute eigenvectors too (default true). */
  vectors?: boolean;
  /** Relative asymmetry `max|A - A^T| / max|A|` tolerated before refusing (default 1e-10). */
  symmetryTolerance?: number;
  /** Name used in error messages (default "matrix"). */
  name?: string;
}

/**
 * Eigenvalues (ascending) and optionally eigenvectors of a symmetric row-major `n x n` matrix.
 * The input is not modified; it must be symmetric (checked) and finite.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { symmetricEigen } from "./eigen.ts";
 *
 * const sigma = new Float64Array([2, 1, 1, 2]);
 * const { values } = symmetricEigen(sigma, 2, { vectors: false });
 * assert.deepEqual(Array.from(values, Math.round), [1, 3]);
 * ```
 */
export function symmetricEigen(
  a: Float64Array,
  n: number,
  opts: SymmetricEigenOptions = {},
): SymmetricEigen {
  const name = opts.name ?? "matrix";
  if (!Number.isInteger(n) || n < 1) throw new Error(`symmetricEigen: ${name} size must be >= 1`);
  if (a.length !== n * n) {
    throw new Error(`symmetricEigen: ${name} has ${a.length} values, expected ${n}x${n}`);
  }
  checkSymmetric(a, n, opts.symmetryTolerance ?? 1e-10, name);
  const work = Float64Array.from(a);
  const { d, e, tau } = tridiagonalize(work, n);
  if (opts.vectors === false) {
    return { values: tridiagonalEigenvalues(d, e) };
  }
  const { values, vectors: z } = tridiagonalEigen(d, e);
  applyReflectors(work, tau, n, z);
  return { values, vectors: z };
}

function checkSymmetric(a: Float64Array, n: number, tol: number, name: string): void {
  let amax = 0, diff = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      const x = a[i * n + j], y = a[j * n + i];
      if (!Number.isFinite(x) || !Number.isFinite(y)) {
        throw new Error(`symmetricEigen: ${name}[${i},${j}] is not finite`);
      }
      amax = Math.max(amax, Math.abs(x));
      diff = Math.max(diff, Math.abs(x - y));
    }
  }
  if (diff > tol * amax) {
    throw new Error(
      `symmetricEigen: ${name} is not symmetric (max |A - A^T| = ${diff}, max |A| = ${amax})`,
    );
  }
}

/** Tridiagonal form of a symmetric matrix plus the reflectors that produced it. */
export interface Tridiagonal {
  /** Diagonal (length n). */
  d: Float64Array;
  /** Sub-diagonal (length n - 1). */
  e: Float64Array;
  /** Reflector scalars: `H_k = I - tau[k] v_k v_k^T` (length n - 1). */
  tau: Float64Array;
}

/**
 * Reduce a symmetric matrix (full storage, row-major, overwritten) to tridiagonal form
 * `A = Q T Q^T`, `Q = H_0 H_1 ... H_{n-2}`. Reflector `k` acts on rows `k+1..n-1`; its vector has
 * an implicit 1 at row `k+1` and is stored in column `k` of `a` below that row.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tridiagonalize } from "./eigen.ts";
 *
 * const sym = new Float64Array([2, 1, 0, 1, 2, 1, 0, 1, 2]); // already tridiagonal
 * const work = Float64Array.from(sym);
 * const { d, e, tau } = tridiagonalize(work, 3);
 * assert.deepEqual([d.length, e.length, tau.length], [3, 2, 2]);
 * ```
 */
export function tridiagonalize(a: Float64Array, n: number): Tridiagonal {
  const d = new Float64Array(n), e = new Float64Array(Math.max(n - 1, 0));
  const tau = new Float64Array(Math.max(n - 1, 0));
  const nb = BLOCK;
  // Panel buffers: V and W are n x nb (row-major, row = global row index).
  const V = new Float64Array(n * nb), W = new Float64Array(n * nb);
  const y = new Float64Array(n), c1 = new Float64Array(nb), c2 = new Float64Array(nb);
  for (let k0 = 0; k0 < n; k0 += nb) {
    const b = Math.min(nb, n - k0);
    V.fill(0);
    W.fill(0);
    for (let i = 0; i < b; i++) {
      const k = k0 + i;
      // Bring column k (rows k..n-1) up to date with the panel's earlier reflectors:
      // a[k:, k] -= V[k:, :i] W[k, :i]^T + W[k:, :i] V[k, :i]^T (two GEMVs through gemm).
      if (i > 0) {
        const rows = n - k, off = k * nb, offC = k * n + k;
        gemm({
          m: rows,
          n: 1,
          k: i,
          a: V,
          offA: off,
          lda: nb,
          b: W,
          offB: off,
          ldb: 1,
          c: a,
          offC,
          ldc: n,
          alpha: -1,
          beta: 1,
        });
        gemm({
          m: rows,
          n: 1,
          k: i,
          a: W,
          offA: off,
          lda: nb,
          b: V,
          offB: off,
          ldb: 1,
          c: a,
          offC,
          ldc: n,
          alpha: -1,
          beta: 1,
        });
      }
      d[k] = a[k * n + k];
      if (k === n - 1) break;
      const m = n - k - 1;
      // Householder reflector for x = a[k+1..n-1, k].
      const alpha = a[(k + 1) * n + k];
      let xnorm = 0;
      {
        let scale = 0;
        for (let r = k + 2; r < n; r++) scale = Math.max(scale, Math.abs(a[r * n + k]));
        if (scale > 0) {
          let ss = 0;
          for (let r = k + 2; r < n; r++) {
            const v = a[r * n + k] / scale;
            ss += v * v;
          }
          xnorm = scale * Math.sqrt(ss);
        }
      }
      let t = 0, beta = alpha;
      if (xnorm > 0) {
        beta = -Math.sign(alpha || 1) * Math.hypot(alpha, xnorm);
        t = (beta - alpha) / beta;
        const inv = 1 / (alpha - beta);
        for (let r = k + 2; r < n; r++) a[r * n + k] *= inv;
      }
      e[k] = beta;
      tau[k] = t;
      // v in V[:, i] (rows k+1..n-1).
      V[(k + 1) * nb + i] = 1;
      for (let r = k + 2; r < n; r++) V[r * nb + i] = a[r * n + k];
      if (t === 0) continue; // H = I: w = 0
      // y = A22 v - V (W^T v) - W (V^T v), A22 = a[k+1.., k+1..] as of the panel start.
      const vv = new Float64Array(m);
      for (let r = 0; r < m; r++) vv[r] = V[(k + 1 + r) * nb + i];
      symvLower({ n: m, a, offA: (k + 1) * n + (k + 1), lda: n, x: vv, y, offY: 0 });
      if (i > 0) {
        const off = (k + 1) * nb;
        gemm({
          m: i,
          n: 1,
          k: m,
          a: W,
          offA: off,
          lda: nb,
          transA: true,
          b: vv,
          ldb: 1,
          c: c1,
          ldc: 1,
        });
        gemm({
          m: i,
          n: 1,
          k: m,
          a: V,
          offA: off,
          lda: nb,
          transA: true,
          b: vv,
          ldb: 1,
          c: c2,
          ldc: 1,
        });
        gemm({
          m,
          n: 1,
          k: i,
          a: V,
          offA: off,
          lda: nb,
          b: c1,
          ldb: 1,
          c: y,
          ldc: 1,
          alpha: -1,
          beta: 1,
        });
        gemm({
          m,
          n: 1,
          k: i,
          a: W,
          offA: off,
          lda: nb,
          b: c2,
          ldb: 1,
          c: y,
          ldc: 1,
          alpha: -1,
          beta: 1,
        });
      }
      let yv = 0;
      for (let r = 0; r < m; r++) {
        y[r] *= t;
        yv += y[r] * vv[r];
      }
      const half = -0.5 * t * yv;
      for (let r = 0; r < m; r++) W[(k + 1 + r) * nb + i] = y[r] + half * vv[r];
    }
    // Rank-2b update of the trailing matrix (full storage, both triangles kept consistent).
    const s0 = k0 + b;
    const m = n - s0;
    if (m > 0 && s0 < n) {
      const off = s0 * n + s0;
      gemm({
        m,
        n: m,
        k: b,
        a: V,
        offA: s0 * nb,
        lda: nb,
        b: W,
        offB: s0 * nb,
        ldb: nb,
        transB: true,
        c: a,
        offC: off,
        ldc: n,
        alpha: -1,
        beta: 1,
      });
      gemm({
        m,
        n: m,
        k: b,
        a: W,
        offA: s0 * nb,
        lda: nb,
        b: V,
        offB: s0 * nb,
        ldb: nb,
        transB: true,
        c: a,
        offC: off,
        ldc: n,
        alpha: -1,
        beta: 1,
      });
    }
  }
  return { d, e, tau };
}

/**
 * Overwrite `z` (row-major `n x n`) with `Q z`, `Q = H_0 ... H_{n-2}` from {@link tridiagonalize},
 * applying blocks of reflectors as `I - Y T Y^T` (compact WY, two GEMMs per block).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { applyReflectors, tridiagonalEigen, tridiagonalize } from "./eigen.ts";
 *
 * const n = 3;
 * const work = new Float64Array([4, 1, 2, 1, 3, 0, 2, 0, 5]);
 * const { d, e, tau } = tridiagonalize(work, n);
 * const z = tridiagonalEigen(d, e).vectors;
 * applyReflectors(work, tau, n, z); // eigenvectors of T -> eigenvectors of A
 * assert.equal(z.length, n * n);
 * ```
 */
export function applyReflectors(a: Float64Array, tau: Float64Array, n: number, z: Float64Array) {
  const nr = n - 1;
  if (nr <= 0) return;
  const nb = BACK_BLOCK;
  const starts: number[] = [];
  for (let k0 = 0; k0 < nr; k0 += nb) starts.push(k0);
  for (let s = starts.length - 1; s >= 0; s--) {
    const k0 = starts[s];
    const b = Math.min(nb, nr - k0);
    const m = n - k0 - 1; // rows k0+1..n-1
    // Y: m x b, column t = reflector k0+t (unit at row t, zeros above).
    const Y = new Float64Array(m * b);
    for (let t = 0; t < b; t++) {
      const k = k0 + t;
      Y[t * b + t] = 1;
      for (let r = t + 1; r < m; r++) Y[r * b + t] = a[(k0 + 1 + r) * n + k];
    }
    // T (b x b upper): T[t,t] = tau_t, T[0:t, t] = -tau_t T[0:t,0:t] (Y[:,0:t]^T y_t).
    const G = new Float64Array(b * b);
    gemm({ m: b, n: b, k: m, a: Y, lda: b, transA: true, b: Y, ldb: b, c: G });
    const T = new Float64Array(b * b);
    for (let t = 0; t < b; t++) {
      const tt = tau[k0 + t];
      T[t * b + t] = tt;
      for (let r = 0; r < t; r++) {
        let s2 = 0;
        for (let q = r; q < t; q++) s2 += T[r * b + q] * G[q * b + t];
        T[r * b + t] = -tt * s2;
      }
    }
    // Z[k0+1.., :] -= Y (T (Y^T Z)).
    const W1 = new Float64Array(b * n);
    gemm({ m: b, n, k: m, a: Y, lda: b, transA: true, b: z, offB: (k0 + 1) * n, ldb: n, c: W1 });
    const W2 = new Float64Array(b * n);
    gemm({ m: b, n, k: b, a: T, b: W1, c: W2 });
    gemm({
      m,
      n,
      k: b,
      a: Y,
      lda: b,
      b: W2,
      c: z,
      offC: (k0 + 1) * n,
      ldc: n,
      alpha: -1,
      beta: 1,
    });
  }
}

/**
 * Implicit QL with Wilkinson shifts on a symmetric tridiagonal matrix (`d` diagonal, `e[i]`
 * couples `i` and `i+1`; both overwritten). When `z` (row-major `n x n`) is given, the rotations
 * are applied to its columns. Eigenvalues are left unsorted in `d`.
 */
function qlImplicit(d: Float64Array, e: Float64Array, z: Float64Array | null): void {
  const n = d.length;
  let norm = 0;
  for (let i = 0; i < n; i++) {
    norm = Math.max(norm, Math.abs(d[i]) + (i < n - 1 ? Math.abs(e[i]) : 0));
  }
  if (!Number.isFinite(norm)) throw new Error("tridiagonal QL: the matrix has non-finite entries");
  // Couplings below eps * ||T|| are dropped even between near-zero diagonal entries: they move
  // eigenvalues by no more than the tridiagonalisation's own rounding, and low-rank covariances
  // (fewer images than dimensions) otherwise never meet the purely relative test.
  const tiny = EPS * norm;
  for (let l = 0; l < n; l++) {
    let iter = 0;
    for (;;) {
      let m = l;
      for (; m < n - 1; m++) {
        const dd = Math.abs(d[m]) + Math.abs(d[m + 1]);
        const em = Math.abs(e[m]);
        if (em <= EPS * dd || em <= tiny || em < 1e-300) break;
      }
      if (m === l) break;
      if (++iter > 60) throw new Error(`tridiagonal QL: no convergence for eigenvalue ${l}`);
      // Wilkinson shift from the leading 2x2 block.
      let g = (d[l + 1] - d[l]) / (2 * e[l]);
      let r = Math.hypot(g, 1);
      g = d[m] - d[l] + e[l] / (g + (g >= 0 ? r : -r));
      let s = 1, c = 1, p = 0;
      let i = m - 1;
      let underflow = false;
      for (; i >= l; i--) {
        const f = s * e[i], b = c * e[i];
        r = Math.hypot(f, g);
        e[i + 1] = r;
        if (r === 0) {
          d[i + 1] -= p;
          e[m] = 0;
          underflow = true;
          break;
        }
        s = f / r;
        c = g / r;
        g = d[i + 1] - p;
        r = (d[i] - g) * s + 2 * c * b;
        p = s * r;
        d[i + 1] = g + p;
        g = c * r - b;
        if (z) {
          for (let k = 0; k < n; k++) {
            const o = k * n;
            const zf = z[o + i + 1];
            z[o + i + 1] = s * z[o + i] + c * zf;
            z[o + i] = c * z[o + i] - s * zf;
          }
        }
      }
      if (underflow) continue;
      d[l] -= p;
      e[l] = g;
      e[m] = 0;
    }
  }
}

/**
 * Eigenvalues (ascending) of a symmetric tridiagonal matrix by implicit QL. Inputs are copied.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tridiagonalEigenvalues } from "./eigen.ts";
 *
 * const values = tridiagonalEigenvalues(new Float64Array([2, 2]), new Float64Array([1]));
 * assert.deepEqual(Array.from(values, Math.round), [1, 3]);
 * ```
 */
export function tridiagonalEigenvalues(d: Float64Array, e: Float64Array): Float64Array {
  const n = d.length;
  const dd = Float64Array.from(d), ee = new Float64Array(n);
  ee.set(e.subarray(0, n - 1));
  qlImplicit(dd, ee, null);
  return dd.sort();
}

/**
 * Eigenvalues (ascending) and eigenvectors (row-major, column `j` for `values[j]`) of a symmetric
 * tridiagonal matrix by divide and conquer. Inputs are not modified.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tridiagonalEigen } from "./eigen.ts";
 *
 * const { values, vectors } = tridiagonalEigen(new Float64Array([2, 2]), new Float64Array([1]));
 * assert.deepEqual([values.length, vectors.length], [2, 4]);
 * ```
 */
export function tridiagonalEigen(
  d: Float64Array,
  e: Float64Array,
): { values: Float64Array; vectors: Float64Array } {
  const n = d.length;
  let scale = 0;
  for (let i = 0; i < n; i++) scale = Math.max(scale, Math.abs(d[i]));
  for (let i = 0; i < n - 1; i++) scale = Math.max(scale, Math.abs(e[i]));
  if (scale === 0) {
    const z = new Float64Array(n * n);
    for (let i = 0; i < n; i++) z[i * n + i] = 1;
    return { values: new Float64Array(n), vectors: z };
  }
  // Work at unit scale so the deflation tolerances are absolute.
  const ds = Float64Array.from(d, (x) => x / scale);
  const es = Float64Array.from(e.subarray(0, n - 1), (x) => x / scale);
  const { values, vectors } = divideAndConquer(ds, es);
  for (let i = 0; i < n; i++) values[i] *= scale;
  return { values, vectors };
}

function leaf(d: Float64Array, e: Float64Array): { values: Float64Array; vectors: Float64Array } {
  const n = d.length;
  const dd = Float64Array.from(d), ee = new Float64Array(n);
  ee.set(e);
  const z = new Float64Array(n * n);
  for (let i = 0; i < n; i++) z[i * n + i] = 1;
  qlImplicit(dd, ee, z);
  const order = Array.from({ length: n }, (_, i) => i).sort((p, q) => dd[p] - dd[q]);
  const values = new Float64Array(n), vectors = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    values[j] = dd[order[j]];
    for (let r = 0; r < n; r++) vectors[r * n + j] = z[r * n + order[j]];
  }
  return { values, vectors };
}

function divideAndConquer(
  d: Float64Array,
  e: Float64Array,
): { values: Float64Array; vectors: Float64Array } {
  const n = d.length;
  if (n <= DC_LEAF) return leaf(d, e);
  const n1 = n >> 1, n2 = n - n1;
  const beta = e[n1 - 1];
  const rho0 = Math.abs(beta), sgn = beta < 0 ? -1 : 1;
  // T = diag(T1, T2) + rho u u^T with u = e_{n1-1} + sgn e_{n1}.
  const d1 = d.slice(0, n1), d2 = d.slice(n1);
  d1[n1 - 1] -= rho0;
  d2[0] -= rho0;
  const left = divideAndConquer(d1, e.slice(0, n1 - 1));
  const right = divideAndConquer(d2, e.slice(n1));
  return merge(left, right, n1, n2, rho0, sgn);
}

/**
 * Merge two solved halves: eigen-decompose `D + rho z z^T` (deflation, secular equation,
 * Gu-Eisenstat vectors) and multiply the halves' eigenvectors by the result.
 */
function merge(
  left: { values: Float64Array; vectors: Float64Array },
  right: { values: Float64Array; vectors: Float64Array },
  n1: number,
  n2: number,
  rho0: number,
  sgn: number,
): { values: Float64Array; vectors: Float64Array } {
  const n = n1 + n2;
  // Columns of Q = diag(Q1, Q2), stored contiguous (qt row c = column c of Q).
  const qt = new Float64Array(n * n);
  const type = new Uint8Array(n); // 1: top rows only, 3: bottom only, 2: both
  const D = new Float64Array(n), z = new Float64Array(n);
  const r2 = Math.SQRT1_2;
  for (let j = 0; j < n1; j++) {
    D[j] = left.values[j];
    z[j] = left.vectors[(n1 - 1) * n1 + j] * r2;
    for (let r = 0; r < n1; r++) qt[j * n + r] = left.vectors[r * n1 + j];
    type[j] = 1;
  }
  for (let j = 0; j < n2; j++) {
    const c = n1 + j;
    D[c] = right.values[j];
    z[c] = sgn * right.vectors[j] * r2;
    for (let r = 0; r < n2; r++) qt[c * n + n1 + r] = right.vectors[r * n2 + j];
    type[c] = 3;
  }
  const rho = 2 * rho0; // z scaled to unit norm
  const order = Array.from({ length: n }, (_, i) => i).sort((p, q) => D[p] - D[q]);
  let dmax = 0, zmax = 0;
  for (let i = 0; i < n; i++) {
    dmax = Math.max(dmax, Math.abs(D[i]));
    zmax = Math.max(zmax, Math.abs(z[i]));
  }
  const tol = 8 * EPS * Math.max(dmax, zmax);
  // Deflation in ascending order: tiny z components, then pairs of nearly equal poles.
  const kept: number[] = [];
  const deflated: number[] = [];
  let prev = -1;
  for (const j of order) {
    if (rho * Math.abs(z[j]) <= tol) {
      deflated.push(j);
      continue;
    }
    if (prev < 0) {
      prev = j;
      continue;
    }
    // Rotate (prev, j) to zero z[prev] if the poles are close enough.
    let s = z[prev], c = z[j];
    const tauR = Math.hypot(c, s);
    const t = D[j] - D[prev];
    c /= tauR;
    s = -s / tauR;
    if (Math.abs(t * c * s) <= tol) {
      z[j] = tauR;
      z[prev] = 0;
      const dp = D[prev] * c * c + D[j] * s * s;
      D[j] = D[prev] * s * s + D[j] * c * c;
      D[prev] = dp;
      const op = prev * n, oj = j * n;
      for (let r = 0; r < n; r++) {
        const a = qt[op + r], b = qt[oj + r];
        qt[op + r] = c * a + s * b;
        qt[oj + r] = c * b - s * a;
      }
      if (type[prev] !== type[j]) type[prev] = type[j] = 2;
      deflated.push(prev);
      prev = j;
    } else {
      kept.push(prev);
      prev = j;
    }
  }
  if (prev >= 0) kept.push(prev);
  kept.sort((p, q) => D[p] - D[q]);
  const K = kept.length;
  const lam = new Float64Array(K), zk = new Float64Array(K);
  for (let a = 0; a < K; a++) {
    lam[a] = D[kept[a]];
    zk[a] = z[kept[a]];
  }
  const { origin, tau } = solveSecular(lam, zk, rho);
  // delta[a*K + b] = lam_a - lambda_b, accurate through the per-root origin.
  const delta = new Float64Array(K * K);
  for (let a = 0; a < K; a++) {
    for (let b = 0; b < K; b++) delta[a * K + b] = (lam[a] - lam[origin[b]]) - tau[b];
  }
  // Gu-Eisenstat: the z for which the computed roots are exact, then the eigenvectors.
  const u = new Float64Array(K * K);
  for (let a = 0; a < K; a++) {
    let w = delta[a * K + a];
    for (let b = 0; b < K; b++) {
      if (b !== a) w *= delta[a * K + b] / (lam[a] - lam[b]);
    }
    const zh = Math.sign(zk[a]) * Math.sqrt(Math.max(-w, 0));
    for (let b = 0; b < K; b++) u[a * K + b] = zh / delta[a * K + b];
  }
  for (let b = 0; b < K; b++) {
    let s = 0;
    for (let a = 0; a < K; a++) s += u[a * K + b] * u[a * K + b];
    const inv = 1 / Math.sqrt(s);
    for (let a = 0; a < K; a++) u[a * K + b] *= inv;
  }
  // New eigenvectors of the kept roots = Q[:, kept] U, exploiting the zero blocks of Q.
  const top = kept.map((c, a) => [c, a]).filter(([c]) => type[c] !== 3);
  const bot = kept.map((c, a) => [c, a]).filter(([c]) => type[c] !== 1);
  const res = new Float64Array(n * K);
  mulBlock(qt, n, 0, n1, top, u, K, res);
  mulBlock(qt, n, n1, n2, bot, u, K, res);
  // Assemble all eigenpairs in ascending order.
  const all: { v: number; kind: 0 | 1; idx: number }[] = [];
  for (let b = 0; b < K; b++) all.push({ v: lam[origin[b]] + tau[b], kind: 0, idx: b });
  for (const j of deflated) all.push({ v: D[j], kind: 1, idx: j });
  all.sort((p, q) => p.v - q.v);
  const values = new Float64Array(n), vectors = new Float64Array(n * n);
  all.forEach((p, col) => {
    values[col] = p.v;
    if (p.kind === 0) {
      for (let r = 0; r < n; r++) vectors[r * n + col] = res[r * K + p.idx];
    } else {
      const o = p.idx * n;
      for (let r = 0; r < n; r++) vectors[r * n + col] = qt[o + r];
    }
  });
  return { values, vectors };
}

/** res[rowStart.., :] = Qsub (rows x cols) @ U[rowsOfU, :] for the listed columns of Q. */
function mulBlock(
  qt: Float64Array,
  n: number,
  rowStart: number,
  rows: number,
  cols: number[][],
  u: Float64Array,
  K: number,
  res: Float64Array,
): void {
  const c = cols.length;
  if (c === 0 || rows === 0) return;
  const qa = new Float64Array(rows * c), ub = new Float64Array(c * K);
  cols.forEach(([col, a], t) => {
    const o = col * n + rowStart;
    for (let r = 0; r < rows; r++) qa[r * c + t] = qt[o + r];
    ub.set(u.subarray(a * K, a * K + K), t * K);
  });
  gemm({ m: rows, n: K, k: c, a: qa, b: ub, c: res, offC: rowStart * K, ldc: K });
}

/**
 * Roots of the secular equation `1 + rho sum_i z_i^2 / (d_i - x) = 0` for ascending `d`, nonzero
 * `z`, `rho > 0`. Root `j` lies in `(d_j, d_{j+1})` (the last in `(d_K, d_K + rho |z|^2)`) and is
 * returned as `d[origin[j]] + tau[j]`, from whichever pole is nearer, so the distances to the
 * poles keep full relative accuracy.
 */
export function solveSecular(
  d: Float64Array,
  z: Float64Array,
  rho: number,
): { origin: Int32Array; tau: Float64Array } {
  const K = d.length;
  const origin = new Int32Array(K), tau = new Float64Array(K);
  const z2 = Float64Array.from(z, (x) => x * x);
  let zz = 0;
  for (let i = 0; i < K; i++) zz += z2[i];
  const del = new Float64Array(K);
  for (let j = 0; j < K; j++) {
    const last = j === K - 1;
    let o = j, lo = 0, hi = 0;
    if (last) {
      hi = rho * zz;
    } else {
      const gap = d[j + 1] - d[j];
      const mid = gap / 2;
      let f = 1;
      for (let i = 0; i < K; i++) f += rho * z2[i] / ((d[i] - d[j]) - mid);
      if (f >= 0) {
        hi = mid;
      } else {
        o = j + 1;
        lo = mid - gap;
        hi = 0;
      }
    }
    for (let i = 0; i < K; i++) del[i] = d[i] - d[o];
    // Open bracket (lo, hi) in tau units; start in the middle.
    let t = (lo + hi) / 2;
    for (let it = 0; it < 200; it++) {
      let psi = 0, dpsi = 0, phi = 0, dphi = 0;
      for (let i = 0; i <= j; i++) {
        const r = 1 / (del[i] - t);
        const q = z2[i] * r;
        psi += q;
        dpsi += q * r;
      }
      for (let i = j + 1; i < K; i++) {
        const r = 1 / (del[i] - t);
        const q = z2[i] * r;
        phi += q;
        dphi += q * r;
      }
      const f = 1 + rho * (psi + phi);
      const err = EPS * (1 + 8 * rho * (phi - psi) + rho * Math.abs(t) * (dpsi + dphi));
      if (Math.abs(f) <= err) break;
      if (f < 0) lo = t;
      else hi = t;
      if (hi - lo <= 2 * EPS * Math.max(Math.abs(lo), Math.abs(hi))) break;
      // Rational model through the two nearest poles, matched in value and slope.
      const P = del[j] - t;
      let next = NaN;
      if (last) {
        const B1 = dpsi * P * P, A1 = psi - dpsi * P;
        const c = 1 + rho * A1;
        if (c > 0) next = t + P + rho * B1 / c;
      } else {
        const Q = del[j + 1] - t;
        const B1 = dpsi * P * P, A1 = psi - dpsi * P;
        const B2 = dphi * Q * Q, A2 = phi - dphi * Q;
        const c = 1 + rho * (A1 + A2);
        const bq = c * (P + Q) + rho * (B1 + B2);
        const c0 = P * Q * f;
        const disc = bq * bq - 4 * c * c0;
        if (disc >= 0) {
          const sq = Math.sqrt(disc);
          const s = bq >= 0 ? bq + sq : bq - sq;
          const h1 = c !== 0 ? s / (2 * c) : NaN;
          const h2 = s !== 0 ? 2 * c0 / s : NaN;
          if (t + h2 > lo && t + h2 < hi) next = t + h2;
          else if (t + h1 > lo && t + h1 < hi) next = t + h1;
        }
      }
      t = next > lo && next < hi ? next : (lo + hi) / 2;
    }
    origin[j] = o;
    tau[j] = t;
  }
  return { origin, tau };
}
