/**
 * The kit's webgpu kernels (lib/backend/webgpu_kernels.ts) against the stock cpu backend:
 * Conv2DBackpropFilter as im2col + matmul over strides, paddings, odd sizes and 1x1 filters, and
 * the fused GroupNorm(+SiLU)/LayerNorm forward and gradients (lib/backend/webgpu_norm_kernels.ts).
 * Runs where a WebGPU adapter exists (CI installs Mesa's lavapipe, so it runs there).
 */
import assert from "node:assert/strict";
import { assertClose } from "./helpers/assert_close.ts";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend, webgpuAdapterInfo } from "../lib/backend/mod.ts";
import { Rng } from "../lib/util/rng.ts";
import "../lib/nn/gradients.ts";
import {
  FUSED_KERNELS,
  fusedKernelsActive,
  fusedNormActive,
  fusedSilu,
  groupNorm,
  layerNorm,
  setFusedKernels,
} from "../lib/nn/mod.ts";

interface Case {
  x: [number, number, number, number];
  f: [number, number, number, number];
  strides: number | [number, number];
  pad: "same" | "valid" | number;
}

const CASES: Case[] = [
  { x: [2, 8, 8, 3], f: [3, 3, 3, 5], strides: 1, pad: "same" },
  { x: [2, 9, 7, 4], f: [3, 3, 4, 2], strides: 2, pad: "same" },
  { x: [2, 8, 8, 4], f: [3, 3, 4, 4], strides: 2, pad: 1 },
  { x: [3, 5, 5, 6], f: [1, 1, 6, 4], strides: 1, pad: "valid" },
  { x: [2, 6, 7, 2], f: [2, 3, 2, 3], strides: [1, 2], pad: "valid" },
];

/** dL/dW of L = sum(conv2d(x, w) * dy) on the active backend, for seeded x, w and dy. */
async function filterGrad(c: Case): Promise<Float32Array> {
  const rng = Rng.stream(5);
  const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
  const x = tf.tensor4d(rng.normal(size(c.x)), c.x);
  const w = tf.tensor4d(rng.normal(size(c.f)), c.f);
  const yShape = tf.conv2d(x, w, c.strides, c.pad).shape;
  const dy = tf.tensor(rng.normal(size(yShape)), yShape);
  const g = tf.grad((ww: tf.Tensor) =>
    tf.sum(tf.mul(tf.conv2d(x, ww as tf.Tensor4D, c.strides, c.pad), dy))
  );
  const dw = g(w);
  const out = new Float32Array(await dw.data());
  tf.dispose([x, w, dy, dw]);
  return out;
}

Deno.test("webgpu Conv2DBackpropFilter (im2col + matmul) equals stock cpu", async () => {
  if (!(await webgpuAdapterInfo())) return;
  await initBackend("webgpu", { quiet: true });
  // The kit's kernel is the one registered (the stock shader has no strided slices).
  assert.match(String(tf.getKernel("Conv2DBackpropFilter", "webgpu")!.kernelFunc), /StridedSlice/);
  const gpu: Float32Array[] = [];
  for (const c of CASES) gpu.push(await filterGrad(c));
  await initBackend("cpu-js", { quiet: true });
  for (let i = 0; i < CASES.length; i++) {
    const want = await filterGrad(CASES[i]);
    assert.equal(gpu[i].length, want.length);
    for (let k = 0; k < want.length; k++) {
      assert.ok(
        Math.abs(gpu[i][k] - want[k]) <= 1e-4 * Math.max(1, Math.abs(want[k])),
        `case ${i} [${JSON.stringify(CASES[i])}] dw[${k}]: ${gpu[i][k]} vs ${want[k]}`,
      );
    }
  }
});

// ---------- fused GroupNorm(+SiLU) / LayerNorm (lib/backend/webgpu_norm_kernels.ts) ----------

interface NormRun {
  y: Float32Array;
  grads: Float32Array[];
  kernels: string[];
}

/**
 * Forward and gradients wrt (x, gamma, beta) of `L = sum(r * layer(x, gamma, beta))` on the
 * active backend, plus the names of the kernels run (read with `await data()`: webgpu has no
 * dataSync).
 */
async function normRun(
  inputs: { data: Float32Array; shape: number[] }[],
  r: Float32Array,
  layer: (vs: tf.Variable[]) => tf.Tensor,
): Promise<NormRun> {
  const vars = inputs.map((i) => tf.tidy(() => tf.variable(tf.tensor(i.data, i.shape), true)));
  const tensors: tf.Tensor[] = [];
  const prof = await tf.profile(() => {
    const y = layer(vars);
    const rt = tf.tensor(r, y.shape);
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(rt, layer(vars))), vars);
    tensors.push(y, ...vars.map((v) => grads[v.name]));
    tf.dispose([rt, value]);
  });
  const [y, ...grads] = await Promise.all(
    tensors.map(async (t) => new Float32Array(await t.data())),
  );
  tf.dispose([...tensors, ...vars]);
  return { y, grads, kernels: prof.kernels.map((k) => k.name) };
}

interface NormCase {
  what: string;
  inputs: { data: Float32Array; shape: number[] }[];
  r: Float32Array;
  layer: (vs: tf.Variable[]) => tf.Tensor;
}

function normCases(): NormCase[] {
  const rng = Rng.stream(31);
  const out: NormCase[] = [];
  const params = (c: number) => [
    { data: rng.normal(c).map((v) => 1 + 0.5 * v), shape: [c] },
    { data: rng.normal(c).map((v) => 0.5 * v), shape: [c] },
  ];
  // [shape, groups]: rank 4 and 3, 1/2/3/4/5/6 groups, the LayerNorm layout [rows, 1, d], a
  // group longer than a workgroup (64 lanes) and more groups than lanes.
  const gn: [number[], number][] = [
    [[2, 5, 3, 12], 3],
    [[3, 7, 10], 5],
    [[1, 4, 3, 6], 6],
    [[2, 3, 3, 8], 1],
    [[2, 9, 16], 4],
    [[2, 6, 6, 8], 2],
    [[7, 1, 24], 1],
    [[3, 50, 8], 2],
    [[1, 2, 2, 160], 80],
  ];
  for (const [shape, groups] of gn) {
    const c = shape[shape.length - 1], n = shape.reduce((a, b) => a * b, 1);
    const inputs = [{ data: rng.normal(n).map((v) => 1.7 * v + 0.6), shape }, ...params(c)];
    const r = rng.normal(n);
    for (const silu of [false, true]) {
      out.push({
        what: `groupNorm [${shape}] groups=${groups} silu=${silu}`,
        inputs,
        r,
        layer: ([x, w, b]) =>
          groupNorm({ "gn.weight": w, "gn.bias": b }, "gn", x, { groups, silu }),
      });
    }
  }
  // 65,600 rows: more (sample, group) workgroups than a dispatch dimension allows (65,535), so
  // tfjs-webgpu folds the dispatch into y and z.
  for (const shape of [[5, 8], [2, 7, 16], [3, 1, 6], [2, 9, 96], [65600, 1, 3]]) {
    const d = shape[shape.length - 1], n = shape.reduce((a, b) => a * b, 1);
    out.push({
      what: `layerNorm [${shape}]`,
      inputs: [{ data: rng.normal(n).map((v) => 2.3 * v - 0.8), shape }, ...params(d)],
      r: rng.normal(n),
      layer: ([x, w, b]) => layerNorm({ "ln.weight": w, "ln.bias": b }, "ln", x),
    });
  }
  return out;
}

Deno.test("webgpu fused groupNorm(+silu) and layerNorm equal composed ops on stock cpu", async () => {
  if (!(await webgpuAdapterInfo())) return;
  await initBackend("webgpu", { quiet: true });
  assert.equal(fusedNormActive(), true);
  // SiLU/GELU/softmax stay composed on webgpu.
  assert.equal(fusedKernelsActive(), false);
  const cases = normCases();
  const gpu: NormRun[] = [];
  for (const c of cases) {
    const before = tf.memory().numTensors;
    gpu.push(await normRun(c.inputs, c.r, c.layer));
    // The kernels' statistics are owned by the tape and released with it.
    assert.equal(tf.memory().numTensors, before, `${c.what}: leaked tensors on webgpu`);
  }
  await initBackend("cpu-js", { quiet: true });
  assert.equal(fusedNormActive(), false);
  for (let i = 0; i < cases.length; i++) {
    const { what } = cases[i];
    const want = await normRun(cases[i].inputs, cases[i].r, cases[i].layer);
    assertClose(gpu[i].y, want.y, 1e-5, `${what} forward`);
    ["x", "gamma", "beta"].forEach((v, k) =>
      assertClose(gpu[i].grads[k], want.grads[k], 1e-4, `${what} d${v}`)
    );
    assert.ok(gpu[i].kernels.includes(FUSED_KERNELS.groupNorm), `${what}: fused kernel not used`);
    assert.ok(gpu[i].kernels.includes(FUSED_KERNELS.groupNormGrad), `${what}: no fused grad`);
    assert.ok(!gpu[i].kernels.includes("Mean"), `${what}: composed moments ran on webgpu`);
    assert.ok(!want.kernels.some((k) => k.startsWith("Xgen")), `${what}: fused on stock cpu`);
  }
});

Deno.test("webgpu norms: setFusedKernels(false) composes, and the kernel names match lib/nn", async () => {
  if (!(await webgpuAdapterInfo())) return;
  await initBackend("webgpu", { quiet: true });
  // lib/backend keeps its own copies of the names (no lib/nn import there).
  for (const k of [FUSED_KERNELS.groupNorm, FUSED_KERNELS.groupNormGrad]) {
    assert.ok(tf.getKernel(k, "webgpu"), `${k} not registered for webgpu`);
  }
  setFusedKernels(false);
  try {
    assert.equal(fusedNormActive(), false);
    const x = tf.tensor3d([[[1, 2, 3, 4]], [[0, -1, 5, 2]]]);
    const p = { "n.weight": tf.variable(tf.ones([4])), "n.bias": tf.variable(tf.zeros([4])) };
    const prof = await tf.profile(() => groupNorm(p, "n", x, { groups: 2, silu: true }));
    assert.ok(!prof.kernels.some((k) => k.name.startsWith("Xgen")));
    tf.dispose([x, ...Object.values(p), prof.result as tf.Tensor]);
  } finally {
    setFusedKernels(true);
  }
  assert.equal(fusedNormActive(), true);
  // The fused SiLU has no webgpu kernel: a clear error, not a silent fallback.
  const t = tf.ones([2, 4]);
  assert.throws(() => fusedSilu(t), /active is "webgpu", which has no XgenSilu kernel/);
  tf.dispose(t);
});
