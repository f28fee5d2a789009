/**
 * A tiny MLP (3 -> 8 tanh -> 1) on a deterministic regression stream, with the `trainLoop`
 * settings the resume tests share (warmup-cosine LR, grad accumulation 2, clipping, EMA,
 * checkpoints every 3 steps, keep 2): small enough for a few steps in well under a second.
 *
 * @example
 * ```ts
 * const p = initTinyMlp();
 * const r = await trainLoop(tinyMlpLoopOptions(p, { runDir: dir, steps: 10 }));
 * ```
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { Rng, STREAM } from "../../lib/util/rng.ts";
import { type Params, type TrainLoopOptions, warmupCosine } from "../../lib/train/mod.ts";
import type { CheckpointStore } from "../../lib/storage/mod.ts";

/** Seed of the weights, the data stream and the loop's loss RNG. */
export const TINY_MLP_SEED = 17;

/** One batch: 8 rows of 3 inputs, and their 8 targets. */
export interface TinyMlpBatch {
  x: Float32Array;
  y: Float32Array;
}

/**
 * Fresh weights, the same on every call (as in a new process): `l1.weight`, `l1.bias`,
 * `l2.weight` and, unless `outputBias` is false, `l2.bias`.
 *
 * @example
 * ```ts
 * const p = initTinyMlp({ outputBias: false }); // three tensors
 * ```
 */
export function initTinyMlp(o: { outputBias?: boolean } = {}): Params {
  const rng = Rng.stream(TINY_MLP_SEED, [0, STREAM.init]);
  const t = (shape: number[], scale: number) =>
    tf.tidy(() =>
      tf.variable(
        tf.tensor(rng.normal(shape.reduce((a, b) => a * b, 1)).map((v) => v * scale), shape),
      )
    );
  // Drawn in this order from one stream, so the output bias (drawn last) leaves the others alone.
  const p: Params = {
    "l1.weight": t([3, 8], 0.5),
    "l1.bias": t([8], 0.1),
    "l2.weight": t([8, 1], 0.5),
  };
  if (o.outputBias ?? true) p["l2.bias"] = t([1], 0.1);
  return p;
}

/**
 * Deterministic batch for a position: the data stream is indexed by position, so a resumed run
 * sees the same batches as an uninterrupted one.
 *
 * @example
 * ```ts
 * const { batch, position } = tinyMlpBatch(0); // position 1
 * ```
 */
export function tinyMlpBatch(pos: number): { batch: TinyMlpBatch; position: number } {
  const r = Rng.stream(TINY_MLP_SEED, [0, STREAM.data, pos]);
  const x = r.normal(8 * 3);
  const y = new Float32Array(8);
  for (let i = 0; i < 8; i++) y[i] = Math.sin(x[3 * i]) + 0.5 * x[3 * i + 1] * x[3 * i + 2];
  return { batch: { x, y }, position: pos + 1 };
}

/**
 * Mean squared error of the MLP in `p` against noisy targets. The label noise is drawn from the
 * loop's RNG, so an exact resume must restore that RNG's state from the checkpoint too.
 *
 * @example
 * ```ts
 * const loss = tinyMlpLoss(initTinyMlp())(tinyMlpBatch(0).batch, Rng.stream(0));
 * ```
 */
export function tinyMlpLoss(p: Params): (b: TinyMlpBatch, rng: Rng) => tf.Scalar {
  return (b, rng) =>
    tf.tidy(() => {
      const x = tf.tensor2d(b.x, [8, 3]);
      const h = tf.tanh(tf.add(tf.matMul(x, p["l1.weight"]), p["l1.bias"]));
      const y = tf.matMul(h, p["l2.weight"]);
      const out = tf.reshape("l2.bias" in p ? tf.add(y, p["l2.bias"]) : y, [8]);
      const noise = tf.tensor1d(rng.normal(8).map((v) => 0.05 * v));
      return tf.mean(tf.square(tf.sub(out, tf.add(tf.tensor1d(b.y), noise)))) as tf.Scalar;
    });
}

/**
 * `trainLoop` options training `p` for `steps` steps into `runDir` (checkpoints in `store` when
 * given): warmup-cosine LR 0.05 -> 0.005 over 10 steps (2 of warmup), 2 micro-batches per step,
 * clip norm 1, EMA 0.9 with warmup, a checkpoint every 3 steps keeping the last 2, no progress
 * bar. Spread over the result to vary a test.
 *
 * @example
 * ```ts
 * await trainLoop({ ...tinyMlpLoopOptions(p, { runDir, steps: 6 }), itemsPerBatch: 8 });
 * ```
 */
export function tinyMlpLoopOptions(
  p: Params,
  o: { runDir: string; steps: number; store?: CheckpointStore },
): TrainLoopOptions<TinyMlpBatch, number> {
  return {
    ...o,
    params: p,
    lossFn: tinyMlpLoss(p),
    nextBatch: tinyMlpBatch,
    initialPosition: 0,
    lr: warmupCosine({ baseLr: 0.05, warmupSteps: 2, totalSteps: 10, minLr: 0.005 }),
    gradAccum: 2,
    clipNorm: 1.0,
    ema: { decay: 0.9, warmup: true },
    checkpointEvery: 3,
    keepLast: 2,
    seed: TINY_MLP_SEED,
    progress: false,
  };
}
