/**
 * Flat, name-addressed model weights.
 *
 * Every model in the kit keeps its weights in one {@link Params} record whose keys are dotted
 * names (`down.0.res.1.conv1.weight`). Keeping the structure flat makes checkpointing, EMA,
 * optimizers and weight export simple loops over sorted names.
 *
 * @example
 * ```ts
 * import { countParams, disposeParams, paramNames } from "./params.ts";
 * import { initUnet, UNET_PRESETS } from "../models/unet.ts";
 * import { Rng, STREAM } from "../util/rng.ts";
 *
 * const p = initUnet(UNET_PRESETS.tiny, Rng.stream(0, [0, STREAM.init]));
 * console.log(countParams(p), paramNames(p).slice(0, 3));
 * disposeParams(p);
 * ```
 * @module
 */
import type * as tf from "npm:@tensorflow/tfjs-core@4.22.0";

/** A model's weights: dotted name -> trainable variable. */
export type Params = Record<string, tf.Variable>;

/** Parameter shapes by dotted name (what a model allocates, without allocating it). */
export type ParamShapes = Record<string, number[]>;

/**
 * Names of all parameters, sorted (the canonical order for checkpoints and optimizers).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { paramNames } from "./params.ts";
 *
 * assert.deepEqual(paramNames({ "conv_in.weight": [3, 3, 4, 32], "conv_in.bias": [32] }), [
 *   "conv_in.bias",
 *   "conv_in.weight",
 * ]);
 * ```
 */
export function paramNames(p: Params | ParamShapes): string[] {
  return Object.keys(p).sort();
}

/** Number of scalars in a shape (1 for a scalar `[]`). */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Total number of scalar weights.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { countParams } from "./params.ts";
 * import { ShapeBuilder } from "../nn/init.ts";
 * import { initConv2d } from "../nn/conv.ts";
 *
 * const b = new ShapeBuilder();
 * initConv2d(b, "conv_in", { inChannels: 4, outChannels: 32, kernelSize: 3 });
 * assert.equal(countParams(b.shapes), 3 * 3 * 4 * 32 + 32);
 * ```
 */
export function countParams(p: Params | ParamShapes): number {
  let n = 0;
  for (const v of Object.values(p)) n += shapeSize(Array.isArray(v) ? v : (v as tf.Variable).shape);
  return n;
}

/**
 * Shapes of all parameters, keys in sorted order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { paramShapes } from "./params.ts";
 *
 * const p = { "conv_in.weight": tf.variable(tf.zeros([3, 3, 4, 32])) };
 * assert.deepEqual(paramShapes(p)["conv_in.weight"], [3, 3, 4, 32]);
 * ```
 */
export function paramShapes(p: Params): ParamShapes {
  const out: ParamShapes = {};
  for (const k of paramNames(p)) out[k] = [...p[k].shape];
  return out;
}

/**
 * Dispose every variable (frees backend memory). The record is emptied.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { disposeParams } from "./params.ts";
 *
 * const w = tf.variable(tf.zeros([2, 2]));
 * const p = { "fc.weight": w };
 * disposeParams(p);
 * assert.ok(w.isDisposed);
 * assert.deepEqual(p, {}); // the record is emptied
 * ```
 */
export function disposeParams(p: Params): void {
  for (const k of Object.keys(p)) {
    p[k].dispose();
    delete p[k];
  }
}

/**
 * Every weight of `p` as a float32 array by name, then the tensors freed and the record emptied
 * (as {@link disposeParams}): weights handed to code outside TensorFlow.js (the compiled WebGPU
 * step, comparisons in tests).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import { takeParamArrays } from "./params.ts";
 *
 * const p = { w: tf.variable(tf.tensor1d([1, 2])) };
 * assert.deepEqual(takeParamArrays(p), { w: Float32Array.of(1, 2) });
 * assert.deepEqual(p, {});
 * ```
 */
export function takeParamArrays(p: Params): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  for (const [k, v] of Object.entries(p)) out[k] = v.dataSync() as Float32Array;
  disposeParams(p);
  return out;
}

/**
 * Read parameter `name`, failing with a message that names the missing weight.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { getParam } from "./params.ts";
 *
 * const p = { "conv_in.weight": tf.variable(tf.zeros([3, 3, 4, 32])) };
 * assert.deepEqual(getParam(p, "conv_in.weight").shape, [3, 3, 4, 32]);
 * assert.throws(() => getParam(p, "conv_out.weight"), /conv_out.weight/);
 * ```
 */
export function getParam(p: Params, name: string): tf.Variable {
  const v = p[name];
  if (v === undefined) {
    const prefix = name.split(".").slice(0, -1).join(".");
    const near = Object.keys(p).filter((k) => k.startsWith(prefix)).slice(0, 5);
    throw new Error(
      `Params: missing weight "${name}"` +
        (near.length ? ` (weights under "${prefix}": ${near.join(", ")})` : ""),
    );
  }
  return v;
}

/** Join a name prefix and a child name with a dot (an empty prefix gives the child). */
export function joinName(prefix: string, child: string): string {
  return prefix ? `${prefix}.${child}` : child;
}
