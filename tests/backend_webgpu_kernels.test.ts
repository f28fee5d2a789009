/**
 * The kit's webgpu kernels (lib/backend/webgpu_kernels.ts) against the stock cpu backend:
 * Conv2DBackpropFilter as im2col + matmul over strides, paddings, odd sizes and 1x1 filters.
 * Runs where a WebGPU adapter exists (CI installs Mesa's lavapipe, so it runs there).
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend, webgpuAdapterInfo } from "../lib/backend/mod.ts";
import { Rng } from "../lib/util/rng.ts";
import "../lib/nn/gradients.ts";

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
