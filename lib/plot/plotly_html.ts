/**
 * Plotly figures without a network: self-contained HTML files (plotly.js inlined from the npm
 * package `plotly.js-dist-min`) and Jupyter MIME bundles, plus the training loss-curve figure.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lossCurveFigure, plotlyMime, writePlotlyHtml } from "./plotly_html.ts";
 * import { readMetrics } from "../train/metrics.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/metrics.jsonl`, '{"step":1,"loss":2}\n{"step":2,"loss":1}\n');
 * const fig = lossCurveFigure(await readMetrics(`${dir}/metrics.jsonl`), { logY: true });
 * await writePlotlyHtml(`${dir}/loss.html`, fig);
 * assert.ok((await Deno.readTextFile(`${dir}/loss.html`)).includes("<html"));
 * // In a notebook: Deno.jupyter.display(plotlyMime(fig), { raw: true });
 * assert.ok(plotlyMime(fig)["image/svg+xml"].startsWith("<svg"));
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */
import { createRequire } from "node:module";
// Puts the package in the module graph, so import.meta.resolve below finds its files in Deno's
// global cache too (a script outside the repo, no node_modules).
import "npm:plotly.js-dist-min@3.7.0/package.json" with { type: "json" };
import { writeTextAtomic } from "../util/atomic.ts";
import { plotlySvg, type PlotlySvgOptions } from "./plotly_svg.ts";

/** One Plotly trace (`{type, x, y, mode, name, ...}`), passed through as JSON. */
export type PlotlyTrace = Record<string, unknown>;

/** A Plotly figure. */
export interface PlotlyFigure {
  data: PlotlyTrace[];
  layout?: Record<string, unknown>;
  config?: Record<string, unknown>;
}

let cachedJs: string | null = null;

/** Where the plotly.js bundle lives in the installed npm package. */
function plotlyJsPath(): string {
  try {
    const url = import.meta.resolve("npm:plotly.js-dist-min@3.7.0");
    if (url.startsWith("file:")) return new URL(url).pathname;
  } catch {
    // fall through to Node-style resolution
  }
  try {
    return createRequire(import.meta.url).resolve("plotly.js-dist-min");
  } catch (e) {
    throw new Error(
      `plotly: cannot locate the npm package "plotly.js-dist-min" (is it in deno.json imports ` +
        `and installed?): ${(e as Error).message}`,
    );
  }
}

/**
 * The plotly.js source, read once from the installed npm package.
 *
 * @example
 * ```ts
 * plotlyJs().length; // ~4.7 MB of JavaScript
 * ```
 */
export function plotlyJs(): string {
  if (cachedJs === null) {
    const path = plotlyJsPath();
    try {
      cachedJs = Deno.readTextFileSync(path);
    } catch (e) {
      throw new Error(`plotly: cannot read ${path}: ${(e as Error).message}`);
    }
  }
  return cachedJs;
}

/** JSON that is safe inside a `<script>` element. */
function scriptJson(v: unknown): string {
  return JSON.stringify(v ?? {})
    .replace(/</g, "\\u003c")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

/** plotly.js source made safe to inline: no `</script` may end the element early. */
function inlineJs(): string {
  return plotlyJs().replace(/<\/script/gi, "<\\/script");
}

function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"]/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!,
  );
}

/** Options for {@link plotlyDiv}. */
export interface PlotlyDivOptions {
  /** Element id (default: a random one). */
  id?: string;
  /** Inline plotly.js before the plot script (default true). */
  includePlotlyJs?: boolean;
}

/**
 * An HTML fragment (div + scripts) that renders the figure.
 *
 * @example
 * ```ts
 * const html = plotlyDiv({ data: [{ y: [1, 3, 2] }] }, { includePlotlyJs: false });
 * ```
 */
export function plotlyDiv(fig: PlotlyFigure, opts: PlotlyDivOptions = {}): string {
  if (!fig || !Array.isArray(fig.data)) {
    throw new Error("plotly: figure.data must be an array of traces");
  }
  const id = opts.id ?? `plot-${crypto.randomUUID().slice(0, 8)}`;
  const lib = opts.includePlotlyJs ?? true ? `<script>${inlineJs()}</script>\n` : "";
  const config = { displaylogo: false, responsive: true, ...(fig.config ?? {}) };
  return `<div id="${escapeHtml(id)}" style="width:100%;height:480px;"></div>\n${lib}<script>\n` +
    `Plotly.newPlot(${scriptJson(id)}, ${scriptJson(fig.data)}, ${scriptJson(fig.layout)}, ` +
    `${scriptJson(config)});\n</script>`;
}

/**
 * A complete, self-contained HTML document for the figure (works offline).
 *
 * @example
 * ```ts
 * const html = plotlyHtml({ data: [{ y: [1, 2] }] }, { title: "loss" });
 * ```
 */
export function plotlyHtml(fig: PlotlyFigure, opts: { title?: string } = {}): string {
  const title = escapeHtml(
    opts.title ?? String((fig.layout?.title as { text?: string })?.text ?? "plot"),
  );
  return `<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>${title}</title></head>\n` +
    `<body>\n${plotlyDiv(fig, { id: "plot" })}\n</body></html>\n`;
}

/**
 * Write {@link plotlyHtml} to `path` atomically.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { writePlotlyHtml } from "./plotly_html.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const fig = { data: [{ type: "scatter", x: [1, 2, 3], y: [3, 1, 2] }] };
 * await writePlotlyHtml(`${dir}/loss.html`, fig, { title: "loss" });
 * assert.ok((await Deno.readTextFile(`${dir}/loss.html`)).includes("<title>loss</title>"));
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writePlotlyHtml(
  path: string,
  fig: PlotlyFigure,
  opts: { title?: string } = {},
): Promise<void> {
  await writeTextAtomic(path, plotlyHtml(fig, opts));
}

/** A Jupyter display bundle for a Plotly figure. */
export interface PlotlyMimeBundle {
  "application/vnd.plotly.v1+json": { data: PlotlyTrace[]; layout: Record<string, unknown> };
  "image/svg+xml": string;
  "text/plain": string;
  [mime: string]: unknown;
}

/** Options for {@link plotlyMime}. */
export interface PlotlyMimeOptions extends PlotlySvgOptions {
  /**
   * Also add a `text/html` rendering (div + script) with these options. Off by default: a
   * notebook viewer that prefers HTML but runs no scripts (GitHub) would show an empty div, and
   * with plotly.js inlined every figure would weigh 4.8 MB.
   */
  html?: PlotlyDivOptions;
}

/**
 * Jupyter MIME bundle: the Plotly JSON (interactive where a Plotly renderer exists: JupyterLab
 * with the Plotly extension, VS Code) and a static SVG of the same figure ({@link plotlySvg}) for
 * every other viewer (GitHub, nbconvert, plain JupyterLab), a few kB per figure and no scripts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { plotlyMime } from "./plotly_html.ts";
 *
 * const fig = { data: [{ type: "scatter", y: [3, 1, 2] }], layout: { title: "loss" } };
 * const bundle = plotlyMime(fig); // in a notebook: Deno.jupyter.display(bundle, { raw: true })
 * assert.deepEqual(bundle["application/vnd.plotly.v1+json"].data, fig.data);
 * assert.equal(bundle["text/plain"], "Plotly figure: loss");
 * ```
 */
export function plotlyMime(fig: PlotlyFigure, opts: PlotlyMimeOptions = {}): PlotlyMimeBundle {
  if (!fig || !Array.isArray(fig.data)) {
    throw new Error("plotly: figure.data must be an array of traces");
  }
  const title = (fig.layout?.title as { text?: string } | string | undefined) ?? "";
  const bundle: PlotlyMimeBundle = {
    "application/vnd.plotly.v1+json": { data: fig.data, layout: fig.layout ?? {} },
    "image/svg+xml": plotlySvg(fig, opts),
    "text/plain": `Plotly figure: ${typeof title === "string" ? title : title.text ?? ""}`.trim(),
  };
  if (opts.html) bundle["text/html"] = plotlyDiv(fig, opts.html);
  return bundle;
}

/**
 * Debiased exponential moving average (TensorBoard-style smoothing):
 * `s_t = a s_{t-1} + (1 - a) x_t`, divided by `1 - a^t` so early values are not pulled to 0.
 * Non-finite inputs are skipped (the previous smoothed value is repeated).
 *
 * @example
 * ```ts
 * smoothEma([1, 1, 1], 0.9); // [1, 1, 1]
 * ```
 */
export function smoothEma(values: number[], alpha: number): number[] {
  if (!(alpha >= 0 && alpha < 1)) {
    throw new Error(`smoothEma: alpha must be in [0, 1), got ${alpha}`);
  }
  let s = 0;
  let n = 0;
  const out: number[] = [];
  for (const x of values) {
    if (Number.isFinite(x)) {
      s = alpha * s + (1 - alpha) * x;
      n += 1;
    }
    out.push(n ? s / (1 - alpha ** n) : NaN);
  }
  return out;
}

/** Options for {@link lossCurveFigure}. */
export interface LossCurveOptions {
  /** Metric to plot (default "loss"). */
  key?: string;
  /** Smoothing factor in [0, 1) for the EMA line (default 0.9; 0 hides the line). */
  smoothing?: number;
  /** Logarithmic y axis (default false). */
  logY?: boolean;
  /** Figure title. */
  title?: string;
}

/**
 * Loss-vs-step figure from metrics records: the raw values (faint) plus a smoothed EMA line.
 *
 * @example
 * ```ts
 * const fig = lossCurveFigure([{ step: 1, loss: 2 }, { step: 2, loss: 1 }], { logY: true });
 * ```
 */
export function lossCurveFigure(
  metrics: { step: number; [k: string]: unknown }[],
  opts: LossCurveOptions = {},
): PlotlyFigure {
  const key = opts.key ?? "loss";
  const rows = metrics.filter((m) => typeof m[key] === "number");
  const x = rows.map((m) => m.step);
  const y = rows.map((m) => m[key] as number);
  const smoothing = opts.smoothing ?? 0.9;
  const data: PlotlyTrace[] = [{
    type: "scatter",
    mode: "lines",
    name: key,
    x,
    y,
    line: { width: 1, color: "rgba(31,119,180,0.35)" },
  }];
  if (smoothing > 0) {
    data.push({
      type: "scatter",
      mode: "lines",
      name: `${key} (EMA ${smoothing})`,
      x,
      y: smoothEma(y, smoothing),
      line: { width: 2, color: "rgb(31,119,180)" },
    });
  }
  return {
    data,
    layout: {
      title: { text: opts.title ?? key },
      xaxis: { title: { text: "step" } },
      yaxis: { title: { text: key }, type: opts.logY ? "log" : "linear" },
      margin: { t: 50, r: 20 },
    },
  };
}
