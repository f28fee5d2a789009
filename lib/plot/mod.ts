/**
 * Plots that work offline: self-contained Plotly HTML, Jupyter MIME bundles, loss curves, interval
 * error bars and PNG image grids.
 *
 * @example
 * ```ts
 * import { imageGrid, lossCurveFigure, writePlotlyHtml, writePng } from "./mod.ts";
 * ```
 * @module
 */
export * from "./error_bars.ts";
export * from "./plotly_html.ts";
export * from "./plotly_svg.ts";
export * from "./png_grid.ts";
