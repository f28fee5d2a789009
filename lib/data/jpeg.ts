/**
 * JPEG decoding to 8-bit RGB with npm `jpeg-js` (a pure-JS baseline/progressive decoder), shared by
 * the webdataset reader (img2dataset shards of LAION hold `key.jpg`) and the evaluation's image
 * files.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encode } from "npm:jpeg-js@0.4.4";
 * import { decodeJpegRgb } from "./jpeg.ts";
 *
 * // A 2x2 mid-grey JPEG; usually the bytes of await Deno.readFile("x.jpg").
 * const jpg = encode({ data: new Uint8Array(2 * 2 * 4).fill(128), width: 2, height: 2 }, 90).data;
 * const { data, width, height } = decodeJpegRgb(jpg, "x.jpg");
 * assert.deepEqual([width, height, data.length], [2, 2, 12]);
 * assert.ok(data.every((v) => Math.abs(v - 128) <= 2));
 * ```
 * @module
 */
import { decode as decodeJpeg } from "npm:jpeg-js@0.4.4";

/** Decoded RGB pixels, row-major, `width * height * 3` bytes. */
export interface JpegRgb {
  data: Uint8Array;
  width: number;
  height: number;
}

/**
 * Whether bytes start like a JPEG file (SOI marker FF D8 followed by another marker).
 *
 * @example
 * ```ts
 * isJpeg(new Uint8Array([0xff, 0xd8, 0xff, 0xe0])); // true
 * ```
 */
export function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

/**
 * Decode a JPEG into 8-bit RGB; throws `"<what>: corrupt JPEG (...)"` on anything jpeg-js cannot
 * decode completely (a truncated file has no end-of-image marker and fails too).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encode } from "npm:jpeg-js@0.4.4";
 * import { decodeJpegRgb } from "./jpeg.ts";
 *
 * const jpg = encode({ data: new Uint8Array(4 * 2 * 4).fill(255), width: 4, height: 2 }, 90).data;
 * const { width, height } = decodeJpegRgb(jpg, "x.jpg");
 * assert.deepEqual([width, height], [4, 2]);
 * assert.throws(() => decodeJpegRgb(jpg.subarray(0, 20), "x.jpg"), /^Error: x\.jpg: corrupt JPEG/);
 * ```
 */
export function decodeJpegRgb(bytes: Uint8Array, what = "JPEG"): JpegRgb {
  if (!isJpeg(bytes)) throw new Error(`${what}: not a JPEG (no FF D8 FF start)`);
  let img: { width: number; height: number; data: Uint8Array };
  try {
    // useTArray: plain Uint8Array output (no Node Buffer); formatAsRGBA false: 3 channels.
    img = decodeJpeg(bytes, { useTArray: true, formatAsRGBA: false });
  } catch (e) {
    throw new Error(`${what}: corrupt JPEG (${(e as Error).message})`);
  }
  const { width, height, data } = img;
  if (!(width >= 1 && height >= 1) || data.length !== width * height * 3) {
    throw new Error(`${what}: corrupt JPEG (decoded ${data.length} bytes for ${width}x${height})`);
  }
  return { data, width, height };
}
