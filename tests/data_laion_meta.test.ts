import assert from "node:assert/strict";
import { parquetWriteBuffer } from "hyparquet-writer";
import { encodePngRgb } from "../lib/data/png.ts";
import {
  newReadStats,
  readShardParquet,
  readShards,
  type ShardSample,
  writeShard,
} from "../lib/data/webdataset.ts";
import type { DataFilter } from "../lib/data/laion_meta.ts";
import { shapesWorldSample } from "../lib/data/shapes_world.ts";
import { makeTar } from "./helpers/tar.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

/** One LAION record's metadata, as the test's generator gives it (null: no value). */
interface Rec {
  key: string;
  caption: string;
  aesthetic: number | null;
  punsafe: number | null;
  pwatermark: number;
  similarity: number;
  ow: number;
  oh: number;
}

/** 20 records with values on a grid; 7 has no punsafe (NaN in LAION), 13 no aesthetic. */
function records(shard: number): Rec[] {
  return Array.from({ length: 20 }, (_, i) => ({
    key: `${shard}${String(i).padStart(8, "0")}`,
    caption: `record ${i}`,
    aesthetic: i === 13 ? null : 3 + 0.25 * i,
    punsafe: i === 7 ? null : (i % 5) / 5,
    pwatermark: (i % 4) / 4,
    similarity: 0.2 + 0.01 * i,
    ow: 128 * (1 + (i % 3)),
    oh: 256,
  }));
}

type Spelling = "img2dataset" | "laion";

/**
 * A shard laid out as img2dataset writes it: `key.jpg`-like image (PNG here), `key.txt`,
 * `key.json` and the parquet sidecar, with LAION's columns in one of the two spellings:
 * `aesthetic` + `original_width/height`, or `AESTHETIC_SCORE` + `WIDTH/HEIGHT` (INT64).
 * `drop` leaves columns out of both the parquet and the json.
 */
async function writeLaionShard(
  dir: string,
  index: number,
  spelling: Spelling,
  opts: { drop?: string[]; parquet?: boolean } = {},
): Promise<Rec[]> {
  const recs = records(index);
  const png = encodePngRgb(shapesWorldSample(0, { seed: 1, size: 8 }).image, 8, 8);
  const aes = spelling === "laion" ? "AESTHETIC_SCORE" : "aesthetic";
  const [wc, hc] = spelling === "laion"
    ? ["WIDTH", "HEIGHT"]
    : ["original_width", "original_height"];
  const drop = new Set(opts.drop ?? []);
  const row = (r: Rec): Record<string, unknown> => {
    const o: Record<string, unknown> = {
      key: r.key,
      caption: r.caption,
      url: `https://example.com/${r.key}.jpg`,
      status: "success",
      exif: null,
      width: 8,
      height: 8,
      [aes]: r.aesthetic,
      punsafe: r.punsafe ?? NaN,
      pwatermark: r.pwatermark,
      similarity: r.similarity,
      [wc]: r.ow,
      [hc]: r.oh,
    };
    for (const d of drop) delete o[d];
    return o;
  };
  const entries: [string, Uint8Array | string][] = [];
  for (const r of recs) {
    entries.push([`${r.key}.png`, png], [`${r.key}.txt`, r.caption]);
    entries.push([`${r.key}.json`, JSON.stringify(row(r), (_, v) => Number.isNaN(v) ? null : v)]);
  }
  const stem = String(index).padStart(5, "0");
  await Deno.writeFile(`${dir}/${stem}.tar`, await makeTar(entries));
  if (opts.parquet === false) return recs;
  const rows = recs.map(row);
  const cols = Object.keys(rows[0]);
  const columnData = cols.map((name) => {
    const vals = rows.map((r) => r[name]);
    if (name === wc || name === hc) {
      return spelling === "laion"
        ? { name, data: BigInt64Array.from(vals.map((v) => BigInt(v as number))), type: "INT64" }
        : { name, data: Int32Array.from(vals as number[]), type: "INT32" };
    }
    if (name === "width" || name === "height") {
      return { name, data: Int32Array.from(vals as number[]), type: "INT32" };
    }
    return typeof vals[0] === "number"
      ? { name, data: vals as number[], type: "DOUBLE" }
      : { name, data: vals as (string | null)[], type: "STRING" };
  });
  // deno-lint-ignore no-explicit-any
  const buf = parquetWriteBuffer({ columnData: columnData as any });
  await Deno.writeFile(`${dir}/${stem}.parquet`, new Uint8Array(buf));
  return recs;
}

async function collect(
  dir: string,
  filter: DataFilter,
  extra: { decode?: boolean } = {},
): Promise<{ got: ShardSample[]; stats: ReturnType<typeof newReadStats> }> {
  const stats = newReadStats();
  const got: ShardSample[] = [];
  for await (const s of readShards(dir, { stats, filter, ...extra })) got.push(s);
  return { got, stats };
}

/** The study's filter plus one of each kind, and the counts by first failing reason. */
const FILTER: DataFilter = {
  minAesthetic: 4.5,
  maxPunsafe: 0.5,
  maxPwatermark: 0.6,
  minSimilarity: 0.25,
  minSize: 256,
};

/**
 * Worked by hand over i = 0..19 in the order aesthetic, punsafe, pwatermark, similarity, size:
 * aesthetic = 3 + i/4 < 4.5 for i <= 5 (6 records); i = 13 has none (missingAesthetic).
 * Of i in 6..19 minus 13: i = 7 has no punsafe; punsafe (i % 5) / 5 > 0.5 for i % 5 in {3, 4}:
 * 8, 9, 14, 18, 19 (5). Left 6, 10, 11, 12, 15, 16, 17: pwatermark (i % 4) / 4 > 0.6 for
 * i % 4 == 3: 11, 15 (2). Left 6, 10, 12, 16, 17: similarity >= 0.25 for all. Original width
 * 128 * (1 + i % 3) < 256 for i % 3 == 0: 6, 12 (2). Kept: 10, 16, 17.
 */
const WANT = {
  kept: [10, 16, 17],
  counts: {
    aesthetic: 6,
    missingAesthetic: 1,
    punsafe: 5,
    missingPunsafe: 1,
    pwatermark: 2,
    missingPwatermark: 0,
    similarity: 0,
    missingSimilarity: 0,
    size: 2,
    missingSize: 0,
  },
};

function filterCounts(stats: ReturnType<typeof newReadStats>) {
  const s = stats.skipped;
  return {
    aesthetic: s.aesthetic,
    missingAesthetic: s.missingAesthetic,
    punsafe: s.punsafe,
    missingPunsafe: s.missingPunsafe,
    pwatermark: s.pwatermark,
    missingPwatermark: s.missingPwatermark,
    similarity: s.similarity,
    missingSimilarity: s.missingSimilarity,
    size: s.size,
    missingSize: s.missingSize,
  };
}

for (const spelling of ["img2dataset", "laion"] as const) {
  Deno.test(`filters on ${spelling}-spelled columns: exact counts per reason`, async () => {
    await withTempDir("xgen_laion_meta_", async (dir) => {
      const recs = await writeLaionShard(dir, 0, spelling);
      const { got, stats } = await collect(dir, FILTER);
      assert.deepEqual(got.map((s) => s.key), WANT.kept.map((i) => recs[i].key));
      assert.deepEqual(filterCounts(stats), WANT.counts);
      // Filtered records are not corrupt ones.
      assert.equal(stats.skipped.corruptImage + stats.skipped.corruptJson, 0);
      assert.equal(stats.read, 3);
      assert.equal(stats.records, 20);
      const m = got[0].meta;
      assert.equal(m.aesthetic, 3 + 0.25 * 10);
      assert.equal(m.originalWidth, 256);
      assert.equal(typeof m.originalWidth, "number"); // INT64 (bigint) read as a number
      assert.equal(m.url, `https://example.com/${recs[10].key}.jpg`);
      assert.equal(m.exif, null);
      assert.equal(m.width, 8);

      // One threshold at a time, against a count made here from the generator's values.
      const one: [DataFilter, (r: Rec) => boolean][] = [
        [{ minAesthetic: 4.5 }, (r) => r.aesthetic !== null && r.aesthetic >= 4.5],
        [{ maxPunsafe: 0.5 }, (r) => r.punsafe !== null && r.punsafe <= 0.5],
        [{ minSize: 256 }, (r) => Math.min(r.ow, r.oh) >= 256],
        [{ minSimilarity: 0.3 }, (r) => r.similarity >= 0.3],
      ];
      for (const [f, keep] of one) {
        const r = await collect(dir, f, { decode: false });
        assert.deepEqual(r.got.map((s) => s.key), recs.filter(keep).map((x) => x.key));
        assert.equal(r.got[0].image.length, 0); // not decoded
      }
    });
  });
}

Deno.test("the parquet sidecar is what is read when it exists (json without values)", async () => {
  await withTempDir("xgen_laion_meta_", async (dir) => {
    const recs = await writeLaionShard(dir, 0, "laion");
    const png = encodePngRgb(shapesWorldSample(0, { seed: 1, size: 8 }).image, 8, 8);
    const entries: [string, Uint8Array | string][] = recs.flatMap((r) =>
      [
        [`${r.key}.png`, png],
        [`${r.key}.txt`, r.caption],
        [`${r.key}.json`, "{}"],
      ] as [string, Uint8Array | string][]
    );
    await Deno.writeFile(`${dir}/00000.tar`, await makeTar(entries));
    const { got, stats } = await collect(dir, FILTER);
    assert.deepEqual(got.map((s) => s.key), WANT.kept.map((i) => recs[i].key));
    assert.deepEqual(filterCounts(stats), WANT.counts);
  });
});

Deno.test("without a parquet sidecar each record's json is read, with the same result", async () => {
  await withTempDir("xgen_laion_meta_", async (dir) => {
    const recs = await writeLaionShard(dir, 0, "laion", { parquet: false });
    const { got, stats } = await collect(dir, FILTER);
    assert.deepEqual(got.map((s) => s.key), WANT.kept.map((i) => recs[i].key));
    assert.deepEqual(filterCounts(stats), WANT.counts);
    assert.equal(got[0].meta.originalWidth, 256);
  });
});

Deno.test("a filter on an absent column is a one-line error naming the shard and column", async () => {
  await withTempDir("xgen_laion_meta_", async (dir) => {
    await writeLaionShard(dir, 0, "img2dataset", { drop: ["punsafe"] });
    // Filters that do not need the column work.
    const ok = await collect(dir, { minAesthetic: 4.5 });
    assert.equal(ok.got.length, 20 - 6 - 1);
    await assert.rejects(
      () => collect(dir, { minAesthetic: 4.5, maxPunsafe: 0.5 }),
      (e: Error) => {
        assert.equal(
          e.message,
          `${dir}/00000.parquet: no column "punsafe", which maxPunsafe needs; drop that ` +
            "filter or add the column (img2dataset --save_additional_columns)",
        );
        return true;
      },
    );
    // Both spellings of the original size missing.
    await Deno.remove(dir, { recursive: true });
    await Deno.mkdir(dir);
    await writeLaionShard(dir, 0, "laion", { drop: ["WIDTH"], parquet: false });
    await assert.rejects(
      () => collect(dir, { minSize: 64 }),
      new RegExp(
        `${dir.replace(/[.]/g, "\\.")}/00000\\.tar:000000000\\.json: no column ` +
          '"original_width" or "WIDTH", which minSize needs',
      ),
    );
  });
});

Deno.test("the kit's shards carry img2dataset's url and exif columns", async () => {
  await withTempDir("xgen_laion_meta_", async (dir) => {
    const a = shapesWorldSample(0, { seed: 1, size: 8 });
    const b = { ...shapesWorldSample(1, { seed: 1, size: 8 }), url: "https://x.org/b.png" };
    const info = await writeShard({ outDir: dir, index: 0, samples: [a, b] });
    const rows = await readShardParquet(info.parquet);
    assert.deepEqual(rows.map((r) => [r.url, r.exif]), [[null, null], [
      "https://x.org/b.png",
      null,
    ]]);
    const got: ShardSample[] = [];
    for await (const s of readShards(dir, { metadata: true })) got.push(s);
    assert.deepEqual(got.map((s) => s.meta.url), [null, "https://x.org/b.png"]);
    assert.deepEqual(got.map((s) => s.json?.url), [null, "https://x.org/b.png"]);
    assert.equal(got[0].meta.aesthetic, a.meta.aesthetic);
    assert.equal(got[0].meta.originalWidth, 8);
  });
});
