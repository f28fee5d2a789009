/**
 * Study design: the task list of a pairwise preference study ("Which image better follows the
 * prompt?"): prompts x model pairs x trials, the left/right order drawn from a seed and recorded,
 * optional stratified subsampling of prompts, and attention-check items with a known answer.
 *
 * An attention check shows one model's image for the prompt next to the same model's image for a
 * *different* prompt: the image made for the prompt is the known answer, so a rater who reads the
 * prompt cannot miss it.
 *
 * Exports: a CSV with one row per HIT (what Mechanical Turk's "Publish batch" and similar tools
 * read: each column becomes a template variable, e.g. `${prompt}`, `${image_left}`) and JSONL.
 *
 * @example
 * ```ts
 * import { designStudy, tasksToCsv } from "./design.ts";
 * import { loadPrompts } from "./prompts.ts";
 *
 * const { prompts } = await loadPrompts("data/parti_prompts_example.tsv");
 * const tasks = designStudy(prompts, { models: ["xgen", "sd15", "sd21"], trials: 6, seed: 1 });
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/tasks.csv`, tasksToCsv(tasks));
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */
import { Rng } from "../../util/rng.ts";
import { formatCsv, parseDelimited, parseJsonl } from "./csv.ts";
import { escapeExcerpt } from "./text_input.ts";
import type { Prompt } from "./prompts.ts";

/** Random sub-stream for design draws (order, subsampling, checks). */
export const DESIGN_STREAM = 41;

/** Which side a rater picked. */
export type Choice = "left" | "right" | "tie";

/** One HIT: a prompt and two images. */
export interface Task {
  task_id: string;
  prompt_id: string;
  prompt: string;
  category: string;
  challenge: string;
  /** The comparison is always reported as model_a vs model_b. */
  model_a: string;
  model_b: string;
  trial: number;
  /** Model whose image is on the left / right (for checks: the same model on both sides). */
  left: string;
  right: string;
  image_left: string;
  image_right: string;
  /** 1 for an attention check, else 0. */
  is_check: 0 | 1;
  /** The known answer of an attention check ("" for real items). */
  expected: "" | "left" | "right";
}

/** Columns of the task CSV/JSONL, in order. */
export const TASK_COLUMNS: readonly (keyof Task)[] = [
  "task_id",
  "prompt_id",
  "prompt",
  "category",
  "challenge",
  "model_a",
  "model_b",
  "trial",
  "left",
  "right",
  "image_left",
  "image_right",
  "is_check",
  "expected",
];

/** Options for {@link designStudy}. */
export interface DesignOptions {
  /** Models; with `pairs` unset, the first is compared against each of the others. */
  models: string[];
  /** Explicit pairs `[a, b]` (reported as a vs b); "all" for every pair. */
  pairs?: [string, string][] | "all";
  /** Repetitions of each (prompt, pair), each with its own image and side draw (default 6). */
  trials?: number;
  seed?: number;
  /**
   * Image path/URL template with `{model}`, `{prompt_id}`, `{trial}` (0-based)
   * (default `images/{model}/{prompt_id}_{trial}.png`).
   */
  imageTemplate?: string;
  /** Keep at most `perGroup` prompts per category or challenge (drawn with the seed). */
  stratify?: { by: "category" | "challenge"; perGroup: number };
  /** Attention checks to add, as a fraction of the real items (default 0.05; 0 for none). */
  checkFraction?: number;
  /** Shuffle the task order (default true): raters should not see one prompt six times in a row. */
  shuffle?: boolean;
}

/** The model pairs a design compares. */
export function resolvePairs(
  models: readonly string[],
  pairs?: [string, string][] | "all",
): [string, string][] {
  if (models.length < 2) throw new Error(`design: need at least 2 models, got ${models.length}`);
  const dup = models.find((m, i) => models.indexOf(m) !== i);
  if (dup !== undefined) throw new Error(`design: model "${dup}" is listed twice`);
  if (pairs === "all") {
    return models.flatMap((a, i) => models.slice(i + 1).map((b): [string, string] => [a, b]));
  }
  if (pairs) {
    for (const [a, b] of pairs) {
      for (const m of [a, b]) {
        if (!models.includes(m)) throw new Error(`design: pair model "${m}" is not in models`);
      }
      if (a === b) throw new Error(`design: pair "${a} vs ${b}" compares a model with itself`);
    }
    return pairs;
  }
  return models.slice(1).map((b): [string, string] => [models[0], b]);
}

/**
 * Stratified subsample: at most `perGroup` prompts from each group, drawn with `rng`, returned in
 * file order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stratifiedSubsample } from "./design.ts";
 * import { loadPrompts } from "./prompts.ts";
 * import { Rng } from "../../util/rng.ts";
 *
 * const { prompts } = await loadPrompts("data/parti_prompts_example.tsv");
 * const some = stratifiedSubsample(prompts, { by: "category", perGroup: 2 }, Rng.stream(0));
 * const perCategory = Map.groupBy(some, (p) => p.category);
 * assert.ok([...perCategory.values()].every((g) => g.length <= 2));
 * ```
 */
export function stratifiedSubsample(
  prompts: readonly Prompt[],
  opts: { by: "category" | "challenge"; perGroup: number },
  rng: Rng,
): Prompt[] {
  if (!(opts.perGroup >= 1)) {
    throw new Error(`stratify: perGroup must be >= 1, got ${opts.perGroup}`);
  }
  const groups = new Map<string, number[]>();
  prompts.forEach((p, i) => {
    const g = p[opts.by];
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g)!.push(i);
  });
  const keep = new Set<number>();
  for (const g of [...groups.keys()].sort()) {
    rng.shuffle(groups.get(g)!).slice(0, opts.perGroup).forEach((i) => keep.add(i));
  }
  return prompts.filter((_, i) => keep.has(i));
}

function imagePath(template: string, model: string, promptId: string, trial: number): string {
  return template.replaceAll("{model}", model).replaceAll("{prompt_id}", promptId)
    .replaceAll("{trial}", String(trial));
}

/**
 * Build the task list.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { designStudy } from "./design.ts";
 * import { loadPrompts } from "./prompts.ts";
 *
 * const { prompts } = await loadPrompts("data/parti_prompts_example.tsv"); // 43 prompts
 * const tasks = designStudy(prompts, { models: ["ours", "sd15"], trials: 2, seed: 0 });
 * const checks = tasks.filter((t) => t.is_check).length; // about 5% of the real items
 * assert.equal(tasks.length - checks, 43 * 2);
 * assert.ok(checks >= 1);
 * ```
 */
export function designStudy(prompts: readonly Prompt[], opts: DesignOptions): Task[] {
  const trials = opts.trials ?? 6;
  if (!Number.isInteger(trials) || trials < 1) {
    throw new Error(`design: trials must be an integer >= 1, got ${trials}`);
  }
  const seed = opts.seed ?? 0;
  const template = opts.imageTemplate ?? "images/{model}/{prompt_id}_{trial}.png";
  const pairs = resolvePairs(opts.models, opts.pairs);
  const chosen = opts.stratify
    ? stratifiedSubsample(prompts, opts.stratify, Rng.stream(seed, [DESIGN_STREAM, 1]))
    : [...prompts];
  if (chosen.length === 0) throw new Error("design: no prompts to design a study on");
  const sides = Rng.stream(seed, [DESIGN_STREAM, 2]);
  const tasks: Task[] = [];
  for (const p of chosen) {
    for (const [a, b] of pairs) {
      for (let t = 0; t < trials; t++) {
        const aLeft = sides.uniform() < 0.5;
        const [left, right] = aLeft ? [a, b] : [b, a];
        tasks.push({
          task_id: "",
          prompt_id: p.id,
          prompt: p.prompt,
          category: p.category,
          challenge: p.challenge,
          model_a: a,
          model_b: b,
          trial: t,
          left,
          right,
          image_left: imagePath(template, left, p.id, t),
          image_right: imagePath(template, right, p.id, t),
          is_check: 0,
          expected: "",
        });
      }
    }
  }
  const fraction = opts.checkFraction ?? 0.05;
  if (!(fraction >= 0)) throw new Error(`design: checkFraction must be >= 0, got ${fraction}`);
  const nChecks = fraction > 0 && chosen.length >= 2
    ? Math.max(1, Math.round(fraction * tasks.length))
    : 0;
  const checks = Rng.stream(seed, [DESIGN_STREAM, 3]);
  const models = [...new Set(pairs.flat())];
  for (let c = 0; c < nChecks; c++) {
    const pi = checks.int(chosen.length);
    // A different prompt's image is the decoy.
    const qi = (pi + 1 + checks.int(chosen.length - 1)) % chosen.length;
    const m = models[checks.int(models.length)];
    const trial = checks.int(trials);
    const p = chosen[pi];
    const right = imagePath(template, m, chosen[qi].id, trial);
    const good = imagePath(template, m, p.id, trial);
    const goodLeft = checks.uniform() < 0.5;
    tasks.push({
      task_id: "",
      prompt_id: p.id,
      prompt: p.prompt,
      category: p.category,
      challenge: p.challenge,
      model_a: m,
      model_b: m,
      trial,
      left: m,
      right: m,
      image_left: goodLeft ? good : right,
      image_right: goodLeft ? right : good,
      is_check: 1,
      expected: goodLeft ? "left" : "right",
    });
  }
  if (opts.shuffle ?? true) Rng.stream(seed, [DESIGN_STREAM, 4]).shuffle(tasks);
  const width = String(tasks.length).length;
  tasks.forEach((t, i) => t.task_id = `t${String(i + 1).padStart(Math.max(5, width), "0")}`);
  return tasks;
}

/**
 * The task list as CSV, one row per HIT (columns {@link TASK_COLUMNS}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { designStudy, tasksToCsv } from "./design.ts";
 * import { loadPrompts } from "./prompts.ts";
 *
 * const { prompts } = await loadPrompts("data/parti_prompts_example.tsv");
 * const tasks = designStudy(prompts.slice(0, 3), { models: ["a", "b"], trials: 1, seed: 0 });
 * const csv = tasksToCsv(tasks); // write it with Deno.writeTextFile("tasks.csv", csv)
 * assert.ok(csv.startsWith("task_id,prompt_id,prompt,"));
 * ```
 */
export function tasksToCsv(tasks: readonly Task[]): string {
  return formatCsv(TASK_COLUMNS, tasks.map((t) => TASK_COLUMNS.map((c) => t[c])));
}

/**
 * The task list as JSON Lines (one task object per line).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { designStudy, parseTasks, tasksToJsonl } from "./design.ts";
 * import { loadPrompts } from "./prompts.ts";
 *
 * const { prompts } = await loadPrompts("data/parti_prompts_example.tsv");
 * const tasks = designStudy(prompts.slice(0, 3), { models: ["a", "b"], trials: 1, seed: 0 });
 * const jsonl = tasksToJsonl(tasks); // write it with Deno.writeTextFile("tasks.jsonl", jsonl)
 * assert.deepEqual(parseTasks(jsonl, "tasks.jsonl"), tasks);
 * ```
 */
export function tasksToJsonl(tasks: readonly Task[]): string {
  return tasks.map((t) => JSON.stringify(t)).join("\n") + (tasks.length ? "\n" : "");
}

/**
 * Read a task list back from {@link tasksToCsv} or {@link tasksToJsonl} output (JSONL when the
 * name ends in .jsonl or the text starts with `{`). Any bad row is an error naming its line: a
 * design must be complete.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { designStudy, parseTasks, tasksToCsv } from "./design.ts";
 * import { loadPrompts } from "./prompts.ts";
 *
 * const { prompts } = await loadPrompts("data/parti_prompts_example.tsv");
 * const tasks = designStudy(prompts.slice(0, 3), { models: ["a", "b"], trials: 1, seed: 0 });
 * // Usually parseTasks(await Deno.readTextFile("out/tasks.csv"), "out/tasks.csv").
 * assert.deepEqual(parseTasks(tasksToCsv(tasks), "tasks.csv"), tasks);
 * ```
 */
export function parseTasks(text: string, source: string): Task[] {
  const jsonl = /\.jsonl$/i.test(source) || text.trimStart().startsWith("{");
  const rows: { line: number; get: (c: string) => unknown }[] = [];
  if (jsonl) {
    const r = parseJsonl(text, source);
    if (r.errors.length) {
      throw new Error(`${source} line ${r.errors[0].line}: ${r.errors[0].message}`);
    }
    r.rows.forEach(({ line, value }) => rows.push({ line, get: (c) => value[c] }));
  } else {
    const t = parseDelimited(text, { source });
    if (t.errors.length) {
      throw new Error(`${source} line ${t.errors[0].line}: ${t.errors[0].message}`);
    }
    t.rows.forEach(({ line, record }) => rows.push({ line, get: (c) => record[c] }));
  }
  return rows.map(({ line, get }) => {
    const str = (c: keyof Task) => {
      const v = get(c);
      if (v === undefined || v === null) {
        throw new Error(`${source} line ${line}: missing field "${c}"`);
      }
      return String(v);
    };
    const trial = Number(str("trial"));
    const isCheck = str("is_check");
    const expected = str("expected");
    if (!Number.isInteger(trial) || trial < 0) {
      throw new Error(
        `${source} line ${line}: trial must be an integer >= 0, got ${escapeExcerpt(str("trial"))}`,
      );
    }
    if (!["0", "1"].includes(isCheck)) {
      throw new Error(
        `${source} line ${line}: is_check must be 0 or 1, got ${escapeExcerpt(isCheck)}`,
      );
    }
    if (!["", "left", "right"].includes(expected)) {
      throw new Error(
        `${source} line ${line}: expected must be "", left or right, got ${
          escapeExcerpt(expected)
        }`,
      );
    }
    return {
      task_id: str("task_id"),
      prompt_id: str("prompt_id"),
      prompt: str("prompt"),
      category: str("category"),
      challenge: str("challenge"),
      model_a: str("model_a"),
      model_b: str("model_b"),
      trial,
      left: str("left"),
      right: str("right"),
      image_left: str("image_left"),
      image_right: str("image_right"),
      is_check: isCheck === "1" ? 1 : 0,
      expected: expected as Task["expected"],
    };
  });
}
