/**
 * `deno task human-eval`: the human preference study loop.
 *
 * - `deno task human-eval design --prompts TSV|URL --models a,b,c --trials 6 --out DIR`
 *   writes `DIR/tasks.csv` (one row per HIT, for Mechanical Turk and similar), `DIR/tasks.jsonl`
 *   and `DIR/design.json`.
 * - `deno task human-eval simulate --design DIR/tasks.jsonl --out answers.csv` writes simulated
 *   answers (Mechanical Turk batch-results CSV, plain CSV or JSONL).
 * - `deno task human-eval [analyze] --responses FILE [--prompts TSV] [--strict] --out DIR` writes
 *   `DIR/summary.json` and `DIR/report.html`. Intervals are the prompt-cluster bootstrap (2000
 *   seeded replicates) unless `--interval wilson`; Wilson is reported beside it either way.
 *   `--strict` refuses answers whose prompt is not in `--prompts` (they would count in the
 *   overall result but in no category or challenge).
 *
 * @example
 * ```sh
 * deno task human-eval design --prompts data/parti_prompts_example.tsv --models ours,sd15,sd21 --out runs/study
 * deno task human-eval simulate --design runs/study/tasks.jsonl --out runs/study/answers.csv
 * deno task human-eval --responses runs/study/answers.csv --out runs/study/analysis
 * ```
 * @module
 */
import { type FlagSpec, helpText, parseFlags, runMain, SEED_RANGE, UsageError } from "./args.ts";
import { writeJsonAtomic, writeTextAtomic } from "../util/atomic.ts";
import {
  analyzeStudy,
  answersToCsv,
  answersToJsonl,
  answersToMturkCsv,
  DEFAULT_BOOTSTRAP_REPS,
  describeUnknownPrompts,
  designStudy,
  ingestResponses,
  loadPrompts,
  parseTasks,
  PARTI_PROMPTS_URL,
  type Prompt,
  readTextInput,
  reportHtml,
  type ResponseFormat,
  type RowError,
  simulateAnswers,
  summaryText,
  type Task,
  tasksToCsv,
  tasksToJsonl,
  type TruthTable,
} from "../eval/human/mod.ts";

const DESIGN_SPEC = {
  prompts: { type: "string", default: PARTI_PROMPTS_URL, help: "PartiPrompts TSV path or URL" },
  models: { type: "string", required: true, help: "comma-separated models, yours first" },
  pairs: {
    type: "choice",
    choices: ["first", "all"],
    default: "first",
    help: "first: the first model vs each other; all: every pair",
  },
  trials: { type: "int", default: 6, min: 1, max: 1000, help: "answers per (prompt, pair)" },
  seed: {
    type: "int",
    default: 0,
    ...SEED_RANGE,
    help: "seed for sides, subsampling, checks, order",
  },
  "per-category": {
    type: "int",
    min: 1,
    max: 1_000_000,
    help: "keep at most N prompts per category",
  },
  "per-challenge": {
    type: "int",
    min: 1,
    max: 1_000_000,
    help: "keep at most N prompts per challenge",
  },
  checks: { type: "float", default: 0.05, min: 0, max: 1, help: "attention checks per real item" },
  "image-template": {
    type: "string",
    default: "images/{model}/{prompt_id}_{trial}.png",
    help: "image path/URL with {model}, {prompt_id}, {trial}",
  },
  out: { type: "string", required: true, help: "output folder" },
} satisfies FlagSpec;

const SIMULATE_SPEC = {
  design: { type: "string", required: true, help: "tasks.jsonl or tasks.csv from design" },
  out: { type: "string", required: true, help: "answers file to write" },
  format: { type: "choice", choices: ["mturk", "csv", "jsonl"], default: "mturk", help: "layout" },
  truth: {
    type: "string",
    help: 'JSON file {"a vs b": {"default": 0.6, "<category>": 0.7}} (default: --preference)',
  },
  preference: { type: "float", default: 0.6, min: 0, max: 1, help: "true preference of model_a" },
  seed: { type: "int", default: 1, ...SEED_RANGE, help: "simulation seed" },
  raters: { type: "int", default: 40, min: 1, max: 1_000_000, help: "rater pool size" },
  lapse: { type: "float", default: 0.1, min: 0, max: 1, help: "probability of a blind answer" },
  ties: { type: "float", default: 0.1, min: 0, max: 1, help: "probability of a tie" },
  "prompt-effect": {
    type: "float",
    default: 4,
    min: 0,
    max: 1e9,
    help: "Beta concentration of per-prompt preference (large = no prompt effect)",
  },
  spammers: {
    type: "float",
    default: 0.05,
    min: 0,
    max: 1,
    help: "fraction of raters who never look",
  },
  reject: {
    type: "float",
    default: 0.01,
    min: 0,
    max: 1,
    help: "fraction of rejected assignments",
  },
} satisfies FlagSpec;

const ANALYZE_SPEC = {
  responses: { type: "string", required: true, help: "answers: MTurk batch CSV, CSV or JSONL" },
  prompts: { type: "string", help: "PartiPrompts TSV path or URL (fills category/challenge)" },
  design: { type: "string", help: "tasks.jsonl/csv, for answers that carry only task_id" },
  out: { type: "string", default: "human_eval", help: "output folder" },
  format: {
    type: "choice",
    choices: ["auto", "mturk", "csv", "jsonl"],
    default: "auto",
    help: "answer file layout",
  },
  "answer-field": { type: "string", default: "choice", help: "MTurk Answer.<field> name" },
  interval: {
    type: "choice",
    choices: ["bootstrap", "wilson"],
    default: "bootstrap",
    help: "headline interval: prompt-cluster bootstrap, or Wilson (assumes independent answers; " +
      "reported beside the bootstrap either way)",
  },
  bootstrap: {
    type: "int",
    default: DEFAULT_BOOTSTRAP_REPS,
    min: 0,
    max: 1_000_000,
    help: "prompt bootstrap replicates (0 skips it; needs --interval wilson)",
  },
  strict: {
    type: "bool",
    default: false,
    help: "fail when an answer's prompt is not in --prompts (instead of reporting it)",
  },
  "bt-bootstrap": {
    type: "int",
    default: 200,
    min: 0,
    max: 1_000_000,
    help: "Bradley-Terry bootstrap reps",
  },
  confidence: {
    type: "float",
    default: 0.95,
    min: 0,
    minExclusive: true,
    max: 0.999,
    help: "interval level",
  },
  seed: { type: "int", default: 0, ...SEED_RANGE, help: "bootstrap seed" },
  "max-check-fail": {
    type: "float",
    default: 0.34,
    min: 0,
    max: 1,
    help: "exclude raters failing more than this share of attention checks",
  },
} satisfies FlagSpec;

const SUMMARY = "human preference study: design, simulate, analyze";

function printRowErrors(source: string, errors: readonly RowError[]): void {
  for (const e of errors.slice(0, 20)) {
    console.error(`${source}:${e.line}: ${e.message} (excluded)`);
  }
  if (errors.length > 20) console.error(`... and ${errors.length - 20} more rows excluded`);
}

async function runDesign(argv: string[]): Promise<void> {
  const f = parseFlags(argv, DESIGN_SPEC, "human-eval design");
  if (f.help) return console.log(helpText("deno task human-eval design", SUMMARY, DESIGN_SPEC));
  const models = f.models.split(",").map((m) => m.trim()).filter((m) => m);
  if (models.length < 2) throw new UsageError("human-eval design: --models needs at least 2 names");
  if (f["per-category"] && f["per-challenge"]) {
    throw new UsageError("human-eval design: give --per-category or --per-challenge, not both");
  }
  const list = await loadPrompts(f.prompts);
  printRowErrors(list.source, list.errors);
  const stratify = f["per-category"]
    ? { by: "category" as const, perGroup: f["per-category"] }
    : f["per-challenge"]
    ? { by: "challenge" as const, perGroup: f["per-challenge"] }
    : undefined;
  const tasks = designStudy(list.prompts, {
    models,
    pairs: f.pairs === "all" ? "all" : undefined,
    trials: f.trials,
    seed: f.seed,
    stratify,
    checkFraction: f.checks,
    imageTemplate: f["image-template"],
  });
  await Deno.mkdir(f.out, { recursive: true });
  await writeTextAtomic(`${f.out}/tasks.csv`, tasksToCsv(tasks));
  await writeTextAtomic(`${f.out}/tasks.jsonl`, tasksToJsonl(tasks));
  const checks = tasks.filter((t) => t.is_check).length;
  await writeJsonAtomic(`${f.out}/design.json`, {
    prompts: f.prompts,
    promptsUsed: new Set(tasks.map((t) => t.prompt_id)).size,
    promptRowsExcluded: list.errors,
    models,
    pairs: [
      ...new Set(tasks.filter((t) => !t.is_check).map((t) => `${t.model_a} vs ${t.model_b}`)),
    ],
    trials: f.trials,
    seed: f.seed,
    stratify: stratify ?? null,
    tasks: tasks.length,
    attentionChecks: checks,
    imageTemplate: f["image-template"],
  });
  console.log(
    `wrote ${f.out}/tasks.csv and tasks.jsonl: ${tasks.length} tasks (${checks} attention checks)`,
  );
}

async function runSimulate(argv: string[]): Promise<void> {
  const f = parseFlags(argv, SIMULATE_SPEC, "human-eval simulate");
  if (f.help) return console.log(helpText("deno task human-eval simulate", SUMMARY, SIMULATE_SPEC));
  const tasks = parseTasks(await readTextInput(f.design, "task list"), f.design);
  let truth: TruthTable;
  if (f.truth) {
    try {
      truth = JSON.parse(await readTextInput(f.truth, "truth table"));
    } catch (e) {
      throw new Error(
        `${f.truth}: expected JSON {"a vs b": {"default": p}}: ${(e as Error).message}`,
      );
    }
  } else {
    truth = {};
    for (const t of tasks) truth[`${t.model_a} vs ${t.model_b}`] = { default: f.preference };
  }
  const sim = simulateAnswers(tasks, {
    seed: f.seed,
    truth,
    raters: f.raters,
    lapse: f.lapse,
    tieRate: f.ties,
    promptConcentration: f["prompt-effect"],
    spammerFraction: f.spammers,
    rejectFraction: f.reject,
  });
  const text = f.format === "mturk"
    ? answersToMturkCsv(sim)
    : f.format === "csv"
    ? answersToCsv(sim)
    : answersToJsonl(sim);
  await writeTextAtomic(f.out, text);
  console.log(`wrote ${f.out}: ${sim.length} simulated answers (${f.format})`);
}

async function runAnalyze(argv: string[]): Promise<void> {
  const f = parseFlags(argv, ANALYZE_SPEC, "human-eval");
  if (f.help) return console.log(helpText("deno task human-eval [analyze]", SUMMARY, ANALYZE_SPEC));
  if (f.interval === "bootstrap" && f.bootstrap < 1) {
    throw new UsageError(
      "human-eval: --interval bootstrap needs --bootstrap >= 1 (or use --interval wilson)",
    );
  }
  if (f.strict && !f.prompts) {
    throw new UsageError("human-eval: --strict checks answers against --prompts; give --prompts");
  }
  let prompts: Prompt[] | undefined;
  if (f.prompts) {
    const list = await loadPrompts(f.prompts);
    printRowErrors(list.source, list.errors);
    prompts = list.prompts;
  }
  let design: Task[] | undefined;
  if (f.design) design = parseTasks(await readTextInput(f.design, "task list"), f.design);
  const ing = ingestResponses(await readTextInput(f.responses, "answers"), {
    source: f.responses,
    format: f.format as ResponseFormat,
    answerField: f["answer-field"],
    design,
    prompts,
    promptsSource: f.prompts,
    maxCheckFailRate: f["max-check-fail"],
  });
  printRowErrors(f.responses, ing.errors);
  if (f.strict && ing.unknownPrompts && ing.unknownPrompts.answers > 0) {
    throw new Error(`human-eval --strict: ${describeUnknownPrompts(ing.unknownPrompts)}`);
  }
  const summary = analyzeStudy(ing, {
    method: f.interval as "wilson" | "bootstrap",
    confidence: f.confidence,
    bootstrapReps: f.bootstrap,
    btReps: f["bt-bootstrap"],
    seed: f.seed,
  });
  await Deno.mkdir(f.out, { recursive: true });
  await writeJsonAtomic(`${f.out}/summary.json`, summary);
  await writeTextAtomic(`${f.out}/report.html`, reportHtml(summary));
  const c = ing.counts;
  // Every data row is in exactly one of these buckets.
  console.log(
    `${c.rows} rows: ${c.judgements} used, ${c.parseErrors} unreadable, ${c.rejected} rejected, ` +
      `${c.checks} checks (${c.checksFailed} failed), ${c.excludedRaters} raters excluded ` +
      `(${c.excludedByRater} answers)`,
  );
  console.log(summaryText(summary));
  console.log(`wrote ${f.out}/summary.json and ${f.out}/report.html`);
}

if (import.meta.main) {
  await runMain(async () => {
    const [first, ...rest] = Deno.args;
    if (first === "design") return await runDesign(rest);
    if (first === "simulate") return await runSimulate(rest);
    if (first === "analyze") return await runAnalyze(rest);
    if (first !== undefined && !first.startsWith("-")) {
      throw new UsageError(
        `human-eval: unknown command "${first}" (expected design, simulate or analyze)`,
      );
    }
    await runAnalyze(Deno.args);
  });
}
