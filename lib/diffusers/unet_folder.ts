/**
 * A diffusers UNet folder (`config.json` + `diffusion_pytorch_model[.fp16].safetensors`, as
 * `UNet2DConditionModel.save_pretrained` writes it, e.g. a Stable Diffusion repo's `unet/`) in
 * and out of the kit.
 *
 * Loading checks the config (lib/models' `unetConfigFromDiffusers`: unsupported settings are
 * refused with the field and value) and then every tensor name and shape against the kit's UNet
 * for that config, before converting PyTorch layouts to the kit's. F32, F16 and BF16 files load
 * (widened to float32); a sharded file (`.safetensors.index.json`) loads shard by shard. Saving
 * writes the reverse, each file through a temp name and rename, the weights first and
 * `config.json` last.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadDiffusersUnet, saveDiffusersUnet } from "./unet_folder.ts";
 * import { initUnet, UNET_PRESETS } from "../models/mod.ts";
 * import { Rng, STREAM } from "../util/rng.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const config = UNET_PRESETS.tiny;
 * const params = initUnet(config, Rng.stream(0, [0, STREAM.init]));
 * await saveDiffusersUnet(dir, { config, params, sampleSize: 8 });
 * const back = await loadDiffusersUnet(dir);
 * assert.deepEqual(back.config, config);
 * assert.deepEqual(back.tensors["conv_in.weight"].data, params["conv_in.weight"].dataSync());
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import {
  type DiffusersUnetConfig,
  type HostTensors,
  type UnetConfig,
  unetConfigFromDiffusers,
  unetConfigToDiffusers,
  unetTensorsFromDiffusers,
  unetTensorsToDiffusers,
} from "../models/mod.ts";
import { encodeSafetensors, readSafetensors, type SafetensorsDtype } from "../train/safetensors.ts";
import { snapshotParams } from "../train/tensor_data.ts";
import { writeFileAtomic, writeTextAtomic } from "../util/atomic.ts";
import { pathExists } from "../util/path_exists.ts";

/** Weights file of a diffusers model folder (`save_pretrained`'s name). */
export const DIFFUSERS_WEIGHTS_FILE = "diffusion_pytorch_model.safetensors";

/** Options of {@link loadDiffusersUnet}. */
export interface LoadDiffusersUnetOptions {
  /** Read `diffusion_pytorch_model.<variant>.safetensors` (diffusers' `variant="fp16"`). */
  variant?: "fp16";
}

/** What {@link loadDiffusersUnet} returns. */
export interface LoadedDiffusersUnet extends DiffusersUnetConfig {
  /** Every UNet parameter in the kit's layout, float32; `unetParamsFromTensors` makes Params. */
  tensors: HostTensors;
  /** Element types stored in the file(s) (e.g. `["F16"]`). */
  dtypes: SafetensorsDtype[];
  /** The weights file(s) read. */
  files: string[];
}

/** Stored element type of {@link saveDiffusersUnet}. */
export type DiffusersUnetDtype = "float32" | "float16" | "bfloat16";

/** What {@link saveDiffusersUnet} writes. */
export interface SaveDiffusersUnet {
  /** The UNet's config. */
  config: UnetConfig;
  /** Its weights in the kit's layout: TensorFlow.js Params (or tensors), or host tensors. */
  params: Record<string, tf.Tensor> | HostTensors;
  /** Stored element type (default float32); float16/bfloat16 round to nearest even. */
  dtype?: DiffusersUnetDtype;
  /** Write `diffusion_pytorch_model.<variant>.safetensors` instead (diffusers' variant). */
  variant?: "fp16";
  /** `sample_size` for config.json (default null). */
  sampleSize?: number | [number, number] | null;
}

const STORED: Record<DiffusersUnetDtype, "F32" | "F16" | "BF16"> = {
  float32: "F32",
  float16: "F16",
  bfloat16: "BF16",
};

function weightsFile(variant?: string): string {
  return variant
    ? DIFFUSERS_WEIGHTS_FILE.replace(/\.safetensors$/, `.${variant}.safetensors`)
    : DIFFUSERS_WEIGHTS_FILE;
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`${path}: file not found`);
    throw e;
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

/** The weights files to read: one file, or the shards an index names. */
async function weightFiles(dir: string, variant?: string): Promise<string[]> {
  const file = `${dir}/${weightsFile(variant)}`;
  if (await pathExists(file)) return [file];
  const index = `${file}.index.json`;
  if (await pathExists(index)) {
    const j = await readJson(index) as { weight_map?: unknown };
    const map = j?.weight_map;
    if (typeof map !== "object" || map === null || Array.isArray(map)) {
      throw new Error(`${index}: expected a "weight_map" object of tensor name -> shard file`);
    }
    const shards = [...new Set(Object.values(map))];
    for (const s of shards) {
      if (typeof s !== "string" || s.includes("/") || s.includes("\\") || s.startsWith(".")) {
        throw new Error(`${index}: weight_map names a shard ${JSON.stringify(s)}, expected a file`);
      }
    }
    return (shards as string[]).sort().map((s) => `${dir}/${s}`);
  }
  const other = variant ? weightsFile() : weightsFile("fp16");
  const hint = (await pathExists(`${dir}/${other}`))
    ? `; ${other} is there (${variant ? "load without a variant" : 'load with variant "fp16"'})`
    : (await pathExists(`${dir}/diffusion_pytorch_model.bin`))
    ? "; diffusion_pytorch_model.bin is there, but only safetensors are read"
    : "";
  throw new Error(`${file}: file not found${hint}`);
}

/**
 * Load a diffusers UNet folder: `dir/config.json` and `dir/diffusion_pytorch_model.safetensors`
 * (or the `fp16` variant when asked), checked against the kit's UNet for that config and
 * converted to the kit's layout. Turn `tensors` into trainable Params with
 * `unetParamsFromTensors` (lib/models).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import { unetParamsFromTensors } from "../models/mod.ts";
 * import { loadDiffusersUnet } from "./unet_folder.ts";
 *
 * const dir = "tests/fixtures/diffusers_unet"; // holds diffusion_pytorch_model.fp16.safetensors
 * const { config, tensors } = await loadDiffusersUnet(dir, { variant: "fp16" });
 * const params = unetParamsFromTensors(tensors, config); // for unetForward(params, config, ...)
 * assert.deepEqual(config.blockChannels, [8, 16]);
 * assert.deepEqual(params["conv_in.weight"].shape, [3, 3, 4, 8]);
 * ```
 */
export async function loadDiffusersUnet(
  dir: string,
  opts: LoadDiffusersUnetOptions = {},
): Promise<LoadedDiffusersUnet> {
  if (opts.variant !== undefined && opts.variant !== "fp16") {
    throw new Error(`loadDiffusersUnet: variant must be "fp16" or absent, got ${opts.variant}`);
  }
  const configPath = `${dir}/config.json`;
  const { config, sampleSize } = unetConfigFromDiffusers(await readJson(configPath), {
    source: configPath,
  });
  const files = await weightFiles(dir, opts.variant);
  const raw: HostTensors = {};
  const dtypes = new Set<SafetensorsDtype>();
  for (const file of files) {
    const { tensors } = await readSafetensors(file);
    for (const [name, t] of Object.entries(tensors)) {
      if (!(t.data instanceof Float32Array)) {
        throw new Error(`${file}: tensor "${name}" is ${t.dtype}, expected F32, F16 or BF16`);
      }
      if (Object.hasOwn(raw, name)) throw new Error(`${file}: tensor "${name}" is in two shards`);
      raw[name] = { shape: t.shape, data: t.data };
      dtypes.add(t.dtype);
    }
  }
  const source = files.length === 1 ? files[0] : `${files[0]} (+${files.length - 1} shards)`;
  const tensors = unetTensorsFromDiffusers(raw, config, { source, configSource: configPath });
  return { config, sampleSize, tensors, dtypes: [...dtypes].sort(), files };
}

/**
 * Save the kit's UNet as a diffusers folder that `UNet2DConditionModel.from_pretrained(dir)`
 * loads: `config.json` (every field, `_class_name`, `_diffusers_version`) and
 * `diffusion_pytorch_model[.fp16].safetensors` in PyTorch layouts. Names and shapes are checked
 * against the config first. Returns the paths written.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import { initUnet, UNET_PRESETS } from "../models/mod.ts";
 * import { Rng } from "../util/rng.ts";
 * import { loadDiffusersUnet, saveDiffusersUnet } from "./unet_folder.ts";
 *
 * const config = UNET_PRESETS.tiny;
 * const params = initUnet(config, Rng.stream(0));
 * const dir = await Deno.makeTempDir(); // e.g. "export"
 * await saveDiffusersUnet(`${dir}/unet`, { config, params, dtype: "float16", variant: "fp16" });
 * const back = await loadDiffusersUnet(`${dir}/unet`, { variant: "fp16" });
 * assert.deepEqual(back.config.blockChannels, config.blockChannels);
 * await Deno.remove(dir, { recursive: true });

 * ```
 */
export async function saveDiffusersUnet(
  dir: string,
  o: SaveDiffusersUnet,
): Promise<{ config: string; weights: string }> {
  const dtype = o.dtype ?? "float32";
  if (!Object.hasOwn(STORED, dtype)) {
    throw new Error(`saveDiffusersUnet: dtype must be float32, float16 or bfloat16, got ${dtype}`);
  }
  if (o.variant !== undefined && o.variant !== "fp16") {
    throw new Error(`saveDiffusersUnet: variant must be "fp16" or absent, got ${o.variant}`);
  }
  const json = unetConfigToDiffusers(o.config, { sampleSize: o.sampleSize });
  const values = Object.values(o.params);
  const host = values.length && values[0] instanceof tf.Tensor
    ? await snapshotParams(o.params as Record<string, tf.Tensor>)
    : o.params as HostTensors;
  const torch = unetTensorsToDiffusers(host, o.config, { source: "saveDiffusersUnet params" });
  await Deno.mkdir(dir, { recursive: true });
  const weights = `${dir}/${weightsFile(o.variant)}`;
  const config = `${dir}/config.json`;
  // diffusers' own files carry {"format": "pt"}; writing config.json last means a folder whose
  // config is there has its weights.
  await writeFileAtomic(
    weights,
    encodeSafetensors(torch, { format: "pt" }, { dtype: STORED[dtype] }),
  );
  await writeTextAtomic(config, JSON.stringify(json, null, 2) + "\n");
  return { config, weights };
}
