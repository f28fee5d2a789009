/**
 * A CLIP-format BPE vocabulary learned from a small corpus, written in both Hugging Face layouts:
 * `vocab.json` + `merges.txt` (CLIPTokenizer) and `tokenizer.json` (CLIPTokenizerFast, with
 * CLIP's normalizer, pre-tokenizer, post-processor and decoder). Real CLIP files cannot be
 * downloaded in the test environment, so the tests compare tokenizers on this one instead.
 *
 * The layout follows `openai/clip-vit-large-patch14`: the 256 byte symbols (GPT-2's
 * `bytes_to_unicode` order), the same 256 with `</w>`, one token per merge, then
 * `<|startoftext|>` and `<|endoftext|>`. The merges are learned by plain BPE on the corpus, so
 * they are non-trivial (multi-byte UTF-8 merges, digits, punctuation runs, contractions).
 *
 * @example
 * ```ts
 * const files = buildClipTestVocab();
 * await writeClipTestVocab("tok", files, "both");
 * ```
 * @module
 */

/** CLIP's start token. */
export const START = "<|startoftext|>";
/** CLIP's end token. */
export const END = "<|endoftext|>";

/** GPT-2's byte -> printable character table, written out independently of the kit. */
function byteTable(): string[] {
  const keep: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) keep.push(b);
  for (let b = 0xa1; b <= 0xac; b++) keep.push(b);
  for (let b = 0xae; b <= 0xff; b++) keep.push(b);
  const table = new Array<string>(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    table[b] = String.fromCodePoint(keep.includes(b) ? b : 256 + n++);
  }
  return table;
}

/** CLIP's pre-tokenizer regex (as in `tokenizer.json` of openai/clip-vit-*). */
export const CLIP_PATTERN =
  "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+";

/** Training text: accents, emoji, digits, punctuation runs, contractions, several scripts. */
const CORPUS = [
  "a photo of a cat sitting on the red chair",
  "a painting of the old city at night, trending on artstation",
  "the quick brown fox jumps over the lazy dog",
  "it's a beautiful day; we're going to the café and they've said i'm late",
  "don't stop, won't stop, can't stop! he'll say she'd go",
  "café crème brûlée naïve résumé façade jalapeño über straße",
  "déjà vu à la carte, piñata, smörgåsbord, crêpe, fiancée",
  "portrait of a woman, highly detailed, 4k, 8k, hdr, 1920x1080, f/1.8, 50mm",
  "1234567890 2023 1999 3.14159 100% 42",
  "!!! ??? ... --- *** ((( ))) [[ ]] {{ }} :) :-) ;-) <3 ->",
  "emoji 😀😀 🎨 🐱 🚀 ❤️ 👍🏽 👨‍👩‍👧 🇯🇵",
  "東京 の 夜景 写真 , 猫 と 犬 ; сказка о рыбаке и рыбке ; Ελληνικά γράμματα ; עברית",
  "photo photo photo photograph photographic photorealistic painting painted painter",
  "the the the a a a of of of and and and",
  "astronaut riding a horse on mars, digital art, octane render, unreal engine",
  "a dog's bone and the cats' toys, rock'n'roll, o'clock",
];

/** Files of a CLIP test vocabulary. */
export interface ClipTestVocab {
  /** Token -> id. */
  vocab: Record<string, number>;
  /** Merge pairs in rank order. */
  merges: [string, string][];
}

/**
 * Learn `numMerges` BPE merges from the corpus and lay the vocabulary out as CLIP does.
 *
 * @example
 * ```ts
 * const { vocab, merges } = buildClipTestVocab(300);
 * ```
 */
export function buildClipTestVocab(numMerges = 400): ClipTestVocab {
  const table = byteTable();
  const re = new RegExp(CLIP_PATTERN, "gu");
  const enc = new TextEncoder();
  const words = new Map<string, number>();
  for (const line of CORPUS) {
    const text = line.normalize("NFC").replace(/\s+/gu, " ").toLowerCase();
    for (const w of text.match(re) ?? []) {
      const key = [...enc.encode(w)].map((b) => table[b]).join("\u0000");
      words.set(key, (words.get(key) ?? 0) + 1);
    }
  }
  // Words as symbol lists, the last marked with </w>.
  let segs = [...words].map(([k, n]) => {
    const s = k.split("\u0000");
    s[s.length - 1] += "</w>";
    return { s, n };
  });
  const merges: [string, string][] = [];
  for (let m = 0; m < numMerges; m++) {
    const counts = new Map<string, number>();
    for (const { s, n } of segs) {
      for (let i = 0; i + 1 < s.length; i++) {
        const k = `${s[i]} ${s[i + 1]}`;
        counts.set(k, (counts.get(k) ?? 0) + n);
      }
    }
    let best = "";
    let bestN = 0;
    for (const [k, n] of counts) {
      if (n > bestN || (n === bestN && k < best)) {
        best = k;
        bestN = n;
      }
    }
    if (bestN === 0) break;
    const [a, b] = best.split(" ");
    merges.push([a, b]);
    segs = segs.map(({ s, n }) => {
      const out: string[] = [];
      for (let i = 0; i < s.length;) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          out.push(a + b);
          i += 2;
        } else out.push(s[i++]);
      }
      return { s: out, n };
    });
  }
  const tokens = [...table, ...table.map((c) => c + "</w>"), ...merges.map(([a, b]) => a + b)];
  const vocab: Record<string, number> = {};
  for (const t of [...tokens, START, END]) {
    if (!(t in vocab)) vocab[t] = Object.keys(vocab).length;
  }
  return { vocab, merges };
}

/**
 * The `tokenizer.json` of CLIPTokenizerFast for a vocabulary (openai/clip-vit-large-patch14's
 * pipeline: NFC, whitespace runs -> " ", lower-case; CLIP regex split; byte-level; BPE with
 * `</w>`; `<|startoftext|>` ... `<|endoftext|>`).
 *
 * @example
 * ```ts
 * const json = clipTokenizerJson(buildClipTestVocab());
 * ```
 */
export function clipTokenizerJson(
  { vocab, merges }: ClipTestVocab,
  mergesAsPairs = false,
): Record<string, unknown> {
  const special = (content: string) => ({
    id: vocab[content],
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: true,
    special: true,
  });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [special(START), special(END)],
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "NFC" },
        { type: "Replace", pattern: { Regex: "\\s+" }, content: " " },
        { type: "Lowercase" },
      ],
    },
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        {
          type: "Split",
          pattern: { Regex: CLIP_PATTERN },
          behavior: "Removed",
          invert: true,
        },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: "RobertaProcessing",
      sep: [END, vocab[END]],
      cls: [START, vocab[START]],
      trim_offsets: false,
      add_prefix_space: false,
    },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: END,
      continuing_subword_prefix: "",
      end_of_word_suffix: "</w>",
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges: mergesAsPairs ? merges : merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

/** `tokenizer_config.json` as openai/clip-vit-large-patch14 ships it (pad = end token). */
export function clipTokenizerConfig(padToken = END): Record<string, unknown> {
  return {
    add_prefix_space: false,
    bos_token: START,
    do_lower_case: true,
    eos_token: END,
    errors: "replace",
    model_max_length: 77,
    pad_token: padToken,
    tokenizer_class: "CLIPTokenizer",
    unk_token: END,
  };
}

/**
 * Write the vocabulary into `dir`: "slow" (vocab.json + merges.txt), "fast" (tokenizer.json) or
 * "both"; always with tokenizer_config.json.
 *
 * @example
 * ```ts
 * await writeClipTestVocab("tok", buildClipTestVocab(), "fast");
 * ```
 */
export async function writeClipTestVocab(
  dir: string,
  files: ClipTestVocab,
  layout: "slow" | "fast" | "both",
  padToken = END,
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  if (layout !== "fast") {
    await Deno.writeTextFile(`${dir}/vocab.json`, JSON.stringify(files.vocab));
    const lines = ["#version: 0.2", ...files.merges.map(([a, b]) => `${a} ${b}`)];
    await Deno.writeTextFile(`${dir}/merges.txt`, lines.join("\n") + "\n");
  }
  if (layout !== "slow") {
    await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(clipTokenizerJson(files)));
  }
  await Deno.writeTextFile(
    `${dir}/tokenizer_config.json`,
    JSON.stringify(clipTokenizerConfig(padToken)),
  );
}
