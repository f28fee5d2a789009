/**
 * Crash-safe file writes: write to a temporary name in the same folder, flush, then rename.
 * A reader never sees a half-written file, whatever moment the process is killed at; what a kill
 * leaves is a temporary (`<name>.tmp-<pid>-<8 hex>`), which {@link removeStaleTemps} recognises
 * and removes on the next resume or save.
 *
 * @example
 * ```ts
 * import { removeStaleTemps, writeFileAtomic, writeTextAtomic } from "./atomic.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(`${dir}/config.json`, new TextEncoder().encode("{}"));
 * await writeTextAtomic(`${dir}/notes.txt`, "hello");
 * await removeStaleTemps(dir, { recursive: true }); // after a kill
 * ```
 * @module
 */

/**
 * A fresh temporary sibling of `path`: `<path>.tmp-<pid>-<8 hex>`. The pid lets a later process
 * tell a dead writer's leftovers from a live writer's work in progress.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tempPathFor } from "./atomic.ts";
 *
 * assert.match(tempPathFor("runs/x/model.json"), /^runs\/x\/model\.json\.tmp-\d+-[0-9a-f]{8}$/);
 * ```
 */
export function tempPathFor(path: string): string {
  return `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
}

const TEMP_NAME = /\.tmp-(\d+)-[0-9a-f]{8}$/;
/** Names `reuseFrozenParts` gave its temporaries before they carried a pid. */
const LEGACY_TEMP_NAME = /^(model|tokenizer\.json)\.tmp-[0-9a-f]{8}$/;

/**
 * The writer's pid when `name` is one of the kit's temporary names ({@link tempPathFor}, the ONNX
 * export's temp folder), 0 for the older pid-less names of copied model parts, else null.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { kitTempWriter } from "./atomic.ts";
 *
 * assert.equal(kitTempWriter("model.json.tmp-4242-1a2b3c4d"), 4242);
 * assert.equal(kitTempWriter("model.json.bak"), null);
 * ```
 */
export function kitTempWriter(name: string): number | null {
  const m = TEMP_NAME.exec(name);
  if (m) return Number(m[1]);
  return LEGACY_TEMP_NAME.test(name) ? 0 : null;
}

/** Whether process `pid` may be alive: /proc on Linux, `ps -p` elsewhere; unsure means alive. */
async function writerAlive(pid: number): Promise<boolean> {
  // This process's own temporaries are stale: cleaning runs before it writes in the folder (and
  // in containers a restarted job often gets the dead one's pid).
  if (pid === 0 || pid === Deno.pid) return false;
  if (Deno.build.os === "linux") {
    return await Deno.stat(`/proc/${pid}`).then(() => true, () => false);
  }
  try {
    const r = await new Deno.Command("ps", {
      args: ["-p", String(pid)],
      stdout: "null",
      stderr: "null",
    }).output();
    return r.success;
  } catch {
    return true;
  }
}

/** Options for {@link removeStaleTemps}. */
export interface RemoveStaleTempsOptions {
  /** Also clean sub-folders (symbolic links are never followed). Default false. */
  recursive?: boolean;
}

/**
 * Remove the kit's temporaries in `dir` whose writer is gone: names from {@link tempPathFor}
 * whose pid is not a live process (or is this one), files or folders alike; when liveness cannot
 * be checked, the temporary is kept. Anything else is left
 * alone, whatever its name. Call it before this process writes in `dir` (a resume, a re-save).
 * Returns the removed paths; a missing `dir` is not an error.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { removeStaleTemps, tempPathFor } from "./atomic.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const stale = tempPathFor(`${dir}/model.json`); // this process's own: stale by definition
 * await Deno.writeTextFile(stale, "{");
 * assert.deepEqual(await removeStaleTemps(dir), [stale]);
 * ```
 */
export async function removeStaleTemps(
  dir: string,
  opts: RemoveStaleTempsOptions = {},
): Promise<string[]> {
  const removed: string[] = [];
  const walk = async (d: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(d));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return;
      throw e;
    }
    for (const e of entries) {
      const path = `${d}/${e.name}`;
      const pid = kitTempWriter(e.name);
      if (pid !== null && !e.isSymlink && !(await writerAlive(pid))) {
        await Deno.remove(path, { recursive: true }).catch((err) => {
          if (!(err instanceof Deno.errors.NotFound)) throw err;
        });
        removed.push(path);
      } else if (opts.recursive && e.isDirectory) {
        await walk(path);
      }
    }
  };
  await walk(dir.replace(/\/+$/, "") || "/");
  return removed;
}

/** Write bytes to `path` atomically (temporary sibling, fsync, rename). */
export async function writeFileAtomic(path: string, data: Uint8Array): Promise<void> {
  const tmp = tempPathFor(path);
  const f = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    let off = 0;
    while (off < data.length) off += await f.write(data.subarray(off));
    await f.sync();
  } catch (e) {
    f.close();
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  f.close();
  await Deno.rename(tmp, path);
}

/** Write UTF-8 text to `path` atomically. */
export function writeTextAtomic(path: string, text: string): Promise<void> {
  return writeFileAtomic(path, new TextEncoder().encode(text));
}

/** Write JSON (2-space indented) to `path` atomically. */
export function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  return writeTextAtomic(path, JSON.stringify(value, null, 2) + "\n");
}
