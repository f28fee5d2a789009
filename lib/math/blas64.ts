/**
 * Float64 BLAS kernels for the metric code: `dgemm` and `dsymv` from OpenBLAS through Deno FFI
 * when the library can be opened, with plain TypeScript fallbacks that give the same results to
 * rounding. The eigensolver does its O(d^3) work through these two calls, so a 2048-d Frechet
 * distance takes seconds with OpenBLAS (and tens of seconds on the fallback).
 *
 * Views are passed as `(array, offset, leading dimension)` triples, row-major, so sub-blocks of a
 * matrix are used without copying. The library is the one `lib/backend` uses (same search
 * paths); `OPENBLAS_CORETYPE`/`OPENBLAS_L2_SIZE` are never touched here.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gemm } from "./blas64.ts";
 *
 * const c = new Float64Array(4);
 * gemm({ m: 2, n: 2, k: 1, a: new Float64Array([1, 2]), b: new Float64Array([3, 4]), c });
 * assert.deepEqual(c, new Float64Array([3, 4, 6, 8]));
 * ```
 * @module
 */
import { OPENBLAS_PATHS } from "../backend/openblas.ts";

const ROW_MAJOR = 101;
const NO_TRANS = 111;
const TRANS = 112;
const LOWER = 122;

const SYMBOLS = {
  cblas_dgemm: {
    parameters: [
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "f64",
      "buffer",
      "i32",
      "buffer",
      "i32",
      "f64",
      "buffer",
      "i32",
    ],
    result: "void",
  },
  cblas_dsymv: {
    parameters: [
      "i32",
      "i32",
      "i32",
      "f64",
      "buffer",
      "i32",
      "buffer",
      "i32",
      "f64",
      "buffer",
      "i32",
    ],
    result: "void",
  },
} as const;

type Lib = Deno.DynamicLibrary<typeof SYMBOLS>;

let lib: Lib | null | undefined;
let libPath = "";
let enabled = true;

function openLib(): Lib | null {
  if (lib !== undefined) return lib;
  lib = null;
  for (const path of OPENBLAS_PATHS) {
    try {
      lib = Deno.dlopen(path, SYMBOLS);
      libPath = path;
      break;
    } catch {
      // Not at this path, or FFI not permitted: try the next one, then fall back to TypeScript.
    }
  }
  return lib;
}

function active(): Lib | null {
  return enabled ? openLib() : null;
}

/**
 * Turn the OpenBLAS path on or off (tests compare both; benchmarks report which ran).
 *
 * @example
 * ```ts
 * import { setBlas64Enabled } from "./blas64.ts";
 *
 * setBlas64Enabled(false); // force the TypeScript kernels
 * setBlas64Enabled(true);
 * ```
 */
export function setBlas64Enabled(on: boolean): void {
  enabled = on;
}

/**
 * Which kernels run: `"openblas <path>"` or `"typescript"`.
 *
 * @example
 * ```ts
 * import { blas64Info } from "./blas64.ts";
 *
 * console.log(blas64Info());
 * ```
 */
export function blas64Info(): string {
  const l = active();
  return l ? `openblas ${libPath}` : "typescript";
}

/** `c = alpha * op(a) @ op(b) + beta * c`, row-major views. */
export interface GemmArgs {
  m: number;
  n: number;
  k: number;
  a: Float64Array;
  b: Float64Array;
  c: Float64Array;
  /** Offsets of the first element of each view (default 0). */
  offA?: number;
  offB?: number;
  offC?: number;
  /** Leading dimensions (default: packed, `op` taken into account). */
  lda?: number;
  ldb?: number;
  ldc?: number;
  /** Use `a` transposed: `a` is stored `[k, m]`. */
  transA?: boolean;
  /** Use `b` transposed: `b` is stored `[n, k]`. */
  transB?: boolean;
  alpha?: number;
  beta?: number;
}

function need(
  name: string,
  arr: Float64Array,
  off: number,
  rows: number,
  cols: number,
  ld: number,
) {
  if (rows === 0 || cols === 0) return;
  const last = off + (rows - 1) * ld + cols;
  if (off < 0 || ld < cols || last > arr.length) {
    throw new Error(
      `gemm: ${name} view [${rows}x${cols}] at offset ${off} with leading dimension ${ld} ` +
        `needs ${last} values, array has ${arr.length}`,
    );
  }
}

/**
 * Row-major float64 matrix product on (sub-)views.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gemm } from "./blas64.ts";
 *
 * // Upper-left 2x2 block of a 3x3 matrix times itself, into a packed 2x2.
 * const m3 = new Float64Array([1, 2, 0, 3, 4, 0, 0, 0, 0]);
 * const out = new Float64Array(4);
 * gemm({ m: 2, n: 2, k: 2, a: m3, lda: 3, b: m3, ldb: 3, c: out });
 * assert.deepEqual(out, new Float64Array([7, 10, 15, 22]));
 * ```
 */
export function gemm(g: GemmArgs): void {
  const { m, n, k, a, b, c } = g;
  const transA = g.transA ?? false, transB = g.transB ?? false;
  const alpha = g.alpha ?? 1, beta = g.beta ?? 0;
  const offA = g.offA ?? 0, offB = g.offB ?? 0, offC = g.offC ?? 0;
  const lda = g.lda ?? (transA ? m : k);
  const ldb = g.ldb ?? (transB ? k : n);
  const ldc = g.ldc ?? n;
  if (m === 0 || n === 0) return;
  need("a", a, offA, transA ? k : m, transA ? m : k, lda);
  need("b", b, offB, transB ? n : k, transB ? k : n, ldb);
  need("c", c, offC, m, n, ldc);
  if (k === 0 || alpha === 0) {
    for (let i = 0; i < m; i++) {
      const r = offC + i * ldc;
      for (let j = 0; j < n; j++) c[r + j] = beta === 0 ? 0 : beta * c[r + j];
    }
    return;
  }
  const l = active();
  if (l) {
    l.symbols.cblas_dgemm(
      ROW_MAJOR,
      transA ? TRANS : NO_TRANS,
      transB ? TRANS : NO_TRANS,
      m,
      n,
      k,
      alpha,
      a.subarray(offA),
      lda,
      b.subarray(offB),
      ldb,
      beta,
      c.subarray(offC),
      ldc,
    );
    return;
  }
  gemmTs(m, n, k, alpha, a, offA, lda, transA, b, offB, ldb, transB, beta, c, offC, ldc);
}

/** TypeScript GEMM: copies `op(b)` into a packed `[k, n]` panel, then i-p-j loops (unit stride). */
function gemmTs(
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: Float64Array,
  offA: number,
  lda: number,
  transA: boolean,
  b: Float64Array,
  offB: number,
  ldb: number,
  transB: boolean,
  beta: number,
  c: Float64Array,
  offC: number,
  ldc: number,
): void {
  const bp = new Float64Array(k * n);
  for (let p = 0; p < k; p++) {
    for (let j = 0; j < n; j++) {
      bp[p * n + j] = transB ? b[offB + j * ldb + p] : b[offB + p * ldb + j];
    }
  }
  const row = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    row.fill(0);
    for (let p = 0; p < k; p++) {
      const av = transA ? a[offA + p * lda + i] : a[offA + i * lda + p];
      if (av === 0) continue;
      const bo = p * n;
      for (let j = 0; j < n; j++) row[j] += av * bp[bo + j];
    }
    const r = offC + i * ldc;
    if (beta === 0) { for (let j = 0; j < n; j++) c[r + j] = alpha * row[j]; }
    else for (let j = 0; j < n; j++) c[r + j] = alpha * row[j] + beta * c[r + j];
  }
}

/** `y = alpha * A x + beta * y` for a symmetric `A` given by its lower triangle. */
export interface SymvArgs {
  n: number;
  a: Float64Array;
  offA?: number;
  lda?: number;
  x: Float64Array;
  offX?: number;
  y: Float64Array;
  offY?: number;
  alpha?: number;
  beta?: number;
}

/**
 * Symmetric matrix-vector product reading only the lower triangle (row-major, `j <= i`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { symvLower } from "./blas64.ts";
 *
 * const y = new Float64Array(2);
 * symvLower({ n: 2, a: new Float64Array([2, 0, 1, 3]), x: new Float64Array([1, 1]), y });
 * assert.deepEqual(y, new Float64Array([3, 4])); // A = [[2, 1], [1, 3]]
 * ```
 */
export function symvLower(s: SymvArgs): void {
  const { n, a, x, y } = s;
  const offA = s.offA ?? 0, lda = s.lda ?? n, offX = s.offX ?? 0, offY = s.offY ?? 0;
  const alpha = s.alpha ?? 1, beta = s.beta ?? 0;
  if (n === 0) return;
  if (offA + (n - 1) * lda + n > a.length || offX + n > x.length || offY + n > y.length) {
    throw new Error(`symvLower: views out of range for n=${n}`);
  }
  const l = active();
  if (l) {
    l.symbols.cblas_dsymv(
      ROW_MAJOR,
      LOWER,
      n,
      alpha,
      a.subarray(offA),
      lda,
      x.subarray(offX),
      1,
      beta,
      y.subarray(offY),
      1,
    );
    return;
  }
  const acc = new Float64Array(n);
  // One pass over the lower triangle: row i contributes a_ij x_j to y_i and a_ij x_i to y_j.
  for (let i = 0; i < n; i++) {
    const r = offA + i * lda, xi = x[offX + i];
    let sum = 0;
    for (let j = 0; j < i; j++) {
      const aij = a[r + j];
      sum += aij * x[offX + j];
      acc[j] += aij * xi;
    }
    acc[i] += sum + a[r + i] * xi;
  }
  for (let i = 0; i < n; i++) {
    y[offY + i] = alpha * acc[i] + (beta === 0 ? 0 : beta * y[offY + i]);
  }
}
