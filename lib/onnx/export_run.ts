/**
 * Export a finished run folder to ONNX in the layout of Hugging Face Optimum's Stable Diffusion
 * exports, so the kit's models run through onnxruntime (and `loadOnnxPipeline`) like an SD
 * folder:
 *
 * ```
 * model_index.json              written last: a folder without it is an unfinished export
 * text_encoder/model.onnx       input_ids -> last_hidden_state, pooler_output, text_embeds
 * text_encoder/config.json
 * unet/model.onnx               sample, timestep, encoder_hidden_states -> out_sample (NCHW)
 * unet/config.json              diffusers UNet2DConditionModel keys (sample_size, in_channels, ...)
 * vae_encoder/model.onnx        sample -> latent_parameters (mean, logvar)
 * vae_encoder/config.json
 * vae_decoder/model.onnx        latent_sample -> sample
 * vae_decoder/config.json       AutoencoderKL keys, with the latent scaling_factor
 * image_encoder/model.onnx      pixel_values -> image_embeds (the kit's CLIP image tower, for eval)
 * image_encoder/config.json
 * tokenizer/word_tokenizer.json the kit's word tokenizer (model_index.json names its class)
 * tokenizer/tokenizer_config.json
 * scheduler/scheduler_config.json  diffusers keys, from the run's noise schedule
 * ```
 *
 * Real SD folders name `["transformers", "CLIPTokenizer"]` with `vocab.json` + `merges.txt`; the
 * kit's tokenizer is a word tokenizer, so its file gets its own name instead of `tokenizer.json`
 * (which Hugging Face tools would read as a fast-tokenizer file).
 *
 * @example
 * ```ts
 * await exportRun("runs/default", "exports/default");
 * const pipe = await loadOnnxPipeline("exports/default");
 * ```
 * @module
 */
import { type LoadedRun, loadRun, type LoadRunOptions } from "../pipeline/generate.ts";
import { disposeParams } from "../nn/params.ts";
import { downsampleFactor } from "../models/autoencoder.ts";
import { toDiffusersConfig } from "../diffusion/diffusers_config.ts";
import { writeJsonAtomic } from "../util/atomic.ts";
import { saveOnnx } from "./writer.ts";
import { exportAutoencoderDecoder } from "./export_nn.ts";
import {
  exportAutoencoderEncoder,
  exportClipImage,
  exportClipText,
  exportUnet,
} from "./export_models.ts";

/**
 * Format tag of a kit export, in `model_index.json` under `_xgen_kit`.
 *
 * @example
 * ```ts
 * const isKit = index._xgen_kit?.format === KIT_ONNX_FORMAT;
 * ```
 */
export const KIT_ONNX_FORMAT = "xgen-kit-onnx/1";

/**
 * File name of the kit's word tokenizer inside `tokenizer/`.
 *
 * @example
 * ```ts
 * const tok = await WordTokenizer.load(`${dir}/tokenizer/${KIT_TOKENIZER_FILE}`);
 * ```
 */
export const KIT_TOKENIZER_FILE = "word_tokenizer.json";

/** Options of {@link exportRun} and {@link exportLoadedRun}. */
export interface ExportRunOptions {
  /** Export this UNet checkpoint's (EMA) weights instead of the finished model (as `loadRun`). */
  checkpoint?: LoadRunOptions["checkpoint"];
  /** Element type of the UNet's `timestep` input (default "float32"). */
  timestepDtype?: "float32" | "int64";
  /** Element type of the text encoder's `input_ids` (default "int32"). */
  idsDtype?: "int32" | "int64";
  /** Called with each file written (relative to the output folder). */
  onFile?: (relPath: string) => void;
}

/** What {@link exportRun} wrote. */
export interface ExportRunResult {
  /** The output folder. */
  dir: string;
  /** Files written, relative to `dir`, in order (`model_index.json` last). */
  files: string[];
  /** Image side the run was trained at. */
  imageSize: number;
  /** Latent scaling factor (also in `vae_decoder/config.json`). */
  scalingFactor: number;
}

/**
 * Export a run folder (finished, or with `checkpoint` a UNet checkpoint) to `outDir`; the run's
 * weights are freed afterwards.
 *
 * @example
 * ```ts
 * const res = await exportRun("runs/tiny", "exports/tiny");
 * res.files; // ["text_encoder/model.onnx", ..., "model_index.json"]
 * ```
 */
export async function exportRun(
  runDir: string,
  outDir: string,
  opts: ExportRunOptions = {},
): Promise<ExportRunResult> {
  const run = await loadRun(runDir, { checkpoint: opts.checkpoint });
  try {
    return await exportLoadedRun(run, outDir, opts);
  } finally {
    disposeParams(run.ae.params);
    disposeParams(run.clip.params);
    disposeParams(run.unet.params);
  }
}

/**
 * Export an already loaded run (see `loadRun`) to `outDir`; the run stays usable.
 *
 * @example
 * ```ts
 * const run = await loadRun("runs/tiny");
 * await exportLoadedRun(run, "exports/tiny");
 * ```
 */
export async function exportLoadedRun(
  run: LoadedRun,
  outDir: string,
  opts: ExportRunOptions = {},
): Promise<ExportRunResult> {
  const files: string[] = [];
  const put = async (rel: string, data: Uint8Array | Record<string, unknown>) => {
    const path = `${outDir}/${rel}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    if (data instanceof Uint8Array) await saveOnnx(path, data);
    else await writeJsonAtomic(path, data);
    files.push(rel);
    opts.onFile?.(rel);
  };
  // A stale model_index.json would make a half-rewritten folder look complete.
  await Deno.remove(`${outDir}/model_index.json`).catch(() => {});

  const ae = run.ae, clip = run.clip, unet = run.unet;
  const f = downsampleFactor(ae.config);
  const latentSize = run.imageSize / f;
  const source = { source: run.dir };

  await put(
    "text_encoder/model.onnx",
    await exportClipText(clip.params, clip.config, {
      idsDtype: opts.idsDtype,
      metadata: source,
    }),
  );
  await put("text_encoder/config.json", {
    architectures: ["XgenKitClipTextModel"],
    model_type: "xgen_kit_clip_text",
    vocab_size: clip.config.vocabSize,
    hidden_size: clip.config.textWidth,
    num_hidden_layers: clip.config.textLayers,
    num_attention_heads: clip.config.textHeads,
    max_position_embeddings: clip.config.contextLength,
    projection_dim: clip.config.embedDim,
    eos_token_id: clip.config.eosTokenId ?? 3,
    xgen_kit: { config: clip.config },
  });

  await put(
    "unet/model.onnx",
    await exportUnet(unet.params, unet.config, {
      timestepDtype: opts.timestepDtype,
      metadata: source,
    }),
  );
  await put("unet/config.json", {
    _class_name: "UNet2DConditionModel",
    sample_size: latentSize,
    in_channels: unet.config.inChannels,
    out_channels: unet.config.outChannels,
    block_out_channels: unet.config.blockChannels,
    layers_per_block: unet.config.layersPerBlock,
    cross_attention_dim: unet.config.contextDim,
    norm_num_groups: unet.config.groupNormGroups,
    use_linear_projection: unet.config.useLinearProjection,
    xgen_kit: { config: unet.config },
  });

  const vaeConfig = {
    _class_name: "AutoencoderKL",
    in_channels: ae.config.imageChannels,
    out_channels: ae.config.imageChannels,
    latent_channels: ae.config.latentChannels,
    block_out_channels: ae.config.blockChannels,
    layers_per_block: ae.config.layersPerBlock,
    norm_num_groups: ae.config.groupNormGroups,
    sample_size: run.imageSize,
    scaling_factor: ae.scalingFactor,
    xgen_kit: { config: ae.config },
  };
  await put(
    "vae_encoder/model.onnx",
    await exportAutoencoderEncoder(ae.params, ae.config, { metadata: source }),
  );
  await put("vae_encoder/config.json", vaeConfig);
  await put(
    "vae_decoder/model.onnx",
    await exportAutoencoderDecoder(ae.params, ae.config, { layout: "NCHW", metadata: source }),
  );
  await put("vae_decoder/config.json", vaeConfig);

  await put(
    "image_encoder/model.onnx",
    await exportClipImage(clip.params, clip.config, { metadata: source }),
  );
  await put("image_encoder/config.json", {
    architectures: ["XgenKitClipVisionModel"],
    model_type: "xgen_kit_clip_vision",
    image_size: clip.config.imageSize,
    projection_dim: clip.config.embedDim,
    pixel_range: [-1, 1],
    xgen_kit: { config: clip.config },
  });

  await put(`tokenizer/${KIT_TOKENIZER_FILE}`, { ...clip.tokenizer.toJSON() });
  await put("tokenizer/tokenizer_config.json", {
    tokenizer_class: "WordTokenizer",
    model_max_length: clip.tokenizer.contextLength,
    file: KIT_TOKENIZER_FILE,
  });

  const scheduler = toDiffusersConfig(run.schedule.config);
  await put("scheduler/scheduler_config.json", scheduler);

  await put("model_index.json", {
    _class_name: "StableDiffusionPipeline",
    _xgen_kit: {
      format: KIT_ONNX_FORMAT,
      source: run.dir,
      imageSize: run.imageSize,
      scalingFactor: ae.scalingFactor,
      layout: "NCHW",
    },
    scheduler: ["diffusers", scheduler._class_name as string],
    text_encoder: ["xgen_kit", "ClipTextModel"],
    tokenizer: ["xgen_kit", "WordTokenizer"],
    unet: ["xgen_kit", "UNet2DConditionModel"],
    vae_encoder: ["xgen_kit", "AutoencoderEncoder"],
    vae_decoder: ["xgen_kit", "AutoencoderDecoder"],
    image_encoder: ["xgen_kit", "ClipVisionModel"],
  });
  return { dir: outDir, files, imageSize: run.imageSize, scalingFactor: ae.scalingFactor };
}
