import assert from "node:assert/strict";
import { encode as encodeJpeg } from "jpeg-js";
import { Rng } from "../lib/util/rng.ts";
import { encodePngRgb } from "../lib/data/png.ts";
import { shapesWorldSample } from "../lib/data/shapes_world.ts";
import {
  buildShapesWorldShards,
  formatReadStats,
  isEscapingPath,
  listShards,
  newReadStats,
  readShardParquet,
  readShards,
  shardOrder,
  type ShardSample,
  writeShard,
} from "../lib/data/webdataset.ts";
import { makeTar, writeBrokenShards } from "./helpers/tar.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

async function collect(it: AsyncIterable<ShardSample>): Promise<ShardSample[]> {
  const out: ShardSample[] = [];
  for await (const s of it) out.push(s);
  return out;
}

Deno.test("shard round trip: images, captions, json and parquet columns match", async () => {
  await withTempDir("xgen_data_webdataset_", async (dir) => {
    const samples = Array.from(
      { length: 25 },
      (_, i) => shapesWorldSample(i, { seed: 8, size: 16 }),
    );
    const info = await writeShard({ outDir: dir, index: 3, samples });
    assert.equal(info.tar, `${dir}/00003.tar`);
    const stats = newReadStats();
    const got = await collect(readShards([info.tar], { stats }));
    assert.equal(got.length, 25);
    assert.equal(stats.read, 25);
    assert.equal(Object.values(stats.skipped).reduce((a, b) => a + b, 0), 0);
    for (let i = 0; i < 25; i++) {
      const [g, s] = [got[i], samples[i]];
      assert.equal(g.key, s.key);
      assert.deepEqual(g.image, s.image);
      assert.equal(g.width, 16);
      assert.equal(g.caption, s.caption);
      assert.deepEqual(g.json?.meta, JSON.parse(JSON.stringify(s.meta)));
      assert.equal(g.json?.status, "success");
      assert.equal(g.json?.aesthetic, s.meta.aesthetic);
      assert.deepEqual(g.position, { shard: 0, index: i + 1 });
    }
    const rows = await readShardParquet(info.parquet);
    assert.equal(rows.length, 25);
    for (let i = 0; i < 25; i++) {
      assert.equal(rows[i].key, samples[i].key);
      assert.equal(rows[i].caption, samples[i].caption);
      assert.equal(rows[i].aesthetic, samples[i].meta.aesthetic);
      assert.equal(rows[i].width, 16);
      assert.equal(rows[i].status, "success");
      assert.equal(rows[i].error_message, null);
      assert.equal(rows[i].sha256, got[i].json?.sha256);
      assert.deepEqual(JSON.parse(rows[i].meta as string), got[i].json?.meta);
    }
    // sha256 really is the PNG's digest.
    const png = encodePngRgb(samples[0].image, 16, 16);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(png)));
    const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
    assert.equal(rows[0].sha256, hex);
    const st = JSON.parse(await Deno.readTextFile(info.stats));
    assert.equal(st.count, 25);
    assert.deepEqual(st.status_dict, { success: 25 });
    // Only the final files remain (temporary names were renamed).
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names.sort(), ["00003.parquet", "00003.tar", "00003_stats.json"]);
    await assert.rejects(
      () => writeShard({ outDir: dir, index: 0, samples: [{ ...samples[0], key: "../x" }] }),
      /key "..\/x" must match/,
    );
  });
});

Deno.test("bad records are skipped and counted, never fatal", async () => {
  await withTempDir("xgen_data_webdataset_", async (dir) => {
    const ok = (i: number) => shapesWorldSample(i, { seed: 1, size: 8 });
    const png = (i: number) => encodePngRgb(ok(i).image, 8, 8);
    const bad = await makeTar([
      ["a.png", png(0)],
      ["a.txt", "caption a"],
      ["a.json", JSON.stringify({ aesthetic: 5 })],
      ["../evil.txt", "escape"],
      ["/etc/evil.txt", "absolute"],
      ["sub/../../evil.png", png(1)],
      ["b.png", new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10, 1, 2, 3, 4, 5])],
      ["b.txt", "corrupt image"],
      ["c.png", png(2)],
      ["c.json", "{}"],
      ["d.jpg", new Uint8Array([255, 216, 255])],
      ["d.txt", "corrupt jpeg"],
      ["w.gif", new Uint8Array([71, 73, 70, 56, 57, 97])], // GIF89a: no decoder
      ["w.txt", "gif only"],
      ["e.txt", "no image"],
      ["f.png", new Uint8Array(0), "symlink"],
      ["g.png", png(3)],
      ["g.txt", "caption g"],
      ["g.json", "{not json"],
    ]);
    await Deno.writeFile(`${dir}/00000.tar`, bad);
    // Truncated (a good shard cut in its last entry's data) and a garbage header.
    await writeBrokenShards(dir, png);
    const stats = newReadStats();
    const got = await collect(readShards(dir, { stats }));
    assert.deepEqual(got.map((s) => s.key), ["a", "g", "h"]);
    assert.deepEqual(got.map((s) => s.caption), ["caption a", "caption g", "caption h"]);
    assert.equal(got[1].json, null);
    assert.deepEqual(stats.skipped, {
      ...newReadStats().skipped, // every other reason 0
      escape: 3,
      link: 1,
      corruptImage: 2,
      unsupportedImage: 1,
      missingImage: 1,
      missingCaption: 1,
      corruptJson: 1,
      truncated: 1,
      corruptTar: 1,
    });
    assert.equal(stats.read, 3);
    assert.equal(stats.shards, 3);
    // A missing shard file is counted too.
    const s2 = newReadStats();
    assert.equal((await collect(readShards([`${dir}/nope.tar`], { stats: s2 }))).length, 0);
    assert.equal(s2.skipped.unreadableShard, 1);
  });
});

Deno.test("isEscapingPath", () => {
  for (const p of ["../a", "/a", "a/../../b", "a/..", "C:/x", "\\x", "a\\..\\b"]) {
    assert.ok(isEscapingPath(p), p);
  }
  for (const p of ["a.png", "dir/a.png", "a..b.png", "..a.png"]) assert.ok(!isEscapingPath(p), p);
});

Deno.test("build, reuse, rank sharding, shuffle, resume and aesthetic filter", async () => {
  await withTempDir("xgen_data_webdataset_", async (dir) => {
    const opts = { outDir: dir, seed: 4, count: 50, perShard: 10, size: 8 };
    const first = await buildShapesWorldShards(opts);
    assert.equal(first.skipped, false);
    assert.deepEqual(first.manifest.shards, [0, 1, 2, 3, 4].map((i) => `0000${i}.tar`));
    const tarBefore = await Deno.readFile(`${dir}/00002.tar`);
    const again = await buildShapesWorldShards(opts);
    assert.equal(again.skipped, true);
    // Rebuilding from scratch gives byte-identical shards (deterministic data, fixed mtime).
    await Deno.remove(`${dir}/dataset.json`);
    await Deno.remove(`${dir}/00002_stats.json`);
    assert.equal((await buildShapesWorldShards(opts)).skipped, false);
    assert.deepEqual(await Deno.readFile(`${dir}/00002.tar`), tarBefore);
    // A different config is not mistaken for the existing one.
    const other = await buildShapesWorldShards({ ...opts, seed: 5 });
    assert.equal(other.skipped, false);
    assert.notDeepEqual(await Deno.readFile(`${dir}/00002.tar`), tarBefore);
    await buildShapesWorldShards(opts);

    const paths = await listShards(dir);
    assert.equal(paths.length, 5);
    const all = await collect(readShards(dir));
    assert.deepEqual(all.map((s) => Number(s.key)), Array.from({ length: 50 }, (_, i) => i));
    assert.deepEqual(all[13].image, shapesWorldSample(13, { seed: 4, size: 8 }).image);

    // Ranks partition the shards: disjoint and together complete.
    const keys: string[][] = [];
    for (let r = 0; r < 3; r++) {
      const rank = await collect(readShards(dir, { rank: r, worldSize: 3 }));
      keys.push(rank.map((s) => s.key));
    }
    assert.deepEqual(keys.map((k) => k.length), [20, 20, 10]);
    assert.deepEqual(keys.flat().sort(), all.map((s) => s.key).sort());
    assert.deepEqual(shardOrder(paths, { rank: 1, worldSize: 3 }), [paths[1], paths[4]]);
    assert.throws(() => shardOrder(paths, { rank: 3, worldSize: 3 }), /rank must be an integer/);

    // Shuffle: a permutation of shards, reproducible from the same generator state.
    const order = shardOrder(paths, { rng: Rng.stream(7, [1]) });
    assert.deepEqual(order, shardOrder(paths, { rng: Rng.stream(7, [1]) }));
    assert.notDeepEqual(order, paths);
    assert.deepEqual([...order].sort(), paths);
    const shuffled = await collect(readShards(dir, { rng: Rng.stream(7, [1]) }));
    assert.deepEqual(
      shuffled.map((s) => s.shardPath).filter((p, i, a) => a.indexOf(p) === i),
      order,
    );

    // Resume: stop after sample 23, restart from its position, get exactly the rest.
    const cut = shuffled[23].position;
    const rest = await collect(readShards(dir, { rng: Rng.stream(7, [1]), start: cut }));
    assert.deepEqual(rest.map((s) => s.key), shuffled.slice(24).map((s) => s.key));
    // Resuming at the end of a shard continues with the next one.
    const end = shuffled[29].position;
    assert.equal(end.index, 10);
    const rest2 = await collect(readShards(dir, { rng: Rng.stream(7, [1]), start: end }));
    assert.deepEqual(rest2.map((s) => s.key), shuffled.slice(30).map((s) => s.key));
    // Breaking out early releases the reader cleanly.
    for await (const _ of readShards(dir)) break;

    // Aesthetic filter: counts add up, and the kept set matches the scores.
    const stats = newReadStats();
    const kept = await collect(readShards(dir, { minAesthetic: 4.5, stats }));
    const want = all.filter((s) => (s.json?.aesthetic as number) >= 4.5);
    assert.deepEqual(kept.map((s) => s.key), want.map((s) => s.key));
    assert.equal(stats.skipped.aesthetic, 50 - want.length);
    assert.ok(want.length > 10 && want.length < 50);
    assert.equal(stats.read + stats.skipped.aesthetic, stats.records);
  });
});

Deno.test("a shard larger than the read buffer streams through with backpressure", async () => {
  await withTempDir("xgen_data_webdataset_", async (dir) => {
    const { manifest } = await buildShapesWorldShards({
      outDir: dir,
      seed: 2,
      count: 300,
      perShard: 300,
      size: 32,
    });
    const size = (await Deno.stat(`${dir}/${manifest.shards[0]}`)).size;
    assert.ok(size > 4 * 65536, `shard is only ${size} bytes`);
    let n = 0;
    for await (const s of readShards(dir)) {
      assert.equal(s.key, n.toString().padStart(9, "0"));
      if (n % 97 === 0) assert.deepEqual(s.image, shapesWorldSample(n, { seed: 2 }).image);
      n++;
      // A slow consumer still sees every sample, in order.
      if (n % 50 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(n, 300);
  });
});

Deno.test("JPEG samples (img2dataset's LAION format) are decoded like PNG ones", async () => {
  await withTempDir("xgen_data_webdataset_", async (dir) => {
    // A smooth picture survives JPEG at quality 95 within a few levels per channel.
    const w = 16, h = 8, rgba = new Uint8Array(w * h * 4), rgb = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const px = [x * 12, y * 24, 128];
        rgba.set([...px, 255], (y * w + x) * 4);
        rgb.set(px, (y * w + x) * 3);
      }
    }
    const jpg = new Uint8Array(encodeJpeg({ data: rgba, width: w, height: h }, 95).data);
    await Deno.writeFile(
      `${dir}/00000.tar`,
      await makeTar([["p.jpg", jpg], ["p.txt", "a gradient"], ["q.jpeg", jpg], ["q.txt", "again"]]),
    );
    const stats = newReadStats();
    const got = await collect(readShards(dir, { stats }));
    assert.deepEqual(got.map((s) => [s.key, s.width, s.height]), [["p", 16, 8], ["q", 16, 8]]);
    assert.deepEqual(got[0].image, got[1].image);
    const maxDiff = got[0].image.reduce((m, v, i) => Math.max(m, Math.abs(v - rgb[i])), 0);
    assert.ok(maxDiff <= 6, `JPEG round trip within 6 levels, got ${maxDiff}`);
    assert.equal(stats.read, 2);
    assert.equal(stats.skipped.corruptImage, 0);
  });
});

Deno.test("a garbage parquet sidecar is counted with its file name; scores come from the json", async () => {
  await withTempDir("xgen_data_webdataset_", async (dir) => {
    const samples = Array.from(
      { length: 12 },
      (_, i) => shapesWorldSample(i, { seed: 6, size: 8 }),
    );
    const good = await writeShard({ outDir: dir, index: 0, samples: samples.slice(0, 6) });
    const bad = await writeShard({ outDir: dir, index: 1, samples: samples.slice(6) });
    await Deno.writeFile(bad.parquet, new TextEncoder().encode("not a parquet file at all"));
    const want = samples.filter((s) => s.meta.aesthetic >= 4.5).map((s) => s.key);
    assert.ok(want.length > 2 && want.length < 12, `${want.length} samples kept`);
    const stats = newReadStats();
    const got = await collect(readShards(dir, { minAesthetic: 4.5, stats }));
    // The shard still loads: its scores come from each sample's key.json.
    assert.deepEqual(got.map((s) => s.key), want);
    assert.equal(stats.read, want.length);
    assert.equal(stats.skipped.aesthetic, 12 - want.length);
    assert.equal(stats.skipped.corruptParquet, 1);
    assert.equal(stats.corruptFiles.length, 1);
    assert.equal(stats.corruptFiles[0].path, bad.parquet);
    assert.match(stats.corruptFiles[0].reason, /cannot read parquet/);
    // The summary line names it.
    assert.match(
      formatReadStats(stats),
      new RegExp(
        `^${want.length} of 12 records read from 2 shards; skipped: aesthetic ${
          12 - want.length
        }, corruptParquet 1 \\(${bad.parquet.replace(/[/.]/g, "\\$&")}: cannot read parquet`,
      ),
    );
    // A missing sidecar is not corrupt (img2dataset may omit it): not counted.
    await Deno.remove(good.parquet);
    const s2 = newReadStats();
    await collect(readShards([good.tar], { minAesthetic: 4.5, stats: s2 }));
    assert.equal(s2.skipped.corruptParquet, 0);
    assert.deepEqual(s2.corruptFiles, []);
    // Resuming inside the bad shard does not count its sidecar again (the first run did).
    const s3 = newReadStats();
    await collect(
      readShards([bad.tar], { minAesthetic: 4.5, stats: s3, start: { shard: 0, index: 2 } }),
    );
    assert.equal(s3.skipped.corruptParquet, 0);
  });
});
