/**
 * Group and layer normalisation with learned per-channel scale (`weight`) and shift (`bias`).
 *
 * @example
 * ```ts
 * import type * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { groupNorm, initGroupNorm } from "./norm.ts";
 * import type { TensorBuilder } from "./init.ts";
 *
 * function example(
 *   b: TensorBuilder,
 *   x: tf.Tensor4D, // [B, H, W, 64]
 * ) {
 *   initGroupNorm(b, "norm1", 64);
 *   const y = groupNorm(b.params, "norm1", x, { groups: 32 });
 * }
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
 * import { initNorm } from "./norm.ts";
 * import type { ParamBuilder } from "./init.ts";
 *
 * function example(b: ParamBuilder) {
 *   initNorm(b, "final_layer_norm", 64);
 * }
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
 * import { initGroupNorm } from "./norm.ts";
 * import type { ParamBuilder } from "./init.ts";
 *
 * function example(b: ParamBuilder) {
 *   initGroupNorm(b, "conv_norm_out", 32);
 * }
 * ```
 */
export const initGroupNorm: typeof initNorm = initNorm;
/**
 * Alias of {@link initNorm} for layer norms.
 *
 * @example
 * ```ts
 * import { initLayerNorm } from "./norm.ts";
 * import type { ParamBuilder } from "./init.ts";
 *
 * function example(b: ParamBuilder) {
 *   initLayerNorm(b, "norm1", 64);
 * }
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
 * import type * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { groupNorm } from "./norm.ts";
 * import type { Params } from "./params.ts";
 *
 * function example(
 *   p: Params,
 *   x: tf.Tensor4D,
 * ) {
 *   groupNorm(p, "norm", x, { groups: 8 });
 *   groupNorm(p, "norm1", x, { groups: 8, silu: true }); // silu(groupNorm(...))
 * }
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
 * import type * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { layerNorm } from "./norm.ts";
 * import type { Params } from "./params.ts";
 *
 * function example(
 *   h: tf.Tensor4D,
 *   p: Params,
 * ) {
 *   layerNorm(p, "norm1", h); // h [B, T, D]
 * }
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
