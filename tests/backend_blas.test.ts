/**
 * The `cpu-blas` backend's OpenBLAS and element-wise kernels against stock tfjs cpu (`cpu-js`) and
 * against float64 JavaScript, on random shapes including odd sizes; plus the backend selection
 * helpers and their errors.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import {
  availableBackends,
  broadcastBinary,
  col2im,
  type ConvGeometry,
  defaultBackend,
  findTensorflowPackage,
  im2col,
  initBackend,
  loadOpenBlas,
  parseBackendName,
  reduceSum,
  softmaxRows,
  transposeValues,
} from "../lib/backend/mod.ts";
import { Rng } from "../lib/util/rng.ts";
import "../lib/nn/gradients.ts";
import { assertClose } from "./helpers/assert_close.ts";

const blas = loadOpenBlas();
const noBlas = blas === null;
const rng = Rng.stream(2024, [1]);

/** Evaluate `f` (forward plus gradients w.r.t. all inputs) on a backend; returns flat arrays. */
async function evalOn(
  backend: "cpu-blas" | "cpu-js",
  shapes: number[][],
  values: Float32Array[],
  f: (xs: tf.Tensor[]) => tf.Tensor,
  cotangentSeed: number,
): Promise<Float32Array[]> {
  await initBackend(backend, { quiet: true });
  const xs = values.map((v, i) => tf.tensor(v, shapes[i]));
  const y = tf.tidy(() => f(xs));
  const r = tf.tensor(Rng.stream(cotangentSeed).normal(y.size), y.shape);
  const gs = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(f(a), r)))(xs);
  const out = [y, ...gs].map((t) => t.dataSync() as Float32Array);
  tf.dispose([...xs, y, r, ...gs]);
  return out;
}

/** Same random inputs and cotangent on cpu (BLAS) and cpu-js; every output within `tol`. */
async function compareWithStock(
  what: string,
  shapes: number[][],
  f: (xs: tf.Tensor[]) => tf.Tensor,
  tol = 1e-5,
): Promise<void> {
  const values = shapes.map((s) => rng.normal(s.reduce((a, b) => a * b, 1)));
  const seed = rng.nextU32();
  const fast = await evalOn("cpu-blas", shapes, values, f, seed);
  const stock = await evalOn("cpu-js", shapes, values, f, seed);
  for (let i = 0; i < stock.length; i++) {
    assertClose(fast[i], stock[i], tol, `${what}: output ${i} vs cpu-js`, { minScale: 1e-30 });
  }
}

Deno.test({
  name: "sgemm matches a float64 triple loop for every transpose and odd sizes" +
    (noBlas ? " (skipped: no OpenBLAS)" : ""),
  ignore: noBlas,
  fn() {
    for (const [m, n, k] of [[1, 1, 1], [7, 5, 3], [33, 17, 65], [2, 129, 31]]) {
      for (const ta of [false, true]) {
        for (const tb of [false, true]) {
          const a = rng.normal(m * k), b = rng.normal(k * n);
          const c = rng.normal(m * n), c0 = Float64Array.from(c);
          blas!.sgemm({ m, n, k, a, b, c, transA: ta, transB: tb, alpha: 0.5, beta: 2 });
          const want = new Float64Array(m * n);
          for (let i = 0; i < m; i++) {
            for (let j = 0; j < n; j++) {
              let s = 0;
              for (let l = 0; l < k; l++) {
                s += (ta ? a[l * m + i] : a[i * k + l]) * (tb ? b[j * k + l] : b[l * n + j]);
              }
              want[i * n + j] = 0.5 * s + 2 * c0[i * n + j];
            }
          }
          assertClose(c, want, 1e-5, `sgemm ${m}x${n}x${k} ta=${ta} tb=${tb}`, { minScale: 1e-30 });
        }
      }
    }
    assert.throws(
      () =>
        blas!.sgemm({
          m: 2,
          n: 2,
          k: 2,
          a: new Float32Array(3),
          b: new Float32Array(4),
          c: new Float32Array(4),
        }),
      /a has 3 values, need 4/,
    );
  },
});

Deno.test("im2col and col2im are adjoint (<im2col x, c> == <x, col2im c>)", () => {
  const geoms: ConvGeometry[] = [
    {
      inH: 5,
      inW: 6,
      inC: 3,
      outH: 3,
      outW: 3,
      kH: 3,
      kW: 3,
      strideH: 2,
      strideW: 2,
      dilationH: 1,
      dilationW: 1,
      padTop: 1,
      padLeft: 1,
    },
    {
      inH: 7,
      inW: 4,
      inC: 17,
      outH: 3,
      outW: 4,
      kH: 3,
      kW: 1,
      strideH: 1,
      strideW: 1,
      dilationH: 2,
      dilationW: 1,
      padTop: 0,
      padLeft: 0,
    },
  ];
  for (const g of geoms) {
    const batch = 2;
    const x = rng.normal(batch * g.inH * g.inW * g.inC);
    const rows = batch * g.outH * g.outW, kk = g.kH * g.kW * g.inC;
    const cols = new Float32Array(rows * kk).fill(NaN); // every entry must be written
    im2col(x, cols, g, 0, batch);
    const c = rng.normal(rows * kk);
    const dx = new Float32Array(x.length);
    col2im(c, dx, g, 0, batch);
    let lhs = 0, rhs = 0;
    for (let i = 0; i < cols.length; i++) lhs += cols[i] * c[i];
    for (let i = 0; i < x.length; i++) rhs += x[i] * dx[i];
    assert.ok(Number.isFinite(lhs), "im2col left entries unwritten");
    assert.ok(Math.abs(lhs - rhs) < 1e-3 * Math.max(1, Math.abs(lhs)), `${lhs} vs ${rhs}`);
  }
  // A known patch: 1x3x3x1 image 0..8, 2x2 kernel, stride 1, valid -> first patch [0,1,3,4].
  const g1: ConvGeometry = {
    inH: 3,
    inW: 3,
    inC: 1,
    outH: 2,
    outW: 2,
    kH: 2,
    kW: 2,
    strideH: 1,
    strideW: 1,
    dilationH: 1,
    dilationW: 1,
    padTop: 0,
    padLeft: 0,
  };
  const cols1 = new Float32Array(16);
  im2col(Float32Array.from({ length: 9 }, (_, i) => i), cols1, g1, 0, 1);
  assert.deepEqual([...cols1.subarray(0, 4)], [0, 1, 3, 4]);
  assert.deepEqual([...cols1.subarray(12, 16)], [4, 5, 7, 8]);
});

Deno.test("broadcastBinary and reduceSum match closed forms", () => {
  const a = Float32Array.from([1, 2, 3, 4, 5, 6]); // [2,3]
  assert.deepEqual([
    ...broadcastBinary("add", a, [2, 3], Float32Array.from([10, 20, 30]), [3]).values,
  ], [11, 22, 33, 14, 25, 36]);
  assert.deepEqual(
    [...broadcastBinary("mul", a, [2, 3], Float32Array.from([2, 3]), [2, 1]).values],
    [2, 4, 6, 12, 15, 18],
  );
  const outer = broadcastBinary(
    "sub",
    Float32Array.from([1, 2]),
    [2, 1],
    Float32Array.from([1, 2, 3]),
    [1, 3],
  );
  assert.deepEqual(outer.shape, [2, 3]);
  assert.deepEqual([...outer.values], [0, -1, -2, 1, 0, -1]);
  assert.deepEqual([...broadcastBinary("sqdiff", a, [2, 3], Float32Array.from([1]), []).values], [
    0,
    1,
    4,
    9,
    16,
    25,
  ]);
  assert.deepEqual([...reduceSum(a, [2, 3], [0]).values], [5, 7, 9]);
  assert.deepEqual([...reduceSum(a, [2, 3], [1]).values], [6, 15]);
  assert.deepEqual([...reduceSum(a, [2, 3], [0, 1]).values], [21]);
  const x = Float32Array.from({ length: 24 }, (_, i) => i); // [2,3,4]
  const r = reduceSum(x, [2, 3, 4], [0, 2]);
  assert.deepEqual(r.shape, [3]);
  // sum over n,k of (12n + 4j + k) = 2*4*4j + 4*12 + 2*6
  assert.deepEqual([...r.values], [0, 1, 2].map((j) => 32 * j + 48 + 12));
});

Deno.test("transposeValues and softmaxRows match closed forms", () => {
  const x = Float32Array.from([1, 2, 3, 4, 5, 6]);
  assert.deepEqual([...transposeValues(x, [2, 3], [1, 0])], [1, 4, 2, 5, 3, 6]);
  const y = Int32Array.from({ length: 24 }, (_, i) => i); // [2,3,4] -> perm [2,0,1]: [4,2,3]
  const t = transposeValues(y, [2, 3, 4], [2, 0, 1]);
  assert.ok(t instanceof Int32Array);
  for (let k = 0; k < 4; k++) {
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 3; j++) assert.equal(t[(k * 2 + i) * 3 + j], i * 12 + j * 4 + k);
    }
  }
  const s = softmaxRows(Float32Array.from([0, Math.log(3), 1000, 1000]), 2);
  assert.deepEqual([...s].map((v) => Math.round(v * 1e6) / 1e6), [0.25, 0.75, 0.5, 0.5]);
});

Deno.test({
  name: "BLAS kernels match stock cpu-js within 1e-5 (forward and gradients)" +
    (noBlas ? " (skipped: no OpenBLAS)" : ""),
  ignore: noBlas,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await t.step("matMul, all transposes, odd sizes", async () => {
      for (const [m, k, n] of [[7, 13, 5], [1, 9, 31], [33, 65, 17]]) {
        for (const ta of [false, true]) {
          for (const tb of [false, true]) {
            await compareWithStock(
              `matMul ${m}x${k}x${n} ta=${ta} tb=${tb}`,
              [ta ? [k, m] : [m, k], tb ? [n, k] : [k, n]],
              ([a, b]) => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D, ta, tb),
            );
          }
        }
      }
    });
    await t.step("batched matMul [B,H,T,D] with transposes", async () => {
      await compareWithStock(
        "attention scores",
        [[2, 3, 7, 5], [2, 3, 7, 5]],
        ([q, k]) => tf.matMul(q, k, false, true),
      );
      await compareWithStock(
        "attention ta",
        [[2, 3, 7, 5], [2, 3, 7, 6]],
        ([q, k]) => tf.matMul(q, k, true, false),
      );
    });
    await t.step("fused matMul with bias and relu", async () => {
      await compareWithStock(
        "fused matMul",
        [[9, 11], [11, 7], [7]],
        ([a, b, bias]) =>
          tf.fused.matMul({ a: a as tf.Tensor2D, b: b as tf.Tensor2D, bias, activation: "relu" }),
      );
    });
    await t.step("conv2d: strides, paddings, kernel sizes, odd shapes", async () => {
      const cases: [number[], number[], number, "same" | "valid" | number][] = [
        [[2, 9, 7, 3], [3, 3, 3, 5], 1, "same"],
        [[2, 9, 7, 3], [3, 3, 3, 5], 2, "same"],
        [[1, 8, 8, 4], [3, 3, 4, 6], 2, "valid"],
        [[3, 5, 6, 7], [1, 1, 7, 3], 1, "valid"],
        [[1, 7, 7, 2], [5, 5, 2, 3], 1, 1],
        [[2, 6, 6, 16], [2, 2, 16, 17], 2, "valid"],
        [[1, 11, 9, 3], [4, 3, 3, 2], 3, "same"],
      ];
      for (const [xs, ws, s, p] of cases) {
        await compareWithStock(
          `conv2d x${xs} w${ws} s${s} ${p}`,
          [xs, ws],
          ([x, w]) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, s, p),
        );
      }
    });
    await t.step("conv2d with dilation 2 (forward)", async () => {
      await initBackend("cpu-blas", { quiet: true });
      const x = rng.normal(1 * 9 * 9 * 3), w = rng.normal(3 * 3 * 3 * 4);
      const run = () =>
        tf.conv2d(tf.tensor4d(x, [1, 9, 9, 3]), tf.tensor4d(w, [3, 3, 3, 4]), 1, "same", "NHWC", 2)
          .dataSync();
      const fast = run();
      await initBackend("cpu-js", { quiet: true });
      assertClose(fast, run(), 1e-5, "grouped conv2d", { minScale: 1e-30 });
    });
    await t.step("fused conv2d with bias and relu, and with broadcast bias", async () => {
      await compareWithStock(
        "fused conv relu",
        [[2, 6, 5, 3], [3, 3, 3, 4], [4]],
        ([x, w, b]) =>
          tf.fused.conv2d({
            x: x as tf.Tensor4D,
            filter: w as tf.Tensor4D,
            bias: b,
            activation: "relu",
            pad: "same",
            strides: 1,
          }),
      );
    });
    await t.step(
      "element-wise fast paths: broadcasting add/sub/mul/div/sqdiff, sum/mean",
      async () => {
        await compareWithStock("bias add", [[2, 5, 3, 7], [7]], ([a, b]) => tf.add(a, b));
        await compareWithStock(
          "time-embedding add",
          [[2, 5, 3, 7], [2, 1, 1, 7]],
          ([a, b]) => tf.add(a, b),
        );
        await compareWithStock("scale", [[2, 5, 3, 7], [1, 5, 1, 1]], ([a, b]) => tf.mul(a, b));
        await compareWithStock("sub same shape", [[3, 11], [3, 11]], ([a, b]) => tf.sub(a, b));
        await compareWithStock(
          "div",
          [[4, 6], [4, 1]],
          ([a, b]) => tf.div(a, tf.add(tf.abs(b), 1)),
        );
        await compareWithStock(
          // Same shapes: tfjs' SquaredDifference gradient does not reduce broadcast dims.
          "squared difference",
          [[3, 4, 5], [3, 4, 5]],
          ([a, b]) => tf.squaredDifference(a, b),
        );
        await compareWithStock(
          "transpose attention heads",
          [[2, 5, 3, 4]],
          ([a]) => tf.transpose(a, [0, 2, 1, 3]),
        );
        await compareWithStock("softmax", [[2, 3, 7]], ([a]) => tf.softmax(a));
        await compareWithStock("sum leading axes", [[3, 4, 5, 6]], ([a]) => tf.sum(a, [0, 1, 2]));
        await compareWithStock(
          "mean mixed axes keepDims",
          [[3, 4, 5, 6]],
          ([a]) => tf.mean(a, [1, 3], true),
        );
        await compareWithStock(
          "moments",
          [[2, 4, 4, 3, 2]],
          ([a]) => tf.moments(a, [1, 2, 4], true).variance,
        );
      },
    );
  },
});

Deno.test("backend selection: names, default, availability, errors", async () => {
  assert.equal(parseBackendName("wasm"), "wasm");
  assert.throws(
    () => parseBackendName("gpu", "config.backend"),
    /config\.backend: expected one of cpu-blas, wasm/,
  );
  await assert.rejects(
    () => initBackend("cpu-blas", { threads: 0 }),
    /threads must be a positive integer/,
  );
  assert.equal(defaultBackend(), noBlas ? "wasm" : "cpu-blas");
  const names = await availableBackends();
  assert.ok(names.includes("cpu-blas") && names.includes("cpu-js"), `available: ${names}`);
  const info = await initBackend("cpu-blas", { threads: 1, quiet: true });
  assert.equal(info.blas, !noBlas);
  assert.equal(tf.getBackend(), info.tfBackend);
  if (!noBlas) {
    // OpenBLAS's thread count is process-global and `deno test --parallel` runs other files in
    // this process, so the thread setting is checked in a process of its own.
    const script = `
      import { initBackend, loadOpenBlas } from "${new URL(
      "../lib/backend/mod.ts",
      import.meta.url,
    )}";
      await initBackend("cpu-blas", { threads: 1, quiet: true });
      const one = loadOpenBlas().threads();
      await initBackend("cpu-blas", { quiet: true });
      console.log(JSON.stringify([one, loadOpenBlas().threads()]));`;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--ext=ts", script],
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const [one, all] = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
    assert.equal(one, 1);
    assert.equal(all, Math.max(1, navigator.hardwareConcurrency));
  }
  if (findTensorflowPackage() === null) {
    await assert.rejects(() => initBackend("tensorflow"), /tfjs-node-gpu.*CUDA 11\.2.*cuDNN 8\.1/s);
  }
});
