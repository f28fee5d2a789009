/**
 * Write ONNX models from TypeScript: a small graph builder over the ONNX protobuf messages
 * (inputs, initializers with their weights, nodes with attributes, outputs), serialised to the
 * bytes onnxruntime loads. Default opset 17 (IR version 8), the opset Stable Diffusion exports use
 * and the first with `LayerNormalization`.
 *
 * @example
 * ```ts
 * const g = new OnnxGraph("mlp");
 * const x = g.input("x", "float32", ["batch", 4]);
 * const w = g.initializer("fc.weight", new Float32Array(8), [4, 2]);
 * const b = g.initializer("fc.bias", new Float32Array(2), [2]);
 * const y = g.node("Sigmoid", [g.node("Gemm", [x, w, b])]);
 * g.output(y, "float32", ["batch", 2]);
 * const bytes = g.toBytes();
 * ```
 * @module
 */
import { writeFileAtomic } from "../util/atomic.ts";
import { ONNX_ATTRIBUTE_TYPE, ONNX_DATA_TYPE, type OnnxDType, onnxSchema } from "./schema.ts";

/** A tensor shape: fixed sizes and symbolic names (`"batch"`). */
export type OnnxShape = readonly (number | string)[];

/** Typed arrays that hold tensor data (float16 as raw `Uint16Array` bits). */
export type OnnxTypedArray =
  | Float32Array
  | Float64Array
  | Int32Array
  | BigInt64Array
  | BigUint64Array
  | Uint32Array
  | Int16Array
  | Uint16Array
  | Int8Array
  | Uint8Array;

/** An explicitly typed attribute value (see {@link attr}). */
export type OnnxTypedAttr =
  | { kind: "float"; value: number }
  | { kind: "int"; value: number }
  | { kind: "string"; value: string }
  | { kind: "floats"; value: readonly number[] }
  | { kind: "ints"; value: readonly number[] }
  | { kind: "strings"; value: readonly string[] }
  | { kind: "tensor"; dtype: OnnxDType; data: OnnxTypedArray | readonly number[]; shape: number[] };

/**
 * An attribute value. Plain numbers are INT when integral, FLOAT otherwise, except attributes
 * whose name ONNX always types as float (`alpha`, `beta`, `epsilon`, ...); number arrays likewise.
 * Wrap with {@link attr} where that guess is wrong.
 */
export type OnnxAttrValue = number | string | readonly number[] | readonly string[] | OnnxTypedAttr;

/**
 * Explicit attribute types.
 *
 * @example
 * ```ts
 * import { attr, OnnxGraph } from "./writer.ts";
 *
 * const g = new OnnxGraph("fc");
 * const x = g.input("x", "float32", [2, 4]);
 * const w = g.initializer("w", new Float32Array(8), [2, 4]);
 * const b = g.initializer("b", new Float32Array(2), [2]);
 * g.node("Gemm", [x, w, b], { alpha: attr.float(1), transB: 1 });
 * const s = g.initializer("shape", [2], [1], "int64");
 * g.node("ConstantOfShape", [s], { value: attr.tensor("float32", [0], [1]) });
 * ```
 */
export const attr = {
  /** A FLOAT attribute. */
  float: (value: number): OnnxTypedAttr => ({ kind: "float", value }),
  /** An INT attribute. */
  int: (value: number): OnnxTypedAttr => ({ kind: "int", value }),
  /** A STRING attribute. */
  string: (value: string): OnnxTypedAttr => ({ kind: "string", value }),
  /** A FLOATS attribute. */
  floats: (value: readonly number[]): OnnxTypedAttr => ({ kind: "floats", value }),
  /** An INTS attribute. */
  ints: (value: readonly number[]): OnnxTypedAttr => ({ kind: "ints", value }),
  /** A STRINGS attribute. */
  strings: (value: readonly string[]): OnnxTypedAttr => ({ kind: "strings", value }),
  /** A TENSOR attribute. */
  tensor: (
    dtype: OnnxDType,
    data: OnnxTypedArray | readonly number[],
    shape: number[],
  ): OnnxTypedAttr => ({ kind: "tensor", dtype, data, shape }),
};

/** Attribute names that ONNX's standard operators always declare as FLOAT(S). */
const FLOAT_ATTRS = new Set([
  "alpha",
  "beta",
  "gamma",
  "epsilon",
  "momentum",
  "ratio",
  "bias",
  "lambd",
  "scales",
  "extrapolation_value",
  "cubic_coeff_a",
]);

const BYTES_PER: Record<OnnxDType, number> = {
  float32: 4,
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  int32: 4,
  int64: 8,
  string: 0,
  bool: 1,
  float16: 2,
  float64: 8,
  uint32: 4,
  uint64: 8,
};

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Infer the ONNX element type of a typed array (Uint16Array is taken as float16 bits). */
function dtypeOf(data: OnnxTypedArray): OnnxDType {
  if (data instanceof Float32Array) return "float32";
  if (data instanceof Float64Array) return "float64";
  if (data instanceof Int32Array) return "int32";
  if (data instanceof BigInt64Array) return "int64";
  if (data instanceof BigUint64Array) return "uint64";
  if (data instanceof Uint32Array) return "uint32";
  if (data instanceof Int16Array) return "int16";
  if (data instanceof Uint16Array) return "float16";
  if (data instanceof Int8Array) return "int8";
  return "uint8";
}

/** Little-endian bytes of tensor data in `dtype` (numbers are converted). */
function rawBytes(
  dtype: OnnxDType,
  data: OnnxTypedArray | readonly number[],
  where: string,
): Uint8Array {
  if (!LITTLE_ENDIAN) throw new Error("onnx writer: big-endian hosts are not supported");
  if (dtype === "string") throw new Error(`${where}: string tensors are not supported`);
  let arr: ArrayBufferView;
  if (Array.isArray(data)) {
    const nums = data as readonly number[];
    switch (dtype) {
      case "float32":
        arr = Float32Array.from(nums);
        break;
      case "float64":
        arr = Float64Array.from(nums);
        break;
      case "int32":
        arr = Int32Array.from(nums);
        break;
      case "int64":
        arr = BigInt64Array.from(nums.map((v) => BigInt(Math.trunc(v))));
        break;
      case "int8":
        arr = Int8Array.from(nums);
        break;
      case "uint8":
      case "bool":
        arr = Uint8Array.from(nums);
        break;
      default:
        throw new Error(`${where}: give ${dtype} data as a typed array, not a number array`);
    }
  } else {
    arr = data as OnnxTypedArray;
    const bpe = (arr as OnnxTypedArray).BYTES_PER_ELEMENT;
    if (bpe !== BYTES_PER[dtype]) {
      throw new Error(
        `${where}: ${arr.constructor.name} holds ${bpe}-byte elements, ${dtype} needs ${
          BYTES_PER[dtype]
        }`,
      );
    }
  }
  return new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
}

function elementCount(data: OnnxTypedArray | readonly number[]): number {
  return data.length;
}

/** A TensorProto as a plain object for protobufjs. */
function tensorProto(
  name: string,
  dtype: OnnxDType,
  data: OnnxTypedArray | readonly number[],
  shape: readonly number[],
  where: string,
): Record<string, unknown> {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new Error(`${where}: shape [${shape.join(", ")}] must hold non-negative integers`);
    }
  }
  const n = shape.reduce((a, b) => a * b, 1);
  if (elementCount(data) !== n) {
    throw new Error(
      `${where}: shape [${shape.join(", ")}] needs ${n} elements, got ${elementCount(data)}`,
    );
  }
  return {
    name,
    dims: [...shape],
    data_type: ONNX_DATA_TYPE[dtype],
    raw_data: rawBytes(dtype, data, where),
  };
}

function valueInfo(name: string, dtype: OnnxDType, shape?: OnnxShape): Record<string, unknown> {
  const tensorType: Record<string, unknown> = { elem_type: ONNX_DATA_TYPE[dtype] };
  if (shape) {
    tensorType.shape = {
      dim: shape.map((d) => (typeof d === "number" ? { dim_value: d } : { dim_param: d })),
    };
  }
  return { name, type: { tensor_type: tensorType } };
}

function attributeProto(name: string, value: OnnxAttrValue, where: string) {
  const T = ONNX_ATTRIBUTE_TYPE;
  const enc = new TextEncoder();
  let v: OnnxTypedAttr;
  if (typeof value === "number") {
    v = Number.isInteger(value) && !FLOAT_ATTRS.has(name)
      ? { kind: "int", value }
      : { kind: "float", value };
  } else if (typeof value === "string") {
    v = { kind: "string", value };
  } else if (Array.isArray(value)) {
    if (value.every((x) => typeof x === "string")) {
      v = { kind: "strings", value: value as string[] };
    } else if (value.every((x) => typeof x === "number")) {
      const nums = value as number[];
      v = nums.every(Number.isInteger) && !FLOAT_ATTRS.has(name)
        ? { kind: "ints", value: nums }
        : { kind: "floats", value: nums };
    } else throw new Error(`${where}: attribute "${name}" mixes strings and numbers`);
  } else v = value as OnnxTypedAttr;
  switch (v.kind) {
    case "float":
      return { name, type: T.FLOAT, f: v.value };
    case "int":
      if (!Number.isInteger(v.value)) {
        throw new Error(`${where}: attribute "${name}" must be an integer, got ${v.value}`);
      }
      return { name, type: T.INT, i: v.value };
    case "string":
      return { name, type: T.STRING, s: enc.encode(v.value) };
    case "floats":
      return { name, type: T.FLOATS, floats: [...v.value] };
    case "ints":
      if (!v.value.every(Number.isInteger)) {
        throw new Error(`${where}: attribute "${name}" must hold integers, got [${v.value}]`);
      }
      return { name, type: T.INTS, ints: [...v.value] };
    case "strings":
      return { name, type: T.STRINGS, strings: v.value.map((s) => enc.encode(s)) };
    case "tensor":
      return {
        name,
        type: T.TENSOR,
        t: tensorProto("", v.dtype, v.data, v.shape, `${where} attribute "${name}"`),
      };
  }
}

/** Options of {@link OnnxGraph.node}. */
export interface OnnxNodeOptions {
  /** Node name (default `<op>_<n>`). */
  name?: string;
  /** Output names (default generated); their count sets the number of outputs. */
  outputs?: string[];
  /** Operator domain (default "" = the standard ai.onnx domain). */
  domain?: string;
}

/** Options of {@link OnnxGraph.toModel} / {@link OnnxGraph.toBytes}. */
export interface OnnxModelOptions {
  /** ai.onnx opset version (default 17). */
  opset?: number;
  /** IR version (default 8, the one opset 17 belongs to). */
  irVersion?: number;
  /** `producer_name` (default "xgen-kit"). */
  producer?: string;
  /** Free-text description. */
  docString?: string;
  /** `metadata_props` key/value pairs. */
  metadata?: Record<string, string>;
}

/**
 * Builds one ONNX graph. Every name used as a node input must already be a graph input, an
 * initializer or an earlier node's output, so graphs come out topologically sorted, as ONNX
 * requires.
 *
 * @example
 * ```ts
 * import { OnnxGraph, saveOnnx } from "./writer.ts";
 *
 * const g = new OnnxGraph("block");
 * const x = g.input("x", "float32", [1, 3, 8, 8]);
 * const w = g.initializer("conv.weight", new Float32Array(4 * 3 * 3 * 3), [4, 3, 3, 3]);
 * const y = g.node("Relu", [g.node("Conv", [x, w], { pads: [1, 1, 1, 1] })]);
 * g.output(y, "float32");
 * await saveOnnx(`${await Deno.makeTempDir()}/block.onnx`, g.toBytes());
 * ```
 */
export class OnnxGraph {
  /** Graph name. */
  readonly name: string;
  private readonly inputs: Record<string, unknown>[] = [];
  private readonly outputs: Record<string, unknown>[] = [];
  private readonly initializers: Record<string, unknown>[] = [];
  private readonly nodes: Record<string, unknown>[] = [];
  private readonly defined = new Set<string>();
  private readonly nodeNames = new Set<string>();
  private counter = 0;

  constructor(name = "graph") {
    this.name = name;
  }

  private define(name: string, what: string): void {
    if (name === "") throw new Error(`OnnxGraph "${this.name}": ${what} needs a non-empty name`);
    if (this.defined.has(name)) {
      throw new Error(`OnnxGraph "${this.name}": ${what} "${name}" is already defined`);
    }
    this.defined.add(name);
  }

  /** A name not used yet, from `base`. */
  uniqueName(base: string): string {
    let name = base;
    while (this.defined.has(name) || this.nodeNames.has(name)) name = `${base}_${++this.counter}`;
    return name;
  }

  /**
   * Declare a graph input; returns its name.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { OnnxGraph } from "./writer.ts";
   *
   * const g = new OnnxGraph("vae_decoder");
   * const z = g.input("latent", "float32", ["batch", 4, "h", "w"]);
   * assert.equal(z, "latent");
   * ```
   */
  input(name: string, dtype: OnnxDType, shape: OnnxShape): string {
    this.define(name, "input");
    this.inputs.push(valueInfo(name, dtype, shape));
    return name;
  }

  /**
   * Add a constant weight tensor; returns its name. The element type comes from the typed array
   * (`Uint16Array` = float16 bits) unless `dtype` is given (required for number arrays other than
   * float32).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { OnnxGraph } from "./writer.ts";
   *
   * const g = new OnnxGraph();
   * const w = g.initializer("fc.weight", new Float32Array(32), [4, 8]);
   * const s = g.initializer("shape", [1, -1], [2], "int64");
   * assert.deepEqual([w, s], ["fc.weight", "shape"]);
   * assert.deepEqual(g.stats(), { nodes: 0, initializers: 2, parameters: 34 });
   * ```
   */
  initializer(
    name: string,
    data: OnnxTypedArray | readonly number[],
    shape: readonly number[],
    dtype?: OnnxDType,
  ): string {
    const dt = dtype ?? (Array.isArray(data) ? "float32" : dtypeOf(data as OnnxTypedArray));
    const t = tensorProto(name, dt, data, shape, `OnnxGraph "${this.name}": initializer "${name}"`);
    this.define(name, "initializer");
    this.initializers.push(t);
    return name;
  }

  /**
   * Add an auto-named constant; returns its name.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { OnnxGraph } from "./writer.ts";
   * import { openSession } from "./session.ts";
   *
   * const g = new OnnxGraph();
   * const x = g.input("x", "float32", [1, 64]);
   * const shape = g.constant([0, 32, -1], [3], "int64"); // 0 keeps the batch dimension
   * g.output(g.node("Reshape", [x, shape]), "float32");
   * const s = await openSession(g.toBytes(), { threads: 1, executionProviders: ["cpu"] });
   * const out = Object.values(await s.run({ x: { data: new Float32Array(64), shape: [1, 64] } }));
   * assert.deepEqual(out[0].dims, [1, 32, 2]);
   * await s.release();
   * ```
   */
  constant(
    data: OnnxTypedArray | readonly number[],
    shape: readonly number[],
    dtype?: OnnxDType,
  ): string {
    return this.initializer(this.uniqueName(`const_${this.counter++}`), data, shape, dtype);
  }

  /**
   * A 1-D int64 constant (shapes, axes, pads, ...); returns its name.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { OnnxGraph } from "./writer.ts";
   *
   * const g = new OnnxGraph();
   * const x = g.input("x", "float32", [1, 8]);
   * g.node("Reshape", [x, g.int64s([1, 4, -1])]);
   * assert.deepEqual(g.stats(), { nodes: 1, initializers: 1, parameters: 3 });
   * ```
   */
  int64s(values: readonly number[]): string {
    return this.constant(values, [values.length], "int64");
  }

  /**
   * Add a node with one output; returns the output's name.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { OnnxGraph } from "./writer.ts";
   *
   * const g = new OnnxGraph();
   * const x = g.input("x", "float32", [1, 4, 8, 8]);
   * const w = g.initializer("conv.weight", new Float32Array(8 * 4 * 9), [8, 4, 3, 3]);
   * const b = g.initializer("conv.bias", new Float32Array(8), [8]);
   * const h = g.node("Conv", [x, w, b], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
   * assert.equal(h, "Conv_0_out0"); // op, node index, output index
   * ```
   */
  node(
    op: string,
    inputs: readonly string[],
    attrs: Record<string, OnnxAttrValue> = {},
    opts: OnnxNodeOptions = {},
  ): string {
    if (opts.outputs && opts.outputs.length !== 1) {
      throw new Error(`OnnxGraph "${this.name}": node(${op}) makes one output; use nodeMulti`);
    }
    return this.nodeMulti(op, inputs, opts.outputs ?? 1, attrs, opts)[0];
  }

  /**
   * Add a node with several outputs (`outputs` = names or a count); returns the output names.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { OnnxGraph } from "./writer.ts";
   *
   * const g = new OnnxGraph();
   * const x = g.input("x", "float32", [1, 4]);
   * const [a, b] = g.nodeMulti("Split", [x, g.int64s([2, 2])], 2, { axis: 1 });
   * assert.deepEqual([a, b].map((n) => n.slice(-4)), ["out0", "out1"]);
   * ```
   */
  nodeMulti(
    op: string,
    inputs: readonly string[],
    outputs: number | readonly string[],
    attrs: Record<string, OnnxAttrValue> = {},
    opts: OnnxNodeOptions = {},
  ): string[] {
    const name = opts.name ?? this.uniqueName(`${op}_${this.counter++}`);
    if (this.nodeNames.has(name)) {
      throw new Error(`OnnxGraph "${this.name}": node name "${name}" is already used`);
    }
    const where = `OnnxGraph "${this.name}": node "${name}" (${op})`;
    for (const i of inputs) {
      if (i !== "" && !this.defined.has(i)) {
        throw new Error(
          `${where}: input "${i}" is not a graph input, initializer or earlier node output`,
        );
      }
    }
    const outs = typeof outputs === "number"
      ? Array.from({ length: outputs }, (_, k) => this.uniqueName(`${name}_out${k}`))
      : [...outputs];
    const attribute = Object.entries(attrs).map(([k, v]) => attributeProto(k, v, where));
    for (const o of outs) {
      if (this.defined.has(o) || outs.indexOf(o) !== outs.lastIndexOf(o)) {
        throw new Error(`${where}: output "${o}" is already defined`);
      }
    }
    this.nodeNames.add(name);
    for (const o of outs) this.define(o, `output of ${where}`);
    this.nodes.push({
      name,
      op_type: op,
      domain: opts.domain ?? "",
      input: [...inputs],
      output: outs,
      attribute,
    });
    return outs;
  }

  /**
   * Declare a graph output (an existing value); `shape` may be omitted (inferred by the runtime).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { OnnxGraph } from "./writer.ts";
   *
   * const g = new OnnxGraph("decoder");
   * const y = g.node("Tanh", [g.input("x", "float32", ["batch", 3, 64, 64])]);
   * g.output(y, "float32", ["batch", 3, 64, 64]);
   * assert.throws(() => g.output("nope", "float32"), /output "nope" is not defined/);
   * ```
   */
  output(name: string, dtype: OnnxDType, shape?: OnnxShape): void {
    if (!this.defined.has(name)) {
      throw new Error(`OnnxGraph "${this.name}": output "${name}" is not defined in the graph`);
    }
    this.outputs.push(valueInfo(name, dtype, shape));
  }

  /**
   * Number of nodes and initializer elements so far.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { OnnxGraph } from "./writer.ts";
   *
   * const g = new OnnxGraph();
   * const x = g.input("x", "float32", [1, 4]);
   * g.node("MatMul", [x, g.initializer("w", new Float32Array(12), [4, 3])]);
   * assert.deepEqual(g.stats(), { nodes: 1, initializers: 1, parameters: 12 });
   * ```
   */
  stats(): { nodes: number; initializers: number; parameters: number } {
    let parameters = 0;
    for (const t of this.initializers) {
      parameters += (t.dims as number[]).reduce((a, b) => a * b, 1);
    }
    return { nodes: this.nodes.length, initializers: this.initializers.length, parameters };
  }

  /**
   * The ModelProto as a plain object (protobufjs input).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { OnnxGraph } from "./writer.ts";
   *
   * const g = new OnnxGraph();
   * g.output(g.node("Relu", [g.input("x", "float32", [4])]), "float32");
   * const model = g.toModel({ opset: 17 });
   * assert.equal(model.producer_name, "xgen-kit");
   * ```
   */
  toModel(opts: OnnxModelOptions = {}): Record<string, unknown> {
    if (this.outputs.length === 0) {
      throw new Error(`OnnxGraph "${this.name}": declare at least one output before saving`);
    }
    return {
      ir_version: opts.irVersion ?? 8,
      producer_name: opts.producer ?? "xgen-kit",
      doc_string: opts.docString ?? "",
      opset_import: [{ domain: "", version: opts.opset ?? 17 }],
      metadata_props: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
      graph: {
        name: this.name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    };
  }

  /**
   * Serialise to ONNX bytes (what `onnxruntime` and `saveOnnx` take).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { OnnxGraph } from "./writer.ts";
   * import { openSession } from "./session.ts";
   *
   * const g = new OnnxGraph();
   * g.output(g.node("Relu", [g.input("x", "float32", [4])]), "float32");
   * const session = await openSession(g.toBytes(), { threads: 1, executionProviders: ["cpu"] });
   * const out = await session.run({ x: { data: new Float32Array([-1, 2, -3, 4]), shape: [4] } });
   * assert.deepEqual([...out.Relu_0_out0.data as Float32Array], [0, 2, 0, 4]);
   * await session.release();
   * ```
   */
  toBytes(opts: OnnxModelOptions = {}): Uint8Array {
    const { ModelProto } = onnxSchema();
    return ModelProto.encode(this.toModel(opts)).finish();
  }
}

/**
 * Write ONNX bytes to `path` atomically.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { OnnxGraph, saveOnnx } from "./writer.ts";
 *
 * const g = new OnnxGraph();
 * g.output(g.node("Relu", [g.input("x", "float32", [4])]), "float32");
 * const dir = await Deno.makeTempDir(); // e.g. "runs/x"
 * await saveOnnx(`${dir}/vae_decoder.onnx`, g.toBytes());
 * assert.deepEqual(await Deno.readFile(`${dir}/vae_decoder.onnx`), new Uint8Array(g.toBytes()));

 * await Deno.remove(dir, { recursive: true });

 * ```
 */
export async function saveOnnx(path: string, bytes: Uint8Array): Promise<void> {
  await writeFileAtomic(path, bytes);
}
