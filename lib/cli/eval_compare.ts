/**
 * `deno task eval:compare`: one CLIP-FID figure for several models from their `clip_fid.json`
 * reports (one curve per run and checkpoint; a report of several models, from `deno task eval` with
 * repeated `--model`/`--run`, adds each of its models). Reports measured in different spaces (FID
 * extractor, CLIP model, prompts) are refused with the reason.
 *
 * @example
 * ```sh
 * deno task eval:compare --report runs/a/eval/clip_fid.json --report runs/b/eval/clip_fid.json --out compare.html
 * ```
 * @module
 */
import { type FlagSpec, helpText, parseFlags, runMain, UsageError } from "./args.ts";
import { compareFigure, readSweepReports } from "../eval/clip_fid/compare.ts";
import { writePlotlyHtml } from "../plot/mod.ts";
import { inputFile, outputFile } from "./path_checks.ts";

const SPEC = {
  report: {
    type: "strings",
    check: inputFile,
    help: "a clip_fid.json written by deno task eval (repeatable; a several-model report adds " +
      "each of its models)",
  },
  name: {
    type: "strings",
    help: "curve name for each model, in order (default: its run or model name)",
  },
  out: {
    type: "string",
    default: "clip_fid_compare.html",
    check: outputFile,
    help: "output HTML file",
  },
} satisfies FlagSpec;

if (import.meta.main) {
  await runMain(async () => {
    const f = parseFlags(Deno.args, SPEC, "eval:compare");
    if (f.help) {
      console.log(helpText("deno task eval:compare", "overlay CLIP-FID curves", SPEC));
      return;
    }
    const paths = f.report ?? [];
    if (paths.length < 1) throw new UsageError("eval:compare: give at least one --report");
    const per = await Promise.all(paths.map(readSweepReports));
    const reports = per.flat();
    if (f.name && f.name.length !== reports.length) {
      throw new UsageError(
        `eval:compare: ${f.name.length} --name for ${reports.length} models in ${paths.length} ` +
          "--report (one each, in order)",
      );
    }
    const sources = per.flatMap((rs, i) => rs.map(() => paths[i]));
    const fig = compareFigure(reports, f.name ?? reports.map((r, i) => r.run || sources[i]));
    await writePlotlyHtml(f.out, fig, { title: "CLIP score vs FID" });
    console.log(`wrote ${f.out} (${fig.data.length} curves)`);
  });
}
