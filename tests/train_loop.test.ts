import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { Rng, STREAM } from "../lib/util/rng.ts";
import {
  type Params,
  readMetrics,
  snapshotParams,
  trainLoop,
  type TrainLoopOptions,
  warmupCosine,
} from "../lib/train/mod.ts";

await tf.setBackend("cpu");

const SEED = 17;

function initMlp(): Params {
  const rng = Rng.stream(SEED, [0, STREAM.init]);
  const t = (shape: number[], scale: number) =>
    tf.tidy(() =>
      tf.variable(
        tf.tensor(rng.normal(shape.reduce((a, b) => a * b, 1)).map((v) => v * scale), shape),
      )
    );
  return {
    "l1.weight": t([3, 8], 0.5),
    "l1.bias": t([8], 0.1),
    "l2.weight": t([8, 1], 0.5),
    "l2.bias": t([1], 0.1),
  };
}

interface Batch {
  x: Float32Array;
  y: Float32Array;
}

/** Deterministic batch for a position: the data stream is indexed by position. */
function nextBatch(pos: number): { batch: Batch; position: number } {
  const r = Rng.stream(SEED, [0, STREAM.data, pos]);
  const x = r.normal(8 * 3);
  const y = new Float32Array(8);
  for (let i = 0; i < 8; i++) y[i] = Math.sin(x[3 * i]) + 0.5 * x[3 * i + 1] * x[3 * i + 2];
  return { batch: { x, y }, position: pos + 1 };
}

function options(p: Params, runDir: string, steps: number): TrainLoopOptions<Batch, number> {
  return {
    runDir,
    params: p,
    // The loss draws label noise from the loop's RNG so a resume must restore its state too.
    lossFn: (b, rng) =>
      tf.tidy(() => {
        const x = tf.tensor2d(b.x, [8, 3]);
        const h = tf.tanh(tf.add(tf.matMul(x, p["l1.weight"]), p["l1.bias"]));
        const out = tf.reshape(tf.add(tf.matMul(h, p["l2.weight"]), p["l2.bias"]), [8]);
        const noise = tf.tensor1d(rng.normal(8).map((v) => 0.05 * v));
        return tf.mean(tf.square(tf.sub(out, tf.add(tf.tensor1d(b.y), noise)))) as tf.Scalar;
      }),
    nextBatch,
    initialPosition: 0,
    steps,
    lr: warmupCosine({ baseLr: 0.05, warmupSteps: 2, totalSteps: 10, minLr: 0.005 }),
    optimizer: { weightDecay: 0.01 },
    gradAccum: 2,
    clipNorm: 1.0,
    ema: { decay: 0.9, warmup: true },
    checkpointEvery: 3,
    keepLast: 2,
    seed: SEED,
    itemsPerBatch: 8,
    progress: false,
  };
}

async function straightRun(runDir: string) {
  const p = initMlp();
  const counts: number[] = [];
  const r = await trainLoop({
    ...options(p, runDir, 10),
    onLog: () => counts.push(tf.memory().numTensors),
  });
  const out = {
    losses: r.history.map((h) => h.loss),
    params: await snapshotParams(p),
    ema: await snapshotParams(r.ema!.shadow),
    counts,
  };
  r.dispose();
  tf.dispose(Object.values(p));
  return out;
}

Deno.test("resume after a kill reproduces the uninterrupted losses exactly; no tensor leaks", async () => {
  const base = await Deno.makeTempDir();
  const ref = await straightRun(`${base}/straight`);
  assert.equal(ref.losses.length, 10);
  assert.ok(ref.losses[9] < ref.losses[0], `loss decreases: ${ref.losses[0]} -> ${ref.losses[9]}`);
  // Tensor count after every step equals the count after step 1.
  assert.deepEqual(ref.counts, new Array(10).fill(ref.counts[0]));
  const mStraight = await readMetrics(`${base}/straight/metrics.jsonl`);
  assert.deepEqual(mStraight.map((m) => m.loss), ref.losses);
  assert.ok(mStraight.every((m) => m.grad_norm! > 0 && m.images_per_s! > 0));

  for (const kill of ["manifest", "partial"] as const) {
    const run = `${base}/killed-${kill}`;
    const p1 = initMlp();
    const r1 = await trainLoop(options(p1, run, 6));
    assert.deepEqual(r1.history.map((h) => h.loss), ref.losses.slice(0, 6));
    r1.dispose();
    tf.dispose(Object.values(p1));
    if (kill === "manifest") {
      await Deno.remove(`${run}/ckpt-00000006/manifest.json`);
    } else {
      await Deno.rename(`${run}/ckpt-00000006`, `${run}/ckpt-00000006.partial-1234abcd`);
    }
    // Fresh params (as in a new process): everything must come from the checkpoint.
    const p2 = initMlp();
    const warn = console.warn;
    const warnings: string[] = [];
    console.warn = (m: string) => warnings.push(m);
    let r2;
    const counts2: number[] = [];
    try {
      r2 = await trainLoop({
        ...options(p2, run, 10),
        resume: true,
        onLog: () => counts2.push(tf.memory().numTensors),
      });
    } finally {
      console.warn = warn;
    }
    assert.equal(r2.resumedFrom, "ckpt-00000003");
    assert.deepEqual(counts2, new Array(7).fill(counts2[0]), "no leak after resume");
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /ckpt-00000006/);
    assert.deepEqual(r2.history.map((h) => h.step), [4, 5, 6, 7, 8, 9, 10]);
    assert.deepEqual(r2.history.map((h) => h.loss), ref.losses.slice(3), `${kill}: same losses`);
    const pf = await snapshotParams(p2);
    for (const k of Object.keys(pf)) {
      assert.deepEqual(
        Array.from(pf[k].data),
        Array.from(ref.params[k].data),
        `${kill}: param ${k}`,
      );
    }
    const ef = await snapshotParams(r2.ema!.shadow);
    assert.deepEqual(Array.from(ef["l1.weight"].data), Array.from(ref.ema["l1.weight"].data));
    // Metrics: steps 4..6 of the killed run were dropped and rewritten once.
    const m = await readMetrics(`${run}/metrics.jsonl`);
    assert.deepEqual(m.map((x) => x.step), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.deepEqual(m.map((x) => x.loss), ref.losses);
    // keepLast 2: only the two newest complete checkpoints remain.
    const left = [...Deno.readDirSync(run)].map((e) => e.name).filter((n) => n.startsWith("ckpt"));
    assert.deepEqual(left.sort(), ["ckpt-00000009", "ckpt-00000010"]);
    r2.dispose();
    tf.dispose(Object.values(p2));
  }
  await Deno.remove(base, { recursive: true });
});

Deno.test("a fresh run refuses a folder with checkpoints; bad options are named", async () => {
  const run = await Deno.makeTempDir();
  const p = initMlp();
  const r = await trainLoop({ ...options(p, run, 3), ema: false, gradAccum: 1 });
  r.dispose();
  const before = tf.memory().numTensors;
  await assert.rejects(
    trainLoop({ ...options(p, run, 3), ema: false }),
    /already has checkpoints \(newest ckpt-00000003\); pass resume: true/,
  );
  assert.equal(tf.memory().numTensors, before, "failed start frees its optimizer");
  await assert.rejects(
    trainLoop({ ...options(p, run, 3), gradAccum: 0 }),
    /option gradAccum must be an integer >= 1/,
  );
  // Resuming with EMA when the checkpoint has none is a clear error.
  await assert.rejects(
    trainLoop({ ...options(p, run, 4), resume: true }),
    /has no EMA but option ema is set/,
  );
  tf.dispose(Object.values(p));
  await Deno.remove(run, { recursive: true });
});
