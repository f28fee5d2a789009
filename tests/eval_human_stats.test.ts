/**
 * Statistics of the human evaluation against values derived by hand (derivations in comments):
 * normal quantile, Wilson intervals, exact binomial p-values, Holm, Fleiss' kappa (textbook
 * example), Krippendorff's alpha, Bradley-Terry (closed form and recovery from simulated games).
 */
import assert from "node:assert/strict";
import {
  binomialTwoSidedP,
  fitBradleyTerry,
  fleissKappa,
  type Game,
  holm,
  krippendorffAlphaNominal,
  normalCdf,
  normalQuantile,
  percentileInterval,
  wilsonInterval,
} from "../lib/eval/human/mod.ts";
import { Rng } from "../lib/util/rng.ts";

const close = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: got ${a}, expected ${b} (±${tol})`);

Deno.test("normal CDF and quantile: symmetric, and z(0.975) = 1.959963984540054", () => {
  close(normalCdf(0), 0.5, 1e-15, "Phi(0)");
  close(normalCdf(1) + normalCdf(-1), 1, 1e-14, "Phi(1) + Phi(-1)");
  close(normalCdf(1), 0.8413447460685429, 1e-13, "Phi(1)");
  close(normalQuantile(0.975), 1.959963984540054, 1e-12, "z 0.975");
  close(normalQuantile(0.5), 0, 1e-12, "z 0.5");
  for (const p of [0.001, 0.2, 0.9, 0.999]) close(normalCdf(normalQuantile(p)), p, 1e-13, `p=${p}`);
});

Deno.test("Wilson interval matches hand values for k=0,n=10; k=5,n=10; k=81,n=263", () => {
  // With z = 1.959963985, z² = 3.841459 and z²/2 = 1.920729:
  // k=0, n=10: centre = 1.920729/13.841459 = 0.138767; half = z/13.841459 * sqrt(0 + z²/4)
  //   = (z²/2)/13.841459 = 0.138767 -> [0, 0.277533].
  // k=5, n=10: centre = 0.5; half = 0.141601 * sqrt(2.5 + 0.960365) = 0.141601 * 1.860206
  //   = 0.263407 -> [0.236593, 0.763407].
  // k=81, n=263: centre = 82.920729/266.841459 = 0.310749; half = (1.959964/266.841459)
  //   * sqrt(81*182/263 + 0.960365) = 0.0073451 * sqrt(57.013597) = 0.055461 -> [0.255288, 0.366210].
  const cases: [number, number, number, number][] = [
    [0, 10, 0, 0.277533],
    [5, 10, 0.236593, 0.763407],
    [81, 263, 0.255288, 0.366210],
  ];
  for (const [k, n, lo, hi] of cases) {
    const ci = wilsonInterval(k, n);
    close(ci.lo, lo, 2e-6, `lo k=${k} n=${n}`);
    close(ci.hi, hi, 2e-6, `hi k=${k} n=${n}`);
  }
  // Symmetry: k and n-k mirror each other; more confidence gives a wider interval.
  const a = wilsonInterval(3, 17);
  const b = wilsonInterval(14, 17);
  close(a.lo, 1 - b.hi, 1e-12, "mirror");
  assert.ok(wilsonInterval(3, 17, 0.99).hi > a.hi);
  assert.deepEqual(wilsonInterval(0, 0), { lo: 0, hi: 1 });
  assert.throws(() => wilsonInterval(5, 3), /0 <= k <= n/);
});

Deno.test("exact binomial two-sided p-values match hand counts", () => {
  // n=10, p=1/2: P(X=0) = 1/1024, two-sided doubles it.
  close(binomialTwoSidedP(0, 10), 2 / 1024, 1e-15, "k=0");
  // P(X<=2) = (1 + 10 + 45)/1024 = 56/1024, doubled = 112/1024.
  close(binomialTwoSidedP(2, 10), 112 / 1024, 1e-14, "k=2");
  close(binomialTwoSidedP(8, 10), 112 / 1024, 1e-14, "k=8");
  close(binomialTwoSidedP(5, 10), 1, 1e-15, "k=5");
  // n=12: P(X>=9) = (C(12,9)+C(12,10)+C(12,11)+C(12,12))/4096 = (220+66+12+1)/4096 = 299/4096.
  close(binomialTwoSidedP(9, 12), 598 / 4096, 1e-14, "k=9 n=12");
  // n=4, p=1/4: pmf = (81, 108, 54, 12, 1)/256; outcomes no likelier than P(0)=81/256 are
  // {0, 2, 3, 4}: (81 + 54 + 12 + 1)/256 = 148/256.
  close(binomialTwoSidedP(0, 4, 0.25), 148 / 256, 1e-14, "k=0 n=4 p=1/4");
  assert.equal(binomialTwoSidedP(0, 0), 1);
});

Deno.test("Holm adjustment on a known example", () => {
  // Sorted p: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, max(0.04*1, 0.06) = 0.06.
  const adj = holm([0.01, 0.04, 0.03, 0.005]);
  [0.03, 0.06, 0.06, 0.02].forEach((v, i) => close(adj[i], v, 1e-15, `p${i}`));
  // NaN stays NaN and does not count: m = 2 here.
  const withNan = holm([0.02, NaN, 0.5]);
  close(withNan[0], 0.04, 1e-15, "nan case 0");
  assert.ok(Number.isNaN(withNan[1]));
  close(withNan[2], 0.5, 1e-15, "nan case 2");
  close(holm([0.6, 0.7])[0], 1, 0, "capped at 1");
});

Deno.test("Fleiss' kappa on the textbook example (10 items, 14 raters, 5 categories)", () => {
  const counts = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
  ];
  // P_i = (Σ n_ij² - 14) / (14·13): numerators 182, 46, 56, 80, 60, 84, 44, 32, 52, 52 sum to 688,
  // so P̄ = 688/1820 = 0.378022. Column totals 20, 28, 39, 21, 32 of 140:
  // P_e = (400 + 784 + 1521 + 441 + 1024)/19600 = 4170/19600 = 0.212755.
  // kappa = (0.378022 - 0.212755)/(1 - 0.212755) = 0.209930.
  const pBar = 688 / 1820;
  const pe = 4170 / 19600;
  close(fleissKappa(counts), (pBar - pe) / (1 - pe), 1e-12, "kappa");
  close(fleissKappa(counts), 0.20993, 1e-5, "kappa ~ 0.210");
  close(fleissKappa([[3, 0], [0, 3], [3, 0]]), 1, 1e-15, "perfect agreement");
});

Deno.test("Krippendorff's alpha (nominal) on a hand example", () => {
  // Units (a,a), (a,b), (b,b): off-diagonal coincidences o_ab + o_ba = 2 (from the middle unit,
  // each pair weighted 1/(m-1) = 1); n = 6, n_a = n_b = 3. D_o = 2/6, D_e = (3·3 + 3·3)/(6·5) = 0.6,
  // alpha = 1 - (1/3)/0.6 = 4/9.
  close(krippendorffAlphaNominal([[2, 0], [1, 1], [0, 2]]), 4 / 9, 1e-15, "alpha");
  // A unit with a single value is not pairable and changes nothing.
  close(krippendorffAlphaNominal([[2, 0], [1, 1], [0, 2], [1, 0]]), 4 / 9, 1e-15, "with singleton");
  close(krippendorffAlphaNominal([[2, 0], [0, 3]]), 1, 1e-15, "perfect");
  assert.ok(Number.isNaN(krippendorffAlphaNominal([[2, 0], [3, 0]])), "one category: undefined");
});

Deno.test("Bradley-Terry: two models give the win ratio; simulated games recover strengths", () => {
  // With two models the MLE is s_a/s_b = wins/losses exactly (ties half each side).
  const games: Game[] = [
    ...Array.from({ length: 30 }, () => ({ a: "x", b: "y", scoreA: 1 })),
    ...Array.from({ length: 10 }, () => ({ a: "x", b: "y", scoreA: 0 })),
    ...Array.from({ length: 4 }, () => ({ a: "y", b: "x", scoreA: 0.5 })),
  ];
  const two = fitBradleyTerry(["x", "y"], games);
  close(two.strengths.x / two.strengths.y, 32 / 12, 1e-8, "ratio");
  close(two.strengths.x * two.strengths.y, 1, 1e-12, "geometric mean 1");

  const truth: Record<string, number> = { a: 4, b: 2, c: 1, d: 0.5 };
  const models = Object.keys(truth);
  const rng = Rng.stream(3, [1]);
  const sim: Game[] = [];
  for (let g = 0; g < 40_000; g++) {
    const i = rng.int(4);
    const j = (i + 1 + rng.int(3)) % 4;
    const [a, b] = [models[i], models[j]];
    sim.push({ a, b, scoreA: rng.uniform() < truth[a] / (truth[a] + truth[b]) ? 1 : 0 });
  }
  const fit = fitBradleyTerry(models, sim);
  // Compare log-ratios to the first model (scale-free); 10k games per model -> error ~0.03.
  for (const m of models.slice(1)) {
    close(
      Math.log(fit.strengths[m] / fit.strengths.a),
      Math.log(truth[m] / truth.a),
      0.08,
      `log s_${m}/s_a`,
    );
  }
  assert.throws(
    () => fitBradleyTerry(["x", "y"], [{ a: "x", b: "y", scoreA: 1 }]),
    /"y" never wins/,
  );
  const withPrior = fitBradleyTerry(["x", "y"], [{ a: "x", b: "y", scoreA: 1 }], { prior: 1 });
  close(withPrior.strengths.x / withPrior.strengths.y, 1.5 / 0.5, 1e-8, "prior adds half a win");
});

Deno.test("percentile interval uses linear interpolation", () => {
  const ci = percentileInterval([0.4, 0.6, 0.5], 0.5);
  close(ci.lo, 0.45, 1e-15, "lo");
  close(ci.hi, 0.55, 1e-15, "hi");
});
