/**
 * Variance-preserving noise schedules mirroring Hugging Face diffusers' scheduler configs.
 *
 * Everything is computed in float64 (diffusers uses float32 tensors; the difference is ~1e-7
 * relative and keeps our closed-form tests exact).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { makeSchedule, SD_SCHEDULER_CONFIG } from "./schedule.ts";
 *
 * const s = makeSchedule(SD_SCHEDULER_CONFIG);
 * assert.ok(Math.abs(s.alphasCumprod[999] - 0.0047) < 1e-4);
 * const ab = s.alphasCumprod[500];
 * const xt = s.addNoise([1, 1, 0, 0], [0, 0, 1, 1], 500); // sqrt(abar) x0 + sqrt(1 - abar) eps
 * [Math.sqrt(ab), Math.sqrt(ab), Math.sqrt(1 - ab), Math.sqrt(1 - ab)]
 *   .forEach((v, i) => assert.ok(Math.abs(xt[i] - v) < 1e-6));
 * ```
 * @module
 */

import type { NoiseSchedule, ScheduleConfig, X0Eps } from "./types.ts";

/**
 * Stable Diffusion v1's scheduler (`PNDMScheduler`) as a {@link ScheduleConfig}. It has no
 * `timestepSpacing`, like the original `scheduler_config.json`, so each sampler uses its
 * diffusers default spacing.
 *
 * @example
 * ```ts
 * const s = makeSchedule(SD_SCHEDULER_CONFIG);
 * ```
 */
export const SD_SCHEDULER_CONFIG: Readonly<ScheduleConfig> = Object.freeze({
  className: "PNDMScheduler",
  numTrainTimesteps: 1000,
  betaStart: 0.00085,
  betaEnd: 0.012,
  betaSchedule: "scaled_linear",
  trainedBetas: null,
  predictionType: "epsilon",
  stepsOffset: 1,
  setAlphaToOne: false,
  skipPrkSteps: true,
  clipSample: false,
  clipSampleRange: 1,
});

/**
 * Build a {@link NoiseSchedule}. Missing fields take the Stable Diffusion v1 values of
 * {@link SD_SCHEDULER_CONFIG}.
 *
 * @example
 * ```ts
 * const cos = makeSchedule({ betaSchedule: "squaredcos_cap_v2", predictionType: "v_prediction" });
 * cos.snr(500);
 * ```
 */
export function makeSchedule(config: Partial<ScheduleConfig> = {}): NoiseSchedule {
  const cfg: ScheduleConfig = { ...SD_SCHEDULER_CONFIG, ...dropUndefined(config) };
  validateConfig(cfg, "makeSchedule");
  const n = cfg.numTrainTimesteps;
  const betas = makeBetas(cfg);
  const alphas = new Float64Array(n);
  const alphasCumprod = new Float64Array(n);
  const sigmas = new Float64Array(n);
  let prod = 1;
  for (let i = 0; i < n; i++) {
    alphas[i] = 1 - betas[i];
    prod *= alphas[i];
    alphasCumprod[i] = prod;
    sigmas[i] = Math.sqrt((1 - prod) / prod);
  }
  const finalAlphaCumprod = cfg.setAlphaToOne ? 1 : alphasCumprod[0];

  const checkT = (t: number): void => {
    if (!(t >= 0 && t <= n - 1)) {
      throw new Error(`NoiseSchedule: timestep must be in [0, ${n - 1}], got ${t}`);
    }
  };
  const sigmaAt = (t: number): number => {
    checkT(t);
    if (Number.isInteger(t)) return sigmas[t];
    // np.interp over integer knots, as diffusers' Euler does for float timesteps.
    const lo = Math.floor(t);
    const w = t - lo;
    return sigmas[lo] * (1 - w) + sigmas[lo + 1] * w;
  };
  const alphaBarAt = (t: number): number => {
    checkT(t);
    if (Number.isInteger(t)) return alphasCumprod[t];
    const s = sigmaAt(t);
    return 1 / (1 + s * s);
  };

  // Applies f(a, b, abar) elementwise, with one t or one t per equal-sized chunk.
  const map2 = (
    name: string,
    a: ArrayLike<number>,
    b: ArrayLike<number>,
    t: number | ArrayLike<number>,
    f: (a: number, b: number, sa: number, sb: number) => number,
  ): Float32Array => {
    if (a.length !== b.length) {
      throw new Error(
        `NoiseSchedule.${name}: arrays differ in length (${a.length} vs ${b.length})`,
      );
    }
    const out = new Float32Array(a.length);
    const ts = typeof t === "number" ? [t] : t;
    if (ts.length === 0 || a.length % ts.length !== 0) {
      throw new Error(
        `NoiseSchedule.${name}: ${a.length} values cannot be split into ${ts.length} samples`,
      );
    }
    const chunk = a.length / ts.length;
    for (let k = 0; k < ts.length; k++) {
      const ab = alphaBarAt(ts[k]);
      const sa = Math.sqrt(ab);
      const sb = Math.sqrt(1 - ab);
      for (let i = k * chunk; i < (k + 1) * chunk; i++) out[i] = f(a[i], b[i], sa, sb);
    }
    return out;
  };

  const addNoise = (x0: ArrayLike<number>, eps: ArrayLike<number>, t: number | ArrayLike<number>) =>
    map2("addNoise", x0, eps, t, (x, e, sa, sb) => sa * x + sb * e);
  const vTarget = (x0: ArrayLike<number>, eps: ArrayLike<number>, t: number | ArrayLike<number>) =>
    map2("vTarget", x0, eps, t, (x, e, sa, sb) => sa * e - sb * x);

  return {
    config: Object.freeze({ ...cfg }),
    numTrainTimesteps: n,
    predictionType: cfg.predictionType,
    betas,
    alphas,
    alphasCumprod,
    sigmas,
    finalAlphaCumprod,
    alphaBarAt,
    sigmaAt,
    snr(t: number): number {
      const ab = alphaBarAt(t);
      return ab / (1 - ab);
    },
    addNoise,
    vTarget,
    target(x0, eps, t) {
      return cfg.predictionType === "epsilon" ? Float32Array.from(eps) : vTarget(x0, eps, t);
    },
    predToX0Eps(pred, xt, t): X0Eps {
      const eps = cfg.predictionType === "epsilon"
        ? Float32Array.from(pred)
        // v = sa*eps - sb*x0 and x = sa*x0 + sb*eps give eps = sa*v + sb*x.
        : map2("predToX0Eps", pred, xt, t, (v, x, sa, sb) => sa * v + sb * x);
      const x0 = cfg.predictionType === "epsilon"
        ? map2("predToX0Eps", pred, xt, t, (e, x, sa, sb) => (x - sb * e) / sa)
        : map2("predToX0Eps", pred, xt, t, (v, x, sa, sb) => sa * x - sb * v);
      return { x0, eps };
    },
  };
}

function dropUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) {
    if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  }
  return out;
}

/** diffusers' `betas_for_alpha_bar` cosine transform (Nichol & Dhariwal 2021). */
function cosineAlphaBar(t: number): number {
  return Math.cos(((t + 0.008) / 1.008) * Math.PI / 2) ** 2;
}

function makeBetas(cfg: ScheduleConfig): Float64Array {
  const n = cfg.numTrainTimesteps;
  const betas = new Float64Array(n);
  if (cfg.trainedBetas) {
    betas.set(cfg.trainedBetas);
    return betas;
  }
  const lin = (a: number, b: number, i: number) => n === 1 ? a : a + (b - a) * (i / (n - 1));
  for (let i = 0; i < n; i++) {
    switch (cfg.betaSchedule) {
      case "linear":
        betas[i] = lin(cfg.betaStart, cfg.betaEnd, i);
        break;
      case "scaled_linear":
        betas[i] = lin(Math.sqrt(cfg.betaStart), Math.sqrt(cfg.betaEnd), i) ** 2;
        break;
      case "squaredcos_cap_v2":
        // 0.999 cap keeps the last step from destroying all signal at once (beta = 1).
        betas[i] = Math.min(1 - cosineAlphaBar((i + 1) / n) / cosineAlphaBar(i / n), 0.999);
        break;
    }
  }
  return betas;
}

/**
 * Throws a clear error for an invalid config; `where` names the source (file or function).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SD_SCHEDULER_CONFIG, validateConfig } from "./schedule.ts";
 *
 * assert.throws(
 *   () => validateConfig({ ...SD_SCHEDULER_CONFIG, stepsOffset: -1 }, "my.json"),
 *   /my.json: stepsOffset must be a non-negative integer, got -1/,
 * );
 * ```
 */
export function validateConfig(cfg: ScheduleConfig, where: string): void {
  const fail = (field: string, expected: string, got: unknown): never => {
    throw new Error(`${where}: ${field} must be ${expected}, got ${JSON.stringify(got)}`);
  };
  const n = cfg.numTrainTimesteps;
  if (!Number.isInteger(n) || n < 2) fail("numTrainTimesteps", "an integer >= 2", n);
  if (!["linear", "scaled_linear", "squaredcos_cap_v2"].includes(cfg.betaSchedule)) {
    fail("betaSchedule", '"linear", "scaled_linear" or "squaredcos_cap_v2"', cfg.betaSchedule);
  }
  if (!(cfg.betaStart > 0 && cfg.betaStart < 1)) {
    fail("betaStart", "a number in (0, 1)", cfg.betaStart);
  }
  if (!(cfg.betaEnd > 0 && cfg.betaEnd < 1)) fail("betaEnd", "a number in (0, 1)", cfg.betaEnd);
  if (!["epsilon", "v_prediction"].includes(cfg.predictionType)) {
    fail("predictionType", '"epsilon" or "v_prediction"', cfg.predictionType);
  }
  if (!Number.isInteger(cfg.stepsOffset) || cfg.stepsOffset < 0) {
    fail("stepsOffset", "a non-negative integer", cfg.stepsOffset);
  }
  for (const k of ["setAlphaToOne", "skipPrkSteps", "clipSample"] as const) {
    if (typeof cfg[k] !== "boolean") fail(k, "a boolean", cfg[k]);
  }
  if (!(cfg.clipSampleRange > 0)) fail("clipSampleRange", "a positive number", cfg.clipSampleRange);
  if (
    cfg.timestepSpacing !== undefined &&
    !["leading", "trailing", "linspace"].includes(cfg.timestepSpacing)
  ) {
    fail("timestepSpacing", '"leading", "trailing" or "linspace"', cfg.timestepSpacing);
  }
  if (cfg.trainedBetas) {
    const b = cfg.trainedBetas;
    if (!Array.isArray(b) || b.length !== n) {
      fail("trainedBetas", `an array of ${n} numbers`, Array.isArray(b) ? `length ${b.length}` : b);
    }
    for (let i = 0; i < b.length; i++) {
      if (!(b[i] > 0 && b[i] < 1)) fail(`trainedBetas[${i}]`, "a number in (0, 1)", b[i]);
    }
  }
}
