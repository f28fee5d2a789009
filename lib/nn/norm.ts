/**
 * Group and layer normalisation with learned per-channel scale (`weight`) and shift (`bias`).
 *
 * @example
 * ```ts
 * initGroupNorm(b, "norm1", 64);
 * const y = groupNorm(b.params, "norm1", x, { groups: 32 }); // x [B,H,W,64]
 * ```
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { getParam, joinName, type Params } from "./params.ts";
import { ones, type ParamBuilder, zeros } from "./init.ts";
import { silu } from "./activations.ts";
import { fusedGroupNorm, fusedNormActive } from "./fused.ts";

/**
 * Declare `name.weight` (ones) and `name.bias` (zeros) of size `channels`; shared by group and
 * layer norm.
 *
 * @example
 * ```ts
 * initNorm(b, "final_layer_norm", 64);
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
 * initGroupNorm(b, "conv_norm_out", 32);
 * ```
 */
export const initGroupNorm: typeof initNorm = initNorm;
/**
 * Alias of {@link initNorm} for layer norms.
 *
 * @example
 * ```ts
 * initLayerNorm(b, "norm1", 64);
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
 * (lib/nn/fused.ts, {@link fusedNormActive}), elsewhere composed tfjs ops with the same semantics.
 *
 * @example
 * ```ts
 * groupNorm(p, "norm", x, { groups: 8 });
 * groupNorm(p, "norm1", x, { groups: 8, silu: true }); // silu(groupNorm(...))
 * ```
 */
export function groupNorm<R extends tf.Rank>(
  p: Params,
  name: string,
  x: tf.Tensor<R>,
  opts: GroupNormOptions,
): tf.Tensor<R> {
  const c = x.shape[x.shape.length - 1];
  const g = opts.groups;
  if (!Number.isInteger(g) || g <= 0 || c % g !== 0) {
    throw new Error(`groupNorm "${name}": groups=${g} must divide channels=${c}`);
  }
  const weight = getParam(p, joinName(name, "weight"));
  const bias = getParam(p, joinName(name, "bias"));
  const eps = opts.eps ?? 1e-5;
  if (x.dtype === "float32" && fusedNormActive()) {
    return fusedGroupNorm(x, weight, bias, { groups: g, eps, silu: opts.silu });
  }
  return tf.tidy(() => {
    const xg = tf.reshape(x, [x.shape[0], -1, g, c / g]);
    const { mean, variance } = tf.moments(xg, [1, 3], true);
    const xn = tf.mul(tf.sub(xg, mean), tf.rsqrt(tf.add(variance, eps)));
    const y = tf.add(tf.mul(tf.reshape(xn, x.shape), weight), bias) as tf.Tensor<R>;
    return opts.silu ? silu(y) : y;
  });
}

/**
 * LayerNorm over the last axis (biased variance, eps default 1e-5). On `cpu-blas` and `webgpu`
 * this is the fused GroupNorm kernel with one group per row, elsewhere composed tfjs ops.
 *
 * @example
 * ```ts
 * layerNorm(p, "norm1", h); // h [B, T, D]
 * ```
 */
export function layerNorm<R extends tf.Rank>(
  p: Params,
  name: string,
  x: tf.Tensor<R>,
  opts: { eps?: number } = {},
): tf.Tensor<R> {
  const weight = getParam(p, joinName(name, "weight"));
  const bias = getParam(p, joinName(name, "bias"));
  const d = x.shape[x.shape.length - 1];
  if (weight.shape[0] !== d) {
    throw new Error(`layerNorm "${name}": input last dim ${d} != weight size ${weight.shape[0]}`);
  }
  const eps = opts.eps ?? 1e-5;
  if (x.dtype === "float32" && fusedNormActive()) {
    // A LayerNorm is a one-group GroupNorm of each row: one fused kernel instead of ~10 forward
    // and ~25 backward tfjs kernels (a UNet step runs dozens of LayerNorms).
    return tf.tidy(() => {
      const rows = tf.reshape(x, [x.size / d, 1, d]);
      const y = fusedGroupNorm(rows, weight, bias, { groups: 1, eps, silu: false });
      return tf.reshape(y, x.shape) as tf.Tensor<R>;
    });
  }
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    const xn = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
    return tf.add(tf.mul(xn, weight), bias) as tf.Tensor<R>;
  });
}
