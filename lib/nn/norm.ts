/**
 * Group and layer normalisation with learned per-channel scale (`weight`) and shift (`bias`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { groupNorm, initGroupNorm } from "./norm.ts";
 * import { TensorBuilder } from "./init.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const b = new TensorBuilder(Rng.stream(0));
 * initGroupNorm(b, "norm1", 4); // weight 1, bias 0
 * const y = groupNorm(b.params, "norm1", tf.tensor4d([1, 2, 3, 4], [1, 1, 1, 4]), { groups: 2 });
 * y.dataSync().forEach((v, i) => assert.ok(Math.abs(v - [-1, 1, -1, 1][i]) < 1e-3));
 * ```
 * @module
 */
import type * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import { joinName, type Params } from "./params.ts";
import { ones, type ParamBuilder, zeros } from "./init.ts";
import type { Net, Ops } from "./ops.ts";
import { withOps } from "./with_ops.ts";

/**
 * Declare `name.weight` (ones) and `name.bias` (zeros) of size `channels`; shared by group and
 * layer norm.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { initNorm } from "./norm.ts";
 * import { ShapeBuilder } from "./init.ts";
 *
 * const b = new ShapeBuilder();
 * initNorm(b, "final_layer_norm", 64);
 * assert.deepEqual(b.shapes, { "final_layer_norm.weight": [64], "final_layer_norm.bias": [64] });
 * ```
 */
export function initNorm(b: ParamBuilder, name: string, channels: number): void {
  b.add(joinName(name, "weight"), [channels], ones());
  b.add(joinName(name, "bias"), [channels], zeros());
}

/**
 * Alias of {@link initNorm} for group norms.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { initGroupNorm } from "./norm.ts";
 * import { ShapeBuilder } from "./init.ts";
 *
 * const b = new ShapeBuilder();
 * initGroupNorm(b, "conv_norm_out", 32);
 * assert.deepEqual(b.shapes["conv_norm_out.weight"], [32]);
 * ```
 */
export const initGroupNorm: typeof initNorm = initNorm;
/**
 * Alias of {@link initNorm} for layer norms.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { initLayerNorm } from "./norm.ts";
 * import { ShapeBuilder } from "./init.ts";
 *
 * const b = new ShapeBuilder();
 * initLayerNorm(b, "norm1", 64);
 * assert.deepEqual(b.shapes["norm1.bias"], [64]);
 * ```
 */
export const initLayerNorm: typeof initNorm = initNorm;

/** Options of {@link groupNorm}. */
export interface GroupNormOptions {
  /** Number of groups; must divide the channel count. */
  groups: number;
  /** Variance epsilon (default 1e-5, PyTorch's GroupNorm). */
  eps?: number;
  /** Apply SiLU to the output (GroupNorm-SiLU, fused into one kernel on `cpu-blas` and `webgpu`). */
  silu?: boolean;
}

/**
 * GroupNorm over channels-last input `[B, ..., C]` (rank 3 or 4): each sample's channels are split
 * into `groups` groups normalised over all positions and the group's channels (biased variance),
 * optionally followed by SiLU. On `cpu-blas` and `webgpu` this is one fused kernel each way
 * (lib/nn/fused.ts), elsewhere composed tfjs ops with the same semantics.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { groupNorm, initGroupNorm } from "./norm.ts";
 * import { TensorBuilder } from "./init.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const b = new TensorBuilder(Rng.stream(0));
 * initGroupNorm(b, "norm", 4);
 * const x = tf.tensor4d([1, 3, 5, 7], [1, 1, 1, 4]);
 * const z = groupNorm(b.params, "norm", x, { groups: 2 }).dataSync(); // [-1, 1, -1, 1]
 * const y = groupNorm(b.params, "norm", x, { groups: 2, silu: true }).dataSync(); // silu(z)
 * y.forEach((v, i) => assert.ok(Math.abs(v - z[i] / (1 + Math.exp(-z[i]))) < 1e-4));
 * ```
 */
export function groupNorm<R extends tf.Rank>(
  p: Params,
  name: string,
  x: tf.Tensor<R>,
  opts: GroupNormOptions,
): tf.Tensor<R>;
export function groupNorm<T>(m: Ops<T>, name: string, x: T, opts: GroupNormOptions): T;
export function groupNorm<T>(net: Net<T>, name: string, x: T, opts: GroupNormOptions): T {
  return withOps(net, (m) => {
    const c = m.shape(x).at(-1);
    const g = opts.groups;
    if (!Number.isInteger(g) || g <= 0 || typeof c !== "number" || c % g !== 0) {
      throw new Error(`groupNorm "${name}": groups=${g} must divide channels=${c}`);
    }
    const weight = m.param(joinName(name, "weight"));
    const bias = m.param(joinName(name, "bias"));
    return m.groupNorm(x, weight, bias, { groups: g, eps: opts.eps ?? 1e-5, silu: !!opts.silu });
  });
}

/**
 * LayerNorm over the last axis (biased variance, eps default 1e-5). On `cpu-blas` and `webgpu`
 * this is the fused GroupNorm kernel with one group per row, elsewhere composed tfjs ops.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { initLayerNorm, layerNorm } from "./norm.ts";
 * import { TensorBuilder } from "./init.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const b = new TensorBuilder(Rng.stream(0));
 * initLayerNorm(b, "norm1", 2);
 * const h = tf.tensor3d([[[1, 3], [10, 20]]]); // h [B, T, D]
 * const y = layerNorm(b.params, "norm1", h).dataSync(); // each token to mean 0, std 1
 * y.forEach((v, i) => assert.ok(Math.abs(v - [-1, 1, -1, 1][i]) < 1e-3));
 * ```
 */
export function layerNorm<R extends tf.Rank>(
  p: Params,
  name: string,
  x: tf.Tensor<R>,
  opts?: { eps?: number },
): tf.Tensor<R>;
export function layerNorm<T>(m: Ops<T>, name: string, x: T, opts?: { eps?: number }): T;
export function layerNorm<T>(net: Net<T>, name: string, x: T, opts: { eps?: number } = {}): T {
  return withOps(net, (m) => {
    const weight = m.param(joinName(name, "weight"));
    const bias = m.param(joinName(name, "bias"));
    const d = m.shape(x).at(-1), size = m.shape(weight)[0];
    if (typeof d === "number" && size !== d) {
      throw new Error(`layerNorm "${name}": input last dim ${d} != weight size ${size}`);
    }
    return m.layerNorm(x, weight, bias, { eps: opts.eps ?? 1e-5 });
  });
}
