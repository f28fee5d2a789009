/**
 * Dense and embedding layers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { initLinear, linear } from "./linear.ts";
 * import { TensorBuilder } from "./init.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const b = new TensorBuilder(Rng.stream(0));
 * initLinear(b, "fc", { inFeatures: 8, outFeatures: 4 });
 * const y = linear(b.params, "fc", tf.ones([2, 3, 8]));
 * assert.deepEqual(y.shape, [2, 3, 4]);
 * ```
 * @module
 */
import type * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import { joinName, type Params } from "./params.ts";
import { kaiming, normal, type ParamBuilder } from "./init.ts";
import type { Net, Ops } from "./ops.ts";
import { withOps } from "./with_ops.ts";

/** Options of {@link initLinear}. */
export interface LinearInit {
  inFeatures: number;
  outFeatures: number;
  /** Add a bias (default true). */
  bias?: boolean;
}

/**
 * Declare `name.weight` `[in, out]` and `name.bias` `[out]` (PyTorch default init).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { initLinear } from "./linear.ts";
 * import { ShapeBuilder } from "./init.ts";
 *
 * const b = new ShapeBuilder();
 * initLinear(b, "time_embedding.linear_1", { inFeatures: 32, outFeatures: 128 });
 * assert.deepEqual(b.shapes["time_embedding.linear_1.weight"], [32, 128]);
 * assert.deepEqual(b.shapes["time_embedding.linear_1.bias"], [128]);
 * ```
 */
export function initLinear(b: ParamBuilder, name: string, o: LinearInit): void {
  b.add(joinName(name, "weight"), [o.inFeatures, o.outFeatures], kaiming(o.inFeatures));
  if (o.bias ?? true) b.add(joinName(name, "bias"), [o.outFeatures], kaiming(o.inFeatures));
}

/**
 * `x @ W + b` over the last axis of a tensor of any rank >= 1.
 * The bias is used when `name.bias` exists.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { linear } from "./linear.ts";
 *
 * // x [..., in] -> x w + b [..., out]
 * const p = {
 *   "fc.weight": tf.variable(tf.tensor2d([[1, 0], [0, 2]])),
 *   "fc.bias": tf.variable(tf.tensor1d([1, 1])),
 * };
 * const y = linear(p, "fc", tf.tensor2d([[3, 4]]));
 * assert.deepEqual(Array.from(y.dataSync()), [4, 9]);
 * ```
 */
export function linear<R extends tf.Rank>(p: Params, name: string, x: tf.Tensor<R>): tf.Tensor<R>;
export function linear<T>(m: Ops<T>, name: string, x: T): T;
export function linear<T>(net: Net<T>, name: string, x: T): T {
  return withOps(net, (m) => {
    const w = m.param(joinName(name, "weight"));
    const inF = m.shape(w)[0];
    const last = m.shape(x).at(-1);
    if (last !== inF && typeof last === "number") {
      throw new Error(`linear "${name}": input last dim ${last} != weight in-features ${inF}`);
    }
    const bias = joinName(name, "bias");
    return m.linear(x, w, m.hasParam(bias) ? m.param(bias) : undefined);
  });
}

/** Options of {@link initEmbedding}. */
export interface EmbeddingInit {
  numEmbeddings: number;
  dim: number;
  /** Standard deviation of the normal init (default 0.02, CLIP's token embedding). */
  std?: number;
}

/**
 * Declare an embedding table `name.weight` `[numEmbeddings, dim]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { initEmbedding } from "./linear.ts";
 * import { ShapeBuilder } from "./init.ts";
 *
 * const b = new ShapeBuilder();
 * initEmbedding(b, "token_embedding", { numEmbeddings: 500, dim: 64 });
 * assert.deepEqual(b.shapes, { "token_embedding.weight": [500, 64] });
 * ```
 */
export function initEmbedding(b: ParamBuilder, name: string, o: EmbeddingInit): void {
  b.add(joinName(name, "weight"), [o.numEmbeddings, o.dim], normal(o.std ?? 0.02));
}

/**
 * Look up rows of `name.weight` for integer ids of any shape: `ids [...] -> [..., dim]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { embedding, initEmbedding } from "./linear.ts";
 * import { TensorBuilder } from "./init.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const b = new TensorBuilder(Rng.stream(0));
 * initEmbedding(b, "token_embedding", { numEmbeddings: 10, dim: 4 });
 * const e = embedding(b.params, "token_embedding", tf.tensor2d([[2, 5, 3]], [1, 3], "int32"));
 * assert.deepEqual(e.shape, [1, 3, 4]);
 * ```
 */
export function embedding(p: Params, name: string, ids: tf.Tensor): tf.Tensor;
export function embedding<T>(m: Ops<T>, name: string, ids: T): T;
export function embedding<T>(net: Net<T>, name: string, ids: T): T {
  return withOps(net, (m) => {
    const table = m.param(joinName(name, "weight"));
    const dtype = m.dtype(ids);
    if (dtype !== "int32" && dtype !== "int64") {
      throw new Error(`embedding "${name}": ids must be int32, got ${dtype}`);
    }
    return m.embedding(table, ids);
  });
}
