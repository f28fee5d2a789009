/**
 * Caption statistics: how often each word occurs, normalised per one million captions, the unit
 * the study quotes ("dragon" in 411 and "astronaut" in 86 of every 1M LAION captions).
 *
 * Words are lower-cased runs of letters, digits and apostrophes (Unicode aware), so "Dragon's" and
 * "dragon" differ but "DRAGON," and "dragon" do not. A caption counts once per word however many
 * times the word repeats in it ({@link CaptionStats.captionCounts}); raw repeats are kept too.
 *
 * @example
 * ```ts
 * const st = await captionStats(["a red dragon", "an astronaut", "a dragon dragon"]);
 * perMillion(st, "dragon"); // 2 of 3 captions -> 666666.67
 * ```
 * @module
 */

/** Word counts over a caption collection. */
export interface CaptionStats {
  /** Captions seen. */
  captions: number;
  /** Words seen (with repeats). */
  tokens: number;
  /** Number of captions containing each word. */
  captionCounts: Map<string, number>;
  /** Total occurrences of each word. */
  occurrences: Map<string, number>;
}

/** Options for {@link captionStats}. */
export interface CaptionStatsOptions {
  /** Only count these words (saves memory on huge corpora); default: every word. */
  words?: readonly string[];
}

const WORD_RE = /[\p{L}\p{N}']+/gu;

/**
 * Split a caption into lower-case words.
 *
 * @example
 * ```ts
 * tokenize("A Photo of an ASTRONAUT, riding!"); // ["a", "photo", "of", "an", "astronaut", "riding"]
 * ```
 */
export function tokenize(caption: string): string[] {
  const out: string[] = [];
  for (const m of caption.toLowerCase().matchAll(WORD_RE)) {
    const w = m[0].replace(/^'+|'+$/g, ""); // quotes around a word are not part of it
    if (w) out.push(w);
  }
  return out;
}

/**
 * Count words over any (async) iterable of captions or of objects with a `caption` field (such as
 * {@link readShards} samples).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { captionStats } from "./captions.ts";
 *
 * // Any iterable of captions works; readShards("runs/data/train32") streams a dataset's.
 * const st = await captionStats(["a red circle", "a blue star", "a circle above a circle"], {
 *   words: ["circle", "star"],
 * });
 * assert.equal(st.captionCounts.get("circle"), 2);
 * assert.equal(st.occurrences.get("circle"), 3);
 * ```
 */
export async function captionStats(
  captions: AsyncIterable<string | { caption: string }> | Iterable<string | { caption: string }>,
  opts: CaptionStatsOptions = {},
): Promise<CaptionStats> {
  const only = opts.words ? new Set(opts.words.map((w) => w.toLowerCase())) : null;
  const st = newCaptionStats();
  for await (const item of captions) {
    const text = typeof item === "string" ? item : item?.caption;
    if (typeof text !== "string") {
      throw new Error(`captionStats: item ${st.captions} is not a string or {caption: string}`);
    }
    addCaption(st, text, only);
  }
  return st;
}

/**
 * Empty {@link CaptionStats}, to fill one caption at a time with {@link addCaption}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { newCaptionStats } from "./captions.ts";
 *
 * assert.equal(newCaptionStats().captions, 0);
 * ```
 */
export function newCaptionStats(): CaptionStats {
  return { captions: 0, tokens: 0, captionCounts: new Map(), occurrences: new Map() };
}

/**
 * Count one caption into `st` (streaming: memory grows with the vocabulary only). With `only`,
 * just those (lower-case) words are counted; `tokens` counts every word either way.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { addCaption, newCaptionStats } from "./captions.ts";
 *
 * const st = newCaptionStats();
 * addCaption(st, "A dragon, a DRAGON!");
 * assert.deepEqual([st.captions, st.tokens, st.captionCounts.get("dragon")], [1, 4, 1]);
 * assert.equal(st.occurrences.get("dragon"), 2);
 * ```
 */
export function addCaption(
  st: CaptionStats,
  caption: string,
  only: ReadonlySet<string> | null = null,
): void {
  st.captions++;
  const words = tokenize(caption);
  st.tokens += words.length;
  const seen = new Set<string>();
  for (const w of words) {
    if (only && !only.has(w)) continue;
    st.occurrences.set(w, (st.occurrences.get(w) ?? 0) + 1);
    if (!seen.has(w)) {
      seen.add(w);
      st.captionCounts.set(w, (st.captionCounts.get(w) ?? 0) + 1);
    }
  }
}

/**
 * Captions containing `word` per one million captions (0 for an empty corpus).
 *
 * @example
 * ```ts
 * perMillion(await captionStats(["dragon", "cat"]), "dragon"); // 500000
 * ```
 */
export function perMillion(stats: CaptionStats, word: string): number {
  if (stats.captions === 0) return 0;
  return ((stats.captionCounts.get(word.toLowerCase()) ?? 0) * 1e6) / stats.captions;
}

/** One row of {@link topWords}. */
export interface WordCount {
  word: string;
  /** Captions containing the word. */
  captions: number;
  /** Captions containing the word per 1M captions. */
  perMillion: number;
}

/**
 * The `k` words found in most captions, ties broken alphabetically.
 *
 * @example
 * ```ts
 * topWords(await captionStats(["a cat", "a dog"]), 1); // [{ word: "a", captions: 2, perMillion: 1e6 }]
 * ```
 */
export function topWords(stats: CaptionStats, k: number): WordCount[] {
  return [...stats.captionCounts.entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .slice(0, Math.max(0, k))
    .map(([word, n]) => ({ word, captions: n, perMillion: perMillion(stats, word) }));
}
