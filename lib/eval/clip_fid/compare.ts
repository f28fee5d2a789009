/**
 * One CLIP-FID figure for several models: overlay the curves of `clip_fid.json` reports written by
 * `deno task eval` (one curve per run and checkpoint; a several-model report, `--model`/`--run`
 * repeated, gives one entry per model: {@link readSweepReports}). Curves share axes only when their numbers
 * live in the same spaces, so reports made with different FID extractors, CLIP models or prompt
 * sets are refused with the reason: a run's own kit CLIP makes its scores incomparable with
 * another run's (pass the same `--clip` judge and `--extractor inception` to every run).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { compareFigure, readSweepReport } from "./compare.ts";
 * import { writePlotlyHtml } from "../../plot/mod.ts";
 *
 * const report = (run: string, fid: number) => ({
 *   format: "xgen-kit/clip-fid@1", run, extractor: { name: "inception" }, clip_model: "ViT-B/32",
 *   label: "FID", prompts: { spec: "text:p.txt", hash: "ab12", count: 2 },
 *   results: [{ checkpoint: "final", step: null, guidance: 3, clip_score: 30, clip_score_interval: [29, 31], fid, fid_interval: [fid - 1, fid + 1] }],
 * });
 * const dir = await Deno.makeTempDir(); // stands for runs/a/eval and runs/b/eval
 * await Deno.writeTextFile(`${dir}/a.json`, JSON.stringify(report("a", 20)));
 * await Deno.writeTextFile(`${dir}/b.json`, JSON.stringify(report("b", 25)));
 * const reports = await Promise.all([`${dir}/a.json`, `${dir}/b.json`].map(readSweepReport));
 * const fig = compareFigure(reports);
 * assert.deepEqual(fig.data.map((t) => t.name), ["a final", "b final"]);
 * await writePlotlyHtml(`${dir}/compare.html`, fig);
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */
import type { PlotlyFigure } from "../../plot/mod.ts";

/** The parts of a `clip_fid.json` report the comparison reads. */
export interface SweepReportDoc {
  format: string;
  run: string;
  extractor: { name: string };
  clip_model: string;
  label: string;
  prompts: { spec: string; hash: string; count: number };
  results: {
    checkpoint: string;
    step: number | null;
    guidance: number;
    clip_score: number;
    clip_score_interval: [number, number];
    fid: number;
    fid_interval: [number, number];
  }[];
}

/**
 * Read and check one `clip_fid.json`; errors name the file and the field.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readSweepReport } from "./compare.ts";
 *
 * const path = await Deno.makeTempFile({ suffix: ".json" });
 * await Deno.writeTextFile(path, JSON.stringify({ format: "other" }));
 * await assert.rejects(readSweepReport(path), /field "format" must be xgen-kit\/clip-fid@1/);
 * await Deno.remove(path);
 * ```
 */
export async function readSweepReport(path: string): Promise<SweepReportDoc> {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new Error(`${path}: cannot read a JSON report (${(e as Error).message})`);
  }
  if (typeof doc.format !== "string" || !doc.format.startsWith("xgen-kit/clip-fid@")) {
    throw new Error(
      `${path}: field "format" must be xgen-kit/clip-fid@1 (a deno task eval report)`,
    );
  }
  for (const k of ["run", "clip_model", "label"]) {
    if (typeof doc[k] !== "string") throw new Error(`${path}: field "${k}" must be a string`);
  }
  if (!Array.isArray(doc.results) || doc.results.length === 0) {
    throw new Error(`${path}: field "results" must be a non-empty list`);
  }
  return doc as unknown as SweepReportDoc;
}

/**
 * Read a `clip_fid.json` of either kind: a one-run report gives one entry, a several-model report
 * (`xgen-kit/clip-fid-models@1`) one entry per model, named by the model (its `run` field).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readSweepReports } from "./compare.ts";
 *
 * const path = await Deno.makeTempFile({ suffix: ".json" }); // as eval-models writes it
 * const results = [{ checkpoint: "model", guidance: 3, clip_score: 30, fid: 20 }];
 * const doc = { format: "xgen-kit/clip-fid-models@1", models: [{ name: "sd-a", results }, { name: "sd-b", results }] };
 * await Deno.writeTextFile(path, JSON.stringify(doc));
 * assert.deepEqual((await readSweepReports(path)).map((r) => r.run), ["sd-a", "sd-b"]); // one per model
 * await Deno.remove(path);
 * ```
 */
export async function readSweepReports(path: string): Promise<SweepReportDoc[]> {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new Error(`${path}: cannot read a JSON report (${(e as Error).message})`);
  }
  if (doc?.format !== "xgen-kit/clip-fid-models@1") return [await readSweepReport(path)];
  const models = doc.models as { name?: unknown; results?: unknown }[];
  if (!Array.isArray(models) || !models.length) {
    throw new Error(`${path}: field "models" must be a non-empty list`);
  }
  return models.map((m, i) => {
    if (typeof m?.name !== "string") {
      throw new Error(`${path}: field "models[${i}].name" must be a string`);
    }
    if (!Array.isArray(m.results) || !m.results.length) {
      throw new Error(`${path}: field "models[${i}].results" must be a non-empty list`);
    }
    return { ...doc, run: m.name, results: m.results } as unknown as SweepReportDoc;
  });
}

/**
 * Throw unless all reports were measured in the same spaces on the same prompts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { assertComparable, type SweepReportDoc } from "./compare.ts";
 *
 * const a = { run: "a", extractor: { name: "inception" }, clip_model: "ViT-B/32", prompts: { hash: "ab12" } };
 * const b = { ...a, run: "b", clip_model: "ViT-L/14" };
 * assert.throws(
 *   () => assertComparable([a, b] as unknown as SweepReportDoc[], ["runs/a", "runs/b"]),
 *   /runs\/b and runs\/a differ in their CLIP model \(ViT-L\/14 vs ViT-B\/32\)/,
 * );
 * ```
 */
export function assertComparable(reports: SweepReportDoc[], names: string[]): void {
  const checks: [string, (r: SweepReportDoc) => string, string][] = [
    ["FID extractor", (r) => r.extractor?.name, "use --extractor inception with one model file"],
    ["CLIP model", (r) => r.clip_model, "pass the same --clip judge to every run"],
    ["prompt set", (r) => r.prompts?.hash, "use the same --prompts, --n and --seed"],
  ];
  for (const [what, get, fix] of checks) {
    const first = get(reports[0]);
    const bad = reports.findIndex((r) => get(r) !== first);
    if (bad > 0) {
      throw new Error(
        `${names[bad]} and ${names[0]} differ in their ${what} (${get(reports[bad])} vs ` +
          `${first}), so their numbers are not comparable: ${fix}`,
      );
    }
  }
}

/**
 * CLIP score (x) vs FID (y), one curve per (run, checkpoint), points labelled by guidance scale,
 * bootstrap intervals as error bars. Checks {@link assertComparable} first.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { compareFigure, type SweepReportDoc } from "./compare.ts";
 *
 * const report = (run: string, fid: number) => ({
 *   format: "xgen-kit/clip-fid@1", run, extractor: { name: "inception" }, clip_model: "ViT-B/32",
 *   label: "FID", prompts: { spec: "text:p.txt", hash: "ab12", count: 2 },
 *   results: [{ checkpoint: "final", step: null, guidance: 3, clip_score: 30, clip_score_interval: [29, 31], fid, fid_interval: [fid - 1, fid + 1] }],
 * });
 * const fig = compareFigure([report("a", 20), report("b", 25)] as SweepReportDoc[], ["A", "B"]);
 * assert.deepEqual(fig.data.map((t) => [t.name, t.y]), [["A final", [20]], ["B final", [25]]]);
 * ```
 */
export function compareFigure(reports: SweepReportDoc[], names?: string[]): PlotlyFigure {
  const labels = names ?? reports.map((r) => r.run);
  assertComparable(reports, labels);
  const data: Record<string, unknown>[] = [];
  reports.forEach((r, i) => {
    const checkpoints = [...new Set(r.results.map((p) => p.checkpoint))];
    for (const c of checkpoints) {
      const pts = r.results.filter((p) => p.checkpoint === c).sort((a, b) =>
        a.guidance - b.guidance
      );
      const step = pts[0].step;
      // An SD folder's one curve ("model") is named by the model alone.
      const which = c === "model" ? "" : ` ${step === null ? "final" : `step ${step}`}`;
      data.push({
        type: "scatter",
        mode: "lines+markers+text",
        name: `${labels[i]}${which}`,
        x: pts.map((p) => p.clip_score),
        y: pts.map((p) => p.fid),
        text: pts.map((p) => String(p.guidance)),
        textposition: "top center",
        error_x: {
          type: "data",
          symmetric: false,
          array: pts.map((p) => Math.max(0, p.clip_score_interval[1] - p.clip_score)),
          arrayminus: pts.map((p) => Math.max(0, p.clip_score - p.clip_score_interval[0])),
          thickness: 1,
        },
        error_y: {
          type: "data",
          symmetric: false,
          array: pts.map((p) => Math.max(0, p.fid_interval[1] - p.fid)),
          arrayminus: pts.map((p) => Math.max(0, p.fid - p.fid_interval[0])),
          thickness: 1,
        },
      });
    }
  });
  return {
    data,
    layout: {
      title: { text: `CLIP score vs ${reports[0].label} (labels: guidance scale)` },
      xaxis: { title: { text: `CLIP score (${reports[0].clip_model})` } },
      yaxis: { title: { text: reports[0].label } },
    },
  } as PlotlyFigure;
}
