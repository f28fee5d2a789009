import assert from "node:assert/strict";
import { attr, OnnxGraph, openSession, readOnnx } from "../lib/onnx/mod.ts";
import { Rng } from "../lib/util/rng.ts";
import { assertClose } from "./helpers/assert_close.ts";

const OPTS = { threads: 1, executionProviders: ["cpu"] } as const;

function rand(rng: Rng, n: number): Float32Array {
  return rng.normal(n);
}

/** Plain-JS row-major matmul [n,k] x [k,m]. */
function matmul(a: ArrayLike<number>, b: ArrayLike<number>, n: number, k: number, m: number) {
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += a[i * k + t] * b[t * m + j];
      out[i * m + j] = s;
    }
  }
  return out;
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

Deno.test("OnnxGraph: MLP (Gemm with float attrs, Sigmoid, MatMul+Add) matches JS", async () => {
  const rng = Rng.stream(11);
  const [B, I, H, O] = [3, 5, 4, 2];
  const w1 = rand(rng, H * I); // Gemm with transB=1: weight stored [H, I]
  const b1 = rand(rng, H);
  const w2 = rand(rng, H * O);
  const b2 = rand(rng, O);
  const x = rand(rng, B * I);

  const g = new OnnxGraph("mlp");
  const xin = g.input("x", "float32", ["batch", I]);
  // alpha 0.5 and beta 2: beta is integral but must still be written as FLOAT.
  const h = g.node("Gemm", [
    xin,
    g.initializer("fc1.weight", w1, [H, I]),
    g.initializer("fc1.bias", b1, [H]),
  ], {
    transB: 1,
    alpha: 0.5,
    beta: 2,
  }, { name: "fc1" });
  const a = g.node("Sigmoid", [h]);
  const y = g.node("Add", [
    g.node("MatMul", [a, g.initializer("fc2.weight", w2, [H, O])]),
    g.initializer("fc2.bias", b2, [O]),
  ]);
  g.output(y, "float32", ["batch", O]);
  const s = await openSession(g.toBytes(), { ...OPTS, name: "mlp.onnx" });
  const out = (await s.run({ x: { data: x, shape: [B, I] } }))[y].data as Float32Array;

  const expect = new Float64Array(B * O);
  for (let bi = 0; bi < B; bi++) {
    const act = new Float64Array(H);
    for (let j = 0; j < H; j++) {
      let sum = 0;
      for (let t = 0; t < I; t++) sum += x[bi * I + t] * w1[j * I + t];
      act[j] = sigmoid(0.5 * sum + 2 * b1[j]);
    }
    for (let o = 0; o < O; o++) {
      let sum = b2[o];
      for (let j = 0; j < H; j++) sum += act[j] * w2[j * O + o];
      expect[bi * O + o] = sum;
    }
  }
  assertClose(out, expect, 1e-5, "MLP", { scale: "absolute" });
  await s.release();
});

Deno.test("OnnxGraph: Conv (stride 2, pads) + Relu matches JS", async () => {
  const rng = Rng.stream(12);
  const [N, C, H, W, K, R] = [2, 2, 5, 6, 3, 3];
  const x = rand(rng, N * C * H * W);
  const w = rand(rng, K * C * R * R);
  const b = rand(rng, K);
  const g = new OnnxGraph("conv");
  const y = g.node("Relu", [
    g.node("Conv", [
      g.input("x", "float32", [N, C, H, W]),
      g.initializer("conv.weight", w, [K, C, R, R]),
      g.initializer("conv.bias", b, [K]),
    ], { kernel_shape: [R, R], pads: [1, 1, 1, 1], strides: [2, 2] }),
  ]);
  g.output(y, "float32");
  const s = await openSession(g.toBytes(), OPTS);
  const res = (await s.run({ x: { data: x, shape: [N, C, H, W] } }))[y];
  const [Ho, Wo] = [Math.floor((H + 2 - R) / 2) + 1, Math.floor((W + 2 - R) / 2) + 1];
  assert.deepEqual(res.dims, [N, K, Ho, Wo]);
  const expect = new Float64Array(N * K * Ho * Wo);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      for (let oy = 0; oy < Ho; oy++) {
        for (let ox = 0; ox < Wo; ox++) {
          let sum = b[k];
          for (let c = 0; c < C; c++) {
            for (let ky = 0; ky < R; ky++) {
              for (let kx = 0; kx < R; kx++) {
                const iy = oy * 2 - 1 + ky;
                const ix = ox * 2 - 1 + kx;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                sum += x[((n * C + c) * H + iy) * W + ix] * w[((k * C + c) * R + ky) * R + kx];
              }
            }
          }
          expect[((n * K + k) * Ho + oy) * Wo + ox] = Math.max(0, sum);
        }
      }
    }
  }
  assertClose(res.data as Float32Array, expect, 1e-5, "conv + relu", { scale: "absolute" });
  assert.ok(expect.some((v) => v === 0) && expect.some((v) => v > 0), "Relu clips some values");
});

Deno.test("OnnxGraph: Reshape/Transpose/Softmax multi-head attention matches JS", async () => {
  const rng = Rng.stream(13);
  const [B, T, C, Hh] = [2, 4, 6, 2];
  const D = C / Hh;
  const x = rand(rng, B * T * C);
  const wq = rand(rng, C * C);
  const wk = rand(rng, C * C);
  const wv = rand(rng, C * C);

  const g = new OnnxGraph("attention");
  const xin = g.input("x", "float32", ["batch", T, C]);
  const heads = (name: string, wt: Float32Array, perm: number[]) =>
    g.node("Transpose", [
      g.node("Reshape", [
        g.node("MatMul", [xin, g.initializer(name, wt, [C, C])]),
        g.int64s([0, 0, Hh, D]), // 0 copies the input's dimension
      ]),
    ], { perm });
  const q = heads("to_q.weight", wq, [0, 2, 1, 3]); // [B, H, T, D]
  const kT = heads("to_k.weight", wk, [0, 2, 3, 1]); // [B, H, D, T]
  const v = heads("to_v.weight", wv, [0, 2, 1, 3]);
  const scores = g.node("Mul", [g.node("MatMul", [q, kT]), g.constant([1 / Math.sqrt(D)], [])]);
  const att = g.node("Softmax", [scores], { axis: -1 });
  const o = g.node("Transpose", [g.node("MatMul", [att, v])], { perm: [0, 2, 1, 3] });
  const y = g.node("Reshape", [o, g.int64s([0, 0, C])], {}, { outputs: ["y"] });
  g.output(y, "float32", ["batch", T, C]);
  const s = await openSession(g.toBytes(), OPTS);
  const out = (await s.run({ x: { data: x, shape: [B, T, C] } })).y.data as Float32Array;

  const expect = new Float64Array(B * T * C);
  for (let bi = 0; bi < B; bi++) {
    const xb = x.subarray(bi * T * C, (bi + 1) * T * C);
    const Q = matmul(xb, wq, T, C, C);
    const K = matmul(xb, wk, T, C, C);
    const V = matmul(xb, wv, T, C, C);
    for (let h = 0; h < Hh; h++) {
      for (let i = 0; i < T; i++) {
        const sc = new Float64Array(T);
        for (let j = 0; j < T; j++) {
          let sum = 0;
          for (let d = 0; d < D; d++) sum += Q[i * C + h * D + d] * K[j * C + h * D + d];
          sc[j] = sum / Math.sqrt(D);
        }
        const mx = Math.max(...sc);
        const e = sc.map((z) => Math.exp(z - mx));
        const tot = e.reduce((p, c) => p + c, 0);
        for (let d = 0; d < D; d++) {
          let sum = 0;
          for (let j = 0; j < T; j++) sum += (e[j] / tot) * V[j * C + h * D + d];
          expect[(bi * T + i) * C + h * D + d] = sum;
        }
      }
    }
  }
  assertClose(out, expect, 1e-5, "attention", { scale: "absolute" });
});

Deno.test("OnnxGraph round trip: readOnnx gives back names, attributes, weights", () => {
  const g = new OnnxGraph("rt");
  const x = g.input("x", "float32", ["batch", 3, 8, 8]);
  const w = Float32Array.from({ length: 4 * 3 * 9 }, (_, i) => i / 7 - 3);
  const h = g.node("Conv", [x, g.initializer("conv.weight", w, [4, 3, 3, 3])], {
    pads: [1, 1, 1, 1],
    auto_pad: "NOTSET",
    epsilon: 1, // a float-typed name: written as FLOAT
    count: attr.int(0), // an INT that is 0 must still be written
  }, { name: "conv" });
  const f = g.node("Flatten", [h], { axis: 1 });
  const c = g.node("ConstantOfShape", [g.int64s([2, 2])], {
    value: attr.tensor("float32", [0.25], [1]),
  });
  g.output(f, "float32", ["batch", 256]);
  g.output(c, "float32", [2, 2]);
  const bytes = g.toBytes({ metadata: { source: "test" } });
  const m = readOnnx(bytes, "rt.onnx");
  assert.equal(m.irVersion, 8);
  assert.deepEqual(m.opsets, { "": 17 });
  assert.equal(m.producer, "xgen-kit");
  assert.deepEqual(m.metadata, { source: "test" });
  assert.equal(m.graph.name, "rt");
  assert.deepEqual(m.graph.inputs, [{ name: "x", dtype: "float32", shape: ["batch", 3, 8, 8] }]);
  assert.deepEqual(m.graph.outputs.map((o) => o.name), [f, c]);
  assert.deepEqual(m.graph.nodes.map((n) => n.op), ["Conv", "Flatten", "ConstantOfShape"]);
  assert.equal(m.graph.nodes[0].name, "conv");
  assert.deepEqual(m.graph.nodes[0].inputs, ["x", "conv.weight"]);
  assert.deepEqual(m.graph.nodes[0].attrs, {
    pads: [1, 1, 1, 1],
    auto_pad: "NOTSET",
    epsilon: 1,
    count: 0,
  });
  assert.deepEqual(m.graph.nodes[1].attrs, { axis: 1 });
  const value = m.graph.nodes[2].attrs.value as { data: Float32Array; shape: number[] };
  assert.deepEqual([...value.data], [0.25]);
  assert.deepEqual(value.shape, [1]);
  const names = m.graph.initializers.map((t) => t.name);
  assert.equal(names[0], "conv.weight");
  assert.equal(names.length, 2);
  const wt = m.graph.initializers[0];
  assert.equal(wt.dtype, "float32");
  assert.deepEqual(wt.shape, [4, 3, 3, 3]);
  assert.deepEqual([...wt.data as Float32Array], [...w]);
  const shapeConst = m.graph.initializers[1];
  assert.equal(shapeConst.dtype, "int64");
  assert.deepEqual([...shapeConst.data as BigInt64Array], [2n, 2n]);
  assert.throws(() => readOnnx(new Uint8Array([0xff, 0xff, 0xff]), "junk.onnx"), /junk\.onnx/);
});

Deno.test("OnnxGraph: builder errors name the graph, node and value", () => {
  const g = new OnnxGraph("bad");
  const x = g.input("x", "float32", [2]);
  assert.throws(() => g.input("x", "float32", [2]), /"bad": input "x" is already defined/);
  assert.throws(
    () => g.node("Add", [x, "nope"], {}, { name: "add1" }),
    /node "add1" \(Add\): input "nope" is not a graph input, initializer or earlier node output/,
  );
  assert.throws(
    () => g.initializer("w", new Float32Array(5), [2, 3]),
    /initializer "w": shape \[2, 3\] needs 6 elements, got 5/,
  );
  assert.throws(
    () => g.initializer("w64", new Float32Array(2), [2], "int64"),
    /Float32Array holds 4-byte elements, int64 needs 8/,
  );
  assert.throws(() => g.node("Relu", [x], { k: attr.int(1.5) }), /"k" must be an integer/);
  assert.throws(() => g.output("y", "float32"), /output "y" is not defined/);
  assert.throws(() => g.toBytes(), /declare at least one output/);
});

Deno.test("OnnxGraph: an INT attribute equal to 0 is written (Flatten axis 0 -> [1, 6])", async () => {
  // Were `axis: 0` dropped as a protobuf default, onnxruntime would use axis 1 -> [2, 3].
  const g = new OnnxGraph("flatten0");
  g.output(g.node("Flatten", [g.input("x", "float32", [2, 3])], { axis: 0 }), "float32");
  const s = await openSession(g.toBytes(), OPTS);
  const out = Object.values(await s.run({ x: { data: new Float32Array(6), shape: [2, 3] } }))[0];
  assert.deepEqual(out.dims, [1, 6]);
});
