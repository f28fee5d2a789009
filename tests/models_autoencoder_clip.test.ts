import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import {
  AUTOENCODER_PRESETS,
  autoencoderForward,
  autoencoderLoss,
  CLIP_LOGIT_SCALE_INIT,
  CLIP_PRESETS,
  clipForward,
  clipLoss,
  decode,
  downsampleFactor,
  encode,
  encodeImage,
  encodeText,
  estimateScalingFactor,
  initAutoencoder,
  initClip,
  klDivergence,
  latentShape,
  sampleLatent,
} from "../lib/models/mod.ts";
import { disposeParams, paramNames, type Params } from "../lib/nn/mod.ts";
import { Rng } from "../lib/util/rng.ts";

await tf.setBackend("cpu");

const randn = (rng: Rng, shape: number[]) =>
  tf.tensor(rng.normal(shape.reduce((a, b) => a * b, 1)), shape);
const maxDiff = (a: tf.Tensor, b: tf.Tensor) =>
  tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);

function zeroGradNames(p: Params, loss: () => tf.Scalar): string[] {
  const { value, grads } = tf.variableGrads(loss, Object.values(p));
  const zero = paramNames(p).filter((k) =>
    !(tf.tidy(() => tf.max(tf.abs(grads[p[k].name])).dataSync()[0]) > 0)
  );
  tf.dispose([value, ...Object.values(grads)]);
  return zero;
}

Deno.test("autoencoder: f=4 latent shape, decode shape, sampling, KL closed form, grads reach every weight", () => {
  const cfg = AUTOENCODER_PRESETS.tiny;
  assert.equal(downsampleFactor(cfg), 4);
  assert.deepEqual(latentShape(cfg, 32, 32), [8, 8, 4]);
  assert.deepEqual(latentShape({ ...cfg, blockChannels: [8, 16] }, 32, 32), [16, 16, 4]);
  assert.throws(() => latentShape(cfg, 30, 32), /divisible by f=4/);
  const rng = Rng.stream(31);
  const p = initAutoencoder(cfg, Rng.stream(2, [0, 5]));
  const image = tf.tanh(randn(rng, [2, 16, 16, 3])) as tf.Tensor4D;
  const dist = encode(p, cfg, image);
  assert.deepEqual(dist.mean.shape, [2, 4, 4, 4]);
  assert.deepEqual(dist.logvar.shape, [2, 4, 4, 4]);
  assert.deepEqual(decode(p, cfg, dist.mean).shape, [2, 16, 16, 3]);
  assert.equal(maxDiff(autoencoderForward(p, cfg, { image }), decode(p, cfg, dist.mean)), 0);
  const zeros = tf.zeros([2, 4, 4, 4]) as tf.Tensor4D;
  assert.equal(maxDiff(sampleLatent(dist, zeros), dist.mean), 0);
  const noise = randn(rng, [2, 4, 4, 4]) as tf.Tensor4D;
  const z = sampleLatent(dist, noise);
  const want = tf.add(dist.mean, tf.mul(tf.sqrt(tf.exp(dist.logvar)), noise));
  assert.ok(maxDiff(z, want) < 1e-5);

  // KL of N(m, e^lv) from N(0,1): 0.5 * sum(m^2 + e^lv - 1 - lv) / B.
  const m = [0.5, -1, 0, 2], lv = [0, 1, -2, 0.3];
  const kl = klDivergence({
    mean: tf.tensor(m, [1, 1, 2, 2]) as tf.Tensor4D,
    logvar: tf.tensor(lv, [1, 1, 2, 2]) as tf.Tensor4D,
  }).dataSync()[0];
  const klWant = 0.5 * m.reduce((s, mi, i) => s + mi * mi + Math.exp(lv[i]) - 1 - lv[i], 0);
  assert.ok(Math.abs(kl - klWant) < 1e-5, `${kl} vs ${klWant}`);
  assert.equal(klDivergence({ mean: zeros, logvar: zeros }).dataSync()[0], 0);

  const out = autoencoderLoss(p, cfg, { image, noise, klWeight: 0.5, reconstruction: "l2" });
  const rec = tf.mean(tf.square(tf.sub(decode(p, cfg, z), image))).dataSync()[0];
  assert.ok(Math.abs(out.recon.dataSync()[0] - rec) < 1e-5);
  const total = rec + 0.5 * out.kl.dataSync()[0] / (16 * 16 * 3);
  assert.ok(Math.abs(out.loss.dataSync()[0] - total) < 1e-5);
  assert.throws(
    () => autoencoderLoss(p, cfg, { image, noise: zeros, reconstruction: "l3" as "l1" }),
    /"l1" or "l2"/,
  );
  assert.throws(() => encode(p, cfg, tf.zeros([1, 16, 16, 4]) as tf.Tensor4D), /\[B,H,W,3\]/);

  assert.deepEqual(
    zeroGradNames(p, () => autoencoderLoss(p, cfg, { image, noise, klWeight: 1 }).loss),
    [],
  );
  disposeParams(p);
});

Deno.test("estimateScalingFactor is 1/std", () => {
  const v = new Float32Array([3, -3, 3, -3, 3, -3]);
  assert.ok(Math.abs(estimateScalingFactor(v) - 1 / 3) < 1e-7);
  const r = Rng.stream(3).normal(20000).map((x) => 5.5 * x + 1);
  assert.ok(Math.abs(estimateScalingFactor(r) * 5.5 - 1) < 0.03);
  assert.throws(() => estimateScalingFactor(new Float32Array([2, 2, 2])), /positive finite/);
  assert.throws(() => estimateScalingFactor(new Float32Array(1)), /at least 2/);
});

Deno.test("clipLoss: aligned embeddings -> ~0, all-equal logits -> log(B), matches direct formula", () => {
  const B = 4;
  const eye = tf.eye(B) as tf.Tensor2D;
  const aligned = clipLoss(eye, tf.mul(eye, 3) as tf.Tensor2D, Math.log(1000)).dataSync()[0];
  assert.ok(aligned >= 0 && aligned < 1e-6, `aligned ${aligned}`);
  const same = tf.ones([B, 5]) as tf.Tensor2D;
  assert.ok(Math.abs(clipLoss(same, same, 2).dataSync()[0] - Math.log(B)) < 1e-5);

  const rng = Rng.stream(4);
  const t = randn(rng, [3, 5]) as tf.Tensor2D, im = randn(rng, [3, 5]) as tf.Tensor2D;
  const ta = t.arraySync(), ia = im.arraySync();
  const unit = (v: number[]) => v.map((x) => x / Math.hypot(...v));
  const s = Math.exp(1.3);
  const L = ia.map((a) =>
    ta.map((b) => s * unit(a).reduce((acc, x, k) => acc + x * unit(b)[k], 0))
  );
  const ce = (M: number[][]) =>
    -M.reduce(
      (acc, row, i) => acc + row[i] - Math.log(row.reduce((z, x) => z + Math.exp(x), 0)),
      0,
    ) /
    M.length;
  const LT = L[0].map((_, j) => L.map((row) => row[j]));
  const want = (ce(L) + ce(LT)) / 2;
  assert.ok(Math.abs(clipLoss(t, im, tf.scalar(1.3)).dataSync()[0] - want) < 1e-5);
  assert.throws(() => clipLoss(t, tf.ones([2, 5]) as tf.Tensor2D, 1), /differ/);
});

Deno.test("clipLoss with hard negatives: NegCLIP's image->text softmax over captions + negatives", () => {
  const rng = Rng.stream(5);
  const t = randn(rng, [3, 4]) as tf.Tensor2D, im = randn(rng, [3, 4]) as tf.Tensor2D;
  const neg = randn(rng, [2, 4]) as tf.Tensor2D;
  const unit = (v: number[]) => v.map((x) => x / Math.hypot(...v));
  const dot = (a: number[], b: number[]) => unit(a).reduce((acc, x, k) => acc + x * unit(b)[k], 0);
  const s = Math.exp(0.7);
  const ta = t.arraySync(), ia = im.arraySync(), na = neg.arraySync();
  const lse = (row: number[]) => Math.log(row.reduce((z, x) => z + Math.exp(x), 0));
  // image i: softmax over the 3 true captions and the 2 negatives, target caption i.
  const i2t = -ia.reduce((acc, a, i) => {
    const row = [...ta.map((b) => s * dot(a, b)), ...na.map((b) => s * dot(a, b))];
    return acc + row[i] - lse(row);
  }, 0) / 3;
  // caption j: softmax over the 3 images only.
  const t2i = -ta.reduce((acc, b, j) => {
    const row = ia.map((a) => s * dot(a, b));
    return acc + row[j] - lse(row);
  }, 0) / 3;
  const got = clipLoss(t, im, 0.7, { negativeTextEmbeds: neg }).dataSync()[0];
  assert.ok(Math.abs(got - (i2t + t2i) / 2) < 1e-5, `${got} vs ${(i2t + t2i) / 2}`);
  // Negatives only add competitors: the loss can only grow.
  assert.ok(got > clipLoss(t, im, 0.7).dataSync()[0]);
  assert.throws(
    () => clipLoss(t, im, 1, { negativeTextEmbeds: tf.ones([2, 3]) as tf.Tensor2D }),
    /must have width 4/,
  );
});

Deno.test("CLIP: shapes, causal text, EOS pooling, logit scale init, grads reach every weight", () => {
  const cfg = CLIP_PRESETS.tiny;
  const p = initClip(cfg, Rng.stream(5, [0, 5]));
  assert.ok(Math.abs(p["logit_scale"].dataSync()[0] - Math.log(1 / 0.07)) < 1e-6);
  assert.equal(CLIP_LOGIT_SCALE_INIT, Math.log(1 / 0.07));
  const row = (words: number[]) => {
    const r = new Array(cfg.contextLength).fill(0);
    [2, ...words, 3].forEach((w, i) => r[i] = w);
    return r;
  };
  const ids = tf.tensor2d([row([10, 11, 12]), row([13, 14])], undefined, "int32");
  const { hidden, embeds } = encodeText(p, cfg, ids);
  assert.deepEqual(hidden.shape, [2, cfg.contextLength, cfg.textWidth]);
  assert.deepEqual(embeds.shape, [2, cfg.embedDim]);

  // Tokens after the end token change neither the pooled embedding nor earlier hidden states.
  const tail = row([10, 11, 12]);
  tail[8] = 40;
  tail[12] = 41;
  const ids2 = tf.tensor2d([tail, row([13, 14])], undefined, "int32");
  const enc2 = encodeText(p, cfg, ids2);
  assert.ok(maxDiff(enc2.embeds, embeds) < 1e-5);
  assert.ok(
    maxDiff(tf.slice(enc2.hidden, [0, 0, 0], [1, 5, -1]), tf.slice(hidden, [0, 0, 0], [1, 5, -1])) <
      1e-5,
  );
  assert.ok(
    maxDiff(tf.slice(enc2.hidden, [0, 8, 0], [1, 1, -1]), tf.slice(hidden, [0, 8, 0], [1, 1, -1])) >
      1e-4,
  );
  // A different word before the end token changes the embedding.
  const enc3 = encodeText(
    p,
    cfg,
    tf.tensor2d([row([10, 20, 12]), row([13, 14])], undefined, "int32"),
  );
  assert.ok(
    maxDiff(tf.slice(enc3.embeds, [0, 0], [1, -1]), tf.slice(embeds, [0, 0], [1, -1])) > 1e-4,
  );
  assert.ok(
    maxDiff(tf.slice(enc3.embeds, [1, 0], [1, -1]), tf.slice(embeds, [1, 0], [1, -1])) < 1e-5,
  );
  // The pooled embedding is the projection of the hidden state at the end-token position.
  const h4 = tf.reshape(tf.slice(hidden, [0, 4, 0], [1, 1, -1]), [1, cfg.textWidth]);
  const proj = tf.matMul(h4 as tf.Tensor2D, p["text_projection.weight"] as tf.Tensor2D);
  assert.ok(maxDiff(proj, tf.slice(embeds, [0, 0], [1, -1])) < 1e-5);

  const rng = Rng.stream(6);
  const images = tf.tanh(randn(rng, [2, cfg.imageSize, cfg.imageSize, 3])) as tf.Tensor4D;
  assert.deepEqual(encodeImage(p, cfg, images).shape, [2, cfg.embedDim]);
  assert.throws(
    () => encodeImage(p, cfg, tf.zeros([2, 8, 8, 3]) as tf.Tensor4D),
    /\[B, 16, 16, 3\]/,
  );
  assert.throws(() => encodeText(p, cfg, tf.zeros([2, cfg.contextLength]) as tf.Tensor2D), /int32/);

  // Rows of unused token ids get zero gradient; each weight tensor as a whole must not.
  const zero = zeroGradNames(p, () => clipForward(p, cfg, { ids, images }).loss);
  assert.deepEqual(zero, []);
  disposeParams(p);
});
