/**
 * Weight initialisation drawn from the kit's {@link Rng} and uploaded with `tf.tensor`, so a seed
 * gives bit-identical weights on every backend (tfjs random ops differ between backends).
 *
 * Models describe their weights through a {@link ParamBuilder}: {@link TensorBuilder} allocates
 * variables, {@link ShapeBuilder} only records shapes, which is how the 860M-parameter SD v1.5
 * UNet is counted without allocating it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import { kaiming, TensorBuilder, zeros } from "./init.ts";
 * import { Rng, STREAM } from "../util/rng.ts";
 *
 * const b = new TensorBuilder(Rng.stream(0, [0, STREAM.init]));
 * b.add("fc.weight", [16, 8], kaiming(16));
 * b.add("fc.bias", [8], zeros());
 * const p = b.params;
 * assert.deepEqual(p["fc.weight"].shape, [16, 8]);
 * assert.deepEqual(Array.from(p["fc.bias"].dataSync()), new Array(8).fill(0));
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import type { Rng } from "../util/rng.ts";
import { type Params, type ParamShapes, shapeSize } from "./params.ts";

/** How to fill one weight tensor. */
export type InitSpec =
  | { kind: "constant"; value: number }
  | { kind: "normal"; std: number }
  | { kind: "uniform"; bound: number };

/**
 * All zeros (biases, norm shifts).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { drawInit, zeros } from "./init.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * // A builder's add("norm.bias", [4], zeros()) fills the weight like this.
 * assert.deepEqual(drawInit(zeros(), [4], Rng.stream(0)), new Float32Array(4));
 * ```
 */
export function zeros(): InitSpec {
  return { kind: "constant", value: 0 };
}

/**
 * All ones (norm scales).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { drawInit, ones } from "./init.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * // A builder's add("norm.weight", [3], ones()) fills the weight like this.
 * assert.deepEqual(drawInit(ones(), [3], Rng.stream(0)), new Float32Array([1, 1, 1]));
 * ```
 */
export function ones(): InitSpec {
  return { kind: "constant", value: 1 };
}

/**
 * Normal with mean 0 and standard deviation `std` (embeddings use 0.02 like CLIP).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { drawInit, normal } from "./init.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * // What b.add("token_embedding.weight", [100, 64], normal(0.02)) draws.
 * const w = drawInit(normal(0.02), [100, 64], Rng.stream(0));
 * const std = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length);
 * assert.ok(Math.abs(std - 0.02) < 0.001);
 * ```
 */
export function normal(std: number): InitSpec {
  if (!(std >= 0)) throw new Error(`init.normal: std must be >= 0, got ${std}`);
  return { kind: "normal", std };
}

/**
 * PyTorch's default for Linear/Conv weights and biases: kaiming-uniform with a = sqrt(5), which
 * reduces to U(-1/sqrt(fanIn), 1/sqrt(fanIn)). `gain` multiplies the bound.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { drawInit, kaiming } from "./init.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * // What b.add("conv.weight", [3, 3, 32, 64], kaiming(3 * 3 * 32)) draws: |w| <= 1 / sqrt(fanIn).
 * const w = drawInit(kaiming(3 * 3 * 32), [3, 3, 32, 64], Rng.stream(0));
 * assert.ok(w.every((v) => Math.abs(v) <= 1 / Math.sqrt(288)));
 * ```
 */
export function kaiming(fanIn: number, gain = 1): InitSpec {
  if (!(fanIn > 0)) throw new Error(`init.kaiming: fanIn must be > 0, got ${fanIn}`);
  return { kind: "uniform", bound: gain / Math.sqrt(fanIn) };
}

/**
 * Xavier/Glorot uniform: U(-b, b) with b = sqrt(6 / (fanIn + fanOut)).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { drawInit, xavier } from "./init.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * // What b.add("proj.weight", [64, 64], xavier(64, 64)) draws: |w| <= sqrt(6 / (fanIn + fanOut)).
 * const w = drawInit(xavier(64, 64), [64, 64], Rng.stream(0));
 * assert.ok(w.every((v) => Math.abs(v) <= Math.sqrt(6 / 128)));
 * ```
 */
export function xavier(fanIn: number, fanOut: number): InitSpec {
  if (!(fanIn + fanOut > 0)) throw new Error(`init.xavier: fanIn + fanOut must be > 0`);
  return { kind: "uniform", bound: Math.sqrt(6 / (fanIn + fanOut)) };
}

/**
 * Draw the values of one weight. Constants draw nothing from `rng`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { drawInit, kaiming } from "./init.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const w = drawInit(kaiming(16), [16, 8], Rng.stream(0)); // Float32Array(128)
 * assert.equal(w.length, 128);
 * assert.deepEqual(drawInit(kaiming(16), [16, 8], Rng.stream(0)), w); // same seed, same weights
 * ```
 */
export function drawInit(spec: InitSpec, shape: readonly number[], rng: Rng): Float32Array {
  const n = shapeSize(shape);
  switch (spec.kind) {
    case "constant":
      return new Float32Array(n).fill(spec.value);
    case "normal": {
      const out = rng.normal(n);
      for (let i = 0; i < n; i++) out[i] *= spec.std;
      return out;
    }
    case "uniform": {
      const out = rng.uniforms(n);
      for (let i = 0; i < n; i++) out[i] = (2 * out[i] - 1) * spec.bound;
      return out;
    }
  }
}

/** Receives weight declarations from model `init` code. */
export interface ParamBuilder {
  /** Declare weight `name` of `shape`, filled by `init`. */
  add(name: string, shape: readonly number[], init: InitSpec): void;
}

function checkDecl(seen: Set<string>, name: string, shape: readonly number[]): void {
  if (seen.has(name)) throw new Error(`ParamBuilder: weight "${name}" declared twice`);
  if (!shape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new Error(`ParamBuilder: weight "${name}" has invalid shape [${shape.join(",")}]`);
  }
  seen.add(name);
}

/**
 * Allocates trainable `tf.Variable`s, drawing values from `rng` in declaration order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TensorBuilder } from "./init.ts";
 * import { initLinear } from "./linear.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const b = new TensorBuilder(Rng.stream(0));
 * initLinear(b, "fc", { inFeatures: 4, outFeatures: 2 });
 * assert.deepEqual(b.params["fc.weight"].shape, [4, 2]);
 * ```
 */
export class TensorBuilder implements ParamBuilder {
  /** The allocated weights. */
  readonly params: Params = {};
  private seen = new Set<string>();
  constructor(private rng: Rng) {}

  add(name: string, shape: readonly number[], init: InitSpec): void {
    checkDecl(this.seen, name, shape);
    const values = drawInit(init, shape, this.rng);
    // No variable name: tfjs names are global, and two models may share parameter names.
    const t = tf.tensor(values, [...shape], "float32");
    this.params[name] = tf.variable(t, true);
    t.dispose(); // the variable holds its own reference to the data
  }
}

/**
 * Records shapes only (no tensors, no randomness): parameter counts of configs too big to allocate.
 *
 * @example
 * ```ts
 * import { ShapeBuilder } from "./init.ts";
 * import { initLinear } from "./linear.ts";
 *
 * const b = new ShapeBuilder();
 * initLinear(b, "fc", { inFeatures: 4, outFeatures: 2 });
 * b.shapes; // { "fc.weight": [4, 2], "fc.bias": [2] }
 * ```
 */
export class ShapeBuilder implements ParamBuilder {
  /** Declared shapes by name. */
  readonly shapes: ParamShapes = {};
  private seen = new Set<string>();

  add(name: string, shape: readonly number[], _init: InitSpec): void {
    checkDecl(this.seen, name, shape);
    this.shapes[name] = [...shape];
  }
}
