/**
 * The resumable training loop of lib/train (`trainLoop`) around a {@link CompiledTrainStep}: the
 * same data order (`nextBatch` from the same positions), the same loss stream
 * (`Rng.stream(seed, [0, STREAM.noise])`), the same learning-rate schedule and the same checkpoint
 * format (`model`, `optimizer` with `m.<param>` / `v.<param>`, `ema`; `state.json` with step, RNG
 * state, data position, optimizer `t` and EMA updates), so a checkpoint of either loop resumes in
 * the other. One micro-batch per step. A mixed-precision step's dynamic loss scale goes into
 * state.json too (`loss_scale`: scale, good steps since it last changed, steps skipped), so a
 * resume continues bit-identically; a checkpoint without it starts from the initial scale.
 *
 * In a data-parallel group (`comm`, as `trainLoop`'s) each rank draws from its own loss stream
 * (`lossStreamPath`), runs forward and backward on its share of the batch, and the packed
 * gradients and loss are averaged with one `allreduceMean` per step before clipping, AdamW and the
 * EMA, so every rank takes the same update; rank 0 alone reads and writes checkpoints (with every
 * rank's RNG state) and metrics, as `trainLoop` does.
 *
 * Alone, the step runs forward, backward, clipping, AdamW and the EMA on the GPU in one submit; the loop
 * reads back the loss every step, the gradient norm on logged steps and the whole state only at
 * checkpoints. Unlike `trainLoop`, a non-finite loss is seen after that step's update (it is in
 * the same pass): the loop stops before saving anything of it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph } from "./graph.ts";
 * import { gradients } from "./autodiff.ts";
 * import { compileTrainStep } from "./train_step.ts";
 * import { compiledTrainLoop } from "./train_loop.ts";
 *
 * const adapter = await navigator.gpu?.requestAdapter();
 * if (adapter) {
 *   const device = await adapter.requestDevice();
 *   // Fit w to 2: loss = mean((w x - 2 x)^2) over the batch x.
 *   const g = new Graph();
 *   const w = g.input("w", [1, 1], "float32", "param"), x = g.input("x", [4, 1]);
 *   const d = g.add("add", [g.add("matMul", [x, w]), g.add("mulScalar", [x], { s: -2 })]);
 *   const loss = g.add("mean", [g.add("mul", [d, d])], { axes: [0, 1] });
 *   const [dw] = gradients(g, loss, [w]);
 *   g.output("loss", loss);
 *   g.output("grad/w", dw);
 *   const step = await compileTrainStep({ graph: g, grads: { w: dw } }, device, { clipNorm: 1 });
 *   step.setParams({ w: new Float32Array([0]) });
 *   const runDir = await Deno.makeTempDir();
 *   const r = await compiledTrainLoop<number, number>({
 *     runDir,
 *     step,
 *     inputs: (b) => ({ x: new Float32Array([b, b, b, b]) }),
 *     nextBatch: (p) => ({ batch: 1, position: p + 1 }),
 *     initialPosition: 0,
 *     steps: 30,
 *     lr: 0.1,
 *     seed: 0,
 *     checkpointEvery: 30,
 *     progress: false,
 *   });
 *   assert.ok(r.history.at(-1)!.loss < r.history[0].loss);
 *   assert.equal(r.step, 30);
 *   step.destroy();
 *   device.destroy();
 *   await Deno.remove(runDir, { recursive: true });
 * }
 * ```
 * @module
 */
import { Rng } from "../util/rng.ts";
import { type LoadedCheckpoint, pruneCheckpoints, saveCheckpoint } from "../train/checkpoint.ts";
import { constantLr, type LrSchedule } from "../train/lr.ts";
import { truncateMetrics } from "../train/metrics.ts";
import {
  checkpointDue,
  intOption,
  resumedRng,
  saveOnAllRanks,
  startCheckpoint,
  startProgress,
  StepLog,
} from "../train/loop_parts.ts";
import type { TensorDataMap } from "../train/tensor_data.ts";
import type { TrainLoopOptions } from "../train/loop.ts";
import { storeFor } from "../storage/location.ts";
import { allreduceMean, assertSameOnAllRanks, singleProcess } from "../data_parallel/comm.ts";
import { lossStreamPath } from "../data_parallel/training.ts";
import type {
  CompiledTrainState,
  CompiledTrainStep,
  LossScaleState,
  StepOptions,
} from "./train_step.ts";

/** Options of {@link compiledTrainLoop}: `trainLoop`'s, less what a compiled step fixes. */
export interface CompiledTrainLoopOptions<B, P> extends
  Pick<
    TrainLoopOptions<B, P>,
    | "runDir"
    | "store"
    | "nextBatch"
    | "initialPosition"
    | "steps"
    | "lr"
    | "checkpointEvery"
    | "keepLast"
    | "keepSteps"
    | "logEvery"
    | "seed"
    | "seedStreams"
    | "comm"
    | "resume"
    | "config"
    | "itemsPerBatch"
    | "progress"
    | "onLog"
  > {
  /** The compiled step, its parameters already set (a resume overwrites them). */
  step: CompiledTrainStep;
  /** The step's data inputs for a batch; draw all randomness from `rng` so resumes are exact. */
  inputs: (batch: B, rng: Rng) => Record<string, Float32Array>;
}

/** What {@link compiledTrainLoop} returns. */
export interface CompiledTrainLoopResult<P> {
  step: number;
  startStep: number;
  resumedFrom: string | null;
  history: { step: number; loss: number }[];
  /** The final state, read back from the GPU. */
  state: CompiledTrainState;
  rng: Rng;
  position: P;
}

/** Named flat arrays -> checkpoint tensors with the parameters' shapes (prefixing names). */
function tensorsOf(
  values: Record<string, Float32Array>,
  shapes: Record<string, number[]>,
  prefix = "",
): TensorDataMap {
  const out: TensorDataMap = {};
  for (const [k, data] of Object.entries(values)) out[prefix + k] = { shape: shapes[k], data };
  return out;
}

/** Checkpoint tensors -> named flat arrays, checking every parameter is there with its shape. */
function valuesOf(
  map: TensorDataMap | undefined,
  shapes: Record<string, number[]>,
  prefix: string,
  source: string,
): Record<string, Float32Array> {
  if (!map) throw new Error(`${source}: missing`);
  const out: Record<string, Float32Array> = {};
  for (const [k, shape] of Object.entries(shapes)) {
    const t = map[prefix + k];
    if (!t) throw new Error(`${source}: tensor "${prefix + k}" missing`);
    if (t.shape.join() !== shape.join()) {
      throw new Error(`${source}: "${prefix + k}" is [${t.shape}], expected [${shape}]`);
    }
    out[k] = t.data;
  }
  return out;
}

/** state.json fields the loop reads back (written as lib/train's loop writes them). */
interface SavedState {
  rng?: { loss?: ReturnType<Rng["state"]>; ranks?: ReturnType<Rng["state"]>[] };
  position?: unknown;
  optimizer?: { t: number };
  ema?: { updates: number } | null;
  elapsed_s?: number;
  /** Mixed precision's loss scale (older checkpoints and float32 steps have none). */
  loss_scale?: { scale: number; good_steps: number; skipped: number };
}

/** state.json's `loss_scale`, checked, as a step's loss-scale state (`applied` is `t`'s). */
function lossScaleOf(
  saved: SavedState["loss_scale"],
  t: number,
  source: string,
): LossScaleState | undefined {
  if (saved === undefined || saved === null) return undefined;
  const { scale, good_steps, skipped } = saved;
  if (!(scale > 0) || !Number.isInteger(good_steps) || !Number.isInteger(skipped)) {
    throw new Error(
      `${source}: field loss_scale must be { scale > 0, good_steps, skipped integers }, got ` +
        JSON.stringify(saved),
    );
  }
  return { scale, applied: t, goodSteps: good_steps, skipped };
}

/**
 * Run (or resume) training with a compiled step; see the module doc.
 *
 * @example
 * ```ts
 * import type { CompiledTrainStep } from "./train_step.ts";
 * import { compiledTrainLoop } from "./train_loop.ts";
 *
 * // A step compiled from a graph with a data input "x"; 10 steps, resumable from runDir.
 * async function train(step: CompiledTrainStep, runDir: string): Promise<number[]> {
 *   const r = await compiledTrainLoop<number, number>({
 *     runDir,
 *     step,
 *     inputs: (b, rng) => ({ x: rng.normal(b) }),
 *     nextBatch: (p) => ({ batch: 4, position: p + 1 }),
 *     initialPosition: 0,
 *     steps: 10,
 *     seed: 0,
 *     checkpointEvery: 5,
 *     resume: true,
 *   });
 *   return r.history.map((h) => h.loss);
 * }
 * ```
 */
export async function compiledTrainLoop<B, P>(
  o: CompiledTrainLoopOptions<B, P>,
): Promise<CompiledTrainLoopResult<P>> {
  const int = (name: string, v: number | undefined, dflt: number, min: number) =>
    intOption("compiledTrainLoop", name, v, dflt, min);
  const steps = int("steps", o.steps, 0, 0);
  const logEvery = int("logEvery", o.logEvery, 1, 1);
  const checkpointEvery = int("checkpointEvery", o.checkpointEvery, 0, 0);
  const keepLast = o.keepLast === undefined || o.keepLast === Infinity
    ? undefined
    : int("keepLast", o.keepLast, 1, 1);
  const keepSteps = new Set(o.keepSteps ?? []);
  const schedule: LrSchedule = typeof o.lr === "function" ? o.lr : constantLr(o.lr ?? 1e-3);
  const store = o.store ?? storeFor(o.runDir);
  const comm = o.comm ?? singleProcess();
  const rank = comm.rank, writer = rank === 0;
  if (writer) await Deno.mkdir(o.runDir, { recursive: true });
  const metricsPath = `${o.runDir}/metrics.jsonl`;
  const cs = o.step;
  const shapes: Record<string, number[]> = {};
  for (const n of cs.paramNames) shapes[n] = [...cs.paramShapes[n]];
  let rng = Rng.stream(o.seed, lossStreamPath(rank, o.seedStreams));
  let position = o.initialPosition;
  let start = 0, elapsedBefore = 0;
  let resumedFrom: string | null = null;

  // Rank 0 alone reads the store; the others get its outcome by broadcast.
  const ck: LoadedCheckpoint | null = await startCheckpoint({
    comm,
    store,
    resume: o.resume,
    writer,
    who: "compiledTrainLoop",
  });
  if (ck) {
    const src = `${store.location}/${ck.name}`;
    const st = ck.state as SavedState;
    if (!st.optimizer || !ck.tensors.optimizer) {
      throw new Error(`${src}: has no optimizer state; cannot resume exactly`);
    }
    if (!st.rng?.loss) throw new Error(`${src}/state.json: field rng.loss missing`);
    const hasEma = cs.hasEma;
    if (hasEma && (!ck.tensors.ema || !st.ema)) {
      throw new Error(`${src}: has no EMA but the step keeps one`);
    }
    cs.setState({
      t: st.optimizer.t,
      emaUpdates: st.ema?.updates ?? 0,
      params: valuesOf(ck.tensors.model, shapes, "", `${src}/model.safetensors`),
      m: valuesOf(ck.tensors.optimizer, shapes, "m.", `${src}/optimizer.safetensors`),
      v: valuesOf(ck.tensors.optimizer, shapes, "v.", `${src}/optimizer.safetensors`),
      ...(hasEma ? { ema: valuesOf(ck.tensors.ema, shapes, "", `${src}/ema.safetensors`) } : {}),
      // Mixed precision resumes with its loss scale; without one it starts from the initial.
      lossScale: lossScaleOf(st.loss_scale, st.optimizer.t, `${src}/state.json`),
    });
    // As trainLoop: every rank's stream when the run had this many ranks, else a step-specific
    // seed on ranks > 0; shared streams are rank 0's everywhere.
    rng = resumedRng({
      saved: { loss: st.rng.loss, ranks: st.rng.ranks },
      size: comm.size,
      rank,
      seed: o.seed,
      shared: o.seedStreams === "shared",
      step: ck.step,
    });
    position = st.position as P;
    start = ck.step;
    elapsedBefore = st.elapsed_s ?? 0;
    resumedFrom = ck.name;
  }
  await assertSameOnAllRanks(comm, "compiledTrainLoop: resume step", start);
  if (writer) await truncateMetrics(metricsPath, start);

  const log = new StepLog({ metricsPath, writer, start, elapsedBefore, onLog: o.onLog });
  const history: { step: number; loss: number }[] = [];
  const bar = startProgress({ show: o.progress ?? writer, steps, start, config: o.config });

  // Every rank joins (the RNG gather and the closing barrier); rank 0 alone reads back and writes.
  const save = (step: number) =>
    saveOnAllRanks({ comm, writer, rng }, async (savedRng) => {
      const s = await cs.readState();
      await saveCheckpoint(store, {
        step,
        tensors: {
          model: tensorsOf(s.params, shapes),
          optimizer: { ...tensorsOf(s.m, shapes, "m."), ...tensorsOf(s.v, shapes, "v.") },
          ...(s.ema ? { ema: tensorsOf(s.ema, shapes) } : {}),
        },
        state: {
          step,
          seed: o.seed,
          rng: savedRng,
          position,
          optimizer: { t: s.t },
          ema: s.ema ? { updates: s.emaUpdates } : null,
          ...(s.lossScale
            ? {
              loss_scale: {
                scale: s.lossScale.scale,
                good_steps: s.lossScale.goodSteps,
                skipped: s.lossScale.skipped,
              },
            }
            : {}),
          elapsed_s: log.elapsed(),
          config: o.config,
        } as Record<string, unknown>,
      });
      if (keepLast) await pruneCheckpoints(store, keepLast, { keepSteps: [...keepSteps] });
    });
  const stepOptions: StepOptions = comm.size > 1
    ? { reduce: (flat) => allreduceMean(comm, flat) }
    : {};

  for (let step = start + 1; step <= steps; step++) {
    const lr = schedule(step - 1);
    const next = await o.nextBatch(position);
    position = next.position;
    const loss = await cs.step(o.inputs(next.batch, rng), lr, stepOptions);
    if (!Number.isFinite(loss)) {
      throw new Error(`compiledTrainLoop: loss is ${loss} at step ${step}; stopping`);
    }
    history.push({ step, loss });
    if (step % logEvery === 0 || step === steps) {
      const gradNorm = await cs.readGradNorm();
      // A step that skipped its update (mixed precision's overflow) has no finite norm to log.
      const grad_norm = Number.isFinite(gradNorm) ? gradNorm : undefined;
      await log.record({ step, loss, lr, grad_norm }, o.itemsPerBatch ?? 1);
    }
    bar?.update(step, { loss, lr });
    if (checkpointDue(step, { steps, checkpointEvery, keepSteps })) await save(step);
  }
  bar?.done();
  return {
    step: Math.max(start, steps),
    startStep: start,
    resumedFrom,
    history,
    state: await cs.readState(),
    rng,
    position,
  };
}
