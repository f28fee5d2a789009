/**
 * Sinusoidal timestep embedding, as diffusers' `get_timestep_embedding`.
 *
 * @example
 * ```ts
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { timestepEmbedding } from "./timestep.ts";
 *
 * const e = timestepEmbedding(tf.tensor1d([0, 500, 999]), { dim: 320 }); // [3, 320]
 * ```
 * @module
 */
import type * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import type { Ops } from "./ops.ts";
import { withOps } from "./with_ops.ts";

/** Options of {@link timestepEmbedding}. */
export interface TimestepEmbeddingOptions {
  /** Output width. */
  dim: number;
  /** Put cos before sin (default true, Stable Diffusion). */
  flipSinToCos?: boolean;
  /** Frequency exponent denominator is `dim/2 - shift` (default 0, Stable Diffusion). */
  downscaleFreqShift?: number;
  /** Multiplies the angles (default 1). */
  scale?: number;
  /** Longest period (default 10000). */
  maxPeriod?: number;
}

/**
 * The frequencies `exp(-ln(maxPeriod) * i / (half - shift))`, i = 0..half-1.
 *
 * @example
 * ```ts
 * timestepFrequencies({ dim: 4 }); // Float32Array [1, 0.01]
 * ```
 */
export function timestepFrequencies(opts: TimestepEmbeddingOptions): Float32Array {
  const half = Math.floor(opts.dim / 2);
  const shift = opts.downscaleFreqShift ?? 0;
  const maxPeriod = opts.maxPeriod ?? 10000;
  if (!(opts.dim >= 2)) throw new Error(`timestepEmbedding: dim must be >= 2, got ${opts.dim}`);
  const f = new Float32Array(half);
  for (let i = 0; i < half; i++) f[i] = Math.exp(-Math.log(maxPeriod) * i / (half - shift));
  return f;
}

/**
 * Embed float timesteps `t [N]` as `[N, dim]`: `[cos(t f), sin(t f)]` (or sin first when
 * `flipSinToCos` is false), zero-padded by one column when `dim` is odd. On TensorFlow.js call it
 * as `timestepEmbedding(t, opts)`; on other {@link Ops} as `timestepEmbedding(m, t, opts)`.
 *
 * @example
 * ```ts
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { timestepEmbedding } from "./timestep.ts";
 *
 * timestepEmbedding(tf.tensor1d([10]), { dim: 8 });
 * ```
 */
export function timestepEmbedding(t: tf.Tensor1D, opts: TimestepEmbeddingOptions): tf.Tensor2D;
export function timestepEmbedding<T>(m: Ops<T>, t: T, opts: TimestepEmbeddingOptions): T;
export function timestepEmbedding<T>(
  ...args: [tf.Tensor1D, TimestepEmbeddingOptions] | [Ops<T>, T, TimestepEmbeddingOptions]
): T | tf.Tensor2D {
  if (args.length === 2) {
    const [t, opts] = args;
    if (t.rank !== 1) throw new Error(`timestepEmbedding: t must be 1-D, got shape [${t.shape}]`);
    return withOps({}, (m) => embed(m as Ops<tf.Tensor>, t, opts)) as tf.Tensor2D;
  }
  const [m, t, opts] = args;
  return m.scope(() => embed(m, t, opts));
}

function embed<T>(m: Ops<T>, t: T, opts: TimestepEmbeddingOptions): T {
  const freqs = timestepFrequencies(opts);
  const half = freqs.length;
  const ang = m.mul(m.reshape(m.cast(t, "float32"), [-1, 1]), m.constant(freqs, [1, half]));
  const scaled = opts.scale !== undefined && opts.scale !== 1 ? m.mul(ang, opts.scale) : ang;
  const sin = m.sin(scaled);
  const cos = m.cos(scaled);
  const emb = (opts.flipSinToCos ?? true) ? m.concat([cos, sin], 1) : m.concat([sin, cos], 1);
  return opts.dim % 2 === 1 ? m.pad(emb, [[0, 0], [0, 1]]) : emb;
}
