/**
 * Upsampling with a loaded pixel upsampler, the way the study reuses its pretrained ones:
 * {@link upscale} (256 -> 1024 with a x4 model, optionally resized to an exact size) and
 * {@link reUpsample}, the refiner that shrinks a generated image (256 -> 64) and upsamples it
 * back (64 -> 256), trading the diffusion model's fine-scale artefacts for the upsampler's detail.
 *
 * Apart from the upsampler's session call everything is pure, and the resizes are Pillow-exact
 * bicubic ({@link resizeRgb}, antialiased when shrinking as PIL does), so a result matches
 * PIL + the same ONNX model bit for bit. An upsampled image larger than its target is shrunk to
 * it; one smaller is an error, since enlarging it by bicubic would undo the upsampler's work.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reUpsample, upscale } from "./upscale.ts";
 * import { loadUpsampler } from "./upsampler.ts";
 * import { OnnxGraph } from "../onnx/writer.ts";
 *
 * // A x2 nearest-neighbour stand-in for Real-ESRGAN x4 ("models/realesrgan_x4/model.onnx").
 * const g = new OnnxGraph("nearest_x2");
 * const x = g.input("image", "float32", ["batch", 3, "height", "width"]);
 * const w = g.initializer("w", new Float32Array(12).fill(1), [3, 1, 2, 2]);
 * const y = g.node("ConvTranspose", [x, w], { group: 3, strides: [2, 2] });
 * g.output(y, "float32", ["batch", 3, "height2", "width2"]);
 * const up = await loadUpsampler({ model: g.toBytes(), executionProviders: ["cpu"] });
 * const image = { data: new Uint8Array(32 * 32 * 3).fill(90), width: 32, height: 32 };
 * const big = await upscale(up, image); // 2x the width and height
 * const clean = await reUpsample(up, image, { lowSize: 16 }); // image's size
 * assert.deepEqual([big.width, big.height, clean.width, clean.height], [64, 64, 32, 32]);
 * assert.deepEqual(clean.data, image.data); // a flat image stays flat
 * await up.release();
 * ```
 * @module
 */
import type { RgbImage } from "../plot/mod.ts";
import { resizeRgb } from "../image/preprocess.ts";
import type { Upsampler } from "./upsampler.ts";

/** A width and height in pixels. */
export interface ImageSize {
  /** Width. */
  width: number;
  /** Height. */
  height: number;
}

/** Options of {@link upscale}. */
export interface UpscaleOptions {
  /**
   * Exact output size; the upsampled image is shrunk to it (Pillow bicubic). It may not exceed
   * the upsampler's `scale` times the input on either axis (default: that upsampled size).
   */
  size?: ImageSize;
}

/** Options of {@link reUpsample}. */
export interface ReUpsampleOptions {
  /**
   * Size of the low image: a number is the long side (the short side keeps the aspect ratio,
   * rounded up so the upsampler still covers the image), or an explicit size.
   */
  lowSize: number | ImageSize;
}

/** Sizes {@link reUpsample} goes through, from {@link reUpsamplePlan}. */
export interface ReUpsamplePlan {
  /** The shrunk image. */
  low: ImageSize;
  /** What the upsampler makes of it (`scale` times `low`). */
  upsampled: ImageSize;
  /** Whether the upsampled image is shrunk to the input's size (the factor does not land on it). */
  resized: boolean;
}

const fmt = (s: ImageSize) => `${s.width}x${s.height}`;
const isPositiveInt = (v: number) => Number.isInteger(v) && v >= 1;

function checkImage(img: RgbImage, where: string): void {
  if (!img || !isPositiveInt(img.width) || !isPositiveInt(img.height)) {
    throw new Error(
      `${where}: image size ${img?.width}x${img?.height}, expected positive integers`,
    );
  }
  if (!(img.data instanceof Uint8Array) || img.data.length !== img.width * img.height * 3) {
    throw new Error(
      `${where}: image data has ${img.data?.length} bytes, expected ` +
        `${img.width}*${img.height}*3 RGB`,
    );
  }
}

/** `img` as is when it already has `size`, else shrunk to it (Pillow bicubic, antialiased). */
function shrinkTo(img: RgbImage, size: ImageSize): RgbImage {
  if (img.width === size.width && img.height === size.height) return img;
  return resizeRgb(img, { width: size.width, height: size.height, filter: "bicubic" });
}

/**
 * Run `upsampler` on an image of any size (tiled as the upsampler was loaded) and, with
 * `size`, shrink the result to exactly that size.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { upscale } from "./upscale.ts";
 * import { loadUpsampler } from "./upsampler.ts";
 * import { OnnxGraph } from "../onnx/writer.ts";
 *
 * // A x2 stand-in for a x4 model ("x4.onnx": 256 -> 1024, or shrunk to 768).
 * const g = new OnnxGraph("nearest_x2");
 * const x = g.input("image", "float32", ["batch", 3, "height", "width"]);
 * const w = g.initializer("w", new Float32Array(12).fill(1), [3, 1, 2, 2]);
 * const y = g.node("ConvTranspose", [x, w], { group: 3, strides: [2, 2] });
 * g.output(y, "float32", ["batch", 3, "height2", "width2"]);
 * const up = await loadUpsampler({ model: g.toBytes(), executionProviders: ["cpu"] });
 * const img = { data: new Uint8Array(32 * 32 * 3).fill(90), width: 32, height: 32 };
 * assert.equal((await upscale(up, img)).width, 64);
 * assert.equal((await upscale(up, img, { size: { width: 48, height: 48 } })).width, 48);
 * await assert.rejects(upscale(up, img, { size: { width: 80, height: 80 } }), /larger than/);
 * await up.release();
 * ```
 */
export async function upscale(
  upsampler: Upsampler,
  image: RgbImage,
  opts: UpscaleOptions = {},
): Promise<RgbImage> {
  checkImage(image, "upscale");
  const s = upsampler.scale;
  const full = { width: image.width * s, height: image.height * s };
  const size = opts.size;
  if (size !== undefined) {
    if (!isPositiveInt(size.width) || !isPositiveInt(size.height)) {
      throw new Error(`upscale: size must be positive integers, got ${fmt(size)}`);
    }
    if (size.width > full.width || size.height > full.height) {
      throw new Error(
        `upscale: size ${fmt(size)} is larger than the ${fmt(full)} a x${s} upsampler makes of ` +
          `the ${fmt(image)} image (it can only be shrunk to size; use a larger-scale upsampler)`,
      );
    }
  }
  const big = await upsampler.upsample(image);
  return size === undefined ? big : shrinkTo(big, size);
}

/**
 * The sizes of a re-upsampling of a `width` x `height` image with a x`scale` upsampler, checked:
 * the low image may not be larger than the input, and `scale` times it must cover the input.
 *
 * @example
 * ```ts
 * reUpsamplePlan({ width: 256, height: 256, lowSize: 64, scale: 4 });
 * // { low: 64x64, upsampled: 256x256, resized: false }
 * reUpsamplePlan({ width: 250, height: 100, lowSize: 64, scale: 4 });
 * // { low: 64x26 (ceil(64 * 100 / 250)), upsampled: 256x104, resized: true }
 * ```
 */
export function reUpsamplePlan(
  args: { width: number; height: number; lowSize: number | ImageSize; scale: number },
): ReUpsamplePlan {
  const { width: W, height: H, lowSize, scale: s } = args;
  if (!isPositiveInt(W) || !isPositiveInt(H)) {
    throw new Error(`reUpsample: image size ${W}x${H}, expected positive integers`);
  }
  if (!isPositiveInt(s)) {
    throw new Error(`reUpsample: upsampler scale must be a positive integer, got ${s}`);
  }
  if (lowSize === undefined || lowSize === null) {
    throw new Error("reUpsample: lowSize is required (the low image's long side, e.g. 64)");
  }
  let low: ImageSize;
  if (typeof lowSize === "number") {
    if (!isPositiveInt(lowSize)) {
      throw new Error(`reUpsample: lowSize must be a positive integer, got ${lowSize}`);
    }
    if (lowSize > Math.max(W, H)) {
      throw new Error(
        `reUpsample: lowSize ${lowSize} is larger than the ${W}x${H} image (the low image ` +
          `must shrink it)`,
      );
    }
    // Rounding the short side up keeps scale * low >= the image whenever the long side is.
    const short = Math.ceil(lowSize * Math.min(W, H) / Math.max(W, H));
    low = W >= H ? { width: lowSize, height: short } : { width: short, height: lowSize };
  } else {
    if (!isPositiveInt(lowSize.width) || !isPositiveInt(lowSize.height)) {
      throw new Error(
        `reUpsample: lowSize must be positive integers, got ${lowSize?.width}x${lowSize?.height}`,
      );
    }
    if (lowSize.width > W || lowSize.height > H) {
      throw new Error(
        `reUpsample: lowSize ${fmt(lowSize)} is larger than the ${W}x${H} image (the low image ` +
          `must shrink it)`,
      );
    }
    low = { width: lowSize.width, height: lowSize.height };
  }
  const upsampled = { width: low.width * s, height: low.height * s };
  if (upsampled.width < W || upsampled.height < H) {
    const need = typeof lowSize === "number"
      ? `${Math.ceil(Math.max(W, H) / s)}`
      : `${Math.ceil(W / s)}x${Math.ceil(H / s)}`;
    throw new Error(
      `reUpsample: a x${s} upsampler takes the ${fmt(low)} low image only to ` +
        `${fmt(upsampled)}, short of the ${W}x${H} image; use lowSize >= ${need} or a ` +
        `larger-scale upsampler`,
    );
  }
  return { low, upsampled, resized: upsampled.width !== W || upsampled.height !== H };
}

/**
 * The study's refiner: shrink `image` to `lowSize` (Pillow bicubic, antialiased), upsample it
 * with `upsampler`, and shrink the result to the input's size when the upsampler's factor does
 * not land on it exactly. The output has the input's size.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reUpsample } from "./upscale.ts";
 * import { loadUpsampler } from "./upsampler.ts";
 * import { OnnxGraph } from "../onnx/writer.ts";
 *
 * // A x2 stand-in for a x4 model ("x4.onnx": 256 -> 64 -> 256).
 * const g = new OnnxGraph("nearest_x2");
 * const x = g.input("image", "float32", ["batch", 3, "height", "width"]);
 * const w = g.initializer("w", new Float32Array(12).fill(1), [3, 1, 2, 2]);
 * const y = g.node("ConvTranspose", [x, w], { group: 3, strides: [2, 2] });
 * g.output(y, "float32", ["batch", 3, "height2", "width2"]);
 * const up = await loadUpsampler({ model: g.toBytes(), executionProviders: ["cpu"] });
 * const img = { data: new Uint8Array(30 * 20 * 3).fill(90), width: 30, height: 20 };
 * const refined = await reUpsample(up, img, { lowSize: 16 }); // 30x20 -> 16x11 -> 32x22 -> 30x20
 * assert.deepEqual([refined.width, refined.height], [30, 20]);
 * await up.release();
 * ```
 */
export async function reUpsample(
  upsampler: Upsampler,
  image: RgbImage,
  opts: ReUpsampleOptions,
): Promise<RgbImage> {
  checkImage(image, "reUpsample");
  const plan = reUpsamplePlan({
    width: image.width,
    height: image.height,
    lowSize: opts?.lowSize,
    scale: upsampler.scale,
  });
  const big = await upsampler.upsample(shrinkTo(image, plan.low));
  return shrinkTo(big, image);
}
