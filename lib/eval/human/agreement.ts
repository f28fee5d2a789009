/**
 * Inter-rater agreement for nominal answers, from an item x category count matrix
 * (`counts[u][c]` = raters who put item u in category c): Fleiss' kappa (generalised to a varying
 * number of raters per item) and Krippendorff's alpha for nominal data. Items with fewer than two
 * ratings carry no agreement information and are skipped by both.
 *
 * @example
 * ```ts
 * fleissKappa([[2, 0], [0, 2]]); // 1
 * krippendorffAlphaNominal([[2, 0], [1, 1], [0, 2]]); // 4 / 9
 * ```
 * @module
 */

/**
 * Fleiss' kappa: `(P̄ - P_e) / (1 - P_e)` with `P_i = (Σ_c n_ic² - n_i) / (n_i (n_i - 1))`,
 * `P̄` their mean over items and `P_e = Σ_c p_c²`, `p_c` the share of all ratings in c. With the
 * same number of raters on every item this is Fleiss (1971) exactly. NaN when undefined
 * (no items with two ratings, or a single category used throughout).
 *
 * @example
 * ```ts
 * fleissKappa([[3, 0], [0, 3], [3, 0]]); // 1
 * ```
 */
export function fleissKappa(counts: readonly (readonly number[])[]): number {
  const items = counts.filter((row) => row.reduce((s, v) => s + v, 0) >= 2);
  if (items.length === 0) return NaN;
  const k = items[0].length;
  const catTotals = new Float64Array(k);
  let all = 0;
  let pBar = 0;
  for (const row of items) {
    if (row.length !== k) {
      throw new Error("fleissKappa: every row needs the same number of categories");
    }
    const ni = row.reduce((s, v) => s + v, 0);
    let sq = 0;
    row.forEach((v, c) => {
      sq += v * v;
      catTotals[c] += v;
    });
    all += ni;
    pBar += (sq - ni) / (ni * (ni - 1));
  }
  pBar /= items.length;
  let pe = 0;
  for (const t of catTotals) pe += (t / all) ** 2;
  return pe === 1 ? NaN : (pBar - pe) / (1 - pe);
}

/**
 * Krippendorff's alpha for nominal data: `1 - D_o / D_e`, from the coincidence matrix
 * `o_ck = Σ_u n_uc (n_uk - [c = k]) / (m_u - 1)`: `D_o = Σ_{c≠k} o_ck / n`,
 * `D_e = Σ_{c≠k} n_c n_k / (n (n - 1))`, where n counts the pairable values.
 * NaN when every value is in one category.
 *
 * @example
 * ```ts
 * krippendorffAlphaNominal([[2, 0], [1, 1], [0, 2]]); // 1 - (2/6)/(18/30) = 4/9
 * ```
 */
export function krippendorffAlphaNominal(counts: readonly (readonly number[])[]): number {
  const items = counts.filter((row) => row.reduce((s, v) => s + v, 0) >= 2);
  if (items.length === 0) return NaN;
  const k = items[0].length;
  const nc = new Float64Array(k);
  let disagreeObserved = 0;
  for (const row of items) {
    const m = row.reduce((s, v) => s + v, 0);
    // Off-diagonal coincidences of this unit: Σ_{c≠k} n_c n_k / (m - 1) = (m² - Σ n_c²) / (m - 1).
    let sq = 0;
    row.forEach((v, c) => {
      sq += v * v;
      nc[c] += v;
    });
    disagreeObserved += (m * m - sq) / (m - 1);
  }
  const n = nc.reduce((s, v) => s + v, 0);
  let sqTot = 0;
  for (const v of nc) sqTot += v * v;
  const disagreeExpected = (n * n - sqTot) / (n * (n - 1));
  if (disagreeExpected === 0) return NaN;
  return 1 - disagreeObserved / n / disagreeExpected;
}
