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
 * ```
 * @module
 */
import { type FlagSpec, helpText, parseFlags, runMain, UsageError } from "./args.ts";
import { outputFolder } from "./path_checks.ts";
import { BACKEND_FLAG } from "./backend_flag.ts";
import { initBackendAndConvGrad } from "../train/init_backend.ts";
import { setUpFastPath } from "../setup/fast_path.ts";
import { STUDY_SIZES, studySize, studySizesTable } from "../study/report_sizes.ts";
import { studyRun } from "../jobs/study_run.ts";

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
    await setUpFastPath(f.backend);
    const info = await initBackendAndConvGrad(f.backend, { quiet: true });
    console.error(`study: size ${size.name}, backend ${info.name}, folder ${f.out}`);
    const r = await studyRun({
      size,
      out: f.out,
      reuse: f.reuse,
      backend: info.name,
      progress: f.progress,
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
