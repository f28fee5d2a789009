/**
 * Frozen model folders: `model.safetensors` (float32 weights) plus `model.json` (kind, config and
 * extras such as the latent scaling factor). `model.json` is written last and names the weight
 * file's size, so a folder counts as a finished model only once both are complete: a stage killed
 * while saving is simply trained (or resumed) again.
 *
 * @example
 * ```ts
 * await saveModel("runs/x/autoencoder", { kind: "autoencoder", config: cfg, params, extra: { scalingFactor: 0.9 } });
 * const m = await loadModel("runs/x/autoencoder", "autoencoder");
 * ```
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import {
  readSafetensors,
  snapshotParams,
  toTensorDataMap,
  writeSafetensors,
} from "../train/mod.ts";
import type { Params } from "../nn/mod.ts";
import { writeJsonAtomic } from "../util/atomic.ts";

/** The JSON side of a saved model. */
export interface ModelInfo<C = unknown> {
  format: "xgen-kit-model/1";
  kind: string;
  config: C;
  weights: string;
  weightsBytes: number;
  params: number;
  extra: Record<string, unknown>;
}

/** A model loaded back: fresh variables plus its info. */
export interface LoadedModel<C = unknown> {
  info: ModelInfo<C>;
  params: Params;
}

/** Options for {@link saveModel}. */
export interface SaveModelOptions<C> {
  kind: string;
  config: C;
  /** Weights to save (variables or plain tensors, e.g. EMA shadows). */
  params: Record<string, tf.Tensor>;
  extra?: Record<string, unknown>;
}

/** Write a model folder (weights first, then `model.json`). */
export async function saveModel<C>(dir: string, o: SaveModelOptions<C>): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const snap = await snapshotParams(o.params);
  await writeSafetensors(`${dir}/model.safetensors`, snap, { kind: o.kind });
  const size = (await Deno.stat(`${dir}/model.safetensors`)).size;
  const info: ModelInfo<C> = {
    format: "xgen-kit-model/1",
    kind: o.kind,
    config: o.config,
    weights: "model.safetensors",
    weightsBytes: size,
    params: Object.values(snap).reduce((a, t) => a + t.data.length, 0),
    extra: o.extra ?? {},
  };
  await writeJsonAtomic(`${dir}/model.json`, info);
}

/** Whether `dir` holds a complete model of `kind` (json present, weights of the recorded size). */
export async function hasModel(dir: string, kind: string): Promise<boolean> {
  try {
    const info = JSON.parse(await Deno.readTextFile(`${dir}/model.json`)) as ModelInfo;
    if (info.kind !== kind) return false;
    return (await Deno.stat(`${dir}/${info.weights}`)).size === info.weightsBytes;
  } catch {
    return false;
  }
}

/** Load a model folder into new variables; errors name the file and what is wrong. */
export async function loadModel<C = unknown>(dir: string, kind: string): Promise<LoadedModel<C>> {
  const jsonPath = `${dir}/model.json`;
  let info: ModelInfo<C>;
  try {
    info = JSON.parse(await Deno.readTextFile(jsonPath));
  } catch (e) {
    throw new Error(
      e instanceof Deno.errors.NotFound
        ? `${jsonPath}: not found (is ${dir} a trained ${kind} folder?)`
        : `${jsonPath}: not valid JSON (${(e as Error).message})`,
    );
  }
  if (info.format !== "xgen-kit-model/1" || info.kind !== kind) {
    throw new Error(`${jsonPath}: expected an xgen-kit ${kind} model, found kind "${info.kind}"`);
  }
  const wPath = `${dir}/${info.weights}`;
  const size = await Deno.stat(wPath).then((s) => s.size, () => -1);
  if (size !== info.weightsBytes) {
    throw new Error(
      `${wPath}: ${
        size < 0 ? "missing" : `${size} bytes`
      }, model.json expects ${info.weightsBytes}`,
    );
  }
  const tensors = toTensorDataMap(await readSafetensors(wPath));
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
