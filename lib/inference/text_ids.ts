/**
 * Token ids for the text inputs of the ONNX helper models (CLIP towers, segmenter): one tokenizer
 * interface over CLIP's BPE (`vocab.json` + `merges.txt`, Hugging Face `CLIPTokenizer` folders)
 * and the kit's word tokenizer (`word_tokenizer.json` of a kit export), plus the int32/int64 feed
 * the model's `input_ids` declares.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { idsFeed, loadTextIdsTokenizer } from "./text_ids.ts";
 *
 * const tok = await loadTextIdsTokenizer("tests/fixtures/tiny_sd/fp32_scalar_t/tokenizer", { contextLength: 77 });
 * const { ids } = tok.encodeBatch(["a red circle"]);
 * const feed = idsFeed(ids, "int64", "text_model.onnx: input_ids"); // BigInt64Array
 * assert.deepEqual([...feed.slice(0, 5)], [519n, 320n, 513n, 518n, 520n]); // start, 3 words, end
 * ```
 * @module
 */
import { readJsonObjectIfAny } from "../util/json_file.ts";
import { CLIP_BPE_FILES, ClipBpeTokenizer, hasClipBpeFiles } from "../models/clip_bpe_tokenizer.ts";
import { PAD_ID, WordTokenizer } from "../models/tokenizer.ts";
import { KIT_TOKENIZER_FILE } from "../onnx/sd_folder.ts";

/** Ids and attention mask of a batch, row-major `[n, contextLength]`. */
export interface TextIdsEncoding {
  /** Token ids. */
  ids: Int32Array;
  /** 1 for real tokens (start, text, end), 0 for padding. */
  attentionMask: Int32Array;
}

/** A tokenizer as the helper models use it. */
export interface TextIdsTokenizer {
  /** "clip_bpe" (CLIP's BPE), "word" (the kit's word tokenizer) or "custom". */
  kind: "clip_bpe" | "word" | "custom";
  /** Ids per text. */
  contextLength: number;
  /** Encode texts. */
  encodeBatch(texts: readonly string[]): TextIdsEncoding;
}

/**
 * Wrap a CLIP BPE tokenizer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clipBpeTextIds } from "./text_ids.ts";
 * import { ClipBpeTokenizer } from "../models/clip_bpe_tokenizer.ts";
 *
 * const tok = clipBpeTextIds(await ClipBpeTokenizer.load("tests/fixtures/tiny_sd/fp32_scalar_t/tokenizer"));
 * assert.deepEqual([tok.kind, tok.contextLength], ["clip_bpe", 77]);
 * assert.equal(tok.encodeBatch(["a", "b"]).ids.length, 2 * 77);
 * ```
 */
export function clipBpeTextIds(tok: ClipBpeTokenizer): TextIdsTokenizer {
  return {
    kind: "clip_bpe",
    contextLength: tok.contextLength,
    encodeBatch: (texts) => {
      const b = tok.encodeBatch(texts);
      return { ids: b.ids, attentionMask: b.attentionMask };
    },
  };
}

/**
 * Wrap the kit's word tokenizer (padding id 0 is masked out).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { wordTextIds } from "./text_ids.ts";
 * import { WordTokenizer } from "../models/tokenizer.ts";
 *
 * // Usually `await WordTokenizer.load("export/tokenizer/word_tokenizer.json")`.
 * const tok = wordTextIds(WordTokenizer.build(["a red circle"]));
 * assert.deepEqual([tok.kind, tok.contextLength], ["word", 16]);
 * assert.deepEqual([...tok.encodeBatch(["a red circle"]).ids.slice(0, 5)], [2, 4, 6, 5, 3]);

 * ```
 */
export function wordTextIds(tok: WordTokenizer): TextIdsTokenizer {
  return {
    kind: "word",
    contextLength: tok.contextLength,
    encodeBatch: (texts) => {
      const ids = tok.encodeBatch(texts);
      const attentionMask = new Int32Array(ids.length);
      for (let i = 0; i < ids.length; i++) attentionMask[i] = ids[i] === PAD_ID ? 0 : 1;
      return { ids, attentionMask };
    },
  };
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** Options of {@link loadTextIdsTokenizer}. */
export interface LoadTextIdsTokenizerOptions {
  /**
   * Ids per text for a BPE tokenizer (the model's fixed sequence length, when it has one);
   * default `model_max_length` of `tokenizer_config.json` when sensible, else 77. For the word
   * tokenizer its own context length rules and a different value is an error.
   */
  contextLength?: number;
}

/**
 * Load the tokenizer in `dir`: `vocab.json` + `merges.txt` or `tokenizer.json` (CLIP BPE; `tokenizer_config.json`
 * may set `model_max_length` and `pad_token`) or the kit's `word_tokenizer.json`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadTextIdsTokenizer } from "./text_ids.ts";
 *
 * // A kit export's folder (e.g. "exports/default/tokenizer") gives kind "word".
 * const tok = await loadTextIdsTokenizer("tests/fixtures/tiny_sd/fp32_scalar_t/tokenizer");
 * assert.equal(tok.kind, "clip_bpe");
 * ```
 */
export async function loadTextIdsTokenizer(
  dir: string,
  opts: LoadTextIdsTokenizerOptions = {},
): Promise<TextIdsTokenizer> {
  const kitFile = `${dir}/${KIT_TOKENIZER_FILE}`;
  const hasBpe = await hasClipBpeFiles(dir);
  if (!hasBpe && (await exists(kitFile))) {
    const tok = await WordTokenizer.load(kitFile);
    if (opts.contextLength !== undefined && opts.contextLength !== tok.contextLength) {
      throw new Error(
        `${kitFile}: the word tokenizer gives ${tok.contextLength} ids per text, but the model ` +
          `takes ${opts.contextLength}`,
      );
    }
    return wordTextIds(tok);
  }
  if (!hasBpe) {
    throw new Error(
      `${dir}: no tokenizer files; expected ${CLIP_BPE_FILES} or the kit's ${KIT_TOKENIZER_FILE}`,
    );
  }
  const cfg = await readJsonObjectIfAny(`${dir}/tokenizer_config.json`);
  const mml = cfg.model_max_length;
  // Hugging Face writes "no limit" as a huge number; only a plausible value is a context length.
  const cfgLen = Number.isInteger(mml) && (mml as number) >= 2 && (mml as number) <= 4096
    ? mml as number
    : undefined;
  const pad = cfg.pad_token;
  const padToken = typeof pad === "string"
    ? pad
    : pad && typeof pad === "object" && typeof (pad as { content?: unknown }).content === "string"
    ? (pad as { content: string }).content
    : undefined;
  const tok = await ClipBpeTokenizer.load(dir, {
    contextLength: opts.contextLength ?? cfgLen ?? 77,
    padToken,
  });
  return clipBpeTextIds(tok);
}

/**
 * Ids as the typed array an input of `dtype` takes (`"int32"` or `"int64"`).
 *
 * @example
 * ```ts
 * idsFeed(new Int32Array([49406, 49407]), "int64", "text.onnx: input_ids"); // BigInt64Array
 * ```
 */
export function idsFeed(
  ids: Int32Array,
  dtype: string,
  where: string,
): Int32Array | BigInt64Array {
  if (dtype === "int32") return ids;
  if (dtype === "int64") {
    const out = new BigInt64Array(ids.length);
    for (let i = 0; i < ids.length; i++) out[i] = BigInt(ids[i]);
    return out;
  }
  throw new Error(`${where}: expects ${dtype} ids; token ids must be int32 or int64`);
}

/** Which session inputs take the token ids and (optionally) the attention mask. */
export interface TextInputs {
  ids: { name: string; dtype: string };
  mask: { name: string; dtype: string } | null;
}

/**
 * Feeds for a text model: `texts` tokenised, ids (and the attention mask when the model takes
 * one) as the dtype each input declares, shaped `[texts.length, contextLength]`. `model` names the
 * model in errors.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadTextIdsTokenizer, textFeeds } from "./text_ids.ts";
 *
 * const tokenizer = await loadTextIdsTokenizer("tests/fixtures/tiny_sd/fp32_scalar_t/tokenizer");
 * const idsIn = { name: "input_ids", dtype: "int32" }; // as the text model declares it
 * const feeds = textFeeds(tokenizer, ["a cat"], { ids: idsIn, mask: null }, "text_model.onnx");
 * assert.deepEqual(Object.keys(feeds), ["input_ids"]);
 * assert.deepEqual(feeds.input_ids.shape, [1, 77]);

 * ```
 */
export function textFeeds(
  tokenizer: TextIdsTokenizer,
  texts: string[],
  inputs: TextInputs,
  model: string,
): Record<string, { data: Int32Array | BigInt64Array; shape: number[] }> {
  const enc = tokenizer.encodeBatch(texts);
  const shape = [texts.length, tokenizer.contextLength];
  const { ids, mask } = inputs;
  const feeds: Record<string, { data: Int32Array | BigInt64Array; shape: number[] }> = {
    [ids.name]: { data: idsFeed(enc.ids, ids.dtype, `${model}: input "${ids.name}"`), shape },
  };
  if (mask) {
    feeds[mask.name] = {
      data: idsFeed(enc.attentionMask, mask.dtype, `${model}: input "${mask.name}"`),
      shape,
    };
  }
  return feeds;
}
