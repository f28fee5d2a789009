/**
 * `deno task train`: the command-line main job. Trains the embedded default end to end (data,
 * autoencoder, CLIP, UNet) into a run folder; see `lib/pipeline/train_pipeline.ts` for the layout.
 *
 * @example
 * ```sh
 * deno task train --preset tiny --out runs/tiny
 * deno task train --out runs/default --resume   # continue after an interruption
 * ```
 * @module
 */
import { type FlagSpec, helpText, parseFlags, runMain } from "./args.ts";
import { initCompute } from "../pipeline/compute.ts";
import { resolvePreset } from "../pipeline/presets.ts";
import { trainPipeline } from "../pipeline/train_pipeline.ts";
import { BACKEND_NAMES } from "../backend/mod.ts";

const SPEC = {
  preset: {
    type: "choice",
    choices: ["default", "tiny"],
    default: "default",
    help: "training preset",
  },
  steps: { type: "int", min: 1, help: "UNet steps (other stages scale with it)" },
  out: { type: "string", default: "runs/default", help: "run folder" },
  backend: {
    type: "choice",
    choices: ["auto", ...BACKEND_NAMES],
    default: "auto",
    help: "compute backend",
  },
  seed: { type: "int", default: 0, help: "seed of data, init, noise and sampling" },
  resume: {
    type: "bool",
    default: false,
    help: "continue an interrupted run from its newest complete checkpoint",
  },
  "skip-eval": { type: "bool", default: false, help: "do not sample or evaluate at the end" },
} satisfies FlagSpec;

if (import.meta.main) {
  await runMain(async () => {
    const f = parseFlags(Deno.args, SPEC, "train");
    if (f.help) {
      console.log(helpText("deno task train", "train the embedded default model end to end", SPEC));
      return;
    }
    const info = await initCompute(f.backend);
    console.error(`backend: ${info.name} (${info.details})`);
    const preset = resolvePreset(f.preset, { unetSteps: f.steps });
    const summary = await trainPipeline({
      out: f.out,
      preset,
      seed: f.seed,
      resume: f.resume,
      backend: info.name,
      progress: true,
      skipEval: f["skip-eval"],
    });
    console.log(
      JSON.stringify({
        out: summary.out,
        seconds: summary.seconds,
        peakRssMiB: summary.peakRssMiB,
      }),
    );
  });
}
