/**
 * The training-step workload both UNet benchmarks time (`train_step.ts`, `webgpu_probe.ts`): the
 * kit's `UNET_PRESETS.small` at 8x8x4 latents with a [batch, 24, 64] text context, seeded weights
 * and data, and a plain MSE loss against a random target, so their numbers describe the same step.
 *
 * @example
 * ```ts
 * const u = unetFixture(32, 0);
 * const { value, grads } = computeGrads(u.params, u.loss);
 * ```
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { initUnet, UNET_PRESETS, type UnetConfig, unetForward } from "../lib/models/unet.ts";
import { disposeParams, type Params } from "../lib/nn/mod.ts";
import { Rng, STREAM } from "../lib/util/rng.ts";

/** Text context length of the benchmark's conditioning. */
export const BENCH_TOKENS = 24;

/** Seeded weights, inputs and loss of one benchmark step. */
export interface UnetFixture {
  cfg: UnetConfig;
  params: Params;
  /** MSE of the UNet's prediction against the fixed random target. */
  loss: () => tf.Scalar;
  dispose: () => void;
}

/**
 * Build the benchmark step for `batch` from `seed` (weights, then x, target, t, context), on the
 * small UNet unless `cfg` names another.
 */
export function unetFixture(
  batch: number,
  seed: number,
  o: { cfg?: UnetConfig } = {},
): UnetFixture {
  const cfg = o.cfg ?? UNET_PRESETS.small;
  const params = initUnet(cfg, Rng.stream(seed, [0, STREAM.init]));
  const rng = Rng.stream(seed, [0, STREAM.noise]);
  const x = tf.tensor4d(rng.normal(batch * 64 * cfg.inChannels), [batch, 8, 8, cfg.inChannels]);
  const target = tf.tensor4d(rng.normal(batch * 64 * cfg.outChannels), [
    batch,
    8,
    8,
    cfg.outChannels,
  ]);
  const t = tf.tensor1d(Float32Array.from({ length: batch }, () => rng.uniform() * 999));
  const context = tf.tensor3d(rng.normal(batch * BENCH_TOKENS * cfg.contextDim), [
    batch,
    BENCH_TOKENS,
    cfg.contextDim,
  ]);
  const loss = () =>
    tf.tidy(() =>
      tf.mean(tf.square(tf.sub(unetForward(params, cfg, { x, t, context }), target))) as tf.Scalar
    );
  return {
    cfg,
    params,
    loss,
    dispose: () => {
      disposeParams(params);
      tf.dispose([x, target, t, context]);
    },
  };
}
