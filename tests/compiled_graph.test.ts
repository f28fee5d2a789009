/**
 * The compiled-step IR (lib/compiled): the tiny UNet's training graph (forward recorded through
 * GraphOps, loss, reverse-mode autodiff), run by the reference interpreter, against TensorFlow.js'
 * own loss and gradients; every VJP rule against central finite differences on tiny shapes; node
 * counts of the default preset's UNet step (printed: the baseline a fusion pass will cut).
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../lib/backend/mod.ts";
import {
  DIFFERENTIABLE_OPS,
  gradients,
  Graph,
  interpret,
  type Node,
  unetTrainingGraph,
} from "../lib/compiled/mod.ts";
import { initUnet, UNET_PRESETS, type UnetConfig, unetForward } from "../lib/models/unet.ts";
import { computeGrads } from "../lib/train/optim.ts";
import { RECIPE_PRESETS } from "../lib/recipe/presets.ts";
import { disposeParams } from "../lib/nn/mod.ts";
import { Rng, STREAM } from "../lib/util/rng.ts";
import { assertClose } from "./helpers/assert_close.ts";

await initBackend("cpu-blas", { quiet: true });

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** The default recipe's UNet (what `deno task train` trains). */
const DEFAULT_UNET: UnetConfig = RECIPE_PRESETS.default.unet.model;

/**
 * The UNet step of `cfg` (batch 2, 8x8 latents, 5 tokens) as an interpreted IR graph against
 * TensorFlow.js' own loss and gradients, each within 1e-4 of the largest reference value.
 */
function compareWithTfjs(cfg: UnetConfig, label: string): void {
  const [b, h, w, tokens] = [2, 8, 8, 5];
  const before = tf.memory().numTensors;
  const params = initUnet(cfg, Rng.stream(3, [0, STREAM.init]));
  const rng = Rng.stream(3, [0, STREAM.noise]);
  const feeds: Record<string, tf.Tensor> = {
    x: tf.tensor4d(rng.normal(b * h * w * 4), [b, h, w, 4]),
    t: tf.tensor1d([17, 730]),
    context: tf.tensor3d(rng.normal(b * tokens * cfg.contextDim), [b, tokens, cfg.contextDim]),
    target: tf.tensor4d(rng.normal(b * h * w * 4), [b, h, w, 4]),
    weights: tf.tensor1d([0.7, 1.3]),
  };
  // lib/recipe's UNet-stage loss, through tfjs' autodiff (fused cpu-blas kernels included).
  const ref = computeGrads(params, () =>
    tf.tidy(() => {
      const pred = unetForward(params, cfg, {
        x: feeds.x as tf.Tensor4D,
        t: feeds.t as tf.Tensor1D,
        context: feeds.context as tf.Tensor3D,
      });
      const se = tf.mean(tf.square(tf.sub(pred, feeds.target)), [1, 2, 3]);
      return tf.mean(tf.mul(se, feeds.weights)) as tf.Scalar;
    }));

  const step = unetTrainingGraph({ cfg, batch: b, height: h, width: w, tokens });
  const out = interpret(step.graph, { ...params, ...feeds });
  assertClose(out.loss.dataSync()[0], ref.value.dataSync()[0], 1e-4, `${label} loss`);
  assert.deepEqual(Object.keys(step.grads).sort(), Object.keys(params).sort());
  assert.deepEqual(Object.keys(ref.grads).sort(), Object.keys(params).sort());
  let worst = 0;
  for (const name of Object.keys(params)) {
    const got = out[`grad/${name}`].dataSync(), want = ref.grads[name].dataSync();
    assertClose(got, want, 1e-4, `${label} grad ${name}`, { nonTrivial: 0 });
    let m = 0, d = 0;
    want.forEach((v, i) => {
      m = Math.max(m, Math.abs(v));
      d = Math.max(d, Math.abs(v - got[i]));
    });
    worst = Math.max(worst, d / m);
  }
  const n = Object.keys(params).length;
  console.log(`${label}: ${n} gradients, worst max|diff|/max|ref| ${worst.toExponential(2)}`);
  tf.dispose([
    ...Object.values(out),
    ref.value,
    ...Object.values(ref.grads),
    ...Object.values(feeds),
  ]);
  disposeParams(params);
  // The interpreter frees every intermediate: nothing is left once the outputs are disposed.
  assert.equal(tf.memory().numTensors, before, `${label}: tensors left behind`);
}

Deno.test("tiny UNet: IR loss and every parameter gradient equal TensorFlow.js' (1e-4)", () => {
  compareWithTfjs(UNET_PRESETS.tiny, "tiny UNet");
});

Deno.test("default UNet: IR loss and every parameter gradient equal TensorFlow.js' (1e-4)", () => {
  compareWithTfjs(DEFAULT_UNET, "default UNet");
});

/** One VJP check: a graph of `op` on data inputs; `diff` names the differentiated inputs. */
interface VjpCase {
  name: string;
  op: string;
  inputs: { shape: number[]; values?: number[]; dtype?: "float32" | "int32"; diff?: boolean }[];
  attrs?: Record<string, unknown>;
}

const f = (shape: number[]) => ({ shape });
const fixed = (shape: number[], values: number[]) => ({ shape, values, diff: false });

const CASES: VjpCase[] = [
  { name: "add broadcast", op: "add", inputs: [f([2, 3, 4]), f([3, 1])] },
  { name: "mul broadcast", op: "mul", inputs: [f([2, 3, 4]), f([4])] },
  { name: "addScalar", op: "addScalar", inputs: [f([2, 3])], attrs: { s: 0.5 } },
  { name: "mulScalar", op: "mulScalar", inputs: [f([2, 3])], attrs: { s: -1.5 } },
  { name: "silu", op: "silu", inputs: [f([2, 5])] },
  { name: "gelu tanh", op: "gelu", inputs: [f([2, 5])], attrs: { kind: "tanh" } },
  { name: "gelu erf", op: "gelu", inputs: [f([2, 5])], attrs: { kind: "erf" } },
  { name: "sin", op: "sin", inputs: [f([2, 5])] },
  { name: "cos", op: "cos", inputs: [f([2, 5])] },
  {
    name: "clip",
    op: "clip",
    // Away from the kinks at +-1, where a finite difference would straddle them.
    inputs: [{ shape: [6], values: [-2, -0.5, 0.2, 0.7, 1.6, -1.4] }],
    attrs: { min: -1, max: 1 },
  },
  { name: "reshape", op: "reshape", inputs: [f([2, 6])], attrs: { shape: [3, 4] } },
  { name: "concat", op: "concat", inputs: [f([2, 3, 2]), f([2, 1, 2])], attrs: { axis: 1 } },
  {
    name: "slice",
    op: "slice",
    inputs: [f([3, 4, 2])],
    attrs: { begin: [1, 1, 0], size: [2, 2, 2] },
  },
  { name: "pad", op: "pad", inputs: [f([2, 3])], attrs: { paddings: [[1, 0], [0, 2]] } },
  { name: "sum", op: "sum", inputs: [f([2, 3, 4])], attrs: { axes: [0, 2] } },
  { name: "mean", op: "mean", inputs: [f([2, 3, 4])], attrs: { axes: [1] } },
  { name: "broadcastTo", op: "broadcastTo", inputs: [f([3, 1])], attrs: { shape: [2, 3, 4] } },
  { name: "linear + bias", op: "linear", inputs: [f([2, 3, 4]), f([4, 5]), f([5])] },
  { name: "linear", op: "linear", inputs: [f([3, 4]), f([4, 2])] },
  { name: "matMul", op: "matMul", inputs: [f([3, 4]), f([4, 2])] },
  { name: "matMul A^T", op: "matMul", inputs: [f([4, 3]), f([4, 2])], attrs: { transposeA: true } },
  { name: "matMul B^T", op: "matMul", inputs: [f([3, 4]), f([2, 4])], attrs: { transposeB: true } },
  {
    name: "matMul A^T B^T",
    op: "matMul",
    inputs: [f([4, 3]), f([2, 4])],
    attrs: { transposeA: true, transposeB: true },
  },
  {
    name: "conv2d 3x3 same + bias",
    op: "conv2d",
    inputs: [f([2, 5, 5, 3]), f([3, 3, 3, 4]), f([4])],
    attrs: { stride: 1, pad: [1, 1] },
  },
  {
    name: "conv2d 3x3 stride 2 pad 1",
    op: "conv2d",
    inputs: [f([1, 6, 6, 2]), f([3, 3, 2, 3])],
    attrs: { stride: 2, pad: [1, 1] },
  },
  {
    name: "conv2d 3x3 stride 2 valid, odd size",
    op: "conv2d",
    inputs: [f([1, 7, 7, 2]), f([3, 3, 2, 2])],
    attrs: { stride: 2, pad: [0, 0] },
  },
  {
    name: "conv2d 1x1",
    op: "conv2d",
    inputs: [f([2, 3, 3, 4]), f([1, 1, 4, 2]), f([2])],
    attrs: { stride: 1, pad: [0, 0] },
  },
  { name: "upsample2x", op: "upsample2x", inputs: [f([2, 2, 3, 2])] },
  { name: "sumPool2x", op: "sumPool2x", inputs: [f([1, 4, 2, 3])] },
  {
    name: "groupNorm",
    op: "groupNorm",
    inputs: [f([2, 3, 3, 4]), f([4]), f([4])],
    attrs: { groups: 2, eps: 1e-5, silu: false },
  },
  {
    name: "groupNorm + SiLU",
    op: "groupNorm",
    inputs: [f([2, 2, 3, 6]), f([6]), f([6])],
    attrs: { groups: 3, eps: 1e-5, silu: true },
  },
  {
    name: "layerNorm",
    op: "layerNorm",
    inputs: [f([2, 3, 6]), f([6]), f([6])],
    attrs: { eps: 1e-5 },
  },
  { name: "layerNorm, no affine", op: "layerNorm", inputs: [f([3, 5])], attrs: { eps: 1e-5 } },
  {
    name: "attention",
    op: "attention",
    inputs: [f([2, 3, 4]), f([2, 5, 4]), f([2, 5, 6])],
    attrs: { heads: 2, causal: false },
  },
  {
    name: "attention causal + keyMask",
    op: "attention",
    inputs: [f([2, 4, 4]), f([2, 4, 4]), f([2, 4, 4]), fixed([2, 4], [1, 1, 0, 1, 1, 1, 1, 0])],
    attrs: { heads: 2, causal: true },
  },
  {
    name: "embedding",
    op: "embedding",
    inputs: [f([6, 3]), { shape: [2, 2], values: [4, 0, 4, 5], dtype: "int32", diff: false }],
  },
];

/**
 * Directional finite difference of `sum(op(inputs) * r)` along a random direction of each
 * differentiated input, against the inner product of the IR gradient with that direction.
 */
function checkVjp(c: VjpCase, seed: number): number {
  const rng = Rng.stream(seed);
  const g = new Graph();
  const ins: Node[] = c.inputs.map((s, i) => g.input(`in${i}`, s.shape, s.dtype ?? "float32"));
  const y = g.add(c.op, ins, c.attrs as never);
  const r = g.input("r", y.shape);
  const loss = g.add("sum", [g.add("mul", [y, r])], { axes: y.shape.map((_, i) => i) });
  const diff = ins.filter((_, i) => c.inputs[i].diff !== false);
  const grads = gradients(g, loss, diff);
  g.output("loss", loss);
  grads.forEach((d, i) => g.output(`d${i}`, d));
  const values: Record<string, Float32Array | Int32Array> = {};
  c.inputs.forEach((s, i) => {
    values[`in${i}`] = s.values
      ? (s.dtype === "int32" ? Int32Array.from(s.values) : Float32Array.from(s.values))
      : rng.normal(size(s.shape));
  });
  values.r = rng.normal(size(y.shape));
  const feedsOf = (v: Record<string, Float32Array | Int32Array>) => {
    const out: Record<string, tf.Tensor> = {};
    for (const [k, a] of Object.entries(v)) out[k] = tf.tensor(a, [...g.inputs.get(k)!.shape]);
    return out;
  };
  const run = (v: Record<string, Float32Array | Int32Array>, names: string[]) => {
    const feeds = feedsOf(v);
    const out = interpret(g, feeds, names);
    const data = names.map((n) => out[n].dataSync() as Float32Array);
    tf.dispose([...Object.values(out), ...Object.values(feeds)]);
    return data;
  };
  const analytic = run(values, grads.map((_, i) => `d${i}`));
  let worst = 0;
  diff.forEach((x, i) => {
    const name = x.attrs.name as string;
    const dir = rng.normal(size(x.shape));
    const hstep = 1e-2;
    const shifted = (sign: number) => {
      const v = {
        ...values,
        [name]: (values[name] as Float32Array).map((a, j) => a + sign * hstep * dir[j]),
      };
      return run(v, ["loss"])[0][0];
    };
    const fd = (shifted(1) - shifted(-1)) / (2 * hstep);
    const an = analytic[i].reduce((s, a, j) => s + a * dir[j], 0);
    const err = Math.abs(fd - an) / Math.max(Math.abs(an), 1);
    worst = Math.max(worst, err);
    assert.ok(err < 2e-3, `${c.name}: d/d${name} finite difference ${fd} vs VJP ${an}`);
  });
  return worst;
}

Deno.test("every VJP rule matches central finite differences on tiny shapes", () => {
  const lines: string[] = [];
  CASES.forEach((c, i) => lines.push(`${c.name}: ${checkVjp(c, 100 + i).toExponential(1)}`));
  console.log(`VJP vs finite differences (relative error): ${lines.join("; ")}`);
  // Each differentiable op has a case (the backward-only ones too: matMul, broadcastTo, ...).
  const tested = new Set(CASES.map((c) => c.op));
  assert.deepEqual(DIFFERENTIABLE_OPS.filter((op) => !tested.has(op) && op !== "cast"), []);
});

Deno.test("UNet training graphs: every forward op has a tested VJP; default node counts", () => {
  const tested = new Set(CASES.map((c) => c.op));
  for (const cfg of [UNET_PRESETS.tiny, DEFAULT_UNET]) {
    const s = unetTrainingGraph({ cfg, batch: 1, height: 8, width: 8, tokens: 24 });
    const fwd = s.graph.opCounts(0, s.forwardNodes);
    for (const op of Object.keys(fwd)) {
      assert.ok(op === "input" || op === "constant" || tested.has(op), `untested op ${op}`);
    }
  }
  const s = unetTrainingGraph({ cfg: DEFAULT_UNET, batch: 1, height: 8, width: 8, tokens: 24 });
  const fwd = s.graph.opCounts(0, s.forwardNodes);
  const bwd = s.graph.opCounts(s.forwardNodes);
  const total = s.graph.nodes.length;
  // Counts that follow from the parameters: a conv per 4-D weight, an input per parameter plus
  // the five data inputs, a filter gradient per conv, an input gradient for every conv but
  // conv_in (x needs none), a LayerNorm per transformer norm, the GEGLU's two halves.
  const shapes = Object.values(s.grads).map((n) => n.shape);
  const convs = shapes.filter((sh) => sh.length === 4).length;
  assert.equal(fwd.input, shapes.length + 5);
  assert.equal(fwd.conv2d, convs);
  assert.equal(bwd.conv2dBackpropFilter, convs);
  assert.equal(bwd.conv2dBackpropInput, convs - 1);
  assert.equal(bwd.attentionGrad, 3 * fwd.attention);
  assert.equal(bwd.groupNormGrad, fwd.groupNorm);
  const compute = total - fwd.input - 2; // less the inputs and the two constants
  console.log(
    `default UNet training graph: ${total} nodes (${s.forwardNodes} forward incl. ${fwd.input} ` +
      `inputs, ${total - s.forwardNodes} backward; ${compute} compute nodes)`,
  );
  console.log(`  forward by op:  ${JSON.stringify(fwd)}`);
  console.log(`  backward by op: ${JSON.stringify(bwd)}`);
});

Deno.test("shape errors name the op and the shapes", () => {
  const g = new Graph();
  const x = g.input("x", [1, 4, 4, 3]), w = g.input("w", [3, 3, 2, 8]);
  assert.throws(
    () => g.add("conv2d", [x, w], { stride: 1, pad: [1, 1] }),
    /conv2d: input \[1, 4, 4, 3\] and HWIO filter \[3, 3, 2, 8\] do not match/,
  );
  assert.throws(() => g.add("add", [x, w]), /add: shapes \[1, 4, 4, 3\] and \[3, 3, 2, 8\]/);
  assert.throws(() => g.add("fancy", [x]), /unknown op "fancy"/);
});
