/**
 * End-to-end checks of the embedded default on the tiny preset: the train and sample commands,
 * their one-line errors, and that a UNet stage killed mid-run resumes with exactly the losses of an
 * uninterrupted run.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { decodePngRgb } from "../lib/data/mod.ts";
import { initBackendAndConvGrad, readMetrics } from "../lib/train/mod.ts";
import { resolvePreset, unetStage } from "../lib/recipe/mod.ts";
import { trainRun } from "../lib/jobs/mod.ts";
import { cli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp_dir.ts";
import { tinyConditioning } from "./helpers/tiny_conditioning.ts";

Deno.test("train and sample commands: tiny preset end to end, then one-line errors", async (t) => {
  await withTempDir("xgen_cli_", async (dir) => {
    const run = `${dir}/run`;
    await t.step("train writes checkpoints, loss log, plot, samples and eval", async () => {
      const r = await cli(["lib/cli/train.ts", "--preset", "tiny", "--out", run, "--seed", "3"]);
      assert.equal(r.code, 0, r.stderr);
      for (const stage of ["autoencoder", "clip", "unet"]) {
        const m = await readMetrics(`${run}/${stage}/metrics.jsonl`);
        const steps = resolvePreset("tiny")[stage as "unet"].steps;
        assert.deepEqual(m.map((x) => x.step), Array.from({ length: steps }, (_, i) => i + 1));
        assert.ok(m.every((x) => Number.isFinite(x.loss)), `${stage} losses finite`);
        const ckpts = [...Deno.readDirSync(`${run}/${stage}`)].filter((e) =>
          e.name.startsWith("ckpt-")
        );
        assert.ok(ckpts.length >= 1, `${stage} has a checkpoint`);
      }
      const html = await Deno.readTextFile(`${run}/loss.html`);
      assert.match(html, /Plotly/);
      assert.match(html, /unet loss/);
      // 8 prompts x 8 samples of 16 px with 2 px padding.
      const grid = decodePngRgb(await Deno.readFile(`${run}/samples.png`));
      assert.equal(grid.width, 8 * 16 + 9 * 2);
      assert.equal(grid.height, 8 * 16 + 9 * 2);
      const summary = JSON.parse(await Deno.readTextFile(`${run}/summary.json`));
      assert.ok(summary.captionFollowing.heldout.n === 7, "7 held-out pairs x 1 sample");
      assert.ok(summary.scalingFactor > 0);
    });
    await t.step("sample writes a grid with one row per prompt", async () => {
      const png = `${dir}/s.png`;
      const r = await cli([
        "lib/cli/sample.ts",
        "--run",
        run,
        "--prompt",
        "a red circle",
        "--prompt",
        "a blue star",
        "--n",
        "3",
        "--steps",
        "4",
        "--scheduler",
        "ddim",
        "--out",
        png,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const g = decodePngRgb(await Deno.readFile(png));
      assert.equal(g.width, 3 * 16 + 4 * 2);
      assert.equal(g.height, 2 * 16 + 3 * 2);
    });
    await t.step("training over an existing run without --resume is refused", async () => {
      const r = await cli(["lib/cli/train.ts", "--preset", "tiny", "--out", run]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /already holds a run; pass --resume/);
    });
    await t.step(
      "bad flags, missing run folder and corrupt model give one clear line",
      async () => {
        const bad = await cli(["lib/cli/train.ts", "--steps", "many"]);
        assert.equal(bad.code, 2);
        assert.equal(bad.stderr.trim(), 'train: --steps expects an integer, got "many"');
        const unknown = await cli([
          "lib/cli/sample.ts",
          "--run",
          run,
          "--prompt",
          "x",
          "--scheduler",
          "magic",
        ]);
        assert.equal(unknown.code, 2);
        assert.match(unknown.stderr.trim(), /^sample: --scheduler expects one of ddpm, ddim/);
        const missing = await cli(["lib/cli/sample.ts", "--run", `${dir}/nope`, "--prompt", "x"]);
        assert.equal(missing.code, 1);
        assert.equal(missing.stderr.trim(), `error: run folder ${dir}/nope does not exist`);
        // Truncate the UNet weights: the size recorded in model.json no longer matches.
        const w = `${run}/unet/model/model.safetensors`;
        const bytes = await Deno.readFile(w);
        await Deno.writeFile(w, bytes.subarray(0, bytes.length - 100));
        const corrupt = await cli(["lib/cli/sample.ts", "--run", run, "--prompt", "x"]);
        assert.equal(corrupt.code, 1);
        assert.match(
          corrupt.stderr.trim(),
          /^error: .*unet\/model\/model\.safetensors: \d+ bytes, model\.json expects \d+$/,
        );
      },
    );
  });
});

Deno.test("UNet stage killed after a checkpoint resumes with identical losses", async () => {
  await initBackendAndConvGrad("cpu-blas", { quiet: true });
  await withTempDir("xgen_resume_", async (dir) => {
    const p = resolvePreset("tiny");
    // The default text context ("states"), not the tiny preset's.
    const { data, cond } = await tinyConditioning(dir, { count: 64, textContext: "states" });
    const common = { data, seed: 1, resume: false, progress: false };
    const settings = { ...p.unet, steps: 8, checkpointEvery: 3 };

    const straight = await unetStage({ ...common, dir: `${dir}/straight`, settings, cond });
    tf.dispose(Object.values(straight.params));
    const full = (await readMetrics(`${dir}/straight/metrics.jsonl`)).map((m) => m.loss);

    // A crash at step 5: the last complete checkpoint is step 3.
    await assert.rejects(
      unetStage({
        ...common,
        dir: `${dir}/killed`,
        settings,
        cond,
        onLog: (r) => {
          if (r.step === 5) throw new Error("simulated kill");
        },
      }),
      /simulated kill/,
    );
    const resumed = await unetStage({
      ...common,
      resume: true,
      dir: `${dir}/killed`,
      settings,
      cond,
    });
    tf.dispose(Object.values(resumed.params));
    const again = (await readMetrics(`${dir}/killed/metrics.jsonl`)).map((m) => m.loss);
    assert.equal(full.length, 8);
    assert.deepEqual(again, full, "same loss at every step, to the last bit");
  });
});

Deno.test("a run folder made with other settings: refused, or retrained with replaceStale", async () => {
  await initBackendAndConvGrad("cpu-blas", { quiet: true });
  await withTempDir("xgen_jobs_train_run_", async (dir) => {
    const preset = resolvePreset("tiny", { unetSteps: 2 });
    const o = {
      out: dir,
      preset,
      resume: true,
      backend: "cpu-blas",
      progress: false,
      skipEval: true,
    };
    const lines: string[] = [];
    await trainRun({ ...o, seed: 0, log: () => {} });
    await assert.rejects(
      () => trainRun({ ...o, seed: 1, log: () => {} }),
      /the run was started with other settings/,
    );
    await trainRun({ ...o, seed: 1, replaceStale: true, log: (l) => lines.push(l) });
    assert.ok(lines.some((l) => l.includes("made with other settings: training it afresh")));
    const config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    assert.equal(config.seed, 1);
    // Trained afresh: the UNet's metrics start at step 1 again and hold only this run's steps.
    const m = await readMetrics(`${dir}/unet/metrics.jsonl`);
    assert.deepEqual(m.map((r) => r.step), [1, 2]);
  });
});
