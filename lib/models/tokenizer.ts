/**
 * Word-level tokenizer for the kit's own CLIP: lower-case, split into words and single punctuation
 * marks, vocabulary built from a caption corpus (most frequent first), fixed context length with
 * `<|startoftext|>` ... `<|endoftext|>` and `<pad>` padding. Saved as `tokenizer.json`.
 * (The real CLIP BPE tokenizer is a separate module.)
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WordTokenizer } from "./tokenizer.ts";
 *
 * const tok = WordTokenizer.build(["a red circle", "two blue squares."]);
 * const ids = tok.encode("a blue circle");
 * assert.deepEqual([...ids.slice(0, 6)], [2, 5, 6, 7, 3, 0]); // start, 3 words, end, pad... (16)
 * assert.equal(tok.decode(ids), "a blue circle");
 * const dir = await Deno.makeTempDir(); // e.g. "runs/x"
 * await tok.save(`${dir}/tokenizer.json`);
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */
import { writeJsonAtomic } from "../util/atomic.ts";

/** Special tokens and their fixed ids. */
export const SPECIAL_TOKENS = {
  pad: "<pad>",
  unk: "<unk>",
  start: "<|startoftext|>",
  end: "<|endoftext|>",
} as const;

/** Ids of the special tokens (the first four vocabulary entries). */
export const PAD_ID = 0;
/** Id of `<unk>`. */
export const UNK_ID = 1;
/** Id of `<|startoftext|>`. */
export const START_ID = 2;
/** Id of `<|endoftext|>` (CLIP pools the text feature here). */
export const END_ID = 3;

/** Serialised form (`tokenizer.json`). */
export interface WordTokenizerJson {
  type: "word";
  contextLength: number;
  vocab: string[];
}

/** Options of {@link WordTokenizer.build}. */
export interface WordTokenizerBuildOptions {
  /** Tokens per encoded caption, including start and end (default 16). */
  contextLength?: number;
  /** Keep words seen at least this often (default 1). */
  minCount?: number;
  /** Cap on vocabulary size including the 4 special tokens (default unlimited). */
  maxVocab?: number;
}

const WORD_RE = /[\p{L}\p{N}]+|[^\s\p{L}\p{N}]/gu;
const NO_SPACE_BEFORE = new Set([".", ",", "!", "?", ";", ":", ")", "'"]);

/**
 * Lower-case and split into words and single punctuation marks.
 *
 * @example
 * ```ts
 * splitWords("A red, round Circle!"); // ["a", "red", ",", "round", "circle", "!"]
 * ```
 */
export function splitWords(text: string): string[] {
  return text.toLowerCase().match(WORD_RE) ?? [];
}

/** Word-level tokenizer; construct with {@link WordTokenizer.build} or {@link WordTokenizer.fromJSON}. */
export class WordTokenizer {
  /** Encoded length. */
  readonly contextLength: number;
  /** Id -> token. */
  readonly vocab: readonly string[];
  private index: Map<string, number>;

  private constructor(vocab: string[], contextLength: number) {
    if (!Number.isInteger(contextLength) || contextLength < 2) {
      throw new Error(`WordTokenizer: contextLength must be an integer >= 2, got ${contextLength}`);
    }
    const specials = [
      SPECIAL_TOKENS.pad,
      SPECIAL_TOKENS.unk,
      SPECIAL_TOKENS.start,
      SPECIAL_TOKENS.end,
    ];
    specials.forEach((s, i) => {
      if (vocab[i] !== s) {
        throw new Error(`WordTokenizer: vocab[${i}] must be "${s}", got "${vocab[i]}"`);
      }
    });
    this.index = new Map();
    vocab.forEach((w, i) => {
      if (this.index.has(w)) throw new Error(`WordTokenizer: duplicate vocab entry "${w}" at ${i}`);
      this.index.set(w, i);
    });
    this.vocab = vocab;
    this.contextLength = contextLength;
  }

  /**
   * Build a vocabulary from captions: specials first, then words by descending count (ties in
   * alphabetical order, so the result does not depend on corpus order).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { WordTokenizer } from "./tokenizer.ts";
   *
   * const captions = ["a red circle", "a blue circle", "red"];
   * const tok = WordTokenizer.build(captions, { contextLength: 8, minCount: 2 });
   * assert.equal(tok.vocabSize, 7); // 4 special tokens + "a", "circle", "red"
   * assert.deepEqual([...tok.encode("a red square")], [2, 4, 6, 1, 3, 0, 0, 0]); // 1 = <unk>
   * ```
   */
  static build(corpus: Iterable<string>, opts: WordTokenizerBuildOptions = {}): WordTokenizer {
    const counts = new Map<string, number>();
    for (const text of corpus) {
      for (const w of splitWords(text)) counts.set(w, (counts.get(w) ?? 0) + 1);
    }
    const minCount = opts.minCount ?? 1;
    const specials: string[] = [
      SPECIAL_TOKENS.pad,
      SPECIAL_TOKENS.unk,
      SPECIAL_TOKENS.start,
      SPECIAL_TOKENS.end,
    ];
    let words = [...counts.entries()]
      .filter(([w, c]) => c >= minCount && !specials.includes(w))
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .map(([w]) => w);
    if (opts.maxVocab !== undefined) {
      if (!(opts.maxVocab >= specials.length)) {
        throw new Error(`WordTokenizer.build: maxVocab must be >= 4, got ${opts.maxVocab}`);
      }
      words = words.slice(0, opts.maxVocab - specials.length);
    }
    return new WordTokenizer([...specials, ...words], opts.contextLength ?? 16);
  }

  /**
   * Restore from {@link WordTokenizer.toJSON} output; `source` names the file in errors.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { WordTokenizer } from "./tokenizer.ts";
   *
   * const text = JSON.stringify(WordTokenizer.build(["a red circle"]).toJSON());
   * const tok = WordTokenizer.fromJSON(JSON.parse(text), "tokenizer.json");
   * assert.equal(tok.decode(tok.encode("a red circle")), "a red circle");
   * assert.throws(() => WordTokenizer.fromJSON({ type: "bpe" }), /field "type" must be "word"/);
   * ```
   */
  static fromJSON(obj: unknown, source = "tokenizer.json"): WordTokenizer {
    const o = obj as Partial<WordTokenizerJson> | null;
    if (!o || typeof o !== "object") throw new Error(`${source}: expected a JSON object`);
    if (o.type !== "word") throw new Error(`${source}: field "type" must be "word", got ${o.type}`);
    if (!Array.isArray(o.vocab) || !o.vocab.every((w) => typeof w === "string")) {
      throw new Error(`${source}: field "vocab" must be an array of strings`);
    }
    if (typeof o.contextLength !== "number") {
      throw new Error(`${source}: field "contextLength" must be a number`);
    }
    return new WordTokenizer([...o.vocab], o.contextLength);
  }

  /**
   * Read `tokenizer.json`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { WordTokenizer } from "./tokenizer.ts";
   *
   * const dir = await Deno.makeTempDir(); // e.g. "runs/x"
   * await WordTokenizer.build(["a red circle"]).save(`${dir}/tokenizer.json`);
   * const tok = await WordTokenizer.load(`${dir}/tokenizer.json`);
   * assert.equal(tok.vocabSize, 7);
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  static async load(path: string): Promise<WordTokenizer> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(await Deno.readTextFile(path));
    } catch (e) {
      throw new Error(`${path}: cannot read tokenizer JSON (${(e as Error).message})`);
    }
    return WordTokenizer.fromJSON(parsed, path);
  }

  /**
   * Vocabulary size (embedding rows).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { WordTokenizer } from "./tokenizer.ts";
   * import { CLIP_PRESETS } from "./clip.ts";
   *
   * const tok = WordTokenizer.build(["a red circle", "two blue squares."]);
   * const cfg = { ...CLIP_PRESETS.small, vocabSize: tok.vocabSize };
   * assert.equal(cfg.vocabSize, 11); // 4 special tokens + 6 words + "."
   * ```
   */
  get vocabSize(): number {
    return this.vocab.length;
  }

  /**
   * JSON-safe form.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { WordTokenizer } from "./tokenizer.ts";
   *
   * const json = WordTokenizer.build(["a circle"], { contextLength: 8 }).toJSON();
   * assert.deepEqual(json.vocab.slice(4), ["a", "circle"]);
   * assert.equal(json.contextLength, 8);
   * ```
   */
  toJSON(): WordTokenizerJson {
    return { type: "word", contextLength: this.contextLength, vocab: [...this.vocab] };
  }

  /**
   * Write `tokenizer.json` atomically.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { WordTokenizer } from "./tokenizer.ts";
   *
   * const dir = await Deno.makeTempDir(); // e.g. "runs/x"
   * await WordTokenizer.build(["a circle"]).save(`${dir}/tokenizer.json`);
   * assert.equal(JSON.parse(await Deno.readTextFile(`${dir}/tokenizer.json`)).type, "word");
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  save(path: string): Promise<void> {
    return writeJsonAtomic(path, this.toJSON());
  }

  /**
   * Id of a single token, `<unk>` when unknown.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { WordTokenizer } from "./tokenizer.ts";
   *
   * const tok = WordTokenizer.build(["a red circle", "two blue squares."]);
   * assert.equal(tok.tokenId("red"), 8); // words sorted by count, then alphabetically
   * assert.equal(tok.tokenId("green"), 1); // <unk>
   * ```
   */
  tokenId(token: string): number {
    return this.index.get(token) ?? UNK_ID;
  }

  /**
   * `[start, words..., end, pad...]` of length `contextLength`. Captions too long are cut so the
   * end token is always kept (the last slot).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { WordTokenizer } from "./tokenizer.ts";
   *
   * const tok = WordTokenizer.build(["a red circle", "two blue squares."]);
   * assert.deepEqual([...tok.encode("a red circle").slice(0, 6)], [2, 5, 8, 7, 3, 0]);
   * ```
   */
  encode(text: string): Int32Array {
    const out = new Int32Array(this.contextLength).fill(PAD_ID);
    const words = splitWords(text).slice(0, this.contextLength - 2);
    out[0] = START_ID;
    words.forEach((w, i) => out[i + 1] = this.tokenId(w));
    out[words.length + 1] = END_ID;
    return out;
  }

  /**
   * Encode many captions into one row-major `[n, contextLength]` array (for `tf.tensor2d`).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { WordTokenizer } from "./tokenizer.ts";
   *
   * const captions = ["a red circle", "two blue squares."];
   * const tok = WordTokenizer.build(captions);
   * const ids = tok.encodeBatch(captions); // rows of 16, e.g. for tf.tensor2d(ids, [2, 16], "int32")
   * assert.equal(ids.length, 2 * 16);
   * assert.deepEqual([...ids.slice(16, 16 + 6)], [...tok.encode(captions[1]).slice(0, 6)]);
   * ```
   */
  encodeBatch(texts: readonly string[]): Int32Array {
    const out = new Int32Array(texts.length * this.contextLength);
    texts.forEach((t, i) => out.set(this.encode(t), i * this.contextLength));
    return out;
  }

  /**
   * Attention mask of encoded ids: 1 up to and including the end token, 0 on padding.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { WordTokenizer } from "./tokenizer.ts";
   *
   * const tok = WordTokenizer.build(["a red circle"]);
   * assert.deepEqual([...tok.mask(tok.encode("a circle")).slice(0, 6)], [1, 1, 1, 1, 0, 0]);
   * ```
   */
  mask(ids: Int32Array): Float32Array {
    const m = new Float32Array(ids.length);
    for (let i = 0; i < ids.length; i++) m[i] = ids[i] === PAD_ID ? 0 : 1;
    return m;
  }

  /**
   * Text of the word tokens (specials dropped), punctuation attached to the preceding word.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { WordTokenizer } from "./tokenizer.ts";
   *
   * const tok = WordTokenizer.build(["a red circle, left."]);
   * assert.equal(tok.decode(tok.encode("A red circle, left.")), "a red circle, left.");

   * ```
   */
  decode(ids: ArrayLike<number>): string {
    let s = "";
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id === PAD_ID || id === START_ID || id === END_ID) continue;
      const w = this.vocab[id];
      if (w === undefined) {
        throw new Error(`WordTokenizer.decode: id ${id} outside vocab of ${this.vocabSize}`);
      }
      s += s === "" || NO_SPACE_BEFORE.has(w) ? w : ` ${w}`;
    }
    return s;
  }
}
