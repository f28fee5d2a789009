/**
 * Classifier-free guidance (Ho & Salimans 2022) as a {@link ModelFn} wrapper.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { classifierFreeGuidance } from "./guidance.ts";
 * import { sampleDdim } from "./ddim.ts";
 * import { makeSchedule } from "./schedule.ts";
 *
 * // batched(x2, t) runs the UNet on [uncond-half, cond-half]; here uncond predicts 0, cond 1.
 * const batched = (x2: Float32Array) =>
 *   Promise.resolve(x2.map((_, i) => (i < x2.length / 2 ? 0 : 1)));
 * const guided = classifierFreeGuidance(batched, 7.5);
 * assert.deepEqual(await guided(new Float32Array(2), 500), new Float32Array([7.5, 7.5]));
 * const x = await sampleDdim(guided, new Float32Array(2), makeSchedule(), { steps: 5 });
 * assert.equal(x.length, 2);
 * ```
 * @module
 */

import type { ModelFn } from "./types.ts";

/**
 * Wrap a batched model into a guided {@link ModelFn}: `x` is duplicated into
 * `[uncond-half, cond-half]` (one call with twice the batch; the batched function knows which
 * half gets which context), and the result is `uncond + scale * (cond - uncond)`, computed in
 * float64. Scale 1 gives the conditional prediction, scale 0 the unconditional one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { classifierFreeGuidance } from "./guidance.ts";
 *
 * // A toy "UNet" whose prediction is the length of the caption each half is given.
 * const unet = (x2: Float32Array, _t: number, ctx: string[]) =>
 *   Promise.resolve(x2.map((_, i) => ctx[i < x2.length / 2 ? 0 : 1].length));
 * const [emptyCtx, ctx] = ["", "star"];
 * const guided = classifierFreeGuidance((x2, t) => unet(x2, t, [emptyCtx, ctx]), 5);
 * // uncond 0, cond 4 ("star"): 0 + 5 * (4 - 0)
 * assert.deepEqual(await guided(new Float32Array(3), 10), new Float32Array([20, 20, 20]));
 * ```
 */
export function classifierFreeGuidance(
  batched: (x2: Float32Array, t: number) => Promise<Float32Array>,
  scale: number,
): ModelFn {
  if (typeof batched !== "function") {
    throw new Error(
      "classifierFreeGuidance: batched must be a function (x2, t) => Promise<Float32Array>",
    );
  }
  if (!Number.isFinite(scale)) {
    throw new Error(`classifierFreeGuidance: scale must be a finite number, got ${scale}`);
  }
  return async (x: Float32Array, t: number): Promise<Float32Array> => {
    const n = x.length;
    const x2 = new Float32Array(2 * n);
    x2.set(x, 0);
    x2.set(x, n);
    const out = await batched(x2, t);
    if (!(out instanceof Float32Array) || out.length !== 2 * n) {
      throw new Error(
        `classifierFreeGuidance: batched model returned ${
          out instanceof Float32Array ? out.length : typeof out
        } values at t=${t}, expected a Float32Array of ${2 * n} ([uncond, cond])`,
      );
    }
    const res = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const u = out[i];
      res[i] = u + scale * (out[n + i] - u);
    }
    return res;
  };
}
