/**
 * Hand-made tar archives for the shard-reader tests (entries with hostile names, links, truncated
 * data), written with npm `tar-stream` as the kit's writer does.
 */
import tarStream from "tar-stream";
import { concatBytes } from "../../lib/util/concat.ts";

/**
 * A tar from `[name, bytes or text, type?]` entries; type "symlink" makes a link to /etc/passwd.
 *
 * @example
 * ```ts
 * const tar = await makeTar([["a.txt", "caption"], ["evil", "", "symlink"]]);
 * ```
 */
export async function makeTar(
  entries: [string, Uint8Array | string, string?][],
): Promise<Uint8Array> {
  const pack = tarStream.pack();
  const chunks: Uint8Array[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(c as Uint8Array);
  })();
  for (const [name, data, type] of entries) {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    await new Promise<void>((res, rej) => {
      if (type === "symlink") {
        pack.entry({ name, type: "symlink", linkname: "/etc/passwd" }, (e) => e ? rej(e) : res());
      } else pack.entry({ name, size: bytes.length }, bytes, (e) => e ? rej(e) : res());
    });
  }
  pack.finalize();
  await done;
  return concatBytes(chunks);
}
