/**
 * `deno task sample`: generate a PNG grid from a trained run or any ONNX Stable Diffusion folder
 * (one row per prompt).
 *
 * The default engine is onnxruntime on the run's ONNX export (`<run>/onnx`, or
 * `<run>/onnx-ckpt-XXXXXXXX` with `--checkpoint`), made on first use and redone only when the
 * run's models change (`ensureOnnxExport`); `--engine tfjs` samples through TensorFlow.js as
 * training does. Both draw the same noise, so one seed gives the same grid (up to rounding).
 *
 * `--model DIR` samples an ONNX Stable Diffusion folder in Hugging Face Optimum's layout instead
 * (a real SD export, or a run's `onnx/` export) with onnxruntime, at the folder's own image size;
 * exactly one of `--run` and `--model` is given.
 *
 * `--best-of N` is the study's rejection sampling (`lib/inference/best_of_n.ts`): every grid cell
 * is the best of N candidates by `--scorer`, and `<out>.json` records every score, the winners,
 * their seeds and the settings.
 *
 * `--provider auto|cpu|cuda|webgpu` picks where every ONNX model (pipeline and scorer) runs
 * (lib/onnx/providers.ts); `<out>.json` records it.
 *
 * @example
 * ```sh
 * deno task sample --run runs/default --prompt "a red circle" --prompt "a blue star" --n 8 --out grid.png
 * deno task sample --run runs/default --prompt "a red circle" --engine tfjs --backend wasm
 * deno task sample --run runs/default --prompt "a red circle" --n 4 --best-of 8 --scheduler pndm
 * deno task sample --model sd15-onnx --prompt "a red circle" --n 2 --steps 25 --guidance 7.5
 * deno task sample --model sd15-onnx --prompt "a red circle" --best-of 4 --scorer pickscore:pick
 * deno task sample --model sd15-onnx --prompt "a red circle" --provider webgpu
 * ```
 * @module
 */
import { type FlagSpec, helpText, parseFlags, runMain, UsageError } from "./args.ts";
import { BACKEND_FLAG } from "./backend_flag.ts";
import { initBackendAndConvGrad } from "../train/init_backend.ts";
import { setUpFastPath } from "../setup/fast_path.ts";
import { generate, loadRun } from "../recipe/generate.ts";
import type { ImageGenerator } from "../diffusion/generator.ts";
import { bestOfN, type BestOfNPick } from "../inference/best_of_n.ts";
import {
  checkScorerFolder,
  formatScorerSpec,
  type LoadedScorer,
  loadScorer,
  parseScorerSpec,
  type ScorerSpec,
} from "../inference/scorers.ts";
import { imageGrid, type RgbImage, writePng } from "../plot/mod.ts";
import { writeJsonAtomic } from "../util/atomic.ts";
import { Progress } from "../util/progress.ts";
import { ensureOnnxExport } from "../recipe/onnx_export.ts";
import { loadOnnxPipeline, txt2img } from "../onnx/sd_pipeline.ts";
import { PROVIDER_FLAG, SAMPLING_FLAGS } from "./sampling_flags.ts";
import { parseOnnxProvider, setDefaultOnnxProvider } from "../onnx/providers.ts";
import { checkSdFolder, sdFolderImageSize } from "../inference/sd_model_folder.ts";
import { outputFile } from "./path_checks.ts";
import { assertSamplePlanFits, formatSamplePlan, runClipConfig, samplePlan } from "./job_plan.ts";

const SPEC = {
  run: { type: "string", help: "run folder written by deno task train" },
  model: {
    type: "string",
    help:
      "ONNX Stable Diffusion folder (Optimum layout) instead of --run; sampled with onnxruntime",
  },
  prompt: { type: "strings", help: "prompt (repeatable)" },
  n: {
    type: "int",
    default: 8,
    min: 1,
    max: 1_000_000,
    help: "images per prompt in the grid; with --best-of N each is the best of N candidates, so " +
      "n*N images are generated per prompt",
  },
  ...SAMPLING_FLAGS,
  out: { type: "string", default: "samples.png", check: outputFile, help: "output PNG grid" },
  checkpoint: {
    type: "int",
    min: 1,
    max: 1e9,
    help: "sample from this UNet checkpoint step (EMA weights) instead of the finished model " +
      "(--run only)",
  },
  engine: {
    type: "choice",
    choices: ["onnx", "tfjs"],
    default: "onnx",
    help: "onnx: onnxruntime on the run's ONNX export (made on first use, redone when the run's " +
      "models change) or on --model; tfjs: TensorFlow.js (--run only)",
  },
  backend: {
    ...BACKEND_FLAG,
    help: "TensorFlow.js backend (tfjs engine; with onnx, only for exporting)",
  },
  provider: PROVIDER_FLAG,
  "best-of": {
    type: "int",
    default: 1,
    min: 1,
    max: 10_000,
    help: "rejection sampling: each grid cell is the best of N candidates by --scorer; every " +
      "score, winner and seed goes to <out>.json (1 = off)",
  },
  scorer: {
    type: "string",
    help: "what --best-of ranks by: clip (the run's own CLIP, 100*cos; the default; with --model " +
      "only for a kit export, which holds image_encoder/), " +
      "pickscore:DIR (PickScore-style CLIP towers: text_model.onnx, vision_model.onnx, " +
      "vocab.json, merges.txt), aesthetic:DIR (those towers + aesthetic_head.onnx)",
  },
  "batch-size": {
    type: "int",
    default: 32,
    min: 1,
    max: 4096,
    help: "images per UNet batch (and per scorer call with --best-of)",
  },
} satisfies FlagSpec;

type SampleFlags = ReturnType<typeof parseFlags<typeof SPEC>>;

/** Started once the models are loaded, so export and load time do not count in its rate. */
function progressBar(total: number): Progress {
  return new Progress({ total, label: "sample" });
}

/** A loaded engine: something that turns prompts into images, and the export it used. */
interface Engine {
  generator: ImageGenerator;
  /** The run's ONNX export (onnx engine), else null. */
  exportDir: string | null;
  release(): Promise<void>;
}

/**
 * The ONNX folder sampled: `--model` as given, else the run's export (or checkpoint's), made or
 * refreshed when needed.
 */
function exportFor(f: SampleFlags, beforeExport?: () => Promise<unknown>): Promise<string> {
  if (f.model !== undefined) return Promise.resolve(f.model);
  return ensureOnnxExport(f.run!, {
    checkpoint: f.checkpoint,
    beforeExport,
    log: (line) => console.log(line),
  });
}

/**
 * onnxruntime on the run's export (exporting first when needed), or TensorFlow.js
 * (lib/recipe/generate.ts).
 */
async function openEngine(f: SampleFlags): Promise<Engine> {
  if (f.engine === "onnx") {
    const dir = await exportFor(f, () => initBackendAndConvGrad(f.backend, { quiet: true }));
    const pipe = await loadOnnxPipeline(dir);
    return { generator: (o) => txt2img(pipe, o), exportDir: dir, release: () => pipe.release() };
  }
  await setUpFastPath(f.backend);
  await initBackendAndConvGrad(f.backend, { quiet: true });
  const run = await loadRun(f.run!, { checkpoint: f.checkpoint });
  return { generator: (o) => generate(run, o), exportDir: null, release: () => Promise.resolve() };
}

/** The sampling settings every generator call shares. */
function settings(f: SampleFlags) {
  return {
    guidance: f.guidance,
    steps: f.steps,
    scheduler: f.scheduler,
    seed: f.seed,
    batchSize: f["batch-size"],
  };
}

/** `n` images per prompt, prompt-major. */
async function samplePlain(f: SampleFlags, prompts: string[]): Promise<RgbImage[]> {
  const engine = await openEngine(f);
  const bar = progressBar(prompts.length * f.n);
  try {
    return await engine.generator({
      ...settings(f),
      prompts,
      n: f.n,
      onProgress: (d) => bar.update(d),
    });
  } finally {
    bar.done();
    await engine.release();
  }
}

/** The winners of `n` best-of-N draws per prompt, prompt-major, and the scorer's name. */
async function sampleBestOf(
  f: SampleFlags,
  prompts: string[],
  spec: ScorerSpec,
): Promise<{ picks: BestOfNPick[]; scorer: string }> {
  const N = f["best-of"];
  const engine = await openEngine(f);
  let scorer: LoadedScorer | null = null;
  try {
    // The tfjs engine has no export yet; its compute is already set up for exporting.
    const exportDir = spec.kind === "clip" ? engine.exportDir ?? await exportFor(f) : undefined;
    scorer = await loadScorer(spec, { exportDir });
    // One bestOfN entry per grid cell, so each cell draws its own candidates.
    const cells = prompts.flatMap((p) => Array<string>(f.n).fill(p));
    const bar = progressBar(cells.length * N);
    try {
      const picks = await bestOfN({
        ...settings(f),
        generator: engine.generator,
        scorer,
        prompts: cells,
        candidates: N,
        onProgress: (p) => bar.update(p.prompt * N + p.done),
      });
      return { picks, scorer: scorer.name };
    } finally {
      bar.done();
    }
  } finally {
    await scorer?.release();
    await engine.release();
  }
}

/** The `<out>.json` record of a best-of-N grid. */
function bestOfRecord(
  f: SampleFlags,
  prompts: string[],
  spec: ScorerSpec,
  r: { picks: BestOfNPick[]; scorer: string },
) {
  return {
    format: "xgen-kit-best-of-n/1",
    out: f.out,
    scorer: { name: r.scorer, spec: formatScorerSpec(spec) },
    settings: {
      run: f.run ?? null,
      model: f.model ?? null,
      checkpoint: f.checkpoint ?? null,
      engine: f.engine,
      provider: f.engine === "onnx" ? f.provider : null,
      n: f.n,
      bestOf: f["best-of"],
      ...settings(f),
    },
    prompts: prompts.map((prompt, row) => ({
      prompt,
      cells: r.picks.slice(row * f.n, (row + 1) * f.n).map((p) => ({
        seed: p.seed,
        winner: p.winner,
        score: p.score,
        scores: Array.from(p.scores),
      })),
    })),
  };
}

/** The scorer `--scorer` names, its folder checked; null without `--best-of`. */
async function scorerFlag(f: SampleFlags): Promise<ScorerSpec | null> {
  if (f["best-of"] === 1) {
    if (f.scorer !== undefined) {
      throw new UsageError(
        "sample: --scorer needs --best-of N with N >= 2 (--best-of 1, the default, does not rank)",
      );
    }
    return null;
  }
  const text = f.scorer ?? "clip";
  let spec: ScorerSpec;
  try {
    spec = parseScorerSpec(text);
    await checkScorerFolder(spec);
  } catch (e) {
    throw new UsageError(`sample: ${(e as Error).message}`);
  }
  // `clip` scores with the sampled model's own CLIP towers: a folder has them only when it is a
  // kit export (image_encoder/ beside text_encoder/); an SD folder has no image tower.
  if (spec.kind === "clip" && f.model !== undefined) {
    const towers = await Deno.stat(`${f.model}/image_encoder/model.onnx`).then(
      () => true,
      () => false,
    );
    if (!towers) {
      throw new UsageError(
        `sample: --scorer clip scores with the model's own CLIP, but ${f.model} has no ` +
          "image_encoder/model.onnx (only kit exports do); give --scorer pickscore:DIR or " +
          "aesthetic:DIR",
      );
    }
  }
  return spec;
}

/** `--run` xor `--model`, and the flags that only go with a run; the folder is checked. */
async function checkSource(f: SampleFlags): Promise<void> {
  if ((f.run === undefined) === (f.model === undefined)) {
    throw new UsageError("sample: give exactly one of --run RUN and --model DIR");
  }
  if (f.model === undefined) return;
  if (f.engine === "tfjs") {
    throw new UsageError("sample: --engine tfjs needs --run (an SD folder is sampled with onnx)");
  }
  if (f.checkpoint !== undefined) {
    throw new UsageError("sample: --checkpoint needs --run (an SD folder has one UNet)");
  }
  try {
    await checkSdFolder(f.model);
  } catch (e) {
    throw new UsageError(`sample: --model ${(e as Error).message}`);
  }
}

/** Print what the job will do (and refuse one that cannot fit in memory) before any work. */
async function announcePlan(f: SampleFlags, prompts: number): Promise<void> {
  const imageSize = f.model === undefined
    ? await runClipConfig(f.run!, "imageSize")
    : await sdFolderImageSize(f.model).then((s) => s && Math.max(s.width, s.height));
  if (imageSize === null) return;
  const plan = samplePlan({
    prompts,
    n: f.n,
    bestOf: f["best-of"],
    batchSize: f["batch-size"],
    steps: f.steps,
    imageSize,
  });
  assertSamplePlanFits(plan, { memoryBytes: Deno.systemMemoryInfo().total });
  console.log(formatSamplePlan(plan, f.out));
}

if (import.meta.main) {
  await runMain(async () => {
    const f = parseFlags(Deno.args, SPEC, "sample");
    if (f.help) {
      console.log(
        helpText("deno task sample", "sample images from a trained run or an SD folder", SPEC),
      );
      return;
    }
    await checkSource(f);
    // Every ONNX session opened from here on (pipeline, scorer) runs on this provider.
    setDefaultOnnxProvider(parseOnnxProvider(f.provider));
    if (!f.prompt?.length) throw new UsageError("sample: give at least one --prompt");
    const spec = await scorerFlag(f);
    await announcePlan(f, f.prompt.length);
    if (spec === null) {
      const images = await samplePlain(f, f.prompt);
      await writePng(f.out, imageGrid(images, { cols: f.n, pad: 2 }));
      console.log(`wrote ${f.out} (${f.prompt.length} rows x ${f.n})`);
      return;
    }
    const r = await sampleBestOf(f, f.prompt, spec);
    await writePng(f.out, imageGrid(r.picks.map((p) => p.image), { cols: f.n, pad: 2 }));
    await writeJsonAtomic(`${f.out}.json`, bestOfRecord(f, f.prompt, spec, r));
    console.log(
      `wrote ${f.out} (${f.prompt.length} rows x ${f.n}, each the best of ${f["best-of"]} by ` +
        `${r.scorer}) and ${f.out}.json`,
    );
  });
}
