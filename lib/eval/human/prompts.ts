/**
 * PartiPrompts-format prompt lists: a TSV with columns `Prompt, Category, Challenge, Note`
 * (Note often empty), read from a path or a URL.
 *
 * The file is read as the plain tab-separated file it is: one prompt per line, fields split on
 * tabs, and quotes are part of the prompt, never TSV quoting (the real file has
 * `"G I G G L E" painted ...`, a prompt that starts with a quote; a prompt written entirely in
 * quotes keeps them too). Prompts with leading/trailing spaces are trimmed, since raters and
 * crowdsourcing tools do not preserve them; curly quotes and accents are kept (UTF-8).
 * Each prompt gets an id from its data-row number (`p0001` is the first row after the header), so
 * ids stay stable when a bad row is skipped.
 *
 * @example
 * ```ts
 * const { prompts, errors } = await loadPrompts("data/parti_prompts_example.tsv");
 * prompts[0]; // { id: "p0001", prompt: "...", category: "Animals", challenge: "Basic", note: "" }
 * ```
 * @module
 */
import { parseDelimited, type RowError } from "./csv.ts";
import { decodeTextInput, escapeText, readTextInput } from "./text_input.ts";

/** The public PartiPrompts file (Google Research's parti repository). */
export const PARTI_PROMPTS_URL =
  "https://raw.githubusercontent.com/google-research/parti/main/PartiPrompts.tsv";

/** One prompt with its cross-sections. */
export interface Prompt {
  /** `p` + 4-digit data-row number. */
  id: string;
  prompt: string;
  category: string;
  challenge: string;
  note: string;
}

/** Prompts plus the rows that could not be used. */
export interface PromptList {
  prompts: Prompt[];
  errors: RowError[];
  source: string;
}

/** Id for the `i`-th (0-based) data row. */
export function promptId(i: number): string {
  return `p${String(i + 1).padStart(4, "0")}`;
}

/**
 * Parse PartiPrompts TSV text (plain TSV: quotes are literal). Header names are matched
 * case-insensitively; `Note` is optional. Rows with an empty prompt, category or challenge or
 * the wrong number of fields are reported by line and skipped.
 *
 * @example
 * ```ts
 * parsePromptsTsv("Prompt\tCategory\tChallenge\tNote\na cat\tAnimals\tBasic\t\n", "p.tsv");
 * ```
 */
export function parsePromptsTsv(text: string, source: string): PromptList {
  const table = parseDelimited(text, { source, delimiter: "\t", quotes: false });
  const find = (name: string) => table.header.find((h) => h.toLowerCase() === name.toLowerCase());
  const cols = { prompt: find("Prompt"), category: find("Category"), challenge: find("Challenge") };
  for (const [k, v] of Object.entries(cols)) {
    if (v === undefined) {
      throw new Error(
        `${source}: missing column "${k[0].toUpperCase()}${k.slice(1)}" (expected a ` +
          `PartiPrompts TSV with columns Prompt, Category, Challenge, Note; got ` +
          `${escapeText(table.header.join(", "), 200)})`,
      );
    }
  }
  const noteCol = find("Note");
  // Ids from the data-row ordinal (good or bad rows alike), so a skipped row does not renumber
  // the prompts after it.
  const allLines = [...table.rows.map((r) => r.line), ...table.errors.map((e) => e.line)];
  allLines.sort((a, b) => a - b);
  const ordinal = new Map(allLines.map((line, i) => [line, i]));
  const prompts: Prompt[] = [];
  const errors = [...table.errors];
  for (const { line, record } of table.rows) {
    const p = {
      prompt: record[cols.prompt!].trim(),
      category: record[cols.category!].trim(),
      challenge: record[cols.challenge!].trim(),
    };
    const empty = Object.entries(p).find(([, v]) => v === "");
    if (empty) {
      errors.push({ line, message: `empty ${empty[0]}` });
      continue;
    }
    const note = noteCol ? record[noteCol].trim() : "";
    prompts.push({ id: promptId(ordinal.get(line)!), ...p, note });
  }
  errors.sort((a, b) => a.line - b.line);
  return { prompts, errors, source };
}

/** Options for {@link loadPrompts}. */
export interface LoadPromptsOptions {
  /** Fetch implementation (tests inject one; default globalThis.fetch). */
  fetch?: typeof fetch;
}

/** True for http(s) URLs. */
export function isUrl(s: string): boolean {
  return /^https?:\/\//i.test(s);
}

/**
 * Read a PartiPrompts TSV from a local path or an http(s) URL. When the URL cannot be reached
 * (offline), the error says how to point at a local copy instead.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadPrompts, PARTI_PROMPTS_URL } from "./prompts.ts";
 *
 * // With no fetch option it downloads; here a stand-in answers with a one-prompt file.
 * const tsv = "Prompt\tCategory\tChallenge\tNote\na cat\tAnimals\tBasic\t\n";
 * const fetch = () => Promise.resolve(new Response(tsv));
 * const list = await loadPrompts(PARTI_PROMPTS_URL, { fetch });
 * assert.equal(list.prompts[0].prompt, "a cat");
 * ```
 */
export async function loadPrompts(
  pathOrUrl: string = PARTI_PROMPTS_URL,
  opts: LoadPromptsOptions = {},
): Promise<PromptList> {
  if (!isUrl(pathOrUrl)) {
    return parsePromptsTsv(await readTextInput(pathOrUrl, "prompts file"), pathOrUrl);
  }
  const doFetch = opts.fetch ?? globalThis.fetch;
  const hint = `download it where you have network (e.g. curl -LO ${pathOrUrl}) and pass ` +
    `--prompts path/to/PartiPrompts.tsv, or use the example data/parti_prompts_example.tsv`;
  let res: Response;
  try {
    res = await doFetch(pathOrUrl, { signal: AbortSignal.timeout(30_000) });
  } catch (e) {
    throw new Error(
      `${pathOrUrl}: cannot download the prompts (offline?): ${(e as Error).message}; ${hint}`,
    );
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(`${pathOrUrl}: download failed with HTTP ${res.status}; ${hint}`);
  }
  const bytes = new Uint8Array(await res.arrayBuffer());
  return parsePromptsTsv(
    decodeTextInput(bytes, { source: pathOrUrl, what: "prompts file" }),
    pathOrUrl,
  );
}
