/**
 * WebP decoding to 8-bit RGB with npm `@jsquash/webp` (libwebp compiled to WebAssembly, the wasm
 * shipped inside the package), for img2dataset shards written with `--encode_format webp`.
 *
 * Lossy, lossless and alpha WebP all decode; alpha is dropped, as {@link decodePngRgb} does
 * (`PIL.Image.convert("RGB")`). Decoding is async because the wasm is compiled on the first WebP
 * met, not when the kit is imported: importing `lib/` then needs no file permission and costs
 * nothing in runs that never see a WebP.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeWebpRgb } from "./webp.ts";
 *
 * // A 1x1 lossless WebP of the pixel (255, 0, 0), as `cwebp -lossless` writes it; usually the
 * // bytes of await Deno.readFile("x.webp").
 * const webp = Uint8Array.from(atob("UklGRhwAAABXRUJQVlA4TA8AAAAvAAAAAAcQ/Y/+ByKi/wEA"), (c) =>
 *   c.charCodeAt(0)
 * );
 * const { image, width, height } = await decodeWebpRgb(webp, "x.webp");
 * assert.deepEqual([width, height, ...image], [1, 1, 255, 0, 0]);
 * ```
 * @module
 */
import decode, { init } from "npm:@jsquash/webp@1.5.0/decode.js";
import type { RgbImage } from "./png.ts";

/** The decoder's wasm, inside the pinned package (the same version as the import above). */
const WASM_SPECIFIER = "npm:@jsquash/webp@1.5.0/codec/dec/webp_dec.wasm";

let ready: Promise<void> | null = null;

/**
 * Compile the WebP decoder now (once; {@link decodeWebpRgb} calls this itself). The bytes are read
 * from the package's own file and handed to `init`, so the load never depends on how the
 * emscripten glue guesses its environment (Node-style file read vs `fetch`). A failure (no read
 * permission on the npm cache) names the file and is retried on the next call; callers that count
 * undecodable images await this first, so a decoder that cannot load is never counted as corrupt
 * data.
 *
 * @example
 * ```ts
 * import { loadWebpDecoder } from "./webp.ts";
 *
 * await loadWebpDecoder(); // throws "WebP decoder: cannot load .../webp_dec.wasm (...)" if unreadable
 * ```
 */
export function loadWebpDecoder(): Promise<void> {
  ready ??= (async () => {
    const url = new URL(import.meta.resolve(WASM_SPECIFIER));
    // Only a local package can be read here; anywhere else the glue's own loader fetches it.
    if (url.protocol !== "file:") return;
    let module: WebAssembly.Module;
    try {
      module = await WebAssembly.compile(await Deno.readFile(url));
    } catch (e) {
      throw new Error(`WebP decoder: cannot load ${url.pathname} (${(e as Error).message})`);
    }
    // decode.d.ts types only the options form of `init`; the JS also takes a compiled module.
    await (init as unknown as (m: WebAssembly.Module) => Promise<void>)(module);
  })().catch((e) => {
    ready = null;
    throw e;
  });
  return ready;
}

/**
 * Whether bytes start like a WebP file (`RIFF`, a size, then `WEBP`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isWebp } from "./webp.ts";
 *
 * const head = new TextEncoder().encode("RIFF\x1c\0\0\0WEBPVP8L");
 * assert.equal(isWebp(head), true);
 * assert.equal(isWebp(new Uint8Array([0xff, 0xd8, 0xff])), false);
 * ```
 */
export function isWebp(bytes: Uint8Array): boolean {
  const at = (i: number, s: string) => [...s].every((c, k) => bytes[i + k] === c.charCodeAt(0));
  return bytes.length >= 12 && at(0, "RIFF") && at(8, "WEBP");
}

/**
 * Decode a WebP (lossy, lossless, with or without alpha) into 8-bit RGB, dropping alpha. Throws
 * `"<what>: not a WebP ..."` or `"<what>: corrupt WebP ..."` on anything libwebp cannot decode
 * completely (a truncated file fails too); animated WebP is not decoded.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeWebpRgb } from "./webp.ts";
 *
 * const webp = Uint8Array.from(atob("UklGRhwAAABXRUJQVlA4TA8AAAAvAAAAAAcQ/Y/+ByKi/wEA"), (c) =>
 *   c.charCodeAt(0)
 * );
 * assert.deepEqual([...(await decodeWebpRgb(webp, "x.webp")).image], [255, 0, 0]);
 * await assert.rejects(decodeWebpRgb(webp.subarray(0, 30), "x.webp"), /^Error: x\.webp: corrupt/);
 * ```
 */
export async function decodeWebpRgb(bytes: Uint8Array, what = "WebP"): Promise<RgbImage> {
  if (!isWebp(bytes)) throw new Error(`${what}: not a WebP (no RIFF....WEBP start)`);
  await loadWebpDecoder();
  let img: ImageData;
  try {
    // The decoder takes an ArrayBuffer of exactly the file: copy out of any larger buffer.
    img = await decode(bytes.slice().buffer);
  } catch (e) {
    throw new Error(`${what}: corrupt WebP (${(e as Error).message ?? e})`);
  }
  const { width, height, data } = img;
  const n = width * height;
  if (!(width >= 1 && height >= 1) || data.length !== n * 4) {
    throw new Error(`${what}: corrupt WebP (decoded ${data.length} bytes for ${width}x${height})`);
  }
  const image = new Uint8Array(n * 3);
  for (let p = 0; p < n; p++) {
    image[3 * p] = data[4 * p];
    image[3 * p + 1] = data[4 * p + 1];
    image[3 * p + 2] = data[4 * p + 2];
  }
  return { image, width, height };
}
