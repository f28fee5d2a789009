/**
 * GEMM-heavy tfjs kernels for a `MathBackendCPU` instance, computed by OpenBLAS.
 *
 * Inputs are read in place from the backend's `Float32Array`s (`backend.data.get(id).values`),
 * outputs are fresh arrays handed to `backend.makeTensorInfo` (kept as is, no copy). Anything
 * outside the fast path (non-float32, NCHW) is passed to the stock `cpu` kernel, so the result is
 * always defined.
 *
 * @example
 * ```ts
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { blasKernelConfigs } from "./cpu_blas_kernels.ts";
 * import { loadOpenBlas } from "./openblas.ts";
 *
 * const blas = loadOpenBlas()!;
 * for (const k of blasKernelConfigs("cpu-blas", blas)) tf.registerKernel(k);
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import type { MathBackendCPU } from "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
import type { OpenBlas } from "./openblas.ts";
import { takeF32 } from "./cpu_buffer_pool.ts";
import { col2im, type ConvGeometry, im2col, isPointwise, patchSize } from "./im2col.ts";
import { activeNativeKernels } from "./native_kernels.ts";

type Info = tf.TensorInfo;
// deno-lint-ignore no-explicit-any
type Attrs = Record<string, any>;
interface KernelArgs {
  inputs: Record<string, Info | undefined>;
  backend: MathBackendCPU;
  attrs?: Attrs;
}

/** Largest patch matrix built at once (floats); larger batches are processed in chunks. */
const MAX_COLS = 1 << 23;
let scratch = new Float32Array(0);
function scratchOf(n: number): Float32Array {
  if (scratch.length < n) scratch = new Float32Array(n);
  return scratch.subarray(0, n);
}

function valuesOf(backend: MathBackendCPU, t: Info): Float32Array {
  const v = backend.data.get(t.dataId).values;
  if (v instanceof Float32Array) return v;
  // Float tensors are Float32Array in practice; convert anything else rather than misread it.
  return Float32Array.from(v as ArrayLike<number>);
}

function stock(name: string, args: KernelArgs): Info | Info[] {
  const k = tf.getKernel(name, "cpu");
  if (!k) throw new Error(`backend cpu: stock kernel '${name}' is not registered`);
  return k.kernelFunc(args as unknown as Parameters<tf.KernelFunc>[0]) as Info | Info[];
}

function isF32(...ts: (Info | undefined)[]): boolean {
  return ts.every((t) => t === undefined || t.dtype === "float32");
}

/** Output batch `i` -> batch index into an operand with outer dims `dims` (broadcasting). */
function batchIndexer(dims: number[], outDims: number[]): (i: number) => number {
  const rank = outDims.length;
  const padded = Array(rank - dims.length).fill(1).concat(dims);
  const strides = new Array<number>(rank);
  let s = 1;
  for (let d = rank - 1; d >= 0; d--) {
    strides[d] = padded[d] === 1 ? 0 : s;
    s *= padded[d];
  }
  return (i: number) => {
    let idx = 0;
    for (let d = rank - 1; d >= 0; d--) {
      const od = outDims[d];
      idx += (i % od) * strides[d];
      i = Math.floor(i / od);
    }
    return idx;
  };
}

/** Batched matmul with numpy broadcasting of the leading dims; returns values and shape. */
function matmulValues(
  blas: OpenBlas,
  backend: MathBackendCPU,
  a: Info,
  b: Info,
  transA: boolean,
  transB: boolean,
): { out: Float32Array; shape: number[] } {
  const ra = a.shape.length, rb = b.shape.length;
  const m = transA ? a.shape[ra - 1] : a.shape[ra - 2];
  const k = transA ? a.shape[ra - 2] : a.shape[ra - 1];
  const kb = transB ? b.shape[rb - 1] : b.shape[rb - 2];
  const n = transB ? b.shape[rb - 2] : b.shape[rb - 1];
  if (k !== kb) {
    throw new Error(
      `matMul: inner dimensions differ: a ${JSON.stringify(a.shape)} (transposeA=${transA}) ` +
        `and b ${JSON.stringify(b.shape)} (transposeB=${transB})`,
    );
  }
  const outerA = a.shape.slice(0, -2), outerB = b.shape.slice(0, -2);
  const outer = tf.broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
  const batch = tf.util.sizeFromShape(outer);
  const batchA = tf.util.sizeFromShape(outerA), batchB = tf.util.sizeFromShape(outerB);
  const av = valuesOf(backend, a), bv = valuesOf(backend, b);
  const out = takeF32(backend, batch * m * n, true);
  if (batchB === 1 && !transA && batchA === batch) {
    // Shared right operand: fold the batch into the rows (one big GEMM, e.g. x[B,T,C] @ W[C,D]).
    blas.sgemm({ m: batch * m, n, k, a: av, b: bv, c: out, transB });
    return { out, shape: [...outer, m, n] };
  }
  const ia = batchIndexer(outerA, outer), ib = batchIndexer(outerB, outer);
  for (let i = 0; i < batch; i++) {
    const oa = ia(i) * m * k, ob = ib(i) * k * n;
    blas.sgemm({
      m,
      n,
      k,
      a: av.subarray(oa, oa + m * k),
      b: bv.subarray(ob, ob + k * n),
      c: out.subarray(i * m * n, (i + 1) * m * n),
      transA,
      transB,
    });
  }
  return { out, shape: [...outer, m, n] };
}

/** Add `bias` (size 1 or the last dim) and apply `activation` in place; false if not handled. */
function epilogueInPlace(
  out: Float32Array,
  lastDim: number,
  bias: Float32Array | null,
  activation: string | undefined,
  leakyAlpha: number,
): boolean {
  if (bias && bias.length !== 1 && bias.length !== lastDim) return false;
  const act = activation ?? "linear";
  if (!["linear", "relu", "relu6", "sigmoid", "elu", "leakyrelu"].includes(act)) return false;
  if (bias) {
    if (bias.length === 1) {
      const b0 = bias[0];
      for (let i = 0; i < out.length; i++) out[i] += b0;
    } else {
      for (let i = 0; i < out.length; i += lastDim) {
        for (let j = 0; j < lastDim; j++) out[i + j] += bias[j];
      }
    }
  }
  switch (act) {
    case "relu":
      for (let i = 0; i < out.length; i++) if (out[i] < 0) out[i] = 0;
      break;
    case "relu6":
      for (let i = 0; i < out.length; i++) out[i] = Math.min(Math.max(out[i], 0), 6);
      break;
    case "sigmoid":
      for (let i = 0; i < out.length; i++) out[i] = 1 / (1 + Math.exp(-out[i]));
      break;
    case "elu":
      for (let i = 0; i < out.length; i++) if (out[i] < 0) out[i] = Math.exp(out[i]) - 1;
      break;
    case "leakyrelu":
      for (let i = 0; i < out.length; i++) if (out[i] < 0) out[i] *= leakyAlpha;
      break;
  }
  return true;
}

/** Apply bias/activation with stock kernels (general broadcasting, prelu). */
function epilogueStock(
  backend: MathBackendCPU,
  x: Info,
  bias: Info | undefined,
  attrs: Attrs,
  prelu: Info | undefined,
): Info {
  let cur = x;
  if (bias) {
    const next = stock("Add", { inputs: { a: cur, b: bias }, backend }) as Info;
    backend.disposeIntermediateTensorInfo(cur);
    cur = next;
  }
  const act = attrs.activation ?? "linear";
  if (act === "linear") return cur;
  let next: Info;
  if (act === "prelu") next = stock("Prelu", { inputs: { x: cur, alpha: prelu }, backend }) as Info;
  else if (act === "leakyrelu") {
    next = stock("LeakyRelu", {
      inputs: { x: cur },
      backend,
      attrs: { alpha: attrs.leakyreluAlpha ?? 0.2 },
    }) as Info;
  } else {
    const name = { relu: "Relu", relu6: "Relu6", sigmoid: "Sigmoid", elu: "Elu" }[act as string];
    if (!name) throw new Error(`fused op: activation '${act}' is not supported on backend cpu`);
    next = stock(name, { inputs: { x: cur }, backend }) as Info;
  }
  backend.disposeIntermediateTensorInfo(cur);
  return next;
}

function fused(
  backend: MathBackendCPU,
  values: Float32Array,
  shape: number[],
  inputs: Record<string, Info | undefined>,
  attrs: Attrs,
): Info {
  const bias = inputs.bias;
  const biasValues = bias ? valuesOf(backend, bias) : null;
  const biasOk = !bias || bias.shape.length <= 1;
  if (
    biasOk &&
    epilogueInPlace(
      values,
      shape[shape.length - 1],
      biasValues,
      attrs.activation,
      attrs.leakyreluAlpha ?? 0.2,
    )
  ) {
    return backend.makeTensorInfo(shape, "float32", values);
  }
  const raw = backend.makeTensorInfo(shape, "float32", values);
  return epilogueStock(backend, raw, bias, attrs, inputs.preluActivationWeights);
}

function geometry(info: tf.backend_util.Conv2DInfo): ConvGeometry {
  return {
    inH: info.inHeight,
    inW: info.inWidth,
    inC: info.inChannels,
    outH: info.outHeight,
    outW: info.outWidth,
    kH: info.filterHeight,
    kW: info.filterWidth,
    strideH: info.strideHeight,
    strideW: info.strideWidth,
    dilationH: info.dilationHeight,
    dilationW: info.dilationWidth,
    padTop: info.padInfo.top,
    padLeft: info.padInfo.left,
  };
}

/** im2col on the native kernels when active (a memcpy per tap instead of a JS subarray). */
function toCols(
  x: Float32Array,
  cols: Float32Array,
  g: ConvGeometry,
  first: number,
  count: number,
) {
  const nk = activeNativeKernels();
  if (nk) nk.im2col(x, cols, g, first, count);
  else im2col(x, cols, g, first, count);
}

/** col2im on the native kernels when active. */
function fromCols(
  cols: Float32Array,
  dx: Float32Array,
  g: ConvGeometry,
  first: number,
  count: number,
) {
  const nk = activeNativeKernels();
  if (nk) nk.col2im(cols, dx, g, first, count);
  else col2im(cols, dx, g, first, count);
}

function chunkImages(g: ConvGeometry): number {
  return Math.max(1, Math.floor(MAX_COLS / Math.max(1, g.outH * g.outW * patchSize(g))));
}

/** Forward NHWC convolution values `[batch, outH, outW, outC]`. */
function conv2dValues(
  blas: OpenBlas,
  x: Float32Array,
  w: Float32Array,
  g: ConvGeometry,
  batch: number,
  outC: number,
  backend: MathBackendCPU,
): Float32Array {
  const kk = patchSize(g);
  const rowsPerImage = g.outH * g.outW;
  const out = takeF32(backend, batch * rowsPerImage * outC, true);
  if (isPointwise(g)) {
    blas.sgemm({ m: batch * rowsPerImage, n: outC, k: kk, a: x, b: w, c: out });
    return out;
  }
  const step = chunkImages(g);
  for (let n0 = 0; n0 < batch; n0 += step) {
    const cnt = Math.min(step, batch - n0);
    const rows = cnt * rowsPerImage;
    const cols = scratchOf(rows * kk);
    toCols(x, cols, g, n0, cnt);
    const o = n0 * rowsPerImage * outC;
    blas.sgemm({ m: rows, n: outC, k: kk, a: cols, b: w, c: out.subarray(o, o + rows * outC) });
  }
  return out;
}

function convInfo(
  xShape: number[],
  filterShape: number[],
  attrs: Attrs,
  dilations: number | [number, number],
): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    dilations,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    "channelsLast",
  );
}

function isNhwc(attrs: Attrs): boolean {
  return attrs.dataFormat === undefined || attrs.dataFormat === "NHWC" ||
    attrs.dataFormat === "channelsLast";
}

/**
 * Kernel configs for `backendName` (a `MathBackendCPU`) that compute GEMMs with `blas`:
 * BatchMatMul, _FusedMatMul, Conv2D, FusedConv2D, Conv2DBackpropInput, Conv2DBackpropFilter.
 *
 * @example
 * ```ts
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { blasKernelConfigs } from "./cpu_blas_kernels.ts";
 * import { loadOpenBlas } from "./openblas.ts";
 *
 * for (const k of blasKernelConfigs("cpu-blas", loadOpenBlas()!)) tf.registerKernel(k);
 * ```
 */
export function blasKernelConfigs(backendName: string, blas: OpenBlas): tf.KernelConfig[] {
  const batchMatMul = (args: KernelArgs): Info | Info[] => {
    const { a, b } = args.inputs as { a: Info; b: Info };
    if (!isF32(a, b)) return stock("BatchMatMul", args);
    const { out, shape } = matmulValues(
      blas,
      args.backend,
      a,
      b,
      !!args.attrs?.transposeA,
      !!args.attrs?.transposeB,
    );
    return args.backend.makeTensorInfo(shape, "float32", out);
  };

  const fusedMatMul = (args: KernelArgs): Info | Info[] => {
    const { a, b, bias, preluActivationWeights } = args.inputs;
    if (!isF32(a, b, bias, preluActivationWeights)) return stock("_FusedMatMul", args);
    const attrs = args.attrs ?? {};
    const { out, shape } = matmulValues(
      blas,
      args.backend,
      a!,
      b!,
      !!attrs.transposeA,
      !!attrs.transposeB,
    );
    return fused(args.backend, out, shape, args.inputs, attrs);
  };

  const conv2d = (args: KernelArgs): Info | Info[] => {
    const { x, filter } = args.inputs as { x: Info; filter: Info };
    const attrs = args.attrs ?? {};
    if (!isF32(x, filter) || !isNhwc(attrs)) return stock("Conv2D", args);
    const info = convInfo(x.shape, filter.shape, attrs, attrs.dilations ?? 1);
    const be = args.backend;
    const out = conv2dValues(
      blas,
      valuesOf(be, x),
      valuesOf(be, filter),
      geometry(info),
      info.batchSize,
      info.outChannels,
      be,
    );
    return be.makeTensorInfo(info.outShape, "float32", out);
  };

  const fusedConv2d = (args: KernelArgs): Info | Info[] => {
    const { x, filter, bias, preluActivationWeights } = args.inputs;
    const attrs = args.attrs ?? {};
    if (!isF32(x, filter, bias, preluActivationWeights) || !isNhwc(attrs)) {
      return stock("FusedConv2D", args);
    }
    const info = convInfo(x!.shape, filter!.shape, attrs, attrs.dilations ?? 1);
    const be = args.backend;
    const out = conv2dValues(
      blas,
      valuesOf(be, x!),
      valuesOf(be, filter!),
      geometry(info),
      info.batchSize,
      info.outChannels,
      be,
    );
    return fused(be, out, info.outShape, args.inputs, attrs);
  };

  const backpropInput = (args: KernelArgs): Info | Info[] => {
    const { dy, filter } = args.inputs as { dy: Info; filter: Info };
    const attrs = args.attrs ?? {};
    if (!isF32(dy, filter) || !isNhwc(attrs)) return stock("Conv2DBackpropInput", args);
    const info = convInfo(attrs.inputShape, filter.shape, attrs, 1);
    const g = geometry(info);
    const be = args.backend;
    const dyv = valuesOf(be, dy), wv = valuesOf(be, filter);
    const kk = patchSize(g), outC = info.outChannels, batch = info.batchSize;
    const rowsPerImage = g.outH * g.outW;
    const dxSize = batch * g.inH * g.inW * g.inC;
    if (isPointwise(g)) {
      const dx = takeF32(be, dxSize, true);
      blas.sgemm({ m: batch * rowsPerImage, n: kk, k: outC, a: dyv, b: wv, c: dx, transB: true });
      return be.makeTensorInfo(info.inShape, "float32", dx);
    }
    const flipPadTop = g.kH - 1 - g.padTop, flipPadLeft = g.kW - 1 - g.padLeft;
    if (g.strideH === 1 && g.strideW === 1 && flipPadTop >= 0 && flipPadLeft >= 0) {
      // Stride 1: dx is the "full" correlation of dy with the flipped, in/out-swapped filter.
      // im2col (gather) is ~3x faster in JS than col2im (scatter-add) on the same data.
      const { kH, kW, inC } = g;
      const wf = new Float32Array(wv.length);
      for (let a = 0; a < kH; a++) {
        for (let b = 0; b < kW; b++) {
          const src = ((kH - 1 - a) * kW + (kW - 1 - b)) * inC * outC;
          const dst = (a * kW + b) * outC * inC;
          for (let ci = 0; ci < inC; ci++) {
            for (let co = 0; co < outC; co++) wf[dst + co * inC + ci] = wv[src + ci * outC + co];
          }
        }
      }
      const gf: ConvGeometry = {
        inH: g.outH,
        inW: g.outW,
        inC: outC,
        outH: g.inH,
        outW: g.inW,
        kH,
        kW,
        strideH: 1,
        strideW: 1,
        dilationH: 1,
        dilationW: 1,
        padTop: flipPadTop,
        padLeft: flipPadLeft,
      };
      return be.makeTensorInfo(
        info.inShape,
        "float32",
        conv2dValues(blas, dyv, wf, gf, batch, inC, be),
      );
    }
    const dx = takeF32(be, dxSize, true);
    const step = chunkImages(g);
    for (let n0 = 0; n0 < batch; n0 += step) {
      const cnt = Math.min(step, batch - n0);
      const rows = cnt * rowsPerImage;
      const dcols = scratchOf(rows * kk);
      const o = n0 * rowsPerImage * outC;
      blas.sgemm({
        m: rows,
        n: kk,
        k: outC,
        a: dyv.subarray(o, o + rows * outC),
        b: wv,
        c: dcols,
        transB: true,
      });
      fromCols(dcols, dx, g, n0, cnt);
    }
    return be.makeTensorInfo(info.inShape, "float32", dx);
  };

  const backpropFilter = (args: KernelArgs): Info | Info[] => {
    const { x, dy } = args.inputs as { x: Info; dy: Info };
    const attrs = args.attrs ?? {};
    if (!isF32(x, dy) || !isNhwc(attrs)) return stock("Conv2DBackpropFilter", args);
    const info = convInfo(x.shape, attrs.filterShape, attrs, 1);
    const g = geometry(info);
    const be = args.backend;
    const xv = valuesOf(be, x), dyv = valuesOf(be, dy);
    const kk = patchSize(g), outC = info.outChannels, batch = info.batchSize;
    const rowsPerImage = g.outH * g.outW;
    const dw = takeF32(be, kk * outC, true);
    if (isPointwise(g)) {
      blas.sgemm({ m: kk, n: outC, k: batch * rowsPerImage, a: xv, b: dyv, c: dw, transA: true });
      return be.makeTensorInfo(info.filterShape, "float32", dw);
    }
    const step = chunkImages(g);
    for (let n0 = 0; n0 < batch; n0 += step) {
      const cnt = Math.min(step, batch - n0);
      const rows = cnt * rowsPerImage;
      const cols = scratchOf(rows * kk);
      toCols(xv, cols, g, n0, cnt);
      const o = n0 * rowsPerImage * outC;
      blas.sgemm({
        m: kk,
        n: outC,
        k: rows,
        a: cols,
        b: dyv.subarray(o, o + rows * outC),
        c: dw,
        transA: true,
        beta: n0 === 0 ? 0 : 1,
      });
    }
    return be.makeTensorInfo(info.filterShape, "float32", dw);
  };

  const table: [string, (a: KernelArgs) => Info | Info[]][] = [
    ["BatchMatMul", batchMatMul],
    ["_FusedMatMul", fusedMatMul],
    ["Conv2D", conv2d],
    ["FusedConv2D", fusedConv2d],
    ["Conv2DBackpropInput", backpropInput],
    ["Conv2DBackpropFilter", backpropFilter],
  ];
  return table.map(([kernelName, f]) => ({
    kernelName,
    backendName,
    kernelFunc: f as unknown as tf.KernelFunc,
  }));
}
