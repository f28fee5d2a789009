/**
 * The slice of tfjs-backend-webgpu's program interface that the kit's WGSL kernels use
 * (`webgpu_kernels.ts`, `webgpu_norm_kernels.ts`), declared structurally so nothing imports the
 * backend's internals.
 *
 * @example
 * ```ts
 * import type * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import type { WebgpuBackendLike } from "./webgpu_program.ts";
 *
 * function example(
 *   backend: tf.KernelBackend,
 *   program: Parameters<WebgpuBackendLike["runWebGPUProgram"]>[0],
 *   x: tf.TensorInfo,
 * ) {
 *   const uniforms = [{ type: "float32", data: [0.5] }];
 *   const y = (backend as unknown as WebgpuBackendLike).runWebGPUProgram(
 *     program,
 *     [x],
 *     "float32",
 *     uniforms,
 *   );
 * }
 * ```
 * @module
 */
import type * as tf from "npm:@tensorflow/tfjs-core@4.22.0";

/** The members of tfjs-backend-webgpu's program interface the kit uses (structural, no import). */
export interface Program {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  variableNames: string[];
  workgroupSize: [number, number, number];
  size: boolean;
  uniforms: string;
  getUserCode: () => string;
}
/** The one method of tfjs-backend-webgpu's backend the kit's kernels call. */
export interface WebgpuBackendLike {
  runWebGPUProgram(
    program: Program,
    inputs: tf.TensorInfo[],
    dtype: tf.DataType,
    uniforms: { type: string; data: number[] }[],
  ): tf.TensorInfo;
}
