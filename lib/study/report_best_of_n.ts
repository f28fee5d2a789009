/**
 * The study report's best-of-N section: M candidates per prompt from the run's ONNX export,
 * selected by the run's own CLIP score, judged by a scorer that did not select (the pixel
 * readback of colour and shape, `pixelJudge`); the expected best-of-N score for N = 1..M and the
 * judge's win rate of the pick against a random candidate, each with a percentile bootstrap
 * interval over prompts (`bestOfNCurve`). With a `source` ({@link StudyModelSource}) the
 * candidates come from its SD folder, its CLIP towers select, and its `judge` (when given)
 * judges; without a judge only the selector's curve is shown.
 *
 * @example
 * ```ts
 * import { bestOfNSection, bestOfNStep } from "./report_best_of_n.ts";
 *
 * async function example() {
 *   const r = await bestOfNStep({ runDir: "runs/tiny", prompts: 8, candidates: 8, guidance: 3,
 *     steps: 8, scheduler: "dpmpp_2m", seed: 0, resamples: 1000 });
 *   console.log(bestOfNSection(r).headlines);
 * }
 * ```
 * @module
 */
import { txt2img } from "../onnx/sd_pipeline.ts";
import { bestOfN } from "../inference/best_of_n.ts";
import {
  type BestOfNCurve,
  bestOfNCurve,
  type BestOfNPool,
  judgeBestOfNPools,
} from "../inference/best_of_n_stats.ts";
import { imageGrid, intervalErrorBars } from "../plot/mod.ts";
import { estimateHeadline, formatNumber, type StudySection } from "./report.ts";
import { imageFromJson, imageToJson, type JsonImage } from "./report_steps.ts";
import { openStudyModels, type StudyModelSource } from "./report_source.ts";

/** Options of {@link bestOfNStep}. */
export interface BestOfNStepOptions {
  /** The kit run whose ONNX export is sampled; not read when `source` is given. */
  runDir: string;
  /**
   * Sample, select and judge with these instead of the run's export, own CLIP, shapes-world
   * prompts and pixel judge (see {@link StudyModelSource}).
   */
  source?: StudyModelSource;
  prompts: number;
  /** M: candidates per prompt. */
  candidates: number;
  guidance: number;
  steps: number;
  scheduler: string;
  seed: number;
  resamples: number;
}

/** What the step keeps. */
export interface BestOfNStepResult {
  prompts: string[];
  /** What selected ("the run's CLIP score", "CLIP towers DIR"). */
  selector: string;
  /** What judged; null when no second scorer was given. */
  judge: string | null;
  /** Per prompt: the selector's and (with a judge) the judge's score of every candidate. */
  pools: { selector: number[]; judge?: number[] }[];
  curve: BestOfNCurve;
  /** The first prompts' candidates (rows), winner framed by nothing: see `winners`. */
  grid: JsonImage;
  /** Winning candidate index per prompt of the grid. */
  winners: number[];
}

/**
 * Generate, select, judge and summarise; see the module notes.
 *
 * @example
 * ```ts
 * import { bestOfNStep } from "./report_best_of_n.ts";
 *
 * async function example(runDir: string) { // a run trained by trainRun
 *   const r = await bestOfNStep({ runDir, prompts: 12, candidates: 8, guidance: 3, steps: 8,
 *     scheduler: "dpmpp_2m", seed: 0, resamples: 1000 });
 *   console.log(r.curve.points.at(-1)?.winRate); // the judge's win rate of best of 8
 * }
 * ```
 */
export async function bestOfNStep(o: BestOfNStepOptions): Promise<BestOfNStepResult> {
  const m = await openStudyModels({
    runDir: o.runDir,
    source: o.source,
    prompts: o.prompts,
    judge: true,
  });
  try {
    const { pipe, prompts, size, judge } = m;
    const picks = await bestOfN({
      generator: (g) => txt2img(pipe, { ...g, height: size?.height, width: size?.width }),
      scorer: m.clip,
      prompts,
      candidates: o.candidates,
      guidance: o.guidance,
      steps: o.steps,
      scheduler: o.scheduler,
      seed: o.seed,
      keepCandidates: true,
    });
    const pools: BestOfNPool[] = judge
      ? await judgeBestOfNPools(picks, judge)
      : picks.map((p) => ({ selector: p.scores }));
    const curve = bestOfNCurve(pools, { resamples: o.resamples, seed: o.seed });
    const rows = picks.slice(0, 4);
    const grid = imageGrid(rows.flatMap((p) => p.candidates!), { cols: o.candidates, pad: 1 });
    return {
      prompts,
      selector: m.clipLabel,
      judge: m.judgeLabel,
      pools: pools.map((p) => ({
        selector: Array.from(p.selector),
        ...(p.judge ? { judge: Array.from(p.judge) } : {}),
      })),
      curve,
      grid: imageToJson(grid),
      winners: rows.map((p) => p.winner),
    };
  } finally {
    await m.release();
  }
}

/**
 * The section: both curves against N, the headlines at N = M; without a judge (`judge` null)
 * the selector's curve and headline only, with a caveat that no second scorer was given.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bestOfNCurve } from "../inference/best_of_n_stats.ts";
 * import { bestOfNSection } from "./report_best_of_n.ts";
 *
 * const pools = [{ selector: [1, 2, 3], judge: [0, 0.5, 1] }, { selector: [3, 1, 2], judge: [1, 0, 0.5] }];
 * const curve = bestOfNCurve(pools, { resamples: 50 });
 * const grid = { width: 1, height: 1, rgbBase64: btoa("\0\0\0") };
 * const s = bestOfNSection({ prompts: ["a", "b"], selector: "s", judge: "j", pools, curve, grid, winners: [2] });
 * assert.equal(s.headlines[0].value, 5 / 6); // best of 3 is the judge's favourite in both pools
 *
 * // Without a second scorer: the selector's figure and headline only, and a caveat saying so.
 * const bare = pools.map((p) => ({ selector: p.selector }));
 * const b = bestOfNSection({
 *   prompts: ["a", "b"], selector: "s", judge: null, pools: bare,
 *   curve: bestOfNCurve(bare, { resamples: 50 }), grid, winners: [2],
 * });
 * assert.deepEqual(b.headlines.map((x) => x.id), ["best_of_n.selector_score"]);
 * assert.deepEqual(b.figures.map((f) => f.id), ["best-of-n-curve"]);
 * assert.match(b.caveats![0], /No second scorer was given/);
 * ```
 */
export function bestOfNSection(r: BestOfNStepResult): StudySection {
  const pts = r.curve.points;
  // Two figures rather than one with a second y axis: each keeps its own scale in every
  // renderer (the static SVG draws one y axis).
  const curve = (
    name: string,
    es: { value: number; lo: number; hi: number }[],
    title: string,
    yTitle: string,
    range?: number[],
  ) => ({
    data: [{
      type: "scatter",
      mode: "lines+markers",
      name,
      x: pts.map((p) => p.n),
      y: es.map((e) => e.value),
      error_y: intervalErrorBars(es),
    }],
    layout: {
      title: { text: title },
      xaxis: { title: { text: "N (candidates per pick)" } },
      yaxis: { title: { text: yTitle }, ...(range ? { range } : {}) },
    },
  });
  const score = pts.map((p) => p.score);
  // Judge figures only where a judge scored every pool (the curve says whether it did).
  const judge = r.judge !== null && r.curve.judged ? r.judge : null;
  const figures = [
    {
      id: "best-of-n-curve",
      figure: curve(
        `selector: ${r.selector}`,
        score,
        `Best of N by ${r.selector}, N = 1..${r.curve.maxN} (${r.curve.prompts} prompts)`,
        "expected selector score of the pick",
      ),
    },
  ];
  if (judge !== null) {
    figures.push({
      id: "best-of-n-judge",
      figure: curve(
        `judge: ${judge}`,
        pts.map((p) => p.winRate!),
        `The pick against best of 1, judged by ${judge}`,
        "judge win rate (ties half)",
        [0, 1],
      ),
    });
  }
  const top = pts.at(-1)!;
  const method = `percentile bootstrap over prompts (${top.score.resamples} resamples)`;
  const h = (id: string, label: string, e: typeof top.score) =>
    estimateHeadline(id, label, e, method);
  const m = top.n;
  const gain = top.score.value - pts[0].score.value;
  const caveats: string[] = [];
  const judgeSpread = judge !== null && r.pools.every((p) => new Set(p.judge).size === 1);
  if (judge === null) {
    caveats.push(
      "No second scorer was given (a judge that did not select), so only the selector's own " +
        "score is shown, and it rises with N by construction: the pick's selection bias is not " +
        "checked.",
    );
  }
  if (judgeSpread) {
    caveats.push(
      "The judge gives every candidate of each prompt the same score, so its win rate is 0.5 " +
        "at every N by construction.",
    );
  }
  return {
    id: "best_of_n",
    title: "4. Best of N (rejection sampling)",
    figures,
    images: [{
      id: "best-of-n-candidates",
      image: imageFromJson(r.grid),
      caption: `Candidates of the first prompts (rows: ${
        r.prompts.slice(0, r.winners.length).join("; ")
      }); the selector picked columns ${r.winners.join(", ")} (0-based).`,
      scale: 3,
    }],
    headlines: [
      ...(judge === null ? [] : [
        h("best_of_n.judge_win_rate", `judge win rate of best of ${m} vs best of 1`, top.winRate!),
      ]),
      h("best_of_n.selector_score", `selector score of best of ${m}`, top.score),
    ],
    found: "The study picked one image out of 32 candidates per prompt by PickScore and found " +
      "raters preferred the picks; a scorer that did not select is needed to see past the " +
      "selector's own bias.",
    measured: `Best of ${m} by ${r.selector} raises the selector score by ${formatNumber(gain)} ` +
      (judge === null
        ? "over best of 1; no judge scored the picks."
        : `over best of 1; the judge (${judge}) prefers the pick ${
          formatNumber(100 * top.winRate!.value)
        }% of the time [${formatNumber(100 * top.winRate!.lo)}, ${
          formatNumber(100 * top.winRate!.hi)
        }].`),
    caveats,
  };
}
