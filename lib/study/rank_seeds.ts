/**
 * The study's data-parallel seeding experiment: one short UNet job trained twice on `ranks`
 * ranks, once with every rank drawing its timesteps and noise from one shared stream (workers
 * started with the same seed) and once with a stream per rank (the kit's default), with each
 * step's loss, how much it swings from step to step (`stepToStepVariance`, with a moving-block
 * bootstrap interval and the shared / per-rank ratio), and the timesteps each step drew over the
 * global batch. With shared streams a global batch of B over R ranks holds at most B / R distinct
 * timesteps, every rank's half of the gradient sees the same noise levels, and the loss (whose
 * min-SNR weighting depends strongly on the timestep) swings more.
 *
 * The ranks run in this process (`localWorld`), so no `mpirun` is needed; each rank keeps its own
 * UNet and optimizer, and the loop averages gradients exactly as under MPI. The frozen autoencoder
 * and text encoder are trained once, on one process, and shared by both runs; the two runs see
 * the same data batches, so only the loss streams differ.
 *
 * @example
 * ```ts
 * import { initBackendAndConvGrad } from "../train/mod.ts";
 * import { rankSeedsExperiment } from "./rank_seeds.ts";
 *
 * // Seconds on 2 cores with the tiny preset; the default preset takes much longer.
 * async function example() {
 *   await initBackendAndConvGrad("auto");
 *   const r = await rankSeedsExperiment({ ranks: 2, steps: 24, preset: "tiny", seed: 0 });
 *   console.log(r.ratio); // shared / per-rank step-to-step variance, with its 95% interval
 * }
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import { buildShapesWorldShards } from "../data/webdataset.ts";
import { localWorld } from "../data_parallel/local_world.ts";
import type { SeedStreams } from "../data_parallel/training.ts";
import {
  autoencoderStage,
  buildConditioning,
  clipStage,
  type ConditioningSet,
  type StepDraws,
  unetStage,
} from "../recipe/stages.ts";
import { loadImageSet } from "../recipe/memory_data.ts";
import { type RecipePreset, resolvePreset } from "../recipe/presets.ts";
import { makeSchedule } from "../diffusion/schedule.ts";
import { writeJsonAtomic } from "../util/atomic.ts";
import { type Estimate, stepNoiseComparison } from "./step_noise.ts";

/** Options of {@link rankSeedsExperiment}. */
export interface RankSeedsOptions {
  /** Data-parallel ranks, all in this process (default 2); must divide the UNet batch size. */
  ranks?: number;
  /** UNet steps of each run (at least 3, for two step-to-step differences). */
  steps: number;
  /** A preset name or a resolved preset (default `"tiny"`); its UNet batch is the global batch. */
  preset?: string | RecipePreset;
  /** Seed of data, frozen parts, initial weights, streams and bootstrap (default 0). */
  seed?: number;
  /**
   * Work folder, kept: data, frozen parts, each run's UNet folder and result. A run whose
   * `<dir>/<streams>.json` exists is read back instead of trained, so a killed experiment
   * continues with the run it was in (retrained from its start, as its draws are recorded in
   * memory). Default: a temporary folder, removed at the end.
   */
  dir?: string;
  /** Shapes-world training images (default the preset's `data.trainCount`). */
  images?: number;
  /** Histogram bins over `[0, numTrainTimesteps)` (default 10). */
  bins?: number;
  /** Bootstrap resamples (default 2000). */
  resamples?: number;
  /** Differences per bootstrap block (default `max(2, round(cbrt(steps - 1)))`). */
  blockLength?: number;
  /** Interval coverage (default 0.95). */
  confidence?: number;
  /** Progress bars of the stages on stderr (default true). */
  progress?: boolean;
  /** Status lines (default: none). */
  log?: (line: string) => void;
}

/** One step's timesteps over the global batch. */
export interface StepTimesteps {
  /** 1-based step. */
  step: number;
  /** Each rank's timesteps, in rank order. */
  timesteps: number[][];
  /** Distinct timesteps over all ranks. */
  distinct: number;
  /** Global-batch timesteps per bin of `[0, numTrainTimesteps)`. */
  histogram: number[];
}

/** One of the experiment's two runs. */
export interface RankSeedsRun {
  seedStreams: SeedStreams;
  /** Loss of each step: the global batch's (mean over ranks), as the loop logs it. */
  losses: number[];
  /** Half the variance of successive loss differences, with its bootstrap interval. */
  stepVariance: Estimate;
  /** Distinct timesteps of each step's global batch. */
  distinctTimesteps: number[];
  meanDistinctTimesteps: number;
  /** Whether every rank drew the same timesteps and noise as rank 0 at every step. */
  sameDrawsOnEveryRank: boolean;
  steps: StepTimesteps[];
  /** Wall-clock seconds of the run's training. */
  seconds: number;
}

/** What {@link rankSeedsExperiment} returns (and writes to `<dir>/result.json` with `dir`). */
export interface RankSeedsResult {
  preset: string;
  seed: number;
  ranks: number;
  steps: number;
  /** Samples per step over all ranks, and per rank. */
  batchSize: number;
  perRankBatch: number;
  numTrainTimesteps: number;
  bins: number;
  shared: RankSeedsRun;
  perRank: RankSeedsRun;
  /** Shared / per-rank step-to-step variance, with its paired bootstrap interval. */
  ratio: Estimate;
  bootstrap: { blockLength: number; resamples: number; confidence: number; method: string };
}

/** A run as saved for a resumed experiment (before the statistics, which need both runs). */
type RecordedRun = Omit<RankSeedsRun, "stepVariance">;

/**
 * Train the same short UNet job on `ranks` in-process ranks with shared and with per-rank loss
 * streams, and compare how much their losses swing from step to step. Uses the current
 * TensorFlow.js backend.
 *
 * @example
 * ```ts
 * import { rankSeedsExperiment } from "./rank_seeds.ts";
 *
 * // Needs a few seconds of training per run, so shown as a function.
 * async function example() {
 *   const r = await rankSeedsExperiment({ steps: 24, preset: "tiny", dir: "runs/rank_seeds" });
 *   const { shared, perRank } = r;
 *   console.log(shared.meanDistinctTimesteps, perRank.meanDistinctTimesteps); // <= 4 vs ~8
 *   console.log(shared.stepVariance, perRank.stepVariance, r.ratio);
 * }
 * ```
 */
export async function rankSeedsExperiment(o: RankSeedsOptions): Promise<RankSeedsResult> {
  const ranks = o.ranks ?? 2;
  if (!Number.isInteger(ranks) || ranks < 2) {
    throw new Error(`rankSeedsExperiment: ranks must be an integer >= 2, got ${ranks}`);
  }
  if (!Number.isInteger(o.steps) || o.steps < 3) {
    throw new Error(`rankSeedsExperiment: steps must be an integer >= 3, got ${o.steps}`);
  }
  const preset = typeof o.preset === "object" ? o.preset : resolvePreset(o.preset ?? "tiny");
  const batchSize = preset.unet.batchSize;
  if (batchSize % ranks !== 0) {
    throw new Error(
      `rankSeedsExperiment: the ${preset.name} preset's UNet batchSize ${batchSize} does not ` +
        `split over ${ranks} ranks`,
    );
  }
  const bins = o.bins ?? 10;
  if (!Number.isInteger(bins) || bins < 1) {
    throw new Error(`rankSeedsExperiment: bins must be a positive integer, got ${bins}`);
  }
  const seed = o.seed ?? 0;
  const log = o.log ?? (() => {});
  const progress = o.progress ?? true;
  const dir = o.dir ?? await Deno.makeTempDir({ prefix: "xgen_rank_seeds_" });
  try {
    await claimFolder(`${dir}/experiment.json`, {
      preset,
      seed,
      ranks,
      steps: o.steps,
      images: o.images ?? preset.data.trainCount,
    });
    const cond = await frozenConditioning({ ...o, preset, seed, dir, progress, log });
    const T = makeSchedule(preset.unet.schedule).numTrainTimesteps;
    const runs: Record<SeedStreams, RecordedRun> = {} as Record<SeedStreams, RecordedRun>;
    for (const streams of ["shared", "per-rank"] as const) {
      const saved = `${dir}/${streams}.json`;
      const old = await readRecorded(saved);
      if (old) {
        log(`rank seeds: ${streams} streams read back from ${saved}`);
        runs[streams] = old;
        continue;
      }
      log(`rank seeds: training ${o.steps} UNet steps on ${ranks} ranks, ${streams} streams`);
      runs[streams] = await trainRanks({
        streams,
        ranks,
        steps: o.steps,
        preset,
        seed,
        cond,
        dir: `${dir}/unet-${streams}`,
        bins,
        numTrainTimesteps: T,
        progress,
      });
      if (o.dir) await writeJsonAtomic(saved, runs[streams]);
    }
    const cmp = stepNoiseComparison(runs.shared.losses, runs["per-rank"].losses, {
      resamples: o.resamples,
      blockLength: o.blockLength,
      confidence: o.confidence,
      seed,
    });
    const result: RankSeedsResult = {
      preset: preset.name,
      seed,
      ranks,
      steps: o.steps,
      batchSize,
      perRankBatch: batchSize / ranks,
      numTrainTimesteps: T,
      bins,
      shared: { ...runs.shared, stepVariance: cmp.a },
      perRank: { ...runs["per-rank"], stepVariance: cmp.b },
      ratio: cmp.ratio,
      bootstrap: {
        blockLength: cmp.blockLength,
        resamples: cmp.resamples,
        confidence: o.confidence ?? 0.95,
        method: "moving-block bootstrap of successive loss differences, paired over the two runs",
      },
    };
    if (o.dir) await writeJsonAtomic(`${dir}/result.json`, result);
    return result;
  } finally {
    if (!o.dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Data, frozen autoencoder and text encoder (one process), and the UNet's conditioning. */
async function frozenConditioning(o: {
  preset: RecipePreset;
  seed: number;
  dir: string;
  images?: number;
  progress: boolean;
  log: (line: string) => void;
}): Promise<ConditioningSet> {
  const p = o.preset;
  const count = o.images ?? p.data.trainCount;
  o.log(`rank seeds: ${count} shapes-world images, frozen parts of the ${p.name} preset`);
  await buildShapesWorldShards({
    outDir: `${o.dir}/data`,
    seed: o.seed,
    count,
    perShard: p.data.perShard,
    size: p.data.imageSize,
  });
  const data = await loadImageSet(`${o.dir}/data`);
  // Resumable: a finished stage's frozen model is loaded, an unfinished one continues.
  const common = { data, seed: o.seed, resume: true, progress: o.progress };
  const ae = await autoencoderStage({
    ...common,
    dir: `${o.dir}/autoencoder`,
    settings: p.autoencoder,
  });
  const clip = await clipStage({ ...common, dir: `${o.dir}/clip`, settings: p.clip });
  const cond = await buildConditioning(data, ae, clip, undefined, p.unet.textContext);
  tf.dispose([...Object.values(ae.params), ...Object.values(clip.params)]);
  return cond;
}

/** One run: every rank trains `steps` UNet steps; draws and rank 0's losses recorded. */
async function trainRanks(o: {
  streams: SeedStreams;
  ranks: number;
  steps: number;
  preset: RecipePreset;
  seed: number;
  cond: ConditioningSet;
  dir: string;
  bins: number;
  numTrainTimesteps: number;
  progress: boolean;
}): Promise<RecordedRun> {
  // A run that did not finish restarts from scratch: its draws before a kill were not kept.
  await Deno.remove(o.dir, { recursive: true }).catch(() => {});
  const world = localWorld(o.ranks);
  const losses: number[] = [];
  const perStep: { t: number[][]; eps: Float32Array | null; arrived: number }[] = [];
  let same = true;
  const calls = new Array(o.ranks).fill(0);
  const record = (rank: number, d: StepDraws) => {
    const k = calls[rank]++;
    perStep[k] ??= { t: new Array(o.ranks), eps: null, arrived: 0 };
    const s = perStep[k];
    s.t[rank] = Array.from(d.t);
    // Compare each rank's noise with the first arrival's, then let it go: no step's noise is
    // kept longer than it takes every rank to draw it.
    if (s.eps === null) s.eps = d.eps.slice();
    else if (!equalArrays(s.eps, d.eps)) same = false;
    if (++s.arrived === o.ranks) s.eps = null;
  };
  const t0 = performance.now();
  const trained = await Promise.all(world.map((comm) =>
    unetStage({
      dir: o.dir,
      settings: { ...o.preset.unet, steps: o.steps, checkpointEvery: o.steps },
      seed: o.seed,
      resume: false,
      comm,
      seedStreams: o.streams,
      cond: o.cond,
      progress: o.progress,
      onLog: comm.rank === 0 ? (r) => losses.push(r.loss!) : undefined,
      onStepDraws: (d) => record(comm.rank, d),
    })
  ));
  const seconds = (performance.now() - t0) / 1000;
  for (const u of trained) tf.dispose(Object.values(u.params));
  await Promise.all(world.map((c) => c.close()));
  const steps = perStep.map((s, i): StepTimesteps => {
    if (s.t.some((t) => !t)) throw new Error(`rankSeedsExperiment: step ${i + 1} lacks a rank`);
    for (const t of s.t.slice(1)) if (!equalArrays(t, s.t[0])) same = false;
    const all = s.t.flat();
    const histogram = new Array(o.bins).fill(0);
    for (const t of all) histogram[Math.floor((t * o.bins) / o.numTrainTimesteps)]++;
    return { step: i + 1, timesteps: s.t, distinct: new Set(all).size, histogram };
  });
  if (losses.length !== o.steps || steps.length !== o.steps) {
    throw new Error(
      `rankSeedsExperiment: expected ${o.steps} steps, got ${losses.length} losses and ` +
        `${steps.length} steps of draws`,
    );
  }
  const distinct = steps.map((s) => s.distinct);
  return {
    seedStreams: o.streams,
    losses,
    distinctTimesteps: distinct,
    meanDistinctTimesteps: distinct.reduce((a, b) => a + b, 0) / distinct.length,
    sameDrawsOnEveryRank: same,
    steps,
    seconds,
  };
}

function equalArrays(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Record what trains in the folder, or check that an earlier experiment there trained the same
 * (its frozen parts and runs are reused, so they must come from the same settings).
 */
async function claimFolder(path: string, config: Record<string, unknown>): Promise<void> {
  const want = JSON.stringify(config);
  let text: string | null = null;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (text === null) {
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    return await writeJsonAtomic(path, config);
  }
  if (JSON.stringify(JSON.parse(text)) !== want) {
    throw new Error(
      `${path}: the folder holds an experiment with other settings (preset, seed, ranks, steps ` +
        `or images); use another dir or remove it`,
    );
  }
}

/** A run saved by an earlier, killed experiment in the same folder, or null. */
async function readRecorded(path: string): Promise<RecordedRun | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  const r = JSON.parse(text) as RecordedRun;
  if (!Array.isArray(r?.losses) || !Array.isArray(r?.steps)) {
    throw new Error(`${path}: expected a recorded run with fields losses and steps`);
  }
  return r;
}
