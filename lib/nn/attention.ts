/**
 * Multi-head attention layer (self and cross), with optional key padding mask and causal mask.
 * Weight names follow diffusers: `to_q`, `to_k`, `to_v`, `to_out.0`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { attention, initAttention } from "./attention.ts";
 * import { TensorBuilder } from "./init.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const b = new TensorBuilder(Rng.stream(0));
 * initAttention(b, "attn2", { queryDim: 8, contextDim: 6, heads: 2, headDim: 4 });
 * const x = tf.ones([1, 3, 8]) as tf.Tensor3D; // [B, T, 8]
 * const context = tf.ones([1, 5, 6]) as tf.Tensor3D; // [B, S, 6]
 * assert.deepEqual(attention(b.params, "attn2", x, { heads: 2, context }).shape, [1, 3, 8]);
 * ```
 * @module
 */
import type * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import { joinName, type Params } from "./params.ts";
import type { ParamBuilder } from "./init.ts";
import { initLinear, linear } from "./linear.ts";
import type { Net, Ops } from "./ops.ts";
import { withOps } from "./with_ops.ts";

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
 * import assert from "node:assert/strict";
 * import { initAttention } from "./attention.ts";
 * import { ShapeBuilder } from "./init.ts";
 *
 * const b = new ShapeBuilder();
 * initAttention(b, "attn1", { queryDim: 64, heads: 4, headDim: 16 });
 * assert.deepEqual(b.shapes["attn1.to_q.weight"], [64, 64]);
 * assert.deepEqual(b.shapes["attn1.to_out.0.bias"], [64]);
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

/** Options of {@link attention}; tensors are `T` (TensorFlow.js tensors by default). */
export interface AttentionOptions<T = tf.Tensor> {
  /** Number of heads; must divide the query/key width. */
  heads: number;
  /** Keys/values source `[B, Tk, contextDim]`; self-attention when absent. */
  context?: T;
  /** `[B, Tk]`: 1 (or true) = attend, 0 = padding that no query may attend to. */
  keyMask?: T;
  /** Query i attends only to keys j <= i (CLIP's text encoder). */
  causal?: boolean;
}

/**
 * Multi-head attention layer: `x [B,Tq,queryDim] -> [B,Tq,queryDim]`, attending to `context`
 * (cross) or to `x` itself (self).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { attention, initAttention } from "./attention.ts";
 * import { TensorBuilder } from "./init.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const b = new TensorBuilder(Rng.stream(0));
 * initAttention(b, "attn1", { queryDim: 8, heads: 4, headDim: 2 });
 * initAttention(b, "attn2", { queryDim: 8, contextDim: 6, heads: 4, headDim: 2 });
 * const x = tf.ones([1, 3, 8]) as tf.Tensor3D;
 * const context = tf.ones([1, 5, 6]) as tf.Tensor3D;
 * const keyMask = tf.tensor2d([[1, 1, 1, 0, 0]]); // the last two context tokens are padding
 * assert.deepEqual(attention(b.params, "attn1", x, { heads: 4 }).shape, [1, 3, 8]);
 * assert.deepEqual(attention(b.params, "attn2", x, { heads: 4, context, keyMask }).shape, [
 *   1,
 *   3,
 *   8,
 * ]);
 * ```
 */
export function attention(
  p: Params,
  name: string,
  x: tf.Tensor3D,
  opts: AttentionOptions,
): tf.Tensor3D;
export function attention<T>(m: Ops<T>, name: string, x: T, opts: AttentionOptions<T>): T;
export function attention<T>(net: Net<T>, name: string, x: T, opts: AttentionOptions<T>): T {
  return withOps(net, (m) => {
    const src = opts.context ?? x;
    const bs = m.shape(src)[0], bx = m.shape(x)[0];
    if (bs !== bx && typeof bs === "number" && typeof bx === "number") {
      throw new Error(`attention "${name}": context batch ${bs} != x batch ${bx}`);
    }
    const q = linear(m, joinName(name, "to_q"), x);
    const k = linear(m, joinName(name, "to_k"), src);
    const v = linear(m, joinName(name, "to_v"), src);
    const o = m.attention(q, k, v, {
      heads: opts.heads,
      keyMask: opts.keyMask,
      causal: opts.causal,
    });
    return linear(m, joinName(name, "to_out.0"), o);
  });
}
