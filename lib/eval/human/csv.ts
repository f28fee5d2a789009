/**
 * Delimited text in and out: reading CSV/TSV with line numbers and writing RFC 4180 CSV that
 * crowdsourcing tools (Mechanical Turk, Prolific, Label Studio) accept.
 *
 * Reading CSV (`quotes: true`, the default) follows RFC 4180 (a field that starts with `"` is
 * quoted, `""` inside it is one quote, it may hold delimiters and line breaks) with two rules for
 * real, hand-edited files:
 * - a quote that does not start a field is literal, and so is a field like `"G O" painted` whose
 *   quote closes on its own line but is followed by more text;
 * - a quoted field that runs across a line break is accepted (free-text comments in Mechanical
 *   Turk results) only when it closes with a delimiter or line end, never reaches the end of the
 *   file, leaves a row with the header's number of fields, and none of the lines it swallows
 *   reads as a complete row on its own. Otherwise it is a stray quote: the row where it opened is
 *   reported as unreadable with that line number, and reading resumes on the next line, so one
 *   stray quote costs one row, never the rows after it.
 *
 * Every data row therefore ends up either in `rows` or in `errors`, each with its line. A
 * problem in the header rejects the file. With `quotes: false` (plain TSV such as PartiPrompts,
 * where `"G I G G L E" painted ...` is a prompt that starts with a quote) every line is one row
 * and quotes are ordinary characters.
 *
 * @example
 * ```ts
 * const t = parseDelimited('a,b\n1,2\n3\n', { source: "x.csv" });
 * t.rows; // [{ line: 2, record: { a: "1", b: "2" } }]
 * t.errors; // [{ line: 3, message: "expected 2 fields (a, b), got 1" }]
 * formatCsv(["a", "b"], [["1", "x,y"]]); // 'a,b\r\n1,"x,y"\r\n'
 * ```
 * @module
 */
import { escapeExcerpt, escapeText } from "./text_input.ts";

/** A row that could not be used, with its 1-based line in its file. */
export interface RowError {
  line: number;
  message: string;
}

/** One parsed data row: header name -> field text. */
export interface DelimitedRow {
  /** 1-based line number in the file (the last line, for a record spanning several lines). */
  line: number;
  record: Record<string, string>;
}

/** A parsed table: every data row is in `rows` or in `errors`. */
export interface DelimitedTable {
  header: string[];
  rows: DelimitedRow[];
  errors: RowError[];
}

/** Options for {@link parseDelimited}. */
export interface ParseDelimitedOptions {
  /** File name or URL used in error messages. */
  source: string;
  /** Field separator, one character (default ","). */
  delimiter?: string;
  /** Whether `"` starts a quoted field (default true: CSV); false reads quotes literally (TSV). */
  quotes?: boolean;
}

const QUOTE = 34;
const LF = 10;
const CR = 13;

/** A quoted field that ran across at least one line break. */
interface Crossing {
  openLine: number;
  closeLine: number;
  value: string;
  /** Offset of the line after `openLine`, where reading resumes when the quote is rejected. */
  resumeAt: number;
}

/** A rejected stretch of text: reported at `line`, reading resumes at `resumeAt`. */
interface Rejected {
  line: number;
  message: string;
  resumeAt: number;
}

type Field = { value: string; crossing: Crossing | null } | { rejected: Rejected };

type Scanned =
  | { fields: string[]; line: number; crossings: Crossing[] }
  | { rejected: Rejected };

/** How to recover from a stray quote, appended to its message. */
function strayHint(openLine: number): string {
  return `; a stray quote? (a field holding quotes is quoted whole, inner quotes doubled: ` +
    `"say ""hi""") reading resumes on line ${openLine + 1}`;
}

/** A record-at-a-time reader that tracks line numbers. */
class Scanner {
  pos = 0;
  line = 1;
  private readonly n: number;
  private readonly delim: number;

  constructor(
    private readonly text: string,
    delimiter: string,
    private readonly quotes: boolean,
  ) {
    this.n = text.length;
    this.delim = delimiter.charCodeAt(0);
  }

  /** Length of the line break at `p` (2 for CRLF), 0 if none. */
  private breakAt(p: number): number {
    const c = this.text.charCodeAt(p);
    if (c === CR) return this.text.charCodeAt(p + 1) === LF ? 2 : 1;
    return c === LF ? 1 : 0;
  }

  /** Continue reading at `offset`, which starts line `line`. */
  resume(offset: number, line: number): void {
    this.pos = offset;
    this.line = line;
  }

  /** The next record (blank lines skipped), or null at the end of the text. */
  next(): Scanned | null {
    for (let b = this.breakAt(this.pos); b > 0; b = this.breakAt(this.pos)) {
      this.pos += b;
      this.line++;
    }
    if (this.pos >= this.n) return null;
    const fields: string[] = [];
    const crossings: Crossing[] = [];
    for (;;) {
      const f = this.field();
      if ("rejected" in f) return f;
      fields.push(f.value);
      if (f.crossing) crossings.push(f.crossing);
      if (this.pos < this.n && this.text.charCodeAt(this.pos) === this.delim) {
        this.pos++;
        continue;
      }
      const line = this.line;
      const b = this.breakAt(this.pos);
      if (b > 0) {
        this.pos += b;
        this.line++;
      }
      return { fields, line, crossings };
    }
  }

  private field(): Field {
    const t = this.text;
    if (this.quotes && t.charCodeAt(this.pos) === QUOTE) {
      const openLine = this.line;
      const parts: string[] = [];
      let p = this.pos + 1;
      let seg = p;
      let line = openLine;
      let resumeAt = -1;
      for (;;) {
        if (p >= this.n) {
          return {
            rejected: {
              line: openLine,
              message: `the quoted field opened on line ${openLine} never closes (it runs to ` +
                `the end of the file)${strayHint(openLine)}`,
              resumeAt: resumeAt < 0 ? this.n : resumeAt,
            },
          };
        }
        const c = t.charCodeAt(p);
        if (c === QUOTE) {
          if (t.charCodeAt(p + 1) === QUOTE) {
            parts.push(t.slice(seg, p + 1));
            p += 2;
            seg = p;
            continue;
          }
          parts.push(t.slice(seg, p));
          p++;
          break;
        }
        const b = this.breakAt(p);
        if (b > 0) {
          p += b;
          line++;
          if (resumeAt < 0) resumeAt = p;
          continue;
        }
        p++;
      }
      const after = p < this.n ? t.charCodeAt(p) : -1;
      if (after === -1 || after === this.delim || after === CR || after === LF) {
        const value = parts.join("");
        this.pos = p;
        this.line = line;
        return {
          value,
          crossing: resumeAt < 0 ? null : { openLine, closeLine: line, value, resumeAt },
        };
      }
      if (resumeAt >= 0) {
        return {
          rejected: {
            line: openLine,
            message: `the quoted field opened on line ${openLine} runs to line ${line}, where ` +
              `its closing quote is followed by ${escapeExcerpt(t.slice(p, p + 20))} instead ` +
              `of a delimiter or line end${strayHint(openLine)}`,
            resumeAt,
          },
        };
      }
      // Closed on its own line but followed by text (`"G O" painted`): a literal quote.
    }
    const start = this.pos;
    let p = start;
    while (p < this.n) {
      const c = t.charCodeAt(p);
      if (c === this.delim || c === CR || c === LF) break;
      p++;
    }
    this.pos = p;
    return { value: t.slice(start, p), crossing: null };
  }
}

/** The header names for messages, escaped and shortened. */
function headerList(header: readonly string[]): string {
  return escapeText(header.join(", "), 300);
}

/**
 * Why a record whose quoted fields ran across line breaks is a stray quote, or null if it reads
 * as a proper multi-line record.
 */
function strayQuote(
  width: number,
  count: number,
  crossings: readonly Crossing[],
  delimiter: string,
): Rejected | null {
  const first = crossings[0];
  if (count !== width) {
    return {
      line: first.openLine,
      message: `the quoted field opened on line ${first.openLine} runs to line ` +
        `${first.closeLine} and leaves a row of ${count} fields, expected ${width}` +
        strayHint(first.openLine),
      resumeAt: first.resumeAt,
    };
  }
  if (width < 2) return null;
  for (const c of crossings) {
    const lines = c.value.split(/\r\n|\r|\n/);
    for (let k = 1; k < lines.length; k++) {
      const fields = lines[k].split(delimiter).length;
      if (fields < width) continue;
      return {
        line: c.openLine,
        message: `the quoted field opened on line ${c.openLine} swallows line ${c.openLine + k}, ` +
          `which reads as a complete row of ${fields} fields${strayHint(c.openLine)}`,
        resumeAt: c.resumeAt,
      };
    }
  }
  return null;
}

/**
 * Parse CSV/TSV text with a header row. Rows with a wrong field count or a stray quote become
 * {@link RowError}s at their line (see the module notes); a header that cannot be read throws.
 *
 * @example
 * ```ts
 * parseDelimited("Prompt\tCategory\nhi\tArts\n", {
 *   source: "p.tsv",
 *   delimiter: "\t",
 *   quotes: false,
 * });
 * ```
 */
export function parseDelimited(text: string, opts: ParseDelimitedOptions): DelimitedTable {
  const delimiter = opts.delimiter ?? ",";
  if (delimiter.length !== 1 || /["\r\n]/.test(delimiter)) {
    throw new Error(
      `${opts.source}: delimiter must be one character other than a quote or line break`,
    );
  }
  const scanner = new Scanner(text.replace(/^\uFEFF/, ""), delimiter, opts.quotes ?? true);
  const first = scanner.next();
  if (first === null) throw new Error(`${opts.source}: empty file, expected a header row`);
  if ("rejected" in first) {
    throw new Error(
      `${opts.source} line ${first.rejected.line}: header: ${first.rejected.message}`,
    );
  }
  if (first.crossings.length) {
    const c = first.crossings[0];
    throw new Error(
      `${opts.source} line ${c.openLine}: header: a quoted column name runs across a line break ` +
        `(quote opened on line ${c.openLine}, closed on line ${c.closeLine})`,
    );
  }
  const header = first.fields.map((h) => h.trim());
  const dup = header.find((h, i) => header.indexOf(h) !== i);
  if (dup !== undefined) {
    throw new Error(`${opts.source}: duplicate column ${escapeExcerpt(dup)} in the header`);
  }
  const width = header.length;
  const rows: DelimitedRow[] = [];
  const errors: RowError[] = [];
  const reject = (r: Rejected, resumeLine: number) => {
    errors.push({ line: r.line, message: r.message });
    scanner.resume(r.resumeAt, resumeLine);
  };
  for (let rec = scanner.next(); rec !== null; rec = scanner.next()) {
    if ("rejected" in rec) {
      reject(rec.rejected, rec.rejected.line + 1);
      continue;
    }
    // A trailing delimiter at the end of a line gives one extra empty field: tolerate it.
    const fields = rec.fields.length === width + 1 && rec.fields[width] === ""
      ? rec.fields.slice(0, width)
      : rec.fields;
    if (rec.crossings.length) {
      const stray = strayQuote(width, fields.length, rec.crossings, delimiter);
      if (stray) {
        reject(stray, stray.line + 1);
        continue;
      }
    }
    if (fields.length !== width) {
      errors.push({
        line: rec.line,
        message: `expected ${width} fields (${headerList(header)}), got ${fields.length}`,
      });
      continue;
    }
    const record: Record<string, string> = {};
    header.forEach((h, i) => record[h] = fields[i]);
    rows.push({ line: rec.line, record });
  }
  return { header, rows, errors };
}

/** Quote a CSV field when it holds the delimiter, a quote, a line break or edge spaces. */
function quoteField(v: unknown, delimiter: string): string {
  const s = v === undefined || v === null ? "" : String(v);
  if (s.includes(delimiter) || /["\r\n]/.test(s) || s !== s.trim()) {
    return `"${s.replace(/"/g, '""')}"`;
  }
  return s;
}

/**
 * RFC 4180 CSV text (CRLF line ends, fields quoted only when needed).
 *
 * @example
 * ```ts
 * formatCsv(["prompt"], [['say "hi"']]); // 'prompt\r\n"say ""hi"""\r\n'
 * ```
 */
export function formatCsv(
  header: readonly string[],
  rows: readonly (readonly unknown[])[],
  delimiter = ",",
): string {
  const lines = [header, ...rows].map((r) =>
    r.map((v) => quoteField(v, delimiter)).join(delimiter)
  );
  return lines.join("\r\n") + "\r\n";
}

/**
 * Parse JSON Lines: one object per non-empty line; bad lines become {@link RowError}s.
 *
 * @example
 * ```ts
 * parseJsonl('{"a":1}\nnot json\n', "x.jsonl"); // rows [{line:1,...}], errors [{line:2,...}]
 * ```
 */
export function parseJsonl(
  text: string,
  source: string,
): { rows: { line: number; value: Record<string, unknown> }[]; errors: RowError[] } {
  const rows: { line: number; value: Record<string, unknown> }[] = [];
  const errors: RowError[] = [];
  text.replace(/^\uFEFF/, "").split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === "") return;
    try {
      const v = JSON.parse(raw);
      if (v === null || typeof v !== "object" || Array.isArray(v)) {
        errors.push({ line, message: "expected a JSON object" });
      } else rows.push({ line, value: v as Record<string, unknown> });
    } catch (e) {
      errors.push({
        line,
        message: `not valid JSON in ${source}: ${escapeText((e as Error).message, 200)}`,
      });
    }
  });
  return { rows, errors };
}
