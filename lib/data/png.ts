/**
 * PNG encode/decode for 8-bit RGB images, on top of npm `fast-png`.
 *
 * Decoding accepts every PNG colour type (grey, grey+alpha, RGB, RGBA, palette; 1-16 bits) and
 * returns 8-bit RGB, like `PIL.Image.convert("RGB")` in img2dataset: alpha is dropped, 16-bit
 * and sub-byte samples are rescaled to 0..255.
 *
 * @example
 * ```ts
 * const bytes = encodePngRgb(new Uint8Array(2 * 2 * 3), 2, 2);
 * const { image, width, height } = decodePngRgb(bytes);
 * ```
 * @module
 */

import { convertIndexedToRgb, decode, encode, hasPngSignature } from "npm:fast-png@8.0.0";

/** An 8-bit RGB image. */
export interface RgbImage {
  /** Row-major RGB, `height * width * 3` bytes. */
  image: Uint8Array;
  width: number;
  height: number;
}

/**
 * Encode an RGB image (`height * width * 3` bytes) as PNG.
 *
 * @example
 * ```ts
 * const png = encodePngRgb(new Uint8Array([255, 0, 0]), 1, 1);
 * ```
 */
export function encodePngRgb(image: Uint8Array, width: number, height: number): Uint8Array {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new Error(
      `encodePngRgb: width and height must be positive integers, got ${width}x${height}`,
    );
  }
  if (image.length !== width * height * 3) {
    throw new Error(
      `encodePngRgb: image has ${image.length} bytes, expected ${width}*${height}*3 = ${
        width * height * 3
      }`,
    );
  }
  return encode({ width, height, data: image, depth: 8, channels: 3 });
}

/** Whether bytes start with the PNG signature. */
export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && hasPngSignature(bytes);
}

/**
 * Decode a PNG into 8-bit RGB. Throws (with `what` in the message) on anything that is not a
 * complete, valid PNG.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodePngRgb, encodePngRgb } from "./png.ts";
 *
 * // Usually the bytes of await Deno.readFile("x.png").
 * const png = encodePngRgb(new Uint8Array([255, 0, 0, 0, 0, 255]), 2, 1); // red, blue
 * const { image, width, height } = decodePngRgb(png, "x.png");
 * assert.deepEqual([width, height, ...image], [2, 1, 255, 0, 0, 0, 0, 255]);
 * ```
 */
export function decodePngRgb(bytes: Uint8Array, what = "PNG"): RgbImage {
  if (!isPng(bytes)) throw new Error(`${what}: not a PNG (bad signature)`);
  let png;
  try {
    png = decode(bytes);
  } catch (e) {
    throw new Error(`${what}: corrupt PNG (${(e as Error).message})`);
  }
  const { width, height } = png;
  let data = png.data;
  let channels = png.channels;
  let depth: number = png.depth;
  if (png.palette) {
    data = convertIndexedToRgb(png);
    channels = png.palette[0]?.length ?? 3;
    depth = 8;
  }
  if (depth < 8) {
    // Sub-byte greys arrive packed, each row starting on a byte boundary.
    data = unpackRows(data, width, height, depth);
  }
  const n = width * height;
  if (data.length < n * channels) {
    throw new Error(`${what}: corrupt PNG (pixel data ${data.length} < ${n * channels})`);
  }
  const out = new Uint8Array(n * 3);
  const scale = depth === 16 ? 1 / 257 : depth < 8 ? 255 / ((1 << depth) - 1) : 1;
  const get = (i: number) => (scale === 1 ? data[i] : Math.round(data[i] * scale));
  for (let p = 0; p < n; p++) {
    const s = p * channels;
    if (channels >= 3) {
      out[3 * p] = get(s);
      out[3 * p + 1] = get(s + 1);
      out[3 * p + 2] = get(s + 2);
    } else {
      const g = get(s);
      out[3 * p] = out[3 * p + 1] = out[3 * p + 2] = g;
    }
  }
  return { image: out, width, height };
}

function unpackRows(
  packed: ArrayLike<number>,
  width: number,
  height: number,
  depth: number,
): Uint8Array {
  const rowBytes = Math.ceil((width * depth) / 8);
  const out = new Uint8Array(width * height);
  const mask = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const bit = x * depth;
      const byte = packed[y * rowBytes + (bit >> 3)] ?? 0;
      out[y * width + x] = (byte >> (8 - depth - (bit & 7))) & mask;
    }
  }
  return out;
}
