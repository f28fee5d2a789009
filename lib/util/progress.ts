/**
 * Progress reporting for long jobs. On a terminal the bar is one line redrawn with `\r`; in a
 * notebook run by Deno's Jupyter kernel it is one display updated in place (steps, rate, ETA);
 * elsewhere (CI logs) it prints a plain line at most every `every` ms, so logs stay short.
 *
 * @example
 * ```ts
 * import { Progress } from "./progress.ts";
 *
 * const bar = new Progress({ total: 1000, label: "train" });
 * for (let i = 1; i <= 1000; i++) bar.update(i, { loss: 0.123 });
 * bar.done();
 * // train 1000/1000 100% |##########| 52.1 it/s ETA 0s elapsed 19.2s loss=0.1230
 * ```
 * @module
 */

import { type DisplayFn, kernelDisplay } from "./jupyter_display.ts";

/** Where progress lines go: anything with a synchronous byte write (Deno.stderr fits). */
export interface ProgressStream {
  writeSync(p: Uint8Array): number;
  isTerminal?(): boolean;
}

/** Options for {@link Progress}. */
export interface ProgressOptions {
  /** Total number of items (steps, images...). */
  total: number;
  /** Text before the counter. */
  label?: string;
  /** Output stream (default Deno.stderr). */
  stream?: ProgressStream;
  /** Minimum ms between lines: default 100 on a TTY, 500 in a notebook, 10000 otherwise. */
  every?: number;
  /** Force TTY or plain mode (default: `stream.isTerminal()`). */
  tty?: boolean;
  /** Items already done when the bar starts (resumed runs), excluded from the rate. */
  initial?: number;
  /** Clock in ms (tests inject one; default performance.now). */
  now?: () => number;
  /** Bar width in characters (default 20; 0 hides the bar). */
  width?: number;
  /**
   * Notebook mode: show the bar as one display updated in place through this function instead
   * of writing lines. Default: the kernel's display when running in Deno's Jupyter kernel and
   * neither `stream` nor `tty` is given, so a notebook cell shows one live line rather than a
   * new line every 10 s; `false` always writes to the stream.
   */
  display?: DisplayFn | false;
  /** Display id in notebook mode (default a random `progress-XXXXXXXX`). */
  displayId?: string;
}

/** Extra fields shown after the counters. */
export type ProgressFields = Record<string, number | string>;

/**
 * Human duration: `"12.3s"`, `"4m05s"`, `"1h02m03s"`, `"2d03h"`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatDuration } from "./progress.ts";
 *
 * assert.equal(formatDuration(3723), "1h02m03s");
 * ```
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  if (seconds < 0) seconds = 0;
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.floor(seconds)}s`;
  const s = Math.floor(seconds);
  const pad = (n: number) => String(n).padStart(2, "0");
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d > 0) return `${d}d${pad(h)}h`;
  if (h > 0) return `${h}h${pad(m)}m${pad(sec)}s`;
  return `${m}m${pad(sec)}s`;
}

/**
 * Estimated time left for `remaining` items at `rate` items/s (`"?"` when the rate is unknown).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatEta } from "./progress.ts";
 *
 * assert.equal(formatEta(300, 2), "2m30s");
 * ```
 */
export function formatEta(remaining: number, rate: number): string {
  if (remaining <= 0) return "0s";
  if (!(rate > 0) || !Number.isFinite(rate)) return "?";
  return formatDuration(remaining / rate);
}

/**
 * Rate with a unit that stays readable for slow jobs: `"3.20 it/s"` or `"12.5 s/it"`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatRate } from "./progress.ts";
 *
 * assert.equal(formatRate(0.05), "20.0 s/it");
 * ```
 */
export function formatRate(rate: number): string {
  if (!(rate > 0) || !Number.isFinite(rate)) return "? it/s";
  if (rate < 1) return `${(1 / rate).toFixed(1)} s/it`;
  return `${rate < 100 ? rate.toFixed(2) : rate.toFixed(0)} it/s`;
}

/**
 * A compact number: 4 significant digits, exponent form when very small or large.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatNumber } from "./progress.ts";
 *
 * assert.equal(formatNumber(0.000123), "1.23e-4");
 * ```
 */
export function formatNumber(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (Number.isInteger(x) && Math.abs(x) < 1e6) return String(x);
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) {
    return x.toExponential(2).replace(/\.?0+e/, "e").replace("e+", "e");
  }
  return x.toPrecision(4);
}

/** Everything a progress line shows, for {@link formatProgressLine}. */
export interface ProgressLine {
  label?: string;
  done: number;
  total: number;
  /** Items per second (NaN when unknown). */
  rate: number;
  elapsedS: number;
  fields?: ProgressFields;
  width?: number;
}

/**
 * Format one progress line (pure).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatProgressLine } from "./progress.ts";
 *
 * assert.equal(
 *   formatProgressLine({ label: "x", done: 5, total: 10, rate: 1, elapsedS: 5, width: 4 }),
 *   "x 5/10 50% |##  | 1.00 it/s ETA 5.0s elapsed 5.0s",
 * );
 * ```
 */
export function formatProgressLine(p: ProgressLine): string {
  const parts: string[] = [];
  if (p.label) parts.push(p.label);
  const frac = p.total > 0 ? Math.min(1, Math.max(0, p.done / p.total)) : 0;
  parts.push(`${p.done}/${p.total}`, `${Math.floor(frac * 100)}%`);
  const w = p.width ?? 20;
  if (w > 0) {
    const fill = Math.round(frac * w);
    parts.push(`|${"#".repeat(fill)}${" ".repeat(w - fill)}|`);
  }
  parts.push(formatRate(p.rate), `ETA ${formatEta(p.total - p.done, p.rate)}`);
  parts.push(`elapsed ${formatDuration(p.elapsedS)}`);
  for (const [k, v] of Object.entries(p.fields ?? {})) {
    parts.push(`${k}=${typeof v === "number" ? formatNumber(v) : v}`);
  }
  return parts.join(" ");
}

/**
 * A throttled progress bar.
 *
 * @example
 * ```ts
 * import { Progress } from "./progress.ts";
 *
 * const bar = new Progress({ total: 10, label: "eval", every: 1000 });
 * bar.update(3, { fid: 12.5 });
 * bar.done();
 * ```
 */
export class Progress {
  private readonly opts: ProgressOptions;
  private readonly stream: ProgressStream;
  private readonly display: DisplayFn | null;
  private readonly displayId: string;
  private shown = false;
  private readonly tty: boolean;
  private readonly every: number;
  private readonly now: () => number;
  private readonly start: number;
  private readonly initial: number;
  private last = -Infinity;
  private lastLen = 0;
  private doneCount = 0;
  private fields: ProgressFields = {};
  private finished = false;

  constructor(opts: ProgressOptions) {
    if (!(opts.total >= 0)) {
      throw new Error(`Progress: option total must be >= 0, got ${opts.total}`);
    }
    this.opts = opts;
    this.stream = opts.stream ?? Deno.stderr;
    const explicitOutput = opts.stream !== undefined || opts.tty !== undefined;
    this.display = opts.display === false
      ? null
      : opts.display ?? (explicitOutput ? null : kernelDisplay());
    this.displayId = opts.displayId ?? `progress-${crypto.randomUUID().slice(0, 8)}`;
    this.tty = this.display ? false : opts.tty ?? (this.stream.isTerminal?.() ?? false);
    this.every = opts.every ?? (this.tty ? 100 : this.display ? 500 : 10_000);
    this.now = opts.now ?? (() => performance.now());
    this.start = this.now();
    this.initial = opts.initial ?? 0;
    this.doneCount = this.initial;
  }

  /** Items/s since the bar started (work done before `initial` excluded). */
  rate(): number {
    const dt = (this.now() - this.start) / 1000;
    const n = this.doneCount - this.initial;
    return dt > 0 && n > 0 ? n / dt : NaN;
  }

  /** The line as it would print now. */
  line(): string {
    return formatProgressLine({
      label: this.opts.label,
      done: this.doneCount,
      total: this.opts.total,
      rate: this.rate(),
      elapsedS: (this.now() - this.start) / 1000,
      fields: this.fields,
      width: this.opts.width,
    });
  }

  /** Record progress; prints when the throttle interval has passed. */
  update(done: number, fields?: ProgressFields): void {
    this.doneCount = done;
    if (fields) this.fields = { ...this.fields, ...fields };
    const t = this.now();
    if (t - this.last < this.every) return;
    this.last = t;
    this.print();
  }

  /** Print the final line (always) and end the TTY line. */
  done(fields?: ProgressFields): void {
    if (this.finished) return;
    if (fields) this.fields = { ...this.fields, ...fields };
    this.finished = true;
    this.print();
    if (this.tty) this.write("\n");
  }

  private print(): void {
    const line = this.line();
    if (this.display) {
      this.show(line);
    } else if (this.tty) {
      // Pad over the previous line's leftovers instead of relying on terminal escape codes.
      const padded = line.padEnd(this.lastLen, " ");
      this.lastLen = line.length;
      this.write(`\r${padded}`);
    } else {
      this.write(line + "\n");
    }
  }

  /** One display per bar: created by the first call, replaced in place by the later ones. */
  private show(line: string): void {
    const total = this.opts.total;
    const value = Math.min(this.doneCount, total);
    const html = `<progress value="${value}" max="${total}" style="width:12em"></progress> ` +
      `<code>${line.replace(/&/g, "&amp;").replace(/</g, "&lt;")}</code>`;
    const update = this.shown;
    this.shown = true;
    try {
      // The kernel's display is asynchronous; a failed display must not become an unhandled
      // rejection in the middle of a training job, so failures fall back to a plain line.
      Promise.resolve(
        this.display!({ "text/plain": line, "text/html": html }, {
          display_id: this.displayId,
          update,
        }),
      ).catch(() => this.write(line + "\n"));
    } catch {
      this.write(line + "\n");
    }
  }

  private write(s: string): void {
    const b = new TextEncoder().encode(s);
    let off = 0;
    while (off < b.length) off += this.stream.writeSync(b.subarray(off));
  }
}
