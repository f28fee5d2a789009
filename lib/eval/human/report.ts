/**
 * Figures and the HTML report of a preference study: bar charts of win rates with interval error
 * bars and a 50% line (overall, per category, per challenge, one colour per comparison, like the
 * study's figure), Bradley-Terry strengths, and tables of numbers, raters and exclusions.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reportHtml, studyFigures } from "./report.ts";
 * import { analyzeStudy, answersToCsv, designStudy, ingestResponses } from "./mod.ts";
 * import { loadPrompts, simulateAnswers } from "./mod.ts";
 *
 * const { prompts } = await loadPrompts("data/parti_prompts_example.tsv");
 * const tasks = designStudy(prompts, { models: ["a", "b"], trials: 1, seed: 0 });
 * const sim = simulateAnswers(tasks, { seed: 0, truth: { "a vs b": { default: 0.6 } } });
 * const summary = analyzeStudy(ingestResponses(answersToCsv(sim), { source: "a.csv" }), {
 *   seed: 0,
 * });
 * // In a notebook: Deno.jupyter.display(plotlyMime(figs.category), { raw: true })
 * const figs = studyFigures(summary);
 * assert.equal(figs.category.data.length, 1); // one bar trace per comparison
 * assert.ok(reportHtml(summary).includes("<html")); // write it with writeTextAtomic
 * ```
 * @module
 */
import { plotlyDiv, type PlotlyFigure } from "../../plot/mod.ts";
import type { Analysis, SectionKind, StudySummary } from "./analyze.ts";
import { describeUnknownPrompts } from "./ingest.ts";

const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];

/**
 * Win-rate bars (percent) with error bars for every comparison in one kind of section.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { winRateFigure } from "./report.ts";
 * import { analyzeJudgements, answersToCsv, designStudy, ingestResponses } from "./mod.ts";
 * import { loadPrompts, simulateAnswers } from "./mod.ts";
 *
 * const { prompts } = await loadPrompts("data/parti_prompts_example.tsv");
 * const tasks = designStudy(prompts, { models: ["a", "b"], trials: 1, seed: 0 });
 * const sim = simulateAnswers(tasks, { seed: 0, truth: { "a vs b": { default: 0.6 } } });
 * const { judgements } = ingestResponses(answersToCsv(sim), { source: "a.csv" });
 * const fig = winRateFigure(analyzeJudgements(judgements, { seed: 0 }), "category");
 * assert.equal(fig.data[0].type, "bar");
 * ```
 */
export function winRateFigure(analysis: Analysis, kind: SectionKind): PlotlyFigure {
  const names = [
    ...new Set(
      analysis.comparisons.flatMap((c) =>
        c.sections.filter((s) => s.kind === kind).map((s) => s.name)
      ),
    ),
  ];
  const data = analysis.comparisons.map((c, i) => {
    const by = new Map(c.sections.filter((s) => s.kind === kind).map((s) => [s.name, s]));
    const pick = (f: (s: NonNullable<ReturnType<typeof by.get>>) => number) =>
      names.map((n) => (by.has(n) ? f(by.get(n)!) : null));
    return {
      type: "bar",
      name: c.key,
      x: kind === "overall" ? [c.key] : names,
      y: pick((s) => 100 * s.winRate),
      marker: { color: COLOURS[i % COLOURS.length] },
      error_y: {
        type: "data",
        symmetric: false,
        array: pick((s) => 100 * (s.interval.hi - s.winRate)),
        arrayminus: pick((s) => 100 * (s.winRate - s.interval.lo)),
        thickness: 1.5,
        width: 3,
      },
      customdata: pick((s) => s.n),
      hovertemplate: "%{x}: %{y:.1f}% (n=%{customdata})<extra>%{fullData.name}</extra>",
    };
  });
  const level = Math.round(analysis.options.confidence * 100);
  const title = kind === "overall" ? "Overall" : `By ${kind}`;
  return {
    data,
    layout: {
      title: {
        text: `${title}: win rate of model A, ties as half (${level}% ${analysis.options.method})`,
      },
      barmode: "group",
      yaxis: { title: { text: "win rate (%)" }, range: [0, 100] },
      xaxis: { tickangle: kind === "overall" ? 0 : -30, automargin: true },
      shapes: [{
        type: "line",
        xref: "paper",
        x0: 0,
        x1: 1,
        y0: 50,
        y1: 50,
        line: { dash: "dash", color: "#444", width: 1 },
      }],
      margin: { t: 60, r: 20 },
      legend: { orientation: "h", y: -0.25 },
    },
  };
}

/**
 * Bradley-Terry strengths (log scale) with bootstrap intervals; null with two models.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bradleyTerryFigure } from "./report.ts";
 * import { analyzeJudgements, answersToCsv, designStudy, ingestResponses } from "./mod.ts";
 * import { loadPrompts, simulateAnswers } from "./mod.ts";
 *
 * const { prompts } = await loadPrompts("data/parti_prompts_example.tsv");
 * const tasks = designStudy(prompts, { models: ["a", "b"], trials: 1, seed: 0 });
 * const sim = simulateAnswers(tasks, { seed: 0, truth: { "a vs b": { default: 0.6 } } });
 * const { judgements } = ingestResponses(answersToCsv(sim), { source: "a.csv" });
 * assert.equal(bradleyTerryFigure(analyzeJudgements(judgements, { seed: 0 })), null); // < 3 models
 * ```
 */
export function bradleyTerryFigure(analysis: Analysis): PlotlyFigure | null {
  const bt = analysis.bradleyTerry;
  if (!bt) return null;
  const s = [...bt.strengths].sort((a, b) => b.strength - a.strength);
  return {
    data: [{
      type: "bar",
      x: s.map((v) => v.model),
      y: s.map((v) => v.strength),
      error_y: {
        type: "data",
        symmetric: false,
        array: s.map((v) => v.hi - v.strength),
        arrayminus: s.map((v) => v.strength - v.lo),
      },
      marker: { color: "#555" },
    }],
    layout: {
      title: { text: `Bradley-Terry strength (geometric mean 1, ${bt.reps} prompt bootstraps)` },
      yaxis: { type: "log", title: { text: "strength" } },
      margin: { t: 60, r: 20 },
    },
  };
}

/** The report's figures. */
export interface StudyFigures {
  overall: PlotlyFigure;
  category: PlotlyFigure;
  challenge: PlotlyFigure;
  bradleyTerry: PlotlyFigure | null;
}

/**
 * All figures of a study.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { studyFigures } from "./report.ts";
 * import { analyzeJudgements, answersToCsv, designStudy, ingestResponses } from "./mod.ts";
 * import { loadPrompts, simulateAnswers } from "./mod.ts";
 *
 * const { prompts } = await loadPrompts("data/parti_prompts_example.tsv");
 * const tasks = designStudy(prompts, { models: ["a", "b"], trials: 1, seed: 0 });
 * const sim = simulateAnswers(tasks, { seed: 0, truth: { "a vs b": { default: 0.6 } } });
 * const { judgements } = ingestResponses(answersToCsv(sim), { source: "a.csv" });
 * const { overall, category, challenge } = studyFigures(
 *   analyzeJudgements(judgements, { seed: 0 }),
 * );
 * assert.ok(overall && category && challenge);
 * ```
 */
export function studyFigures(analysis: Analysis): StudyFigures {
  return {
    overall: winRateFigure(analysis, "overall"),
    category: winRateFigure(analysis, "category"),
    challenge: winRateFigure(analysis, "challenge"),
    bradleyTerry: bradleyTerryFigure(analysis),
  };
}

function esc(s: unknown): string {
  return String(s).replace(
    /[&<>"]/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!,
  );
}

function pct(x: number): string {
  return Number.isFinite(x) ? (100 * x).toFixed(1) : "-";
}

function num(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return "-";
  return x !== 0 && Math.abs(x) < 1e-3 ? x.toExponential(1) : x.toFixed(digits);
}

function table(header: string[], rows: unknown[][]): string {
  return `<table><thead><tr>${header.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead>` +
    `<tbody>${
      rows.map((r) => `<tr>${r.map((v) => `<td>${esc(v)}</td>`).join("")}</tr>`).join("")
    }` +
    `</tbody></table>`;
}

/**
 * Why the headline intervals are what they are (one or two sentences, for reports).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { intervalNote } from "./report.ts";
 * import { analyzeJudgements } from "./analyze.ts";
 * import { ingestResponses } from "./ingest.ts";
 *
 * const text =
 *   "prompt,model_a,model_b,left,choice,rater\na cat,x,y,x,left,r1\na dog,x,y,y,left,r2\n";
 * const a = analyzeJudgements(ingestResponses(text, { source: "a.csv" }).judgements, { seed: 0 });
 * assert.match(intervalNote(a), /^Error bars: 95% prompt-cluster bootstrap \(2000 replicates/);
 * ```
 */
export function intervalNote(analysis: Analysis): string {
  const o = analysis.options;
  const level = `${Math.round(o.confidence * 100)}%`;
  const wilsonBeside = o.bootstrapReps > 0
    ? "The Wilson interval, which treats answers as independent, is shown beside it."
    : "";
  if (o.method === "bootstrap") {
    const single = analysis.comparisons.some((c) =>
      c.sections.some((s) => s.interval.method === "wilson")
    );
    return `Error bars: ${level} prompt-cluster bootstrap (${o.bootstrapReps} replicates, ` +
      `seed ${o.seed}), which resamples whole prompts: answers to the same prompt are correlated ` +
      `(the same pair of images, and prompts differ in difficulty), so treating them as ` +
      `independent would understate the uncertainty. ${wilsonBeside}` +
      (single
        ? " Sections with a single prompt show the Wilson interval, marked (wilson): one prompt " +
          "has no spread to resample."
        : "");
  }
  return `Error bars: ${level} Wilson score interval, chosen with --interval wilson. It treats ` +
    `every answer as independent, but answers to the same prompt are correlated, so it ` +
    `understates the uncertainty; the prompt-cluster bootstrap ` +
    (o.bootstrapReps > 0 ? "is shown beside it." : "was skipped (0 replicates).");
}

/**
 * Plain-text table of the win rates (for logs and notebooks): the headline interval with Wilson
 * beside it, then a line about answers whose prompt is not in the prompts file, if any.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { summaryText } from "./report.ts";
 * import { analyzeJudgements } from "./analyze.ts";
 * import { ingestResponses } from "./ingest.ts";
 *
 * const text =
 *   "prompt,model_a,model_b,left,choice,rater\na cat,x,y,x,left,r1\na dog,x,y,y,left,r2\n";
 * const a = analyzeJudgements(ingestResponses(text, { source: "a.csv" }).judgements, { seed: 0 });
 * assert.match(summaryText(a), /^x vs y \| overall:overall \| n=2 W\/T\/L=1\/0\/1/);
 * ```
 */
export function summaryText(
  analysis: Analysis | StudySummary,
  kinds: SectionKind[] = ["overall"],
): string {
  const lines: string[] = [];
  for (const c of analysis.comparisons) {
    for (const s of c.sections.filter((s) => kinds.includes(s.kind))) {
      const wilson = s.interval.method === "wilson"
        ? ""
        : ` Wilson [${pct(s.wilson.lo)}, ${pct(s.wilson.hi)}]`;
      lines.push(
        `${c.key} | ${s.kind}:${s.name} | n=${s.n} W/T/L=${s.wins}/${s.ties}/${s.losses} | ` +
          `win ${pct(s.winRate)}% [${pct(s.interval.lo)}, ${pct(s.interval.hi)}] ` +
          `(${s.interval.method})${wilson} | no ties ${pct(s.winRateNoTies)}% | ` +
          `p_holm=${num(s.pHolm)}`,
      );
    }
  }
  const unknown = "unknownPrompts" in analysis ? analysis.unknownPrompts : null;
  if (unknown && unknown.answers > 0) lines.push(`note: ${describeUnknownPrompts(unknown)}`);
  return lines.join("\n");
}

/**
 * The self-contained HTML report (plotly.js inlined once; works offline).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reportHtml } from "./report.ts";
 * import { analyzeStudy } from "./analyze.ts";
 * import { ingestResponses } from "./ingest.ts";
 *
 * const text =
 *   "prompt,model_a,model_b,left,choice,rater\na cat,x,y,x,left,r1\na dog,x,y,y,left,r2\n";
 * const summary = analyzeStudy(ingestResponses(text, { source: "a.csv" }), { seed: 0 });
 * const html = reportHtml(summary); // Deno.writeTextFile("report.html", html)
 * assert.ok(html.includes("x vs y"));
 * ```
 */
export function reportHtml(summary: StudySummary): string {
  const figs = studyFigures(summary);
  const plots = [figs.overall, figs.category, figs.challenge, figs.bradleyTerry]
    .filter((f): f is NonNullable<typeof f> => f !== null)
    .map((f, i) => plotlyDiv(f, { id: `fig${i}`, includePlotlyJs: i === 0 }))
    .join("\n");
  const o = summary.options;
  const rows = summary.comparisons.flatMap((c) =>
    c.sections.map((s) => [
      c.key,
      `${s.kind}: ${s.name}`,
      s.prompts,
      s.n,
      `${s.wins}/${s.ties}/${s.losses}`,
      pct(s.winRate),
      `${pct(s.interval.lo)} – ${pct(s.interval.hi)}` +
      (s.interval.method === o.method ? "" : ` (${s.interval.method})`),
      s.bootstrap ? `${pct(s.bootstrap.lo)} – ${pct(s.bootstrap.hi)}` : "-",
      `${pct(s.wilson.lo)} – ${pct(s.wilson.hi)}`,
      pct(s.winRateNoTies),
      num(s.pValue),
      num(s.pHolm),
      s.significant ? "yes" : "",
    ])
  );
  const raters = [...summary.raters].sort((a, b) =>
    (a.agreeWithMajority || 0) - (b.agreeWithMajority || 0)
  );
  const c = summary.counts;
  const bt = summary.bradleyTerry
    ? table(
      ["model", "strength", "lo", "hi"],
      summary.bradleyTerry.strengths.map((s) => [s.model, num(s.strength), num(s.lo), num(s.hi)]),
    )
    : "";
  const unknown = summary.unknownPrompts && summary.unknownPrompts.answers > 0
    ? `<h2>Answers whose prompt is not in the prompts file</h2><p>` +
      `${esc(describeUnknownPrompts(summary.unknownPrompts))}.</p>`
    : "";
  const outside = summary.comparisons.filter((c) =>
    c.notInSections.category > 0 || c.notInSections.challenge > 0
  ).map((c) =>
    `${c.key}: ${c.notInSections.category} answers in no category, ` +
    `${c.notInSections.challenge} in no challenge (counted in the overall result only)`
  );
  const outsideHtml = outside.length ? `<p>${outside.map(esc).join("<br>")}</p>` : "";
  const errors = summary.errors.length
    ? `<h2>Rows excluded as unreadable (${c.parseErrors})</h2>` +
      table(["line", "problem"], summary.errors.map((e) => [e.line, e.message]))
    : "";
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Human evaluation: ${esc(summary.source)}</title>
<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;
font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
td:first-child,td:nth-child(2){text-align:left}</style></head><body>
<h1>Which image better follows the prompt?</h1>
<p>Answers: <code>${esc(summary.source)}</code> (${esc(summary.format)}). ${c.rows} rows,
${c.judgements} used; ${c.parseErrors} unreadable, ${c.rejected} rejected assignments,
${c.checks} attention checks (${c.checksFailed} failed), ${c.excludedRaters} raters excluded
(${c.excludedByRater} answers).</p>
<p>Win rate of model A with ties counted as half. ${esc(intervalNote(summary))}
p: exact two-sided sign test (ties dropped) against 50%, Holm-adjusted across the sections of each
comparison.</p>
${unknown}
${plots}
<h2>Win rates</h2>
${
    table(
      [
        "comparison",
        "section",
        "prompts",
        "n",
        "W/T/L",
        "win %",
        "interval %",
        "bootstrap %",
        "Wilson %",
        "win % (no ties)",
        "p",
        "p Holm",
        "signif.",
      ],
      rows,
    )
  }
${outsideHtml}
${bt ? `<h2>Bradley-Terry</h2>${bt}` : ""}
<h2>Agreement</h2>
<p>${summary.agreement.items} (comparison, prompt) items with 2+ answers: Fleiss' kappa
${num(summary.agreement.fleissKappa)}, Krippendorff's alpha (nominal)
${num(summary.agreement.krippendorffAlpha)}.</p>
<h2>Raters (lowest agreement first)</h2>
${
    table(
      [
        "rater",
        "n",
        "agree w/ majority",
        "left %",
        "left-bias p",
        "tie %",
        "checks",
        "failed",
        "excluded",
      ],
      raters.map((r) => [
        r.rater,
        r.n,
        pct(r.agreeWithMajority),
        pct(r.leftRate),
        num(r.leftBiasP),
        pct(r.tieRate),
        r.checks,
        r.checksFailed,
        r.excluded ? "yes" : "",
      ]),
    )
  }
${errors}
</body></html>
`;
}
