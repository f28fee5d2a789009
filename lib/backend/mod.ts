/**
 * Compute backends for TensorFlow.js, registered under the same names the kit uses for them:
 * `cpu-blas` (tfjs cpu + OpenBLAS GEMMs through Deno FFI + fast element-wise, unary and
 * data-movement kernels + recycled output buffers), `cpu-js` (stock tfjs cpu), `wasm` (tfjs wasm +
 * the training kernels it lacks), `webgpu` (`navigator.gpu`) and `tensorflow` (tfjs-node(-gpu),
 * when installed).
 *
 * @example
 * ```ts
 * import { availableBackends, defaultBackend, initBackend } from "./mod.ts";
 *
 * const info = await initBackend(defaultBackend());
 * console.log(info, await availableBackends());
 * ```
 * @module
 */
export type { BackendInfo, BackendName, InitBackendOptions } from "./types.ts";
export { BACKEND_NAMES, parseBackendName } from "./types.ts";
export { availableBackends, defaultBackend, initBackend } from "./init.ts";
export { loadOpenBlas, OPENBLAS_PATHS, SINGLE_THREAD_GEMM_MACS } from "./openblas.ts";
export type { OpenBlas, SgemmArgs } from "./openblas.ts";
export { CPU_BLAS_BACKEND, CPU_JS_BACKEND } from "./cpu_backend.ts";
export {
  activeNativeKernels,
  buildNativeKernels,
  loadNativeKernels,
  NATIVE_CFLAGS,
  type NativeBinOp,
  nativeCacheDir,
  type NativeKernelOptions,
  type NativeKernels,
  nativeKernelsStatus,
  setActiveNativeKernels,
} from "./native_kernels.ts";
export { col2im, type ConvGeometry, im2col } from "./im2col.ts";
export {
  type AllocF32,
  type BinOp,
  broadcastBinary,
  reduceSum,
  softmaxRows,
  sumPlan,
  transposePlan,
  transposeValues,
} from "./cpu_fast_kernels.ts";
export {
  type AllocLike,
  type BoxPlace,
  concatValues,
  copyBox,
  type NumericArray,
  padValues,
  sliceValues,
  tileValues,
} from "./cpu_copy_kernels.ts";
export { powScalarValues, type UnaryOp, unaryValues } from "./cpu_unary_kernels.ts";
export {
  BufferPool,
  type BufferPoolStats,
  type PooledBackend,
  takeF32,
} from "./cpu_buffer_pool.ts";
export { type BackendValues, type DataId, PooledCpuBackend } from "./cpu_backend.ts";
export { webgpuAdapterInfo } from "./webgpu_backend.ts";
export { countWebgpuCalls, type WebgpuCallCounts, zeroWebgpuCounts } from "./webgpu_counters.ts";
// Experimental: capture/replay of a tfjs-webgpu step (a study for a compiled training step).
export {
  captureWebgpuTrace,
  diffWebgpuTraces,
  planWebgpuReplay,
  readBuffers,
  type ReplayTiming,
  snapshotBuffers,
  type TraceBinding,
  type TraceEvent,
  traceInputs,
  type WebgpuReplay,
  type WebgpuTrace,
  type WebgpuTraceDiff,
} from "./webgpu_replay.ts";
export { findTensorflowPackage, TENSORFLOW_HELP } from "./tensorflow_backend.ts";
