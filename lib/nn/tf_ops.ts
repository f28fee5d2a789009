/**
 * The {@link Ops} on TensorFlow.js tensors: what training and tfjs inference run. Each op is the
 * exact sequence of tfjs kernels the kit's layers have always issued, including the fused
 * GroupNorm/SiLU/GELU/softmax kernels on `cpu-blas` (lib/nn/fused.ts) and the convolution weight
 * gradient computed as a convolution, so losses are bit-identical to the layer code written
 * directly against tfjs.
 *
 * The tfjs-only helpers the ops are built from (`silu`, `gelu`, `upsample2x`,
 * `scaledDotProductAttention`, ...) are exported for callers that work on plain tensors.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { TfOps } from "./tf_ops.ts";
 *
 * // A 3x3 box filter over a 3x3 image of ones, zero-padded: 4 at a corner, 9 in the middle.
 * const m = new TfOps({
 *   "conv.weight": tf.variable(tf.ones([3, 3, 1, 1])),
 *   "conv.bias": tf.variable(tf.zeros([1])),
 * });
 * const x = tf.ones([1, 3, 3, 1]);
 * const y = m.conv2d(x, m.param("conv.weight"), m.param("conv.bias"), { stride: 1, pad: [1, 1] });
 * assert.deepEqual(Array.from(y.dataSync()), [4, 6, 4, 6, 9, 6, 4, 6, 4]);
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import { getParam, type Params } from "./params.ts";
import type {
  AttentionOpOptions,
  ConvOpOptions,
  Dim,
  GeluKind,
  GroupNormOpOptions,
  Ops,
  OpsDType,
} from "./ops.ts";
import {
  fusedGelu,
  fusedGroupNorm,
  fusedKernelsActive,
  fusedNormActive,
  fusedSilu,
  fusedSoftmax,
} from "./fused.ts";

/**
 * {@link Ops} over a `Params` record on the active TensorFlow.js backend.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { TfOps } from "./tf_ops.ts";
 * import { initResnetBlock, resnetBlock } from "./resnet.ts";
 * import { TensorBuilder } from "./init.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const b = new TensorBuilder(Rng.stream(0));
 * initResnetBlock(b, "mid", { inChannels: 4, outChannels: 4 });
 * const x = tf.randomNormal([1, 4, 4, 4], 0, 1, "float32", 1) as tf.Tensor4D;
 * const y = resnetBlock(new TfOps(b.params), "mid", x, { groups: 2 }); // = resnetBlock(b.params, ...)
 * assert.deepEqual(y.dataSync(), resnetBlock(b.params, "mid", x, { groups: 2 }).dataSync());
 * ```
 */
export class TfOps implements Ops<tf.Tensor> {
  constructor(readonly params: Params) {}

  param(name: string): tf.Tensor {
    return getParam(this.params, name);
  }
  hasParam(name: string): boolean {
    return this.params[name] !== undefined;
  }
  shape(x: tf.Tensor): readonly Dim[] {
    return x.shape;
  }
  dtype(x: tf.Tensor): OpsDType {
    return x.dtype as OpsDType;
  }
  scope<R>(fn: () => R): R {
    return tf.tidy(fn as () => tf.TensorContainer) as R;
  }

  constant(values: Float32Array, shape: number[]): tf.Tensor {
    return tf.tensor(values, shape);
  }
  positions(n: number): tf.Tensor {
    return tf.range(0, n, 1, "int32");
  }

  add(a: tf.Tensor, b: tf.Tensor | number): tf.Tensor {
    return tf.add(a, b);
  }
  mul(a: tf.Tensor, b: tf.Tensor | number): tf.Tensor {
    return tf.mul(a, b);
  }
  silu(x: tf.Tensor): tf.Tensor {
    return silu(x);
  }
  gelu(x: tf.Tensor, kind?: GeluKind): tf.Tensor {
    return gelu(x, kind);
  }
  sin(x: tf.Tensor): tf.Tensor {
    return tf.sin(x);
  }
  cos(x: tf.Tensor): tf.Tensor {
    return tf.cos(x);
  }
  clip(x: tf.Tensor, min: number, max: number): tf.Tensor {
    return tf.clipByValue(x, min, max);
  }
  cast(x: tf.Tensor, dtype: "float32"): tf.Tensor {
    return tf.cast(x, dtype);
  }
  equal(x: tf.Tensor, value: number): tf.Tensor {
    return tf.equal(x, value);
  }
  argMax(x: tf.Tensor, axis: number): tf.Tensor {
    return tf.argMax(x, axis);
  }
  oneHot(indices: tf.Tensor, depth: number): tf.Tensor {
    return tf.cast(tf.oneHot(indices as tf.Tensor1D, depth), "float32");
  }

  reshape(x: tf.Tensor, shape: readonly Dim[]): tf.Tensor {
    return tf.reshape(x, shape as number[]);
  }
  concat(xs: tf.Tensor[], axis: number): tf.Tensor {
    return tf.concat(xs, axis);
  }
  split(x: tf.Tensor, parts: number | number[], axis: number): tf.Tensor[] {
    return tf.split(x, parts, axis);
  }
  slice(x: tf.Tensor, begin: number[], size: number[]): tf.Tensor {
    return tf.slice(x, begin, size);
  }
  pad(x: tf.Tensor, paddings: [number, number][]): tf.Tensor {
    return tf.pad(x, paddings);
  }
  mean(x: tf.Tensor, axes: number[]): tf.Tensor {
    return tf.mean(x, axes);
  }
  sum(x: tf.Tensor, axis: number): tf.Tensor {
    return tf.sum(x, axis);
  }

  linear(x: tf.Tensor, w: tf.Tensor, b?: tf.Tensor): tf.Tensor {
    const [inF, outF] = w.shape;
    return tf.tidy(() => {
      const x2 = tf.reshape(x, [-1, inF]) as tf.Tensor2D;
      let y: tf.Tensor2D = tf.matMul(x2, w as tf.Tensor2D);
      if (b) y = tf.add(y, b);
      return tf.reshape(y, [...x.shape.slice(0, -1), outF]);
    });
  }

  conv2d(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor | undefined, o: ConvOpOptions): tf.Tensor {
    const [kh, kw] = w.shape;
    const [ph, pw] = o.pad;
    const stride = o.stride;
    return tf.tidy(() => {
      // tfjs "same" at stride 1 with an odd kernel pads (k-1)/2 on both sides, exactly PyTorch's
      // padding; using it saves a pad op and its slice gradient. Other cases pad explicitly
      // ("same" pads stride-2 convs asymmetrically in tfjs).
      const native = stride === 1 && kh % 2 === 1 && kw % 2 === 1 && 2 * ph === kh - 1 &&
        2 * pw === kw - 1 && ph + pw > 0;
      const x4 = x as tf.Tensor4D;
      const xp = native || ph + pw === 0 ? x4 : tf.pad(x4, [[0, 0], [ph, ph], [pw, pw], [0, 0]]);
      const mode = native ? "same" : "valid";
      const w4 = w as tf.Tensor4D;
      let y = filterGradMode === "conv"
        ? convWithConvGrad(xp, w4, stride, mode)
        : tf.conv2d(xp, w4, stride, mode);
      if (b) y = tf.add(y, b);
      return y;
    });
  }

  upsample2x(x: tf.Tensor): tf.Tensor {
    return upsample2x(x as tf.Tensor4D);
  }

  groupNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, o: GroupNormOpOptions): tf.Tensor {
    if (x.dtype === "float32" && fusedNormActive()) {
      return fusedGroupNorm(x, gamma, beta, { groups: o.groups, eps: o.eps, silu: o.silu });
    }
    const c = x.shape[x.shape.length - 1];
    const g = o.groups;
    return tf.tidy(() => {
      const xg = tf.reshape(x, [x.shape[0], -1, g, c / g]);
      const { mean, variance } = tf.moments(xg, [1, 3], true);
      const xn = tf.mul(tf.sub(xg, mean), tf.rsqrt(tf.add(variance, o.eps)));
      const y = tf.add(tf.mul(tf.reshape(xn, x.shape), gamma), beta);
      return o.silu ? silu(y) : y;
    });
  }

  standardize(x: tf.Tensor, o: { eps: number }): tf.Tensor {
    // Not the fused LayerNorm: these exact kernels are what the `words` text context has always
    // been trained with, and changing them would change every such run's losses.
    return tf.tidy(() => {
      const m = tf.moments(x, -1, true);
      return tf.div(tf.sub(x, m.mean), tf.sqrt(tf.add(m.variance, o.eps)));
    });
  }

  layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, o: { eps: number }): tf.Tensor {
    const d = x.shape[x.shape.length - 1];
    if (x.dtype === "float32" && fusedNormActive()) {
      // A LayerNorm is a one-group GroupNorm of each row: one fused kernel instead of ~10 forward
      // and ~25 backward tfjs kernels (a UNet step runs dozens of LayerNorms).
      return tf.tidy(() => {
        const rows = tf.reshape(x, [x.size / d, 1, d]);
        const y = fusedGroupNorm(rows, gamma, beta, { groups: 1, eps: o.eps, silu: false });
        return tf.reshape(y, x.shape);
      });
    }
    return tf.tidy(() => {
      const { mean, variance } = tf.moments(x, -1, true);
      const xn = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, o.eps)));
      return tf.add(tf.mul(xn, gamma), beta);
    });
  }

  attention(
    q: tf.Tensor,
    k: tf.Tensor,
    v: tf.Tensor,
    o: AttentionOpOptions<tf.Tensor>,
  ): tf.Tensor {
    return scaledDotProductAttention(q as tf.Tensor3D, k as tf.Tensor3D, v as tf.Tensor3D, {
      heads: o.heads,
      keyMask: o.keyMask as tf.Tensor2D | undefined,
      causal: o.causal,
    });
  }

  embedding(table: tf.Tensor, ids: tf.Tensor): tf.Tensor {
    const [vocab, dim] = table.shape as [number, number];
    return tf.tidy(() => {
      const flat = tf.reshape(ids, [-1]) as tf.Tensor1D;
      // For small vocabularies a one-hot matmul is the faster lookup to train: its gradient is one
      // GEMM, while gather's (UnsortedSegmentSum) is a slow scalar loop on the cpu backends.
      const rows = vocab <= ONE_HOT_MAX_VOCAB
        ? tf.matMul(tf.oneHot(flat, vocab), table as tf.Tensor2D)
        : tf.gather(table, flat);
      return tf.reshape(rows, [...ids.shape, dim]);
    });
  }
}

/** Vocabulary size up to which embeddings look rows up by one-hot matmul on TensorFlow.js. */
export const ONE_HOT_MAX_VOCAB = 4096;

// ---------------------------------------------------------------------------------------------
// Activations

/**
 * SiLU (swish): `x * sigmoid(x)`; one fused kernel on `cpu-blas`.
 *
 * @example
 * ```ts
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { silu } from "./tf_ops.ts";
 *
 * silu(tf.scalar(0)); // 0
 * ```
 */
export function silu<T extends tf.Tensor>(x: T): T {
  if (x.dtype === "float32" && fusedKernelsActive()) return fusedSilu(x);
  return tf.tidy(() => tf.mul(x, tf.sigmoid(x)) as T);
}

const GELU_C = Math.sqrt(2 / Math.PI);

/**
 * GELU, by default the tanh approximation `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))` (one
 * fused kernel on `cpu-blas`); with `kind` `"erf"` the exact `0.5 x (1 + erf(x / sqrt 2))`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { gelu } from "./tf_ops.ts";
 *
 * gelu(tf.scalar(1)); // ~0.8412 (tanh approximation)
 * const [y] = gelu(tf.scalar(1), "erf").dataSync(); // 0.5 (1 + erf(1 / sqrt 2)) = 0.84134475
 * assert.ok(Math.abs(y - 0.8413447460685429) < 1e-6);
 * ```
 */
export function gelu<T extends tf.Tensor>(x: T, kind: GeluKind = "tanh"): T {
  if (kind === "erf") {
    // No fused kernel: tfjs' Erf exists on every backend with its gradient registered, so the
    // composed form trains anywhere (its erf is within 1.5e-7 of the true one).
    return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1)) as T);
  }
  if (kind !== "tanh") throw new Error(`gelu: kind must be "tanh" or "erf", got ${kind}`);
  if (x.dtype === "float32" && fusedKernelsActive()) return fusedGelu(x);
  return tf.tidy(() => {
    const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), GELU_C);
    return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1)) as T;
  });
}

// ---------------------------------------------------------------------------------------------
// Convolution and resampling

/**
 * Nearest-neighbour 2x upsampling by broadcast (reshape, multiply by ones, reshape). Its gradient
 * is the exact 2x2 block sum on every backend, unlike `tf.image.resizeNearestNeighbor` on cpu.
 *
 * @example
 * ```ts
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { upsample2x } from "./tf_ops.ts";
 *
 * upsample2x(tf.ones([1, 4, 4, 8])).shape; // [1, 8, 8, 8]
 * ```
 */
export function upsample2x(x: tf.Tensor4D): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  return tf.tidy(() => {
    const rep = tf.mul(tf.reshape(x, [b, h, 1, w, 1, c]), tf.ones([1, 1, 2, 1, 2, 1]));
    return tf.reshape(rep, [b, 2 * h, 2 * w, c]) as tf.Tensor4D;
  });
}

/** How the weight gradient of a convolution is computed; see {@link setConvFilterGrad}. */
export type ConvFilterGradMode = "conv" | "kernel";

let filterGradMode: ConvFilterGradMode = "conv";

/**
 * Choose how `conv2d` computes its weight gradient on TensorFlow.js:
 * - `"conv"` (default): as a forward convolution of the transposed input with the transposed
 *   output gradient (dilation = stride). It needs only the Conv2D kernel, which every backend has
 *   and accelerates; the stock tfjs `cpu` Conv2DBackpropFilter is ~100x slower and `wasm` has none.
 * - `"kernel"`: tfjs' own gradient, i.e. the backend's Conv2DBackpropFilter kernel (use it when a
 *   backend registers a fast one).
 * Both give the same values up to float rounding. Returns the previous mode.
 *
 * @example
 * ```ts
 * const prev = setConvFilterGrad("kernel");
 * ```
 */
export function setConvFilterGrad(mode: ConvFilterGradMode): ConvFilterGradMode {
  if (mode !== "conv" && mode !== "kernel") {
    throw new Error(`setConvFilterGrad: mode must be "conv" or "kernel", got ${mode}`);
  }
  const prev = filterGradMode;
  filterGradMode = mode;
  return prev;
}

/**
 * Weight gradient of a "valid" conv, `dW[kh,kw,cin,cout] = sum_b,y x[b, y*s + k, cin] dy[b, y, cout]`,
 * computed as a convolution with batch as the reduction channel: input `x^T [cin, H, W, B]`, filter
 * `dy^T [H', W', B, cout]`, dilation `s`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { convFilterGrad } from "./tf_ops.ts";
 *
 * // Loss = sum of a valid 3x3 conv over ones: each weight sees 2x2 ones per channel pair.
 * const x = tf.ones([1, 4, 4, 2]) as tf.Tensor4D, dy = tf.ones([1, 2, 2, 3]) as tf.Tensor4D;
 * const dw = convFilterGrad(x, dy, { kernelHeight: 3, kernelWidth: 3, stride: 1 });
 * assert.deepEqual(dw.shape, [3, 3, 2, 3]);
 * assert.ok(dw.dataSync().every((v) => v === 4));
 * ```
 */
export function convFilterGrad(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  o: { kernelHeight: number; kernelWidth: number; stride: number },
): tf.Tensor4D {
  return tf.tidy(() => {
    const xt = tf.transpose(x, [3, 1, 2, 0]);
    const dyt = tf.transpose(dy, [1, 2, 0, 3]);
    let g = tf.conv2d(xt, dyt, 1, "valid", "NHWC", o.stride);
    // With a stride that does not divide (H - kh), the conv covers rows past the kernel: drop them.
    if (g.shape[1] !== o.kernelHeight || g.shape[2] !== o.kernelWidth) {
      g = tf.slice(g, [0, 0, 0, 0], [-1, o.kernelHeight, o.kernelWidth, -1]);
    }
    return tf.transpose(g, [1, 2, 0, 3]);
  });
}

function convWithConvGrad(
  x: tf.Tensor4D,
  w: tf.Tensor4D,
  stride: number,
  pad: "same" | "valid",
): tf.Tensor4D {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xs = args[0] as tf.Tensor4D;
    const ws = args[1] as tf.Tensor4D;
    const save = args[2] as tf.GradSaveFunc;
    save([xs, ws]);
    return {
      value: tf.conv2d(xs, ws, stride, pad),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [xv, wv] = saved as [tf.Tensor4D, tf.Tensor4D];
        const g = dy as tf.Tensor4D;
        const [kh, kw] = wv.shape;
        const dx = tf.conv2dTranspose(g, wv, xv.shape, stride, pad);
        // "same" only occurs at stride 1 with odd kernels: (k-1)/2 on each side.
        const ph = (kh - 1) >> 1, pw = (kw - 1) >> 1;
        const xpad = pad === "same" ? tf.pad(xv, [[0, 0], [ph, ph], [pw, pw], [0, 0]]) : xv;
        const dw = convFilterGrad(xpad, g, { kernelHeight: kh, kernelWidth: kw, stride });
        return [dx, dw];
      },
    };
  });
  return f(x, w) as tf.Tensor4D;
}

// ---------------------------------------------------------------------------------------------
// Attention

/** Added to masked logits; finite so that a fully masked row stays finite (uniform). */
const MASKED = -1e9;

/** Masking options of {@link attentionProbs} and {@link scaledDotProductAttention}. */
export interface AttentionMaskOptions {
  /** Number of heads; must divide the query/key width. */
  heads: number;
  /** `[B, Tk]`: 1 (or true) = attend, 0 = padding that no query may attend to. */
  keyMask?: tf.Tensor2D;
  /** Query i attends only to keys j <= i (CLIP's text encoder). */
  causal?: boolean;
}

function splitHeads(x: tf.Tensor3D, heads: number): tf.Tensor3D {
  const [b, t, d] = x.shape;
  if (d % heads !== 0) throw new Error(`attention: width ${d} not divisible by heads=${heads}`);
  const split = tf.transpose(tf.reshape(x, [b, t, heads, d / heads]), [0, 2, 1, 3]);
  return tf.reshape(split, [b * heads, t, d / heads]);
}

/**
 * Attention probabilities `softmax(q k^T / sqrt(dHead) + mask)` as `[B, heads, Tq, Tk]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { attentionProbs } from "./tf_ops.ts";
 *
 * const q = tf.ones([1, 3, 4]) as tf.Tensor3D, k = tf.randomNormal([1, 5, 4]) as tf.Tensor3D;
 * const w = attentionProbs(q, k, { heads: 2 }); // [B, heads, Tq, Tk]
 * assert.deepEqual(w.shape, [1, 2, 3, 5]);
 * tf.sum(w, -1).dataSync().forEach((s) => assert.ok(Math.abs(s - 1) < 1e-5)); // rows sum to 1
 * ```
 */
export function attentionProbs(
  q: tf.Tensor3D,
  k: tf.Tensor3D,
  opts: AttentionMaskOptions,
): tf.Tensor4D {
  const [b, tq, d] = q.shape;
  const tk = k.shape[1];
  if (k.shape[0] !== b || k.shape[2] !== d) {
    throw new Error(`attention: q [${q.shape}] and k [${k.shape}] disagree on batch or width`);
  }
  const h = opts.heads;
  return tf.tidy(() => {
    const qh = splitHeads(q, h);
    const kh = splitHeads(k, h);
    const scale = 1 / Math.sqrt(d / h);
    const raw = tf.reshape(tf.matMul(qh, kh, false, true), [b, h, tq, tk]) as tf.Tensor4D;
    // Unmasked scores go straight into one fused scaled softmax where the backend has it.
    if (!opts.keyMask && !opts.causal && raw.dtype === "float32" && fusedKernelsActive()) {
      return fusedSoftmax(raw, scale);
    }
    let logits = tf.mul(raw, scale) as tf.Tensor4D;
    if (opts.keyMask) {
      const m = opts.keyMask;
      if (m.shape[0] !== b || m.shape[1] !== tk) {
        throw new Error(`attention: keyMask shape [${m.shape}] must be [${b}, ${tk}]`);
      }
      const bias = tf.reshape(tf.mul(tf.sub(1, tf.cast(m, "float32")), MASKED), [b, 1, 1, tk]);
      logits = tf.add(logits, bias);
    }
    if (opts.causal) {
      const bias = new Float32Array(tq * tk);
      for (let i = 0; i < tq; i++) for (let j = i + 1; j < tk; j++) bias[i * tk + j] = MASKED;
      logits = tf.add(logits, tf.tensor(bias, [1, 1, tq, tk]));
    }
    return tf.softmax(logits, -1);
  });
}

/**
 * Multi-head attention on already projected `q [B,Tq,D]`, `k [B,Tk,D]`, `v [B,Tk,Dv]` ->
 * `[B,Tq,Dv]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { scaledDotProductAttention } from "./tf_ops.ts";
 *
 * // Causal: query 0 sees only key 0, so its output is v[0].
 * const q = tf.ones([1, 3, 4]) as tf.Tensor3D;
 * const v = tf.tensor3d([[[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]]);
 * const y = scaledDotProductAttention(q, q, v, { heads: 4, causal: true });
 * assert.deepEqual(Array.from(y.dataSync().slice(0, 4)), [1, 2, 3, 4]);
 * ```
 */
export function scaledDotProductAttention(
  q: tf.Tensor3D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  opts: AttentionMaskOptions,
): tf.Tensor3D {
  const [b, tq] = q.shape;
  const dv = v.shape[2];
  const h = opts.heads;
  return tf.tidy(() => {
    const probs = tf.reshape(attentionProbs(q, k, opts), [b * h, tq, k.shape[1]]) as tf.Tensor3D;
    const out = tf.matMul(probs, splitHeads(v, h)); // [B*h, Tq, dv/h]
    const merged = tf.transpose(tf.reshape(out, [b, h, tq, dv / h]), [0, 2, 1, 3]);
    return tf.reshape(merged, [b, tq, dv]);
  });
}
