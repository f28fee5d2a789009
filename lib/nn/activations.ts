/**
 * Activations: SiLU, GELU (tanh approximation) and the GEGLU feed-forward gate.
 *
 * @example
 * ```ts
 * import type * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { gelu, silu } from "./tf_ops.ts";
 *
 * function example(x: tf.Tensor4D) {
 *   const y = gelu(silu(x));
 * }
 * ```
 * @module
 */
import type * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import { joinName, type Params } from "./params.ts";
import type { ParamBuilder } from "./init.ts";
import { initLinear } from "./linear.ts";
import type { Net, Ops } from "./ops.ts";
import { withOps } from "./with_ops.ts";

/** Options of {@link initGeglu}. */
export interface GegluInit {
  dimIn: number;
  /** Width of the gated hidden layer (the projection outputs twice this). */
  dimOut: number;
}

/**
 * Declare GEGLU's projection `name.proj` `[dimIn, 2*dimOut]` (diffusers' GEGLU).
 *
 * @example
 * ```ts
 * import { initGeglu } from "./activations.ts";
 * import type { ParamBuilder } from "./init.ts";
 *
 * function example(b: ParamBuilder) {
 *   initGeglu(b, "ff.net.0", { dimIn: 64, dimOut: 256 });
 * }
 * ```
 */
export function initGeglu(b: ParamBuilder, name: string, o: GegluInit): void {
  initLinear(b, joinName(name, "proj"), { inFeatures: o.dimIn, outFeatures: 2 * o.dimOut });
}

/**
 * GEGLU: project to `2*dimOut`, split into `(hidden, gate)`, return `hidden * gelu(gate)`.
 *
 * @example
 * ```ts
 * import type * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { geglu } from "./activations.ts";
 * import type { Params } from "./params.ts";
 *
 * function example(
 *   p: Params,
 *   x: tf.Tensor4D,
 * ) {
 *   geglu(p, "ff.net.0", x); // [..., dimIn] -> [..., dimOut]
 * }
 * ```
 */
export function geglu<R extends tf.Rank>(p: Params, name: string, x: tf.Tensor<R>): tf.Tensor<R>;
export function geglu<T>(m: Ops<T>, name: string, x: T): T;
export function geglu<T>(net: Net<T>, name: string, x: T): T {
  return withOps(net, (m) => {
    const w = m.param(joinName(name, "proj.weight"));
    const biasName = joinName(name, "proj.bias");
    const bias = m.hasParam(biasName) ? m.param(biasName) : undefined;
    const [inF, two] = m.shape(w) as number[];
    const d = two / 2;
    // Slice the (small) weight instead of splitting the (large) activation: same result, and the
    // gradient is a cheap pad of a weight-sized tensor.
    const half = (start: number) =>
      m.linear(x, m.slice(w, [0, start], [inF, d]), bias && m.slice(bias, [start], [d]));
    return m.mul(half(0), m.gelu(half(d)));
  });
}
