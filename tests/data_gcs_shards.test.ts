import assert from "node:assert/strict";
import { Storage } from "@google-cloud/storage";
import { encodePngRgb } from "../lib/data/png.ts";
import { shapesWorldSample } from "../lib/data/shapes_world.ts";
import {
  buildShapesWorldShards,
  listShards,
  newReadStats,
  readShards,
  type ReadShardsOptions,
  type ReadStats,
  type ShardSample,
} from "../lib/data/webdataset.ts";
import { GcsShardSource, type ShardSource, ShardTransportError } from "../lib/data/shard_source.ts";
import { type GcsClientLike, type GcsFileLike, GcsStore } from "../lib/storage/gcs_store.ts";
import { Rng } from "../lib/util/rng.ts";
import { startGcsEmulator } from "./helpers/gcs_emulator.ts";
import { makeTar, writeBrokenShards } from "./helpers/tar.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

const BUCKET = "xgen-shards-test";
const URL_BASE = `gs://${BUCKET}`;

interface Read {
  samples: ShardSample[];
  stats: ReadStats;
}

async function readAll(
  source: string | readonly string[] | ShardSource,
  opts: ReadShardsOptions = {},
): Promise<Read> {
  const stats = newReadStats();
  const samples: ShardSample[] = [];
  for await (const s of readShards(source, { ...opts, stats })) samples.push(s);
  return { samples, stats };
}

/** FNV-1a of the bytes, with the length: small enough that a failed deepEqual prints fast. */
function digest(b: Uint8Array): string {
  let h = 0x811c9dc5;
  for (const x of b) h = Math.imul(h ^ x, 0x01000193) >>> 0;
  return `${b.length}:${h.toString(16)}`;
}

/** What must match between a local and a gs:// read; shard names relative to their root. */
function view(samples: ShardSample[], root: string) {
  return samples.map((s) => {
    assert.ok(s.shardPath.startsWith(root + "/"), `${s.shardPath} is under ${root}`);
    return {
      key: s.key,
      caption: s.caption,
      width: s.width,
      height: s.height,
      image: digest(s.image),
      json: s.json,
      position: s.position,
      shard: s.shardPath.slice(root.length),
    };
  });
}

/** Upload every file of `dir` (optionally filtered) under `url`. */
async function upload(dir: string, url: string, endpoint: string, keep = (_: string) => true) {
  const store = new GcsStore(url, { apiEndpoint: endpoint });
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && keep(e.name)) await store.put(e.name, await Deno.readFile(`${dir}/${e.name}`));
  }
}

/**
 * A client over the emulator whose read streams go through `wrap(stream, start)`: counts bytes
 * and injects dropped connections into real ranged reads.
 */
function wrappingClient(
  endpoint: string,
  wrap: (
    s: AsyncIterable<Uint8Array>,
    start: number,
    generation: string | number | undefined,
  ) => AsyncIterable<Uint8Array>,
): GcsClientLike {
  const real = new Storage({
    apiEndpoint: endpoint,
    projectId: "xgen-kit-test",
    retryOptions: { autoRetry: false },
  });
  return {
    bucket: (name) => {
      const b = real.bucket(name);
      return {
        getFiles: (q) => b.getFiles(q),
        file: (n, o): GcsFileLike => {
          const f = b.file(n, o);
          return {
            save: (d, so) => f.save(d, so),
            download: () => f.download(),
            delete: (d) => f.delete(d),
            getMetadata: () => f.getMetadata(),
            createReadStream: (opts) =>
              wrap(f.createReadStream(opts), opts?.start ?? 0, o?.generation),
          };
        },
      };
    },
  };
}

const connReset = () => Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });

Deno.test({
  name: "readShards over gs:// (Cloud Storage emulator) reads exactly what the local folder reads",
  fn: async (t) => {
    const t0 = performance.now();
    const emu = await startGcsEmulator();
    const gcs = { apiEndpoint: emu.endpoint };
    await withTempDir("xgen_data_gcs_shards_", async (tmp) => {
      try {
        console.log(`emulator ready in ${emu.startMs.toFixed(0)} ms`);
        const dir = `${tmp}/ds`;
        const { manifest } = await buildShapesWorldShards({
          outDir: dir,
          seed: 3,
          count: 60,
          perShard: 10,
          size: 16,
        });
        const full = `${URL_BASE}/laion/full`, bare = `${URL_BASE}/laion/bare`;
        await upload(dir, full, emu.endpoint);
        // img2dataset output has no dataset.json: the tars are found by listing.
        await upload(dir, bare, emu.endpoint, (n) => /\.(tar|parquet)$/.test(n));
        const extra = new GcsStore(bare, gcs);
        await extra.put("sub/00099.tar", await Deno.readFile(`${dir}/00000.tar`));
        await extra.put("notes.txt", new TextEncoder().encode("not a shard"));

        await t.step("listing: dataset.json when present, else *.tar directly under", async () => {
          const want = manifest.shards.map((s) => `${full}/${s}`);
          assert.equal(want.length, 6);
          assert.deepEqual(await listShards(full, { gcs }), want);
          assert.deepEqual(
            await listShards(`${bare}/`, { gcs }),
            manifest.shards.map((s) => `${bare}/${s}`),
          );
        });

        await t.step("same samples and stats: all, aesthetic filter, ranks, shuffle", async () => {
          const aesthetic = { minAesthetic: 4.5 };
          const cases: [string, ReadShardsOptions][] = [
            ["all", {}],
            ["minAesthetic", aesthetic],
            ["rank 0 of 2", { ...aesthetic, rank: 0, worldSize: 2 }],
            ["rank 1 of 2", { ...aesthetic, rank: 1, worldSize: 2 }],
          ];
          const got: Record<string, Read> = {};
          for (const [name, o] of cases) {
            const local = await readAll(dir, o);
            const remote = await readAll(full, { ...o, gcs });
            assert.deepEqual(view(remote.samples, full), view(local.samples, dir), name);
            assert.deepEqual(remote.stats, local.stats, name);
            got[name] = remote;
          }
          assert.deepEqual(
            got.all.samples.map((s) => Number(s.key)),
            Array.from({ length: 60 }, (_, i) => i),
          );
          assert.deepEqual(
            got.all.samples[17].image,
            shapesWorldSample(17, { seed: 3, size: 16 }).image,
          );
          assert.equal(
            got.all.samples[17].caption,
            shapesWorldSample(17, { seed: 3, size: 16 }).caption,
          );
          assert.equal(got.all.samples[17].shardPath, `${full}/00001.tar`);
          const want = got.all.samples.filter((s) => (s.json?.aesthetic as number) >= 4.5);
          assert.ok(want.length > 10 && want.length < 60, `${want.length} kept`);
          const kept = got.minAesthetic;
          assert.deepEqual(kept.samples.map((s) => s.key), want.map((s) => s.key));
          assert.equal(kept.stats.read, want.length);
          assert.equal(kept.stats.skipped.aesthetic, 60 - want.length);
          assert.equal(kept.stats.records, 60);
          assert.equal(kept.stats.shards, 6);
          // Rank r takes shards i % 2 == r: disjoint halves that add up to the filtered set.
          const r0 = got["rank 0 of 2"].samples, r1 = got["rank 1 of 2"].samples;
          assert.ok(r0.every((s) => Math.floor(Number(s.key) / 10) % 2 === 0));
          assert.ok(r1.every((s) => Math.floor(Number(s.key) / 10) % 2 === 1));
          assert.deepEqual(
            [...r0, ...r1].map((s) => s.key).sort(),
            want.map((s) => s.key).sort(),
          );
          assert.equal(got["rank 1 of 2"].stats.shards, 3);

          // The listed (no dataset.json) prefix, shuffled, and configured by environment only.
          const prev = Deno.env.get("STORAGE_EMULATOR_HOST");
          Deno.env.set("STORAGE_EMULATOR_HOST", emu.endpoint);
          try {
            const o = { rng: Rng.stream(5, [2]), rank: 1, worldSize: 2 };
            const remote = await readAll(bare, o);
            const local = await readAll(dir, { ...o, rng: Rng.stream(5, [2]) });
            assert.deepEqual(view(remote.samples, bare), view(local.samples, dir));
            assert.deepEqual(remote.stats, local.stats);
            assert.equal(remote.samples.length, 30);
          } finally {
            if (prev === undefined) Deno.env.delete("STORAGE_EMULATOR_HOST");
            else Deno.env.set("STORAGE_EMULATOR_HOST", prev);
          }
        });

        await t.step("resume from a mid-stream position", async () => {
          const o = { minAesthetic: 4.5, rank: 1, worldSize: 2 };
          const first = await readAll(full, { ...o, gcs });
          const k = Math.floor(first.samples.length / 2);
          const cut = first.samples[k].position;
          assert.ok(cut.index > 0 && cut.index < 10, `mid-shard cut ${JSON.stringify(cut)}`);
          const remote = await readAll(full, { ...o, gcs, start: cut });
          const local = await readAll(dir, { ...o, start: cut });
          assert.deepEqual(view(remote.samples, full), view(local.samples, dir));
          assert.deepEqual(remote.stats, local.stats);
          assert.deepEqual(
            remote.samples.map((s) => s.key),
            first.samples.slice(k + 1).map((s) => s.key),
          );
          // Resumed stats count only what comes after the cut.
          assert.equal(remote.stats.read, first.samples.length - k - 1);
          assert.equal(remote.stats.shards, 3 - cut.shard);
        });

        await t.step("corrupt records are skipped and counted exactly as locally", async () => {
          const bad = `${tmp}/bad`;
          await Deno.mkdir(bad);
          const ok = (i: number) => shapesWorldSample(i, { seed: 1, size: 8 });
          const png = (i: number) => encodePngRgb(ok(i).image, 8, 8);
          await Deno.writeFile(
            `${bad}/00000.tar`,
            await makeTar([
              ["a.png", png(0)],
              ["a.txt", "caption a"],
              ["../evil.txt", "escape"],
              ["/etc/evil.txt", "absolute"],
              ["b.png", new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10, 1, 2, 3, 4, 5])],
              ["b.txt", "corrupt image"],
              ["c.png", png(2)],
              ["d.jpg", new Uint8Array([255, 216, 255])],
              ["d.txt", "corrupt jpeg"],
              ["w.gif", new Uint8Array([71, 73, 70, 56, 57, 97])], // GIF89a: no decoder
              ["w.txt", "gif only"],
              ["f.png", new Uint8Array(0), "symlink"],
              ["g.png", png(3)],
              ["g.txt", "caption g"],
              ["g.json", "{not json"],
            ]),
          );
          await writeBrokenShards(bad, png);
          const url = `${URL_BASE}/bad`;
          await upload(bad, url, emu.endpoint);
          const local = await readAll(bad);
          const remote = await readAll(url, { gcs });
          assert.deepEqual(view(remote.samples, url), view(local.samples, bad));
          assert.deepEqual(remote.samples.map((s) => s.key), ["a", "g", "h"]);
          assert.deepEqual(remote.stats, local.stats);
          assert.deepEqual(remote.stats.skipped, {
            ...newReadStats().skipped, // every other reason 0
            escape: 2,
            link: 1,
            corruptImage: 2,
            unsupportedImage: 1,
            missingCaption: 1,
            corruptJson: 1,
            truncated: 1,
            corruptTar: 1,
          });
          // A listed shard that does not exist is counted, not fatal, as a missing local file.
          const missing = await readAll([`${url}/00000.tar`, `${url}/nope.tar`], { gcs });
          assert.deepEqual(missing.samples.map((s) => s.key), ["a", "g"]);
          assert.equal(missing.stats.skipped.unreadableShard, 1);
          assert.equal(missing.stats.shards, 2);
        });

        await t.step(
          "a garbage parquet sidecar is counted with its URL; scores come from json",
          async () => {
            const url = `${URL_BASE}/garbage-parquet`;
            const store = new GcsStore(url, gcs);
            for (const n of ["00000.tar", "00000.parquet", "00001.tar"]) {
              await store.put(n, await Deno.readFile(`${dir}/${n}`));
            }
            await store.put("00001.parquet", new TextEncoder().encode("not a parquet file"));
            const local = await readAll([`${dir}/00000.tar`, `${dir}/00001.tar`], {
              minAesthetic: 4.5,
            });
            const remote = await readAll(url, { gcs, minAesthetic: 4.5 });
            // Same samples as the intact local shards: the bad sidecar's scores came from key.json.
            assert.deepEqual(view(remote.samples, url), view(local.samples, dir));
            assert.ok(remote.samples.some((s) => s.shardPath === `${url}/00001.tar`));
            assert.equal(remote.stats.skipped.corruptParquet, 1);
            assert.deepEqual(remote.stats.corruptFiles.map((f) => f.path), [
              `${url}/00001.parquet`,
            ]);
            assert.match(remote.stats.corruptFiles[0].reason, /cannot read parquet/);
            assert.equal(local.stats.skipped.corruptParquet, 0);
          },
        );

        await t.step("a missing bucket prefix is a clear error naming the URL", async () => {
          const url = `${URL_BASE}/laion/no-such-prefix`;
          await assert.rejects(readAll(url, { gcs }), (e: Error) => {
            assert.equal(
              e.message,
              `listShards: no objects under ${url} (wrong bucket or prefix, or not uploaded yet)`,
            );
            return true;
          });
          await assert.rejects(readAll("gs://Bad_Bucket/x", { gcs }), /invalid bucket name/);
        });

        await t.step(
          "streams with bounded read-ahead; dropped connections are repaired",
          async () => {
            const one = `${tmp}/one`;
            await buildShapesWorldShards({ outDir: one, seed: 2, count: 150, perShard: 150 });
            const url = `${URL_BASE}/one`;
            await upload(one, url, emu.endpoint);
            const size = (await Deno.stat(`${one}/00000.tar`)).size;
            assert.ok(size > 300_000, `shard is ${size} bytes`);
            const local = await readAll(one);

            // One dropped connection past 100 kB: reopened from the byte reached, invisible above.
            const starts: number[] = [];
            const generations: unknown[] = [];
            let delivered = 0, dropped = false;
            const client = wrappingClient(emu.endpoint, async function* (s, start, generation) {
              starts.push(start);
              generations.push(generation);
              for await (const c of s) {
                delivered += c.length;
                yield c;
                if (!dropped && delivered >= 100_000) {
                  dropped = true;
                  throw connReset();
                }
              }
            });
            const src = new GcsShardSource(url, { client, retryDelayMs: 1 });
            const stats = newReadStats();
            const samples: ShardSample[] = [];
            let aheadAtFirst = -1;
            for await (const s of readShards(src, { stats })) {
              if (samples.length === 0) aheadAtFirst = delivered;
              samples.push(s);
            }
            assert.deepEqual(view(samples, url), view(local.samples, one));
            assert.deepEqual(stats, local.stats);
            assert.equal(starts.length, 2);
            assert.equal(starts[0], 0);
            assert.ok(starts[1] >= 100_000 && starts[1] < size, `reopened at ${starts[1]}`);
            assert.equal(delivered, size, "each byte fetched once");
            // Both reads name the version seen at open, so a reopen cannot splice in a newer one.
            const [meta] = await client.bucket(BUCKET).file("one/00000.tar").getMetadata!();
            assert.ok(meta.generation !== undefined);
            assert.deepEqual(generations, [meta.generation, meta.generation]);
            // Never the whole shard in memory: the first sample came with a fraction of it read.
            assert.ok(aheadAtFirst > 0 && aheadAtFirst < size / 3, `${aheadAtFirst} of ${size}`);
            // Leaving early aborts the download; the next read of the shard is whole.
            delivered = 0;
            for await (const _ of readShards(src)) break;
            assert.ok(delivered < size / 3, `${delivered} of ${size} fetched before the break`);
            const again = await readAll(src);
            assert.equal(again.samples.length, 150);
            assert.deepEqual(again.stats, local.stats);

            // A connection that keeps failing at the same byte: a clear error, where to resume.
            const failAt = 150_000;
            const broken = wrappingClient(emu.endpoint, async function* (s, start) {
              let at = start;
              for await (const c of s) {
                if (at >= failAt) {
                  throw Object.assign(new Error("Service Unavailable"), { code: 503 });
                }
                at += c.length;
                yield c;
              }
            });
            const bsrc = new GcsShardSource(url, { client: broken, retryDelayMs: 1, tries: 3 });
            const partial: ShardSample[] = [];
            await assert.rejects(
              (async () => {
                for await (const s of readShards(bsrc)) partial.push(s);
              })(),
              (e: Error) => {
                assert.ok(e.cause instanceof ShardTransportError);
                assert.match(
                  e.message,
                  new RegExp(
                    `^readShards: ${url}/00000\\.tar: read failed at byte \\d+ of ${size} after 3 ` +
                      `tries \\(HTTP 503: Service Unavailable\\); stopped after record ` +
                      `${partial.length} of shard 0 .*start \\{ shard: 0, index: ${partial.length} \\}`,
                  ),
                );
                return true;
              },
            );
            assert.ok(partial.length > 10 && partial.length < 150, `${partial.length} read`);
            assert.deepEqual(
              partial.map((s) => s.key),
              local.samples.slice(0, partial.length).map((s) => s.key),
            );
            // Resuming from the reported index with a healthy connection gives the rest.
            const rest = await readAll(url, { gcs, start: { shard: 0, index: partial.length } });
            assert.deepEqual(
              [...partial, ...rest.samples].map((s) => s.key),
              local.samples.map((s) => s.key),
            );
          },
        );
      } finally {
        await emu.stop();
      }
    }).finally(() => console.log(`total ${((performance.now() - t0) / 1000).toFixed(1)} s`));
  },
});
