/**
 * IEEE half precision (binary16) and bfloat16 on the host: numbers to their 16 bits with
 * round-to-nearest-even, as PyTorch's `.half()` / `.bfloat16()` round, and half bits back. The
 * kit's one definition, for safetensors files (lib/train) and float16 ONNX tensors (lib/onnx,
 * whose onnxruntime-node takes float16 data as `Uint16Array` bits).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { float16BitsToFloat32, float32ToFloat16Bits } from "./float16.ts";
 *
 * const bits = float32ToFloat16Bits(new Float32Array([1, -2.5, 65504, 1e-8]));
 * assert.deepEqual([...float16BitsToFloat32(bits)], [1, -2.5, 65504, 0]);
 * ```
 * @module
 */

/**
 * Decode one IEEE 754 binary16 value (including subnormals, infinities and NaN).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { halfToFloat } from "./float16.ts";
 *
 * assert.equal(halfToFloat(0x3c00), 1);
 * assert.equal(halfToFloat(0x0001), 2 ** -24);
 * ```
 */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return sign * f * 2 ** -24;
  if (e === 31) return f ? NaN : sign * Infinity;
  return sign * (1 + f / 1024) * 2 ** (e - 15);
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/**
 * Encode a number as IEEE 754 binary16 bits, rounding to nearest even (overflow gives infinity,
 * tiny values subnormals or zero, NaN stays NaN), as PyTorch's `.half()` does.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { floatToHalf, halfToFloat } from "./float16.ts";
 *
 * assert.equal(floatToHalf(1), 0x3c00);
 * assert.equal(floatToHalf(2 ** -24), 0x0001);
 * assert.equal(halfToFloat(floatToHalf(0.1)), 0.0999755859375);
 * ```
 */
export function floatToHalf(x: number): number {
  f32Scratch[0] = x;
  const b = u32Scratch[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    const shift = 14 - e; // subnormal: value / 2^-24, from the 24-bit significand
    if (shift > 24) return sign;
    const m = mant | 0x800000;
    const rem = m & ((1 << shift) - 1), mid = 1 << (shift - 1);
    let h = m >>> shift;
    if (rem > mid || (rem === mid && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa bumps the exponent, up to infinity: that is the right rounding.
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return sign | h;
}

/**
 * Encode a number as bfloat16 bits (the top half of its float32), rounding to nearest even.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { floatToBFloat16 } from "./float16.ts";
 *
 * assert.equal(floatToBFloat16(1), 0x3f80);
 * assert.equal(floatToBFloat16(-2), 0xc000);
 * ```
 */
export function floatToBFloat16(x: number): number {
  f32Scratch[0] = x;
  const b = u32Scratch[0];
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff)) return (b >>> 16) | 0x40; // quiet NaN
  return ((b + 0x7fff + ((b >>> 16) & 1)) / 65536) & 0xffff;
}

/**
 * Float16 bits of each value, rounded to nearest even (overflow to ±Infinity, NaN kept).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { float32ToFloat16Bits } from "./float16.ts";
 *
 * assert.deepEqual(float32ToFloat16Bits(new Float32Array([1])), new Uint16Array([0x3c00]));
 * ```
 */
export function float32ToFloat16Bits(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = floatToHalf(values[i]);
  return out;
}

let halfTable: Float32Array | null = null;

/**
 * Float32 values of float16 bits (exact: every float16 is a float32).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { float16BitsToFloat32 } from "./float16.ts";
 *
 * assert.deepEqual(
 *   float16BitsToFloat32(new Uint16Array([0x3c00, 0xc000])),
 *   new Float32Array([1, -2]),
 * );
 * ```
 */
export function float16BitsToFloat32(bits: ArrayLike<number>): Float32Array {
  if (!halfTable) {
    // A 256 KB table makes decoding a lookup per element.
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h);
  }
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = halfTable[bits[i] & 0xffff];
  return out;
}

/**
 * Float32 values of bfloat16 bits (exact: a bfloat16 is the top half of a float32).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bfloat16BitsToFloat32 } from "./float16.ts";
 *
 * assert.deepEqual(
 *   bfloat16BitsToFloat32(new Uint16Array([0x3f80, 0xc000])),
 *   new Float32Array([1, -2]),
 * );
 * ```
 */
export function bfloat16BitsToFloat32(bits: ArrayLike<number>): Float32Array {
  const u = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) u[i] = ((bits[i] & 0xffff) << 16) >>> 0;
  return new Float32Array(u.buffer);
}
