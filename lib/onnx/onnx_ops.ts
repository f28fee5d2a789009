/**
 * The {@link Ops} as an ONNX graph builder: running a kit layer or model on {@link OnnxOps}
 * emits its ONNX nodes instead of computing, so the export is derived from the one definition in
 * lib/nn and lib/models.
 *
 * Values keep the layers' logical layout (NHWC images) but may be stored in another physical
 * layout: convolutions, group norms and resizes want NCHW (onnxruntime's native conv layout), so
 * their outputs stay NCHW and a Transpose is emitted only where an op needs the other order
 * (reshapes, linear layers over channels). Weights are initializers under their kit names,
 * re-laid-out once where an op needs it (conv weights HWIO -> OIHW, norm scales `[C, 1, 1]`);
 * reshapes and slices of weights are folded on the host. Sizes unknown until run time (batch,
 * height, width) are symbolic, read with `Shape` where a reshape needs them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import { OnnxOps, readParams } from "./onnx_ops.ts";
 * import { OnnxGraph } from "./writer.ts";
 * import { openSession } from "./session.ts";
 * import { AUTOENCODER_PRESETS, decode, initAutoencoder } from "../models/autoencoder.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const cfg = AUTOENCODER_PRESETS.tiny;
 * const g = new OnnxGraph("decoder");
 * const m = new OnnxOps(g, await readParams(initAutoencoder(cfg, Rng.stream(0))));
 * const z = m.input("latent_sample", "float32", ["batch", 4, "height", "width"], { layout: "NCHW" });
 * m.output(decode(m, cfg, z), "sample", { layout: "NCHW" });
 * const s = await openSession(g.toBytes(), { threads: 1, executionProviders: ["cpu"] });
 * const { sample } = await s.run({ latent_sample: { data: new Float32Array(16), shape: [1, 4, 2, 2] } });
 * assert.deepEqual(sample.dims, [1, 3, 8, 8]);
 * await s.release();
 * ```
 * @module
 */
import type {
  AttentionOpOptions,
  ConvOpOptions,
  Dim,
  GeluKind,
  GroupNormOpOptions,
  Ops,
  OpsDType,
  SymbolicDim,
} from "../nn/ops.ts";
import type { Params } from "../nn/params.ts";
import type { OnnxDType } from "./schema.ts";
import type { OnnxAttrValue, OnnxGraph, OnnxShape } from "./writer.ts";
import { type HostArray, type HostTensor, sliceHost, transposeHost } from "./host_tensor.ts";

/** Weights read out of `Params`: name -> values and shape (kit layout). */
export type WeightArrays = Record<string, { data: Float32Array; shape: number[] }>;

/**
 * Read every parameter's values (async, so it works on backends without `dataSync`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import { readParams } from "./onnx_ops.ts";
 * import { AUTOENCODER_PRESETS, initAutoencoder } from "../models/autoencoder.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const weights = await readParams(initAutoencoder(AUTOENCODER_PRESETS.tiny, Rng.stream(0)));
 * assert.deepEqual(weights["decoder.conv_in.weight"].shape, [3, 3, 4, 16]);
 * ```
 */
export async function readParams(p: Params): Promise<WeightArrays> {
  const out: WeightArrays = {};
  for (const [name, v] of Object.entries(p)) {
    if (v.dtype !== "float32") throw new Error(`readParams: "${name}" is ${v.dtype}, not float32`);
    out[name] = { data: Float32Array.from(await v.data() as Float32Array), shape: [...v.shape] };
  }
  return out;
}

/** A size read at run time: physical axis `axis` of ONNX value `source`. */
class GraphDim implements SymbolicDim {
  constructor(readonly symbolic: string, readonly source: string, readonly axis: number) {}
}

/** Values known while building (weights, constants), with the initializer name to give them. */
interface Host extends HostTensor {
  name: string;
}

/**
 * A tensor in an ONNX graph under construction: its logical shape and dtype, the ONNX value that
 * holds it and that value's axis order (`perm[i]` = the logical axis stored as physical axis i),
 * or, for weights and constants, its values (added as an initializer when first used).
 *
 * @example
 * ```ts
 * import { OnnxOps } from "./onnx_ops.ts";
 * import { OnnxGraph } from "./writer.ts";
 *
 * const m = new OnnxOps(new OnnxGraph("unet"), {});
 * const x = m.input("sample", "float32", ["batch", 4, "height", "width"], { layout: "NCHW" });
 * x.shape; // logical NHWC: [batch, height, width, 4]; x.perm: [0, 3, 1, 2]
 * ```
 */
export class OnnxValue {
  constructor(
    /** ONNX value name ("" for a weight or constant not added yet). */
    readonly name: string,
    readonly dtype: OpsDType,
    readonly shape: readonly Dim[],
    readonly perm: readonly number[],
    readonly host?: Host,
  ) {}
}

/** Masked logits get this bias, as in lib/nn's TensorFlow.js attention. */
const MASKED = -1e9;
const GELU_C = Math.sqrt(2 / Math.PI);
const ONNX_FLOAT = 1;
const ONNX_INT64 = 7;
/** Channels-first physical order of a logical NHWC image. */
const NCHW = [0, 3, 1, 2];

const identity = (r: number) => Array.from({ length: r }, (_, i) => i);
const same = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((v, i) => v === b[i]);
/** Physical order with the last logical axis (channels) second: `[0, r-1, 1, ..., r-2]`. */
const channelsFirst = (r: number) => [0, r - 1, ...identity(r).slice(1, r - 1)];
const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Options of {@link OnnxOps.input} and {@link OnnxOps.output}. */
export interface OnnxIoOptions {
  /** Physical layout of a rank-4 image in the file (default "NHWC", the kit's). */
  layout?: "NHWC" | "NCHW";
}

/** Options of {@link OnnxOps.output}. */
export interface OnnxOutputOptions extends OnnxIoOptions {
  /** Declared shape in the file's layout (default: left to the runtime). */
  shape?: OnnxShape;
}

/**
 * {@link Ops} that append ONNX nodes to an {@link OnnxGraph}, reading weights from `weights`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import { OnnxOps, readParams } from "./onnx_ops.ts";
 * import { initResnetBlock, resnetBlock } from "../nn/resnet.ts";
 * import { TensorBuilder } from "../nn/init.ts";
 * import { OnnxGraph } from "./writer.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const b = new TensorBuilder(Rng.stream(0));
 * initResnetBlock(b, "mid", { inChannels: 32, outChannels: 32 });
 * const g = new OnnxGraph();
 * const m = new OnnxOps(g, await readParams(b.params));
 * const y = resnetBlock(m, "mid", m.input("x", "float32", ["batch", 8, 8, 32]), { groups: 8 });
 * m.output(y, "y");
 * assert.ok(g.stats().nodes > 0);

 * ```
 */
export class OnnxOps implements Ops<OnnxValue> {
  private readonly params = new Map<string, OnnxValue>();
  private readonly ranges = new Map<number, OnnxValue>();
  /** Initializer (or transposed value) name per value and physical order. */
  private readonly laidOut = new Map<Host | string, Map<string, string>>();
  private readonly scalars = new Map<string, string>();
  private readonly emitted = new Map<string, string>();

  constructor(readonly g: OnnxGraph, private readonly weights: WeightArrays) {}

  // -------------------------------------------------------------------------------------------
  // Graph inputs and outputs

  /**
   * Declare a graph input of the given (file) shape; names in `shape` are run-time sizes. With
   * `layout: "NCHW"` the file holds a rank-4 image channels first and no Transpose is needed.
   */
  input(name: string, dtype: OpsDType, shape: OnnxShape, o: OnnxIoOptions = {}): OnnxValue {
    this.g.input(name, dtype as OnnxDType, shape);
    const perm = o.layout === "NCHW" ? NCHW : identity(shape.length);
    const physical = shape.map((d, i) => typeof d === "number" ? d : new GraphDim(d, name, i));
    const logical = identity(shape.length).map((j) => physical[perm.indexOf(j)]);
    return new OnnxValue(name, dtype, logical, perm);
  }

  /**
   * Make `v` graph output `name` in the file's layout (default NHWC, i.e. logical).
   *
   * @example
   * ```ts
   * import { OnnxOps } from "./onnx_ops.ts";
   * import { OnnxGraph } from "./writer.ts";
   *
   * const m = new OnnxOps(new OnnxGraph("id"), {});
   * const y = m.input("sample", "float32", ["batch", 4, "height", "width"], { layout: "NCHW" });
   * m.output(y, "out_sample", { layout: "NCHW", shape: ["batch", 4, "height", "width"] });
   * ```
   */
  output(v: OnnxValue, name: string, o: OnnxOutputOptions = {}): void {
    const r = v.shape.length;
    const perm = o.layout === "NCHW" && r === 4 ? NCHW : identity(r);
    const physical = this.at(v, v.host ? identity(r) : v.perm);
    if (v.host || same(v.perm, perm)) {
      this.g.node("Identity", [physical], {}, { outputs: [name] });
    } else {
      this.g.node("Transpose", [physical], { perm: this.transposePerm(v.perm, perm) }, {
        outputs: [name],
      });
    }
    this.g.output(name, v.dtype as OnnxDType, o.shape);
  }

  // -------------------------------------------------------------------------------------------
  // Ops: parameters and shapes

  param(name: string): OnnxValue {
    let v = this.params.get(name);
    if (!v) {
      const w = this.weights[name];
      if (!w) throw new Error(`OnnxOps: parameter "${name}" is missing`);
      v = this.hostValue({ data: w.data, shape: w.shape, name });
      this.params.set(name, v);
    }
    return v;
  }
  hasParam(name: string): boolean {
    return name in this.weights;
  }
  shape(x: OnnxValue): readonly Dim[] {
    return x.shape;
  }
  dtype(x: OnnxValue): OpsDType {
    return x.dtype;
  }
  scope<R>(fn: () => R): R {
    return fn();
  }

  constant(values: Float32Array, shape: number[]): OnnxValue {
    return this.hostValue({ data: values, shape, name: "const" });
  }
  positions(n: number): OnnxValue {
    let v = this.ranges.get(n);
    if (!v) {
      const data = BigInt64Array.from({ length: n }, (_, i) => BigInt(i));
      this.ranges.set(n, v = this.hostValue({ data, shape: [n], name: "positions" }));
    }
    return v;
  }

  // -------------------------------------------------------------------------------------------
  // Element-wise

  add(a: OnnxValue, b: OnnxValue | number): OnnxValue {
    return this.binary("Add", a, b);
  }
  mul(a: OnnxValue, b: OnnxValue | number): OnnxValue {
    return this.binary("Mul", a, b);
  }
  silu(x: OnnxValue): OnnxValue {
    return this.binary("Mul", x, this.unary("Sigmoid", x));
  }
  gelu(x: OnnxValue, kind: GeluKind = "tanh"): OnnxValue {
    // opset 17 has no Gelu (opset 20 does): lib/nn's formulas, from Erf (exact) or Tanh.
    if (kind === "erf") {
      const erf = this.unary("Erf", this.mul(x, Math.SQRT1_2));
      return this.mul(this.mul(x, 0.5), this.add(erf, 1));
    }
    const x3 = this.mul(this.mul(x, x), x);
    const inner = this.mul(this.add(x, this.mul(x3, 0.044715)), GELU_C);
    return this.mul(this.mul(x, 0.5), this.add(this.unary("Tanh", inner), 1));
  }
  sin(x: OnnxValue): OnnxValue {
    return this.unary("Sin", x);
  }
  cos(x: OnnxValue): OnnxValue {
    return this.unary("Cos", x);
  }
  clip(x: OnnxValue, min: number, max: number): OnnxValue {
    const r = this.runtime(x);
    const name = this.node("Clip", [r.name, this.scalar(min), this.scalar(max)]);
    return new OnnxValue(name, r.dtype, r.shape, r.perm);
  }
  cast(x: OnnxValue, dtype: "float32"): OnnxValue {
    const r = this.runtime(x);
    const name = this.node("Cast", [r.name], { to: ONNX_FLOAT });
    return new OnnxValue(name, dtype, r.shape, r.perm);
  }
  equal(x: OnnxValue, value: number): OnnxValue {
    const r = this.runtime(x);
    const name = this.node("Equal", [r.name, this.scalar(value, r.dtype)]);
    return new OnnxValue(name, "bool", r.shape, r.perm);
  }
  argMax(x: OnnxValue, axis: number): OnnxValue {
    const r = this.runtime(x);
    const name = this.node("ArgMax", [r.name], { axis: r.perm.indexOf(axis), keepdims: 0 });
    return this.reduced(name, "int64", r, [axis]);
  }
  oneHot(indices: OnnxValue, depth: number): OnnxValue {
    let idx = this.at(indices, identity(indices.shape.length));
    if (indices.dtype !== "int64") idx = this.node("Cast", [idx], { to: ONNX_INT64 });
    const column = this.node("Unsqueeze", [idx, this.ints([-1])]);
    const hot = this.node("Equal", [this.at(this.positions(depth), [0]), column]);
    const name = this.node("Cast", [hot], { to: ONNX_FLOAT });
    const shape = [...indices.shape, depth];
    return new OnnxValue(name, "float32", shape, identity(shape.length));
  }

  // -------------------------------------------------------------------------------------------
  // Shapes and layout

  reshape(x: OnnxValue, shape: readonly Dim[]): OnnxValue {
    const known = x.shape.every((d) => typeof d === "number") ? size(x.shape as number[]) : -1;
    const rest = shape.filter((d) => d !== -1);
    const fixed = rest.every((d) => typeof d === "number") ? size(rest as number[]) : -1;
    const resolved = shape.map((d) =>
      d !== -1 ? d : known >= 0 && fixed > 0 ? known / fixed : undefined
    );
    if (x.host) {
      if (resolved.some((d) => typeof d !== "number")) {
        throw new Error(`OnnxOps.reshape: constant "${x.host.name}" needs a fixed target shape`);
      }
      return this.hostValue({ ...x.host, shape: resolved as number[] });
    }
    const input = this.at(x, identity(x.shape.length));
    const target = this.shapeTensor(shape.map((d, i) =>
      i < x.shape.length && x.shape[i] === d &&
        typeof d !== "number"
        ? 0
        : d
    ));
    const name = this.node("Reshape", [input, target]);
    return this.fresh(name, x.dtype, resolved, identity(shape.length));
  }

  concat(xs: OnnxValue[], axis: number): OnnxValue {
    const first = xs.find((x) => !x.host) ?? xs[0];
    const perm = first.host ? identity(first.shape.length) : first.perm;
    const name = this.node("Concat", xs.map((x) => this.at(x, perm)), {
      axis: perm.indexOf(axis),
    });
    const parts = xs.map((x) => x.shape[axis]);
    const total = parts.every((d) => typeof d === "number")
      ? (parts as number[]).reduce((a, b) => a + b, 0)
      : undefined;
    return this.fresh(name, first.dtype, first.shape.map((d, i) => i === axis ? total : d), perm);
  }

  split(x: OnnxValue, parts: number | number[], axis: number): OnnxValue[] {
    const r = this.runtime(x);
    const total = r.shape[axis];
    if (typeof parts === "number" && typeof total !== "number") {
      throw new Error(`OnnxOps.split: axis ${axis} must have a fixed size to split evenly`);
    }
    const sizes = typeof parts === "number"
      ? new Array(parts).fill((total as number) / parts)
      : parts;
    const outs = this.g.nodeMulti("Split", [r.name, this.ints(sizes)], sizes.length, {
      axis: r.perm.indexOf(axis),
    });
    return outs.map((o, k) =>
      new OnnxValue(o, r.dtype, r.shape.map((d, i) => i === axis ? sizes[k] : d), r.perm)
    );
  }

  slice(x: OnnxValue, begin: number[], sizes: number[]): OnnxValue {
    if (x.host) return this.hostValue({ ...sliceHost(x.host, begin, sizes), name: x.host.name });
    const r = this.runtime(x);
    const axes = identity(begin.length).map((a) => r.perm.indexOf(a));
    const ends = begin.map((b, a) => sizes[a] === -1 ? Number.MAX_SAFE_INTEGER : b + sizes[a]);
    const name = this.node("Slice", [
      r.name,
      this.ints(begin),
      this.ints(ends),
      this.ints(axes),
    ]);
    return this.fresh(name, r.dtype, sizes.map((n) => n === -1 ? undefined : n), r.perm);
  }

  pad(x: OnnxValue, paddings: [number, number][]): OnnxValue {
    const r = this.runtime(x);
    const before = r.perm.map((l) => paddings[l][0]);
    const after = r.perm.map((l) => paddings[l][1]);
    const name = this.node("Pad", [r.name, this.ints([...before, ...after])]);
    const shape = r.shape.map((d, i) =>
      typeof d === "number" ? d + paddings[i][0] + paddings[i][1] : undefined
    );
    return this.fresh(name, r.dtype, shape, r.perm);
  }

  mean(x: OnnxValue, axes: number[]): OnnxValue {
    const r = this.runtime(x);
    // ReduceMean still takes its axes as an attribute at opset 17 (an input from 18 on).
    const name = this.node("ReduceMean", [r.name], {
      axes: axes.map((a) => r.perm.indexOf(a)),
      keepdims: 0,
    });
    return this.reduced(name, r.dtype, r, axes);
  }

  sum(x: OnnxValue, axis: number): OnnxValue {
    const r = this.runtime(x);
    const name = this.node("ReduceSum", [r.name, this.ints([r.perm.indexOf(axis)])], {
      keepdims: 0,
    });
    return this.reduced(name, r.dtype, r, [axis]);
  }

  // -------------------------------------------------------------------------------------------
  // Layer kernels

  linear(x: OnnxValue, w: OnnxValue, b?: OnnxValue): OnnxValue {
    const r = x.shape.length;
    const name = this.node("MatMul", [this.at(x, identity(r)), this.at(w, [0, 1])]);
    const y = this.fresh(name, "float32", [...x.shape.slice(0, -1), w.shape[1]], identity(r));
    return b ? this.add(y, b) : y;
  }

  conv2d(x: OnnxValue, w: OnnxValue, b: OnnxValue | undefined, o: ConvOpOptions): OnnxValue {
    const [kh, kw, , cout] = w.shape as number[];
    const [ph, pw] = o.pad;
    const s = o.stride;
    const inputs = [this.at(x, NCHW), this.at(w, [3, 2, 0, 1])]; // weight HWIO -> OIHW
    if (b) inputs.push(this.at(b, [0]));
    const layer = w.host?.name.replace(/\.weight$/, "") ?? "conv";
    const name = this.g.node("Conv", inputs, {
      kernel_shape: [kh, kw],
      pads: [ph, pw, ph, pw],
      strides: [s, s],
    }, { name: this.g.uniqueName(layer) });
    const out = (d: Dim, k: number, p: number) =>
      s === 1 && 2 * p === k - 1
        ? d
        : typeof d === "number"
        ? Math.floor((d + 2 * p - k) / s) + 1
        : undefined;
    const [n, h, wd] = x.shape;
    return this.fresh(name, "float32", [n, out(h, kh, ph), out(wd, kw, pw), cout], NCHW);
  }

  upsample2x(x: OnnxValue): OnnxValue {
    const r = this.runtime(x);
    const scales = r.perm.map((l) => l === 1 || l === 2 ? 2 : 1);
    const name = this.node("Resize", [r.name, "", this.floats(scales)], {
      mode: "nearest",
      coordinate_transformation_mode: "asymmetric",
      nearest_mode: "floor",
    });
    const shape = r.shape.map((d, i) =>
      i === 1 || i === 2 ? (typeof d === "number" ? 2 * d : undefined) : d
    );
    return this.fresh(name, r.dtype, shape, r.perm);
  }

  groupNorm(x: OnnxValue, gamma: OnnxValue, beta: OnnxValue, o: GroupNormOpOptions): OnnxValue {
    const r = x.shape.length;
    const perm = channelsFirst(r);
    const input = this.at(x, perm);
    const G = o.groups;
    const ones = this.floats(new Array(G).fill(1));
    const zeros = this.floats(new Array(G).fill(0));
    // InstanceNormalization over [N, G, rest] normalises each (sample, group).
    const grouped = this.node("Reshape", [input, this.ints([0, G, -1])]);
    const normed = this.node("InstanceNormalization", [grouped, ones, zeros], { epsilon: o.eps });
    const back = this.node("Reshape", [normed, this.shapeNode(input)]);
    const column = (v: OnnxValue) => {
      const c = v.shape[0] as number;
      return this.at(this.reshape(v, [c, ...new Array(r - 2).fill(1)]), identity(r - 1));
    };
    let y = this.node("Add", [this.node("Mul", [back, column(gamma)]), column(beta)]);
    if (o.silu) y = this.node("Mul", [y, this.node("Sigmoid", [y])]);
    return new OnnxValue(y, "float32", x.shape, perm);
  }

  standardize(x: OnnxValue, o: { eps: number }): OnnxValue {
    const d = x.shape[x.shape.length - 1];
    if (typeof d !== "number") {
      throw new Error(`OnnxOps.standardize: the last axis must have a known size, got ${d}`);
    }
    const ones = this.constant(new Float32Array(d).fill(1), [d]);
    return this.layerNorm(x, ones, this.constant(new Float32Array(d), [d]), o);
  }

  layerNorm(x: OnnxValue, gamma: OnnxValue, beta: OnnxValue, o: { eps: number }): OnnxValue {
    const name = this.node("LayerNormalization", [
      this.at(x, identity(x.shape.length)),
      this.at(gamma, [0]),
      this.at(beta, [0]),
    ], { axis: -1, epsilon: o.eps });
    return new OnnxValue(name, "float32", x.shape, identity(x.shape.length));
  }

  attention(
    q: OnnxValue,
    k: OnnxValue,
    v: OnnxValue,
    o: AttentionOpOptions<OnnxValue>,
  ): OnnxValue {
    const h = o.heads;
    const inner = q.shape[2] as number, dv = v.shape[2] as number;
    if (inner % h !== 0 || dv % h !== 0) {
      throw new Error(`OnnxOps.attention: widths ${inner}/${dv} not divisible by ${h} heads`);
    }
    const d = inner / h;
    const split = (x: OnnxValue, width: number, perm: number[]) =>
      this.node("Transpose", [
        this.node("Reshape", [this.at(x, [0, 1, 2]), this.ints([0, 0, h, width / h])]),
      ], {
        perm,
      });
    const qh = split(q, inner, [0, 2, 1, 3]); // [B, h, Tq, d]
    const kT = split(k, inner, [0, 2, 3, 1]); // [B, h, d, Tk]
    const vh = split(v, dv, [0, 2, 1, 3]);
    let logits = this.node("Mul", [this.node("MatMul", [qh, kT]), this.scalar(1 / Math.sqrt(d))]);
    if (o.keyMask) {
      const m = this.node("Cast", [this.at(o.keyMask, [0, 1])], { to: ONNX_FLOAT });
      const bias = this.node("Mul", [this.node("Sub", [this.scalar(1), m]), this.scalar(MASKED)]);
      logits = this.node("Add", [logits, this.node("Reshape", [bias, this.ints([0, 1, 1, -1])])]);
    }
    if (o.causal) {
      const tq = q.shape[1], tk = k.shape[1];
      if (typeof tq !== "number" || typeof tk !== "number") {
        throw new Error("OnnxOps.attention: a causal mask needs fixed sequence lengths");
      }
      const data = new Float32Array(tq * tk);
      for (let i = 0; i < tq; i++) for (let j = i + 1; j < tk; j++) data[i * tk + j] = MASKED;
      const mask = this.hostValue({ data, shape: [1, 1, tq, tk], name: `attention.causal${tq}` });
      logits = this.node("Add", [logits, this.at(mask, [0, 1, 2, 3])]);
    }
    const probs = this.node("Softmax", [logits], { axis: -1 });
    const out = this.node("Transpose", [this.node("MatMul", [probs, vh])], { perm: [0, 2, 1, 3] });
    const name = this.node("Reshape", [out, this.ints([0, 0, dv])]);
    return new OnnxValue(name, "float32", [q.shape[0], q.shape[1], dv], [0, 1, 2]);
  }

  embedding(table: OnnxValue, ids: OnnxValue): OnnxValue {
    // Gather takes int32 and int64 ids alike.
    const idx = this.at(ids, identity(ids.shape.length));
    const name = this.node("Gather", [this.at(table, [0, 1]), idx], { axis: 0 });
    const shape = [...ids.shape, table.shape[1]];
    return new OnnxValue(name, "float32", shape, identity(shape.length));
  }

  // -------------------------------------------------------------------------------------------
  // Helpers

  private hostValue(h: Host): OnnxValue {
    const dtype: OpsDType = h.data instanceof Float32Array
      ? "float32"
      : h.data instanceof Int32Array
      ? "int32"
      : "int64";
    return new OnnxValue("", dtype, h.shape, identity(h.shape.length), h);
  }

  /** `x` as a graph value in its current order (a constant is added as an initializer). */
  private runtime(x: OnnxValue): OnnxValue {
    if (!x.host) return x;
    const r = x.shape.length;
    return new OnnxValue(this.at(x, identity(r)), x.dtype, x.shape, identity(r));
  }

  /** The ONNX value holding `x` in physical order `perm` (added or transposed once). */
  private at(x: OnnxValue, perm: readonly number[]): string {
    const key = perm.join(",");
    const from = x.host ?? x.name;
    let byPerm = this.laidOut.get(from);
    if (!byPerm) this.laidOut.set(from, byPerm = new Map());
    const hit = byPerm.get(key);
    if (hit) return hit;
    let name: string;
    if (x.host) {
      const t = same(perm, identity(perm.length)) ? x.host : transposeHost(x.host, perm);
      name = this.g.initializer(this.g.uniqueName(x.host.name), t.data, t.shape);
    } else if (same(perm, x.perm)) {
      name = x.name;
    } else {
      name = this.node("Transpose", [x.name], { perm: this.transposePerm(x.perm, perm) });
    }
    byPerm.set(key, name);
    return name;
  }

  /** ONNX Transpose `perm` taking physical order `from` to `to`. */
  private transposePerm(from: readonly number[], to: readonly number[]): number[] {
    return to.map((l) => from.indexOf(l));
  }

  /** A value whose unknown sizes (`undefined`) are read from `name` at run time. */
  private fresh(
    name: string,
    dtype: OpsDType,
    shape: readonly (Dim | undefined)[],
    perm: readonly number[],
  ): OnnxValue {
    const dims = shape.map((d, j) => d ?? new GraphDim("?", name, perm.indexOf(j)));
    return new OnnxValue(name, dtype, dims, perm);
  }

  /** The value left after reducing logical `axes` of `r` (axes dropped). */
  private reduced(name: string, dtype: OpsDType, r: OnnxValue, axes: number[]): OnnxValue {
    const kept = r.perm.filter((l) => !axes.includes(l));
    const renumber = (l: number) => l - axes.filter((a) => a < l).length;
    const shape = r.shape.filter((_, i) => !axes.includes(i));
    return this.fresh(name, dtype, shape, kept.map(renumber));
  }

  private binary(op: string, a: OnnxValue, b: OnnxValue | number): OnnxValue {
    const bv = typeof b === "number" ? undefined : b;
    const rank = Math.max(a.shape.length, bv?.shape.length ?? 0);
    const full = [a, bv].filter((v): v is OnnxValue => !!v && !v.host && v.shape.length === rank);
    // Both operands full rank in different orders: keep the bigger one's (or the native layout).
    let perm = full[0]?.perm ?? identity(rank);
    if (full.length === 2 && !same(full[0].perm, full[1].perm)) {
      const bigger = broadcastsInto(full[0], full[1])
        ? full[1]
        : broadcastsInto(full[1], full[0])
        ? full[0]
        : full.find((v) => !same(v.perm, identity(rank))) ?? full[0];
      perm = bigger.perm;
    }
    const operand = (v: OnnxValue) => {
      if (v.shape.length === rank) return this.at(v, perm);
      if (same(perm, identity(rank))) return this.at(v, identity(v.shape.length));
      // A lower-rank operand against a permuted one: lift it to full rank, then reorder.
      const lifted = [...new Array(rank - v.shape.length).fill(1), ...v.shape];
      if (v.host) return this.at(this.reshape(v, lifted), perm);
      const axes = identity(rank - v.shape.length);
      const up = this.node("Unsqueeze", [this.at(v, identity(v.shape.length)), this.ints(axes)]);
      return this.at(new OnnxValue(up, v.dtype, lifted, identity(rank)), perm);
    };
    const right = bv ? operand(bv) : this.scalar(b as number);
    const name = this.node(op, [operand(a), right]);
    const shape = identity(rank).map((j) => {
      const da = dimAt(a, j, rank), db = bv ? dimAt(bv, j, rank) : 1;
      if (da === db || db === 1) return da;
      if (da === 1) return db;
      return typeof da === "number" ? da : typeof db === "number" ? db : undefined;
    });
    return this.fresh(name, a.dtype, shape, perm);
  }

  private unary(op: string, x: OnnxValue): OnnxValue {
    const r = this.runtime(x);
    return new OnnxValue(this.node(op, [r.name]), r.dtype, r.shape, r.perm);
  }

  /** A scalar initializer, one per value and type. */
  private scalar(v: number, dtype: OpsDType = "float32"): string {
    const key = `${dtype}:${v}`;
    let name = this.scalars.get(key);
    if (!name) {
      const data = dtype === "float32"
        ? Float32Array.of(v)
        : dtype === "int32"
        ? Int32Array.of(v)
        : BigInt64Array.of(BigInt(v));
      name = this.g.initializer(this.g.uniqueName("scalar"), data as HostArray, []);
      this.scalars.set(key, name);
    }
    return name;
  }

  /** A 1-D int64 initializer (shapes, axes, pads), one per contents. */
  private ints(values: readonly number[]): string {
    const key = `ints:${values.join(",")}`;
    let name = this.scalars.get(key);
    if (!name) this.scalars.set(key, name = this.g.int64s(values));
    return name;
  }

  /** A 1-D float32 initializer, one per contents. */
  private floats(values: number[]): string {
    const key = `floats:${values.join(",")}`;
    let name = this.scalars.get(key);
    if (!name) {
      name = this.g.initializer(this.g.uniqueName("floats"), Float32Array.from(values), [
        values.length,
      ]);
      this.scalars.set(key, name);
    }
    return name;
  }

  /** `Shape` of an ONNX value, or of its axis `start` alone. */
  private shapeNode(name: string, start?: number): string {
    return start === undefined
      ? this.node("Shape", [name])
      : this.node("Shape", [name], { start, end: start + 1 });
  }

  /**
   * Append a node, or reuse the output of an identical earlier one (same op, inputs and
   * attributes): every op here is a pure function, and layers written for TensorFlow.js repeat
   * work a graph needs once (the same Shape, Transpose or Gather).
   */
  private node(op: string, inputs: string[], attrs: Record<string, OnnxAttrValue> = {}): string {
    const key = JSON.stringify([op, inputs, attrs]);
    let out = this.emitted.get(key);
    if (!out) this.emitted.set(key, out = this.g.node(op, inputs, attrs));
    return out;
  }

  /** An int64 shape tensor for Reshape: literals, or sizes read with `Shape` where symbolic. */
  private shapeTensor(dims: readonly Dim[]): string {
    if (dims.every((d) => typeof d === "number")) return this.ints(dims as number[]);
    const pieces: string[] = [];
    let run: number[] = [];
    for (const d of dims) {
      if (typeof d === "number") {
        run.push(d);
        continue;
      }
      if (run.length) pieces.push(this.ints(run));
      run = [];
      const gd = d as GraphDim;
      pieces.push(this.shapeNode(gd.source, gd.axis));
    }
    if (run.length) pieces.push(this.ints(run));
    return this.node("Concat", pieces, { axis: 0 });
  }
}

/** Logical size of `v` at axis `j` of a rank-`rank` broadcast (1 where `v` has no such axis). */
function dimAt(v: OnnxValue, j: number, rank: number): Dim {
  const k = j - (rank - v.shape.length);
  return k < 0 ? 1 : v.shape[k];
}

/** Whether `a` is broadcast over some axis of `b` (size 1 where `b` is not). */
function broadcastsInto(a: OnnxValue, b: OnnxValue): boolean {
  return a.shape.some((d, i) => d === 1 && b.shape[i] !== 1);
}
