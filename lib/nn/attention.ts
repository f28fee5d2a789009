/**
 * Multi-head scaled dot-product attention (self and cross), with optional key padding mask and
 * causal mask. Weight names follow diffusers: `to_q`, `to_k`, `to_v`, `to_out.0`.
 *
 * @example
 * ```ts
 * initAttention(b, "attn2", { queryDim: 64, contextDim: 32, heads: 4, headDim: 16 });
 * const y = attention(b.params, "attn2", x, { heads: 4, context }); // x [B,T,64], context [B,S,32]
 * ```
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { joinName, type Params } from "./params.ts";
import type { ParamBuilder } from "./init.ts";
import { initLinear, linear } from "./linear.ts";
import { fusedKernelsActive, fusedSoftmax } from "./fused.ts";

/** Added to masked logits; finite so that a fully masked row stays finite (uniform). */
const MASKED = -1e9;

/** Masking options shared by the attention functions. */
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
 * const w = attentionProbs(q, k, { heads: 2 }); // rows sum to 1
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
 * scaledDotProductAttention(q, k, v, { heads: 4, causal: true });
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

/** Options of {@link initAttention}. */
export interface AttentionInit {
  /** Width of the queries (and of the output). */
  queryDim: number;
  /** Width of the keys/values source (cross-attention); defaults to `queryDim`. */
  contextDim?: number;
  heads: number;
  headDim: number;
  /** Bias on q/k/v projections (false in SD's UNet, true in CLIP). */
  qkvBias?: boolean;
}

/**
 * Declare `to_q`, `to_k`, `to_v` (`[dim, heads*headDim]`) and `to_out.0` under `name`.
 *
 * @example
 * ```ts
 * initAttention(b, "attn1", { queryDim: 64, heads: 4, headDim: 16 });
 * ```
 */
export function initAttention(b: ParamBuilder, name: string, o: AttentionInit): void {
  const inner = o.heads * o.headDim;
  const kv = o.contextDim ?? o.queryDim;
  const bias = o.qkvBias ?? false;
  initLinear(b, joinName(name, "to_q"), { inFeatures: o.queryDim, outFeatures: inner, bias });
  initLinear(b, joinName(name, "to_k"), { inFeatures: kv, outFeatures: inner, bias });
  initLinear(b, joinName(name, "to_v"), { inFeatures: kv, outFeatures: inner, bias });
  initLinear(b, joinName(name, "to_out.0"), { inFeatures: inner, outFeatures: o.queryDim });
}

/** Options of {@link attention}. */
export interface AttentionOptions extends AttentionMaskOptions {
  /** Keys/values source `[B, Tk, contextDim]`; self-attention when absent. */
  context?: tf.Tensor3D;
}

/**
 * Multi-head attention layer: `x [B,Tq,queryDim] -> [B,Tq,queryDim]`, attending to `context`
 * (cross) or to `x` itself (self).
 *
 * @example
 * ```ts
 * attention(p, "attn1", x, { heads: 4 });
 * attention(p, "attn2", x, { heads: 4, context, keyMask });
 * ```
 */
export function attention(
  p: Params,
  name: string,
  x: tf.Tensor3D,
  opts: AttentionOptions,
): tf.Tensor3D {
  return tf.tidy(() => {
    const src = opts.context ?? x;
    if (src.shape[0] !== x.shape[0]) {
      throw new Error(
        `attention "${name}": context batch ${src.shape[0]} != x batch ${x.shape[0]}`,
      );
    }
    const q = linear(p, joinName(name, "to_q"), x);
    const k = linear(p, joinName(name, "to_k"), src);
    const v = linear(p, joinName(name, "to_v"), src);
    const o = scaledDotProductAttention(q, k, v, opts);
    return linear(p, joinName(name, "to_out.0"), o);
  });
}
