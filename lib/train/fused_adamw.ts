/**
 * One-kernel AdamW update for the kit's `cpu-blas` backend: per parameter, a single pass
 * reads (param, grad, m, v) and writes (param', m', v'), where the composed update costs about a
 * dozen element-wise kernels, each a full pass plus framework overhead. `webgpu` registers its own
 * version of the kernel (three WGSL programs, float32; lib/backend/webgpu_kernels.ts); other
 * backends keep the composed update in {@link AdamW}. All compute the same formula (the cpu kernel
 * in float64 per element, rounded once to float32).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { fusedAdamW, fusedAdamWActive } from "./fused_adamw.ts";
 * import { initBackend } from "../backend/init.ts";
 *
 * await initBackend("cpu-blas", { quiet: true });
 * if (fusedAdamWActive()) { // false on the stock cpu backend (no OpenBLAS)
 *   const [p, g, m, v] = [tf.tensor1d([1]), tf.tensor1d([0.5]), tf.zeros([1]), tf.zeros([1])];
 *   // First step, lr 0.1: stepSize = lr / (1 - beta1), sqrtBc2 = sqrt(1 - beta2); moves p by -lr.
 *   const attrs = {
 *     beta1: 0.9,
 *     beta2: 0.999,
 *     eps: 1e-8,
 *     stepSize: 1,
 *     sqrtBc2: Math.sqrt(0.001),
 *     decay: 1,
 *   };
 *   const [p1] = fusedAdamW(p, g, m, v, attrs);
 *   assert.ok(Math.abs(p1.dataSync()[0] - 0.9) < 1e-5);
 * }
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import type { MathBackendCPU } from "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
import { CPU_BLAS_BACKEND } from "../backend/cpu_backend.ts";
import { takeF32 } from "../backend/cpu_buffer_pool.ts";
import { activeNativeKernels, type NativeAdamWScalars } from "../backend/native_kernels.ts";

/** Kernel name of the fused update. */
export const FUSED_ADAMW_KERNEL = "XgenAdamW";

/** Scalars of one AdamW step (bias corrections already folded in); the native kernel's too. */
export type FusedAdamWAttrs = NativeAdamWScalars;

/**
 * The update on plain arrays: `m' = b1 m + (1-b1) g`, `v' = b2 v + (1-b2) g^2`,
 * `p' = decay p - stepSize m' / (sqrt(v') / sqrtBc2 + eps)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { adamWValues } from "./fused_adamw.ts";
 *
 * // First step, lr 0.1: stepSize = lr / (1 - beta1), sqrtBc2 = sqrt(1 - beta2); moves p by -lr.
 * const attrs = {
 *   beta1: 0.9,
 *   beta2: 0.999,
 *   eps: 1e-8,
 *   stepSize: 1,
 *   sqrtBc2: Math.sqrt(0.001),
 *   decay: 1,
 * };
 * const f = (x: number) => new Float32Array([x]);
 * const [p, m, v] = adamWValues(f(1), f(0.5), f(0), f(0), attrs, (n) => new Float32Array(n));
 * assert.ok(Math.abs(p[0] - 0.9) < 1e-6);
 * assert.ok(Math.abs(m[0] - 0.05) < 1e-7 && Math.abs(v[0] - 0.00025) < 1e-9);
 * ```
 */
export function adamWValues(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  a: FusedAdamWAttrs,
  alloc: (n: number) => Float32Array,
): [Float32Array, Float32Array, Float32Array] {
  const n = p.length;
  const p1 = alloc(n), m1 = alloc(n), v1 = alloc(n);
  const { beta1: b1, beta2: b2, eps, stepSize, sqrtBc2, decay } = a;
  const c1 = 1 - b1, c2 = 1 - b2;
  for (let i = 0; i < n; i++) {
    const gi = g[i];
    const mi = b1 * m[i] + c1 * gi;
    const vi = b2 * v[i] + c2 * gi * gi;
    m1[i] = mi;
    v1[i] = vi;
    p1[i] = decay * p[i] - stepSize * (mi / (Math.sqrt(vi) / sqrtBc2 + eps));
  }
  return [p1, m1, v1];
}

type Info = tf.TensorInfo;

let registered = false;

function ensureRegistered(): void {
  if (registered) return;
  if (!tf.getKernel(FUSED_ADAMW_KERNEL, CPU_BLAS_BACKEND)) {
    tf.registerKernel({
      kernelName: FUSED_ADAMW_KERNEL,
      backendName: CPU_BLAS_BACKEND,
      kernelFunc: (({ inputs, backend, attrs }: {
        inputs: Record<string, Info>;
        backend: MathBackendCPU;
        attrs: FusedAdamWAttrs;
      }) => {
        const val = (k: string) => {
          const t = inputs[k];
          if (t.dtype !== "float32") {
            throw new Error(`${FUSED_ADAMW_KERNEL}: input ${k} must be float32, got ${t.dtype}`);
          }
          return backend.data.get(t.dataId)!.values as Float32Array;
        };
        const [p, g, m, v] = [val("p"), val("g"), val("m"), val("v")];
        const nk = activeNativeKernels();
        let out: Float32Array[];
        if (nk) {
          // Same formula in C, float64 per element: bit-identical to adamWValues.
          out = [0, 1, 2].map(() => takeF32(backend, p.length));
          nk.adamW({ p, g, m, v }, attrs, out as [Float32Array, Float32Array, Float32Array]);
        } else out = adamWValues(p, g, m, v, attrs, (n) => takeF32(backend, n));
        return out.map((d) => backend.makeTensorInfo(inputs.p.shape, "float32", d));
      }) as unknown as tf.KernelFunc,
    });
  }
  registered = true;
}

/**
 * Whether the fused update applies: the active backend is the kit's `cpu-blas`, or
 * another one the kit registered the kernel for (`webgpu`, lib/backend/webgpu_kernels.ts).
 */
export function fusedAdamWActive(): boolean {
  const name = tf.getBackend();
  return name === CPU_BLAS_BACKEND || !!tf.getKernel(FUSED_ADAMW_KERNEL, name);
}

/** One fused AdamW step for one parameter; returns new (param, m, v) tensors. */
export function fusedAdamW(
  p: tf.Tensor,
  g: tf.Tensor,
  m: tf.Tensor,
  v: tf.Tensor,
  attrs: FusedAdamWAttrs,
): [tf.Tensor, tf.Tensor, tf.Tensor] {
  ensureRegistered();
  return tf.engine().runKernel(
    FUSED_ADAMW_KERNEL,
    { p, g, m, v },
    attrs as unknown as tf.NamedAttrMap,
  ) as unknown as [tf.Tensor, tf.Tensor, tf.Tensor];
}
