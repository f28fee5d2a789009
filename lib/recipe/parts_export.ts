/**
 * A complete Stable Diffusion folder from a UNet trained on another folder's frozen parts: the
 * UNet exported to ONNX (`exportUnetGraph`, Optimum's names and NCHW; weights in
 * `unet/model.onnx_data` when past protobuf's 2 GiB, as an SD-sized UNet is) next to copies of the source
 * folder's `vae_encoder`, `vae_decoder`, `text_encoder`, `tokenizer` and `scheduler` (every file
 * in them, external weight files included), and a `model_index.json` diffusers'
 * `OnnxStableDiffusionPipeline` loads (`model_index.ts`). The folder is assembled under a
 * temporary name and renamed into place, so a kill never leaves a half folder at `out`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadOnnxPipeline } from "../onnx/sd_pipeline.ts";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import { exportPartsFolder } from "./parts_export.ts";
 * import { initUnet, UNET_PRESETS } from "../models/unet.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * // An untrained tiny UNet (32-d context, as the tiny SD folder's text encoder gives).
 * const config = UNET_PRESETS.tiny, unet = { config, params: initUnet(config, Rng.stream(0)) };
 * const out = `${await Deno.makeTempDir()}/model`;
 * await exportPartsFolder({ parts: "tests/fixtures/tiny_sd/fp32_scalar_t", out, unet, resolution: 64 });
 * const pipe = await loadOnnxPipeline(out, { executionProviders: ["cpu"] }); // a complete SD folder
 * assert.deepEqual([pipe.height, pipe.io.unet.sample, pipe.contextTokens], [64, "sample", 77]);
 * await pipe.release();
 * await Deno.remove(out.replace(/\/model$/, ""), { recursive: true });
 * ```
 * @module
 */
import { exportUnetGraph } from "../onnx/export_models.ts";
import { saveOnnxModel } from "../onnx/external_data.ts";
import { unetConfigToDiffusers } from "../models/diffusers_unet_config.ts";
import { hasClipBpeFiles } from "../models/clip_bpe_tokenizer.ts";
import { tempPathFor, writeJsonAtomic } from "../util/atomic.ts";
import { diffusersModelIndex } from "./model_index.ts";
import type { TrainedUnet } from "./stages.ts";

/** The source folder's parts copied as they are. */
export const COPIED_PARTS = [
  "vae_encoder",
  "vae_decoder",
  "text_encoder",
  "tokenizer",
  "scheduler",
] as const;

/** Options of {@link exportPartsFolder}. */
export interface ExportPartsFolderOptions {
  /** The SD folder whose frozen parts the UNet was trained on. */
  parts: string;
  /** The folder to write (replaced whole when it exists). */
  out: string;
  /** The trained UNet (EMA weights) and its config. */
  unet: TrainedUnet;
  /** Image side the UNet was trained at (`unet/config.json`'s sample_size is this / 8). */
  resolution: number;
  /** Image side / latent side of the VAE (default 8). */
  vaeScaleFactor?: number;
  /** Element type of the UNet's `timestep` input (default "float32"; "int64" as SD v1). */
  timestepDtype?: "float32" | "int64";
  /**
   * What the UNet was trained to predict, written as the copied `scheduler_config.json`'s
   * `prediction_type` so every sampler of the folder uses it (default: the source's, unchanged).
   */
  predictionType?: "epsilon" | "v_prediction";
  /** Extra fields of `model_index.json`'s `_xgen_kit` record. */
  record?: Record<string, unknown>;
  /**
   * The SD folder the UNet was trained on, recorded in the UNet's ONNX metadata (`trainedOn`;
   * default `parts`: differs when the parts are copied from an exported run's folder).
   */
  trainedOn?: string;
  /**
   * Where the UNet's weights go: "auto" (default) in `unet/model.onnx_data` only past protobuf's
   * 2 GiB, "always" there, "never" inside `model.onnx`.
   */
  unetExternalData?: "auto" | "always" | "never";
}

async function copyTree(src: string, dst: string): Promise<void> {
  await Deno.mkdir(dst, { recursive: true });
  for await (const e of Deno.readDir(src)) {
    if (e.isDirectory) await copyTree(`${src}/${e.name}`, `${dst}/${e.name}`);
    else if (e.isFile) await Deno.copyFile(`${src}/${e.name}`, `${dst}/${e.name}`);
  }
}

/**
 * Write the SD folder (see the module docs); returns the files written, relative to `out`, with
 * `model_index.json` last.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import { exportPartsFolder } from "./parts_export.ts";
 * import { initUnet, UNET_PRESETS } from "../models/unet.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * // An untrained tiny UNet (32-d context, as the tiny SD folder's text encoder gives).
 * const config = UNET_PRESETS.tiny, unet = { config, params: initUnet(config, Rng.stream(0)) };
 * const out = `${await Deno.makeTempDir()}/model`;
 * const files = await exportPartsFolder({ parts: "tests/fixtures/tiny_sd/fp32_scalar_t", out, unet, resolution: 64 });
 * assert.ok(files.includes("unet/model.onnx") && files.includes("model_index.json"));
 * assert.equal(JSON.parse(await Deno.readTextFile(`${out}/unet/config.json`)).sample_size, 8); // 64 / 8
 * await Deno.remove(out.replace(/\/model$/, ""), { recursive: true });
 * ```
 */
export async function exportPartsFolder(o: ExportPartsFolderOptions): Promise<string[]> {
  for (const part of COPIED_PARTS) {
    const st = await Deno.stat(`${o.parts}/${part}`).catch(() => null);
    if (!st?.isDirectory) {
      throw new Error(`${o.parts}/${part}: missing; an SD folder to reuse needs ${COPIED_PARTS}`);
    }
  }
  const schedCfg = JSON.parse(
    await Deno.readTextFile(`${o.parts}/scheduler/scheduler_config.json`),
  );
  const schedulerClass = typeof schedCfg._class_name === "string"
    ? schedCfg._class_name
    : "PNDMScheduler";
  const tmp = tempPathFor(o.out);
  await Deno.mkdir(tmp, { recursive: true });
  const files: string[] = [];
  try {
    for (const part of COPIED_PARTS) {
      await copyTree(`${o.parts}/${part}`, `${tmp}/${part}`);
      for await (const e of Deno.readDir(`${tmp}/${part}`)) files.push(`${part}/${e.name}`);
    }
    if (o.predictionType !== undefined) {
      await writeJsonAtomic(`${tmp}/scheduler/scheduler_config.json`, {
        ...schedCfg,
        prediction_type: o.predictionType,
      });
    }
    const cfg = o.unet.config;
    await Deno.mkdir(`${tmp}/unet`);
    const { graph, options } = await exportUnetGraph(o.unet.params, cfg, {
      timestepDtype: o.timestepDtype,
      metadata: { trainedOn: o.trainedOn ?? o.parts },
    });
    const saved = await saveOnnxModel(`${tmp}/unet/model.onnx`, graph, {
      ...options,
      externalData: o.unetExternalData,
    });
    await writeJsonAtomic(
      `${tmp}/unet/config.json`,
      unetDiffusersConfig(cfg, o.resolution / (o.vaeScaleFactor ?? 8)),
    );
    files.push(...saved.files.map((f) => `unet/${f}`), "unet/config.json");
    const clip = await hasClipBpeFiles(`${tmp}/tokenizer`);
    await writeJsonAtomic(
      `${tmp}/model_index.json`,
      diffusersModelIndex({
        scheduler: schedulerClass,
        tokenizer: clip ? "clip" : "none",
        extra: { _xgen_kit: { ...o.record, parts: o.parts, resolution: o.resolution } },
      }),
    );
    files.push("model_index.json");
    await Deno.remove(o.out, { recursive: true }).catch(() => {});
    await Deno.rename(tmp, o.out);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
  return files;
}

/**
 * `unet/config.json` of an exported folder: diffusers' UNet2DConditionModel config (what
 * `saveDiffusersUnet` writes) plus the kit's own config under `_xgen_kit` (diffusers ignores
 * fields that start with `_`), which the kit reads
 * back exactly.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { unetDiffusersConfig } from "./parts_export.ts";
 * import { UNET_PRESETS } from "../models/unet.ts";
 *
 * const c = unetDiffusersConfig(UNET_PRESETS.sd15, 32);
 * assert.equal(c._class_name, "UNet2DConditionModel");
 * assert.equal(c.sample_size, 32);
 * assert.deepEqual(c.block_out_channels, [320, 640, 1280, 1280]);
 * ```
 */
export function unetDiffusersConfig(
  cfg: TrainedUnet["config"],
  sampleSize: number,
): Record<string, unknown> {
  return { ...unetConfigToDiffusers(cfg, { sampleSize }), _xgen_kit: { config: cfg } };
}
