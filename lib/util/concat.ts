/**
 * Join typed-array chunks into one array: stream reads (tar entries, packed archives) and
 * batched model outputs arrive in pieces.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { concatBytes, concatFloat32 } from "./concat.ts";
 *
 * assert.deepEqual(concatBytes([new Uint8Array([1, 2]), new Uint8Array([3])]), new Uint8Array([1, 2, 3]));
 * assert.deepEqual(
 *   concatFloat32([new Float32Array([0.5]), new Float32Array([1.5])]),
 *   new Float32Array([0.5, 1.5]),
 * );
 * ```
 * @module
 */

/**
 * The bytes of `chunks` one after another, in a new array: always a copy, even of a single
 * chunk, so the result never aliases a stream's reused buffer.
 */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  return fill(new Uint8Array(total(chunks)), chunks);
}

/**
 * The values of `chunks` one after another, in a new array (always a copy, as
 * {@link concatBytes}).
 */
export function concatFloat32(chunks: readonly Float32Array[]): Float32Array {
  return fill(new Float32Array(total(chunks)), chunks);
}

function total(chunks: readonly { length: number }[]): number {
  return chunks.reduce((s, c) => s + c.length, 0);
}

function fill<T extends Uint8Array | Float32Array>(out: T, chunks: readonly T[]): T {
  let off = 0;
  for (const c of chunks) {
    out.set(c as ArrayLike<number>, off);
    off += c.length;
  }
  return out;
}
