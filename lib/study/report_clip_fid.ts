/**
 * The study report's CLIP-FID section: one curve per kept checkpoint over the guidance scales
 * (x: CLIP score, y: Frechet distance, labels: the scale), from the points of a guidance sweep
 * (`guidanceSweep` of lib/eval/clip_fid, which sits beside this folder and so is run by the
 * study job and handed in as plain data). Degenerate curves are detected and said plainly.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clipFidSection, type ClipFidPoint } from "./report_clip_fid.ts";
 *
 * const e = (value: number) => ({ value, lo: value - 1, hi: value + 1, level: 0.95 });
 * const points: ClipFidPoint[] = [1, 3].flatMap((g) =>
 *   [10, 20].map((step) => ({ checkpoint: `ckpt-${step}`, step, guidance: g, n: 16,
 *     clipScore: e(20 + g + step / 10), fid: e(5 - g / 10) }))
 * );
 * const s = clipFidSection({ points, fidLabel: "FD (CLIP)", clipModel: "kit CLIP", guidance: 3 });
 * assert.equal(s.figures[0].figure.data.length, 2); // one curve per checkpoint
 * assert.equal(s.headlines[0].value, 25); // step 20 at guidance 3
 * ```
 * @module
 */
import { intervalErrorBars } from "../plot/mod.ts";
import { estimateHeadline, formatNumber, type StudySection } from "./report.ts";

/** An estimate with its interval, as the sweep reports it. */
export interface ClipFidEstimate {
  value: number;
  lo: number;
  hi: number;
  level: number;
}

/** One (checkpoint, scale) point of a sweep. */
export interface ClipFidPoint {
  checkpoint: string;
  step: number | null;
  guidance: number;
  n: number;
  clipScore: ClipFidEstimate;
  fid: ClipFidEstimate;
}

/** What the section needs from a sweep. */
export interface ClipFidStepResult {
  points: ClipFidPoint[];
  /** The distance's name ("Frechet distance in CLIP space..."). */
  fidLabel: string;
  /** The CLIP judge's name. */
  clipModel: string;
  /** The headline's guidance scale (the recipe's sampling scale). */
  guidance: number;
}

/** ", against <CLIP> and FID <FID> at <first checkpoint>" at the same scale, when there are two. */
function firstVsLast(
  curves: { label: string; points: ClipFidStepResult["points"] }[],
  guidance: number,
): string {
  if (curves.length < 2) return "";
  const p = curves[0].points.find((q) => q.guidance === guidance);
  if (!p) return "";
  return `, against ${formatNumber(p.clipScore.value)} and FID ${formatNumber(p.fid.value)} at ` +
    curves[0].label;
}

/**
 * The section: curves, the last checkpoint's CLIP score and FID at the headline scale (compared
 * with the first checkpoint's), caveats.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clipFidSection } from "./report_clip_fid.ts";
 *
 * const e = { value: 0, lo: 0, hi: 0, level: 0.95 };
 * const points = [1, 3].map((guidance) => ({ checkpoint: "final", step: 8, guidance, n: 4, clipScore: e, fid: e }));
 * const s = clipFidSection({ points, fidLabel: "FD", clipModel: "kit", guidance: 3 });
 * assert.match(s.caveats![0], /vertical line at x = 0/); // a degenerate figure is said plainly
 * ```
 */
export function clipFidSection(r: ClipFidStepResult): StudySection {
  const names = [...new Set(r.points.map((p) => p.checkpoint))];
  const stepOf = (name: string) => r.points.find((p) => p.checkpoint === name)?.step ?? Infinity;
  names.sort((a, b) => stepOf(a) - stepOf(b));
  const curves = names.map((name) => ({
    name,
    label: stepOf(name) === Infinity ? name : `step ${stepOf(name)}`,
    points: r.points.filter((p) => p.checkpoint === name).sort((a, b) => a.guidance - b.guidance),
  }));
  const figure = {
    data: curves.map((c) => ({
      type: "scatter",
      mode: "lines+markers+text",
      name: c.label,
      x: c.points.map((p) => p.clipScore.value),
      y: c.points.map((p) => p.fid.value),
      text: c.points.map((p) => String(p.guidance)),
      textposition: "top center",
      error_x: intervalErrorBars(c.points.map((p) => p.clipScore), { thickness: 1 }),
      error_y: intervalErrorBars(c.points.map((p) => p.fid), { thickness: 1 }),
    })),
    layout: {
      title: { text: `CLIP score vs ${r.fidLabel} (labels: guidance scale)` },
      xaxis: { title: { text: `CLIP score (${r.clipModel})` } },
      yaxis: { title: { text: r.fidLabel } },
    },
  };
  const last = curves.at(-1)!;
  const at = last.points.find((p) => p.guidance === r.guidance) ?? last.points.at(-1)!;
  const n = at.n;
  const caveats: string[] = [];
  const all = r.points.map((p) => p.clipScore.value);
  if (all.every((v) => Math.abs(v) < 1e-6)) {
    caveats.push(
      "Every CLIP score is 0: the curves are a vertical line at x = 0, because the judge's " +
        "image and text embeddings are orthogonal (or zero) for these images.",
    );
  }
  const flat = curves.filter((c) => {
    const v = c.points.map((p) => p.clipScore.value);
    const spread = Math.max(...v) - Math.min(...v);
    const half = c.points.reduce((a, p) => a + (p.clipScore.hi - p.clipScore.lo) / 2, 0) /
      c.points.length;
    return spread < 0.25 * half;
  });
  if (flat.length) {
    caveats.push(
      `Guidance moves the CLIP score by less than a quarter of its interval on ` +
        `${flat.length} of ${curves.length} curves (each is nearly a point): a short tiny run ` +
        "barely uses the caption, so the conditional and unconditional predictions almost " +
        "coincide and classifier-free guidance has little to amplify.",
    );
  }
  if (n < 1000) {
    caveats.push(
      `n = ${n} images per point: Frechet distances from so few images are biased upward and ` +
        "compare only within this report, not with published FIDs.",
    );
  }
  return {
    id: "clip_fid",
    title: "3. CLIP score vs FID over guidance, per checkpoint",
    figures: [{
      id: "clip-fid-curves",
      figure,
      caption: "One curve per kept checkpoint; error bars: 95% bootstrap intervals.",
    }],
    headlines: [
      estimateHeadline(
        "clip_fid.clip_score",
        `CLIP score, ${last.label}, guidance ${at.guidance}`,
        at.clipScore,
        "percentile bootstrap over images",
      ),
      estimateHeadline(
        "clip_fid.fid",
        `${r.fidLabel}, ${last.label}, guidance ${at.guidance}`,
        at.fid,
        "percentile bootstrap over images",
      ),
    ],
    tables: [{
      caption: `${r.fidLabel} per checkpoint and scale (95% bootstrap interval)`,
      header: ["checkpoint", ...curves[0].points.map((p) => `guidance ${p.guidance}`)],
      rows: curves.map((c) => [
        c.label,
        ...c.points.map((p) =>
          `${formatNumber(p.fid.value)} [${formatNumber(p.fid.lo)}, ${formatNumber(p.fid.hi)}]`
        ),
      ]),
    }],
    found: "The study traced CLIP score against FID over guidance scales for checkpoints of one " +
      "run: more guidance raises the CLIP score and, past a point, worsens FID.",
    measured: `${curves.length} checkpoints x ${curves[0].points.length} scales, ${n} images ` +
      `each; the last checkpoint scores ${formatNumber(at.clipScore.value)} ` +
      `[${formatNumber(at.clipScore.lo)}, ${formatNumber(at.clipScore.hi)}] at guidance ` +
      `${at.guidance} (FID ${formatNumber(at.fid.value)})${firstVsLast(curves, at.guidance)}.`,
    caveats,
  };
}
