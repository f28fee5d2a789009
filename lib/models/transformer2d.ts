/**
 * Spatial transformer, as diffusers' Transformer2DModel with BasicTransformerBlocks: GroupNorm,
 * `proj_in` (1x1 conv or linear), blocks of LayerNorm+self-attention, LayerNorm+cross-attention
 * to the text context and LayerNorm+GEGLU feed-forward (each residual), `proj_out`, residual.
 *
 * @example
 * ```ts
 * const o = { channels: 64, heads: 4, headDim: 16, contextDim: 32, groups: 8 };
 * initTransformer2d(b, "attentions.0", o);
 * const y = transformer2d(b.params, "attentions.0", x, { ...o, context }); // x [B,H,W,64]
 * ```
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import {
  attention,
  conv2d,
  geglu,
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
  type ParamBuilder,
  type Params,
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
}

/**
 * Declare the transformer's weights under `name` (diffusers names).
 *
 * @example
 * ```ts
 * initTransformer2d(b, "mid_block.attentions.0", { channels: 64, heads: 4, headDim: 16,
 *   contextDim: 32, groups: 8 });
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

/** Inputs and options of {@link transformer2d}. */
export interface Transformer2dOptions extends Transformer2dConfig {
  /** Text context `[B, T, contextDim]`. */
  context: tf.Tensor3D;
  /** `[B, T]` 1 = real token, 0 = padding the cross-attention ignores. */
  contextMask?: tf.Tensor2D;
}

/**
 * Run the spatial transformer: `x [B,H,W,C] -> [B,H,W,C]`.
 *
 * @example
 * ```ts
 * transformer2d(p, "down_blocks.1.attentions.0", h, { ...cfg, context });
 * ```
 */
export function transformer2d(
  p: Params,
  name: string,
  x: tf.Tensor4D,
  o: Transformer2dOptions,
): tf.Tensor4D {
  const n = (s: string) => joinName(name, s);
  const [bsz, hgt, wid, ch] = x.shape;
  const inner = o.heads * o.headDim;
  return tf.tidy(() => {
    // diffusers uses eps 1e-6 for this norm.
    const hn = groupNorm(p, n("norm"), x, { groups: o.groups, eps: 1e-6 });
    let h: tf.Tensor3D = o.useLinearProjection
      ? linear(p, n("proj_in"), tf.reshape(hn, [bsz, hgt * wid, ch]) as tf.Tensor3D)
      : tf.reshape(conv2d(p, n("proj_in"), hn), [bsz, hgt * wid, inner]) as tf.Tensor3D;
    for (let d = 0; d < (o.depth ?? 1); d++) {
      const t = (s: string) => n(`transformer_blocks.${d}.${s}`);
      h = tf.add(h, attention(p, t("attn1"), layerNorm(p, t("norm1"), h), { heads: o.heads }));
      h = tf.add(
        h,
        attention(p, t("attn2"), layerNorm(p, t("norm2"), h), {
          heads: o.heads,
          context: o.context,
          keyMask: o.contextMask,
        }),
      );
      const ffIn = layerNorm(p, t("norm3"), h);
      h = tf.add(h, linear(p, t("ff.net.2"), geglu(p, t("ff.net.0"), ffIn)));
    }
    const out = o.useLinearProjection
      ? tf.reshape(linear(p, n("proj_out"), h), [bsz, hgt, wid, ch]) as tf.Tensor4D
      : conv2d(p, n("proj_out"), tf.reshape(h, [bsz, hgt, wid, inner]) as tf.Tensor4D);
    return tf.add(out, x);
  });
}
