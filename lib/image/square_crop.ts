/**
 * The square training crop of diffusers' text-to-image scripts, on 8-bit RGB: torchvision's
 * `Resize(size)` on a PIL image (shortest side to `size`, long side truncated, Pillow's
 * resampling; the scripts' `--image_interpolation_mode` defaults to Lanczos), `CenterCrop(size)`
 * (offset `round((side - size) / 2)` with Python's half-to-even rounding) and, when asked,
 * `RandomHorizontalFlip` (the caller decides the flip, so it can be seeded per record).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { squareCrop } from "./square_crop.ts";
 *
 * const img = { data: new Uint8Array(96 * 64 * 3).fill(200), width: 96, height: 64 };
 * const out = squareCrop(img, { size: 32 });
 * assert.deepEqual([out.width, out.height, out.data[0]], [32, 32, 200]);
 * ```
 * @module
 */
import type { RgbImage } from "../plot/mod.ts";
import {
  centerCropBox,
  cropRgb,
  type ResampleFilter,
  resizeRgb,
  shortestSideSize,
} from "./preprocess.ts";

/** Options of {@link squareCrop}. */
export interface SquareCropOptions {
  /** Side of the square output (the shortest side is resized to it first). */
  size: number;
  /** Resampling filter (default "lanczos", diffusers' training-script default). */
  filter?: ResampleFilter;
  /** Mirror left-right after cropping (default false). */
  flip?: boolean;
}

/**
 * Resize the shortest side to `size`, centre-crop a `size` square, optionally mirror it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { squareCrop } from "./square_crop.ts";
 *
 * const img = { data: Uint8Array.from([1, 1, 1, 2, 2, 2]), width: 2, height: 1 };
 * const out = squareCrop(img, { size: 1, filter: "bilinear", flip: true });
 * assert.deepEqual([out.width, out.height], [1, 1]);
 * ```
 */
export function squareCrop(img: RgbImage, o: SquareCropOptions): RgbImage {
  if (!Number.isInteger(o.size) || o.size < 1) {
    throw new Error(`squareCrop: size must be a positive integer, got ${o.size}`);
  }
  const to = shortestSideSize(img.width, img.height, o.size);
  const resized = to.width === img.width && to.height === img.height
    ? img
    : resizeRgb(img, { ...to, filter: o.filter ?? "lanczos" });
  const box = centerCropBox(resized, { width: o.size, height: o.size }, "round_half_even");
  const square = cropRgb(resized, box);
  return o.flip ? flipHorizontal(square) : square;
}

/**
 * A left-right mirror image (a new array).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { flipHorizontal } from "./square_crop.ts";
 *
 * const img = { data: Uint8Array.from([1, 2, 3, 4, 5, 6]), width: 2, height: 1 };
 * assert.deepEqual([...flipHorizontal(img).data], [4, 5, 6, 1, 2, 3]);
 * ```
 */
export function flipHorizontal(img: RgbImage): RgbImage {
  const { width: w, height: h, data } = img;
  if (data.length !== w * h * 3) {
    throw new Error(`flipHorizontal: image data has ${data.length} bytes, expected ${w}*${h}*3`);
  }
  const out = new Uint8Array(data.length);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const s = (y * w + x) * 3, d = (y * w + (w - 1 - x)) * 3;
      out[d] = data[s];
      out[d + 1] = data[s + 1];
      out[d + 2] = data[s + 2];
    }
  }
  return { data: out, width: w, height: h };
}
