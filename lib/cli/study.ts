/**
 * `deno task study`: the whole study on the embedded default in one command: train a run with
 * kept checkpoints, run every experiment on it (caption statistics, rank seeds, CLIP-FID curves,
 * best of N, touch-ups, a simulated human evaluation, caption following), each step cached in the
 * study folder, and write one self-contained `report.html` with `report.json` and `figures/`.
 * A killed study continues with `--reuse`, its finished steps read back.
 *
 * ```sh
 * deno task study --size quick --out runs/study_quick          # about a minute on 2 cores
 * deno task study --size quick --out runs/study_quick --reuse  # continue or re-render
 * deno task study --size default --out runs/study              # under 45 minutes
 * # On a Stable Diffusion folder's frozen parts and real shards, scored by CLIP towers:
 * deno task study --parts sd15-onnx --data laion/ --eval-data laion-heldout/ --clip clip-l14 \
 *   --judge pickscore:pickscore-onnx --resolution 256 --unet small --min-aesthetic 4.5 --out runs/study_sd
 * ```
 * @module
 */
import { type FlagSpec, helpText, parseFlags, runMain, UsageError } from "./args.ts";
import { outputFolder } from "./path_checks.ts";
import { BACKEND_FLAG } from "./backend_flag.ts";
import { initBackendAndConvGrad } from "../train/init_backend.ts";
import { setUpFastPath } from "../setup/fast_path.ts";
import { STUDY_SIZES, studySize, studySizesTable } from "../study/report_sizes.ts";
import { type StudyPartsOptions, studyRun } from "../jobs/study_run.ts";
import { DATA_FILTER_FLAGS, dataFilterFromFlags } from "./data_filter_flags.ts";
import { PARTS_RESOLUTION_FLAG, PARTS_UNET_FLAG, unetModelFlag } from "./unet_flag.ts";

const SPEC = {
  size: {
    type: "choice",
    choices: Object.keys(STUDY_SIZES),
    default: "quick",
    help: "how big every step is: test (seconds), quick (about a minute), default (under 45 min)",
  },
  out: {
    type: "string",
    default: "runs/study",
    check: outputFolder,
    help: "study folder: run/, steps/, figures/, report.html, report.json",
  },
  reuse: {
    type: "bool",
    default: false,
    help: "continue an existing study folder: finished steps are read back, the rest run",
  },
  backend: BACKEND_FLAG,
  progress: { type: "bool", default: false, help: "progress bars of the training stages" },
  parts: {
    type: "string",
    help: "run on this SD folder's frozen VAE and text encoder (Optimum ONNX layout) instead of " +
      "the embedded default; needs --data and --clip",
  },
  data: { type: "string", help: "with --parts: training shards (folder or gs://bucket/prefix)" },
  "eval-data": {
    type: "string",
    help: "with --parts: held-out shards for prompts and FID references (default: --data)",
  },
  clip: {
    type: "string",
    help: "with --parts: CLIP towers that score (text_model.onnx, vision_model.onnx, vocab.json, " +
      "merges.txt)",
  },
  judge: {
    type: "string",
    help: "with --parts: best of N's second scorer, pickscore:DIR or aesthetic:DIR (default none)",
  },
  resolution: PARTS_RESOLUTION_FLAG,
  unet: PARTS_UNET_FLAG,
  ...DATA_FILTER_FLAGS,
} satisfies FlagSpec;

if (import.meta.main) {
  await runMain(async () => {
    const f = parseFlags(Deno.args, SPEC, "study");
    if (f.help) {
      console.log(
        helpText("deno task study", "the whole study in one command and one HTML report", SPEC) +
          "\n\nSizes:\n" + studySizesTable(),
      );
      return;
    }
    let size;
    try {
      size = studySize(f.size);
    } catch (e) {
      throw new UsageError(`study: --${(e as Error).message}`);
    }
    let parts: StudyPartsOptions | undefined;
    const partsOnly = ["data", "eval-data", "clip", "judge", "unet"] as const;
    if (f.parts === undefined) {
      const stray = partsOnly.find((k) => f[k] !== undefined);
      if (stray) throw new UsageError(`study: --${stray} needs --parts`);
    } else {
      if (f.data === undefined) throw new UsageError("study: --parts needs --data SHARDS");
      if (f.clip === undefined) {
        throw new UsageError(
          "study: --parts needs --clip DIR (CLIP towers: an SD folder has no image tower to score with)",
        );
      }
      parts = {
        parts: f.parts,
        data: f.data,
        evalData: f["eval-data"],
        clip: f.clip,
        judge: f.judge,
        resolution: f.resolution,
        unet: f.unet === undefined ? undefined : await unetModelFlag(f.unet),
        dataFilter: dataFilterFromFlags(f),
      };
    }
    await setUpFastPath(f.backend);
    const info = await initBackendAndConvGrad(f.backend, { quiet: true });
    console.error(`study: size ${size.name}, backend ${info.name}, folder ${f.out}`);
    const r = await studyRun({
      size,
      out: f.out,
      reuse: f.reuse,
      backend: info.name,
      progress: f.progress,
      parts,
    });
    for (const s of r.report.sections) {
      for (const h of s.headlines) {
        console.log(
          `${h.id}: ${h.value.toPrecision(4)} [${h.lo.toPrecision(4)}, ${h.hi.toPrecision(4)}]`,
        );
      }
    }
    console.log(`wrote ${r.html} and ${r.json} (${r.seconds.toFixed(1)} s)`);
  });
}
