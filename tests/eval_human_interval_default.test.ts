/**
 * The headline interval is the prompt-cluster bootstrap by default (answers to one prompt are
 * correlated, so Wilson's independent-answer interval is too narrow), seeded and reproducible;
 * Wilson stays available on request and is always reported beside it.
 */
import assert from "node:assert/strict";
import {
  analyzeComparison,
  analyzeJudgements,
  BOOTSTRAP_STREAM,
  type Judgement,
  quantileSorted,
  reportHtml,
  summaryText,
  wilsonInterval,
} from "../lib/eval/human/mod.ts";
import { Rng } from "../lib/util/rng.ts";
import { cli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

/**
 * 40 prompts x 6 answers where prompts differ strongly in difficulty: prompt q<i> has `i % 7`
 * wins of 6 (the rest losses), so answers within a prompt are far from independent.
 */
function hardAndEasyPrompts(): Judgement[] {
  const out: Judgement[] = [];
  for (let p = 0; p < 40; p++) {
    for (let t = 0; t < 6; t++) {
      const score = t < p % 7 ? 1 : 0;
      out.push({
        line: out.length + 2,
        prompt_id: `q${String(p).padStart(2, "0")}`,
        prompt: `prompt ${p}`,
        category: p % 2 ? "A" : "B",
        challenge: "Basic",
        model_a: "x",
        model_b: "y",
        left_is_a: t % 2 === 0,
        choice: (score === 1) === (t % 2 === 0) ? "left" : "right",
        score,
        rater: `r${t}`,
        trial: t,
      });
    }
  }
  return out;
}

/**
 * Percentile prompt bootstrap written out independently of the kit: clusters in prompt order,
 * `reps` resamples of m prompts from the section's stream, type-7 quantiles.
 */
function referenceBootstrap(
  js: readonly Judgement[],
  o: { seed: number; reps: number; section: number },
): { lo: number; hi: number } {
  const ids = [...new Set(js.map((j) => j.prompt_id))].sort();
  const n = ids.map((id) => js.filter((j) => j.prompt_id === id).length);
  const s = ids.map((id) => js.filter((j) => j.prompt_id === id).reduce((a, j) => a + j.score, 0));
  const rng = Rng.stream(o.seed, [BOOTSTRAP_STREAM, 0, o.section]);
  const rates: number[] = [];
  for (let r = 0; r < o.reps; r++) {
    let sn = 0;
    let ss = 0;
    for (let i = 0; i < ids.length; i++) {
      const k = rng.int(ids.length);
      sn += n[k];
      ss += s[k];
    }
    rates.push(ss / sn);
  }
  rates.sort((a, b) => a - b);
  return { lo: quantileSorted(rates, 0.025), hi: quantileSorted(rates, 0.975) };
}

Deno.test("the default interval is the seeded prompt-cluster bootstrap (2000 reps), wider than Wilson", () => {
  const js = hardAndEasyPrompts();
  const a = analyzeJudgements(js, { seed: 3, btReps: 0 });
  assert.equal(a.options.method, "bootstrap");
  assert.equal(a.options.bootstrapReps, 2000);
  const [overall, catA] = a.comparisons[0].sections;
  assert.equal(overall.interval.method, "bootstrap");
  const ref = referenceBootstrap(js, { seed: 3, reps: 2000, section: 0 });
  assert.ok(Math.abs(overall.interval.lo - ref.lo) < 1e-12, `${overall.interval.lo} vs ${ref.lo}`);
  assert.ok(Math.abs(overall.interval.hi - ref.hi) < 1e-12, `${overall.interval.hi} vs ${ref.hi}`);
  // Cross-sections use the bootstrap too, each from its own stream.
  assert.equal(catA.name, "A");
  assert.equal(catA.interval.method, "bootstrap");
  const refA = referenceBootstrap(js.filter((j) => j.category === "A"), {
    seed: 3,
    reps: 2000,
    section: 1,
  });
  assert.ok(
    Math.abs(catA.interval.lo - refA.lo) < 1e-12 && Math.abs(catA.interval.hi - refA.hi) < 1e-12,
  );
  // Wilson is still computed and reported beside it; here it is far too narrow.
  const score = js.reduce((acc, j) => acc + j.score, 0);
  assert.deepEqual(overall.wilson, wilsonInterval(score, js.length));
  const width = (i: { lo: number; hi: number }) => i.hi - i.lo;
  assert.ok(width(overall.interval) > 1.5 * width(overall.wilson), JSON.stringify(overall));
  // Reproducible with the seed.
  assert.deepEqual(analyzeJudgements(js, { seed: 3, btReps: 0 }).comparisons, a.comparisons);
  // Wilson on request.
  const w = analyzeComparison(js, { method: "wilson", bootstrapReps: 0 })[0];
  assert.deepEqual(w.interval, { method: "wilson", ...wilsonInterval(score, js.length) });
  assert.equal(w.bootstrap, null);
  // The text summary shows the headline interval with Wilson beside it.
  assert.match(summaryText(a), /\(bootstrap\) .*Wilson \[/);
});

Deno.test("a section with a single prompt falls back to Wilson, named so (no zero-width bootstrap)", () => {
  const js = hardAndEasyPrompts().map((j) => ({
    ...j,
    challenge: j.prompt_id === "q03" ? "Lonely" : "Basic",
  }));
  const a = analyzeJudgements(js, { seed: 1, btReps: 0 });
  const lonely = a.comparisons[0].sections.find((s) => s.name === "Lonely")!;
  assert.equal(lonely.prompts, 1);
  // Its bootstrap has no spread: every resample is the same prompt.
  assert.equal(lonely.bootstrap!.lo, lonely.bootstrap!.hi);
  assert.deepEqual(lonely.interval, { method: "wilson", ...wilsonInterval(3, 6) });
  assert.equal(a.comparisons[0].sections[0].interval.method, "bootstrap");
  const html = reportHtml({
    ...a,
    source: "a.csv",
    format: "csv",
    counts: {
      rows: js.length,
      parseErrors: 0,
      rejected: 0,
      checks: 0,
      checksFailed: 0,
      excludedRaters: 0,
      excludedByRater: 0,
      judgements: js.length,
    },
    errors: [],
    unknownPrompts: null,
  });
  assert.match(html, /single prompt show the Wilson interval/);
  assert.match(html, /\(wilson\)<\/td>/);
});

Deno.test("command line: bootstrap by default with the reason in the report; --interval wilson on request", async () => {
  await withTempDir("xgen-he-interval-", async (dir) => {
    const rows = hardAndEasyPrompts().map((j) =>
      [j.prompt, j.model_a, j.model_b, j.left_is_a ? "x" : "y", j.choice, j.rater, j.trial].join(
        ",",
      )
    );
    await Deno.writeTextFile(
      `${dir}/a.csv`,
      ["prompt,model_a,model_b,left,choice,rater,trial", ...rows].join("\n") + "\n",
    );
    const base = ["lib/cli/human_eval.ts", "--responses", `${dir}/a.csv`, "--bt-bootstrap", "0"];
    let r = await cli([...base, "--out", `${dir}/boot`]);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(await Deno.readTextFile(`${dir}/boot/summary.json`));
    assert.equal(s.options.method, "bootstrap");
    assert.equal(s.options.bootstrapReps, 2000);
    assert.equal(s.comparisons[0].sections[0].interval.method, "bootstrap");
    assert.match(r.stdout, /\(bootstrap\) .*Wilson \[/);
    const html = await Deno.readTextFile(`${dir}/boot/report.html`);
    assert.match(html, /prompt-cluster bootstrap \(2000 replicates/);
    assert.match(html, /correlated/);
    r = await cli([...base, "--out", `${dir}/wilson`, "--interval", "wilson"]);
    assert.equal(r.code, 0, r.stderr);
    const w = JSON.parse(await Deno.readTextFile(`${dir}/wilson/summary.json`));
    const o = w.comparisons[0].sections[0];
    assert.equal(o.interval.method, "wilson");
    assert.deepEqual({ lo: o.interval.lo, hi: o.interval.hi }, o.wilson);
    assert.notEqual(o.bootstrap, null, "the bootstrap is still reported beside Wilson");
    r = await cli([...base, "--out", `${dir}/none`, "--bootstrap", "0"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--bootstrap/);
  });
});
