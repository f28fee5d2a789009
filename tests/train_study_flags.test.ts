/**
 * The UNet training options of `deno task train` a study sweeps: `--prediction`, `--grad-accum`,
 * `--checkpoint-every`, `--keep` and `--keep-at`, for the main job and `--parts` runs: what
 * config.json records, resumes with another value refused by flag, the v-prediction target in
 * closed form and sampled by both engines, accumulation's equivalence with a larger batch,
 * retention on disk and in a gs:// bucket, and the evaluation listing the final model once.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { type ConditioningSet, diffusionTargets, unetStage } from "../lib/recipe/stages.ts";
import { resolvePreset } from "../lib/recipe/presets.ts";
import { loadModel } from "../lib/recipe/model_files.ts";
import { generate, loadRun } from "../lib/recipe/generate.ts";
import { ensureOnnxExport } from "../lib/recipe/onnx_export.ts";
import { makeSchedule } from "../lib/diffusion/mod.ts";
import { UNET_PRESETS, type UnetConfig } from "../lib/models/unet.ts";
import { initBackendAndConvGrad, readMetrics, trainLoop } from "../lib/train/mod.ts";
import { GcsStore } from "../lib/storage/mod.ts";
import { trainOnParts } from "../lib/jobs/train_parts.ts";
import { loadOnnxPipeline, txt2img } from "../lib/onnx/sd_pipeline.ts";
import { resolveCheckpoints } from "../lib/eval/clip_fid/checkpoints.ts";
import { buildShapesWorldShards } from "../lib/data/mod.ts";
import { Rng } from "../lib/util/rng.ts";
import { cli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp_dir.ts";
import { startGcsEmulator } from "./helpers/gcs_emulator.ts";

await initBackendAndConvGrad("cpu-blas", { quiet: true });

const ckpts = (dir: string): number[] => {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => /^ckpt-\d+$/.test(n))
      .map((n) => Number(n.slice(5))).sort((a, b) => a - b);
  } catch {
    return [];
  }
};

/** SD v1's scaled-linear abar_t, computed here from its definition (float64). */
function sdAlphaBar(t: number): number {
  const a = Math.sqrt(0.00085), b = Math.sqrt(0.012);
  let prod = 1;
  for (let i = 0; i <= t; i++) prod *= 1 - (a + (i / 999) * (b - a)) ** 2;
  return prod;
}

Deno.test("v-prediction target and min-SNR weights in closed form", () => {
  const x0 = [0.5, -1, 2, 0.25], eps = [1, 0.5, -0.3, 2], t = [10, 700];
  for (const predictionType of ["epsilon", "v_prediction"] as const) {
    const r = diffusionTargets(makeSchedule({ predictionType }), { x0, eps, t, minSnrGamma: 5 });
    t.forEach((ti, s) => {
      const ab = sdAlphaBar(ti), snr = ab / (1 - ab);
      for (let j = 2 * s; j < 2 * s + 2; j++) {
        const xt = Math.sqrt(ab) * x0[j] + Math.sqrt(1 - ab) * eps[j];
        const v = Math.sqrt(ab) * eps[j] - Math.sqrt(1 - ab) * x0[j];
        assert.ok(Math.abs(r.xt[j] - xt) < 1e-5, `${predictionType} xt[${j}]`);
        const want = predictionType === "epsilon" ? eps[j] : v;
        assert.ok(Math.abs(r.target[j] - want) < 1e-5, `${predictionType} target[${j}]`);
      }
      // t=10 has snr ~ 90 (clamped to 5), t=700 snr ~ 0.05 (not clamped).
      const w = Math.min(snr, 5) / (predictionType === "epsilon" ? snr : snr + 1);
      assert.ok(Math.abs(r.weights[s] - w) < 1e-5 * w, `${predictionType} weight ${s}`);
    });
  }
});

/** A synthetic conditioning set: 8 random 4x4x4 latents with posteriors, 3-token contexts. */
function syntheticCond(): ConditioningSet {
  const rng = Rng.stream(7), n = 8, per = 4 * 4 * 4, T = 3, D = 32;
  return {
    latents: rng.normal(n * per),
    latentShape: [4, 4, 4],
    contexts: rng.normal(n * T * D),
    emptyContext: rng.normal(T * D),
    contextShape: [T, D],
    latentStd: Float32Array.from(rng.normal(n * per), (v) => 0.1 * Math.abs(v)),
  };
}

const TINY: UnetConfig = { ...UNET_PRESETS.tiny, blockChannels: [8, 16], groupNormGroups: 4 };

function settings(o: Partial<ReturnType<typeof resolvePreset>["unet"]>) {
  return {
    ...resolvePreset("tiny").unet,
    model: TINY,
    // Half the captions dropped, so the dropout draws must line up too.
    captionDropout: 0.5,
    warmupSteps: 1,
    ...o,
  };
}

async function trainUnet(dir: string, s: ReturnType<typeof settings>, onStep?: number) {
  const u = await unetStage({
    dir,
    cond: syntheticCond(),
    settings: s,
    seed: 3,
    resume: true,
    progress: false,
    onLog: (r) => {
      if (r.step === onStep) throw new Error("killed");
    },
  });
  const weights = Object.fromEntries(
    await Promise.all(Object.entries(u.params).map(async ([k, v]) => [k, await v.data()])),
  ) as Record<string, Float32Array>;
  tf.dispose(Object.values(u.params));
  return { weights, losses: (await readMetrics(`${dir}/metrics.jsonl`)).map((m) => m.loss!) };
}

/** Root-mean-square difference over every weight. */
function rmsDiff(a: Record<string, Float32Array>, b: Record<string, Float32Array>): number {
  let s = 0, n = 0;
  for (const [k, v] of Object.entries(a)) {
    v.forEach((x, i) => {
      s += (x - b[k][i]) ** 2;
      n++;
    });
  }
  return Math.sqrt(s / n);
}

Deno.test("--grad-accum 2 with batch 2 trains as batch 4; resume is exact at step boundaries", async () => {
  await withTempDir("xgen_accum_", async (dir) => {
    const common = { steps: 3, checkpointEvery: 1, emaDecay: 0.5 };
    const big = await trainUnet(`${dir}/b4`, settings({ ...common, batchSize: 4 }));
    const acc = await trainUnet(`${dir}/b2k2`, settings({ ...common, batchSize: 2, gradAccum: 2 }));
    const small = await trainUnet(`${dir}/b2`, settings({ ...common, batchSize: 2 }));
    // Same samples (the in-memory order is one stream), timesteps, noise, dropout and posterior
    // draws: only float32 rounding of the averages differs.
    big.losses.forEach((l, i) => assert.ok(Math.abs(l - acc.losses[i]) < 1e-5 * l, `loss ${i}`));
    // AdamW's first steps move each weight by about lr * sign(gradient), so a weight whose
    // gradient is at float32 rounding level may step either way: compare the RMS over all
    // weights, not the worst one.
    const d = rmsDiff(big.weights, acc.weights), other = rmsDiff(big.weights, small.weights);
    // Measured (2026-12-07, cpu-blas): 4.6e-7 against 4.9e-3 for batch 2 alone.
    assert.ok(d < 1e-5, `batch 4 vs 2 x 2 micro-batches: weights differ by ${d} (RMS)`);
    assert.ok(other > 1000 * d, `batch 2 alone should differ far more (${other} vs ${d})`);
    // Killed after step 2's log (before its checkpoint): resumes from step 1 bit for bit.
    const s = settings({ ...common, batchSize: 2, gradAccum: 2 });
    await assert.rejects(() => trainUnet(`${dir}/kill`, s, 2), /killed/);
    assert.deepEqual(ckpts(`${dir}/kill`), [1]);
    const resumed = await trainUnet(`${dir}/kill`, s);
    assert.deepEqual(resumed.losses, acc.losses);
    assert.equal(rmsDiff(resumed.weights, acc.weights), 0);
  });
});

Deno.test("--checkpoint-every, --keep, --keep-at: which checkpoints stay; eval lists final once", async () => {
  await withTempDir("xgen_keep_", async (dir) => {
    const base = { steps: 6, batchSize: 2 };
    // Saves at 1 and 3 (keep-at), 2, 4 and 6 (every 2); keep 1 keeps the newest beside them.
    await trainUnet(
      `${dir}/r1/unet`,
      settings({ ...base, checkpointEvery: 2, keep: 1, keepAt: [1, 3] }),
    );
    assert.deepEqual(ckpts(`${dir}/r1/unet`), [1, 3, 6]);
    await trainUnet(`${dir}/r2/unet`, settings({ ...base, checkpointEvery: 4, keep: "all" }));
    assert.deepEqual(ckpts(`${dir}/r2/unet`), [4, 6]);
    await trainUnet(`${dir}/r3/unet`, settings({ ...base, checkpointEvery: 1 }));
    assert.deepEqual(ckpts(`${dir}/r3/unet`), [5, 6]); // the default: the newest 2
    // The final model holds step 6's EMA weights: listed once, as the step (or as named first).
    const names = async (sel: Parameters<typeof resolveCheckpoints>[1]) =>
      (await resolveCheckpoints(`${dir}/r1`, sel)).map((r) => r.name);
    assert.deepEqual(await names("all"), ["ckpt-00000001", "ckpt-00000003", "ckpt-00000006"]);
    assert.deepEqual(await names("latest"), ["final"]);
    assert.deepEqual(await names([6, "final"]), ["ckpt-00000006"]);
    assert.deepEqual(await names(["final", 3, 6]), ["final", "ckpt-00000003"]);
    const model = await loadModel(`${dir}/r1/unet/model`, "unet");
    assert.equal(model.info.extra.step, 6);
    tf.dispose(Object.values(model.params));
  });
});

Deno.test("keep and keep-at prune a gs:// store only after a newer checkpoint is complete", async () => {
  const emu = await startGcsEmulator();
  try {
    await withTempDir("xgen_keepgs_", async (dir) => {
      const store = new GcsStore("gs://xgen-test/keep", { apiEndpoint: emu.endpoint });
      const w = tf.variable(tf.zeros([1]));
      const seen: number[][] = [];
      const r = await trainLoop<number, number>({
        runDir: dir,
        store,
        params: { w },
        lossFn: () => tf.sum(tf.square(tf.sub(w, 1))),
        nextBatch: async (p) => {
          // What the bucket holds when each step starts: never fewer than one complete one.
          const keys = await store.list("ckpt-");
          seen.push(
            [...new Set(keys.filter((k) => k.endsWith("/manifest.json")))].map((k) =>
              Number(k.slice(5, 13))
            ),
          );
          return { batch: 0, position: p + 1 };
        },
        initialPosition: 0,
        steps: 5,
        seed: 0,
        checkpointEvery: 1,
        keepLast: 1,
        keepSteps: [2],
        progress: false,
      });
      r.dispose();
      w.dispose();
      const keys = await store.list("ckpt-");
      const folders = [...new Set(keys.map((k) => k.split("/")[0]))].sort();
      assert.deepEqual(folders, ["ckpt-00000002", "ckpt-00000005"]);
      assert.deepEqual(seen, [[], [1], [1, 2], [2, 3], [2, 4]]);
    });
  } finally {
    await emu.stop();
  }
});

Deno.test("deno task train: the flags in config.json, a resume with other values refused by flag, v-prediction sampled", async () => {
  await withTempDir("xgen_flags_", async (dir) => {
    const out = `${dir}/run`;
    const args = ["lib/cli/train.ts", "--preset", "tiny", "--steps", "2", "--out", out];
    const flags = ["--prediction", "v_prediction", "--grad-accum", "2", "--checkpoint-every", "1"];
    const keep = ["--keep", "all", "--keep-at", "1"];
    const r = await cli([...args, ...flags, ...keep, "--skip-eval"]);
    assert.equal(r.code, 0, r.stderr);
    const unet = JSON.parse(await Deno.readTextFile(`${out}/config.json`)).preset.unet;
    assert.deepEqual(
      [unet.schedule.predictionType, unet.gradAccum, unet.checkpointEvery, unet.keep, unet.keepAt],
      ["v_prediction", 2, 1, "all", [1]],
    );
    assert.deepEqual(ckpts(`${out}/unet`), [1, 2]);
    const refused = async (extra: string[], message: RegExp) => {
      const again = await cli([...args, ...extra, "--skip-eval", "--resume"]);
      assert.equal(again.code, 1, again.stderr);
      assert.match(again.stderr, message);
    };
    await refused(
      ["--prediction", "epsilon", "--grad-accum", "2", "--checkpoint-every", "1", ...keep],
      /config\.json: the run was started with --prediction v_prediction, now epsilon; resume it/,
    );
    await refused([...flags, "--keep", "3", "--keep-at", "1"], /--keep all, now 3/);
    await refused([...flags, "--keep", "all"], /--keep-at 1, now none/);
    await refused(
      ["--prediction", "v_prediction", "--checkpoint-every", "1", ...keep],
      /--grad-accum 2, now 1/,
    );
    assert.match((await cli([...args, "--keep", "0"])).stderr, /--keep 0: expected an integer/);

    // Both engines read v-prediction from the run: the tfjs generator (from the model and from a
    // checkpoint) and the ONNX export's scheduler_config.json.
    const run = await loadRun(out);
    assert.equal(run.schedule.predictionType, "v_prediction");
    const ck = await loadRun(out, { checkpoint: "ckpt-00000001" });
    assert.equal(ck.schedule.predictionType, "v_prediction");
    const g = { prompts: ["a red circle"], n: 1, guidance: 3, steps: 3, seed: 0 };
    const [v] = await generate(run, { ...g, scheduler: "dpmpp_2m" });
    const [e] = await generate(
      { ...run, schedule: makeSchedule({ ...run.schedule.config, predictionType: "epsilon" }) },
      { ...g, scheduler: "dpmpp_2m" },
    );
    assert.equal(v.width, 16);
    assert.ok(v.data.some((x, i) => x !== e.data[i]), "the prediction type changes the sample");
    for (const p of [run, ck]) {
      for (const part of [p.ae.params, p.clip.params, p.unet.params]) {
        tf.dispose(Object.values(part));
      }
    }
    const onnx = await ensureOnnxExport(out, { log: () => {} });
    const sched = JSON.parse(await Deno.readTextFile(`${onnx}/scheduler/scheduler_config.json`));
    assert.equal(sched.prediction_type, "v_prediction");
    const pipe = await loadOnnxPipeline(onnx, { executionProviders: ["cpu"] });
    try {
      const [o] = await txt2img(pipe, { ...g, scheduler: "dpmpp_2m" });
      // Same sampler, schedule and weights as the tfjs engine: the same image up to rounding.
      let worst = 0;
      o.data.forEach((x, i) => worst = Math.max(worst, Math.abs(x - v.data[i])));
      assert.ok(worst <= 2, `onnx vs tfjs sample: max pixel difference ${worst}`);
    } finally {
      await pipe.release();
    }
  });
});

Deno.test("train --parts: --prediction overrides the folder's scheduler, recorded and exported", async () => {
  await withTempDir("xgen_flags_parts_", async (dir) => {
    await buildShapesWorldShards({ outDir: `${dir}/shards`, seed: 0, count: 4, perShard: 4 });
    const o = {
      parts: "tests/fixtures/tiny_sd/fp32_scalar_t",
      data: `${dir}/shards`,
      out: `${dir}/run`,
      settings: {
        ...resolvePreset("tiny", { unetGradAccum: 2, unetKeep: "all" }).unet,
        model: UNET_PRESETS.tiny,
        steps: 2,
        batchSize: 2,
        warmupSteps: 0,
        checkpointEvery: 1,
      },
      resolution: 64,
      seed: 0,
      resume: false,
      backend: "cpu-blas",
      skipSamples: true,
      progress: false,
      log: () => {},
      predictionType: "v_prediction" as const,
    };
    await trainOnParts(o);
    const config = JSON.parse(await Deno.readTextFile(`${dir}/run/config.json`));
    assert.deepEqual(
      [config.prediction, config.unet.gradAccum, config.unet.keep, config.unet.checkpointEvery],
      ["v_prediction", 2, "all", 1],
    );
    assert.deepEqual(ckpts(`${dir}/run/unet`), [1, 2]);
    const sched = JSON.parse(
      await Deno.readTextFile(`${dir}/run/model/scheduler/scheduler_config.json`),
    );
    assert.equal(sched.prediction_type, "v_prediction");
    const pipe = await loadOnnxPipeline(`${dir}/run/model`, { executionProviders: ["cpu"] });
    assert.equal(pipe.schedule.predictionType, "v_prediction");
    await pipe.release();
    const unet = await loadModel(`${dir}/run/unet/model`, "unet");
    assert.equal(
      (unet.info.extra.schedule as { predictionType: string }).predictionType,
      "v_prediction",
    );
    tf.dispose(Object.values(unet.params));
    await assert.rejects(
      () => trainOnParts({ ...o, resume: true, predictionType: undefined }),
      /run\/config\.json: the run was started with --prediction v_prediction, now \(the folder's\)/,
    );
    await assert.rejects(
      () => trainOnParts({ ...o, resume: true, settings: { ...o.settings, gradAccum: 4 } }),
      /the run was started with --grad-accum 2, now 4/,
    );
  });
});
