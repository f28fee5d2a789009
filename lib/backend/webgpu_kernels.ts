/**
 * Kernels the kit adds to tfjs-backend-webgpu. On a real GPU (an H200, measured) a webgpu kernel
 * costs ~200 us of CPU-side dispatch however small it is, and a training step of the default UNet
 * was 12,270 kernels, so fewer dispatches is what makes this backend faster.
 *
 * - `XgenAdamW` (the fused optimizer update, see lib/train/fused_adamw.ts): the composed AdamW
 *   is about 14 element-wise kernels per parameter; here it is 3 (one WGSL program each for m',
 *   v' and p', each reading p, g, m and v once), with the same formula in float32.
 *
 * @example
 * ```ts
 * registerWebgpuKernels(); // after tfjs-backend-webgpu is imported
 * ```
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";

/** Kernel name shared with lib/train/fused_adamw.ts (which owns the formula and its cpu kernel). */
const ADAMW_KERNEL = "XgenAdamW";
const BACKEND = "webgpu";
const WORKGROUP = 64;

/** The parts of tfjs-backend-webgpu's program interface used here (structural, no import). */
interface Program {
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
interface WebgpuBackendLike {
  runWebGPUProgram(
    program: Program,
    inputs: tf.TensorInfo[],
    dtype: tf.DataType,
    uniforms: { type: string; data: number[] }[],
  ): tf.TensorInfo;
}

/** Which output of the AdamW update a program writes. */
type AdamWPart = "m" | "v" | "p";

/**
 * One AdamW output over a flat range: one invocation per element, `size` guarding the tail.
 * (tfjs-webgpu itself folds a dispatch wider than the device's per-dimension limit into y.)
 */
function adamWProgram(shape: number[], part: AdamWPart): Program {
  const n = shape.reduce((a, b) => a * b, 1);
  const groups = Math.max(1, Math.ceil(n / WORKGROUP));
  const body = {
    m: "setOutputAtIndex(index, m1);",
    v: "setOutputAtIndex(index, v1);",
    p: "setOutputAtIndex(index, uniforms.decay * p - " +
      "uniforms.stepSize * (m1 / (sqrt(v1) / uniforms.sqrtBc2 + uniforms.eps)));",
  }[part];
  return {
    outputShape: shape,
    shaderKey: `xgen_adamw_${part}`,
    dispatchLayout: { x: shape.map((_, i) => i) },
    dispatch: [groups, 1, 1],
    variableNames: ["P", "G", "M", "V"],
    workgroupSize: [WORKGROUP, 1, 1],
    size: true,
    uniforms: "beta1 : f32, beta2 : f32, eps : f32, stepSize : f32, sqrtBc2 : f32, decay : f32,",
    getUserCode: () => `
      fn main(index : i32) {
        if (index < uniforms.size) {
          // Every program reads all four inputs: tfjs binds all of them, and a pipeline with
          // layout "auto" drops bindings its shader never uses, which invalidates the whole
          // command batch (the outputs silently stay zero).
          let p = getPByOutputIndex(index);
          let g = getGByOutputIndex(index);
          let m1 = uniforms.beta1 * getMByOutputIndex(index) + (1.0 - uniforms.beta1) * g;
          let v1 = uniforms.beta2 * getVByOutputIndex(index) + (1.0 - uniforms.beta2) * g * g;
          ${body}
        }
      }`,
  };
}

function adamWKernel(
  { inputs, backend, attrs }: {
    inputs: Record<string, tf.TensorInfo>;
    backend: WebgpuBackendLike;
    attrs: Record<string, number>;
  },
): tf.TensorInfo[] {
  const { p, g, m, v } = inputs;
  for (const [k, t] of Object.entries({ p, g, m, v })) {
    if (t.dtype !== "float32") {
      throw new Error(`${ADAMW_KERNEL}: input ${k} must be float32, got ${t.dtype}`);
    }
  }
  const u = ["beta1", "beta2", "eps", "stepSize", "sqrtBc2", "decay"].map((k) => ({
    type: "float32",
    data: [attrs[k]],
  }));
  return (["p", "m", "v"] as const).map((part) =>
    backend.runWebGPUProgram(adamWProgram(p.shape, part), [p, g, m, v], "float32", u)
  );
}

/** Register the kit's webgpu kernels (idempotent); needs the webgpu backend imported. */
export function registerWebgpuKernels(): void {
  if (tf.getKernel(ADAMW_KERNEL, BACKEND)) return;
  tf.registerKernel({
    kernelName: ADAMW_KERNEL,
    backendName: BACKEND,
    kernelFunc: adamWKernel as unknown as tf.KernelFunc,
  });
}
