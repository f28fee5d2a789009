/**
 * The kit's `cpu-blas` backend: a second `MathBackendCPU` registered under that name, carrying
 * every stock cpu kernel plus OpenBLAS GEMM kernels, fast element-wise, unary and data-movement
 * kernels, and a pool that recycles kernel output arrays; and `cpu-js`, stock tfjs cpu registered
 * under the kit's name for it. Registering separate backends (instead of swapping kernels on
 * tfjs' own `cpu`) keeps stock `cpu` untouched, so all can run in one process and be compared op
 * by op, and `tf.getBackend()` always says the kit's name.
 *
 * @example
 * ```ts
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { CPU_BLAS_BACKEND, registerCpuBlasBackend } from "./cpu_backend.ts";
 * import { loadOpenBlas } from "./openblas.ts";
 *
 * const blas = loadOpenBlas();
 * if (blas) { registerCpuBlasBackend(blas); await tf.setBackend(CPU_BLAS_BACKEND); }
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import { MathBackendCPU } from "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
import type { OpenBlas } from "./openblas.ts";
import { BufferPool, type PooledBackend } from "./cpu_buffer_pool.ts";
import { blasKernelConfigs } from "./cpu_blas_kernels.ts";
import { fastElementwiseConfigs } from "./cpu_fast_kernels.ts";
import { fastCopyConfigs } from "./cpu_copy_kernels.ts";
import { fastUnaryConfigs } from "./cpu_unary_kernels.ts";

/** tfjs name of the BLAS-backed cpu backend (the kit's name for it too). */
export const CPU_BLAS_BACKEND = "cpu-blas";

/** tfjs name of stock tfjs cpu as the kit registers it (the kit's name for it too). */
export const CPU_JS_BACKEND = "cpu-js";

let registered = false;
let registeredJs = false;

/** A `MathBackendCPU` that does not print tfjs' "install tfjs-node" banner. */
export function quietCpuBackend(): MathBackendCPU {
  const b = new MathBackendCPU();
  (b as unknown as { firstUse: boolean }).firstUse = false;
  return b;
}

/** The cpu backend's handle of a tensor's data. */
export type DataId = Parameters<MathBackendCPU["readSync"]>[0];
/** The arrays the cpu backend stores tensor data in. */
export type BackendValues = Parameters<MathBackendCPU["write"]>[0];

/**
 * `MathBackendCPU` whose kernels' output arrays are recycled through a {@link BufferPool}: the
 * hooks below tell the pool when a tensor takes an array (write), when an array escapes (read,
 * move) and when its tensor is gone (disposeData).
 *
 * @example
 * ```ts
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { PooledCpuBackend } from "./cpu_backend.ts";
 *
 * tf.registerBackend("cpu-pooled", () => new PooledCpuBackend(), 0);
 * ```
 */
export class PooledCpuBackend extends MathBackendCPU implements PooledBackend {
  /** Recycled output arrays of this backend's kernels. */
  readonly bufferPool: BufferPool;

  /**
   * A cpu backend with an empty pool (`limitBytes`: the pool's free-list cap).
   *
   * @example
   * ```ts
   * const b = new PooledCpuBackend({ limitBytes: 256 << 20 });
   * ```
   */
  constructor(opts: { limitBytes?: number } = {}) {
    super();
    (this as unknown as { firstUse: boolean }).firstUse = false;
    this.bufferPool = new BufferPool(opts);
  }

  /** Store `values` as a new tensor's data; a pooled array becomes owned by it. */
  override write(values: BackendValues, shape: number[], dtype: tf.DataType): DataId {
    this.bufferPool.adopt(values);
    return super.write(values, shape, dtype);
  }

  /** Take data moved in from another backend: those arrays are never pooled. */
  override move(
    dataId: DataId,
    values: BackendValues,
    shape: number[],
    dtype: tf.DataType,
    refCount: number,
  ): void {
    this.bufferPool.pin(values);
    super.move(dataId, values, shape, dtype, refCount);
  }

  /** The tensor's values, handed out as is (the array is pinned: never recycled). */
  override readSync(dataId: DataId): BackendValues {
    // The caller may keep the array after the tensor is gone: it must never be recycled.
    if (this.data.has(dataId)) this.bufferPool.pin(this.data.get(dataId)!.values);
    return super.readSync(dataId);
  }

  /** Drop a reference to the data; when it is gone, the pool may recycle its array. */
  override disposeData(dataId: DataId, force = false): boolean {
    const values = this.data.has(dataId) ? this.data.get(dataId)!.values : undefined;
    const done = super.disposeData(dataId, force);
    if (values !== undefined && !this.data.has(dataId)) this.bufferPool.release(values);
    return done;
  }
}

/**
 * Register `cpu-blas` once: all stock cpu kernels, then the BLAS, element-wise, unary and
 * data-movement overrides.
 *
 * @example
 * ```ts
 * import { registerCpuBlasBackend } from "./cpu_backend.ts";
 * import { loadOpenBlas } from "./openblas.ts";
 *
 * registerCpuBlasBackend(loadOpenBlas()!);
 * ```
 */
export function registerCpuBlasBackend(blas: OpenBlas): void {
  if (registered) return;
  // Priority 0: never picked implicitly over stock cpu; only initBackend("cpu-blas") selects it.
  tf.registerBackend(CPU_BLAS_BACKEND, () => new PooledCpuBackend(), 0);
  tf.copyRegisteredKernels("cpu", CPU_BLAS_BACKEND);
  for (
    const k of [
      ...blasKernelConfigs(CPU_BLAS_BACKEND, blas),
      ...fastElementwiseConfigs(CPU_BLAS_BACKEND),
      ...fastCopyConfigs(CPU_BLAS_BACKEND),
      ...fastUnaryConfigs(CPU_BLAS_BACKEND),
    ]
  ) {
    if (tf.getKernel(k.kernelName, CPU_BLAS_BACKEND)) {
      tf.unregisterKernel(k.kernelName, CPU_BLAS_BACKEND);
    }
    tf.registerKernel(k);
  }
  registered = true;
}

/**
 * Register `cpu-js` once: stock tfjs cpu (every stock kernel, no kit kernel) under the kit's name
 * for it, so `initBackend("cpu-js")` leaves `tf.getBackend() === "cpu-js"`.
 *
 * @example
 * ```ts
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { CPU_JS_BACKEND, registerCpuJsBackend } from "./cpu_backend.ts";
 *
 * registerCpuJsBackend();
 * await tf.setBackend(CPU_JS_BACKEND);
 * ```
 */
export function registerCpuJsBackend(): void {
  if (registeredJs) return;
  // Priority 0: never picked implicitly over stock cpu.
  tf.registerBackend(CPU_JS_BACKEND, () => new MathBackendCPU(), 0);
  tf.copyRegisteredKernels("cpu", CPU_JS_BACKEND);
  registeredJs = true;
}
