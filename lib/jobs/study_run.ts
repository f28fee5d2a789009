/**
 * The whole study in one job (`deno task study`): train the embedded default with kept
 * checkpoints, then every experiment on that run, each step cached in the study folder, and one
 * self-contained HTML report. It sits with the jobs because it chains `trainRun` and the CLIP-FID
 * sweep (lib/eval/clip_fid) with the experiments and report of lib/study.
 *
 * With `parts` ({@link StudyPartsOptions}) the run is a UNet trained on a Stable Diffusion
 * folder's frozen parts over real shards (`trainOnParts`); each kept checkpoint is exported as
 * an SD folder and swept as a curve, and separate CLIP towers score every section.
 *
 * Study folder:
 * ```
 * <out>/study.json          the size and its settings (written first; a rerun must match)
 * <out>/run/                the trained run (trainRun; resumes from its checkpoints)
 * <out>/rank_seeds/         the rank-seeds experiment's work folder (resumes per run)
 * <out>/steps/<step>.json   each finished step's result (read back on a rerun)
 * <out>/figures/            every figure: <id>.json + <id>.svg (Plotly), <id>.png (images)
 * <out>/report.json         every headline with its interval
 * <out>/report.html         the report (plotly.js inlined once)
 * ```
 *
 * @example
 * ```ts
 * import { studyRun } from "./study_run.ts";
 * import { studySize } from "../study/report_sizes.ts";
 * import { initBackendAndConvGrad } from "../train/init_backend.ts";
 *
 * // About a minute on 2 cores with the quick size, so shown as a function.
 * async function example() {
 *   await initBackendAndConvGrad("auto");
 *   const r = await studyRun({ size: studySize("quick"), out: "runs/study", reuse: false, backend: "cpu-blas" });
 *   console.log(r.report.sections.map((s) => s.headlines[0]));
 * }
 * ```
 * @module
 */
import { trainRun } from "./train_run.ts";
import { trainOnParts } from "./train_parts.ts";
import type { UnetConfig } from "../models/mod.ts";
import type { DataFilter } from "../data/laion_meta.ts";
import { exportPartsCheckpoints } from "../recipe/parts_checkpoints.ts";
import { modelsSweep } from "../eval/clip_fid/models_sweep.ts";
import { clipTowersExtractor } from "../eval/clip_fid/feature_extractors.ts";
import { shardsPromptSet } from "../eval/clip_fid/prompt_sets.ts";
import { loadClipTowersFolder } from "../inference/clip_towers.ts";
import type { StudyModelSource } from "../study/report_source.ts";
import { resolvePreset } from "../recipe/presets.ts";
import { guidanceSweep } from "../eval/clip_fid/sweep.ts";
import { heldoutPromptSet } from "../eval/clip_fid/prompt_sets.ts";
import { rankSeedsExperiment } from "../study/rank_seeds.ts";
import type { StudySize } from "../study/report_sizes.ts";
import { studyStep } from "../study/report_steps.ts";
import { type StudyReport, type StudySection, writeStudyReport } from "../study/report.ts";
import { dataSection, dataStep } from "../study/report_data.ts";
import { rankSeedsSection } from "../study/report_rank_seeds.ts";
import { clipFidSection, type ClipFidStepResult } from "../study/report_clip_fid.ts";
import { bestOfNSection, bestOfNStep } from "../study/report_best_of_n.ts";
import { touchUpsSection, touchUpsStep } from "../study/report_touch_ups.ts";
import { humanSection, humanStep } from "../study/report_human.ts";
import {
  partsTrainingStep,
  trainingSection,
  trainingStep,
  type TrainingStepResult,
} from "../study/report_training.ts";
import { writeJsonAtomic } from "../util/atomic.ts";
import { pathExists } from "../util/path_exists.ts";

/** Options of {@link studyRun}. */
export interface StudyRunOptions {
  size: StudySize;
  /** The study folder (see the module notes). */
  out: string;
  /** Continue a study folder that exists, reading its finished steps back (default: refuse). */
  reuse: boolean;
  /** Name of the active TensorFlow.js backend (recorded in the run's config.json). */
  backend: string;
  /** Progress bars of the training stages (default false). */
  progress?: boolean;
  /** Status lines (default console.error). */
  log?: (line: string) => void;
  /**
   * Run the study on a Stable Diffusion folder's frozen parts and real shards instead of the
   * embedded default (see {@link StudyPartsOptions}).
   */
  parts?: StudyPartsOptions;
}

/**
 * The study on real parts: the UNet trained on an SD folder's VAE and text encoder over real
 * shards (`trainOnParts`, the size's UNet steps and kept checkpoints), each kept checkpoint
 * exported as an SD folder for the CLIP-FID curves, scored by separate CLIP towers (an SD folder
 * has no image tower), prompts and FID references from held-out shards.
 */
export interface StudyPartsOptions {
  /** The SD folder (Optimum's ONNX layout) whose VAE and text encoder are reused. */
  parts: string;
  /** Training shards: a folder or `gs://bucket/prefix` of img2dataset webdataset shards. */
  data: string;
  /**
   * Held-out shards: the CLIP-FID prompts and reference images, and the sampling sections'
   * prompts (default `data`, which the report then says: references the model trained on).
   */
  evalData?: string;
  /** CLIP towers that score: a folder with text_model.onnx, vision_model.onnx, vocab.json, merges.txt. */
  clip: string;
  /** Best of N's second scorer (`pickscore:DIR`, `aesthetic:DIR`); none by default. */
  judge?: string;
  /** Training side in pixels (default 256: 32x32 latents with SD's VAE). */
  resolution?: number;
  /** The UNet trained (default: the size's preset UNet, shaped to the parts). */
  unet?: UnetConfig;
  /** LAION metadata thresholds applied while caching (e.g. `{ minAesthetic: 4.5 }`). */
  dataFilter?: DataFilter;
  /** Words counted per 1M captions in the data section (default the study's: dragon, astronaut). */
  words?: string[];
}

/** What {@link studyRun} returns. */
export interface StudyRunResult {
  report: StudyReport;
  /** Wall-clock seconds of this call (steps read back cost nothing). */
  seconds: number;
  html: string;
  json: string;
}

/** Refuse a study folder of another size, or any existing one without `reuse`. */
async function prepareStudyFolder(o: StudyRunOptions): Promise<void> {
  const path = `${o.out}/study.json`;
  if (await pathExists(path)) {
    if (!o.reuse) {
      throw new Error(
        `${o.out} holds a study already; pass --reuse to continue it (finished steps are read ` +
          `back) or pick another --out`,
      );
    }
    const prev = JSON.parse(await Deno.readTextFile(path));
    if (JSON.stringify(prev.size) !== JSON.stringify(o.size)) {
      throw new Error(
        `${path}: the study was made with size "${prev.size?.name}" and other settings; ` +
          `continue it with the same --size or pick another --out`,
      );
    }
    return;
  }
  await Deno.mkdir(o.out, { recursive: true });
  await writeJsonAtomic(path, { format: "xgen-kit/study@1", size: o.size });
}

/**
 * Run or read back every step, then write the report; see the module notes.
 *
 * @example
 * ```ts
 * import { studyRun } from "./study_run.ts";
 * import { studySize } from "../study/report_sizes.ts";
 *
 * async function example() { // about 45 s at the quick size; the backend initialised first
 *   const r = await studyRun({ size: studySize("quick"), out: "runs/study", reuse: true, backend: "cpu-blas" });
 *   console.log(r.html);
 * }
 * ```
 */
export async function studyRun(o: StudyRunOptions): Promise<StudyRunResult> {
  const log = o.log ?? ((s: string) => console.error(s));
  const t0 = performance.now();
  const z = o.size, out = o.out;
  await prepareStudyFolder(o);
  const step = <T>(name: string, settings: unknown, fn: () => Promise<T>) =>
    studyStep(out, name, settings, fn, { log });
  const runDir = `${out}/run`;
  const preset = resolvePreset(z.preset, {
    unetSteps: z.unetSteps,
    unetCheckpointEvery: z.checkpointEvery,
    unetKeepAt: z.keepAt,
  });
  const sampling = {
    guidance: preset.sample.guidance,
    steps: preset.sample.steps,
    scheduler: preset.sample.scheduler,
  };
  const seconds: Record<string, number> = {};
  const timed = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t = performance.now();
    try {
      return await fn();
    } finally {
      seconds[name] = (performance.now() - t) / 1000;
    }
  };

  const pt = o.parts;
  const training: TrainingStepResult = await timed(
    "train",
    () =>
      step("train", { preset, seed: z.seed, parts: pt ?? null }, async () => {
        // The run folder keeps its own checkpoints: a killed study resumes its training.
        const resume = await pathExists(`${runDir}/config.json`);
        if (!pt) {
          await trainRun({
            out: runDir,
            preset,
            seed: z.seed,
            resume,
            backend: o.backend,
            progress: o.progress ?? false,
            log,
          });
          return await trainingStep(runDir);
        }
        await trainOnParts({
          parts: pt.parts,
          data: pt.data,
          out: runDir,
          settings: pt.unet ? { ...preset.unet, model: pt.unet } : preset.unet,
          resolution: pt.resolution ?? 256,
          dataFilter: pt.dataFilter,
          seed: z.seed,
          resume,
          backend: o.backend,
          progress: o.progress ?? false,
          log,
        });
        return await partsTrainingStep(runDir);
      }),
  );
  const words = pt ? pt.words ?? ["dragon", "astronaut"] : ["circle", "red", "dragon"];
  const data = await timed(
    "data",
    () =>
      step(
        "data",
        { words, data: pt?.data ?? null },
        () => dataStep(pt?.data ?? `${runDir}/data/train`, { words }),
      ),
  );
  const evalData = pt ? pt.evalData ?? pt.data : null;
  // What the sampling sections use on parts: the finished SD folder, the CLIP towers and
  // captions of the held-out shards.
  const source = async (count: number): Promise<StudyModelSource | undefined> => {
    if (!pt) return undefined;
    const resolution = pt.resolution ?? 256;
    const set = await shardsPromptSet(evalData!, { count, seed: z.seed, size: resolution });
    return {
      model: `${runDir}/model`,
      clip: pt.clip,
      judge: pt.judge,
      prompts: set.prompts,
      resolution,
    };
  };
  const rankSeeds = await timed(
    "rank_seeds",
    () =>
      step(
        "rank_seeds",
        { ...z.rankSeeds, seed: z.seed, resamples: z.resamples },
        () =>
          rankSeedsExperiment({
            ...z.rankSeeds,
            seed: z.seed,
            resamples: z.resamples,
            dir: `${out}/rank_seeds`,
            progress: o.progress ?? false,
            log,
          }),
      ),
  );
  const clipFid = await timed(
    "clip_fid",
    () =>
      step("clip_fid", {
        ...z.clipFid,
        scheduler: sampling.scheduler,
        seed: z.seed,
        evalData,
        clip: pt?.clip ?? null,
      }, async () => {
        const r = pt
          ? await partsSweep(runDir, pt, evalData!, z, sampling.scheduler, log)
          : await guidanceSweep({
            runDir,
            checkpoints: "all",
            promptSet: (size) =>
              Promise.resolve(heldoutPromptSet({ count: z.clipFid.n, seed: z.seed, size })),
            guidance: z.clipFid.guidance,
            n: z.clipFid.n,
            steps: z.clipFid.steps,
            scheduler: sampling.scheduler,
            seed: z.seed,
            bootstrap: { clip: z.resamples, fid: 20 },
          });
        const result: ClipFidStepResult = {
          points: r.points.map((p) => ({
            checkpoint: p.checkpoint,
            step: p.step,
            guidance: p.guidance,
            n: p.n,
            clipScore: p.clipScore,
            fid: p.fid,
          })),
          fidLabel: r.fidLabel,
          clipModel: r.clipModel,
          guidance: sampling.guidance,
        };
        return result;
      }),
  );
  const bestOf = await timed(
    "best_of_n",
    () =>
      step(
        "best_of_n",
        {
          ...z.bestOfN,
          ...sampling,
          seed: z.seed,
          resamples: z.resamples,
          evalData,
          clip: pt?.clip ?? null,
          judge: pt?.judge ?? null,
        },
        async () =>
          bestOfNStep({
            runDir,
            ...z.bestOfN,
            ...sampling,
            seed: z.seed,
            resamples: z.resamples,
            source: await source(z.bestOfN.prompts),
          }),
      ),
  );
  const touchUps = await timed(
    "touch_ups",
    () =>
      step(
        "touch_ups",
        {
          ...z.touchUps,
          ...sampling,
          seed: z.seed,
          resamples: z.resamples,
          evalData,
          clip: pt?.clip ?? null,
        },
        async () =>
          touchUpsStep({
            runDir,
            ...z.touchUps,
            ...sampling,
            seed: z.seed,
            resamples: z.resamples,
            source: await source(z.touchUps.images),
          }),
      ),
  );
  const first = z.keepAt[0], last = preset.unet.steps, g = sampling.guidance;
  const variants: [string, string, string] = [
    `step ${last}, guidance ${g}`,
    `step ${first}, guidance ${g}`,
    `step ${last}, guidance 1`,
  ];
  const human = await timed(
    "human",
    () =>
      step(
        "human",
        { ...z.human, variants, seed: z.seed, resamples: z.resamples },
        () => humanStep({ variants, ...z.human, seed: z.seed, resamples: z.resamples }),
      ),
  );

  const sections: StudySection[] = [
    dataSection(data, { shapesWorld: !pt }),
    rankSeedsSection(rankSeeds),
    clipFidSection(clipFid),
    bestOfNSection(bestOf),
    touchUpsSection(touchUps),
    humanSection(human),
    trainingSection(training),
  ];
  if (pt && evalData === pt.data) {
    const cf = sections.find((s) => s.id === "clip_fid")!;
    (cf.caveats ??= []).push(
      "No held-out shards were given (--eval-data): the prompts and FID references are " +
        "records of the training shards, so FID measures the fit to the training images.",
    );
  }
  if (preset.name === "tiny" && !pt) {
    // Said once per section that shows images or scores them: the numbers test the kit's
    // pipeline here, not the recipe.
    for (const s of sections.filter((s) => ["best_of_n", "touch_ups", "training"].includes(s.id))) {
      (s.caveats ??= []).push(
        `The ${z.name} size trains the tiny preset for ${z.unetSteps} UNet steps: its images ` +
          "are blurred textures rather than shapes, so these numbers exercise the kit's " +
          "pipeline, not the recipe (run --size default for the recipe).",
      );
    }
  }
  const report: StudyReport = {
    title: pt
      ? `xgen-kit study on ${pt.parts} (${z.name} size, ${z.unetSteps} UNet steps)`
      : `xgen-kit study (${z.name} size, ${z.preset} preset, ${z.unetSteps} UNet steps)`,
    sections,
    meta: {
      size: z,
      preset: preset.name,
      parts: pt ?? null,
      sampling,
      backend: o.backend,
      secondsThisCall: seconds,
      written: new Date().toISOString(),
    },
  };
  await writeStudyReport(out, report);
  const total = (performance.now() - t0) / 1000;
  log(`== report: ${out}/report.html (${total.toFixed(1)} s)`);
  return { report, seconds: total, html: `${out}/report.html`, json: `${out}/report.json` };
}

/**
 * The CLIP-FID sweep of a parts run: every kept checkpoint exported as an SD folder, all scored
 * by the given CLIP towers on held-out shard captions and images.
 */
async function partsSweep(
  runDir: string,
  pt: StudyPartsOptions,
  evalData: string,
  z: StudySize,
  scheduler: string,
  log: (line: string) => void,
) {
  const folders = await exportPartsCheckpoints({
    run: runDir,
    out: `${runDir}/checkpoint_models`,
    log,
  });
  if (!folders.length) throw new Error(`${runDir}/unet: no complete checkpoints to sweep`);
  const towers = await loadClipTowersFolder(pt.clip);
  try {
    const r = await modelsSweep({
      models: folders.map((f) => ({ kind: "folder" as const, dir: f.dir, name: f.name })),
      promptSet: (size) => shardsPromptSet(evalData, { count: z.clipFid.n, seed: z.seed, size }),
      clipModel: await clipTowersExtractor(towers),
      guidance: z.clipFid.guidance,
      n: z.clipFid.n,
      steps: z.clipFid.steps,
      scheduler,
      seed: z.seed,
      cacheDir: `${runDir}/eval/cache`,
      bootstrap: { clip: z.resamples, fid: 20 },
    });
    return {
      fidLabel: r.fidLabel,
      clipModel: r.clipModel,
      points: r.models.flatMap((m, i) =>
        m.points.map((p) => ({ ...p, checkpoint: folders[i].name, step: folders[i].step }))
      ),
    };
  } finally {
    await towers.release();
  }
}
