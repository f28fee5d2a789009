/**
 * The compiled step's mixed-precision mode (lib/compiled/mixed_precision.ts): mixed kernels
 * against the float32 ones op by op, a tiny UNet trained 30 steps mixed against float32 from the
 * same init and data (within the noise of float32), dynamic loss scaling (an overflow skips the
 * step and halves the scale; good steps grow it) and the activation memory saved. Skipped, with
 * the reason printed, without a WebGPU adapter or without its `shader-f16` feature.
 */
import assert from "node:assert/strict";
import { initBackend } from "../lib/backend/mod.ts";
import {
  compileGraph,
  compileTrainStep,
  Graph,
  requestStepDevice,
  unetTrainingGraph,
} from "../lib/compiled/mod.ts";
import { initUnetArrays, UNET_PRESETS } from "../lib/models/unet.ts";
import { Rng, STREAM } from "../lib/util/rng.ts";
import { relErr, webgpuForTests } from "./helpers/webgpu.ts";

await initBackend("cpu-js", { quiet: true });

const { adapter, device, skip: ignore } = await webgpuForTests("compiled_mixed_precision", {
  f16: true,
});

Deno.test("mixed precision: a device without shader-f16 is refused in one line", async () => {
  const stub = { features: new Set<string>(), info: { description: "stub adapter" } };
  await assert.rejects(
    () => requestStepDevice(stub as unknown as GPUAdapter, "mixed"),
    /needs the shader-f16 feature, which adapter "stub adapter" lacks/,
  );
  if (!adapter) return;
  const plain = await adapter.requestDevice();
  const g = new Graph();
  g.output("y", g.add("silu", [g.input("x", [4])]));
  await assert.rejects(() => compileGraph(g, plain, { precision: "mixed" }), /shader-f16/);
  plain.destroy();
});

Deno.test({
  name: "mixed precision: each op's mixed kernel against its float32 kernel",
  ignore,
  async fn() {
    // Every op under test feeds a `mulScalar` by 1 whose value is the graph output (outputs stay
    // float32), so the op's own value is stored as float16 where the plan says so.
    const g = new Graph();
    const x = g.input("x", [2, 8, 8, 8]), dy = g.input("dy", [2, 8, 8, 16]);
    const w = g.input("w", [3, 3, 8, 16], "float32", "param");
    const bias = g.input("b", [16], "float32", "param");
    const w1 = g.input("w1", [1, 1, 8, 8], "float32", "param");
    const gamma = g.input("gamma", [16], "float32", "param");
    const beta = g.input("beta", [16], "float32", "param");
    const a = g.input("a", [24, 40]), bm = g.input("bm", [40, 20], "float32", "param");
    const q = g.input("q", [2, 16, 32]),
      k = g.input("k", [2, 12, 32]),
      v = g.input("v", [2, 12, 32]);
    const out = (name: string, n: ReturnType<Graph["add"]>) =>
      g.output(name, g.add("mulScalar", [n], { s: 1 }));
    const conv = g.add("conv2d", [x, w, bias], { stride: 1, pad: [1, 1] });
    out("conv2d", conv);
    out("silu", g.add("silu", [conv]));
    out("groupNorm", g.add("groupNorm", [conv, gamma, beta], { groups: 4, eps: 1e-5, silu: true }));
    out("matMul", g.add("matMul", [a, bm]));
    out("attention", g.add("attention", [q, k, v], { heads: 2 }));
    out(
      "conv2dBackpropInput",
      g.add("conv2dBackpropInput", [dy, w], {
        stride: 1,
        pad: [1, 1],
        inputShape: [2, 8, 8, 8],
      }),
    );
    out(
      "conv2dBackpropFilter",
      // On float16 activations, as in the step: a 1x1 convolution of x, and the conv's output.
      g.add("conv2dBackpropFilter", [g.add("conv2d", [x, w1], { stride: 1, pad: [0, 0] }), conv], {
        stride: 1,
        pad: [1, 1],
        filterShape: [3, 3, 8, 16],
      }),
    );
    const rng = Rng.stream(5, [0, STREAM.noise]);
    const feeds: Record<string, Float32Array> = {};
    for (const [name, n] of g.inputs) {
      feeds[name] = rng.normal(n.shape.reduce((p, c) => p * c, 1));
      if (name === "w" || name === "w1") feeds[name] = feeds[name].map((z) => z * 0.1);
    }
    const f32 = await compileGraph(g, device!);
    const mixed = await compileGraph(g, device!, { precision: "mixed" });
    assert.equal(mixed.stats.halfValues, 7); // all but conv2dBackpropFilter (a reduction)
    const want = await f32.run(feeds), got = await mixed.run(feeds);
    // Float16 keeps 11 significant bits (unit roundoff u = 2^-11 = 4.9e-4): rounding the inputs
    // and the stored result, with float32 sums, costs a few u relative to the output's scale.
    // The bound is 4u = 2.0e-3 relative to max |f32 result| (measured: 0.9u to 1.4u), and the error must be above 1e-6
    // (else float16 was not used at all).
    for (const name of f32.outputNames) {
      const e = relErr(got[name], want[name]);
      console.log(`  ${name}: ${e.toExponential(2)}`);
      assert.ok(e < 4 / 2048, `${name}: relative error ${e.toExponential(2)} above 4u`);
      assert.ok(e > 1e-6, `${name}: identical to float32 (${e}): float16 unused?`);
    }
    f32.destroy();
    mixed.destroy();
  },
});

const CFG = UNET_PRESETS.tiny;
const [B, H, W, TOK] = [2, 8, 8, 4];

function initParams(seed: number): Record<string, Float32Array> {
  return initUnetArrays(CFG, Rng.stream(seed, [0, STREAM.init]));
}

/** A fixed set of 4 batches; `order` picks which batch each step sees. */
function batches(seed: number): Record<string, Float32Array>[] {
  const rng = Rng.stream(seed, [0, STREAM.noise]);
  return Array.from({ length: 4 }, () => {
    const x = rng.normal(B * H * W * CFG.inChannels);
    return {
      x,
      t: Float32Array.from({ length: B }, () => Math.floor(rng.uniform() * 1000)),
      context: rng.normal(B * TOK * CFG.contextDim),
      // A learnable target (a function of x) so the loss falls.
      target: x.map((z, i) => 0.5 * z + 0.1 * (i % 3)),
      weights: new Float32Array(B).fill(1),
    };
  });
}

async function train(
  precision: "f32" | "mixed",
  data: Record<string, Float32Array>[],
  order: number[],
): Promise<{ losses: number[]; pooledBytes: number; skipped: number }> {
  const graph = unetTrainingGraph({ cfg: CFG, batch: B, height: H, width: W, tokens: TOK });
  const step = await compileTrainStep(graph, device!, {
    precision,
    clipNorm: 1,
    ema: { decay: 0.99 },
  });
  step.setParams(initParams(11));
  const losses: number[] = [];
  for (const i of order) losses.push(await step.step(data[i], 2e-3));
  const ls = await step.readLossScale();
  const out = { losses, pooledBytes: step.exe.stats.pooledBytes, skipped: ls?.skipped ?? 0 };
  step.destroy();
  return out;
}

Deno.test({
  name: "mixed precision: a tiny UNet's 30-step loss curve stays within float32's noise",
  ignore,
  async fn() {
    const steps = 30;
    const data = batches(3);
    const orderA = Array.from({ length: steps }, (_, i) => i % 4);
    const orderB = Array.from({ length: steps }, (_, i) => (i * 3 + 1) % 4); // same data, reordered
    const a = await train("f32", data, orderA);
    const b = await train("f32", data, orderB);
    const m = await train("mixed", data, orderA);
    assert.equal(m.skipped, 0);
    assert.ok(m.losses.every(Number.isFinite));
    const last = (xs: number[]) => xs.slice(-10);
    const mean = (xs: number[]) => xs.reduce((p, c) => p + c, 0) / xs.length;
    // Noise of float32: how far the mean loss over the last 10 steps moves when the same data
    // come in another order (two float32 runs). Mixed against float32 on the same order must
    // stay well inside it: its last-10 mean within the noise, and each of its last 10 losses
    // within 2% of float32's.
    const noise = Math.abs(mean(last(a.losses)) - mean(last(b.losses)));
    const diff = Math.abs(mean(last(m.losses)) - mean(last(a.losses)));
    console.log(
      `  last-10 mean loss: f32 ${mean(last(a.losses)).toFixed(5)}, f32 reordered ` +
        `${mean(last(b.losses)).toFixed(5)}, mixed ${mean(last(m.losses)).toFixed(5)}; ` +
        `noise ${noise.toExponential(2)}, mixed - f32 ${diff.toExponential(2)}`,
    );
    assert.ok(a.losses[steps - 1] < 0.7 * a.losses[0], "float32 run did not learn");
    assert.ok(diff <= noise, `mixed differs by ${diff}, the float32 noise is ${noise}`);
    const rel = last(m.losses).map((l, i) => Math.abs(l - last(a.losses)[i]) / last(a.losses)[i]);
    assert.ok(Math.max(...rel) < 0.02, `per-step relative loss difference ${Math.max(...rel)}`);
    // Activation memory: the pooled intermediate buffers.
    console.log(`  pooled bytes: f32 ${a.pooledBytes}, mixed ${m.pooledBytes}`);
    assert.ok(m.pooledBytes < 0.65 * a.pooledBytes);
  },
});

Deno.test({
  name: "mixed precision: overflow skips the step and halves the scale; good steps grow it",
  ignore,
  async fn() {
    const graph = unetTrainingGraph({ cfg: CFG, batch: B, height: H, width: W, tokens: TOK });
    const data = batches(4)[0];
    const init = initParams(11);
    // 2^40 overflows float16 in the backward pass: every step is skipped, nothing moves.
    const big = await compileTrainStep(graph, device!, {
      precision: "mixed",
      lossScale: { init: 2 ** 40, growEvery: 2 },
    });
    big.setParams(init);
    for (let i = 0; i < 3; i++) assert.ok(Number.isFinite(await big.step(data, 1e-2)));
    assert.deepEqual(await big.readLossScale(), {
      scale: 2 ** 37,
      applied: 0,
      goodSteps: 0,
      skipped: 3,
    });
    const after = await big.readParams();
    for (const k of Object.keys(init)) assert.deepEqual(after[k], init[k], k);
    assert.equal((await big.readState()).t, 0);
    big.destroy();
    // A small scale never overflows: doubled every 2 good steps.
    const small = await compileTrainStep(graph, device!, {
      precision: "mixed",
      lossScale: { init: 4, growEvery: 2 },
    });
    small.setParams(init);
    for (let i = 0; i < 5; i++) await small.step(data, 1e-2);
    assert.deepEqual(await small.readLossScale(), {
      scale: 16,
      applied: 5,
      goodSteps: 1,
      skipped: 0,
    });
    assert.equal((await small.readState()).t, 5);
    small.destroy();
  },
});
