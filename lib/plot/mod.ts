/**
 * Plots that work offline: self-contained Plotly HTML, Jupyter MIME bundles, loss curves, and
 * PNG image grids.
 *
 * @example
 * ```ts
 * import { lossCurveFigure, writePlotlyHtml, imageGrid, writePng } from "./lib/plot/mod.ts";
 * ```
 * @module
 */
export * from "./plotly_html.ts";
export * from "./png_grid.ts";
