/**
 * Calibration check of the interval methods: simulate many studies with a known true win rate,
 * analyse each, and count how often each method's 95% interval contains the truth.
 *
 * With prompt-level random effects (answers to one prompt correlated) the Wilson interval, which
 * assumes independent answers, under-covers; the prompt-cluster bootstrap does not.
 *
 * @example
 * ```ts
 * const c = intervalCoverage({ studies: 200, prompts: 60, trials: 6, seed: 0 });
 * c.coverage; // { wilson: 0.8, bootstrap: 0.94 }
 * ```
 * @module
 */
import { analyzeComparison } from "./analyze.ts";
import { designStudy } from "./design.ts";
import { ingestResponses } from "./ingest.ts";
import type { Prompt } from "./prompts.ts";
import { answersToJsonl, expectedWinRate, simulateAnswers } from "./simulate.ts";

/** Options for {@link intervalCoverage}. */
export interface CoverageOptions {
  /** Simulated studies (default 200). */
  studies?: number;
  /** Prompts per study (default 60). */
  prompts?: number;
  /** Trials per prompt (default 6). */
  trials?: number;
  /** True preference μ of model a (default 0.65). */
  mu?: number;
  /** Beta concentration of the prompt effect (default 2; Infinity = independent answers). */
  promptConcentration?: number;
  tieRate?: number;
  lapse?: number;
  /** Bootstrap replicates per study (default 400). */
  bootstrapReps?: number;
  confidence?: number;
  seed?: number;
}

/** Result of {@link intervalCoverage}. */
export interface CoverageResult {
  studies: number;
  truth: number;
  coverage: { wilson: number; bootstrap: number };
  /** Mean interval widths. */
  width: { wilson: number; bootstrap: number };
  /** Mean estimated win rate (should be close to truth: the estimator is unbiased). */
  meanEstimate: number;
}

/**
 * Run the coverage experiment through the whole loop (design, simulated answers written as
 * JSONL, ingest, analysis), overall section only.
 *
 * @example
 * ```ts
 * intervalCoverage({ studies: 50, promptConcentration: Infinity }).coverage.wilson; // ~0.95
 * ```
 */
export function intervalCoverage(opts: CoverageOptions = {}): CoverageResult {
  const studies = opts.studies ?? 200;
  const nPrompts = opts.prompts ?? 60;
  const mu = opts.mu ?? 0.65;
  const tieRate = opts.tieRate ?? 0.1;
  const lapse = opts.lapse ?? 0.1;
  const seed = opts.seed ?? 0;
  const truth = expectedWinRate(mu, { tieRate, lapse });
  const prompts: Prompt[] = Array.from({ length: nPrompts }, (_, i) => ({
    id: `p${i}`,
    prompt: `prompt ${i}`,
    category: "all",
    challenge: "all",
    note: "",
  }));
  let hitW = 0;
  let hitB = 0;
  let widthW = 0;
  let widthB = 0;
  let est = 0;
  for (let s = 0; s < studies; s++) {
    const tasks = designStudy(prompts, {
      models: ["a", "b"],
      trials: opts.trials ?? 6,
      seed: seed * 100_003 + s,
      checkFraction: 0,
    });
    const sim = simulateAnswers(tasks, {
      seed: seed * 100_003 + s,
      truth: { "a vs b": { default: mu } },
      tieRate,
      lapse,
      promptConcentration: opts.promptConcentration ?? 2,
    });
    const ing = ingestResponses(answersToJsonl(sim), { source: `study${s}.jsonl` });
    const [overall] = analyzeComparison(ing.judgements, {
      kinds: ["overall"],
      bootstrapReps: opts.bootstrapReps ?? 400,
      confidence: opts.confidence ?? 0.95,
      seed: s,
    });
    const b = overall.bootstrap!;
    if (overall.wilson.lo <= truth && truth <= overall.wilson.hi) hitW++;
    if (b.lo <= truth && truth <= b.hi) hitB++;
    widthW += overall.wilson.hi - overall.wilson.lo;
    widthB += b.hi - b.lo;
    est += overall.winRate;
  }
  return {
    studies,
    truth,
    coverage: { wilson: hitW / studies, bootstrap: hitB / studies },
    width: { wilson: widthW / studies, bootstrap: widthB / studies },
    meanEstimate: est / studies,
  };
}
