import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import {
  type Params,
  readMetrics,
  snapshotParams,
  trainLoop,
  type TrainLoopOptions,
} from "../lib/train/mod.ts";
import { initTinyMlp, type TinyMlpBatch, tinyMlpLoopOptions } from "./helpers/tiny_mlp.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

await tf.setBackend("cpu");

/** The shared tiny-MLP run, with weight decay and 8 items per batch for `images_per_s`. */
function options(
  p: Params,
  runDir: string,
  steps: number,
): TrainLoopOptions<TinyMlpBatch, number> {
  return {
    ...tinyMlpLoopOptions(p, { runDir, steps }),
    optimizer: { weightDecay: 0.01 },
    itemsPerBatch: 8,
  };
}

async function straightRun(runDir: string) {
  const p = initTinyMlp();
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
  await withTempDir("xgen_train_loop_", async (base) => {
    const ref = await straightRun(`${base}/straight`);
    assert.equal(ref.losses.length, 10);
    assert.ok(
      ref.losses[9] < ref.losses[0],
      `loss decreases: ${ref.losses[0]} -> ${ref.losses[9]}`,
    );
    // Tensor count after every step equals the count after step 1.
    assert.deepEqual(ref.counts, new Array(10).fill(ref.counts[0]));
    const mStraight = await readMetrics(`${base}/straight/metrics.jsonl`);
    assert.deepEqual(mStraight.map((m) => m.loss), ref.losses);
    assert.ok(mStraight.every((m) => m.grad_norm! > 0 && m.images_per_s! > 0));

    for (const kill of ["manifest", "partial"] as const) {
      const run = `${base}/killed-${kill}`;
      const p1 = initTinyMlp();
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
      const p2 = initTinyMlp();
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
      const left = [...Deno.readDirSync(run)].map((e) => e.name).filter((n) =>
        n.startsWith("ckpt")
      );
      assert.deepEqual(left.sort(), ["ckpt-00000009", "ckpt-00000010"]);
      r2.dispose();
      tf.dispose(Object.values(p2));
    }
  });
});

Deno.test("a fresh run refuses a folder with checkpoints; bad options are named", async () => {
  await withTempDir("xgen_train_loop_", async (run) => {
    const p = initTinyMlp();
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
  });
});
