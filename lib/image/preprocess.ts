/**
 * Image preprocessing conventions of pretrained models (CLIP towers, segmenters, upsamplers,
 * Inception), stated in code:
 *
 * - **Resize** as Pillow's `Image.resize` does it (what Hugging Face image processors and
 *   torchvision on PIL images call): separable, horizontal pass then vertical, each output pixel
 *   a normalised weighted sum over the input pixels whose centres fall under the filter; when
 *   shrinking, the filter is stretched by the shrink factor (antialiasing). Bicubic uses Keys'
 *   kernel with a = -0.5 (Pillow's, not PyTorch's -0.75). On 8-bit images the weights are
 *   22-bit fixed point and every pass rounds and clips to a byte, exactly as Pillow; float
 *   images accumulate in float64 and store float32 after each pass (Pillow's mode "F").
 *   `antialias: false` keeps the filter unstretched; with `"bilinear"` that is PyTorch's
 *   `interpolate(mode="bilinear", align_corners=False)` (half-pixel centres, clamped at the
 *   borders) and the kit's own `toClipInput` resize.
 * - **Shortest-side resize + center crop** (OpenAI CLIP, `CLIPImageProcessor`): the short side
 *   becomes `size`, the long side `int(size * long / short)` (truncated, as both Hugging Face and
 *   torchvision compute it); the crop offset is `(size - crop) // 2` (Hugging Face) or
 *   `round((size - crop) / 2)` with Python's half-to-even rounding (torchvision's `CenterCrop`);
 *   the two differ by a pixel when the difference is 3 mod 4. A crop larger than the image pads
 *   with zeros (both libraries).
 * - **Normalisation** `(v / 255 - mean) / std` per channel with named constants: OpenAI CLIP,
 *   ImageNet, `[0, 1]` (mean 0, std 1) and `[-1, 1]` (mean 0.5, std 0.5).
 * - **Packing** a batch of {@link RgbImage} as float32 NCHW.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clipPreprocess, preprocessBatch } from "./preprocess.ts";
 *
 * const img = { data: new Uint8Array(300 * 200 * 3).fill(128), width: 300, height: 200 };
 * const spec = clipPreprocess(224);
 * const x = preprocessBatch([img], spec);
 * assert.equal(x.length, 3 * 224 * 224); // [n, 3, 224, 224]
 * ```
 * @module
 */
import type { RgbImage } from "../plot/mod.ts";

/** OpenAI CLIP's per-channel mean (RGB), as `CLIPImageProcessor` and open_clip use it. */
export const OPENAI_CLIP_MEAN: readonly [number, number, number] = [
  0.48145466,
  0.4578275,
  0.40821073,
];
/** OpenAI CLIP's per-channel standard deviation (RGB). */
export const OPENAI_CLIP_STD: readonly [number, number, number] = [
  0.26862954,
  0.26130258,
  0.27577711,
];
/** ImageNet per-channel mean (RGB), used by CLIPSeg's `ViTImageProcessor` and torchvision. */
export const IMAGENET_MEAN: readonly [number, number, number] = [0.485, 0.456, 0.406];
/** ImageNet per-channel standard deviation (RGB). */
export const IMAGENET_STD: readonly [number, number, number] = [0.229, 0.224, 0.225];

/** A per-channel normalisation `x = (v / 255 - mean[c]) / std[c]` of byte values `v`. */
export interface Normalization {
  /** Short name for descriptions ("openai-clip", "imagenet", "[0,1]", "[-1,1]"). */
  name: string;
  /** Mean per RGB channel, in [0, 1] units. */
  mean: readonly [number, number, number];
  /** Standard deviation per RGB channel, in [0, 1] units. */
  std: readonly [number, number, number];
}

/**
 * OpenAI CLIP normalisation.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NORM_OPENAI_CLIP, normalizeValue } from "./preprocess.ts";
 *
 * assert.equal(normalizeValue(255, 0, NORM_OPENAI_CLIP), (1 - 0.48145466) / 0.26862954);
 * ```
 */
export const NORM_OPENAI_CLIP: Normalization = {
  name: "openai-clip",
  mean: OPENAI_CLIP_MEAN,
  std: OPENAI_CLIP_STD,
};

/**
 * ImageNet normalisation (CLIPSeg, most torchvision backbones).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NORM_IMAGENET, normalizeValue } from "./preprocess.ts";
 *
 * assert.equal(normalizeValue(0, 2, NORM_IMAGENET), -0.406 / 0.225);
 * ```
 */
export const NORM_IMAGENET: Normalization = {
  name: "imagenet",
  mean: IMAGENET_MEAN,
  std: IMAGENET_STD,
};

/**
 * Pixels in [0, 1] (`v / 255`): Real-ESRGAN and most upsamplers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NORM_UNIT, normalizeValue } from "./preprocess.ts";
 *
 * assert.equal(normalizeValue(255, 0, NORM_UNIT), 1);
 * ```
 */
export const NORM_UNIT: Normalization = { name: "[0,1]", mean: [0, 0, 0], std: [1, 1, 1] };

/**
 * Pixels in [-1, 1] (`v / 127.5 - 1`): the kit's own models and Stable Diffusion's VAE.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NORM_SYMMETRIC, normalizeValue } from "./preprocess.ts";
 *
 * assert.equal(normalizeValue(0, 0, NORM_SYMMETRIC), -1);
 * ```
 */
export const NORM_SYMMETRIC: Normalization = {
  name: "[-1,1]",
  mean: [0.5, 0.5, 0.5],
  std: [0.5, 0.5, 0.5],
};

/**
 * Resampling filters (Pillow's kernels: triangle with support 1, Keys a=-0.5 with support 2,
 * Lanczos-3 `sinc(x) sinc(x/3)` with support 3; the last is diffusers' training default).
 */
export type ResampleFilter = "bicubic" | "bilinear" | "lanczos";

/** Options of {@link resizeRgb}, {@link resizeFloat} and {@link resampleKernel}. */
export interface ResizeOptions {
  /** Output width. */
  width: number;
  /** Output height. */
  height: number;
  /** Filter (default "bicubic"). */
  filter?: ResampleFilter;
  /** Stretch the filter when shrinking, as Pillow always does (default true). */
  antialias?: boolean;
}

/** Interleaved float pixels: `height * width * channels` values, row-major. */
export interface FloatImage {
  /** Values. */
  data: Float32Array;
  /** Width. */
  width: number;
  /** Height. */
  height: number;
  /** Values per pixel. */
  channels: number;
}

/** An axis-aligned box in pixels; `x`, `y` may be negative (zero padding) in crops. */
export interface PixelBox {
  /** Left column. */
  x: number;
  /** Top row. */
  y: number;
  /** Width. */
  width: number;
  /** Height. */
  height: number;
}

/** Per-output-pixel taps of a 1-D resample: input `starts[i] .. starts[i] + counts[i] - 1`. */
export interface ResampleKernel {
  /** Input length. */
  inSize: number;
  /** Output length. */
  outSize: number;
  /** Weights per output pixel (stride of {@link ResampleKernel.weights}). */
  ksize: number;
  /** First input index per output pixel. */
  starts: Int32Array;
  /** Number of taps per output pixel. */
  counts: Int32Array;
  /** `outSize * ksize` normalised weights (unused slots 0). */
  weights: Float64Array;
}

const FILTER_SUPPORT: Record<ResampleFilter, number> = { bilinear: 1, bicubic: 2, lanczos: 3 };

/** Pillow's `sinc_filter`: `sin(pi x) / (pi x)`, 1 at 0. */
function sinc(x: number): number {
  if (x === 0) return 1;
  x = x * Math.PI;
  return Math.sin(x) / x;
}

function filterValue(filter: ResampleFilter, x: number): number {
  // Pillow's window is [-3, 3): taken before the absolute value below.
  if (filter === "lanczos") return -3 <= x && x < 3 ? sinc(x) * sinc(x / 3) : 0;
  if (x < 0) x = -x;
  if (filter === "bilinear") return x < 1 ? 1 - x : 0;
  // Keys' cubic convolution with a = -0.5, written in Pillow's operation order so the doubles
  // (and hence the 8-bit fixed-point weights) come out bit-identical.
  const a = -0.5;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

function checkSize(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 1) {
    throw new Error(`${what} must be a positive integer, got ${v}`);
  }
}

/**
 * Taps and weights of a 1-D resample from `inSize` to `outSize` pixels (Pillow's
 * `precompute_coeffs`): output pixel `i` is centred at input coordinate `(i + 0.5) * in/out`;
 * taps whose centres fall outside the image are dropped and the rest renormalised.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resampleKernel } from "./preprocess.ts";
 *
 * const k = resampleKernel(4, 2, { filter: "bilinear" });
 * // output 0 is centred at 1.0; the triangle stretched by 2 gives inputs 0..2 weights
 * // 0.75, 0.75, 0.25 (input -1 is outside), renormalised: [3/7, 3/7, 1/7]
 * assert.deepEqual([k.outSize, k.starts[0]], [2, 0]);
 * ```
 */
export function resampleKernel(
  inSize: number,
  outSize: number,
  opts: { filter?: ResampleFilter; antialias?: boolean } = {},
): ResampleKernel {
  checkSize(inSize, "resampleKernel: input size");
  checkSize(outSize, "resampleKernel: output size");
  const filter = opts.filter ?? "bicubic";
  if (!(filter in FILTER_SUPPORT)) {
    throw new Error(
      `resampleKernel: filter must be "bicubic", "bilinear" or "lanczos", got "${filter}"`,
    );
  }
  const scale = inSize / outSize;
  const filterscale = (opts.antialias ?? true) ? Math.max(scale, 1) : 1;
  const support = FILTER_SUPPORT[filter] * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const starts = new Int32Array(outSize);
  const counts = new Int32Array(outSize);
  const weights = new Float64Array(outSize * ksize);
  const ss = 1 / filterscale;
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    // C's (int) truncates toward zero; negative starts are clamped to 0 right after.
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize);
    const n = xmax - xmin;
    let ww = 0;
    for (let x = 0; x < n; x++) {
      const w = filterValue(filter, (x + xmin - center + 0.5) * ss);
      weights[i * ksize + x] = w;
      ww += w;
    }
    if (ww !== 0) { for (let x = 0; x < n; x++) weights[i * ksize + x] /= ww; }
    starts[i] = xmin;
    counts[i] = n;
  }
  return { inSize, outSize, ksize, starts, counts, weights };
}

const PRECISION_BITS = 32 - 8 - 2;

/** Pillow's 8-bit weights: round half away from zero to 22-bit fixed point. */
function fixedPointWeights(k: ResampleKernel): Int32Array {
  const out = new Int32Array(k.weights.length);
  const one = 1 << PRECISION_BITS;
  for (let i = 0; i < out.length; i++) {
    const w = k.weights[i];
    out[i] = w < 0 ? Math.trunc(-0.5 + w * one) : Math.trunc(0.5 + w * one);
  }
  return out;
}

function checkRgb(img: RgbImage, where: string): void {
  const { width: w, height: h, data } = img;
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1) {
    throw new Error(`${where}: image size ${w}x${h}, expected positive integers`);
  }
  if (!(data instanceof Uint8Array) || data.length !== w * h * 3) {
    throw new Error(`${where}: image data has ${data?.length} bytes, expected ${w}*${h}*3 RGB`);
  }
}

/** One 8-bit pass along x (`horizontal`) or y, Pillow's ImagingResample{Horizontal,Vertical}_8bpc. */
function pass8(
  src: Uint8Array,
  w: number,
  h: number,
  k: ResampleKernel,
  horizontal: boolean,
): Uint8Array {
  const kk = fixedPointWeights(k);
  const ow = horizontal ? k.outSize : w, oh = horizontal ? h : k.outSize;
  const out = new Uint8Array(ow * oh * 3);
  const half = 1 << (PRECISION_BITS - 1);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      const i = horizontal ? x : y;
      const start = k.starts[i], n = k.counts[i], base = i * k.ksize;
      for (let c = 0; c < 3; c++) {
        let ss = half;
        for (let t = 0; t < n; t++) {
          const p = horizontal ? (y * w + start + t) * 3 + c : ((start + t) * w + x) * 3 + c;
          ss += src[p] * kk[base + t];
        }
        // Pillow's clip8: arithmetic shift, then clamp to a byte.
        const v = ss >> PRECISION_BITS;
        out[(y * ow + x) * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
  }
  return out;
}

/**
 * Resize an 8-bit RGB image exactly as Pillow's `Image.resize(size, BICUBIC | BILINEAR)` does
 * (fixed-point weights, each pass rounded and clipped to bytes, a pass skipped when its size is
 * unchanged). `antialias: false` is not a Pillow mode: the filter is kept unstretched.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resizeRgb } from "./preprocess.ts";
 *
 * const img = { data: new Uint8Array(300 * 200 * 3).fill(128), width: 300, height: 200 };
 * const small = resizeRgb(img, { width: 224, height: 168, filter: "bicubic" });
 * assert.equal(small.data.length, 224 * 168 * 3);
 * ```
 */
export function resizeRgb(img: RgbImage, opts: ResizeOptions): RgbImage {
  checkRgb(img, "resizeRgb");
  checkSize(opts.width, "resizeRgb: width");
  checkSize(opts.height, "resizeRgb: height");
  let data = img.data;
  let w = img.width;
  const h = img.height;
  const ko = { filter: opts.filter, antialias: opts.antialias };
  if (opts.width !== w) {
    data = pass8(data, w, h, resampleKernel(w, opts.width, ko), true);
    w = opts.width;
  }
  if (opts.height !== h) data = pass8(data, w, h, resampleKernel(h, opts.height, ko), false);
  if (data === img.data) data = data.slice();
  return { data, width: opts.width, height: opts.height };
}

function checkFloat(img: FloatImage, where: string): void {
  const { width: w, height: h, channels: c, data } = img;
  if (![w, h, c].every((v) => Number.isInteger(v) && v >= 1)) {
    throw new Error(`${where}: image size ${w}x${h}x${c}, expected positive integers`);
  }
  if (!(data instanceof Float32Array) || data.length !== w * h * c) {
    throw new Error(`${where}: image data has ${data?.length} values, expected ${w}*${h}*${c}`);
  }
}

function passFloat(
  src: Float32Array,
  dims: { w: number; h: number; c: number },
  k: ResampleKernel,
  horizontal: boolean,
): Float32Array {
  const { w, h, c: ch } = dims;
  const ow = horizontal ? k.outSize : w, oh = horizontal ? h : k.outSize;
  const out = new Float32Array(ow * oh * ch);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      const i = horizontal ? x : y;
      const start = k.starts[i], n = k.counts[i], base = i * k.ksize;
      for (let c = 0; c < ch; c++) {
        let ss = 0;
        for (let t = 0; t < n; t++) {
          const p = horizontal ? (y * w + start + t) * ch + c : ((start + t) * w + x) * ch + c;
          ss += src[p] * k.weights[base + t];
        }
        out[(y * ow + x) * ch + c] = ss;
      }
    }
  }
  return out;
}

/**
 * Resize an interleaved float image (Pillow's mode "F" arithmetic: float64 sums, float32 after
 * each pass; no rounding or clipping). Used for masks, logits and float pipelines.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resizeFloat } from "./preprocess.ts";
 *
 * const logits = new Float32Array(352 * 352);
 * const m = resizeFloat({ data: logits, width: 352, height: 352, channels: 1 }, {
 *   width: 640,
 *   height: 480,
 *   filter: "bilinear",
 *   antialias: false,
 * });
 * assert.equal(m.data.length, 640 * 480);
 * ```
 */
export function resizeFloat(img: FloatImage, opts: ResizeOptions): FloatImage {
  checkFloat(img, "resizeFloat");
  checkSize(opts.width, "resizeFloat: width");
  checkSize(opts.height, "resizeFloat: height");
  let data = img.data;
  let w = img.width;
  const h = img.height, c = img.channels;
  const ko = { filter: opts.filter, antialias: opts.antialias };
  if (opts.width !== w) {
    data = passFloat(data, { w, h, c }, resampleKernel(w, opts.width, ko), true);
    w = opts.width;
  }
  if (opts.height !== h) {
    data = passFloat(data, { w, h, c }, resampleKernel(h, opts.height, ko), false);
  }
  if (data === img.data) data = data.slice();
  return { data, width: opts.width, height: opts.height, channels: c };
}

/**
 * Size after resizing the shortest side to `shortest`, keeping the aspect ratio: the long side
 * is `trunc(shortest * long / short)` (Hugging Face's `get_resize_output_image_size` and
 * torchvision's `Resize(int)`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shortestSideSize } from "./preprocess.ts";
 *
 * assert.deepEqual(shortestSideSize(640, 480, 224), { width: 298, height: 224 });
 * ```
 */
export function shortestSideSize(
  width: number,
  height: number,
  shortest: number,
): { width: number; height: number } {
  checkSize(width, "shortestSideSize: width");
  checkSize(height, "shortestSideSize: height");
  checkSize(shortest, "shortestSideSize: shortest");
  if (width <= height) return { width: shortest, height: Math.trunc(shortest * height / width) };
  return { width: Math.trunc(shortest * width / height), height: shortest };
}

/**
 * Center-crop offset rounding: `"floor"` = `(size - crop) // 2` (Hugging Face image
 * processors), `"round_half_even"` = Python's `round((size - crop) / 2)` (torchvision).
 */
export type CropRounding = "floor" | "round_half_even";

function centerOffset(size: number, crop: number, rounding: CropRounding): number {
  // Padding side (crop larger than the image): both libraries put the extra pixel last.
  if (crop >= size) return 0 - Math.floor((crop - size) / 2); // 0 - 0 is +0, not -0
  const d = size - crop;
  if (rounding === "floor" || d % 2 === 0) return Math.floor(d / 2);
  const lo = (d - 1) / 2;
  return lo % 2 === 0 ? lo : lo + 1;
}

/**
 * The box a center crop of `crop` takes from an image of `size` (negative offsets mean zero
 * padding).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { centerCropBox } from "./preprocess.ts";
 *
 * const box = centerCropBox({ width: 8, height: 5 }, { width: 5, height: 5 });
 * assert.deepEqual(box, { x: 1, y: 0, width: 5, height: 5 });
 * assert.equal(centerCropBox({ width: 8, height: 5 }, { width: 5, height: 5 }, "round_half_even").x, 2);
 * ```
 */
export function centerCropBox(
  size: { width: number; height: number },
  crop: { width: number; height: number },
  rounding: CropRounding = "floor",
): PixelBox {
  checkSize(crop.width, "centerCropBox: crop width");
  checkSize(crop.height, "centerCropBox: crop height");
  if (rounding !== "floor" && rounding !== "round_half_even") {
    throw new Error(
      `centerCropBox: rounding must be "floor" or "round_half_even", got "${rounding}"`,
    );
  }
  return {
    x: centerOffset(size.width, crop.width, rounding),
    y: centerOffset(size.height, crop.height, rounding),
    width: crop.width,
    height: crop.height,
  };
}

/**
 * Copy `box` out of an RGB image; pixels outside the image are black (zero padding, as Hugging
 * Face's and torchvision's center crops pad).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cropRgb } from "./preprocess.ts";
 *
 * const img = { data: new Uint8Array(300 * 200 * 3).fill(128), width: 300, height: 200 };
 * const region = cropRgb(img, { x: 10, y: 20, width: 64, height: 64 });
 * assert.equal(region.data.length, 64 * 64 * 3);
 * ```
 */
export function cropRgb(img: RgbImage, box: PixelBox): RgbImage {
  checkRgb(img, "cropRgb");
  const f = cropInterleaved(img.data, { width: img.width, height: img.height, channels: 3 }, box);
  return { data: f, width: box.width, height: box.height };
}

function cropInterleaved<T extends Uint8Array | Float32Array>(
  data: T,
  dims: { width: number; height: number; channels: number },
  box: PixelBox,
): T {
  const { width: w, height: h, channels: c } = dims;
  if (![box.x, box.y].every(Number.isInteger)) {
    throw new Error(`crop: box offset (${box.x}, ${box.y}) must be integers`);
  }
  checkSize(box.width, "crop: box width");
  checkSize(box.height, "crop: box height");
  const out = new (data.constructor as new (n: number) => T)(box.width * box.height * c);
  const x0 = Math.max(box.x, 0), x1 = Math.min(box.x + box.width, w);
  if (x1 <= x0) return out;
  for (let y = 0; y < box.height; y++) {
    const sy = box.y + y;
    if (sy < 0 || sy >= h) continue;
    out.set(
      data.subarray((sy * w + x0) * c, (sy * w + x1) * c),
      (y * box.width + (x0 - box.x)) * c,
    );
  }
  return out;
}

/**
 * `(v / 255 - mean[c]) / std[c]` for a byte value `v` of channel `c`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NORM_SYMMETRIC, normalizeValue } from "./preprocess.ts";
 *
 * assert.equal(normalizeValue(255, 0, NORM_SYMMETRIC), 1);
 * ```
 */
export function normalizeValue(v: number, c: number, norm: Normalization): number {
  return (v / 255 - norm.mean[c]) / norm.std[c];
}

/**
 * Inverse of {@link normalizeValue}: `(x * std[c] + mean[c]) * 255` (not rounded or clipped).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { denormalizeValue, NORM_IMAGENET, normalizeValue } from "./preprocess.ts";
 *
 * const back = denormalizeValue(normalizeValue(37, 1, NORM_IMAGENET), 1, NORM_IMAGENET);
 * assert.equal(Math.round(back), 37);
 * ```
 */
export function denormalizeValue(x: number, c: number, norm: Normalization): number {
  return (x * norm.std[c] + norm.mean[c]) * 255;
}

function checkNorm(norm: Normalization, where: string): void {
  const ok = (a: readonly number[]) => Array.isArray(a) && a.length === 3;
  if (!norm || !ok(norm.mean) || !ok(norm.std) || !norm.std.every((s) => s > 0)) {
    throw new Error(`${where}: normalization needs mean[3] and std[3] with std > 0`);
  }
}

/**
 * Pack same-size RGB images into float32 NCHW `[n, 3, height, width]`, normalised.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NORM_OPENAI_CLIP, packNchw } from "./preprocess.ts";
 *
 * const images = [{ data: new Uint8Array(4 * 2 * 3), width: 4, height: 2 }];
 * const x = packNchw(images, NORM_OPENAI_CLIP); // feed as { data: x, shape: [n, 3, h, w] }
 * assert.equal(x.length, 1 * 3 * 2 * 4);
 * ```
 */
export function packNchw(images: readonly RgbImage[], norm: Normalization): Float32Array {
  checkNorm(norm, "packNchw");
  if (images.length === 0) throw new Error("packNchw: no images");
  const { width: w, height: h } = images[0];
  const plane = w * h;
  const out = new Float32Array(images.length * 3 * plane);
  images.forEach((img, n) => {
    checkRgb(img, `packNchw: images[${n}]`);
    if (img.width !== w || img.height !== h) {
      throw new Error(
        `packNchw: images[${n}] is ${img.width}x${img.height}, expected ${w}x${h} like images[0]`,
      );
    }
    for (let c = 0; c < 3; c++) {
      // One table per channel: 256 values instead of a division per pixel.
      const lut = new Float32Array(256);
      for (let v = 0; v < 256; v++) lut[v] = normalizeValue(v, c, norm);
      const o = (n * 3 + c) * plane;
      for (let p = 0; p < plane; p++) out[o + p] = lut[img.data[p * 3 + c]];
    }
  });
  return out;
}

/**
 * Unpack float32 NCHW `[n, 3, height, width]` back to RGB bytes: denormalise, clip to [0, 255],
 * round half up (Real-ESRGAN's `(x * 255).round()` after clamping to [0, 1]).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NORM_UNIT, unpackNchw } from "./preprocess.ts";
 *
 * const out = new Float32Array(3 * 128 * 128).fill(1); // a model's NCHW output in [0, 1]
 * const [img] = unpackNchw(out, { n: 1, width: 128, height: 128 }, NORM_UNIT);
 * assert.equal(img.data[0], 255);
 * ```
 */
export function unpackNchw(
  data: Float32Array,
  dims: { n: number; width: number; height: number },
  norm: Normalization,
): RgbImage[] {
  checkNorm(norm, "unpackNchw");
  const { n, width: w, height: h } = dims;
  const plane = w * h;
  if (data.length !== n * 3 * plane) {
    throw new Error(
      `unpackNchw: data has ${data.length} values, expected ${n}x3x${h}x${w} = ${n * 3 * plane}`,
    );
  }
  const out: RgbImage[] = [];
  for (let i = 0; i < n; i++) {
    const px = new Uint8Array(plane * 3);
    for (let c = 0; c < 3; c++) {
      const o = (i * 3 + c) * plane;
      for (let p = 0; p < plane; p++) {
        const v = denormalizeValue(data[o + p], c, norm);
        px[p * 3 + c] = v <= 0 ? 0 : v >= 255 ? 255 : Math.floor(v + 0.5);
      }
    }
    out.push({ data: px, width: w, height: h });
  }
  return out;
}

/** How a model's image input is made from an {@link RgbImage}. */
export interface ImagePreprocess {
  /** Network input width. */
  width: number;
  /** Network input height. */
  height: number;
  /**
   * `"shortest_side_crop"`: resize the short side to `shortestSide`, then center-crop
   * `width x height` (CLIP); `"squash"`: resize straight to `width x height` (CLIPSeg, the kit).
   */
  mode: "shortest_side_crop" | "squash";
  /** Short side before cropping (default `min(width, height)`). */
  shortestSide?: number;
  /** Resampling filter. */
  filter: ResampleFilter;
  /** Stretch the filter when shrinking (Pillow: true). */
  antialias: boolean;
  /**
   * `"uint8"`: resize the 8-bit image as Pillow does (Hugging Face image processors on uint8
   * input); `"float"`: resize float values without rounding (PyTorch, the kit's `toClipInput`).
   */
  resizeIn: "uint8" | "float";
  /** Center-crop rounding (default "floor"). */
  cropRounding?: CropRounding;
  /** Value normalisation. */
  norm: Normalization;
}

/**
 * OpenAI CLIP's preprocessing (`CLIPImageProcessor`): Pillow bicubic resize of the short side to
 * `size`, center crop `size x size` (floor offsets), OpenAI CLIP mean/std.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clipPreprocess, NORM_OPENAI_CLIP } from "./preprocess.ts";
 *
 * assert.equal(clipPreprocess(224).norm, NORM_OPENAI_CLIP);
 * ```
 */
export function clipPreprocess(size = 224): ImagePreprocess {
  return {
    width: size,
    height: size,
    mode: "shortest_side_crop",
    filter: "bicubic",
    antialias: true,
    resizeIn: "uint8",
    cropRounding: "floor",
    norm: NORM_OPENAI_CLIP,
  };
}

/**
 * CLIPSeg's preprocessing (`ViTImageProcessor` of `CIDAS/clipseg-rd64-refined`): Pillow bilinear
 * resize straight to `size x size`, ImageNet mean/std.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clipSegPreprocess } from "./preprocess.ts";
 *
 * assert.equal(clipSegPreprocess(352).mode, "squash");
 * ```
 */
export function clipSegPreprocess(size = 352): ImagePreprocess {
  return {
    width: size,
    height: size,
    mode: "squash",
    filter: "bilinear",
    antialias: true,
    resizeIn: "uint8",
    norm: NORM_IMAGENET,
  };
}

/**
 * The kit's own CLIP image tower (`image_encoder/` of `exportRun`, and `toClipInput` in
 * lib/eval/clip_fid): bilinear resize straight to `size` in float (half-pixel centres, no antialias),
 * pixels in [-1, 1].
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { kitClipPreprocess, NORM_SYMMETRIC } from "./preprocess.ts";
 *
 * assert.equal(kitClipPreprocess(32).norm, NORM_SYMMETRIC);
 * ```
 */
export function kitClipPreprocess(size: number): ImagePreprocess {
  return {
    width: size,
    height: size,
    mode: "squash",
    filter: "bilinear",
    antialias: false,
    resizeIn: "float",
    norm: NORM_SYMMETRIC,
  };
}

/**
 * One line describing a preprocessing (goes into extractor descriptions and cached statistics).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clipPreprocess, describePreprocess } from "./preprocess.ts";
 *
 * assert.equal(
 *   describePreprocess(clipPreprocess(224)),
 *   "RGB uint8 -> Pillow bicubic (antialiased) short side to 224 -> center crop 224x224 (floor) " +
 *     "-> (x/255 - mean)/std openai-clip -> NCHW float32",
 * );
 * ```
 */
export function describePreprocess(spec: ImagePreprocess): string {
  const how = `${spec.resizeIn === "uint8" ? "Pillow" : "float"} ${spec.filter} (${
    spec.antialias ? "antialiased" : "no antialias"
  })`;
  const geo = spec.mode === "squash"
    ? `resize to ${spec.width}x${spec.height}`
    : `short side to ${
      spec.shortestSide ?? Math.min(spec.width, spec.height)
    } -> center crop ${spec.width}x${spec.height} (${spec.cropRounding ?? "floor"})`;
  return `RGB uint8 -> ${how} ${geo} -> (x/255 - mean)/std ${spec.norm.name} -> NCHW float32`;
}

function checkSpec(spec: ImagePreprocess, where: string): void {
  checkSize(spec.width, `${where}: width`);
  checkSize(spec.height, `${where}: height`);
  if (spec.mode !== "squash" && spec.mode !== "shortest_side_crop") {
    throw new Error(`${where}: mode must be "squash" or "shortest_side_crop", got "${spec.mode}"`);
  }
  if (spec.resizeIn !== "uint8" && spec.resizeIn !== "float") {
    throw new Error(`${where}: resizeIn must be "uint8" or "float", got "${spec.resizeIn}"`);
  }
  checkNorm(spec.norm, where);
}

/**
 * Preprocess one image to normalised float32 CHW `[3, height, width]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clipPreprocess, preprocessImage } from "./preprocess.ts";
 *
 * const img = { data: new Uint8Array(300 * 200 * 3).fill(128), width: 300, height: 200 };
 * const chw = preprocessImage(img, clipPreprocess(224));
 * assert.equal(chw.length, 3 * 224 * 224);
 * ```
 */
export function preprocessImage(img: RgbImage, spec: ImagePreprocess): Float32Array {
  checkRgb(img, "preprocessImage");
  checkSpec(spec, "preprocessImage");
  const target = spec.mode === "squash"
    ? { width: spec.width, height: spec.height }
    : shortestSideSize(
      img.width,
      img.height,
      spec.shortestSide ?? Math.min(spec.width, spec.height),
    );
  const resize = { ...target, filter: spec.filter, antialias: spec.antialias };
  let values: Float32Array;
  if (spec.resizeIn === "uint8") {
    const r = resizeRgb(img, resize);
    values = Float32Array.from(r.data);
  } else {
    const f = { data: Float32Array.from(img.data), width: img.width, height: img.height };
    values = resizeFloat({ ...f, channels: 3 }, resize).data;
  }
  if (spec.mode === "shortest_side_crop") {
    const box = centerCropBox(target, spec, spec.cropRounding ?? "floor");
    values = cropInterleaved(values, { ...target, channels: 3 }, box);
  }
  const plane = spec.width * spec.height;
  const out = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < plane; p++) {
      out[c * plane + p] = normalizeValue(values[p * 3 + c], c, spec.norm);
    }
  }
  return out;
}

/**
 * Preprocess images (any sizes) into one float32 NCHW batch `[n, 3, height, width]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clipPreprocess, preprocessBatch } from "./preprocess.ts";
 *
 * const images = [{ data: new Uint8Array(256 * 256 * 3), width: 256, height: 256 }];
 * const x = preprocessBatch(images, clipPreprocess(224));
 * const feed = { pixel_values: { data: x, shape: [images.length, 3, 224, 224] } }; // session.run(feed)
 * assert.equal(feed.pixel_values.data.length, 3 * 224 * 224);
 * ```
 */
export function preprocessBatch(images: readonly RgbImage[], spec: ImagePreprocess): Float32Array {
  const n = 3 * spec.width * spec.height;
  const out = new Float32Array(images.length * n);
  images.forEach((img, i) => {
    try {
      out.set(preprocessImage(img, spec), i * n);
    } catch (e) {
      throw new Error(`images[${i}]: ${(e as Error).message}`);
    }
  });
  return out;
}
