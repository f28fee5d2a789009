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
 * async function example() {
 *   const skipped: SkippedImage[] = [];
 *   const img = await readImageOrSkip("data/coco/val2014/COCO_val2014_000000000042.jpg", skipped);
 *   if (img === null) console.warn(skipped.at(-1));
 * }
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
 * async function example() {
 *   sniffImageFormat(await Deno.readFile("a.jpg")); // "jpeg"
 * }
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
 * async function example() {
 *   const img = decodeImageRgb(await Deno.readFile("a.png"), "a.png");
 * }
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
 * async function example() {
 *   const img = await readImageRgb("data/coco/val2017/000000000139.jpg");
 * }
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
 * async function example() {
 *   const skipped: SkippedImage[] = [];
 *   const img = await readImageOrSkip("a.jpg", skipped); // null + skipped[0].path === "a.jpg" if corrupt
 * }
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
 * formatSkipped([{ path: "a.jpg", reason: "corrupt JPEG (marker was not found)" }]);
 * // "1 corrupt image skipped: a.jpg (corrupt JPEG (marker was not found))"
 * ```
 */
export function formatSkipped(skipped: readonly SkippedImage[], max = 5): string {
  const n = skipped.length;
  const head = skipped.slice(0, max).map((s) => `${s.path} (${s.reason})`).join("; ");
  const more = n > max ? `; and ${n - max} more` : "";
  return `${n} corrupt image${n === 1 ? "" : "s"} skipped: ${head}${more}`;
}
