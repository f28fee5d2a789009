/**
 * Whether a path exists, where "no" means only that it is not there: any other failure to stat
 * it (permissions, I/O) is thrown, so a folder that cannot be read is not mistaken for a missing
 * one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pathExists } from "./path_exists.ts";
 *
 * assert.equal(await pathExists("deno.json"), true);
 * assert.equal(await pathExists("no/such/file"), false);
 * ```
 * @module
 */

/**
 * True when `path` exists, false when it does not; other stat errors are thrown.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pathExists } from "./path_exists.ts";
 *
 * assert.equal(await pathExists(Deno.cwd()), true);
 * ```
 */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
