/**
 * The reference interpreter of the compiled-step IR: runs a {@link Graph} node by node with
 * TensorFlow.js ops on the current tfjs backend, so graphs (and their gradients) can be checked
 * without a GPU. Each op is written from its definition in `ir_ops.ts` with plain tfjs ops (no
 * fused kernels, no tfjs autodiff), freeing every intermediate after its last use.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { Graph } from "./graph.ts";
 * import { gradients } from "./autodiff.ts";
 * import { interpret } from "./interpret.ts";
 *
 * const g = new Graph();
 * const x = g.input("x", [3]);
 * const loss = g.add("sum", [g.add("mul", [x, x])], { axes: [0] });
 * g.output("loss", loss);
 * g.output("dx", gradients(g, loss, [x])[0]);
 * const out = interpret(g, { x: tf.tensor1d([1, 2, 3]) });
 * assert.deepEqual(Array.from(out.loss.dataSync()), [14]);
 * assert.deepEqual(Array.from(out.dx.dataSync()), [2, 4, 6]);
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import { convFilterGrad } from "../nn/tf_ops.ts";
import type { Graph, Node } from "./graph.ts";

/** Added to masked attention logits, as in lib/nn. */
const MASKED = -1e9;
const GELU_C = Math.sqrt(2 / Math.PI);

/**
 * Run `g` on `feeds` (one tensor per input name, shapes checked) and return the named outputs
 * (default: all of `g.outputs`). Only the nodes the outputs need are run. The caller owns the
 * returned tensors; feeds are not disposed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { Graph } from "./graph.ts";
 * import { interpret } from "./interpret.ts";
 *
 * const g = new Graph();
 * g.output("y", g.add("upsample2x", [g.input("x", [1, 1, 1, 1])]));
 * assert.deepEqual(interpret(g, { x: tf.ones([1, 1, 1, 1]) }).y.shape, [1, 2, 2, 1]);
 * ```
 */
export function interpret(
  g: Graph,
  feeds: Record<string, tf.Tensor>,
  outputs: readonly string[] = [...g.outputs.keys()],
): Record<string, tf.Tensor> {
  const want = outputs.map((name) => {
    const n = g.outputs.get(name);
    if (!n) throw new Error(`interpret: graph has no output "${name}"`);
    return n;
  });
  // Which nodes are needed, and how many needed users each has (to free after the last one).
  const needed = new Uint8Array(g.nodes.length);
  for (const n of want) needed[n.id] = 1;
  const uses = new Int32Array(g.nodes.length);
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    if (!needed[i]) continue;
    for (const j of g.nodes[i].inputs) {
      needed[j] = 1;
      uses[j]++;
    }
  }
  for (const n of want) uses[n.id]++;
  const values = new Map<number, tf.Tensor>();
  const fed = new Set<tf.Tensor>();
  try {
    for (const n of g.nodes) {
      if (!needed[n.id]) continue;
      const ins = n.inputs.map((j) => values.get(j)!);
      const v = n.op === "input" ? feed(n, feeds) : tf.tidy(() => runOp(n, ins));
      if (n.op === "input") fed.add(v);
      values.set(n.id, v);
      for (const j of n.inputs) {
        if (--uses[j] === 0) release(values, j, fed);
      }
    }
    const out: Record<string, tf.Tensor> = {};
    outputs.forEach((name, i) => {
      const v = values.get(want[i].id)!;
      // Outputs are the caller's: a fed tensor or one output twice is handed out as a copy.
      out[name] = fed.has(v) || Object.values(out).includes(v) ? tf.clone(v) : v;
    });
    return out;
  } catch (e) {
    for (const [id] of values) release(values, id, fed);
    throw e;
  }
}

function release(values: Map<number, tf.Tensor>, id: number, fed: Set<tf.Tensor>): void {
  const v = values.get(id);
  values.delete(id);
  if (v && !fed.has(v)) v.dispose();
}

function feed(n: Node, feeds: Record<string, tf.Tensor>): tf.Tensor {
  const name = n.attrs.name as string;
  const v = feeds[name];
  if (!v) throw new Error(`interpret: no feed for input "${name}"`);
  if (v.shape.length !== n.shape.length || v.shape.some((d, i) => d !== n.shape[i])) {
    throw new Error(`interpret: feed "${name}" is [${v.shape}], the graph wants [${n.shape}]`);
  }
  return v;
}

/** `[B, T, D]` -> `[B * heads, T, D / heads]`. */
function splitHeads(x: tf.Tensor, heads: number): tf.Tensor3D {
  const [b, t, d] = x.shape;
  const s = tf.transpose(tf.reshape(x, [b, t, heads, d / heads]), [0, 2, 1, 3]);
  return tf.reshape(s, [b * heads, t, d / heads]);
}

/** `[B * heads, T, dh]` -> `[B, T, heads * dh]`. */
function mergeHeads(x: tf.Tensor, heads: number): tf.Tensor3D {
  const [bh, t, dh] = x.shape;
  const m = tf.transpose(tf.reshape(x, [bh / heads, heads, t, dh]), [0, 2, 1, 3]);
  return tf.reshape(m, [bh / heads, t, heads * dh]);
}

/** Per-head attention probabilities `[B * heads, Tq, Tk]` and the logit scale. */
function attentionProbs(n: Node, q: tf.Tensor, k: tf.Tensor, mask?: tf.Tensor) {
  const heads = n.attrs.heads as number;
  const [b, tq, d] = q.shape as [number, number, number], tk = k.shape[1] as number;
  const scale = 1 / Math.sqrt(d / heads);
  let s = tf.reshape(
    tf.mul(tf.matMul(splitHeads(q, heads), splitHeads(k, heads), false, true), scale),
    [b, heads, tq, tk],
  );
  if (mask) {
    const bias = tf.mul(tf.sub(1, tf.cast(mask, "float32")), MASKED);
    s = tf.add(s, tf.reshape(bias, [b, 1, 1, tk]));
  }
  if (n.attrs.causal) {
    const bias = new Float32Array(tq * tk);
    for (let i = 0; i < tq; i++) for (let j = i + 1; j < tk; j++) bias[i * tk + j] = MASKED;
    s = tf.add(s, tf.tensor(bias, [1, 1, tq, tk]));
  }
  return { p: tf.reshape(tf.softmax(s, -1), [b * heads, tq, tk]) as tf.Tensor3D, scale, heads };
}

/** `x` grouped as `[B, N, G, C / G]` with its per-group `xhat` and `rstd` (biased variance). */
function normalize(x: tf.Tensor, groups: number, eps: number, layer: boolean) {
  const c = x.shape[x.shape.length - 1];
  const xg = layer
    ? tf.reshape(x, [-1, 1, 1, c])
    : tf.reshape(x, [x.shape[0], -1, groups, c / groups]);
  const axes = layer ? [3] : [1, 3];
  const { mean, variance } = tf.moments(xg, axes, true);
  const rstd = tf.rsqrt(tf.add(variance, eps));
  return { xhat: tf.mul(tf.sub(xg, mean), rstd), rstd, axes, grouped: xg.shape };
}

function runNorm(n: Node, [x, gamma, beta]: tf.Tensor[]): tf.Tensor {
  const layer = n.op === "layerNorm";
  const { xhat } = normalize(x, n.attrs.groups as number, n.attrs.eps as number, layer);
  let y = tf.reshape(xhat, x.shape);
  if (gamma) y = tf.add(tf.mul(y, gamma), beta);
  return n.attrs.silu ? tf.mul(y, tf.sigmoid(y)) : y;
}

function runNormGrad(n: Node, [dy, x, gamma]: tf.Tensor[]): tf.Tensor {
  const layer = n.op === "layerNormGrad";
  const { xhat, rstd, axes, grouped } = normalize(
    x,
    n.attrs.groups as number,
    n.attrs.eps as number,
    layer,
  );
  const gv = tf.reshape(gamma ? tf.mul(dy, gamma) : dy, grouped);
  const dx = tf.mul(
    rstd,
    tf.sub(
      tf.sub(gv, tf.mean(gv, axes, true)),
      tf.mul(xhat, tf.mean(tf.mul(gv, xhat), axes, true)),
    ),
  );
  return tf.reshape(dx, x.shape);
}

function geluGrad(x: tf.Tensor, dy: tf.Tensor, kind: string): tf.Tensor {
  if (kind === "erf") {
    const cdf = tf.mul(tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1), 0.5);
    const pdf = tf.mul(tf.exp(tf.mul(tf.square(x), -0.5)), 1 / Math.sqrt(2 * Math.PI));
    return tf.mul(dy, tf.add(cdf, tf.mul(x, pdf)));
  }
  const th = tf.tanh(tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), GELU_C));
  const du = tf.mul(tf.add(tf.mul(tf.square(x), 3 * 0.044715), 1), GELU_C);
  const d = tf.add(
    tf.mul(tf.add(th, 1), 0.5),
    tf.mul(tf.mul(tf.mul(x, 0.5), tf.sub(1, tf.square(th))), du),
  );
  return tf.mul(dy, d);
}

function gelu(x: tf.Tensor, kind: string): tf.Tensor {
  if (kind === "erf") return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
  const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), GELU_C);
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
}

/** tfjs' explicit NHWC padding of a conv node. */
type ExplicitPadding = [[number, number], [number, number], [number, number], [number, number]];

const convPad = (n: Node): ExplicitPadding => {
  const [ph, pw] = n.attrs.pad as number[];
  return [[0, 0], [ph, ph], [pw, pw], [0, 0]];
};

/** One node's value from its inputs' values (inside a `tf.tidy`). */
function runOp(n: Node, ins: tf.Tensor[]): tf.Tensor {
  const a = n.attrs;
  const [x, y] = ins;
  switch (n.op) {
    case "constant":
      return tf.tensor(a.values as Float32Array | Int32Array, [...n.shape], n.dtype);
    case "add":
      return tf.add(x, y);
    case "mul":
      return tf.mul(x, y);
    case "addScalar":
      return tf.add(x, a.s as number);
    case "mulScalar":
      return tf.mul(x, a.s as number);
    case "silu":
      return tf.mul(x, tf.sigmoid(x));
    case "gelu":
      return gelu(x, a.kind as string);
    case "sin":
      return tf.sin(x);
    case "cos":
      return tf.cos(x);
    case "clip":
      return tf.clipByValue(x, a.min as number, a.max as number);
    case "cast":
      return tf.cast(x, "float32");
    case "equal":
      return tf.equal(x, a.value as number);
    case "argMax":
      return tf.argMax(x, a.axis as number);
    case "oneHot":
      return tf.cast(
        tf.oneHot(tf.cast(tf.reshape(x, [-1]), "int32") as tf.Tensor1D, a.depth as number),
        "float32",
      )
        .reshape([...n.shape]);
    case "reshape":
      return tf.reshape(x, [...n.shape]);
    case "concat":
      return tf.concat(ins, a.axis as number);
    case "slice":
      return tf.slice(x, a.begin as number[], a.size as number[]);
    case "pad":
      return tf.pad(x, a.paddings as [number, number][]);
    case "sum":
      return tf.sum(x, a.axes as number[]);
    case "mean":
      return tf.mean(x, a.axes as number[]);
    case "broadcastTo":
      return tf.broadcastTo(x, [...n.shape]);
    case "linear": {
      const [inF, outF] = y.shape;
      let out = tf.matMul(tf.reshape(x, [-1, inF]), y as tf.Tensor2D);
      if (ins[2]) out = tf.add(out, ins[2]);
      return tf.reshape(out, [...x.shape.slice(0, -1), outF]);
    }
    case "matMul":
      return tf.matMul(x as tf.Tensor2D, y as tf.Tensor2D, !!a.transposeA, !!a.transposeB);
    case "conv2d": {
      const out = tf.conv2d(x as tf.Tensor4D, y as tf.Tensor4D, a.stride as number, convPad(n));
      return ins[2] ? tf.add(out, ins[2]) : out;
    }
    case "conv2dBackpropInput": {
      const shape = a.inputShape as [number, number, number, number];
      return tf.conv2dTranspose(
        x as tf.Tensor4D,
        y as tf.Tensor4D,
        shape,
        a.stride as number,
        convPad(n),
      );
    }
    case "conv2dBackpropFilter": {
      const [kh, kw] = a.filterShape as number[];
      const xp = tf.pad(x as tf.Tensor4D, convPad(n) as [number, number][]);
      return convFilterGrad(xp, y as tf.Tensor4D, {
        kernelHeight: kh,
        kernelWidth: kw,
        stride: a.stride as number,
      });
    }
    case "upsample2x": {
      const [b, h, w, c] = x.shape;
      const rep = tf.mul(tf.reshape(x, [b, h, 1, w, 1, c]), tf.ones([1, 1, 2, 1, 2, 1]));
      return tf.reshape(rep, [b, 2 * h, 2 * w, c]);
    }
    case "sumPool2x": {
      const [b, h, w, c] = x.shape;
      return tf.sum(tf.reshape(x, [b, h / 2, 2, w / 2, 2, c]), [2, 4]);
    }
    case "groupNorm":
    case "layerNorm":
      return runNorm(n, ins);
    case "groupNormGrad":
    case "layerNormGrad":
      return runNormGrad(n, ins);
    case "siluGrad": {
      const s = tf.sigmoid(x);
      return tf.mul(y, tf.mul(s, tf.add(1, tf.mul(x, tf.sub(1, s)))));
    }
    case "geluGrad":
      return geluGrad(x, y, a.kind as string);
    case "clipGrad": {
      const inside = tf.logicalAnd(
        tf.greaterEqual(x, a.min as number),
        tf.lessEqual(x, a.max as number),
      );
      return tf.where(inside, y, tf.zerosLike(y));
    }
    case "attention": {
      const [q, k, v, mask] = ins;
      const { p, heads } = attentionProbs(n, q, k, mask);
      return mergeHeads(tf.matMul(p, splitHeads(v, heads)), heads);
    }
    case "attentionGrad": {
      const [q, k, v, dy, mask] = ins;
      const { p, scale, heads } = attentionProbs(n, q, k, mask);
      const dyh = splitHeads(dy, heads);
      if (a.wrt === "v") return mergeHeads(tf.matMul(p, dyh, true, false), heads);
      const dp = tf.matMul(dyh, splitHeads(v, heads), false, true);
      const ds = tf.mul(p, tf.sub(dp, tf.sum(tf.mul(dp, p), -1, true)));
      return a.wrt === "q"
        ? mergeHeads(tf.mul(tf.matMul(ds, splitHeads(k, heads)), scale), heads)
        : mergeHeads(tf.mul(tf.matMul(ds, splitHeads(q, heads), true, false), scale), heads);
    }
    case "embedding": {
      const rows = tf.gather(x, tf.cast(tf.reshape(y, [-1]), "int32"));
      return tf.reshape(rows, [...n.shape]);
    }
    case "embeddingGrad": {
      const d = y.shape[y.shape.length - 1];
      const ids = tf.cast(tf.reshape(x, [-1]), "int32") as tf.Tensor1D;
      return tf.unsortedSegmentSum(tf.reshape(y, [-1, d]), ids, a.vocab as number);
    }
    default:
      throw new Error(`interpret: no implementation of op "${n.op}" (node ${n.id})`);
  }
}
