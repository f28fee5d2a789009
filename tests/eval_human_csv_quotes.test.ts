/**
 * Quotes in answer files: a stray quote must not swallow the rows after it. Every data row of a
 * file is accounted for (used, rejected, attention check, excluded with its rater, or unreadable
 * with its line), legitimately multi-line quoted fields still read, and the PartiPrompts TSV keeps
 * its quotes as part of the prompt.
 */
import assert from "node:assert/strict";
import {
  answersToMturkCsv,
  designStudy,
  ingestResponses,
  type IngestResult,
  parseDelimited,
  parsePromptsTsv,
  type Prompt,
  simulateAnswers,
} from "../lib/eval/human/mod.ts";
import { cli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

const HEADER = "prompt,model_a,model_b,left,choice,rater,trial";

/**
 * `n` answers on lines 2..n+1, model x on the left and picked; every 12th prompt holds a comma and
 * is quoted, as crowdsourcing exports do, so a stray quote finds a closing quote further down.
 */
function answerLines(n: number): string[] {
  return Array.from({ length: n }, (_, i) => {
    const prompt = i % 12 === 11 ? `"a dog, running ${i}"` : `a cat ${i}`;
    return `${prompt},x,y,x,left,r${i % 7},${i}`;
  });
}

/** Every data row is in exactly one bucket. */
function assertIdentity(r: IngestResult): void {
  const c = r.counts;
  assert.equal(
    c.rows,
    c.judgements + c.parseErrors + c.rejected + c.checks + c.excludedByRater,
    JSON.stringify(c),
  );
}

Deno.test("a stray quote on line 3 of 86 answers: line 3 is unreadable, the other 85 are used", () => {
  const lines = answerLines(86);
  lines[1] = `"a cat 1,x,y,x,left,r1,1`; // line 3: a quote that never closes on its line
  const r = ingestResponses([HEADER, ...lines].join("\n") + "\n", { source: "answers.csv" });
  assert.equal(r.counts.rows, 86);
  assert.deepEqual(r.errors.map((e) => e.line), [3]);
  assert.match(r.errors[0].message, /quote.*line 3/);
  assert.equal(r.judgements.length, 85);
  assert.deepEqual(
    r.judgements.map((j) => j.line),
    Array.from({ length: 87 }, (_, i) => i + 1).filter((l) => l >= 2 && l !== 3),
  );
  assertIdentity(r);
});

Deno.test("a quote that swallows lines is an error at the line where it opened; reading resumes", () => {
  const read = (text: string) => parseDelimited(text, { source: "t.csv" });
  // Closes on line 5 but is followed by text: lines 3-5 are rows of their own.
  let t = read('a,b\n"open,1\nx,2\ny,3\n"z",4\n');
  assert.deepEqual(t.errors.map((e) => e.line), [2]);
  assert.match(t.errors[0].message, /line 2/);
  assert.deepEqual(t.rows.map((r) => [r.line, r.record.a, r.record.b]), [
    [3, "x", "2"],
    [4, "y", "3"],
    [5, "z", "4"],
  ]);
  // Closes properly with the right field count, but the lines it swallowed read as complete rows.
  t = read('a,b\n"open,1\nx,2\ny,3",4\n');
  assert.deepEqual(t.errors.map((e) => e.line), [2, 4]);
  assert.deepEqual(t.rows.map((r) => [r.line, r.record.a, r.record.b]), [[3, "x", "2"]]);
  // Never closes: the row where it opened is unreadable, the rows after it are read.
  t = read('a,b\n1,2\n"open,3\n4,5\n');
  assert.deepEqual(t.errors.map((e) => e.line), [3]);
  assert.match(t.errors[0].message, /never closes/);
  assert.deepEqual(t.rows.map((r) => [r.line, r.record.a]), [[2, "1"], [4, "4"]]);
  // The header cannot be skipped: a runaway quote there rejects the file, naming line 1.
  assert.throws(() => read('"a,b\n1,2\n3,4\n'), /t\.csv line 1: .*quote/);
});

Deno.test("legitimately multi-line quoted fields still read (free-text comments, CRLF files)", () => {
  const text = [
    "id,comment,choice,rater",
    '1,"first line\r\nsecond line, with a comma",left,r1',
    "2,plain,right,r2",
    '3,"say ""hi""\r\n\r\nbye",tie,r3',
    '"multi\r\nline id",x,left,r4',
  ].join("\r\n") + "\r\n";
  const t = parseDelimited(text, { source: "mturk.csv" });
  assert.deepEqual(t.errors, []);
  assert.deepEqual(t.rows.map((r) => [r.line, r.record.id, r.record.comment, r.record.choice]), [
    [3, "1", "first line\r\nsecond line, with a comma", "left"],
    [4, "2", "plain", "right"],
    [7, "3", 'say "hi"\r\n\r\nbye', "tie"],
    [9, "multi\r\nline id", "x", "left"],
  ]);
  // A quote that opens and closes on one line but is followed by text is literal (lenient).
  const g = parseDelimited('a,b\n"G O" painted,2\n', { source: "g.csv" });
  assert.deepEqual(g.rows.map((r) => r.record.a), ['"G O" painted']);
});

Deno.test("count identity: data rows = used + unreadable + rejected + checks + excluded raters", () => {
  const ps: Prompt[] = Array.from({ length: 24 }, (_, i) => ({
    id: `p${i}`,
    prompt: `a cat, sitting ${i}`, // a comma: quoted in the CSV
    category: "A",
    challenge: "Basic",
    note: "",
  }));
  const tasks = designStudy(ps, {
    models: ["ours", "sd15"],
    trials: 3,
    seed: 1,
    checkFraction: 0.2,
  });
  const sim = simulateAnswers(tasks, {
    seed: 2,
    truth: { "ours vs sd15": { default: 0.7 } },
    raters: 8,
    spammerFraction: 0.3,
    rejectFraction: 0.1,
  });
  const lines = answersToMturkCsv(sim).trimEnd().split("\r\n");
  // A stray quote before the last field of one row (line 6) and one truncated row (line 10).
  lines[5] = lines[5].replace(/,(left|right|tie)$/, ',"$1');
  assert.ok(lines[5].endsWith('"left') || lines[5].endsWith('"right') || lines[5].endsWith('"tie'));
  lines[9] = lines[9].split(",").slice(0, 5).join(",");
  const r = ingestResponses(lines.join("\r\n") + "\r\n", { source: "Batch_1_batch_results.csv" });
  assert.equal(r.counts.rows, sim.length);
  assert.deepEqual(r.errors.map((e) => e.line), [6, 10]);
  assert.ok(r.counts.rejected > 0 && r.counts.checks > 0 && r.counts.excludedByRater > 0);
  assertIdentity(r);
});

Deno.test("command line: a stray quote is reported at its line and no answer vanishes", async () => {
  await withTempDir("xgen-he-quote-", async (dir) => {
    const lines = answerLines(86);
    lines[1] = `"a cat 1,x,y,x,left,r1,1`;
    await Deno.writeTextFile(`${dir}/answers.csv`, [HEADER, ...lines].join("\n") + "\n");
    const r = await cli([
      "lib/cli/human_eval.ts",
      "--responses",
      `${dir}/answers.csv`,
      "--out",
      `${dir}/an`,
      "--bootstrap",
      "50",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /answers\.csv:3: .*quote/);
    assert.match(r.stdout, /86 rows: 85 used, 1 unreadable/);
    const summary = JSON.parse(await Deno.readTextFile(`${dir}/an/summary.json`));
    assert.equal(summary.comparisons[0].sections[0].n, 85);
  });
});

Deno.test("prompts TSV: quotes are part of the prompt, never TSV quoting", () => {
  const text = "Prompt\tCategory\tChallenge\tNote\n" +
    '"G I G G L E" painted on a wall\tIllustrations\tWriting & Symbols\t\n' +
    '"OPEN"\tIllustrations\tWriting & Symbols\tentirely in quotes\n' +
    '"a sign that says ""hi"""\tIllustrations\tWriting & Symbols\t\n' +
    '"a quote that never closes\tArts\tBasic\t\n' +
    "a cat\tAnimals\tBasic\t\n";
  const list = parsePromptsTsv(text, "p.tsv");
  assert.deepEqual(list.errors, []);
  assert.deepEqual(list.prompts.map((p) => [p.id, p.prompt, p.category]), [
    ["p0001", '"G I G G L E" painted on a wall', "Illustrations"],
    ["p0002", '"OPEN"', "Illustrations"],
    ["p0003", '"a sign that says ""hi"""', "Illustrations"],
    ["p0004", '"a quote that never closes', "Arts"],
    ["p0005", "a cat", "Animals"],
  ]);
});
