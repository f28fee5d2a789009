/**
 * The kit's WebGPU executor of the compiled-step IR (lib/compiled/webgpu_executor.ts) against the
 * TensorFlow.js reference interpreter (interpret.ts on cpu-blas): every WGSL kernel on small random
 * shapes, then the tiny UNet's whole training graph (loss and every parameter gradient), then the
 * host-cost structure of a second run (nothing created, one submit, one dispatch per kernel node).
 * Skipped, with the reason printed, when this runtime has no WebGPU adapter.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { countWebgpuCalls, initBackend } from "../lib/backend/mod.ts";
import {
  compileGraph,
  Graph,
  interpret,
  NO_KERNEL_OPS,
  type Node,
  unetTrainingGraph,
} from "../lib/compiled/mod.ts";
import { initUnet, UNET_PRESETS, type UnetConfig } from "../lib/models/unet.ts";
import { RECIPE_PRESETS, unetConfigFor } from "../lib/recipe/mod.ts";
import { disposeParams } from "../lib/nn/mod.ts";
import { Rng, STREAM } from "../lib/util/rng.ts";
import { relErr, webgpuForTests } from "./helpers/webgpu.ts";

await initBackend("cpu-blas", { quiet: true });

const { device, skip: ignore } = await webgpuForTests("compiled_webgpu_executor", {
  device: true,
});

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** Run `g` on the executor and on the interpreter with the same float32 feeds. */
async function both(g: Graph, feeds: Record<string, Float32Array>) {
  const exe = await compileGraph(g, device!);
  const got = await exe.run(feeds);
  const tfFeeds: Record<string, tf.Tensor> = {};
  for (const [k, v] of Object.entries(feeds)) {
    tfFeeds[k] = tf.tensor(v, [...g.inputs.get(k)!.shape]);
  }
  const ref = interpret(g, tfFeeds);
  const want: Record<string, Float32Array> = {};
  for (const [k, t] of Object.entries(ref)) want[k] = t.dataSync() as Float32Array;
  tf.dispose([...Object.values(ref), ...Object.values(tfFeeds)]);
  return { exe, got, want };
}

interface OpCase {
  name: string;
  op: string;
  inputs: number[][];
  attrs?: Record<string, unknown>;
  /** Fixed input values (else standard normal). */
  values?: Record<number, number[]>;
  /** Relative tolerance (default 1e-5). */
  tol?: number;
}

const CASES: OpCase[] = [
  { name: "add broadcast", op: "add", inputs: [[2, 3, 4], [3, 1]] },
  { name: "add same shape", op: "add", inputs: [[5, 7], [5, 7]] },
  { name: "add scalar-shaped", op: "add", inputs: [[], [3]] },
  { name: "mul broadcast", op: "mul", inputs: [[2, 1, 4], [3, 4]] },
  { name: "addScalar", op: "addScalar", inputs: [[2, 3]], attrs: { s: 0.5 } },
  { name: "mulScalar", op: "mulScalar", inputs: [[70]], attrs: { s: -1.5 } },
  { name: "silu", op: "silu", inputs: [[3, 33]] },
  { name: "gelu tanh", op: "gelu", inputs: [[3, 33]], attrs: { kind: "tanh" } },
  // erf by Abramowitz-Stegun (|error| 1.5e-7): a few ulps of the output's scale.
  { name: "gelu erf", op: "gelu", inputs: [[3, 33]], attrs: { kind: "erf" }, tol: 1e-6 },
  { name: "sin", op: "sin", inputs: [[40]] },
  { name: "cos", op: "cos", inputs: [[40]] },
  { name: "clip", op: "clip", inputs: [[40]], attrs: { min: -0.5, max: 0.7 } },
  { name: "siluGrad", op: "siluGrad", inputs: [[4, 9], [4, 9]] },
  { name: "geluGrad tanh", op: "geluGrad", inputs: [[4, 9], [4, 9]], attrs: { kind: "tanh" } },
  {
    name: "geluGrad erf",
    op: "geluGrad",
    inputs: [[4, 9], [4, 9]],
    attrs: { kind: "erf" },
    tol: 1e-6,
  },
  { name: "clipGrad", op: "clipGrad", inputs: [[30], [30]], attrs: { min: -0.5, max: 0.7 } },
  { name: "concat axis 3", op: "concat", inputs: [[1, 2, 2, 3], [1, 2, 2, 5]], attrs: { axis: 3 } },
  {
    name: "concat 3 inputs axis 1",
    op: "concat",
    inputs: [[2, 1, 3], [2, 4, 3], [2, 2, 3]],
    attrs: { axis: 1 },
  },
  { name: "slice", op: "slice", inputs: [[3, 4, 5]], attrs: { begin: [1, 0, 2], size: [2, 3, 3] } },
  { name: "pad", op: "pad", inputs: [[2, 3]], attrs: { paddings: [[1, 0], [0, 2]] } },
  { name: "pad 1-D", op: "pad", inputs: [[5]], attrs: { paddings: [[3, 0]] } },
  { name: "sum [0, 1, 2]", op: "sum", inputs: [[2, 3, 3, 5]], attrs: { axes: [0, 1, 2] } },
  { name: "sum [1, 2]", op: "sum", inputs: [[2, 3, 3, 5]], attrs: { axes: [1, 2] } },
  { name: "sum all of [4]", op: "sum", inputs: [[4]], attrs: { axes: [0] } },
  { name: "mean [1, 2, 3]", op: "mean", inputs: [[2, 4, 4, 3]], attrs: { axes: [1, 2, 3] } },
  { name: "broadcastTo", op: "broadcastTo", inputs: [[3, 1]], attrs: { shape: [2, 3, 4] } },
  { name: "broadcastTo from []", op: "broadcastTo", inputs: [[]], attrs: { shape: [1, 2, 2, 3] } },
  { name: "linear + bias", op: "linear", inputs: [[2, 9, 20], [20, 17], [17]] },
  { name: "linear", op: "linear", inputs: [[3, 4], [4, 2]] },
  { name: "matMul", op: "matMul", inputs: [[19, 23], [23, 17]] },
  { name: "matMul A^T", op: "matMul", inputs: [[23, 19], [23, 17]], attrs: { transposeA: true } },
  { name: "matMul B^T", op: "matMul", inputs: [[19, 23], [17, 23]], attrs: { transposeB: true } },
  {
    name: "matMul A^T B^T",
    op: "matMul",
    inputs: [[23, 19], [17, 23]],
    attrs: { transposeA: true, transposeB: true },
  },
  {
    name: "conv2d 3x3 same + bias",
    op: "conv2d",
    inputs: [[2, 5, 5, 3], [3, 3, 3, 4], [4]],
    attrs: { stride: 1, pad: [1, 1] },
  },
  {
    name: "conv2d 3x3 stride 2 pad 1",
    op: "conv2d",
    inputs: [[1, 6, 6, 2], [3, 3, 2, 3]],
    attrs: { stride: 2, pad: [1, 1] },
  },
  {
    name: "conv2d 3x3 stride 2 valid, odd",
    op: "conv2d",
    inputs: [[1, 7, 7, 2], [3, 3, 2, 2]],
    attrs: { stride: 2, pad: [0, 0] },
  },
  {
    name: "conv2d 1x1 + bias",
    op: "conv2d",
    inputs: [[2, 3, 3, 4], [1, 1, 4, 2], [2]],
    attrs: { stride: 1, pad: [0, 0] },
  },
  {
    name: "conv2dBackpropInput 3x3 same",
    op: "conv2dBackpropInput",
    inputs: [[2, 5, 5, 4], [3, 3, 3, 4]],
    attrs: { stride: 1, pad: [1, 1], inputShape: [2, 5, 5, 3] },
  },
  {
    name: "conv2dBackpropInput stride 2 pad 1",
    op: "conv2dBackpropInput",
    inputs: [[1, 3, 3, 3], [3, 3, 2, 3]],
    attrs: { stride: 2, pad: [1, 1], inputShape: [1, 6, 6, 2] },
  },
  {
    name: "conv2dBackpropInput stride 2 valid, odd",
    op: "conv2dBackpropInput",
    inputs: [[1, 3, 3, 2], [3, 3, 2, 2]],
    attrs: { stride: 2, pad: [0, 0], inputShape: [1, 7, 7, 2] },
  },
  {
    name: "conv2dBackpropFilter 3x3 same",
    op: "conv2dBackpropFilter",
    inputs: [[2, 5, 5, 3], [2, 5, 5, 4]],
    attrs: { stride: 1, pad: [1, 1], filterShape: [3, 3, 3, 4] },
  },
  {
    name: "conv2dBackpropFilter stride 2 pad 1",
    op: "conv2dBackpropFilter",
    inputs: [[1, 6, 6, 2], [1, 3, 3, 3]],
    attrs: { stride: 2, pad: [1, 1], filterShape: [3, 3, 2, 3] },
  },
  {
    name: "conv2dBackpropFilter 1x1",
    op: "conv2dBackpropFilter",
    inputs: [[2, 3, 3, 4], [2, 3, 3, 2]],
    attrs: { stride: 1, pad: [0, 0], filterShape: [1, 1, 4, 2] },
  },
  // Several 16x16 tiles per side with ragged edges; convolutions with wide channels.
  {
    name: "matMul 4x4 blocks, ragged",
    op: "matMul",
    inputs: [[131, 70], [70, 67]],
  },
  {
    name: "matMul A^T B^T 4x4 blocks",
    op: "matMul",
    inputs: [[37, 65], [66, 37]],
    attrs: { transposeA: true, transposeB: true },
  },
  { name: "linear rows < 64, cols >= 64", op: "linear", inputs: [[3, 48], [48, 130], [130]] },
  {
    name: "conv2d 3x3 64 -> 72 + bias",
    op: "conv2d",
    inputs: [[2, 9, 7, 64], [3, 3, 64, 72], [72]],
    attrs: { stride: 1, pad: [1, 1] },
  },
  {
    name: "conv2dBackpropInput 3x3 stride 2, 66 channels",
    op: "conv2dBackpropInput",
    inputs: [[2, 5, 5, 40], [3, 3, 66, 40]],
    attrs: { stride: 2, pad: [1, 1], inputShape: [2, 10, 10, 66] },
  },
  {
    name: "conv2dBackpropFilter 3x3, 8 -> 70",
    op: "conv2dBackpropFilter",
    inputs: [[3, 11, 9, 8], [3, 11, 9, 70]],
    attrs: { stride: 1, pad: [1, 1], filterShape: [3, 3, 8, 70] },
  },
  { name: "upsample2x", op: "upsample2x", inputs: [[2, 2, 3, 2]] },
  { name: "sumPool2x", op: "sumPool2x", inputs: [[2, 4, 2, 3]] },
  {
    name: "groupNorm",
    op: "groupNorm",
    inputs: [[2, 3, 3, 4], [4], [4]],
    attrs: { groups: 2, eps: 1e-5, silu: false },
  },
  {
    name: "groupNorm + SiLU, 130 per set",
    op: "groupNorm",
    inputs: [[2, 5, 13, 6], [6], [6]],
    attrs: { groups: 3, eps: 1e-5, silu: true },
  },
  {
    name: "groupNorm, no affine",
    op: "groupNorm",
    inputs: [[1, 4, 4, 8]],
    attrs: { groups: 4, eps: 1e-6, silu: false },
  },
  { name: "layerNorm", op: "layerNorm", inputs: [[2, 3, 6], [6], [6]], attrs: { eps: 1e-5 } },
  { name: "layerNorm, no affine", op: "layerNorm", inputs: [[3, 70]], attrs: { eps: 1e-5 } },
  {
    name: "groupNormGrad",
    op: "groupNormGrad",
    inputs: [[2, 5, 13, 6], [2, 5, 13, 6], [6]],
    attrs: { groups: 3, eps: 1e-5 },
  },
  {
    name: "groupNormGrad, no gamma",
    op: "groupNormGrad",
    inputs: [[1, 4, 4, 8], [1, 4, 4, 8]],
    attrs: { groups: 4, eps: 1e-6 },
  },
  {
    name: "layerNormGrad",
    op: "layerNormGrad",
    inputs: [[2, 3, 6], [2, 3, 6], [6]],
    attrs: { eps: 1e-5 },
  },
  {
    name: "layerNormGrad, no gamma",
    op: "layerNormGrad",
    inputs: [[3, 70], [3, 70]],
    attrs: { eps: 1e-5 },
  },
  {
    name: "attention cross",
    op: "attention",
    inputs: [[2, 5, 8], [2, 3, 8], [2, 3, 6]],
    attrs: { heads: 2, causal: false },
  },
  {
    name: "attention causal + keyMask",
    op: "attention",
    inputs: [[2, 4, 4], [2, 4, 4], [2, 4, 4], [2, 4]],
    attrs: { heads: 2, causal: true },
    values: { 3: [1, 1, 0, 1, 1, 1, 1, 0] },
  },
  {
    // Head width 40 (an SD head): two value chunks, the second ragged; 70 keys.
    name: "attention self, head width 40",
    op: "attention",
    inputs: [[2, 70, 80], [2, 70, 80], [2, 70, 80]],
    attrs: { heads: 2, causal: false },
  },
  ...(["q", "k", "v"] as const).flatMap((wrt): OpCase[] => [
    {
      name: `attentionGrad ${wrt}, cross`,
      op: "attentionGrad",
      inputs: [[2, 5, 8], [2, 3, 8], [2, 3, 6], [2, 5, 6]],
      attrs: { heads: 2, causal: false, wrt },
    },
    {
      name: `attentionGrad ${wrt}, self, 70 queries`,
      op: "attentionGrad",
      inputs: [[1, 70, 8], [1, 70, 8], [1, 70, 8], [1, 70, 8]],
      attrs: { heads: 4, causal: false, wrt },
    },
    {
      // Head width 40: two column chunks per row, the second ragged; 100 queries and keys.
      name: `attentionGrad ${wrt}, self, head width 40`,
      op: "attentionGrad",
      inputs: [[1, 100, 80], [1, 100, 80], [1, 100, 80], [1, 100, 80]],
      attrs: { heads: 2, causal: false, wrt },
    },
    {
      name: `attentionGrad ${wrt}, causal + keyMask`,
      op: "attentionGrad",
      inputs: [[2, 4, 4], [2, 4, 4], [2, 4, 4], [2, 4, 4], [2, 4]],
      attrs: { heads: 2, causal: true, wrt },
      values: { 4: [1, 1, 0, 1, 1, 1, 1, 0] },
    },
  ]),
];

Deno.test({
  name: "every WGSL kernel equals the interpreter on small random shapes (1e-5 relative)",
  ignore,
  async fn() {
    const lines: string[] = [];
    for (const [ci, c] of CASES.entries()) {
      const rng = Rng.stream(500 + ci);
      const g = new Graph();
      const ins: Node[] = c.inputs.map((s, i) => g.input(`in${i}`, s));
      g.output("y", g.add(c.op, ins, c.attrs as never));
      const feeds: Record<string, Float32Array> = {};
      c.inputs.forEach((s, i) => {
        feeds[`in${i}`] = c.values?.[i] ? Float32Array.from(c.values[i]) : rng.normal(size(s));
      });
      const { exe, got, want } = await both(g, feeds);
      exe.destroy();
      const err = relErr(got.y, want.y);
      const tol = c.tol ?? 1e-5;
      assert.ok(err <= tol, `${c.name}: max|diff|/max|ref| ${err.toExponential(2)} > ${tol}`);
      lines.push(`${c.name} ${err.toExponential(1)}`);
    }
    console.log(`WGSL kernels vs interpreter (max|diff|/max|ref|): ${lines.join("; ")}`);
    // Every op of the UNet training graph has a case here.
    const tested = new Set(CASES.map((c) => c.op));
    const s = unetTrainingGraph({
      cfg: UNET_PRESETS.tiny,
      batch: 1,
      height: 8,
      width: 8,
      tokens: 4,
    });
    for (const op of Object.keys(s.graph.opCounts())) {
      assert.ok(NO_KERNEL_OPS.has(op) || tested.has(op), `no kernel test for op ${op}`);
    }
  },
});

Deno.test({
  name: "reshape is a view: no dispatch, and liveness reuses intermediate buffers",
  ignore,
  async fn() {
    const g = new Graph();
    const x = g.input("x", [2, 6]);
    const a = g.add("silu", [x]);
    const r = g.add("reshape", [a], { shape: [3, 4] });
    const b = g.add("mulScalar", [r], { s: 2 }); // a is dead after this
    const c = g.add("addScalar", [b], { s: 1 }); // may take a's buffer
    g.output("y", g.add("reshape", [g.add("sin", [c])], { shape: [12] }));
    const feeds = { x: Rng.stream(9).normal(12) };
    const { exe, got, want } = await both(g, feeds);
    assert.ok(relErr(got.y, want.y) <= 1e-6);
    assert.equal(exe.stats.dispatches, 4);
    // x, the output root, and two pooled buffers for the three intermediates a, b, c.
    assert.deepEqual([exe.stats.pooledValues, exe.stats.pooledBuffers], [3, 2]);
    exe.destroy();
  },
});

/** Random data feeds of a UNet step (`seed` varies them) plus the weights `params`. */
function unetFeeds(
  cfg: UnetConfig,
  sizes: [number, number, number, number],
  params: Record<string, Float32Array>,
  seed: number,
): Record<string, Float32Array> {
  const [b, h, w, tokens] = sizes;
  const rng = Rng.stream(seed, [0, STREAM.noise]);
  return {
    ...params,
    x: rng.normal(b * h * w * cfg.inChannels),
    t: Float32Array.from({ length: b }, () => rng.uniform() * 999),
    context: rng.normal(b * tokens * cfg.contextDim),
    target: rng.normal(b * h * w * cfg.outChannels),
    weights: Float32Array.from({ length: b }, (_, i) => 0.7 + 0.6 * i),
  };
}

/** The UNet step of `cfg` on the executor against the interpreter: loss and every gradient. */
async function unetAgainstInterpreter(cfg: UnetConfig, sizes: [number, number, number, number]) {
  const [batch, height, width, tokens] = sizes;
  const step = unetTrainingGraph({ cfg, batch, height, width, tokens });
  const tfParams = initUnet(cfg, Rng.stream(3, [0, STREAM.init]));
  const params: Record<string, Float32Array> = {};
  for (const [k, v] of Object.entries(tfParams)) params[k] = v.dataSync() as Float32Array;
  disposeParams(tfParams);
  const { exe, got, want } = await both(step.graph, unetFeeds(cfg, sizes, params, 1));
  let worst = 0;
  for (const name of exe.outputNames) {
    const e = relErr(got[name], want[name]);
    assert.ok(e <= 1e-4, `${name}: max|diff|/max|ref| ${e.toExponential(2)}`);
    worst = Math.max(worst, e);
  }
  const kernels = step.graph.nodes.filter((n) => !NO_KERNEL_OPS.has(n.op)).length;
  assert.equal(exe.stats.dispatches, kernels);
  console.log(
    `UNet (batch ${batch}): loss ${got.loss[0]} vs ${want.loss[0]}, ${
      exe.outputNames.length - 1
    } gradients, worst max|diff|/max|ref| ${worst.toExponential(2)}; ${kernels} dispatches, ` +
      `${exe.stats.pipelines} pipelines, ${exe.stats.buffers} storage buffers ` +
      `(${exe.stats.pooledBuffers} pooled for ${exe.stats.pooledValues} values)`,
  );
  return { exe, got, kernels, params, step };
}

Deno.test({
  name: "tiny UNet training graph on WebGPU: loss and every gradient equal the interpreter " +
    "(1e-4); a second run creates nothing and submits once",
  ignore,
  async fn() {
    const cfg = UNET_PRESETS.tiny;
    const sizes: [number, number, number, number] = [2, 8, 8, 5];
    const { exe, got, kernels, params } = await unetAgainstInterpreter(cfg, sizes);
    // Second run, new data inputs (parameters kept): only writes, one pass, one submit.
    const next = unetFeeds(cfg, sizes, params, 2);
    const data = { x: next.x, t: next.t, context: next.context, target: next.target };
    const { result, counts } = await countWebgpuCalls(() => exe.run(data, ["loss"]));
    assert.deepEqual(
      {
        pipelines: counts.pipelines,
        shaderModules: counts.shaderModules,
        bindGroups: counts.bindGroups,
        buffers: counts.buffers,
        submits: counts.submits,
        computePasses: counts.computePasses,
        dispatches: counts.dispatches,
        bufferWrites: counts.bufferWrites,
        mapReads: counts.mapReads,
      },
      {
        pipelines: 0,
        shaderModules: 0,
        bindGroups: 0,
        buffers: 0,
        submits: 1,
        computePasses: 1,
        dispatches: kernels,
        bufferWrites: 4,
        mapReads: 1,
      },
    );
    assert.ok(Number.isFinite(result.loss[0]) && result.loss[0] !== got.loss[0]);
    exe.destroy();
  },
});

Deno.test({
  name: "default UNet training graph (batch 1, 8x8, 24 tokens) on WebGPU equals the interpreter",
  ignore,
  async fn() {
    const cfg = unetConfigFor(RECIPE_PRESETS.default.unet.model, {
      latentChannels: RECIPE_PRESETS.default.autoencoder.model.latentChannels,
      contextDim: RECIPE_PRESETS.default.clip.model.textWidth,
    });
    const { exe } = await unetAgainstInterpreter(cfg, [1, 8, 8, 24]);
    exe.destroy();
  },
});
