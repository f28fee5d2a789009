/**
 * The pieces every resumable training loop shares (lib/train's `trainLoop` and lib/compiled's
 * `compiledTrainLoop`): option checks, finding the checkpoint to start from, restoring the loss
 * stream, the progress bar, the metrics log with its throughput clock, and when to save. Sharing
 * them keeps the two loops' checkpoints, logs and resumes the same, so either resumes the other.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkpointDue, intOption } from "./loop_parts.ts";
 *
 * assert.equal(intOption("myLoop", "steps", undefined, 10, 0), 10);
 * assert.equal(checkpointDue(5, { steps: 9, checkpointEvery: 5, keepSteps: new Set() }), true);
 * ```
 * @module
 */
import { Rng, type RngState, STREAM } from "../util/rng.ts";
import { Progress } from "../util/progress.ts";
import {
  latestCheckpoint,
  listCheckpoints,
  loadCheckpoint,
  type LoadedCheckpoint,
} from "./checkpoint.ts";
import { type MetricRecord, MetricsLog } from "./metrics.ts";
import type { CheckpointStore } from "../storage/store.ts";
import { shareCheckpoint } from "./checkpoint_broadcast.ts";
import type { Communicator } from "../data_parallel/comm.ts";
import { gatherRngStates } from "../data_parallel/training.ts";

/**
 * An integer option, `dflt` when absent; anything else below `min` is an error naming `who`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { intOption } from "./loop_parts.ts";
 *
 * assert.equal(intOption("trainLoop", "logEvery", 4, 1, 1), 4);
 * assert.throws(() => intOption("trainLoop", "logEvery", 0, 1, 1), /logEvery must be/);
 * ```
 */
export function intOption(
  who: string,
  name: string,
  v: number | undefined,
  dflt: number,
  min: number,
): number {
  const x = v ?? dflt;
  if (!Number.isInteger(x) || x < min) {
    throw new Error(`${who}: option ${name} must be an integer >= ${min}, got ${v}`);
  }
  return x;
}

/** Options of {@link startCheckpoint}. */
export interface StartCheckpointOptions {
  /** The data-parallel group; rank 0 alone reads the store. */
  comm: Communicator;
  store: CheckpointStore;
  /** Continue from the newest complete checkpoint (else refuse a run that has any). */
  resume?: boolean;
  /** Whether this rank writes (rank 0): only it checks a fresh run's store. */
  writer: boolean;
  /** The loop's name, for the error. */
  who: string;
}

/**
 * The checkpoint a loop starts from: the newest complete one when resuming, else none (and a
 * fresh run over one that has checkpoints is refused). Rank 0 alone touches the store and every
 * other rank gets its outcome by broadcast.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { startCheckpoint } from "./loop_parts.ts";
 * import { singleProcess } from "../data_parallel/comm.ts";
 * import { storeFor } from "../storage/location.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const store = storeFor(dir);
 * const ck = await startCheckpoint({ comm: singleProcess(), store, writer: true, who: "demo" });
 * assert.equal(ck, null);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function startCheckpoint(o: StartCheckpointOptions): Promise<LoadedCheckpoint | null> {
  const { store } = o;
  return shareCheckpoint({
    comm: o.comm,
    location: store.location,
    read: async () => {
      if (o.resume) {
        const latest = await latestCheckpoint(store);
        return latest ? await loadCheckpoint({ store, name: latest.name }) : null;
      }
      if (!o.writer) return null;
      const done = (await listCheckpoints(store, { verify: "manifest" })).filter((c) => c.complete);
      if (done.length) {
        throw new Error(
          `${o.who}: ${store.location} already has checkpoints (newest ${done.at(-1)!.name}); ` +
            `pass resume: true or use a fresh runDir`,
        );
      }
      return null;
    },
  });
}

/** Options of {@link resumedRng}. */
export interface ResumedRngOptions {
  /** state.json's `rng`: rank 0's stream and, from data-parallel runs, every rank's. */
  saved: { loss: RngState; ranks?: RngState[] };
  /** World size and this process's rank. */
  size: number;
  rank: number;
  seed: number;
  /** Every rank draws rank 0's stream (`seedStreams: "shared"`). */
  shared: boolean;
  /** The checkpoint's step. */
  step: number;
}

/**
 * This rank's loss stream after a resume. Data-parallel runs save every rank's stream; a
 * checkpoint from a run with another world size has only rank 0's, and the others restart from a
 * step-specific seed. Shared streams are rank 0's on every rank.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Rng } from "../util/rng.ts";
 * import { resumedRng } from "./loop_parts.ts";
 *
 * const r = Rng.stream(5);
 * r.uniforms(3);
 * const saved = { loss: r.state() };
 * const back = resumedRng({ saved, size: 1, rank: 0, seed: 5, shared: false, step: 1 });
 * assert.deepEqual(back.uniforms(2), r.uniforms(2));
 * ```
 */
export function resumedRng(o: ResumedRngOptions): Rng {
  const own = o.saved.ranks?.length === o.size ? o.saved.ranks[o.rank] : undefined;
  return o.rank === 0 || o.shared
    ? Rng.fromState(o.saved.loss)
    : own
    ? Rng.fromState(own)
    : Rng.stream(o.seed, [o.rank, STREAM.noise, o.step]);
}

/** Options of {@link startProgress}. */
export interface StartProgressOptions {
  /** Whether to show one (`progress` option, else on the writing rank). */
  show: boolean;
  steps: number;
  /** The step the loop starts from. */
  start: number;
  /** The run's config; its `stage`, when there is one, labels the bar. */
  config?: unknown;
}

/**
 * A loop's progress bar, or null when it is not shown or there is nothing left to run.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { startProgress } from "./loop_parts.ts";
 *
 * assert.equal(startProgress({ show: true, steps: 10, start: 10 }), null);
 * ```
 */
export function startProgress(o: StartProgressOptions): Progress | null {
  return o.show && o.steps > o.start
    ? new Progress({
      total: o.steps,
      // The stage's name when the caller records one, so a notebook's bars say which stage runs.
      label: String((o.config as { stage?: unknown } | undefined)?.stage ?? "train"),
      initial: o.start,
    })
    : null;
}

/** Options of {@link StepLog}. */
export interface StepLogOptions {
  metricsPath: string;
  /** Whether this rank appends to the file (rank 0); `onLog` is called on every rank. */
  writer: boolean;
  /** The step the loop starts from. */
  start: number;
  /** Training seconds before this call (from the resumed checkpoint). */
  elapsedBefore: number;
  onLog?: (rec: MetricRecord) => void;
}

/** One logged step's values; `grad_norm` is left out of the record when undefined. */
export interface StepValues {
  step: number;
  loss: number;
  lr: number;
  grad_norm?: number;
}

/**
 * A loop's metrics log and clock: total elapsed seconds (across resumes) and items per second
 * since the last logged step.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StepLog } from "./loop_parts.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const metricsPath = `${dir}/metrics.jsonl`;
 * const log = new StepLog({ metricsPath, writer: true, start: 0, elapsedBefore: 2 });
 * const rec = await log.record({ step: 1, loss: 0.5, lr: 0.1 }, 4);
 * assert.ok(rec.elapsed_s! >= 2);
 * assert.equal(JSON.parse(Deno.readTextFileSync(metricsPath)).loss, 0.5);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class StepLog {
  readonly #log: MetricsLog;
  readonly #o: StepLogOptions;
  readonly #t0 = performance.now();
  #lastT = this.#t0;
  #lastStep: number;

  constructor(o: StepLogOptions) {
    this.#o = o;
    this.#log = new MetricsLog(o.metricsPath);
    this.#lastStep = o.start;
  }

  /** Training seconds so far, those before the resume included. */
  elapsed(now: number = performance.now()): number {
    return this.#o.elapsedBefore + (now - this.#t0) / 1000;
  }

  /** Log a step (`itemsPerStep` items were trained on per step) and return its record. */
  async record(v: StepValues, itemsPerStep: number): Promise<MetricRecord> {
    const now = performance.now();
    const rec: MetricRecord = {
      step: v.step,
      loss: v.loss,
      lr: v.lr,
      ...(v.grad_norm !== undefined ? { grad_norm: v.grad_norm } : {}),
      images_per_s: ((v.step - this.#lastStep) * itemsPerStep * 1000) /
        Math.max(1e-9, now - this.#lastT),
      elapsed_s: this.elapsed(now),
    };
    this.#lastT = now;
    this.#lastStep = v.step;
    if (this.#o.writer) await this.#log.append(rec);
    this.#o.onLog?.(rec);
    return rec;
  }
}

/**
 * Whether a loop saves after `step`: every `checkpointEvery` steps (0: never) and at the last,
 * and at every step in `keepSteps`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkpointDue } from "./loop_parts.ts";
 *
 * const o = { steps: 10, checkpointEvery: 4, keepSteps: new Set([3]) };
 * assert.deepEqual([1, 3, 4, 9, 10].map((s) => checkpointDue(s, o)), [false, true, true, false, true]);
 * ```
 */
export function checkpointDue(
  step: number,
  o: { steps: number; checkpointEvery: number; keepSteps: ReadonlySet<number> },
): boolean {
  const every = o.checkpointEvery > 0 && (step % o.checkpointEvery === 0 || step === o.steps);
  return every || o.keepSteps.has(step);
}

/** The loss streams a checkpoint saves: rank 0's and, in a data-parallel run, every rank's. */
export interface SavedRng {
  loss: RngState;
  ranks?: RngState[];
}

/**
 * Save a checkpoint from a data-parallel group: every rank joins the gather of the RNG states,
 * the writing rank alone runs `write` (given the states to save), and the closing barrier keeps
 * the others from running ahead of a checkpoint that is not yet complete. Call it on every rank.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Rng } from "../util/rng.ts";
 * import { singleProcess } from "../data_parallel/comm.ts";
 * import { saveOnAllRanks, type SavedRng } from "./loop_parts.ts";
 *
 * const rng = Rng.stream(1);
 * let saved: SavedRng | undefined;
 * await saveOnAllRanks({ comm: singleProcess(), writer: true, rng }, (s) => {
 *   saved = s;
 *   return Promise.resolve();
 * });
 * assert.deepEqual(saved, { loss: rng.state() });
 * ```
 */
export async function saveOnAllRanks(
  o: { comm: Communicator; writer: boolean; rng: Rng },
  write: (rng: SavedRng) => Promise<void>,
): Promise<void> {
  const ranks = await gatherRngStates(o.comm, o.rng.state());
  if (o.writer) await write({ loss: o.rng.state(), ...(o.comm.size > 1 ? { ranks } : {}) });
  await o.comm.barrier();
}
