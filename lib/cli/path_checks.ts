/**
 * Checks of path and location flags (`check` in a flag's declaration, see `args.ts`), run when the
 * flags are parsed: a command whose output cannot be written, or whose checkpoint location no
 * store can open, is refused in one line before it loads a model or trains a stage, instead of
 * failing at its last step. Each check throws an Error saying what is wrong (`parseFlags` adds the
 * flag and the value in front).
 *
 * @example
 * ```ts
 * import { checkpointLocation, outputFile } from "./path_checks.ts";
 * import { FlagSpec } from "./args.ts";
 *
 * const SPEC = {
 *   out: { type: "string", default: "grid.png", check: outputFile, help: "output PNG" },
 *   checkpoints: { type: "string", check: checkpointLocation, help: "folder or gs:// URL" },
 * } satisfies FlagSpec;
 * ```
 * @module
 */
import { storeLocationProblem } from "../storage/location.ts";

function statOrNull(path: string): Deno.FileInfo | null {
  try {
    return Deno.statSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return null;
    throw e;
  }
}

/** The folder holding `path` ("." for a bare name, "/" for a top-level one). */
function parentOf(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  const slash = trimmed.lastIndexOf("/");
  return slash < 0 ? "." : slash === 0 ? "/" : trimmed.slice(0, slash);
}

/**
 * A file the command writes at the end: not a folder, and its folder exists (writes are atomic,
 * through a temporary file beside it, so they never create folders).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { outputFile } from "./path_checks.ts";
 *
 * outputFile("samples.png"); // ok: its folder "." exists
 * assert.throws(() => outputFile("no/such/dir/x.png"), /folder no\/such\/dir does not exist/);
 * assert.throws(() => outputFile("lib"), /^Error: is a folder, expected a file$/);
 * ```
 */
export function outputFile(path: string): void {
  if (path === "" || path.endsWith("/")) throw new Error("expected a file name");
  if (statOrNull(path)?.isDirectory) throw new Error("is a folder, expected a file");
  const dir = parentOf(path);
  const d = statOrNull(dir);
  if (!d) throw new Error(`folder ${dir} does not exist`);
  if (!d.isDirectory) throw new Error(`${dir} is a file, not a folder`);
}

/**
 * A folder the command creates (with its parents) or writes into: not an existing file, and the
 * nearest existing ancestor is a folder, so creating it can work.
 *
 * @example
 * ```ts
 * outputFolder("runs/new/run"); // ok while runs/ (or runs/new/) is a folder or missing
 * ```
 */
export function outputFolder(path: string): void {
  if (path === "") throw new Error("expected a folder");
  const s = statOrNull(path);
  if (s) {
    if (!s.isDirectory) throw new Error("is a file, expected a folder (or a path to create one)");
    return;
  }
  for (let dir = parentOf(path);; dir = parentOf(dir)) {
    const d = statOrNull(dir);
    if (d) {
      if (!d.isDirectory) throw new Error(`${dir} is a file, so the folder cannot be created`);
      return;
    }
    if (dir === "." || dir === "/") return;
  }
}

/**
 * A file the command reads: it exists and is a file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { inputFile } from "./path_checks.ts";
 *
 * inputFile("deno.json"); // ok
 * assert.throws(() => inputFile("stats.safetensors"), /^Error: no such file$/);
 * assert.throws(() => inputFile("lib"), /^Error: is a folder, expected a file$/);
 * ```
 */
export function inputFile(path: string): void {
  const s = statOrNull(path);
  if (!s) throw new Error("no such file");
  if (!s.isFile) throw new Error("is a folder, expected a file");
}

/**
 * Where training checkpoints go: a folder (checked as {@link outputFolder}) or a
 * `gs://bucket/prefix` URL whose bucket name and prefix are valid (checked as text; the bucket
 * itself is reached only when the first checkpoint is written).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkpointLocation } from "./path_checks.ts";
 *
 * checkpointLocation("gs://my-bucket/runs/exp1"); // ok: the bucket is reached only when writing
 * checkpointLocation("runs/new/checkpoints"); // ok: a folder it can create
 * assert.throws(() => checkpointLocation("s3://b/p"), /no built-in store for URL scheme s3:/);
 * ```
 */
export function checkpointLocation(location: string): void {
  const problem = storeLocationProblem(location);
  if (problem) throw new Error(problem);
  if (!location.startsWith("gs://")) outputFolder(location);
}
