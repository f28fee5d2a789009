import assert from "node:assert/strict";
import {
  hardNegativeCaptions,
  SHAPES_WORLD_WORD_GROUPS,
  swapOneWord,
} from "../lib/data/hard_negatives.ts";
import { Rng } from "../lib/util/rng.ts";

/** Words of `a` and `b` that differ, position by position (both must have as many words). */
function diffWords(a: string, b: string): [string, string][] {
  const wa = a.split(" "), wb = b.split(" ");
  assert.equal(wa.length, wb.length, `${a} | ${b}`);
  return wa.map((w, i) => [w, wb[i]] as [string, string]).filter(([x, y]) => x !== y);
}

Deno.test("swapOneWord changes exactly one grouped word to another of its group", () => {
  const rng = Rng.stream(1);
  const caption = "A photograph of a small red star to the left of two blue circles";
  const seen = new Set<string>();
  for (let k = 0; k < 200; k++) {
    const neg = swapOneWord(caption, SHAPES_WORLD_WORD_GROUPS, rng)!;
    const d = diffWords(caption, neg);
    assert.equal(d.length, 1, neg);
    const [from, to] = d[0];
    const group = SHAPES_WORLD_WORD_GROUPS.find((g) => g.includes(from))!;
    assert.ok(group.includes(to) && to !== from, `${from} -> ${to}`);
    seen.add(from);
  }
  // Every swappable word gets picked: small, red, star, left, two, blue, circles.
  assert.deepEqual([...seen].sort(), ["blue", "circles", "left", "red", "small", "star", "two"]);
});

Deno.test("swapOneWord keeps punctuation and case elsewhere; null without grouped words", () => {
  const rng = Rng.stream(2);
  assert.equal(swapOneWord("A Red, shiny thing!", [["red", "blue"]], rng), "A blue, shiny thing!");
  assert.equal(swapOneWord("a photo of nothing", SHAPES_WORLD_WORD_GROUPS, rng), null);
  // Single-word groups cannot swap.
  assert.equal(swapOneWord("a red star", [["red"]], rng), null);
  // "stars" is a plural shape, "starship" no word of any group.
  assert.equal(
    diffWords("two stars", swapOneWord("two stars", [["stars", "circles"]], rng)!)[0][1],
    "circles",
  );
  assert.equal(swapOneWord("a starship", [["star", "circle"]], rng), null);
});

Deno.test("hardNegativeCaptions: one per caption, deterministic, other captions as fallback", () => {
  const caps = ["a red star", "nothing here", "two green squares"];
  const a = hardNegativeCaptions(caps, SHAPES_WORLD_WORD_GROUPS, Rng.stream(3));
  const b = hardNegativeCaptions(caps, SHAPES_WORLD_WORD_GROUPS, Rng.stream(3));
  assert.deepEqual(a, b);
  assert.equal(a.length, 3);
  assert.equal(diffWords(caps[0], a[0]).length, 1);
  assert.ok(a[1] === caps[0] || a[1] === caps[2], a[1]);
  assert.equal(diffWords(caps[2], a[2]).length, 1);
});
