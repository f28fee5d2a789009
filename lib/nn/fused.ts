/**
 * Fused GroupNorm(+SiLU), SiLU, tanh-GELU and scaled-softmax kernels (forward and backward) for the kit's `cpu`
 * backend (tfjs name `cpu-blas`).
 *
 * Composed from tfjs ops, a GroupNorm+SiLU costs ~10 forward and ~25 backward kernel calls, each
 * with ~20 us of framework overhead plus a full pass over the activation; a UNet step runs
 * thousands of them. Here each is one forward and one backward kernel doing a few tight loops
 * over Float32Arrays, with group statistics accumulated in float64. `groupNorm`, `silu` and `gelu`
 * (lib/nn) call these when {@link fusedKernelsActive} is true and keep the composed ops on every
 * other backend, so the semantics are the same everywhere. The GroupNorm kernels also exist for
 * `webgpu` (WGSL, lib/backend/webgpu_norm_kernels.ts), where {@link fusedNormActive} lets the
 * norms use them; the gradient registered here serves both.
 *
 * The `...Values` functions are the kernels' pure math over flat arrays (float32 in the kernels,
 * float64 in tests).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { fusedGroupNorm } from "./fused.ts";
 * import { initBackend } from "../backend/init.ts";
 *
 * await initBackend("cpu-blas", { quiet: true }); // the fused kernels live on cpu-blas
 * const x = tf.tensor4d([1, 2, 3, 4], [1, 1, 1, 4]); // one pixel, 4 channels
 * const y = fusedGroupNorm(x, tf.ones([4]), tf.zeros([4]), { groups: 2 }); // one kernel
 * const expected = [-1, 1, -1, 1]; // each group of two to mean 0, std 1
 * y.dataSync().forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-4));
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import type { MathBackendCPU } from "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
import { CPU_BLAS_BACKEND } from "../backend/cpu_backend.ts";
import { takeF32 } from "../backend/cpu_buffer_pool.ts";
import { activeNativeKernels, type NativeKernels } from "../backend/native_kernels.ts";

/** Flat float arrays the `...Values` functions read and write. */
export type Floats = Float32Array | Float64Array;
/** Allocates an output array of `n` elements (contents may be arbitrary: callers overwrite all). */
export type AllocFloats = (n: number) => Floats;

/** Kernel names registered on `cpu-blas` (the GroupNorm pair also on `webgpu`). */
export const FUSED_KERNELS = {
  groupNorm: "XgenGroupNorm",
  groupNormGrad: "XgenGroupNormGrad",
  silu: "XgenSilu",
  siluGrad: "XgenSiluGrad",
  gelu: "XgenGelu",
  geluGrad: "XgenGeluGrad",
  softmax: "XgenSoftmax",
  softmaxGrad: "XgenSoftmaxGrad",
} as const;

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_K = 0.044715;
const newF32: AllocFloats = (n) => new Float32Array(n);

// 2^k for k in [-1050, 1049]: the scale step of expApprox.
const POW2_BIAS = 1050;
const POW2 = Float64Array.from({ length: 2 * POW2_BIAS }, (_, i) => 2 ** (i - POW2_BIAS));

/**
 * `exp(t)` to ~1e-10 relative error (arguments clamped to [-700, 700]), ~5x faster than V8's
 * `Math.exp` here: the SiLU/GELU loops are dominated by exp, and float32 outputs need only ~6e-8.
 * Range reduction `t = k ln2 + r`, `|r| <= ln2/2`, then a degree-8 Taylor polynomial for `e^r`.
 *
 * @example
 * ```ts
 * expApprox(1); // 2.718281828...
 * ```
 */
export function expApprox(t: number): number {
  const v = t > 700 ? 700 : t < -700 ? -700 : t;
  const k = Math.floor(v * Math.LOG2E + 0.5);
  const r = v - k * Math.LN2;
  const p = 1 +
    r * (1 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 +
                        r * (1 / 720 + r * (1 / 5040 + r * (1 / 40320))))))));
  return p * POW2[k + POW2_BIAS];
}

let enabled = true;

/**
 * Switch the fused path on (default) or off; off, lib/nn composes tfjs ops on every backend.
 * Benchmarks and tests use it to compare both paths in one process.
 *
 * @example
 * ```ts
 * setFusedKernels(false); // measure the composed ops
 * ```
 */
export function setFusedKernels(on: boolean): void {
  enabled = on;
}

/**
 * True when lib/nn should use the fused kernels: enabled and the active backend is `cpu-blas`.
 * (The norms alone also run fused on `webgpu`: see {@link fusedNormActive}.)
 *
 * @example
 * ```ts
 * if (fusedKernelsActive()) console.log("fused GroupNorm/SiLU/GELU");
 * ```
 */
export function fusedKernelsActive(): boolean {
  return enabled && tf.getBackend() === CPU_BLAS_BACKEND;
}

/**
 * True when lib/nn's `groupNorm`/`layerNorm` should use {@link fusedGroupNorm}: enabled, and the
 * active backend is `cpu-blas` or has both GroupNorm kernels registered (the kit registers them
 * for `webgpu`, lib/backend/webgpu_norm_kernels.ts). The cpu-blas kernels register lazily, hence
 * the name check for it. SiLU, GELU and softmax keep {@link fusedKernelsActive}.
 *
 * @example
 * ```ts
 * import { fusedNormActive } from "./fused.ts";
 * import { initBackend } from "../backend/init.ts";
 *
 * await initBackend("webgpu");
 * fusedNormActive(); // true: GroupNorm/LayerNorm are one kernel each way
 * ```
 */
export function fusedNormActive(): boolean {
  if (!enabled) return false;
  const name = tf.getBackend();
  return name === CPU_BLAS_BACKEND ||
    (!!tf.getKernel(FUSED_KERNELS.groupNorm, name) &&
      !!tf.getKernel(FUSED_KERNELS.groupNormGrad, name));
}

// ---------------------------------------------------------------------------------------------
// Pure math

/** Layout of a channels-last GroupNorm input `[batch, spatial..., channels]`. */
export interface GroupNormLayout {
  batch: number;
  channels: number;
  /** Number of groups; must divide `channels`. */
  groups: number;
}

/** Options of {@link groupNormValues} and {@link groupNormGradValues}. */
export interface GroupNormValuesOptions extends GroupNormLayout {
  /** Variance epsilon. */
  eps: number;
  /** Apply SiLU to the normalised output (forward) / include its derivative (backward). */
  silu: boolean;
}

function checkLayout(xLen: number, o: GroupNormLayout, gammaLen: number, betaLen: number): number {
  const { batch, channels: c, groups: g } = o;
  if (!Number.isInteger(g) || g <= 0 || c % g !== 0) {
    throw new Error(`fused groupNorm: groups=${g} must divide channels=${c}`);
  }
  if (gammaLen !== c || betaLen !== c) {
    throw new Error(
      `fused groupNorm: gamma/beta must have ${c} elements, got ${gammaLen}/${betaLen}`,
    );
  }
  if (batch <= 0 || xLen % (batch * c) !== 0) {
    throw new Error(`fused groupNorm: ${xLen} values do not form [${batch}, ..., ${c}]`);
  }
  return xLen / (batch * c);
}

/**
 * GroupNorm forward over flat channels-last `x` (`[batch, spatial, channels]` in row-major order):
 * `y = z` or `silu(z)` with `z = (x - mean) * rstd * gamma + beta`, plus the per-(batch, group)
 * `mean` and `rstd = 1/sqrt(var + eps)` (biased variance, two float64 passes).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { groupNormValues } from "./fused.ts";
 *
 * const x = new Float32Array([1, 2, 3, 4]); // one pixel, 4 channels
 * const gamma = new Float32Array(4).fill(1), beta = new Float32Array(4);
 * const o = { batch: 1, channels: 4, groups: 2, eps: 1e-5, silu: false };
 * const { y } = groupNormValues(x, gamma, beta, o);
 * assert.ok(Math.abs(y[0] + 1) < 1e-3 && Math.abs(y[1] - 1) < 1e-3); // each group to mean 0, std 1
 * ```
 */
export function groupNormValues(
  x: Floats,
  gamma: Floats,
  beta: Floats,
  o: GroupNormValuesOptions,
  alloc: AllocFloats = newF32,
): { y: Floats; mean: Floats; rstd: Floats } {
  const spatial = checkLayout(x.length, o, gamma.length, beta.length);
  const { batch, channels: c, groups: ng, eps, silu } = o;
  const cg = c / ng;
  const count = spatial * cg;
  const y = alloc(x.length), mean = alloc(batch * ng), rstd = alloc(batch * ng);
  if (spatial === 1) {
    // Each (sample, group) is one contiguous run (LayerNorm is this with one group): no
    // per-channel bookkeeping, which would cost more than the arithmetic on short rows.
    for (let seg = 0, i0 = 0; seg < batch * ng; seg++, i0 += cg) {
      const i1 = i0 + cg, ch0 = (seg % ng) * cg;
      let s = 0;
      for (let i = i0; i < i1; i++) s += x[i];
      const m = s / cg;
      let q = 0;
      for (let i = i0; i < i1; i++) {
        const d = x[i] - m;
        q += d * d;
      }
      const r = 1 / Math.sqrt(q / cg + eps);
      mean[seg] = m;
      rstd[seg] = r;
      for (let i = i0, ch = ch0; i < i1; i++, ch++) {
        const z = (x[i] - m) * r * gamma[ch] + beta[ch];
        y[i] = silu ? z / (1 + expApprox(-z)) : z;
      }
    }
    return { y, mean, rstd };
  }
  // Channels-last with many positions: accumulate per channel along whole rows (inner loops run
  // over all channels, not over a group's few), then fold channels into groups.
  const chSum = new Float64Array(c), grpMean = new Float64Array(c);
  const scale = new Float64Array(c), shift = new Float64Array(c);
  for (let b = 0; b < batch; b++) {
    const base = b * spatial * c;
    const end = base + spatial * c;
    chSum.fill(0);
    for (let off = base; off < end; off += c) {
      for (let ch = 0, i = off; ch < c; ch++, i++) chSum[ch] += x[i];
    }
    for (let g = 0, ch = 0; g < ng; g++) {
      let s = 0;
      for (let j = 0; j < cg; j++) s += chSum[ch + j];
      const m = s / count;
      for (let j = 0; j < cg; j++, ch++) grpMean[ch] = m;
    }
    // Second pass on centred values: no cancellation when |mean| >> std.
    chSum.fill(0);
    for (let off = base; off < end; off += c) {
      for (let ch = 0, i = off; ch < c; ch++, i++) {
        const d = x[i] - grpMean[ch];
        chSum[ch] += d * d;
      }
    }
    for (let g = 0, ch = 0; g < ng; g++) {
      let q = 0;
      for (let j = 0; j < cg; j++) q += chSum[ch + j];
      const r = 1 / Math.sqrt(q / count + eps);
      mean[b * ng + g] = grpMean[ch];
      rstd[b * ng + g] = r;
      for (let j = 0; j < cg; j++, ch++) {
        scale[ch] = r * gamma[ch];
        shift[ch] = beta[ch] - grpMean[ch] * scale[ch];
      }
    }
    if (silu) {
      for (let off = base; off < end; off += c) {
        for (let ch = 0; ch < c; ch++) {
          const z = x[off + ch] * scale[ch] + shift[ch];
          y[off + ch] = z / (1 + expApprox(-z));
        }
      }
    } else {
      for (let off = base; off < end; off += c) {
        for (let ch = 0; ch < c; ch++) y[off + ch] = x[off + ch] * scale[ch] + shift[ch];
      }
    }
  }
  return { y, mean, rstd };
}

/** Inputs of {@link groupNormGradValues}. */
export interface GroupNormGradInputs {
  /** Gradient of the loss wrt the kernel's output `y`. */
  dy: Floats;
  x: Floats;
  gamma: Floats;
  beta: Floats;
  /** Per-(batch, group) mean and rstd saved by the forward pass. */
  mean: Floats;
  rstd: Floats;
}

/**
 * GroupNorm(+SiLU) backward in two passes per sample: `dbeta_c = sum dz`, `dgamma_c = sum dz*xhat`,
 * `dx = rstd * (g - mean_grp(g) - xhat * mean_grp(g*xhat))` with `g = dz*gamma_c`, where
 * `dz = dy * silu'(z) = dy * s(1 + z(1 - s))` when SiLU is fused (`z` recomputed from `x`), else
 * `dz = dy`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { groupNormGradValues, groupNormValues } from "./fused.ts";
 *
 * const opts = { batch: 1, channels: 4, groups: 2, eps: 1e-5, silu: false };
 * const x = new Float32Array([1, 2, 3, 4]), gamma = new Float32Array(4).fill(1);
 * const beta = new Float32Array(4), dy = new Float32Array(4).fill(1);
 * const { mean, rstd } = groupNormValues(x, gamma, beta, opts);
 * const { dx, dbeta } = groupNormGradValues({ dy, x, gamma, beta, mean, rstd }, opts);
 * assert.deepEqual(Array.from(dbeta), [1, 1, 1, 1]); // dbeta = sum of dy
 * assert.ok(dx.every((v) => Math.abs(v) < 1e-6)); // a uniform dy does not move normalised values
 * ```
 */
export function groupNormGradValues(
  inp: GroupNormGradInputs,
  o: GroupNormValuesOptions,
  alloc: AllocFloats = newF32,
): { dx: Floats; dgamma: Floats; dbeta: Floats } {
  const { dy, x, gamma, beta, mean, rstd } = inp;
  const spatial = checkLayout(x.length, o, gamma.length, beta.length);
  const { batch, channels: c, groups: ng, silu } = o;
  if (dy.length !== x.length || mean.length !== batch * ng || rstd.length !== batch * ng) {
    throw new Error("fused groupNorm grad: dy/mean/rstd sizes do not match x");
  }
  const cg = c / ng;
  const count = spatial * cg;
  const dx = alloc(x.length);
  const dgamma = new Float64Array(c), dbeta = new Float64Array(c);
  // dz = dy * silu'(z) with z recomputed from x, or dy itself.
  const dz = (d: number, xh: number, ch: number) => {
    if (!silu) return d;
    const z = xh * gamma[ch] + beta[ch];
    const s = 1 / (1 + expApprox(-z));
    return d * s * (1 + z * (1 - s));
  };
  if (spatial === 1) {
    // One contiguous run per (sample, group), as in the forward pass.
    for (let seg = 0, i0 = 0; seg < batch * ng; seg++, i0 += cg) {
      const i1 = i0 + cg, ch0 = (seg % ng) * cg, m = mean[seg], r = rstd[seg];
      let s1 = 0, s2 = 0;
      for (let i = i0, ch = ch0; i < i1; i++, ch++) {
        const xh = (x[i] - m) * r;
        const d = dz(dy[i], xh, ch);
        dbeta[ch] += d;
        dgamma[ch] += d * xh;
        const gv = d * gamma[ch];
        dx[i] = gv;
        s1 += gv;
        s2 += gv * xh;
      }
      const a = s1 / cg, bb = s2 / cg;
      for (let i = i0; i < i1; i++) dx[i] = r * (dx[i] - a - (x[i] - m) * r * bb);
    }
  } else {
    const mc = new Float64Array(c), rc = new Float64Array(c);
    const c1 = new Float64Array(c), c2 = new Float64Array(c);
    const a = new Float64Array(c), bb = new Float64Array(c);
    for (let b = 0; b < batch; b++) {
      const base = b * spatial * c;
      const end = base + spatial * c;
      for (let g = 0, ch = 0; g < ng; g++) {
        for (let j = 0; j < cg; j++, ch++) {
          mc[ch] = mean[b * ng + g];
          rc[ch] = rstd[b * ng + g];
        }
      }
      c1.fill(0);
      c2.fill(0);
      // Pass 1: dz, parameter gradients and per-channel sums; g = dz*gamma parks in dx.
      for (let off = base; off < end; off += c) {
        for (let ch = 0, i = off; ch < c; ch++, i++) {
          const xh = (x[i] - mc[ch]) * rc[ch];
          const d = dz(dy[i], xh, ch);
          dbeta[ch] += d;
          dgamma[ch] += d * xh;
          const gv = d * gamma[ch];
          dx[i] = gv;
          c1[ch] += gv;
          c2[ch] += gv * xh;
        }
      }
      for (let g = 0, ch = 0; g < ng; g++) {
        let s1 = 0, s2 = 0;
        for (let j = 0; j < cg; j++) {
          s1 += c1[ch + j];
          s2 += c2[ch + j];
        }
        for (let j = 0; j < cg; j++, ch++) {
          a[ch] = s1 / count;
          bb[ch] = s2 / count;
        }
      }
      // Pass 2: dx = rstd * (g - mean(g) - xhat * mean(g * xhat)).
      for (let off = base; off < end; off += c) {
        for (let ch = 0, i = off; ch < c; ch++, i++) {
          const xh = (x[i] - mc[ch]) * rc[ch];
          dx[i] = rc[ch] * (dx[i] - a[ch] - xh * bb[ch]);
        }
      }
    }
  }
  const dg = alloc(c), db = alloc(c);
  dg.set(dgamma);
  db.set(dbeta);
  return { dx, dgamma: dg, dbeta: db };
}

/**
 * SiLU `x * sigmoid(x)` element-wise.
 *
 * @example
 * ```ts
 * siluValues(Float32Array.from([0])); // [0]
 * ```
 */
export function siluValues(x: Floats, alloc: AllocFloats = newF32): Floats {
  const n = x.length, y = alloc(n);
  for (let i = 0; i < n; i++) y[i] = x[i] / (1 + expApprox(-x[i]));
  return y;
}

/**
 * SiLU backward: `dx = dy * s * (1 + x * (1 - s))`, `s = sigmoid(x)`.
 *
 * @example
 * ```ts
 * siluGradValues(Float32Array.from([1]), Float32Array.from([0])); // [0.5]
 * ```
 */
export function siluGradValues(dy: Floats, x: Floats, alloc: AllocFloats = newF32): Floats {
  const n = x.length, dx = alloc(n);
  for (let i = 0; i < n; i++) {
    const v = x[i], s = 1 / (1 + expApprox(-v));
    dx[i] = dy[i] * s * (1 + v * (1 - s));
  }
  return dx;
}

/**
 * tanh-GELU `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))` element-wise (same formula as
 * lib/nn `gelu`).
 *
 * @example
 * ```ts
 * geluValues(Float32Array.from([1])); // [~0.8412]
 * ```
 */
export function geluValues(x: Floats, alloc: AllocFloats = newF32): Floats {
  const n = x.length, y = alloc(n);
  for (let i = 0; i < n; i++) {
    const v = x[i];
    // 1 + tanh(u) = 2 - 2 / (e^(2u) + 1)
    y[i] = v * (1 - 1 / (expApprox(2 * GELU_C * (v + GELU_K * v * v * v)) + 1));
  }
  return y;
}

/**
 * tanh-GELU backward: `dx = dy * (0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3k x^2))`.
 *
 * @example
 * ```ts
 * geluGradValues(Float32Array.from([1]), Float32Array.from([0])); // [0.5]
 * ```
 */
export function geluGradValues(dy: Floats, x: Floats, alloc: AllocFloats = newF32): Floats {
  const n = x.length, dx = alloc(n);
  for (let i = 0; i < n; i++) {
    const v = x[i], v2 = v * v;
    const t = 1 - 2 / (expApprox(2 * GELU_C * (v + GELU_K * v2 * v)) + 1); // tanh
    dx[i] = dy[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * GELU_C * (1 + 3 * GELU_K * v2));
  }
  return dx;
}

/**
 * Row-wise `softmax(scale * x)` over the last axis of `x` (`cols` per row). Attention folds its
 * `1/sqrt(d)` into `scale`, saving a full pass over the scores.
 *
 * @example
 * ```ts
 * softmaxValues(Float32Array.from([0, 0]), 2, 1); // [0.5, 0.5]
 * ```
 */
export function softmaxValues(
  x: Floats,
  cols: number,
  scale: number,
  alloc: AllocFloats = newF32,
): Floats {
  const n = x.length, y = alloc(n);
  if (!(cols > 0) || n % cols !== 0) {
    throw new Error(`fused softmax: ${n} values do not split into rows of ${cols}`);
  }
  for (let off = 0; off < n; off += cols) {
    const end = off + cols;
    let m = -Infinity;
    for (let i = off; i < end; i++) if (x[i] > m) m = x[i];
    let sum = 0;
    for (let i = off; i < end; i++) {
      const e = expApprox(scale * (x[i] - m));
      y[i] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let i = off; i < end; i++) y[i] *= inv;
  }
  return y;
}

/**
 * Backward of {@link softmaxValues} from its output `y`: `dx = scale * y * (dy - sum(dy * y))`
 * per row.
 *
 * @example
 * ```ts
 * softmaxGradValues(Float32Array.from([1, 1]), Float32Array.from([0.5, 0.5]), 2, 1); // [0, 0]
 * ```
 */
export function softmaxGradValues(
  dy: Floats,
  y: Floats,
  cols: number,
  scale: number,
  alloc: AllocFloats = newF32,
): Floats {
  const n = y.length, dx = alloc(n);
  if (dy.length !== n || !(cols > 0) || n % cols !== 0) {
    throw new Error(
      `fused softmax grad: dy (${dy.length}) and y (${n}) do not match rows of ${cols}`,
    );
  }
  for (let off = 0; off < n; off += cols) {
    const end = off + cols;
    let s = 0;
    for (let i = off; i < end; i++) s += dy[i] * y[i];
    for (let i = off; i < end; i++) dx[i] = scale * y[i] * (dy[i] - s);
  }
  return dx;
}

// ---------------------------------------------------------------------------------------------
// tfjs kernels and gradients

type Info = tf.TensorInfo;
interface KernelArgs {
  inputs: Record<string, Info>;
  backend: MathBackendCPU;
  attrs?: Record<string, unknown>;
}

function values(backend: MathBackendCPU, t: Info, kernel: string, name: string): Float32Array {
  if (t.dtype !== "float32") {
    throw new Error(`${kernel}: input '${name}' must be float32, got ${t.dtype}`);
  }
  return backend.data.get(t.dataId)!.values as Float32Array;
}

function gnOptions(x: Info, attrs: Record<string, unknown>): GroupNormValuesOptions {
  return {
    batch: x.shape[0],
    channels: x.shape[x.shape.length - 1],
    groups: attrs.groups as number,
    eps: attrs.eps as number,
    silu: attrs.silu as boolean,
  };
}

/** {@link groupNormValues} on the native kernels (same outputs, C loops). */
function nativeGroupNorm(
  nk: NativeKernels,
  x: Float32Array,
  gamma: Float32Array,
  beta: Float32Array,
  o: GroupNormValuesOptions,
  alloc: (n: number) => Float32Array,
): { y: Floats; mean: Floats; rstd: Floats } {
  const spatial = checkLayout(x.length, o, gamma.length, beta.length);
  const out = {
    y: alloc(x.length),
    mean: alloc(o.batch * o.groups),
    rstd: alloc(o.batch * o.groups),
  };
  nk.groupNorm(x, gamma, beta, { ...o, spatial }, out);
  return out;
}

/** {@link groupNormGradValues} on the native kernels. */
function nativeGroupNormGrad(
  nk: NativeKernels,
  inp: { [K in keyof GroupNormGradInputs]: Float32Array },
  o: GroupNormValuesOptions,
  alloc: (n: number) => Float32Array,
): { dx: Floats; dgamma: Floats; dbeta: Floats } {
  const spatial = checkLayout(inp.x.length, o, inp.gamma.length, inp.beta.length);
  const out = { dx: alloc(inp.x.length), dgamma: alloc(o.channels), dbeta: alloc(o.channels) };
  nk.groupNormGrad(inp, { ...o, spatial }, out);
  return out;
}

function kernelConfigs(): tf.KernelConfig[] {
  const K = FUSED_KERNELS;
  const gn = ({ inputs, backend, attrs }: KernelArgs): Info[] => {
    const o = gnOptions(inputs.x, attrs ?? {});
    const alloc = (n: number) => takeF32(backend, n);
    const v = (k: string) => values(backend, inputs[k], K.groupNorm, k);
    const stat = [o.batch, o.groups];
    const nk = activeNativeKernels();
    const { y, mean, rstd } = nk
      ? nativeGroupNorm(nk, v("x"), v("gamma"), v("beta"), o, alloc)
      : groupNormValues(v("x"), v("gamma"), v("beta"), o, alloc);
    return [
      backend.makeTensorInfo(inputs.x.shape, "float32", y as Float32Array),
      backend.makeTensorInfo(stat, "float32", mean as Float32Array),
      backend.makeTensorInfo(stat, "float32", rstd as Float32Array),
    ];
  };
  const gnGrad = ({ inputs, backend, attrs }: KernelArgs): Info[] => {
    const o = gnOptions(inputs.x, attrs ?? {});
    const alloc = (n: number) => takeF32(backend, n);
    const v = (k: string) => values(backend, inputs[k], K.groupNormGrad, k);
    const inp = {
      dy: v("dy"),
      x: v("x"),
      gamma: v("gamma"),
      beta: v("beta"),
      mean: v("mean"),
      rstd: v("rstd"),
    };
    const nk = activeNativeKernels();
    const r = nk ? nativeGroupNormGrad(nk, inp, o, alloc) : groupNormGradValues(inp, o, alloc);
    return [
      backend.makeTensorInfo(inputs.x.shape, "float32", r.dx as Float32Array),
      backend.makeTensorInfo(inputs.gamma.shape, "float32", r.dgamma as Float32Array),
      backend.makeTensorInfo(inputs.beta.shape, "float32", r.dbeta as Float32Array),
    ];
  };
  type NativeUnary = "silu" | "gelu";
  const unary =
    (name: string, f: typeof siluValues, nat: NativeUnary) =>
    ({ inputs, backend }: KernelArgs): Info => {
      const x = values(backend, inputs.x, name, "x");
      const nk = activeNativeKernels();
      let y: Floats;
      if (nk) {
        y = takeF32(backend, x.length);
        nk[nat](x, y as Float32Array);
      } else y = f(x, (n) => takeF32(backend, n));
      return backend.makeTensorInfo(inputs.x.shape, "float32", y as Float32Array);
    };
  const unaryGrad =
    (name: string, f: typeof siluGradValues, nat: `${NativeUnary}Grad`) =>
    ({ inputs, backend }: KernelArgs): Info => {
      const dy = values(backend, inputs.dy, name, "dy"), x = values(backend, inputs.x, name, "x");
      const nk = activeNativeKernels();
      let dx: Floats;
      if (nk) {
        dx = takeF32(backend, x.length);
        nk[nat](dy, x, dx as Float32Array);
      } else dx = f(dy, x, (n) => takeF32(backend, n));
      return backend.makeTensorInfo(inputs.x.shape, "float32", dx as Float32Array);
    };
  const softmax = ({ inputs, backend, attrs }: KernelArgs): Info => {
    const x = inputs.x, cols = x.shape[x.shape.length - 1];
    const xv = values(backend, x, K.softmax, "x"), scale = (attrs?.scale as number) ?? 1;
    const nk = activeNativeKernels();
    let y: Floats;
    if (nk) {
      y = takeF32(backend, xv.length);
      nk.softmax(xv, y as Float32Array, cols, scale);
    } else y = softmaxValues(xv, cols, scale, (n) => takeF32(backend, n));
    return backend.makeTensorInfo(x.shape, "float32", y as Float32Array);
  };
  const softmaxGrad = ({ inputs, backend, attrs }: KernelArgs): Info => {
    const y = inputs.y, cols = y.shape[y.shape.length - 1];
    const dyv = values(backend, inputs.dy, K.softmaxGrad, "dy");
    const yv = values(backend, y, K.softmaxGrad, "y"), scale = (attrs?.scale as number) ?? 1;
    const nk = activeNativeKernels();
    let dx: Floats;
    if (nk) {
      dx = takeF32(backend, yv.length);
      nk.softmaxGrad(dyv, yv, dx as Float32Array, cols, scale);
    } else dx = softmaxGradValues(dyv, yv, cols, scale, (n) => takeF32(backend, n));
    return backend.makeTensorInfo(y.shape, "float32", dx as Float32Array);
  };
  const table: [string, (a: KernelArgs) => Info | Info[]][] = [
    [K.softmax, softmax],
    [K.softmaxGrad, softmaxGrad],
    [K.groupNorm, gn],
    [K.groupNormGrad, gnGrad],
    [K.silu, unary(K.silu, siluValues, "silu")],
    [K.siluGrad, unaryGrad(K.siluGrad, siluGradValues, "siluGrad")],
    [K.gelu, unary(K.gelu, geluValues, "gelu")],
    [K.geluGrad, unaryGrad(K.geluGrad, geluGradValues, "geluGrad")],
  ];
  return table.map(([kernelName, f]) => ({
    kernelName,
    backendName: CPU_BLAS_BACKEND,
    kernelFunc: f as unknown as tf.KernelFunc,
  }));
}

function runKernel(name: string, inputs: tf.NamedTensorMap, attrs?: tf.NamedAttrMap) {
  const backend = tf.getBackend();
  if (backend !== CPU_BLAS_BACKEND && !tf.getKernel(name, backend)) {
    // The backward pass may run after the user switched backends: say so plainly.
    throw new Error(
      `${name}: fused kernels run on backend "${CPU_BLAS_BACKEND}", active is "${backend}", ` +
        `which has no ${name} kernel`,
    );
  }
  return tf.engine().runKernel(name, inputs, attrs);
}

function gradConfigs(): tf.GradConfig[] {
  const K = FUSED_KERNELS;
  const unaryGrad = (kernelName: string, gradKernel: string): tf.GradConfig => ({
    kernelName,
    inputsToSave: ["x"],
    gradFunc: (dy, saved) => {
      const [x] = saved;
      return { x: () => runKernel(gradKernel, { dy: dy as tf.Tensor, x }) as tf.Tensor };
    },
  });
  return [
    {
      kernelName: K.groupNorm,
      inputsToSave: ["x", "gamma", "beta"],
      outputsToSave: [false, true, true],
      gradFunc: (dys, saved, attrs) => {
        const [x, gamma, beta, mean, rstd] = saved;
        const dy = (dys as tf.Tensor[])[0];
        // One kernel yields all three gradients; gradFunc runs inside the backward tidy, so the
        // outputs survive until the engine has taken the ones it needs.
        const [dx, dgamma, dbeta] = runKernel(
          K.groupNormGrad,
          { dy, x, gamma, beta, mean, rstd },
          attrs as tf.NamedAttrMap,
        ) as tf.Tensor[];
        return { x: () => dx, gamma: () => dgamma, beta: () => dbeta };
      },
    },
    unaryGrad(K.silu, K.siluGrad),
    unaryGrad(K.gelu, K.geluGrad),
    {
      kernelName: K.softmax,
      outputsToSave: [true],
      gradFunc: (dy, saved, attrs) => {
        const [y] = saved;
        return {
          x: () =>
            runKernel(
              K.softmaxGrad,
              { dy: dy as tf.Tensor, y },
              attrs as tf.NamedAttrMap,
            ) as tf.Tensor,
        };
      },
    },
  ];
}

let registered = false;

function ensureRegistered(): void {
  if (registered) return;
  for (const k of kernelConfigs()) {
    if (!tf.getKernel(k.kernelName, k.backendName)) tf.registerKernel(k);
  }
  for (const g of gradConfigs()) {
    if (!tf.getGradient(g.kernelName)) tf.registerGradient(g);
  }
  registered = true;
}

/** Options of {@link fusedGroupNorm}. */
export interface FusedGroupNormOptions {
  /** Number of groups; must divide the channel count. */
  groups: number;
  /** Variance epsilon (default 1e-5). */
  eps?: number;
  /** Apply SiLU after the affine transform. */
  silu?: boolean;
}

/**
 * GroupNorm(+SiLU) of channels-last float32 `x [B, ..., C]` with `gamma`, `beta` `[C]` as one
 * differentiable kernel. Requires the active backend to be `cpu-blas` or one with the kernels
 * registered (`webgpu`); lib/nn `groupNorm` picks this or the composed ops for you.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { fusedGroupNorm } from "./fused.ts";
 * import { initBackend } from "../backend/init.ts";
 *
 * await initBackend("cpu-blas", { quiet: true });
 * const x = tf.tensor4d([1, 3, 5, 7], [1, 1, 1, 4]);
 * const y = fusedGroupNorm(x, tf.ones([4]), tf.zeros([4]), { groups: 2, silu: true });
 * const s = -1 / (1 + Math.E); // silu(-1); silu(1) = 1 + s
 * y.dataSync().forEach((v, i) => assert.ok(Math.abs(v - (i % 2 ? 1 + s : s)) < 1e-4));
 * ```
 */
export function fusedGroupNorm<T extends tf.Tensor>(
  x: T,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  opts: FusedGroupNormOptions,
): T {
  ensureRegistered();
  const c = x.shape[x.shape.length - 1];
  if (x.rank < 2) throw new Error(`fusedGroupNorm: x must be [B, ..., C], got [${x.shape}]`);
  if (gamma.size !== c || beta.size !== c || gamma.rank !== 1 || beta.rank !== 1) {
    throw new Error(
      `fusedGroupNorm: weight/bias must be [${c}], got [${gamma.shape}]/[${beta.shape}]`,
    );
  }
  const attrs = { groups: opts.groups, eps: opts.eps ?? 1e-5, silu: opts.silu ?? false };
  const [y, mean, rstd] = runKernel(
    FUSED_KERNELS.groupNorm,
    { x, gamma, beta },
    attrs,
  ) as tf.Tensor[];
  // The tape keeps its own references to the statistics; callers only see y.
  mean.dispose();
  rstd.dispose();
  return y as T;
}

/**
 * SiLU of a float32 tensor as one differentiable `cpu-blas` kernel.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { fusedSilu } from "./fused.ts";
 * import { initBackend } from "../backend/init.ts";
 *
 * await initBackend("cpu-blas", { quiet: true });
 * const y = fusedSilu(tf.tensor1d([0, 1])).dataSync(); // [0, 0.7311]
 * assert.ok(y[0] === 0 && Math.abs(y[1] - 1 / (1 + Math.exp(-1))) < 1e-4);
 * ```
 */
export function fusedSilu<T extends tf.Tensor>(x: T): T {
  ensureRegistered();
  return runKernel(FUSED_KERNELS.silu, { x }) as T;
}

/**
 * tanh-GELU of a float32 tensor as one differentiable `cpu-blas` kernel.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { fusedGelu } from "./fused.ts";
 * import { initBackend } from "../backend/init.ts";
 *
 * await initBackend("cpu-blas", { quiet: true });
 * const [y] = fusedGelu(tf.tensor1d([1])).dataSync(); // tanh approximation
 * assert.ok(Math.abs(y - 0.8412) < 1e-4);
 * ```
 */
export function fusedGelu<T extends tf.Tensor>(x: T): T {
  ensureRegistered();
  return runKernel(FUSED_KERNELS.gelu, { x }) as T;
}

/**
 * `softmax(scale * x)` over the last axis of a float32 tensor as one differentiable `cpu-blas`
 * kernel (attention passes `scale = 1/sqrt(dHead)`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { fusedSoftmax } from "./fused.ts";
 * import { initBackend } from "../backend/init.ts";
 *
 * await initBackend("cpu-blas", { quiet: true });
 * assert.deepEqual(Array.from(fusedSoftmax(tf.tensor2d([[0, 0]]), 1).dataSync()), [0.5, 0.5]);
 * ```
 */
export function fusedSoftmax<T extends tf.Tensor>(x: T, scale = 1): T {
  ensureRegistered();
  if (x.rank < 1) throw new Error(`fusedSoftmax: x must have at least one axis, got a scalar`);
  // The row maximum is subtracted before scaling, which is only the maximum of scale*x for scale>0.
  if (!(scale > 0)) throw new Error(`fusedSoftmax: scale must be > 0, got ${scale}`);
  return runKernel(FUSED_KERNELS.softmax, { x }, { scale }) as T;
}
