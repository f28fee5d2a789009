/**
 * IEEE half precision for float16 ONNX tensors: float32 values to float16 bits (`Uint16Array`,
 * what onnxruntime-node takes for a float16 tensor) with round-to-nearest-even, and back, so
 * float16 ONNX models (fp16 Stable Diffusion exports) can be fed and read as float32. Defined once
 * in lib/util (safetensors F16 uses the same), re-exported here where ONNX code looks for it.
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
export { float16BitsToFloat32, float32ToFloat16Bits } from "../util/float16.ts";
