import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import {
  countParamsForConfig,
  initUnet,
  resolveUnetConfig,
  UNET_PRESETS,
  type UnetConfig,
  unetForward,
  unetParamShapes,
} from "../lib/models/mod.ts";
import { countParams, disposeParams, paramNames } from "../lib/nn/mod.ts";
import { Rng } from "../lib/util/rng.ts";

await tf.setBackend("cpu");

const randn = (rng: Rng, shape: number[]) =>
  tf.tensor(rng.normal(shape.reduce((a, b) => a * b, 1)), shape);
const maxDiff = (a: tf.Tensor, b: tf.Tensor) =>
  tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);

Deno.test("SD v1.5 UNet preset has exactly 859,520,964 parameters (counted from shapes)", () => {
  const before = tf.memory().numTensors;
  assert.equal(countParamsForConfig(UNET_PRESETS.sd15), 859_520_964);
  assert.equal(tf.memory().numTensors, before, "no tensors allocated");
  const s = unetParamShapes(UNET_PRESETS.sd15);
  assert.deepEqual(s["conv_in.weight"], [3, 3, 4, 320]);
  assert.deepEqual(s["time_embedding.linear_1.weight"], [320, 1280]);
  assert.deepEqual(s["down_blocks.1.resnets.0.conv_shortcut.weight"], [1, 1, 320, 640]);
  assert.deepEqual(s["down_blocks.2.attentions.1.transformer_blocks.0.attn2.to_k.weight"], [
    768,
    1280,
  ]);
  assert.deepEqual(s["down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj.weight"], [
    320,
    2560,
  ]);
  assert.deepEqual(s["up_blocks.0.resnets.2.conv1.weight"], [3, 3, 2560, 1280]);
  assert.deepEqual(s["up_blocks.3.resnets.2.conv1.weight"], [3, 3, 640, 320]);
  assert.equal(s["down_blocks.3.attentions.0.norm.weight"], undefined);
  assert.equal(s["up_blocks.3.upsamplers.0.conv.weight"], undefined);
  // Linear projections have the same count as 1x1 convs.
  assert.equal(
    countParamsForConfig({ ...UNET_PRESETS.sd15, useLinearProjection: true }),
    859_520_964,
  );
  // headDim 40 at 320 channels means 8 heads there but more heads deeper: same weights.
  assert.equal(
    countParamsForConfig({ ...UNET_PRESETS.sd15, numHeads: undefined, headDim: 40 }),
    859_520_964,
  );
});

Deno.test("small preset is a 1-3M parameter model; config errors name the field", () => {
  const n = countParamsForConfig(UNET_PRESETS.small);
  assert.ok(n > 1e6 && n < 3e6, `small has ${n}`);
  const t = UNET_PRESETS.tiny;
  assert.throws(() => resolveUnetConfig({ ...t, attentionLevels: [true] }), /attentionLevels/);
  assert.throws(
    () => resolveUnetConfig({ ...t, headDim: 8 }),
    /exactly one of numHeads and headDim/,
  );
  assert.throws(() => resolveUnetConfig({ ...t, blockChannels: [16, 30] }), /blockChannels: 30/);
  assert.throws(() => countParamsForConfig({ ...t, numHeads: 3 }), /heads/);
});

Deno.test("tiny UNet: output shape, context and timestep matter, masked tokens do not, grads reach every weight", () => {
  const cfg: UnetConfig = UNET_PRESETS.tiny;
  const rng = Rng.stream(21);
  const p = initUnet(cfg, Rng.stream(1, [0, 5]));
  const x = randn(rng, [2, 8, 8, 4]) as tf.Tensor4D;
  const t = tf.tensor1d([10, 700]);
  const context = randn(rng, [2, 6, cfg.contextDim]) as tf.Tensor3D;
  const y = unetForward(p, cfg, { x, t, context });
  assert.deepEqual(y.shape, [2, 8, 8, 4]);

  const context2 = tf.add(context, randn(rng, [2, 6, cfg.contextDim])) as tf.Tensor3D;
  assert.ok(maxDiff(y, unetForward(p, cfg, { x, t, context: context2 })) > 1e-4, "context used");
  assert.ok(
    maxDiff(y, unetForward(p, cfg, { x, t: tf.tensor1d([11, 700]), context })) > 1e-5,
    "t used",
  );

  // Masking the last two tokens makes the output independent of them.
  const mask = tf.tensor2d([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 0, 0]]);
  const ctxTail = tf.concat([
    tf.slice(context, [0, 0, 0], [2, 4, -1]),
    tf.fill([2, 2, cfg.contextDim], 3),
  ], 1) as tf.Tensor3D;
  const m1 = unetForward(p, cfg, { x, t, context, contextMask: mask });
  const m2 = unetForward(p, cfg, { x, t, context: ctxTail, contextMask: mask });
  assert.ok(maxDiff(m1, m2) < 1e-5, "masked tokens ignored");

  // Batch independence: sample 0 alone gives the same prediction as in the batch.
  const y0 = unetForward(p, cfg, {
    x: tf.slice(x, [0, 0, 0, 0], [1, -1, -1, -1]) as tf.Tensor4D,
    t: tf.tensor1d([10]),
    context: tf.slice(context, [0, 0, 0], [1, -1, -1]) as tf.Tensor3D,
  });
  assert.ok(maxDiff(y0, tf.slice(y, [0, 0, 0, 0], [1, -1, -1, -1])) < 1e-4);

  const before = tf.memory().numTensors;
  const t0 = performance.now();
  const { value, grads } = tf.variableGrads(
    () => tf.mean(tf.square(tf.sub(unetForward(p, cfg, { x, t, context }), x))) as tf.Scalar,
    Object.values(p),
  );
  const ms = performance.now() - t0;
  console.log(
    `tiny UNet (${countParams(p)} params) forward+backward [2,8,8,4]: ${ms.toFixed(0)} ms`,
  );
  assert.ok(Number.isFinite(value.dataSync()[0]));
  const zero = paramNames(p).filter((k) =>
    !(tf.tidy(() => tf.max(tf.abs(grads[p[k].name])).dataSync()[0]) > 0)
  );
  assert.deepEqual(zero, [], "every weight gets a nonzero gradient");
  tf.dispose([value, ...Object.values(grads)]);
  assert.equal(tf.memory().numTensors, before, "no leaked tensors");

  assert.throws(
    () => unetForward(p, cfg, { x: tf.zeros([2, 6, 7, 4]) as tf.Tensor4D, t, context }),
    /divisible by 2/,
  );
  assert.throws(() => unetForward(p, cfg, { x, t: tf.tensor1d([1]), context }), /t must be \[2\]/);
  assert.throws(
    () => unetForward(p, cfg, { x, t, context: tf.zeros([2, 6, 5]) as tf.Tensor3D }),
    /context must be/,
  );
  disposeParams(p);
});

Deno.test("same Rng seed gives identical UNet weights; linear-projection variant runs", () => {
  const cfg = { ...UNET_PRESETS.tiny, useLinearProjection: true };
  const a = initUnet(cfg, Rng.stream(7, [0, 5]));
  const b = initUnet(cfg, Rng.stream(7, [0, 5]));
  const c = initUnet(cfg, Rng.stream(8, [0, 5]));
  assert.deepEqual(paramNames(a), paramNames(b));
  for (const k of paramNames(a)) assert.deepEqual(a[k].dataSync(), b[k].dataSync(), k);
  assert.notDeepEqual(a["conv_in.weight"].dataSync(), c["conv_in.weight"].dataSync());
  assert.deepEqual(a["down_blocks.1.attentions.0.proj_in.weight"].shape, [32, 32]);
  const y = unetForward(a, cfg, {
    x: tf.ones([1, 8, 8, 4]) as tf.Tensor4D,
    t: tf.tensor1d([5]),
    context: tf.ones([1, 3, cfg.contextDim]) as tf.Tensor3D,
  });
  assert.deepEqual(y.shape, [1, 8, 8, 4]);
  assert.equal(countParams(a), countParamsForConfig(UNET_PRESETS.tiny));
  for (const p of [a, b, c]) disposeParams(p);
});
