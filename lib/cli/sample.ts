/**
 * `deno task sample`: generate a PNG grid from a trained run (one row per prompt).
 *
 * @example
 * ```sh
 * deno task sample --run runs/default --prompt "a red circle" --prompt "a blue star" --n 8 --out grid.png
 * ```
 * @module
 */
import { type FlagSpec, helpText, parseFlags, runMain, UsageError } from "./args.ts";
import { initCompute } from "../pipeline/compute.ts";
import { generate, loadRun } from "../pipeline/generate.ts";
import { imageGrid, writePng } from "../plot/mod.ts";
import { Progress } from "../util/progress.ts";
import { SAMPLERS } from "../diffusion/mod.ts";
import { BACKEND_NAMES } from "../backend/mod.ts";

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
  backend: {
    type: "choice",
    choices: ["auto", ...BACKEND_NAMES],
    default: "auto",
    help: "compute backend",
  },
} satisfies FlagSpec;

if (import.meta.main) {
  await runMain(async () => {
    const f = parseFlags(Deno.args, SPEC, "sample");
    if (f.help) {
      console.log(helpText("deno task sample", "sample images from a trained run", SPEC));
      return;
    }
    if (!f.prompt?.length) throw new UsageError("sample: give at least one --prompt");
    await initCompute(f.backend, { quiet: true });
    const run = await loadRun(f.run, { checkpoint: f.checkpoint });
    const bar = new Progress({ total: f.prompt.length * f.n, label: "sample" });
    const images = await generate(run, {
      prompts: f.prompt,
      n: f.n,
      guidance: f.guidance,
      steps: f.steps,
      scheduler: f.scheduler,
      seed: f.seed,
      onProgress: (d) => bar.update(d),
    });
    bar.done();
    await writePng(f.out, imageGrid(images, { cols: f.n, pad: 2 }));
    console.log(`wrote ${f.out} (${f.prompt.length} rows x ${f.n})`);
  });
}
