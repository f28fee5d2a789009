import assert from "node:assert/strict";
import {
  gemm,
  setBlas64Enabled,
  solveSecular,
  symmetricEigen,
  symvLower,
  tridiagonalEigen,
  tridiagonalEigenvalues,
} from "../lib/math/mod.ts";
import { Rng } from "../lib/util/rng.ts";
import { randomOrthogonal } from "./helpers/linalg.ts";
import { assertClose } from "./helpers/assert_close.ts";

const ABS = { scale: "absolute" } as const;

/** Q diag(l) Q^T with plain loops (independent of the kit's GEMM). */
function withSpectrum(l: number[], rng: Rng): Float64Array {
  const n = l.length, q = randomOrthogonal(n, rng), a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += q[i * n + k] * l[k] * q[j * n + k];
      a[i * n + j] = s;
      a[j * n + i] = s;
    }
  }
  return a;
}

/** max |A V - V diag(w)| and max |V^T V - I|, plain loops. */
function quality(a: Float64Array, w: Float64Array, v: Float64Array, n: number) {
  let res = 0, orth = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let av = 0, vv = 0;
      for (let k = 0; k < n; k++) {
        av += a[i * n + k] * v[k * n + j];
        vv += v[k * n + i] * v[k * n + j];
      }
      res = Math.max(res, Math.abs(av - v[i * n + j] * w[j]));
      orth = Math.max(orth, Math.abs(vv - (i === j ? 1 : 0)));
    }
  }
  return { res, orth };
}

const SPECTRA: Record<string, (n: number) => number[]> = {
  distinct: (n) => Array.from({ length: n }, (_, i) => 1 + i * 0.37),
  "power law 1e-8..1": (n) =>
    Array.from({ length: n }, (_, i) => (i + 1) ** (-8 / Math.max(Math.log10(n), 1))),
  "clusters (repeated)": (n) => Array.from({ length: n }, (_, i) => [2, 2, 2, -1, 5][i % 5]),
  "rank deficient": (n) => Array.from({ length: n }, (_, i) => (i < n / 3 ? 0 : i + 1)),
  "mixed sign, close pairs": (n) =>
    Array.from({ length: n }, (_, i) => (i - n / 2) + (i % 2) * 1e-10),
};

for (const blas of [true, false]) {
  Deno.test(`symmetricEigen recovers known spectra (${blas ? "OpenBLAS" : "TypeScript"} kernels)`, () => {
    setBlas64Enabled(blas);
    try {
      const rng = Rng.stream(11, [1]);
      // 200 > two reflector blocks of the back-transform and three D&C levels.
      for (const n of [1, 2, 7, 33, 90, 200]) {
        for (const [name, make] of Object.entries(SPECTRA)) {
          if (n === 200 && !name.startsWith("clusters") && !name.startsWith("power")) continue;
          const l = make(n);
          const a = withSpectrum(l, rng);
          const scale = Math.max(...l.map(Math.abs), 1e-300);
          const { values, vectors } = symmetricEigen(a, n);
          const want = [...l].sort((x, y) => x - y);
          assertClose(values, want, 1e-12 * n, `${name} n=${n}: eigenvalues`, { minScale: 1e-300 });
          const { res, orth } = quality(a, values, vectors!, n);
          assert.ok(res <= 1e-12 * n * scale, `${name} n=${n}: residual ${res}`);
          assert.ok(orth <= 1e-12 * n, `${name} n=${n}: orthogonality ${orth}`);
          const only = symmetricEigen(a, n, { vectors: false }).values;
          assertClose(only, values, 1e-12 * n * scale, `${name} n=${n}: values only`, ABS);
        }
      }
    } finally {
      setBlas64Enabled(true);
    }
  });
}

Deno.test("tridiagonal solvers match the Toeplitz closed form a + 2b cos(k pi/(n+1))", () => {
  for (const n of [1, 5, 40, 257]) {
    const a = 1.5, b = -0.7;
    const d = new Float64Array(n).fill(a), e = new Float64Array(Math.max(n - 1, 0)).fill(b);
    const want = Array.from(
      { length: n },
      (_, k) => a + 2 * b * Math.cos(((k + 1) * Math.PI) / (n + 1)),
    )
      .sort((x, y) => x - y);
    const onlyValues = tridiagonalEigenvalues(d, e);
    const { values, vectors } = tridiagonalEigen(d, e);
    for (let k = 0; k < n; k++) {
      assert.ok(Math.abs(onlyValues[k] - want[k]) < 1e-13 * n, `QL n=${n} k=${k}`);
      assert.ok(Math.abs(values[k] - want[k]) < 1e-13 * n, `D&C n=${n} k=${k}`);
    }
    // T v = lambda v for every column, with T applied directly from (d, e).
    let res = 0;
    for (let j = 0; j < n; j++) {
      for (let i = 0; i < n; i++) {
        let tv = d[i] * vectors[i * n + j];
        if (i > 0) tv += e[i - 1] * vectors[(i - 1) * n + j];
        if (i < n - 1) tv += e[i] * vectors[(i + 1) * n + j];
        res = Math.max(res, Math.abs(tv - values[j] * vectors[i * n + j]));
      }
    }
    assert.ok(res < 1e-13 * n, `D&C residual n=${n}: ${res}`);
  }
});

Deno.test("divide and conquer handles Wilkinson's W+ (pairs equal to 1e-14)", () => {
  // W_{2m+1}^+: diagonal |m - i|, off-diagonal 1; its largest eigenvalues come in close pairs.
  const m = 60, n = 2 * m + 1;
  const d = Float64Array.from({ length: n }, (_, i) => Math.abs(m - i));
  const e = new Float64Array(n - 1).fill(1);
  const { values, vectors } = tridiagonalEigen(d, e);
  const ql = tridiagonalEigenvalues(d, e);
  let orth = 0;
  for (let p = 0; p < n; p++) {
    for (let q = 0; q <= p; q++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += vectors[i * n + p] * vectors[i * n + q];
      orth = Math.max(orth, Math.abs(s - (p === q ? 1 : 0)));
    }
    assert.ok(Math.abs(values[p] - ql[p]) < 1e-12 * m, `eigenvalue ${p}`);
  }
  assert.ok(orth < 1e-12, `orthogonality ${orth}`);
  // Top pair of W21+ is famously equal to ~1e-14; here the top two must agree to 1e-10.
  assert.ok(values[n - 1] - values[n - 2] < 1e-10);
});

Deno.test("secular equation roots interlace the poles and zero the equation", () => {
  const dd = new Float64Array([-1, 0, 0.5, 2, 2.0001]);
  const z = new Float64Array([0.3, 0.5, 0.1, 0.6, 0.2]);
  const rho = 1.7;
  const { origin, tau } = solveSecular(dd, z, rho);
  for (let j = 0; j < dd.length; j++) {
    const lam = dd[origin[j]] + tau[j];
    assert.ok(lam > dd[j], `root ${j} above its pole`);
    if (j + 1 < dd.length) assert.ok(lam < dd[j + 1], `root ${j} below the next pole`);
    let f = 1;
    for (let i = 0; i < dd.length; i++) f += rho * z[i] ** 2 / ((dd[i] - dd[origin[j]]) - tau[j]);
    assert.ok(Math.abs(f) < 1e-9, `f(root ${j}) = ${f}`);
  }
  // Sum of roots = trace of D + rho z z^T.
  let sum = 0, tr = 0;
  for (let j = 0; j < dd.length; j++) {
    sum += dd[origin[j]] + tau[j];
    tr += dd[j] + rho * z[j] ** 2;
  }
  assert.ok(Math.abs(sum - tr) < 1e-12);
});

Deno.test("gemm and symvLower: OpenBLAS and TypeScript kernels agree with plain loops", () => {
  const rng = Rng.stream(3, [2]);
  const rand = (k: number) => Float64Array.from({ length: k }, () => rng.gaussian());
  // A sub-block view: rows 1..4, cols 2..5 of a 6x7 matrix, op = transpose.
  const big = rand(6 * 7), b = rand(4 * 3), c0 = rand(4 * 3);
  const want = new Float64Array(12);
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 3; j++) {
      let s = 0;
      for (let p = 0; p < 4; p++) s += big[(1 + p) * 7 + 2 + i] * b[p * 3 + j];
      want[i * 3 + j] = 2 * s + 0.5 * c0[i * 3 + j];
    }
  }
  for (const blas of [true, false]) {
    setBlas64Enabled(blas);
    const c = c0.slice();
    gemm({ m: 4, n: 3, k: 4, a: big, offA: 9, lda: 7, transA: true, b, c, alpha: 2, beta: 0.5 });
    assertClose(c, want, 1e-12, `gemm ${blas}`, ABS);
    const bt = new Float64Array(12); // b^T stored [3,4]
    for (let p = 0; p < 4; p++) for (let j = 0; j < 3; j++) bt[j * 4 + p] = b[p * 3 + j];
    const c2 = c0.slice();
    gemm({
      m: 4,
      n: 3,
      k: 4,
      a: big,
      offA: 9,
      lda: 7,
      transA: true,
      b: bt,
      transB: true,
      c: c2,
      alpha: 2,
      beta: 0.5,
    });
    assertClose(c2, want, 1e-12, `gemm transB ${blas}`, ABS);
    // symv on the lower triangle only: garbage in the upper triangle must be ignored.
    const n = 5, s = rand(n * n), x = rand(n), y = new Float64Array(n);
    symvLower({ n, a: s, x, y });
    for (let i = 0; i < n; i++) {
      let t = 0;
      for (let j = 0; j < n; j++) t += (j <= i ? s[i * n + j] : s[j * n + i]) * x[j];
      assert.ok(Math.abs(y[i] - t) < 1e-12, `symv ${blas} ${i}`);
    }
  }
  setBlas64Enabled(true);
  assert.throws(
    () =>
      gemm({
        m: 2,
        n: 2,
        k: 2,
        a: new Float64Array(3),
        b: new Float64Array(4),
        c: new Float64Array(4),
      }),
    /a view/,
  );
});

Deno.test("symmetricEigen refuses asymmetric, non-finite or mis-sized input", () => {
  assert.throws(() => symmetricEigen(new Float64Array([1, 2, 3, 4]), 2), /not symmetric/);
  assert.throws(() => symmetricEigen(new Float64Array([1, NaN, NaN, 1]), 2), /not finite/);
  assert.throws(() => symmetricEigen(new Float64Array(3), 2), /expected 2x2/);
});

Deno.test("zero and already-diagonal matrices (every merge fully deflated)", () => {
  for (const n of [40, 70]) {
    const z = symmetricEigen(new Float64Array(n * n), n);
    assert.ok(z.values.every((v) => v === 0));
    const diag = new Float64Array(n * n);
    for (let i = 0; i < n; i++) diag[i * n + i] = (i * 37) % n - 10;
    const r = symmetricEigen(diag, n);
    const want = Array.from({ length: n }, (_, i) => (i * 37) % n - 10).sort((a, b) => a - b);
    want.forEach((w, i) => assert.ok(Math.abs(r.values[i] - w) < 1e-13 * n, `value ${i}`));
    const { res, orth } = quality(diag, r.values, r.vectors!, n);
    assert.ok(res < 1e-13 * n && orth < 1e-13, `n=${n}: ${res} ${orth}`);
  }
});

Deno.test("tridiagonal QL converges on graded near-zero blocks and rejects non-finite input", () => {
  // A low-rank-covariance-like tridiagonal: a few O(1) entries, then a long tail of ~1e-20
  // diagonals coupled by ~1e-22, which the purely relative deflation test never accepts.
  const n = 40;
  const d = new Float64Array(n), e = new Float64Array(n - 1);
  for (let i = 0; i < n; i++) d[i] = i < 4 ? 1 + i : 1e-20 * (1 + (i % 3));
  for (let i = 0; i < n - 1; i++) e[i] = i < 3 ? 0.3 : 1e-22 * (1 + (i % 5));
  const vals = tridiagonalEigenvalues(d, e);
  // The trace is kept and every eigenvalue is within eps*||T|| of the leading block's or zero.
  const trace = d.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(vals.reduce((a, b) => a + b, 0) - trace) < 1e-12 * trace);
  assert.equal(vals.filter((v) => Math.abs(v) > 1e-10).length, 4);
  const bad = Float64Array.from(d);
  bad[7] = NaN;
  assert.throws(() => tridiagonalEigenvalues(bad, e), /non-finite entries/);
});
