/**
 * Crash-safe file writes: write to a temporary name in the same folder, flush, then rename.
 * A reader never sees a half-written file, whatever moment the process is killed at.
 *
 * @example
 * ```ts
 * await writeFileAtomic("runs/x/config.json", new TextEncoder().encode("{}"));
 * await writeTextAtomic("runs/x/notes.txt", "hello");
 * ```
 * @module
 */

/** Write bytes to `path` atomically (temporary sibling, fsync, rename). */
export async function writeFileAtomic(path: string, data: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
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
