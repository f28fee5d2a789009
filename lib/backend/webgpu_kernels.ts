/**
 * Kernels the kit adds to tfjs-backend-webgpu. On a real GPU (an H200, measured) a webgpu kernel
 * costs ~200 us of CPU-side dispatch however small it is, and a training step of the default UNet
 * was 12,270 kernels, so fewer dispatches is what makes this backend faster.
 *
 * - `XgenAdamW` (the fused optimizer update, see lib/train/fused_adamw.ts): the composed AdamW
 *   is about 14 element-wise kernels per parameter; here it is 3 (one WGSL program each for m',
 *   v' and p', each reading p, g, m and v once), with the same formula in float32.
 * - `Conv2DBackpropFilter`: the stock shader gives each filter element one thread that loops over
 *   batch x height x width serially, 315 ms for a 3x3 conv on [256, 8, 8, 96] on the H200 (the
 *   forward conv: 17 ms). Here it is im2col (pad, one strided slice per filter tap, concat) and
 *   one matmul `cols^T dy` over all batch positions, which the backend's matmul parallelises.
 * - `XgenGroupNorm` / `XgenGroupNormGrad` (GroupNorm(+SiLU), and LayerNorm as its one-group case):
 *   3 WGSL programs forward and 3 backward instead of ~10 and ~25 composed kernels; see
 *   lib/backend/webgpu_norm_kernels.ts.
 *
 * @example
 * ```ts
 * function example() {
 *   registerWebgpuKernels(); // after tfjs-backend-webgpu is imported
 * }
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import { registerWebgpuNormKernels } from "./webgpu_norm_kernels.ts";
import type { Program, WebgpuBackendLike } from "./webgpu_program.ts";

/** Kernel name shared with lib/train/fused_adamw.ts (which owns the formula and its cpu kernel). */
const ADAMW_KERNEL = "XgenAdamW";
const BACKEND = "webgpu";
const WORKGROUP = 64;

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

/** A backend kernel function called directly, as tfjs's own composite kernels do. */
type KernelCall = (args: {
  inputs: Record<string, tf.TensorInfo> | tf.TensorInfo[];
  backend: unknown;
  attrs?: Record<string, unknown>;
}) => tf.TensorInfo;

function stock(name: string): KernelCall {
  const k = tf.getKernel(name, BACKEND);
  if (!k) throw new Error(`tfjs-backend-webgpu has no ${name} kernel`);
  return k.kernelFunc as unknown as KernelCall;
}

/**
 * dW for an NHWC conv without dilation: im2col then one matmul. `fallback` (the stock kernel)
 * serves NCHW and dilated convs, which the kit's models do not use.
 */
function conv2DBackpropFilterIm2col(fallback: KernelCall): KernelCall {
  return (args) => {
    const { x, dy } = args.inputs as Record<string, tf.TensorInfo>;
    const a = args.attrs as {
      strides: [number, number] | number;
      pad: "valid" | "same" | number | tf.backend_util.ExplicitPadding;
      dataFormat: "NHWC" | "NCHW";
      dimRoundingMode?: "floor" | "round" | "ceil";
      filterShape: [number, number, number, number];
    };
    if (a.dataFormat === "NCHW") return fallback(args);
    const backend = args.backend as { disposeData(id: unknown): void };
    const info = tf.backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      a.filterShape,
      a.strides,
      1,
      a.pad,
      a.dimRoundingMode,
    );
    const { batchSize: b, outHeight: oh, outWidth: ow, inChannels: cin, outChannels: cout } = info;
    const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
    const { top, bottom, left, right } = info.padInfo;
    const temps: tf.TensorInfo[] = [];
    // Concat takes its inputs as an array, the others by name.
    const call = (
      name: string,
      inputs: Record<string, tf.TensorInfo> | tf.TensorInfo[],
      attrs: object,
    ) => {
      const out = stock(name)({ inputs, backend, attrs: attrs as Record<string, unknown> });
      temps.push(out);
      return out;
    };
    const n = b * oh * ow, k = kh * kw * cin;
    let cols: tf.TensorInfo;
    if (kh === 1 && kw === 1 && sh === 1 && sw === 1 && top + bottom + left + right === 0) {
      cols = call("Reshape", { x }, { shape: [1, n, k] });
    } else {
      const xp = top + bottom + left + right === 0 ? x : call("PadV2", { x }, {
        paddings: [[0, 0], [top, bottom], [left, right], [0, 0]],
        constantValue: 0,
      });
      // One [b, oh, ow, cin] view per filter tap, in the filter's (ky, kx, cin) order.
      const taps: tf.TensorInfo[] = [];
      for (let ky = 0; ky < kh; ky++) {
        for (let kx = 0; kx < kw; kx++) {
          taps.push(call("StridedSlice", { x: xp }, {
            begin: [0, ky, kx, 0],
            end: [b, ky + (oh - 1) * sh + 1, kx + (ow - 1) * sw + 1, cin],
            strides: [1, sh, sw, 1],
            beginMask: 0,
            endMask: 0,
            ellipsisMask: 0,
            newAxisMask: 0,
            shrinkAxisMask: 0,
          }));
        }
      }
      const patches = taps.length === 1 ? taps[0] : call("Concat", taps, { axis: 3 });
      cols = call("Reshape", { x: patches }, { shape: [1, n, k] });
    }
    const g = call("Reshape", { x: dy }, { shape: [1, n, cout] });
    const dw = call("BatchMatMul", { a: cols, b: g }, { transposeA: true, transposeB: false });
    const out = stock("Reshape")({ inputs: { x: dw }, backend, attrs: { shape: a.filterShape } });
    for (const t of temps) backend.disposeData(t.dataId);
    return out;
  };
}

/** Register the kit's webgpu kernels (idempotent); needs the webgpu backend imported. */
export function registerWebgpuKernels(): void {
  registerWebgpuNormKernels();
  if (tf.getKernel(ADAMW_KERNEL, BACKEND)) return;
  tf.registerKernel({
    kernelName: ADAMW_KERNEL,
    backendName: BACKEND,
    kernelFunc: adamWKernel as unknown as tf.KernelFunc,
  });
  const filterGrad = stock("Conv2DBackpropFilter");
  tf.unregisterKernel("Conv2DBackpropFilter", BACKEND);
  tf.registerKernel({
    kernelName: "Conv2DBackpropFilter",
    backendName: BACKEND,
    kernelFunc: conv2DBackpropFilterIm2col(filterGrad) as unknown as tf.KernelFunc,
  });
}
