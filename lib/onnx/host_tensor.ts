/**
 * Small row-major tensor helpers for values known while a graph is built (weights, constants):
 * the ONNX builder folds layout changes and slices of weights into its initializers with these
 * instead of emitting nodes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { transposeHost } from "./host_tensor.ts";
 *
 * const w = new Float32Array(3 * 3 * 4 * 8);
 * const oihw = transposeHost({ data: w, shape: [3, 3, 4, 8] }, [3, 2, 0, 1]); // HWIO -> OIHW
 * assert.deepEqual(oihw.shape, [8, 4, 3, 3]);
 * ```
 * @module
 */

/** Typed arrays host tensors are stored in. */
export type HostArray = Float32Array | Int32Array | BigInt64Array;

/** A tensor's values and shape, row-major. */
export interface HostTensor {
  data: HostArray;
  shape: number[];
}

function strides(shape: readonly number[]): number[] {
  const s = new Array(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1] * shape[i + 1];
  return s;
}

function empty(like: HostArray, n: number): HostArray {
  if (like instanceof Float32Array) return new Float32Array(n);
  if (like instanceof Int32Array) return new Int32Array(n);
  return new BigInt64Array(n);
}

/**
 * Permute axes: output axis `i` is input axis `perm[i]` (ONNX Transpose semantics).
 *
 * @example
 * ```ts
 * transposeHost({ data: Float32Array.of(1, 2, 3, 4, 5, 6), shape: [2, 3] }, [1, 0]).data;
 * // [1, 4, 2, 5, 3, 6]
 * ```
 */
export function transposeHost(t: HostTensor, perm: readonly number[]): HostTensor {
  const shape = perm.map((p) => t.shape[p]);
  const inStrides = strides(t.shape);
  const step = perm.map((p) => inStrides[p]);
  const n = t.data.length;
  const out = empty(t.data, n);
  const idx = new Array(shape.length).fill(0);
  for (let o = 0; o < n; o++) {
    let src = 0;
    for (let a = 0; a < idx.length; a++) src += idx[a] * step[a];
    (out as Float32Array)[o] = (t.data as Float32Array)[src];
    for (let a = idx.length - 1; a >= 0; a--) {
      if (++idx[a] < shape[a]) break;
      idx[a] = 0;
    }
  }
  return { data: out, shape };
}

/**
 * The block `[begin, begin + size)` of every axis (`size` -1 = to the end).
 *
 * @example
 * ```ts
 * sliceHost({ data: Float32Array.of(1, 2, 3, 4), shape: [2, 2] }, [0, 1], [2, 1]).data; // [2, 4]
 * ```
 */
export function sliceHost(t: HostTensor, begin: number[], size: number[]): HostTensor {
  const shape = size.map((s, a) => s === -1 ? t.shape[a] - begin[a] : s);
  const inStrides = strides(t.shape);
  const n = shape.reduce((a, b) => a * b, 1);
  const out = empty(t.data, n);
  const idx = new Array(shape.length).fill(0);
  for (let o = 0; o < n; o++) {
    let src = 0;
    for (let a = 0; a < idx.length; a++) src += (begin[a] + idx[a]) * inStrides[a];
    (out as Float32Array)[o] = (t.data as Float32Array)[src];
    for (let a = idx.length - 1; a >= 0; a--) {
      if (++idx[a] < shape[a]) break;
      idx[a] = 0;
    }
  }
  return { data: out, shape };
}
