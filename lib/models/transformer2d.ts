/**
 * Spatial transformer, as diffusers' Transformer2DModel with BasicTransformerBlocks: GroupNorm,
 * `proj_in` (1x1 conv or linear), blocks of LayerNorm+self-attention, LayerNorm+cross-attention
 * to the text context and LayerNorm+GEGLU feed-forward (each residual), `proj_out`, residual.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { initTransformer2d, transformer2d } from "./transformer2d.ts";
 * import { TensorBuilder } from "../nn/init.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const b = new TensorBuilder(Rng.stream(0));
 * const o = { channels: 16, heads: 2, headDim: 8, contextDim: 8, groups: 4 };
 * initTransformer2d(b, "attentions.0", o);
 * const x = tf.ones([1, 4, 4, 16]) as tf.Tensor4D; // [B, H, W, channels]
 * const context = tf.ones([1, 3, 8]) as tf.Tensor3D; // [B, T, contextDim]
 * const y = transformer2d(b.params, "attentions.0", x, { ...o, context });
 * assert.deepEqual(y.shape, [1, 4, 4, 16]);
 * ```
 * @module
 */
import type * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import {
  attention,
  conv2d,
  geglu,
  type GeluKind,
  groupNorm,
  initAttention,
  initConv2d,
  initGeglu,
  initGroupNorm,
  initLayerNorm,
  initLinear,
  joinName,
  layerNorm,
  linear,
  type Net,
  type Ops,
  type ParamBuilder,
  type Params,
  withOps,
} from "../nn/mod.ts";

/** Shape of a spatial transformer. */
export interface Transformer2dConfig {
  /** Channels of the feature map (in and out). */
  channels: number;
  heads: number;
  headDim: number;
  /** Width of the text context for cross-attention. */
  contextDim: number;
  /** GroupNorm groups of the input norm. */
  groups: number;
  /** Linear `proj_in`/`proj_out` instead of 1x1 convs (same parameter count). */
  useLinearProjection?: boolean;
  /** Number of BasicTransformerBlocks (default 1). */
  depth?: number;
  /** Feed-forward expansion (default 4). */
  ffMult?: number;
  /** GELU of the GEGLU feed-forward (default `"tanh"`; diffusers' is `"erf"`). */
  gelu?: GeluKind;
}

/**
 * Declare the transformer's weights under `name` (diffusers names).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { initTransformer2d } from "./transformer2d.ts";
 * import { ShapeBuilder } from "../nn/init.ts";
 *
 * const b = new ShapeBuilder();
 * const o = { channels: 64, heads: 4, headDim: 16, contextDim: 32, groups: 8 };
 * initTransformer2d(b, "mid_block.attentions.0", o);
 * const k = b.shapes["mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight"];
 * assert.deepEqual(k, [32, 64]); // cross-attention keys: contextDim -> heads * headDim

 * ```
 */
export function initTransformer2d(b: ParamBuilder, name: string, c: Transformer2dConfig): void {
  const n = (s: string) => joinName(name, s);
  const inner = c.heads * c.headDim;
  const ff = inner * (c.ffMult ?? 4);
  initGroupNorm(b, n("norm"), c.channels);
  if (c.useLinearProjection) {
    initLinear(b, n("proj_in"), { inFeatures: c.channels, outFeatures: inner });
  } else {
    initConv2d(b, n("proj_in"), { inChannels: c.channels, outChannels: inner, kernelSize: 1 });
  }
  for (let d = 0; d < (c.depth ?? 1); d++) {
    const t = (s: string) => n(`transformer_blocks.${d}.${s}`);
    initLayerNorm(b, t("norm1"), inner);
    initAttention(b, t("attn1"), { queryDim: inner, heads: c.heads, headDim: c.headDim });
    initLayerNorm(b, t("norm2"), inner);
    initAttention(b, t("attn2"), {
      queryDim: inner,
      contextDim: c.contextDim,
      heads: c.heads,
      headDim: c.headDim,
    });
    initLayerNorm(b, t("norm3"), inner);
    initGeglu(b, t("ff.net.0"), { dimIn: inner, dimOut: ff });
    initLinear(b, t("ff.net.2"), { inFeatures: ff, outFeatures: inner });
  }
  if (c.useLinearProjection) {
    initLinear(b, n("proj_out"), { inFeatures: inner, outFeatures: c.channels });
  } else {
    initConv2d(b, n("proj_out"), { inChannels: inner, outChannels: c.channels, kernelSize: 1 });
  }
}

/** Inputs and options of {@link transformer2d}; tensors are `T` (TensorFlow.js by default). */
export interface Transformer2dOptions<T = tf.Tensor> extends Transformer2dConfig {
  /** Text context `[B, T, contextDim]`. */
  context: T;
  /** `[B, T]` 1 = real token, 0 = padding the cross-attention ignores. */
  contextMask?: T;
}

/**
 * Run the spatial transformer: `x [B,H,W,C] -> [B,H,W,C]`.
 */
export function transformer2d(
  p: Params,
  name: string,
  x: tf.Tensor4D,
  o: Transformer2dOptions,
): tf.Tensor4D;
export function transformer2d<T>(m: Ops<T>, name: string, x: T, o: Transformer2dOptions<T>): T;
export function transformer2d<T>(
  net: Net<T>,
  name: string,
  x: T,
  o: Transformer2dOptions<T>,
): T {
  const n = (s: string) => joinName(name, s);
  const inner = o.heads * o.headDim;
  return withOps(net, (m) => {
    const [bsz, hgt, wid, ch] = m.shape(x);
    // diffusers uses eps 1e-6 for this norm.
    const hn = groupNorm(m, n("norm"), x, { groups: o.groups, eps: 1e-6 });
    let h = o.useLinearProjection
      ? linear(m, n("proj_in"), m.reshape(hn, [bsz, -1, ch]))
      : m.reshape(conv2d(m, n("proj_in"), hn), [bsz, -1, inner]);
    for (let d = 0; d < (o.depth ?? 1); d++) {
      const t = (s: string) => n(`transformer_blocks.${d}.${s}`);
      h = m.add(h, attention(m, t("attn1"), layerNorm(m, t("norm1"), h), { heads: o.heads }));
      h = m.add(
        h,
        attention(m, t("attn2"), layerNorm(m, t("norm2"), h), {
          heads: o.heads,
          context: o.context,
          keyMask: o.contextMask,
        }),
      );
      const ffIn = layerNorm(m, t("norm3"), h);
      h = m.add(h, linear(m, t("ff.net.2"), geglu(m, t("ff.net.0"), ffIn, { gelu: o.gelu })));
    }
    const out = o.useLinearProjection
      ? m.reshape(linear(m, n("proj_out"), h), [bsz, hgt, wid, ch])
      : conv2d(m, n("proj_out"), m.reshape(h, [bsz, hgt, wid, inner]));
    return m.add(out, x);
  });
}
