/**
 * The UNet stage's `"compiled"` engine (the whole step compiled for navigator.gpu): the tiny
 * preset's UNet stage gives the same losses as the `"tfjs"` engine on cpu-blas over 20 steps (same
 * seed, so the same data, timesteps, noise, dropout and schedule), a run killed after a checkpoint
 * resumes to exactly the uninterrupted losses and final weights, a compiled checkpoint resumes
 * with the tfjs engine too, `trainRun` records the engine in config.json, refuses a resume with
 * the other one and samples from the result, and what the compiled step cannot do is refused in
 * one line (data-parallel groups: tests/compiled_data_parallel.test.ts). Skipped, with the reason printed, without a WebGPU adapter.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import {
  compiledEngineProblem,
  type ConditioningSet,
  generate,
  loadRun,
  resolvePreset,
  unetStage,
} from "../lib/recipe/mod.ts";
import { trainRun } from "../lib/jobs/mod.ts";
import { initBackendAndConvGrad, type MetricRecord, readMetrics } from "../lib/train/mod.ts";
import { loadModel } from "../lib/recipe/model_files.ts";
import { withTempDir } from "./helpers/temp_dir.ts";
import { tinyConditioning } from "./helpers/tiny_conditioning.ts";
import { webgpuForTests } from "./helpers/webgpu.ts";
import { takeParamArrays } from "../lib/nn/mod.ts";

await initBackendAndConvGrad("cpu-blas", { quiet: true });
const { skip: ignore } = await webgpuForTests("train_compiled_engine");

const STEPS = 20;
const preset = resolvePreset("tiny");
/** The tiny UNet stage at batch 4 (to keep lavapipe quick), checkpoints every 10 steps. */
const settings = { ...preset.unet, steps: STEPS, batchSize: 4, checkpointEvery: 10 };

/** Frozen tiny autoencoder + CLIP on 32 shapes-world images, and their conditioning set. */
async function conditioning(dir: string): Promise<ConditioningSet> {
  return (await tinyConditioning(dir)).cond;
}

/** max |a - b| / |b| over steps. */
function worstRel(a: number[], b: number[]): number {
  assert.equal(a.length, b.length);
  return Math.max(...a.map((x, i) => Math.abs(x - b[i]) / Math.abs(b[i])));
}

Deno.test({
  name: "compiled UNet engine: tfjs-equal losses, exact kill + resume, cross-engine resume",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir("xgen_compiled_engine_", async (dir) => {
      const cond = await conditioning(dir);
      const run = async (name: string, engine: "tfjs" | "compiled", o: {
        resume?: boolean;
        stopAfter?: number;
        engineSettings?: typeof settings;
      } = {}) => {
        const losses: number[] = [];
        const onLog = (r: MetricRecord) => {
          losses.push(r.loss!);
          // A kill right after a step: the step is done, nothing past the checkpoint is saved.
          if (o.stopAfter === r.step) throw new Error("killed");
        };
        try {
          const u = await unetStage({
            dir: `${dir}/${name}`,
            settings: o.engineSettings ?? settings,
            cond,
            seed: 3,
            resume: o.resume ?? false,
            progress: false,
            engine,
            onLog,
          });
          return { losses, weights: takeParamArrays(u.params) };
        } catch (e) {
          if ((e as Error).message !== "killed") throw e;
          return { losses, weights: null };
        }
      };
      const t0 = performance.now();
      const ref = await run("tfjs", "tfjs");
      const t1 = performance.now();
      const full = await run("compiled", "compiled");
      const t2 = performance.now();
      const rel = worstRel(full.losses, ref.losses);
      console.log(
        `tfjs cpu-blas ${((t1 - t0) / STEPS).toFixed(0)} ms/step, compiled (lavapipe) ` +
          `${((t2 - t1) / STEPS).toFixed(0)} ms/step incl. compile; worst loss rel diff ${
            rel.toExponential(2)
          }`,
      );
      assert.equal(full.losses.length, STEPS);
      assert.ok(rel <= 1e-4, `losses differ from tfjs by ${rel}`);
      // The saved model (EMA weights) is close to the tfjs engine's too.
      let wd = 0, wm = 0;
      for (const [k, v] of Object.entries(ref.weights!)) {
        const g = full.weights![k];
        for (let i = 0; i < v.length; i++) {
          wd = Math.max(wd, Math.abs(g[i] - v[i]));
          wm = Math.max(wm, Math.abs(v[i]));
        }
      }
      assert.ok(wd / wm < 1e-3, `EMA weights differ from tfjs by ${wd / wm}`);

      // Killed after step 13 (checkpoint at 10), resumed: steps 11-20 as the uninterrupted run.
      const killed = await run("resumed", "compiled", { stopAfter: 13 });
      assert.equal(killed.weights, null);
      assert.deepEqual(killed.losses, full.losses.slice(0, 13));
      const resumed = await run("resumed", "compiled", { resume: true });
      assert.deepEqual(resumed.losses, full.losses.slice(10));
      const metrics = await readMetrics(`${dir}/resumed/metrics.jsonl`);
      assert.deepEqual(metrics.map((m) => m.step), Array.from({ length: STEPS }, (_, i) => i + 1));
      assert.ok(metrics.every((m) => m.grad_norm! > 0));
      for (const [k, v] of Object.entries(full.weights!)) {
        assert.deepEqual(resumed.weights![k], v, `${k} after the resume`);
      }

      // The checkpoint format is the tfjs loop's: a compiled step-10 checkpoint resumes on tfjs
      // (killed after step 11: a step's log line comes before its checkpoint).
      await run("cross", "compiled", { stopAfter: 11 });
      const cross = await run("cross", "tfjs", { resume: true });
      const crossRel = worstRel(cross.losses, full.losses.slice(10));
      assert.ok(crossRel <= 1e-4, `tfjs resume of a compiled checkpoint: ${crossRel}`);
    }),
});

Deno.test({
  name: "compiled UNet engine: trainRun records it, refuses another on resume, and samples",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir("xgen_compiled_run_", async (dir) => {
      const p = resolvePreset("tiny", { unetSteps: 3 });
      p.data.trainCount = 32;
      p.data.perShard = 32;
      p.unet.batchSize = 4;
      const out = `${dir}/run`;
      const base = { out, preset: p, seed: 0, backend: "cpu-blas", skipEval: true, log: () => {} };
      await trainRun({ ...base, resume: false, progress: false, unetEngine: "compiled" });
      const config = JSON.parse(await Deno.readTextFile(`${out}/config.json`));
      assert.equal(config.unetEngine, "compiled");
      const unet = await loadModel(`${out}/unet/model`, "unet");
      assert.equal(unet.info.extra.step, 3);
      assert.equal(unet.info.extra.ema, true);
      tf.dispose(Object.values(unet.params));
      const state = JSON.parse(await Deno.readTextFile(`${out}/unet/ckpt-00000003/state.json`));
      assert.equal(state.config.engine, "compiled");
      await assert.rejects(
        trainRun({ ...base, resume: true, progress: false }),
        /the run was started with --unet-engine compiled, now tfjs; resume it with the same flags/,
      );
      // A finished compiled run resumes (nothing left to train) and samples like any run.
      await trainRun({ ...base, resume: true, progress: false, unetEngine: "compiled" });
      const loaded = await loadRun(out);
      const images = await generate(loaded, {
        prompts: ["a red circle"],
        n: 1,
        scheduler: "ddim",
        steps: 2,
        guidance: 2,
        seed: 0,
      });
      assert.equal(images.length, 1);
      assert.equal(images[0].width, 16);
      const px = images[0].data;
      assert.ok(Math.max(...px) > Math.min(...px), "a blank image");
    }),
});

Deno.test("compiled UNet engine: what it cannot do is refused in one line, naming the flag", async () => {
  const u = resolvePreset("tiny").unet;
  // Data-parallel groups train (tests/compiled_data_parallel.test.ts).
  assert.equal(compiledEngineProblem(u, 2), null);
  assert.equal(
    compiledEngineProblem({ ...u, gradAccum: 4 }, 1),
    "--unet-engine compiled takes one micro-batch per step, got --grad-accum 4; raise " +
      "--batch-size instead or use --unet-engine tfjs",
  );
  assert.equal(
    compiledEngineProblem({ ...u, schedule: { predictionType: "v_prediction" } }, 1),
    null,
  );
  // trainRun refuses before touching the run folder.
  await withTempDir("xgen_compiled_refuse_", async (dir) => {
    const p = resolvePreset("tiny", { unetGradAccum: 2 });
    await assert.rejects(
      trainRun({
        out: `${dir}/run`,
        preset: p,
        seed: 0,
        backend: "cpu-blas",
        resume: false,
        skipEval: true,
        log: () => {},
        unetEngine: "compiled",
      }),
      /--grad-accum 2/,
    );
    assert.equal(await Deno.stat(`${dir}/run`).catch(() => null), null);
  });
});
