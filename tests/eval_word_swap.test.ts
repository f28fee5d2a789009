/**
 * wordSwapLoss: the loss with the right captions against the loss with one word swapped, over the
 * same images and noise. Checked on an untrained tiny run (its outputs still depend on the
 * caption) against a direct one-batch computation, with the invariants that make it a paired
 * comparison.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { encodeCaptions, type LoadedRun, loadRun } from "../lib/recipe/mod.ts";
import { initBackendAndConvGrad } from "../lib/train/mod.ts";
import { wordSwapLoss } from "../lib/eval/caption_following/mod.ts";
import { encode } from "../lib/models/autoencoder.ts";
import { unetForward } from "../lib/models/unet.ts";
import { shapesWorldSample } from "../lib/data/mod.ts";
import { disposeParams } from "../lib/nn/mod.ts";
import { Rng } from "../lib/util/rng.ts";
import { makeTinyRun } from "./helpers/tiny_run.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

const CAPTIONS = ["a red circle", "a blue square", "a green star", "a red square", "a blue star"];

async function withRun(fn: (run: LoadedRun) => Promise<void>) {
  await initBackendAndConvGrad("cpu-blas", { quiet: true });
  await withTempDir("xgen_wordswap_", async (dir) => {
    let run: LoadedRun | undefined;
    try {
      await makeTinyRun(dir, { captions: CAPTIONS });
      run = await loadRun(dir);
      await fn(run);
    } finally {
      if (run) {
        for (const p of [run.ae.params, run.clip.params, run.unet.params]) disposeParams(p);
      }
    }
  });
}

function images(run: LoadedRun, n: number): Uint8Array[] {
  return Array.from(
    { length: n },
    (_, i) => shapesWorldSample(i, { seed: 3, size: run.imageSize, split: "train" }).image,
  );
}

Deno.test("wordSwapLoss: identical captions give delta 0; batching and seeds behave", async () => {
  await withRun(async (run) => {
    const ims = images(run, 5);
    const same = await wordSwapLoss(run, {
      images: ims,
      captions: CAPTIONS,
      swapped: CAPTIONS,
      timesteps: [100, 500],
    });
    assert.deepEqual(same.map((r) => r.t), [100, 500]);
    for (const r of same) {
      assert.equal(r.delta, 0);
      assert.equal(r.loss, r.swappedLoss);
      assert.ok(r.loss > 0 && Number.isFinite(r.loss));
    }
    // Swapping every shape word changes the context, so the loss moves; the same seed repeats it
    // exactly, and batches of 2 give the mean of the whole set (float32 sums apart).
    const swapped = [
      "a red star",
      "a blue circle",
      "a green square",
      "a red star",
      "a blue circle",
    ];
    const opts = { images: ims, captions: CAPTIONS, swapped, timesteps: [300] };
    const a = await wordSwapLoss(run, opts);
    assert.deepEqual(await wordSwapLoss(run, opts), a);
    assert.notEqual(a[0].delta, 0);
    const batched = await wordSwapLoss(run, { ...opts, batchSize: 2 });
    for (const k of ["loss", "swappedLoss", "delta"] as const) {
      assert.ok(Math.abs(batched[0][k] - a[0][k]) <= 1e-6 * Math.max(1, Math.abs(a[0][k])), k);
    }
    const other = await wordSwapLoss(run, { ...opts, seed: 1 });
    assert.notEqual(other[0].loss, a[0].loss);
  });
});

Deno.test("wordSwapLoss: the loss equals a direct computation of the training error", async () => {
  await withRun(async (run) => {
    const ims = images(run, 3), t = 400;
    const caps = CAPTIONS.slice(0, 3);
    const [row] = await wordSwapLoss(run, {
      images: ims,
      captions: caps,
      swapped: caps,
      timesteps: [t],
      seed: 7,
    });
    // Independently: encode, noise with the documented stream, predict, mean squared error.
    const s = run.imageSize;
    const x = tf.tensor4d(
      Float32Array.from(ims.flatMap((im) => Array.from(im, (v) => v / 127.5 - 1))),
      [3, s, s, 3],
    );
    const z0 = tf.mul(encode(run.ae.params, run.ae.config, x).mean, run.ae.scalingFactor);
    const z = await z0.data<"float32">();
    const eps = Rng.stream(7, [t]).normal(z.length);
    const ab = run.schedule.alphasCumprod[t];
    const xt = Float32Array.from(z, (v, i) => Math.sqrt(ab) * v + Math.sqrt(1 - ab) * eps[i]);
    const ctx = await encodeCaptions(run.clip, caps, run.textContext);
    const pred = unetForward(run.unet.params, run.unet.config, {
      x: tf.tensor4d(xt, z0.shape as [number, number, number, number]),
      t: tf.fill([3], t) as tf.Tensor1D,
      context: tf.tensor3d(ctx, [
        3,
        ctx.length / 3 / run.clip.config.textWidth,
        run.clip.config.textWidth,
      ]),
    });
    assert.equal(run.schedule.predictionType, "epsilon");
    const p = await pred.data<"float32">();
    let sum = 0;
    for (let i = 0; i < p.length; i++) sum += (p[i] - eps[i]) ** 2;
    const want = sum / p.length;
    assert.ok(Math.abs(row.loss - want) <= 1e-5 * want, `loss ${row.loss} vs ${want}`);
    tf.dispose([x, z0, pred]);
  });
});

Deno.test("wordSwapLoss: bad input names the field", async () => {
  await withRun(async (run) => {
    const ims = images(run, 2);
    await assert.rejects(
      () => wordSwapLoss(run, { images: ims, captions: ["a"], swapped: ["a", "b"] }),
      /captions has 1 entries, expected 2/,
    );
    await assert.rejects(
      () =>
        wordSwapLoss(run, {
          images: [ims[0], ims[1].subarray(3)],
          captions: ["a", "b"],
          swapped: ["a", "b"],
        }),
      /images\[1\] has \d+ bytes, expected/,
    );
    await assert.rejects(
      () =>
        wordSwapLoss(run, {
          images: ims,
          captions: ["a", "b"],
          swapped: ["a", "b"],
          timesteps: [1000],
        }),
      /timestep 1000 is not an integer in \[0, 1000\)/,
    );
  });
});
