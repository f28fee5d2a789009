/**
 * Text that comes from users' files, made safe to read and to quote in messages: input files must
 * be UTF-8 text (a binary file or a Latin-1 export is refused by line, not mangled into U+FFFD),
 * and any file content quoted in an error is a short JSON-style escaped excerpt, so control bytes
 * (terminal escapes, NULs, bidi overrides) never reach the terminal.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeTextInput, escapeExcerpt } from "./text_input.ts";
 *
 * assert.equal(escapeExcerpt("\u0000\u0001abc"), '"\\u0000\\u0001abc"');
 * // Usually the bytes of await Deno.readFile("answers.csv"); the BOM is dropped.
 * const bytes = new TextEncoder().encode("\ufeffa,b\n");
 * assert.equal(decodeTextInput(bytes, { source: "answers.csv", what: "answers" }), "a,b\n");
 * assert.throws(
 *   () => decodeTextInput(new Uint8Array([0x61, 0xff]), { source: "a.csv", what: "answers" }),
 *   /a\.csv/,
 * );
 * ```
 * @module
 */

/** Longest excerpt (characters between the quotes) that messages show. */
export const EXCERPT_CHARS = 60;

/**
 * Characters shown as `\uXXXX`: C0/C1 controls, DEL, invisible format characters (soft hyphen,
 * zero-width and bidi controls, line/paragraph separators, BOM), U+FFFD (where undecodable bytes
 * were) and lone surrogates.
 */
const UNSAFE =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffd]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

const SHORT: Record<string, string> = {
  "\t": "\\t",
  "\n": "\\n",
  "\r": "\\r",
  '"': '\\"',
  "\\": "\\\\",
};

/** One code point (or lone surrogate) as it appears inside an excerpt. */
function escapeChar(c: string): string {
  if (c in SHORT) return SHORT[c];
  if (c.length === 1 && UNSAFE.test(c)) {
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
  }
  return c;
}

/**
 * `s` as a double-quoted, JSON-style escaped excerpt of at most `max` characters between the
 * quotes (then `…`), safe to print in a one-line message.
 *
 * @example
 * ```ts
 * escapeExcerpt('say "hi"\n'); // '"say \\"hi\\"\\n"'
 * escapeExcerpt("x".repeat(100)).length; // 63
 * ```
 */
export function escapeExcerpt(s: string, max: number = EXCERPT_CHARS): string {
  return `"${escapeText(s, max)}"`;
}

/**
 * `s` escaped like {@link escapeExcerpt} but without the surrounding quotes (for lists of names).
 *
 * @example
 * ```ts
 * escapeText("a\u0007b"); // "a\\u0007b"
 * ```
 */
export function escapeText(s: string, max: number = EXCERPT_CHARS): string {
  let out = "";
  // Iterating a string yields code points, so a valid surrogate pair stays one character.
  for (const c of s) {
    const e = escapeChar(c);
    if (out.length + e.length > max) return `${out}…`;
    out += e;
  }
  return out;
}

/** Options for {@link decodeTextInput}. */
export interface DecodeTextOptions {
  /** File name or URL for messages. */
  source: string;
  /** What the file should hold, for messages ("answers", "prompts file", ...). */
  what: string;
}

/**
 * Decode a file's bytes as UTF-8 text (a leading BOM is dropped). Invalid UTF-8 or a NUL byte
 * throws one line naming the file, the line of the first bad byte and an escaped excerpt there.
 *
 * @example
 * ```ts
 * decodeTextInput(new TextEncoder().encode("a,b\n"), { source: "a.csv", what: "answers" }); // "a,b\n"
 * ```
 */
export function decodeTextInput(bytes: Uint8Array, opts: DecodeTextOptions): string {
  let text: string | null = null;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    // Located below on the lossy decoding.
  }
  if (text !== null && !text.includes("\u0000")) return text;
  const lossy = text ?? new TextDecoder("utf-8").decode(bytes);
  // The first NUL, or after a failed strict decoding the first U+FFFD (the first undecodable
  // byte, unless the file holds a real U+FFFD before it: the excerpt still shows where to look).
  const found = [lossy.indexOf("\u0000"), text === null ? lossy.indexOf("\ufffd") : -1]
    .filter((i) => i >= 0);
  const at = found.length ? Math.min(...found) : 0;
  const line = lossy.slice(0, at).split("\n").length;
  const lineStart = lossy.lastIndexOf("\n", at - 1) + 1;
  const from = Math.max(lineStart, at - 20);
  throw new Error(
    `${opts.source} line ${line}: not UTF-8 text (a binary file, or text saved in another ` +
      `encoding?) at ${escapeExcerpt(lossy.slice(from, from + 80))}; expected ${opts.what} as ` +
      `UTF-8 text (spreadsheets: save as "CSV UTF-8")`,
  );
}

/**
 * Read a local file as UTF-8 text with {@link decodeTextInput}'s checks; errors name the path.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readTextInput } from "./text_input.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/answers.csv`, "a,b\n");
 * assert.equal(await readTextInput(`${dir}/answers.csv`, "answers"), "a,b\n");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readTextInput(path: string, what: string): Promise<string> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new Error(`${path}: cannot read the ${what}: ${escapeText((e as Error).message, 200)}`);
  }
  return decodeTextInput(bytes, { source: path, what });
}
