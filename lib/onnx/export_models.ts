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
 * Each exporter only declares the graph's inputs and outputs: the model in between is the one
 * definition in lib/models (`unetForward`, `encoderMoments`, `decode`, `textEncoder`,
 * `encodeImage`), run on {@link OnnxOps} so it emits ONNX nodes instead of computing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import { exportUnet } from "./export_models.ts";
 * import { openSession } from "./session.ts";
 * import { initUnet, UNET_PRESETS } from "../models/unet.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const params = initUnet(UNET_PRESETS.tiny, Rng.stream(0)); // or a tiny UNet's trained weights
 * const unet = await exportUnet(params, UNET_PRESETS.tiny);
 * const s = await openSession(unet, { threads: 1, executionProviders: ["cpu"] });
 * const sample = { data: new Float32Array(2 * 4 * 8 * 8), shape: [2, 4, 8, 8] };
 * const timestep = { data: new Float32Array([10, 500]), shape: [2] };
 * const encoder_hidden_states = { data: new Float32Array(2 * 4 * 32), shape: [2, 4, 32] };
 * const { out_sample } = await s.run({ sample, timestep, encoder_hidden_states });
 * assert.deepEqual(out_sample.dims, [2, 4, 8, 8]);
 * await s.release();
 * ```
 * @module
 */
import type { Params } from "../nn/params.ts";
import { type AutoencoderConfig, decode, encoderMoments } from "../models/autoencoder.ts";
import { type ClipConfig, encodeImage, textEncoder } from "../models/clip.ts";
import { type UnetConfig, unetForward } from "../models/unet.ts";
import {
  TEXT_CONTEXTS,
  type TextContext,
  textContextComposition,
  unetTextContext,
} from "../models/text_context.ts";
import { OnnxOps, readParams } from "./onnx_ops.ts";
import { OnnxGraph, type OnnxModelOptions } from "./writer.ts";

/** Build graph `name` with `body` on ops over `p`'s weights; bytes with `metadata` merged in. */
async function exportGraph(
  name: string,
  p: Params,
  opts: OnnxModelOptions,
  metadata: Record<string, string>,
  body: (m: OnnxOps) => void,
): Promise<Uint8Array> {
  const { graph, options } = await buildGraph(name, p, opts, metadata, body);
  return graph.toBytes(options);
}

/** {@link exportGraph} before serialising: the graph and the options to save it with. */
async function buildGraph(
  name: string,
  p: Params,
  opts: OnnxModelOptions,
  metadata: Record<string, string>,
  body: (m: OnnxOps) => void,
): Promise<ExportedGraph> {
  const graph = new OnnxGraph(name);
  body(new OnnxOps(graph, await readParams(p)));
  return { graph, options: { ...opts, metadata: { ...metadata, ...(opts.metadata ?? {}) } } };
}

/**
 * An exported model not yet serialised, for models that may pass protobuf's 2 GiB (an SD-sized
 * UNet): save it with `saveOnnxModel(path, graph, options)`, which moves the weights to an
 * external-data file when needed.
 */
export interface ExportedGraph {
  graph: OnnxGraph;
  options: OnnxModelOptions;
}

/** Options of {@link exportUnet}. */
export interface ExportUnetOptions extends OnnxModelOptions {
  /**
   * Element type of `timestep`: "float32" (default; Euler's fractional timesteps pass exactly) or
   * "int64" (as Stable Diffusion v1's Optimum export; cast to float inside the graph).
   */
  timestepDtype?: "float32" | "int64";
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
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import { exportUnet } from "./export_models.ts";
 * import { initUnet, UNET_PRESETS } from "../models/unet.ts";
 * import { readOnnx } from "./reader.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const cfg = UNET_PRESETS.tiny;
 * const bytes = await exportUnet(initUnet(cfg, Rng.stream(0)), cfg, { timestepDtype: "int64" });
 * const t = readOnnx(bytes).graph.inputs.find((i) => i.name === "timestep");
 * assert.equal(t?.dtype, "int64"); // then e.g. saveOnnx("export/unet/model.onnx", bytes)
 * ```
 */
export async function exportUnet(
  p: Params,
  cfg: UnetConfig,
  opts: ExportUnetOptions = {},
): Promise<Uint8Array> {
  const { graph, options } = await exportUnetGraph(p, cfg, opts);
  return graph.toBytes(options);
}

/**
 * {@link exportUnet} as a graph to save with `saveOnnxModel`, which keeps the weights of an
 * SD-sized UNet (~3.4 GB in float32) in `model.onnx_data` beside `model.onnx`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import { exportUnetGraph } from "./export_models.ts";
 * import { saveOnnxModel } from "./external_data.ts";
 * import { initUnet, UNET_PRESETS } from "../models/unet.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * await tf.setBackend("cpu");
 * const cfg = UNET_PRESETS.tiny;
 * const { graph, options } = await exportUnetGraph(initUnet(cfg, Rng.stream(0)), cfg);
 * const dir = await Deno.makeTempDir();
 * const saved = await saveOnnxModel(`${dir}/model.onnx`, graph, { ...options, externalData: "always" });
 * assert.deepEqual(saved.files, ["model.onnx_data", "model.onnx"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function exportUnetGraph(
  p: Params,
  cfg: UnetConfig,
  opts: ExportUnetOptions = {},
): Promise<ExportedGraph> {
  const tDtype = opts.timestepDtype ?? "float32";
  if (tDtype !== "float32" && tDtype !== "int64") {
    throw new Error(`exportUnet: timestepDtype must be "float32" or "int64", got ${tDtype}`);
  }
  const meta = { model: "xgen-kit unet", layout: "NCHW" };
  return await buildGraph("unet", p, opts, meta, (m) => {
    const x = m.input("sample", "float32", ["batch", cfg.inChannels, "height", "width"], {
      layout: "NCHW",
    });
    const t = m.input("timestep", tDtype, ["steps"]);
    const context = m.input("encoder_hidden_states", "float32", [
      "batch",
      "sequence",
      cfg.contextDim,
    ]);
    m.output(unetForward(m, cfg, { x, t, context }), "out_sample", {
      layout: "NCHW",
      shape: ["batch", cfg.outChannels, "height", "width"],
    });
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
 * the log-variance is the raw conv output (`encoderMoments`): `encode` clips it to [-30, 20]
 * afterwards (inside `DiagonalGaussianDistribution` in diffusers); the mean is identical.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import { exportAutoencoderEncoder } from "./export_models.ts";
 * import { AUTOENCODER_PRESETS, initAutoencoder } from "../models/autoencoder.ts";
 * import { openSession } from "./session.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const cfg = AUTOENCODER_PRESETS.tiny;
 * const bytes = await exportAutoencoderEncoder(initAutoencoder(cfg, Rng.stream(0)), cfg);
 * const s = await openSession(bytes, { threads: 1, executionProviders: ["cpu"] });
 * const { latent_parameters } = await s.run({ sample: { data: new Float32Array(3 * 64), shape: [1, 3, 8, 8] } });
 * assert.deepEqual(latent_parameters.dims, [1, 8, 2, 2]); // mean and log-variance channels
 * await s.release();
 * ```
 */
export async function exportAutoencoderEncoder(
  p: Params,
  cfg: AutoencoderConfig,
  opts: ExportEncoderOptions = {},
): Promise<Uint8Array> {
  const layout = opts.layout ?? "NCHW";
  const meta = { model: "xgen-kit autoencoder encoder", layout };
  const c2 = 2 * cfg.latentChannels;
  const nchw = layout === "NCHW";
  return await exportGraph("autoencoder_encoder", p, opts, meta, (m) => {
    const x = m.input(
      "sample",
      "float32",
      nchw
        ? ["batch", cfg.imageChannels, "height", "width"]
        : ["batch", "height", "width", cfg.imageChannels],
      { layout },
    );
    m.output(encoderMoments(m, cfg, x), "latent_parameters", {
      layout,
      shape: nchw
        ? ["batch", c2, "latent_height", "latent_width"]
        : ["batch", "latent_height", "latent_width", c2],
    });
  });
}

/** Options of {@link exportAutoencoderDecoder}. */
export interface ExportDecoderOptions extends OnnxModelOptions {
  /** Layout of the input latent and output image (default "NHWC", the kit's). */
  layout?: "NHWC" | "NCHW";
}

/**
 * The kit's autoencoder decoder (`decode` in `lib/models/autoencoder.ts`) as ONNX bytes: input
 * `latent_sample` (unscaled latent), output `sample` (image), batch and size free. Optimum's
 * `vae_decoder` is `layout: "NCHW"`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import { exportAutoencoderDecoder } from "./export_models.ts";
 * import { AUTOENCODER_PRESETS, initAutoencoder } from "../models/autoencoder.ts";
 * import { saveOnnx } from "./writer.ts";
 * import { openSession } from "./session.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const cfg = AUTOENCODER_PRESETS.tiny;
 * const dir = await Deno.makeTempDir(); // e.g. "runs/x"
 * await saveOnnx(`${dir}/vae_decoder.onnx`, await exportAutoencoderDecoder(initAutoencoder(cfg, Rng.stream(0)), cfg));
 * const s = await openSession(`${dir}/vae_decoder.onnx`, { threads: 1, executionProviders: ["cpu"] });
 * const { sample } = await s.run({ latent_sample: { data: new Float32Array(16), shape: [1, 2, 2, 4] } });
 * assert.deepEqual(sample.dims, [1, 8, 8, 3]); // NHWC by default
 * await s.release();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function exportAutoencoderDecoder(
  p: Params,
  cfg: AutoencoderConfig,
  opts: ExportDecoderOptions = {},
): Promise<Uint8Array> {
  const layout = opts.layout ?? "NHWC";
  const meta = { model: "xgen-kit autoencoder decoder", layout };
  const nchw = layout === "NCHW";
  return await exportGraph("autoencoder_decoder", p, opts, meta, (m) => {
    const z = m.input(
      "latent_sample",
      "float32",
      nchw
        ? ["batch", cfg.latentChannels, "height", "width"]
        : ["batch", "height", "width", cfg.latentChannels],
      { layout },
    );
    m.output(decode(m, cfg, z), "sample", {
      layout,
      shape: nchw
        ? ["batch", cfg.imageChannels, "image_height", "image_width"]
        : ["batch", "image_height", "image_width", cfg.imageChannels],
    });
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
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import { exportClipText } from "./export_models.ts";
 * import { CLIP_PRESETS, initClip } from "../models/clip.ts";
 * import { readOnnx } from "./reader.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const cfg = CLIP_PRESETS.tiny; // then e.g. saveOnnx("export/text_encoder/model.onnx", bytes)
 * const bytes = await exportClipText(initClip(cfg, Rng.stream(0)), cfg);
 * const outputs = readOnnx(bytes).graph.outputs.map((o) => o.name);
 * assert.deepEqual(outputs, ["last_hidden_state", "pooler_output", "text_embeds"]);
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
  const T = cfg.contextLength, D = cfg.textWidth;
  return await exportGraph("clip_text", p, opts, { model: "xgen-kit clip text encoder" }, (m) => {
    const ids = m.input("input_ids", idsDtype, ["batch", T]);
    const text = textEncoder(m, cfg, ids);
    m.output(text.hidden, "last_hidden_state", { shape: ["batch", T, D] });
    m.output(text.pooled, "pooler_output", { shape: ["batch", D] });
    m.output(text.embeds, "text_embeds", { shape: ["batch", cfg.embedDim] });
    if (mode === "states") return;
    const parts = textContextComposition(mode);
    const context = unetTextContext(m, cfg, ids, mode, { states: text.hidden });
    m.output(context, "encoder_hidden_states", { shape: ["batch", parts.states ? 2 * T : T, D] });
  });
}

/**
 * The kit's CLIP image tower (`encodeImage` in `lib/models/clip.ts`) as ONNX bytes: input
 * `pixel_values` `[batch, 3, imageSize, imageSize]` in [-1, 1] (NCHW); output `image_embeds`
 * `[batch, embedDim]` (not normalised).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import { exportClipImage } from "./export_models.ts";
 * import { CLIP_PRESETS, initClip } from "../models/clip.ts";
 * import { openSession } from "./session.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const cfg = CLIP_PRESETS.tiny; // imageSize 16, embedDim 16
 * const bytes = await exportClipImage(initClip(cfg, Rng.stream(0)), cfg);
 * const s = await openSession(bytes, { threads: 1, executionProviders: ["cpu"] });
 * const { image_embeds } = await s.run({ pixel_values: { data: new Float32Array(3 * 256), shape: [1, 3, 16, 16] } });
 * assert.deepEqual(image_embeds.dims, [1, 16]);
 * await s.release();

 * ```
 */
export async function exportClipImage(
  p: Params,
  cfg: ClipConfig,
  opts: OnnxModelOptions = {},
): Promise<Uint8Array> {
  const s = cfg.imageSize;
  return await exportGraph("clip_image", p, opts, { model: "xgen-kit clip image encoder" }, (m) => {
    const x = m.input("pixel_values", "float32", ["batch", 3, s, s], { layout: "NCHW" });
    m.output(encodeImage(m, cfg, x), "image_embeds", { shape: ["batch", cfg.embedDim] });
  });
}
