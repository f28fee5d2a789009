/**
 * Functional neural-network layers over flat {@link Params}: every layer is a plain function
 * reading its weights by dotted name, with an `init...` helper declaring them on a
 * {@link ParamBuilder}. Layers are written once against the {@link Ops} interface and run on
 * TensorFlow.js when given `Params` ({@link TfOps}, fused kernels included) or on any other ops
 * implementation (the ONNX graph builder in lib/onnx) when given one.
 *
 * @example
 * ```ts
 * import { initLinear, linear, TensorBuilder } from "./mod.ts";
 * import type * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { Rng, STREAM } from "../util/rng.ts";
 *
 * function example(x: tf.Tensor4D) {
 *   const b = new TensorBuilder(Rng.stream(0, [0, STREAM.init]));
 *   initLinear(b, "fc", { inFeatures: 8, outFeatures: 4 });
 *   const y = linear(b.params, "fc", x);
 * }
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
