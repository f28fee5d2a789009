/**
 * CLIP's byte-level BPE tokenizer, reading the Hugging Face tokenizer files (`vocab.json` +
 * `merges.txt`) of a pretrained CLIP text encoder (e.g. `openai/clip-vit-large-patch14`, the one
 * Stable Diffusion v1 and XGen-Image-1 reuse).
 *
 * Pipeline (as Hugging Face's `CLIPTokenizerFast`, i.e. the `tokenizer.json` pipeline):
 * NFC-normalise, collapse Unicode `White_Space` runs, lower-case, split off the special tokens,
 * split the rest with CLIP's regex, map each UTF-8 byte to a printable character (GPT-2's
 * `bytes_to_unicode`), mark the word end with `</w>`, merge pairs by rank, then add
 * `<|startoftext|>` / `<|endoftext|>` and pad or truncate to the context length (77), keeping
 * the end token. OpenAI's `simple_tokenizer.py` also HTML-unescapes twice (option
 * `htmlUnescape`); `ftfy.fix_text` (mojibake repair) is not applied. Ids are checked against
 * `@huggingface/transformers` in `tests/models_clip_bpe_hf.test.ts`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClipBpeTokenizer } from "./clip_bpe_tokenizer.ts";
 *
 * // A tiny committed vocabulary; with SD's real one, ids are [49406, 320, 1125, 539, ...].
 * const tok = await ClipBpeTokenizer.load("tests/fixtures/tiny_sd/fp32_scalar_t/tokenizer");
 * const { ids, attentionMask } = tok.encode("a red circle");
 * assert.deepEqual([...ids.slice(0, 6)], [519, 320, 513, 518, 520, 520]); // start, 3 words, end, pad
 * assert.deepEqual([...attentionMask.slice(0, 6)], [1, 1, 1, 1, 1, 0]);
 * ```
 * @module
 */

/** CLIP's start token. */
export const CLIP_START_TOKEN = "<|startoftext|>";
/** CLIP's end token (also the default pad and unknown token). */
export const CLIP_END_TOKEN = "<|endoftext|>";
/** CLIP's context length. */
export const CLIP_CONTEXT_LENGTH = 77;

/** Marks the last symbol of a word. */
const WORD_END = "</w>";

/**
 * CLIP's pre-tokenizer regex: special tokens, English contractions, letter runs, single digits,
 * runs of other non-space characters. Applied to lower-cased text; `i` kept as in CLIP.
 * Whitespace is Unicode `White_Space` as in Rust's `\s` (JavaScript's `\s` also takes U+FEFF
 * and misses U+0085), and a punctuation run stops before a special token, which Hugging Face
 * splits off before the regex runs.
 */
const CLIP_SPLIT_RE =
  /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|(?:(?!<\|startoftext\|>|<\|endoftext\|>)[^\p{White_Space}\p{L}\p{N}])+/giu;

/** Options of {@link ClipBpeTokenizer}. */
export interface ClipBpeTokenizerOptions {
  /** Ids per encoded text including start and end tokens (default 77). */
  contextLength?: number;
  /**
   * Token used for padding (default `<|endoftext|>`, as `openai/clip-vit-large-patch14`; Stable
   * Diffusion 2's tokenizer pads with `"!"`).
   */
  padToken?: string;
  /**
   * Token for symbols missing from the vocabulary (default `<|endoftext|>` as in Hugging Face);
   * `null` makes unknown symbols an error. A full CLIP vocabulary holds every byte, so this only
   * matters for reduced vocabularies.
   */
  unkToken?: string | null;
  /** Truncate overlong texts (default true); false makes them an error. */
  truncate?: boolean;
  /**
   * HTML-unescape the text twice first, as OpenAI's `simple_tokenizer.py` (and Hugging Face's
   * slow CLIPTokenizer with `ftfy` installed) do; default false, as CLIPTokenizerFast.
   */
  htmlUnescape?: boolean;
}

/** Where the tokenizer files come from, for {@link ClipBpeTokenizer.load}. */
export interface ClipBpePaths {
  /** Path of `vocab.json`. */
  vocab: string;
  /** Path of `merges.txt`. */
  merges: string;
}

/** What a tokenizer folder must hold, for errors. */
export const CLIP_BPE_FILES = "vocab.json + merges.txt (CLIPTokenizer) or tokenizer.json " +
  "(CLIPTokenizerFast)";

/**
 * Whether `dir` holds CLIP BPE tokenizer files: `vocab.json` or `tokenizer.json` (incomplete
 * sets are left for {@link ClipBpeTokenizer.load} to report).
 *
 * @example
 * ```ts
 * if (await hasClipBpeFiles("sd15/tokenizer")) await ClipBpeTokenizer.load("sd15/tokenizer");
 * ```
 */
export async function hasClipBpeFiles(dir: string): Promise<boolean> {
  for (const f of ["vocab.json", "tokenizer.json"]) {
    if (await Deno.stat(`${dir}/${f}`).then((s) => s.isFile, () => false)) return true;
  }
  return false;
}

/** In-memory tokenizer data, for {@link ClipBpeTokenizer.fromData}. */
export interface ClipBpeData {
  /** Token -> id (parsed `vocab.json`), or its JSON text. */
  vocab: Record<string, number> | string;
  /**
   * `merges.txt` text (optional `#version` header, one `a b` pair per line), or the pairs, or
   * `"a b"` strings (the older `tokenizer.json` form).
   */
  merges: string | readonly (readonly [string, string])[] | readonly string[];
  /** Name of the vocabulary in errors (default "vocab.json"). */
  vocabSource?: string;
  /** Name of the merges in errors (default "merges.txt"). */
  mergesSource?: string;
}

/** One encoded text. */
export interface ClipEncoding {
  /** Token ids, `contextLength` long. */
  ids: Int32Array;
  /** 1 for start, text and end tokens, 0 for padding. */
  attentionMask: Int32Array;
  /** Number of real tokens (start + text + end) kept. */
  length: number;
  /** Whether text tokens were dropped to fit. */
  truncated: boolean;
}

/** A batch of encoded texts, row-major `[batch, contextLength]`. */
export interface ClipBatchEncoding {
  /** Token ids. */
  ids: Int32Array;
  /** Attention mask. */
  attentionMask: Int32Array;
  /** `[batch, contextLength]`. */
  shape: [number, number];
}

/**
 * GPT-2's reversible byte -> character table: printable Latin-1 bytes map to themselves, the
 * others (controls, space, DEL, NBSP, soft hyphen) to code points from 256 upwards, in byte
 * order. BPE then works on strings without whitespace or control characters.
 *
 * @example
 * ```ts
 * const table = bytesToUnicode();
 * table[0x20]; // "Ġ" (space)
 * table[0x41]; // "A"
 * ```
 */
export function bytesToUnicode(): string[] {
  const printable = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table = new Array<string>(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    table[b] = String.fromCodePoint(printable(b) ? b : next++);
  }
  return table;
}

const BYTE_ENCODER = bytesToUnicode();
const BYTE_DECODER = new Map(BYTE_ENCODER.map((c, b) => [c, b]));

const NAMED_ENTITIES: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
  nbsp: "\u00a0",
};

/** Decode the HTML entities that captions scraped from the web commonly hold. */
function htmlUnescape(text: string): string {
  return text.replace(/&(#[0-9]+|#[xX][0-9a-fA-F]+|[a-zA-Z]+);/g, (m, body: string) => {
    if (body[0] === "#") {
      const code = body[1] === "x" || body[1] === "X"
        ? parseInt(body.slice(2), 16)
        : parseInt(body.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : m;
    }
    return NAMED_ENTITIES[body.toLowerCase()] ?? m;
  });
}

/**
 * CLIP's text clean-up before splitting: optionally HTML-unescape twice (OpenAI's original),
 * NFC, collapse Unicode `White_Space` runs to one space, trim spaces, lower-case.
 *
 * @example
 * ```ts
 * cleanClipText("  Tom &amp;amp; JERRY\n\n"); // "tom &amp;amp; jerry"
 * cleanClipText("Tom &amp;amp; JERRY", { htmlUnescape: true }); // "tom & jerry"
 * ```
 */
export function cleanClipText(text: string, opts: { htmlUnescape?: boolean } = {}): string {
  const t = opts.htmlUnescape ? htmlUnescape(htmlUnescape(text)) : text;
  // Not \s nor trim(): JavaScript's whitespace includes U+FEFF and lacks U+0085.
  return t.normalize("NFC").replace(/\p{White_Space}+/gu, " ").replace(/^ | $/g, "")
    .toLowerCase();
}

/**
 * Split cleaned text into CLIP's pre-tokens.
 *
 * @example
 * ```ts
 * splitClipWords("it's 2023!!"); // ["it", "'s", "2", "0", "2", "3", "!!"]
 * ```
 */
export function splitClipWords(cleaned: string): string[] {
  return cleaned.match(CLIP_SPLIT_RE) ?? [];
}

function parseVocab(vocab: Record<string, number> | string, source: string): Map<string, number> {
  let obj: unknown = vocab;
  if (typeof vocab === "string") {
    try {
      obj = JSON.parse(vocab);
    } catch (e) {
      throw new Error(`${source}: not valid JSON (${(e as Error).message})`);
    }
  }
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
    throw new Error(`${source}: expected a JSON object mapping token -> id`);
  }
  const map = new Map<string, number>();
  const byId = new Map<number, string>();
  for (const [token, id] of Object.entries(obj as Record<string, unknown>)) {
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0) {
      throw new Error(
        `${source}: token ${JSON.stringify(token)} has id ${
          JSON.stringify(id)
        }, expected a non-negative integer`,
      );
    }
    const other = byId.get(id);
    if (other !== undefined) {
      throw new Error(
        `${source}: id ${id} is used by both ${JSON.stringify(other)} and ${JSON.stringify(token)}`,
      );
    }
    byId.set(id, token);
    map.set(token, id);
  }
  if (map.size === 0) throw new Error(`${source}: the vocabulary is empty`);
  return map;
}

function parseMerges(
  merges: string | readonly (readonly [string, string])[] | readonly string[],
  source: string,
): [string, string][] {
  if (typeof merges !== "string") {
    return merges.map((m, i) => {
      const pair = typeof m === "string" ? m.split(" ") : m;
      if (
        !Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== "string" ||
        typeof pair[1] !== "string" || pair[0] === "" || pair[1] === ""
      ) {
        throw new Error(
          `${source}: merge #${i + 1} is not a pair of symbols: ${JSON.stringify(m)}`,
        );
      }
      return [pair[0], pair[1]];
    });
  }
  const out: [string, string][] = [];
  const lines = merges.split(/\r?\n/);
  lines.forEach((line, i) => {
    if (line === "" || (i === 0 && line.startsWith("#version"))) return;
    const parts = line.split(" ");
    if (parts.length !== 2 || parts[0] === "" || parts[1] === "") {
      throw new Error(
        `${source} line ${i + 1}: expected two symbols separated by one space, got ${
          JSON.stringify(line)
        }`,
      );
    }
    out.push([parts[0], parts[1]]);
  });
  return out;
}

/**
 * CLIP's byte-level BPE tokenizer. Build with {@link ClipBpeTokenizer.load} (files) or
 * {@link ClipBpeTokenizer.fromData} (in memory).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClipBpeTokenizer } from "./clip_bpe_tokenizer.ts";
 *
 * const tok = await ClipBpeTokenizer.load("tests/fixtures/tiny_sd/fp32_scalar_t/tokenizer");
 * const batch = tok.encodeBatch(["a red circle", "a cat"]);
 * assert.deepEqual(batch.shape, [2, 77]);
 * ```
 */
export class ClipBpeTokenizer {
  /** Ids per encoded text. */
  readonly contextLength: number;
  /** Id of `<|startoftext|>`. */
  readonly startId: number;
  /** Id of `<|endoftext|>`. */
  readonly endId: number;
  /** Id used for padding. */
  readonly padId: number;
  /** Id for unknown symbols, or null when they are an error. */
  readonly unkId: number | null;
  private readonly truncate: boolean;
  private readonly htmlUnescape: boolean;
  private readonly encoder: Map<string, number>;
  private readonly decoder: Map<number, string>;
  private readonly ranks: Map<string, number>;
  private readonly cache = new Map<string, string[]>();
  private readonly vocabSource: string;

  private constructor(
    encoder: Map<string, number>,
    merges: [string, string][],
    opts: ClipBpeTokenizerOptions,
    sources: { vocab: string; merges: string },
  ) {
    const ctx = opts.contextLength ?? CLIP_CONTEXT_LENGTH;
    if (!Number.isInteger(ctx) || ctx < 2) {
      throw new Error(`ClipBpeTokenizer: contextLength must be an integer >= 2, got ${ctx}`);
    }
    const need = (token: string, what: string): number => {
      const id = encoder.get(token);
      if (id === undefined) {
        throw new Error(
          `${sources.vocab}: ${what} ${JSON.stringify(token)} is not in the vocabulary`,
        );
      }
      return id;
    };
    this.contextLength = ctx;
    this.startId = need(CLIP_START_TOKEN, "start token");
    this.endId = need(CLIP_END_TOKEN, "end token");
    this.padId = need(opts.padToken ?? CLIP_END_TOKEN, "pad token");
    const unk = opts.unkToken === undefined ? CLIP_END_TOKEN : opts.unkToken;
    this.unkId = unk === null ? null : need(unk, "unknown token");
    this.truncate = opts.truncate ?? true;
    this.htmlUnescape = opts.htmlUnescape ?? false;
    this.encoder = encoder;
    this.decoder = new Map([...encoder].map(([t, i]) => [i, t]));
    this.vocabSource = sources.vocab;
    this.ranks = new Map();
    merges.forEach(([a, b], rank) => {
      const key = `${a} ${b}`;
      // A merge whose result has no id could never be emitted: the files do not belong together.
      if (!encoder.has(a + b)) {
        throw new Error(
          `${sources.merges}: merge #${rank + 1} "${key}" makes ${
            JSON.stringify(a + b)
          }, which is not in ${sources.vocab}`,
        );
      }
      if (!this.ranks.has(key)) this.ranks.set(key, rank);
    });
    // The special tokens are words of their own, never split (as CLIP seeds its BPE cache).
    this.cache.set(CLIP_START_TOKEN, [CLIP_START_TOKEN]);
    this.cache.set(CLIP_END_TOKEN, [CLIP_END_TOKEN]);
  }

  /**
   * Build from in-memory vocabulary and merges.
   *
   * @example
   * ```ts
   * const tok = ClipBpeTokenizer.fromData({ vocab: { "a</w>": 0, "<|startoftext|>": 1,
   *   "<|endoftext|>": 2 }, merges: "#version: 0.2\n" });
   * ```
   */
  static fromData(data: ClipBpeData, opts: ClipBpeTokenizerOptions = {}): ClipBpeTokenizer {
    const vocabSource = data.vocabSource ?? "vocab.json";
    const mergesSource = data.mergesSource ?? "merges.txt";
    return new ClipBpeTokenizer(
      parseVocab(data.vocab, vocabSource),
      parseMerges(data.merges, mergesSource),
      opts,
      { vocab: vocabSource, merges: mergesSource },
    );
  }

  /**
   * Build from a Hugging Face `tokenizer.json` (CLIPTokenizerFast): its BPE model's `vocab` and
   * `merges` (either form). `source` names it in errors.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ClipBpeTokenizer } from "./clip_bpe_tokenizer.ts";
   *
   * // A Hugging Face tokenizer.json with a BPE model (here: a two-merge toy vocabulary).
   * const vocab = { "a</w>": 0, c: 1, a: 2, "t</w>": 3, ca: 4, "cat</w>": 5 };
   * Object.assign(vocab, { "<|startoftext|>": 6, "<|endoftext|>": 7 });
   * const merges = ["c a", "ca t</w>"];
   * const model = { type: "BPE", vocab, merges, end_of_word_suffix: "</w>" };
   * const tok = ClipBpeTokenizer.fromTokenizerJson({ model });

   * assert.deepEqual(tok.textIds("a cat"), [0, 5]);

   * ```
   */
  static fromTokenizerJson(
    json: string | Record<string, unknown>,
    opts: ClipBpeTokenizerOptions = {},
    source = "tokenizer.json",
  ): ClipBpeTokenizer {
    let obj: unknown = json;
    if (typeof json === "string") {
      try {
        obj = JSON.parse(json);
      } catch (e) {
        throw new Error(`${source}: not valid JSON (${(e as Error).message})`);
      }
    }
    const model = (obj as { model?: Record<string, unknown> } | null)?.model;
    if (!model || typeof model !== "object" || model.type !== "BPE") {
      throw new Error(
        `${source}: expected a Hugging Face tokenizer.json with a BPE model, got model.type ${
          JSON.stringify(model?.type)
        }`,
      );
    }
    if (model.end_of_word_suffix !== WORD_END) {
      throw new Error(
        `${source}: model.end_of_word_suffix is ${
          JSON.stringify(model.end_of_word_suffix)
        }, not "${WORD_END}": not a CLIP BPE tokenizer`,
      );
    }
    if (!Array.isArray(model.merges)) throw new Error(`${source}: model.merges is not a list`);
    return ClipBpeTokenizer.fromData({
      vocab: model.vocab as Record<string, number>,
      merges: model.merges as string[],
      vocabSource: `${source} (model.vocab)`,
      mergesSource: `${source} (model.merges)`,
    }, opts);
  }

  /**
   * Read a tokenizer folder (a Hugging Face `tokenizer/` folder: `vocab.json` + `merges.txt`,
   * else `tokenizer.json`) or explicit `vocab.json` / `merges.txt` paths.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ClipBpeTokenizer } from "./clip_bpe_tokenizer.ts";
   *
   * const dir = "tests/fixtures/tiny_sd/fp32_scalar_t/tokenizer"; // e.g. "sd15/tokenizer"
   * const tok = await ClipBpeTokenizer.load(dir);
   * const tok2 = await ClipBpeTokenizer.load({ vocab: `${dir}/vocab.json`, merges: `${dir}/merges.txt` });
   * assert.deepEqual(tok2.textIds("a cat"), tok.textIds("a cat"));
   * ```
   */
  static async load(
    where: string | ClipBpePaths,
    opts: ClipBpeTokenizerOptions = {},
  ): Promise<ClipBpeTokenizer> {
    if (typeof where === "string") {
      const isFile = (f: string) => Deno.stat(`${where}/${f}`).then((s) => s.isFile, () => false);
      const [v, m, t] = await Promise.all(
        ["vocab.json", "merges.txt", "tokenizer.json"].map(isFile),
      );
      if (!(v && m) && t) {
        const path = `${where}/tokenizer.json`;
        return ClipBpeTokenizer.fromTokenizerJson(await Deno.readTextFile(path), opts, path);
      }
      if (!v && !m) {
        throw new Error(`${where}: no CLIP tokenizer files; expected ${CLIP_BPE_FILES}`);
      }
    }
    const paths = typeof where === "string"
      ? { vocab: `${where}/vocab.json`, merges: `${where}/merges.txt` }
      : where;
    const read = async (path: string) => {
      try {
        return await Deno.readTextFile(path);
      } catch (e) {
        throw new Error(`${path}: cannot read tokenizer file (${(e as Error).message})`);
      }
    };
    // allSettled, not all: with both files missing, Promise.all rejects with whichever read
    // fails first, so the error would name a random file; report them in a fixed order.
    const [v, m] = await Promise.allSettled([read(paths.vocab), read(paths.merges)]);
    if (v.status === "rejected") throw v.reason;
    if (m.status === "rejected") throw m.reason;
    const vocab = v.value, merges = m.value;
    return ClipBpeTokenizer.fromData(
      { vocab, merges, vocabSource: paths.vocab, mergesSource: paths.merges },
      opts,
    );
  }

  /**
   * Vocabulary size (rows of the token embedding): largest id + 1.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ClipBpeTokenizer } from "./clip_bpe_tokenizer.ts";
   *
   * const tok = await ClipBpeTokenizer.load("tests/fixtures/tiny_sd/fp32_scalar_t/tokenizer");
   * assert.equal(tok.vocabSize, 521); // a tiny test vocabulary; 49408 for CLIP
   * ```
   */
  get vocabSize(): number {
    let max = -1;
    for (const id of this.encoder.values()) max = Math.max(max, id);
    return max + 1;
  }

  /** BPE of one pre-token (already byte-mapped), cached. */
  private bpe(word: string): string[] {
    const hit = this.cache.get(word);
    if (hit) return hit;
    const chars = [...word];
    let symbols = [...chars.slice(0, -1), chars[chars.length - 1] + WORD_END];
    while (symbols.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < symbols.length; i++) {
        const r = this.ranks.get(`${symbols[i]} ${symbols[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const first = symbols[best];
      const second = symbols[best + 1];
      // Merge every non-overlapping occurrence of the pair, left to right.
      const merged: string[] = [];
      for (let i = 0; i < symbols.length;) {
        if (i + 1 < symbols.length && symbols[i] === first && symbols[i + 1] === second) {
          merged.push(first + second);
          i += 2;
        } else {
          merged.push(symbols[i]);
          i += 1;
        }
      }
      symbols = merged;
    }
    // Bound the cache so a long-running server tokenizing arbitrary text does not grow forever.
    if (this.cache.size > 100_000) {
      this.cache.clear();
      this.cache.set(CLIP_START_TOKEN, [CLIP_START_TOKEN]);
      this.cache.set(CLIP_END_TOKEN, [CLIP_END_TOKEN]);
    }
    this.cache.set(word, symbols);
    return symbols;
  }

  /**
   * BPE tokens of a text, without start/end tokens or padding.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ClipBpeTokenizer } from "./clip_bpe_tokenizer.ts";
   *
   * // With CLIP's vocabulary "a photo" gives ["a</w>", "photo</w>"]; this tiny one has fewer merges.
   * const tok = await ClipBpeTokenizer.load("tests/fixtures/tiny_sd/fp32_scalar_t/tokenizer");
   * assert.deepEqual(tok.tokenize("a cat"), ["a</w>", "c", "a", "t</w>"]);
   * ```
   */
  tokenize(text: string): string[] {
    const utf8 = new TextEncoder();
    const out: string[] = [];
    for (const word of splitClipWords(cleanClipText(text, { htmlUnescape: this.htmlUnescape }))) {
      let mapped = "";
      for (const b of utf8.encode(word)) mapped += BYTE_ENCODER[b];
      out.push(...this.bpe(mapped));
    }
    return out;
  }

  /**
   * Ids of a text's BPE tokens, without start/end tokens or padding.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ClipBpeTokenizer } from "./clip_bpe_tokenizer.ts";
   *
   * const tok = await ClipBpeTokenizer.load("tests/fixtures/tiny_sd/fp32_scalar_t/tokenizer");
   * assert.deepEqual(tok.textIds("a cat"), [320, 66, 64, 339]); // CLIP's vocabulary: [320, 2368]
   * ```
   */
  textIds(text: string): number[] {
    return this.tokenize(text).map((t) => {
      const id = this.encoder.get(t);
      if (id !== undefined) return id;
      if (this.unkId === null) {
        throw new Error(
          `ClipBpeTokenizer: token ${JSON.stringify(t)} of ${
            JSON.stringify(text)
          } is not in ${this.vocabSource}`,
        );
      }
      return this.unkId;
    });
  }

  /**
   * Encode one text: start token, text ids, end token, padding to `contextLength`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ClipBpeTokenizer } from "./clip_bpe_tokenizer.ts";
   *
   * const tok = await ClipBpeTokenizer.load("tests/fixtures/tiny_sd/fp32_scalar_t/tokenizer");
   * const { ids, attentionMask, length } = tok.encode("a red circle");
   * assert.equal(ids.length, 77);
   * assert.equal(length, 5); // start + 3 words + end; the rest is padding with mask 0
   * assert.equal(attentionMask.reduce((a, b) => a + b), 5);
   * ```
   */
  encode(text: string): ClipEncoding {
    const ids = new Int32Array(this.contextLength).fill(this.padId);
    const attentionMask = new Int32Array(this.contextLength);
    const length = this.encodeInto(text, ids, attentionMask);
    const truncated = length < 0;
    return { ids, attentionMask, length: Math.abs(length), truncated };
  }

  /**
   * Encode several texts into one `[batch, contextLength]` array.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ClipBpeTokenizer } from "./clip_bpe_tokenizer.ts";
   *
   * const tok = await ClipBpeTokenizer.load("tests/fixtures/tiny_sd/fp32_scalar_t/tokenizer");
   * const { ids, shape } = tok.encodeBatch(["", "a red circle"]); // unconditional + prompt
   * assert.deepEqual(shape, [2, 77]);
   * assert.deepEqual([...ids.slice(77, 81)], [...tok.encode("a red circle").ids.slice(0, 4)]);

   * ```
   */
  encodeBatch(texts: readonly string[]): ClipBatchEncoding {
    const n = this.contextLength;
    const ids = new Int32Array(texts.length * n).fill(this.padId);
    const attentionMask = new Int32Array(texts.length * n);
    texts.forEach((t, i) => {
      this.encodeInto(
        t,
        ids.subarray(i * n, (i + 1) * n),
        attentionMask.subarray(i * n, (i + 1) * n),
      );
    });
    return { ids, attentionMask, shape: [texts.length, n] };
  }

  /** Fill one row; returns the kept length, negated when truncated. */
  private encodeInto(text: string, ids: Int32Array, mask: Int32Array): number {
    const body = this.textIds(text);
    const room = this.contextLength - 2;
    const truncated = body.length > room;
    if (truncated && !this.truncate) {
      throw new Error(
        `ClipBpeTokenizer: text has ${body.length} tokens, more than the ${room} that fit in ` +
          `contextLength ${this.contextLength}: ${JSON.stringify(text.slice(0, 60))}...`,
      );
    }
    const kept = Math.min(body.length, room);
    ids[0] = this.startId;
    for (let i = 0; i < kept; i++) ids[i + 1] = body[i];
    // Truncation keeps the end token: the text encoder pools the feature at its position.
    ids[kept + 1] = this.endId;
    mask.fill(1, 0, kept + 2);
    return truncated ? -(kept + 2) : kept + 2;
  }

  /**
   * Text back from ids: special tokens and padding dropped, word ends become spaces.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ClipBpeTokenizer } from "./clip_bpe_tokenizer.ts";
   *
   * const tok = await ClipBpeTokenizer.load("tests/fixtures/tiny_sd/fp32_scalar_t/tokenizer");
   * assert.equal(tok.decode(tok.encode("a red circle").ids), "a red circle");

   * ```
   */
  decode(ids: ArrayLike<number>, attentionMask?: ArrayLike<number>): string {
    let text = "";
    for (let i = 0; i < ids.length; i++) {
      if (attentionMask && attentionMask[i] === 0) continue;
      const id = ids[i];
      if (id === this.startId || id === this.endId || id === this.padId) continue;
      const token = this.decoder.get(id);
      if (token === undefined) {
        throw new Error(`ClipBpeTokenizer.decode: id ${id} is not in ${this.vocabSource}`);
      }
      text += token;
    }
    const bytes: number[] = [];
    for (const ch of text) {
      const b = BYTE_DECODER.get(ch);
      if (b === undefined) {
        // Tokens outside the byte alphabet (e.g. extra special tokens) pass through as UTF-8.
        bytes.push(...new TextEncoder().encode(ch));
      } else bytes.push(b);
    }
    return new TextDecoder().decode(new Uint8Array(bytes)).replaceAll(WORD_END, " ").trim();
  }
}
