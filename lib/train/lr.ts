/**
 * Learning-rate schedules as pure functions of the step index (the number of optimizer steps
 * already taken, so the first update uses `schedule(0)`).
 *
 * @example
 * ```ts
 * const lr = warmupCosine({ baseLr: 1e-4, warmupSteps: 500, totalSteps: 100_000, minLr: 1e-6 });
 * lr(0); // 2e-7
 * lr(499); // 1e-4
 * lr(100_000); // 1e-6
 * ```
 * @module
 */

/** Learning rate for a step index. */
export type LrSchedule = (step: number) => number;

/** Options for {@link warmupCosine}. */
export interface WarmupCosineOptions {
  /** Peak learning rate, reached at the end of warmup. */
  baseLr: number;
  /** Linear warmup length in steps (0 for none). */
  warmupSteps: number;
  /** Step at which the cosine reaches `minLr` (it stays there afterwards). */
  totalSteps: number;
  /** Floor of the cosine (default 0). */
  minLr?: number;
}

function need(cond: boolean, what: string): void {
  if (!cond) throw new Error(`warmupCosine: ${what}`);
}

/**
 * Linear warmup `baseLr * (step + 1) / warmupSteps` for `step < warmupSteps`, then half-cosine
 * decay from `baseLr` at `warmupSteps` to `minLr` at `totalSteps`.
 *
 * @example
 * ```ts
 * warmupCosine({ baseLr: 1, warmupSteps: 0, totalSteps: 10 })(5); // 0.5
 * ```
 */
export function warmupCosine(opts: WarmupCosineOptions): LrSchedule {
  const { baseLr, warmupSteps, totalSteps } = opts;
  const minLr = opts.minLr ?? 0;
  need(Number.isFinite(baseLr) && baseLr > 0, `baseLr must be > 0, got ${baseLr}`);
  need(
    Number.isInteger(warmupSteps) && warmupSteps >= 0,
    `warmupSteps must be an integer >= 0, got ${warmupSteps}`,
  );
  need(
    Number.isInteger(totalSteps) && totalSteps >= warmupSteps,
    `totalSteps must be an integer >= warmupSteps (${warmupSteps}), got ${totalSteps}`,
  );
  need(minLr >= 0 && minLr <= baseLr, `minLr must be in [0, baseLr], got ${minLr}`);
  const span = Math.max(1, totalSteps - warmupSteps);
  return (step: number) => {
    if (!(step >= 0)) throw new Error(`warmupCosine: step must be >= 0, got ${step}`);
    if (step < warmupSteps) return (baseLr * (step + 1)) / warmupSteps;
    const progress = Math.min(1, (step - warmupSteps) / span);
    return minLr + (baseLr - minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
  };
}

/**
 * A constant learning rate.
 *
 * @example
 * ```ts
 * constantLr(3e-4)(1000); // 3e-4
 * ```
 */
export function constantLr(lr: number): LrSchedule {
  if (!Number.isFinite(lr) || lr < 0) throw new Error(`constantLr: lr must be >= 0, got ${lr}`);
  return () => lr;
}
