/**
 * Export every model the kit trains to ONNX with the input/output names and NCHW layout of
 * Hugging Face Optimum's Stable Diffusion exports, so an exported run can be driven like an SD
 * folder (and SD folders like the kit's):
 *
 * | model                        | inputs                                                        | outputs                                          |
 * | ---------------------------- | ------------------------------------------------------------- | ------------------------------------------------ |
 * | UNet                         | `sample` [B,C,H,W], `timestep` [B] or [1], `encoder_hidden_states` [B,T,D] | `out_sample` [B,C,H,W]                |
 * | autoencoder encoder          | `sample` [B,3,H,W] in [-1, 1]                                 | `latent_parameters` [B,2C,h,w] (mean, logvar)    |
 * | autoencoder decoder          | `latent_sample` [B,C,h,w] (unscaled)                          | `sample` [B,3,H,W]                               |
 * | CLIP text tower              | `input_ids` int32 [B,T]                                       | `last_hidden_state`, `pooler_output`, `text_embeds` |
 * | CLIP image tower             | `pixel_values` [B,3,S,S] in [-1, 1]                           | `image_embeds` [B,E]                             |
 *
 * The decoder exporter lives in `export_nn.ts` ({@link exportAutoencoderDecoder}, `layout: "NCHW"`).
 *
 * @example
 * ```ts
 * const unet = await exportUnet(params, UNET_PRESETS.tiny);
 * const s = await openSession(unet);
 * const { out_sample } = await s.run({ sample, timestep, encoder_hidden_states });
 * ```
 * @module
 */
import type { Params } from "../nn/params.ts";
import type { AutoencoderConfig } from "../models/autoencoder.ts";
import type { ClipConfig } from "../models/clip.ts";
import { resolveUnetConfig, type UnetConfig } from "../models/unet.ts";
import {
  TEXT_CONTEXTS,
  type TextContext,
  textContextParts,
  WORDS_NORM_EPS,
} from "../pipeline/presets.ts";
import { NnExporter, readParams } from "./export_nn.ts";
import { OnnxGraph, type OnnxModelOptions } from "./writer.ts";

/** Options of {@link exportUnet}. */
export interface ExportUnetOptions extends OnnxModelOptions {
  /**
   * Element type of `timestep`: "float32" (default; Euler's fractional timesteps pass exactly) or
   * "int64" (as Stable Diffusion v1's Optimum export; cast to float inside the graph).
   */
  timestepDtype?: "float32" | "int64";
}

/** Heads of the spatial transformer at `channels`, as `lib/models/unet.ts` picks them. */
function headsAt(c: UnetConfig, channels: number): number {
  const heads = c.numHeads ?? channels / c.headDim!;
  if (!Number.isInteger(heads) || !Number.isInteger(channels / heads)) {
    throw new Error(
      `exportUnet: attention at ${channels} channels needs numHeads (${c.numHeads ?? "-"}) ` +
        `or headDim (${c.headDim ?? "-"}) dividing ${channels}`,
    );
  }
  return heads;
}

/**
 * The kit's UNet (`unetForward` in `lib/models/unet.ts`) as ONNX bytes, Optimum names and NCHW:
 * inputs `sample` float32 `[batch, inChannels, height, width]`, `timestep` `[steps]` (float32 by
 * default, see {@link ExportUnetOptions}; one value per sample, or one value broadcast over the
 * batch as diffusers' ONNX pipelines feed it) and `encoder_hidden_states` float32
 * `[batch, sequence, contextDim]`; output `out_sample` `[batch, outChannels, height, width]`.
 *
 * @example
 * ```ts
 * await saveOnnx("export/unet/model.onnx", await exportUnet(params, cfg, { timestepDtype: "int64" }));
 * ```
 */
export async function exportUnet(
  p: Params,
  cfg: UnetConfig,
  opts: ExportUnetOptions = {},
): Promise<Uint8Array> {
  const c = resolveUnetConfig(cfg);
  const tDtype = opts.timestepDtype ?? "float32";
  if (tDtype !== "float32" && tDtype !== "int64") {
    throw new Error(`exportUnet: timestepDtype must be "float32" or "int64", got ${tDtype}`);
  }
  const g = new OnnxGraph("unet");
  const ex = new NnExporter(g, await readParams(p));
  const ch = c.blockChannels;
  const n = ch.length;
  const x = g.input("sample", "float32", ["batch", c.inChannels, "height", "width"]);
  const t = g.input("timestep", tDtype, ["steps"]);
  const context = g.input("encoder_hidden_states", "float32", [
    "batch",
    "sequence",
    c.contextDim,
  ]);
  const tproj = ex.timestepEmbedding(t, { dim: ch[0], flipSinToCos: true, downscaleFreqShift: 0 });
  const temb = ex.linear(
    "time_embedding.linear_2",
    ex.silu(ex.linear("time_embedding.linear_1", tproj)),
  );
  const gn = { groups: c.groupNormGroups };
  const res = (name: string, h: string) => ex.resnetBlock(name, h, { ...gn, temb });
  const attn = (name: string, h: string, channels: number) =>
    ex.transformer2d(name, h, {
      heads: headsAt(c, channels),
      groups: c.groupNormGroups,
      context,
      useLinearProjection: c.useLinearProjection,
      depth: c.transformerDepth,
    });

  let h = ex.conv2d("conv_in", x);
  const skips: string[] = [h];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < c.layersPerBlock; j++) {
      h = res(`down_blocks.${i}.resnets.${j}`, h);
      if (c.attentionLevels[i]) h = attn(`down_blocks.${i}.attentions.${j}`, h, ch[i]);
      skips.push(h);
    }
    if (i < n - 1) {
      h = ex.downsample(`down_blocks.${i}.downsamplers.0`, h);
      skips.push(h);
    }
  }
  h = res("mid_block.resnets.0", h);
  h = attn("mid_block.attentions.0", h, ch[n - 1]);
  h = res("mid_block.resnets.1", h);
  for (let u = 0; u < n; u++) {
    const i = n - 1 - u;
    for (let j = 0; j <= c.layersPerBlock; j++) {
      h = g.node("Concat", [h, skips.pop()!], { axis: 1 });
      h = res(`up_blocks.${u}.resnets.${j}`, h);
      if (c.attentionLevels[i]) h = attn(`up_blocks.${u}.attentions.${j}`, h, ch[i]);
    }
    if (i > 0) h = ex.upsample(`up_blocks.${u}.upsamplers.0`, h);
  }
  h = ex.conv2d("conv_out", ex.groupNorm("conv_norm_out", h, { ...gn, silu: true }));
  const out = g.node("Identity", [h], {}, { outputs: ["out_sample"] });
  g.output(out, "float32", ["batch", c.outChannels, "height", "width"]);
  return g.toBytes({
    ...opts,
    metadata: { model: "xgen-kit unet", layout: "NCHW", ...(opts.metadata ?? {}) },
  });
}

/** Options of {@link exportAutoencoderEncoder}. */
export interface ExportEncoderOptions extends OnnxModelOptions {
  /** Layout of the input image and output parameters (default "NCHW", Optimum's). */
  layout?: "NCHW" | "NHWC";
}

/**
 * The kit's autoencoder encoder (`encode` in `lib/models/autoencoder.ts`) as ONNX bytes: input
 * `sample` `[batch, imageChannels, height, width]` in [-1, 1]; output `latent_parameters`
 * `[batch, 2 * latentChannels, height/f, width/f]`, the mean channels then the log-variance
 * channels, as Optimum's `vae_encoder` (diffusers' `latent_dist.parameters`). Like diffusers',
 * the log-variance is the raw conv output: `encode` clips it to [-30, 20] afterwards (inside
 * `DiagonalGaussianDistribution` in diffusers); the mean is identical.
 *
 * @example
 * ```ts
 * await saveOnnx("export/vae_encoder/model.onnx", await exportAutoencoderEncoder(p, cfg));
 * ```
 */
export async function exportAutoencoderEncoder(
  p: Params,
  cfg: AutoencoderConfig,
  opts: ExportEncoderOptions = {},
): Promise<Uint8Array> {
  const layout = opts.layout ?? "NCHW";
  const g = new OnnxGraph("autoencoder_encoder");
  const ex = new NnExporter(g, await readParams(p));
  const nchw = layout === "NCHW";
  const x = g.input(
    "sample",
    "float32",
    nchw
      ? ["batch", cfg.imageChannels, "height", "width"]
      : ["batch", "height", "width", cfg.imageChannels],
  );
  const gn = { groups: cfg.groupNormGroups };
  const ch = cfg.blockChannels;
  let h = ex.conv2d("encoder.conv_in", nchw ? x : ex.nhwcToNchw(x));
  for (let i = 0; i < ch.length; i++) {
    for (let j = 0; j < cfg.layersPerBlock; j++) {
      h = ex.resnetBlock(`encoder.down.${i}.resnets.${j}`, h, gn);
    }
    if (i < ch.length - 1) h = ex.downsample(`encoder.down.${i}.downsample`, h);
  }
  h = ex.resnetBlock("encoder.mid", h, gn);
  h = ex.conv2d("encoder.conv_out", ex.groupNorm("encoder.norm_out", h, { ...gn, silu: true }));
  const out = nchw
    ? g.node("Identity", [h], {}, { outputs: ["latent_parameters"] })
    : g.node("Transpose", [h], { perm: [0, 2, 3, 1] }, { outputs: ["latent_parameters"] });
  const c2 = 2 * cfg.latentChannels;
  g.output(
    out,
    "float32",
    nchw
      ? ["batch", c2, "latent_height", "latent_width"]
      : ["batch", "latent_height", "latent_width", c2],
  );
  return g.toBytes({
    ...opts,
    metadata: { model: "xgen-kit autoencoder encoder", layout, ...(opts.metadata ?? {}) },
  });
}

/** Options of {@link exportClipText}. */
export interface ExportClipTextOptions extends OnnxModelOptions {
  /** Element type of `input_ids` (default "int32", as Optimum's SD text encoders). */
  idsDtype?: "int32" | "int64";
  /**
   * What the run's UNet cross-attends to (`unet.textContext` of its preset). For every mode but
   * `states` the graph gets a fourth output, `encoder_hidden_states`, with exactly that context
   * (the token embeddings, plain or layer-normalised, alone or after the states); pipelines feed
   * it to the UNet instead of `last_hidden_state`. `states` (the default) adds nothing: SD's
   * layout.
   */
  unetContext?: TextContext;
}

/**
 * The kit's CLIP text tower (`encodeText` in `lib/models/clip.ts`) as ONNX bytes: input
 * `input_ids` `[batch, contextLength]` (int32 by default); outputs `last_hidden_state`
 * `[batch, contextLength, textWidth]` (the UNet's conditioning), `pooler_output`
 * `[batch, textWidth]` (the state at the first end-of-text token, position 0 when a row has none)
 * and `text_embeds` `[batch, embedDim]` (its projection, not normalised: `encodeText`'s `embeds`).
 *
 * @example
 * ```ts
 * await saveOnnx("export/text_encoder/model.onnx", await exportClipText(p, cfg));
 * ```
 */
export async function exportClipText(
  p: Params,
  cfg: ClipConfig,
  opts: ExportClipTextOptions = {},
): Promise<Uint8Array> {
  const idsDtype = opts.idsDtype ?? "int32";
  if (idsDtype !== "int32" && idsDtype !== "int64") {
    throw new Error(`exportClipText: idsDtype must be "int32" or "int64", got ${idsDtype}`);
  }
  const mode = opts.unetContext ?? "states";
  if (!TEXT_CONTEXTS.includes(mode)) {
    throw new Error(
      `exportClipText: unetContext must be one of ${TEXT_CONTEXTS.join(", ")}, got "${mode}"`,
    );
  }
  const T = cfg.contextLength;
  const D = cfg.textWidth;
  const g = new OnnxGraph("clip_text");
  const ex = new NnExporter(g, await readParams(p));
  const ids = g.input("input_ids", idsDtype, ["batch", T]);
  const positions = g.int64s(Array.from({ length: T }, (_, i) => i));
  const words = ex.embedding("text.token_embedding", ids);
  let h = g.node("Add", [words, ex.embedding("text.position_embedding", positions)]);
  for (let i = 0; i < cfg.textLayers; i++) {
    const l = `text.layers.${i}`;
    const a = ex.attention(`${l}.self_attn`, ex.layerNorm(`${l}.layer_norm1`, h), {
      heads: cfg.textHeads,
      causalLength: T,
    });
    h = g.node("Add", [h, a]);
    const m = ex.linear(
      `${l}.mlp.fc2`,
      ex.gelu(ex.linear(`${l}.mlp.fc1`, ex.layerNorm(`${l}.layer_norm2`, h))),
    );
    h = g.node("Add", [h, m]);
  }
  const last = ex.layerNorm("text.final_layer_norm", h);
  const hidden = g.node("Identity", [last], {}, { outputs: ["last_hidden_state"] });
  // Pool at the first end-of-text token: ArgMax returns the first maximum (0 when none), then a
  // one-hot row picks that state, as encodeText does.
  const eos = g.constant([cfg.eosTokenId ?? 3], [], idsDtype);
  const isEos = g.node("Cast", [g.node("Equal", [ids, eos])], { to: 1 });
  const pos = g.node("ArgMax", [isEos], { axis: 1, keepdims: 1 }); // int64 [B, 1]
  const pick = g.node("Cast", [
    g.node("Equal", [g.int64s(Array.from({ length: T }, (_, i) => i)), pos]),
  ], {
    to: 1,
  });
  const picked = g.node("Mul", [last, g.node("Reshape", [pick, g.int64s([0, T, 1])])]);
  const pooled = g.node("ReduceSum", [picked, g.int64s([1])], { keepdims: 0 }, {
    outputs: ["pooler_output"],
  });
  const embeds = g.node("Identity", [ex.linear("text_projection", pooled)], {}, {
    outputs: ["text_embeds"],
  });
  g.output(hidden, "float32", ["batch", T, D]);
  g.output(pooled, "float32", ["batch", D]);
  g.output(embeds, "float32", ["batch", cfg.embedDim]);
  if (mode !== "states") {
    // As encodeCaptions (lib/pipeline/stages.ts) builds it for training: `words` layer-normalises
    // each embedding without a learned scale or shift (constant ones and zeros here).
    const parts = textContextParts(mode);
    const plain = parts.embeddings === "normalised"
      ? g.node("LayerNormalization", [
        words,
        g.constant(new Array(D).fill(1), [D]),
        g.constant(new Array(D).fill(0), [D]),
      ], { axis: -1, epsilon: WORDS_NORM_EPS })
      : words;
    const both = parts.states;
    const ctx = both
      ? g.node("Concat", [last, plain], { axis: 1 }, { outputs: ["encoder_hidden_states"] })
      : g.node("Identity", [plain], {}, { outputs: ["encoder_hidden_states"] });
    g.output(ctx, "float32", ["batch", both ? 2 * T : T, D]);
  }
  return g.toBytes({
    ...opts,
    metadata: { model: "xgen-kit clip text encoder", ...(opts.metadata ?? {}) },
  });
}

/**
 * The kit's CLIP image tower (`encodeImage` in `lib/models/clip.ts`) as ONNX bytes: input
 * `pixel_values` `[batch, 3, imageSize, imageSize]` in [-1, 1] (NCHW); output `image_embeds`
 * `[batch, embedDim]` (not normalised).
 *
 * @example
 * ```ts
 * await saveOnnx("export/image_encoder/model.onnx", await exportClipImage(p, cfg));
 * ```
 */
export async function exportClipImage(
  p: Params,
  cfg: ClipConfig,
  opts: OnnxModelOptions = {},
): Promise<Uint8Array> {
  const s = cfg.imageSize;
  const g = new OnnxGraph("clip_image");
  const ex = new NnExporter(g, await readParams(p));
  const x = g.input("pixel_values", "float32", ["batch", 3, s, s]);
  const gn = { groups: cfg.imageGroups };
  const ch = cfg.imageChannels;
  let h = ex.conv2d("vision.conv_in", x);
  for (let i = 0; i < ch.length; i++) {
    h = ex.resnetBlock(`vision.levels.${i}.resnet`, h, gn);
    if (i < ch.length - 1) h = ex.downsample(`vision.levels.${i}.downsample`, h);
  }
  h = ex.groupNorm("vision.norm_out", h, { ...gn, silu: true });
  // ReduceMean still takes its axes as an attribute at opset 17 (an input from 18 on).
  const pooled = g.node("ReduceMean", [h], { axes: [2, 3], keepdims: 0 });
  const embeds = g.node("Identity", [ex.linear("visual_projection", pooled)], {}, {
    outputs: ["image_embeds"],
  });
  g.output(embeds, "float32", ["batch", cfg.embedDim]);
  return g.toBytes({
    ...opts,
    metadata: { model: "xgen-kit clip image encoder", ...(opts.metadata ?? {}) },
  });
}
