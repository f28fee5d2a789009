/**
 * Human evaluation analysis: section tallies, sign tests with Holm, the prompt-cluster bootstrap
 * (reproducible, order-free), orientation of comparisons, agreement and rater stats on
 * constructed data, Bradley-Terry through the analysis, the report, and the calibration of both
 * interval methods on simulated studies (the coverage test).
 */
import assert from "node:assert/strict";
import {
  analyzeComparison,
  analyzeJudgements,
  analyzeStudy,
  answersToJsonl,
  binomialTwoSidedP,
  clusterBootstrap,
  designStudy,
  expectedWinRate,
  holm,
  ingestResponses,
  intervalCoverage,
  type Judgement,
  type Prompt,
  raterStats,
  reportHtml,
  simulateAnswers,
  winRateFigure,
} from "../lib/eval/human/mod.ts";
import { Rng } from "../lib/util/rng.ts";

function j(over: Partial<Judgement>): Judgement {
  const base: Judgement = {
    line: 0,
    prompt_id: "p1",
    prompt: "p1",
    category: "A",
    challenge: "Basic",
    model_a: "x",
    model_b: "y",
    left_is_a: true,
    choice: "left",
    score: 1,
    rater: "r1",
    trial: 0,
  };
  const out = { ...base, ...over };
  if (over.choice === undefined) {
    // Derive the side from the score so the record is consistent.
    out.choice = out.score === 0.5 ? "tie" : (out.score === 1) === out.left_is_a ? "left" : "right";
  }
  return out;
}

/** Category A: prompts p1, p2; category B: p3. Scores per answer. */
function smallStudy(): Judgement[] {
  const rows: [string, string, string, number[]][] = [
    ["p1", "A", "Basic", [1, 1, 1, 0.5, 0, 1]],
    ["p2", "A", "Complex", [0, 0, 1, 0.5, 1, 1]],
    ["p3", "B", "Basic", [1, 1, 1, 1, 1, 0]],
  ];
  return rows.flatMap(([p, cat, ch, scores]) =>
    scores.map((s, t) =>
      j({
        prompt_id: p,
        prompt: p,
        category: cat,
        challenge: ch,
        score: s as Judgement["score"],
        trial: t,
        rater: `r${t}`,
        left_is_a: t % 2 === 0,
      })
    )
  );
}

Deno.test("sections: tallies, win rates with and without ties, sign test and Holm", () => {
  // Wilson requested explicitly (the default is the prompt-cluster bootstrap).
  const sections = analyzeComparison(smallStudy(), {
    method: "wilson",
    bootstrapReps: 100,
    seed: 1,
  });
  const byName = new Map(sections.map((s) => [`${s.kind}:${s.name}`, s]));
  assert.deepEqual([...byName.keys()], [
    "overall:overall",
    "category:A",
    "category:B",
    "challenge:Basic",
    "challenge:Complex",
  ]);
  const o = byName.get("overall:overall")!;
  // 18 answers: wins 4+3+5 = 12, ties 2, losses 4.
  assert.deepEqual([o.n, o.wins, o.ties, o.losses, o.prompts], [18, 12, 2, 4, 3]);
  assert.equal(o.winRate, 13 / 18);
  assert.equal(o.winRateNoTies, 12 / 16);
  assert.equal(o.pValue, binomialTwoSidedP(12, 16));
  const a = byName.get("category:A")!;
  assert.deepEqual([a.n, a.wins, a.ties, a.losses], [12, 7, 2, 3]);
  assert.equal(a.winRate, 8 / 12);
  const adjusted = holm(sections.map((s) => s.pValue));
  sections.forEach((s, i) => {
    assert.equal(s.pHolm, adjusted[i]);
    assert.equal(s.significant, s.pHolm < 0.05);
    assert.equal(s.interval.method, "wilson");
    assert.deepEqual({ lo: s.interval.lo, hi: s.interval.hi }, s.wilson);
  });
});

Deno.test("comparisons recorded in either orientation are merged with the score flipped", () => {
  const js = [
    j({ prompt_id: "p1", score: 1 }),
    j({ prompt_id: "p1", model_a: "y", model_b: "x", score: 1 }), // y beat x
    j({ prompt_id: "p2", model_a: "y", model_b: "x", score: 0.5 }),
  ];
  const a = analyzeJudgements(js, { method: "wilson", bootstrapReps: 0, btReps: 0 });
  assert.equal(a.comparisons.length, 1);
  const o = a.comparisons[0].sections[0];
  assert.equal(a.comparisons[0].key, "x vs y");
  assert.deepEqual([o.wins, o.ties, o.losses], [1, 1, 1]);
  assert.equal(a.bradleyTerry, null, "two models: no Bradley-Terry");
});

Deno.test("cluster bootstrap: reproducible with a seed, free of row order, exact in degenerate cases", () => {
  const js = smallStudy();
  const run = (rows: Judgement[], seed: number) =>
    analyzeComparison(rows, { method: "bootstrap", bootstrapReps: 500, seed })[0].interval;
  // Prompts have rates 4.5/6, 3.5/6, 5/6: every resample mean lies within [3.5/6, 5/6].
  const small = run(js, 3);
  assert.ok(small.lo >= 3.5 / 6 - 1e-12 && small.hi <= 5 / 6 + 1e-12, JSON.stringify(small));
  // 30 prompts with varied rates: same seed, same interval; another seed, another one.
  const many = Array.from(
    { length: 30 },
    (_, p) =>
      Array.from(
        { length: 4 },
        (_, t) =>
          j({ prompt_id: `q${p}`, trial: t, score: (t < p % 5 ? 1 : 0) as Judgement["score"] }),
      ),
  ).flat();
  const a = run(many, 3);
  assert.deepEqual(run(many, 3), a);
  assert.deepEqual(run(Rng.stream(9).shuffle([...many]), 3), a, "row order must not matter");
  assert.notDeepEqual(run(many, 4), a);
  // All clusters identical -> the interval collapses to that rate.
  const same = clusterBootstrap([{ n: 4, score: 3 }, { n: 4, score: 3 }], {
    reps: 50,
    rng: Rng.stream(0),
  });
  assert.deepEqual(same, { lo: 0.75, hi: 0.75 });
  // Two clusters, 0/2 and 2/2: resampled rates are 0, 0.5 or 1 with prob 1/4, 1/2, 1/4.
  const rng = Rng.stream(1);
  const wide = clusterBootstrap([{ n: 2, score: 0 }, { n: 2, score: 2 }], { reps: 2000, rng });
  assert.deepEqual(wide, { lo: 0, hi: 1 });
});

Deno.test("agreement and rater stats: a left-clicking rater stands out", () => {
  // Five careful raters always prefer x on every prompt; "lefty" always clicks left, on sides
  // that alternate, so it agrees with the majority half the time and its left rate is 1.
  const js: Judgement[] = [];
  for (let p = 0; p < 40; p++) {
    for (let r = 0; r < 5; r++) {
      js.push(
        j({ prompt_id: `p${p}`, rater: `careful${r}`, left_is_a: (p + r) % 2 === 0, score: 1 }),
      );
    }
    const leftIsA = p % 2 === 0;
    js.push(
      j({
        prompt_id: `p${p}`,
        rater: "lefty",
        left_is_a: leftIsA,
        choice: "left",
        score: leftIsA ? 1 : 0,
      }),
    );
  }
  const stats = new Map(raterStats(js).map((r) => [r.rater, r]));
  const lefty = stats.get("lefty")!;
  assert.equal(lefty.n, 40);
  assert.equal(lefty.leftRate, 1);
  assert.equal(lefty.leftBiasP, binomialTwoSidedP(40, 40));
  assert.equal(lefty.agreeWithMajority, 0.5);
  assert.equal(stats.get("careful0")!.agreeWithMajority, 1);
  assert.ok(Math.abs(stats.get("careful0")!.leftRate - 0.5) < 1e-12);
  const a = analyzeJudgements(js, { method: "wilson", bootstrapReps: 0 });
  // Per item: 5 or 6 of 6 answers in one category; kappa < 1 but high, alpha similar.
  assert.equal(a.agreement.items, 40);
  assert.ok(a.agreement.fleissKappa < 1 && a.agreement.krippendorffAlpha < 1);
  const perfect = analyzeJudgements(js.filter((x) => x.rater !== "lefty"), {
    method: "wilson",
    bootstrapReps: 0,
  });
  // Everyone picked x: a single category throughout, agreement is undefined (NaN), not 1.
  assert.ok(Number.isNaN(perfect.agreement.fleissKappa));
});

function syntheticPrompts(n: number): Prompt[] {
  const cats = ["Animals", "Artifacts", "People", "Vehicles"];
  return Array.from({ length: n }, (_, i) => ({
    id: `p${String(i).padStart(3, "0")}`,
    prompt: `prompt ${i}`,
    category: cats[i % 4],
    challenge: i % 3 ? "Basic" : "Complex",
    note: "",
  }));
}

Deno.test("simulated three-model study: win rates near the truth, Bradley-Terry ranks the models", () => {
  const tasks = designStudy(syntheticPrompts(120), {
    models: ["ours", "sd15", "sd21"],
    pairs: "all",
    trials: 6,
    seed: 4,
  });
  const truth = {
    "ours vs sd15": { default: 0.75, Animals: 0.9 },
    "ours vs sd21": { default: 0.6 },
    "sd15 vs sd21": { default: 0.35 },
  };
  const opts = { tieRate: 0.1, lapse: 0.1 };
  const sim = simulateAnswers(tasks, { seed: 11, truth, spammerFraction: 0.1, ...opts });
  const ing = ingestResponses(answersToJsonl(sim), { source: "sim.jsonl" });
  assert.ok(ing.counts.excludedRaters > 0, "spammers caught by attention checks");
  const s = analyzeStudy(ing, { method: "bootstrap", bootstrapReps: 300, btReps: 50, seed: 0 });
  const overall = (key: string) => s.comparisons.find((c) => c.key === key)!.sections[0];
  // Overall truth for ours vs sd15 averages the categories (1/4 Animals).
  const t15 = 0.25 * expectedWinRate(0.9, opts) + 0.75 * expectedWinRate(0.75, opts);
  const o15 = overall("ours vs sd15");
  assert.ok(
    o15.interval.lo < t15 && t15 < o15.interval.hi,
    `${t15} in ${JSON.stringify(o15.interval)}`,
  );
  const animals = s.comparisons.find((c) => c.key === "ours vs sd15")!.sections.find((x) =>
    x.name === "Animals"
  )!;
  assert.ok(animals.winRate > o15.winRate, "the Animals cross-section is stronger");
  const bt = new Map(s.bradleyTerry!.strengths.map((x) => [x.model, x]));
  assert.ok(bt.get("ours")!.strength > bt.get("sd21")!.strength);
  assert.ok(bt.get("sd21")!.strength > bt.get("sd15")!.strength);
  for (const x of bt.values()) assert.ok(x.lo <= x.strength && x.strength <= x.hi);
  // Rater table lists excluded raters too, so they can be seen.
  assert.ok(s.raters.some((r) => r.excluded && r.n > 0));
  const fig = winRateFigure(s, "category");
  assert.equal(fig.data.length, 3);
  const ey = fig.data[0].error_y as { array: number[] };
  const first = s.comparisons[0].sections.find((x) => x.kind === "category")!;
  assert.ok(Math.abs(ey.array[0] - 100 * (first.interval.hi - first.winRate)) < 1e-9);
  const html = reportHtml(s);
  assert.match(html, /Bradley-Terry/);
  assert.equal((html.match(/Plotly\.newPlot\("fig\d"/g) ?? []).length, 4);
});

Deno.test("calibration: 95% intervals over 200 simulated studies (bootstrap ~95%, Wilson under-covers with prompt effects)", () => {
  // Prompt effect Beta(κμ, κ(1-μ)) with κ = 2: intraclass correlation 1/(κ+1) = 1/3 on the
  // preference, 6 answers per prompt -> Wilson's intervals are too narrow by about sqrt(2).
  const clustered = intervalCoverage({
    studies: 200,
    prompts: 60,
    trials: 6,
    promptConcentration: 2,
    seed: 0,
  });
  const independent = intervalCoverage({
    studies: 200,
    prompts: 60,
    trials: 6,
    promptConcentration: Infinity,
    seed: 1,
  });
  console.log(JSON.stringify({ clustered, independent }));
  // 200 studies: binomial sd of a 95% coverage is 1.5 points.
  assert.ok(
    clustered.coverage.bootstrap >= 0.9 && clustered.coverage.bootstrap <= 0.99,
    `bootstrap coverage ${clustered.coverage.bootstrap}`,
  );
  assert.ok(clustered.coverage.wilson <= 0.9, `Wilson coverage ${clustered.coverage.wilson}`);
  assert.ok(clustered.coverage.bootstrap - clustered.coverage.wilson >= 0.05);
  assert.ok(clustered.width.bootstrap > 1.2 * clustered.width.wilson);
  // Without prompt effects answers are independent and Wilson is right.
  assert.ok(
    independent.coverage.wilson >= 0.91 && independent.coverage.wilson <= 0.99,
    `independent Wilson coverage ${independent.coverage.wilson}`,
  );
  assert.ok(independent.coverage.bootstrap >= 0.89, `${independent.coverage.bootstrap}`);
  // The estimator is unbiased: mean estimate within 3 standard errors of the truth.
  const se = clustered.width.bootstrap / 3.92 / Math.sqrt(200);
  assert.ok(Math.abs(clustered.meanEstimate - clustered.truth) < 3 * se);
});
