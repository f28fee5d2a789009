/**
 * Names and result types shared by the backend modules.
 *
 * @module
 */

/** Compute backends the kit can run TensorFlow.js on. */
export type BackendName = "cpu-blas" | "cpu-js" | "wasm" | "webgpu" | "tensorflow";

/** Every {@link BackendName}, in the order the kit prefers them on a CPU-only machine. */
export const BACKEND_NAMES: readonly BackendName[] = [
  "cpu-blas",
  "wasm",
  "cpu-js",
  "webgpu",
  "tensorflow",
];

/** What {@link initBackend} activated. */
export interface BackendInfo {
  /** The kit's name for the backend. */
  name: BackendName;
  /**
   * The tfjs backend now active (`tf.getBackend()`): the kit's name, except `cpu-js` standing in
   * for `cpu-blas` when OpenBLAS is missing.
   */
  tfBackend: string;
  /** Whether GEMMs run in OpenBLAS. */
  blas: boolean;
  /** Human-readable specifics (library path, threads, adapter, fallbacks). */
  details: string;
}

/** Options of {@link initBackend}. */
export interface InitBackendOptions {
  /** Worker threads for OpenBLAS (`cpu-blas`); default: the number of logical cores. */
  threads?: number;
  /** Suppress the fallback warning and tfjs' console banners. */
  quiet?: boolean;
  /**
   * `cpu-blas` only: compile (once, cached) and use the C element-wise kernels when a C compiler is
   * present (default true; `XGEN_NATIVE_KERNELS=0` also switches them off).
   */
  native?: boolean;
}

/** Parse a backend name (from a CLI flag or config), with a clear error for anything else. */
export function parseBackendName(s: string, field = "backend"): BackendName {
  if ((BACKEND_NAMES as readonly string[]).includes(s)) return s as BackendName;
  throw new Error(`${field}: expected one of ${BACKEND_NAMES.join(", ")}, got '${s}'`);
}
