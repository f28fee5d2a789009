/**
 * The exact GELU, `0.5 x (1 + erf(x / sqrt 2))` (`gelu(x, "erf")`, `geglu(..., { gelu: "erf" })`,
 * UnetConfig `gelu: "erf"`, diffusers' GEGLU): closed-form values, and gradients against central
 * finite differences of an independent float64 implementation, on every CPU backend that starts
 * here; a UNet with it trains (its gradient is the loss's directional derivative) and exports to
 * ONNX (Erf nodes) giving TensorFlow.js' outputs.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { availableBackends, type BackendName, initBackend } from "../lib/backend/mod.ts";
import {
  geglu,
  gelu,
  type GeluKind,
  initGeglu,
  type Params,
  TensorBuilder,
  TfOps,
} from "../lib/nn/mod.ts";
import {
  initUnet,
  resolveUnetConfig,
  UNET_PRESETS,
  type UnetConfig,
  unetForward,
} from "../lib/models/mod.ts";
import {
  exportUnet,
  OnnxGraph,
  OnnxOps,
  openSession,
  readOnnx,
  readParams,
} from "../lib/onnx/mod.ts";
import { Rng } from "../lib/util/rng.ts";
import { assertClose } from "./helpers/assert_close.ts";

/** erf by its Maclaurin series in float64 (error below 1e-9 for |x| <= 4). */
function erf64(x: number): number {
  let term = x, sum = x;
  for (let n = 1; n < 120; n++) {
    term *= -x * x / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}
const gelu64 = (x: number) => 0.5 * x * (1 + erf64(x / Math.SQRT2));
/** Central difference of `f` at `x` (float64; step 1e-5). */
const diff64 = (f: (v: number) => number, x: number) => (f(x + 1e-5) - f(x - 1e-5)) / 2e-5;

// Closed forms (Python's math.erf): GELU(x) = x Phi(x), GELU'(x) = Phi(x) + x phi(x).
const VALUES: [number, number][] = [
  [1, 0.8413447460685429],
  [-1, -0.15865525393145707],
  [0, 0],
  [2, 1.9544997361036416],
  [-3, -0.00404969409489031],
];
const SLOPES: [number, number][] = [[1, 1.0833154705876864], [-1, -0.08331547058768629], [0, 0.5]];

/** Loss and gradients of `f` keyed by parameter name (tfjs keys them by variable name). */
function paramGrads(f: () => tf.Scalar, p: Params) {
  const { value, grads } = tf.variableGrads(f, Object.values(p));
  const named = Object.fromEntries(Object.entries(p).map(([k, v]) => [k, grads[v.name]]));
  return { value, grads: named };
}

const BACKENDS: BackendName[] = ["cpu-blas", "cpu-js", "wasm"];
const available = await availableBackends();

Deno.test("the float64 reference erf reproduces the closed forms", () => {
  for (const [x, y] of VALUES) assertClose(gelu64(x), y, 1e-14, `gelu64(${x})`, { minScale: 1 });
  for (const [x, d] of SLOPES) assertClose(diff64(gelu64, x), d, 1e-9, `gelu64'(${x})`);
});

for (const backend of BACKENDS) {
  Deno.test({
    name: `gelu "erf" on ${backend}: closed forms, tails, gradient = finite differences`,
    ignore: !available.includes(backend),
    fn: async () => {
      await initBackend(backend, { quiet: true });
      const before = tf.memory().numTensors;
      // Closed forms, the saturated tails, and what tfjs' own Ops give.
      const xs = [...VALUES.map(([x]) => x), 30, -30];
      const want = [...VALUES.map(([, y]) => y), 30, 0];
      const y = tf.tidy(() => gelu(tf.tensor1d(xs), "erf").dataSync());
      assertClose(y, want, 1e-6, `${backend} gelu erf`, { scale: "each", minScale: 1 });
      const viaOps = tf.tidy(() => new TfOps({}).gelu(tf.tensor1d(xs), "erf").dataSync());
      assert.deepEqual(viaOps, y);
      // Not the tanh approximation: they differ by up to 4.7e-4, near |x| = 2.7.
      const at = tf.tidy(() => [2.7, -2.7].map((v) => gelu(tf.scalar(v), "erf").dataSync()[0]));
      const tanhAt = tf.tidy(() => [2.7, -2.7].map((v) => gelu(tf.scalar(v)).dataSync()[0]));
      assertClose(at, [gelu64(2.7), gelu64(-2.7)], 1e-6, `${backend} gelu erf(±2.7)`);
      assert.ok(Math.abs(at[0] - tanhAt[0]) > 4e-4, `${backend}: erf = tanh at 2.7`);

      // d/dx sum(r * gelu(x)) = r * gelu'(x), against float64 finite differences.
      const rng = Rng.stream(5);
      const x = [...SLOPES.map(([v]) => v), ...rng.normal(20).map((v) => 1.5 * v)];
      const r = [1, 1, 1, ...rng.normal(20)];
      const g = tf.tidy(() => {
        const rt = tf.tensor1d(r);
        return tf.grad((xt: tf.Tensor) => tf.sum(tf.mul(rt, gelu(xt, "erf"))))(tf.tensor1d(x))
          .dataSync();
      });
      const fd = x.map((v, i) => r[i] * diff64(gelu64, v));
      assertClose(g, fd, 1e-5, `${backend} gelu erf gradient`, { minScale: 1 });
      assertClose(g.slice(0, 3), SLOPES.map(([, d]) => d), 1e-6, `${backend} gelu erf'`);
      assert.equal(tf.memory().numTensors, before, `${backend}: leaked tensors`);
    },
  });

  Deno.test({
    name: `geglu { gelu: "erf" } on ${backend}: output and weight gradients = float64`,
    ignore: !available.includes(backend),
    fn: async () => {
      await initBackend(backend, { quiet: true });
      const [dimIn, dimOut, rows] = [3, 2, 4];
      const b = new TensorBuilder(Rng.stream(7));
      initGeglu(b, "ff", { dimIn, dimOut });
      const p: Params = b.params;
      const rng = Rng.stream(8);
      // Redraw every weight so gates land on both sides of 0 and well into the curve.
      for (const v of Object.values(p)) v.assign(tf.tensor(rng.normal(v.size), v.shape));
      const x = rng.normal(rows * dimIn), r = rng.normal(rows * dimOut);
      const w = Array.from(p["ff.proj.weight"].dataSync()); // [dimIn, 2 dimOut]
      const bias = Array.from(p["ff.proj.bias"].dataSync());

      // float64 GEGLU loss: sum(r * hidden * gelu(gate)), hidden = first half of the projection.
      const loss64 = (wv: number[], bv: number[]) => {
        let s = 0;
        for (let i = 0; i < rows; i++) {
          for (let o = 0; o < dimOut; o++) {
            let h = bv[o], gate = bv[dimOut + o];
            for (let k = 0; k < dimIn; k++) {
              h += x[i * dimIn + k] * wv[k * 2 * dimOut + o];
              gate += x[i * dimIn + k] * wv[k * 2 * dimOut + dimOut + o];
            }
            s += r[i * dimOut + o] * h * gelu64(gate);
          }
        }
        return s;
      };
      const bump = (a: number[], j: number) => (d: number) => a.map((v, i) => i === j ? v + d : v);
      const fdW = w.map((_, j) => diff64((d) => loss64(bump(w, j)(d), bias), 0));
      const fdB = bias.map((_, j) => diff64((d) => loss64(w, bump(bias, j)(d)), 0));

      const xt = tf.tensor2d(x, [rows, dimIn]), rt = tf.tensor2d(r, [rows, dimOut]);
      const f = () => tf.sum(tf.mul(rt, geglu(p, "ff", xt, { gelu: "erf" }))) as tf.Scalar;
      const { value, grads } = paramGrads(f, p);
      assertClose(value.dataSync()[0], loss64(w, bias), 1e-5, `${backend} geglu`, { minScale: 1 });
      assertClose(grads["ff.proj.weight"].dataSync(), fdW, 1e-5, `${backend} dW`, { minScale: 1 });
      assertClose(grads["ff.proj.bias"].dataSync(), fdB, 1e-5, `${backend} db`, { minScale: 1 });
      const tanh = tf.tidy(() => tf.sum(tf.mul(rt, geglu(p, "ff", xt))).dataSync()[0]);
      assert.ok(Math.abs(tanh - value.dataSync()[0]) > 1e-5, "the option reaches the gate");
      tf.dispose([xt, rt, value, ...Object.values(grads), ...Object.values(p)]);
    },
  });
}

const ERF_UNET: UnetConfig = { ...UNET_PRESETS.tiny, gelu: "erf" };

Deno.test("an unknown GELU is refused in one line naming the field", () => {
  const bad = "fast" as GeluKind;
  assert.throws(
    () => resolveUnetConfig({ ...ERF_UNET, gelu: bad }),
    /^Error: UnetConfig\.gelu: expected "tanh" or "erf", got "fast"$/,
  );
  assert.throws(() => gelu(tf.scalar(1), bad), /gelu: kind must be "tanh" or "erf", got fast/);
});

/** Inputs of the tiny UNet: `[2, 8, 8, 4]` latents, two timesteps, a `[2, 5, 32]` context. */
function unetInputs(seed: number) {
  const rng = Rng.stream(seed);
  return {
    x: rng.normal(2 * 8 * 8 * 4),
    t: [17, 731.5],
    context: rng.normal(2 * 5 * ERF_UNET.contextDim),
  };
}
const tensors = (i: ReturnType<typeof unetInputs>) => ({
  x: tf.tensor4d(i.x, [2, 8, 8, 4]),
  t: tf.tensor1d(i.t),
  context: tf.tensor3d(i.context, [2, 5, ERF_UNET.contextDim]),
});

Deno.test("a tiny UNet with gelu erf trains: its gradient is the loss's directional derivative", async () => {
  await initBackend(available.includes("cpu-blas") ? "cpu-blas" : "cpu-js", { quiet: true });
  const p = initUnet(ERF_UNET, Rng.stream(11));
  const inp = unetInputs(12);
  const target = Rng.stream(13).normal(inp.x.length);
  const loss = (cfg: UnetConfig) => () =>
    tf.tidy(() => {
      const y = unetForward(p, cfg, tensors(inp));
      return tf.mean(tf.square(tf.sub(y, tf.tensor(target, y.shape))));
    }) as tf.Scalar;
  const { value, grads } = paramGrads(loss(ERF_UNET), p);
  const l0 = value.dataSync()[0];
  const names = Object.keys(p);
  for (const [k, g] of Object.entries(grads)) {
    assert.ok(g?.dataSync().every(Number.isFinite), `${k}: no finite gradient`);
  }
  // The GEGLU weights' gradient depends on which GELU ran.
  const ff = "down_blocks.1.attentions.0.transformer_blocks.0.ff.net.0.proj.weight";
  const tanhGrads = paramGrads(loss(UNET_PRESETS.tiny), p);
  const gap = tf.tidy(() => tf.max(tf.abs(tf.sub(grads[ff], tanhGrads.grads[ff]))).dataSync()[0]);
  assert.ok(gap > 1e-7, `${ff}: same gradient with either GELU (${gap})`);

  // Along d = g / |g|: (L(p + e d) - L(p - e d)) / 2e = |g|.
  const norm = Math.sqrt(
    names.reduce((s, k) => s + tf.tidy(() => tf.sum(tf.square(grads[k])).dataSync()[0]), 0),
  );
  const start = Object.fromEntries(names.map((k) => [k, tf.clone(p[k])]));
  const lossAt = (e: number) => {
    for (const k of names) {
      p[k].assign(tf.tidy(() => tf.add(start[k], tf.mul(grads[k], e / norm))));
    }
    return loss(ERF_UNET)().dataSync()[0];
  };
  const e = 1e-2;
  const slope = (lossAt(e) - lossAt(-e)) / (2 * e);
  assertClose(slope, norm, 1e-2, "directional derivative vs |gradient|");
  assert.ok(lossAt(-e) < l0, "a step against the gradient lowers the loss");
  tf.dispose([value, ...Object.values(grads), ...Object.values(tanhGrads.grads)]);
  tf.dispose([tanhGrads.value, ...Object.values(start), ...Object.values(p)]);
});

Deno.test("ONNX export of gelu erf: Erf nodes, same values as TensorFlow.js", async () => {
  await initBackend("cpu-js", { quiet: true });
  const OPTS = { threads: 1, executionProviders: ["cpu"] } as const;
  // The op alone, across the curve: tight, and far from the tanh formula's values.
  const xs = Float32Array.from({ length: 81 }, (_, i) => (i - 40) / 10);
  const g = new OnnxGraph("gelu");
  const m = new OnnxOps(g, await readParams({}));
  m.output(m.gelu(m.input("x", "float32", [81]), "erf"), "y");
  const s = await openSession(g.toBytes(), OPTS);
  const y = (await s.run({ x: { data: xs, shape: [81] } })).y.data as Float32Array;
  await s.release();
  assertClose(y, Array.from(xs, gelu64), 1e-6, "onnx gelu erf", { scale: "absolute" });

  // A tiny UNet: exported = unetForward (1.2e-6 measured), with Erf in every GEGLU and no Tanh.
  const p = initUnet(ERF_UNET, Rng.stream(21));
  const inp = unetInputs(22);
  const ref = tf.tidy(() => unetForward(p, ERF_UNET, tensors(inp)).dataSync() as Float32Array);
  const bytes = await exportUnet(p, ERF_UNET);
  const ops = readOnnx(bytes, "unet.onnx").graph.nodes.map((n) => n.op);
  const gegluCount = Object.keys(p).filter((k) => k.endsWith("ff.net.0.proj.weight")).length;
  assert.equal(gegluCount, 4); // down, middle, and the up level's two transformers
  assert.equal(ops.filter((o) => o === "Erf").length, gegluCount);
  assert.ok(!ops.includes("Tanh"));
  const su = await openSession(bytes, OPTS);
  const nchw = tf.tidy(() =>
    tf.transpose(tf.tensor4d(inp.x, [2, 8, 8, 4]), [0, 3, 1, 2]).dataSync() as Float32Array
  );
  const out = (await su.run({
    sample: { data: nchw, shape: [2, 4, 8, 8] },
    timestep: { data: Float32Array.from(inp.t), shape: [2] },
    encoder_hidden_states: { data: inp.context, shape: [2, 5, ERF_UNET.contextDim] },
  })).out_sample;
  await su.release();
  const nhwc = tf.tidy(() =>
    tf.transpose(tf.tensor4d(out.data as Float32Array, [2, 4, 8, 8]), [0, 2, 3, 1])
      .dataSync() as Float32Array
  );
  assertClose(nhwc, ref, 1e-5, "unet gelu erf onnx", { scale: "absolute", nonTrivial: 0.05 });
  tf.dispose(Object.values(p));
});
