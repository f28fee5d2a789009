/**
 * The CLIP-score vs FID figure and the two output files every sweep writes, shared by the one-run
 * sweep (`sweep.ts`) and the several-model sweep (`models_sweep.ts`): they differ only in how
 * their points split into curves and in the JSON report.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clipFidFigure } from "./sweep_figure.ts";
 *
 * const fig = clipFidFigure(
 *   { settings: { n: 8, scheduler: "ddim", steps: 4 }, clipModel: "clip", fidLabel: "FD" },
 *   [{ name: "a", points: [] }],
 * );
 * assert.equal(fig.data.length, 1);
 * ```
 * @module
 */
import { intervalErrorBars, type PlotlyFigure, writePlotlyHtml } from "../../plot/mod.ts";
import { writeJsonAtomic } from "../../util/atomic.ts";
import type { Estimate } from "./bootstrap.ts";

/** A point of a curve: x = CLIP score, y = FID, labelled by its guidance scale. */
export interface CurvePoint {
  guidance: number;
  clipScore: Estimate;
  fid: Estimate;
}

/** One curve of the figure: its legend name and its points. */
export interface SweepCurve {
  name: string;
  points: CurvePoint[];
}

/**
 * One curve per checkpoint: its points in the order given, named by `name`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { curvesByCheckpoint } from "./sweep_figure.ts";
 *
 * const est = { value: 1, lo: 0, hi: 2, level: 0.95, resamples: 10 };
 * const pt = (checkpoint: string, guidance: number) =>
 *   ({ checkpoint, guidance, clipScore: est, fid: est });
 * const curves = curvesByCheckpoint(
 *   [{ name: "a" }, { name: "b" }],
 *   [pt("a", 1), pt("b", 1), pt("a", 2)],
 *   (c) => `ckpt ${c.name}`,
 * );
 * assert.deepEqual(curves.map((c) => [c.name, c.points.map((p) => p.guidance)]), [
 *   ["ckpt a", [1, 2]],
 *   ["ckpt b", [1]],
 * ]);
 * ```
 */
export function curvesByCheckpoint<C extends { name: string }, P extends CurvePoint>(
  checkpoints: C[],
  points: (P & { checkpoint: string })[],
  name: (c: C) => string,
): SweepCurve[] {
  return checkpoints.map((c) => ({
    name: name(c),
    points: points.filter((p) => p.checkpoint === c.name),
  }));
}

/** What the figure's title and axes name: the sweep's settings, CLIP judge and distance. */
export interface SweepFigureLabels {
  settings: { n: number; scheduler: string; steps: number };
  clipModel: string;
  fidLabel: string;
}

/**
 * The study's figure: x = CLIP score, y = FID, one line per curve, points labelled by the guidance
 * scale, bootstrap intervals as error bars.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clipFidFigure } from "./sweep_figure.ts";
 *
 * const est = (value: number) => ({ value, lo: value - 1, hi: value + 1, level: 0.95, resamples: 10 });
 * const fig = clipFidFigure(
 *   { settings: { n: 8, scheduler: "ddim", steps: 4 }, clipModel: "clip", fidLabel: "FD" },
 *   [{ name: "step 10", points: [{ guidance: 2, clipScore: est(30), fid: est(5) }] }],
 * );
 * assert.deepEqual(fig.data[0].x, [30]);
 * assert.deepEqual(fig.data[0].text, ["2"]);
 * ```
 */
export function clipFidFigure(r: SweepFigureLabels, curves: SweepCurve[]): PlotlyFigure {
  const data = curves.map(({ name, points: pts }) => ({
    type: "scatter",
    mode: "lines+markers+text",
    name,
    x: pts.map((p) => p.clipScore.value),
    y: pts.map((p) => p.fid.value),
    text: pts.map((p) => String(p.guidance)),
    textposition: "top center",
    hovertemplate:
      "guidance %{text}<br>CLIP %{x:.2f}<br>FD %{y:.3f}<extra>%{fullData.name}</extra>",
    // Bootstrap FID intervals can sit above the estimate: clamp the bar lengths at 0.
    error_x: intervalErrorBars(pts.map((p) => p.clipScore), { thickness: 1 }),
    error_y: intervalErrorBars(pts.map((p) => p.fid), { thickness: 1 }),
  }));
  return {
    data,
    layout: {
      title: {
        text: `CLIP score vs ${r.fidLabel} (n=${r.settings.n}, ${r.settings.scheduler} ` +
          `${r.settings.steps} steps; labels: guidance scale)`,
      },
      xaxis: { title: { text: `CLIP score (${r.clipModel})` } },
      yaxis: { title: { text: r.fidLabel } },
    },
  };
}

/**
 * Write a sweep's `clip_fid.json` (the report) and `clip_fid.html` (the figure) into `outDir`;
 * returns their paths.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clipFidFigure, writeClipFidOutputs } from "./sweep_figure.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const fig = clipFidFigure(
 *   { settings: { n: 8, scheduler: "ddim", steps: 4 }, clipModel: "clip", fidLabel: "FD" },
 *   [],
 * );
 * const { json } = await writeClipFidOutputs(dir, { results: [] }, fig);
 * assert.deepEqual(JSON.parse(await Deno.readTextFile(json)), { results: [] });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeClipFidOutputs(
  outDir: string,
  report: Record<string, unknown>,
  figure: PlotlyFigure,
): Promise<{ json: string; html: string }> {
  await Deno.mkdir(outDir, { recursive: true });
  const json = `${outDir}/clip_fid.json`, html = `${outDir}/clip_fid.html`;
  await writeJsonAtomic(json, report);
  await writePlotlyHtml(html, figure, { title: "CLIP score vs FID" });
  return { json, html };
}
