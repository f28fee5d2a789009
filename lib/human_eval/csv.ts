/**
 * Delimited text in and out: reading CSV/TSV with line numbers (on the npm package `csv-parse`)
 * and writing RFC 4180 CSV that crowdsourcing tools (Mechanical Turk, Prolific, Label Studio)
 * accept.
 *
 * Reading is lenient about quotes the way real files need: PartiPrompts.tsv has fields that
 * *start* with a quote which is not a CSV quote (`"G I G G L E" painted ...`); with
 * `relax_quotes` such a field is kept literally, while a properly quoted field is unquoted.
 * A row with the wrong number of fields is reported with its line number, never dropped silently.
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
import { parse } from "csv-parse/sync";

/** A row that could not be used, with the 1-based line where it ends in its file. */
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

/** A parsed table. */
export interface DelimitedTable {
  header: string[];
  rows: DelimitedRow[];
  errors: RowError[];
}

/** Options for {@link parseDelimited}. */
export interface ParseDelimitedOptions {
  /** File name or URL used in error messages. */
  source: string;
  /** Field separator (default ","). */
  delimiter?: string;
}

/**
 * Parse CSV/TSV text with a header row. Rows with a wrong field count become {@link RowError}s;
 * an unterminated quote (which makes the rest of the file unreadable) throws naming the line.
 *
 * @example
 * ```ts
 * parseDelimited("Prompt\tCategory\nhi\tArts\n", { source: "p.tsv", delimiter: "\t" });
 * ```
 */
export function parseDelimited(text: string, opts: ParseDelimitedOptions): DelimitedTable {
  const delimiter = opts.delimiter ?? ",";
  let records: { record: string[]; info: { lines: number } }[];
  try {
    records = parse(text, {
      delimiter,
      bom: true,
      info: true,
      relax_quotes: true,
      relax_column_count: true,
      skip_empty_lines: true,
    }) as unknown as { record: string[]; info: { lines: number } }[];
  } catch (e) {
    const err = e as Error & { lines?: number };
    const where = err.lines !== undefined ? ` (line ${err.lines})` : "";
    throw new Error(`${opts.source}${where}: not valid delimited text: ${err.message}`);
  }
  if (records.length === 0) throw new Error(`${opts.source}: empty file, expected a header row`);
  const header = records[0].record.map((h) => h.trim());
  const dup = header.find((h, i) => header.indexOf(h) !== i);
  if (dup !== undefined) throw new Error(`${opts.source}: duplicate column "${dup}" in the header`);
  const rows: DelimitedRow[] = [];
  const errors: RowError[] = [];
  for (const { record, info } of records.slice(1)) {
    // A trailing delimiter at the end of a line gives one extra empty field: tolerate it.
    const fields = record.length === header.length + 1 && record[header.length] === ""
      ? record.slice(0, header.length)
      : record;
    if (fields.length !== header.length) {
      errors.push({
        line: info.lines,
        message: `expected ${header.length} fields (${header.join(", ")}), got ${fields.length}`,
      });
      continue;
    }
    const rec: Record<string, string> = {};
    header.forEach((h, i) => rec[h] = fields[i]);
    rows.push({ line: info.lines, record: rec });
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
      errors.push({ line, message: `not valid JSON in ${source}: ${(e as Error).message}` });
    }
  });
  return { rows, errors };
}
