/**
 * Shared numeric assertion for kernel tests: element-wise agreement relative to the largest
 * magnitude of the expected values.
 *
 * @example
 * ```ts
 * assertClose(got, want, 1e-6, "softmax");
 * ```
 * @module
 */
import assert from "node:assert/strict";

/** Fails unless `max |got - want| <= tol * max |want|` (and the lengths match). */
export function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: number,
  what: string,
): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let scale = 1e-12, diff = 0;
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]));
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
  }
  assert.ok(diff / scale <= tol, `${what}: relative error ${(diff / scale).toExponential(2)}`);
}
