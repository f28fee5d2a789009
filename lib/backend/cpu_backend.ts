/**
 * The kit's `cpu` backend: a second `MathBackendCPU` registered as `cpu-blas`, carrying every
 * stock cpu kernel plus OpenBLAS GEMM kernels. Registering a separate backend (instead of
 * swapping kernels on `cpu`) keeps stock `cpu` untouched, so both can run in one process and be
 * compared op by op.
 *
 * @example
 * ```ts
 * const blas = loadOpenBlas();
 * if (blas) { registerCpuBlasBackend(blas); await tf.setBackend(CPU_BLAS_BACKEND); }
 * ```
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { MathBackendCPU } from "@tensorflow/tfjs-backend-cpu";
import type { OpenBlas } from "./openblas.ts";
import { blasKernelConfigs } from "./cpu_blas_kernels.ts";
import { fastElementwiseConfigs } from "./cpu_fast_kernels.ts";

/** tfjs name of the BLAS-backed cpu backend. */
export const CPU_BLAS_BACKEND = "cpu-blas";

let registered = false;

/** A `MathBackendCPU` that does not print tfjs' "install tfjs-node" banner. */
export function quietCpuBackend(): MathBackendCPU {
  const b = new MathBackendCPU();
  (b as unknown as { firstUse: boolean }).firstUse = false;
  return b;
}

/**
 * Register `cpu-blas` once: all stock cpu kernels, then the BLAS and element-wise overrides.
 *
 * @example
 * ```ts
 * registerCpuBlasBackend(loadOpenBlas()!);
 * ```
 */
export function registerCpuBlasBackend(blas: OpenBlas): void {
  if (registered) return;
  // Priority 0: never picked implicitly over stock cpu; only initBackend("cpu") selects it.
  tf.registerBackend(CPU_BLAS_BACKEND, quietCpuBackend, 0);
  tf.copyRegisteredKernels("cpu", CPU_BLAS_BACKEND);
  for (
    const k of [
      ...blasKernelConfigs(CPU_BLAS_BACKEND, blas),
      ...fastElementwiseConfigs(CPU_BLAS_BACKEND),
    ]
  ) {
    if (tf.getKernel(k.kernelName, CPU_BLAS_BACKEND)) {
      tf.unregisterKernel(k.kernelName, CPU_BLAS_BACKEND);
    }
    tf.registerKernel(k);
  }
  registered = true;
}
