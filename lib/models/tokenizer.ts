/**
 * Word-level tokenizer for the kit's own CLIP: lower-case, split into words and single punctuation
 * marks, vocabulary built from a caption corpus (most frequent first), fixed context length with
 * `<|startoftext|>` ... `<|endoftext|>` and `<pad>` padding. Saved as `tokenizer.json`.
 * (The real CLIP BPE tokenizer is a separate module.)
 *
 * @example
 * ```ts
 * async function example() {
 *   const tok = WordTokenizer.build(["a red circle", "two blue squares."]);
 *   const ids = tok.encode("a blue circle"); // Int32Array(16): [2, ..., 3, 0, 0, ...]
 *   tok.decode(ids); // "a blue circle"
 *   await tok.save("runs/x/tokenizer.json");
 * }
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
   * import { WordTokenizer } from "./tokenizer.ts";
   *
   * function example(captions: string[]) {
   *   const tok = WordTokenizer.build(captions, { contextLength: 16, minCount: 2 });
   * }
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
   * import { WordTokenizer } from "./tokenizer.ts";
   *
   * function example(text: string) {
   *   const tok = WordTokenizer.fromJSON(JSON.parse(text), "tokenizer.json");
   * }
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
   * async function example() {
   *   const tok = await WordTokenizer.load("runs/x/tokenizer.json");
   * }
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
   * import type { WordTokenizer } from "./tokenizer.ts";
   * import { CLIP_PRESETS } from "./clip.ts";
   *
   * function example(tok: WordTokenizer) {
   *   const cfg = { ...CLIP_PRESETS.small, vocabSize: tok.vocabSize };
   * }
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
   * import type { WordTokenizer } from "./tokenizer.ts";
   *
   * function example(tok: WordTokenizer) {
   *   JSON.stringify(tok.toJSON());
   * }
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
   * import type { WordTokenizer } from "./tokenizer.ts";
   *
   * async function example(tok: WordTokenizer) {
   *   await tok.save("runs/x/tokenizer.json");
   * }
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
   * import type { WordTokenizer } from "./tokenizer.ts";
   *
   * function example(tok: WordTokenizer) {
   *   tok.tokenId("red"); // e.g. 5
   * }
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
   * import type { WordTokenizer } from "./tokenizer.ts";
   *
   * function example(tok: WordTokenizer) {
   *   tok.encode("a red circle"); // Int32Array [2, 7, 9, 12, 3, 0, ...]
   * }
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
   * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
   * import type { WordTokenizer } from "./tokenizer.ts";
   *
   * function example(
   *   captions: string[],
   *   tok: WordTokenizer,
   * ) {
   *   const ids = tf.tensor2d(tok.encodeBatch(captions), [captions.length, 16], "int32");
   * }
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
   * import type { WordTokenizer } from "./tokenizer.ts";
   *
   * function example(tok: WordTokenizer) {
   *   tok.mask(tok.encode("a circle")); // [1, 1, 1, 1, 0, ...]
   * }
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
   * import type { WordTokenizer } from "./tokenizer.ts";
   *
   * function example(tok: WordTokenizer) {
   *   tok.decode(tok.encode("A red circle, left.")); // "a red circle, left."
   * }
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
