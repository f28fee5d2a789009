/**
 * Shared numeric assertion for kernel and gradient tests: element-wise agreement relative to the
 * largest magnitude of the expected values.
 *
 * @example
 * ```ts
 * assertClose(got, want, 1e-6, "softmax");
 * assertClose(grad, fd, 1e-3, "conv dx", { minScale: 1 }); // absolute below magnitude 1
 * ```
 * @module
 */
import assert from "node:assert/strict";

/**
 * Fails unless `max |got - want| <= tol * max(max |want|, minScale)` (and the lengths match); a
 * NaN anywhere fails. `minScale` (default 1e-12) turns the bound absolute for tiny expectations.
 * The message names the worst element.
 */
export function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: number,
  what: string,
  opts: { minScale?: number } = {},
): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let scale = opts.minScale ?? 1e-12, worst = 0, at = -1;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    if (!(e <= worst)) [worst, at] = [e, i];
  }
  assert.ok(
    worst <= tol * scale,
    `${what}: relative error ${(worst / scale).toExponential(2)} > ${tol} at ${at} ` +
      `(got ${got[at]}, want ${want[at]}, scale ${scale})`,
  );
}
