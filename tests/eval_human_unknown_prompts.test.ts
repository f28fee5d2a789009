/**
 * Answers whose prompt is not in the prompts file count in the overall result but in no category
 * or challenge: they are counted and named (ingest, analysis, report, command output), and
 * `--strict` makes them an error. Prompts with quotes (`"G I G G L E" painted ...`) match when the
 * answer file spells them with standard CSV quoting.
 */
import assert from "node:assert/strict";
import {
  analyzeStudy,
  answersToCsv,
  answersToMturkCsv,
  designStudy,
  ingestResponses,
  parsePromptsTsv,
  parseTasks,
  reportHtml,
  simulateAnswers,
  summaryText,
  tasksToCsv,
} from "../lib/eval/human/mod.ts";
import { cli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

const TSV = "Prompt\tCategory\tChallenge\tNote\n" +
  '"G I G G L E" painted on a brick wall\tIllustrations\tWriting & Symbols\t\n' +
  "a cat\tAnimals\tBasic\t\n" +
  '"OPEN" in red neon\tIllustrations\tWriting & Symbols\tstarts with a quote\n';

const CSV = [
  "prompt,model_a,model_b,left,choice,rater,trial",
  '"""G I G G L E"" painted on a brick wall",x,y,x,left,r1,0', // line 2: CSV-quoted, known
  '"""G I G G L E"" painted on a brick wall",x,y,y,left,r2,1', // line 3
  "a cat,x,y,x,right,r1,0", // line 4
  "a cat,x,y,y,right,r2,1", // line 5
  "a dog,x,y,x,left,r1,0", // line 6: not in the prompts file
  '"""OPEN"" in red neon",x,y,x,tie,r3,0', // line 7: known
  "a bird,x,y,x,left,r2,0", // line 8: not in the prompts file
  "a dog,x,y,y,right,r3,1", // line 9: not in the prompts file
].join("\n") + "\n";

Deno.test("unknown prompts are counted and named by ingest and analysis, not silently dropped", () => {
  const { prompts } = parsePromptsTsv(TSV, "p.tsv");
  const ing = ingestResponses(CSV, { source: "a.csv", prompts });
  assert.deepEqual(ing.errors, []);
  assert.deepEqual(
    ing.judgements.map((j) => [j.line, j.category]),
    [
      [2, "Illustrations"],
      [3, "Illustrations"],
      [4, "Animals"],
      [5, "Animals"],
      [6, ""],
      [7, "Illustrations"],
      [8, ""],
      [9, ""],
    ],
  );
  assert.deepEqual(ing.unknownPrompts, {
    promptsSource: null,
    answers: 3,
    prompts: 2,
    examples: [{ prompt: "a dog", line: 6 }, { prompt: "a bird", line: 8 }],
  });
  const s = analyzeStudy(ing, { method: "wilson", bootstrapReps: 0, btReps: 0 });
  assert.deepEqual(s.unknownPrompts, ing.unknownPrompts);
  const c = s.comparisons[0];
  const overall = c.sections[0];
  assert.equal(overall.n, 8);
  const inCategories = c.sections.filter((x) => x.kind === "category").reduce((a, x) => a + x.n, 0);
  assert.equal(inCategories, 5);
  assert.deepEqual(c.notInSections, { category: 3, challenge: 3 });
  const html = reportHtml(s);
  assert.match(html, /3 answers \(2 prompts\) are not in the prompts file/);
  assert.match(html, /a dog/);
  assert.match(summaryText(s), /3 answers \(2 prompts\) are not in the prompts file/);
  // Without a prompt list there is nothing to compare with: null, not zero.
  assert.equal(ingestResponses(CSV, { source: "a.csv" }).unknownPrompts, null);
});

Deno.test("command line: unknown prompts reported; --strict makes them a one-line error", async () => {
  await withTempDir("xgen-he-unknown-", async (dir) => {
    await Deno.writeTextFile(`${dir}/p.tsv`, TSV);
    await Deno.writeTextFile(`${dir}/a.csv`, CSV);
    const base = [
      "lib/cli/human_eval.ts",
      "--responses",
      `${dir}/a.csv`,
      "--prompts",
      `${dir}/p.tsv`,
      "--bootstrap",
      "50",
      "--bt-bootstrap",
      "0",
    ];
    let r = await cli([...base, "--out", `${dir}/an`]);
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout + r.stderr;
    assert.match(out, /3 answers \(2 prompts\) are not in the prompts file .*p\.tsv/);
    assert.match(out, /"a dog" \(line 6\)/);
    const summary = JSON.parse(await Deno.readTextFile(`${dir}/an/summary.json`));
    assert.equal(summary.unknownPrompts.answers, 3);
    r = await cli([...base, "--out", `${dir}/strict`, "--strict"]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /3 answers \(2 prompts\).*not in the prompts file.*"a dog"/);
    await assert.rejects(Deno.stat(`${dir}/strict/summary.json`), Deno.errors.NotFound);
    // --strict needs a prompts file to check against.
    r = await cli(["lib/cli/human_eval.ts", "--responses", `${dir}/a.csv`, "--strict"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--strict.*--prompts/);
  });
});

Deno.test("prompts with quotes survive design -> tasks.csv -> answers (CSV, MTurk) -> ingest", () => {
  const { prompts } = parsePromptsTsv(TSV, "p.tsv");
  const tasks = parseTasks(
    tasksToCsv(designStudy(prompts, { models: ["x", "y"], trials: 2, seed: 0 })),
    "tasks.csv",
  );
  assert.deepEqual(
    [...new Set(tasks.map((t) => t.prompt))].sort(),
    prompts.map((p) => p.prompt).sort(),
  );
  const sim = simulateAnswers(tasks, { seed: 0, truth: { "x vs y": { default: 0.6 } } });
  for (const [source, text] of [["a.csv", answersToCsv(sim)], ["b.csv", answersToMturkCsv(sim)]]) {
    const ing = ingestResponses(text, { source, prompts });
    assert.deepEqual(ing.errors, []);
    assert.equal(ing.counts.rows, sim.length);
    assert.deepEqual(ing.unknownPrompts?.answers, 0);
    assert.ok(ing.judgements.every((j) => j.category !== ""));
  }
});
