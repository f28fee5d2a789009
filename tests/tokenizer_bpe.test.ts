import assert from "node:assert/strict";
import {
  bytesToUnicode,
  cleanClipText,
  ClipBpeTokenizer,
  splitClipWords,
} from "../lib/models/clip_bpe_tokenizer.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

// A tiny vocabulary (id = index) and merge list written for these tests. Expected ids below are
// derived by hand from these two tables.
const TOKENS = [
  "!", //  0
  "?</w>", //  1
  "!!", //  2
  "'", //  3
  "a", //  4
  "a</w>", //  5
  "c", //  6
  "t</w>", //  7
  "ca", //  8
  "cat</w>", //  9
  "i", // 10
  "it</w>", // 11
  "s</w>", // 12
  "'s</w>", // 13
  "2</w>", // 14
  "0</w>", // 15
  "3</w>", // 16
  "20</w>", // 17 (made by merge "2 0</w>", which digit splitting must never let apply)
  "2", // 18
  "f", // 19
  "Ã", // 20 byte 0xC3 (first byte of "é")
  "©</w>", // 21 byte 0xA9 (second byte of "é") at a word end
  "Ã©</w>", // 22 "é" at a word end
  "ð", // 23 byte 0xF0 \
  "Ł", // 24 byte 0x9F  | "😀" = F0 9F 98 80
  "ĺ", // 25 byte 0x98  |
  "Ģ</w>", // 26 byte 0x80 /
  "w", // 27
  "o", // 28
  "w</w>", // 29
  "aa", // 30
  "aa</w>", // 31
  "<|startoftext|>", // 32
  "<|endoftext|>", // 33
];
const START = 32;
const END = 33;
// Rank = line order after the header.
const MERGES = [
  "#version: 0.2",
  "c a", // 0 -> ca
  "ca t</w>", // 1 -> cat</w>
  "! !", // 2 -> !!
  "i t</w>", // 3 -> it</w>
  "' s</w>", // 4 -> 's</w>
  "2 0</w>", // 5 -> 20</w>
  "Ã ©</w>", // 6 -> Ã©</w>
  "a a</w>", // 7 -> aa</w>
  "a a", // 8 -> aa
  "",
].join("\n");
const VOCAB = Object.fromEntries(TOKENS.map((t, i) => [t, i]));

function tiny(opts = {}): ClipBpeTokenizer {
  return ClipBpeTokenizer.fromData({ vocab: VOCAB, merges: MERGES }, opts);
}

/** The padded row CLIP expects for text ids `body`. */
function row(body: number[], n = 77, pad = END): number[] {
  const out = [START, ...body, END];
  while (out.length < n) out.push(pad);
  return out;
}

Deno.test("bytesToUnicode: GPT-2 table (printable bytes kept, others shifted from 256)", () => {
  const t = bytesToUnicode();
  assert.equal(new Set(t).size, 256);
  assert.equal(t[0x41], "A");
  assert.equal(t[0x21], "!");
  assert.equal(t[0xff], "ÿ");
  // Bytes 0..32 take 256..288, 127..160 take 289..322, 173 takes 323.
  assert.equal(t[0x00], String.fromCodePoint(256));
  assert.equal(t[0x20], "Ġ"); // 256 + 32 = U+0120
  assert.equal(t[0x0a], "Ċ"); // 256 + 10 = U+010A
  assert.equal(t[0x7f], String.fromCodePoint(289));
  assert.equal(t[0xa0], String.fromCodePoint(322));
  assert.equal(t[0xad], String.fromCodePoint(323));
});

Deno.test("cleanClipText and splitClipWords: whitespace, case, html entities, regex", () => {
  assert.equal(cleanClipText("  A \n\t  Cat\r\n"), "a cat");
  // HTML unescaping is OpenAI's original, opt-in; Hugging Face's CLIPTokenizerFast keeps entities.
  assert.equal(cleanClipText("Tom &amp;amp; Jerry"), "tom &amp;amp; jerry");
  assert.equal(
    cleanClipText("Tom &amp;amp; Jerry &#39;x&#x21;", { htmlUnescape: true }),
    "tom & jerry 'x!",
  );
  // Unicode White_Space, not JavaScript's \s: U+0085 collapses, U+FEFF stays.
  assert.equal(cleanClipText("a\u0085b\ufeffc"), "a b\ufeffc");
  assert.deepEqual(splitClipWords("it's 2023!!? don't <|endoftext|>"), [
    "it",
    "'s",
    "2",
    "0",
    "2",
    "3",
    "!!?",
    "don",
    "'t",
    "<|endoftext|>",
  ]);
  // A lone apostrophe that starts no contraction is punctuation.
  assert.deepEqual(splitClipWords("'x"), ["'", "x"]);
  // A punctuation run stops before a special token (Hugging Face splits those off first).
  assert.deepEqual(splitClipWords("!!<|endoftext|>"), ["!!", "<|endoftext|>"]);
});

Deno.test("ClipBpeTokenizer: tricky strings give the hand-derived ids", () => {
  const tok = tiny();
  const cases: [string, number[]][] = [
    // "a" -> [a</w>]; "cat" -> c a t</w> -> (c a) ca t</w> -> (ca t</w>) cat</w>
    ["a cat", [5, 9]],
    // whitespace runs, tabs, newlines collapse; case folds
    ["  A \n\t  CAT \n", [5, 9]],
    // "wow" has no merges: w o w</w>; "!!?" -> ! ! ?</w> -> (! !) !! ?</w>
    ["wow!!?", [27, 28, 29, 2, 1]],
    // "it" -> i t</w> -> it</w>; "'s" -> ' s</w> -> 's</w>
    ["it's", [11, 13]],
    ["IT'S", [11, 13]],
    // each digit is its own word, so merge "2 0</w>" (id 17) never applies
    ["2023", [14, 15, 14, 16]],
    // "café" bytes c a f C3 A9 -> c a f Ã ©</w> -> (c a, rank 0) -> (Ã ©</w>, rank 6)
    ["café", [8, 19, 22]],
    // decomposed "e" + U+0301 is NFC-composed first, so same ids
    ["cafe\u0301", [8, 19, 22]],
    ["CAFÉ", [8, 19, 22]],
    // emoji: F0 9F 98 80 -> ð Ł ĺ Ģ</w>, no merges
    ["😀", [23, 24, 25, 26]],
    // rank order: a a a</w>: "a a</w>" (7) beats "a a" (8) -> a aa</w>
    ["aaa", [4, 31]],
    // a a a a</w> -> a a aa</w> -> aa aa</w>
    ["aaaa", [30, 31]],
    // a a a a a</w> -> a a a aa</w> -> left-to-right non-overlapping "a a": aa a aa</w>
    ["aaaaa", [30, 4, 31]],
    // special token text stays one token
    ["a<|endoftext|>", [5, END]],
    // empty and whitespace-only texts
    ["", []],
    [" \n\t ", []],
  ];
  for (const [text, body] of cases) {
    const enc = tok.encode(text);
    assert.deepEqual([...enc.ids], row(body), `ids of ${JSON.stringify(text)}`);
    const mask = row(body).map((_, i) => (i < body.length + 2 ? 1 : 0));
    assert.deepEqual([...enc.attentionMask], mask, `mask of ${JSON.stringify(text)}`);
    assert.equal(enc.length, body.length + 2);
    assert.equal(enc.truncated, false);
  }
});

Deno.test("ClipBpeTokenizer: the BPE cache gives the same ids on repeated words", () => {
  const tok = tiny();
  const first = [...tok.encode("aaaaa café aaaaa").ids];
  const again = [...tok.encode("aaaaa café aaaaa").ids];
  assert.deepEqual(first, again);
  assert.deepEqual(first.slice(0, 11), [START, 30, 4, 31, 8, 19, 22, 30, 4, 31, END]);
});

Deno.test("ClipBpeTokenizer: overlong text keeps start, first 75 tokens and end", () => {
  const tok = tiny();
  const enc = tok.encode("a ".repeat(100));
  assert.equal(enc.ids.length, 77);
  assert.equal(enc.ids[0], START);
  assert.equal(enc.ids[76], END);
  for (let i = 1; i < 76; i++) assert.equal(enc.ids[i], 5);
  assert.ok(enc.attentionMask.every((m) => m === 1));
  assert.equal(enc.truncated, true);
  assert.equal(enc.length, 77);
  // exactly 75 tokens fit without truncation
  const fit = tok.encode("a ".repeat(75));
  assert.equal(fit.truncated, false);
  assert.equal(fit.ids[76], END);
  assert.throws(
    () => tiny({ truncate: false }).encode("a ".repeat(76)),
    /76 tokens, more than the 75/,
  );
});

Deno.test("ClipBpeTokenizer: pad token, context length, unknown tokens, batch, decode", () => {
  // SD2-style padding with "!" (id 0), short context
  const tok = tiny({ padToken: "!", contextLength: 6 });
  const enc = tok.encode("a cat");
  assert.deepEqual([...enc.ids], [START, 5, 9, END, 0, 0]);
  assert.deepEqual([...enc.attentionMask], [1, 1, 1, 1, 0, 0]);
  // "z" has no id: default unknown token is <|endoftext|>, null makes it an error
  assert.deepEqual([...tiny({ contextLength: 4 }).encode("z").ids], [START, END, END, END]);
  assert.throws(
    () => tiny({ unkToken: null }).encode("a z"),
    /token "z<\/w>" of "a z" is not in vocab\.json/,
  );
  const batch = tiny({ contextLength: 5 }).encodeBatch(["a cat", "", "2023"]);
  assert.deepEqual(batch.shape, [3, 5]);
  assert.deepEqual([...batch.ids], [
    ...[START, 5, 9, END, END],
    ...[START, END, END, END, END],
    ...[START, 14, 15, 14, END],
  ]);
  assert.deepEqual([...batch.attentionMask], [1, 1, 1, 1, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1]);
  const t = tiny();
  assert.equal(t.decode(t.encode("A cat").ids), "a cat");
  assert.equal(t.decode(t.encode("café 😀").ids), "café 😀");
  assert.equal(t.decode(t.encode("it's").ids), "it 's");
  assert.equal(t.vocabSize, TOKENS.length);
});

Deno.test("ClipBpeTokenizer.load: reads files; malformed files give errors naming them", async () => {
  await withTempDir("xgen_tokenizer_bpe_", async (dir) => {
    await Deno.writeTextFile(`${dir}/vocab.json`, JSON.stringify(VOCAB));
    await Deno.writeTextFile(`${dir}/merges.txt`, MERGES);
    const tok = await ClipBpeTokenizer.load(dir);
    assert.deepEqual([...tok.encode("café").ids].slice(0, 5), [START, 8, 19, 22, END]);

    const bad = async (vocab: string, merges: string, re: RegExp) => {
      await Deno.writeTextFile(`${dir}/v.json`, vocab);
      await Deno.writeTextFile(`${dir}/m.txt`, merges);
      await assert.rejects(
        ClipBpeTokenizer.load({ vocab: `${dir}/v.json`, merges: `${dir}/m.txt` }),
        re,
      );
    };
    const good = JSON.stringify(VOCAB);
    await bad("{not json", MERGES, /v\.json: not valid JSON/);
    await bad("[1,2]", MERGES, /v\.json: expected a JSON object/);
    await bad(JSON.stringify({ ...VOCAB, x: 1.5 }), MERGES, /v\.json: token "x" has id 1\.5/);
    await bad(JSON.stringify({ ...VOCAB, x: 3 }), MERGES, /v\.json: id 3 is used by both "'"/);
    const noEnd = { ...VOCAB } as Record<string, number>;
    delete noEnd["<|endoftext|>"];
    await bad(JSON.stringify(noEnd), MERGES, /v\.json: end token "<\|endoftext\|>" is not/);
    await bad(good, "#version: 0.2\nc a\nabc\n", /m\.txt line 3: expected two symbols/);
    await bad(good, "c a\nx y\n", /m\.txt: merge #2 "x y" makes "xy", which is not in .*v\.json/);
    await assert.rejects(
      ClipBpeTokenizer.load(`${dir}/missing`),
      /missing: no CLIP tokenizer files; expected vocab\.json \+ merges\.txt/,
    );
  });
});
