/**
 * Read an ONNX file's structure and weights into plain objects: opsets, graph inputs/outputs,
 * nodes with decoded attributes, and initializers as typed arrays. Used to check written models
 * and to pull weights out of pretrained ONNX exports.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readOnnx } from "./reader.ts";
 *
 * const path = "tests/fixtures/tiny_sd/fp32_scalar_t/vae_decoder/model.onnx";
 * const model = readOnnx(await Deno.readFile(path), path);
 * assert.deepEqual(model.graph.inputs.map((i) => i.name), ["latent_sample"]);
 * assert.ok(model.graph.initializers.length > 0);
 * ```
 * @module
 */
import { ONNX_ATTRIBUTE_TYPE, ONNX_DATA_TYPE, type OnnxDType, onnxSchema } from "./schema.ts";
import type { OnnxShape, OnnxTypedArray } from "./writer.ts";

/** A graph input or output. */
export interface OnnxValueView {
  /** Name. */
  name: string;
  /** Element type, or "unknown". */
  dtype: OnnxDType | "unknown";
  /** Shape, or null when the file gives none. */
  shape: OnnxShape | null;
}

/** A decoded initializer. */
export interface OnnxTensorView {
  /** Name. */
  name: string;
  /** Element type. */
  dtype: OnnxDType;
  /** Shape. */
  shape: number[];
  /** Values (a copy, aligned). */
  data: OnnxTypedArray;
}

/** A decoded node. */
export interface OnnxNodeView {
  /** Node name. */
  name: string;
  /** Operator. */
  op: string;
  /** Domain ("" = ai.onnx). */
  domain: string;
  /** Input value names ("" = omitted optional input). */
  inputs: string[];
  /** Output value names. */
  outputs: string[];
  /** Attributes: numbers, strings, arrays, or tensors for TENSOR attributes. */
  attrs: Record<string, number | string | number[] | string[] | OnnxTensorView>;
}

/** A decoded model. */
export interface OnnxModelView {
  /** IR version. */
  irVersion: number;
  /** Opsets by domain ("" = ai.onnx). */
  opsets: Record<string, number>;
  /** Producer name. */
  producer: string;
  /** `metadata_props`. */
  metadata: Record<string, string>;
  /** The main graph. */
  graph: {
    name: string;
    inputs: OnnxValueView[];
    outputs: OnnxValueView[];
    nodes: OnnxNodeView[];
    initializers: OnnxTensorView[];
  };
}

const DTYPE_BY_CODE = new Map<number, OnnxDType>(
  Object.entries(ONNX_DATA_TYPE).map(([k, v]) => [v, k as OnnxDType]),
);

const ARRAY_OF: Partial<Record<OnnxDType, (b: ArrayBuffer) => OnnxTypedArray>> = {
  float32: (b) => new Float32Array(b),
  float64: (b) => new Float64Array(b),
  int32: (b) => new Int32Array(b),
  int64: (b) => new BigInt64Array(b),
  uint64: (b) => new BigUint64Array(b),
  uint32: (b) => new Uint32Array(b),
  int16: (b) => new Int16Array(b),
  uint16: (b) => new Uint16Array(b),
  float16: (b) => new Uint16Array(b),
  int8: (b) => new Int8Array(b),
  uint8: (b) => new Uint8Array(b),
  bool: (b) => new Uint8Array(b),
};

// deno-lint-ignore no-explicit-any
type Obj = any;

function tensorView(t: Obj, where: string): OnnxTensorView {
  const dtype = DTYPE_BY_CODE.get(t.data_type ?? 0);
  const name = t.name ?? "";
  if (!dtype || dtype === "string") {
    throw new Error(`${where}: tensor "${name}" has unsupported data_type ${t.data_type}`);
  }
  if (t.data_location === 1 || (t.external_data ?? []).length > 0) {
    throw new Error(`${where}: tensor "${name}" keeps its data in an external file (unsupported)`);
  }
  const shape = (t.dims ?? []).map(Number);
  const n = shape.reduce((a: number, b: number) => a * b, 1);
  let data: OnnxTypedArray;
  if (t.raw_data && t.raw_data.length > 0) {
    data = ARRAY_OF[dtype]!(new Uint8Array(t.raw_data).buffer); // copy: raw_data may be unaligned
  } else if (dtype === "float32") data = Float32Array.from(t.float_data ?? []);
  else if (dtype === "float64") data = Float64Array.from(t.double_data ?? []);
  else if (dtype === "int64") data = BigInt64Array.from((t.int64_data ?? []).map(BigInt));
  else if (dtype === "uint64" || dtype === "uint32") {
    const vals = (t.uint64_data ?? []).map(Number);
    data = dtype === "uint32" ? Uint32Array.from(vals) : BigUint64Array.from(vals.map(BigInt));
  } else {
    // int32_data carries int32, int16, int8, uint16, uint8, bool and float16 bits.
    const vals: number[] = t.int32_data ?? [];
    data = ARRAY_OF[dtype]!(new ArrayBuffer(vals.length * bytesOf(dtype)));
    (data as Int32Array).set(vals);
  }
  if (data.length !== n) {
    throw new Error(
      `${where}: tensor "${name}" has shape [${
        shape.join(", ")
      }] (${n} elements) but ${data.length} values`,
    );
  }
  return { name, dtype, shape, data };
}

function bytesOf(dtype: OnnxDType): number {
  return ARRAY_OF[dtype]!(new ArrayBuffer(8)).BYTES_PER_ELEMENT;
}

function valueView(v: Obj): OnnxValueView {
  const tt = v.type?.tensor_type;
  const dtype = tt ? DTYPE_BY_CODE.get(tt.elem_type) ?? "unknown" : "unknown";
  const shape = tt?.shape
    ? (tt.shape.dim ?? []).map((d: Obj) =>
      d.dim_value !== undefined && d.dim_value !== null ? Number(d.dim_value) : (d.dim_param ?? "?")
    )
    : null;
  return { name: v.name ?? "", dtype, shape };
}

function attrValue(a: Obj, where: string): OnnxNodeView["attrs"][string] {
  const T = ONNX_ATTRIBUTE_TYPE;
  const dec = new TextDecoder();
  switch (a.type) {
    case T.FLOAT:
      return a.f ?? 0;
    case T.INT:
      return Number(a.i ?? 0);
    case T.STRING:
      return dec.decode(a.s ?? new Uint8Array());
    case T.FLOATS:
      return [...(a.floats ?? [])];
    case T.INTS:
      return (a.ints ?? []).map(Number);
    case T.STRINGS:
      return (a.strings ?? []).map((s: Uint8Array) => dec.decode(s));
    case T.TENSOR:
      return tensorView(a.t, where);
    default:
      throw new Error(`${where}: attribute "${a.name}" has unsupported type ${a.type}`);
  }
}

/**
 * Decode ONNX bytes; `source` names the file in errors.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readOnnx } from "./reader.ts";
 * import { OnnxGraph } from "./writer.ts";
 *
 * const g = new OnnxGraph();
 * const x = g.input("x", "float32", ["batch", 4]);
 * const w = g.initializer("fc.weight", new Float32Array(8), [4, 2]);
 * g.output(g.node("Sigmoid", [g.node("Gemm", [x, w])]), "float32");
 * const view = readOnnx(g.toBytes());
 * assert.deepEqual(view.graph.nodes.map((n) => n.op), ["Gemm", "Sigmoid"]);

 * ```
 */
export function readOnnx(bytes: Uint8Array, source = "model.onnx"): OnnxModelView {
  const { ModelProto } = onnxSchema();
  let m: Obj;
  try {
    m = ModelProto.toObject(ModelProto.decode(bytes), { longs: Number, defaults: false });
  } catch (e) {
    throw new Error(`${source}: not a valid ONNX protobuf (${(e as Error).message})`);
  }
  const g = m.graph;
  if (!g) throw new Error(`${source}: the model has no graph`);
  const opsets: Record<string, number> = {};
  for (const o of m.opset_import ?? []) opsets[o.domain ?? ""] = Number(o.version ?? 0);
  const metadata: Record<string, string> = {};
  for (const kv of m.metadata_props ?? []) metadata[kv.key ?? ""] = kv.value ?? "";
  return {
    irVersion: Number(m.ir_version ?? 0),
    opsets,
    producer: m.producer_name ?? "",
    metadata,
    graph: {
      name: g.name ?? "",
      inputs: (g.input ?? []).map(valueView),
      outputs: (g.output ?? []).map(valueView),
      initializers: (g.initializer ?? []).map((t: Obj) => tensorView(t, source)),
      nodes: (g.node ?? []).map((n: Obj) => {
        const where = `${source}: node "${n.name ?? ""}" (${n.op_type})`;
        return {
          name: n.name ?? "",
          op: n.op_type ?? "",
          domain: n.domain ?? "",
          inputs: n.input ?? [],
          outputs: n.output ?? [],
          attrs: Object.fromEntries(
            (n.attribute ?? []).map((a: Obj) => [a.name, attrValue(a, where)]),
          ),
        };
      }),
    },
  };
}
