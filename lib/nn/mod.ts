/**
 * Functional neural-network layers over flat {@link Params}: every layer is a plain function
 * reading its weights by dotted name, with an `init...` helper declaring them on a
 * {@link ParamBuilder}. Layers are written once against the {@link Ops} interface and run on
 * TensorFlow.js when given `Params` ({@link TfOps}, fused kernels included) or on any other ops
 * implementation (the ONNX graph builder in lib/onnx) when given one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { initLinear, linear, TensorBuilder } from "./mod.ts";
 * import { Rng, STREAM } from "../util/rng.ts";
 *
 * const b = new TensorBuilder(Rng.stream(0, [0, STREAM.init]));
 * initLinear(b, "fc", { inFeatures: 8, outFeatures: 4 });
 * assert.deepEqual(linear(b.params, "fc", tf.ones([1, 2, 2, 8])).shape, [1, 2, 2, 4]);
 * ```
 * @module
 */
import "./gradients.ts";
export * from "./params.ts";
export * from "./ops.ts";
export * from "./tf_ops.ts";
export * from "./with_ops.ts";
export * from "./init.ts";
export * from "./linear.ts";
export * from "./conv.ts";
export * from "./norm.ts";
export * from "./activations.ts";
export * from "./attention.ts";
export * from "./timestep.ts";
export * from "./resnet.ts";
export * from "./fused.ts";
