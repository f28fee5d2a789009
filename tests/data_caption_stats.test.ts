import assert from "node:assert/strict";
import { writeShard } from "../lib/data/webdataset.ts";
import { shapesWorldSample } from "../lib/data/shapes_world.ts";
import {
  captionSummary,
  datasetCaptionStats,
  gammaP,
  normalQuantile,
  poissonInterval,
  rankFrequency,
  wilsonInterval,
} from "../lib/data/caption_stats.ts";
import { GcsStore } from "../lib/storage/gcs_store.ts";
import { assertClose } from "./helpers/assert_close.ts";
import { cli } from "./helpers/cli.ts";
import { startGcsEmulator } from "./helpers/gcs_emulator.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

/**
 * 40 captions in 2 shards. "dragon" is in captions 0, 7 and 22 (5 times: 7 repeats it thrice),
 * "astronaut" in 31, and 17 has "dragon's" (another token). Aesthetic 5 where i % 10 < 6, else 4.
 * Tokens: 35 x "a photo of a cat" (5) + 7 + 4 + 3 + 2 + 5 = 196.
 */
const SPECIAL: Record<number, string> = {
  0: "A red Dragon flying over a castle",
  7: "dragon dragon DRAGON statue",
  17: "the dragon's egg",
  22: "Dragon, green.",
  31: "An astronaut riding a horse",
};

async function writeKnownShards(dir: string): Promise<void> {
  for (let s = 0; s < 2; s++) {
    const samples = [];
    for (let i = 20 * s; i < 20 * s + 20; i++) {
      const base = shapesWorldSample(i, { seed: 0, size: 8 });
      samples.push({
        ...base,
        caption: SPECIAL[i] ?? "a photo of a cat",
        meta: { aesthetic: i % 10 < 6 ? 5 : 4 },
      });
    }
    await writeShard({ outDir: dir, index: s, samples });
  }
}

/** scipy 1.x: Wilson from norm.ppf(0.975); Poisson from chi2.ppf(0.025, 2k)/2, chi2.ppf(0.975, 2k+2)/2. */
const REF = {
  "3/40": {
    wilson: [25836.025774588197, 198642.33524310542],
    poisson: [15466.803072390034, 219181.8267435581],
  },
  "1/40": {
    wilson: [4426.83150268141, 128813.6896347409],
    poisson: [632.9451996072469, 139291.08477347245],
  },
  "0/40": { wilson: [0, 87621.60119728665], poisson: [0, 92221.98635284838] },
  "2/24": {
    wilson: [23158.81529704332, 258488.02193210679],
    poisson: [10092.053272665207, 301028.6528218317],
  },
  "1/24": {
    wilson: [7393.456165505782, 202418.06478655938],
    poisson: [1054.9086660120781, 232151.8079557874],
  },
  "411/1e6": {
    wilson: [373.1464425065951, 452.6918438903294],
    poisson: [372.22085089670304, 452.72144357758236],
  },
  "86/1e6": {
    wilson: [69.64407687686688, 106.19670645869907],
    poisson: [68.78889924416998, 106.20930038194719],
  },
};

function closePair(got: [number, number], want: number[], what: string): void {
  // Relative 1e-9 per end (scipy's chi2.ppf is itself accurate to ~1e-12); 0 must be exact.
  assertClose(got, want, 1e-9, what, { scale: "each", minScale: 1e-300 });
}

Deno.test("intervals match scipy; the study's own counts at 1M captions", () => {
  assertClose(normalQuantile(0.975), 1.959963984540054, 1e-13, "z");
  assertClose(gammaP(3, 2.5), 0.45618688411667035, 1e-12, "P(3, 2.5)"); // scipy gammainc
  for (const [k, n, key] of [[411, 1e6, "411/1e6"], [86, 1e6, "86/1e6"]] as const) {
    const w = wilsonInterval(k, n);
    const p = poissonInterval(k);
    closePair([w[0] * 1e6, w[1] * 1e6], REF[key].wilson, `wilson ${key}`);
    closePair([p[0] * 1e6 / n, p[1] * 1e6 / n], REF[key].poisson, `poisson ${key}`);
  }
  assert.throws(() => wilsonInterval(5, 3), /0 <= k <= n/);
});

Deno.test("caption statistics of a generated shard set: exact counts, per million, intervals", async () => {
  await withTempDir("xgen_caption_stats_", async (dir) => {
    await writeKnownShards(dir);
    const all = await datasetCaptionStats(dir);
    const s = captionSummary(all, { source: dir, words: ["dragon", "astronaut", "unicorn"] });
    assert.deepEqual([s.records, s.considered, s.captions, s.tokens], [40, 40, 40, 196]);
    assert.equal(s.vocabulary, 18);
    const [dragon, astronaut, unicorn] = s.words;
    assert.deepEqual(
      [dragon.captions, dragon.occurrences, dragon.perMillion, dragon.rank],
      [3, 5, 75000, 5], // a (37), cat, of, photo (35 each), then dragon
    );
    assert.deepEqual([astronaut.captions, astronaut.perMillion, astronaut.rank], [1, 25000, 7]);
    assert.deepEqual([unicorn.captions, unicorn.perMillion, unicorn.rank], [0, 0, null]);
    closePair(dragon.wilson, REF["3/40"].wilson, "dragon wilson");
    closePair(dragon.poisson, REF["3/40"].poisson, "dragon poisson");
    closePair(astronaut.wilson, REF["1/40"].wilson, "astronaut wilson");
    closePair(astronaut.poisson, REF["1/40"].poisson, "astronaut poisson");
    closePair(unicorn.wilson, REF["0/40"].wilson, "unicorn wilson");
    closePair(unicorn.poisson, REF["0/40"].poisson, "unicorn poisson");
    assert.deepEqual(s.top.slice(0, 5).map((w) => [w.word, w.captions]), [
      ["a", 37],
      ["cat", 35],
      ["of", 35],
      ["photo", 35],
      ["dragon", 3],
    ]);
    const rf = rankFrequency(all.stats);
    assert.equal(rf.rank.length, 18);
    assert.deepEqual(rf.captions.slice(0, 5), [37, 35, 35, 35, 3]);

    // The study's filter: 24 of 40 kept (i % 10 < 6); 7 and 17 are dropped with it.
    const kept = await datasetCaptionStats(dir, { filter: { minAesthetic: 4.5 } });
    const k = captionSummary(kept, { source: dir, words: ["dragon", "astronaut"] });
    assert.deepEqual([k.considered, k.captions, k.filter.kept, k.filter.share], [40, 24, 24, 0.6]);
    assert.deepEqual(k.filter.each, [
      { field: "aesthetic", rule: "aesthetic >= 4.5", kept: 24, missing: 0, share: 0.6 },
    ]);
    assert.equal(k.filter.rule, "aesthetic >= 4.5");
    assert.deepEqual(k.skipped, { aesthetic: 16 });
    assert.equal(k.tokens, 196 - 14 * 5 - 4 - 3); // 7 and 17 are two of the 16 dropped
    assertClose(k.words[0].perMillion, 2 / 24 * 1e6, 1e-15, "dragon per 1M");
    assertClose(k.words[1].perMillion, 1 / 24 * 1e6, 1e-15, "astronaut per 1M");
    closePair(k.words[0].wilson, REF["2/24"].wilson, "kept dragon wilson");
    closePair(k.words[0].poisson, REF["2/24"].poisson, "kept dragon poisson");
    closePair(k.words[1].wilson, REF["1/24"].wilson, "kept astronaut wilson");
    closePair(k.words[1].poisson, REF["1/24"].poisson, "kept astronaut poisson");

    // --max-records: a prefix of the stream.
    const head = await datasetCaptionStats(dir, { maxRecords: 10 });
    assert.deepEqual([head.considered, head.stats.captions, head.truncated], [10, 10, true]);
  });
});

Deno.test("deno task data-stats runs end to end and writes its files", async () => {
  await withTempDir("xgen_caption_stats_cli_", async (tmp) => {
    const data = `${tmp}/data`, out = `${tmp}/out`;
    await writeKnownShards(data);
    const r = await cli([
      "lib/cli/data_stats.ts",
      "--data",
      data,
      "--out",
      out,
      "--min-aesthetic",
      "4.5",
      "--top",
      "3",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^40 records \(40 with caption and image\), 24 captions/);
    assert.match(r.stdout, /aesthetic >= 4\.5: keeps 24 of 40 \(60\.0%\)/);
    assert.match(r.stdout, /"dragon": 83333 per 1M captions \(2 captions; 95% Wilson 23159-258488/);
    const names = [];
    for await (const e of Deno.readDir(out)) names.push(e.name);
    assert.deepEqual(names.sort(), [
      "caption_stats.json",
      "rank_frequency.html",
      "rank_frequency.json",
      "rank_frequency.svg",
    ]);
    const summary = JSON.parse(await Deno.readTextFile(`${out}/caption_stats.json`));
    assert.equal(summary.captions, 24);
    assert.equal(summary.top.length, 3);
    assert.deepEqual(summary.words.map((w: { word: string }) => w.word), ["dragon", "astronaut"]);
    assert.match(summary.definitions.perMillion, /document frequency/);
    const fig = JSON.parse(await Deno.readTextFile(`${out}/rank_frequency.json`));
    assert.equal(fig.layout.xaxis.type, "log");
    assert.equal(fig.layout.yaxis.type, "log");
    assert.deepEqual(fig.data[1].text, ["dragon", "astronaut"]);
    assert.ok((await Deno.readTextFile(`${out}/rank_frequency.svg`)).startsWith("<svg"));
    assert.ok((await Deno.readTextFile(`${out}/rank_frequency.html`)).includes("<html"));

    // A filter on a column the shards lack: one line, naming the shard and the column.
    const bad = await cli([
      "lib/cli/data_stats.ts",
      "--data",
      data,
      "--out",
      out,
      "--max-punsafe",
      "0.5",
    ]);
    assert.equal(bad.code, 1);
    assert.equal(
      bad.stderr.trim(),
      `error: ${data}/00000.parquet: no column "punsafe", which maxPunsafe needs; drop that ` +
        "filter or add the column (img2dataset --save_additional_columns)",
    );
    const words = await cli(["lib/cli/data_stats.ts", "--data", data, "--words", "red dragon"]);
    assert.equal(words.code, 2);
    assert.match(words.stderr, /--words: "red dragon" is not one word token/);
  });
});

Deno.test({
  name: "data-stats over gs:// (Cloud Storage emulator) equals the local folder's",
  fn: async () => {
    const emu = await startGcsEmulator();
    try {
      await withTempDir("xgen_caption_stats_gcs_", async (dir) => {
        await writeKnownShards(dir);
        const url = "gs://xgen-caption-stats/laion";
        const store = new GcsStore(url, { apiEndpoint: emu.endpoint });
        for await (const e of Deno.readDir(dir)) {
          await store.put(e.name, await Deno.readFile(`${dir}/${e.name}`));
        }
        const opts = { filter: { minAesthetic: 4.5 } };
        const local = captionSummary(await datasetCaptionStats(dir, opts), {
          source: "x",
          words: ["dragon"],
        });
        const remote = captionSummary(
          await datasetCaptionStats(url, { ...opts, gcs: { apiEndpoint: emu.endpoint } }),
          { source: "x", words: ["dragon"] },
        );
        assert.deepEqual(remote, local);
        assert.equal(remote.captions, 24);
      });
    } finally {
      await emu.stop();
    }
  },
});
