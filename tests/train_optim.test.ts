import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import {
  accumulateGrads,
  AdamW,
  clipGradNorm,
  computeGrads,
  constantLr,
  Ema,
  globalNorm,
  warmupCosine,
} from "../lib/train/mod.ts";
import { assertClose } from "./helpers/assert_close.ts";

await tf.setBackend("cpu");

/** |a - b| <= tol * max(1, |b|). */
const close = (a: number, b: number, tol: number, what: string) =>
  assertClose(a, b, tol, what, { scale: "each", minScale: 1 });

/** Plain float64 AdamW, written out from the paper's update rule, for comparison. */
function adamwRef(
  p0: number,
  gs: number[],
  o: { lr: number; b1: number; b2: number; eps: number; wd: number },
): number[] {
  let p = p0, m = 0, v = 0;
  const out: number[] = [];
  gs.forEach((g, i) => {
    const t = i + 1;
    p = p - o.lr * o.wd * p;
    m = o.b1 * m + (1 - o.b1) * g;
    v = o.b2 * v + (1 - o.b2) * g * g;
    const mh = m / (1 - o.b1 ** t);
    const vh = v / (1 - o.b2 ** t);
    p = p - (o.lr * mh) / (Math.sqrt(vh) + o.eps);
    out.push(p);
  });
  return out;
}

Deno.test("AdamW matches the closed-form update on scalars (decayed and not decayed)", () => {
  const w = tf.variable(tf.tensor2d([[1.0]]), true); // rank 2: decayed by default
  const b = tf.variable(tf.tensor1d([-0.5]), true); // rank 1: no decay by default
  const params = { "lin.weight": w, "lin.bias": b };
  const o = { lr: 0.1, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.1 };
  const opt = new AdamW(params, { beta1: o.b1, beta2: o.b2, eps: o.eps, weightDecay: o.wd });
  assert.equal(opt.hasDecay("lin.weight"), true);
  assert.equal(opt.hasDecay("lin.bias"), false);
  const gw = [0.5, -0.2, 0.3];
  const gb = [-1.0, 2.0, 0.25];
  const seenW: number[] = [];
  const seenB: number[] = [];
  for (let i = 0; i < 3; i++) {
    const g = { "lin.weight": tf.tensor2d([[gw[i]]]), "lin.bias": tf.tensor1d([gb[i]]) };
    opt.step(g, o.lr);
    tf.dispose(Object.values(g));
    seenW.push(w.dataSync()[0]);
    seenB.push(b.dataSync()[0]);
  }
  // Step 1 by hand: bias-corrected m/sqrt(v) is g/|g|, so p1 = p0 (1 - lr wd) - lr * sign(g).
  close(seenW[0], 1.0 * (1 - 0.01) - 0.1 * 0.5 / (0.5 + 1e-8), 1e-6, "w step 1");
  close(seenB[0], -0.5 + 0.1 * 1.0 / (1.0 + 1e-8), 1e-6, "b step 1");
  const refW = adamwRef(1.0, gw, o);
  const refB = adamwRef(-0.5, gb, { ...o, wd: 0 });
  for (let i = 0; i < 3; i++) {
    close(seenW[i], refW[i], 1e-6, `w step ${i + 1}`);
    close(seenB[i], refB[i], 1e-6, `b step ${i + 1}`);
  }
  assert.equal(opt.stepCount, 3);
  opt.dispose();
  tf.dispose([w, b]);
});

Deno.test("AdamW state round trip continues identically", async () => {
  const mk = () => ({ w: tf.variable(tf.tensor2d([[0.3, -0.7]]), true) });
  const pa = mk();
  const a = new AdamW(pa, { weightDecay: 0.05 });
  const grads = [[0.1, 0.2], [-0.3, 0.4], [0.5, -0.6]];
  const g = (i: number) => ({ w: tf.tensor2d([grads[i]]) });
  for (const i of [0, 1]) {
    const gi = g(i);
    a.step(gi, 0.01);
    tf.dispose(gi.w);
  }
  const st = await a.state();
  assert.deepEqual(Object.keys(st.tensors).sort(), ["m.w", "v.w"]);
  const pb = mk();
  pb.w.assign(pa.w);
  const b = new AdamW(pb, { weightDecay: 0.05 });
  b.loadState(st);
  const g2 = g(2);
  a.step(g2, 0.01);
  b.step(g2, 0.01);
  assert.deepEqual(Array.from(pa.w.dataSync()), Array.from(pb.w.dataSync()));
  assert.throws(
    () => b.loadState({ t: 1, tensors: { "x.w": st.tensors["m.w"] } }, "ckpt/optimizer"),
    /ckpt\/optimizer: unexpected tensor "x.w"/,
  );
  tf.dispose([g2.w, pa.w, pb.w]);
  a.dispose();
  b.dispose();
});

Deno.test("AdamW rejects bad options and gradients", () => {
  const w = tf.tidy(() => tf.variable(tf.zeros([2, 2])));
  const before = tf.memory().numTensors;
  new AdamW({ w }).dispose();
  new Ema({ w }).dispose();
  assert.equal(tf.memory().numTensors, before, "constructing + disposing leaks nothing");
  assert.throws(() => new AdamW({ w }, { beta1: 1 }), /beta1 must be in \[0, 1\)/);
  const opt = new AdamW({ w });
  const g = tf.zeros([3]);
  assert.throws(() => opt.step({ w: g }, 0.1), /gradient "w" has shape \[3\], param has \[2,2\]/);
  assert.throws(() => opt.step({ q: g }, 0.1), /unknown param "q"/);
  tf.dispose([g, w]);
  opt.dispose();
});

Deno.test("clipGradNorm scales to the global L2 norm", () => {
  const grads = { a: tf.tensor1d([3]), b: tf.tensor2d([[4]]) };
  assert.equal(globalNorm(grads).dataSync()[0], 5);
  const c = clipGradNorm(grads, 1);
  close(c.norm.dataSync()[0], 5, 1e-7, "norm");
  close(c.grads.a.dataSync()[0], 0.6, 1e-6, "a");
  close(c.grads.b.dataSync()[0], 0.8, 1e-6, "b");
  const big = clipGradNorm(grads, 10);
  assert.deepEqual(Array.from(big.grads.a.dataSync()), [3]);
  assert.deepEqual(Array.from(big.grads.b.dataSync()), [4]);
  tf.dispose([c.norm, big.norm, ...Object.values(c.grads), ...Object.values(big.grads)]);
  tf.dispose(Object.values(grads));
});

Deno.test("computeGrads keys by param name; accumulation equals the mean loss gradient", () => {
  const w = tf.variable(tf.tensor1d([0.5, -1.5]), true, "some_internal_var_name");
  const params = { "layer.weight": w };
  const xs = [[1, 2], [3, -1], [0.5, 0.25], [2, 2]];
  const ys = [1, -2, 0.5, 3];
  const lossOf = (i: number) =>
    tf.tidy(() => tf.square(tf.sub(tf.sum(tf.mul(w, tf.tensor1d(xs[i]))), ys[i])) as tf.Scalar);
  const before = tf.memory().numTensors;
  const acc = accumulateGrads(params, 4, lossOf);
  assert.deepEqual(Object.keys(acc.grads), ["layer.weight"]);
  // Hand gradient of mean_i (w.x_i - y_i)^2: mean_i 2 (w.x_i - y_i) x_i.
  const wv = [0.5, -1.5];
  const g = [0, 0];
  let l = 0;
  xs.forEach((x, i) => {
    const r = wv[0] * x[0] + wv[1] * x[1] - ys[i];
    l += r * r / 4;
    g[0] += (2 * r * x[0]) / 4;
    g[1] += (2 * r * x[1]) / 4;
  });
  close(acc.value.dataSync()[0], l, 1e-6, "mean loss");
  const got = acc.grads["layer.weight"].dataSync();
  close(got[0], g[0], 1e-6, "g0");
  close(got[1], g[1], 1e-6, "g1");
  tf.dispose([acc.value, ...Object.values(acc.grads)]);
  assert.equal(tf.memory().numTensors, before, "accumulation leaks no tensors");
  const one = computeGrads(params, () => lossOf(0));
  assert.ok(one.grads["layer.weight"]);
  tf.dispose([one.value, ...Object.values(one.grads), w]);
});

Deno.test("Ema follows the closed form, with and without warmup; swap restores", () => {
  const p = { w: tf.variable(tf.tensor1d([2.0])) };
  const ema = new Ema(p, { decay: 0.9 });
  p.w.assign(tf.tensor1d([10.0]));
  for (let i = 0; i < 5; i++) ema.update(p);
  // Constant target c from shadow s0: s_n = c + (s0 - c) d^n.
  close(ema.shadow.w.dataSync()[0], 10 + (2 - 10) * 0.9 ** 5, 1e-6, "ema no warmup");

  const q = { w: tf.variable(tf.tensor1d([2.0])) };
  const emw = new Ema(q, { decay: 0.9, warmup: true });
  q.w.assign(tf.tensor1d([10.0]));
  let factor = 1;
  for (let n = 0; n < 12; n++) {
    const d = Math.min(0.9, (1 + n) / (10 + n));
    assert.equal(emw.currentDecay(), d);
    factor *= d;
    emw.update(q);
  }
  close(emw.shadow.w.dataSync()[0], 10 + (2 - 10) * factor, 1e-6, "ema warmup");

  emw.swapIn(q);
  close(q.w.dataSync()[0], 10 + (2 - 10) * factor, 1e-6, "swapped in");
  emw.swapOut(q);
  assert.equal(q.w.dataSync()[0], 10);
  assert.throws(() => emw.swapOut(q), /not swapped in/);
  ema.dispose();
  emw.dispose();
  tf.dispose([p.w, q.w]);
});

Deno.test("warmupCosine: warmup, middle and end values; constantLr", () => {
  const s = warmupCosine({ baseLr: 1e-3, warmupSteps: 10, totalSteps: 110, minLr: 1e-5 });
  close(s(0), 1e-4, 1e-12, "first warmup step");
  close(s(4), 5e-4, 1e-12, "mid warmup");
  close(s(9), 1e-3, 1e-12, "warmup end");
  close(s(10), 1e-3, 1e-12, "cosine start");
  close(s(60), 1e-5 + (1e-3 - 1e-5) * 0.5, 1e-12, "cosine middle");
  close(s(35), 1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + Math.cos(Math.PI / 4)), 1e-12, "quarter");
  close(s(110), 1e-5, 1e-12, "end");
  close(s(500), 1e-5, 1e-12, "past end");
  assert.equal(constantLr(3e-4)(12345), 3e-4);
  assert.throws(
    () => warmupCosine({ baseLr: 1, warmupSteps: 10, totalSteps: 5 }),
    /totalSteps must be an integer >= warmupSteps \(10\), got 5/,
  );
});
