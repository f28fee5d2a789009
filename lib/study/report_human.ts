/**
 * The study report's human-evaluation section: a preference study designed over the bundled
 * example prompts (`data/parti_prompts_example.tsv`) for three variants of the run, answered by
 * simulated raters with an assumed truth table (no people are asked), then ingested and analysed
 * exactly as real Mechanical Turk answers would be: overall, per-category and per-challenge win
 * rates with prompt-cluster bootstrap intervals. What it measures is the kit's analysis: whether
 * its intervals cover the win rate the simulated raters were built to give.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { humanSection, humanStep } from "./report_human.ts";
 *
 * const r = await humanStep({ variants: ["a", "b", "c"], trials: 1, raters: 10, seed: 0, resamples: 100 });
 * const s = humanSection(r);
 * assert.equal(s.figures.length, 2); // per category, per challenge
 * assert.ok(s.headlines.every((h) => h.lo <= h.value && h.value <= h.hi));
 * ```
 * @module
 */
import {
  analyzeStudy,
  answersToCsv,
  designStudy,
  expectedWinRate,
  ingestResponses,
  loadPrompts,
  simulateAnswers,
  type StudySummary,
  type TruthTable,
  winRateFigure,
} from "../eval/human/mod.ts";
import type { PlotlyFigure } from "../plot/mod.ts";
import { formatNumber, type Headline, type StudySection } from "./report.ts";

/**
 * The bundled example prompts (43 prompts over PartiPrompts' categories and challenges).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { EXAMPLE_PROMPTS } from "./report_human.ts";
 *
 * assert.ok(EXAMPLE_PROMPTS.endsWith("data/parti_prompts_example.tsv"));
 * ```
 */
export const EXAMPLE_PROMPTS: string =
  new URL("../../data/parti_prompts_example.tsv", import.meta.url)
    .pathname;

/** Options of {@link humanStep}. */
export interface HumanStepOptions {
  /** Three variant names; the first is compared against each of the others. */
  variants: [string, string, string];
  trials: number;
  raters: number;
  seed: number;
  resamples: number;
  /** Prompts TSV (default {@link EXAMPLE_PROMPTS}). */
  prompts?: string;
  /** True preference of the first variant over the second and third (default 0.65, 0.55). */
  truth?: [number, number];
}

/** What the step keeps. */
export interface HumanStepResult {
  variants: string[];
  truth: TruthTable;
  /** Expected observed win rate (ties as half, lapses) per comparison key. */
  expected: Record<string, number>;
  tasks: number;
  prompts: number;
  summary: StudySummary;
  figures: { category: PlotlyFigure; challenge: PlotlyFigure };
}

/**
 * Design, simulate, ingest and analyse; see the module notes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { humanStep } from "./report_human.ts";
 *
 * const r = await humanStep({ variants: ["a", "b", "c"], trials: 1, raters: 5, seed: 0, resamples: 50 });
 * assert.deepEqual(Object.keys(r.truth), ["a vs b", "a vs c"]);
 * ```
 */
export async function humanStep(o: HumanStepOptions): Promise<HumanStepResult> {
  const { prompts } = await loadPrompts(o.prompts ?? EXAMPLE_PROMPTS);
  const [a, b, c] = o.variants;
  const [tb, tc] = o.truth ?? [0.65, 0.55];
  const truth: TruthTable = {
    [`${a} vs ${b}`]: { default: tb },
    [`${a} vs ${c}`]: { default: tc },
  };
  const tasks = designStudy(prompts, { models: o.variants, trials: o.trials, seed: o.seed });
  const answers = simulateAnswers(tasks, { seed: o.seed + 1, truth, raters: o.raters });
  const ingest = ingestResponses(answersToCsv(answers), { source: "simulated.csv", prompts });
  const summary = analyzeStudy(ingest, { seed: o.seed, bootstrapReps: o.resamples });
  return {
    variants: [...o.variants],
    truth,
    expected: {
      [`${a} vs ${b}`]: expectedWinRate(tb),
      [`${a} vs ${c}`]: expectedWinRate(tc),
    },
    tasks: tasks.length,
    prompts: prompts.length,
    summary,
    figures: {
      category: winRateFigure(summary, "category"),
      challenge: winRateFigure(summary, "challenge"),
    },
  };
}

/**
 * The section: per-category and per-challenge figures, the overall win rates.
 *
 * @example
 * ```ts
 * import { humanSection, type HumanStepResult } from "./report_human.ts";
 *
 * function example(r: HumanStepResult) { // from humanStep
 *   console.log(humanSection(r).measured); // says whether each interval covers the expected rate
 * }
 * ```
 */
export function humanSection(r: HumanStepResult): StudySection {
  const headlines: Headline[] = [];
  const covered: string[] = [];
  for (const c of r.summary.comparisons) {
    const o = c.sections.find((s) => s.kind === "overall")!;
    headlines.push({
      id: `human.${c.model_a}_vs_${c.model_b}`.replace(/[^A-Za-z0-9_.]+/g, "_"),
      label: `win rate ${c.model_a} vs ${c.model_b} (ties half)`,
      value: o.winRate,
      lo: o.interval.lo,
      hi: o.interval.hi,
      level: r.summary.options.confidence,
      method: o.interval.method === "bootstrap"
        ? `prompt-cluster bootstrap (${r.summary.options.bootstrapReps} resamples)`
        : "Wilson",
    });
    const want = r.expected[c.key] ?? r.expected[`${c.model_a} vs ${c.model_b}`];
    if (want !== undefined) {
      const inside = o.interval.lo <= want && want <= o.interval.hi;
      covered.push(
        `${c.model_a} vs ${c.model_b}: expected ${formatNumber(want)}, measured ` +
          `${formatNumber(o.winRate)} [${formatNumber(o.interval.lo)}, ` +
          `${formatNumber(o.interval.hi)}] (${inside ? "covered" : "NOT covered"})`,
      );
    }
  }
  const layout = (f: PlotlyFigure, title: string) => ({
    ...f,
    // Long category and challenge names are slanted under the bars: room for them.
    layout: { ...(f.layout ?? {}), title: { text: title }, margin: { b: 150 } },
  });
  return {
    id: "human",
    title: "6. Human evaluation (simulated raters)",
    figures: [
      {
        id: "human-category",
        figure: layout(r.figures.category, "Win rate per PartiPrompts category"),
      },
      {
        id: "human-challenge",
        figure: layout(r.figures.challenge, "Win rate per PartiPrompts challenge"),
      },
    ],
    headlines,
    found: "The study asked raters which of two images follows a PartiPrompts prompt better and " +
      "reported win rates overall, per category and per challenge.",
    measured: `${r.tasks} tasks over ${r.prompts} example prompts and variants ` +
      `${r.variants.join(", ")}, answered by simulated raters; ${covered.join("; ")}.`,
    caveats: [
      "The answers are simulated from an assumed truth table (with lapses, ties and rater " +
      "bias), not given by people and not computed from the variants' images: the section " +
      "checks the design and analysis pipeline, not the run.",
    ],
  };
}
