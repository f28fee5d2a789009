/**
 * Frozen model folders: `model.safetensors` (float32 weights) plus `model.json` (kind, config and
 * extras such as the latent scaling factor). `model.json` is written last and records the weight
 * file's name, size and SHA-256, so a folder counts as a finished model only once both are
 * complete (a stage killed while saving is simply trained, or resumed, again), and loading refuses
 * weights changed since. Folders written before the hash was recorded load without that check.
 * The weights' name must be a file in the folder: `model.json` is data, not a trusted path.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import { loadModel, saveModel } from "./model_files.ts";
 * import { AUTOENCODER_PRESETS, type AutoencoderConfig, initAutoencoder } from "../models/autoencoder.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const dir = await Deno.makeTempDir(); // e.g. "runs/x/autoencoder"
 * const cfg = AUTOENCODER_PRESETS.tiny, params = initAutoencoder(cfg, Rng.stream(0));
 * await saveModel(dir, { kind: "autoencoder", config: cfg, params, extra: { scalingFactor: 0.9 } });
 * const m = await loadModel<AutoencoderConfig>(dir, "autoencoder");
 * assert.deepEqual([m.info.config, m.info.extra], [cfg, { scalingFactor: 0.9 }]);
 * assert.deepEqual(Object.keys(m.params).sort(), Object.keys(params).sort());
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import {
  decodeSafetensors,
  encodeSafetensors,
  snapshotParams,
  toTensorDataMap,
} from "../train/mod.ts";
import type { Params } from "../nn/mod.ts";
import { removeStaleTemps, writeFileAtomic, writeJsonAtomic } from "../util/atomic.ts";
import { confinedRealPath } from "../util/confined_path.ts";
import { isSha256Hex, sha256Hex, verifyDigest } from "../util/file_digest.ts";

/** The JSON side of a saved model. */
export interface ModelInfo<C = unknown> {
  format: "xgen-kit-model/1";
  kind: string;
  config: C;
  /** The weights' file name, inside the model folder. */
  weights: string;
  weightsBytes: number;
  /** Lowercase hex SHA-256 of the weights file; absent in folders saved before it was recorded. */
  weightsSha256?: string;
  params: number;
  extra: Record<string, unknown>;
}

/** A model loaded back: fresh variables plus its info. */
export interface LoadedModel<C = unknown> {
  info: ModelInfo<C>;
  params: Params;
}

/** A model folder's files as read and checked by {@link readModelFiles}. */
export interface ModelFiles<C = unknown> {
  info: ModelInfo<C>;
  /** `model.json` exactly as stored. */
  json: Uint8Array;
  /** The weights file's bytes, checked against the recorded size (and SHA-256 when recorded). */
  weights: Uint8Array;
  /** Path of the weights file. */
  weightsPath: string;
}

/** Options for {@link saveModel}. */
export interface SaveModelOptions<C> {
  kind: string;
  config: C;
  /** Weights to save (variables or plain tensors, e.g. EMA shadows). */
  params: Record<string, tf.Tensor>;
  extra?: Record<string, unknown>;
}

/**
 * Write a model folder (weights first, then `model.json` with their size and SHA-256). Temporaries
 * a killed earlier save left in the folder are removed first.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { saveModel } from "./model_files.ts";
 *
 * const dir = await Deno.makeTempDir(); // e.g. "runs/x/unet/model"
 * const shadow = { "out.w": tf.tensor2d([[1, 2], [3, 4]]) }; // plain tensors, e.g. an Ema's shadow
 * await saveModel(dir, { kind: "unet", config: { channels: 2 }, params: shadow });
 * const info = JSON.parse(await Deno.readTextFile(`${dir}/model.json`));
 * assert.deepEqual([info.kind, info.params, info.weights], ["unet", 4, "model.safetensors"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function saveModel<C>(dir: string, o: SaveModelOptions<C>): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await removeStaleTemps(dir);
  const snap = await snapshotParams(o.params);
  const bytes = encodeSafetensors(snap, { kind: o.kind });
  await writeFileAtomic(`${dir}/model.safetensors`, bytes);
  const info: ModelInfo<C> = {
    format: "xgen-kit-model/1",
    kind: o.kind,
    config: o.config,
    weights: "model.safetensors",
    weightsBytes: bytes.length,
    weightsSha256: await sha256Hex(bytes),
    params: Object.values(snap).reduce((a, t) => a + t.data.length, 0),
    extra: o.extra ?? {},
  };
  await writeJsonAtomic(`${dir}/model.json`, info);
}

/**
 * Whether `dir` holds a complete model of `kind`: `model.json` present, its weights inside the
 * folder with the recorded size. Cheap (no hashing), so stages can ask on every resume; loading
 * is what checks the contents.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { hasModel, saveModel } from "./model_files.ts";
 *
 * const dir = await Deno.makeTempDir(); // e.g. "runs/x/unet/model"
 * assert.equal(await hasModel(dir, "unet"), false);
 * await saveModel(dir, { kind: "unet", config: {}, params: { w: tf.ones([2]) } });
 * assert.deepEqual([await hasModel(dir, "unet"), await hasModel(dir, "clip")], [true, false]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function hasModel(dir: string, kind: string): Promise<boolean> {
  try {
    const jsonPath = `${dir}/model.json`;
    const info = JSON.parse(await Deno.readTextFile(jsonPath)) as ModelInfo;
    if (info.kind !== kind) return false;
    const wPath = await weightsPathOf(dir, jsonPath, info);
    return (await Deno.stat(wPath)).size === info.weightsBytes;
  } catch {
    return false;
  }
}

/** The weights' path, refusing names that leave the folder (`..`, absolute, links out). */
function weightsPathOf(dir: string, jsonPath: string, info: ModelInfo): Promise<string> {
  return confinedRealPath(dir, info.weights, { file: jsonPath, field: "weights", fileName: true });
}

/**
 * Read a model folder's `model.json` and weights, checking the kind, that the weights are a file
 * in the folder, their size and, when recorded, their SHA-256. Errors are one line naming the
 * file and what is wrong.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { readModelFiles, saveModel } from "./model_files.ts";
 *
 * const dir = await Deno.makeTempDir(); // e.g. "runs/x/clip/model"
 * await saveModel(dir, { kind: "clip", config: {}, params: { w: tf.ones([2]) } });
 * const { info, weights } = await readModelFiles(dir, "clip"); // size and SHA-256 checked
 * assert.equal(weights.length, info.weightsBytes);
 * await assert.rejects(readModelFiles(dir, "unet"), /expected an xgen-kit unet model, found kind "clip"/);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readModelFiles<C = unknown>(
  dir: string,
  kind: string,
): Promise<ModelFiles<C>> {
  const jsonPath = `${dir}/model.json`;
  let json: Uint8Array;
  let info: ModelInfo<C>;
  try {
    json = await Deno.readFile(jsonPath);
    info = JSON.parse(new TextDecoder().decode(json));
  } catch (e) {
    throw new Error(
      e instanceof Deno.errors.NotFound
        ? `${jsonPath}: not found (is ${dir} a trained ${kind} folder?)`
        : `${jsonPath}: not valid JSON (${(e as Error).message.replace(/\r?\n/g, "\\n")})`,
    );
  }
  if (info?.format !== "xgen-kit-model/1" || info.kind !== kind) {
    throw new Error(`${jsonPath}: expected an xgen-kit ${kind} model, found kind "${info?.kind}"`);
  }
  if (!Number.isSafeInteger(info.weightsBytes) || info.weightsBytes < 0) {
    throw new Error(`${jsonPath}: field "weightsBytes" must be a non-negative integer`);
  }
  if (info.weightsSha256 !== undefined && !isSha256Hex(info.weightsSha256)) {
    throw new Error(
      `${jsonPath}: field "weightsSha256" must be 64 lowercase hex digits, got ${
        JSON.stringify(info.weightsSha256)
      }`,
    );
  }
  const wPath = await weightsPathOf(dir, jsonPath, info);
  const size = await Deno.stat(wPath).then((s) => s.size, () => -1);
  if (size !== info.weightsBytes) {
    throw new Error(
      `${wPath}: ${
        size < 0 ? "missing" : `${size} bytes`
      }, model.json expects ${info.weightsBytes}`,
    );
  }
  const weights = await Deno.readFile(wPath);
  if (info.weightsSha256 !== undefined) {
    await verifyDigest(weights, { size: info.weightsBytes, sha256: info.weightsSha256 }, {
      path: wPath,
      recordedIn: "model.json",
    });
  }
  return { info, json, weights, weightsPath: wPath };
}

/**
 * Load a model folder into new variables (checked as {@link readModelFiles} does).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { loadModel, saveModel } from "./model_files.ts";
 *
 * const dir = await Deno.makeTempDir(); // e.g. "runs/x/unet/model"
 * await saveModel(dir, { kind: "unet", config: { base: 8 }, params: { w: tf.tensor1d([1, 2]) } });
 * const m = await loadModel<{ base: number }>(dir, "unet"); // fresh tf.Variables
 * assert.deepEqual([m.info.config.base, Array.from(m.params.w.dataSync())], [8, [1, 2]]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadModel<C = unknown>(dir: string, kind: string): Promise<LoadedModel<C>> {
  const { info, weights, weightsPath } = await readModelFiles<C>(dir, kind);
  const tensors = toTensorDataMap(decodeSafetensors(weights, weightsPath));
  const params: Params = {};
  for (const [name, t] of Object.entries(tensors)) {
    params[name] = tf.variable(
      tf.tensor(t.data, t.shape, "float32"),
      false,
      `${kind}.${name}.${crypto.randomUUID().slice(0, 6)}`,
    );
  }
  return { info, params };
}
