/**
 * Native C kernels (lib/backend/native_kernels.ts) against their TypeScript references:
 * bit-identical where both do the same float arithmetic (binary ops, sums, AdamW, transposes,
 * im2col/col2im), within float32 rounding where the C side computes in float32 (norms,
 * activations, softmax). Also the build cache, bad sizes and a missing compiler. CI installs gcc
 * (tests/setup/ensure_deps.sh), so the kernels must load here.
 */
import assert from "node:assert/strict";
import { assertClose } from "./helpers/assert_close.ts";
import * as tf from "@tensorflow/tfjs-core";
import {
  activeNativeKernels,
  broadcastBinary,
  buildNativeKernels,
  col2im,
  type ConvGeometry,
  im2col,
  initBackend,
  loadNativeKernels,
  type NativeBinOp,
  nativeKernelsStatus,
  reduceSum,
  setActiveNativeKernels,
  softmaxRows,
  sumPlan,
  transposePlan,
  transposeValues,
} from "../lib/backend/mod.ts";
import { broadcastPlan } from "../lib/backend/cpu_fast_kernels.ts";
import {
  geluGradValues,
  geluValues,
  groupNormGradValues,
  groupNormValues,
  siluGradValues,
  siluValues,
  softmaxGradValues,
  softmaxValues,
} from "../lib/nn/mod.ts";
import { adamWValues } from "../lib/train/fused_adamw.ts";
import { Rng } from "../lib/util/rng.ts";
import { withTempDirSync } from "./helpers/temp_dir.ts";

const nk = loadNativeKernels();

function need() {
  assert.ok(nk, `native kernels did not load: ${nativeKernelsStatus()}`);
  return nk;
}

function randn(rng: Rng, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.gaussian() * scale;
  return a;
}

function assertSame(got: ArrayLike<number>, want: ArrayLike<number>, what: string) {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i])) {
      assert.fail(`${what}: element ${i} is ${got[i]}, expected ${want[i]} exactly`);
    }
  }
}

Deno.test("native kernels: build once per source/compiler/CPU, then reuse the cached library", () => {
  const k = need();
  const again = buildNativeKernels();
  assert.equal(again.path, k.path);
  assert.equal(again.built, false);
  withTempDirSync("xgen_native_kernels_", (dir) => {
    const first = buildNativeKernels({ cacheDir: dir });
    assert.equal(first.built, true);
    assert.ok(first.path.startsWith(dir));
    // Nothing half-written is left beside the library (temporary names are removed).
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [
      first.path.slice(dir.length + 1),
    ]);
    assert.equal(buildNativeKernels({ cacheDir: dir }).built, false);
  });
});

Deno.test("native kernels: a damaged cached library is rebuilt, not given up on", () => {
  need();
  withTempDirSync("xgen_native_kernels_", (dir) => {
    const { path } = buildNativeKernels({ cacheDir: dir });
    Deno.writeTextFileSync(path, "not a shared library");
    const k = loadNativeKernels({ cacheDir: dir });
    assert.ok(k, nativeKernelsStatus());
    assert.equal(k.path, path);
    const y = new Float32Array(1);
    k.silu(Float32Array.from([1]), y);
    assert.ok(Math.abs(y[0] - 1 / (1 + Math.exp(-1))) < 1e-6);
  });
});

Deno.test("native kernels: a missing compiler gives null and a reason, never an exception", () => {
  withTempDirSync("xgen_native_kernels_", (dir) => {
    const r = loadNativeKernels({ cacheDir: dir, compiler: "/nonexistent/xgen-cc" });
    assert.equal(r, null);
    assert.match(nativeKernelsStatus(), /no C compiler '\/nonexistent\/xgen-cc'/);
    // The process-wide kernels are untouched by a custom attempt.
    assert.equal(loadNativeKernels(), nk);
  });
});

Deno.test("native kernels: GroupNorm/LayerNorm(+SiLU) forward and backward match the TypeScript", () => {
  const k = need();
  const rng = Rng.stream(1);
  // [batch, spatial, channels, groups]: conv features, LayerNorm rows, odd sizes, one position.
  const cases: [number, number, number, number][] = [
    [4, 64, 32, 16],
    [3, 9, 12, 3],
    [64, 1, 48, 1],
    [5, 1, 20, 4],
    [2, 7, 6, 6],
  ];
  for (const [batch, spatial, c, groups] of cases) {
    for (const silu of [false, true]) {
      const what = `[${batch},${spatial},${c}] g${groups} silu=${silu}`;
      const n = batch * spatial * c;
      // An offset mean checks the centred second pass.
      const x = randn(rng, n).map((v) => v * 2 + 3);
      const gamma = randn(rng, c).map((v) => 1 + 0.3 * v), beta = randn(rng, c, 0.5);
      const o = { batch, channels: c, groups, eps: 1e-5, silu };
      const ref = groupNormValues(x, gamma, beta, o);
      const out = {
        y: new Float32Array(n),
        mean: new Float32Array(batch * groups),
        rstd: new Float32Array(batch * groups),
      };
      k.groupNorm(x, gamma, beta, { ...o, spatial }, out);
      assertClose(out.y, ref.y, 2e-6, `${what} y`);
      assertClose(out.mean, ref.mean, 1e-6, `${what} mean`);
      assertClose(out.rstd, ref.rstd, 1e-6, `${what} rstd`);
      const dy = randn(rng, n);
      const inp = {
        dy,
        x,
        gamma,
        beta,
        mean: ref.mean as Float32Array,
        rstd: ref.rstd as Float32Array,
      };
      const g = groupNormGradValues(inp, o);
      const gout = {
        dx: new Float32Array(n),
        dgamma: new Float32Array(c),
        dbeta: new Float32Array(c),
      };
      k.groupNormGrad(inp, { ...o, spatial }, gout);
      assertClose(gout.dx, g.dx, 1e-5, `${what} dx`);
      assertClose(gout.dgamma, g.dgamma, 1e-5, `${what} dgamma`);
      assertClose(gout.dbeta, g.dbeta, 1e-5, `${what} dbeta`);
    }
  }
});

Deno.test("native kernels: SiLU, GELU and scaled softmax with their gradients match the TypeScript", () => {
  const k = need();
  const rng = Rng.stream(2);
  for (const n of [1, 7, 1000, 4099]) {
    // Wide inputs reach the exp clamps: |x| up to ~100.
    const x = randn(rng, n, 8);
    if (n > 2) [x[0], x[1]] = [100, -100];
    const dy = randn(rng, n);
    for (
      const [name, f, fg, nf, nfg] of [
        ["silu", siluValues, siluGradValues, k.silu, k.siluGrad],
        ["gelu", geluValues, geluGradValues, k.gelu, k.geluGrad],
      ] as const
    ) {
      const y = new Float32Array(n), dx = new Float32Array(n);
      nf(x, y);
      nfg(dy, x, dx);
      assertClose(y, f(x), 1e-6, `${name} n=${n}`);
      assertClose(dx, fg(dy, x), 3e-6, `${name} grad n=${n}`);
    }
  }
  for (const [rows, cols, scale] of [[1, 1, 1], [6, 16, 0.25], [33, 77, 1]]) {
    const x = randn(rng, rows * cols, 3), dy = randn(rng, rows * cols);
    const y = new Float32Array(x.length), dx = new Float32Array(x.length);
    k.softmax(x, y, cols, scale);
    const want = softmaxValues(x, cols, scale);
    assertClose(y, want, 1e-6, `softmax ${rows}x${cols}`);
    assertClose(y, softmaxRows(x.map((v) => v * scale), cols), 1e-6, `softmax vs Math.exp`);
    k.softmaxGrad(dy, y, dx, cols, scale);
    assertClose(dx, softmaxGradValues(dy, y, cols, scale), 1e-6, `softmax grad ${rows}x${cols}`);
  }
});

Deno.test("native kernels: AdamW is bit-identical to the TypeScript update", () => {
  const k = need();
  const rng = Rng.stream(3);
  const n = 1031;
  const p = randn(rng, n), g = randn(rng, n, 0.1), m = randn(rng, n, 0.01);
  const v = randn(rng, n, 0.01).map((x) => x * x);
  const a = {
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    stepSize: 1e-3 / 0.1,
    sqrtBc2: 0.0447,
    decay: 0.99999,
  };
  const want = adamWValues(p, g, m, v, a, (len) => new Float32Array(len));
  const got: [Float32Array, Float32Array, Float32Array] = [0, 1, 2].map(() =>
    new Float32Array(n)
  ) as [
    Float32Array,
    Float32Array,
    Float32Array,
  ];
  k.adamW({ p, g, m, v }, a, got);
  ["p", "m", "v"].forEach((name, i) => assertSame(got[i], want[i], `adamW ${name}`));
});

Deno.test("native kernels: broadcast binary ops are bit-identical to broadcastBinary", () => {
  const k = need();
  const rng = Rng.stream(4);
  const shapes: [number[], number[]][] = [
    [[4, 5, 6], [4, 5, 6]],
    [[4, 5, 6], [6]],
    [[6], [4, 5, 6]],
    [[4, 5, 6], [1]],
    [[1], [3, 2]],
    [[4, 1, 6], [1, 5, 1]],
    [[2, 3, 4, 2], [2, 1, 4, 1]],
    [[3, 1], [1, 7]],
  ];
  for (const [as, bs] of shapes) {
    const a = randn(rng, tf.util.sizeFromShape(as)), b = randn(rng, tf.util.sizeFromShape(bs));
    for (const op of ["add", "sub", "mul", "div", "sqdiff"] as NativeBinOp[]) {
      const want = broadcastBinary(op, a, as, b, bs);
      const got = new Float32Array(want.values.length);
      const size = got.length;
      const plan = a.length === size && b.length === size
        ? { dims: [size], aStrides: [1], bStrides: [1] }
        : broadcastPlan(as, bs);
      k.binary(op, got, a, b, plan);
      assertSame(got, want.values, `${op} [${as}] [${bs}]`);
    }
  }
});

Deno.test("native kernels: sums over any axes match reduceSum (bit-identical on long runs)", () => {
  const k = need();
  const rng = Rng.stream(5);
  const cases: [number[], number[], boolean][] = [
    [[8, 4, 4, 64], [0, 1, 2], true], // bias gradient
    [[8, 40], [1], true], // row sums
    [[8, 40], [0, 1], true],
    [[3, 40, 5, 40], [1, 3], true],
    [[2, 6, 6, 4, 2], [1, 2, 4], false], // a short reduced tail: reduceSum takes its detour
    [[5, 1, 7], [1], true],
  ];
  for (const [shape, axes, exact] of cases) {
    const x = randn(rng, tf.util.sizeFromShape(shape));
    const want = reduceSum(x, shape, axes);
    const got = new Float32Array(want.values.length);
    k.sum(x, sumPlan(shape, axes), got);
    if (exact) assertSame(got, want.values, `sum [${shape}] over [${axes}]`);
    else assertClose(got, want.values, 1e-6, `sum [${shape}] over [${axes}]`);
  }
});

Deno.test("native kernels: transposes of float32 and int32 equal transposeValues", () => {
  const k = need();
  const rng = Rng.stream(6);
  const cases: [number[], number[]][] = [
    [[2, 3], [1, 0]],
    [[32, 4, 4, 24], [0, 2, 1, 3]],
    [[3, 4, 5], [2, 0, 1]],
    [[2, 3, 4, 5, 6], [4, 3, 2, 1, 0]],
  ];
  for (const [shape, perm] of cases) {
    const x = randn(rng, tf.util.sizeFromShape(shape));
    const got = new Float32Array(x.length);
    k.transpose32(x, got, transposePlan(shape, perm));
    assertSame(got, transposeValues(x, shape, perm), `f32 [${shape}] by [${perm}]`);
    const xi = Int32Array.from(x, (v) => Math.round(v * 1000));
    const gi = new Int32Array(x.length);
    k.transpose32(xi, gi, transposePlan(shape, perm));
    assertSame(gi, transposeValues(xi, shape, perm), `i32 [${shape}] by [${perm}]`);
  }
});

Deno.test("native kernels: im2col and col2im are exact against the TypeScript versions", () => {
  const k = need();
  const rng = Rng.stream(7);
  const geos: ConvGeometry[] = [
    // 3x3 same-padded, stride 2 with dilation, and an asymmetric kernel.
    {
      inH: 6,
      inW: 5,
      inC: 3,
      outH: 6,
      outW: 5,
      kH: 3,
      kW: 3,
      strideH: 1,
      strideW: 1,
      dilationH: 1,
      dilationW: 1,
      padTop: 1,
      padLeft: 1,
    },
    {
      inH: 9,
      inW: 9,
      inC: 2,
      outH: 3,
      outW: 3,
      kH: 3,
      kW: 3,
      strideH: 2,
      strideW: 2,
      dilationH: 2,
      dilationW: 2,
      padTop: 1,
      padLeft: 1,
    },
    {
      inH: 4,
      inW: 7,
      inC: 17,
      outH: 4,
      outW: 5,
      kH: 1,
      kW: 3,
      strideH: 1,
      strideW: 1,
      dilationH: 1,
      dilationW: 1,
      padTop: 0,
      padLeft: 0,
    },
  ];
  for (const g of geos) {
    const batch = 3, first = 1, count = 2;
    const x = randn(rng, batch * g.inH * g.inW * g.inC);
    const rows = count * g.outH * g.outW * g.kH * g.kW * g.inC;
    const want = new Float32Array(rows), got = new Float32Array(rows).fill(NaN);
    im2col(x, want, g, first, count);
    k.im2col(x, got, g, first, count);
    assertSame(got, want, `im2col ${JSON.stringify(g)}`);
    const cols = randn(rng, rows);
    const dxWant = new Float32Array(x.length), dxGot = new Float32Array(x.length);
    col2im(cols, dxWant, g, first, count);
    k.col2im(cols, dxGot, g, first, count);
    assertSame(dxGot, dxWant, `col2im ${JSON.stringify(g)}`);
  }
});

Deno.test("native kernels: arrays too short for the shape are refused before C runs", () => {
  const k = need();
  assert.throws(
    () => k.silu(new Float32Array(8), new Float32Array(7)),
    /native silu: has 7 values, needs 8/,
  );
  assert.throws(
    () =>
      k.binary("add", new Float32Array(4), new Float32Array(4), new Float32Array(2), {
        dims: [2, 2],
        aStrides: [2, 1],
        bStrides: [1, 1],
      }),
    /native binary b: has 2 values, needs 3/,
  );
  assert.throws(
    () =>
      k.groupNorm(new Float32Array(12), new Float32Array(4), new Float32Array(4), {
        batch: 1,
        spatial: 3,
        channels: 4,
        groups: 3,
        eps: 1e-5,
        silu: false,
      }, {
        y: new Float32Array(12),
        mean: new Float32Array(3),
        rstd: new Float32Array(3),
      }),
    /groups=3 must divide channels=4/,
  );
  assert.throws(
    () => k.sum(new Float32Array(5), { dims: [2, 3], outStrides: [0, 1] }, new Float32Array(3)),
    /native sum: 5 values/,
  );
});

Deno.test("native kernels: a training step's kernels give the TypeScript results on cpu-blas", async () => {
  const info = await initBackend("cpu-blas", { quiet: true });
  if (!info.blas) return; // no OpenBLAS: cpu-blas (and its native path) is not in use
  assert.ok(
    activeNativeKernels(),
    `initBackend('cpu-blas') left the native kernels off: ${info.details}`,
  );
  assert.match(info.details, /native element-wise kernels/);
  const xv = randn(Rng.stream(8), 2 * 4 * 4 * 8), bv = randn(Rng.stream(9), 8);
  // Add (broadcast), Multiply, Transpose, Softmax and Sum forward; their gradients backward.
  const run = () =>
    tf.tidy(() => {
      const x = tf.tensor4d(xv, [2, 4, 4, 8]), b = tf.tensor1d(bv);
      const f = (t: tf.Tensor) =>
        tf.sum(tf.mul(tf.softmax(tf.transpose(tf.add(tf.mul(t, t), b), [0, 2, 1, 3])), t));
      const { value, grad } = tf.valueAndGrad(f)(x);
      return [value.dataSync()[0], ...grad.dataSync()];
    });
  const k = activeNativeKernels();
  const withNative = run();
  setActiveNativeKernels(null);
  let without: number[];
  try {
    without = run();
  } finally {
    setActiveNativeKernels(k);
  }
  assertClose(withNative, without, 1e-6, "native vs TypeScript kernels");
});
