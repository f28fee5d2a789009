/**
 * Training-target helpers: timestep sampling, min-SNR-gamma loss weights (Hang et al. 2023) and
 * the caption-dropout mask used to train classifier-free guidance.
 *
 * @example
 * ```ts
 * import { minSnrWeights, sampleTimesteps } from "./loss.ts";
 * import { makeSchedule, SD_SCHEDULER_CONFIG } from "./schedule.ts";
 * import { Rng, STREAM } from "../util/rng.ts";
 *
 * const schedule = makeSchedule(SD_SCHEDULER_CONFIG);
 * const [seed, rank, batch] = [0, 0, 8];
 * const rng = Rng.stream(seed, [rank, STREAM.timesteps]);
 * const t = sampleTimesteps(rng, batch, schedule.numTrainTimesteps);
 * const w = minSnrWeights(t, schedule, 5);
 * ```
 * @module
 */

import type { Rng } from "../util/rng.ts";
import type { NoiseSchedule, PredictionType } from "./types.ts";

/** Options of {@link minSnrWeights}. */
export interface MinSnrOptions {
  /** Clamp on the SNR (default 5, the paper's choice). */
  gamma?: number;
  /** Defaults to the schedule's prediction type. */
  predictionType?: PredictionType;
}

/**
 * Per-sample min-SNR-gamma loss weights: `min(snr, gamma) / snr` for epsilon prediction and
 * `min(snr, gamma) / (snr + 1)` for v-prediction (both equal to weighting the x0 error by
 * `min(snr, gamma)`). Accepts `(t, schedule, gamma, predictionType)` or an options object.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { minSnrWeights } from "./loss.ts";
 * import { makeSchedule } from "./schedule.ts";
 *
 * const schedule = makeSchedule();
 * const w = minSnrWeights([10, 500], schedule, { gamma: 5, predictionType: "v_prediction" });
 * assert.ok(Math.abs(w[0] - 5 / (schedule.snr(10) + 1)) < 1e-6); // high SNR: clamped to gamma
 * assert.ok(Math.abs(w[1] - schedule.snr(500) / (schedule.snr(500) + 1)) < 1e-6);
 * ```
 */
export function minSnrWeights(
  t: ArrayLike<number>,
  schedule: NoiseSchedule,
  gammaOrOpts: number | MinSnrOptions = {},
  predictionType?: PredictionType,
): Float32Array {
  const opts: MinSnrOptions = typeof gammaOrOpts === "number"
    ? { gamma: gammaOrOpts, predictionType }
    : { ...gammaOrOpts };
  const gamma = opts.gamma ?? 5;
  const pt = opts.predictionType ?? schedule.predictionType;
  if (!(gamma > 0)) throw new Error(`minSnrWeights: gamma must be positive, got ${gamma}`);
  if (pt !== "epsilon" && pt !== "v_prediction") {
    throw new Error(`minSnrWeights: predictionType must be "epsilon" or "v_prediction", got ${pt}`);
  }
  const out = new Float32Array(t.length);
  for (let i = 0; i < t.length; i++) {
    const snr = schedule.snr(t[i]);
    const m = Math.min(snr, gamma);
    out[i] = pt === "epsilon" ? m / snr : m / (snr + 1);
  }
  return out;
}

/**
 * `n` training timesteps uniform in `[0, numTrain)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sampleTimesteps } from "./loss.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const t = sampleTimesteps(Rng.stream(0), 8, 1000); // Int32Array(8)
 * assert.equal(t.length, 8);
 * assert.ok(t.every((v) => v >= 0 && v < 1000));
 * assert.deepEqual(sampleTimesteps(Rng.stream(0), 8, 1000), t); // same seed, same draws
 * ```
 */
export function sampleTimesteps(rng: Rng, n: number, numTrain: number): Int32Array {
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(`sampleTimesteps: n must be an integer >= 0, got ${n}`);
  }
  if (!Number.isInteger(numTrain) || numTrain < 1) {
    throw new Error(`sampleTimesteps: numTrain must be a positive integer, got ${numTrain}`);
  }
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.int(numTrain);
  return out;
}

/**
 * Caption-dropout mask for classifier-free guidance training: `mask[i] = 1` means sample `i` is
 * trained with the empty caption (probability `p`), 0 keeps its caption.
 *
 * @example
 * ```ts
 * import { captionDropout } from "./loss.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const batchCaptions = ["a red star", "a blue square"];
 * const drop = captionDropout(Rng.stream(0), batchCaptions.length, 0.1);
 * const captions = batchCaptions.map((c, i) => drop[i] ? "" : c);
 * ```
 */
export function captionDropout(rng: Rng, n: number, p: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(`captionDropout: n must be an integer >= 0, got ${n}`);
  }
  if (!(p >= 0 && p <= 1)) throw new Error(`captionDropout: p must be in [0, 1], got ${p}`);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.uniform() < p ? 1 : 0;
  return out;
}
