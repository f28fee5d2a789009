/**
 * Wall time of a job's stages: each stage is announced (`== name`) and its seconds recorded under
 * its name, for the job's summary.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stageTimer } from "./stage_timer.ts";
 *
 * const lines: string[] = [];
 * const { timed, seconds } = stageTimer((s) => lines.push(s));
 * assert.equal(await timed("cache", () => Promise.resolve(42)), 42);
 * assert.deepEqual(lines, ["== cache"]);
 * assert.ok(seconds.cache >= 0);
 * ```
 * @module
 */

/** What {@link stageTimer} returns. */
export interface StageTimer {
  /** Seconds of each stage run so far, by name. */
  seconds: Record<string, number>;
  /** Run one stage: log its name, await `f`, record its seconds. */
  timed<T>(name: string, f: () => Promise<T>): Promise<T>;
}

/**
 * A timer for one job's stages, logging through `log`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stageTimer } from "./stage_timer.ts";
 *
 * const lines: string[] = [];
 * const { timed, seconds } = stageTimer((l) => lines.push(l));
 * assert.equal(await timed("sleep", () => new Promise((r) => setTimeout(() => r(7), 1))), 7);
 * assert.ok(seconds.sleep > 0 && seconds.sleep < 1); // about 0.001
 * assert.deepEqual(lines, ["== sleep"]);
 * ```
 */
export function stageTimer(log: (line: string) => void): StageTimer {
  const seconds: Record<string, number> = {};
  return {
    seconds,
    async timed<T>(name: string, f: () => Promise<T>): Promise<T> {
      const s = performance.now();
      log(`== ${name}`);
      const r = await f();
      seconds[name] = (performance.now() - s) / 1000;
      return r;
    },
  };
}
