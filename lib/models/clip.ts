/**
 * A small CLIP for the kit's own conditioning and evaluation: a text transformer (token and
 * position embeddings, pre-LayerNorm blocks with a causal mask, final LayerNorm, pooled at the
 * end-of-text token, linear projection) and a small conv image encoder (pooled, projected),
 * trained with the symmetric contrastive loss and a learnable logit scale (init ln(1/0.07)).
 * The per-token hidden states `[B,T,D]` condition the UNet, as SD uses CLIP's last hidden state.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { CLIP_PRESETS, clipLoss, encodeImage, encodeText, initClip } from "./clip.ts";
 * import { Rng, STREAM } from "../util/rng.ts";
 *
 * const cfg = CLIP_PRESETS.tiny; // contextLength 16, imageSize 16
 * const p = initClip(cfg, Rng.stream(0, [0, STREAM.init]));
 * const ids = tf.tensor2d([[2, 5, 3, ...new Array(13).fill(0)]], [1, 16], "int32"); // [B,T]
 * const { hidden, embeds } = encodeText(p, cfg, ids);
 * const img = encodeImage(p, cfg, tf.zeros([1, 16, 16, 3])); // images [B,16,16,3]
 * const loss = clipLoss(embeds, img, p["logit_scale"]);
 * assert.deepEqual([hidden.shape, embeds.shape, img.shape], [[1, 16, 32], [1, 16], [1, 16]]);
 * assert.ok(loss.dataSync()[0] < 1e-6); // one pair: the softmax over a single column is 1
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import type { Rng } from "../util/rng.ts";
import {
  attention,
  conv2d,
  downsample,
  embedding,
  groupNorm,
  initAttention,
  initConv2d,
  initDownsample,
  initEmbedding,
  initGroupNorm,
  initLayerNorm,
  initLinear,
  initResnetBlock,
  layerNorm,
  linear,
  type Net,
  type Ops,
  type ParamBuilder,
  type Params,
  resnetBlock,
  TensorBuilder,
  withOps,
} from "../nn/mod.ts";

/** Shape of a CLIP model. */
export interface ClipConfig {
  /** Vocabulary size (the tokenizer's). */
  vocabSize: number;
  /** Token positions (the tokenizer's context length). */
  contextLength: number;
  /** Text transformer width (also the width of the hidden states the UNet attends to). */
  textWidth: number;
  textLayers: number;
  textHeads: number;
  /** Shared embedding width of the two towers. */
  embedDim: number;
  /** Image side the conv tower expects (square images). */
  imageSize: number;
  /** Image tower channels per level (stride-2 downsample between levels). */
  imageChannels: number[];
  /** GroupNorm groups of the image tower. */
  imageGroups: number;
  /** Token id whose (first) position gives the pooled text feature (default 3, `<|endoftext|>`). */
  eosTokenId?: number;
}

/** Presets: `tiny` for tests, `small` for shapes world (64-d text states, 32x32 images). */
export const CLIP_PRESETS: { tiny: ClipConfig; small: ClipConfig } = {
  tiny: {
    vocabSize: 64,
    contextLength: 16,
    textWidth: 32,
    textLayers: 1,
    textHeads: 2,
    embedDim: 16,
    imageSize: 16,
    imageChannels: [8, 16],
    imageGroups: 4,
  },
  small: {
    vocabSize: 512,
    contextLength: 16,
    textWidth: 64,
    textLayers: 4,
    textHeads: 4,
    embedDim: 64,
    imageSize: 32,
    imageChannels: [32, 64, 128],
    imageGroups: 16,
  },
};

/** The initial logit scale, ln(1/0.07), as in CLIP. */
export const CLIP_LOGIT_SCALE_INIT: number = Math.log(1 / 0.07);

function checkConfig(c: ClipConfig): void {
  const posInt = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
  for (
    const f of [
      "vocabSize",
      "contextLength",
      "textWidth",
      "textLayers",
      "textHeads",
      "embedDim",
      "imageSize",
      "imageGroups",
    ] as const
  ) {
    if (!posInt(c[f])) throw new Error(`ClipConfig.${f}: expected a positive integer, got ${c[f]}`);
  }
  if (c.textWidth % c.textHeads !== 0) {
    throw new Error(`ClipConfig.textHeads: ${c.textHeads} must divide textWidth=${c.textWidth}`);
  }
  if (!Array.isArray(c.imageChannels) || c.imageChannels.length === 0) {
    throw new Error("ClipConfig.imageChannels: expected a non-empty array");
  }
  for (const ch of c.imageChannels) {
    if (!posInt(ch) || ch % c.imageGroups !== 0) {
      throw new Error(
        `ClipConfig.imageChannels: ${ch} must be a positive multiple of imageGroups=${c.imageGroups}`,
      );
    }
  }
}

function buildClip(b: ParamBuilder, c: ClipConfig): void {
  checkConfig(c);
  const d = c.textWidth;
  initEmbedding(b, "text.token_embedding", { numEmbeddings: c.vocabSize, dim: d, std: 0.02 });
  initEmbedding(b, "text.position_embedding", {
    numEmbeddings: c.contextLength,
    dim: d,
    std: 0.01,
  });
  for (let i = 0; i < c.textLayers; i++) {
    const l = `text.layers.${i}`;
    initLayerNorm(b, `${l}.layer_norm1`, d);
    initAttention(b, `${l}.self_attn`, {
      queryDim: d,
      heads: c.textHeads,
      headDim: d / c.textHeads,
      qkvBias: true,
    });
    initLayerNorm(b, `${l}.layer_norm2`, d);
    initLinear(b, `${l}.mlp.fc1`, { inFeatures: d, outFeatures: 4 * d });
    initLinear(b, `${l}.mlp.fc2`, { inFeatures: 4 * d, outFeatures: d });
  }
  initLayerNorm(b, "text.final_layer_norm", d);
  initLinear(b, "text_projection", { inFeatures: d, outFeatures: c.embedDim, bias: false });

  const ch = c.imageChannels;
  initConv2d(b, "vision.conv_in", { inChannels: 3, outChannels: ch[0] });
  let prev = ch[0];
  for (let i = 0; i < ch.length; i++) {
    initResnetBlock(b, `vision.levels.${i}.resnet`, { inChannels: prev, outChannels: ch[i] });
    prev = ch[i];
    if (i < ch.length - 1) initDownsample(b, `vision.levels.${i}.downsample`, ch[i]);
  }
  initGroupNorm(b, "vision.norm_out", prev);
  initLinear(b, "visual_projection", { inFeatures: prev, outFeatures: c.embedDim, bias: false });
  b.add("logit_scale", [], { kind: "constant", value: CLIP_LOGIT_SCALE_INIT });
}

/**
 * Allocate CLIP weights drawn from `rng`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import { CLIP_PRESETS, initClip } from "./clip.ts";
 * import { Rng, STREAM } from "../util/rng.ts";
 *
 * const p = initClip(CLIP_PRESETS.tiny, Rng.stream(0, [0, STREAM.init]));
 * assert.ok(Math.abs(p["logit_scale"].dataSync()[0] - Math.log(1 / 0.07)) < 1e-6);
 * ```
 */
export function initClip(cfg: ClipConfig, rng: Rng): Params {
  const b = new TensorBuilder(rng);
  buildClip(b, cfg);
  return b.params;
}

/** Output of {@link encodeText}. */
export interface TextEncoding<H = tf.Tensor3D, E = tf.Tensor2D> {
  /** Per-token states after the final LayerNorm `[B, T, textWidth]` (UNet conditioning). */
  hidden: H;
  /** Projected state at the end-of-text token `[B, embedDim]` (not normalised). */
  embeds: E;
}

/** Output of {@link textEncoder}: {@link TextEncoding} plus the pooled state. */
export interface TextEncoderOutputs<T> extends TextEncoding<T, T> {
  /** The state at the first end-of-text token `[B, textWidth]`, before the projection. */
  pooled: T;
}

/**
 * The text tower on any {@link Ops}: per-token states, the state pooled at the first `eosTokenId`
 * position (position 0 for a row without one) and its projection. `ids` are integer
 * `[B, contextLength]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { CLIP_PRESETS, initClip, textEncoder } from "./clip.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const cfg = CLIP_PRESETS.tiny;
 * const p = initClip(cfg, Rng.stream(0));
 * const ids = tf.tensor2d([[2, 5, 3, ...new Array(13).fill(0)]], [1, 16], "int32");
 * const { hidden, pooled, embeds } = textEncoder(p, cfg, ids);
 * assert.deepEqual([hidden.shape, pooled.shape, embeds.shape], [[1, 16, 32], [1, 32], [1, 16]]);
 * ```
 */
export function textEncoder<T>(net: Net<T>, cfg: ClipConfig, ids: T): TextEncoderOutputs<T> {
  checkConfig(cfg);
  const t = cfg.contextLength;
  const eos = cfg.eosTokenId ?? 3;
  return withOps(net, (m) => {
    const shape = m.shape(ids), dtype = m.dtype(ids);
    if (shape.length !== 2 || shape[1] !== t || (dtype !== "int32" && dtype !== "int64")) {
      throw new Error(`encodeText: ids must be int32 [B, ${t}], got ${dtype} [${shape}]`);
    }
    const pos = embedding(m, "text.position_embedding", m.positions(t));
    let h = m.add(embedding(m, "text.token_embedding", ids), pos);
    for (let i = 0; i < cfg.textLayers; i++) {
      const l = `text.layers.${i}`;
      h = m.add(
        h,
        attention(m, `${l}.self_attn`, layerNorm(m, `${l}.layer_norm1`, h), {
          heads: cfg.textHeads,
          causal: true,
        }),
      );
      const mlp = linear(
        m,
        `${l}.mlp.fc2`,
        m.gelu(linear(m, `${l}.mlp.fc1`, layerNorm(m, `${l}.layer_norm2`, h))),
      );
      h = m.add(h, mlp);
    }
    h = layerNorm(m, "text.final_layer_norm", h);
    // argMax returns the first maximum, i.e. the first end-of-text position.
    const eosPos = m.argMax(m.cast(m.equal(ids, eos), "float32"), 1);
    const pick = m.reshape(m.oneHot(eosPos, t), [-1, t, 1]);
    const pooled = m.sum(m.mul(h, pick), 1);
    return { hidden: h, pooled, embeds: linear(m, "text_projection", pooled) };
  });
}

/**
 * Encode token ids `[B, contextLength]` (int32). Pooling takes the first `eosTokenId` position;
 * a row without one pools position 0.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { CLIP_PRESETS, encodeText, initClip } from "./clip.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const cfg = CLIP_PRESETS.tiny; // contextLength 16
 * const p = initClip(cfg, Rng.stream(0));
 * const ids = [[2, 5, 3, ...new Array(13).fill(0)], [2, 6, 7, 3, ...new Array(12).fill(0)]];
 * const { hidden, embeds } = encodeText(p, cfg, tf.tensor2d(ids, [2, 16], "int32"));
 * assert.deepEqual([hidden.shape, embeds.shape], [[2, 16, 32], [2, 16]]);
 * ```
 */
export function encodeText(p: Params, cfg: ClipConfig, ids: tf.Tensor2D): TextEncoding;
export function encodeText<T>(m: Ops<T>, cfg: ClipConfig, ids: T): TextEncoding<T, T>;
export function encodeText<T>(net: Net<T>, cfg: ClipConfig, ids: T): TextEncoding<T, T> {
  return withOps(net, (m) => {
    const { hidden, embeds } = textEncoder(m, cfg, ids);
    return { hidden, embeds };
  });
}

/**
 * Encode images `[B, imageSize, imageSize, 3]` in [-1, 1] to `[B, embedDim]` (not normalised).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { CLIP_PRESETS, encodeImage, initClip } from "./clip.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const cfg = CLIP_PRESETS.tiny; // imageSize 16, embedDim 16
 * const e = encodeImage(initClip(cfg, Rng.stream(0)), cfg, tf.zeros([3, 16, 16, 3]));
 * assert.deepEqual(e.shape, [3, 16]);
 * ```
 */
export function encodeImage(p: Params, cfg: ClipConfig, images: tf.Tensor4D): tf.Tensor2D;
export function encodeImage<T>(m: Ops<T>, cfg: ClipConfig, images: T): T;
export function encodeImage<T>(net: Net<T>, cfg: ClipConfig, images: T): T {
  checkConfig(cfg);
  const s = cfg.imageSize;
  const gn = { groups: cfg.imageGroups };
  const ch = cfg.imageChannels;
  return withOps(net, (m) => {
    const shape = m.shape(images);
    if (shape.length !== 4 || shape[1] !== s || shape[2] !== s || shape[3] !== 3) {
      throw new Error(`encodeImage: images must be [B, ${s}, ${s}, 3], got [${shape}]`);
    }
    let h = conv2d(m, "vision.conv_in", images);
    for (let i = 0; i < ch.length; i++) {
      h = resnetBlock(m, `vision.levels.${i}.resnet`, h, gn);
      if (i < ch.length - 1) h = downsample(m, `vision.levels.${i}.downsample`, h);
    }
    const pooled = m.mean(groupNorm(m, "vision.norm_out", h, { ...gn, silu: true }), [1, 2]);
    return linear(m, "visual_projection", pooled);
  });
}

/**
 * Symmetric CLIP loss: with L2-normalised embeddings and `logits = exp(logitScale) * img @ txt^T`
 * (scale capped at 100 like CLIP), the mean of image->text and text->image cross-entropies where
 * row i's target is column i.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { clipLoss } from "./clip.ts";
 *
 * // Two matched orthogonal pairs at scale exp(0) = 1: each row's loss is log(1 + e^-1).
 * const eye = tf.tensor2d([[1, 0], [0, 1]]);
 * const loss = clipLoss(eye, eye, 0).dataSync()[0];
 * assert.ok(Math.abs(loss - Math.log(1 + Math.exp(-1))) < 1e-6);
 * ```
 */
export function clipLoss(
  textEmbeds: tf.Tensor2D,
  imageEmbeds: tf.Tensor2D,
  logitScale: tf.Tensor | number,
  opts: ClipLossOptions = {},
): tf.Scalar {
  if (textEmbeds.shape.join(",") !== imageEmbeds.shape.join(",")) {
    throw new Error(
      `clipLoss: text [${textEmbeds.shape}] and image [${imageEmbeds.shape}] embeddings differ`,
    );
  }
  const neg = opts.negativeTextEmbeds;
  if (neg && neg.shape[1] !== textEmbeds.shape[1]) {
    throw new Error(
      `clipLoss: negative text embeddings [${neg.shape}] must have width ${textEmbeds.shape[1]}`,
    );
  }
  const b = textEmbeds.shape[0];
  return tf.tidy(() => {
    const norm = (e: tf.Tensor2D) =>
      tf.div(e, tf.sqrt(tf.add(tf.sum(tf.square(e), 1, true), 1e-12))) as tf.Tensor2D;
    const scale = tf.minimum(tf.exp(logitScale), 100);
    const img = norm(imageEmbeds);
    const logits = tf.mul(tf.matMul(img, norm(textEmbeds), false, true), scale);
    const eye = tf.eye(b);
    const ce = (l: tf.Tensor, target: tf.Tensor) =>
      tf.neg(tf.div(tf.sum(tf.mul(tf.logSoftmax(l, 1), target)), b));
    const textToImage = ce(tf.transpose(logits), eye);
    // NegCLIP: each image also ranks its caption above every hard negative (extra columns of
    // the image->text softmax); text->image keeps the true captions only.
    const imageToText = neg
      ? ce(
        tf.concat([logits, tf.mul(tf.matMul(img, norm(neg), false, true), scale)], 1),
        tf.concat([eye, tf.zeros([b, neg.shape[0]])], 1),
      )
      : ce(logits, eye);
    return tf.div(tf.add(imageToText, textToImage), 2) as tf.Scalar;
  });
}

/** Options of {@link clipLoss}. */
export interface ClipLossOptions {
  /**
   * Extra captions that match no image (e.g. one-word swaps of the true ones, NegCLIP): they join
   * the image->text softmax as wrong answers. `[N, embedDim]`, not normalised.
   */
  negativeTextEmbeds?: tf.Tensor2D;
}

/** Inputs of {@link clipForward}. */
export interface ClipInputs {
  /** Token ids `[B, contextLength]` int32. */
  ids: tf.Tensor2D;
  /** Images `[B, imageSize, imageSize, 3]` in [-1, 1]. */
  images: tf.Tensor4D;
  /** Hard-negative captions' ids `[N, contextLength]` int32 (see {@link ClipLossOptions}). */
  negativeIds?: tf.Tensor2D;
}

/** Output of {@link clipForward} (caller disposes). */
export interface ClipOutputs extends TextEncoding {
  imageEmbeds: tf.Tensor2D;
  /** Symmetric contrastive loss. */
  loss: tf.Scalar;
}

/**
 * Both towers plus the contrastive loss, for training.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { CLIP_PRESETS, clipForward, initClip } from "./clip.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const cfg = CLIP_PRESETS.tiny;
 * const row = [2, 5, 3, ...new Array(13).fill(0)];
 * const ids = tf.tensor2d([row, row], [2, 16], "int32");
 * // Two identical pairs: every logit is equal, so the loss is exactly ln 2.
 * const { loss } = clipForward(initClip(cfg, Rng.stream(0)), cfg, { ids, images: tf.zeros([2, 16, 16, 3]) });
 * assert.ok(Math.abs(loss.dataSync()[0] - Math.log(2)) < 1e-5);

 * ```
 */
export function clipForward(p: Params, cfg: ClipConfig, inputs: ClipInputs): ClipOutputs {
  const imageEmbeds = encodeImage(p, cfg, inputs.images);
  if (!inputs.negativeIds) {
    const text = encodeText(p, cfg, inputs.ids);
    const loss = clipLoss(text.embeds, imageEmbeds, p["logit_scale"]);
    return { ...text, imageEmbeds, loss };
  }
  // True and negative captions through the text tower as one batch.
  const b = inputs.ids.shape[0], n = inputs.negativeIds.shape[0];
  const all = encodeText(p, cfg, tf.concat([inputs.ids, inputs.negativeIds], 0));
  const [hidden, negHidden] = tf.split(all.hidden, [b, n], 0) as tf.Tensor3D[];
  const [embeds, negEmbeds] = tf.split(all.embeds, [b, n], 0) as tf.Tensor2D[];
  const loss = clipLoss(embeds, imageEmbeds, p["logit_scale"], { negativeTextEmbeds: negEmbeds });
  tf.dispose([all.hidden, all.embeds, negHidden, negEmbeds]);
  return { hidden, embeds, imageEmbeds, loss };
}
