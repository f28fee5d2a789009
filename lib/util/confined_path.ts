/**
 * Paths read from a run's own files (`model.json`'s `weights`, a checkpoint manifest's file names,
 * an export's `model_index.json` entries) are data, not trusted paths: joined to their folder they
 * must stay inside it. {@link confinedJoin} refuses absolute paths and `..` segments;
 * {@link confinedRealPath} also refuses a symbolic link that leads out of the folder.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { confinedJoin } from "./confined_path.ts";
 *
 * const at = { file: "runs/x/unet/model/model.json", field: "weights" };
 * assert.equal(
 *   confinedJoin("runs/x/unet/model", "model.safetensors", at),
 *   "runs/x/unet/model/model.safetensors",
 * );
 * assert.throws(() => confinedJoin("runs/x/unet/model", "../../../../etc/passwd", at), /weights/);
 * ```
 * @module
 */

/** Where the path came from, for errors, and how much of a path is allowed. */
export interface ConfineOptions {
  /** The file the path was read from. */
  file: string;
  /** The field that held it, e.g. `weights` or `files[2].name`. */
  field: string;
  /** Only a plain file name directly in the folder (no `/` at all). Default false. */
  fileName?: boolean;
}

function refuse(dir: string, rel: unknown, o: ConfineOptions): never {
  const want = o.fileName
    ? `a file name inside ${dir}`
    : `a relative path inside ${dir} (no ".." segments, not absolute)`;
  const got = JSON.stringify(rel) ?? String(rel);
  throw new Error(`${o.file}: field "${o.field}" must be ${want}, got ${got}`);
}

/**
 * Check that `rel` (as read from a JSON file) names something inside `dir` without following
 * links, and return `dir/rel`. Refused: non-strings, empty names, absolute paths (`/x`, `\x`,
 * `C:x`), NUL bytes, and `.`/`..` segments (`\` counts as a separator too, as on Windows).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { confinedJoin } from "./confined_path.ts";
 *
 * const at = { file: "export/model_index.json", field: "files[1]" };
 * assert.equal(confinedJoin("export", "unet/model.onnx", at), "export/unet/model.onnx");
 * ```
 */
export function confinedJoin(dir: string, rel: unknown, o: ConfineOptions): string {
  if (typeof rel !== "string" || rel === "" || rel.includes("\0")) refuse(dir, rel, o);
  if (/^[/\\]/.test(rel) || /^[A-Za-z]:/.test(rel)) refuse(dir, rel, o);
  const parts = rel.split(/[/\\]/);
  if (o.fileName && parts.length > 1) refuse(dir, rel, o);
  if (parts.some((p) => p === ".." || p === "." || p === "")) refuse(dir, rel, o);
  return dir.endsWith("/") ? dir + rel : `${dir}/${rel}`;
}

/**
 * {@link confinedJoin}, then resolve symbolic links and check the target is still inside `dir`
 * (itself resolved, so a run folder reached through a link is fine). A path that does not exist
 * is returned as joined, for the caller to report as missing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { confinedRealPath } from "./confined_path.ts";
 *
 * const dir = await Deno.realPath(await Deno.makeTempDir());
 * await Deno.writeTextFile(`${dir}/model.safetensors`, "");
 * const at = { file: `${dir}/model.json`, field: "weights" };
 * assert.equal(await confinedRealPath(dir, "model.safetensors", at), `${dir}/model.safetensors`);
 * ```
 */
export async function confinedRealPath(
  dir: string,
  rel: unknown,
  o: ConfineOptions,
): Promise<string> {
  const joined = confinedJoin(dir, rel, o);
  let real: string;
  try {
    real = await Deno.realPath(joined);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return joined;
    throw e;
  }
  const root = await Deno.realPath(dir);
  const inside = root.endsWith("/") ? root : `${root}/`;
  if (!real.startsWith(inside)) {
    throw new Error(
      `${o.file}: field "${o.field}" (${JSON.stringify(rel)}) resolves outside ${dir} (to ${real})`,
    );
  }
  return joined;
}
