import assert from "node:assert/strict";
import { captionStats, perMillion, tokenize, topWords } from "../lib/data/captions.ts";

Deno.test("tokenize lower-cases and splits on punctuation", () => {
  assert.deepEqual(tokenize("A Photo of an ASTRONAUT, riding a horse!"), [
    "a",
    "photo",
    "of",
    "an",
    "astronaut",
    "riding",
    "a",
    "horse",
  ]);
  assert.deepEqual(tokenize("'Dragon's' fire-breath 3D"), ["dragon's", "fire", "breath", "3d"]);
  assert.deepEqual(tokenize("Café über"), ["café", "über"]);
  assert.deepEqual(tokenize("  ...  "), []);
});

Deno.test("per-million counts on a known list (sync and async sources)", async () => {
  const caps = [
    "a red dragon",
    "An astronaut riding a horse",
    "dragon dragon DRAGON",
    "a photo of a cat",
    "the Dragon, flying",
  ];
  const st = await captionStats(caps);
  assert.equal(st.captions, 5);
  assert.equal(st.tokens, 3 + 5 + 3 + 5 + 3);
  assert.equal(st.captionCounts.get("dragon"), 3);
  assert.equal(st.occurrences.get("dragon"), 5);
  assert.equal(perMillion(st, "dragon"), 600000);
  assert.equal(perMillion(st, "Astronaut"), 200000);
  assert.equal(perMillion(st, "unicorn"), 0);
  assert.equal(st.captionCounts.get("a"), 3);
  assert.deepEqual(topWords(st, 2), [
    { word: "a", captions: 3, perMillion: 600000 },
    { word: "dragon", captions: 3, perMillion: 600000 },
  ]);

  // Async iterable of sample-like objects, with a word filter; 1 in 1M scales exactly.
  async function* many() {
    for (let i = 0; i < 2000; i++) {
      yield { caption: i % 500 === 0 ? "an astronaut" : i % 4 === 0 ? "a dragon" : "a cat" };
    }
  }
  const st2 = await captionStats(many(), { words: ["dragon", "astronaut"] });
  assert.equal(st2.captions, 2000);
  assert.equal(st2.captionCounts.has("cat"), false);
  assert.equal(perMillion(st2, "astronaut"), 4 / 2000 * 1e6);
  assert.equal(perMillion(st2, "dragon"), 496 / 2000 * 1e6);
  assert.equal(perMillion(await captionStats([]), "dragon"), 0);
  await assert.rejects(() => captionStats([42 as unknown as string]), /item 0 is not a string/);
});
