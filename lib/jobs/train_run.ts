/**
 * The kit's main job: build the embedded data, train and freeze the autoencoder and CLIP, train the
 * UNet, then leave in the run folder a loss plot, a sample grid and caption-following scores.
 * Every stage is cached in the run folder and skipped when complete; with `resume`, an interrupted
 * stage continues from its newest complete checkpoint with exactly the losses it would have had.
 *
 * Run layout:
 * ```
 * <out>/config.json               preset (with the UNet's prediction type, micro-batches per step and
                                checkpoint retention), seed, backend, reused run (written first;
                                resume checks it)
 * <out>/data/train/               webdataset shards (00000.tar + .parquet) and dataset.json
 * <out>/{autoencoder,clip,unet}/  ckpt-XXXXXXXX/ checkpoints, metrics.jsonl, model/ when finished
 * <out>/loss.html                 Plotly loss curves of the three stages
 * <out>/samples.png               sample grid (rows: prompts)
 * <out>/eval/caption_following.json  colour/shape accuracy on held-out and seen pairs
 * <out>/summary.json              timings, peak memory, results
 * ```
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { trainRun } from "./train_run.ts";
 * import { resolvePreset } from "../recipe/presets.ts";
 *
 * const out = await Deno.makeTempDir(); // e.g. "runs/tiny"
 * const preset = resolvePreset("tiny", { unetSteps: 1, unetBatchSize: 2 }); // 1 step a stage: quick
 * preset.data.trainCount = 16;
 * preset.autoencoder.batchSize = preset.clip.batchSize = 2;
 * const opts = { seed: 0, resume: false, backend: "cpu-blas", skipEval: true, progress: false, log: () => {} };
 * const summary = await trainRun({ out, preset, ...opts });
 * assert.ok(summary.scalingFactor > 0 && Number.isFinite(summary.finalLoss.unet!));
 * assert.ok((await Deno.stat(`${out}/unet/model/model.json`)).isFile);
 * await Deno.remove(out, { recursive: true });
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import { buildShapesWorldShards, formatReadStats } from "../data/mod.ts";
import { type MetricRecord, readMetrics } from "../train/mod.ts";
import { imageGrid, type PlotlyFigure, writePlotlyHtml, writePng } from "../plot/mod.ts";
import { removeStaleTemps, writeJsonAtomic } from "../util/atomic.ts";
import { loadImageSet } from "../recipe/memory_data.ts";
import { allGather, type Communicator, singleProcess } from "../data_parallel/comm.ts";
import { loadOpenBlas } from "../backend/openblas.ts";
import type { RecipePreset } from "../recipe/presets.ts";
import { autoencoderStage, buildConditioning, clipStage, unetStage } from "../recipe/stages.ts";
import {
  compiledEngineProblem,
  precisionProblem,
  UNET_ENGINES,
  type UnetEngine,
  type UnetPrecision,
} from "../recipe/compiled_unet.ts";
import { generate, loadRun } from "../recipe/generate.ts";
import type { ImageGenerator } from "../diffusion/generator.ts";
import { ensureOnnxExport } from "../recipe/onnx_export.ts";
import { loadOnnxPipeline, txt2img } from "../onnx/sd_pipeline.ts";
import {
  captionFollowing,
  type CaptionFollowingResult,
} from "../eval/caption_following/caption_following.ts";
import { assertReusable, reuseFrozenParts } from "../recipe/reuse_parts.ts";
import { storeLocationProblem } from "../storage/location.ts";
import { prepareRunFolder } from "./run_folder.ts";
import { stageTimer } from "./stage_timer.ts";
import { flagChange } from "./training_flags.ts";

/** Options for {@link trainRun}. */
export interface TrainRunOptions {
  out: string;
  preset: RecipePreset;
  seed: number;
  resume: boolean;
  /** Name of the active backend (recorded in config.json). */
  backend: string;
  progress?: boolean;
  /** Where status lines go (default console.error). */
  log?: (line: string) => void;
  /** Skip samples and evaluation at the end. */
  skipEval?: boolean;
  /**
   * Data-parallel group (lib/data_parallel; e.g. `mpirun -np 2`): every stage splits each batch over the
   * ranks; rank 0 writes the run folder, samples and evaluates, the others return after training
   * (with `seconds` and `out` only). Default: this process alone.
   */
  comm?: Communicator;
  /**
   * What samples and evaluates the finished run: "onnx" (default) exports it once to `<out>/onnx`
   * and runs onnxruntime, ~4x faster on CPU than "tfjs"; both give the same images for a seed.
   */
  sampleEngine?: "onnx" | "tfjs";
  /**
   * With `resume`: a run folder made with another preset or seed is deleted and trained afresh
   * (with a log line) instead of refused. For caches such as notebooks' run folders, never for
   * runs worth keeping.
   */
  replaceStale?: boolean;
  /**
   * Where the stages' training checkpoints go: a folder or `gs://bucket/prefix` (each stage
   * appends its name). Default: inside each stage's folder under `out`. Recorded in config.json;
   * a resume must name the same place.
   */
  checkpoints?: string;
  /**
   * What runs the UNet stage's training step (default `"tfjs"`): `"compiled"` compiles the step
   * once and runs it on `navigator.gpu` (`trainUnetCompiled`); one process, one micro-batch per
   * step. Recorded in config.json when not the default; a resume must use the same.
   */
  unetEngine?: UnetEngine;
  /**
   * The compiled UNet engine's precision (default `"f32"`); `"mixed"` (float16 activations,
   * dynamic loss scaling) needs `unetEngine: "compiled"`. Recorded in config.json when not the
   * default; a resume must use the same.
   */
  unetPrecision?: UnetPrecision;
  /**
   * A finished run whose frozen autoencoder and CLIP this run copies instead of training its own
   * (as the study reused SD's VAE and CLIP): only the UNet trains. Recorded in config.json.
   */
  reuse?: string;
}

/** What a finished pipeline reports (also written to summary.json). */
export interface TrainRunSummary {
  out: string;
  preset: string;
  seed: number;
  backend: string;
  /** Data-parallel processes that trained the run. */
  worldSize?: number;
  /** What sampled and evaluated the finished run. */
  sampleEngine?: "onnx" | "tfjs";
  seconds: Record<string, number>;
  /** Peak resident memory of the busiest process. */
  peakRssMiB: number;
  tensorsAfterTraining: number;
  scalingFactor: number;
  finalLoss: Record<string, number | null>;
  captionFollowing?: {
    heldout: Omit<CaptionFollowingResult, "images">;
    seen: Omit<CaptionFollowingResult, "images">;
  };
}

/** Prompts of the sample grid: seen and held-out single objects, a count and a relation. */
export const GRID_PROMPTS = [
  "a red circle",
  "a blue square",
  "a green star",
  "a yellow triangle",
  "a purple circle",
  "a white triangle",
  "two orange diamonds",
  "a red circle to the left of a blue square",
];

/** Run the whole default pipeline; see the module docs for the folder layout. */
export async function trainRun(o: TrainRunOptions): Promise<TrainRunSummary> {
  const log = o.log ?? ((s: string) => console.error(s));
  const p = o.preset, out = o.out;
  const comm = o.comm ?? singleProcess();
  const lead = comm.rank === 0;
  const t0 = performance.now();
  const { timed, seconds } = stageTimer(log);
  let peakRss = Deno.memoryUsage().rss;
  const watchRss = setInterval(() => peakRss = Math.max(peakRss, Deno.memoryUsage().rss), 500);
  try {
    // Every rank checks the options alike (no communication), before any stage or file.
    checkTrainRunOptions(o, comm.size);
    // Rank 0 checks and writes the folder; a failure there must stop every rank, not hang them.
    const ok = Float64Array.of(1);
    let failure: unknown = null;
    if (lead) {
      try {
        // Check the source first, so a wrong --reuse leaves no half-made run folder behind.
        if (o.reuse) await assertReusable(o.reuse);
        await checkRunFolder(o, comm.size);
        // A kill mid-write leaves the kit's temporaries (`*.tmp-<pid>-<hex>`); drop the dead ones.
        if (o.resume) await removeStaleTemps(out, { recursive: true });
        if (o.reuse) await reuseFrozenParts(o.reuse, out);
      } catch (e) {
        failure = e;
        ok[0] = 0;
      }
    }
    await comm.broadcast(ok, 0);
    if (failure) throw failure;
    if (!ok[0]) throw new Error(`rank 0 could not prepare ${out}; see its error`);
    const data = await timed("data", async () => {
      const dir = `${out}/data/train`;
      if (lead) {
        await buildShapesWorldShards({
          outDir: dir,
          seed: o.seed,
          count: p.data.trainCount,
          perShard: p.data.perShard,
          size: p.data.imageSize,
          split: "train",
        });
      }
      await comm.barrier();
      const set = await loadImageSet(dir, { minAesthetic: p.data.minAesthetic });
      log(`   ${set.size} images ${set.width}x${set.height} (${formatReadStats(set.stats)})`);
      return set;
    });
    const common = {
      data,
      seed: o.seed,
      resume: o.resume,
      progress: o.progress,
      comm,
      checkpointRoot: o.checkpoints,
    };
    const ae = await timed(
      "autoencoder",
      () => autoencoderStage({ ...common, dir: `${out}/autoencoder`, settings: p.autoencoder }),
    );
    log(`   latent scaling factor ${ae.scalingFactor.toFixed(5)} (SD's VAE: 0.18215)`);
    const clip = await timed(
      "clip",
      () => clipStage({ ...common, dir: `${out}/clip`, settings: p.clip }),
    );
    const cond = await timed(
      "conditioning",
      () => buildConditioning(data, ae, clip, comm, p.unet.textContext),
    );
    const unet = await timed(
      "unet",
      () =>
        unetStage({
          ...common,
          dir: `${out}/unet`,
          settings: p.unet,
          cond,
          engine: o.unetEngine,
          precision: o.unetPrecision,
        }),
    );
    for (const m of [ae.params, clip.params, unet.params]) tf.dispose(Object.values(m));
    const tensorsAfterTraining = tf.memory().numTensors;
    // Peak memory of the busiest rank; then only rank 0 goes on, with every core's BLAS threads.
    const rss = await allGather(comm, [Math.max(peakRss, Deno.memoryUsage().rss)]);
    peakRss = Math.max(...rss.map((r) => r[0]));
    if (!lead) {
      seconds.total = (performance.now() - t0) / 1000;
      return { out, preset: p.name, seed: o.seed, backend: o.backend, seconds } as TrainRunSummary;
    }
    if (comm.size > 1) loadOpenBlas()?.setThreads(navigator.hardwareConcurrency);

    const finalLoss: Record<string, number | null> = {};
    const curves: Record<string, MetricRecord[]> = {};
    for (const stage of ["autoencoder", "clip", "unet"]) {
      curves[stage] = await readMetrics(`${out}/${stage}/metrics.jsonl`).catch(() => []);
      finalLoss[stage] = curves[stage].at(-1)?.loss ?? null;
    }
    await writePlotlyHtml(`${out}/loss.html`, lossFigure(curves));

    const engine = o.sampleEngine ?? "onnx";
    const summary: TrainRunSummary = {
      out,
      preset: p.name,
      seed: o.seed,
      backend: o.backend,
      worldSize: comm.size,
      sampleEngine: o.skipEval ? undefined : engine,
      seconds,
      peakRssMiB: 0,
      tensorsAfterTraining,
      scalingFactor: ae.scalingFactor,
      finalLoss,
    };
    if (!o.skipEval) {
      let gen: ImageGenerator, release: () => Promise<void>;
      if (engine === "onnx") {
        const pipe = await loadOnnxPipeline(await ensureOnnxExport(out, { log }));
        gen = (g) => txt2img(pipe, g);
        release = () => pipe.release();
      } else {
        const run = await loadRun(out);
        gen = (g) => generate(run, g);
        release = () => {
          for (const part of [run.ae.params, run.clip.params, run.unet.params]) {
            tf.dispose(Object.values(part));
          }
          return Promise.resolve();
        };
      }
      const s = p.sample;
      await timed("samples", async () => {
        const n = 8;
        const images = await gen({
          prompts: GRID_PROMPTS,
          n,
          seed: o.seed,
          guidance: s.guidance,
          steps: s.steps,
          scheduler: s.scheduler,
        });
        await writePng(`${out}/samples.png`, imageGrid(images, { cols: n, pad: 2 }));
        await Deno.writeTextFile(
          `${out}/samples.txt`,
          GRID_PROMPTS.map((q, i) => `row ${i + 1}: ${q}`).join("\n") + "\n",
        );
      });
      await timed("eval", async () => {
        const opts = {
          n: p.eval.samplesPerPrompt,
          seed: o.seed + 1,
          guidance: s.guidance,
          steps: s.steps,
          scheduler: s.scheduler,
        };
        const heldout = await captionFollowing(gen, { ...opts, pairs: "heldout" });
        const seen = await captionFollowing(gen, { ...opts, pairs: "seen", maxPairs: 14 });
        const strip = ({ images: _, ...r }: CaptionFollowingResult) => r;
        summary.captionFollowing = { heldout: strip(heldout), seen: strip(seen) };
        await Deno.mkdir(`${out}/eval`, { recursive: true });
        await writeJsonAtomic(`${out}/eval/caption_following.json`, summary.captionFollowing);
        await writePng(
          `${out}/eval/heldout.png`,
          imageGrid(heldout.images, { cols: p.eval.samplesPerPrompt, pad: 2 }),
        );
        log(
          `   held-out pairs: colour ${(100 * heldout.colorAccuracy).toFixed(1)}%, shape ${
            (100 * heldout.shapeAccuracy).toFixed(1)
          }%` +
            ` | seen pairs: colour ${(100 * seen.colorAccuracy).toFixed(1)}%, shape ${
              (100 * seen.shapeAccuracy).toFixed(1)
            }%`,
        );
      });
      await release();
    }
    seconds.total = (performance.now() - t0) / 1000;
    summary.peakRssMiB = Math.round(Math.max(peakRss, Deno.memoryUsage().rss) / 2 ** 20);
    await writeJsonAtomic(`${out}/summary.json`, summary);
    return summary;
  } finally {
    clearInterval(watchRss);
  }
}

/** Three stacked loss curves (autoencoder, CLIP, UNet), each with a smoothed line. */
function lossFigure(curves: Record<string, MetricRecord[]>): PlotlyFigure {
  const stages = Object.keys(curves);
  const data: Record<string, unknown>[] = [];
  const layout: Record<string, unknown> = {
    title: { text: "Training loss" },
    grid: { rows: stages.length, columns: 1, pattern: "independent" },
    height: 260 * stages.length,
    showlegend: true,
  };
  stages.forEach((stage, i) => {
    const rows = curves[stage].filter((r) => typeof r.loss === "number");
    const x = rows.map((r) => r.step), y = rows.map((r) => r.loss as number);
    const ax = i === 0 ? "" : String(i + 1);
    let m = y[0] ?? 0;
    const smooth = y.map((v) => (m = 0.9 * m + 0.1 * v));
    data.push({
      type: "scatter",
      mode: "lines",
      name: `${stage}`,
      x,
      y,
      xaxis: `x${ax}`,
      yaxis: `y${ax}`,
      opacity: 0.35,
    });
    data.push({
      type: "scatter",
      mode: "lines",
      name: `${stage} (smoothed)`,
      x,
      y: smooth,
      xaxis: `x${ax}`,
      yaxis: `y${ax}`,
    });
    layout[`yaxis${ax}`] = { title: { text: `${stage} loss` }, type: "log" };
    layout[`xaxis${ax}`] = { title: { text: "step" } };
  });
  return { data, layout } as PlotlyFigure;
}

/** Seeds `Rng.stream` tells apart: it keeps a seed's low 32 bits. */
const SEED_MAX = 2 ** 32 - 1;

/**
 * Options that would fail a later stage fail here, before the run folder or config.json is
 * written: a checkpoint location no store can open (only rank 0 reaches storage, at the first
 * stage, minutes in), or a seed outside what the random streams tell apart.
 */
function checkTrainRunOptions(o: TrainRunOptions, worldSize: number): void {
  const engine = o.unetEngine ?? "tfjs";
  if (!UNET_ENGINES.includes(engine)) {
    throw new Error(`unetEngine must be one of ${UNET_ENGINES.join(", ")}, got "${engine}"`);
  }
  const problem = engine === "compiled" ? compiledEngineProblem(o.preset.unet, worldSize) : null;
  if (problem) throw new Error(problem);
  const precisionIssue = precisionProblem(engine, o.unetPrecision ?? "f32");
  if (precisionIssue) throw new Error(precisionIssue);
  if (o.checkpoints !== undefined) {
    const problem = storeLocationProblem(o.checkpoints);
    if (problem) throw new Error(`checkpoints "${o.checkpoints}": ${problem}`);
  }
  if (!Number.isSafeInteger(o.seed) || o.seed < 0 || o.seed > SEED_MAX) {
    throw new Error(`seed must be an integer from 0 to ${SEED_MAX}, got ${o.seed}`);
  }
}

/**
 * A config.json whose checkpoint location no store can open, and otherwise equal to `config`: the
 * run that wrote it (an older kit wrote config.json before checking the location) failed when its
 * first stage opened that store, so no stage trained and the new location can replace it.
 */
function unusableCheckpoints(prev: Record<string, unknown>, config: Record<string, unknown>) {
  const ck = prev.checkpoints;
  const problem = typeof ck === "string" ? storeLocationProblem(ck) : null;
  if (!problem) return null;
  const rest = (c: Record<string, unknown>) =>
    JSON.stringify({ preset: c.preset, seed: c.seed, reuse: c.reuse ?? null });
  return rest(prev) === rest(config) ? { location: ck as string, problem } : null;
}

/** Refuse to train over a different run, or over an existing one without --resume. */
async function checkRunFolder(o: TrainRunOptions, worldSize: number): Promise<void> {
  const log = o.log ?? console.error;
  // Runs made before checkpoints could move (or parts be reused) lack those fields: they kept
  // checkpoints in the run folder and trained every part, which the null they read as stands for.
  const config = {
    preset: o.preset,
    seed: o.seed,
    checkpoints: o.checkpoints ?? null,
    reuse: o.reuse ?? null,
    // null (as absent) means tfjs, so runs made before the option existed resume unchanged.
    unetEngine: o.unetEngine && o.unetEngine !== "tfjs" ? o.unetEngine : null,
    // Likewise null means f32.
    unetPrecision: o.unetPrecision && o.unetPrecision !== "f32" ? o.unetPrecision : null,
  };
  await prepareRunFolder({
    out: o.out,
    config,
    record: { backend: o.backend, worldSize },
    resume: o.resume,
    rewrites: (prev) => {
      const unusable = unusableCheckpoints(prev, config);
      if (unusable) {
        log(
          `   ${o.out}/config.json records checkpoints at ${unusable.location}, which no run can ` +
            `use (${unusable.problem}): no stage trained; recording ${
              config.checkpoints ?? "the default (inside the run folder)"
            }`,
        );
      }
      return unusable !== null;
    },
    mismatchMessage: (d) => {
      const flag = flagChange(d, "preset.unet.");
      return flag
        ? `the run was started with ${flag}; resume it with the same flags or pick another --out`
        : "the run was started with other settings " +
          "(preset/seed/steps/--batch-size/--checkpoints/--reuse); resume it with the same flags " +
          "or pick another --out";
    },
    onMismatch: async () => {
      if (!o.replaceStale) return false;
      log(`   ${o.out} was made with other settings: training it afresh`);
      await Deno.remove(o.out, { recursive: true });
      return true;
    },
  });
}
