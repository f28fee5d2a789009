import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { initBackend } from "../lib/backend/mod.ts";
import { AdamW } from "../lib/train/optim.ts";
import { adamWValues, fusedAdamWActive } from "../lib/train/fused_adamw.ts";
import { Rng } from "../lib/util/rng.ts";

Deno.test("adamWValues matches the AdamW formula computed by hand", () => {
  // One element: p=1, g=0.5, m=v=0, b1=0.9, b2=0.999, t=1, lr=0.1, decay 1-0.1*0.01.
  // m' = 0.05, v' = 0.00025, bias corrections 0.1 and 0.001: mhat = 0.5, vhat = 0.25,
  // p' = 0.999 - 0.1 * 0.5 / (0.5 + 1e-8) = 0.899 (to 1e-7).
  const [p, m, v] = adamWValues(
    new Float32Array([1]),
    new Float32Array([0.5]),
    new Float32Array([0]),
    new Float32Array([0]),
    {
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      stepSize: 0.1 / 0.1,
      sqrtBc2: Math.sqrt(0.001),
      decay: 0.999,
    },
    (n) => new Float32Array(n),
  );
  assert.ok(Math.abs(m[0] - 0.05) < 1e-8);
  assert.ok(Math.abs(v[0] - 0.00025) < 1e-9);
  assert.ok(Math.abs(p[0] - 0.899) < 1e-6, `p' = ${p[0]}`);
});

Deno.test("fused AdamW on the cpu backend equals the composed update on stock cpu", async () => {
  const info = await initBackend("cpu", { quiet: true });
  if (!info.blas) return; // no OpenBLAS: the cpu backend is stock and never fuses
  const shapes: Record<string, number[]> = { w: [7, 5], b: [5], k: [3, 3, 2, 4] };
  const run = async (backend: string) => {
    await tf.setBackend(backend);
    const rng = Rng.stream(3);
    const params: Record<string, tf.Variable> = {};
    for (const [k, s] of Object.entries(shapes)) {
      params[k] = tf.variable(
        tf.tensor(rng.normal(s.reduce((a, b) => a * b)), s),
        true,
        `${backend}.${k}`,
      );
    }
    const opt = new AdamW(params, { weightDecay: 0.05 });
    assert.equal(fusedAdamWActive(), backend !== "cpu");
    for (let step = 0; step < 3; step++) {
      const grads: Record<string, tf.Tensor> = {};
      for (const [k, s] of Object.entries(shapes)) {
        grads[k] = tf.tensor(rng.normal(s.reduce((a, b) => a * b)), s);
      }
      const before = tf.memory().numTensors;
      opt.step(grads, 1e-2);
      assert.equal(tf.memory().numTensors, before, "no tensors leaked by a step");
      tf.dispose(Object.values(grads));
    }
    const out: Record<string, Float32Array> = {};
    for (const [k, p] of Object.entries(params)) out[k] = new Float32Array(await p.data());
    opt.dispose();
    tf.dispose(Object.values(params));
    return out;
  };
  const fused = await run(info.tfBackend);
  const composed = await run("cpu");
  for (const k of Object.keys(shapes)) {
    for (let i = 0; i < fused[k].length; i++) {
      const a = fused[k][i], b = composed[k][i];
      assert.ok(Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b)), `${k}[${i}]: ${a} vs ${b}`);
    }
  }
});
