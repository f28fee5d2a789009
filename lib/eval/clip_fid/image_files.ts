/**
 * Reference images from disk: PNG (`lib/data/png.ts`) and JPEG (npm `jpeg-js`), told apart by
 * their first bytes rather than the file name, decoded to 8-bit RGB the way
 * `PIL.Image.open(path).convert("RGB")` does in clean-fid and pytorch-fid: greyscale replicated to
 * three channels, CMYK converted, alpha dropped, EXIF orientation not applied.
 *
 * jpeg-js is a baseline/progressive decoder of its own, not libjpeg: its IDCT and chroma upsampling
 * differ from PIL's (libjpeg-turbo) by a few levels (max 3, mean 0.5 on a 4:2:0 test image), which
 * moves a FID slightly. For numbers to compare with published clean-fid values, decode with PIL
 * once and keep PNGs (`.png` files are read as is).
 *
 * Corrupt files do not stop an evaluation: {@link readImageOrSkip} records them (path and reason)
 * and returns null. Files that cannot be read at all (missing, no permission) still throw, because
 * they mean a wrong folder rather than a damaged image.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodePngRgb } from "../../data/png.ts";
 * import { readImageOrSkip, type SkippedImage } from "./image_files.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeFile(`${dir}/red.jpg`, encodePngRgb(new Uint8Array([255, 0, 0]), 1, 1)); // a PNG
 * await Deno.writeFile(`${dir}/bad.jpg`, new Uint8Array([0xff, 0xd8, 0xff, 0]));
 * const skipped: SkippedImage[] = [];
 * const red = await readImageOrSkip(`${dir}/red.jpg`, skipped); // the name does not matter
 * assert.deepEqual(Array.from(red!.data), [255, 0, 0]);
 * assert.equal(await readImageOrSkip(`${dir}/bad.jpg`, skipped), null);
 * assert.equal(skipped[0].path, `${dir}/bad.jpg`);
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */
import { decodePngRgb, isPng } from "../../data/png.ts";
import { decodeJpegRgb, isJpeg } from "../../data/jpeg.ts";
import type { RgbInput } from "./feature_extractors.ts";

// JPEG decoding lives with the data readers (webdataset shards hold JPEGs too); re-exported here
// so lib/eval keeps its public surface.
export { decodeJpegRgb, isJpeg };

/** Image formats the kit decodes. */
export type ImageFormat = "png" | "jpeg";

/** An image left out because it could not be decoded. */
export interface SkippedImage {
  /** The file. */
  path: string;
  /** Why (the decoder's message). */
  reason: string;
}

/** A file that was read but is not a decodable PNG or JPEG. */
export class CorruptImageError extends Error {
  override name = "CorruptImageError";
  /** The file. */
  readonly path: string;
  /** The decoder's message, without the path. */
  readonly reason: string;
  constructor(path: string, reason: string) {
    super(`${path}: ${reason}`);
    this.path = path;
    this.reason = reason;
  }
}

/**
 * The format of an image file from its signature, or null when it is neither PNG nor JPEG.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodePngRgb } from "../../data/png.ts";
 * import { sniffImageFormat } from "./image_files.ts";
 *
 * assert.equal(sniffImageFormat(encodePngRgb(new Uint8Array(3), 1, 1)), "png");
 * assert.equal(sniffImageFormat(new Uint8Array([0xff, 0xd8, 0xff, 0xe0])), "jpeg");
 * assert.equal(sniffImageFormat(new TextEncoder().encode("GIF89a")), null);
 * ```
 */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | null {
  if (isPng(bytes)) return "png";
  if (isJpeg(bytes)) return "jpeg";
  return null;
}

/**
 * Decode PNG or JPEG bytes (by signature) into RGB; throws {@link CorruptImageError} naming
 * `path` when the bytes are neither or do not decode.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodePngRgb } from "../../data/png.ts";
 * import { decodeImageRgb } from "./image_files.ts";
 *
 * const img = decodeImageRgb(encodePngRgb(new Uint8Array([1, 2, 3, 4, 5, 6]), 2, 1), "a.png");
 * assert.deepEqual([img.width, img.height, Array.from(img.data)], [2, 1, [1, 2, 3, 4, 5, 6]]);
 * assert.throws(() => decodeImageRgb(new Uint8Array(4), "b.png"), /b\.png: not a PNG or JPEG/);
 * ```
 */
export function decodeImageRgb(bytes: Uint8Array, path: string): RgbInput {
  const format = sniffImageFormat(bytes);
  if (format === null) {
    throw new CorruptImageError(path, `not a PNG or JPEG file (${bytes.length} bytes)`);
  }
  try {
    if (format === "jpeg") return decodeJpegRgb(bytes, "");
    const png = decodePngRgb(bytes, "");
    return { data: png.image, width: png.width, height: png.height };
  } catch (e) {
    // The decoders were given an empty name: strip the leading ": " they put before the reason.
    throw new CorruptImageError(path, (e as Error).message.replace(/^: /, ""));
  }
}

/**
 * Read and decode an image file. Read failures throw a plain Error naming the path; undecodable
 * contents throw {@link CorruptImageError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodePngRgb } from "../../data/png.ts";
 * import { readImageRgb } from "./image_files.ts";
 *
 * const path = await Deno.makeTempFile({ suffix: ".png" });
 * await Deno.writeFile(path, encodePngRgb(new Uint8Array([0, 128, 255]), 1, 1));
 * assert.deepEqual(Array.from((await readImageRgb(path)).data), [0, 128, 255]);
 * await Deno.remove(path);
 * ```
 */
export async function readImageRgb(path: string): Promise<RgbInput> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new Error(`image ${path}: cannot be read (${(e as Error).message})`);
  }
  return decodeImageRgb(bytes, path);
}

/**
 * Read an image, or record it in `skipped` and return null when it is corrupt. Unreadable files
 * still throw (see the module notes).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readImageOrSkip, type SkippedImage } from "./image_files.ts";
 *
 * const path = await Deno.makeTempFile({ suffix: ".jpg" }); // empty: corrupt, not missing
 * const skipped: SkippedImage[] = [];
 * assert.equal(await readImageOrSkip(path, skipped), null);
 * assert.equal(skipped[0].path, path);
 * await Deno.remove(path);
 * await assert.rejects(readImageOrSkip(path, skipped), /cannot be read/); // missing throws
 * ```
 */
export async function readImageOrSkip(
  path: string,
  skipped: SkippedImage[],
): Promise<RgbInput | null> {
  try {
    return await readImageRgb(path);
  } catch (e) {
    if (!(e instanceof CorruptImageError)) throw e;
    skipped.push({ path: e.path, reason: e.reason });
    return null;
  }
}

/**
 * One line summarising skipped images for logs: the count and the first `max` paths with reasons.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatSkipped } from "./image_files.ts";
 *
 * assert.equal(
 *   formatSkipped([{ path: "a.jpg", reason: "corrupt JPEG (marker was not found)" }]),
 *   "1 corrupt image skipped: a.jpg (corrupt JPEG (marker was not found))",
 * );
 * ```
 */
export function formatSkipped(skipped: readonly SkippedImage[], max = 5): string {
  const n = skipped.length;
  const head = skipped.slice(0, max).map((s) => `${s.path} (${s.reason})`).join("; ");
  const more = n > max ? `; and ${n - max} more` : "";
  return `${n} corrupt image${n === 1 ? "" : "s"} skipped: ${head}${more}`;
}
