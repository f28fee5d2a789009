/**
 * One latent-cache shard as a safetensors file with float32 and float16 tensors: a cache keeps
 * its text states as float16 bits from disk to the training batch (half the memory), so its F16
 * tensors are written and read as raw bits (`lib/train/safetensors.ts` with per-tensor dtypes and
 * `halfBits`). The files are plain safetensors: `safetensors.numpy.load_file` or `torch` read
 * them as they are.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeCacheTensors, encodeCacheTensors } from "./latent_cache_file.ts";
 *
 * const bytes = encodeCacheTensors({
 *   mean: { dtype: "F32", shape: [2], data: Float32Array.of(1.5, -2) },
 *   text: { dtype: "F16", shape: [1], data: Uint16Array.of(0x3c00) }, // 1.0 in float16
 * }, { keys: "[\"a\"]" });
 * const back = decodeCacheTensors(bytes, "x.safetensors");
 * assert.deepEqual([...back.tensors.mean.data], [1.5, -2]);
 * assert.equal(back.tensors.text.data[0], 0x3c00);
 * assert.equal(back.metadata.keys, "[\"a\"]");
 * ```
 * @module
 */
import { decodeSafetensors, encodeSafetensors } from "../train/safetensors.ts";

/** A cache tensor: float32 values, or float16 as raw bits. */
export type CacheTensor =
  | { dtype: "F32"; shape: number[]; data: Float32Array }
  | { dtype: "F16"; shape: number[]; data: Uint16Array };

/** A decoded cache file. */
export interface CacheTensors {
  tensors: Record<string, CacheTensor>;
  metadata: Record<string, string>;
}

/**
 * Serialise tensors (sorted by name, little-endian) and string metadata as safetensors bytes,
 * header padded with spaces to a multiple of 8 (as the reference writer does).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeCacheTensors } from "./latent_cache_file.ts";
 *
 * const b = encodeCacheTensors({ x: { dtype: "F16", shape: [0, 4], data: new Uint16Array(0) } });
 * assert.equal(b.length % 8, 0);
 * ```
 */
export function encodeCacheTensors(
  tensors: Record<string, CacheTensor>,
  metadata: Record<string, string> = {},
): Uint8Array {
  return encodeSafetensors(tensors, metadata);
}

/**
 * Decode a cache file written by {@link encodeCacheTensors} (any safetensors file holding only
 * F32 and F16 tensors); the file is validated first and errors name `source`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeCacheTensors, encodeCacheTensors } from "./latent_cache_file.ts";
 *
 * const b = encodeCacheTensors({ x: { dtype: "F32", shape: [1], data: Float32Array.of(7) } });
 * assert.equal(decodeCacheTensors(b, "c.safetensors").tensors.x.data[0], 7);
 * ```
 */
export function decodeCacheTensors(bytes: Uint8Array, source: string): CacheTensors {
  const file = decodeSafetensors(bytes, source, { halfBits: true });
  for (const [name, t] of Object.entries(file.tensors)) {
    if (t.dtype !== "F32" && t.dtype !== "F16") {
      throw new Error(
        `${source}: tensor "${name}" is ${t.dtype}; a latent cache holds F32 and F16`,
      );
    }
  }
  return file as CacheTensors;
}
