/**
 * A prompt-conditioned segmenter (CLIPSeg-style) for the regional touch-up: which pixels of an
 * image does a text describe.
 *
 * I/O contract, read from the session: `pixel_values` float32 `[batch, 3, H, W]` (CLIPSeg: 352,
 * Pillow bilinear resize straight to that size, ImageNet mean/std: {@link clipSegPreprocess}),
 * `input_ids` int32 or int64 `[batch, T]` from CLIP's BPE tokenizer, optionally
 * `attention_mask`; output `logits` (or the only output) `[batch, h, w]`, `[batch, 1, h, w]`, or
 * `[h, w]` for one image (Hugging Face squeezes the batch of one). The mask is
 * `sigmoid(logits)` brought back to the image's own size: the logits are resized bilinearly
 * (half-pixel centres, no antialias: PyTorch's `interpolate(mode="bilinear")`, what CLIPSeg demos
 * use) and then passed through the sigmoid, so the 0.5 contour is the logit-0 contour of the
 * interpolated logits.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadSegmenter, maskBoundingBox } from "./segmenter.ts";
 * import { OnnxGraph } from "../onnx/writer.ts";
 *
 * // Stand-in for CLIPSeg ("clipseg.onnx"): a pixel's logit is its mean normalised value.
 * const g = new OnnxGraph("bright");
 * const px = g.input("pixel_values", "float32", ["batch", 3, 16, 16]);
 * g.input("input_ids", "int64", ["batch", 77]);
 * g.output(g.node("ReduceMean", [px], { axes: [1], keepdims: 0 }), "float32", ["batch", 16, 16]);
 * const tokenizerDir = "tests/fixtures/tiny_clip_towers"; // CLIP BPE files
 * const cpu = ["cpu"];
 * const seg = await loadSegmenter({ model: g.toBytes(), tokenizerDir, executionProviders: cpu });
 * // Black, with a white 4x4 square at x 4..7, y 8..11.
 * const white = (i: number) => i % 16 >= 4 && i % 16 < 8 && i >= 128 && i < 192;
 * const data = new Uint8Array(768).map((_, k) => white(k / 3 | 0) ? 255 : 0);
 * const m = await seg.segment({ data, width: 16, height: 16 }, "the white square");
 * const box = maskBoundingBox(m, { threshold: 0.4, pad: 2 }); // region to touch up
 * assert.deepEqual(box, { x: 2, y: 6, width: 8, height: 8 });
 * await seg.release();
 * ```
 * @module
 */
import type { RgbImage } from "../plot/mod.ts";
import type { OnnxSession } from "../onnx/session.ts";
import {
  clipSegPreprocess,
  type ImagePreprocess,
  type PixelBox,
  preprocessImage,
  resizeFloat,
} from "../image/preprocess.ts";
import {
  batchSteps,
  checkIdsInput,
  checkImageInput,
  fmtShape,
  listIo,
  misfitOutput,
  type ModelSessionOptions,
  type ModelSource,
  onlyInputs,
  openModel,
  requireInput,
} from "../onnx/io_check.ts";
import { loadTextIdsTokenizer, textFeeds, type TextIdsTokenizer } from "./text_ids.ts";

/** A probability mask at an image's size, row-major. */
export interface SegmentMask {
  /** `width * height` probabilities in [0, 1]. */
  mask: Float32Array;
  /** Width. */
  width: number;
  /** Height. */
  height: number;
}

/** Options of {@link loadSegmenter}. */
export interface LoadSegmenterOptions extends ModelSessionOptions {
  /** The segmenter model. */
  model: ModelSource;
  /** Folder with `vocab.json` + `merges.txt` or `tokenizer.json` (CLIP BPE) or the kit's `word_tokenizer.json`. */
  tokenizerDir?: string;
  /** A tokenizer object instead of `tokenizerDir`. */
  tokenizer?: TextIdsTokenizer;
  /** Image preprocessing (default {@link clipSegPreprocess} at the session's size). */
  preprocess?: ImagePreprocess;
  /** Input side when the session does not fix it (default 352). */
  imageSize?: number;
  /** Output to read (default "logits", else the only output). */
  output?: string;
}

/** A loaded segmenter. */
export interface Segmenter {
  /** The session. */
  session: OnnxSession;
  /** Image preprocessing in use. */
  preprocess: ImagePreprocess;
  /** Ids per prompt. */
  contextLength: number;
  /** Probability mask of `prompt` over `image`, at the image's size. */
  segment(image: RgbImage, prompt: string): Promise<SegmentMask>;
  /** The raw logits at the model's output size, row-major `[h, w]`. */
  logits(
    image: RgbImage,
    prompt: string,
  ): Promise<{ data: Float32Array; width: number; height: number }>;
  /** Release the session (when the loader opened it). */
  release(): Promise<void>;
}

/**
 * Load a CLIPSeg-style segmenter (see the module doc for the I/O contract).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadSegmenter } from "./segmenter.ts";
 * import { OnnxGraph } from "../onnx/writer.ts";
 *
 * // Stand-in for CLIPSeg's export ("clipseg.onnx", 352 px): 16 px, logits = mean of channels.
 * const g = new OnnxGraph("bright");
 * const px = g.input("pixel_values", "float32", ["batch", 3, 16, 16]);
 * g.input("input_ids", "int64", ["batch", 77]);
 * g.output(g.node("ReduceMean", [px], { axes: [1], keepdims: 0 }), "float32", ["batch", 16, 16]);
 * const tokenizerDir = "tests/fixtures/tiny_clip_towers"; // CLIP BPE files
 * const cpu = ["cpu"];
 * const seg = await loadSegmenter({ model: g.toBytes(), tokenizerDir, executionProviders: cpu });
 * assert.deepEqual([seg.preprocess.width, seg.contextLength], [16, 77]); // read from the model
 * await seg.release();
 * ```
 */
export async function loadSegmenter(opts: LoadSegmenterOptions): Promise<Segmenter> {
  if (!opts.tokenizer && !opts.tokenizerDir) {
    throw new Error(
      "loadSegmenter: give tokenizerDir (vocab.json + merges.txt or tokenizer.json) or tokenizer",
    );
  }
  const { session: s, owned } = await openModel(opts.model, opts, "segmenter model");
  try {
    const pxIn = requireInput(s, ["pixel_values"], "float32 [batch, 3, 352, 352]");
    const idsIn = requireInput(s, ["input_ids"], "int32 or int64 [batch, sequence]");
    const maskIn = s.inputs.find((i) => i.name === "attention_mask") ?? null;
    onlyInputs(s, maskIn ? [pxIn.name, idsIn.name, maskIn.name] : [pxIn.name, idsIn.name]);
    const px = checkImageInput(s, pxIn, "RGB images", opts.preprocess);
    const ids = checkIdsInput(s, idsIn);
    if (maskIn) checkIdsInput(s, maskIn);
    const tokenizer = opts.tokenizer ??
      await loadTextIdsTokenizer(opts.tokenizerDir!, { contextLength: ids.length ?? undefined });
    const T = tokenizer.contextLength;
    if (ids.length !== null && ids.length !== T) {
      throw new Error(
        `${s.name}: input "${idsIn.name}" is ${idsIn.dtype} ${fmtShape(idsIn.shape)}, but the ` +
          `tokenizer gives ${T} ids per text`,
      );
    }
    const preprocess = opts.preprocess ?? clipSegPreprocess(px.height ?? opts.imageSize ?? 352);
    if (opts.preprocess === undefined && px.height !== null && px.width !== null) {
      preprocess.width = px.width;
      preprocess.height = px.height;
    }
    let out = s.outputs.find((o) => o.name === (opts.output ?? "logits"));
    if (!out && opts.output === undefined && s.outputs.length === 1) out = s.outputs[0];
    if (!out) {
      throw new Error(
        `${s.name}: has no output "${opts.output ?? "logits"}" (expected float32 [batch, h, w] ` +
          `logits); its outputs are ${listIo(s.outputs)}`,
      );
    }
    const want = "float32 [batch, h, w] or [batch, 1, h, w]";
    if (out.dtype !== "float32" && out.dtype !== "unknown") misfitOutput(s, out, want, "logits");
    if (out.shape !== null) {
      const r = out.shape.length;
      if (r < 2 || r > 4 || (r === 4 && (typeof out.shape[1] === "number" && out.shape[1] !== 1))) {
        misfitOutput(s, out, want, "one logit map per image");
      }
    }
    const outName = out.name;
    const fixedBatch = px.batch ?? ids.batch;

    const logits = async (image: RgbImage, prompt: string) => {
      const [st] = batchSteps(1, { fixedBatch, maxBatch: 1 });
      const { width: W, height: H } = preprocess;
      const x = new Float32Array(st.feedN * 3 * H * W);
      x.set(preprocessImage(image, preprocess));
      const texts = [prompt];
      while (texts.length < st.feedN) texts.push("");
      const feeds: Record<
        string,
        { data: Float32Array | Int32Array | BigInt64Array; shape: number[] }
      > = {
        [pxIn.name]: { data: x, shape: [st.feedN, 3, H, W] },
        ...textFeeds(tokenizer, texts, { ids: idsIn, mask: maskIn }, s.name),
      };
      const y = (await s.run(feeds, [outName]))[outName];
      const d = y.dims;
      const ok = (d.length === 2 && st.feedN === 1) || (d.length === 3 && d[0] === st.feedN) ||
        (d.length === 4 && d[0] === st.feedN && d[1] === 1);
      if (!ok) {
        throw new Error(
          `${s.name}: output "${outName}" came out [${d.join(", ")}], expected ` +
            `[${st.feedN}, h, w] or [${st.feedN}, 1, h, w] (one logit map per image)`,
        );
      }
      const h = d[d.length - 2], w = d[d.length - 1];
      return { data: (y.data as Float32Array).slice(0, h * w), width: w, height: h };
    };

    return {
      session: s,
      preprocess,
      contextLength: T,
      logits,
      async segment(image: RgbImage, prompt: string): Promise<SegmentMask> {
        const l = await logits(image, prompt);
        let z: Float32Array = l.data;
        if (l.width !== image.width || l.height !== image.height) {
          z = resizeFloat({ data: z, width: l.width, height: l.height, channels: 1 }, {
            width: image.width,
            height: image.height,
            filter: "bilinear",
            antialias: false,
          }).data;
        }
        const mask = new Float32Array(z.length);
        for (let i = 0; i < z.length; i++) mask[i] = 1 / (1 + Math.exp(-z[i]));
        return { mask, width: image.width, height: image.height };
      },
      release: async () => {
        if (owned) await s.release();
      },
    };
  } catch (e) {
    if (owned) await s.release();
    throw e;
  }
}

/** Options of {@link maskBoundingBox}. */
export interface MaskBoxOptions {
  /** Pixels with probability strictly above this are inside (default 0.5). */
  threshold?: number;
  /** Pixels added on every side, clipped to the image (default 0). */
  pad?: number;
}

/**
 * The smallest box holding every mask pixel above `threshold`, grown by `pad` and clipped to
 * the image; null when no pixel is above.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { maskBoundingBox } from "./segmenter.ts";
 *
 * const mask = new Float32Array(16 * 16);
 * mask[5 * 16 + 3] = mask[6 * 16 + 7] = 0.9; // (x 3, y 5) and (x 7, y 6)
 * const m = { mask, width: 16, height: 16 };
 * assert.deepEqual(maskBoundingBox(m, { pad: 1 }), { x: 2, y: 4, width: 7, height: 4 });
 * assert.equal(maskBoundingBox(m, { threshold: 0.95 }), null);
 * ```
 */
export function maskBoundingBox(mask: SegmentMask, opts: MaskBoxOptions = {}): PixelBox | null {
  const { width: w, height: h } = mask;
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1) {
    throw new Error(`maskBoundingBox: mask size ${w}x${h}, expected positive integers`);
  }
  if (!(mask.mask instanceof Float32Array) || mask.mask.length !== w * h) {
    throw new Error(`maskBoundingBox: mask has ${mask.mask?.length} values, expected ${w}*${h}`);
  }
  const t = opts.threshold ?? 0.5, pad = opts.pad ?? 0;
  if (!Number.isFinite(t)) throw new Error(`maskBoundingBox: threshold must be a number, got ${t}`);
  if (!Number.isInteger(pad) || pad < 0) {
    throw new Error(`maskBoundingBox: pad must be a non-negative integer, got ${pad}`);
  }
  let x0 = w, y0 = h, x1 = -1, y1 = -1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (mask.mask[y * w + x] > t) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  if (x1 < 0) return null;
  const bx0 = Math.max(x0 - pad, 0), by0 = Math.max(y0 - pad, 0);
  const bx1 = Math.min(x1 + pad, w - 1), by1 = Math.min(y1 + pad, h - 1);
  return { x: bx0, y: by0, width: bx1 - bx0 + 1, height: by1 - by0 + 1 };
}
