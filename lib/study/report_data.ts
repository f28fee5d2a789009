/**
 * The study report's data section: caption statistics of the run's training shards (the study
 * counted "dragon" 411 and "astronaut" 86 times per 1M LAION captions): the rank-frequency
 * curve and chosen words per million captions with Wilson intervals.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildShapesWorldShards } from "../data/mod.ts";
 * import { dataSection, dataStep } from "./report_data.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await buildShapesWorldShards({ outDir: dir, seed: 0, count: 40, perShard: 20, size: 16, split: "train" });
 * const step = await dataStep(dir, { words: ["circle", "dragon"] });
 * const s = dataSection(step);
 * assert.equal(step.summary.captions, 40);
 * assert.ok(s.headlines.every((h) => h.lo <= h.value && h.value <= h.hi));
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */
import {
  type CaptionSummary,
  captionSummary,
  datasetCaptionStats,
  rankFrequencyFigure,
} from "../data/caption_stats.ts";
import type { PlotlyFigure } from "../plot/mod.ts";
import { formatNumber, type StudySection } from "./report.ts";

/** What the data step keeps: the summary and the figure. */
export interface DataStepResult {
  summary: CaptionSummary;
  figure: PlotlyFigure;
}

/**
 * Caption statistics of the shards in `shards` (a folder of `NNNNN.tar` + `.parquet`).
 *
 * @example
 * ```ts
 * import { dataStep } from "./report_data.ts";
 *
 * async function example(shards: string) { // e.g. "runs/default/data/train"
 *   const r = await dataStep(shards, { words: ["circle", "dragon"] });
 *   console.log(r.summary.words); // per 1M captions with Wilson and Poisson intervals
 * }
 * ```
 */
export async function dataStep(
  shards: string,
  o: { words: string[]; top?: number },
): Promise<DataStepResult> {
  const r = await datasetCaptionStats(shards);
  const summary = captionSummary(r, { source: shards, words: o.words, top: o.top ?? 20 });
  const figure = rankFrequencyFigure(r.stats, { words: o.words });
  return { summary, figure };
}

/**
 * The section: the figure, each chosen word per 1M captions with its Wilson interval;
 * `shapesWorld: false` for real shards (no shapes-world wording or caveat).
 *
 * @example
 * ```ts
 * import { dataSection, type DataStepResult } from "./report_data.ts";
 *
 * function example(r: DataStepResult) { // from dataStep
 *   console.log(dataSection(r).headlines.map((h) => h.label));
 * }
 * ```
 */
export function dataSection(
  r: DataStepResult,
  o: { shapesWorld?: boolean } = {},
): StudySection {
  // The embedded default's shards are the shapes world; a study on real shards says neither.
  const shapes = o.shapesWorld ?? true;
  const s = r.summary;
  const headlines = s.words.map((w) => ({
    id: `data.${w.word}_per_million`,
    label: `"${w.word}" per 1M captions`,
    value: w.perMillion,
    lo: w.wilson[0],
    hi: w.wilson[1],
    level: 0.95,
    method: "Wilson score interval of captions containing the word",
  }));
  const first = s.words[0];
  const zero = s.words.filter((w) => w.captions === 0).map((w) => `"${w.word}"`);
  return {
    id: "data",
    title: "1. Data: caption statistics",
    figures: [{
      id: "data-rank-frequency",
      figure: r.figure,
      caption: "Rank vs captions containing the word per 1M (log-log); chosen words marked.",
    }],
    headlines,
    tables: [{
      caption: "Most frequent words",
      header: ["rank", "word", "per 1M captions", "95% Wilson"],
      rows: s.top.slice(0, 10).map((w) => [
        w.rank ?? "",
        w.word,
        formatNumber(w.perMillion),
        `${formatNumber(w.wilson[0])} - ${formatNumber(w.wilson[1])}`,
      ]),
    }],
    found: 'The study counts how often a concept appears in LAION captions ("dragon" 411 and ' +
      '"astronaut" 86 times per 1M) to explain what the model draws well.',
    measured: `The run's ${s.captions} ${shapes ? "shapes-world " : ""}captions hold ` +
      `${s.vocabulary} distinct words` +
      (first
        ? `; "${first.word}" appears in ${formatNumber(first.perMillion)} per 1M ` +
          `(${first.captions} captions).`
        : "."),
    caveats: [
      ...(shapes
        ? [
          "The embedded data is a synthetic shapes world with a vocabulary of a few dozen " +
          "words, so the rank-frequency curve is short and flat, not LAION's long tail.",
        ]
        : []),
      ...(zero.length
        ? [`${zero.join(", ")} never occur: the interval is the Wilson bound for 0 captions.`]
        : []),
    ],
  };
}
