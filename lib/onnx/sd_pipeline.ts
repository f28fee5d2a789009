/**
 * Text-to-image and image-to-image through ONNX models in the Hugging Face Optimum Stable
 * Diffusion folder layout: a kit export (`exportRun`) or a real Optimum SD export
 * (`text_encoder/`, `unet/`, `vae_encoder/`, `vae_decoder/`, `tokenizer/` with `vocab.json` +
 * `merges.txt` or `tokenizer.json`, `scheduler/scheduler_config.json`), driven by the kit's samplers.
 *
 * Names, element types and shapes of the models' inputs and outputs are read from the sessions,
 * and checked against each other when the folder is loaded (latent channels, text width, context
 * length), so a model that does not fit fails there, naming the input and the expected shape.
 *
 * The sampler state is the kit's NHWC latent (`[h, w, c]` per image) and initial noise is drawn
 * exactly as `generate` (lib/recipe/generate.ts) draws it, through lib/diffusion's `initialNoise`
 * (one stream per prompt and sample, sampler seed `seed + batch start`), so one seed gives the
 * same images through TensorFlow.js and ONNX; `(o) => txt2img(pipe, o)` is an `ImageGenerator`.
 * The latents are transposed to NCHW only at the UNet and VAE boundaries.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadOnnxPipeline, txt2img } from "./sd_pipeline.ts";
 *
 * // A tiny 64 px SD folder from the real exporter (e.g. "exports/default" for a trained run).
 * const pipe = await loadOnnxPipeline("tests/fixtures/tiny_sd/fp32_scalar_t", { threads: 1, executionProviders: ["cpu"] });
 * const images = await txt2img(pipe, { prompts: ["a red circle"], n: 2, guidance: 4, steps: 2, seed: 0 });
 * assert.deepEqual(images.map((im) => [im.width, im.height]), [[64, 64], [64, 64]]);
 * await pipe.release();
 * ```
 * @module
 */
import { readJsonObjectIfAny } from "../util/json_file.ts";
import {
  classifierFreeGuidance,
  getSampler,
  initialNoise,
  makeSchedule,
  type ModelFn,
  type NoiseSchedule,
  readDiffusersConfig,
  samplerForClass,
  type SamplerName,
  type ScheduleConfig,
} from "../diffusion/mod.ts";
import { CLIP_BPE_FILES, ClipBpeTokenizer, hasClipBpeFiles } from "../models/clip_bpe_tokenizer.ts";
import { WordTokenizer } from "../models/tokenizer.ts";
import type { RgbImage } from "../plot/mod.ts";
import { type OnnxIoInfo, type OnnxSession, openSession } from "./session.ts";
import { KIT_ONNX_FORMAT, KIT_TOKENIZER_FILE } from "./sd_folder.ts";
import type { OnnxTypedArray } from "./writer.ts";
import { float16BitsToFloat32, float32ToFloat16Bits } from "./float16.ts";

/** Options of {@link loadOnnxPipeline}. */
export interface LoadOnnxPipelineOptions {
  /** Intra-op threads per session (default: one per core). */
  threads?: number;
  /** Execution providers (default "auto": CUDA when available, else CPU). */
  executionProviders?: "auto" | readonly string[];
  /**
   * Latent scaling factor; default `scaling_factor` of `vae_decoder/config.json` (then
   * `vae_encoder/config.json`), else 0.18215 (diffusers' AutoencoderKL default, SD v1's value).
   */
  scalingFactor?: number;
  /** Where onnxruntime's CUDA fallback notice goes (default `console.warn`). */
  log?: (line: string) => void;
}

/** A tokenizer as the pipeline uses it. */
export interface PipelineTokenizer {
  /** "word" (the kit's WordTokenizer) or "clip_bpe" (CLIP's BPE from vocab.json + merges.txt or tokenizer.json). */
  kind: "word" | "clip_bpe";
  /** Ids per text. */
  contextLength: number;
  /** Row-major `[texts, contextLength]` ids. */
  encodeBatch(texts: readonly string[]): Int32Array;
}

/** Where the pipeline reads and feeds each model (resolved from the sessions). */
export interface OnnxPipelineIo {
  /** Text encoder: ids input dtype ("int32" or "int64") and the hidden-state output. */
  text: { ids: string; idsDtype: string; hidden: string };
  /**
   * UNet: input names; float inputs' dtype ("float32" or "float16"); the timestep's dtype
   * ("int64", "int32", "float32", "float16" or "float64") and rank (1: `[batch]` or `[1]`, as SD
   * exports before Optimum 1.24; 0: one scalar, as Optimum >= 1.24 and inputs declared without a
   * shape); whether one timestep is fed for the whole batch (`[1]` or rank 0).
   */
  unet: {
    sample: string;
    sampleDtype: string;
    timestep: string;
    timestepDtype: string;
    timestepRank: 0 | 1;
    timestepScalarBatch: boolean;
    context: string;
    contextDtype: string;
    out: string;
  };
  /** VAE decoder input (and its dtype, "float32" or "float16") and output. */
  decoder: { latent: string; latentDtype: string; image: string };
  /** VAE encoder input (and its dtype) and output, null when the folder has none. */
  encoder: { image: string; imageDtype: string; latent: string } | null;
}

/** A loaded ONNX Stable Diffusion folder. Call {@link OnnxPipeline.release} when done. */
export interface OnnxPipeline {
  /** The folder. */
  dir: string;
  /** "xgen-kit" for a kit export (model_index.json says so), else "optimum". */
  source: "xgen-kit" | "optimum";
  textEncoder: OnnxSession;
  unet: OnnxSession;
  vaeDecoder: OnnxSession;
  /** Null when the folder has no `vae_encoder/model.onnx` (img2img then fails). */
  vaeEncoder: OnnxSession | null;
  tokenizer: PipelineTokenizer;
  /** The folder's `scheduler/scheduler_config.json`. */
  scheduleConfig: ScheduleConfig;
  schedule: NoiseSchedule;
  /** Sampler of the scheduler's `_class_name`, or null when the kit has none for it. */
  defaultScheduler: SamplerName | null;
  /** Latents fed to the UNet are `scalingFactor *` the VAE's. */
  scalingFactor: number;
  /** Image side / latent side (2^(levels-1) of the VAE). */
  vaeScaleFactor: number;
  latentChannels: number;
  /** Width of the text states, when the models declare or configure it. */
  textWidth: number | null;
  /**
   * Context tokens per prompt the UNet sees: the tokenizer's length, or what the text encoder's
   * output declares (twice that for a kit run trained with `states+tokens` or `states+words`).
   */
  contextTokens: number;
  /** Default image size (from `unet/config.json` sample_size or fixed UNet dims), or null. */
  height: number | null;
  width: number | null;
  /** Resolved input/output names and types. */
  io: OnnxPipelineIo;
  /** Free every session. */
  release(): Promise<void>;
}

const PARTS = {
  text: "text_encoder/model.onnx",
  unet: "unet/model.onnx",
  decoder: "vae_decoder/model.onnx",
  encoder: "vae_encoder/model.onnx",
  scheduler: "scheduler/scheduler_config.json",
} as const;

const LAYOUT = "text_encoder/, unet/, vae_decoder/, vae_encoder/, tokenizer/, scheduler/";

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

const posInt = (v: unknown): v is number => Number.isInteger(v) && (v as number) > 0;
const fixed = (d: number | string | undefined): number | null =>
  typeof d === "number" && d > 0 ? d : null;
const fmt = (shape: readonly (number | string)[] | null) =>
  shape === null ? "[?]" : `[${shape.join(", ")}]`;

async function loadTokenizer(
  dir: string,
  index: Record<string, unknown>,
  textIds: OnnxIoInfo | undefined,
): Promise<PipelineTokenizer> {
  const tdir = `${dir}/tokenizer`;
  const cls = index.tokenizer;
  const kitFile = `${tdir}/${KIT_TOKENIZER_FILE}`;
  const saysKit = Array.isArray(cls) && cls[0] === "xgen_kit";
  const hasBpe = await hasClipBpeFiles(tdir);
  if (saysKit || (!hasBpe && (await exists(kitFile)))) {
    if (!(await exists(kitFile))) {
      throw new Error(`${kitFile}: missing (model_index.json names the kit's WordTokenizer)`);
    }
    const tok = await WordTokenizer.load(kitFile);
    return {
      kind: "word",
      contextLength: tok.contextLength,
      encodeBatch: (texts) => tok.encodeBatch(texts),
    };
  }
  if (!hasBpe) {
    throw new Error(
      `${tdir}: no tokenizer files; expected ${CLIP_BPE_FILES} or the kit's ${KIT_TOKENIZER_FILE}`,
    );
  }
  const cfg = await readJsonObjectIfAny(`${tdir}/tokenizer_config.json`);
  // HF stores "no limit" as a huge model_max_length; the text encoder's sequence dim then rules.
  const maxLen = posInt(cfg.model_max_length) && cfg.model_max_length <= 4096
    ? cfg.model_max_length
    : fixed(textIds?.shape?.[1]) ?? 77;
  const pad = cfg.pad_token;
  const padToken = typeof pad === "string"
    ? pad
    : pad && typeof pad === "object" && typeof (pad as { content?: unknown }).content === "string"
    ? (pad as { content: string }).content
    : undefined;
  const tok = await ClipBpeTokenizer.load(tdir, { contextLength: maxLen, padToken });
  return {
    kind: "clip_bpe",
    contextLength: tok.contextLength,
    encodeBatch: (texts) => tok.encodeBatch(texts).ids,
  };
}

function findInput(s: OnnxSession, name: string, part: string, expected: string): OnnxIoInfo {
  const i = s.inputs.find((x) => x.name === name);
  if (!i) {
    throw new Error(
      `${part}: has no input "${name}" (expected ${expected}); its inputs are ${
        s.inputs.map((x) => `"${x.name}" ${x.dtype} ${fmt(x.shape)}`).join(", ")
      }`,
    );
  }
  return i;
}

function onlyInputs(s: OnnxSession, part: string, names: string[]): void {
  const extra = s.inputs.filter((i) => !names.includes(i.name));
  if (extra.length) {
    throw new Error(
      `${part}: input ${
        extra.map((i) => `"${i.name}" ${i.dtype} ${fmt(i.shape)}`).join(", ")
      } is not one this pipeline feeds (it feeds ${names.map((n) => `"${n}"`).join(", ")})`,
    );
  }
}

/** The first of `preferred` (in that order) the session outputs, else its first output. */
function pickOutput(s: OnnxSession, preferred: string[]): OnnxIoInfo {
  for (const name of preferred) {
    const o = s.outputs.find((o) => o.name === name);
    if (o) return o;
  }
  return s.outputs[0];
}

/** Throw naming the input, its declared type and what the pipeline needs. */
function misfit(part: string, io: OnnxIoInfo, expected: string, why: string): never {
  throw new Error(
    `${part}: input "${io.name}" expects ${io.dtype} ${fmt(io.shape)}, but the pipeline feeds ` +
      `${expected} (${why})`,
  );
}

/** Check a float input's dtype (float32 or float16) and rank; returns the dtype to feed. */
function checkRank(part: string, io: OnnxIoInfo, rank: number, expected: string): string {
  if (io.dtype !== "float32" && io.dtype !== "float16" && io.dtype !== "unknown") {
    misfit(part, io, `float32 or float16 ${expected}`, "other element types are not supported");
  }
  const dtype = io.dtype === "float16" ? "float16" : "float32";
  if (io.shape !== null && io.shape.length !== rank) {
    misfit(part, io, `${dtype} ${expected}`, `a rank-${rank} tensor`);
  }
  return dtype;
}

/** Data for a float input of `dtype`: float32 values, or float16 bits. */
function floatFeed(x: Float32Array, dtype: string): OnnxTypedArray {
  return dtype === "float16" ? float32ToFloat16Bits(x) : x;
}

/**
 * Load an ONNX Stable Diffusion folder (Optimum layout): a kit export or a real SD export. The
 * VAE encoder is optional (only img2img needs it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadOnnxPipeline } from "./sd_pipeline.ts";
 *
 * const pipe = await loadOnnxPipeline("tests/fixtures/tiny_sd/fp32_scalar_t", { executionProviders: ["cpu"] });
 * assert.equal(pipe.io.unet.timestepDtype, "float32"); // "int64" for SD v1's Optimum export
 * assert.deepEqual([pipe.width, pipe.height], [64, 64]);
 * await pipe.release();
 * ```
 */
export async function loadOnnxPipeline(
  dir: string,
  opts: LoadOnnxPipelineOptions = {},
): Promise<OnnxPipeline> {
  if (!(await exists(dir))) throw new Error(`${dir}: ONNX pipeline folder does not exist`);
  for (const part of [PARTS.text, PARTS.unet, PARTS.decoder, PARTS.scheduler]) {
    if (!(await exists(`${dir}/${part}`))) {
      throw new Error(
        `${dir}/${part}: missing; an ONNX Stable Diffusion folder has ${LAYOUT} (Optimum layout)`,
      );
    }
  }
  const index = await readJsonObjectIfAny(`${dir}/model_index.json`);
  const kit = (index._xgen_kit as { format?: string } | undefined)?.format === KIT_ONNX_FORMAT;
  const unetCfg = await readJsonObjectIfAny(`${dir}/unet/config.json`);
  const decCfg = await readJsonObjectIfAny(`${dir}/vae_decoder/config.json`);
  const encCfg = await readJsonObjectIfAny(`${dir}/vae_encoder/config.json`);
  const textCfg = await readJsonObjectIfAny(`${dir}/text_encoder/config.json`);
  const scheduleConfig = await readDiffusersConfig(`${dir}/${PARTS.scheduler}`);
  const schedule = makeSchedule(scheduleConfig);

  const sessionOpts = (part: string) => ({
    name: `${dir}/${part}`,
    threads: opts.threads,
    executionProviders: opts.executionProviders,
    log: opts.log,
  });
  const opened: OnnxSession[] = [];
  const open = async (part: string) => {
    const s = await openSession(`${dir}/${part}`, sessionOpts(part));
    opened.push(s);
    return s;
  };
  try {
    const textEncoder = await open(PARTS.text);
    const unet = await open(PARTS.unet);
    const vaeDecoder = await open(PARTS.decoder);
    const vaeEncoder = (await exists(`${dir}/${PARTS.encoder}`)) ? await open(PARTS.encoder) : null;
    const tP = `${dir}/${PARTS.text}`, uP = `${dir}/${PARTS.unet}`;
    const dP = `${dir}/${PARTS.decoder}`, eP = `${dir}/${PARTS.encoder}`;

    // Text encoder: input_ids -> the UNet's context: `encoder_hidden_states` where the export has
    // one (kit runs trained on another text context), else SD's `last_hidden_state`.
    const ids = findInput(textEncoder, "input_ids", tP, "int32 or int64 [batch, sequence]");
    onlyInputs(textEncoder, tP, ["input_ids"]);
    const tokenizer = await loadTokenizer(dir, index, ids);
    const T = tokenizer.contextLength;
    if (ids.dtype !== "int32" && ids.dtype !== "int64") {
      misfit(tP, ids, `int32 or int64 [batch, ${T}]`, "token ids");
    }
    if (ids.shape !== null && (ids.shape.length !== 2 || (fixed(ids.shape[1]) ?? T) !== T)) {
      misfit(tP, ids, `${ids.dtype} [batch, ${T}]`, `the tokenizer gives ${T} ids per text`);
    }
    const hidden = pickOutput(textEncoder, ["encoder_hidden_states", "last_hidden_state"]);
    if (hidden.shape !== null && hidden.shape.length !== 3) {
      throw new Error(
        `${tP}: output "${hidden.name}" is ${fmt(hidden.shape)}; expected the UNet's context ` +
          `[batch, sequence, width]`,
      );
    }
    const S = fixed(hidden.shape?.[1]) ?? T;
    const textWidth = fixed(hidden.shape?.[2]) ??
      (posInt(textCfg.hidden_size) ? textCfg.hidden_size : null);

    // VAE decoder: latent_sample -> sample; it fixes the latent channels.
    const latentIn = vaeDecoder.inputs.find((i) => i.name === "latent_sample") ??
      vaeDecoder.inputs[0];
    onlyInputs(vaeDecoder, dP, [latentIn.name]);
    const latentDtype = checkRank(dP, latentIn, 4, "[batch, channels, height, width]");
    const unetSample = findInput(unet, "sample", uP, "float32 [batch, channels, height, width]");
    const latentChannels = fixed(latentIn.shape?.[1]) ??
      (posInt(decCfg.latent_channels) ? decCfg.latent_channels : null) ??
      fixed(unetSample.shape?.[1]) ??
      (posInt(unetCfg.in_channels) ? unetCfg.in_channels : 4);

    // UNet: sample, timestep, encoder_hidden_states -> out_sample.
    const tIn = findInput(unet, "timestep", uP, "int64 or float32 [batch], [1] or a scalar");
    const ctxIn = findInput(
      unet,
      "encoder_hidden_states",
      uP,
      `float32 [batch, ${S}, ${textWidth ?? "width"}]`,
    );
    onlyInputs(unet, uP, ["sample", "timestep", "encoder_hidden_states"]);
    const sampleWant = `[batch, ${latentChannels}, height, width]`;
    const sampleDtype = checkRank(uP, unetSample, 4, sampleWant);
    if ((fixed(unetSample.shape?.[1]) ?? latentChannels) !== latentChannels) {
      misfit(uP, unetSample, `${sampleDtype} ${sampleWant}`, `the latent channels of ${dP}`);
    }
    const ctxWant = `[batch, ${S}, ${textWidth ?? "width"}]`;
    const contextDtype = checkRank(uP, ctxIn, 3, ctxWant);
    if (
      (textWidth !== null && (fixed(ctxIn.shape?.[2]) ?? textWidth) !== textWidth) ||
      (fixed(ctxIn.shape?.[1]) ?? S) !== S
    ) {
      misfit(uP, ctxIn, `${contextDtype} ${ctxWant}`, `the ${hidden.name} of ${tP}`);
    }
    if (!["float32", "float16", "float64", "int64", "int32"].includes(tIn.dtype)) {
      misfit(uP, tIn, "int64, int32, float32, float16 or float64 [batch] or a scalar", "timesteps");
    }
    if (tIn.shape !== null && tIn.shape.length > 1) {
      misfit(uP, tIn, `${tIn.dtype} [batch]`, "one timestep per sample");
    }
    const unetOut = pickOutput(unet, ["out_sample"]);
    if ((fixed(unetOut.shape?.[1]) ?? latentChannels) !== latentChannels) {
      throw new Error(
        `${uP}: output "${unetOut.name}" is ${fmt(unetOut.shape)}; expected ` +
          `[batch, ${latentChannels}, height, width] (a prediction of the latent's shape)`,
      );
    }

    // VAE encoder (optional): sample -> latent_parameters (mean, logvar) or latent_sample.
    let encoderIo: OnnxPipelineIo["encoder"] = null;
    if (vaeEncoder) {
      const imgIn = vaeEncoder.inputs.find((i) => i.name === "sample") ?? vaeEncoder.inputs[0];
      onlyInputs(vaeEncoder, eP, [imgIn.name]);
      const imageDtype = checkRank(eP, imgIn, 4, "[batch, 3, height, width]");
      if ((fixed(imgIn.shape?.[1]) ?? 3) !== 3) {
        misfit(eP, imgIn, `${imageDtype} [batch, 3, height, width]`, "RGB images");
      }
      const latOut = pickOutput(vaeEncoder, ["latent_parameters", "latent_sample"]);
      encoderIo = { image: imgIn.name, imageDtype, latent: latOut.name };
    }

    const blocks = Array.isArray(decCfg.block_out_channels)
      ? decCfg.block_out_channels
      : Array.isArray(encCfg.block_out_channels)
      ? encCfg.block_out_channels
      : null;
    const vaeScaleFactor = blocks && blocks.length > 0 ? 2 ** (blocks.length - 1) : 8;
    const sampleSize = unetCfg.sample_size;
    const [lh, lw] = posInt(sampleSize)
      ? [sampleSize, sampleSize]
      : Array.isArray(sampleSize) && sampleSize.length === 2 && sampleSize.every(posInt)
      ? sampleSize as number[]
      : [fixed(unetSample.shape?.[2]), fixed(unetSample.shape?.[3])];
    const cfgScale = typeof decCfg.scaling_factor === "number"
      ? decCfg.scaling_factor
      : typeof encCfg.scaling_factor === "number"
      ? encCfg.scaling_factor
      : 0.18215;
    const scalingFactor = opts.scalingFactor ?? cfgScale;
    if (!(scalingFactor > 0) || !Number.isFinite(scalingFactor)) {
      throw new Error(
        `${dir}: latent scaling factor must be a positive number, got ${scalingFactor}`,
      );
    }
    // onnxruntime reports a rank-0 input and one declared without a shape alike (shape null):
    // both are fed one scalar, which Optimum >= 1.24's float32 timestep is.
    const timestepRank = tIn.shape === null || tIn.shape.length === 0 ? 0 : 1;
    const fixedT = timestepRank === 0 || (tIn.shape?.length === 1 && tIn.shape[0] === 1);
    return {
      dir,
      source: kit ? "xgen-kit" : "optimum",
      textEncoder,
      unet,
      vaeDecoder,
      vaeEncoder,
      tokenizer,
      scheduleConfig,
      schedule,
      defaultScheduler: samplerForClass(scheduleConfig.className ?? "") ?? null,
      scalingFactor,
      vaeScaleFactor,
      latentChannels,
      textWidth,
      contextTokens: S,
      height: lh === null ? null : lh * vaeScaleFactor,
      width: lw === null ? null : lw * vaeScaleFactor,
      io: {
        text: { ids: ids.name, idsDtype: ids.dtype, hidden: hidden.name },
        unet: {
          sample: unetSample.name,
          sampleDtype,
          timestep: tIn.name,
          timestepDtype: tIn.dtype,
          timestepRank,
          timestepScalarBatch: fixedT,
          context: ctxIn.name,
          contextDtype,
          out: unetOut.name,
        },
        decoder: {
          latent: latentIn.name,
          latentDtype,
          image: pickOutput(vaeDecoder, ["sample"]).name,
        },
        encoder: encoderIo,
      },
      release: async () => {
        for (const s of opened) await s.release();
      },
    };
  } catch (e) {
    for (const s of opened) await s.release().catch(() => {});
    throw e;
  }
}

/** Options shared by {@link txt2img} and {@link img2img}. */
export interface OnnxSampleOptions {
  prompts: string[];
  /** Images per prompt (default 1). */
  n?: number;
  /** Classifier-free guidance scale (1 = conditional only, one UNet batch). */
  guidance: number;
  steps: number;
  /** Sampler: ddpm, ddim, pndm, euler, dpmpp_2m (default: the folder scheduler's class). */
  scheduler?: string;
  seed: number;
  /** Text of the unconditional half (default "", as the kit trains and SD samples). */
  negativePrompt?: string;
  /** Images per UNet batch (default 32, as `generate`). */
  batchSize?: number;
  /** Called after each finished batch with images done and total. */
  onProgress?: (done: number, total: number) => void;
}

/** Options of {@link txt2img}. */
export interface Txt2ImgOptions extends OnnxSampleOptions {
  /** Image height (default: the folder's). */
  height?: number;
  /** Image width (default: the folder's). */
  width?: number;
  /**
   * Start latents instead of `initialNoise` (as diffusers' `latents=`): flat NHWC
   * `[prompts * n, h, w, c]` in job order (prompt-major), the kit's latent layout.
   */
  latents?: Float32Array;
}

/** Options of {@link img2img}. */
export interface Img2ImgOptions extends OnnxSampleOptions {
  /** Start images: one per prompt, or one for every prompt; all the same size. */
  images: RgbImage[];
  /** How much to change them, in (0, 1]: diffusers' img2img strength. */
  strength: number;
}

/** `[n, h, w, c]` -> `[n, c, h, w]`. */
function nhwcToNchw(x: ArrayLike<number>, n: number, h: number, w: number, c: number) {
  const out = new Float32Array(n * h * w * c);
  for (let b = 0; b < n; b++) {
    for (let y = 0; y < h; y++) {
      for (let xx = 0; xx < w; xx++) {
        const src = ((b * h + y) * w + xx) * c;
        for (let k = 0; k < c; k++) out[((b * c + k) * h + y) * w + xx] = x[src + k];
      }
    }
  }
  return out;
}

/** `[n, c, h, w]` -> `[n, h, w, c]`. */
function nchwToNhwc(x: ArrayLike<number>, n: number, c: number, h: number, w: number) {
  const out = new Float32Array(n * h * w * c);
  for (let b = 0; b < n; b++) {
    for (let k = 0; k < c; k++) {
      for (let y = 0; y < h; y++) {
        const src = ((b * c + k) * h + y) * w;
        for (let xx = 0; xx < w; xx++) out[((b * h + y) * w + xx) * c + k] = x[src + xx];
      }
    }
  }
  return out;
}

/** An output's values as float32 (float16 outputs converted). */
function float32Data(part: string, name: string, t: { type: string; data: unknown }): Float32Array {
  if (t.data instanceof Float32Array) return t.data;
  if (t.type === "float16") {
    // onnxruntime gives float16 data as raw bits (Uint16Array), or a Float16Array where one exists.
    if (t.data instanceof Uint16Array) return float16BitsToFloat32(t.data);
    if (ArrayBuffer.isView(t.data)) {
      return Float32Array.from(t.data as unknown as ArrayLike<number>);
    }
  }
  throw new Error(`${part}: output "${name}" is ${t.type}; expected float32 or float16`);
}

/**
 * The UNet context `[texts, S, D]` (flat) of the folder's text encoder for each text, in batches of
 * 32: `S` is `pipe.contextTokens`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodePrompts, loadOnnxPipeline } from "./sd_pipeline.ts";
 *
 * const pipe = await loadOnnxPipeline("tests/fixtures/tiny_sd/fp32_scalar_t", { threads: 1, executionProviders: ["cpu"] });
 * const { shape } = await encodePrompts(pipe, ["", "a red circle"]);
 * assert.deepEqual(shape, [2, 77, 32]); // [texts, tokens, width]
 * await pipe.release();
 * ```
 */
export async function encodePrompts(
  pipe: OnnxPipeline,
  texts: readonly string[],
): Promise<{ states: Float32Array; shape: [number, number, number] }> {
  const T = pipe.tokenizer.contextLength, S = pipe.contextTokens;
  const { ids: idsName, idsDtype, hidden } = pipe.io.text;
  const parts: Float32Array[] = [];
  let D = 0;
  for (let i = 0; i < texts.length; i += 32) {
    const part = texts.slice(i, i + 32);
    const ids = pipe.tokenizer.encodeBatch(part);
    const data: OnnxTypedArray = idsDtype === "int64"
      ? BigInt64Array.from(ids, (v) => BigInt(v))
      : ids;
    const out = (await pipe.textEncoder.run({ [idsName]: { data, shape: [part.length, T] } }, [
      hidden,
    ]))[hidden];
    if (out.dims.length !== 3 || out.dims[1] !== S) {
      throw new Error(
        `${pipe.textEncoder.name}: output "${hidden}" is [${out.dims}], expected [${part.length}, ${S}, width]`,
      );
    }
    D = out.dims[2];
    parts.push(float32Data(pipe.textEncoder.name, hidden, out));
  }
  const states = new Float32Array(texts.length * S * D);
  let off = 0;
  for (const p of parts) {
    states.set(p, off);
    off += p.length;
  }
  return { states, shape: [texts.length, S, D] };
}

/** The UNet on `n` NHWC latents with `n` contexts (flat `[n, T, D]`), NHWC prediction back. */
function unetCall(pipe: OnnxPipeline, dims: [number, number, number], T: number, D: number) {
  const [h, w, c] = dims;
  const u = pipe.io.unet;
  return async (x: Float32Array, t: number, context: Float32Array, n: number) => {
    const k = u.timestepScalarBatch ? 1 : n;
    // numpy's astype(int64), which diffusers' ONNX pipelines use, truncates fractional timesteps.
    const tData: OnnxTypedArray = u.timestepDtype === "int64"
      ? new BigInt64Array(k).fill(BigInt(Math.trunc(t)))
      : u.timestepDtype === "int32"
      ? new Int32Array(k).fill(Math.trunc(t))
      : u.timestepDtype === "float64"
      ? new Float64Array(k).fill(t)
      : floatFeed(new Float32Array(k).fill(t), u.timestepDtype);
    const out = (await pipe.unet.run({
      [u.sample]: {
        data: floatFeed(nhwcToNchw(x, n, h, w, c), u.sampleDtype),
        shape: [n, c, h, w],
      },
      [u.timestep]: { data: tData, shape: u.timestepRank === 0 ? [] : [k] },
      [u.context]: { data: floatFeed(context, u.contextDtype), shape: [n, T, D] },
    }, [u.out]))[u.out];
    if (out.dims.join(",") !== [n, c, h, w].join(",")) {
      throw new Error(
        `${pipe.unet.name}: output "${u.out}" is [${out.dims}], expected [${[n, c, h, w]}]`,
      );
    }
    return nchwToNhwc(float32Data(pipe.unet.name, u.out, out), n, c, h, w);
  };
}

/** Decode scaled NHWC latents to RGB images, as `decodeLatents` in `lib/recipe/generate.ts`. */
async function decode(
  pipe: OnnxPipeline,
  z: Float32Array,
  n: number,
  dims: [number, number, number],
): Promise<RgbImage[]> {
  const [h, w, c] = dims;
  const unscaled = new Float32Array(z.length);
  for (let i = 0; i < z.length; i++) unscaled[i] = z[i] / pipe.scalingFactor;
  const { latent, latentDtype, image } = pipe.io.decoder;
  const out = (await pipe.vaeDecoder.run({
    [latent]: {
      data: floatFeed(nhwcToNchw(unscaled, n, h, w, c), latentDtype),
      shape: [n, c, h, w],
    },
  }, [image]))[image];
  const [on, oc, oh, ow] = out.dims;
  if (out.dims.length !== 4 || on !== n || oc !== 3) {
    throw new Error(
      `${pipe.vaeDecoder.name}: output "${image}" is [${out.dims}], expected [${n}, 3, H, W]`,
    );
  }
  const px = nchwToNhwc(float32Data(pipe.vaeDecoder.name, image, out), n, 3, oh, ow);
  const per = oh * ow * 3;
  return Array.from({ length: n }, (_, i) => {
    const data = new Uint8Array(per);
    for (let k = 0; k < per; k++) {
      // float32 arithmetic like tfjs' clip((x + 1) * 127.5, 0, 255), then round.
      const v = Math.fround(Math.fround(px[i * per + k] + 1) * 127.5);
      data[k] = Math.round(Math.min(255, Math.max(0, v)));
    }
    return { data, width: ow, height: oh };
  });
}

function checkCommon(o: OnnxSampleOptions, what: string): number {
  if (!Array.isArray(o.prompts) || o.prompts.length === 0) {
    throw new Error(`${what}: prompts must be a non-empty array of strings`);
  }
  const n = o.n ?? 1;
  if (!posInt(n)) throw new Error(`${what}: n must be a positive integer, got ${n}`);
  if (!Number.isFinite(o.guidance)) {
    throw new Error(`${what}: guidance must be a finite number, got ${o.guidance}`);
  }
  if (!posInt(o.steps)) {
    throw new Error(`${what}: steps must be a positive integer, got ${o.steps}`);
  }
  if (o.batchSize !== undefined && !posInt(o.batchSize)) {
    throw new Error(`${what}: batchSize must be a positive integer, got ${o.batchSize}`);
  }
  return n;
}

function samplerName(pipe: OnnxPipeline, o: OnnxSampleOptions, what: string): string {
  const name = o.scheduler ?? pipe.defaultScheduler;
  if (!name) {
    throw new Error(
      `${what}: ${pipe.dir}/${PARTS.scheduler} names ${pipe.scheduleConfig.className}, which the ` +
        `kit has no sampler for; pass scheduler (ddpm, ddim, pndm, euler, dpmpp_2m)`,
    );
  }
  return name;
}

/** One sampling run over jobs (prompt, sample) with per-job start latents. */
async function sampleJobs(
  pipe: OnnxPipeline,
  o: OnnxSampleOptions,
  dims: [number, number, number],
  n: number,
  start: (p: number, k: number) => { x: Float32Array; noise?: Float32Array },
  strength: number | undefined,
  what: string,
): Promise<RgbImage[]> {
  const sampler = getSampler(samplerName(pipe, o, what));
  const per = dims[0] * dims[1] * dims[2];
  const jobs: [number, number][] = [];
  o.prompts.forEach((_, p) => {
    for (let k = 0; k < n; k++) jobs.push([p, k]);
  });
  const { states, shape } = await encodePrompts(pipe, [o.negativePrompt ?? "", ...o.prompts]);
  const [, T, D] = shape;
  const ctxPer = T * D;
  const call = unetCall(pipe, dims, T, D);
  const bs = o.batchSize ?? 32;
  const images: RgbImage[] = [];
  for (let i = 0; i < jobs.length; i += bs) {
    const part = jobs.slice(i, i + bs), b = part.length;
    const x = new Float32Array(b * per);
    const noise = strength === undefined ? undefined : new Float32Array(b * per);
    // Context layout: [uncond x b, cond x b], matching classifierFreeGuidance's [uncond, cond].
    const ctx = new Float32Array(2 * b * ctxPer);
    part.forEach(([p, k], j) => {
      const s = start(p, k);
      x.set(s.x, j * per);
      if (noise && s.noise) noise.set(s.noise, j * per);
      ctx.set(states.subarray(0, ctxPer), j * ctxPer);
      ctx.set(states.subarray((p + 1) * ctxPer, (p + 2) * ctxPer), (b + j) * ctxPer);
    });
    const model: ModelFn = o.guidance === 1
      ? (xs, t) => call(xs, t, ctx.subarray(b * ctxPer), b)
      : classifierFreeGuidance((x2, t) => call(x2, t, ctx, 2 * b), o.guidance);
    const z = await sampler(model, x, pipe.schedule, {
      steps: o.steps,
      seed: o.seed + i,
      ...(strength === undefined ? {} : { strength, noise }),
    });
    images.push(...await decode(pipe, z, b, dims));
    o.onProgress?.(images.length, jobs.length);
  }
  return images;
}

function latentDims(pipe: OnnxPipeline, height: number, width: number, what: string) {
  const f = pipe.vaeScaleFactor;
  if (!posInt(height) || !posInt(width) || height % f !== 0 || width % f !== 0) {
    throw new Error(
      `${what}: image size ${height}x${width} must be positive multiples of the VAE factor ${f}`,
    );
  }
  const dims: [number, number, number] = [height / f, width / f, pipe.latentChannels];
  const shape = pipe.unet.inputs.find((i) => i.name === pipe.io.unet.sample)?.shape;
  const [fh, fw] = [fixed(shape?.[2]), fixed(shape?.[3])];
  if ((fh !== null && fh !== dims[0]) || (fw !== null && fw !== dims[1])) {
    throw new Error(
      `${what}: ${pipe.unet.name}: input "${pipe.io.unet.sample}" expects float32 ${
        fmt(shape ?? null)
      }, but ${height}x${width} images need latents [batch, ${dims[2]}, ${dims[0]}, ${dims[1]}]`,
    );
  }
  return dims;
}

/**
 * Generate `n` images per prompt (prompt-major order) with the folder's models and scheduler
 * config; the same seed gives the same images as `generate` on the run the folder was exported
 * from.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadOnnxPipeline, type Txt2ImgOptions, txt2img } from "./sd_pipeline.ts";
 *
 * const pipe = await loadOnnxPipeline("tests/fixtures/tiny_sd/fp32_scalar_t", { threads: 1, executionProviders: ["cpu"] });
 * const o: Txt2ImgOptions = { prompts: ["a red circle"], n: 2, guidance: 4, steps: 3, scheduler: "dpmpp_2m", seed: 0 };

 * const [a] = await txt2img(pipe, o);
 * const [b] = await txt2img(pipe, o);
 * assert.deepEqual(a.data, b.data); // same seed, same image
 * await pipe.release();
 * ```
 */
export async function txt2img(pipe: OnnxPipeline, o: Txt2ImgOptions): Promise<RgbImage[]> {
  const what = "txt2img";
  const n = checkCommon(o, what);
  const height = o.height ?? pipe.height, width = o.width ?? pipe.width;
  if (height === null || width === null) {
    throw new Error(
      `${what}: ${pipe.dir} does not say its image size (no unet/config.json sample_size, no ` +
        `fixed UNet input size); pass height and width`,
    );
  }
  const dims = latentDims(pipe, height, width, what);
  const per = dims[0] * dims[1] * dims[2];
  const jobs = o.prompts.length * n, given = o.latents;
  if (given !== undefined && (!(given instanceof Float32Array) || given.length !== jobs * per)) {
    throw new Error(
      `${what}: latents must be a Float32Array of ${jobs * per} values (NHWC [${jobs}, ${
        dims.join(", ")
      }]), got ${given instanceof Float32Array ? given.length : typeof given}`,
    );
  }
  return await sampleJobs(
    pipe,
    o,
    dims,
    n,
    (p, k) => ({
      x: given
        ? given.slice((p * n + k) * per, (p * n + k + 1) * per)
        : initialNoise(o.seed, p, k, per),
    }),
    undefined,
    what,
  );
}

/**
 * Scaled NHWC latents of RGB images (the VAE encoder's mean: the first half of
 * `latent_parameters`, or `latent_sample` as older exports give it), flat `[n, h, w, c]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeImages, loadOnnxPipeline } from "./sd_pipeline.ts";
 *
 * const pipe = await loadOnnxPipeline("tests/fixtures/tiny_sd/fp32_scalar_t", { threads: 1, executionProviders: ["cpu"] });
 * const image = { data: new Uint8Array(64 * 64 * 3).fill(128), width: 64, height: 64 };
 * const z = await encodeImages(pipe, [image]);
 * assert.deepEqual(z.shape, [1, 8, 8, 4]); // NHWC latents, 8x smaller
 * await pipe.release();
 * ```
 */
export async function encodeImages(
  pipe: OnnxPipeline,
  images: readonly RgbImage[],
): Promise<{ latents: Float32Array; shape: [number, number, number, number] }> {
  const enc = pipe.vaeEncoder, io = pipe.io.encoder;
  if (!enc || !io) {
    throw new Error(`${pipe.dir}/${PARTS.encoder}: missing; img2img needs the VAE encoder`);
  }
  const { width: W, height: H } = images[0];
  images.forEach((im, i) => {
    if (im.width !== W || im.height !== H || im.data.length !== W * H * 3) {
      throw new Error(
        `img2img: images[${i}] is ${im.width}x${im.height} with ${im.data.length} values; ` +
          `expected ${W}x${H} RGB like images[0]`,
      );
    }
  });
  const n = images.length;
  const px = new Float32Array(n * H * W * 3);
  images.forEach((im, i) => {
    for (let k = 0; k < H * W * 3; k++) px[i * H * W * 3 + k] = im.data[k] / 127.5 - 1;
  });
  const out = (await enc.run({
    [io.image]: { data: floatFeed(nhwcToNchw(px, n, H, W, 3), io.imageDtype), shape: [n, 3, H, W] },
  }, [io.latent]))[io.latent];
  const [on, oc, h, w] = out.dims;
  const L = pipe.latentChannels;
  if (out.dims.length !== 4 || on !== n || (oc !== L && oc !== 2 * L)) {
    throw new Error(
      `${enc.name}: output "${io.latent}" is [${out.dims}], expected [${n}, ${L} or ${
        2 * L
      }, h, w]`,
    );
  }
  const nhwc = nchwToNhwc(float32Data(enc.name, io.latent, out), n, oc, h, w);
  const latents = new Float32Array(n * h * w * L);
  for (let i = 0; i < n * h * w; i++) {
    for (let c = 0; c < L; c++) latents[i * L + c] = nhwc[i * oc + c] * pipe.scalingFactor;
  }
  return { latents, shape: [n, h, w, L] };
}

/**
 * Image-to-image: encode `images` with the VAE encoder (posterior mean), noise them to the
 * diffusers img2img start for `strength`, and denoise with the prompts. Each image's noise is
 * `initialNoise(seed, prompt, sample)`, as txt2img's, so it does not depend on batch composition.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { img2img, loadOnnxPipeline } from "./sd_pipeline.ts";
 *
 * const pipe = await loadOnnxPipeline("tests/fixtures/tiny_sd/fp32_scalar_t", { threads: 1, executionProviders: ["cpu"] });
 * const photo = { data: new Uint8Array(64 * 64 * 3).fill(200), width: 64, height: 64 };
 * const o = { images: [photo], prompts: ["a blue circle"], strength: 0.6, guidance: 4, steps: 5 };
 * const out = await img2img(pipe, { ...o, seed: 0 });
 * assert.deepEqual([out.length, out[0].width, out[0].height], [1, 64, 64]);
 * await pipe.release();

 * ```
 */
export async function img2img(pipe: OnnxPipeline, o: Img2ImgOptions): Promise<RgbImage[]> {
  const what = "img2img";
  const n = checkCommon(o, what);
  if (!Array.isArray(o.images) || (o.images.length !== 1 && o.images.length !== o.prompts.length)) {
    throw new Error(
      `${what}: images must hold 1 image or one per prompt (${o.prompts.length}), got ${o.images?.length}`,
    );
  }
  if (!(o.strength > 0 && o.strength <= 1)) {
    throw new Error(`${what}: strength must be in (0, 1], got ${o.strength}`);
  }
  const dims = latentDims(pipe, o.images[0].height, o.images[0].width, what);
  const { latents, shape } = await encodeImages(pipe, o.images);
  if (shape[1] !== dims[0] || shape[2] !== dims[1]) {
    throw new Error(
      `${what}: the VAE encoder gave ${shape[1]}x${shape[2]} latents, expected ${dims[0]}x${
        dims[1]
      }`,
    );
  }
  const per = dims[0] * dims[1] * dims[2];
  return await sampleJobs(
    pipe,
    o,
    dims,
    n,
    (p, k) => {
      const i = o.images.length === 1 ? 0 : p;
      return {
        x: latents.subarray(i * per, (i + 1) * per),
        noise: initialNoise(o.seed, p, k, per),
      };
    },
    o.strength,
    what,
  );
}
