/**
 * `--precision mixed` of the compiled UNet engine: the dynamic loss scale (scale, good steps,
 * skipped steps) is saved in the compiled loop's checkpoints and restored on resume, so a killed
 * mixed run continues bit-identically (losses, weights, moments, EMA, loss scale), also when the
 * scale moved before the checkpoint; a checkpoint without it starts from the initial scale;
 * `trainRun` records the precision in config.json and refuses a resume with another one, and
 * mixed precision is refused with the tfjs engine (CLI and `trainRun`) in one line. Skipped, with
 * the reason printed, without a WebGPU adapter with `shader-f16` (the refusals always run).
 */
import assert from "node:assert/strict";
import {
  compiledTrainLoop,
  type CompiledTrainState,
  compileTrainStep,
  requestStepDevice,
  unetTrainingGraph,
} from "../lib/compiled/mod.ts";
import {
  type ConditioningSet,
  precisionProblem,
  resolvePreset,
  unetStage,
} from "../lib/recipe/mod.ts";
import { trainRun } from "../lib/jobs/mod.ts";
import {
  initBackendAndConvGrad,
  loadCheckpoint,
  type MetricRecord,
  saveCheckpoint,
} from "../lib/train/mod.ts";
import { storeFor } from "../lib/storage/location.ts";
import { initUnetArrays, UNET_PRESETS } from "../lib/models/unet.ts";
import { Rng, STREAM } from "../lib/util/rng.ts";
import { cli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp_dir.ts";
import { tinyConditioning } from "./helpers/tiny_conditioning.ts";
import { webgpuForTests } from "./helpers/webgpu.ts";
import { takeParamArrays } from "../lib/nn/mod.ts";

await initBackendAndConvGrad("cpu-blas", { quiet: true });
const { adapter, skip: ignore } = await webgpuForTests("train_compiled_precision", { f16: true });
const exists = (p: string) => Deno.stat(p).then(() => true, () => false);

const CFG = UNET_PRESETS.tiny;
const [B, H, W, TOK] = [2, 8, 8, 4];

/** The tiny UNet's initial weights as flat arrays. */
function initParams(seed: number): Record<string, Float32Array> {
  return initUnetArrays(CFG, Rng.stream(seed, [0, STREAM.init]));
}

/** One step's inputs drawn from the loop's stream (so a resume draws the same). */
function stepInputs(rng: Rng): Record<string, Float32Array> {
  const x = rng.normal(B * H * W * CFG.inChannels);
  return {
    x,
    t: Float32Array.from({ length: B }, () => Math.floor(rng.uniform() * 1000)),
    context: rng.normal(B * TOK * CFG.contextDim),
    target: x.map((z, i) => 0.5 * z + 0.1 * (i % 3)),
    weights: new Float32Array(B).fill(1),
  };
}

Deno.test("precision: mixed is refused with the tfjs engine in one line (CLI and trainRun)", async () => {
  assert.equal(precisionProblem("compiled", "mixed"), null);
  assert.equal(precisionProblem("tfjs", "f32"), null);
  const want = "--precision mixed needs --unet-engine compiled (the tfjs engine trains in float32)";
  assert.equal(precisionProblem("tfjs", "mixed"), want);
  await withTempDir("xgen_precision_refuse_", async (dir) => {
    const out = `${dir}/run`;
    const r = await cli([
      "lib/cli/train.ts",
      "--preset",
      "tiny",
      "--out",
      out,
      "--precision",
      "mixed",
    ]);
    assert.notEqual(r.code, 0);
    const lines = r.stderr.split("\n").filter((l) => l !== "" && !l.startsWith("Blocking"));
    assert.equal(lines.length, 1, r.stderr);
    assert.ok(lines[0].endsWith(want), lines[0]);
    const bad = await cli(["lib/cli/train.ts", "--out", out, "--precision", "f16"]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--precision.*f32, mixed/);
    await assert.rejects(
      trainRun({
        out,
        preset: resolvePreset("tiny"),
        seed: 0,
        backend: "cpu-blas",
        resume: false,
        skipEval: true,
        log: () => {},
        unetPrecision: "mixed",
      }),
      (e: Error) => e.message === want,
    );
    assert.equal(await exists(out), false, "no run folder");
  });
});

Deno.test({
  name: "precision: a killed mixed loop resumes bit-identically with its loss scale",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir("xgen_precision_loop_", async (dir) => {
      const device = await requestStepDevice(adapter!, "mixed");
      const graph = unetTrainingGraph({ cfg: CFG, batch: B, height: H, width: W, tokens: TOK });
      // 2^24 overflows float16 on the first steps here: the scale halves (skipped steps), then
      // grows every 2 good steps, so the checkpoint's scale and counters are not the initial.
      const compile = () =>
        compileTrainStep(graph, device, {
          precision: "mixed",
          clipNorm: 1,
          ema: { decay: 0.99, warmup: true },
          lossScale: { init: 2 ** 24, growEvery: 2 },
        });
      const init = initParams(11);
      const steps: Awaited<ReturnType<typeof compile>>[] = [];
      // Each run a fresh step, as each process of a killed and resumed run.
      const run = async (runDir: string, o: { resume?: boolean; stopAfter?: number } = {}) => {
        const step = await compile();
        steps.push(step);
        step.setParams(init);
        const losses: number[] = [];
        try {
          const r = await compiledTrainLoop<number, number>({
            runDir,
            step,
            inputs: (_b, rng) => stepInputs(rng),
            nextBatch: (p) => ({ batch: p, position: p + 1 }),
            initialPosition: 0,
            steps: 8,
            lr: 1e-2,
            seed: 5,
            checkpointEvery: 3,
            resume: o.resume,
            progress: false,
            onLog: (rec) => {
              losses.push(rec.loss!);
              if (rec.step === o.stopAfter) throw new Error("killed");
            },
          });
          return { losses, state: r.state, resumedFrom: r.resumedFrom };
        } catch (e) {
          if ((e as Error).message !== "killed") throw e;
          return { losses, state: null, resumedFrom: null };
        }
      };
      try {
        const full = await run(`${dir}/full`);
        assert.equal(full.losses.length, 8);
        const saved = JSON.parse(await Deno.readTextFile(`${dir}/full/ckpt-00000003/state.json`));
        // Two overflows (2^24, 2^23), then a good step at 2^22: scale 2^22, one good step.
        assert.deepEqual(saved.loss_scale, { scale: 2 ** 22, good_steps: 1, skipped: 2 });
        assert.equal(saved.optimizer.t, 1);
        // Killed after step 5 (checkpoint at 3, step 6 not reached), resumed to 8.
        const killed = await run(`${dir}/resumed`, { stopAfter: 5 });
        assert.equal(killed.state, null);
        assert.deepEqual(killed.losses, full.losses.slice(0, 5));
        const resumed = await run(`${dir}/resumed`, { resume: true });
        assert.equal(resumed.resumedFrom, "ckpt-00000003");
        assert.deepEqual(resumed.losses, full.losses.slice(3));
        const same = (a: CompiledTrainState, b: CompiledTrainState) => {
          assert.equal(a.t, b.t);
          assert.equal(a.emaUpdates, b.emaUpdates);
          assert.deepEqual(a.lossScale, b.lossScale);
          for (const part of ["params", "m", "v", "ema"] as const) {
            for (const [k, v] of Object.entries(b[part]!)) {
              assert.deepEqual(a[part]![k], v, `${part} ${k}`);
            }
          }
        };
        same(resumed.state!, full.state!);

        // An older checkpoint (no loss_scale): the scale starts from the initial 2^24 again,
        // which overflows, so the resumed run takes another path than the uninterrupted one.
        const old = `${dir}/old`;
        await run(old, { stopAfter: 4 });
        const ck = await loadCheckpoint({ store: storeFor(old), name: "ckpt-00000003" });
        const { loss_scale: _dropped, ...st } = ck.state as Record<string, unknown>;
        await saveCheckpoint(old, { step: 3, tensors: ck.tensors, state: st });
        const fresh = await run(old, { resume: true });
        assert.equal(fresh.resumedFrom, "ckpt-00000003");
        assert.equal(fresh.state!.lossScale!.skipped >= 1, true);
        assert.notDeepEqual(fresh.losses, full.losses.slice(3));

        // setState without a loss scale: initial scale, the step count, counters zero.
        const step = steps[0];
        const s3 = { ...full.state! };
        delete s3.lossScale;
        step.setState(s3);
        assert.deepEqual(await step.readLossScale(), {
          scale: 2 ** 24,
          applied: full.state!.t,
          goodSteps: 0,
          skipped: 0,
        });
        step.setState(full.state!);
        assert.deepEqual(await step.readLossScale(), full.state!.lossScale);
      } finally {
        for (const s of steps) s.destroy();
        device.destroy();
      }
    }),
});

/** Frozen tiny autoencoder + CLIP on 32 shapes-world images, and their conditioning set. */
async function conditioning(dir: string): Promise<ConditioningSet> {
  return (await tinyConditioning(dir)).cond;
}

Deno.test({
  name: "precision: a killed mixed UNet stage resumes bit-identically; trainRun records it",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir("xgen_precision_stage_", async (dir) => {
      const cond = await conditioning(dir);
      const settings = {
        ...resolvePreset("tiny").unet,
        steps: 6,
        batchSize: 4,
        checkpointEvery: 3,
      };
      const run = async (name: string, o: { resume?: boolean; stopAfter?: number } = {}) => {
        const losses: number[] = [];
        try {
          const u = await unetStage({
            dir: `${dir}/${name}`,
            settings,
            cond,
            seed: 3,
            resume: o.resume ?? false,
            progress: false,
            engine: "compiled",
            precision: "mixed",
            onLog: (r: MetricRecord) => {
              losses.push(r.loss!);
              if (o.stopAfter === r.step) throw new Error("killed");
            },
          });
          return { losses, weights: takeParamArrays(u.params) };
        } catch (e) {
          if ((e as Error).message !== "killed") throw e;
          return { losses, weights: null };
        }
      };
      const full = await run("full");
      assert.equal(full.losses.length, 6);
      const st = JSON.parse(await Deno.readTextFile(`${dir}/full/ckpt-00000003/state.json`));
      assert.equal(st.config.precision, "mixed");
      assert.ok(st.loss_scale.scale > 0 && st.loss_scale.good_steps + st.loss_scale.skipped === 3);
      await run("resumed", { stopAfter: 4 });
      const resumed = await run("resumed", { resume: true });
      assert.deepEqual(resumed.losses, full.losses.slice(3));
      for (const [k, v] of Object.entries(full.weights!)) {
        assert.deepEqual(resumed.weights![k], v, `${k} after the resume`);
      }
      // The tfjs engine does not train mixed precision.
      await assert.rejects(
        unetStage({
          dir: `${dir}/tfjs`,
          settings,
          cond,
          seed: 3,
          resume: false,
          precision: "mixed",
        }),
        /unetStage: --precision mixed needs --unet-engine compiled/,
      );

      // trainRun: recorded in config.json; a resume with another precision is refused by flag.
      const p = resolvePreset("tiny", { unetSteps: 2 });
      p.data.trainCount = 32;
      p.data.perShard = 32;
      p.unet.batchSize = 4;
      const out = `${dir}/run`;
      const base = {
        out,
        preset: p,
        seed: 0,
        backend: "cpu-blas",
        skipEval: true,
        progress: false,
        log: () => {},
        unetEngine: "compiled" as const,
      };
      await trainRun({ ...base, resume: false, unetPrecision: "mixed" });
      const config = JSON.parse(await Deno.readTextFile(`${out}/config.json`));
      assert.equal(config.unetPrecision, "mixed");
      await assert.rejects(
        trainRun({ ...base, resume: true }),
        /the run was started with --precision mixed, now f32; resume it with the same flags/,
      );
      await trainRun({ ...base, resume: true, unetPrecision: "mixed" });
    }),
});
