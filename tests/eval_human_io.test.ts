/**
 * Human evaluation input/output: PartiPrompts TSV quirks, the task design (sides recorded and
 * balanced, stratification, attention checks), answer ingestion (left/right mapping, ties, row
 * errors by line, rejected assignments, failed checks), the Mechanical Turk round trip and the
 * command line.
 */
import assert from "node:assert/strict";
import {
  type Answer,
  answersToCsv,
  answersToJsonl,
  answersToMturkCsv,
  designStudy,
  formatCsv,
  ingestResponses,
  loadPrompts,
  parseDelimited,
  parsePromptsTsv,
  parseTasks,
  type Prompt,
  simulateAnswers,
  type Task,
  tasksToCsv,
  tasksToJsonl,
  toJudgement,
} from "../lib/eval/human/mod.ts";
import { cli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

const EXAMPLE = new URL("../data/parti_prompts_example.tsv", import.meta.url);

function prompts(n: number, categories = ["A", "B", "C"]): Prompt[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `p${i}`,
    prompt: `prompt number ${i}`,
    category: categories[i % categories.length],
    challenge: i % 2 ? "Basic" : "Complex",
    note: "",
  }));
}

Deno.test("prompts TSV: quotes kept literally, trimming, bad rows by line", () => {
  const text = "Prompt\tCategory\tChallenge\tNote\n" +
    '"G O" painted on a wall\tIllustrations\tWriting & Symbols\t\n' +
    '"a sign that says ""hi"""\tIllustrations\tWriting & Symbols\tquotes are not TSV quoting\n' +
    " a sloth \tAnimals\tBasic\t\n" +
    "missing fields\tAnimals\n" +
    "\tAnimals\tBasic\tempty prompt\n" +
    "a “curly” café\tArts\tStyle & Format\t\n";
  const list = parsePromptsTsv(text, "p.tsv");
  assert.deepEqual(list.prompts.map((p) => p.prompt), [
    '"G O" painted on a wall',
    '"a sign that says ""hi"""',
    "a sloth",
    "a “curly” café",
  ]);
  // Ids follow the data-row number, so skipped rows (4 and 5) leave gaps.
  assert.deepEqual(list.prompts.map((p) => p.id), ["p0001", "p0002", "p0003", "p0006"]);
  assert.deepEqual(list.errors.map((e) => e.line), [5, 6]);
  assert.match(list.errors[0].message, /expected 4 fields .* got 2/);
  assert.match(list.errors[1].message, /empty prompt/);
  assert.throws(
    () => parsePromptsTsv("Text\tCategory\n", "bad.tsv"),
    /bad\.tsv: missing column "Prompt"/,
  );
});

Deno.test("the shipped example prompts parse cleanly and cover several cross-sections", async () => {
  const list = await loadPrompts(EXAMPLE.pathname);
  assert.deepEqual(list.errors, []);
  assert.ok(list.prompts.length >= 40, `${list.prompts.length} prompts`);
  assert.ok(new Set(list.prompts.map((p) => p.category)).size >= 10);
  assert.ok(new Set(list.prompts.map((p) => p.challenge)).size >= 10);
  assert.ok(list.prompts.some((p) => p.prompt.startsWith('"')), "a literal leading quote");
});

Deno.test("an unreachable prompts URL says how to use a local copy", async () => {
  const offline = (() => Promise.reject(new TypeError("dns error"))) as typeof fetch;
  await assert.rejects(
    loadPrompts("https://example.invalid/PartiPrompts.tsv", { fetch: offline }),
    /cannot download the prompts \(offline\?\).*--prompts path\/to\/PartiPrompts\.tsv/,
  );
  const notFound = (() => Promise.resolve(new Response("no", { status: 404 }))) as typeof fetch;
  await assert.rejects(
    loadPrompts("https://example.invalid/x.tsv", { fetch: notFound }),
    /HTTP 404.*--prompts/,
  );
  const ok = (() =>
    Promise.resolve(
      new Response("Prompt\tCategory\tChallenge\tNote\na cat\tAnimals\tBasic\t\n"),
    )) as typeof fetch;
  const list = await loadPrompts("https://example.invalid/y.tsv", { fetch: ok });
  assert.equal(list.prompts[0].prompt, "a cat");
  await assert.rejects(loadPrompts("/nonexistent/p.tsv"), /\/nonexistent\/p\.tsv: cannot read/);
});

Deno.test("CSV writer and reader round-trip awkward fields", () => {
  const rows = [["a,b", 'say "hi"', "two\nlines"], [" edge ", "", "plain"]];
  const table = parseDelimited(formatCsv(["x", "y", "z"], rows), { source: "t.csv" });
  assert.deepEqual(table.rows.map((r) => [r.record.x, r.record.y, r.record.z]), rows);
  assert.deepEqual(table.rows.map((r) => r.line), [3, 4]);
  // A quote that never closes makes its row unreadable, at its line (the file is still read).
  const open = parseDelimited('x\n"open', { source: "u.csv" });
  assert.deepEqual(open.rows, []);
  assert.deepEqual(open.errors.map((e) => e.line), [2]);
  assert.match(open.errors[0].message, /line 2 never closes/);
  assert.throws(() => parseDelimited('"x\nopen', { source: "u.csv" }), /u\.csv line 1: header/);
});

Deno.test("design: pairs x trials, sides drawn and recorded, reproducible, checks with answers", () => {
  const ps = prompts(30);
  const tasks = designStudy(ps, { models: ["ours", "sd15", "sd21"], trials: 6, seed: 7 });
  const real = tasks.filter((t) => !t.is_check);
  assert.equal(real.length, 30 * 2 * 6);
  assert.equal(tasks.length - real.length, Math.round(0.05 * real.length));
  assert.deepEqual(
    [...new Set(real.map((t) => `${t.model_a} vs ${t.model_b}`))].sort(),
    ["ours vs sd15", "ours vs sd21"],
  );
  for (const t of real) {
    assert.ok(t.left === t.model_a || t.left === t.model_b);
    assert.equal(t.right, t.left === t.model_a ? t.model_b : t.model_a);
    assert.equal(t.image_left, `images/${t.left}/${t.prompt_id}_${t.trial}.png`);
  }
  // Sides are random: about half with model_a on the left (360 items, sd 9.5).
  const aLeft = real.filter((t) => t.left === t.model_a).length;
  assert.ok(Math.abs(aLeft - 180) < 40, `a on the left ${aLeft} of 360`);
  assert.equal(new Set(tasks.map((t) => t.task_id)).size, tasks.length);
  assert.deepEqual(
    designStudy(ps, { models: ["ours", "sd15", "sd21"], trials: 6, seed: 7 }),
    tasks,
  );
  assert.notDeepEqual(
    designStudy(ps, { models: ["ours", "sd15", "sd21"], trials: 6, seed: 8 }),
    tasks,
  );
  // An attention check shows the prompt's own image on the expected side and a decoy opposite.
  for (const t of tasks.filter((t) => t.is_check)) {
    const good = t.expected === "left" ? t.image_left : t.image_right;
    const decoy = t.expected === "left" ? t.image_right : t.image_left;
    assert.match(good, new RegExp(`/${t.prompt_id}_`));
    assert.doesNotMatch(decoy, new RegExp(`/${t.prompt_id}_`));
  }
  const all = designStudy(ps, {
    models: ["a", "b", "c"],
    pairs: "all",
    trials: 1,
    checkFraction: 0,
  });
  assert.equal(all.length, 30 * 3);
});

Deno.test("design: stratified subsampling keeps at most N per group, and exports round-trip", () => {
  const ps = prompts(40, ["A", "B", "C", "D"]); // 10 per category
  const tasks = designStudy(ps, {
    models: ["x", "y"],
    trials: 2,
    seed: 1,
    stratify: { by: "category", perGroup: 3 },
  });
  const used = new Map<string, Set<string>>();
  for (const t of tasks.filter((t) => !t.is_check)) {
    if (!used.has(t.category)) used.set(t.category, new Set());
    used.get(t.category)!.add(t.prompt_id);
  }
  assert.deepEqual([...used.values()].map((s) => s.size), [3, 3, 3, 3]);
  assert.deepEqual(parseTasks(tasksToCsv(tasks), "t.csv"), tasks);
  assert.deepEqual(parseTasks(tasksToJsonl(tasks), "t.jsonl"), tasks);
});

function answer(over: Partial<Answer>): Answer {
  return {
    line: 1,
    task_id: "t1",
    prompt_id: "p1",
    prompt: "p",
    category: "A",
    challenge: "Basic",
    model_a: "x",
    model_b: "y",
    left: "x",
    choice: "left",
    rater: "r",
    trial: 0,
    is_check: false,
    expected: "",
    status: "",
    ...over,
  };
}

Deno.test("left/right map back to models; ties score half", () => {
  const cases: [string, Answer["choice"], number][] = [
    ["x", "left", 1],
    ["x", "right", 0],
    ["y", "left", 0],
    ["y", "right", 1],
    ["x", "tie", 0.5],
    ["y", "tie", 0.5],
  ];
  for (const [left, choice, score] of cases) {
    const j = toJudgement(answer({ left, choice }));
    assert.equal(j.score, score, `left=${left} choice=${choice}`);
    assert.equal(j.left_is_a, left === "x");
  }
});

Deno.test("plain CSV: bad rows are reported with their line and excluded, not dropped", () => {
  const csv = [
    "prompt,model_a,model_b,left,choice,rater,trial",
    "a cat,x,y,x,left,r1,0", // line 2: x wins
    "a cat,x,y,y,LEFT,r2,1", // line 3: y wins (case-insensitive choice)
    "a cat,x,y,x,tie,r3,2", // line 4
    "a dog,x,y,z,left,r1,0", // line 5: bad left
    "a dog,x,y,x,maybe,r1,0", // line 6: bad choice
    "a dog,x,y,x,left,,0", // line 7: no rater
    "a dog,x,y,x,left,r1", // line 8: missing field
    '"a ""quoted"" dog",x,y,y,left,r2,0', // line 9: y on the left, picked -> y wins
  ].join("\n");
  const r = ingestResponses(csv, { source: "a.csv" });
  assert.equal(r.format, "csv");
  assert.deepEqual(r.errors.map((e) => e.line), [5, 6, 7, 8]);
  assert.match(r.errors[0].message, /left: expected "x" or "y"/);
  assert.match(r.errors[1].message, /choice: expected left, right or tie, got "maybe"/);
  assert.match(r.errors[2].message, /rater/);
  assert.match(r.errors[3].message, /expected 7 fields/);
  assert.deepEqual(r.judgements.map((j) => [j.line, j.score]), [[2, 1], [3, 0], [4, 0.5], [9, 0]]);
  assert.equal(r.judgements[3].prompt, 'a "quoted" dog');
  assert.equal(r.counts.rows, 8);
  assert.equal(r.counts.parseErrors, 4);
});

Deno.test("JSONL answers: bad JSON named by line; prompts fill category and challenge", () => {
  const lines = [
    JSON.stringify({
      prompt: "a cat",
      model_a: "x",
      model_b: "y",
      left: "y",
      choice: "right",
      rater: "r",
      trial: 0,
    }),
    "{not json",
    JSON.stringify([1, 2]),
    JSON.stringify({
      prompt: "a dog",
      model_a: "x",
      model_b: "y",
      left: "x",
      choice: "right",
      rater: "r",
      trial: 1,
    }),
  ].join("\n");
  const ps: Prompt[] = [
    { id: "p0001", prompt: "a cat", category: "Animals", challenge: "Basic", note: "" },
  ];
  const r = ingestResponses(lines, { source: "a.jsonl", prompts: ps });
  assert.equal(r.format, "jsonl");
  assert.deepEqual(r.errors.map((e) => e.line), [2, 3]);
  assert.deepEqual(r.judgements.map((j) => [j.score, j.category, j.prompt_id]), [
    [1, "Animals", "p0001"],
    [0, "", "a dog"],
  ]);
});

function mturkDesign(): Task[] {
  return designStudy(prompts(12), {
    models: ["ours", "sd15"],
    trials: 3,
    seed: 2,
    checkFraction: 0.2,
  });
}

Deno.test("MTurk round trip: design -> batch results CSV -> same judgements; rejects and checks counted", () => {
  const tasks = mturkDesign();
  const sim = simulateAnswers(tasks, {
    seed: 5,
    truth: { "ours vs sd15": { default: 0.7 } },
    raters: 6,
    rejectFraction: 0.1,
  });
  const viaMturk = ingestResponses(answersToMturkCsv(sim), { source: "Batch_1_batch_results.csv" });
  const viaCsv = ingestResponses(answersToCsv(sim), { source: "answers.csv" });
  const viaJsonl = ingestResponses(answersToJsonl(sim), { source: "answers.jsonl" });
  assert.equal(viaMturk.format, "mturk");
  assert.equal(viaCsv.format, "csv");
  const strip = (r: typeof viaMturk) => r.judgements.map(({ line: _l, ...j }) => j);
  assert.deepEqual(viaMturk.errors, []);
  // Rejected assignments are excluded from the MTurk file only (plain files carry no status).
  const rejected = sim.filter((a) => a.status === "Rejected");
  assert.ok(rejected.length > 0);
  assert.equal(viaMturk.counts.rejected, rejected.length);
  const kept = sim.filter((a) => a.status !== "Rejected" && !a.is_check);
  const excluded = new Set(viaMturk.raterChecks.filter((c) => c.excluded).map((c) => c.rater));
  const expected = kept.filter((a) => !excluded.has(a.rater)).map((a) => {
    const leftIsA = a.left === a.model_a;
    return {
      score: a.choice === "tie" ? 0.5 : (a.choice === "left") === leftIsA ? 1 : 0,
      rater: a.rater,
      prompt_id: a.prompt_id,
      trial: a.trial,
    };
  });
  assert.deepEqual(
    strip(viaMturk).map((j) => ({
      score: j.score,
      rater: j.rater,
      prompt_id: j.prompt_id,
      trial: j.trial,
    })),
    expected,
  );
  // The plain formats carry the same answers (no rejections there).
  assert.deepEqual(strip(viaCsv), strip(viaJsonl));
  assert.equal(viaCsv.counts.checks, sim.filter((a) => a.is_check).length);
});

Deno.test("MTurk: crowd-radio-button answers, failed checks exclude a rater, task_id joins a design", () => {
  const tasks = mturkDesign().filter((t) => !t.is_check).slice(0, 4);
  const check = mturkDesign().find((t) => t.is_check)!;
  const header = [
    "HITId",
    "WorkerId",
    "AssignmentStatus",
    "Input.task_id",
    "Answer.choice.left",
    "Answer.choice.right",
    "Answer.choice.tie",
  ];
  const wrong = check.expected === "left" ? ["false", "true", "false"] : ["true", "false", "false"];
  const rows = [
    ["H1", "good", "Approved", tasks[0].task_id, "true", "false", "false"],
    ["H2", "good", "Submitted", tasks[1].task_id, "false", "false", "true"],
    ["H3", "bad", "Approved", tasks[2].task_id, "false", "true", "false"],
    ["H4", "bad", "Approved", check.task_id, ...wrong],
    ["H5", "good", "Rejected", tasks[3].task_id, "true", "false", "false"],
    ["H6", "good", "Approved", "t99999", "true", "false", "false"],
    ["H7", "good", "Approved", tasks[3].task_id, "false", "false", "false"],
  ];
  const r = ingestResponses(formatCsv(header, rows), {
    source: "b.csv",
    design: [...tasks, check],
  });
  assert.equal(r.format, "mturk");
  assert.deepEqual(r.errors.map((e) => [e.line, /t99999|choice/.test(e.message)]), [[7, true], [
    8,
    true,
  ]]);
  assert.equal(r.counts.rejected, 1);
  assert.equal(r.counts.checks, 1);
  assert.equal(r.counts.checksFailed, 1);
  assert.equal(r.counts.excludedRaters, 1);
  assert.equal(r.counts.excludedByRater, 1);
  assert.deepEqual(r.judgements.map((j) => [j.rater, j.choice, j.model_a, j.model_b]), [
    ["good", "left", "ours", "sd15"],
    ["good", "tie", "ours", "sd15"],
  ]);
  assert.equal(r.judgements[0].score, tasks[0].left === "ours" ? 1 : 0);
  assert.throws(
    () => ingestResponses("HITId,WorkerId,AssignmentStatus,Input.prompt\n", { source: "c.csv" }),
    /c\.csv: no answer column "Answer\.choice"/,
  );
});

Deno.test("command line: design, simulate, analyze write the task list, answers, summary and report", async () => {
  const run = (args: string[]) => cli(["lib/cli/human_eval.ts", ...args]);
  await withTempDir("xgen-he-cli-", async (dir) => {
    let r = await run([
      "design",
      "--prompts",
      EXAMPLE.pathname,
      "--models",
      "ours,sd15,sd21",
      "--trials",
      "2",
      "--out",
      `${dir}/study`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const tasks = parseTasks(await Deno.readTextFile(`${dir}/study/tasks.csv`), "tasks.csv");
    assert.equal(tasks.filter((t) => !t.is_check).length, 43 * 2 * 2);
    r = await run([
      "simulate",
      "--design",
      `${dir}/study/tasks.jsonl`,
      "--out",
      `${dir}/answers.csv`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    // One broken row appended: reported with its line and excluded.
    const answers = await Deno.readTextFile(`${dir}/answers.csv`);
    const nLines = answers.trimEnd().split("\r\n").length;
    await Deno.writeTextFile(`${dir}/answers.csv`, answers + "Hx,HT,Ax,W1,Approved\r\n");
    r = await run([
      "--responses",
      `${dir}/answers.csv`,
      "--prompts",
      EXAMPLE.pathname,
      "--out",
      `${dir}/an`,
      "--interval",
      "bootstrap",
      "--bootstrap",
      "200",
      "--bt-bootstrap",
      "20",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`answers\\.csv:${nLines + 1}: expected 21 fields`));
    const summary = JSON.parse(await Deno.readTextFile(`${dir}/an/summary.json`));
    assert.equal(summary.counts.parseErrors, 1);
    assert.deepEqual(summary.comparisons.map((c: { key: string }) => c.key), [
      "ours vs sd15",
      "ours vs sd21",
    ]);
    const overall = summary.comparisons[0].sections[0];
    assert.equal(overall.kind, "overall");
    assert.equal(overall.interval.method, "bootstrap");
    assert.equal(overall.wins + overall.ties + overall.losses, overall.n);
    assert.equal(summary.bradleyTerry.strengths.length, 3);
    const html = await Deno.readTextFile(`${dir}/an/report.html`);
    assert.match(html, /Plotly\.newPlot\("fig0"/);
    assert.match(html, /By category/);
    r = await run(["--responses", `${dir}/missing.csv`, "--out", `${dir}/x`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /missing\.csv: cannot read the answers/);
    r = await run(["frobnicate"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command "frobnicate"/);
  });
});
