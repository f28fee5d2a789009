/**
 * One rank of the data-parallel tests (tests/dist.test.ts), started by `mpirun` or alone: trains a
 * tiny noisy linear regression with `trainLoop` and, on rank 0, writes the per-step losses and the
 * final weights as JSON.
 *
 * Usage: deno run -A tests/helpers/dp_worker.ts RUN_DIR STEPS OUT.json [GLOBAL_BATCH] [NOISE]
 */
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { worldCommunicator } from "../../lib/data_parallel/mod.ts";
import { trainLoop } from "../../lib/train/mod.ts";
import { Rng } from "../../lib/util/rng.ts";

await tf.setBackend("cpu");
const [runDir, stepsArg, out, batchArg, noiseArg] = Deno.args;
const comm = worldCommunicator();
const D = 5, N = 64, globalBatch = Number(batchArg ?? 8), noiseScale = Number(noiseArg ?? 0.1);
// The same data on every rank; rank r takes every size-th sample of each global batch.
const data = Rng.stream(7, [1]);
const xs = data.normal(N * D), wTrue = data.normal(D);
const ys = Float32Array.from({ length: N }, (_, i) => {
  let s = 0;
  for (let j = 0; j < D; j++) s += xs[i * D + j] * wTrue[j];
  return s;
});
const params = { w: tf.variable(tf.zeros([D, 1]), true, "w") };
const per = globalBatch / comm.size;
const res = await trainLoop<number[], number>({
  runDir,
  params,
  comm,
  seed: 3,
  steps: Number(stepsArg),
  lr: 0.05,
  clipNorm: 10,
  checkpointEvery: 3,
  resume: true,
  progress: false,
  initialPosition: 0,
  nextBatch: (pos) => ({
    batch: Array.from(
      { length: per },
      (_, k) => (pos * globalBatch + k * comm.size + comm.rank) % N,
    ),
    position: pos + 1,
  }),
  // Label noise from the rank's own stream: resumes must restore every rank's RNG state.
  lossFn: (idx, rng) =>
    tf.tidy(() => {
      const x = tf.tensor2d(idx.flatMap((i) => Array.from(xs.subarray(i * D, (i + 1) * D))), [
        idx.length,
        D,
      ]);
      const noise = rng.normal(idx.length);
      const y = tf.tensor2d(idx.map((i, k) => ys[i] + noiseScale * noise[k]), [idx.length, 1]);
      return tf.mean(tf.square(tf.sub(tf.matMul(x, params.w), y))) as tf.Scalar;
    }),
});
if (comm.rank === 0) {
  await Deno.writeTextFile(
    out,
    JSON.stringify({
      size: comm.size,
      kind: comm.kind,
      losses: res.history.map((h) => h.loss),
      w: Array.from(await params.w.data()),
    }),
  );
}
res.dispose();
await comm.close();
