/**
 * A small SSA graph IR for a compiled training step, and {@link GraphOps}, the lib/nn
 * {@link Ops} implementation that records any layer or model written against `Ops` into it.
 * Nodes are appended in a valid execution order (every input precedes its user); each has one
 * output with a static shape and dtype, inferred when the node is added (`ir_ops.ts` defines
 * every op). Parameters become `input` nodes named by their param names.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, GraphOps } from "./graph.ts";
 * import { initResnetBlock, resnetBlock, ShapeBuilder } from "../nn/mod.ts";
 *
 * const b = new ShapeBuilder();
 * initResnetBlock(b, "mid", { inChannels: 4, outChannels: 4 });
 * const m = new GraphOps(new Graph(), b.shapes);
 * const y = resnetBlock(m, "mid", m.input("x", [1, 4, 4, 4]), { groups: 2 });
 * assert.deepEqual(y.shape, [1, 4, 4, 4]);
 * assert.equal(m.graph.opCounts().conv2d, 2);
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
} from "../nn/ops.ts";
import { type Attrs, inferShape, type IrDType } from "./ir_ops.ts";

/** One node of a {@link Graph}: an op applied to earlier nodes, with its static output type. */
export interface Node {
  /** Index in `Graph.nodes`. */
  readonly id: number;
  readonly op: string;
  /** Ids of the input nodes, in the op's order. */
  readonly inputs: readonly number[];
  readonly attrs: Readonly<Attrs>;
  readonly shape: readonly number[];
  readonly dtype: IrDType;
}

/** What a graph input is: a trained weight or a per-step data tensor. */
export type InputKind = "param" | "data";

/**
 * An SSA graph: nodes in execution order, named inputs and named outputs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph } from "./graph.ts";
 *
 * const g = new Graph();
 * const x = g.input("x", [2, 3]);
 * const y = g.add("mulScalar", [g.add("silu", [x])], { s: 2 });
 * g.output("y", y);
 * assert.deepEqual(g.opCounts(), { input: 1, silu: 1, mulScalar: 1 });
 * ```
 */
export class Graph {
  readonly nodes: Node[] = [];
  /** Input nodes by name. */
  readonly inputs: Map<string, Node> = new Map();
  /** Output nodes by name. */
  readonly outputs: Map<string, Node> = new Map();

  /** Append `op` on `inputs`; its shape is inferred (errors name the op and shapes). */
  add(op: string, inputs: readonly Node[], attrs: Attrs = {}): Node {
    for (const i of inputs) {
      if (this.nodes[i.id] !== i) throw new Error(`${op}: input node ${i.id} is not of this graph`);
    }
    const t = inferShape(op, inputs, attrs);
    return this.push(op, inputs.map((i) => i.id), attrs, t.shape, t.dtype);
  }

  /**
   * Append a node of an op `inferShape` does not know, with its output `shape` given: what a
   * fusion pass emits (`normBackward`, `sumRows2`, `attentionGradAll`, and `extra` for each further
   * output of a multi-output kernel: input the kernel node, attr `index`).
   */
  addFused(op: string, inputs: readonly Node[], attrs: Attrs, shape: readonly number[]): Node {
    for (const i of inputs) {
      if (this.nodes[i.id] !== i) throw new Error(`${op}: input node ${i.id} is not of this graph`);
    }
    checkShape(op, shape);
    return this.push(op, inputs.map((i) => i.id), attrs, shape, "float32");
  }

  /** A named input (`kind` "param" for weights, "data" otherwise); names are unique. */
  input(
    name: string,
    shape: readonly number[],
    dtype: IrDType = "float32",
    kind: InputKind = "data",
  ): Node {
    if (this.inputs.has(name)) throw new Error(`Graph.input: "${name}" declared twice`);
    checkShape(`input "${name}"`, shape);
    const n = this.push("input", [], { name, kind }, shape, dtype);
    this.inputs.set(name, n);
    return n;
  }

  /** A constant tensor (float32 or int32 values). */
  constant(values: Float32Array | Int32Array, shape: readonly number[]): Node {
    checkShape("constant", shape);
    if (values.length !== shape.reduce((a, b) => a * b, 1)) {
      throw new Error(`constant: ${values.length} values for shape [${shape.join(", ")}]`);
    }
    const dtype = values instanceof Int32Array ? "int32" : "float32";
    return this.push("constant", [], { values }, shape, dtype);
  }

  /** Name `node` as graph output `name`. */
  output(name: string, node: Node): void {
    if (this.outputs.has(name)) throw new Error(`Graph.output: "${name}" declared twice`);
    this.outputs.set(name, node);
  }

  /**
   * Number of nodes per op, over `nodes[from..to)` (default: all), in first-seen order.
   */
  opCounts(from = 0, to = this.nodes.length): Record<string, number> {
    const out: Record<string, number> = {};
    for (const n of this.nodes.slice(from, to)) out[n.op] = (out[n.op] ?? 0) + 1;
    return out;
  }

  private push(
    op: string,
    inputs: number[],
    attrs: Attrs,
    shape: readonly number[],
    dtype: IrDType,
  ): Node {
    const n: Node = { id: this.nodes.length, op, inputs, attrs, shape: [...shape], dtype };
    this.nodes.push(n);
    return n;
  }
}

function checkShape(what: string, shape: readonly Dim[]): asserts shape is number[] {
  if (shape.some((d) => typeof d !== "number" || !Number.isInteger(d) || d < 0)) {
    const s = shape.map((d) => typeof d === "number" ? d : d.symbolic).join(", ");
    throw new Error(`${what}: shape [${s}] must be static non-negative integers`);
  }
}

/**
 * {@link Ops} that append nodes to a {@link Graph} instead of computing. Weights are declared by
 * shape (`ParamShapes`, e.g. `unetParamShapes(cfg)`) and become `param` inputs when first read.
 * Shapes are static: a symbolic dimension is an error.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, GraphOps } from "./graph.ts";
 * import { linear } from "../nn/mod.ts";
 *
 * const m = new GraphOps(new Graph(), { "fc.weight": [8, 4], "fc.bias": [4] });
 * const y = linear(m, "fc", m.input("x", [2, 3, 8]));
 * assert.deepEqual(y.shape, [2, 3, 4]);
 * assert.deepEqual([...m.graph.inputs.keys()], ["x", "fc.weight", "fc.bias"]);
 * ```
 */
export class GraphOps implements Ops<Node> {
  private readonly params = new Map<string, Node>();

  constructor(
    readonly graph: Graph,
    private readonly paramShapes: Readonly<Record<string, readonly number[]>>,
  ) {}

  /** Declare a data input (`x`, `t`, `context`, ...). */
  input(name: string, shape: readonly number[], dtype: IrDType = "float32"): Node {
    return this.graph.input(name, shape, dtype, "data");
  }

  param(name: string): Node {
    let p = this.params.get(name);
    if (!p) {
      const shape = this.paramShapes[name];
      if (!shape) throw new Error(`GraphOps.param: no weight "${name}"`);
      p = this.graph.input(name, shape, "float32", "param");
      this.params.set(name, p);
    }
    return p;
  }
  hasParam(name: string): boolean {
    return this.paramShapes[name] !== undefined;
  }
  shape(x: Node): readonly Dim[] {
    return x.shape;
  }
  dtype(x: Node): OpsDType {
    return x.dtype;
  }
  scope<R>(fn: () => R): R {
    return fn();
  }

  constant(values: Float32Array, shape: number[]): Node {
    return this.graph.constant(values, shape);
  }
  positions(n: number): Node {
    return this.graph.constant(Int32Array.from({ length: n }, (_, i) => i), [n]);
  }

  add(a: Node, b: Node | number): Node {
    return typeof b === "number"
      ? this.graph.add("addScalar", [a], { s: b })
      : this.graph.add("add", [a, b]);
  }
  mul(a: Node, b: Node | number): Node {
    return typeof b === "number"
      ? this.graph.add("mulScalar", [a], { s: b })
      : this.graph.add("mul", [a, b]);
  }
  silu(x: Node): Node {
    return this.graph.add("silu", [x]);
  }
  gelu(x: Node, kind: GeluKind = "tanh"): Node {
    return this.graph.add("gelu", [x], { kind });
  }
  sin(x: Node): Node {
    return this.graph.add("sin", [x]);
  }
  cos(x: Node): Node {
    return this.graph.add("cos", [x]);
  }
  clip(x: Node, min: number, max: number): Node {
    return this.graph.add("clip", [x], { min, max });
  }
  cast(x: Node, dtype: "float32"): Node {
    // A float32 value is already what the cast would give: no node, so no gradient step either.
    return x.dtype === dtype ? x : this.graph.add("cast", [x], { dtype });
  }
  equal(x: Node, value: number): Node {
    return this.graph.add("equal", [x], { value });
  }
  argMax(x: Node, axis: number): Node {
    return this.graph.add("argMax", [x], { axis });
  }
  oneHot(indices: Node, depth: number): Node {
    return this.graph.add("oneHot", [indices], { depth });
  }

  reshape(x: Node, shape: readonly Dim[]): Node {
    checkShape("reshape", shape.map((d) => d === -1 ? 0 : d));
    const dims = shape as number[];
    const known = dims.reduce((a, d) => d === -1 ? a : a * d, 1);
    const total = x.shape.reduce((a, b) => a * b, 1);
    const resolved = dims.map((d) => d === -1 ? (known === 0 ? 0 : total / known) : d);
    if (dims.filter((d) => d === -1).length > 1 || resolved.some((d) => !Number.isInteger(d))) {
      throw new Error(`reshape: cannot view [${x.shape.join(", ")}] as [${dims.join(", ")}]`);
    }
    return this.graph.add("reshape", [x], { shape: resolved });
  }
  concat(xs: Node[], axis: number): Node {
    if (xs.length === 1) return xs[0];
    return this.graph.add("concat", xs, { axis: axis < 0 ? axis + xs[0].shape.length : axis });
  }
  split(x: Node, parts: number | number[], axis: number): Node[] {
    const a = axis < 0 ? axis + x.shape.length : axis;
    const sizes = typeof parts === "number"
      ? Array.from({ length: parts }, () => x.shape[a] / parts)
      : parts;
    if (
      sizes.some((s) => !Number.isInteger(s)) || sizes.reduce((p, q) => p + q, 0) !== x.shape[a]
    ) {
      throw new Error(`split: [${x.shape.join(", ")}] axis ${a} into ${JSON.stringify(parts)}`);
    }
    let at = 0;
    return sizes.map((s) => {
      const begin = x.shape.map((_, i) => i === a ? at : 0);
      at += s;
      return this.slice(x, begin, x.shape.map((d, i) => i === a ? s : d));
    });
  }
  slice(x: Node, begin: number[], size: number[]): Node {
    // tfjs semantics: a size of -1 takes the rest of the axis.
    const sz = size.map((s, i) => s === -1 ? x.shape[i] - begin[i] : s);
    return this.graph.add("slice", [x], { begin: [...begin], size: sz });
  }
  pad(x: Node, paddings: [number, number][]): Node {
    return this.graph.add("pad", [x], {
      paddings: paddings.map(([a, b]): [number, number] => [a, b]),
    });
  }
  mean(x: Node, axes: number[]): Node {
    return this.graph.add("mean", [x], { axes: normAxes(axes, x.shape.length) });
  }
  sum(x: Node, axis: number): Node {
    return this.graph.add("sum", [x], { axes: normAxes([axis], x.shape.length) });
  }

  linear(x: Node, w: Node, b?: Node): Node {
    return this.graph.add("linear", b ? [x, w, b] : [x, w]);
  }
  conv2d(x: Node, w: Node, b: Node | undefined, o: ConvOpOptions): Node {
    return this.graph.add("conv2d", b ? [x, w, b] : [x, w], {
      stride: o.stride,
      pad: [o.pad[0], o.pad[1]],
    });
  }
  upsample2x(x: Node): Node {
    return this.graph.add("upsample2x", [x]);
  }
  groupNorm(x: Node, gamma: Node, beta: Node, o: GroupNormOpOptions): Node {
    return this.graph.add("groupNorm", [x, gamma, beta], {
      groups: o.groups,
      eps: o.eps,
      silu: o.silu,
    });
  }
  layerNorm(x: Node, gamma: Node, beta: Node, o: { eps: number }): Node {
    return this.graph.add("layerNorm", [x, gamma, beta], { eps: o.eps });
  }
  standardize(x: Node, o: { eps: number }): Node {
    return this.graph.add("layerNorm", [x], { eps: o.eps });
  }
  attention(q: Node, k: Node, v: Node, o: AttentionOpOptions<Node>): Node {
    const ins = o.keyMask ? [q, k, v, o.keyMask] : [q, k, v];
    return this.graph.add("attention", ins, { heads: o.heads, causal: !!o.causal });
  }
  embedding(table: Node, ids: Node): Node {
    return this.graph.add("embedding", [table, ids]);
  }
}

function normAxes(axes: number[], rank: number): number[] {
  return [...new Set(axes.map((a) => a < 0 ? a + rank : a))].sort((a, b) => a - b);
}
