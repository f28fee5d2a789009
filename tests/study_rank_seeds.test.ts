/**
 * The data-parallel seeding experiment: with shared loss streams every rank of the UNet stage
 * draws the same timesteps and noise (so a step's global batch holds at most its per-rank batch
 * of distinct timesteps), with per-rank streams they differ, the default is per-rank and leaves
 * the stream, the draws and the recorded config as they were, a shared run resumes exactly, and
 * `rankSeedsExperiment` runs end to end on the tiny preset with finite statistics whose intervals
 * hold their estimates. Two ranks run in this process (`localWorld`).
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { localWorld, lossStreamPath, type SeedStreams } from "../lib/data_parallel/mod.ts";
import {
  type ConditioningSet,
  resolvePreset,
  type StepDraws,
  unetStage,
} from "../lib/recipe/mod.ts";
import { makeSchedule, sampleTimesteps } from "../lib/diffusion/mod.ts";
import { initBackendAndConvGrad } from "../lib/train/mod.ts";
import { Rng, STREAM } from "../lib/util/rng.ts";
import { rankSeedsExperiment, stepToStepVariance } from "../lib/study/mod.ts";
import { withTempDir } from "./helpers/temp_dir.ts";
import { tinyConditioning as tinyStageInputs } from "./helpers/tiny_conditioning.ts";

await initBackendAndConvGrad("cpu-blas", { quiet: true });

const SEED = 3;
const preset = resolvePreset("tiny");

/** Tiny-preset conditioning from 32 images and two-step frozen parts (what the UNet trains on). */
async function tinyConditioning(dir: string): Promise<ConditioningSet> {
  return (await tinyStageInputs(dir, { seed: SEED })).cond;
}

/** Each rank's draws (copied) and rank 0's losses of a two-rank UNet run. */
interface RanksRun {
  draws: StepDraws[][];
  losses: number[];
}

async function trainTwoRanks(
  cond: ConditioningSet,
  dir: string,
  o: { streams?: SeedStreams; steps: number; checkpointEvery?: number; resume?: boolean },
): Promise<RanksRun> {
  const world = localWorld(2);
  const draws: StepDraws[][] = [[], []], losses: number[] = [];
  const trained = await Promise.all(world.map((comm) =>
    unetStage({
      dir,
      settings: {
        ...preset.unet,
        steps: o.steps,
        checkpointEvery: o.checkpointEvery ?? o.steps,
        keep: "all",
      },
      seed: SEED,
      resume: o.resume ?? false,
      comm,
      progress: false,
      ...(o.streams ? { seedStreams: o.streams } : {}),
      cond,
      onLog: comm.rank === 0 ? (r) => losses.push(r.loss!) : undefined,
      onStepDraws: (d) =>
        draws[comm.rank].push({
          t: d.t.slice(),
          eps: d.eps.slice(),
          drop: [...d.drop],
          z: d.z && d.z.slice(),
        }),
    })
  ));
  for (const u of trained) tf.dispose(Object.values(u.params));
  return { draws, losses };
}

const stateConfig = async (dir: string, step: number) =>
  JSON.parse(
    await Deno.readTextFile(`${dir}/ckpt-${String(step).padStart(8, "0")}/state.json`),
  ).config;

Deno.test("lossStreamPath: a stream per rank by default, rank 0's on every rank when shared", () => {
  assert.deepEqual(lossStreamPath(0), [0, STREAM.noise]);
  assert.deepEqual(lossStreamPath(3, "per-rank"), [3, STREAM.noise]);
  assert.deepEqual(lossStreamPath(3, "shared"), [0, STREAM.noise]);
  assert.throws(
    () => lossStreamPath(1, "same" as SeedStreams),
    /seedStreams: expected "per-rank" or "shared", got "same"/,
  );
});

Deno.test("unetStage on two ranks: shared streams draw alike, per-rank ones differ, default is per-rank", async () => {
  await withTempDir("xgen_rank_seeds_", async (dir) => {
    const cond = await tinyConditioning(dir);
    const steps = 3, perRank = preset.unet.batchSize / 2;
    const shared = await trainTwoRanks(cond, `${dir}/shared`, { streams: "shared", steps });
    const perRankRun = await trainTwoRanks(cond, `${dir}/per-rank`, { streams: "per-rank", steps });
    const byDefault = await trainTwoRanks(cond, `${dir}/default`, { steps });

    for (const run of [shared, perRankRun, byDefault]) {
      assert.equal(run.losses.length, steps);
      assert.deepEqual(run.draws.map((d) => d.length), [steps, steps]);
      assert.ok(run.losses.every(Number.isFinite));
    }
    for (let k = 0; k < steps; k++) {
      // Shared: rank 1 trains on exactly rank 0's timesteps, noise and caption dropout.
      assert.deepEqual(shared.draws[1][k], shared.draws[0][k]);
      const distinct = new Set([...shared.draws[0][k].t, ...shared.draws[1][k].t]).size;
      assert.ok(distinct <= perRank, `step ${k + 1}: ${distinct} distinct timesteps`);
      // Per-rank: different timesteps and noise on the two ranks.
      assert.notDeepEqual(perRankRun.draws[1][k].t, perRankRun.draws[0][k].t);
      assert.ok(perRankRun.draws[1][k].eps.some((v, i) => v !== perRankRun.draws[0][k].eps[i]));
      // Rank 0 draws the same in both modes: only the other ranks' streams change.
      assert.deepEqual(shared.draws[0][k], perRankRun.draws[0][k]);
    }
    // The default is the per-rank run, draw for draw and loss for loss.
    assert.deepEqual(byDefault.draws, perRankRun.draws);
    assert.deepEqual(byDefault.losses, perRankRun.losses);
    // Each rank's first timesteps come from Rng.stream(seed, [rank, STREAM.noise]), as before.
    const T = makeSchedule(preset.unet.schedule).numTrainTimesteps;
    for (const r of [0, 1]) {
      const want = sampleTimesteps(Rng.stream(SEED, [r, STREAM.noise]), perRank, T);
      assert.deepEqual(byDefault.draws[r][0].t, want);
    }
    assert.deepEqual(
      shared.draws[1][0].t,
      sampleTimesteps(Rng.stream(SEED, [0, STREAM.noise]), perRank, T),
    );
    // Two ranks swing the loss differently only through the draws: the losses differ.
    assert.notDeepEqual(shared.losses, perRankRun.losses);
    // The recorded config names shared streams and is unchanged by default.
    assert.equal((await stateConfig(`${dir}/shared`, steps)).seedStreams, "shared");
    const plain = await stateConfig(`${dir}/default`, steps);
    assert.deepEqual(Object.keys(plain).sort(), ["settings", "stage", "worldSize"]);
    assert.deepEqual(await stateConfig(`${dir}/per-rank`, steps), plain);
  });
});

Deno.test("unetStage on two ranks with shared streams resumes exactly from a checkpoint", async () => {
  await withTempDir("xgen_rank_seeds_resume_", async (dir) => {
    const cond = await tinyConditioning(dir);
    const run = `${dir}/unet`;
    const whole = await trainTwoRanks(cond, run, {
      streams: "shared",
      steps: 4,
      checkpointEvery: 2,
    });
    // As if killed after step 2: the later checkpoint and the frozen model are gone (the loop
    // drops the metrics lines of steps after the checkpoint itself).
    await Deno.remove(`${run}/ckpt-00000004`, { recursive: true });
    await Deno.remove(`${run}/model`, { recursive: true });
    const rest = await trainTwoRanks(cond, run, {
      streams: "shared",
      steps: 4,
      checkpointEvery: 2,
      resume: true,
    });
    assert.deepEqual(rest.losses, whole.losses.slice(2));
    assert.deepEqual(rest.draws, [whole.draws[0].slice(2), whole.draws[1].slice(2)]);
    assert.deepEqual(rest.draws[1], rest.draws[0]);
  });
});

Deno.test("rankSeedsExperiment: tiny preset end to end in under a minute", async () => {
  const t0 = performance.now();
  const steps = 16;
  const r = await rankSeedsExperiment({
    ranks: 2,
    steps,
    preset: "tiny",
    seed: SEED,
    images: 32,
    resamples: 500,
    progress: false,
  });
  const seconds = (performance.now() - t0) / 1000;
  assert.ok(seconds < 60, `took ${seconds.toFixed(1)} s`);
  assert.equal(r.perRankBatch, preset.unet.batchSize / 2);
  assert.equal(r.shared.seedStreams, "shared");
  assert.equal(r.perRank.seedStreams, "per-rank");
  assert.equal(r.shared.sameDrawsOnEveryRank, true);
  assert.equal(r.perRank.sameDrawsOnEveryRank, false);
  for (const run of [r.shared, r.perRank]) {
    assert.equal(run.losses.length, steps);
    assert.equal(run.steps.length, steps);
    assert.ok(run.losses.every(Number.isFinite));
    // The point estimate is the closed form on the returned losses.
    assert.equal(run.stepVariance.estimate, stepToStepVariance(run.losses));
    const { estimate, lo, hi } = run.stepVariance;
    assert.ok([estimate, lo, hi].every(Number.isFinite) && estimate > 0);
    assert.ok(lo <= estimate && estimate <= hi, JSON.stringify(run.stepVariance));
    for (const s of run.steps) {
      // Histogram, distinct count and per-rank timesteps tell the same story.
      const all = s.timesteps.flat();
      assert.equal(all.length, r.batchSize);
      assert.equal(s.histogram.reduce((a, b) => a + b, 0), r.batchSize);
      assert.equal(s.distinct, new Set(all).size);
      assert.ok(all.every((t) => Number.isInteger(t) && t >= 0 && t < r.numTrainTimesteps));
    }
  }
  assert.ok(r.shared.distinctTimesteps.every((d) => d <= r.perRankBatch));
  assert.ok(r.shared.steps.every((s) => s.histogram.every((c) => c % 2 === 0))); // each t twice
  assert.ok(r.perRank.meanDistinctTimesteps > r.perRankBatch);
  const { estimate, lo, hi } = r.ratio;
  assert.equal(estimate, r.shared.stepVariance.estimate / r.perRank.stepVariance.estimate);
  assert.ok([estimate, lo, hi].every(Number.isFinite) && lo <= estimate && estimate <= hi);
});

Deno.test("rankSeedsExperiment: a kept folder is read back, and refused for other settings", async () => {
  await withTempDir("xgen_rank_seeds_dir_", async (dir) => {
    const o = { steps: 4, preset: "tiny", seed: SEED, images: 16, resamples: 100, progress: false };
    const first = await rankSeedsExperiment({ ...o, dir });
    const saved = JSON.parse(await Deno.readTextFile(`${dir}/result.json`));
    assert.deepEqual(saved, JSON.parse(JSON.stringify(first)));
    // As after a kill during the per-rank run: the shared run is read back, per-rank retrained.
    await Deno.remove(`${dir}/per-rank.json`);
    const lines: string[] = [];
    const again = await rankSeedsExperiment({ ...o, dir, log: (l) => lines.push(l) });
    assert.ok(lines.some((l) => l.includes("shared streams read back")), lines.join("\n"));
    assert.deepEqual({ ...again, perRank: { ...again.perRank, seconds: 0 } }, {
      ...first,
      perRank: { ...first.perRank, seconds: 0 },
    });
    await assert.rejects(
      rankSeedsExperiment({ ...o, steps: 5, dir }),
      /experiment\.json: the folder holds an experiment with other settings/,
    );
  });
});
