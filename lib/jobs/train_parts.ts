/**
 * Train only a UNet on a Stable Diffusion folder's frozen parts and real image shards (the
 * study's setup: SD's VAE and CLIP reused, the UNet trained): the shards are encoded once into a
 * resumable latent cache (`lib/recipe/latent_cache.ts`), the UNet trains on it through the same
 * stage, loop and checkpoints as the main job (`unetStage`), and the run ends with a complete SD
 * folder: the trained UNet in ONNX next to copies of the source folder's parts.
 *
 * Run layout:
 * ```
 * <out>/config.json        parts, data, resolution, flip, seed, prediction, UNet settings (micro-batches
                         per step and checkpoint retention included; a resume repeats them)
 * <out>/cache/             the latent cache (cache.json, empty_prompt + one file per shard, manifest.json)
 * <out>/unet/              ckpt-XXXXXXXX/ checkpoints, metrics.jsonl, model/ (EMA weights) when finished
 * <out>/model/             the SD folder: unet/ (trained), vae_encoder/, vae_decoder/, text_encoder/,
 *                          tokenizer/, scheduler/ (copied), model_index.json (diffusers)
 * <out>/samples.png        a few cached captions sampled from <out>/model (and samples.txt)
 * <out>/summary.json       timings, cache counts, final loss
 * ```
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { trainOnParts } from "./train_parts.ts";
 * import { resolvePreset } from "../recipe/presets.ts";
 * import { UNET_PRESETS } from "../models/unet.ts";
 * import { buildShapesWorldShards } from "../data/mod.ts";
 *
 * // SD v1.5 on LAION: parts "sd15-onnx", data "laion/", resolution 256, the default preset's UNet.
 * const dir = await Deno.makeTempDir();
 * await buildShapesWorldShards({ outDir: `${dir}/shards`, seed: 0, count: 4, perShard: 4 });
 * const settings = { ...resolvePreset("tiny").unet, model: UNET_PRESETS.tiny, steps: 1, batchSize: 2, warmupSteps: 0 };
 * const s = await trainOnParts({ parts: "tests/fixtures/tiny_sd/fp32_scalar_t", data: `${dir}/shards`, out: `${dir}/run`,
 *   settings, resolution: 64, seed: 0, resume: false, backend: "cpu-blas", skipSamples: true, progress: false, log: () => {} });
 * assert.deepEqual([s.records, s.model], [4, `${dir}/run/model`]); // an SD folder with the trained UNet
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import { loadOnnxPipeline, type OnnxPipeline, txt2img } from "../onnx/sd_pipeline.ts";
import { buildLatentCache, loadLatentCache } from "../recipe/latent_cache.ts";
import { exportPartsFolder } from "../recipe/parts_export.ts";
import { type TrainedUnet, unetStage } from "../recipe/stages.ts";
import type { RecipePreset } from "../recipe/presets.ts";
import type { ResampleFilter } from "../image/preprocess.ts";
import { imageGrid, writePng } from "../plot/mod.ts";
import { type MetricRecord, readMetrics } from "../train/mod.ts";
import type { Params } from "../nn/mod.ts";
import { type Communicator, singleProcess } from "../data_parallel/comm.ts";
import { removeStaleTemps, writeJsonAtomic } from "../util/atomic.ts";
import { storeLocationProblem } from "../storage/location.ts";
import { shardSourceFor } from "../data/shard_source.ts";
import type { DataFilter } from "../data/laion_meta.ts";
import { prepareRunFolder } from "./run_folder.ts";
import { stageTimer } from "./stage_timer.ts";
import { flagChange } from "./training_flags.ts";
import type { PredictionType } from "../diffusion/types.ts";

/** Options of {@link trainOnParts}. */
export interface TrainOnPartsOptions {
  /** The SD folder (Optimum's ONNX layout) whose VAE and text encoder are reused. */
  parts: string;
  /** Webdataset shards: a folder, a `gs://bucket/prefix`, or a list of tars. */
  data: string | string[];
  /** The run folder. */
  out: string;
  /**
   * The UNet stage's settings (`RecipePreset["unet"]`): model, steps, batch, learning rate, EMA,
   * caption dropout... Its `inChannels`, `outChannels` and `contextDim` are replaced by the parts'
   * latent channels and text width, its schedule by the folder's scheduler config and its text
   * context by `states` (the text encoder's `last_hidden_state`, as SD).
   */
  settings: RecipePreset["unet"];
  /** Training side in pixels (default 256). */
  resolution?: number;
  /** Mirror records left-right at random (seeded per record, in the cache; default false). */
  randomFlip?: boolean;
  /** Resize filter of the cache (default "lanczos", diffusers' default). */
  filter?: ResampleFilter;
  /** Images per VAE encoder call while caching (default 8). */
  encodeBatch?: number;
  /** LAION metadata thresholds applied while caching (recorded in the cache's settings). */
  dataFilter?: DataFilter;
  seed: number;
  resume: boolean;
  /** Name of the active backend (recorded in config.json). */
  backend: string;
  /** Where UNet checkpoints go: a folder or `gs://bucket/prefix` (default: inside `out`). */
  checkpoints?: string;
  /**
   * The UNet's target (default: the folder's `scheduler_config.json` `prediction_type`); the
   * exported folder's scheduler config records it, so its samplers use it. Recorded in
   * config.json as `prediction` (null: the folder's).
   */
  predictionType?: PredictionType;
  /** Initial UNet weights (e.g. a pretrained UNet); recorded by `initFrom` in config.json. */
  init?: Params;
  /** What `init` was loaded from (recorded in config.json; a resume must repeat it). */
  initFrom?: string;
  /** Data-parallel group (default: this process). */
  comm?: Communicator;
  progress?: boolean;
  /** Status lines (default console.error). */
  log?: (line: string) => void;
  /** Skip the sample grid at the end. */
  skipSamples?: boolean;
  /** Called after each cache shard is written (tests inject interruptions here). */
  onCacheShard?: (index: number) => void | Promise<void>;
  /** Called with every UNet metrics record. */
  onLog?: (rec: MetricRecord) => void;
}

/** What {@link trainOnParts} reports (also `summary.json`). */
export interface TrainOnPartsSummary {
  out: string;
  /** The SD folder written. */
  model: string;
  records: number;
  skipped: Record<string, number>;
  seconds: Record<string, number>;
  finalLoss: number | null;
}

/** Train the UNet on the parts (see the module docs); rank 0 exports and samples. */
export async function trainOnParts(o: TrainOnPartsOptions): Promise<TrainOnPartsSummary> {
  const log = o.log ?? ((s: string) => console.error(s));
  const comm = o.comm ?? singleProcess();
  const lead = comm.rank === 0;
  const resolution = o.resolution ?? 256;
  const { timed, seconds } = stageTimer(log);
  if (o.checkpoints !== undefined) {
    const problem = storeLocationProblem(o.checkpoints);
    if (problem) throw new Error(`checkpoints "${o.checkpoints}": ${problem}`);
  }
  // One onnxruntime thread pool per rank, sharing the cores.
  const threads = Math.max(1, Math.floor(navigator.hardwareConcurrency / comm.size));
  const parts = await loadOnnxPipeline(o.parts, { threads, log });
  const ok = Float64Array.of(1);
  let failure: unknown = null;
  if (lead) {
    try {
      // What would fail the cache fails before the run folder exists.
      if (!parts.vaeEncoder) {
        throw new Error(`${o.parts}/vae_encoder/model.onnx: missing; training on parts needs it`);
      }
      if (!Number.isInteger(resolution) || resolution % parts.vaeScaleFactor !== 0) {
        throw new Error(
          `resolution must be a positive multiple of ${parts.vaeScaleFactor} (the VAE's ` +
            `downsampling), got ${resolution}`,
        );
      }
      if ((await shardSourceFor(o.data).list()).length === 0) {
        throw new Error(`${o.data}: no shards (*.tar) found`);
      }
      await checkRunFolder(o, resolution);
      if (o.resume) await removeStaleTemps(o.out, { recursive: true });
    } catch (e) {
      failure = e;
      ok[0] = 0;
    }
  }
  await comm.broadcast(ok, 0);
  if (failure || !ok[0]) await parts.release();
  if (failure) throw failure;
  if (!ok[0]) throw new Error(`rank 0 could not prepare ${o.out}; see its error`);
  let pipeReleased = false;
  const release = async (p: OnnxPipeline) => {
    if (!pipeReleased) await p.release();
    pipeReleased = true;
  };
  try {
    const manifest = await timed("latent cache", () =>
      buildLatentCache({
        parts,
        data: o.data,
        dir: `${o.out}/cache`,
        resolution,
        filter: o.filter,
        randomFlip: o.randomFlip,
        seed: o.seed,
        comm,
        encodeBatch: o.encodeBatch,
        dataFilter: o.dataFilter,
        log: lead ? log : () => {},
        progress: o.progress,
        onShard: o.onCacheShard,
      }));
    if (lead) {
      const skips = Object.entries(manifest.skipped).filter(([, n]) => n > 0);
      log(
        `   ${manifest.records} of ${manifest.seen} records cached` +
          (skips.length ? `; skipped: ${skips.map(([k, n]) => `${k} ${n}`).join(", ")}` : ""),
      );
    }
    const timestepDtype = parts.io.unet.timestepDtype === "int64" ? "int64" : "float32";
    const { className: _, ...folderSchedule } = parts.scheduleConfig;
    const schedule = {
      ...folderSchedule,
      predictionType: o.predictionType ?? folderSchedule.predictionType,
    };
    await release(parts);
    const cond = await loadLatentCache(`${o.out}/cache`);
    const settings: RecipePreset["unet"] = { ...o.settings, schedule, textContext: "states" };
    const unet: TrainedUnet = await timed("unet", () =>
      unetStage({
        dir: `${o.out}/unet`,
        settings,
        cond,
        seed: o.seed,
        resume: o.resume,
        progress: o.progress,
        comm,
        checkpointRoot: o.checkpoints,
        init: o.init,
        onLog: o.onLog,
      }));
    const model = `${o.out}/model`;
    const metrics = await readMetrics(`${o.out}/unet/metrics.jsonl`).catch(() => []);
    const summary: TrainOnPartsSummary = {
      out: o.out,
      model,
      records: manifest.records,
      skipped: manifest.skipped,
      seconds,
      finalLoss: metrics.at(-1)?.loss ?? null,
    };
    if (lead) {
      await timed("export", () =>
        exportPartsFolder({
          parts: o.parts,
          out: model,
          unet,
          resolution,
          vaeScaleFactor: parts.vaeScaleFactor,
          timestepDtype,
          predictionType: schedule.predictionType,
          record: { run: o.out, records: manifest.records },
        }));
      log(`   ${model}: SD folder (diffusers OnnxStableDiffusionPipeline layout)`);
      if (!o.skipSamples) {
        await timed("samples", async () => {
          const pipe = await loadOnnxPipeline(model, { threads: navigator.hardwareConcurrency });
          try {
            const prompts = cond.captions.slice(0, 4);
            const n = 4;
            const images = await txt2img(pipe, {
              prompts,
              n,
              seed: o.seed,
              guidance: 4,
              steps: 20,
              height: resolution,
              width: resolution,
            });
            await writePng(`${o.out}/samples.png`, imageGrid(images, { cols: n, pad: 2 }));
            await Deno.writeTextFile(
              `${o.out}/samples.txt`,
              prompts.map((q, i) => `row ${i + 1}: ${q}`).join("\n") + "\n",
            );
          } finally {
            await pipe.release();
          }
        });
      }
      await writeJsonAtomic(`${o.out}/summary.json`, summary);
    }
    tf.dispose(Object.values(unet.params));
    return summary;
  } finally {
    await release(parts);
  }
}

/** Refuse to train over a different run, or over an existing one without `resume`. */
async function checkRunFolder(o: TrainOnPartsOptions, resolution: number): Promise<void> {
  await prepareRunFolder({
    out: o.out,
    config: {
      kind: "unet-on-parts",
      parts: o.parts,
      data: o.data,
      resolution,
      randomFlip: !!o.randomFlip,
      filter: o.filter ?? "lanczos",
      seed: o.seed,
      unet: o.settings,
      checkpoints: o.checkpoints ?? null,
      initFrom: o.initFrom ?? null,
      prediction: o.predictionType ?? null,
    },
    record: { backend: o.backend },
    resume: o.resume,
    mismatchMessage: (d) => {
      const flag = d.path === "prediction"
        ? `--prediction ${d.was ?? "(the folder's)"}, now ${d.now ?? "(the folder's)"}`
        : flagChange(d, "unet.");
      return flag
        ? `the run was started with ${flag}; resume it with the same flags or pick another --out`
        : `field "${d.path}" was ${JSON.stringify(d.was)}, now ${JSON.stringify(d.now)}; ` +
          "resume with the same flags or pick another --out";
    },
  });
}
