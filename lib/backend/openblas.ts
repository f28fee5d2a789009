/**
 * OpenBLAS `cblas_sgemm` through Deno FFI.
 *
 * The tfjs `cpu` backend keeps every float32 tensor in a plain `Float32Array`; Deno's FFI passes
 * such arrays (and their `subarray` views) to C as pointers without copying, so a GEMM costs one
 * native call. Debian's `libopenblas0-pthread` provides the library; when it is missing the kit
 * falls back to stock tfjs kernels, so nothing here is required at import time.
 *
 * @example
 * ```ts
 * const blas = loadOpenBlas();
 * if (blas) {
 *   const c = new Float32Array(4);
 *   blas.sgemm({ m: 2, n: 2, k: 1, a: new Float32Array([1, 2]), b: new Float32Array([3, 4]), c });
 *   // c = [3, 4, 6, 8]
 * }
 * ```
 * @module
 */

/** Paths tried in order when no explicit path is given (Debian/Ubuntu, Fedora, Alpine). */
export const OPENBLAS_PATHS: readonly string[] = [
  "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
  "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
  "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
  "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
  "/usr/lib64/libopenblas.so.0",
  "/usr/lib/libopenblas.so.0",
  "/usr/local/lib/libopenblas.so.0",
  "/opt/homebrew/opt/openblas/lib/libopenblas.dylib",
  "libopenblas.so.0",
];

const CBLAS_ROW_MAJOR = 101;
const CBLAS_NO_TRANS = 111;
const CBLAS_TRANS = 112;

const SYMBOLS = {
  cblas_sgemm: {
    parameters: [
      "i32", // order
      "i32", // transA
      "i32", // transB
      "i32", // m
      "i32", // n
      "i32", // k
      "f32", // alpha
      "buffer", // a
      "i32", // lda
      "buffer", // b
      "i32", // ldb
      "f32", // beta
      "buffer", // c
      "i32", // ldc
    ],
    result: "void",
  },
  openblas_set_num_threads: { parameters: ["i32"], result: "void" },
  openblas_get_num_threads: { parameters: [], result: "i32" },
} as const;

/**
 * GEMMs smaller than this many multiply-adds (`m * n * k`) run on one OpenBLAS thread whatever
 * {@link OpenBlas.setThreads} says. Waking OpenBLAS's workers for a small product costs more than
 * it saves, and on a 2-core machine the workers' spinning after each call competes with the
 * JavaScript thread: in a UNet training step (batch 32, 8x8 latents) the kit's 512x64x64 GEMMs
 * took 447 us each with 2 threads against 81 us with 1, and the step 275-310 ms against 230-260
 * ms. Products this large (a 2048x576x64 im2col GEMM, 75M) still use every thread.
 */
export const SINGLE_THREAD_GEMM_MACS = 2 ** 25;

/** Arguments of one row-major GEMM: `c = alpha * op(a) @ op(b) + beta * c`. */
export interface SgemmArgs {
  /** Rows of `op(a)` and `c`. */
  m: number;
  /** Columns of `op(b)` and `c`. */
  n: number;
  /** Shared dimension. */
  k: number;
  /** Row-major `[m,k]`, or `[k,m]` when `transA`. */
  a: Float32Array;
  /** Row-major `[k,n]`, or `[n,k]` when `transB`. */
  b: Float32Array;
  /** Row-major `[m,n]` output (read too when `beta != 0`). */
  c: Float32Array;
  /** Use `a` transposed (`a` stored `[k,m]`). */
  transA?: boolean;
  /** Use `b` transposed (`b` stored `[n,k]`). */
  transB?: boolean;
  /** Default 1. */
  alpha?: number;
  /** Default 0 (overwrite `c`). */
  beta?: number;
}

/** A loaded OpenBLAS. */
export interface OpenBlas {
  /** Library file that was opened. */
  path: string;
  /**
   * Row-major single-precision GEMM on (views of) Float32Arrays; checks sizes first. Runs on one
   * thread below {@link SINGLE_THREAD_GEMM_MACS}, else on {@link OpenBlas.threads}.
   */
  sgemm(args: SgemmArgs): void;
  /** Set the OpenBLAS worker thread count for large GEMMs. */
  setThreads(n: number): void;
  /** The thread count large GEMMs use. */
  threads(): number;
}

let cached: OpenBlas | null | undefined;

/**
 * Open OpenBLAS once per process; `null` when no library could be opened (FFI not permitted, or
 * the package is not installed). Never changes `OPENBLAS_CORETYPE`/`OPENBLAS_L2_SIZE`: older
 * builds compute wrong results on some processors without the values the environment sets.
 *
 * @example
 * ```ts
 * const blas = loadOpenBlas();
 * console.log(blas ? `BLAS at ${blas.path}` : "no BLAS");
 * ```
 */
export function loadOpenBlas(paths: readonly string[] = OPENBLAS_PATHS): OpenBlas | null {
  if (cached !== undefined && paths === OPENBLAS_PATHS) return cached;
  let result: OpenBlas | null = null;
  for (const path of paths) {
    try {
      const lib = Deno.dlopen(path, SYMBOLS);
      result = wrap(path, lib);
      break;
    } catch {
      // Not here (or FFI not allowed): try the next candidate.
    }
  }
  if (paths === OPENBLAS_PATHS) cached = result;
  return result;
}

function wrap(path: string, lib: Deno.DynamicLibrary<typeof SYMBOLS>): OpenBlas {
  const f = lib.symbols;
  // `max` is what the user asked for; `current` what OpenBLAS is set to now (switched per call).
  let max = f.openblas_get_num_threads();
  let current = max;
  const use = (n: number) => {
    if (n !== current) {
      f.openblas_set_num_threads(n);
      current = n;
    }
  };
  return {
    path,
    sgemm(args: SgemmArgs): void {
      const { m, n, k, a, b, c } = args;
      const transA = args.transA ?? false;
      const transB = args.transB ?? false;
      const alpha = args.alpha ?? 1;
      const beta = args.beta ?? 0;
      if (m === 0 || n === 0) return;
      if (k === 0) {
        // BLAS would only scale c by beta; do it here and skip the zero-stride edge cases.
        if (beta === 0) c.fill(0, 0, m * n);
        else if (beta !== 1) { for (let i = 0; i < m * n; i++) c[i] *= beta; }
        return;
      }
      if (a.length < m * k) throw new Error(`sgemm: a has ${a.length} values, need ${m * k}`);
      if (b.length < k * n) throw new Error(`sgemm: b has ${b.length} values, need ${k * n}`);
      if (c.length < m * n) throw new Error(`sgemm: c has ${c.length} values, need ${m * n}`);
      use(m * n * k < SINGLE_THREAD_GEMM_MACS ? 1 : max);
      const lda = transA ? m : k;
      const ldb = transB ? k : n;
      f.cblas_sgemm(
        CBLAS_ROW_MAJOR,
        transA ? CBLAS_TRANS : CBLAS_NO_TRANS,
        transB ? CBLAS_TRANS : CBLAS_NO_TRANS,
        m,
        n,
        k,
        alpha,
        a,
        lda,
        b,
        ldb,
        beta,
        c,
        n,
      );
    },
    setThreads(n: number): void {
      if (!Number.isInteger(n) || n < 1) {
        throw new Error(`openblas threads: expected a positive integer, got ${n}`);
      }
      max = n;
      use(n);
    },
    threads(): number {
      return max;
    },
  };
}
