/**
 * Read a JSON file that must hold an object (configs such as `model_index.json`,
 * `tokenizer_config.json`), with errors that name the file and say what was wrong.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readJsonObjectIfAny } from "./json_file.ts";
 *
 * const dir = await Deno.makeTempDir();
 * assert.deepEqual(await readJsonObjectIfAny(`${dir}/tokenizer_config.json`), {}); // absent
 * ```
 * @module
 */

/**
 * The JSON object in `path`, or `{}` when the file does not exist; unreadable files, invalid JSON
 * and non-object values are errors naming the file.
 */
export async function readJsonObjectIfAny(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return {};
    throw new Error(`${path}: cannot read (${(e as Error).message})`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw new Error(`${path}: expected a JSON object`);
  }
  return v as Record<string, unknown>;
}
