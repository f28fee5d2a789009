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

/**
 * Write the two broken shards both shard-reader tests use: `00001.tar`, a good shard (samples h
 * and i, images from `png`) cut in the middle of its last entry's data, and `00002.tar`, a
 * garbage header.
 *
 * @example
 * ```ts
 * await writeBrokenShards(dir, (i) => encodePngRgb(sample(i).image, 8, 8));
 * ```
 */
export async function writeBrokenShards(
  dir: string,
  png: (i: number) => Uint8Array,
): Promise<void> {
  const good = await makeTar([
    ["h.png", png(4)],
    ["h.txt", "caption h"],
    ["i.png", png(5)],
    ["i.txt", "caption i that is cut"],
  ]);
  await Deno.writeFile(`${dir}/00001.tar`, good.subarray(0, good.length - 1024 - 512 + 5));
  await Deno.writeFile(`${dir}/00002.tar`, new Uint8Array(1024).fill(65));
}
