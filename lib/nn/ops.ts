/**
 * The ops every layer and model is written against, so each is defined once and runs on any
 * implementation: TensorFlow.js tensors for training and inference ({@link TfOps}, with the fused
 * kernels and custom gradients), or the ONNX graph builder for export (`OnnxOps` in lib/onnx). A
 * future accelerator executor or compiled training step is one more implementation.
 *
 * The ops are the units a backend implements natively: element-wise math, shape changes, and
 * the fusable layer kernels (linear, conv2d, group/layer norm, multi-head attention, embedding,
 * nearest 2x upsampling). Layers (lib/nn) add parameter names and composition; models (lib/models)
 * add structure. Semantics are TensorFlow.js': tensors are logically NHWC (images) or
 * `[B, T, C]` (sequences), and an implementation may store them in another physical layout (the
 * ONNX one keeps images NCHW) as long as every op means the same thing.
 *
 * Layers and models take a {@link Net}: either a `Params` record, which runs them on TensorFlow.js
 * inside `tf.tidy`, or an `Ops` object, which runs them on that implementation.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { initResnetBlock, resnetBlock } from "./resnet.ts";
 * import { TensorBuilder } from "./init.ts";
 * import { Rng } from "../util/rng.ts";
 * import { OnnxOps, readParams } from "../onnx/onnx_ops.ts";
 * import { OnnxGraph } from "../onnx/writer.ts";
 *
 * const b = new TensorBuilder(Rng.stream(0));
 * initResnetBlock(b, "mid", { inChannels: 4, outChannels: 4 });
 * const y = resnetBlock(b.params, "mid", tf.ones([1, 4, 4, 4]), { groups: 2 }); // TensorFlow.js
 * assert.deepEqual(y.shape, [1, 4, 4, 4]);
 * const m = new OnnxOps(new OnnxGraph(), await readParams(b.params));
 * const xv = m.input("x", "float32", [1, 4, 4, 4]);
 * const v = resnetBlock(m, "mid", xv, { groups: 2 }); // ONNX nodes
 * assert.deepEqual(m.shape(v), [1, 4, 4, 4]);
 * ```
 * @module
 */
import type { Params } from "./params.ts";

/** A size only known when the graph runs (an export's batch or image height). */
export interface SymbolicDim {
  /** What the size is, for messages (`"batch"`, `"height"`). */
  readonly symbolic: string;
}

/** One axis of a tensor's (logical) shape. */
export type Dim = number | SymbolicDim;

/** Element types the ops deal in. */
export type OpsDType = "float32" | "int32" | "int64" | "bool";

/**
 * Which GELU: `"tanh"`, the approximation `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))` the
 * kit's own models use, or `"erf"`, the exact `0.5 x (1 + erf(x / sqrt 2))` (PyTorch's default,
 * and so diffusers' GEGLU). They differ by up to 4.7e-4 (at x = ±2.7).
 */
export type GeluKind = "tanh" | "erf";

/** Options of {@link Ops.conv2d}. */
export interface ConvOpOptions {
  stride: number;
  /** Symmetric zero padding `[rows, columns]`. */
  pad: [number, number];
}

/** Options of {@link Ops.groupNorm}. */
export interface GroupNormOpOptions {
  groups: number;
  eps: number;
  /** Apply SiLU to the output. */
  silu: boolean;
}

/** Options of {@link Ops.attention}. */
export interface AttentionOpOptions<T> {
  heads: number;
  /** `[B, Tk]`: 1 (or true) = attend, 0 = padding no query may attend to. */
  keyMask?: T;
  /** Query i attends only to keys j <= i. */
  causal?: boolean;
}

/**
 * Operations on tensors of type `T`. Shapes and axes are logical (NHWC for images); `-1` in a
 * reshape takes the remaining size. Every op returns a new tensor.
 */
export interface Ops<T> {
  /** Weight `name`; fails naming the missing weight. */
  param(name: string): T;
  /** Whether weight `name` exists (optional biases, shortcuts, time projections). */
  hasParam(name: string): boolean;
  /** Logical shape; sizes an implementation only knows at run time are {@link SymbolicDim}s. */
  shape(x: T): readonly Dim[];
  dtype(x: T): OpsDType;
  /** Run `fn` as one unit (TensorFlow.js: `tf.tidy`, freeing its intermediates). */
  scope<R>(fn: () => R): R;

  /** A float32 constant. */
  constant(values: Float32Array, shape: number[]): T;
  /** Integer ids `0..n-1` `[n]`. */
  positions(n: number): T;

  add(a: T, b: T | number): T;
  mul(a: T, b: T | number): T;
  /** `x * sigmoid(x)`. */
  silu(x: T): T;
  /** GELU, the tanh approximation unless `kind` is `"erf"` (see {@link GeluKind}). */
  gelu(x: T, kind?: GeluKind): T;
  sin(x: T): T;
  cos(x: T): T;
  clip(x: T, min: number, max: number): T;
  cast(x: T, dtype: "float32"): T;
  /** `x == value` element-wise (bool). */
  equal(x: T, value: number): T;
  /** Index of the first maximum along `axis` (axis removed). */
  argMax(x: T, axis: number): T;
  /** float32 one-hot rows `[..., depth]` of integer `indices`. */
  oneHot(indices: T, depth: number): T;

  reshape(x: T, shape: readonly Dim[]): T;
  concat(xs: T[], axis: number): T;
  /** Split into `parts` equal pieces, or pieces of the given sizes, along `axis`. */
  split(x: T, parts: number | number[], axis: number): T[];
  slice(x: T, begin: number[], size: number[]): T;
  /** Zero padding `[before, after]` per axis. */
  pad(x: T, paddings: [number, number][]): T;
  /** Mean over `axes` (removed). */
  mean(x: T, axes: number[]): T;
  /** Sum over `axis` (removed). */
  sum(x: T, axis: number): T;

  /** `x [..., in] @ w [in, out] (+ b [out])`. */
  linear(x: T, w: T, b?: T): T;
  /** NHWC convolution with an HWIO `[kh, kw, cin, cout]` weight (+ bias). */
  conv2d(x: T, w: T, b: T | undefined, o: ConvOpOptions): T;
  /** Nearest-neighbour 2x upsampling of an NHWC image. */
  upsample2x(x: T): T;
  /** GroupNorm over the channels (last axis) of `[B, ..., C]`, biased variance, then affine. */
  groupNorm(x: T, gamma: T, beta: T, o: GroupNormOpOptions): T;
  /** LayerNorm over the last axis, biased variance, then affine. */
  layerNorm(x: T, gamma: T, beta: T, o: { eps: number }): T;
  /** Each row of the last axis to mean 0, variance 1: a LayerNorm without scale or shift. */
  standardize(x: T, o: { eps: number }): T;
  /** Multi-head `softmax(q k^T / sqrt(dHead) + masks) v` on projected `[B, T, D]` tensors. */
  attention(q: T, k: T, v: T, o: AttentionOpOptions<T>): T;
  /** Rows of `table [vocab, dim]` for integer ids of any shape: `[..., dim]`. */
  embedding(table: T, ids: T): T;
}

/**
 * Where a layer reads its weights and runs its ops: a `Params` record (TensorFlow.js) or an
 * {@link Ops} implementation (its own weights).
 */
export type Net<T> = Params | Ops<T>;
