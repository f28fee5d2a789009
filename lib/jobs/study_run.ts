/**
 * The whole study in one job (`deno task study`): train the embedded default with kept
 * checkpoints, then every experiment on that run, each step cached in the study folder, and one
 * self-contained HTML report. It sits with the jobs because it chains `trainRun` and the CLIP-FID
 * sweep (lib/eval/clip_fid) with the experiments and report of lib/study.
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
import { trainingSection, trainingStep } from "../study/report_training.ts";
import { writeJsonAtomic } from "../util/atomic.ts";

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
}

/** What {@link studyRun} returns. */
export interface StudyRunResult {
  report: StudyReport;
  /** Wall-clock seconds of this call (steps read back cost nothing). */
  seconds: number;
  html: string;
  json: string;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Refuse a study folder of another size, or any existing one without `reuse`. */
async function prepareStudyFolder(o: StudyRunOptions): Promise<void> {
  const path = `${o.out}/study.json`;
  if (await exists(path)) {
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

  const training = await timed("train", () =>
    step("train", { preset, seed: z.seed }, async () => {
      await trainRun({
        out: runDir,
        preset,
        seed: z.seed,
        // The run folder keeps its own checkpoints: a killed study resumes its training.
        resume: await exists(`${runDir}/config.json`),
        backend: o.backend,
        progress: o.progress ?? false,
        log,
      });
      return await trainingStep(runDir);
    }));
  const data = await timed(
    "data",
    () =>
      step(
        "data",
        { words: ["circle", "red", "dragon"] },
        () => dataStep(`${runDir}/data/train`, { words: ["circle", "red", "dragon"] }),
      ),
  );
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
      step("clip_fid", { ...z.clipFid, scheduler: sampling.scheduler, seed: z.seed }, async () => {
        const r = await guidanceSweep({
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
        { ...z.bestOfN, ...sampling, seed: z.seed, resamples: z.resamples },
        () =>
          bestOfNStep({
            runDir,
            ...z.bestOfN,
            ...sampling,
            seed: z.seed,
            resamples: z.resamples,
          }),
      ),
  );
  const touchUps = await timed(
    "touch_ups",
    () =>
      step(
        "touch_ups",
        { ...z.touchUps, ...sampling, seed: z.seed, resamples: z.resamples },
        () =>
          touchUpsStep({
            runDir,
            ...z.touchUps,
            ...sampling,
            seed: z.seed,
            resamples: z.resamples,
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
    dataSection(data),
    rankSeedsSection(rankSeeds),
    clipFidSection(clipFid),
    bestOfNSection(bestOf),
    touchUpsSection(touchUps),
    humanSection(human),
    trainingSection(training),
  ];
  if (preset.name === "tiny") {
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
    title: `xgen-kit study (${z.name} size, ${z.preset} preset, ${z.unetSteps} UNet steps)`,
    sections,
    meta: {
      size: z,
      preset: preset.name,
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
