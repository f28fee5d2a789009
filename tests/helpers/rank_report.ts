/**
 * What one rank of a tiny-MLP training run reports to tests/train_resume_rank0.test.ts, built the
 * same way in process and by the `mpirun` worker (which writes it as JSON): where it started, its
 * losses, its final weights and EMA weights, and the checkpoint-store calls it made.
 */
import type * as tf from "@tensorflow/tfjs-core";
import { type Params, snapshotParams, type TrainLoopResult } from "../../lib/train/mod.ts";
import type { CountingStore, StoreCall } from "./counting_store.ts";

/** One rank's outcome. */
export interface RankReport {
  rank: number;
  startStep: number;
  resumedFrom: string | null;
  losses: number[];
  weights: Record<string, number[]>;
  ema: Record<string, number[]>;
  calls: StoreCall[];
}

/** Parameters as plain arrays, comparable with deepEqual and serialisable as JSON. */
async function flat(p: Record<string, tf.Tensor>): Promise<Record<string, number[]>> {
  return Object.fromEntries(
    Object.entries(await snapshotParams(p)).map(([k, v]) => [k, Array.from(v.data)]),
  );
}

/** The report of rank `rank` after `trainLoop` returned `res` (which must keep an EMA). */
export async function rankReport(
  rank: number,
  res: TrainLoopResult<number>,
  params: Params,
  counted: CountingStore,
): Promise<RankReport> {
  return {
    rank,
    startStep: res.startStep,
    resumedFrom: res.resumedFrom,
    losses: res.history.map((h) => h.loss),
    weights: await flat(params),
    ema: await flat(res.ema!.shadow),
    calls: counted.calls,
  };
}
