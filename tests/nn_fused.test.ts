/**
 * Fused GroupNorm(+SiLU), SiLU, GELU and scaled-softmax kernels (lib/nn/fused.ts): float64 finite-difference
 * checks of the kernels' math, and the `cpu-blas` fused path against the composed ops on stock
 * `cpu-blas` (forward and gradients), through the public lib/nn layers.
 */
import assert from "node:assert/strict";
import { assertClose } from "./helpers/assert_close.ts";
import * as tf from "@tensorflow/tfjs-core";
import { initBackendAndConvGrad } from "../lib/train/init_backend.ts";
import {
  attentionProbs,
  expApprox,
  FUSED_KERNELS,
  fusedGroupNorm,
  fusedKernelsActive,
  gelu,
  geluGradValues,
  geluValues,
  groupNorm,
  groupNormGradValues,
  groupNormValues,
  type GroupNormValuesOptions,
  initResnetBlock,
  layerNorm,
  type Params,
  resnetBlock,
  setFusedKernels,
  silu,
  siluGradValues,
  siluValues,
  softmaxGradValues,
  softmaxValues,
  TensorBuilder,
} from "../lib/nn/mod.ts";
import { Rng } from "../lib/util/rng.ts";

const info = await initBackendAndConvGrad("cpu-blas", { quiet: true });
const hasBlas = info.name === "cpu-blas" && info.blas === true;
const f64 = (n: number) => new Float64Array(n);

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};
const from = (v: Float32Array, scale = 1, shift = 0) =>
  Float64Array.from(v, (e) => e * scale + shift);

// ---------- float64 math: closed forms and central finite differences ----------

Deno.test("groupNormValues matches a direct float64 GroupNorm and has exact statistics", () => {
  const rng = Rng.stream(11);
  const [batch, spatial, channels, groups] = [2, 5, 6, 3];
  const x = from(rng.normal(batch * spatial * channels), 2, 3);
  const gamma = from(rng.normal(channels)), beta = from(rng.normal(channels));
  for (const s of [false, true]) {
    const o = { batch, channels, groups, eps: 1e-5, silu: s };
    const { y, mean, rstd } = groupNormValues(x, gamma, beta, o, f64);
    const cg = channels / groups;
    for (let b = 0; b < batch; b++) {
      for (let g = 0; g < groups; g++) {
        const idx: number[] = [];
        for (let p = 0; p < spatial; p++) {
          for (let j = 0; j < cg; j++) idx.push((b * spatial + p) * channels + g * cg + j);
        }
        const m = idx.reduce((a, i) => a + x[i], 0) / idx.length;
        const v = idx.reduce((a, i) => a + (x[i] - m) ** 2, 0) / idx.length;
        assert.ok(Math.abs(mean[b * groups + g] - m) < 1e-12);
        assert.ok(Math.abs(rstd[b * groups + g] - 1 / Math.sqrt(v + 1e-5)) < 1e-12);
        for (const i of idx) {
          const c = i % channels;
          const z = ((x[i] - m) / Math.sqrt(v + 1e-5)) * gamma[c] + beta[c];
          const want = s ? z / (1 + Math.exp(-z)) : z;
          assert.ok(Math.abs(y[i] - want) < 1e-9, `y[${i}] = ${y[i]}, want ${want}`);
        }
      }
    }
  }
});

Deno.test("groupNormGradValues matches central finite differences in float64", () => {
  const rng = Rng.stream(12);
  const [batch, spatial, channels, groups] = [2, 3, 4, 2];
  const n = batch * spatial * channels;
  const x = from(rng.normal(n), 1.5, 0.5);
  const gamma = from(rng.normal(channels), 1, 1), beta = from(rng.normal(channels));
  const r = from(rng.normal(n)); // L = sum(r * y)
  for (const s of [false, true]) {
    const o: GroupNormValuesOptions = { batch, channels, groups, eps: 1e-5, silu: s };
    const loss = (xv: Float64Array, gv: Float64Array, bv: Float64Array) =>
      dot(r, groupNormValues(xv, gv, bv, o, f64).y);
    const { mean, rstd } = groupNormValues(x, gamma, beta, o, f64);
    const g = groupNormGradValues({ dy: r, x, gamma, beta, mean, rstd }, o, f64);
    const h = 1e-5;
    const fd = (arr: Float64Array, i: number) => {
      const keep = arr[i];
      arr[i] = keep + h;
      const lp = loss(x, gamma, beta);
      arr[i] = keep - h;
      const lm = loss(x, gamma, beta);
      arr[i] = keep;
      return (lp - lm) / (2 * h);
    };
    const check = (arr: Float64Array, grad: ArrayLike<number>, what: string) => {
      const num = Float64Array.from(arr, (_, i) => fd(arr, i));
      assertClose(grad, num, 1e-7, `silu=${s} d${what}`);
    };
    check(x, g.dx, "x");
    check(gamma, g.dgamma, "gamma");
    check(beta, g.dbeta, "beta");
  }
});

Deno.test("expApprox is within 1e-9 relative of Math.exp over [-700, 700]", () => {
  let worst = 0;
  for (let i = -69999; i <= 69999; i++) {
    const t = i / 100 - 0.003;
    worst = Math.max(worst, Math.abs(expApprox(t) / Math.exp(t) - 1));
  }
  assert.ok(worst < 1e-9, `max relative error ${worst}`);
  assert.equal(expApprox(0), 1);
  assert.ok(Number.isNaN(expApprox(NaN)));
});

Deno.test("silu/gelu values and gradients: closed forms and finite differences in float64", () => {
  const x = Float64Array.from([-30, -3, -1, -0.25, 0, 0.5, 1, 2.5, 30]);
  const s = siluValues(x, f64), gl = geluValues(x, f64);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    assert.ok(Math.abs(s[i] - v / (1 + Math.exp(-v))) < 1e-9);
    const t = Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3));
    assert.ok(Math.abs(gl[i] - 0.5 * v * (1 + t)) < 1e-9);
  }
  assert.equal(s[4], 0);
  assert.ok(Math.abs(gl[6] - 0.8411919906082768) < 1e-9);
  const ones = new Float64Array(x.length).fill(1);
  const h = 1e-6;
  for (
    const [name, f, df] of [
      ["silu", siluValues, siluGradValues],
      ["gelu", geluValues, geluGradValues],
    ] as const
  ) {
    const got = df(ones, x, f64);
    const num = Float64Array.from(x, (v) => {
      const p = f(Float64Array.of(v + h), f64)[0], m = f(Float64Array.of(v - h), f64)[0];
      return (p - m) / (2 * h);
    });
    assertClose(got, num, 1e-8, `${name}'`, { scale: "absolute" });
  }
  assert.equal(siluGradValues(ones, Float64Array.of(0), f64)[0], 0.5);
});

Deno.test("softmaxValues: rows sum to 1, shift invariance, and gradients by finite differences", () => {
  const rng = Rng.stream(26);
  const cols = 7, rows = 3, scale = 0.35;
  const x = from(rng.normal(rows * cols), 3);
  x[0] = 40; // a dominant logit must not overflow
  const y = softmaxValues(x, cols, scale, f64);
  for (let r = 0; r < rows; r++) {
    const row = Array.from(y.subarray(r * cols, (r + 1) * cols));
    assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-12);
    // Closed form per element: exp(s x_i) / sum_j exp(s x_j).
    const xs = Array.from(x.subarray(r * cols, (r + 1) * cols));
    const z = xs.reduce((a, v) => a + Math.exp(scale * v), 0);
    // expApprox is within 1e-9 relative of Math.exp.
    xs.forEach((v, i) =>
      assert.ok(Math.abs(row[i] - Math.exp(scale * v) / z) < 1e-9 * row[i] + 1e-15)
    );
  }
  const shifted = softmaxValues(x.map((v) => v + 100), cols, scale, f64);
  assertClose(shifted, y, 1e-12, "softmax shift invariance");
  // d/dx of L = sum(w * softmax(x)) against central differences.
  const w = from(rng.normal(rows * cols));
  const dx = softmaxGradValues(w, y, cols, scale, f64);
  const h = 1e-6;
  for (let i = 0; i < x.length; i++) {
    const xp = x.slice(), xm = x.slice();
    xp[i] += h;
    xm[i] -= h;
    const fd = (dot(w, softmaxValues(xp, cols, scale, f64)) -
      dot(w, softmaxValues(xm, cols, scale, f64))) / (2 * h);
    assert.ok(Math.abs(fd - dx[i]) < 1e-7, `softmax grad [${i}]: ${dx[i]} vs ${fd}`);
  }
  assert.throws(() => softmaxValues(x, 5, 1, f64), /do not split into rows of 5/);
});

Deno.test("groupNormValues rejects groups that do not divide channels and bad gamma sizes", () => {
  const x = new Float64Array(12), p = new Float64Array(6);
  assert.throws(
    () => groupNormValues(x, p, p, { batch: 1, channels: 6, groups: 4, eps: 1e-5, silu: false }),
    /groups=4 must divide channels=6/,
  );
  assert.throws(
    () =>
      groupNormValues(x, p, new Float64Array(5), {
        batch: 1,
        channels: 6,
        groups: 3,
        eps: 1e-5,
        silu: false,
      }),
    /gamma\/beta must have 6 elements/,
  );
});

// ---------- fused cpu-blas kernels vs composed ops on stock cpu ----------

interface Run {
  y: Float32Array;
  grads: Float32Array[];
  kernels: string[];
}

/** Forward and gradients of `L = sum(r * layer(inputs))` on `backend`, plus the kernels run. */
async function runOn(
  backend: string,
  inputs: { data: Float32Array; shape: number[] }[],
  r: Float32Array,
  layer: (vs: tf.Variable[]) => tf.Tensor,
): Promise<Run> {
  await tf.setBackend(backend);
  const vars = inputs.map((i) => tf.variable(tf.tensor(i.data, i.shape), true));
  let out: Run | undefined;
  const prof = await tf.profile(() => {
    const y = layer(vars);
    const rt = tf.tensor(r, y.shape);
    const { grads } = tf.variableGrads(() => tf.sum(tf.mul(rt, layer(vars))), vars);
    out = {
      y: y.dataSync() as Float32Array,
      grads: vars.map((v) => grads[v.name].dataSync() as Float32Array),
      kernels: [],
    };
    tf.dispose([y, rt, ...Object.values(grads)]);
  });
  tf.dispose(vars);
  out!.kernels = prof.kernels.map((k) => k.name);
  return out!;
}

function compare(fused: Run, stock: Run, what: string) {
  assertClose(fused.y, stock.y, 1e-5, `${what}: forward`, { scale: "absolute" });
  fused.grads.forEach((g, i) => assertClose(g, stock.grads[i], 1e-4, `${what} grad #${i}`));
}

Deno.test({
  name: "groupNorm(+silu) on cpu-blas (fused) matches composed ops on stock cpu",
  ignore: !hasBlas,
  fn: async () => {
    const rng = Rng.stream(21);
    const cases: [number[], number][] = [
      [[2, 5, 3, 12], 3],
      [[3, 7, 10], 5],
      [[1, 4, 3, 6], 6],
      [[2, 3, 3, 8], 1],
      [[2, 9, 16], 4],
    ];
    for (const [shape, groups] of cases) {
      const c = shape[shape.length - 1];
      const n = shape.reduce((a, b) => a * b, 1);
      const x = rng.normal(n).map((v) => 1.7 * v + 0.6);
      const inputs = [
        { data: x, shape },
        { data: rng.normal(c).map((v) => 1 + 0.5 * v), shape: [c] },
        { data: rng.normal(c).map((v) => 0.5 * v), shape: [c] },
      ];
      const r = rng.normal(n);
      for (const s of [false, true]) {
        const layer = ([xv, w, b]: tf.Variable[]) => {
          const p: Params = { "gn.weight": w, "gn.bias": b };
          return groupNorm(p, "gn", xv, { groups, silu: s });
        };
        const fused = await runOn("cpu-blas", inputs, r, layer);
        const stock = await runOn("cpu", inputs, r, layer);
        const what = `[${shape}] groups=${groups} silu=${s}`;
        compare(fused, stock, what);
        assert.ok(
          fused.kernels.includes(FUSED_KERNELS.groupNorm),
          `${what}: fused kernel not used`,
        );
        assert.ok(fused.kernels.includes(FUSED_KERNELS.groupNormGrad), `${what}: no fused grad`);
        assert.ok(!fused.kernels.includes("Sigmoid"), `${what}: composed ops ran on cpu-blas`);
        assert.ok(!stock.kernels.some((k) => k.startsWith("Xgen")), `${what}: fused on stock`);
      }
    }
    await tf.setBackend("cpu-blas");
  },
});

Deno.test({
  name:
    "layerNorm on cpu-blas (the fused one-group kernel per row) matches composed ops on stock cpu",
  ignore: !hasBlas,
  fn: async () => {
    const rng = Rng.stream(23);
    for (const shape of [[5, 8], [2, 7, 16], [3, 1, 6]]) {
      const d = shape[shape.length - 1];
      const n = shape.reduce((a, b) => a * b, 1);
      const inputs = [
        { data: rng.normal(n).map((v) => 2.3 * v - 0.8), shape },
        { data: rng.normal(d).map((v) => 1 + 0.5 * v), shape: [d] },
        { data: rng.normal(d).map((v) => 0.5 * v), shape: [d] },
      ];
      const r = rng.normal(n);
      const layer = ([xv, w, b]: tf.Variable[]) =>
        layerNorm({ "ln.weight": w, "ln.bias": b }, "ln", xv);
      const fused = await runOn("cpu-blas", inputs, r, layer);
      const stock = await runOn("cpu", inputs, r, layer);
      compare(fused, stock, `layerNorm [${shape}]`);
      assert.ok(fused.kernels.includes(FUSED_KERNELS.groupNormGrad), `[${shape}]: no fused grad`);
      assert.ok(!fused.kernels.includes("Mean"), `[${shape}]: composed moments ran on cpu-blas`);
    }
    await tf.setBackend("cpu-blas");
  },
});

Deno.test({
  name: "silu and gelu on cpu-blas (fused) match composed ops on stock cpu",
  ignore: !hasBlas,
  fn: async () => {
    const rng = Rng.stream(22);
    for (const shape of [[7], [3, 11], [2, 5, 3, 4]]) {
      const n = shape.reduce((a, b) => a * b, 1);
      const x = rng.normal(n).map((v) => 4 * v);
      x[0] = 30; // saturated tails
      if (n > 1) x[1] = -30;
      const inputs = [{ data: x, shape }];
      const r = rng.normal(n);
      for (
        const [name, f, kernel] of [["silu", silu, FUSED_KERNELS.silu], [
          "gelu",
          gelu,
          FUSED_KERNELS.gelu,
        ]] as const
      ) {
        const layer = ([xv]: tf.Variable[]) => f(xv);
        const fused = await runOn("cpu-blas", inputs, r, layer);
        const stock = await runOn("cpu", inputs, r, layer);
        compare(fused, stock, `${name} [${shape}]`);
        assert.ok(fused.kernels.includes(kernel), `${name}: fused kernel not used`);
      }
    }
    await tf.setBackend("cpu-blas");
  },
});

Deno.test({
  name: "attention probabilities on cpu-blas (fused scaled softmax) match stock cpu",
  ignore: !hasBlas,
  fn: async () => {
    const rng = Rng.stream(27);
    const [b, tq, tk, d, heads] = [2, 5, 3, 8, 2];
    const inputs = [
      { data: rng.normal(b * tq * d).map((v) => 2 * v), shape: [b, tq, d] },
      { data: rng.normal(b * tk * d).map((v) => 2 * v), shape: [b, tk, d] },
    ];
    const r = rng.normal(b * heads * tq * tk);
    const layer = ([q, k]: tf.Variable[]) =>
      attentionProbs(q as tf.Tensor3D, k as tf.Tensor3D, { heads });
    const fused = await runOn("cpu-blas", inputs, r, layer);
    const stock = await runOn("cpu", inputs, r, layer);
    compare(fused, stock, "attentionProbs");
    assert.ok(fused.kernels.includes(FUSED_KERNELS.softmax), "fused softmax not used");
    assert.ok(fused.kernels.includes(FUSED_KERNELS.softmaxGrad), "fused softmax grad not used");
    // Causal masks keep the composed path (the mask is added before the softmax).
    const causal = await runOn(
      "cpu-blas",
      [inputs[0], inputs[0]],
      rng.normal(b * heads * tq * tq),
      (
        [q, k],
      ) => attentionProbs(q as tf.Tensor3D, k as tf.Tensor3D, { heads, causal: true }),
    );
    assert.ok(!causal.kernels.includes(FUSED_KERNELS.softmax));
    await tf.setBackend("cpu-blas");
  },
});

Deno.test({
  name: "resnetBlock (fused GroupNorm-SiLU inside) on cpu-blas matches stock cpu",
  ignore: !hasBlas,
  fn: async () => {
    await tf.setBackend("cpu");
    const b = new TensorBuilder(Rng.stream(23));
    initResnetBlock(b, "res", { inChannels: 8, outChannels: 12, tembChannels: 6 });
    const names = Object.keys(b.params).sort();
    const inputs = names.map((k) => ({
      data: b.params[k].dataSync() as Float32Array,
      shape: b.params[k].shape,
    }));
    tf.dispose(Object.values(b.params));
    const rng = Rng.stream(24);
    inputs.push({ data: rng.normal(2 * 5 * 5 * 8), shape: [2, 5, 5, 8] });
    inputs.push({ data: rng.normal(2 * 6), shape: [2, 6] });
    const r = rng.normal(2 * 5 * 5 * 12);
    const layer = (vs: tf.Variable[]) => {
      const p: Params = {};
      names.forEach((k, i) => p[k] = vs[i]);
      const [x, temb] = vs.slice(names.length);
      return resnetBlock(p, "res", x as tf.Tensor4D, { groups: 4, temb: temb as tf.Tensor2D });
    };
    const fused = await runOn("cpu-blas", inputs, r, layer);
    const stock = await runOn("cpu", inputs, r, layer);
    compare(fused, stock, "resnetBlock");
    assert.equal(fused.kernels.filter((k) => k === FUSED_KERNELS.groupNorm).length, 4);
    await tf.setBackend("cpu-blas");
  },
});

Deno.test({
  name: "setFusedKernels(false) and non-cpu-blas backends use the composed ops",
  ignore: !hasBlas,
  fn: async () => {
    await tf.setBackend("cpu-blas");
    assert.equal(fusedKernelsActive(), true);
    setFusedKernels(false);
    try {
      assert.equal(fusedKernelsActive(), false);
      const x = tf.tensor2d([[1, 2, 3, 4]]);
      const p: Params = {
        "n.weight": tf.variable(tf.ones([4])),
        "n.bias": tf.variable(tf.zeros([4])),
      };
      const prof = await tf.profile(() => groupNorm(p, "n", x, { groups: 2, silu: true }));
      assert.ok(!prof.kernels.some((k) => k.name.startsWith("Xgen")));
      assert.ok(prof.kernels.some((k) => k.name === "Sigmoid"));
      tf.dispose([x, ...Object.values(p), prof.result as tf.Tensor]);
    } finally {
      setFusedKernels(true);
    }
    await tf.setBackend("cpu");
    assert.equal(fusedKernelsActive(), false);
    const t = tf.ones([2, 4]);
    assert.throws(
      () => fusedGroupNorm(t, tf.ones([4]), tf.zeros([4]), { groups: 2 }),
      /fused kernels run on backend "cpu-blas", active is "cpu"/,
    );
    assert.throws(
      () => fusedGroupNorm(t, tf.ones([3]), tf.zeros([4]), { groups: 2 }),
      /weight\/bias must be \[4\]/,
    );
    tf.dispose(t);
    await tf.setBackend("cpu-blas");
  },
});
