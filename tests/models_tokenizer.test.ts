import assert from "node:assert/strict";
import {
  END_ID,
  PAD_ID,
  splitWords,
  START_ID,
  UNK_ID,
  WordTokenizer,
} from "../lib/models/tokenizer.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

const corpus = [
  "A red circle.",
  "two blue squares, top left",
  "a red square",
  "A small red triangle!",
];

Deno.test("splitWords lower-cases and separates punctuation", () => {
  assert.deepEqual(splitWords("A red, round Circle!"), ["a", "red", ",", "round", "circle", "!"]);
  assert.deepEqual(splitWords("  "), []);
  assert.deepEqual(splitWords("Été 3x"), ["été", "3x"]);
});

Deno.test("vocab: specials first, then by count then alphabet, independent of corpus order", () => {
  const tok = WordTokenizer.build(corpus);
  assert.deepEqual(tok.vocab.slice(0, 4), ["<pad>", "<unk>", "<|startoftext|>", "<|endoftext|>"]);
  // "a" and "red" occur 3 times (tie: alphabetical), every other token once.
  assert.deepEqual(tok.vocab.slice(4), [
    "a",
    "red",
    "!",
    ",",
    ".",
    "blue",
    "circle",
    "left",
    "small",
    "square",
    "squares",
    "top",
    "triangle",
    "two",
  ]);
  assert.deepEqual(WordTokenizer.build([...corpus].reverse()).vocab, tok.vocab);
  assert.deepEqual(WordTokenizer.build(corpus, { minCount: 2 }).vocab.slice(4), ["a", "red"]);
  assert.equal(WordTokenizer.build(corpus, { maxVocab: 6 }).vocabSize, 6);
});

Deno.test("encode pads, truncates keeping the end token, maps unknown words; decode round trips", () => {
  const tok = WordTokenizer.build(corpus, { contextLength: 8 });
  const ids = tok.encode("A red circle.");
  assert.equal(ids.length, 8);
  assert.deepEqual([...ids], [
    START_ID,
    tok.tokenId("a"),
    tok.tokenId("red"),
    tok.tokenId("circle"),
    tok.tokenId("."),
    END_ID,
    PAD_ID,
    PAD_ID,
  ]);
  assert.equal(tok.decode(ids), "a red circle.");
  assert.equal(tok.decode(tok.encode("two blue squares, top left")), "two blue squares, top left");
  assert.deepEqual([...tok.mask(ids)], [1, 1, 1, 1, 1, 1, 0, 0]);

  const long = tok.encode("a red square a red square a red square");
  assert.equal(long.length, 8);
  assert.equal(long[0], START_ID);
  assert.equal(long[7], END_ID);
  assert.equal(tok.decode(long), "a red square a red square");
  assert.equal(tok.encode("purple hexagon")[1], UNK_ID);
  assert.equal(tok.decode(tok.encode("purple")), "<unk>");
  assert.deepEqual([...tok.encode("")], [START_ID, END_ID, 0, 0, 0, 0, 0, 0]);
  const batch = tok.encodeBatch(["a", "red square"]);
  assert.deepEqual([...batch.subarray(8, 16)], [...tok.encode("red square")]);
  assert.throws(() => tok.decode([999]), /outside vocab/);
});

Deno.test("tokenizer.json round trip and clear errors", async () => {
  const tok = WordTokenizer.build(corpus, { contextLength: 12 });
  await withTempDir("xgen_models_tokenizer_", async (dir) => {
    const path = `${dir}/tokenizer.json`;
    await tok.save(path);
    const back = await WordTokenizer.load(path);
    assert.deepEqual(back.vocab, tok.vocab);
    assert.equal(back.contextLength, 12);
    assert.deepEqual(back.encode("a small red triangle!"), tok.encode("a small red triangle!"));
    await Deno.writeTextFile(
      path,
      JSON.stringify({ type: "word", contextLength: 12, vocab: ["x"] }),
    );
    await assert.rejects(WordTokenizer.load(path), /vocab\[0\] must be "<pad>"/);
    await Deno.writeTextFile(path, "{not json");
    await assert.rejects(
      WordTokenizer.load(path),
      new RegExp(`${path}: cannot read tokenizer JSON`),
    );
    assert.throws(() => WordTokenizer.fromJSON({ type: "bpe" }, "t.json"), /t.json: field "type"/);
    assert.throws(() => WordTokenizer.build(corpus, { contextLength: 1 }), /contextLength must be/);
  });
});
