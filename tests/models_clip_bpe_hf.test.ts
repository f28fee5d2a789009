/**
 * The kit's CLIP BPE tokenizer gives exactly Hugging Face's ids: checked against
 * `@huggingface/transformers` (the JavaScript port of transformers + tokenizers, pinned in
 * deno.json), which loads the same tokenizer files from disk, offline.
 *
 * Real CLIP files cannot be downloaded here, so `helpers/clip_test_vocab.ts` learns a CLIP-format
 * vocabulary (full 256-byte alphabet, `</w>` forms, 400 learned merges, CLIP's special tokens)
 * and writes it as `vocab.json` + `merges.txt` and as the equivalent `tokenizer.json`. The JS port
 * reads only `tokenizer.json`, so both kit layouts are compared with HF loading that file.
 *
 * One known difference of the JS port from Python is not followed: its truncation cuts the id
 * list at `max_length`, dropping the end token, while Python's `CLIPTokenizer(Fast)` (and Stable
 * Diffusion) truncate the text and keep `<|endoftext|>` last. The expected rows for long prompts
 * are therefore built as Python does from HF's own untruncated ids.
 */
import assert from "node:assert/strict";
import { AutoTokenizer, env } from "@huggingface/transformers";
import { ClipBpeTokenizer } from "../lib/models/clip_bpe_tokenizer.ts";
import { loadTextIdsTokenizer } from "../lib/inference/text_ids.ts";
import {
  buildClipTestVocab,
  type ClipTestVocab,
  clipTokenizerJson,
  writeClipTestVocab,
} from "./helpers/clip_test_vocab.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

const LONG = "a highly detailed matte painting of a futuristic city at sunset, " +
  "volumetric lighting, octane render, 8k, trending on artstation, by greg rutkowski and " +
  "alphonse mucha, ultra realistic, cinematic composition, sharp focus, hdr, 35mm film grain, " +
  "dramatic clouds, golden hour, reflections on wet streets, neon signs, flying cars, crowds";

/** Hard prompts: accents, punctuation, digits, contractions, emoji, whitespace, case, length. */
const PROMPTS: string[] = [
  "a photo of a cat",
  "",
  "   ",
  "A PHOTO OF A CAT",
  "Café crème brûlée",
  "cafe\u0301 na\u0308ive", // decomposed accents: NFC first
  "naïve résumé façade jalapeño",
  "Straße STRASSE",
  "İstanbul", // lower-cases to i + U+0307
  "ΟΔΟΣ Ελληνικά",
  "сказка О рыбаке",
  "東京の夜景 写真",
  "it's don't we're they've i'm he'll she'd",
  "IT'S DON'T WE'RE",
  "rock'n'roll o'clock dogs' bones",
  "'s's 't' can't've",
  "'quoted' \"double\" ‘curly’ “quotes”",
  "2023 3.14159 1,000,000 100%",
  "1920x1080 f/1.8 50mm l33t sp34k",
  "①②③ ½ ²",
  "!!! ??? ... --- :) <3 ->",
  "hello,world.foo;bar",
  "😀😀 🎨🐱 👍🏽 👨‍👩‍👧 🇯🇵 ❤️",
  "emoji😀text😀",
  "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math",
  "a  cat\n\nand\ta\r\ndog",
  "  leading and trailing  ",
  "x\u00a0y\u2003z", // no-break and em spaces are White_Space
  "zero\u200bwidth", // U+200B is not White_Space: a symbol of its own
  "bom\ufeffhere", // U+FEFF: JavaScript's \s, but not Unicode White_Space
  "nel\u0085here", // U+0085: Unicode White_Space, but not JavaScript's \s
  "tab\u000bvt\u000cff",
  "\u0000null\u0001ctl",
  "ﬁne ligature ｆｕｌｌｗｉｄｔｈ",
  "a\u0300\u0301\u0302 stacked",
  "ǅ titlecase",
  "&amp; &lt;b&gt; tom &amp;amp; jerry", // no HTML unescaping in HF
  "a<|endoftext|>b",
  "!!<|endoftext|>",
  "<|startoftext|> a cat <|endoftext|>",
  "<|ENDOFTEXT|>",
  "\ud83d lone surrogate",
  "photo photograph photographic photorealistic",
  "astronaut riding a horse on mars, digital art, octane render",
  "a ".repeat(75).trim(), // exactly 77 ids
  "a ".repeat(76).trim(), // one too many
  "a ".repeat(200),
  LONG,
  LONG.toUpperCase() + " " + LONG,
  "😀".repeat(40),
  "1234567890".repeat(10),
];

// deno-lint-ignore no-explicit-any
type HfTokenizer = any;

/** HF's CLIPTokenizerFast from `root/name/tokenizer.json` (+ tokenizer_config.json), offline. */
async function hfFrom(root: string, name: string): Promise<HfTokenizer> {
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = `${root}/`;
  return await AutoTokenizer.from_pretrained(name);
}

/** Python's padded row: `[bos, body[:ctx-2], eos]` padded with `pad` to `ctx`, and its mask. */
function pythonRow(hf: HfTokenizer, text: string, ctx = 77) {
  const body: number[] = hf.encode(text, { add_special_tokens: false });
  const kept = [hf.bos_token_id, ...body.slice(0, ctx - 2), hf.eos_token_id];
  const ids = [...kept, ...new Array(ctx - kept.length).fill(hf.pad_token_id)];
  const mask = ids.map((_, i) => (i < kept.length ? 1 : 0));
  return { ids, mask, body };
}

let files: ClipTestVocab | undefined;
const vocab = () => (files ??= buildClipTestVocab());

function compareAll(kit: ClipBpeTokenizer, hf: HfTokenizer, label: string) {
  const mismatches: string[] = [];
  for (const text of PROMPTS) {
    // Unpadded, with special tokens: HF's encode vs the kit's text ids.
    const hfIds: number[] = hf.encode(text);
    const kitIds = [kit.startId, ...kit.textIds(text), kit.endId];
    if (JSON.stringify(hfIds) !== JSON.stringify(kitIds)) {
      mismatches.push(
        `${JSON.stringify(text)}\n  hf  ${JSON.stringify(hf.tokenize(text))}\n  kit ${
          JSON.stringify(kit.tokenize(text))
        }`,
      );
      continue;
    }
    // The 77-id row: truncation keeps the end token, padding with the pad token, mask.
    const want = pythonRow(hf, text);
    const got = kit.encode(text);
    assert.deepEqual([...got.ids], want.ids, `${label}: row of ${JSON.stringify(text)}`);
    assert.deepEqual(
      [...got.attentionMask],
      want.mask,
      `${label}: mask of ${JSON.stringify(text)}`,
    );
    assert.equal(got.truncated, want.body.length > 75);
    if (want.body.length <= 75) {
      // Short enough that the JS port's own padding applies unchanged.
      const enc = hf(text, {
        padding: "max_length",
        max_length: 77,
        truncation: true,
        return_tensor: false,
      });
      assert.deepEqual([...got.ids], enc.input_ids, `${label}: HF padded ${JSON.stringify(text)}`);
      assert.deepEqual([...got.attentionMask], enc.attention_mask);
    }
  }
  assert.deepEqual(mismatches, [], `${label}: ids differ from Hugging Face's`);
  // A batch gives the same rows.
  const batch = kit.encodeBatch(PROMPTS);
  PROMPTS.forEach((text, i) => {
    assert.deepEqual([...batch.ids.subarray(i * 77, (i + 1) * 77)], pythonRow(hf, text).ids);
  });
}

Deno.test("CLIP BPE vs Hugging Face: vocab.json + merges.txt give HF's ids on hard prompts", async () => {
  await withTempDir("xgen_clip_hf_", async (root) => {
    await writeClipTestVocab(`${root}/slow`, vocab(), "slow");
    await writeClipTestVocab(`${root}/fast`, vocab(), "fast");
    const hf = await hfFrom(root, "fast");
    assert.equal(hf.constructor.name, "CLIPTokenizer");
    assert.ok(Object.keys(vocab().vocab).length > 512 + 300, "non-trivial merges");
    compareAll(await ClipBpeTokenizer.load(`${root}/slow`), hf, "vocab.json + merges.txt");
  });
});

Deno.test("CLIP BPE vs Hugging Face: tokenizer.json gives HF's ids (both merge forms)", async () => {
  await withTempDir("xgen_clip_hf_", async (root) => {
    await writeClipTestVocab(`${root}/fast`, vocab(), "fast");
    const hf = await hfFrom(root, "fast");
    compareAll(await ClipBpeTokenizer.load(`${root}/fast`), hf, "tokenizer.json");
    // Newer tokenizers write merges as [a, b] pairs; HF reads the same file.
    await Deno.mkdir(`${root}/pairs`);
    await Deno.writeTextFile(
      `${root}/pairs/tokenizer.json`,
      JSON.stringify(clipTokenizerJson(vocab(), true)),
    );
    await Deno.copyFile(
      `${root}/fast/tokenizer_config.json`,
      `${root}/pairs/tokenizer_config.json`,
    );
    const hfPairs = await hfFrom(root, "pairs");
    compareAll(await ClipBpeTokenizer.load(`${root}/pairs`), hfPairs, "tokenizer.json pairs");
  });
});

Deno.test("CLIP BPE vs Hugging Face: SD 2 style pad token '!' from tokenizer_config.json", async () => {
  await withTempDir("xgen_clip_hf_", async (root) => {
    await writeClipTestVocab(`${root}/slow`, vocab(), "slow", "!");
    await writeClipTestVocab(`${root}/fast`, vocab(), "fast", "!");
    const hf = await hfFrom(root, "fast");
    assert.equal(hf.pad_token_id, vocab().vocab["!"]);
    for (const dir of ["slow", "fast"]) {
      const tok = await loadTextIdsTokenizer(`${root}/${dir}`);
      const enc = tok.encodeBatch(PROMPTS);
      PROMPTS.forEach((text, i) => {
        const want = pythonRow(hf, text);
        assert.deepEqual([...enc.ids.subarray(i * 77, (i + 1) * 77)], want.ids, `${dir} ${text}`);
        assert.deepEqual([...enc.attentionMask.subarray(i * 77, (i + 1) * 77)], want.mask);
      });
    }
  });
});

Deno.test("CLIP BPE vs Hugging Face: the JS port's truncation drops the end token (Python keeps it)", async () => {
  await withTempDir("xgen_clip_hf_", async (root) => {
    await writeClipTestVocab(`${root}/fast`, vocab(), "fast");
    const hf = await hfFrom(root, "fast");
    const js = hf(LONG, {
      padding: "max_length",
      max_length: 77,
      truncation: true,
      return_tensor: false,
    })
      .input_ids as number[];
    assert.equal(js.length, 77);
    assert.notEqual(js[76], hf.eos_token_id); // the JS port cuts the id list
    const kit = (await ClipBpeTokenizer.load(`${root}/fast`)).encode(LONG);
    assert.equal(kit.ids[76], hf.eos_token_id); // the kit, like Python, keeps <|endoftext|>
    assert.deepEqual([...kit.ids.subarray(0, 76)], js.slice(0, 76));
  });
});

Deno.test("CLIP BPE folders: one-line errors for missing or non-CLIP tokenizer files", async () => {
  await withTempDir("xgen_clip_hf_", async (root) => {
    const expected =
      /^[^\n]*empty: no (CLIP )?tokenizer files; expected vocab\.json \+ merges\.txt \(CLIPTokenizer\) or tokenizer\.json \(CLIPTokenizerFast\)[^\n]*$/;
    await Deno.mkdir(`${root}/empty`);
    await assert.rejects(ClipBpeTokenizer.load(`${root}/empty`), expected);
    await assert.rejects(loadTextIdsTokenizer(`${root}/empty`), expected);
    await assert.rejects(
      loadTextIdsTokenizer(`${root}/empty`),
      /or the kit's word_tokenizer\.json/,
    );

    await Deno.mkdir(`${root}/wordpiece`);
    await Deno.writeTextFile(
      `${root}/wordpiece/tokenizer.json`,
      JSON.stringify({ model: { type: "WordPiece", vocab: {} } }),
    );
    await assert.rejects(
      ClipBpeTokenizer.load(`${root}/wordpiece`),
      /wordpiece\/tokenizer\.json: expected a Hugging Face tokenizer\.json with a BPE model, got model\.type "WordPiece"/,
    );
    const gpt2 = clipTokenizerJson(vocab());
    (gpt2.model as Record<string, unknown>).end_of_word_suffix = "";
    await Deno.mkdir(`${root}/gpt2`);
    await Deno.writeTextFile(`${root}/gpt2/tokenizer.json`, JSON.stringify(gpt2));
    await assert.rejects(
      ClipBpeTokenizer.load(`${root}/gpt2`),
      /gpt2\/tokenizer\.json: model\.end_of_word_suffix is "", not "<\/w>"/,
    );
  });
});
