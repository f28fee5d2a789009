/**
 * Caption statistics of webdataset shards, as the study reports them: word frequencies per one
 * million captions ("dragon" 411 and "astronaut" 86 times per 1M LAION captions), with 95%
 * intervals, the rank-frequency (long-tail) curve, and how many records each metadata filter
 * keeps (the study: about 42% of LAION-2B at aesthetic >= 4.5).
 *
 * Definitions, so numbers can be compared:
 * - **token**: `tokenize` of `captions.ts`: the caption lower-cased, split into maximal runs of
 *   Unicode letters, digits and apostrophes, quotes trimmed from both ends ("Dragon's" ->
 *   "dragon's", "fire-breath" -> "fire", "breath"). No stemming, no stop words.
 * - **per million**: captions that contain the word at least once, per 1M captions (document
 *   frequency). "Appears N times per 1M captions" reads most naturally as that, and it cannot be
 *   inflated by one caption repeating a word (SEO-style LAION alt texts do); raw occurrences are
 *   reported next to it.
 * - **interval**: the count k of captions containing the word out of n is binomial, so the main
 *   interval is Wilson's score interval for k/n; the exact Poisson (Garwood) interval for k is
 *   given too (what a rare-event count alone supports; a bit wider). Both times 1e6 / n.
 * - **rank**: words sorted by that caption count, most frequent first, ties alphabetical.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { captionStats } from "./captions.ts";
 * import { wordFrequency } from "./caption_stats.ts";
 *
 * const st = await captionStats(["a red dragon", "an astronaut", "a dragon dragon", "a cat"]);
 * const f = wordFrequency(st, "dragon");
 * assert.deepEqual([f.captions, f.occurrences, f.perMillion, f.rank], [2, 3, 500000, 2]);
 * assert.ok(f.wilson[0] < 500000 && 500000 < f.wilson[1]);
 * ```
 * @module
 */
import type { PlotlyFigure } from "../plot/plotly_html.ts";
import { Progress } from "../util/progress.ts";
import { addCaption, type CaptionStats, newCaptionStats } from "./captions.ts";
import {
  type DataFilter,
  describeFilter,
  type FilterField,
  filterFields,
  normalizeFilter,
  passes,
} from "./laion_meta.ts";
import type { GcsStoreOptions } from "../storage/gcs_store.ts";
import { listShards, newReadStats, readShards, type ReadStats } from "./webdataset.ts";
import type { ShardSource } from "./shard_source.ts";

// ---------------------------------------------------------------------------------------------
// Special functions (float64): enough for exact Poisson intervals and normal quantiles.

/** ln Gamma(x) for x > 0 (Lanczos, g = 7, 9 terms: ~1e-15 relative). */
function lnGamma(x: number): number {
  const c = [
    0.99999999999980993,
    676.5203681218851,
    -1259.1392167224028,
    771.32342877765313,
    -176.61502916214059,
    12.507343278686905,
    -0.13857109526572012,
    9.9843695780195716e-6,
    1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - lnGamma(1 - x);
  x -= 1;
  let a = c[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/**
 * Regularised lower incomplete gamma P(a, x) (series below a + 1, continued fraction above).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gammaP } from "./caption_stats.ts";
 *
 * assert.ok(Math.abs(gammaP(1, 2) - (1 - Math.exp(-2))) < 1e-14); // exponential CDF
 * ```
 */
export function gammaP(a: number, x: number): number {
  if (!(a > 0) || !(x >= 0)) throw new Error(`gammaP: need a > 0 and x >= 0, got ${a}, ${x}`);
  if (x === 0) return 0;
  const lnPre = a * Math.log(x) - x - lnGamma(a);
  if (x < a + 1) {
    let term = 1 / a, sum = term;
    for (let n = 1; n < 100000; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-17) break;
    }
    return Math.min(1, sum * Math.exp(lnPre));
  }
  // Modified Lentz for the continued fraction of Q(a, x).
  const tiny = 1e-300;
  let b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d;
  for (let i = 1; i < 100000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-17) break;
  }
  return Math.max(0, 1 - Math.exp(lnPre) * h);
}

/** The x in [lo, hi] where increasing `f` crosses `target`, by bisection to float precision. */
function bisect(f: (x: number) => number, target: number, lo: number, hi: number): number {
  for (let i = 0; i < 2000; i++) {
    const mid = 0.5 * (lo + hi);
    if (mid <= lo || mid >= hi) break;
    if (f(mid) < target) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

/**
 * Standard normal quantile (inverse CDF), from Phi(z) = (1 + P(1/2, z^2 / 2)) / 2.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { normalQuantile } from "./caption_stats.ts";
 *
 * assert.ok(Math.abs(normalQuantile(0.975) - 1.959963984540054) < 1e-12);
 * ```
 */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new Error(`normalQuantile: p must be in (0, 1), got ${p}`);
  if (p === 0.5) return 0;
  const upper = p > 0.5;
  const q = upper ? p : 1 - p; // > 0.5
  // Phi(z) = (1 + P(1/2, z^2/2)) / 2 for z >= 0.
  const z = bisect((t) => 0.5 * (1 + gammaP(0.5, (t * t) / 2)), q, 0, 40);
  return upper ? z : -z;
}

function checkCounts(k: number, n: number, level: number, who: string): void {
  if (!Number.isInteger(k) || !Number.isInteger(n) || k < 0 || n <= 0 || k > n) {
    throw new Error(`${who}: need integers 0 <= k <= n, n > 0; got k ${k}, n ${n}`);
  }
  if (!(level > 0 && level < 1)) throw new Error(`${who}: level must be in (0, 1), got ${level}`);
}

/**
 * Wilson score interval for a binomial proportion k / n at `level` (default 0.95).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { wilsonInterval } from "./caption_stats.ts";
 *
 * const [lo, hi] = wilsonInterval(0, 10);
 * assert.equal(lo, 0);
 * assert.ok(Math.abs(hi - 0.27753279986288324) < 1e-12); // z^2 / (n + z^2)
 * ```
 */
export function wilsonInterval(k: number, n: number, level = 0.95): [number, number] {
  checkCounts(k, n, level, "wilsonInterval");
  const z = normalQuantile(1 - (1 - level) / 2), z2 = z * z;
  const p = k / n;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (z / denom) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

/**
 * Exact (Garwood) interval for the mean of a Poisson count k at `level` (default 0.95): the
 * lower end solves P(X >= k) = alpha / 2 (0 for k = 0), the upper P(X <= k) = alpha / 2.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { poissonInterval } from "./caption_stats.ts";
 *
 * const [lo, hi] = poissonInterval(0);
 * assert.equal(lo, 0);
 * assert.ok(Math.abs(hi - Math.log(40)) < 1e-12); // exp(-hi) = 0.025
 * ```
 */
export function poissonInterval(k: number, level = 0.95): [number, number] {
  if (!Number.isInteger(k) || k < 0) {
    throw new Error(`poissonInterval: k must be a non-negative integer, got ${k}`);
  }
  if (!(level > 0 && level < 1)) {
    throw new Error(`poissonInterval: level must be in (0, 1), got ${level}`);
  }
  const a = (1 - level) / 2;
  const top = k + 20 * Math.sqrt(k + 1) + 50;
  // P(X >= k; lam) = P(k, lam) and P(X <= k; lam) = 1 - P(k + 1, lam), both monotone in lam.
  const lo = k === 0 ? 0 : bisect((lam) => gammaP(k, lam), a, 0, top);
  const hi = bisect((lam) => gammaP(k + 1, lam), 1 - a, 0, top);
  return [lo, hi];
}

// ---------------------------------------------------------------------------------------------
// Word frequencies and the long tail.

/** A word's frequency in a caption collection; see the module docs for the definitions. */
export interface WordFrequency {
  word: string;
  /** Captions containing the word. */
  captions: number;
  /** Occurrences, repeats included. */
  occurrences: number;
  /** Captions containing the word per 1M captions. */
  perMillion: number;
  /** Wilson interval of `perMillion`. */
  wilson: [number, number];
  /** Exact Poisson interval of `perMillion`. */
  poisson: [number, number];
  /** 1-based rank by caption count (ties alphabetical); null when the word never occurs. */
  rank: number | null;
}

/** Words sorted by caption count, most frequent first, ties alphabetical. */
function rankedWords(st: CaptionStats): [string, number][] {
  return [...st.captionCounts.entries()].sort((a, b) =>
    b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)
  );
}

/** The 1-based rank of each word (in the order of {@link rankedWords}). */
function rankOf(ranked: [string, number][]): Map<string, number> {
  return new Map(ranked.map(([w], i) => [w, i + 1]));
}

/**
 * One word's frequency, intervals and rank (`level`: interval confidence, default 0.95). Pass
 * `ranks` (from a previous call's ranking) to avoid re-sorting the vocabulary per word.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { captionStats } from "./captions.ts";
 * import { wordFrequency } from "./caption_stats.ts";
 *
 * const f = wordFrequency(await captionStats(["dragon", "cat", "cat", "dog"]), "Dragon");
 * assert.deepEqual([f.word, f.captions, f.perMillion], ["dragon", 1, 250000]);
 * ```
 */
export function wordFrequency(
  st: CaptionStats,
  word: string,
  opts: { level?: number; ranks?: ReadonlyMap<string, number> } = {},
): WordFrequency {
  const w = word.toLowerCase();
  const k = st.captionCounts.get(w) ?? 0, n = st.captions;
  const scale = n > 0 ? 1e6 / n : 0;
  const level = opts.level ?? 0.95;
  const wilson = n > 0 ? wilsonInterval(k, n, level) : [0, 1];
  const poisson = poissonInterval(k, level);
  const ranks = opts.ranks ?? rankOf(rankedWords(st));
  return {
    word: w,
    captions: k,
    occurrences: st.occurrences.get(w) ?? 0,
    perMillion: k * scale,
    wilson: [wilson[0] * 1e6, wilson[1] * 1e6],
    poisson: [poisson[0] * scale, poisson[1] * scale],
    rank: ranks.get(w) ?? null,
  };
}

/** The rank-frequency curve, thinned to log-spaced ranks. */
export interface RankFrequency {
  /** 1-based ranks. */
  rank: number[];
  /** Word at each rank. */
  word: string[];
  /** Captions containing it. */
  captions: number[];
  /** Per 1M captions. */
  perMillion: number[];
  /** Distinct words in the whole curve (before thinning). */
  vocabulary: number;
}

/**
 * Rank vs caption count of every word, keeping every rank up to 100 and then about `maxPoints`
 * log-spaced ranks (the last rank always), so a million-word vocabulary plots in kilobytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { captionStats } from "./captions.ts";
 * import { rankFrequency } from "./caption_stats.ts";
 *
 * const rf = rankFrequency(await captionStats(["a b c", "a b", "a"]));
 * assert.deepEqual([rf.rank, rf.word, rf.captions], [[1, 2, 3], ["a", "b", "c"], [3, 2, 1]]);
 * ```
 */
export function rankFrequency(st: CaptionStats, opts: { maxPoints?: number } = {}): RankFrequency {
  const ranked = rankedWords(st);
  const n = ranked.length, maxPoints = opts.maxPoints ?? 1000;
  const keep: number[] = [];
  const step = n > 100 ? Math.log(n / 100) / Math.max(1, maxPoints) : 0;
  let next = 1;
  for (let r = 1; r <= n; r++) {
    if (r <= 100 || r === n || r >= next) {
      keep.push(r);
      if (r > 100) next = Math.max(r + 1, Math.floor(r * Math.exp(step)));
    }
  }
  const scale = st.captions > 0 ? 1e6 / st.captions : 0;
  return {
    rank: keep,
    word: keep.map((r) => ranked[r - 1][0]),
    captions: keep.map((r) => ranked[r - 1][1]),
    perMillion: keep.map((r) => ranked[r - 1][1] * scale),
    vocabulary: n,
  };
}

/**
 * The log-log rank-frequency figure (Plotly): the curve, and the chosen words as labelled
 * markers at their ranks (words that never occur are left out).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { captionStats } from "./captions.ts";
 * import { rankFrequencyFigure } from "./caption_stats.ts";
 *
 * const fig = rankFrequencyFigure(await captionStats(["a dragon", "a cat"]), { words: ["dragon"] });
 * assert.equal(fig.data.length, 2);
 * assert.deepEqual(fig.data[1].text, ["dragon"]);
 * ```
 */
export function rankFrequencyFigure(
  st: CaptionStats,
  opts: { words?: readonly string[]; title?: string; maxPoints?: number } = {},
): PlotlyFigure {
  const rf = rankFrequency(st, { maxPoints: opts.maxPoints });
  const ranks = rankOf(rankedWords(st));
  const marks = (opts.words ?? []).map((w) => wordFrequency(st, w, { ranks }))
    .filter((f) => f.rank !== null);
  return {
    data: [
      {
        type: "scatter",
        mode: "lines",
        name: "all words",
        x: rf.rank,
        y: rf.perMillion,
        text: rf.word,
        hovertemplate: "%{text}: rank %{x}, %{y:.4g} per 1M<extra></extra>",
      },
      {
        type: "scatter",
        mode: "markers+text",
        name: "chosen words",
        x: marks.map((f) => f.rank),
        y: marks.map((f) => f.perMillion),
        text: marks.map((f) => f.word),
        textposition: "top right",
        marker: { size: 9 },
      },
    ],
    layout: {
      title: opts.title ??
        `Caption words: rank vs frequency (${st.captions} captions, ${rf.vocabulary} words)`,
      xaxis: { title: "rank (by captions containing the word)", type: "log" },
      yaxis: { title: "captions containing the word per 1M", type: "log" },
      showlegend: true,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Whole datasets.

/** How many records one filter threshold keeps, on its own. */
export interface FilterKeep {
  field: FilterField;
  /** e.g. "aesthetic >= 4.5". */
  rule: string;
  kept: number;
  /** Records without the value (dropped by the filter). */
  missing: number;
  /** kept / records considered. */
  share: number;
}

/** Options of {@link datasetCaptionStats}. */
export interface DatasetCaptionStatsOptions {
  /** Thresholds: caption statistics are over the records that pass all of them. */
  filter?: DataFilter;
  /** Stop after this many records considered (a sample of a huge dataset). */
  maxRecords?: number;
  /** Client options for `gs://` shards. */
  gcs?: GcsStoreOptions;
  /** Show a progress line (shards, records/s, ETA) on stderr (default false). */
  progress?: boolean;
}

/** What {@link datasetCaptionStats} returns. */
export interface DatasetCaptionStats {
  /** The filter applied (only its set thresholds). */
  filter: DataFilter;
  /** Caption statistics of the records kept by the filter. */
  stats: CaptionStats;
  /** Records with a caption and an image (the ones a filter judges). */
  considered: number;
  /** Of those, kept by every filter (= `stats.captions`). */
  kept: number;
  /** Per threshold, records kept by it alone, in the order the filter applies them. */
  filters: FilterKeep[];
  /** The reader's counts (records seen, skipped by reason). */
  read: ReadStats;
  /** Whether `maxRecords` cut the read short. */
  truncated: boolean;
}

/**
 * Stream a dataset's captions and metadata (images are not decoded) and count words over the
 * records every filter keeps, and how many each filter keeps on its own. Memory is the
 * vocabulary plus one shard's metadata, whatever the number of records.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildShapesWorldShards } from "./webdataset.ts";
 * import { datasetCaptionStats } from "./caption_stats.ts";
 *
 * const dir = await Deno.makeTempDir(); // or "gs://bucket/laion"
 * await buildShapesWorldShards({ outDir: dir, seed: 0, count: 20, perShard: 10 });
 * const r = await datasetCaptionStats(dir, { filter: { minAesthetic: 4.5 } });
 * assert.equal(r.considered, 20);
 * assert.equal(r.kept, r.filters[0].kept);
 * assert.equal(r.stats.captions, r.kept);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function datasetCaptionStats(
  source: string | readonly string[] | ShardSource,
  opts: DatasetCaptionStatsOptions = {},
): Promise<DatasetCaptionStats> {
  const filter = normalizeFilter(opts.filter);
  const fields = filterFields(filter);
  const keeps: FilterKeep[] = fields.map((field) => ({
    field,
    rule: describeFilter(ruleOf(filter, field)),
    kept: 0,
    missing: 0,
    share: 0,
  }));
  const read = newReadStats();
  const stats = newCaptionStats();
  let considered = 0, truncated = false;
  const shardCount = opts.progress
    ? (typeof source === "string"
      ? (await listShards(source, { gcs: opts.gcs })).length
      : Array.isArray(source)
      ? source.length
      : 0)
    : 0;
  const bar = opts.progress && shardCount > 0
    ? new Progress({ total: shardCount, label: "data-stats (shards)" })
    : null;
  const t0 = performance.now();
  const it = readShards(source, {
    stats: read,
    filter,
    metadata: true,
    decode: false,
    yieldFiltered: true,
    gcs: opts.gcs,
  });
  for await (const s of it) {
    if (opts.maxRecords !== undefined && considered >= opts.maxRecords) {
      truncated = true;
      break;
    }
    considered++;
    for (const k of keeps) {
      const ok = passes(s.meta, k.field, filter);
      if (ok) k.kept++;
      else if (ok === null) k.missing++;
    }
    if (!s.dropped) addCaption(stats, s.caption);
    if (bar && considered % 1000 === 0) {
      const secs = (performance.now() - t0) / 1000;
      bar.update(s.position.shard, {
        records: considered,
        "rec/s": Math.round(considered / Math.max(secs, 1e-9)),
      });
    }
  }
  if (bar) {
    bar.update(truncated ? read.shards : shardCount, { records: considered });
    bar.done();
  }
  for (const k of keeps) k.share = considered > 0 ? k.kept / considered : 0;
  return { filter, stats, considered, kept: stats.captions, filters: keeps, read, truncated };
}

/** The filter restricted to one field. */
function ruleOf(f: DataFilter, field: FilterField): DataFilter {
  const option = {
    aesthetic: "minAesthetic",
    punsafe: "maxPunsafe",
    pwatermark: "maxPwatermark",
    similarity: "minSimilarity",
    size: "minSize",
  }[field] as keyof DataFilter;
  return { [option]: f[option] };
}

/** The JSON summary of {@link captionSummary}. */
export interface CaptionSummary {
  source: string;
  /** Records seen in the tars (groups of files with one key). */
  records: number;
  /** Records with a caption and an image. */
  considered: number;
  /** Captions counted (records every filter keeps). */
  captions: number;
  tokens: number;
  vocabulary: number;
  filter: { rule: string; kept: number; share: number; each: FilterKeep[] };
  words: WordFrequency[];
  top: WordFrequency[];
  /** Records skipped as bad data or by a filter, by reason (non-zero only). */
  skipped: Record<string, number>;
  corruptFiles: { path: string; reason: string }[];
  truncated: boolean;
  definitions: Record<string, string>;
}

/**
 * The JSON summary of a {@link datasetCaptionStats} result: counts, the chosen words with their
 * intervals, the `top` most frequent words, the filters' keep counts, and the definitions used.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildShapesWorldShards } from "./webdataset.ts";
 * import { captionSummary, datasetCaptionStats } from "./caption_stats.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await buildShapesWorldShards({ outDir: dir, seed: 0, count: 10, perShard: 10 });
 * const s = captionSummary(await datasetCaptionStats(dir), { source: dir, words: ["circle"] });
 * assert.equal(s.captions, 10);
 * assert.equal(s.words[0].word, "circle");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function captionSummary(
  r: DatasetCaptionStats,
  opts: { source: string; words?: readonly string[]; top?: number; level?: number },
): CaptionSummary {
  const ranked = rankedWords(r.stats);
  const ranks = rankOf(ranked);
  const level = opts.level ?? 0.95;
  const freq = (w: string) => wordFrequency(r.stats, w, { level, ranks });
  const pct = `${Math.round(level * 100)}%`;
  return {
    source: opts.source,
    records: r.read.records,
    considered: r.considered,
    captions: r.stats.captions,
    tokens: r.stats.tokens,
    vocabulary: ranked.length,
    filter: {
      rule: describeFilter(r.filter),
      kept: r.kept,
      share: r.considered > 0 ? r.kept / r.considered : 0,
      each: r.filters,
    },
    words: (opts.words ?? []).map(freq),
    top: ranked.slice(0, Math.max(0, opts.top ?? 50)).map(([w]) => freq(w)),
    skipped: Object.fromEntries(Object.entries(r.read.skipped).filter(([, n]) => n > 0)),
    corruptFiles: r.read.corruptFiles,
    truncated: r.truncated,
    definitions: {
      token: "lower-cased maximal runs of Unicode letters, digits and apostrophes; quotes " +
        "trimmed from both ends; no stemming or stop words",
      perMillion: "captions containing the word at least once, times 1e6 / captions " +
        "(document frequency: the study's 'times per 1M captions')",
      wilson: `${pct} Wilson score interval of captions containing the word / captions, ` +
        "times 1e6",
      poisson: `${pct} exact Poisson (Garwood) interval of the count, times 1e6 / captions`,
      rank: "1-based, by captions containing the word, ties alphabetical",
      filters: "each rule's kept count is on its own, over records with a caption and an " +
        "image; the statistics are over records that pass every rule",
    },
  };
}
