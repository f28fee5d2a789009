/**
 * Training kernels the tfjs `wasm` backend lacks or runs slowly, built from its own kernels.
 *
 * - `Conv2DBackpropFilter` (missing): a conv2d over the transposed input, with the output
 *   gradient as the filter; the forward stride becomes the dilation.
 * - `Conv2DBackpropInput` (slow at stride 1): a conv2d of the output gradient with the
 *   spatially flipped, in/out-swapped filter ("full" correlation).
 * - `UnsortedSegmentSum` (missing; the gradient of `gather`, i.e. embeddings): a JS loop over
 *   the wasm heap.
 * - `BatchMatMul` / `_FusedMatMul` with transposes: XNNPACK is 10-50x slower on transposed
 *   operands than on plain ones, so operands are transposed explicitly first.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-wasm@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { captureStockWasmKernels, wasmKernelConfigs } from "./wasm_kernels.ts";
 *
 * // What initBackend("wasm") does before it starts the backend.
 * for (const k of wasmKernelConfigs(captureStockWasmKernels())) {
 *   if (tf.getKernel(k.kernelName, "wasm")) tf.unregisterKernel(k.kernelName, "wasm");
 *   tf.registerKernel(k);
 * }
 * assert.ok(tf.getKernel("Conv2DBackpropFilter", "wasm")); // missing from stock tfjs wasm
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";

type Info = tf.TensorInfo;
// deno-lint-ignore no-explicit-any
type Attrs = Record<string, any>;
/** The members of the wasm backend these kernels use (structural, to avoid importing it). */
interface WasmBackendLike {
  makeOutput(shape: number[], dtype: tf.DataType): Info;
  typedArrayFromHeap(t: Info): Float32Array | Int32Array | Uint8Array;
  disposeData(dataId: unknown): boolean;
}
interface KernelArgs {
  inputs: Record<string, Info | undefined>;
  backend: WasmBackendLike;
  attrs?: Attrs;
}
type Kernel = (args: KernelArgs) => Info | Info[];

const BACKEND = "wasm";

function kernelOf(name: string, stockKernels: Map<string, tf.KernelConfig>): Kernel {
  const k = stockKernels.get(name) ?? tf.getKernel(name, BACKEND);
  if (!k) throw new Error(`backend wasm: kernel '${name}' is not registered`);
  return k.kernelFunc as unknown as Kernel;
}

/** Stock wasm kernels the overrides delegate to, captured before they are replaced. */
export function captureStockWasmKernels(): Map<string, tf.KernelConfig> {
  const m = new Map<string, tf.KernelConfig>();
  for (const name of ["BatchMatMul", "_FusedMatMul", "Conv2DBackpropInput"]) {
    const k = tf.getKernel(name, BACKEND);
    if (k && !(k as { kitOverride?: boolean }).kitOverride) m.set(name, k);
  }
  return m;
}

/**
 * Kernel configs to register on `wasm` (overrides keep the stock `setupFunc`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-wasm@4.22.0";
 * import { captureStockWasmKernels, wasmKernelConfigs } from "./wasm_kernels.ts";
 *
 * const stock = captureStockWasmKernels(); // before they are replaced
 * const names = wasmKernelConfigs(stock).map((k) => k.kernelName);
 * assert.ok(names.includes("Conv2DBackpropFilter") && names.includes("UnsortedSegmentSum"));
 * ```
 */
export function wasmKernelConfigs(stockKernels: Map<string, tf.KernelConfig>): tf.KernelConfig[] {
  const call = (name: string, backend: WasmBackendLike, inputs: Record<string, Info>, attrs = {}) =>
    kernelOf(name, stockKernels)({ inputs, backend, attrs }) as Info;
  const dispose = (backend: WasmBackendLike, ...ts: Info[]) => {
    for (const t of ts) backend.disposeData(t.dataId);
  };
  const transpose = (backend: WasmBackendLike, x: Info, perm: number[]) =>
    call("Transpose", backend, { x }, { perm });
  /** Slice rows `[0, h)` and cols `[0, w)` of an NHWC tensor (when padding would be negative). */
  const crop = (backend: WasmBackendLike, x: Info, h: number, w: number): Info => {
    if (h === x.shape[1] && w === x.shape[2]) return x;
    return call("Slice", backend, { x }, {
      begin: [0, 0, 0, 0],
      size: [x.shape[0], h, w, x.shape[3]],
    });
  };

  const backpropFilter: Kernel = ({ inputs, backend, attrs = {} }) => {
    const { x, dy } = inputs as { x: Info; dy: Info };
    if (attrs.dataFormat === "NCHW") {
      throw new Error("backend wasm: Conv2DBackpropFilter supports dataFormat NHWC only");
    }
    const info = tf.backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      attrs.filterShape,
      attrs.strides,
      1,
      attrs.pad,
      attrs.dimRoundingMode,
    );
    const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
    const { inHeight: h, inWidth: w, outHeight: oh, outWidth: ow } = info;
    const pt = info.padInfo.top, pl = info.padInfo.left;
    // Bottom/right padding that makes the output exactly kh x kw; negative means the last
    // input rows/cols are never read, so crop them instead.
    const pb = kh + (oh - 1) * sh - h - pt;
    const pr = kw + (ow - 1) * sw - w - pl;
    const xc = crop(backend, x, h + Math.min(pb, 0), w + Math.min(pr, 0));
    const xt = transpose(backend, xc, [3, 1, 2, 0]); // [Cin, H, W, N]
    const dyt = transpose(backend, dy, [1, 2, 0, 3]); // [oh, ow, N, Cout]
    const out = call("Conv2D", backend, { x: xt, filter: dyt }, {
      strides: 1,
      dilations: [sh, sw],
      pad: [[0, 0], [pt, Math.max(pb, 0)], [pl, Math.max(pr, 0)], [0, 0]],
      dataFormat: "NHWC",
      dimRoundingMode: undefined,
    }); // [Cin, kh, kw, Cout]
    const dw = transpose(backend, out, [1, 2, 0, 3]);
    dispose(backend, xt, dyt, out);
    if (xc !== x) dispose(backend, xc);
    return dw;
  };

  const stockBackpropInput = kernelOf("Conv2DBackpropInput", stockKernels);
  const backpropInput: Kernel = (args) => {
    const { inputs, backend, attrs = {} } = args;
    const { dy, filter } = inputs as { dy: Info; filter: Info };
    if (attrs.dataFormat === "NCHW") return stockBackpropInput(args);
    const info = tf.backend_util.computeConv2DInfo(
      attrs.inputShape,
      filter.shape as [number, number, number, number],
      attrs.strides,
      1,
      attrs.pad,
      attrs.dimRoundingMode,
    );
    if (info.strideHeight !== 1 || info.strideWidth !== 1) return stockBackpropInput(args);
    const kh = info.filterHeight, kw = info.filterWidth;
    const pt = kh - 1 - info.padInfo.top, pb = kh - 1 - info.padInfo.bottom;
    const pl = kw - 1 - info.padInfo.left, pr = kw - 1 - info.padInfo.right;
    if (Math.min(pt, pb, pl, pr) < 0) return stockBackpropInput(args);
    const flipped = call("Reverse", backend, { x: filter }, { dims: [0, 1] });
    const wt = transpose(backend, flipped, [0, 1, 3, 2]); // [kh, kw, Cout, Cin]
    const dx = call("Conv2D", backend, { x: dy, filter: wt }, {
      strides: 1,
      dilations: 1,
      pad: [[0, 0], [pt, pb], [pl, pr], [0, 0]],
      dataFormat: "NHWC",
      dimRoundingMode: undefined,
    });
    dispose(backend, flipped, wt);
    return dx;
  };

  const segmentSum: Kernel = ({ inputs, backend, attrs = {} }) => {
    const { x, segmentIds } = inputs as { x: Info; segmentIds: Info };
    const numSegments: number = attrs.numSegments;
    if (x.dtype !== "float32" && x.dtype !== "int32") {
      throw new Error(`backend wasm: UnsortedSegmentSum expects float32/int32 x, got ${x.dtype}`);
    }
    const nIds = tf.util.sizeFromShape(segmentIds.shape);
    const inner = nIds === 0 ? 0 : tf.util.sizeFromShape(x.shape) / nIds;
    const shape = [numSegments, ...x.shape.slice(segmentIds.shape.length)];
    // Allocate first: growing the heap would detach views taken before.
    const out = backend.makeOutput(shape, x.dtype);
    const o = backend.typedArrayFromHeap(out);
    const xv = backend.typedArrayFromHeap(x);
    const ids = backend.typedArrayFromHeap(segmentIds);
    o.fill(0);
    for (let i = 0; i < nIds; i++) {
      const s = ids[i];
      if (s < 0 || s >= numSegments) continue; // TF semantics: out-of-range ids are dropped
      const src = i * inner, dst = s * inner;
      for (let j = 0; j < inner; j++) o[dst + j] += xv[src + j];
    }
    return out;
  };

  /** Swap the last two axes of a rank >= 2 tensor. */
  const swapLast = (backend: WasmBackendLike, t: Info): Info => {
    const r = t.shape.length;
    const perm = [...Array(r).keys()];
    perm[r - 2] = r - 1;
    perm[r - 1] = r - 2;
    return transpose(backend, t, perm);
  };
  const untransposed = (name: string): Kernel => {
    const stockK = kernelOf(name, stockKernels);
    return (args) => {
      const { inputs, backend, attrs = {} } = args;
      const { a, b } = inputs as { a: Info; b: Info };
      if (!attrs.transposeA && !attrs.transposeB) return stockK(args);
      const at = attrs.transposeA ? swapLast(backend, a) : a;
      const bt = attrs.transposeB ? swapLast(backend, b) : b;
      const out = stockK({
        inputs: { ...inputs, a: at, b: bt },
        backend,
        attrs: { ...attrs, transposeA: false, transposeB: false },
      });
      if (at !== a) dispose(backend, at);
      if (bt !== b) dispose(backend, bt);
      return out;
    };
  };

  const make = (name: string, f: Kernel): tf.KernelConfig => {
    const base = stockKernels.get(name);
    return {
      ...(base ?? {}),
      kernelName: name,
      backendName: BACKEND,
      kernelFunc: f as unknown as tf.KernelFunc,
      kitOverride: true,
    } as tf.KernelConfig;
  };
  return [
    make("Conv2DBackpropFilter", backpropFilter),
    make("Conv2DBackpropInput", backpropInput),
    make("UnsortedSegmentSum", segmentSum),
    make("BatchMatMul", untransposed("BatchMatMul")),
    make("_FusedMatMul", untransposed("_FusedMatMul")),
  ];
}
