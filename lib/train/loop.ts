/**
 * A generic, resumable training loop shared by every stage (autoencoder, CLIP, UNet).
 *
 * Each step: draw `gradAccum` micro-batches with `nextBatch(position)`, take gradients of
 * `lossFn(batch, rng)` with `tf.variableGrads`, average them, clip the global norm, apply AdamW,
 * update the EMA, log, and checkpoint. A checkpoint holds everything the next step depends on
 * (params, EMA, optimizer moments and step count, the loss RNG state, the data position), so a run
 * resumed from one produces bit-identical losses to a run that was never interrupted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { trainLoop } from "./loop.ts";
 * import { warmupCosine } from "./lr.ts";
 *
 * // Fit w to the batches' target 2 (loss (w - 2)^2); runs/mlp would be a real run folder.
 * const runDir = await Deno.makeTempDir();
 * const params = { w: tf.variable(tf.zeros([1])) };
 * const res = await trainLoop<number, number>({
 *   runDir,
 *   params,
 *   lossFn: (y, _rng) => tf.sum(tf.square(tf.sub(params.w, y))),
 *   nextBatch: (pos) => ({ batch: 2, position: pos + 1 }),
 *   initialPosition: 0,
 *   steps: 40,
 *   lr: warmupCosine({ baseLr: 0.2, warmupSteps: 5, totalSteps: 40 }),
 *   seed: 1,
 *   checkpointEvery: 20,
 *   resume: true,
 *   progress: false,
 * });
 * assert.ok(res.history.at(-1)!.loss < res.history[0].loss);
 * assert.deepEqual([...Deno.readDirSync(runDir)].map((e) => e.name).sort(), [
 *   "ckpt-00000020",
 *   "ckpt-00000040",
 *   "metrics.jsonl",
 * ]);
 * res.dispose();
 * await Deno.remove(runDir, { recursive: true });
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import { Rng, type RngState } from "../util/rng.ts";
import { pruneCheckpoints, saveCheckpoint } from "./checkpoint.ts";
import { constantLr, type LrSchedule } from "./lr.ts";
import { type MetricRecord, truncateMetrics } from "./metrics.ts";
import {
  checkpointDue,
  intOption,
  resumedRng,
  saveOnAllRanks,
  startCheckpoint,
  startProgress,
  StepLog,
} from "./loop_parts.ts";
import {
  AdamW,
  type AdamWOptions,
  clipGradNorm,
  computeGrads,
  Ema,
  type EmaOptions,
  globalNorm,
  GradAccumulator,
} from "./optim.ts";
import type { CheckpointStore } from "../storage/store.ts";
import { storeFor } from "../storage/location.ts";
import { assertSameOnAllRanks, type Communicator, singleProcess } from "../data_parallel/comm.ts";
import { averageGrads, lossStreamPath, type SeedStreams } from "../data_parallel/training.ts";
import { type Params, restoreParams, snapshotParams } from "./tensor_data.ts";

/** Options for {@link trainLoop}. `B` is the batch type, `P` the JSON-safe data position. */
export interface TrainLoopOptions<B, P> {
  /** Local run folder: `metrics.jsonl` goes here, and checkpoints unless `store` is given. */
  runDir: string;
  /** Checkpoint storage (default: a LocalStore on `runDir`). */
  store?: CheckpointStore;
  /** Trainable weights, updated in place. */
  params: Params;
  /**
   * Loss of one micro-batch; draw all randomness from `rng` so resumes are exact. `micro` says
   * which of the step's `gradAccum` micro-batches this is (index 0 first), so a loss can draw the
   * whole step's randomness at once and K micro-batches of B draw exactly what one batch of K x B
   * would.
   */
  lossFn: (batch: B, rng: Rng, micro: MicroBatch) => tf.Scalar;
  /** Batch at `position` and the position after it. tf.Tensors inside the batch are disposed. */
  nextBatch: (position: P) => { batch: B; position: P } | Promise<{ batch: B; position: P }>;
  /** Data position of a fresh run (saved in checkpoints as JSON). */
  initialPosition: P;
  /** Train until this many optimizer steps have been taken in total. */
  steps: number;
  /** AdamW settings. */
  optimizer?: AdamWOptions;
  /** Learning rate: a schedule of the step index (0-based) or a constant (default 1e-3). */
  lr?: LrSchedule | number;
  /**
   * Micro-batches per optimizer step (default 1): their gradients are averaged before one update,
   * so with per-sample losses (a mean over the batch) K micro-batches of B make the update of one
   * batch of K x B. Checkpoints are taken at step boundaries only (after the update), so a resume
   * never starts inside an accumulation.
   */
  gradAccum?: number;
  /** Clip the global gradient norm to this value (default: no clipping; the norm is logged). */
  clipNorm?: number;
  /** Keep an EMA of the weights (default: none). */
  ema?: EmaOptions | false;
  /** Save every N steps and at the last step (default 0: never). */
  checkpointEvery?: number;
  /**
   * Complete checkpoints to keep, newest first (default: all; `Infinity` says so too). Older ones
   * are deleted right after a newer one is complete, never before.
   */
  keepLast?: number;
  /**
   * Steps that are also saved (whatever `checkpointEvery` says) and never pruned, on top of the
   * `keepLast` newest: a sweep's fixed points.
   */
  keepSteps?: readonly number[];
  /** Write a metrics line every N steps and at the last step (default 1). */
  logEvery?: number;
  /** Seed of the loss RNG stream `Rng.stream(seed, [rank, STREAM.noise])`. */
  seed: number;
  /**
   * `"per-rank"` (default): each rank draws from its own loss stream. `"shared"`: every rank
   * draws rank 0's (`lossStreamPath`), as workers started with one seed did; only for experiments
   * on that effect. A resume continues rank 0's saved stream on every rank.
   */
  seedStreams?: SeedStreams;
  /** Data-parallel rank; only rank 0 writes checkpoints and metrics (default: `comm`'s rank). */
  rank?: number;
  /**
   * Data-parallel group (lib/data_parallel): each step's loss and gradients are averaged over its ranks
   * before clipping, so every rank takes the same update; checkpoints carry every rank's RNG
   * state and all ranks join each save. Only rank 0 touches the store: on resume it reads the
   * checkpoint and broadcasts it (weights, moments, EMA, every rank's RNG state) to the others,
   * which make no store request. Default: this process alone.
   */
  comm?: Communicator;
  /** Called with every logged record. */
  onLog?: (rec: MetricRecord) => void;
  /** Continue from the newest complete checkpoint in the run, if any (default false). */
  resume?: boolean;
  /** Saved into state.json as `config` (for humans and tools; not read back). */
  config?: unknown;
  /** Items (e.g. images) per micro-batch, for `images_per_s` (default 1). */
  itemsPerBatch?: number;
  /** Show a progress bar on stderr (default true on rank 0). */
  progress?: boolean;
  /** Stop with an error when the loss is not finite (default true). */
  stopOnNonFinite?: boolean;
}

/** Which micro-batch of a step a {@link TrainLoopOptions.lossFn} call computes. */
export interface MicroBatch {
  /** 0-based index within the step. */
  index: number;
  /** Micro-batches per step (`gradAccum`). */
  count: number;
}

/** What {@link trainLoop} returns. Call `dispose()` to free optimizer and EMA tensors. */
export interface TrainLoopResult<P> {
  /** Step reached. */
  step: number;
  /** Step the loop started from (0, or the resumed checkpoint's step). */
  startStep: number;
  /** Checkpoint resumed from, if any. */
  resumedFrom: string | null;
  /** Loss of every step run in this call. */
  history: { step: number; loss: number }[];
  optimizer: AdamW;
  ema: Ema | null;
  rng: Rng;
  position: P;
  /** Free optimizer moments and EMA shadows. */
  dispose(): void;
}

/** state.json contents written by the loop. */
interface LoopState {
  step: number;
  seed: number;
  /** `loss`: rank 0's stream; `ranks`: every rank's, in rank order (data-parallel runs). */
  rng: { loss: RngState; ranks?: RngState[] };
  position: unknown;
  optimizer: { t: number };
  ema: { updates: number } | null;
  elapsed_s: number;
  config?: unknown;
}

/** Dispose tf.Tensors found in a batch (top level, arrays, plain objects). */
function disposeTensors(x: unknown, depth = 0): void {
  if (depth > 4 || x === null || typeof x !== "object") return;
  if (x instanceof tf.Tensor) {
    x.dispose();
    return;
  }
  if (Array.isArray(x)) {
    for (const v of x) disposeTensors(v, depth + 1);
    return;
  }
  if (Object.getPrototypeOf(x) === Object.prototype) {
    for (const v of Object.values(x)) disposeTensors(v, depth + 1);
  }
}

const positiveInt = (name: string, v: number | undefined, dflt: number, min = 1): number =>
  intOption("trainLoop", name, v, dflt, min);

/**
 * Run (or resume) training; see the module docs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { trainLoop } from "./loop.ts";
 *
 * const runDir = await Deno.makeTempDir();
 * const w = tf.variable(tf.zeros([1]));
 * const lossFn = (): tf.Scalar => tf.sum(tf.square(tf.sub(w, 1)));
 * const o = {
 *   runDir,
 *   params: { w },
 *   lossFn,
 *   nextBatch: (p: number) => ({ batch: 0, position: p + 1 }),
 * };
 * const r = await trainLoop({ ...o, initialPosition: 0, steps: 10, seed: 0, progress: false });
 * assert.equal(r.history.at(-1)?.step, 10);
 * r.dispose();
 * await Deno.remove(runDir, { recursive: true });
 * ```
 */
export async function trainLoop<B, P>(o: TrainLoopOptions<B, P>): Promise<TrainLoopResult<P>> {
  const steps = positiveInt("steps", o.steps, 0, 0);
  const gradAccum = positiveInt("gradAccum", o.gradAccum, 1);
  const logEvery = positiveInt("logEvery", o.logEvery, 1);
  const checkpointEvery = positiveInt("checkpointEvery", o.checkpointEvery, 0, 0);
  const keepLast = o.keepLast === undefined || o.keepLast === Infinity
    ? undefined
    : positiveInt("keepLast", o.keepLast, 1);
  const keepSteps = new Set(o.keepSteps ?? []);
  for (const k of keepSteps) positiveInt("keepSteps", k, 1);
  const comm = o.comm ?? singleProcess();
  const rank = o.rank ?? comm.rank;
  const writer = rank === 0;
  const itemsPerBatch = o.itemsPerBatch ?? 1;
  const schedule: LrSchedule = typeof o.lr === "function" ? o.lr : constantLr(o.lr ?? 1e-3);
  if (o.clipNorm !== undefined && !(o.clipNorm > 0)) {
    throw new Error(`trainLoop: option clipNorm must be > 0, got ${o.clipNorm}`);
  }
  const store = o.store ?? storeFor(o.runDir);
  if (writer) await Deno.mkdir(o.runDir, { recursive: true });
  const metricsPath = `${o.runDir}/metrics.jsonl`;

  const opt = new AdamW(o.params, o.optimizer);
  const ema = o.ema ? new Ema(o.params, o.ema) : null;
  const dispose = () => {
    opt.dispose();
    ema?.dispose();
  };
  const shared = o.seedStreams === "shared";
  let rng = Rng.stream(o.seed, lossStreamPath(rank, o.seedStreams));
  let position = o.initialPosition;
  let start = 0;
  let elapsedBefore = 0;
  let resumedFrom: string | null = null;

  try {
    // Rank 0 alone touches the store: it finds and reads the newest complete checkpoint (or checks
    // that a fresh run has none) and every other rank gets the outcome by broadcast.
    const ck = await startCheckpoint({ comm, store, resume: o.resume, writer, who: "trainLoop" });
    if (ck) {
      const st = ck.state as unknown as LoopState;
      const src = `${store.location}/${ck.name}`;
      restoreParams(o.params, ck.tensors.model, { source: `${src}/model.safetensors` });
      if (!ck.tensors.optimizer || !st.optimizer) {
        throw new Error(`${src}: has no optimizer state; cannot resume exactly`);
      }
      opt.loadState({ t: st.optimizer.t, tensors: ck.tensors.optimizer }, `${src}/optimizer`);
      if (ema) {
        if (!ck.tensors.ema || !st.ema) throw new Error(`${src}: has no EMA but option ema is set`);
        ema.loadState({ updates: st.ema.updates, tensors: ck.tensors.ema }, `${src}/ema`);
      }
      if (!st.rng?.loss) throw new Error(`${src}/state.json: field rng.loss missing`);
      rng = resumedRng({
        saved: st.rng,
        size: comm.size,
        rank,
        seed: o.seed,
        shared,
        step: ck.step,
      });
      position = st.position as P;
      start = ck.step;
      elapsedBefore = st.elapsed_s ?? 0;
      resumedFrom = ck.name;
    }
    // Every rank must resume from the same step, or the collectives would pair different steps.
    await assertSameOnAllRanks(comm, "trainLoop: resume step", start);
    // Drop log lines from steps the restored state has not seen (and a truncated last line).
    if (writer) await truncateMetrics(metricsPath, start);
  } catch (e) {
    dispose();
    throw e;
  }

  const log = new StepLog({ metricsPath, writer, start, elapsedBefore, onLog: o.onLog });
  const history: { step: number; loss: number }[] = [];
  const bar = startProgress({ show: o.progress ?? writer, steps, start, config: o.config });

  // Called on every rank: all join the RNG gather, rank 0 alone writes, and the closing barrier
  // keeps the others from running ahead of a checkpoint that is not yet complete.
  const save = (step: number) =>
    saveOnAllRanks({ comm, writer, rng }, async (savedRng) => {
      const optState = await opt.state();
      const emaState = ema ? await ema.state() : null;
      const state: LoopState = {
        step,
        seed: o.seed,
        rng: savedRng,
        position,
        optimizer: { t: optState.t },
        ema: emaState ? { updates: emaState.updates } : null,
        elapsed_s: log.elapsed(),
        config: o.config,
      };
      await saveCheckpoint(store, {
        step,
        rank,
        tensors: {
          model: await snapshotParams(o.params),
          optimizer: optState.tensors,
          ...(emaState ? { ema: emaState.tensors } : {}),
        },
        state: state as unknown as Record<string, unknown>,
      });
      // Pruning follows the save, so an older checkpoint goes only once a newer one is complete.
      if (keepLast) await pruneCheckpoints(store, keepLast, { rank, keepSteps: [...keepSteps] });
    });

  try {
    for (let step = start + 1; step <= steps; step++) {
      const lr = schedule(step - 1);
      const acc = new GradAccumulator();
      for (let i = 0; i < gradAccum; i++) {
        const next = await o.nextBatch(position);
        position = next.position;
        try {
          const micro = { index: i, count: gradAccum };
          acc.add(computeGrads(o.params, () => o.lossFn(next.batch, rng, micro)));
        } finally {
          disposeTensors(next.batch);
        }
      }
      const { value, grads } = await averageGrads(comm, acc.mean());
      let loss: number;
      let gradNorm: number;
      try {
        loss = (await value.data())[0];
        if (!Number.isFinite(loss) && (o.stopOnNonFinite ?? true)) {
          throw new Error(`trainLoop: loss is ${loss} at step ${step}; stopping before the update`);
        }
        if (o.clipNorm !== undefined) {
          const c = clipGradNorm(grads, o.clipNorm);
          try {
            gradNorm = (await c.norm.data())[0];
            opt.step(c.grads, lr);
          } finally {
            tf.dispose([c.norm, ...Object.values(c.grads)]);
          }
        } else {
          const n = globalNorm(grads);
          gradNorm = (await n.data())[0];
          n.dispose();
          opt.step(grads, lr);
        }
      } finally {
        tf.dispose([value, ...Object.values(grads)]);
      }
      ema?.update(o.params);
      history.push({ step, loss });

      if (step % logEvery === 0 || step === steps) {
        await log.record({ step, loss, lr, grad_norm: gradNorm }, gradAccum * itemsPerBatch);
      }
      bar?.update(step, { loss, lr });
      if (checkpointDue(step, { steps, checkpointEvery, keepSteps })) await save(step);
    }
    bar?.done();
  } catch (e) {
    dispose();
    throw e;
  }
  return {
    step: Math.max(start, steps),
    startStep: start,
    resumedFrom,
    history,
    optimizer: opt,
    ema,
    rng,
    position,
    dispose,
  };
}
