/**
 * A fusion pass over a compiled-step {@link Graph}: the same inputs and outputs, fewer kernels.
 * It rewrites three patterns into multi-output kernels (a kernel's further outputs are `extra`
 * nodes, see {@link Graph.addFused}) and removes duplicates:
 *
 * - **norm backward**: autodiff's GroupNorm / LayerNorm rule with affine weights emits the
 *   recomputed pre-activation (with SiLU), `siluGrad`, the norm gradient, the recomputed `xhat`,
 *   `d * xhat` and two column sums; they become `normBackward` (writes `dx`, `d xhat` and, with
 *   SiLU, `d`) and `sumRows2` (both column sums): 7 kernels to 2 (5 to 2 without SiLU);
 * - **attention backward**: the three `attentionGrad` siblings (wrt q, k, v) of one attention
 *   without a key mask become one `attentionGradAll` (one scratch pass, three outputs);
 * - **common subexpressions**: nodes with the same op, inputs and attributes are computed once.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UNET_PRESETS } from "../models/unet.ts";
 * import { fuseGraph } from "./fuse.ts";
 * import { NO_KERNEL_OPS } from "./wgsl_lower.ts";
 * import { unetTrainingGraph } from "./training_graph.ts";
 *
 * const s = unetTrainingGraph({ cfg: UNET_PRESETS.tiny, batch: 1, height: 8, width: 8, tokens: 4 });
 * const kernels = (g: typeof s.graph) => g.nodes.filter((n) => !NO_KERNEL_OPS.has(n.op)).length;
 * const fused = fuseGraph(s.graph);
 * assert.ok(kernels(fused) < kernels(s.graph));
 * assert.deepEqual([...fused.outputs.keys()], [...s.graph.outputs.keys()]);
 * ```
 * @module
 */
import { Graph, type Node } from "./graph.ts";

/** What the rewrite does at an old node. */
type Plan =
  | { kind: "normBackward"; dy: number; x: number; gamma: number; beta?: number; attrs: Attrs0 }
  | { kind: "sumRows2"; b: number; s1: number; s2?: number; from: number }
  | { kind: "attentionAll"; q: number; k: number; v: number };

type Attrs0 = { groups: number; eps: number; silu: boolean };

const allButLast = (n: Node, rank: number) => {
  const axes = n.attrs.axes as number[] | undefined;
  return n.op === "sum" && !!axes && axes.length === rank - 1 && axes.every((a, i) => a === i);
};

/**
 * The fused graph of `g` (see the module doc): inputs and outputs keep their names and shapes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph } from "./graph.ts";
 * import { fuseGraph } from "./fuse.ts";
 *
 * const g = new Graph();
 * const x = g.input("x", [3]);
 * g.output("a", g.add("silu", [x]));
 * g.output("b", g.add("silu", [x])); // the same value: computed once
 * assert.equal(fuseGraph(g).opCounts().silu, 1);
 * ```
 */
export function fuseGraph(g: Graph): Graph {
  const nodes = g.nodes;
  const users: number[][] = nodes.map(() => []);
  for (const n of nodes) for (const i of n.inputs) users[i].push(n.id);
  const outputIds = new Set([...g.outputs.values()].map((n) => n.id));
  const removed = new Uint8Array(nodes.length);
  const plans = new Map<number, Plan>();
  const onlyUsers = (id: number, allowed: number[]) =>
    !outputIds.has(id) && users[id].every((u) => allowed.includes(u));

  for (const G of nodes) {
    if ((G.op !== "groupNormGrad" && G.op !== "layerNormGrad") || G.inputs.length !== 3) continue;
    const normOp = G.op === "groupNormGrad" ? "groupNorm" : "layerNorm";
    const [dId, x, gamma] = G.inputs;
    const rank = nodes[x].shape.length;
    const groups = normOp === "groupNorm" ? G.attrs.groups as number : 0;
    const sameNorm = (n: Node) =>
      n.op === normOp && n.attrs.eps === G.attrs.eps && !n.attrs.silu &&
      (normOp === "layerNorm" || n.attrs.groups === groups) && n.inputs[0] === x;
    const xh = users[x].map((u) => nodes[u]).find((n) => sameNorm(n) && n.inputs.length === 1);
    if (!xh || users[xh.id].length !== 1 || outputIds.has(xh.id)) continue;
    const M = nodes[users[xh.id][0]];
    if (M.op !== "mul" || M.inputs[0] !== dId || M.inputs[1] !== xh.id) continue;
    if (users[M.id].length !== 1 || outputIds.has(M.id)) continue;
    const S1 = nodes[users[M.id][0]];
    if (!allButLast(S1, rank)) continue;
    const S2 = users[dId].map((u) => nodes[u]).find((n) => allButLast(n, rank));
    const d = nodes[dId];
    const pre = d.op === "siluGrad" ? nodes[d.inputs[0]] : undefined;
    const silu = !!pre && sameNorm({ ...pre, attrs: { ...pre.attrs, silu: false } } as Node) &&
      pre.inputs.length === 3 && pre.inputs[1] === gamma &&
      onlyUsers(pre.id, [d.id]) && onlyUsers(d.id, [G.id, M.id, ...(S2 ? [S2.id] : [])]);
    if (silu && !S2) continue;
    plans.set(G.id, {
      kind: "normBackward",
      dy: silu ? d.inputs[1] : dId,
      x,
      gamma,
      beta: silu ? pre!.inputs[2] : undefined,
      attrs: { groups, eps: G.attrs.eps as number, silu },
    });
    const from = Math.min(S1.id, S2?.id ?? Infinity);
    plans.set(from, { kind: "sumRows2", b: dId, s1: S1.id, s2: S2?.id, from: G.id });
    for (const r of [xh.id, M.id, ...(silu ? [pre!.id, d.id] : [])]) removed[r] = 1;
  }

  // Attention gradient siblings: same inputs and attributes, one per wrt.
  const siblings = new Map<string, Record<string, number>>();
  for (const n of nodes) {
    if (n.op !== "attentionGrad" || n.inputs.length !== 4) continue;
    const key = `${n.inputs.join(",")}|${n.attrs.heads}|${n.attrs.causal}`;
    const s = siblings.get(key) ?? {};
    s[n.attrs.wrt as string] = n.id;
    siblings.set(key, s);
  }
  for (const s of siblings.values()) {
    if (s.q === undefined || s.k === undefined || s.v === undefined) continue;
    plans.set(Math.min(s.q, s.k, s.v), { kind: "attentionAll", q: s.q, k: s.k, v: s.v });
  }

  const out = new Graph();
  const map = new Map<number, Node>();
  const cse = new Map<string, Node>();
  // The further outputs of each normBackward (by its old norm-gradient node): `d xhat`, `d`.
  const normExtras = new Map<number, { dxh: Node; d?: Node }>();
  const m = (id: number) => {
    const n = map.get(id);
    if (!n) throw new Error(`fuseGraph: node ${id} used before it was emitted`);
    return n;
  };
  for (const n of nodes) {
    if (removed[n.id]) continue;
    const plan = plans.get(n.id);
    if (plan?.kind === "normBackward") {
      const ins = [plan.dy, plan.x, plan.gamma, ...(plan.beta !== undefined ? [plan.beta] : [])];
      const shape = nodes[plan.x].shape;
      const f = out.addFused("normBackward", ins.map(m), plan.attrs, shape);
      map.set(n.id, f);
      const dxh = out.addFused("extra", [f], { index: 0 }, shape);
      const d = plan.attrs.silu ? out.addFused("extra", [f], { index: 1 }, shape) : undefined;
      normExtras.set(n.id, { dxh, d });
      continue;
    }
    if (plan?.kind === "sumRows2") {
      const e = normExtras.get(plan.from)!;
      const c = [nodes[plan.s1].shape.at(-1)!];
      const f = out.addFused("sumRows2", [e.dxh, e.d ?? m(plan.b)], {}, c);
      map.set(plan.s1, f);
      if (plan.s2 !== undefined) map.set(plan.s2, out.addFused("extra", [f], { index: 0 }, c));
      else out.addFused("extra", [f], { index: 0 }, c);
      continue;
    }
    if (map.has(n.id)) continue;
    if (plan?.kind === "attentionAll") {
      const ins = nodes[plan.q].inputs.map(m);
      const f = out.addFused("attentionGradAll", ins, {
        heads: nodes[plan.q].attrs.heads,
        causal: nodes[plan.q].attrs.causal,
      }, nodes[plan.q].shape);
      map.set(plan.q, f);
      map.set(plan.k, out.addFused("extra", [f], { index: 0 }, nodes[plan.k].shape));
      map.set(plan.v, out.addFused("extra", [f], { index: 1 }, nodes[plan.v].shape));
      continue;
    }
    map.set(n.id, copyNode(out, n, m, cse));
  }
  for (const [name, n] of g.outputs) out.output(name, m(n.id));
  return out;
}

/** Copy `n` into `out` (inputs by their input names), reusing an identical earlier node. */
function copyNode(
  out: Graph,
  n: Node,
  m: (id: number) => Node,
  cse: Map<string, Node>,
): Node {
  if (n.op === "input") {
    const name = n.attrs.name as string;
    const kind = n.attrs.kind as "param" | "data";
    return out.input(name, n.shape, n.dtype, kind);
  }
  if (n.op === "constant") return out.constant(n.attrs.values as Float32Array, n.shape);
  const ins = n.inputs.map(m);
  const key = `${n.op}|${ins.map((i) => i.id).join(",")}|${JSON.stringify(n.attrs)}`;
  const hit = cse.get(key);
  if (hit) return hit;
  const c = out.add(n.op, ins, n.attrs as never);
  cse.set(key, c);
  return c;
}
