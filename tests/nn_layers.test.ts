import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import {
  attention,
  attentionProbs,
  conv2d,
  countParams,
  disposeParams,
  downsample,
  embedding,
  geglu,
  gelu,
  getParam,
  groupNorm,
  initAttention,
  initConv2d,
  initEmbedding,
  initGeglu,
  initLayerNorm,
  initLinear,
  initNorm,
  initResnetBlock,
  kaiming,
  layerNorm,
  linear,
  paramNames,
  type Params,
  paramShapes,
  resnetBlock,
  scaledDotProductAttention,
  setConvFilterGrad,
  ShapeBuilder,
  silu,
  TensorBuilder,
  timestepEmbedding,
  upsample2x,
} from "../lib/nn/mod.ts";
import { Rng } from "../lib/util/rng.ts";
import { assertClose } from "./helpers/assert_close.ts";

await tf.setBackend("cpu");

const randn = (rng: Rng, shape: number[]) =>
  tf.tensor(rng.normal(shape.reduce((a, b) => a * b, 1)), shape);
/** Element-wise |a - b| <= tol * (1 + |b|). */
const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string) =>
  assertClose(a, b, tol, what, { scale: "1+each" });

Deno.test("init: same seed gives identical params, other seed differs; kaiming bound holds", () => {
  const build = (seed: number) => {
    const b = new TensorBuilder(Rng.stream(seed, [5]));
    initLinear(b, "fc", { inFeatures: 16, outFeatures: 8 });
    initConv2d(b, "conv", { inChannels: 4, outChannels: 6 });
    return b.params;
  };
  const a = build(1), b = build(1), c = build(2);
  for (const k of paramNames(a)) assert.deepEqual(a[k].dataSync(), b[k].dataSync(), k);
  assert.notDeepEqual(a["fc.weight"].dataSync(), c["fc.weight"].dataSync());
  const w = a["conv.weight"].dataSync();
  const bound = 1 / Math.sqrt(3 * 3 * 4);
  assert.ok(w.every((v) => Math.abs(v) <= bound));
  assert.ok(Math.max(...w.map(Math.abs)) > 0.8 * bound, "uniform fills its range");
  for (const p of [a, b, c]) disposeParams(p);
});

Deno.test("params: count, sorted shapes, shape-only builder, dispose, errors", () => {
  const before = tf.memory().numTensors;
  const tb = new TensorBuilder(Rng.stream(0));
  const sb = new ShapeBuilder();
  for (const b of [tb, sb]) {
    initLinear(b, "z.fc", { inFeatures: 3, outFeatures: 5 });
    initNorm(b, "a.norm", 5);
    b.add("scale", [], kaiming(1));
  }
  const p = tb.params;
  assert.equal(countParams(p), 3 * 5 + 5 + 5 + 5 + 1);
  assert.equal(countParams(sb.shapes), countParams(p));
  assert.deepEqual(Object.keys(paramShapes(p)), [
    "a.norm.bias",
    "a.norm.weight",
    "scale",
    "z.fc.bias",
    "z.fc.weight",
  ]);
  assert.deepEqual(
    paramShapes(p),
    Object.fromEntries(Object.keys(paramShapes(p)).map((k) => [k, sb.shapes[k]])),
  );
  assert.throws(() => tb.add("scale", [1], kaiming(1)), /declared twice/);
  assert.throws(() => sb.add("bad", [2, 0], kaiming(1)), /invalid shape/);
  assert.throws(() => getParam(p, "z.fc.wieght"), /missing weight "z.fc.wieght".*z.fc.bias/);
  disposeParams(p);
  assert.equal(Object.keys(p).length, 0);
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("linear and embedding match explicit sums", () => {
  const b = new TensorBuilder(Rng.stream(3));
  initLinear(b, "fc", { inFeatures: 3, outFeatures: 2 });
  initEmbedding(b, "emb", { numEmbeddings: 5, dim: 2 });
  const p = b.params;
  const x = tf.tensor([1, 2, 3, -1, 0.5, 4], [2, 1, 3]);
  const y = linear(p, "fc", x);
  assert.deepEqual(y.shape, [2, 1, 2]);
  const W = p["fc.weight"].dataSync(), bias = p["fc.bias"].dataSync(), xv = x.dataSync();
  const want: number[] = [];
  for (let r = 0; r < 2; r++) {
    for (let o = 0; o < 2; o++) {
      let s = bias[o];
      for (let i = 0; i < 3; i++) s += xv[r * 3 + i] * W[i * 2 + o];
      want.push(s);
    }
  }
  close(y.dataSync(), want, 1e-6, "linear");
  const e = embedding(p, "emb", tf.tensor2d([[4, 0]], [1, 2], "int32"));
  const E = p["emb.weight"].dataSync();
  assert.deepEqual(e.shape, [1, 2, 2]);
  close(e.dataSync(), [E[8], E[9], E[0], E[1]], 0, "embedding");
  assert.throws(() => linear(p, "fc", tf.ones([2, 4])), /last dim 4 != weight in-features 3/);
  disposeParams(p);
});

/** Direct NHWC convolution with symmetric zero padding, for reference. */
function refConv(
  x: Float32Array,
  [B, H, W, C]: number[],
  w: Float32Array,
  [K, , , O]: number[],
  stride: number,
  pad: number,
): { y: number[]; shape: number[] } {
  const Ho = Math.floor((H + 2 * pad - K) / stride) + 1;
  const Wo = Math.floor((W + 2 * pad - K) / stride) + 1;
  const y: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < Ho; i++) {
      for (let j = 0; j < Wo; j++) {
        for (let o = 0; o < O; o++) {
          let s = 0;
          for (let u = 0; u < K; u++) {
            for (let v = 0; v < K; v++) {
              const r = i * stride + u - pad, c = j * stride + v - pad;
              if (r < 0 || r >= H || c < 0 || c >= W) continue;
              for (let ci = 0; ci < C; ci++) {
                s += x[((b * H + r) * W + c) * C + ci] * w[((u * K + v) * C + ci) * O + o];
              }
            }
          }
          y.push(s);
        }
      }
    }
  }
  return { y, shape: [B, Ho, Wo, O] };
}

Deno.test("conv2d matches a direct convolution (same, stride-2 downsample, valid)", () => {
  const rng = Rng.stream(4);
  const b = new TensorBuilder(rng);
  initConv2d(b, "c", { inChannels: 3, outChannels: 4, kernelSize: 3, bias: false });
  const p = b.params;
  const w = p["c.weight"].dataSync() as Float32Array;
  const x = randn(rng, [2, 7, 6, 3]) as tf.Tensor4D;
  const xv = x.dataSync() as Float32Array;
  const cases: [string, tf.Tensor4D, number, number][] = [
    ["same", conv2d(p, "c", x), 1, 1],
    ["valid", conv2d(p, "c", x, { padding: "valid" }), 1, 0],
    ["stride2", downsample({ "conv.weight": p["c.weight"] }, "", x), 2, 1],
  ];
  for (const [what, y, stride, pad] of cases) {
    const ref = refConv(xv, x.shape, w, p["c.weight"].shape, stride, pad);
    assert.deepEqual(y.shape, ref.shape, what);
    close(y.dataSync(), ref.y, 1e-5, what);
  }
  disposeParams(p);
});

Deno.test("conv2d weight gradient computed by conv equals tfjs' kernel gradient", () => {
  const rng = Rng.stream(5);
  for (const [H, stride, k] of [[6, 1, 3], [7, 2, 3], [8, 2, 3], [5, 1, 1]] as const) {
    const b = new TensorBuilder(rng);
    initConv2d(b, "c", { inChannels: 3, outChannels: 5, kernelSize: k });
    const p = b.params;
    const x = tf.variable(randn(rng, [2, H, H + 1, 3]));
    const f = () => {
      const y = stride === 2
        ? downsample(
          { "conv.weight": p["c.weight"], "conv.bias": p["c.bias"] },
          "",
          x as tf.Tensor4D,
        )
        : conv2d(p, "c", x as tf.Tensor4D);
      return tf.sum(tf.mul(y, tf.sin(tf.reshape(tf.range(0, y.size), y.shape)))) as tf.Scalar;
    };
    const vars = [p["c.weight"], p["c.bias"], x];
    const prev = setConvFilterGrad("kernel");
    const want = tf.variableGrads(f, vars).grads;
    setConvFilterGrad("conv");
    const got = tf.variableGrads(f, vars).grads;
    setConvFilterGrad(prev);
    for (const v of vars) {
      close(got[v.name].dataSync(), want[v.name].dataSync(), 1e-4, `H=${H} s=${stride} ${v.name}`);
    }
    disposeParams(p);
    x.dispose();
  }
  assert.throws(() => setConvFilterGrad("fast" as "conv"), /"conv" or "kernel"/);
});

Deno.test("upsample2x repeats pixels and its gradient is the exact 2x2 block sum", () => {
  const rng = Rng.stream(6);
  const x = tf.variable(randn(rng, [2, 3, 4, 5]));
  const y = upsample2x(x as tf.Tensor4D);
  assert.deepEqual(y.shape, [2, 6, 8, 5]);
  const yb = y.bufferSync(), xb = x.bufferSync();
  for (let i = 0; i < 6; i++) {
    for (let j = 0; j < 8; j++) assert.equal(yb.get(1, i, j, 3), xb.get(1, i >> 1, j >> 1, 3));
  }
  const g = randn(rng, [2, 6, 8, 5]);
  const { grads } = tf.variableGrads(
    () => tf.sum(tf.mul(upsample2x(x as tf.Tensor4D), g)) as tf.Scalar,
    [x],
  );
  const gb = g.bufferSync(), db = grads[x.name].bufferSync();
  for (let b = 0; b < 2; b++) {
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 4; j++) {
        for (let c = 0; c < 5; c++) {
          const want = Math.fround(
            Math.fround(gb.get(b, 2 * i, 2 * j, c) + gb.get(b, 2 * i, 2 * j + 1, c)) +
              Math.fround(gb.get(b, 2 * i + 1, 2 * j, c) + gb.get(b, 2 * i + 1, 2 * j + 1, c)),
          );
          assert.ok(Math.abs(db.get(b, i, j, c) - want) <= 1e-6 * (1 + Math.abs(want)));
        }
      }
    }
  }
  x.dispose();
});

Deno.test("groupNorm: each group has mean 0 and variance 1; layerNorm per row", () => {
  const rng = Rng.stream(7);
  const b = new TensorBuilder(rng);
  initNorm(b, "gn", 8);
  initLayerNorm(b, "ln", 6);
  const p = b.params;
  const x = tf.add(tf.mul(randn(rng, [2, 3, 3, 8]), 3), 5) as tf.Tensor4D;
  const y = groupNorm(p, "gn", x, { groups: 4 }).bufferSync();
  for (let bi = 0; bi < 2; bi++) {
    for (let g = 0; g < 4; g++) {
      const vals: number[] = [];
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 3; j++) {
          for (let c = 2 * g; c < 2 * g + 2; c++) vals.push(y.get(bi, i, j, c));
        }
      }
      const m = vals.reduce((a, v) => a + v, 0) / vals.length;
      const v = vals.reduce((a, u) => a + (u - m) ** 2, 0) / vals.length;
      assert.ok(Math.abs(m) < 1e-5, `mean ${m}`);
      assert.ok(Math.abs(v - 1) < 1e-3, `var ${v}`);
    }
  }
  const z = layerNorm(p, "ln", tf.add(randn(rng, [4, 6]), 2)).arraySync() as number[][];
  for (const row of z) {
    const m = row.reduce((a, v) => a + v, 0) / 6;
    assert.ok(Math.abs(m) < 1e-5);
    assert.ok(Math.abs(row.reduce((a, u) => a + (u - m) ** 2, 0) / 6 - 1) < 1e-3);
  }
  assert.throws(() => groupNorm(p, "gn", x, { groups: 3 }), /groups=3 must divide channels=8/);
  disposeParams(p);
});

Deno.test("activations match closed forms; geglu = hidden * gelu(gate)", () => {
  const xs = [-3, -1, -0.2, 0, 0.5, 2];
  const x = tf.tensor1d(xs);
  close(silu(x).dataSync(), xs.map((v) => v / (1 + Math.exp(-v))), 1e-6, "silu");
  const g = (v: number) =>
    0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
  close(gelu(x).dataSync(), xs.map(g), 1e-6, "gelu");
  const b = new TensorBuilder(Rng.stream(8));
  initGeglu(b, "ff", { dimIn: 3, dimOut: 2 });
  const p = b.params;
  const inp = tf.tensor2d([[0.3, -1, 2]]);
  const h = linear(p, "ff.proj", inp).dataSync(); // [hidden0, hidden1, gate0, gate1]
  close(geglu(p, "ff", inp).dataSync(), [h[0] * g(h[2]), h[1] * g(h[3])], 1e-5, "geglu");
  disposeParams(p);
});

Deno.test("attention: one key returns its value; rows sum to 1; masks zero out keys", () => {
  const rng = Rng.stream(9);
  const q = randn(rng, [2, 5, 8]) as tf.Tensor3D;
  const k1 = randn(rng, [2, 1, 8]) as tf.Tensor3D;
  const v1 = randn(rng, [2, 1, 6]) as tf.Tensor3D;
  const out = scaledDotProductAttention(q, k1, v1, { heads: 2 }).arraySync() as number[][][];
  const v = v1.arraySync() as number[][][];
  for (let b = 0; b < 2; b++) {
    for (let t = 0; t < 5; t++) close(out[b][t], v[b][0], 1e-6, "one key");
  }

  const k = randn(rng, [2, 4, 8]) as tf.Tensor3D;
  const mask = tf.tensor2d([[1, 1, 0, 1], [1, 0, 0, 0]]);
  const probs = attentionProbs(q, k, { heads: 2, keyMask: mask }).arraySync() as number[][][][];
  const m = mask.arraySync();
  for (let b = 0; b < 2; b++) {
    for (let h = 0; h < 2; h++) {
      for (let t = 0; t < 5; t++) {
        const row = probs[b][h][t];
        assert.ok(Math.abs(row.reduce((a, u) => a + u, 0) - 1) < 1e-5);
        row.forEach((pv, j) => m[b][j] === 0 && assert.equal(pv, 0));
      }
    }
  }
  // Reference for an unmasked head: softmax(q_h k_h^T / sqrt(4)).
  const plain = attentionProbs(q, k, { heads: 2 }).arraySync() as number[][][][];
  const qa = q.arraySync(), ka = k.arraySync();
  const logits = [0, 1, 2, 3].map((j) =>
    [4, 5, 6, 7].reduce((s, d) => s + qa[1][2][d] * ka[1][j][d], 0) / 2
  );
  const mx = Math.max(...logits);
  const ex = logits.map((l) => Math.exp(l - mx));
  close(plain[1][1][2], ex.map((e) => e / ex.reduce((a, u) => a + u, 0)), 1e-5, "softmax");
  const causal = attentionProbs(k, k, { heads: 1, causal: true }).arraySync() as number[][][][];
  for (let i = 0; i < 4; i++) for (let j = i + 1; j < 4; j++) assert.equal(causal[0][0][i][j], 0);
});

Deno.test("attention layer: cross-attention ignores masked context tokens, uses the rest", () => {
  const rng = Rng.stream(10);
  const b = new TensorBuilder(rng);
  initAttention(b, "attn", { queryDim: 8, contextDim: 6, heads: 2, headDim: 4 });
  const p = b.params;
  const x = randn(rng, [1, 3, 8]) as tf.Tensor3D;
  const ctx = randn(rng, [1, 4, 6]) as tf.Tensor3D;
  const keyMask = tf.tensor2d([[1, 1, 1, 0]]);
  const base = attention(p, "attn", x, { heads: 2, context: ctx, keyMask }).dataSync();
  const changed = tf.concat(
    [tf.slice(ctx, [0, 0, 0], [1, 3, 6]), tf.fill([1, 1, 6], 9)],
    1,
  ) as tf.Tensor3D;
  close(
    attention(p, "attn", x, { heads: 2, context: changed, keyMask }).dataSync(),
    base,
    1e-6,
    "masked",
  );
  const unmasked = attention(p, "attn", x, { heads: 2, context: changed }).dataSync();
  assert.ok(unmasked.some((u, i) => Math.abs(u - base[i]) > 1e-4), "unmasked token changes output");
  assert.deepEqual(
    attention(p, "attn", randn(rng, [1, 3, 8]) as tf.Tensor3D, { heads: 2, context: ctx }).shape,
    [1, 3, 8],
  );
  disposeParams(p);
});

Deno.test("timestepEmbedding equals [cos(t f), sin(t f)] with f_i = 10000^(-i/half)", () => {
  const ts = [0, 1, 37.5, 999];
  const dim = 10, half = 5;
  const e = timestepEmbedding(tf.tensor1d(ts), { dim }).arraySync() as number[][];
  ts.forEach((t, r) => {
    const f = [...Array(half).keys()].map((i) => Math.exp(-Math.log(10000) * i / half));
    close(
      e[r],
      [...f.map((v) => Math.cos(t * v)), ...f.map((v) => Math.sin(t * v))],
      2e-4,
      `t=${t}`,
    );
  });
  const s = timestepEmbedding(tf.tensor1d([3]), {
    dim: 7,
    flipSinToCos: false,
    downscaleFreqShift: 1,
  }).arraySync() as number[][];
  const f = [0, 1, 2].map((i) => Math.exp(-Math.log(10000) * i / 2));
  close(
    s[0],
    [...f.map((v) => Math.sin(3 * v)), ...f.map((v) => Math.cos(3 * v)), 0],
    1e-5,
    "odd/shift",
  );
});

Deno.test("resnetBlock: shapes, time embedding is used, gradient reaches every weight", () => {
  const rng = Rng.stream(11);
  const b = new TensorBuilder(rng);
  initResnetBlock(b, "r", { inChannels: 4, outChannels: 8, tembChannels: 6 });
  const p = b.params;
  assert.ok(p["r.conv_shortcut.weight"]);
  const x = randn(rng, [2, 4, 4, 4]) as tf.Tensor4D;
  const temb = randn(rng, [2, 6]) as tf.Tensor2D;
  const y = resnetBlock(p, "r", x, { groups: 2, temb });
  assert.deepEqual(y.shape, [2, 4, 4, 8]);
  const y2 = resnetBlock(p, "r", x, { groups: 2, temb: tf.mul(temb, 2) as tf.Tensor2D });
  assert.ok(tf.max(tf.abs(tf.sub(y, y2))).dataSync()[0] > 1e-4);
  assert.throws(() => resnetBlock(p, "r", x, { groups: 2 }), /no temb/);
  const { grads } = tf.variableGrads(
    () => tf.sum(tf.square(resnetBlock(p, "r", x, { groups: 2, temb }))) as tf.Scalar,
    Object.values(p),
  );
  for (const k of paramNames(p)) assert.ok(tf.max(tf.abs(grads[p[k].name])).dataSync()[0] > 0, k);
  disposeParams(p as Params);
});
