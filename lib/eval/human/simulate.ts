/**
 * A rater simulator for checking the analysis end to end and its calibration.
 *
 * Generative model, per task (prompt p, pair a vs b, category c):
 * - the pair's true preference `μ = truth(a, b, c)`;
 * - a prompt-level random effect: `q_p ~ Beta(κμ, κ(1-μ))`, shared by every trial of that prompt
 *   and pair (so answers to one prompt are correlated, as in real studies; `κ = Infinity` turns it
 *   off). `E[q_p] = μ` exactly;
 * - a rater draws a tie with probability `tieRate`; otherwise with probability `lapse` (rater noise)
 *   answers without looking, picking the left image with probability `1/2 + b_r` (the rater's
 *   left bias, `b_r ~ N(0, leftBiasSd)` clipped to ±0.45); otherwise prefers a with probability
 *   `q_p`;
 * - spammers (a fraction of raters) always answer without looking; attentive raters pass attention
 *   checks unless they lapse.
 *
 * Sides are drawn 50/50 by the design, so the left bias cancels in expectation and the expected
 * score of model a (ties as half) is {@link expectedWinRate}:
 * `tieRate/2 + (1 - tieRate) · (lapse/2 + (1 - lapse) · μ)` (for a study without spammers, or after
 * they are excluded).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { answersToMturkCsv, simulateAnswers } from "./simulate.ts";
 * import { designStudy, ingestResponses, loadPrompts } from "./mod.ts";
 *
 * const { prompts } = await loadPrompts("data/parti_prompts_example.tsv");
 * const tasks = designStudy(prompts, { models: ["ours", "sd15"], trials: 2, seed: 0 });
 * const sim = simulateAnswers(tasks, { seed: 1, truth: { "ours vs sd15": { default: 0.65 } } });
 * const csv = answersToMturkCsv(sim); // what Deno.writeTextFile("answers.csv", csv) would hold
 * assert.equal(ingestResponses(csv, { source: "answers.csv" }).counts.rows, tasks.length);
 * ```
 * @module
 */
import { Rng } from "../../util/rng.ts";
import { formatCsv } from "./csv.ts";
import { type Choice, type Task, TASK_COLUMNS } from "./design.ts";

/** Random sub-stream for simulated raters. */
export const SIMULATE_STREAM = 42;

/**
 * True preference of model_a over model_b (no ties, attentive rater), by pair key `"a vs b"` and
 * category (`default` for categories not listed).
 */
export type TruthTable = Record<string, Record<string, number>>;

/** Options for {@link simulateAnswers}. */
export interface SimulationOptions {
  seed: number;
  truth: TruthTable;
  /** Rater pool size (default 40). */
  raters?: number;
  /** Probability that an answer ignores the images (default 0.1). */
  lapse?: number;
  /** Standard deviation of the per-rater left bias (default 0.1). */
  leftBiasSd?: number;
  /** Probability of a tie (default 0.1). */
  tieRate?: number;
  /** Beta concentration κ of the prompt effect (default 4; Infinity: no prompt effect). */
  promptConcentration?: number;
  /** Fraction of raters who never look (default 0). */
  spammerFraction?: number;
  /** Fraction of assignments the requester rejected (MTurk status; default 0). */
  rejectFraction?: number;
}

/** A task with a simulated answer. */
export type SimulatedAnswer = Task & { rater: string; choice: Choice; status: string };

/**
 * The truth for pair (a, b) in `category`, looked up in either orientation.
 *
 * @example
 * ```ts
 * truthFor({ "x vs y": { default: 0.7 } }, "y", "x", "Animals"); // 0.3
 * ```
 */
export function truthFor(table: TruthTable, a: string, b: string, category: string): number {
  const fwd = table[`${a} vs ${b}`];
  if (fwd) {
    const v = fwd[category] ?? fwd.default;
    if (v !== undefined) return v;
  }
  const rev = table[`${b} vs ${a}`];
  if (rev) {
    const v = rev[category] ?? rev.default;
    if (v !== undefined) return 1 - v;
  }
  throw new Error(`simulate: no truth for "${a} vs ${b}" (category "${category}") in the table`);
}

/**
 * Expected score of model_a (ties as half) for true preference `mu` under `opts` (no spammers).
 *
 * @example
 * ```ts
 * expectedWinRate(0.7, { tieRate: 0, lapse: 0 }); // 0.7
 * ```
 */
export function expectedWinRate(
  mu: number,
  opts: Pick<SimulationOptions, "tieRate" | "lapse"> = {},
): number {
  const tie = opts.tieRate ?? 0.1;
  const lapse = opts.lapse ?? 0.1;
  return tie / 2 + (1 - tie) * (lapse / 2 + (1 - lapse) * mu);
}

/** Gamma(shape, 1) deviate (Marsaglia-Tsang; shape < 1 by the u^(1/shape) boost). */
export function gammaDeviate(rng: Rng, shape: number): number {
  if (!(shape > 0)) throw new Error(`gammaDeviate: shape must be > 0, got ${shape}`);
  if (shape < 1) {
    let u = 0;
    while (u === 0) u = rng.uniform();
    return gammaDeviate(rng, shape + 1) * Math.pow(u, 1 / shape);
  }
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const x = rng.gaussian();
    const v0 = 1 + c * x;
    if (v0 <= 0) continue;
    const v = v0 * v0 * v0;
    const u = rng.uniform();
    if (u < 1 - 0.0331 * x ** 4) return d * v;
    if (u > 0 && Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** Beta(a, b) deviate from two gammas. */
export function betaDeviate(rng: Rng, a: number, b: number): number {
  const x = gammaDeviate(rng, a);
  const y = gammaDeviate(rng, b);
  return x / (x + y);
}

/**
 * Simulate one answer per task.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { simulateAnswers } from "./simulate.ts";
 * import { designStudy, loadPrompts } from "./mod.ts";
 *
 * const { prompts } = await loadPrompts("data/parti_prompts_example.tsv");
 * const tasks = designStudy(prompts, { models: ["a", "b"], trials: 1, seed: 0 });
 * const answers = simulateAnswers(tasks, { seed: 0, truth: { "a vs b": { default: 0.6 } } });
 * assert.equal(answers.length, tasks.length); // one answer per task
 * assert.ok(answers.every((a) => ["left", "right", "tie"].includes(a.choice)));
 * ```
 */
export function simulateAnswers(
  tasks: readonly Task[],
  opts: SimulationOptions,
): SimulatedAnswer[] {
  const nRaters = opts.raters ?? 40;
  const lapse = opts.lapse ?? 0.1;
  const tieRate = opts.tieRate ?? 0.1;
  const kappa = opts.promptConcentration ?? 4;
  const rng = Rng.stream(opts.seed, [SIMULATE_STREAM]);
  const width = String(nRaters).length;
  const raters = Array.from({ length: nRaters }, (_, i) => ({
    id: `W${String(i + 1).padStart(width, "0")}`,
    bias: Math.max(-0.45, Math.min(0.45, (opts.leftBiasSd ?? 0.1) * rng.gaussian())),
    spammer: rng.uniform() < (opts.spammerFraction ?? 0),
  }));
  // One q per (prompt, pair), drawn on first use from its own sub-stream, so the prompt effects
  // do not shift when the rater draws change.
  const q = new Map<string, number>();
  const promptEffect = (t: Task): number => {
    const key = `${t.prompt_id}\u0000${t.model_a}\u0000${t.model_b}`;
    let v = q.get(key);
    if (v === undefined) {
      const mu = truthFor(opts.truth, t.model_a, t.model_b, t.category);
      if (!(mu >= 0 && mu <= 1)) throw new Error(`simulate: truth must be in [0, 1], got ${mu}`);
      if (!Number.isFinite(kappa) || mu === 0 || mu === 1) v = mu;
      else {
        const r = Rng.stream(opts.seed, [SIMULATE_STREAM, 1, q.size]);
        v = betaDeviate(r, kappa * mu, kappa * (1 - mu));
      }
      q.set(key, v);
    }
    return v;
  };
  return tasks.map((t) => {
    const r = raters[rng.int(nRaters)];
    const blind = (): Choice => (rng.uniform() < 0.5 + r.bias ? "left" : "right");
    let choice: Choice;
    if (t.is_check) {
      choice = r.spammer || rng.uniform() < lapse ? blind() : t.expected as Choice;
    } else if (rng.uniform() < tieRate) {
      choice = "tie";
    } else if (r.spammer || rng.uniform() < lapse) {
      choice = blind();
    } else {
      const aWins = rng.uniform() < promptEffect(t);
      choice = aWins === (t.left === t.model_a) ? "left" : "right";
    }
    const status = rng.uniform() < (opts.rejectFraction ?? 0) ? "Rejected" : "Approved";
    return { ...t, rater: r.id, choice, status };
  });
}

/** Columns of the plain answer formats. */
export const ANSWER_COLUMNS = [...TASK_COLUMNS, "rater", "choice"] as const;

/**
 * Plain CSV answers (task columns + `rater, choice`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { answersToCsv, simulateAnswers } from "./simulate.ts";
 * import { designStudy, loadPrompts } from "./mod.ts";
 *
 * const { prompts } = await loadPrompts("data/parti_prompts_example.tsv");
 * const tasks = designStudy(prompts.slice(0, 2), { models: ["a", "b"], trials: 1, seed: 0 });
 * const csv = answersToCsv(
 *   simulateAnswers(tasks, { seed: 0, truth: { "a vs b": { default: 0.5 } } }),
 * );
 * assert.match(csv.split("\n")[0], /^task_id,.*,rater,choice/); // the task columns, rater, choice
 * ```
 */
export function answersToCsv(answers: readonly SimulatedAnswer[]): string {
  return formatCsv(ANSWER_COLUMNS, answers.map((a) => ANSWER_COLUMNS.map((c) => a[c])));
}

/**
 * JSONL answers, one object per line (task fields + `rater, choice`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { answersToJsonl, simulateAnswers } from "./simulate.ts";
 * import { designStudy, loadPrompts } from "./mod.ts";
 *
 * const { prompts } = await loadPrompts("data/parti_prompts_example.tsv");
 * const tasks = designStudy(prompts.slice(0, 2), { models: ["a", "b"], trials: 1, seed: 0 });
 * const jsonl = answersToJsonl(
 *   simulateAnswers(tasks, { seed: 0, truth: { "a vs b": { default: 0.5 } } }),
 * );
 * assert.equal(JSON.parse(jsonl.split("\n")[0]).task_id, tasks[0].task_id);
 * ```
 */
export function answersToJsonl(answers: readonly SimulatedAnswer[]): string {
  return answers.map((a) => {
    const o: Record<string, unknown> = {};
    for (const c of ANSWER_COLUMNS) o[c] = a[c];
    return JSON.stringify(o);
  }).join("\n") + (answers.length ? "\n" : "");
}

/**
 * Mechanical Turk batch-results CSV: `HITId, HITTypeId, AssignmentId, WorkerId,
 * AssignmentStatus, WorkTimeInSeconds`, then `Input.<task column>` and `Answer.choice`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { answersToMturkCsv, simulateAnswers } from "./simulate.ts";
 * import { designStudy, loadPrompts } from "./mod.ts";
 *
 * const { prompts } = await loadPrompts("data/parti_prompts_example.tsv");
 * const tasks = designStudy(prompts.slice(0, 2), { models: ["a", "b"], trials: 1, seed: 0 });
 * const csv = answersToMturkCsv(
 *   simulateAnswers(tasks, { seed: 0, truth: { "a vs b": { default: 0.5 } } }),
 * ); // Batch_1_batch_results.csv
 * assert.match(csv.split("\n")[0], /Input\.task_id/);
 * ```
 */
export function answersToMturkCsv(answers: readonly SimulatedAnswer[]): string {
  const header = [
    "HITId",
    "HITTypeId",
    "AssignmentId",
    "WorkerId",
    "AssignmentStatus",
    "WorkTimeInSeconds",
    ...TASK_COLUMNS.map((c) => `Input.${c}`),
    "Answer.choice",
  ];
  const rows = answers.map((a, i) => [
    `H${a.task_id}`,
    "HT-SIM",
    `A${String(i + 1).padStart(6, "0")}`,
    a.rater,
    a.status,
    20,
    ...TASK_COLUMNS.map((c) => a[c]),
    a.choice,
  ]);
  return formatCsv(header, rows);
}
