/**
 * `deno task sample`: generate a PNG grid from a trained run (one row per prompt).
 *
 * The default engine is onnxruntime on the run's ONNX export (`<run>/onnx`, or
 * `<run>/onnx-ckpt-XXXXXXXX` with `--checkpoint`), made on first use and redone only when the
 * run's models change (`ensureOnnxExport`); `--engine tfjs` samples through TensorFlow.js as
 * training does. Both draw the same noise, so one seed gives the same grid (up to rounding).
 *
 * @example
 * ```sh
 * deno task sample --run runs/default --prompt "a red circle" --prompt "a blue star" --n 8 --out grid.png
 * deno task sample --run runs/default --prompt "a red circle" --engine tfjs --backend wasm
 * ```
 * @module
 */
import { type FlagSpec, helpText, parseFlags, runMain, UsageError } from "./args.ts";
import { initCompute } from "../pipeline/compute.ts";
import { generate, loadRun } from "../pipeline/generate.ts";
import { imageGrid, type RgbImage, writePng } from "../plot/mod.ts";
import { Progress } from "../util/progress.ts";
import { SAMPLERS } from "../diffusion/mod.ts";
import { BACKEND_NAMES } from "../backend/mod.ts";
import { ensureOnnxExport } from "../onnx/export_run.ts";
import { loadOnnxPipeline, txt2img } from "../onnx/sd_pipeline.ts";

const SPEC = {
  run: { type: "string", required: true, help: "run folder written by deno task train" },
  prompt: { type: "strings", help: "prompt (repeatable)" },
  n: { type: "int", default: 8, min: 1, help: "images per prompt" },
  guidance: { type: "float", default: 4, min: 0, help: "classifier-free guidance scale" },
  steps: { type: "int", default: 25, min: 1, help: "sampling steps" },
  scheduler: {
    type: "choice",
    choices: Object.keys(SAMPLERS),
    default: "dpmpp_2m",
    help: "sampler",
  },
  seed: { type: "int", default: 0, help: "noise seed" },
  out: { type: "string", default: "samples.png", help: "output PNG grid" },
  checkpoint: {
    type: "int",
    min: 1,
    help: "sample from this UNet checkpoint step (EMA weights) instead of the finished model",
  },
  engine: {
    type: "choice",
    choices: ["onnx", "tfjs"],
    default: "onnx",
    help: "onnx: onnxruntime on the run's ONNX export (made on first use, redone when the run's " +
      "models change); tfjs: TensorFlow.js",
  },
  backend: {
    type: "choice",
    choices: ["auto", ...BACKEND_NAMES],
    default: "auto",
    help: "TensorFlow.js backend (tfjs engine; with onnx, only for exporting)",
  },
} satisfies FlagSpec;

type SampleFlags = ReturnType<typeof parseFlags<typeof SPEC>>;

/** Started once the models are loaded, so export and load time do not count in its rate. */
function progressBar(f: SampleFlags, prompts: string[]): Progress {
  return new Progress({ total: prompts.length * f.n, label: "sample" });
}

/** Images through onnxruntime, exporting the run (or checkpoint) first when needed. */
async function sampleOnnx(f: SampleFlags, prompts: string[]): Promise<RgbImage[]> {
  const dir = await ensureOnnxExport(f.run, {
    checkpoint: f.checkpoint,
    beforeExport: () => initCompute(f.backend, { quiet: true }),
    log: (line) => console.log(line),
  });
  const pipe = await loadOnnxPipeline(dir);
  const bar = progressBar(f, prompts);
  try {
    return await txt2img(pipe, {
      prompts,
      n: f.n,
      guidance: f.guidance,
      steps: f.steps,
      scheduler: f.scheduler,
      seed: f.seed,
      onProgress: (d) => bar.update(d),
    });
  } finally {
    bar.done();
    await pipe.release();
  }
}

/** Images through TensorFlow.js (lib/pipeline/generate.ts). */
async function sampleTfjs(f: SampleFlags, prompts: string[]): Promise<RgbImage[]> {
  await initCompute(f.backend, { quiet: true });
  const run = await loadRun(f.run, { checkpoint: f.checkpoint });
  const bar = progressBar(f, prompts);
  const images = await generate(run, {
    prompts,
    n: f.n,
    guidance: f.guidance,
    steps: f.steps,
    scheduler: f.scheduler,
    seed: f.seed,
    onProgress: (d) => bar.update(d),
  });
  bar.done();
  return images;
}

if (import.meta.main) {
  await runMain(async () => {
    const f = parseFlags(Deno.args, SPEC, "sample");
    if (f.help) {
      console.log(helpText("deno task sample", "sample images from a trained run", SPEC));
      return;
    }
    if (!f.prompt?.length) throw new UsageError("sample: give at least one --prompt");
    const images = f.engine === "onnx"
      ? await sampleOnnx(f, f.prompt)
      : await sampleTfjs(f, f.prompt);
    await writePng(f.out, imageGrid(images, { cols: f.n, pad: 2 }));
    console.log(`wrote ${f.out} (${f.prompt.length} rows x ${f.n})`);
  });
}
