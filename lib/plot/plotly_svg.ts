/**
 * A static SVG rendering of the subset of Plotly figures the kit draws (scatter lines, markers
 * and labels, grouped bars, box plots, error bars, linear/log/category axes, horizontal reference
 * lines). Notebooks carry it next to the Plotly JSON as the figure's `image/svg+xml` fallback: it
 * needs no JavaScript, so it shows where scripts do not run (GitHub's notebook view, nbconvert,
 * JupyterLab without the Plotly extension) and costs a few kB instead of plotly.js's 4.8 MB.
 *
 * @example
 * ```ts
 * const svg = plotlySvg({ data: [{ type: "scatter", y: [3, 1, 2] }], layout: { title: "t" } });
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/fig.svg`, svg);
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */
/** One trace, as in `PlotlyFigure` (declared here so plotly_html.ts can import this file). */
type PlotlyTrace = Record<string, unknown>;

/** The figure fields the SVG uses: structurally a `PlotlyFigure` of plotly_html.ts. */
export interface SvgFigure {
  data: PlotlyTrace[];
  layout?: Record<string, unknown>;
}

/** Options for {@link plotlySvg}. */
export interface PlotlySvgOptions {
  /** Width in pixels (default 720). */
  width?: number;
  /** Height in pixels (default 420). */
  height?: number;
}

/** Plotly's default trace colours, so the SVG matches the interactive figure. */
const PALETTE = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
];

type Rec = Record<string, unknown>;
type Val = number | string | null;

function esc(s: string): string {
  return s.replace(
    /[&<>"]/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!,
  );
}

/** Plotly accepts `title: "x"` and `title: { text: "x" }`. */
function titleText(t: unknown): string {
  if (typeof t === "string") return t;
  return typeof (t as Rec | undefined)?.text === "string" ? (t as Rec).text as string : "";
}

function arr(v: unknown): Val[] {
  if (Array.isArray(v)) return v as Val[];
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number>);
  return [];
}

const num = (v: Val | undefined): number | null =>
  typeof v === "number" && Number.isFinite(v) ? v : null;

/** Short tick label: up to 4 significant digits, no trailing zeros. */
function tickLabel(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(1).replace(".0e", "e").replace("e+", "e");
  return String(Number(v.toPrecision(4)));
}

/** About `n` round values (1, 2 or 5 times a power of ten apart) covering [lo, hi]. */
function niceTicks(lo: number, hi: number, n = 6): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n, p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  }
  return out;
}

/** One value axis: data range (padded), log or linear, mapped onto pixels [p0, p1]. */
interface Axis {
  log: boolean;
  lo: number;
  hi: number;
  ticks: number[];
  px(v: number): number;
}

function valueAxis(values: number[], spec: Rec, p0: number, p1: number, zero: boolean): Axis {
  const log = spec.type === "log";
  let vs = values.filter((v) => Number.isFinite(v) && (!log || v > 0));
  if (vs.length === 0) vs = log ? [1, 10] : [0, 1];
  let lo = Math.min(...vs), hi = Math.max(...vs);
  const range = Array.isArray(spec.range) ? spec.range as number[] : null;
  if (log) {
    [lo, hi] = range ? range.map((r) => 10 ** r) : [lo, hi];
    if (!range) {
      const pad = Math.max(0.05 * Math.log10(hi / lo), 0.02);
      lo /= 10 ** pad;
      hi *= 10 ** pad;
    }
  } else if (range) {
    [lo, hi] = range;
  } else {
    if (zero) lo = Math.min(lo, 0), hi = Math.max(hi, 0);
    const pad = hi > lo ? 0.06 * (hi - lo) : Math.abs(hi) * 0.1 || 1;
    if (!(zero && lo === 0)) lo -= pad;
    hi += pad;
  }
  const f = (v: number) => log ? Math.log10(v) : v;
  const [a, b] = [f(lo), f(hi)];
  let ticks: number[];
  if (log) {
    const decades = niceTicks(Math.ceil(a), Math.floor(b), 6).filter(Number.isInteger);
    const fine = [] as number[];
    for (let e = Math.floor(a); e <= Math.ceil(b); e++) {
      for (const m of [1, 2, 5]) {
        if (f(m * 10 ** e) >= a && f(m * 10 ** e) <= b) fine.push(m * 10 ** e);
      }
    }
    ticks = fine.length <= 8 && fine.length >= 2
      ? fine
      : decades.length >= 2
      ? decades.map((e) => 10 ** e)
      : niceTicks(lo, hi).filter((v) => v > 0);
  } else {
    ticks = niceTicks(lo, hi);
  }
  return { log, lo, hi, ticks, px: (v) => p0 + (p1 - p0) * (f(v) - a) / (b - a || 1) };
}

function polygonStar(cx: number, cy: number, r: number): string {
  const pts: string[] = [];
  for (let k = 0; k < 10; k++) {
    const rr = k % 2 === 0 ? r : r * 0.45, ang = -Math.PI / 2 + (k * Math.PI) / 5;
    pts.push(`${(cx + rr * Math.cos(ang)).toFixed(1)},${(cy + rr * Math.sin(ang)).toFixed(1)}`);
  }
  return pts.join(" ");
}

function quantile(sorted: number[], q: number): number {
  const i = (sorted.length - 1) * q, f = Math.floor(i);
  return sorted[f] + (sorted[Math.min(f + 1, sorted.length - 1)] - sorted[f]) * (i - f);
}

/**
 * Render `fig` as a standalone SVG document (no scripts). Traces other than scatter, bar and box
 * are skipped; hover text and interactivity are not reproduced.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { plotlySvg } from "./plotly_svg.ts";
 *
 * // In a notebook: Deno.jupyter.display({ "image/svg+xml": svg }, { raw: true });
 * const svg = plotlySvg({ data: [{ type: "bar", x: ["a", "b"], y: [1, 2] }] });
 * assert.ok(svg.startsWith("<svg") && svg.trimEnd().endsWith("</svg>"));
 * ```
 */
export function plotlySvg(fig: SvgFigure, opts: PlotlySvgOptions = {}): string {
  const W = opts.width ?? 720, H = opts.height ?? 420;
  const layout = (fig.layout ?? {}) as Rec;
  const xSpec = (layout.xaxis ?? {}) as Rec, ySpec = (layout.yaxis ?? {}) as Rec;
  const traces = fig.data.filter((t) =>
    ["scatter", "bar", "box", undefined].includes(t.type as string)
  );
  const colour = (t: PlotlyTrace, i: number) =>
    ((t.marker as Rec | undefined)?.color as string | undefined) ??
      ((t.line as Rec | undefined)?.color as string | undefined) ?? PALETTE[i % PALETTE.length];
  const xsOf = (t: PlotlyTrace): Val[] => {
    const x = arr(t.x), n = Math.max(arr(t.y).length, t.type === "box" ? 1 : 0);
    return x.length
      ? x
      : t.type === "box"
      ? [t.name as string ?? ""]
      : Array.from({ length: n }, (_, i) => i);
  };
  // A category x axis when any trace is a bar or box chart or has string x values.
  const categorical = traces.some((t) =>
    ((t.type === "bar" || t.type === "box") && arr(t.y).length > 0) ||
    xsOf(t).some((v) => typeof v === "string")
  );
  const categories: string[] = [];
  if (categorical) {
    for (const t of traces) {
      for (const v of xsOf(t)) {
        if (v !== null && !categories.includes(String(v))) categories.push(String(v));
      }
    }
  }
  const named = traces.filter((t) => typeof t.name === "string" && t.showlegend !== false);
  const legend = named.length > 1 || (named.length === 1 && traces.length > 1);
  const longest = categorical ? Math.max(0, ...categories.map((c) => c.length)) : 0;
  const rotate = categorical &&
    (Number(xSpec.tickangle ?? 0) !== 0 || longest * 7 * categories.length > W - 120);
  const m = {
    l: 70,
    r: legend ? 170 : 20,
    t: titleText(layout.title) ? 44 : 16,
    b: 46 + (rotate ? Math.min(110, longest * 5.5) : 0),
  };
  const [x0, x1, y0, y1] = [m.l, W - m.r, H - m.b, m.t];

  // y values (with error bars) of every trace, to size the value axis.
  const yVals: number[] = [], xVals: number[] = [];
  for (const t of traces) {
    const ys = arr(t.y), xs = xsOf(t);
    const ey = (t.error_y ?? {}) as Rec, ex = (t.error_x ?? {}) as Rec;
    const [up, dn] = [arr(ey.array), arr(ey.arrayminus ?? ey.array)];
    const [rt, lt] = [arr(ex.array), arr(ex.arrayminus ?? ex.array)];
    ys.forEach((v, i) => {
      const y = num(v);
      if (y === null) return;
      yVals.push(y, y + (num(up[i]) ?? 0), y - (num(dn[i]) ?? 0));
      const x = num(xs[i]);
      if (x !== null) xVals.push(x, x + (num(rt[i]) ?? 0), x - (num(lt[i]) ?? 0));
    });
  }
  const hasBar = traces.some((t) => t.type === "bar");
  const ya = valueAxis(yVals, ySpec, y0, y1, hasBar);
  const xa = categorical ? null : valueAxis(xVals, xSpec, x0, x1, false);
  const band = categorical ? (x1 - x0) / Math.max(1, categories.length) : 0;
  const xPx = (v: Val, offset = 0): number | null => {
    if (categorical) {
      const k = categories.indexOf(String(v));
      return k < 0 ? null : x0 + band * (k + 0.5) + offset;
    }
    const x = num(v);
    return x === null ? null : xa!.px(x);
  };
  const yPx = (v: number) => ya.px(v);
  const inY = (v: number) => v >= Math.min(ya.lo, ya.hi) && v <= Math.max(ya.lo, ya.hi);

  const out: string[] = [];
  const f1 = (v: number) => v.toFixed(1);
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ` +
      `font-family="Helvetica, Arial, sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
  );
  const title = titleText(layout.title);
  if (title) {
    // Shrink a long title to the figure's width (about 0.55 em per character) instead of clipping.
    const size = Math.max(8, Math.min(13, (W - 20) / (0.55 * title.length))).toFixed(1);
    out.push(
      `<text x="${W / 2}" y="24" text-anchor="middle" font-size="${size}">${esc(title)}</text>`,
    );
  }
  // Grid and ticks.
  for (const v of ya.ticks) {
    const y = yPx(v);
    if (!inY(v)) continue;
    out.push(`<line x1="${x0}" x2="${x1}" y1="${f1(y)}" y2="${f1(y)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${x0 - 6}" y="${f1(y + 4)}" text-anchor="end">${esc(tickLabel(v))}</text>`);
  }
  if (xa) {
    for (const v of xa.ticks) {
      const x = xa.px(v);
      if (x < x0 - 0.5 || x > x1 + 0.5) continue;
      out.push(`<line x1="${f1(x)}" x2="${f1(x)}" y1="${y0}" y2="${y1}" stroke="#e5e5e5"/>`);
      out.push(
        `<text x="${f1(x)}" y="${y0 + 16}" text-anchor="middle">${esc(tickLabel(v))}</text>`,
      );
    }
  } else {
    categories.forEach((c, k) => {
      const x = x0 + band * (k + 0.5);
      out.push(
        rotate
          ? `<text x="${f1(x)}" y="${y0 + 12}" text-anchor="end" transform="rotate(-30 ${f1(x)} ${
            y0 + 12
          })">${esc(c)}</text>`
          : `<text x="${f1(x)}" y="${y0 + 16}" text-anchor="middle">${esc(c)}</text>`,
      );
    });
  }
  out.push(
    `<rect x="${x0}" y="${y1}" width="${x1 - x0}" height="${y0 - y1}" fill="none" stroke="#444"/>`,
  );
  const xTitle = titleText(xSpec.title), yTitle = titleText(ySpec.title);
  if (xTitle) {
    out.push(
      `<text x="${(x0 + x1) / 2}" y="${H - 8}" text-anchor="middle" font-size="12">${
        esc(xTitle)
      }</text>`,
    );
  }
  if (yTitle) {
    const cy = (y0 + y1) / 2;
    out.push(
      `<text x="16" y="${cy}" text-anchor="middle" font-size="12" transform="rotate(-90 16 ${cy})">${
        esc(yTitle)
      }</text>`,
    );
  }
  out.push(`<svg x="${x0}" y="${y1}" width="${x1 - x0}" height="${y0 - y1}" overflow="hidden">`);
  out.push(`<g transform="translate(${-x0} ${-y1})">`);

  // Reference lines (layout.shapes of type "line"; "paper" coordinates span the plot area).
  for (const s of arr(layout.shapes) as unknown as Rec[]) {
    if (s?.type !== "line") continue;
    const px = (v: number, ref: unknown, axis: "x" | "y") =>
      ref === "paper"
        ? (axis === "x" ? x0 + (x1 - x0) * v : y0 + (y1 - y0) * v)
        : axis === "x"
        ? xPx(v) ?? x0
        : yPx(v);
    const line = (s.line ?? {}) as Rec;
    out.push(
      `<line x1="${f1(px(Number(s.x0), s.xref, "x"))}" x2="${f1(px(Number(s.x1), s.xref, "x"))}" ` +
        `y1="${f1(px(Number(s.y0), s.yref, "y"))}" y2="${f1(px(Number(s.y1), s.yref, "y"))}" ` +
        `stroke="${esc(String(line.color ?? "#444"))}" stroke-width="${line.width ?? 1}"` +
        `${line.dash ? ' stroke-dasharray="5 4"' : ""}/>`,
    );
  }

  const bars = traces.filter((t) => t.type === "bar");
  const boxes = traces.filter((t) => t.type === "box");
  const slot = categorical ? (band * 0.8) / Math.max(1, bars.length) : 0;
  const whisker = (x: number, ylo: number, yhi: number, c: string, cap = 4) =>
    `<path d="M${f1(x)},${f1(yPx(ylo))}V${f1(yPx(yhi))}M${f1(x - cap)},${f1(yPx(ylo))}h${2 * cap}` +
    `M${f1(x - cap)},${f1(yPx(yhi))}h${2 * cap}" stroke="${c}" fill="none"/>`;
  const hwhisker = (y: number, xlo: number, xhi: number, c: string, cap = 4) =>
    `<path d="M${f1(xlo)},${f1(y)}H${f1(xhi)}M${f1(xlo)},${f1(y - cap)}v${2 * cap}` +
    `M${f1(xhi)},${f1(y - cap)}v${2 * cap}" stroke="${c}" fill="none"/>`;
  traces.forEach((t, i) => {
    const c = esc(colour(t, i));
    const xs = xsOf(t), ys = arr(t.y);
    const ey = (t.error_y ?? {}) as Rec, ex = (t.error_x ?? {}) as Rec;
    const [up, dn] = [arr(ey.array), arr(ey.arrayminus ?? ey.array)];
    const [rt, lt] = [arr(ex.array), arr(ex.arrayminus ?? ex.array)];
    if (t.type === "bar") {
      const k = bars.indexOf(t), off = -band * 0.4 + slot * (k + 0.5);
      const base = ya.log ? ya.lo : 0;
      ys.forEach((v, j) => {
        const y = num(v), x = xPx(xs[j], off);
        if (y === null || x === null) return;
        const [ya0, ya1] = [yPx(base), yPx(y)];
        out.push(
          `<rect x="${f1(x - slot * 0.45)}" y="${f1(Math.min(ya0, ya1))}" width="${
            f1(slot * 0.9)
          }" ` +
            `height="${f1(Math.abs(ya1 - ya0))}" fill="${c}"/>`,
        );
        if (up.length) out.push(whisker(x, y - (num(dn[j]) ?? 0), y + (num(up[j]) ?? 0), "#222"));
      });
      return;
    }
    if (t.type === "box") {
      const vals = ys.map(num).filter((v): v is number => v !== null).sort((a, b) => a - b);
      // Plotly draws one box per x category; group the values by their x.
      const groups = new Map<string, number[]>();
      ys.forEach((v, j) => {
        const y = num(v);
        if (y === null) return;
        const key = String(xs.length === ys.length ? xs[j] : xs[0]);
        groups.set(key, [...(groups.get(key) ?? []), y]);
      });
      if (vals.length === 0) return;
      const k = boxes.indexOf(t), w = (band * 0.6) / Math.max(1, boxes.length);
      const off = -band * 0.3 + w * (k + 0.5);
      const lineC = esc(String((t.line as Rec | undefined)?.color ?? colour(t, i)));
      for (const [key, g] of groups) {
        const x = xPx(key, off);
        if (x === null) continue;
        g.sort((a, b) => a - b);
        const [q1, med, q3] = [0.25, 0.5, 0.75].map((q) => quantile(g, q));
        out.push(
          `<rect x="${f1(x - w * 0.4)}" y="${f1(yPx(q3))}" width="${f1(w * 0.8)}" ` +
            `height="${f1(Math.abs(yPx(q1) - yPx(q3)))}" fill="none" stroke="${lineC}"/>`,
          `<line x1="${f1(x - w * 0.4)}" x2="${f1(x + w * 0.4)}" y1="${f1(yPx(med))}" ` +
            `y2="${f1(yPx(med))}" stroke="${lineC}" stroke-width="2"/>`,
          whisker(x, g[0], q1, lineC, w * 0.2),
          whisker(x, q3, g.at(-1)!, lineC, w * 0.2),
        );
        if (t.boxpoints === "all") {
          g.forEach((v, j) => {
            const jx = x + w * 0.35 * (((j * 0.618034) % 1) * 2 - 1);
            out.push(
              `<circle cx="${f1(jx)}" cy="${f1(yPx(v))}" r="2.5" fill="${c}" fill-opacity="0.7"/>`,
            );
          });
        }
      }
      return;
    }
    // scatter
    const mode = String(t.mode ?? (ys.length > 20 ? "lines" : "lines+markers"));
    const pts = ys.map((v, j) => {
      const y = num(v), x = xPx(xs[j]);
      return y === null || x === null || (ya.log && y <= 0) ? null : [x, yPx(y)] as const;
    });
    const line = (t.line ?? {}) as Rec;
    if (mode.includes("lines")) {
      let d = "", pen = false;
      for (const p of pts) {
        if (!p) {
          pen = false;
          continue;
        }
        d += `${pen ? "L" : "M"}${f1(p[0])},${f1(p[1])}`;
        pen = true;
      }
      if (d) {
        out.push(
          `<path d="${d}" fill="none" stroke="${esc(String(line.color ?? colour(t, i)))}" ` +
            `stroke-width="${line.width ?? 2}"${line.dash ? ' stroke-dasharray="5 4"' : ""}/>`,
        );
      }
    }
    pts.forEach((p, j) => {
      if (!p) return;
      if (up.length) {
        const y = num(ys[j])!;
        out.push(whisker(p[0], y - (num(dn[j]) ?? 0), y + (num(up[j]) ?? 0), c, 3));
      }
      if (rt.length && xa) {
        const x = num(xs[j])!;
        out.push(hwhisker(p[1], xa.px(x - (num(lt[j]) ?? 0)), xa.px(x + (num(rt[j]) ?? 0)), c, 3));
      }
    });
    const marker = (t.marker ?? {}) as Rec;
    if (mode.includes("markers")) {
      const r = Number(marker.size ?? 6) / 2;
      const edge = (marker.line ?? {}) as Rec;
      const stroke = edge.color
        ? ` stroke="${esc(String(edge.color))}" stroke-width="${edge.width ?? 1}"`
        : "";
      for (const p of pts) {
        if (!p) continue;
        out.push(
          marker.symbol === "star"
            ? `<polygon points="${polygonStar(p[0], p[1], r * 1.3)}" fill="${c}"${stroke}/>`
            : `<circle cx="${f1(p[0])}" cy="${f1(p[1])}" r="${r}" fill="${c}"${stroke}/>`,
        );
      }
    }
    if (mode.includes("text")) {
      const text = arr(t.text);
      pts.forEach((p, j) => {
        if (p && text[j] !== null && text[j] !== undefined) {
          out.push(
            `<text x="${f1(p[0])}" y="${f1(p[1] - 7)}" text-anchor="middle">${
              esc(String(text[j]))
            }</text>`,
          );
        }
      });
    }
  });
  out.push("</g></svg>");

  if (legend) {
    named.forEach((t, k) => {
      const i = traces.indexOf(t), y = y1 + 10 + k * 18, x = x1 + 12;
      const c = esc(colour(t, i));
      const name = String(t.name);
      out.push(
        t.type === "bar" || t.type === "box"
          ? `<rect x="${x}" y="${y - 5}" width="14" height="10" fill="${c}"/>`
          : `<line x1="${x}" x2="${x + 14}" y1="${y}" y2="${y}" stroke="${c}" stroke-width="2"/>`,
        `<text x="${x + 20}" y="${y + 4}">${
          esc(name.length > 24 ? name.slice(0, 23) + "…" : name)
        }</text>`,
      );
    });
  }
  out.push("</svg>");
  return out.join("\n") + "\n";
}
