/**
 * Plotly error bars of point estimates with intervals: asymmetric, each side's length clamped at
 * 0 (an interval that does not contain its estimate draws no negative bar). One definition for
 * every figure that plots estimates with their 95% intervals.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { intervalErrorBars } from "./error_bars.ts";
 *
 * const bars = intervalErrorBars([{ value: 2, lo: 1.5, hi: 3 }, { value: 1, lo: 1.2, hi: 1.4 }]);
 * assert.deepEqual([bars.array, bars.arrayminus], [[1, 0.3999999999999999], [0.5, 0]]);
 * ```
 * @module
 */

/** An estimate and its interval. */
export interface IntervalEstimate {
  value: number;
  lo: number;
  hi: number;
}

/** A Plotly `error_x` / `error_y` object. */
export interface PlotlyErrorBars {
  type: "data";
  symmetric: false;
  array: number[];
  arrayminus: number[];
  thickness?: number;
}

/**
 * `error_x` / `error_y` for `es`: `hi - value` up, `value - lo` down, both at least 0; with
 * `thickness` the bar width in pixels.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { intervalErrorBars } from "./error_bars.ts";
 *
 * assert.equal(intervalErrorBars([{ value: 0, lo: 0, hi: 0 }], { thickness: 1 }).thickness, 1);
 * ```
 */
export function intervalErrorBars(
  es: readonly IntervalEstimate[],
  o: { thickness?: number } = {},
): PlotlyErrorBars {
  return {
    type: "data",
    symmetric: false,
    array: es.map((e) => Math.max(0, e.hi - e.value)),
    arrayminus: es.map((e) => Math.max(0, e.value - e.lo)),
    ...(o.thickness === undefined ? {} : { thickness: o.thickness }),
  };
}
