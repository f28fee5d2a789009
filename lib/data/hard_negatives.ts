/**
 * Hard-negative captions for contrastive training (NegCLIP-style): the same caption with one
 * attribute word swapped for another of its kind ("a red star" -> "a red circle"). In a batch of
 * random captions colour alone tells most pairs apart, so a CLIP trained on plain batches learns
 * colour and ignores shape; a swapped caption differs from the true one in exactly one word, which
 * forces the image tower to see that word's attribute.
 *
 * Word groups are data-specific: {@link SHAPES_WORLD_WORD_GROUPS} for the embedded data; real
 * captions can use any lists of interchangeable words (colours, counts, spatial terms).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SHAPES_WORLD_WORD_GROUPS, swapOneWord } from "./hard_negatives.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const caption = "a red star above a blue circle";
 * const neg = swapOneWord(caption, SHAPES_WORLD_WORD_GROUPS, Rng.stream(0)); // "... blue star"
 * const changed = neg!.split(" ").filter((w, i) => w !== caption.split(" ")[i]);
 * assert.equal(changed.length, 1); // exactly one colour or shape word differs
 * ```
 * @module
 */
import { COLOR_NAMES, SHAPE_NAMES } from "./shapes_world.ts";
import type { Rng } from "../util/rng.ts";

/** Interchangeable words of shapes-world captions, one list per kind. */
export const SHAPES_WORLD_WORD_GROUPS: readonly (readonly string[])[] = [
  COLOR_NAMES,
  SHAPE_NAMES,
  SHAPE_NAMES.map((s) => (s === "cross" ? "crosses" : `${s}s`)),
  ["small", "large"],
  ["left", "right"],
  ["above", "below"],
  ["two", "three"],
];

/**
 * `caption` with one word from `groups` (chosen with `rng` among the caption's swappable words)
 * replaced by a different word of the same group, keeping case-insensitive word boundaries and
 * everything else verbatim; `null` when no word of the caption is in any group.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { swapOneWord } from "./hard_negatives.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const neg = swapOneWord("A photograph of a green cross", [["green", "blue"]], Rng.stream(0));
 * assert.equal(neg, "A photograph of a blue cross");
 * assert.equal(swapOneWord("a cat", [["green", "blue"]], Rng.stream(0)), null); // nothing to swap
 * ```
 */
export function swapOneWord(
  caption: string,
  groups: readonly (readonly string[])[],
  rng: Rng,
): string | null {
  const groupOf = new Map<string, readonly string[]>();
  for (const g of groups) {
    if (g.length < 2) continue;
    for (const w of g) groupOf.set(w.toLowerCase(), g);
  }
  // Multi-word captions: spans of letters are words; everything between them is kept as is.
  const spans: { start: number; end: number; group: readonly string[]; word: string }[] = [];
  for (const m of caption.matchAll(/[A-Za-z]+/g)) {
    const word = m[0].toLowerCase(), group = groupOf.get(word);
    if (group) spans.push({ start: m.index!, end: m.index! + m[0].length, group, word });
  }
  if (spans.length === 0) return null;
  const s = spans[rng.int(spans.length)];
  const others = s.group.filter((w) => w.toLowerCase() !== s.word);
  const replacement = others[rng.int(others.length)];
  return caption.slice(0, s.start) + replacement + caption.slice(s.end);
}

/**
 * One hard negative per caption: a one-word swap, or, for a caption with nothing to swap, another
 * caption of the batch (an ordinary negative), so the result always has one entry per caption.
 *
 * @example
 * ```ts
 * import { hardNegativeCaptions, SHAPES_WORLD_WORD_GROUPS } from "./hard_negatives.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const batchCaptions = ["a red star", "a blue square"];
 * const negs = hardNegativeCaptions(batchCaptions, SHAPES_WORLD_WORD_GROUPS, Rng.stream(0));
 * ```
 */
export function hardNegativeCaptions(
  captions: readonly string[],
  groups: readonly (readonly string[])[],
  rng: Rng,
): string[] {
  return captions.map((c, i) => {
    const swapped = swapOneWord(c, groups, rng);
    if (swapped !== null) return swapped;
    if (captions.length < 2) return "";
    const j = (i + 1 + rng.int(captions.length - 1)) % captions.length;
    return captions[j];
  });
}
