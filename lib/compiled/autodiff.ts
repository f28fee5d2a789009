/**
 * Reverse-mode differentiation of a {@link Graph}: per-op vector-Jacobian products appended to
 * the same graph, in the same IR (the backward primitives are defined in `ir_ops.ts`). Nodes
 * used more than once get their gradients summed with `add`. Ops without a gradient (`equal`,
 * `argMax`, `oneHot`, int inputs) stop it; a float op without a VJP rule on the path from a
 * differentiated input to the loss is an error naming the op.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph } from "./graph.ts";
 * import { gradients } from "./autodiff.ts";
 *
 * const g = new Graph();
 * const x = g.input("x", [3]);
 * const loss = g.add("sum", [g.add("mul", [x, x])], { axes: [0] }); // sum x^2
 * const [dx] = gradients(g, loss, [x]);
 * assert.deepEqual(dx.shape, [3]); // 2x, as mul(dy, x) + mul(dy, x)
 * assert.equal(g.nodes[dx.id].op, "add");
 * ```
 * @module
 */
import type { Graph, Node } from "./graph.ts";
import type { Attrs } from "./ir_ops.ts";

/** Gradient of each input of a node (undefined: none, or not needed). */
type Vjp = (g: Graph, n: Node, ins: Node[], dy: Node, need: boolean[]) => (Node | undefined)[];

/** Ops whose output carries no gradient to their inputs. */
const NO_GRAD = new Set(["input", "constant", "equal", "argMax", "oneHot"]);

/** Sum `dy` down to `shape` (the inverse of NumPy broadcasting). */
function unbroadcast(g: Graph, dy: Node, shape: readonly number[]): Node {
  if (dy.shape.length === shape.length && dy.shape.every((d, i) => d === shape[i])) return dy;
  const lead = dy.shape.length - shape.length;
  const axes: number[] = [];
  dy.shape.forEach((d, i) => {
    if (i < lead || (shape[i - lead] === 1 && d !== 1)) axes.push(i);
  });
  const summed = axes.length ? g.add("sum", [dy], { axes }) : dy;
  return g.add("reshape", [summed], { shape: [...shape] });
}

/** Broadcast a reduction's gradient back over the reduced `axes` of `shape`. */
function unreduce(g: Graph, dy: Node, shape: readonly number[], axes: readonly number[]): Node {
  const kept = shape.map((d, i) => axes.includes(i) ? 1 : d);
  return g.add("broadcastTo", [g.add("reshape", [dy], { shape: kept })], { shape: [...shape] });
}

/** Sum over every axis but the last (a bias or norm-affine gradient). */
function sumToLast(g: Graph, x: Node): Node {
  return g.add("sum", [x], { axes: x.shape.slice(0, -1).map((_, i) => i) });
}

/** The VJP rule of each differentiable op. */
const VJPS: Record<string, Vjp> = {
  add: (g, _n, [a, b], dy) => [unbroadcast(g, dy, a.shape), unbroadcast(g, dy, b.shape)],
  mul: (g, _n, [a, b], dy, need) => [
    need[0] ? unbroadcast(g, g.add("mul", [dy, b]), a.shape) : undefined,
    need[1] ? unbroadcast(g, g.add("mul", [dy, a]), b.shape) : undefined,
  ],
  addScalar: (_g, _n, _ins, dy) => [dy],
  mulScalar: (g, n, _ins, dy) => [g.add("mulScalar", [dy], { s: n.attrs.s })],
  silu: (g, _n, [x], dy) => [g.add("siluGrad", [x, dy])],
  gelu: (g, n, [x], dy) => [g.add("geluGrad", [x, dy], { kind: n.attrs.kind })],
  sin: (g, _n, [x], dy) => [g.add("mul", [dy, g.add("cos", [x])])],
  cos: (g, _n, [x], dy) => [g.add("mulScalar", [g.add("mul", [dy, g.add("sin", [x])])], { s: -1 })],
  clip: (g, n, [x], dy) => [g.add("clipGrad", [x, dy], { min: n.attrs.min, max: n.attrs.max })],
  cast: (_g, _n, [x], dy) => [x.dtype === "float32" ? dy : undefined],
  reshape: (g, _n, [x], dy) => [g.add("reshape", [dy], { shape: [...x.shape] })],
  concat: (g, n, ins, dy, need) => {
    const axis = n.attrs.axis as number;
    let at = 0;
    return ins.map((x, i) => {
      const begin = x.shape.map((_, j) => j === axis ? at : 0);
      at += x.shape[axis];
      return need[i] ? g.add("slice", [dy], { begin, size: [...x.shape] }) : undefined;
    });
  },
  slice: (g, n, [x], dy) => {
    const begin = n.attrs.begin as number[], size = n.attrs.size as number[];
    const paddings = x.shape.map((d, i): [number, number] => [begin[i], d - begin[i] - size[i]]);
    return [g.add("pad", [dy], { paddings })];
  },
  pad: (g, n, [x], dy) => {
    const p = n.attrs.paddings as [number, number][];
    return [g.add("slice", [dy], { begin: p.map(([b]) => b), size: [...x.shape] })];
  },
  sum: (g, n, [x], dy) => [unreduce(g, dy, x.shape, n.attrs.axes as number[])],
  mean: (g, n, [x], dy) => {
    const axes = n.attrs.axes as number[];
    const count = axes.reduce((a, i) => a * x.shape[i], 1);
    return [g.add("mulScalar", [unreduce(g, dy, x.shape, axes)], { s: 1 / count })];
  },
  broadcastTo: (g, _n, [x], dy) => [unbroadcast(g, dy, x.shape)],
  linear: (g, _n, [x, w, b], dy, need) => {
    const [inF, outF] = w.shape;
    const dy2 = g.add("reshape", [dy], {
      shape: [dy.shape.reduce((a, d) => a * d, 1) / outF, outF],
    });
    const x2 = g.add("reshape", [x], { shape: [dy2.shape[0], inF] });
    return [
      need[0]
        ? g.add("reshape", [g.add("matMul", [dy2, w], { transposeB: true })], {
          shape: [...x.shape],
        })
        : undefined,
      need[1] ? g.add("matMul", [x2, dy2], { transposeA: true }) : undefined,
      b && need[2] ? g.add("sum", [dy2], { axes: [0] }) : undefined,
    ];
  },
  matMul: (g, n, [a, b], dy, need) => {
    const ta = !!n.attrs.transposeA, tb = !!n.attrs.transposeB;
    return [
      need[0]
        ? (ta
          ? g.add("matMul", [b, dy], { transposeA: tb, transposeB: true })
          : g.add("matMul", [dy, b], { transposeB: !tb }))
        : undefined,
      need[1]
        ? (tb
          ? g.add("matMul", [dy, a], { transposeA: true, transposeB: ta })
          : g.add("matMul", [a, dy], { transposeA: !ta }))
        : undefined,
    ];
  },
  conv2d: (g, n, [x, w, b], dy, need) => {
    const conv: Attrs = { stride: n.attrs.stride, pad: n.attrs.pad };
    return [
      need[0]
        ? g.add("conv2dBackpropInput", [dy, w], { ...conv, inputShape: [...x.shape] })
        : undefined,
      need[1]
        ? g.add("conv2dBackpropFilter", [x, dy], { ...conv, filterShape: [...w.shape] })
        : undefined,
      b && need[2] ? g.add("sum", [dy], { axes: [0, 1, 2] }) : undefined,
    ];
  },
  upsample2x: (g, _n, _ins, dy) => [g.add("sumPool2x", [dy])],
  sumPool2x: (g, _n, _ins, dy) => [g.add("upsample2x", [dy])],
  groupNorm: (g, n, ins, dy, need) =>
    normVjp(g, n, ins, dy, need, { groups: n.attrs.groups, eps: n.attrs.eps }),
  layerNorm: (g, n, ins, dy, need) => normVjp(g, n, ins, dy, need, { eps: n.attrs.eps }),
  attention: (g, n, ins, dy, need) => {
    const [q, k, v, mask] = ins;
    const attrs = { heads: n.attrs.heads, causal: n.attrs.causal };
    const args = mask ? [q, k, v, dy, mask] : [q, k, v, dy];
    return (["q", "k", "v"] as const).map((wrt, i) =>
      need[i] ? g.add("attentionGrad", args, { ...attrs, wrt }) : undefined
    );
  },
  embedding: (g, _n, [table, ids], dy) => [
    g.add("embeddingGrad", [ids, dy], { vocab: table.shape[0] }),
    undefined,
  ],
};

/**
 * GroupNorm / LayerNorm: with SiLU, the pre-activation is recomputed (a later pass can share it
 * with the forward); the affine gradients need `xhat`, the norm without affine.
 */
function normVjp(g: Graph, n: Node, ins: Node[], dy: Node, need: boolean[], attrs: Attrs) {
  const [x, gamma, beta] = ins;
  const op = n.op, grad = op === "groupNorm" ? "groupNormGrad" : "layerNormGrad";
  const pre = n.attrs.silu ? g.add(op, ins, { ...attrs, silu: false }) : undefined;
  const d = pre ? g.add("siluGrad", [pre, dy]) : dy;
  const out: (Node | undefined)[] = [
    need[0] ? g.add(grad, gamma ? [d, x, gamma] : [d, x], attrs) : undefined,
  ];
  if (gamma) {
    const plain = op === "groupNorm" ? { ...attrs, silu: false } : attrs;
    out.push(need[1] ? sumToLast(g, g.add("mul", [d, g.add(op, [x], plain)])) : undefined);
    out.push(beta && need[2] ? sumToLast(g, d) : undefined);
  }
  return out;
}

/** Ops with a VJP rule (the differentiable part of the op set). */
export const DIFFERENTIABLE_OPS: readonly string[] = Object.keys(VJPS);

/**
 * Append to `g` the gradients of scalar `loss` with respect to each of `wrt` (in order);
 * an input that `loss` does not depend on gets a zero `constant`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph } from "./graph.ts";
 * import { gradients } from "./autodiff.ts";
 *
 * const g = new Graph();
 * const w = g.input("w", [2, 3], "float32", "param"), x = g.input("x", [4, 2]);
 * const loss = g.add("mean", [g.add("linear", [x, w])], { axes: [0, 1] });
 * const [dw] = gradients(g, loss, [w]);
 * assert.deepEqual(dw.shape, [2, 3]);
 * assert.equal(g.nodes[dw.id].op, "matMul"); // x^T @ dy
 * ```
 */
export function gradients(g: Graph, loss: Node, wrt: readonly Node[]): Node[] {
  if (loss.shape.length !== 0) {
    throw new Error(`gradients: loss must be a scalar, got shape [${loss.shape.join(", ")}]`);
  }
  // Nodes on a path from a wanted input to the loss: only these get gradients.
  const end = loss.id + 1;
  const fromWrt = new Uint8Array(end);
  for (const w of wrt) fromWrt[w.id] = 1;
  for (let i = 0; i < end; i++) {
    const n = g.nodes[i];
    if (!fromWrt[i] && !NO_GRAD.has(n.op) && n.inputs.some((j) => fromWrt[j])) fromWrt[i] = 1;
  }
  const toLoss = new Uint8Array(end);
  toLoss[loss.id] = 1;
  for (let i = loss.id; i >= 0; i--) {
    if (toLoss[i]) { for (const j of g.nodes[i].inputs) toLoss[j] = 1; }
  }
  const live = (id: number) => fromWrt[id] === 1 && toLoss[id] === 1;

  const grads = new Map<number, Node>();
  grads.set(loss.id, g.constant(new Float32Array([1]), []));
  for (let i = loss.id; i >= 0; i--) {
    const n = g.nodes[i], dy = grads.get(i);
    if (!dy || !live(i) || n.op === "input") continue;
    const rule = VJPS[n.op];
    if (!rule) throw new Error(`gradients: no VJP rule for op "${n.op}" (node ${n.id})`);
    const ins = n.inputs.map((j) => g.nodes[j]);
    const need = ins.map((x) => live(x.id) && x.dtype === "float32");
    const dxs = rule(g, n, ins, dy, need);
    ins.forEach((x, k) => {
      const dx = dxs[k];
      if (!dx || !need[k]) return;
      const prev = grads.get(x.id);
      grads.set(x.id, prev ? g.add("add", [prev, dx]) : dx);
    });
  }
  return wrt.map((w) =>
    grads.get(w.id) ??
      g.constant(new Float32Array(w.shape.reduce((a, b) => a * b, 1)), [...w.shape])
  );
}
