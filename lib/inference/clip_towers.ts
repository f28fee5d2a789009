/**
 * CLIP text and image towers exported as two ONNX models, behind one small interface:
 * `encodeText(prompts)` and `encodeImages(images)` give row-major `[n, dim]` float32 embeddings
 * in the joint space (as the model outputs them, not normalised; see {@link l2NormalizeRows}).
 *
 * Two conventions:
 * - `"openai"` (Hugging Face Optimum / open_clip exports of `CLIPTextModelWithProjection` and
 *   `CLIPVisionModelWithProjection`): `input_ids` int32 or int64 `[batch, 77]` (plus
 *   `attention_mask` when the model declares it) from CLIP's BPE tokenizer; `pixel_values`
 *   `[batch, 3, 224, 224]` made with OpenAI CLIP's preprocessing ({@link clipPreprocess}: Pillow
 *   bicubic short side, center crop, CLIP mean/std), the size read from the session.
 * - `"kit"` (`text_encoder/` and `image_encoder/` of the kit's `exportRun`): the word tokenizer,
 *   pixels in [-1, 1] resized straight to the tower's own size with float bilinear, no antialias
 *   ({@link kitClipPreprocess}, the same numbers as lib/eval/clip_fid's `toClipInput`).
 * The convention follows the tokenizer (word tokenizer -> kit) unless given.
 *
 * Which output is the embedding, per tower: the `textOutput`/`imageOutput` option when given;
 * else the output named `text_embeds`/`image_embeds` (Hugging Face), then
 * `text_features`/`image_features` (open_clip); else the single rank-2 `[batch, dim]` output
 * other than `pooler_output` and `last_hidden_state`. `pooler_output` is never picked on its
 * own: in a `CLIPTextModel` export it is the unprojected pooled state, which lives in another
 * space than the image embedding even when the widths agree (ViT-B/32: 512 and 512). Both
 * towers must give the same width.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadClipTowers } from "./clip_towers.ts";
 *
 * // Tiny seeded 3-d towers; OpenAI's ViT-B/32 export ("clip-vit-b32/...") gives 512-d rows.
 * const dir = "tests/fixtures/tiny_clip_towers";
 * const clip = await loadClipTowers({
 *   textModel: `${dir}/text_model.onnx`,
 *   imageModel: `${dir}/vision_model.onnx`,
 *   tokenizerDir: dir,
 *   executionProviders: ["cpu"],
 * });
 * const img = { data: new Uint8Array(16 * 16 * 3).fill(128), width: 16, height: 16 };
 * const t = await clip.encodeText(["a red circle"]); // Float32Array [1, dim]
 * const i = await clip.encodeImages([img, img]); // Float32Array [2, dim]
 * assert.deepEqual([clip.dim, t.length, i.length], [3, 3, 6]);
 * await clip.release();
 * ```
 * @module
 */
import type { RgbImage } from "../plot/mod.ts";
import { concatFloat32 } from "../util/concat.ts";
import type { OnnxIoInfo, OnnxSession } from "../onnx/session.ts";
import {
  clipPreprocess,
  describePreprocess,
  type ImagePreprocess,
  kitClipPreprocess,
  preprocessBatch,
} from "../image/preprocess.ts";
import {
  batchSteps,
  checkIdsInput,
  checkImageInput,
  fixedDim,
  fmtShape,
  listIo,
  misfitOutput,
  type ModelSessionOptions,
  type ModelSource,
  onlyInputs,
  openModel,
  requireInput,
  takeRows,
} from "../onnx/io_check.ts";
import { loadTextIdsTokenizer, textFeeds, type TextIdsTokenizer } from "./text_ids.ts";

/** Preprocessing and tokenizer conventions (see the module doc). */
export type ClipConvention = "openai" | "kit";

/** Options of {@link loadClipTowers}. */
export interface LoadClipTowersOptions extends ModelSessionOptions {
  /** Text tower: `input_ids` (+ optional `attention_mask`) -> text embedding. */
  textModel: ModelSource;
  /** Image tower: `pixel_values` -> image embedding. */
  imageModel: ModelSource;
  /** Folder with `vocab.json` + `merges.txt` or `tokenizer.json` (CLIP BPE) or the kit's `word_tokenizer.json`. */
  tokenizerDir?: string;
  /** A tokenizer object instead of `tokenizerDir`. */
  tokenizer?: TextIdsTokenizer;
  /** Conventions (default: "kit" for the word tokenizer, else "openai"). */
  convention?: ClipConvention;
  /**
   * Image preprocessing (default: the convention's, at the session's input size, else at
   * `imageSize`).
   */
  preprocess?: ImagePreprocess;
  /** Input side when the session does not fix it (default 224). */
  imageSize?: number;
  /** Output of the text tower to read (default: see the module doc). */
  textOutput?: string;
  /** Output of the image tower to read (default: see the module doc). */
  imageOutput?: string;
  /** The model's logit scale, already exponentiated (e.g. 100 for OpenAI CLIP), if known. */
  logitScale?: number;
  /** Texts or images per model call when the batch dimension is free (default 32). */
  batchSize?: number;
}

/** Loaded CLIP towers. Call {@link ClipTowers.release} when done. */
export interface ClipTowers {
  /** Embedding width. */
  dim: number;
  /** Logit scale (exponentiated), when given. */
  logitScale?: number;
  /** Conventions in use. */
  convention: ClipConvention;
  /** Ids per text. */
  contextLength: number;
  /** Image preprocessing in use. */
  preprocess: ImagePreprocess;
  /** One-line description of the image preprocessing. */
  preprocessing: string;
  /** Text tower session. */
  text: OnnxSession;
  /** Image tower session. */
  image: OnnxSession;
  /** Embedding outputs read, per tower. */
  outputs: { text: string; image: string };
  /** Where the models came from (paths or bytes), for naming feature spaces. */
  sources: { text: string | Uint8Array | null; image: string | Uint8Array | null };
  /** Text embeddings, row-major `[prompts.length, dim]`. */
  encodeText(prompts: readonly string[]): Promise<Float32Array>;
  /** Image embeddings, row-major `[images.length, dim]`. */
  encodeImages(images: readonly RgbImage[]): Promise<Float32Array>;
  /** Free the sessions this loader opened. */
  release(): Promise<void>;
}

const TEXT_NAMES = ["text_embeds", "text_features"];
const IMAGE_NAMES = ["image_embeds", "image_features"];
const NEVER_ALONE = ["pooler_output", "last_hidden_state"];

function pickEmbedding(
  s: OnnxSession,
  opts: { explicit?: string; names: string[]; option: string; what: string },
): OnnxIoInfo {
  if (opts.explicit !== undefined) {
    const o = s.outputs.find((x) => x.name === opts.explicit);
    if (!o) {
      throw new Error(
        `${s.name}: has no output "${opts.explicit}" (${opts.option}); its outputs are ${
          listIo(s.outputs)
        }`,
      );
    }
    return o;
  }
  for (const n of opts.names) {
    const o = s.outputs.find((x) => x.name === n);
    if (o) return o;
  }
  const rank2 = s.outputs.filter((o) =>
    !NEVER_ALONE.includes(o.name) && (o.shape === null || o.shape.length === 2)
  );
  if (rank2.length === 1) return rank2[0];
  throw new Error(
    `${s.name}: cannot tell which output is the projected ${opts.what} embedding: expected ` +
      `${opts.names.map((n) => `"${n}"`).join(" or ")}, or a single [batch, dim] output other ` +
      `than "pooler_output" (the unprojected pooled state); its outputs are ${
        listIo(s.outputs)
      }; name it with ${opts.option}`,
  );
}

function checkEmbeddingOutput(s: OnnxSession, o: OnnxIoInfo, what: string): number | null {
  if (o.dtype !== "float32" && o.dtype !== "unknown") {
    misfitOutput(s, o, "float32 [batch, dim]", `the ${what} embedding`);
  }
  if (o.shape !== null && o.shape.length !== 2) {
    misfitOutput(s, o, "float32 [batch, dim]", `one ${what} embedding per row`);
  }
  return fixedDim(o.shape?.[1]);
}

/**
 * L2-normalise each row of a row-major `[n, dim]` matrix (zero rows stay zero).
 *
 * @example
 * ```ts
 * l2NormalizeRows(new Float32Array([3, 4]), 2); // [0.6, 0.8]
 * ```
 */
export function l2NormalizeRows(data: Float32Array, dim: number): Float32Array {
  if (!Number.isInteger(dim) || dim < 1 || data.length % dim !== 0) {
    throw new Error(`l2NormalizeRows: ${data.length} values are not rows of width ${dim}`);
  }
  const out = new Float32Array(data.length);
  for (let r = 0; r < data.length; r += dim) {
    let ss = 0;
    for (let j = 0; j < dim; j++) ss += data[r + j] * data[r + j];
    const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
    for (let j = 0; j < dim; j++) out[r + j] = data[r + j] * inv;
  }
  return out;
}

/**
 * Load separately exported CLIP towers (see the module doc for the I/O contract).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadClipTowers } from "./clip_towers.ts";
 *
 * const dir = "tests/fixtures/tiny_clip_towers"; // tiny seeded towers with a CLIP BPE tokenizer
 * const clip = await loadClipTowers({
 *   textModel: `${dir}/text_model.onnx`,
 *   imageModel: `${dir}/vision_model.onnx`,
 *   tokenizerDir: dir,
 *   executionProviders: ["cpu"],
 * });
 * assert.equal(clip.dim, 3); // 768 for ViT-L/14
 * assert.equal(clip.convention, "openai"); // from the BPE tokenizer
 * assert.deepEqual(clip.outputs, { text: "text_embeds", image: "image_embeds" });
 * await clip.release();
 * ```
 */
export async function loadClipTowers(opts: LoadClipTowersOptions): Promise<ClipTowers> {
  if (opts.logitScale !== undefined && !(opts.logitScale > 0 && Number.isFinite(opts.logitScale))) {
    throw new Error(`loadClipTowers: logitScale must be a positive number, got ${opts.logitScale}`);
  }
  if (!opts.tokenizer && !opts.tokenizerDir) {
    throw new Error(
      "loadClipTowers: give tokenizerDir (vocab.json + merges.txt or tokenizer.json) or tokenizer",
    );
  }
  const maxBatch = opts.batchSize ?? 32;
  batchSteps(0, { fixedBatch: null, maxBatch }); // validates batchSize
  const opened: { session: OnnxSession; owned: boolean }[] = [];
  const release = async () => {
    for (const p of opened.splice(0)) if (p.owned) await p.session.release();
  };
  try {
    const tp = await openModel(opts.textModel, opts, "CLIP text model");
    opened.push(tp);
    const ip = await openModel(opts.imageModel, opts, "CLIP image model");
    opened.push(ip);
    const text = tp.session, image = ip.session;

    // Text tower.
    const idsIn = requireInput(text, ["input_ids"], "int32 or int64 [batch, sequence]");
    const maskIn = text.inputs.find((i) => i.name === "attention_mask") ?? null;
    onlyInputs(text, maskIn ? [idsIn.name, maskIn.name] : [idsIn.name]);
    const ids = checkIdsInput(text, idsIn);
    if (maskIn) checkIdsInput(text, maskIn);
    const tokenizer = opts.tokenizer ??
      await loadTextIdsTokenizer(opts.tokenizerDir!, { contextLength: ids.length ?? undefined });
    const T = tokenizer.contextLength;
    if (ids.length !== null && ids.length !== T) {
      throw new Error(
        `${text.name}: input "${idsIn.name}" is ${idsIn.dtype} ${fmtShape(idsIn.shape)}, but ` +
          `the tokenizer gives ${T} ids per text`,
      );
    }
    const textOut = pickEmbedding(text, {
      explicit: opts.textOutput,
      names: TEXT_NAMES,
      option: "textOutput",
      what: "text",
    });
    const textDim = checkEmbeddingOutput(text, textOut, "text");

    // Image tower.
    const convention = opts.convention ?? (tokenizer.kind === "word" ? "kit" : "openai");
    if (convention !== "openai" && convention !== "kit") {
      throw new Error(`loadClipTowers: convention must be "openai" or "kit", got "${convention}"`);
    }
    const pxIn = requireInput(image, ["pixel_values"], "float32 [batch, 3, height, width]");
    onlyInputs(image, [pxIn.name]);
    const px = checkImageInput(image, pxIn, "RGB images", opts.preprocess);
    const side = px.height ?? px.width ?? opts.imageSize ?? 224;
    const preprocess = opts.preprocess ?? (
      convention === "kit" ? kitClipPreprocess(side) : clipPreprocess(side)
    );
    if (opts.preprocess === undefined && px.height !== null && px.width !== null) {
      preprocess.width = px.width;
      preprocess.height = px.height;
    }
    const imageOut = pickEmbedding(image, {
      explicit: opts.imageOutput,
      names: IMAGE_NAMES,
      option: "imageOutput",
      what: "image",
    });
    const imageDim = checkEmbeddingOutput(image, imageOut, "image");
    if (textDim !== null && imageDim !== null && textDim !== imageDim) {
      throw new Error(
        `${image.name}: output "${imageOut.name}" is ${fmtShape(imageOut.shape)} but ` +
          `${text.name}'s "${textOut.name}" is ${fmtShape(textOut.shape)}; the towers must ` +
          `give embeddings of one width`,
      );
    }

    const encodeText = async (prompts: readonly string[]): Promise<Float32Array> => {
      const parts: Float32Array[] = [];
      let width: number | null = null;
      for (const st of batchSteps(prompts.length, { fixedBatch: ids.batch, maxBatch })) {
        const texts = prompts.slice(st.start, st.start + st.n);
        while (texts.length < st.feedN) texts.push("");
        const feeds = textFeeds(tokenizer, texts, { ids: idsIn, mask: maskIn }, text.name);
        const out = (await text.run(feeds, [textOut.name]))[textOut.name];
        width = checkRunDims(text, textOut, out.dims, st.feedN);
        parts.push(takeRows(out.data as Float32Array, {
          n: st.n,
          rowSize: width,
          where: `${text.name}: output "${textOut.name}"`,
        }));
      }
      return concatFloat32(parts);
    };

    const encodeImages = async (images: readonly RgbImage[]): Promise<Float32Array> => {
      const parts: Float32Array[] = [];
      const { width: W, height: H } = preprocess;
      for (const st of batchSteps(images.length, { fixedBatch: px.batch, maxBatch })) {
        const x = new Float32Array(st.feedN * 3 * H * W);
        x.set(preprocessBatch(images.slice(st.start, st.start + st.n), preprocess));
        const out = (await image.run({ [pxIn.name]: { data: x, shape: [st.feedN, 3, H, W] } }, [
          imageOut.name,
        ]))[imageOut.name];
        const width = checkRunDims(image, imageOut, out.dims, st.feedN);
        parts.push(takeRows(out.data as Float32Array, {
          n: st.n,
          rowSize: width,
          where: `${image.name}: output "${imageOut.name}"`,
        }));
      }
      return concatFloat32(parts);
    };

    // Widths the sessions leave symbolic are learnt from one probe call each.
    const dimText = textDim ?? (await encodeText([""])).length;
    const dimImage = imageDim ?? (await encodeImages([{
      data: new Uint8Array(preprocess.width * preprocess.height * 3),
      width: preprocess.width,
      height: preprocess.height,
    }])).length;
    if (dimText !== dimImage) {
      throw new Error(
        `${image.name}: output "${imageOut.name}" gives ${dimImage}-wide embeddings but ` +
          `${text.name}'s "${textOut.name}" ${dimText}-wide; the towers must agree`,
      );
    }
    const source = (m: ModelSource) => typeof m === "string" || m instanceof Uint8Array ? m : null;
    return {
      dim: dimText,
      logitScale: opts.logitScale,
      convention,
      contextLength: T,
      preprocess,
      preprocessing: describePreprocess(preprocess),
      text,
      image,
      outputs: { text: textOut.name, image: imageOut.name },
      sources: { text: source(opts.textModel), image: source(opts.imageModel) },
      encodeText,
      encodeImages,
      release,
    };
  } catch (e) {
    await release();
    throw e;
  }
}

function checkRunDims(
  s: OnnxSession,
  o: OnnxIoInfo,
  dims: readonly number[],
  rows: number,
): number {
  if (dims.length !== 2 || dims[0] !== rows) {
    throw new Error(
      `${s.name}: output "${o.name}" came out [${dims.join(", ")}], expected [${rows}, dim] ` +
        `(one embedding per row)`,
    );
  }
  return dims[1];
}

/** Options of {@link loadKitClipTowers}. */
export type LoadKitClipTowersOptions =
  & ModelSessionOptions
  & Pick<LoadClipTowersOptions, "logitScale" | "batchSize">;

/**
 * The kit's own CLIP from an export folder (`exportRun`): `text_encoder/model.onnx`,
 * `image_encoder/model.onnx` and `tokenizer/`, with the kit's conventions.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadKitClipTowers } from "./clip_towers.ts";
 *
 * // A kit export's layout (e.g. "exports/default"), here filled with the tiny fixture towers.
 * const dir = await Deno.makeTempDir(), t = "tests/fixtures/tiny_clip_towers";
 * for (const d of ["text_encoder", "image_encoder", "tokenizer"]) await Deno.mkdir(`${dir}/${d}`);
 * await Deno.copyFile(`${t}/text_model.onnx`, `${dir}/text_encoder/model.onnx`);
 * await Deno.copyFile(`${t}/vision_model.onnx`, `${dir}/image_encoder/model.onnx`);
 * for (const f of ["vocab.json", "merges.txt"]) {
 *   await Deno.copyFile(`${t}/${f}`, `${dir}/tokenizer/${f}`);
 * }
 * const clip = await loadKitClipTowers(dir, { executionProviders: ["cpu"] });
 * assert.equal(clip.convention, "kit"); // pixels in [-1, 1], float bilinear resize
 * assert.equal((await clip.encodeText(["a red circle"])).length, clip.dim);
 * await clip.release();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadKitClipTowers(
  dir: string,
  opts: LoadKitClipTowersOptions = {},
): Promise<ClipTowers> {
  for (const p of ["text_encoder/model.onnx", "image_encoder/model.onnx", "tokenizer"]) {
    if (!(await Deno.stat(`${dir}/${p}`).then(() => true, () => false))) {
      throw new Error(
        `${dir}/${p}: missing; a kit export (exportRun) has text_encoder/, image_encoder/ and ` +
          `tokenizer/`,
      );
    }
  }
  return await loadClipTowers({
    ...opts,
    textModel: `${dir}/text_encoder/model.onnx`,
    imageModel: `${dir}/image_encoder/model.onnx`,
    tokenizerDir: `${dir}/tokenizer`,
    convention: "kit",
  });
}

/**
 * CLIP towers from a folder: a kit ONNX export (what `exportRun` writes: `image_encoder/` and
 * `text_encoder/`) or a folder holding `text_model.onnx`, `vision_model.onnx` and CLIP's BPE
 * tokenizer files (`vocab.json`, `merges.txt`; OpenAI conventions), such as an exported
 * openai/clip-vit-large-patch14. A missing file is named in the error.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadClipTowersFolder } from "./clip_towers.ts";
 *
 * const towers = await loadClipTowersFolder("tests/fixtures/tiny_clip_towers");
 * assert.equal((await towers.encodeText(["a cat", "a dog"])).length, 2 * towers.dim);
 * await towers.release();
 * await assert.rejects(() => loadClipTowersFolder("/nonexistent"), /missing text_model\.onnx/);
 * ```
 */
export async function loadClipTowersFolder(dir: string): Promise<ClipTowers> {
  const has = (p: string) => Deno.stat(`${dir}/${p}`).then(() => true, () => false);
  if (await has("image_encoder/model.onnx")) return await loadKitClipTowers(dir);
  const missing = [];
  for (const p of ["text_model.onnx", "vision_model.onnx", "vocab.json", "merges.txt"]) {
    if (!(await has(p))) missing.push(p);
  }
  if (missing.length) {
    throw new Error(
      `${dir}: missing ${missing.join(", ")} (expected a kit ONNX export or a folder with ` +
        "text_model.onnx, vision_model.onnx, vocab.json and merges.txt)",
    );
  }
  return await loadClipTowers({
    textModel: `${dir}/text_model.onnx`,
    imageModel: `${dir}/vision_model.onnx`,
    tokenizerDir: dir,
  });
}
