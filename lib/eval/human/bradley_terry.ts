/**
 * Bradley-Terry strengths from pairwise preferences: `P(i beats j) = s_i / (s_i + s_j)`, fitted
 * by Hunter's (2004) MM algorithm `s_i <- W_i / Σ_j n_ij / (s_i + s_j)`, ties counted as half a
 * win for each side. Strengths are normalised to geometric mean 1.
 *
 * @example
 * ```ts
 * const fit = fitBradleyTerry(["a", "b"], [{ a: "a", b: "b", scoreA: 1 }, {
 *   a: "a",
 *   b: "b",
 *   scoreA: 0,
 * }, { a: "a", b: "b", scoreA: 1 }]);
 * fit.strengths; // { a: 1.414, b: 0.707 } (ratio 2 = 2 wins / 1 loss)
 * ```
 * @module
 */

/** One game: `scoreA` is 1 when a won, 0 when b won, 0.5 for a tie. */
export interface Game {
  a: string;
  b: string;
  scoreA: number;
}

/** Options for {@link fitBradleyTerry}. */
export interface BradleyTerryOptions {
  /**
   * Pseudo-games added to every compared pair, split evenly (default 0). A small prior keeps a
   * model that never wins (possible in a bootstrap resample) at a finite strength.
   */
  prior?: number;
  /** Stop when no log-strength moves more than this (default 1e-10). */
  tol?: number;
  maxIter?: number;
}

/** A fitted model. */
export interface BradleyTerryFit {
  models: string[];
  /** Strength per model, geometric mean 1. */
  strengths: Record<string, number>;
  iterations: number;
}

/**
 * Fit Bradley-Terry strengths. Throws when a model never wins (its MLE strength is 0) and no
 * prior is given, or when the comparison graph leaves a model out.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fitBradleyTerry, type Game } from "./bradley_terry.ts";
 *
 * const games: Game[] = [
 *   { a: "x", b: "y", scoreA: 1 },
 *   { a: "x", b: "y", scoreA: 1 },
 *   { a: "x", b: "y", scoreA: 0 },
 * ];
 * const { strengths } = fitBradleyTerry(["x", "y"], games, { prior: 0.5 });
 * assert.ok(strengths.x > strengths.y); // x won two of three
 * ```
 */
export function fitBradleyTerry(
  models: readonly string[],
  games: readonly Game[],
  opts: BradleyTerryOptions = {},
): BradleyTerryFit {
  const k = models.length;
  const index = new Map(models.map((m, i) => [m, i]));
  const w = Array.from({ length: k }, () => new Float64Array(k));
  for (const g of games) {
    const i = index.get(g.a);
    const j = index.get(g.b);
    if (i === undefined || j === undefined) {
      throw new Error(`bradleyTerry: game "${g.a} vs ${g.b}" names a model not in the list`);
    }
    w[i][j] += g.scoreA;
    w[j][i] += 1 - g.scoreA;
  }
  return fitWinMatrix(models, w, opts);
}

/**
 * Fit from a win matrix `w[i][j]` = (fractional) wins of i over j.
 *
 * @example
 * ```ts
 * fitWinMatrix(["a", "b"], [new Float64Array([0, 2]), new Float64Array([1, 0])]);
 * ```
 */
export function fitWinMatrix(
  models: readonly string[],
  wins: readonly Float64Array[],
  opts: BradleyTerryOptions = {},
): BradleyTerryFit {
  const k = models.length;
  const prior = opts.prior ?? 0;
  const w = wins.map((row) => Float64Array.from(row));
  const n = Array.from({ length: k }, () => new Float64Array(k));
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++) {
      if (i === j) continue;
      const games = wins[i][j] + wins[j][i];
      if (games > 0 && prior > 0) w[i][j] += prior / 2;
      n[i][j] = games + (games > 0 ? prior : 0);
    }
  }
  const total = w.map((row) => row.reduce((s, v) => s + v, 0));
  for (let i = 0; i < k; i++) {
    if (n[i].every((v) => v === 0)) {
      throw new Error(`bradleyTerry: model "${models[i]}" has no games`);
    }
    if (total[i] === 0) {
      throw new Error(`bradleyTerry: model "${models[i]}" never wins; give a prior > 0`);
    }
  }
  let s = new Float64Array(k).fill(1);
  const tol = opts.tol ?? 1e-10;
  const maxIter = opts.maxIter ?? 10_000;
  let it = 0;
  for (; it < maxIter; it++) {
    const next = new Float64Array(k);
    for (let i = 0; i < k; i++) {
      let d = 0;
      for (let j = 0; j < k; j++) if (n[i][j] > 0) d += n[i][j] / (s[i] + s[j]);
      next[i] = total[i] / d;
    }
    // Geometric mean 1 keeps the scale fixed (BT is identified only up to a factor).
    const g = Math.exp(next.reduce((a, v) => a + Math.log(v), 0) / k);
    let move = 0;
    for (let i = 0; i < k; i++) {
      next[i] /= g;
      move = Math.max(move, Math.abs(Math.log(next[i]) - Math.log(s[i])));
    }
    s = next;
    if (move < tol) break;
  }
  const strengths: Record<string, number> = {};
  models.forEach((m, i) => strengths[m] = s[i]);
  return { models: [...models], strengths, iterations: it + 1 };
}
