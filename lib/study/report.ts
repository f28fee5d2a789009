/**
 * The study's one-file report: sections, each with its figures, its headline numbers with 95%
 * intervals, what the study found and what the kit measured, rendered as one self-contained HTML
 * page (plotly.js inlined once), with every figure also written beside it
 * (`figures/<id>.json` + `.svg`, image grids as `.png`) and every headline in `report.json`.
 *
 * The page records its own script errors in `<pre id="js-errors">` and marks each plot
 * `data-rendered="1"` once Plotly has drawn it, so a headless browser can check the rendering
 * from the DOM alone.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { studyReportHtml, type StudySection } from "./report.ts";
 *
 * const section: StudySection = {
 *   id: "demo",
 *   title: "Demo",
 *   figures: [{ id: "demo-line", figure: { data: [{ type: "scatter", y: [1, 2] }] } }],
 *   headlines: [{ id: "demo.mean", label: "mean", value: 1.5, lo: 1, hi: 2, level: 0.95, method: "t" }],
 *   found: "The study found X.",
 *   measured: "The kit measured 1.5.",
 * };
 * const html = studyReportHtml({ title: "Study", sections: [section], meta: {} }, { plotlyJs: "" });
 * assert.equal(html.match(/class="study-plot"/g)?.length, 1);
 * assert.match(html, /1\.5 \[1, 2\]/);
 * ```
 * @module
 */
import { encodePng, type PlotlyFigure, plotlyJs, plotlySvg, type RgbImage } from "../plot/mod.ts";
import { writeFileAtomic, writeJsonAtomic, writeTextAtomic } from "../util/atomic.ts";

/** A headline number with its interval. */
export interface Headline {
  /** Stable id, `<section>.<name>`. */
  id: string;
  label: string;
  value: number;
  lo: number;
  hi: number;
  /** Coverage of `[lo, hi]`, e.g. 0.95. */
  level: number;
  /** How the interval was made ("percentile bootstrap over prompts", "Wilson"...). */
  method: string;
  unit?: string;
}

/** A Plotly figure of a section. */
export interface StudyFigure {
  /** File name stem under `figures/` and the plot's element id. */
  id: string;
  figure: PlotlyFigure;
  caption?: string;
}

/** An image (PNG) of a section, e.g. a sample grid. */
export interface StudyImage {
  id: string;
  image: RgbImage;
  caption?: string;
  /** Display scale (pixels per image pixel; default 4: tiny images stay visible). */
  scale?: number;
}

/** A small table of a section. */
export interface StudyTable {
  caption?: string;
  header: string[];
  rows: (string | number)[][];
}

/** One section of the report. */
export interface StudySection {
  id: string;
  title: string;
  figures: StudyFigure[];
  images?: StudyImage[];
  tables?: StudyTable[];
  headlines: Headline[];
  /** One sentence: what the study found. */
  found: string;
  /** One sentence: what the kit measured here. */
  measured: string;
  /** Degenerate figures or other caveats, said plainly. */
  caveats?: string[];
}

/** The whole report. */
export interface StudyReport {
  title: string;
  sections: StudySection[];
  /** Settings and timings, shown at the end and kept in report.json. */
  meta: Record<string, unknown>;
}

/** Options of {@link studyReportHtml}. */
export interface StudyReportHtmlOptions {
  /** plotly.js source to inline (default: the installed package's). */
  plotlyJs?: string;
}

function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"]/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!,
  );
}

/** JSON safe inside a `<script>` element. */
function scriptJson(v: unknown): string {
  return JSON.stringify(v ?? {})
    .replace(/</g, "\\u003c")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

/**
 * A number as the report prints it: 4 significant digits, integers as they are.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatNumber } from "./report.ts";
 *
 * assert.deepEqual([formatNumber(2), formatNumber(0.123456), formatNumber(12345.6)], ["2", "0.1235", "12346"]);
 * ```
 */
export function formatNumber(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (Number.isInteger(x)) return String(x);
  if (Math.abs(x) >= 1000) return x.toFixed(0);
  return String(Number(x.toPrecision(4)));
}

/**
 * The headline of an estimate with its interval (`value`, `lo`, `hi`, `level`), made by `method`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { estimateHeadline } from "./report.ts";
 *
 * const e = { value: 0.6, lo: 0.5, hi: 0.7, level: 0.95, resamples: 1000 };
 * const h = estimateHeadline("x.win", "win rate", e, "percentile bootstrap");
 * assert.deepEqual(h, { id: "x.win", label: "win rate", value: 0.6, lo: 0.5, hi: 0.7, level: 0.95, method: "percentile bootstrap" });
 * ```
 */
export function estimateHeadline(
  id: string,
  label: string,
  e: { value: number; lo: number; hi: number; level: number },
  method: string,
): Headline {
  return { id, label, value: e.value, lo: e.lo, hi: e.hi, level: e.level, method };
}

/**
 * A headline as text: `value [lo, hi]` with its unit.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatHeadline } from "./report.ts";
 *
 * const h = { id: "a.b", label: "ratio", value: 2.07, lo: 1.7, hi: 3.33, level: 0.95, method: "bootstrap" };
 * assert.equal(formatHeadline(h), "2.07 [1.7, 3.33]");
 * ```
 */
export function formatHeadline(h: Headline): string {
  const u = h.unit ? ` ${h.unit}` : "";
  return `${formatNumber(h.value)} [${formatNumber(h.lo)}, ${formatNumber(h.hi)}]${u}`;
}

function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

function sectionHtml(s: StudySection): string {
  const parts: string[] = [`<section id="${escapeHtml(s.id)}">`, `<h2>${escapeHtml(s.title)}</h2>`];
  parts.push(`<p class="found"><b>Study:</b> ${escapeHtml(s.found)}</p>`);
  parts.push(`<p class="measured"><b>Kit:</b> ${escapeHtml(s.measured)}</p>`);
  if (s.headlines.length) {
    parts.push(
      '<table class="headlines"><tr><th>headline</th><th>value [95% interval]</th>' +
        "<th>interval</th></tr>",
    );
    for (const h of s.headlines) {
      parts.push(
        `<tr><td>${escapeHtml(h.label)}</td><td>${escapeHtml(formatHeadline(h))}</td>` +
          `<td>${escapeHtml(`${Math.round(h.level * 100)}% ${h.method}`)}</td></tr>`,
      );
    }
    parts.push("</table>");
  }
  for (const c of s.caveats ?? []) {
    parts.push(`<p class="caveat"><b>Caveat:</b> ${escapeHtml(c)}</p>`);
  }
  for (const f of s.figures) {
    const id = `plot-${f.id}`;
    parts.push(`<figure><div id="${escapeHtml(id)}" class="study-plot"></div>`);
    if (f.caption) parts.push(`<figcaption>${escapeHtml(f.caption)}</figcaption>`);
    parts.push("</figure>");
    const config = { displaylogo: false, responsive: true, ...(f.figure.config ?? {}) };
    parts.push(
      `<script>studyPlot(${scriptJson(id)}, ${scriptJson(f.figure.data)}, ` +
        `${scriptJson({ height: 440, ...(f.figure.layout ?? {}) })}, ${
          scriptJson(config)
        });</script>`,
    );
  }
  for (const im of s.images ?? []) {
    const scale = im.scale ?? 4;
    parts.push(
      `<figure><img class="study-image" alt="${escapeHtml(im.id)}" width="${
        im.image.width * scale
      }" style="image-rendering:pixelated" src="data:image/png;base64,${
        base64(encodePng(im.image))
      }">` + (im.caption ? `<figcaption>${escapeHtml(im.caption)}</figcaption>` : "") +
        "</figure>",
    );
  }
  for (const t of s.tables ?? []) {
    parts.push('<table class="data">');
    if (t.caption) parts.push(`<caption>${escapeHtml(t.caption)}</caption>`);
    parts.push(`<tr>${t.header.map((h) => `<th>${escapeHtml(h)}</th>`).join("")}</tr>`);
    for (const r of t.rows) {
      parts.push(`<tr>${r.map((c) => `<td>${escapeHtml(String(c))}</td>`).join("")}</tr>`);
    }
    parts.push("</table>");
  }
  parts.push("</section>");
  return parts.join("\n");
}

// Recorded before plotly.js loads, so a failure while loading it is caught too.
const ERROR_HOOK = `<script>
(function () {
  function note(msg) {
    var el = document.getElementById("js-errors");
    if (el) el.textContent += msg + "\\n"; else (window.__studyErrors = window.__studyErrors || []).push(msg);
  }
  window.addEventListener("error", function (e) { note("error: " + e.message); });
  window.addEventListener("unhandledrejection", function (e) { note("rejection: " + (e.reason && e.reason.message || e.reason)); });
  window.studyPlot = function (id, data, layout, config) {
    try {
      Plotly.newPlot(id, data, layout, config).then(function () {
        document.getElementById(id).setAttribute("data-rendered", "1");
      }, function (err) { note("plot " + id + ": " + (err && err.message || err)); });
    } catch (err) { note("plot " + id + ": " + (err && err.message || err)); }
  };
})();
</script>`;

const STYLE = `<style>
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
section { border-top: 1px solid #ccc; padding-top: 0.5em; margin-top: 1.5em; }
table { border-collapse: collapse; margin: 0.5em 0; }
td, th { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: left; }
.caveat { background: #fff4e0; padding: 0.3em 0.6em; }
.study-plot { width: 100%; height: 440px; }
figcaption { font-size: 0.9em; color: #555; }
#js-errors:empty { display: none; }
#js-errors { color: #a00; }
</style>`;

/**
 * The report as one self-contained HTML document (see the module notes).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { studyReportHtml } from "./report.ts";
 *
 * const html = studyReportHtml({ title: "T <1>", sections: [], meta: { size: "quick" } }, { plotlyJs: "" });
 * assert.match(html, /<title>T &lt;1&gt;<\/title>/);
 * ```
 */
export function studyReportHtml(r: StudyReport, opts: StudyReportHtmlOptions = {}): string {
  const js = (opts.plotlyJs ?? plotlyJs()).replace(/<\/script/gi, "<\\/script");
  const toc = r.sections.map((s) =>
    `<li><a href="#${escapeHtml(s.id)}">${escapeHtml(s.title)}</a>: ${
      s.headlines.slice(0, 1).map((h) => escapeHtml(`${h.label} ${formatHeadline(h)}`)).join("")
    }</li>`
  ).join("\n");
  return [
    "<!DOCTYPE html>",
    `<html><head><meta charset="utf-8"><title>${escapeHtml(r.title)}</title>`,
    STYLE,
    ERROR_HOOK,
    `<script>${js}</script>`,
    "</head><body>",
    `<h1>${escapeHtml(r.title)}</h1>`,
    '<pre id="js-errors"></pre>',
    `<ol>${toc}</ol>`,
    ...r.sections.map(sectionHtml),
    '<section id="settings"><h2>Settings</h2><pre>' +
    escapeHtml(JSON.stringify(r.meta, null, 2)) + "</pre></section>",
    "</body></html>",
    "",
  ].join("\n");
}

/**
 * The machine-readable report: every headline with its interval, by section.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { studyReportJson } from "./report.ts";
 *
 * const h = { id: "s.x", label: "x", value: 1, lo: 0, hi: 2, level: 0.95, method: "Wilson" };
 * const doc = studyReportJson({ title: "T", meta: {}, sections: [
 *   { id: "s", title: "S", figures: [], headlines: [h], found: "f", measured: "m" },
 * ] });
 * assert.deepEqual(doc.headlines, [{ section: "s", ...h }]);
 * ```
 */
export function studyReportJson(r: StudyReport): Record<string, unknown> {
  return {
    format: "xgen-kit/study-report@1",
    title: r.title,
    headlines: r.sections.flatMap((s) => s.headlines.map((h) => ({ section: s.id, ...h }))),
    sections: r.sections.map((s) => ({
      id: s.id,
      title: s.title,
      found: s.found,
      measured: s.measured,
      caveats: s.caveats ?? [],
      figures: [
        ...s.figures.map((f) => `figures/${f.id}.json`),
        ...(s.images ?? []).map((im) => `figures/${im.id}.png`),
      ],
      headlines: s.headlines.map((h) => h.id),
    })),
    meta: r.meta,
  };
}

/**
 * Write `report.html`, `report.json` and `figures/` (each Plotly figure as `.json` + `.svg`,
 * each image as `.png`) into `dir`, every file atomically; the HTML last.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { writeStudyReport } from "./report.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const fig = { data: [{ type: "scatter", x: [1, 2], y: [3, 4] }] };
 * const section = { id: "s", title: "S", figures: [{ id: "s-fig", figure: fig }], headlines: [],
 *   found: "f", measured: "m" };
 * await writeStudyReport(dir, { title: "T", sections: [section], meta: {} });
 * assert.ok((await Deno.readTextFile(`${dir}/figures/s-fig.svg`)).startsWith("<svg"));
 * assert.ok((await Deno.stat(`${dir}/report.html`)).size > 1e6); // plotly.js inlined
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeStudyReport(dir: string, r: StudyReport): Promise<void> {
  await Deno.mkdir(`${dir}/figures`, { recursive: true });
  for (const s of r.sections) {
    for (const f of s.figures) {
      await writeJsonAtomic(`${dir}/figures/${f.id}.json`, f.figure);
      await writeTextAtomic(`${dir}/figures/${f.id}.svg`, plotlySvg(f.figure));
    }
    for (const im of s.images ?? []) {
      await writeFileAtomic(`${dir}/figures/${im.id}.png`, encodePng(im.image));
    }
  }
  await writeJsonAtomic(`${dir}/report.json`, studyReportJson(r));
  await writeTextAtomic(`${dir}/report.html`, studyReportHtml(r));
}
