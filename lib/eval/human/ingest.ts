/**
 * Reading raters' answers: Mechanical Turk batch results (`HITId, WorkerId, AssignmentStatus,
 * Input.*, Answer.*`) and plain CSV/JSONL (`prompt, model_a, model_b, left, choice, rater, trial`),
 * mapped from sides (left/right/tie) back to models.
 *
 * Nothing is dropped silently: rows that do not parse come back as errors with their line
 * numbers; rejected assignments, attention checks (passed and failed) and the answers of raters
 * who failed too many checks are excluded and counted, so every data row is in exactly one
 * count. Used answers whose prompt is not in the prompt list are counted and named in
 * `unknownPrompts` (they have no category or challenge).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ingestResponses } from "./ingest.ts";
 *
 * // Usually the text of an MTurk "Batch_123_batch_results.csv" download.
 * const text = "prompt,model_a,model_b,left,choice,rater\na cat,x,y,x,left,r1\na cat,x,y,y,,r2\n";
 * const r = ingestResponses(text, { source: "answers.csv" });
 * assert.equal(r.judgements.length, 1);
 * assert.equal(r.errors[0].line, 3);
 * assert.match(r.errors[0].message, /choice/);
 * ```
 * @module
 */
import { parseDelimited, parseJsonl, type RowError } from "./csv.ts";
import { escapeExcerpt as q, escapeText } from "./text_input.ts";
import type { Choice, Task } from "./design.ts";
import type { Prompt } from "./prompts.ts";

/** One parsed answer, in side space (what the rater saw). */
export interface Answer {
  /** 1-based line in the source file. */
  line: number;
  task_id: string;
  prompt_id: string;
  prompt: string;
  category: string;
  challenge: string;
  model_a: string;
  model_b: string;
  left: string;
  choice: Choice;
  rater: string;
  trial: number;
  is_check: boolean;
  expected: "" | "left" | "right";
  /** MTurk AssignmentStatus ("" for plain files). */
  status: string;
}

/** One answer in model space: who won, model_a or model_b. */
export interface Judgement {
  line: number;
  prompt_id: string;
  prompt: string;
  category: string;
  challenge: string;
  model_a: string;
  model_b: string;
  /** Whether model_a's image was on the left. */
  left_is_a: boolean;
  choice: Choice;
  /** Score of model_a: 1 win, 0 loss, 0.5 tie. */
  score: 0 | 0.5 | 1;
  rater: string;
  trial: number;
}

/** Answer-file layouts. */
export type ResponseFormat = "auto" | "mturk" | "csv" | "jsonl";

/** Options for {@link ingestResponses}. */
export interface IngestOptions {
  /** File name for messages and format detection. */
  source: string;
  format?: ResponseFormat;
  /** MTurk answer field name: `Answer.<name>` (default "choice"). */
  answerField?: string;
  /** Task list: answers that carry only `task_id` get the rest from it. */
  design?: readonly Task[];
  /**
   * Prompt list: fills category/challenge (matched on prompt text) when a row lacks them; used
   * answers whose prompt is not in it are counted in {@link IngestResult.unknownPrompts}.
   */
  prompts?: readonly Prompt[];
  /** Name of the prompts file, for messages about unknown prompts. */
  promptsSource?: string;
  /**
   * Exclude every answer of a rater whose attention-check failure rate is above this (default
   * 0.34, i.e. one failure in three checks is tolerated; 1 keeps everyone).
   */
  maxCheckFailRate?: number;
}

/** Per-rater attention-check tally. */
export interface RaterChecks {
  rater: string;
  checks: number;
  failed: number;
  excluded: boolean;
}

/** How many example prompts {@link UnknownPrompts} keeps. */
export const UNKNOWN_PROMPT_EXAMPLES = 5;

/**
 * Used answers whose prompt is not in the prompt list: they count in the overall result but,
 * without a category and challenge, in no cross-section.
 */
export interface UnknownPrompts {
  /** The prompts file's name, when given. */
  promptsSource: string | null;
  /** Used answers (judgements) whose prompt is not in the list. */
  answers: number;
  /** Distinct such prompts. */
  prompts: number;
  /** The first few such prompts in file order, with the line of their first answer. */
  examples: { prompt: string; line: number }[];
}

/**
 * One line about unknown prompts, for logs, reports and `--strict` errors (prompts escaped).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeUnknownPrompts, ingestResponses } from "./ingest.ts";
 * import { parsePromptsTsv } from "./prompts.ts";
 *
 * const { prompts } = parsePromptsTsv(
 *   "Prompt\tCategory\tChallenge\tNote\na cat\tAnimals\tBasic\t\n",
 *   "p.tsv",
 * );
 * const text = "prompt,model_a,model_b,left,choice,rater\na dog,x,y,x,left,r1\n";
 * const r = ingestResponses(text, { source: "a.csv", prompts, promptsSource: "p.tsv" });
 * const line = describeUnknownPrompts(r.unknownPrompts!);
 * assert.match(line, /^1 answer .*p\.tsv.*"a dog" \(line 2\)/);
 * ```
 */
export function describeUnknownPrompts(u: UnknownPrompts): string {
  const file = u.promptsSource === null ? "" : ` ${escapeText(u.promptsSource, 200)}`;
  const more = u.prompts > u.examples.length ? ", ..." : "";
  return `${u.answers} answer${u.answers === 1 ? "" : "s"} (${u.prompts} prompt` +
    `${u.prompts === 1 ? "" : "s"}) are not in the prompts file${file}, so they count in the ` +
    `overall result but in no category or challenge: ` +
    u.examples.map((e) => `${q(e.prompt)} (line ${e.line})`).join(", ") + more;
}

/** Everything {@link ingestResponses} found. */
export interface IngestResult {
  source: string;
  format: Exclude<ResponseFormat, "auto">;
  /** Answers usable for analysis, in model space. */
  judgements: Judgement[];
  /** Every parsed answer of an accepted (not rejected) assignment, checks included. */
  answers: Answer[];
  /** Rows that did not parse, by line. */
  errors: RowError[];
  raterChecks: RaterChecks[];
  /** Used answers whose prompt is not in `prompts` (null when no prompt list was given). */
  unknownPrompts: UnknownPrompts | null;
  /**
   * Every data row is counted once: `rows = judgements + parseErrors + rejected + checks +
   * excludedByRater`.
   */
  counts: {
    /** Data rows in the file (records: a row with a multi-line quoted field counts once). */
    rows: number;
    /** Unreadable rows (listed in `errors` with their lines). */
    parseErrors: number;
    rejected: number;
    checks: number;
    checksFailed: number;
    excludedRaters: number;
    /** Real (non-check) answers dropped because their rater failed too many checks. */
    excludedByRater: number;
    judgements: number;
  };
}

type Getter = (name: string) => string | undefined;

const TRUE = new Set(["true", "1", "on", "yes"]);

function detectFormat(text: string, source: string): Exclude<ResponseFormat, "auto"> {
  if (
    /\.(jsonl|ndjson)$/i.test(source) || text.replace(/^\uFEFF/, "").trimStart().startsWith("{")
  ) {
    return "jsonl";
  }
  const firstLine = text.replace(/^\uFEFF/, "").split(/\r?\n/, 1)[0];
  return /(^|,)"?(WorkerId|Input\.[^,]*)"?(,|$)/.test(firstLine) ? "mturk" : "csv";
}

/** Turn one raw row into an {@link Answer} or throw a message for the row error. */
function toAnswer(
  get: Getter,
  line: number,
  ctx: {
    design: Map<string, Task> | null;
    prompts: Map<string, Prompt> | null;
  },
): Answer {
  const taskId = get("task_id")?.trim() ?? "";
  const task = taskId && ctx.design ? ctx.design.get(taskId) : undefined;
  if (taskId && ctx.design && !task) throw new Error(`task_id ${q(taskId)} is not in the design`);
  const field = (name: keyof Task): string => {
    const v = get(name)?.trim();
    if (v !== undefined && v !== "") return v;
    return task ? String(task[name]) : "";
  };
  const prompt = field("prompt");
  if (!prompt) throw new Error("prompt: missing or empty");
  let category = field("category");
  let challenge = field("challenge");
  let promptId = field("prompt_id");
  const known = ctx.prompts?.get(prompt);
  if (known) {
    category ||= known.category;
    challenge ||= known.challenge;
    promptId ||= known.id;
  }
  const isCheckRaw = field("is_check").toLowerCase();
  const isCheck = TRUE.has(isCheckRaw);
  if (isCheckRaw && !isCheck && !["0", "false", "no", "off"].includes(isCheckRaw)) {
    throw new Error(`is_check: expected 0/1 or true/false, got ${q(isCheckRaw)}`);
  }
  const modelA = field("model_a");
  const modelB = field("model_b");
  if (!modelA) throw new Error("model_a: missing or empty");
  if (!modelB) throw new Error("model_b: missing or empty");
  const left = field("left");
  if (!isCheck) {
    if (modelA === modelB) throw new Error(`model_a and model_b are both ${q(modelA)}`);
    if (left !== modelA && left !== modelB) {
      throw new Error(
        `left: expected ${q(modelA)} or ${q(modelB)} (model_a/model_b), got ${q(left)}`,
      );
    }
  }
  const choice = (get("choice") ?? "").trim().toLowerCase();
  if (choice !== "left" && choice !== "right" && choice !== "tie") {
    throw new Error(`choice: expected left, right or tie, got ${q(get("choice") ?? "")}`);
  }
  const rater = (get("rater") ?? "").trim();
  if (!rater) throw new Error("rater: missing or empty");
  const trialRaw = field("trial");
  const trial = trialRaw === "" ? 0 : Number(trialRaw);
  if (!Number.isInteger(trial) || trial < 0) {
    throw new Error(`trial: expected an integer >= 0, got ${q(trialRaw)}`);
  }
  const expected = field("expected").toLowerCase();
  if (isCheck && expected !== "left" && expected !== "right") {
    throw new Error(
      `expected: an attention check needs expected = left or right, got ${q(expected)}`,
    );
  }
  return {
    line,
    task_id: taskId,
    prompt_id: promptId,
    prompt,
    category,
    challenge,
    model_a: modelA,
    model_b: modelB,
    left,
    choice,
    rater,
    trial,
    is_check: isCheck,
    expected: isCheck ? expected as "left" | "right" : "",
    status: (get("status") ?? "").trim(),
  };
}

/**
 * Map a side-space answer to model space.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type Answer, toJudgement } from "./ingest.ts";
 *
 * const answer: Answer = {
 *   line: 2, task_id: "t1", prompt_id: "p0001", prompt: "a cat", category: "Animals",
 *   challenge: "Basic", model_a: "x", model_b: "y", left: "y", choice: "left", rater: "r1",
 *   trial: 1, is_check: false, expected: "", status: "",
 * };
 * assert.equal(toJudgement(answer).score, 0); // y was on the left and won: x scores 0
 * ```
 */
export function toJudgement(a: Answer): Judgement {
  const leftIsA = a.left === a.model_a;
  const score = a.choice === "tie" ? 0.5 : (a.choice === "left") === leftIsA ? 1 : 0;
  return {
    line: a.line,
    prompt_id: a.prompt_id || a.prompt,
    prompt: a.prompt,
    category: a.category,
    challenge: a.challenge,
    model_a: a.model_a,
    model_b: a.model_b,
    left_is_a: leftIsA,
    choice: a.choice,
    score,
    rater: a.rater,
    trial: a.trial,
  };
}

/** Raw rows with a field getter per row, for each layout. */
function rowsOf(
  text: string,
  format: Exclude<ResponseFormat, "auto">,
  source: string,
  answerField: string,
): { rows: { line: number; get: Getter }[]; errors: RowError[] } {
  if (format === "jsonl") {
    const { rows, errors } = parseJsonl(text, source);
    return {
      errors,
      rows: rows.map(({ line, value }) => ({
        line,
        get: (name) => {
          const v = value[name] ?? (name === "left" ? value["left_model"] : undefined);
          return v === undefined || v === null ? undefined : String(v);
        },
      })),
    };
  }
  const table = parseDelimited(text, { source });
  if (format === "csv") {
    return {
      errors: table.errors,
      rows: table.rows.map(({ line, record }) => ({
        line,
        get: (name) => record[name] ?? (name === "left" ? record["left_model"] : undefined),
      })),
    };
  }
  for (const col of ["WorkerId", "AssignmentStatus"]) {
    if (!table.header.includes(col)) {
      throw new Error(`${source}: Mechanical Turk results need a "${col}" column`);
    }
  }
  const answerCols = table.header.filter((h) => h.startsWith(`Answer.${answerField}.`));
  if (!table.header.includes(`Answer.${answerField}`) && answerCols.length === 0) {
    throw new Error(
      `${source}: no answer column "Answer.${answerField}" (or Answer.${answerField}.left/right/tie ` +
        `from crowd-radio-button); columns are ${escapeText(table.header.join(", "), 300)}`,
    );
  }
  return {
    errors: table.errors,
    rows: table.rows.map(({ line, record }) => ({
      line,
      get: (name) => {
        if (name === "rater") return record["WorkerId"];
        if (name === "status") return record["AssignmentStatus"];
        if (name === "choice") {
          const direct = record[`Answer.${answerField}`];
          if (direct !== undefined && direct.trim() !== "") return direct;
          // crowd-radio-button answers come as one boolean column per option.
          const on = answerCols.filter((c) => TRUE.has(record[c].trim().toLowerCase()));
          if (on.length === 1) return on[0].slice(`Answer.${answerField}.`.length);
          return on.length > 1 ? on.map((c) => c.split(".").pop()).join("+") : direct;
        }
        return record[`Input.${name}`] ?? record[name];
      },
    })),
  };
}

/**
 * Parse an answer file and map it to model space.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ingestResponses } from "./ingest.ts";
 * import { answersToJsonl, designStudy, loadPrompts, simulateAnswers } from "./mod.ts";
 *
 * const { prompts } = await loadPrompts("data/parti_prompts_example.tsv");
 * const tasks = designStudy(prompts, { models: ["a", "b"], trials: 1, seed: 0 });
 * const text = answersToJsonl(
 *   simulateAnswers(tasks, { seed: 0, truth: { "a vs b": { default: 0.5 } } }),
 * );
 * const r = ingestResponses(text, { source: "answers.jsonl", design: tasks });
 * assert.equal(r.counts.rows, tasks.length); // { rows, parseErrors, rejected, checks, ... }
 * assert.equal(r.counts.parseErrors, 0);
 * ```
 */
export function ingestResponses(text: string, opts: IngestOptions): IngestResult {
  const format = !opts.format || opts.format === "auto"
    ? detectFormat(text, opts.source)
    : opts.format;
  const { rows, errors: parseErrors } = rowsOf(
    text,
    format,
    opts.source,
    opts.answerField ?? "choice",
  );
  const ctx = {
    design: opts.design ? new Map(opts.design.map((t) => [t.task_id, t])) : null,
    prompts: opts.prompts ? new Map(opts.prompts.map((p) => [p.prompt, p])) : null,
  };
  const errors: RowError[] = [...parseErrors];
  const answers: Answer[] = [];
  let rejected = 0;
  for (const { line, get } of rows) {
    let a: Answer;
    try {
      a = toAnswer(get, line, ctx);
    } catch (e) {
      errors.push({ line, message: (e as Error).message });
      continue;
    }
    if (a.status.toLowerCase() === "rejected") {
      rejected++;
      continue;
    }
    answers.push(a);
  }
  errors.sort((x, y) => x.line - y.line);
  const maxFail = opts.maxCheckFailRate ?? 0.34;
  const tally = new Map<string, RaterChecks>();
  for (const a of answers) {
    if (!tally.has(a.rater)) {
      tally.set(a.rater, { rater: a.rater, checks: 0, failed: 0, excluded: false });
    }
    if (!a.is_check) continue;
    const t = tally.get(a.rater)!;
    t.checks++;
    if (a.choice !== a.expected) t.failed++;
  }
  for (const t of tally.values()) t.excluded = t.checks > 0 && t.failed / t.checks > maxFail;
  const judgements: Judgement[] = [];
  let excludedByRater = 0;
  for (const a of answers) {
    if (a.is_check) continue;
    if (tally.get(a.rater)!.excluded) {
      excludedByRater++;
      continue;
    }
    judgements.push(toJudgement(a));
  }
  const raterChecks = [...tally.values()].sort((x, y) => x.rater.localeCompare(y.rater));
  let unknownPrompts: UnknownPrompts | null = null;
  if (ctx.prompts) {
    const unknown = judgements.filter((j) => !ctx.prompts!.has(j.prompt));
    const firstLine = new Map<string, number>();
    for (const j of unknown) if (!firstLine.has(j.prompt)) firstLine.set(j.prompt, j.line);
    unknownPrompts = {
      promptsSource: opts.promptsSource ?? null,
      answers: unknown.length,
      prompts: firstLine.size,
      examples: [...firstLine].slice(0, UNKNOWN_PROMPT_EXAMPLES).map(([prompt, line]) => ({
        prompt,
        line,
      })),
    };
  }
  const checks = answers.filter((a) => a.is_check);
  return {
    source: opts.source,
    format,
    judgements,
    answers,
    errors,
    raterChecks,
    unknownPrompts,
    counts: {
      rows: rows.length + parseErrors.length,
      parseErrors: errors.length,
      rejected,
      checks: checks.length,
      checksFailed: checks.filter((a) => a.choice !== a.expected).length,
      excludedRaters: raterChecks.filter((t) => t.excluded).length,
      excludedByRater,
      judgements: judgements.length,
    },
  };
}
