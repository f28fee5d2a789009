/**
 * Dense and embedding layers.
 *
 * @example
 * ```ts
 * const b = new TensorBuilder(rng);
 * initLinear(b, "fc", { inFeatures: 8, outFeatures: 4 });
 * const y = linear(b.params, "fc", tf.ones([2, 3, 8])); // [2, 3, 4]
 * ```
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { getParam, joinName, type Params } from "./params.ts";
import { kaiming, normal, type ParamBuilder } from "./init.ts";

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
 * initLinear(b, "time_embedding.linear_1", { inFeatures: 32, outFeatures: 128 });
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
 * const y = linear(p, "fc", x); // x [..., in] -> [..., out]
 * ```
 */
export function linear<R extends tf.Rank>(p: Params, name: string, x: tf.Tensor<R>): tf.Tensor<R> {
  const w = getParam(p, joinName(name, "weight"));
  const [inF, outF] = w.shape;
  const last = x.shape[x.shape.length - 1];
  if (last !== inF) {
    throw new Error(`linear "${name}": input last dim ${last} != weight in-features ${inF}`);
  }
  return tf.tidy(() => {
    const x2 = tf.reshape(x, [-1, inF]) as tf.Tensor2D;
    let y: tf.Tensor2D = tf.matMul(x2, w as tf.Tensor2D);
    const bias = p[joinName(name, "bias")];
    if (bias) y = tf.add(y, bias);
    return tf.reshape<tf.Rank>(y, [...x.shape.slice(0, -1), outF]) as tf.Tensor<R>;
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
 * initEmbedding(b, "token_embedding", { numEmbeddings: 500, dim: 64 });
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
 * const e = embedding(p, "token_embedding", tf.tensor2d([[2, 5, 3]], [1, 3], "int32")); // [1,3,64]
 * ```
 */
export function embedding(p: Params, name: string, ids: tf.Tensor): tf.Tensor {
  const w = getParam(p, joinName(name, "weight"));
  if (ids.dtype !== "int32") {
    throw new Error(`embedding "${name}": ids must be int32, got ${ids.dtype}`);
  }
  const [vocab, dim] = w.shape as [number, number];
  return tf.tidy(() => {
    const flat = tf.reshape(ids, [-1]) as tf.Tensor1D;
    // For small vocabularies a one-hot matmul is the faster lookup to train: its gradient is one
    // GEMM, while gather's (UnsortedSegmentSum) is a slow scalar loop on the cpu backends.
    const rows = vocab <= ONE_HOT_MAX_VOCAB
      ? tf.matMul(tf.oneHot(flat, vocab), w as tf.Tensor2D)
      : tf.gather(w, flat);
    return tf.reshape(rows, [...ids.shape, dim]);
  });
}

/** Vocabulary size up to which {@link embedding} looks rows up by one-hot matmul. */
export const ONE_HOT_MAX_VOCAB = 4096;
