/**
 * The few numpy routines diffusers uses to pick timesteps, reproduced bit for bit in float64:
 * `np.round` (round half to even), `np.linspace` and `np.arange` with a float step.
 *
 * @example
 * ```ts
 * roundHalfEven(812.5); // 812, where Math.round gives 813
 * linspace(0, 999, 51); // [0, 19.98, ..., 999]
 * ```
 * @module
 */

/**
 * `np.round`: round half to even.
 *
 * @example
 * ```ts
 * roundHalfEven(2.5); // 2
 * ```
 */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * `np.linspace(start, stop, num)` (endpoint included): `i * step + start`, last value exact.
 *
 * @example
 * ```ts
 * linspace(0, 1, 3); // [0, 0.5, 1]
 * ```
 */
export function linspace(start: number, stop: number, num: number): number[] {
  if (num === 1) return [start];
  const step = (stop - start) / (num - 1);
  const out = Array.from({ length: num }, (_, i) => i * step + start);
  out[num - 1] = stop;
  return out;
}

/**
 * `np.arange(start, stop, step)` for float64: the length is `ceil((stop - start) / step)` and
 * values are `start + i * delta` where numpy's fill uses `delta = (start + step) - start`.
 *
 * @example
 * ```ts
 * arange(1000, 0, -62.5); // [1000, 937.5, ..., 62.5]
 * ```
 */
export function arange(start: number, stop: number, step: number): number[] {
  if (step === 0) throw new Error("arange: step must not be 0");
  const len = Math.max(0, Math.ceil((stop - start) / step));
  const delta = (start + step) - start;
  return Array.from({ length: len }, (_, i) => i === 0 ? start : start + i * delta);
}
