/**
 * Analysis of a pairwise preference study: win rates with 95% intervals per comparison and cross
 * section (overall, each category, each challenge), sign tests with Holm correction, Bradley-Terry
 * strengths when more than two models are compared, inter-rater agreement and per-rater stats.
 *
 * Intervals: the prompt-cluster bootstrap (default, 2000 seeded replicates) resamples *prompts*
 * with replacement (all answers to a prompt move together), which is what the data are: six
 * raters judging the same pair of images agree more than six random answers would, and prompts
 * differ in difficulty. The Wilson score interval treats every answer as independent and is too
 * narrow then (85% coverage instead of 95% in the kit's simulator, 94% for the bootstrap). Both
 * are computed unless `bootstrapReps` is 0; `interval` holds the chosen one and names its method.
 * A section with a single prompt has no between-prompt spread to resample, so its `interval` is
 * Wilson's there (named so in `interval.method`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { analyzeStudy, answersToMturkCsv, designStudy, ingestResponses } from "./mod.ts";
 * import { loadPrompts, simulateAnswers } from "./mod.ts";
 *
 * const { prompts } = await loadPrompts("data/parti_prompts_example.tsv");
 * const tasks = designStudy(prompts, { models: ["ours", "sd15"], trials: 2, seed: 0 });
 * const sim = simulateAnswers(tasks, { seed: 1, truth: { "ours vs sd15": { default: 0.65 } } });
 * const ing = ingestResponses(answersToMturkCsv(sim), { source: "answers.csv" });
 * const summary = analyzeStudy(ing, { seed: 0 }); // prompt-cluster bootstrap intervals
 * const overall = summary.comparisons[0].sections[0]; // { kind: "overall", winRate: 0.58, ... }
 * assert.equal(overall.kind, "overall");
 * assert.ok(overall.interval.lo < overall.winRate && overall.winRate < overall.interval.hi);
 * ```
 * @module
 */
import { Rng } from "../../util/rng.ts";
import { fleissKappa, krippendorffAlphaNominal } from "./agreement.ts";
import { fitWinMatrix } from "./bradley_terry.ts";
import { type IngestResult, type Judgement, type RaterChecks, toJudgement } from "./ingest.ts";
import {
  binomialTwoSidedP,
  holm,
  type Interval,
  percentileInterval,
  wilsonInterval,
} from "./stats.ts";

/** Random sub-stream for bootstrap resampling. */
export const BOOTSTRAP_STREAM = 43;

/** Default prompt-bootstrap replicates for win-rate intervals. */
export const DEFAULT_BOOTSTRAP_REPS = 2000;

/** Interval methods. */
export type IntervalMethod = "wilson" | "bootstrap";

/** Options for {@link analyzeJudgements}. */
export interface AnalysisOptions {
  /** Interval reported as `interval` (default "bootstrap"; Wilson is always computed too). */
  method?: IntervalMethod;
  /** Interval level (default 0.95). */
  confidence?: number;
  /** Bootstrap replicates for win-rate intervals (default 2000; 0 skips the bootstrap). */
  bootstrapReps?: number;
  /** Bootstrap replicates for Bradley-Terry intervals (default 200). */
  btReps?: number;
  /** Pseudo-games per pair in Bradley-Terry fits (default 0.5). */
  btPrior?: number;
  seed?: number;
  /** Sections to compute (default all three kinds). */
  kinds?: readonly SectionKind[];
}

/** What a section slices by. */
export type SectionKind = "overall" | "category" | "challenge";

/** Numbers for one comparison in one cross-section. */
export interface SectionStats {
  kind: SectionKind;
  name: string;
  /** Distinct prompts (clusters). */
  prompts: number;
  n: number;
  wins: number;
  ties: number;
  losses: number;
  /** (wins + ties/2) / n. */
  winRate: number;
  /** wins / (wins + losses), ties dropped. */
  winRateNoTies: number;
  /**
   * The chosen interval for winRate, with the method that made it (Wilson in a section of one
   * prompt even when the bootstrap was chosen: one prompt has no spread to resample).
   */
  interval: Interval & { method: IntervalMethod };
  /** Wilson interval of winRate (ties as half a success). */
  wilson: Interval;
  /** Prompt-cluster bootstrap percentile interval of winRate (null when skipped). */
  bootstrap: Interval | null;
  /** Wilson interval of winRateNoTies. */
  wilsonNoTies: Interval;
  /** Exact two-sided sign test of wins vs losses against 50%. */
  pValue: number;
  /** Holm-adjusted pValue across all sections of this comparison. */
  pHolm: number;
  /** pHolm < 1 - confidence. */
  significant: boolean;
}

/** One comparison, reported as model_a vs model_b. */
export interface ComparisonSummary {
  key: string;
  model_a: string;
  model_b: string;
  sections: SectionStats[];
  /**
   * Answers in the overall section but in no category (resp. challenge) section, because they
   * have none (e.g. their prompt is not in the prompts file).
   */
  notInSections: { category: number; challenge: number };
}

/** Bradley-Terry strengths with bootstrap intervals. */
export interface BradleyTerrySummary {
  models: string[];
  strengths: { model: string; strength: number; lo: number; hi: number }[];
  reps: number;
  prior: number;
}

/** Agreement between raters on the same (comparison, prompt) items. */
export interface AgreementSummary {
  /** Items (comparison, prompt) with at least two answers. */
  items: number;
  fleissKappa: number;
  krippendorffAlpha: number;
}

/** Per-rater statistics (computed on all accepted non-check answers, excluded raters too). */
export interface RaterStats {
  rater: string;
  n: number;
  /** Share of answers equal to the leave-one-out majority of other answers on the same item. */
  agreeWithMajority: number;
  /** Answers that had a unique majority among the others to compare with. */
  comparable: number;
  /** Share of left picks among left/right picks. */
  leftRate: number;
  /** Sign-test p-value of leftRate against 50%. */
  leftBiasP: number;
  tieRate: number;
  checks: number;
  checksFailed: number;
  excluded: boolean;
}

/** Everything the analysis reports. */
export interface Analysis {
  options: Required<Omit<AnalysisOptions, "kinds">> & { kinds: SectionKind[] };
  comparisons: ComparisonSummary[];
  bradleyTerry: BradleyTerrySummary | null;
  agreement: AgreementSummary;
  raters: RaterStats[];
}

/** Per-prompt tallies of one comparison. */
interface Cluster {
  prompt: string;
  category: string;
  challenge: string;
  n: number;
  score: number;
  wins: number;
  ties: number;
}

function resolveOptions(opts: AnalysisOptions): Analysis["options"] {
  const o = {
    method: opts.method ?? "bootstrap",
    confidence: opts.confidence ?? 0.95,
    bootstrapReps: opts.bootstrapReps ?? DEFAULT_BOOTSTRAP_REPS,
    btReps: opts.btReps ?? 200,
    btPrior: opts.btPrior ?? 0.5,
    seed: opts.seed ?? 0,
    kinds: [...(opts.kinds ?? ["overall", "category", "challenge"])],
  };
  if (o.method !== "wilson" && o.method !== "bootstrap") {
    throw new Error(`analysis: method must be wilson or bootstrap, got "${o.method}"`);
  }
  if (o.method === "bootstrap" && !(o.bootstrapReps >= 1)) {
    throw new Error(
      `analysis: method bootstrap needs bootstrapReps >= 1, got ${o.bootstrapReps} (use method ` +
        `wilson to skip the bootstrap)`,
    );
  }
  return o;
}

/**
 * Group judgements into comparisons, each oriented as first seen (`a vs b`); answers recorded the
 * other way round get their score flipped.
 */
export function groupComparisons(judgements: readonly Judgement[]): Map<string, Judgement[]> {
  const out = new Map<string, Judgement[]>();
  const orient = new Map<string, string>();
  for (const j of judgements) {
    const unordered = [j.model_a, j.model_b].sort().join("\u0000");
    let key = orient.get(unordered);
    if (key === undefined) {
      key = `${j.model_a} vs ${j.model_b}`;
      orient.set(unordered, key);
      out.set(key, []);
    }
    const flipped = key !== `${j.model_a} vs ${j.model_b}`;
    out.get(key)!.push(
      flipped
        ? {
          ...j,
          model_a: j.model_b,
          model_b: j.model_a,
          left_is_a: !j.left_is_a,
          score: (1 - j.score) as Judgement["score"],
        }
        : j,
    );
  }
  return out;
}

function clustersOf(js: readonly Judgement[]): Cluster[] {
  const m = new Map<string, Cluster>();
  for (const j of js) {
    let c = m.get(j.prompt_id);
    if (!c) {
      c = {
        prompt: j.prompt_id,
        category: j.category,
        challenge: j.challenge,
        n: 0,
        score: 0,
        wins: 0,
        ties: 0,
      };
      m.set(j.prompt_id, c);
    }
    c.n++;
    c.score += j.score;
    if (j.score === 1) c.wins++;
    else if (j.score === 0.5) c.ties++;
  }
  // Sorted by prompt, so bootstrap draws do not depend on the order of rows in the file.
  return [...m.values()].sort((x, y) => x.prompt < y.prompt ? -1 : x.prompt > y.prompt ? 1 : 0);
}

/**
 * Cluster bootstrap of the pooled win rate `Σ score / Σ n` over resampled clusters.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clusterBootstrap } from "./analyze.ts";
 * import { Rng } from "../../util/rng.ts";
 *
 * const { lo, hi } = clusterBootstrap([{ n: 6, score: 4 }, { n: 6, score: 2 }], {
 *   reps: 1000,
 *   rng: Rng.stream(0),
 * });
 * assert.ok(lo <= 0.5 && 0.5 <= hi); // pooled rate 6/12
 * ```
 */
export function clusterBootstrap(
  clusters: readonly { n: number; score: number }[],
  opts: { reps: number; rng: Rng; confidence?: number },
): Interval {
  const m = clusters.length;
  if (m === 0) return { lo: NaN, hi: NaN };
  const n = Float64Array.from(clusters, (c) => c.n);
  const s = Float64Array.from(clusters, (c) => c.score);
  const reps = new Float64Array(opts.reps);
  for (let r = 0; r < opts.reps; r++) {
    let sn = 0;
    let ss = 0;
    for (let i = 0; i < m; i++) {
      const j = opts.rng.int(m);
      sn += n[j];
      ss += s[j];
    }
    reps[r] = sn > 0 ? ss / sn : NaN;
  }
  return percentileInterval(reps, opts.confidence ?? 0.95);
}

function sectionStats(
  kind: SectionKind,
  name: string,
  clusters: readonly Cluster[],
  o: Analysis["options"],
  rng: Rng,
): SectionStats {
  let n = 0;
  let wins = 0;
  let ties = 0;
  let score = 0;
  for (const c of clusters) {
    n += c.n;
    wins += c.wins;
    ties += c.ties;
    score += c.score;
  }
  const losses = n - wins - ties;
  const wilson = wilsonInterval(score, n, o.confidence);
  const bootstrap = o.bootstrapReps > 0
    ? clusterBootstrap(clusters, { reps: o.bootstrapReps, rng, confidence: o.confidence })
    : null;
  // One prompt has no between-prompt spread: its bootstrap would be a zero-width interval.
  const method: IntervalMethod = o.method === "bootstrap" && clusters.length >= 2
    ? "bootstrap"
    : "wilson";
  const chosen = method === "bootstrap" ? bootstrap! : wilson;
  return {
    kind,
    name,
    prompts: clusters.length,
    n,
    wins,
    ties,
    losses,
    winRate: n > 0 ? score / n : NaN,
    winRateNoTies: wins + losses > 0 ? wins / (wins + losses) : NaN,
    interval: { method, lo: chosen.lo, hi: chosen.hi },
    wilson,
    bootstrap,
    wilsonNoTies: wilsonInterval(wins, wins + losses, o.confidence),
    pValue: binomialTwoSidedP(wins, wins + losses),
    pHolm: NaN,
    significant: false,
  };
}

/**
 * Win-rate sections of one comparison (overall first, then categories and challenges sorted by
 * name). Each section's bootstrap draws from its own seeded stream.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { analyzeComparison } from "./analyze.ts";
 * import {
 *   answersToCsv,
 *   designStudy,
 *   ingestResponses,
 *   loadPrompts,
 *   simulateAnswers,
 * } from "./mod.ts";
 *
 * const { prompts } = await loadPrompts("data/parti_prompts_example.tsv");
 * const tasks = designStudy(prompts, { models: ["a", "b"], trials: 2, seed: 0 });
 * const sim = simulateAnswers(tasks, { seed: 0, truth: { "a vs b": { default: 0.6 } } });
 * const { judgements } = ingestResponses(answersToCsv(sim), { source: "answers.csv" });
 * const sections = analyzeComparison(judgements, { seed: 0 }, 0); // one pair: a vs b
 * assert.equal(sections[0].kind, "overall");
 * assert.equal(sections[0].n, judgements.length);
 * ```
 */
export function analyzeComparison(
  judgements: readonly Judgement[],
  opts: AnalysisOptions = {},
  comparisonIndex = 0,
): SectionStats[] {
  const o = resolveOptions(opts);
  const clusters = clustersOf(judgements);
  const groups: [SectionKind, string, Cluster[]][] = [];
  if (o.kinds.includes("overall")) groups.push(["overall", "overall", clusters]);
  for (const kind of ["category", "challenge"] as const) {
    if (!o.kinds.includes(kind)) continue;
    const names = [...new Set(clusters.map((c) => c[kind]))].filter((v) => v !== "").sort();
    for (const name of names) groups.push([kind, name, clusters.filter((c) => c[kind] === name)]);
  }
  const sections = groups.map(([kind, name, cs], si) =>
    sectionStats(kind, name, cs, o, Rng.stream(o.seed, [BOOTSTRAP_STREAM, comparisonIndex, si]))
  );
  const adjusted = holm(sections.map((s) => s.pValue));
  sections.forEach((s, i) => {
    s.pHolm = adjusted[i];
    s.significant = adjusted[i] < 1 - o.confidence;
  });
  return sections;
}

/**
 * Bradley-Terry strengths of every model with prompt-cluster bootstrap percentile intervals.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bradleyTerrySummary } from "./analyze.ts";
 * import {
 *   answersToCsv,
 *   designStudy,
 *   ingestResponses,
 *   loadPrompts,
 *   simulateAnswers,
 * } from "./mod.ts";
 *
 * const { prompts } = await loadPrompts("data/parti_prompts_example.tsv");
 * const tasks = designStudy(prompts, { models: ["a", "b", "c"], trials: 1, seed: 0 });
 * const truth = {
 *   "a vs b": { default: 0.8 },
 *   "a vs c": { default: 0.8 },
 *   "b vs c": { default: 0.5 },
 * };
 * const sim = simulateAnswers(tasks, { seed: 0, truth });
 * const { judgements } = ingestResponses(answersToCsv(sim), { source: "answers.csv" });
 * const { strengths } = bradleyTerrySummary(judgements, { btReps: 50, seed: 0 });
 * assert.equal(strengths[0].model, "a"); // the strongest model first
 * ```
 */
export function bradleyTerrySummary(
  judgements: readonly Judgement[],
  opts: AnalysisOptions = {},
): BradleyTerrySummary {
  const o = resolveOptions(opts);
  const models = [...new Set(judgements.flatMap((j) => [j.model_a, j.model_b]))].sort();
  const index = new Map(models.map((m, i) => [m, i]));
  const k = models.length;
  // Per-prompt win matrices, so the bootstrap can resample prompts.
  const byPrompt = new Map<string, Float64Array>();
  for (const j of judgements) {
    let w = byPrompt.get(j.prompt_id);
    if (!w) byPrompt.set(j.prompt_id, w = new Float64Array(k * k));
    const a = index.get(j.model_a)!;
    const b = index.get(j.model_b)!;
    w[a * k + b] += j.score;
    w[b * k + a] += 1 - j.score;
  }
  const clusters = [...byPrompt.keys()].sort().map((key) => byPrompt.get(key)!);
  const fit = (pick: (i: number) => Float64Array, m: number) => {
    const total = new Float64Array(k * k);
    for (let i = 0; i < m; i++) {
      const w = pick(i);
      for (let t = 0; t < k * k; t++) total[t] += w[t];
    }
    const rows = Array.from({ length: k }, (_, i) => total.subarray(i * k, (i + 1) * k));
    return fitWinMatrix(models, rows, { prior: o.btPrior }).strengths;
  };
  const point = fit((i) => clusters[i], clusters.length);
  const rng = Rng.stream(o.seed, [BOOTSTRAP_STREAM, 1_000_000]);
  const reps = models.map(() => new Float64Array(o.btReps));
  for (let r = 0; r < o.btReps; r++) {
    const s = fit(() => clusters[rng.int(clusters.length)], clusters.length);
    models.forEach((m, i) => reps[i][r] = s[m]);
  }
  return {
    models,
    reps: o.btReps,
    prior: o.btPrior,
    strengths: models.map((m, i) => {
      const ci = o.btReps > 0 ? percentileInterval(reps[i], o.confidence) : { lo: NaN, hi: NaN };
      return { model: m, strength: point[m], lo: ci.lo, hi: ci.hi };
    }),
  };
}

/** Item x {a, b, tie} counts, one row per (comparison, prompt). */
function itemCounts(byComparison: Map<string, Judgement[]>): Map<string, number[]> {
  const items = new Map<string, number[]>();
  for (const [key, js] of byComparison) {
    for (const j of js) {
      const id = `${key}\u0000${j.prompt_id}`;
      if (!items.has(id)) items.set(id, [0, 0, 0]);
      items.get(id)![j.score === 1 ? 0 : j.score === 0 ? 1 : 2]++;
    }
  }
  return items;
}

/**
 * Fleiss' kappa and Krippendorff's alpha over (comparison, prompt) items, with categories
 * {model_a wins, model_b wins, tie}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { agreementSummary } from "./analyze.ts";
 * import {
 *   answersToCsv,
 *   designStudy,
 *   ingestResponses,
 *   loadPrompts,
 *   simulateAnswers,
 * } from "./mod.ts";
 *
 * const { prompts } = await loadPrompts("data/parti_prompts_example.tsv");
 * const tasks = designStudy(prompts, { models: ["a", "b"], trials: 3, seed: 0 });
 * const sim = simulateAnswers(tasks, { seed: 0, truth: { "a vs b": { default: 0.6 } } });
 * const { judgements } = ingestResponses(answersToCsv(sim), { source: "answers.csv" });
 * const { items, krippendorffAlpha } = agreementSummary(judgements);
 * assert.equal(items, prompts.length); // one item per prompt and pair
 * assert.ok(krippendorffAlpha > -1 && krippendorffAlpha <= 1);
 * ```
 */
export function agreementSummary(judgements: readonly Judgement[]): AgreementSummary {
  const rows = [...itemCounts(groupComparisons(judgements)).values()];
  return {
    items: rows.filter((r) => r[0] + r[1] + r[2] >= 2).length,
    fleissKappa: fleissKappa(rows),
    krippendorffAlpha: krippendorffAlphaNominal(rows),
  };
}

/**
 * Per-rater n, agreement with the leave-one-out majority, left bias (with a sign test) and tie
 * rate, so careless or side-biased raters stand out.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { raterStats } from "./analyze.ts";
 * import {
 *   answersToCsv,
 *   designStudy,
 *   ingestResponses,
 *   loadPrompts,
 *   simulateAnswers,
 * } from "./mod.ts";
 *
 * const { prompts } = await loadPrompts("data/parti_prompts_example.tsv");
 * const tasks = designStudy(prompts, { models: ["a", "b"], trials: 2, seed: 0 });
 * const sim = simulateAnswers(tasks, { seed: 0, truth: { "a vs b": { default: 0.6 } } });
 * const { judgements } = ingestResponses(answersToCsv(sim), { source: "answers.csv" });
 * const stats = raterStats(judgements);
 * assert.equal(stats.reduce((s, r) => s + r.n, 0), judgements.length);
 * const leftBiased = stats.filter((r) => r.leftBiasP < 0.01); // raters who mostly click left
 * assert.ok(leftBiased.length < stats.length);
 * ```
 */
export function raterStats(
  judgements: readonly Judgement[],
  checks: readonly RaterChecks[] = [],
): RaterStats[] {
  const byComparison = groupComparisons(judgements);
  const items = itemCounts(byComparison);
  const acc = new Map<
    string,
    { n: number; agree: number; comparable: number; left: number; right: number; ties: number }
  >();
  for (const [key, js] of byComparison) {
    for (const j of js) {
      let a = acc.get(j.rater);
      if (!a) acc.set(j.rater, a = { n: 0, agree: 0, comparable: 0, left: 0, right: 0, ties: 0 });
      a.n++;
      if (j.choice === "left") a.left++;
      else if (j.choice === "right") a.right++;
      else a.ties++;
      const counts = [...items.get(`${key}\u0000${j.prompt_id}`)!];
      const mine = j.score === 1 ? 0 : j.score === 0 ? 1 : 2;
      counts[mine]--; // leave this answer out
      const top = Math.max(...counts);
      if (top === 0 || counts.filter((c) => c === top).length > 1) continue;
      a.comparable++;
      if (counts[mine] === top) a.agree++;
    }
  }
  const checkOf = new Map(checks.map((c) => [c.rater, c]));
  const raters = new Set([...acc.keys(), ...checkOf.keys()]);
  return [...raters].sort().map((rater) => {
    const a = acc.get(rater) ?? { n: 0, agree: 0, comparable: 0, left: 0, right: 0, ties: 0 };
    const c = checkOf.get(rater);
    return {
      rater,
      n: a.n,
      agreeWithMajority: a.comparable > 0 ? a.agree / a.comparable : NaN,
      comparable: a.comparable,
      leftRate: a.left + a.right > 0 ? a.left / (a.left + a.right) : NaN,
      leftBiasP: binomialTwoSidedP(a.left, a.left + a.right),
      tieRate: a.n > 0 ? a.ties / a.n : NaN,
      checks: c?.checks ?? 0,
      checksFailed: c?.failed ?? 0,
      excluded: c?.excluded ?? false,
    };
  });
}

/**
 * Analyse judgements: every comparison's sections, Bradley-Terry (3+ models), agreement and
 * rater stats.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { analyzeJudgements } from "./analyze.ts";
 * import {
 *   answersToCsv,
 *   designStudy,
 *   ingestResponses,
 *   loadPrompts,
 *   simulateAnswers,
 * } from "./mod.ts";
 *
 * const { prompts } = await loadPrompts("data/parti_prompts_example.tsv");
 * const tasks = designStudy(prompts, { models: ["a", "b"], trials: 2, seed: 0 });
 * const sim = simulateAnswers(tasks, { seed: 0, truth: { "a vs b": { default: 0.6 } } });
 * const { judgements } = ingestResponses(answersToCsv(sim), { source: "answers.csv" });
 * const a = analyzeJudgements(judgements, { method: "bootstrap", seed: 0 });
 * assert.equal(a.comparisons[0].sections[0].interval.method, "bootstrap");
 * ```
 */
export function analyzeJudgements(
  judgements: readonly Judgement[],
  opts: AnalysisOptions = {},
  raterJudgements: readonly Judgement[] = judgements,
  checks: readonly RaterChecks[] = [],
): Analysis {
  const o = resolveOptions(opts);
  if (judgements.length === 0) throw new Error("analysis: no usable answers to analyse");
  const byComparison = groupComparisons(judgements);
  // Sorted by key, so the order (and each comparison's bootstrap stream) does not depend on
  // the order of rows in the answer file.
  const sorted = [...byComparison].sort((x, y) => x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0);
  const comparisons = sorted.map(([key, js], ci) => ({
    key,
    model_a: js[0].model_a,
    model_b: js[0].model_b,
    sections: analyzeComparison(js, o, ci),
    notInSections: {
      category: js.filter((j) => j.category === "").length,
      challenge: js.filter((j) => j.challenge === "").length,
    },
  }));
  const models = new Set(judgements.flatMap((j) => [j.model_a, j.model_b]));
  return {
    options: o,
    comparisons,
    bradleyTerry: models.size > 2 ? bradleyTerrySummary(judgements, o) : null,
    agreement: agreementSummary(judgements),
    raters: raterStats(raterJudgements, checks),
  };
}

/** The analysis plus where the answers came from and what was excluded. */
export interface StudySummary extends Analysis {
  source: string;
  format: string;
  counts: IngestResult["counts"];
  /** Rows that did not parse (at most the first 200; `counts.parseErrors` has the total). */
  errors: IngestResult["errors"];
  /** Used answers whose prompt is not in the prompts file (null without a prompts file). */
  unknownPrompts: IngestResult["unknownPrompts"];
}

/**
 * Analyse an ingested answer file (rater stats include raters excluded by attention checks).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { analyzeStudy } from "./analyze.ts";
 * import { ingestResponses } from "./ingest.ts";
 *
 * const text = "prompt,model_a,model_b,left,choice,rater\n" +
 *   "a cat,x,y,x,left,r1\na cat,x,y,y,left,r2\na dog,x,y,x,tie,r1\n";
 * const summary = analyzeStudy(ingestResponses(text, { source: "a.csv" }), { seed: 0 });
 * const overall = summary.comparisons[0].sections[0];
 * assert.deepEqual([overall.wins, overall.ties, overall.losses], [1, 1, 1]); // x's view
 * ```
 */
export function analyzeStudy(ingest: IngestResult, opts: AnalysisOptions = {}): StudySummary {
  const all = ingest.answers.filter((a) => !a.is_check).map(toJudgement);
  const analysis = analyzeJudgements(ingest.judgements, opts, all, ingest.raterChecks);
  return {
    source: ingest.source,
    format: ingest.format,
    counts: ingest.counts,
    errors: ingest.errors.slice(0, 200),
    unknownPrompts: ingest.unknownPrompts,
    ...analysis,
  };
}
