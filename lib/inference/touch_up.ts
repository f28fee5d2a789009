/**
 * Regional touch-ups, as the study does them: find a region (a mask from a prompt such as
 * "a face", or one given), crop its bounding box with a margin, enlarge the crop to the model's
 * resolution, run img2img on it with a matching prompt ("a detailed face"), shrink the result
 * back to the box and blend it into the original through the feathered mask.
 *
 * The helpers are pure; {@link touchUp} strings them together over any loaded ONNX pipeline (a
 * kit export or an Optimum Stable Diffusion folder). Pixels outside the crop box are never
 * written, so they stay bit-identical to the input: the feathered mask is zero outside the
 * box by construction (the box holds the thresholded region grown by the feather radius).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { touchUp } from "./touch_up.ts";
 * import { loadSegmenter } from "./segmenter.ts";
 * import { loadOnnxPipeline } from "../onnx/sd_pipeline.ts";
 * import { OnnxGraph } from "../onnx/writer.ts";
 *
 * // A tiny 64 px SD folder (e.g. "runs/default/onnx"), and for CLIPSeg a stand-in whose logits
 * // are the pixels' mean normalised values, so bright pixels are the region.
 * const cpu = { executionProviders: ["cpu"] };
 * const pipe = await loadOnnxPipeline("tests/fixtures/tiny_sd/fp32_scalar_t", cpu);
 * const g = new OnnxGraph("bright");
 * const px = g.input("pixel_values", "float32", ["batch", 3, 16, 16]);
 * g.input("input_ids", "int64", ["batch", 77]);
 * g.output(g.node("ReduceMean", [px], { axes: [1], keepdims: 0 }), "float32", ["batch", 16, 16]);
 * const tokenizerDir = "tests/fixtures/tiny_clip_towers";
 * const seg = await loadSegmenter({ ...cpu, model: g.toBytes(), tokenizerDir });
 * // Black 96x64, with a white square at x 48..63, y 16..31.
 * const white = (p: number) => p % 96 >= 48 && p % 96 < 64 && p >= 96 * 16 && p < 96 * 32;
 * const data = new Uint8Array(96 * 64 * 3).map((_, k) => white(k / 3 | 0) ? 255 : 0);
 * const image = { data, width: 96, height: 64 };
 * const r = await touchUp({
 *   pipeline: pipe, image, segmenter: seg, region: "the white square", prompt: "a red circle",
 *   strength: 0.5, steps: 2, guidance: 4, seed: 0,
 * });
 * assert.deepEqual(r.box, { x: 44, y: 12, width: 25, height: 25 });
 * await seg.release();
 * await pipe.release();
 * ```
 * @module
 */
import type { RgbImage } from "../plot/mod.ts";
import { cropRgb, type PixelBox, resizeRgb } from "../image/preprocess.ts";
import { maskBoundingBox, type Segmenter, type SegmentMask } from "./segmenter.ts";
import { img2img, type OnnxPipeline } from "../onnx/sd_pipeline.ts";

function checkMask(mask: SegmentMask, where: string): void {
  const { width: w, height: h } = mask;
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1) {
    throw new Error(`${where}: mask size ${w}x${h}, expected positive integers`);
  }
  if (!(mask.mask instanceof Float32Array) || mask.mask.length !== w * h) {
    throw new Error(`${where}: mask has ${mask.mask?.length} values, expected ${w}*${h}`);
  }
}

function checkImage(img: RgbImage, where: string): void {
  const { width: w, height: h, data } = img;
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1) {
    throw new Error(`${where}: image size ${w}x${h}, expected positive integers`);
  }
  if (!(data instanceof Uint8Array) || data.length !== w * h * 3) {
    throw new Error(`${where}: image data has ${data?.length} bytes, expected ${w}*${h}*3 RGB`);
  }
}

/** Options of {@link featherMask}. */
export interface FeatherOptions {
  /** Half-width of the ramp in pixels, a non-negative integer (default 0: a hard mask). */
  radius?: number;
  /** Pixels with probability strictly above this are inside (default 0.5, as maskBoundingBox). */
  threshold?: number;
}

/** Sums of `a` over windows `[i - r, i + r]` along one axis, indices clamped to the edge. */
function windowSums(
  a: Int32Array,
  dims: { w: number; h: number },
  r: number,
  horizontal: boolean,
): Int32Array {
  const { w, h } = dims;
  const out = new Int32Array(w * h);
  const [lines, len] = horizontal ? [h, w] : [w, h];
  const at = (line: number, i: number) => {
    const k = i < 0 ? 0 : i >= len ? len - 1 : i;
    return horizontal ? a[line * w + k] : a[k * w + line];
  };
  for (let line = 0; line < lines; line++) {
    let s = 0;
    for (let i = -r; i <= r; i++) s += at(line, i);
    for (let i = 0; i < len; i++) {
      out[horizontal ? line * w + i : i * w + line] = s;
      s += at(line, i + r + 1) - at(line, i - r);
    }
  }
  return out;
}

/**
 * A soft mask for blending: the mask is thresholded (strictly above `threshold` is inside),
 * then box-blurred over `(2 * radius + 1)^2` windows with the image's edge pixels repeated.
 * Thresholding first is deliberate: a segmenter's tails (sigmoid 0.01 far away) would
 * otherwise leak a faint patch into the whole box. The result is exactly 0 where the window
 * holds no inside pixel (more than `radius` away in both axes), exactly 1 where it holds
 * only inside pixels, and a linear ramp of `2 * radius + 1` pixels across a straight edge.
 * Edge repetition keeps a region touching the image border at full strength there.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { featherMask } from "./touch_up.ts";
 *
 * // A half plane x < 10 of a 16x4 mask, radius 2.
 * const mask = new Float32Array(16 * 4).map((_, i) => i % 16 < 10 ? 1 : 0);
 * const soft = featherMask({ mask, width: 16, height: 4 }, { radius: 2 });
 * const row = Array.from(soft.mask.subarray(6, 14), (v) => +v.toFixed(6)); // x = 6..13
 * assert.deepEqual(row, [1, 1, 0.8, 0.6, 0.4, 0.2, 0, 0]);
 * ```
 */
export function featherMask(mask: SegmentMask, opts: FeatherOptions = {}): SegmentMask {
  checkMask(mask, "featherMask");
  const r = opts.radius ?? 0, t = opts.threshold ?? 0.5;
  if (!Number.isInteger(r) || r < 0) {
    throw new Error(`featherMask: radius must be a non-negative integer, got ${r}`);
  }
  if (!Number.isFinite(t)) throw new Error(`featherMask: threshold must be a number, got ${t}`);
  const { width: w, height: h } = mask;
  const inside = new Int32Array(w * h);
  for (let i = 0; i < inside.length; i++) inside[i] = mask.mask[i] > t ? 1 : 0;
  // Integer counts, divided once: full windows give exactly 1, empty ones exactly 0.
  const counts = windowSums(windowSums(inside, { w, h }, r, true), { w, h }, r, false);
  const area = (2 * r + 1) * (2 * r + 1);
  const out = new Float32Array(w * h);
  for (let i = 0; i < out.length; i++) out[i] = counts[i] / area;
  return { mask: out, width: w, height: h };
}

/** Options of {@link expandBox}. */
export interface ExpandBoxOptions {
  /**
   * Fraction of the box's own width (height) added on the left and right (top and bottom),
   * rounded to whole pixels (default 0).
   */
  margin?: number;
  /** Grow the shorter side to the longer one, centred (default false). */
  square?: boolean;
  /**
   * The image to stay inside: the box is shifted back in (keeping its size, so it stays square
   * and still holds the region), and cut only where it is larger than the image.
   */
  within?: { width: number; height: number };
}

/** Fit `[start, start + size)` into `[0, limit)`: shift first, cut only when too large. */
function fitSpan(start: number, size: number, limit: number): [number, number] {
  if (size >= limit) return [0, limit];
  if (start < 0) return [0, size];
  if (start + size > limit) return [limit - size, size];
  return [start, size];
}

/**
 * Grow a box by a margin, optionally make it square (the models work on square images, and a
 * square crop is not distorted by the resize to their size), and keep it inside an image. The
 * result always contains the input box when the input box lies inside `within`.
 *
 * @example
 * ```ts
 * expandBox({ x: 10, y: 20, width: 20, height: 10 }, { margin: 0.25, square: true, within: { width: 64, height: 64 } });
 * // margin: 5 px left/right, 3 px (2.5 rounded) top/bottom -> 30x16; square: 30x30, centred
 * // { x: 5, y: 10, width: 30, height: 30 }
 * ```
 */
export function expandBox(box: PixelBox, opts: ExpandBoxOptions = {}): PixelBox {
  const { x, y, width: w, height: h } = box;
  if (![x, y].every(Number.isInteger) || ![w, h].every((v) => Number.isInteger(v) && v >= 1)) {
    throw new Error(
      `expandBox: box ${JSON.stringify(box)} needs integer x, y and positive integer sizes`,
    );
  }
  const margin = opts.margin ?? 0;
  if (!(margin >= 0) || !Number.isFinite(margin)) {
    throw new Error(`expandBox: margin must be a non-negative number, got ${margin}`);
  }
  const mx = Math.round(margin * w), my = Math.round(margin * h);
  let bx = x - mx, by = y - my, bw = w + 2 * mx, bh = h + 2 * my;
  if (opts.square) {
    const side = Math.max(bw, bh);
    bx -= Math.floor((side - bw) / 2);
    by -= Math.floor((side - bh) / 2);
    bw = bh = side;
  }
  if (opts.within) {
    const { width: W, height: H } = opts.within;
    if (![W, H].every((v) => Number.isInteger(v) && v >= 1)) {
      throw new Error(`expandBox: within must have positive integer sizes, got ${W}x${H}`);
    }
    [bx, bw] = fitSpan(bx, bw, W);
    [by, bh] = fitSpan(by, bh, H);
  }
  return { x: bx, y: by, width: bw, height: bh };
}

/**
 * Blend two same-size RGB images through a mask: `out = mask * patch + (1 - mask) * original`
 * per pixel and channel, computed as `original + mask * (patch - original)` so mask 0 gives the
 * original bytes and mask 1 the patch bytes exactly; rounded half up.
 *
 * @example
 * ```ts
 * const a = { data: new Uint8Array([100, 0, 0]), width: 1, height: 1 };
 * const b = { data: new Uint8Array([200, 255, 9]), width: 1, height: 1 };
 * blendThroughMask(a, b, { mask: new Float32Array([0.25]), width: 1, height: 1 }).data; // [125, 64, 2]
 * ```
 */
export function blendThroughMask(
  original: RgbImage,
  patch: RgbImage,
  mask: SegmentMask,
): RgbImage {
  checkImage(original, "blendThroughMask: original");
  checkImage(patch, "blendThroughMask: patch");
  checkMask(mask, "blendThroughMask");
  const { width: w, height: h } = original;
  for (const [what, s] of [["patch", patch], ["mask", mask]] as const) {
    if (s.width !== w || s.height !== h) {
      throw new Error(
        `blendThroughMask: ${what} is ${s.width}x${s.height}, the original ${w}x${h}`,
      );
    }
  }
  const out = new Uint8Array(w * h * 3);
  for (let p = 0; p < w * h; p++) {
    const m = mask.mask[p];
    if (!(m >= 0 && m <= 1)) {
      throw new Error(`blendThroughMask: mask value ${m} at pixel ${p} is outside [0, 1]`);
    }
    for (let c = 0; c < 3; c++) {
      const o = original.data[p * 3 + c];
      out[p * 3 + c] = Math.floor(o + m * (patch.data[p * 3 + c] - o) + 0.5);
    }
  }
  return { data: out, width: w, height: h };
}

/** Where the region comes from: a mask at the image's size, or a segmenter and its prompt. */
export type TouchUpRegion =
  | { mask: SegmentMask; segmenter?: never; region?: never }
  | { segmenter: Pick<Segmenter, "segment">; region: string; mask?: never };

/** Options of {@link touchUp}. */
export type TouchUpOptions = TouchUpRegion & {
  /** A loaded ONNX pipeline with a VAE encoder (kit export or Optimum SD folder). */
  pipeline: OnnxPipeline;
  /** The image to touch up. */
  image: RgbImage;
  /** What the region should become ("a detailed face"). */
  prompt: string;
  /** img2img strength in (0, 1]. */
  strength: number;
  /** Sampling steps (img2img runs `floor(steps * strength)` of them). */
  steps: number;
  /** Classifier-free guidance scale. */
  guidance: number;
  /** Sampler (default: the pipeline scheduler's). */
  scheduler?: string;
  /** Noise seed. */
  seed: number;
  /** Unconditional prompt (default ""). */
  negativePrompt?: string;
  /** Margin around the region, a fraction of its size (default 0.25, see {@link expandBox}). */
  margin?: number;
  /** Feather radius in pixels (default 0, see {@link featherMask}). */
  feather?: number;
  /** Mask probability a pixel must exceed to be in the region (default 0.5). */
  threshold?: number;
  /** Square crop box (default: when the model size is square). */
  square?: boolean;
  /** Model resolution (default: the pipeline's `width` x `height`). */
  size?: { width: number; height: number };
};

/** What {@link touchUp} made. */
export interface TouchUpResult {
  /** The touched-up image, bit-identical to the input outside {@link TouchUpResult.box}. */
  image: RgbImage;
  /** The crop box that was regenerated. */
  box: PixelBox;
  /** The feathered mask at the image's size (0 outside the box). */
  mask: SegmentMask;
  /** The img2img result shrunk back to the box's size, before blending. */
  patch: RgbImage;
}

function maxOf(a: Float32Array): number {
  let m = -Infinity;
  for (const v of a) if (v > m) m = v;
  return m;
}

/** Copy of `mask` restricted to `box` (inside the mask's bounds). */
function cropMask(mask: SegmentMask, box: PixelBox): SegmentMask {
  const out = new Float32Array(box.width * box.height);
  for (let y = 0; y < box.height; y++) {
    const row = (box.y + y) * mask.width + box.x;
    out.set(mask.mask.subarray(row, row + box.width), y * box.width);
  }
  return { mask: out, width: box.width, height: box.height };
}

/**
 * Touch up one region of an image: mask (given, or from `segmenter` and `region`), bounding
 * box of the thresholded mask grown by the feather radius and then by `margin` (square when
 * asked), crop, Pillow bicubic resize to the model's size, img2img with `prompt`, bicubic resize
 * back to the box, blend through the feathered mask. Fails naming the region and the mask's
 * largest value when no pixel is above `threshold`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { touchUp } from "./touch_up.ts";
 * import { loadOnnxPipeline } from "../onnx/sd_pipeline.ts";
 *
 * // A tiny 64 px SD folder (e.g. "runs/default/onnx"); a 96x64 image; a mask of its 16x16
 * // square at x 48..63, y 16..31.
 * const pipe = await loadOnnxPipeline("tests/fixtures/tiny_sd/fp32_scalar_t", {
 *   executionProviders: ["cpu"],
 * });
 * const image = { data: new Uint8Array(96 * 64 * 3).fill(90), width: 96, height: 64 };
 * const inside = (p: number) => p % 96 >= 48 && p % 96 < 64 && p >= 96 * 16 && p < 96 * 32;
 * const mask = new Float32Array(96 * 64).map((_, p) => inside(p) ? 1 : 0);
 * const r = await touchUp({
 *   pipeline: pipe, image, mask: { mask, width: 96, height: 64 }, prompt: "a red circle",
 *   strength: 0.5, steps: 2, guidance: 4, seed: 0, margin: 0.25, feather: 4,
 * });
 * // The square grown by the feather radius (4), then the margin (6 px a side): only it changes.
 * assert.deepEqual(r.box, { x: 38, y: 6, width: 36, height: 36 });
 * assert.deepEqual(r.image.data.subarray(0, 6 * 96 * 3), image.data.subarray(0, 6 * 96 * 3));
 * await pipe.release();
 * ```
 */
export async function touchUp(o: TouchUpOptions): Promise<TouchUpResult> {
  const what = "touchUp";
  checkImage(o.image, `${what}: image`);
  const { width: W, height: H } = o.image;
  let raw: SegmentMask, source: string;
  if (o.mask !== undefined) {
    if (o.segmenter !== undefined) throw new Error(`${what}: give mask or segmenter, not both`);
    checkMask(o.mask, what);
    raw = o.mask;
    source = "the given mask";
  } else {
    if (!o.segmenter || typeof o.region !== "string" || o.region.trim() === "") {
      throw new Error(`${what}: give mask, or segmenter with a region prompt`);
    }
    raw = await o.segmenter.segment(o.image, o.region);
    source = `the region "${o.region}"`;
  }
  if (raw.width !== W || raw.height !== H) {
    throw new Error(`${what}: mask is ${raw.width}x${raw.height}, the image ${W}x${H}`);
  }
  const threshold = o.threshold ?? 0.5, feather = o.feather ?? 0;
  const size = o.size ??
    (o.pipeline.width !== null && o.pipeline.height !== null
      ? { width: o.pipeline.width, height: o.pipeline.height }
      : null);
  if (size === null) {
    throw new Error(`${what}: ${o.pipeline.dir} does not say its image size; pass size`);
  }

  // Grown by the feather radius first, so the soft mask's whole support lies in the box.
  const found = maskBoundingBox(raw, { threshold, pad: feather });
  if (found === null) {
    throw new Error(
      `${what}: no pixel of ${source} is above threshold ${threshold} (largest mask value ` +
        `${maxOf(raw.mask).toPrecision(3)}); lower the threshold or describe the region otherwise`,
    );
  }
  const box = expandBox(found, {
    margin: o.margin ?? 0.25,
    square: o.square ?? size.width === size.height,
    within: o.image,
  });
  const mask = featherMask(raw, { radius: feather, threshold });

  const crop = cropRgb(o.image, box);
  const big = resizeRgb(crop, { ...size, filter: "bicubic" });
  const [made] = await img2img(o.pipeline, {
    images: [big],
    prompts: [o.prompt],
    n: 1,
    strength: o.strength,
    steps: o.steps,
    guidance: o.guidance,
    scheduler: o.scheduler,
    seed: o.seed,
    negativePrompt: o.negativePrompt,
  });
  const patch = resizeRgb(made, { width: box.width, height: box.height, filter: "bicubic" });
  const blended = blendThroughMask(crop, patch, cropMask(mask, box));

  // Only the box's rows are written: everything else stays the input's bytes.
  const data = o.image.data.slice();
  for (let y = 0; y < box.height; y++) {
    data.set(
      blended.data.subarray(y * box.width * 3, (y + 1) * box.width * 3),
      ((box.y + y) * W + box.x) * 3,
    );
  }
  return { image: { data, width: W, height: H }, box, mask, patch };
}
