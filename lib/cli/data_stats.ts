/**
 * `deno task data-stats`: caption statistics of img2dataset webdataset shards (a folder or a
 * `gs://bucket/prefix`; `STORAGE_EMULATOR_HOST` points gs:// at an emulator): records, captions,
 * tokens, chosen words per 1M captions with 95% intervals, the rank-frequency (long-tail) plot,
 * and with the LAION filter flags how many records each filter keeps. Images are never decoded.
 *
 * Writes into `--out`: `caption_stats.json` (the summary; definitions inside),
 * `rank_frequency.html` (interactive Plotly), `rank_frequency.json` (the figure) and
 * `rank_frequency.svg` (static).
 *
 * @example
 * ```sh
 * deno task data-stats --data laion/ --words dragon,astronaut --out runs/laion_stats
 * deno task data-stats --data gs://bucket/laion --min-aesthetic 4.5 --max-records 1000000
 * ```
 * @module
 */
import { type FlagSpec, helpText, parseFlags, runMain, UsageError } from "./args.ts";
import { outputFolder } from "./path_checks.ts";
import { DATA_FILTER_FLAGS, dataFilterFromFlags } from "./data_filter_flags.ts";
import { captionSummary, datasetCaptionStats, rankFrequencyFigure } from "../data/caption_stats.ts";
import { describeFilter, tokenize } from "../data/mod.ts";
import { plotlySvg, writePlotlyHtml } from "../plot/mod.ts";
import { writeJsonAtomic, writeTextAtomic } from "../util/atomic.ts";

const SPEC = {
  data: {
    type: "string",
    required: true,
    help: "webdataset shards: a folder or gs://bucket/prefix of NNNNN.tar (+ .parquet)",
  },
  words: {
    type: "string",
    default: "dragon,astronaut",
    help: "comma-separated words to report per 1M captions with intervals",
  },
  out: {
    type: "string",
    default: "runs/data_stats",
    check: outputFolder,
    help: "folder for caption_stats.json and the rank_frequency plot files",
  },
  top: { type: "int", min: 0, max: 100000, default: 50, help: "most frequent words listed" },
  "max-records": {
    type: "int",
    min: 1,
    max: 1e12,
    help: "stop after this many records (a sample of a huge dataset)",
  },
  level: {
    type: "float",
    min: 0,
    minExclusive: true,
    max: 0.9999,
    default: 0.95,
    help: "confidence level of the intervals",
  },
  ...DATA_FILTER_FLAGS,
} satisfies FlagSpec;

/** Each comma-separated word, as one token (what the counts are of). */
function parseWords(text: string): string[] {
  const words = text.split(",").map((w) => w.trim()).filter(Boolean);
  for (const w of words) {
    const t = tokenize(w);
    if (t.length !== 1 || t[0] !== w.toLowerCase()) {
      throw new UsageError(
        `--words: "${w}" is not one word token (letters, digits, apostrophes); got ${
          JSON.stringify(t)
        }`,
      );
    }
  }
  return words.map((w) => w.toLowerCase());
}

function fmt(x: number): string {
  return x >= 100 ? x.toFixed(0) : x >= 1 ? x.toFixed(2) : x.toPrecision(3);
}

if (import.meta.main) {
  await runMain(async () => {
    const f = parseFlags(Deno.args, SPEC, "data-stats");
    if (f.help) {
      console.log(
        helpText("deno task data-stats", "caption statistics of webdataset shards", SPEC),
      );
      return;
    }
    const words = parseWords(f.words);
    const filter = dataFilterFromFlags(f);
    const r = await datasetCaptionStats(f.data, {
      filter,
      maxRecords: f["max-records"],
      progress: true,
    });
    const summary = captionSummary(r, { source: f.data, words, top: f.top, level: f.level });
    const fig = rankFrequencyFigure(r.stats, { words });
    await Deno.mkdir(f.out, { recursive: true });
    await writeJsonAtomic(`${f.out}/caption_stats.json`, summary);
    await writeJsonAtomic(`${f.out}/rank_frequency.json`, fig);
    await writePlotlyHtml(`${f.out}/rank_frequency.html`, fig, { title: "Caption rank-frequency" });
    await writeTextAtomic(`${f.out}/rank_frequency.svg`, plotlySvg(fig));

    const pct = `${Math.round(f.level * 100)}%`;
    console.log(
      `${summary.records} records (${summary.considered} with caption and image), ` +
        `${summary.captions} captions, ${summary.tokens} tokens, ${summary.vocabulary} words` +
        (summary.truncated ? ` (stopped at --max-records ${f["max-records"]})` : ""),
    );
    if (summary.filter.each.length) {
      for (const k of summary.filter.each) {
        console.log(
          `  ${k.rule}: keeps ${k.kept} of ${summary.considered} ` +
            `(${(100 * k.share).toFixed(1)}%)` + (k.missing ? `; ${k.missing} without it` : ""),
        );
      }
      console.log(
        `  all (${describeFilter(filter)}): keeps ${summary.filter.kept} ` +
          `(${(100 * summary.filter.share).toFixed(1)}%)`,
      );
    }
    for (const w of summary.words) {
      console.log(
        `  "${w.word}": ${fmt(w.perMillion)} per 1M captions (${w.captions} captions; ` +
          `${pct} Wilson ${fmt(w.wilson[0])}-${fmt(w.wilson[1])}, ` +
          `Poisson ${fmt(w.poisson[0])}-${fmt(w.poisson[1])})` +
          (w.rank ? `, rank ${w.rank}` : ""),
      );
    }
    console.log(`wrote ${f.out}/caption_stats.json, rank_frequency.{html,json,svg}`);
  });
}
