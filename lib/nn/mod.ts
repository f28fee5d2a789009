/**
 * Functional neural-network layers over flat {@link Params}: every layer is a plain function
 * reading its weights by dotted name, with an `init...` helper declaring them on a
 * {@link ParamBuilder}.
 *
 * @example
 * ```ts
 * import { initLinear, linear, TensorBuilder } from "./mod.ts";
 * const b = new TensorBuilder(Rng.stream(0, [0, STREAM.init]));
 * initLinear(b, "fc", { inFeatures: 8, outFeatures: 4 });
 * const y = linear(b.params, "fc", x);
 * ```
 * @module
 */
import "./gradients.ts";
export * from "./params.ts";
export * from "./init.ts";
export * from "./linear.ts";
export * from "./conv.ts";
export * from "./norm.ts";
export * from "./activations.ts";
export * from "./attention.ts";
export * from "./timestep.ts";
export * from "./resnet.ts";
export * from "./fused.ts";
