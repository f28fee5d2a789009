/**
 * IEEE half precision on the host: float32 values to float16 bits (`Uint16Array`, what
 * onnxruntime-node takes for a float16 tensor) with round-to-nearest-even, and back, so float16
 * ONNX models (fp16 Stable Diffusion exports) can be fed and read as float32.
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

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function halfBits(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1), halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa bumps the exponent, up to infinity: still correctly rounded.
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return sign | h;
}

let table: Float32Array | null = null;

/**
 * Float16 bits of each value, rounded to nearest even (overflow to ±Infinity, NaN kept).
 *
 * @example
 * ```ts
 * import { float32ToFloat16Bits } from "./float16.ts";
 *
 * float32ToFloat16Bits(new Float32Array([1])); // Uint16Array [0x3c00]
 * ```
 */
export function float32ToFloat16Bits(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = halfBits(values[i]);
  return out;
}

/**
 * Float32 values of float16 bits (exact: every float16 is a float32).
 *
 * @example
 * ```ts
 * import { float16BitsToFloat32 } from "./float16.ts";
 *
 * float16BitsToFloat32(new Uint16Array([0x3c00, 0xc000])); // Float32Array [1, -2]
 * ```
 */
export function float16BitsToFloat32(bits: ArrayLike<number>): Float32Array {
  if (!table) {
    table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
      table[h] = e === 0
        ? s * m * 2 ** -24
        : e === 31
        ? (m ? NaN : s * Infinity)
        : s * (1 + m / 1024) * 2 ** (e - 15);
    }
  }
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i] & 0xffff];
  return out;
}
