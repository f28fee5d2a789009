/**
 * One rank of tests/train_resume_rank0.test.ts, started by `mpirun` (or alone): trains the shared
 * tiny MLP (EMA, gradient accumulation, clipping, per-rank label noise) with `trainLoop` and
 * `resume: true` through a counting wrapper around the checkpoint store, then writes what it saw
 * to `OUT_PREFIX.rank<r>.json`: the store calls it made before its first batch ("resume") and
 * after ("train"), the losses, and its final weights and EMA weights.
 *
 * Usage: deno run -A tests/helpers/resume_rank_worker.ts RUN_DIR STORE STEPS OUT_PREFIX
 * (STORE is `-` for RUN_DIR itself, else a folder or gs:// URL; gs:// reads
 * STORAGE_EMULATOR_HOST).
 */
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { worldCommunicator } from "../../lib/data_parallel/mod.ts";
import { trainLoop } from "../../lib/train/mod.ts";
import { storeFor } from "../../lib/storage/mod.ts";
import { countingStore } from "./counting_store.ts";
import { rankReport } from "./rank_report.ts";
import { initTinyMlp, tinyMlpBatch, tinyMlpLoopOptions } from "./tiny_mlp.ts";

await tf.setBackend("cpu");
const [runDir, storeArg, stepsArg, outPrefix] = Deno.args;
const comm = worldCommunicator();
const counted = countingStore(storeFor(storeArg === "-" ? runDir : storeArg));
counted.phase = "resume";
const params = initTinyMlp();
const res = await trainLoop({
  ...tinyMlpLoopOptions(params, { runDir, steps: Number(stepsArg), store: counted.store }),
  comm,
  resume: true,
  nextBatch: (pos) => {
    counted.phase = "train";
    return tinyMlpBatch(pos);
  },
});
const report = await rankReport(comm.rank, res, params, counted);
await Deno.writeTextFile(
  `${outPrefix}.rank${comm.rank}.json`,
  JSON.stringify({ ...report, size: comm.size }),
);
res.dispose();
await comm.close();
