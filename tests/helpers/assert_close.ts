/**
 * Shared numeric assertions: element-wise agreement within a tolerance, with a message that names
 * the worst element.
 *
 * @example
 * ```ts
 * assertClose(got, want, 1e-6, "softmax"); // relative to the largest |want|
 * assertClose(grad, fd, 1e-3, "conv dx", { minScale: 1 }); // absolute below magnitude 1
 * assertClose(onnx, tfjs, 1e-4, "unet", { scale: "absolute" }); // max |got - want| <= 1e-4
 * assertClose(onnx, tfjs, 1e-4, "unet", { scale: "absolute", nonTrivial: 0.05 }); // and want != 0
 * assertClose(p, ref, 1e-6, "adamw", { scale: "each", minScale: 1 }); // per element
 * assertClose(norm, 5, 1e-7, "norm", { scale: "each", minScale: 1 }); // scalars too
 * ```
 * @module
 */
import assert from "node:assert/strict";

/**
 * What `tol` is multiplied by to give the allowed `|got[i] - want[i]|`:
 * - `"largest"`: `max(max_j |want[j]|, minScale)`, one scale for the whole array (the default);
 * - `"each"`: `max(|want[i]|, minScale)`, element by element;
 * - `"1+each"`: `1 + |want[i]|`, element by element;
 * - `"absolute"`: 1, so `tol` bounds the absolute difference.
 */
export type CloseScale = "largest" | "each" | "1+each" | "absolute";

/** Options for {@link assertClose}. */
export interface CloseOptions {
  /** How `tol` scales (default `"largest"`). */
  scale?: CloseScale;
  /** Floor of the scale for `"largest"` and `"each"` (default 1e-12). */
  minScale?: number;
  /**
   * Also fail unless some `|want[i]| > nonTrivial`: a reference of about zero would make the
   * comparison vacuous.
   */
  nonTrivial?: number;
}

const asArray = (x: number | ArrayLike<number>): ArrayLike<number> =>
  typeof x === "number" ? [x] : x;

/**
 * Fails unless the lengths match and every `|got[i] - want[i]| <= tol * scale` (see
 * {@link CloseScale}); a NaN anywhere fails. Two numbers compare as one-element arrays. The
 * message names the worst element (largest difference relative to its bound) and its values.
 * With `nonTrivial`, the reference must also be larger than that somewhere.
 */
export function assertClose(
  got: number | ArrayLike<number>,
  want: number | ArrayLike<number>,
  tol: number,
  what: string,
  opts: CloseOptions = {},
): void {
  const g = asArray(got), w = asArray(want);
  assert.equal(g.length, w.length, `${what}: length`);
  const mode = opts.scale ?? "largest", minScale = opts.minScale ?? 1e-12;
  let largest = minScale;
  if (mode === "largest") {
    for (let i = 0; i < w.length; i++) largest = Math.max(largest, Math.abs(w[i]));
  }
  const scaleAt = (i: number): number =>
    mode === "largest"
      ? largest
      : mode === "each"
      ? Math.max(Math.abs(w[i]), minScale)
      : mode === "1+each"
      ? 1 + Math.abs(w[i])
      : 1;
  let ok = true, worst = -1, at = -1;
  for (let i = 0; i < w.length; i++) {
    const e = Math.abs(g[i] - w[i]), bound = tol * scaleAt(i);
    if (!(e <= bound)) ok = false;
    const r = Number.isNaN(e) ? Infinity : bound > 0 ? e / bound : e > 0 ? Infinity : 0;
    if (r > worst) [worst, at] = [r, i];
  }
  if (opts.nonTrivial !== undefined) {
    let m = 0;
    for (let i = 0; i < w.length; i++) m = Math.max(m, Math.abs(w[i]));
    assert.ok(m > opts.nonTrivial, `${what}: reference is ~0 (max ${m})`);
  }
  if (ok) return;
  const e = Math.abs(g[at] - w[at]), s = scaleAt(at);
  const where = g.length === 1 && typeof got === "number" ? "" : ` at ${at}`;
  assert.fail(
    mode === "absolute"
      ? `${what}: |got - want| = ${e} > ${tol}${where} (got ${g[at]}, want ${w[at]})`
      : `${what}: relative error ${(e / s).toExponential(2)} > ${tol}${where} ` +
        `(got ${g[at]}, want ${w[at]}, scale ${s})`,
  );
}

/**
 * `max_i |a[i] - b[i]|` after checking the lengths match (NaN if any difference is NaN), for
 * tests that compare the difference itself rather than assert a bound (see {@link assertClose}).
 */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, "maxAbsDiff: length");
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
