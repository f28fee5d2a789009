/**
 * Activations: SiLU, GELU (tanh approximation or exact erf) and the GEGLU feed-forward gate.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { gelu, silu } from "./tf_ops.ts";
 *
 * const y = gelu(silu(tf.tensor4d([0, 0, 0, 0], [1, 2, 2, 1]))); // silu(0) = gelu(0) = 0
 * assert.deepEqual(Array.from(y.dataSync()), [0, 0, 0, 0]);
 * ```
 * @module
 */
import type * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import { joinName, type Params } from "./params.ts";
import type { ParamBuilder } from "./init.ts";
import { initLinear } from "./linear.ts";
import type { GeluKind, Net, Ops } from "./ops.ts";
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
 * import assert from "node:assert/strict";
 * import { initGeglu } from "./activations.ts";
 * import { ShapeBuilder } from "./init.ts";
 *
 * const b = new ShapeBuilder();
 * initGeglu(b, "ff.net.0", { dimIn: 64, dimOut: 256 });
 * assert.deepEqual(b.shapes["ff.net.0.proj.weight"], [64, 512]); // value and gate halves
 * ```
 */
export function initGeglu(b: ParamBuilder, name: string, o: GegluInit): void {
  initLinear(b, joinName(name, "proj"), { inFeatures: o.dimIn, outFeatures: 2 * o.dimOut });
}

/** Options of {@link geglu}. */
export interface GegluOptions {
  /**
   * GELU of the gate (default `"tanh"`, the kit's models; diffusers' GEGLU is `"erf"`, the exact
   * GELU).
   */
  gelu?: GeluKind;
}

/**
 * GEGLU: project to `2*dimOut`, split into `(hidden, gate)`, return `hidden * gelu(gate)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { geglu, initGeglu } from "./activations.ts";
 * import { TensorBuilder } from "./init.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const b = new TensorBuilder(Rng.stream(0));
 * initGeglu(b, "ff.net.0", { dimIn: 4, dimOut: 8 });
 * const y = geglu(b.params, "ff.net.0", tf.ones([1, 2, 2, 4])); // [..., dimIn] -> [..., dimOut]
 * assert.deepEqual(y.shape, [1, 2, 2, 8]);
 * const exact = geglu(b.params, "ff.net.0", tf.ones([1, 2, 2, 4]), { gelu: "erf" }); // diffusers'
 * assert.deepEqual(exact.shape, [1, 2, 2, 8]);
 * ```
 */
export function geglu<R extends tf.Rank>(
  p: Params,
  name: string,
  x: tf.Tensor<R>,
  o?: GegluOptions,
): tf.Tensor<R>;
export function geglu<T>(m: Ops<T>, name: string, x: T, o?: GegluOptions): T;
export function geglu<T>(net: Net<T>, name: string, x: T, o: GegluOptions = {}): T {
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
    return m.mul(half(0), m.gelu(half(d), o.gelu));
  });
}
