import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { initBackend, webgpuAdapterInfo } from "../lib/backend/mod.ts";
import { AdamW } from "../lib/train/optim.ts";
import { adamWValues, fusedAdamWActive } from "../lib/train/fused_adamw.ts";
import { Rng } from "../lib/util/rng.ts";
import { assertClose } from "./helpers/assert_close.ts";

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

const SHAPES: Record<string, number[]> = { w: [7, 5], b: [5], k: [3, 3, 2, 4] };

/** Three AdamW steps on `backend` from seeded params and grads; the final params. */
async function runAdamW(backend: string, fused: boolean): Promise<Record<string, Float32Array>> {
  await tf.setBackend(backend);
  const rng = Rng.stream(3);
  const params: Record<string, tf.Variable> = {};
  for (const [k, s] of Object.entries(SHAPES)) {
    params[k] = tf.variable(
      tf.tensor(rng.normal(s.reduce((a, b) => a * b)), s),
      true,
      `${backend}.${k}`,
    );
  }
  const opt = new AdamW(params, { weightDecay: 0.05 });
  assert.equal(fusedAdamWActive(), fused, `fused update on ${backend}`);
  for (let step = 0; step < 3; step++) {
    const grads: Record<string, tf.Tensor> = {};
    for (const [k, s] of Object.entries(SHAPES)) {
      grads[k] = tf.tensor(rng.normal(s.reduce((a, b) => a * b)), s);
    }
    const before = tf.memory().numTensors;
    const prof = await tf.profile(() => opt.step(grads, 1e-2));
    assert.equal(tf.memory().numTensors, before, "no tensors leaked by a step");
    const names = prof.kernels.map((k) => k.name);
    // The fused path is one kernel per parameter (plus the variables' assigns, no arithmetic).
    assert.equal(names.filter((n) => n === "XgenAdamW").length, fused ? 3 : 0, names.join());
    if (fused) assert.ok(!names.includes("Sqrt") && !names.includes("RealDiv"), names.join());
    tf.dispose(Object.values(grads));
  }
  const out: Record<string, Float32Array> = {};
  for (const [k, p] of Object.entries(params)) out[k] = new Float32Array(await p.data());
  opt.dispose();
  tf.dispose(Object.values(params));
  return out;
}

/** Every parameter element-wise within tol * max(1, |b|). */
function assertParamsClose(
  a: Record<string, Float32Array>,
  b: Record<string, Float32Array>,
  tol: number,
) {
  for (const k of Object.keys(SHAPES)) {
    assertClose(a[k], b[k], tol, k, { scale: "each", minScale: 1 });
  }
}

Deno.test("fused AdamW on the cpu backend equals the composed update on stock cpu", async () => {
  const info = await initBackend("cpu-blas", { quiet: true });
  if (!info.blas) return; // no OpenBLAS: the cpu backend is stock and never fuses
  assertParamsClose(await runAdamW(info.tfBackend, true), await runAdamW("cpu", false), 1e-6);
});

Deno.test("fused AdamW on webgpu (three WGSL programs) equals the composed update", async () => {
  if (!(await webgpuAdapterInfo())) return; // no adapter (CI installs lavapipe, so it runs there)
  const info = await initBackend("webgpu", { quiet: true });
  const gpu = await runAdamW(info.tfBackend, true);
  await initBackend("cpu-blas", { quiet: true });
  // float32 throughout on the GPU against float32 composed kernels: a few ulps after 3 steps.
  assertParamsClose(gpu, await runAdamW("cpu", false), 2e-6);
});
