/**
 * Activations: SiLU, GELU (tanh approximation) and the GEGLU feed-forward gate.
 *
 * @example
 * ```ts
 * const y = gelu(silu(x));
 * ```
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { getParam, joinName, type Params } from "./params.ts";
import type { ParamBuilder } from "./init.ts";
import { initLinear } from "./linear.ts";
import { fusedGelu, fusedKernelsActive, fusedSilu } from "./fused.ts";

/**
 * SiLU (swish): `x * sigmoid(x)`; one fused kernel on `cpu-blas`.
 *
 * @example
 * ```ts
 * silu(tf.scalar(0)); // 0
 * ```
 */
export function silu<T extends tf.Tensor>(x: T): T {
  if (x.dtype === "float32" && fusedKernelsActive()) return fusedSilu(x);
  return tf.tidy(() => tf.mul(x, tf.sigmoid(x)) as T);
}

const GELU_C = Math.sqrt(2 / Math.PI);

/**
 * GELU, tanh approximation: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`; one fused kernel
 * on `cpu-blas`.
 *
 * @example
 * ```ts
 * gelu(tf.scalar(1)); // ~0.8412
 * ```
 */
export function gelu<T extends tf.Tensor>(x: T): T {
  if (x.dtype === "float32" && fusedKernelsActive()) return fusedGelu(x);
  return tf.tidy(() => {
    const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), GELU_C);
    return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1)) as T;
  });
}

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
 * initGeglu(b, "ff.net.0", { dimIn: 64, dimOut: 256 });
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
 * geglu(p, "ff.net.0", x); // [..., dimIn] -> [..., dimOut]
 * ```
 */
export function geglu<R extends tf.Rank>(p: Params, name: string, x: tf.Tensor<R>): tf.Tensor<R> {
  const w = getParam(p, joinName(name, "proj.weight"));
  const bias = p[joinName(name, "proj.bias")];
  const [inF, two] = w.shape;
  const d = two / 2;
  return tf.tidy(() => {
    // Slice the (small) weight instead of splitting the (large) activation: same result, and the
    // gradient is a cheap pad of a weight-sized tensor.
    const x2 = tf.reshape(x, [-1, inF]) as tf.Tensor2D;
    const half = (start: number) => {
      let y: tf.Tensor2D = tf.matMul(x2, tf.slice(w, [0, start], [inF, d]) as tf.Tensor2D);
      if (bias) y = tf.add(y, tf.slice(bias, [start], [d]));
      return y;
    };
    const out = tf.mul(half(0), gelu(half(d)));
    return tf.reshape<tf.Rank>(out, [...x.shape.slice(0, -1), d]) as tf.Tensor<R>;
  });
}
