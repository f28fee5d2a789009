/**
 * Gradient check of every op the kit's models use, on every backend that starts here.
 *
 * For each op, the loss is `L = sum(R * op(inputs))` with fixed random `R`. The tfjs gradient is
 * compared with central finite differences of an independent float64 JavaScript implementation
 * of the same op, and each backend's forward output and gradients are compared with stock cpu-js.
 */
import assert from "node:assert/strict";
import { assertClose } from "./helpers/assert_close.ts";
import * as tf from "@tensorflow/tfjs-core";
import {
  availableBackends,
  type BackendName,
  initBackend,
  loadOpenBlas,
} from "../lib/backend/mod.ts";
import { Rng } from "../lib/util/rng.ts";
// tfjs-core's Node bundle registers no gradients; the kit registers them here.
import "../lib/nn/gradients.ts";

// ---------- float64 reference ops ----------
interface Nd {
  shape: number[];
  data: Float64Array;
}
const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
const stridesOf = (s: number[]) => {
  const st = new Array(s.length).fill(1);
  for (let d = s.length - 2; d >= 0; d--) st[d] = st[d + 1] * s[d + 1];
  return st;
};
const nd = (shape: number[], f: (i: number) => number): Nd => {
  const data = new Float64Array(size(shape));
  for (let i = 0; i < data.length; i++) data[i] = f(i);
  return { shape, data };
};
const map = (a: Nd, f: (v: number) => number) => nd(a.shape, (i) => f(a.data[i]));
function unravel(i: number, shape: number[]): number[] {
  const idx = new Array(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return idx;
}
function bcast(a: Nd, b: Nd, f: (x: number, y: number) => number): Nd {
  const r = Math.max(a.shape.length, b.shape.length);
  const pa = Array(r - a.shape.length).fill(1).concat(a.shape);
  const pb = Array(r - b.shape.length).fill(1).concat(b.shape);
  const out = pa.map((v, d) => Math.max(v, pb[d]));
  const sa = stridesOf(pa), sb = stridesOf(pb);
  return nd(out, (i) => {
    const idx = unravel(i, out);
    let ia = 0, ib = 0;
    for (let d = 0; d < r; d++) {
      ia += (pa[d] === 1 ? 0 : idx[d]) * sa[d];
      ib += (pb[d] === 1 ? 0 : idx[d]) * sb[d];
    }
    return f(a.data[ia], b.data[ib]);
  });
}
function reduce(a: Nd, axes: number[], keep = false): Nd {
  const out = a.shape.map((v, d) => (axes.includes(d) ? 1 : v));
  const res = nd(out, () => 0);
  const so = stridesOf(out);
  for (let i = 0; i < a.data.length; i++) {
    const idx = unravel(i, a.shape);
    let o = 0;
    for (let d = 0; d < idx.length; d++) o += (axes.includes(d) ? 0 : idx[d]) * so[d];
    res.data[o] += a.data[i];
  }
  return keep ? res : { shape: out.filter((_, d) => !axes.includes(d)), data: res.data };
}
function refTranspose(a: Nd, perm: number[]): Nd {
  const out = perm.map((p) => a.shape[p]);
  const sa = stridesOf(a.shape);
  return nd(out, (i) => {
    const idx = unravel(i, out);
    let k = 0;
    for (let d = 0; d < perm.length; d++) k += idx[d] * sa[perm[d]];
    return a.data[k];
  });
}
function refMatmul(a: Nd, b: Nd, ta: boolean, tb: boolean): Nd {
  const r = a.shape.length;
  const at = ta ? refTranspose(a, [...Array(r - 2).keys(), r - 1, r - 2]) : a;
  const bt = tb ? refTranspose(b, [...Array(r - 2).keys(), r - 1, r - 2]) : b;
  const [m, k] = at.shape.slice(-2), n = bt.shape[r - 1];
  const batch = size(at.shape.slice(0, -2));
  const out = nd([...at.shape.slice(0, -2), m, n], () => 0);
  for (let q = 0; q < batch; q++) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let l = 0; l < k; l++) {
          s += at.data[q * m * k + i * k + l] * bt.data[q * k * n + l * n + j];
        }
        out.data[q * m * n + i * n + j] = s;
      }
    }
  }
  return out;
}
function samePads(inSize: number, k: number, s: number): [number, number] {
  const out = Math.ceil(inSize / s);
  const total = Math.max((out - 1) * s + k - inSize, 0);
  return [out, Math.floor(total / 2)];
}
function refConv(x: Nd, w: Nd, stride: number, pad: "same" | "valid"): Nd {
  const [n, h, wd, ci] = x.shape, [kh, kw, , co] = w.shape;
  const [oh, pt] = pad === "same"
    ? samePads(h, kh, stride)
    : [Math.floor((h - kh) / stride) + 1, 0];
  const [ow, pl] = pad === "same"
    ? samePads(wd, kw, stride)
    : [Math.floor((wd - kw) / stride) + 1, 0];
  return nd([n, oh, ow, co], (i) => {
    const [b, y, xx, o] = unravel(i, [n, oh, ow, co]);
    let s = 0;
    for (let a = 0; a < kh; a++) {
      const iy = y * stride - pt + a;
      if (iy < 0 || iy >= h) continue;
      for (let c = 0; c < kw; c++) {
        const ix = xx * stride - pl + c;
        if (ix < 0 || ix >= wd) continue;
        for (let q = 0; q < ci; q++) {
          s += x.data[((b * h + iy) * wd + ix) * ci + q] * w.data[((a * kw + c) * ci + q) * co + o];
        }
      }
    }
    return s;
  });
}
const sigm = (v: number) => 1 / (1 + Math.exp(-v));
const geluT = (v: number) =>
  0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));

// ---------- op cases ----------
interface Case {
  name: string;
  shapes: number[][];
  /** Shift inputs into an op's domain (log/sqrt need positives). */
  positive?: boolean;
  tf: (xs: tf.Tensor[]) => tf.Tensor;
  ref: (xs: Nd[]) => Nd;
}
const tfGelu = (x: tf.Tensor) =>
  tf.mul(
    tf.mul(x, 0.5),
    tf.add(1, tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3)))))),
  );
const conv = (stride: number, pad: "same" | "valid", k: number, hw = 5): Case => ({
  name: `conv2d ${k}x${k} stride ${stride} ${pad} ${hw}x${hw}`,
  shapes: [[2, hw, hw, 3], [k, k, 3, 4]],
  tf: ([x, w]) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, stride, pad),
  ref: ([x, w]) => refConv(x, w, stride, pad),
});
const mm = (ta: boolean, tb: boolean): Case => ({
  name: `matMul transposeA=${ta} transposeB=${tb}`,
  shapes: [ta ? [4, 3] : [3, 4], tb ? [5, 4] : [4, 5]],
  tf: ([a, b]) => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D, ta, tb),
  ref: ([a, b]) => refMatmul(a, b, ta, tb),
});
const groupNorm = (x: tf.Tensor, groups: number) => {
  const [n, h, w, c] = x.shape;
  const g = tf.reshape(x, [n, h, w, groups, c / groups]);
  const { mean, variance } = tf.moments(g, [1, 2, 4], true);
  return tf.reshape(tf.div(tf.sub(g, mean), tf.sqrt(tf.add(variance, 1e-5))), [n, h, w, c]);
};
const refGroupNorm = (x: Nd, groups: number): Nd => {
  const [n, h, w, c] = x.shape;
  const g = { shape: [n, h, w, groups, c / groups], data: x.data };
  const cnt = h * w * (c / groups);
  const mean = map(reduce(g, [1, 2, 4], true), (v) => v / cnt);
  const d = bcast(g, mean, (a, b) => a - b);
  const v = map(reduce(map(d, (t) => t * t), [1, 2, 4], true), (t) => t / cnt);
  const y = bcast(d, v, (a, b) => a / Math.sqrt(b + 1e-5));
  return { shape: x.shape, data: y.data };
};

const CASES: Case[] = [
  conv(1, "same", 3),
  conv(2, "same", 3),
  conv(1, "valid", 3),
  conv(2, "valid", 3, 6),
  conv(1, "same", 1),
  conv(2, "valid", 1),
  mm(false, false),
  mm(false, true),
  mm(true, false),
  mm(true, true),
  {
    name: "batched matMul attention [B,H,T,D] q@k^T then @v",
    shapes: [[2, 2, 3, 4], [2, 2, 3, 4], [2, 2, 3, 4]],
    tf: ([q, k, v]) => tf.matMul(tf.matMul(q, k, false, true), v),
    ref: ([q, k, v]) => refMatmul(refMatmul(q, k, false, true), v, false, false),
  },
  {
    // tfjs' BatchMatMul gradient breaks when batch dims broadcast, so linear layers reshape.
    name: "linear [B,T,C] @ [C,D] via reshape",
    shapes: [[2, 3, 4], [4, 5]],
    tf: ([a, b]) => tf.reshape(tf.matMul(tf.reshape(a, [6, 4]), b), [2, 3, 5]),
    ref: ([a, b]) =>
      refMatmul(
        a,
        { shape: [2, 4, 5], data: Float64Array.from([...b.data, ...b.data]) },
        false,
        false,
      ),
  },
  {
    name: "add broadcast [2,3,4]+[4]",
    shapes: [[2, 3, 4], [4]],
    tf: ([a, b]) => tf.add(a, b),
    ref: ([a, b]) => bcast(a, b, (x, y) => x + y),
  },
  {
    name: "sub broadcast [2,3,4]-[2,1,4]",
    shapes: [[2, 3, 4], [2, 1, 4]],
    tf: ([a, b]) => tf.sub(a, b),
    ref: ([a, b]) => bcast(a, b, (x, y) => x - y),
  },
  {
    name: "mul broadcast [2,1,1,3]*[2,2,2,3]",
    shapes: [[2, 1, 1, 3], [2, 2, 2, 3]],
    tf: ([a, b]) => tf.mul(a, b),
    ref: ([a, b]) => bcast(a, b, (x, y) => x * y),
  },
  {
    name: "div broadcast [3,4]/[3,1]",
    shapes: [[3, 4], [3, 1]],
    positive: true,
    tf: ([a, b]) => tf.div(a, b),
    ref: ([a, b]) => bcast(a, b, (x, y) => x / y),
  },
  {
    name: "softmax last axis",
    shapes: [[3, 5]],
    tf: ([a]) => tf.softmax(a),
    ref: ([a]) => {
      const e = map(a, Math.exp);
      return bcast(e, reduce(e, [1], true), (x, s) => x / s);
    },
  },
  { name: "sigmoid", shapes: [[12]], tf: ([a]) => tf.sigmoid(a), ref: ([a]) => map(a, sigm) },
  {
    name: "silu x*sigmoid(x)",
    shapes: [[12]],
    tf: ([a]) => tf.mul(a, tf.sigmoid(a)),
    ref: ([a]) => map(a, (v) => v * sigm(v)),
  },
  {
    name: "gelu (tanh approx)",
    shapes: [[12]],
    tf: ([a]) => tfGelu(a),
    ref: ([a]) => map(a, geluT),
  },
  { name: "exp", shapes: [[10]], tf: ([a]) => tf.exp(a), ref: ([a]) => map(a, Math.exp) },
  {
    name: "log",
    shapes: [[10]],
    positive: true,
    tf: ([a]) => tf.log(a),
    ref: ([a]) => map(a, Math.log),
  },
  {
    name: "sqrt",
    shapes: [[10]],
    positive: true,
    tf: ([a]) => tf.sqrt(a),
    ref: ([a]) => map(a, Math.sqrt),
  },
  {
    name: "rsqrt",
    shapes: [[10]],
    positive: true,
    tf: ([a]) => tf.rsqrt(a),
    ref: ([a]) => map(a, (v) => 1 / Math.sqrt(v)),
  },
  { name: "square", shapes: [[10]], tf: ([a]) => tf.square(a), ref: ([a]) => map(a, (v) => v * v) },
  {
    name: "mean over axes [0,2]",
    shapes: [[2, 3, 4]],
    tf: ([a]) => tf.mean(a, [0, 2]),
    ref: ([a]) => map(reduce(a, [0, 2]), (v) => v / 8),
  },
  {
    name: "sum over axes [0,1,2] keepDims (bias gradient shape)",
    shapes: [[2, 3, 2, 4]],
    tf: ([a]) => tf.sum(a, [0, 1, 2], true),
    ref: ([a]) => reduce(a, [0, 1, 2], true),
  },
  {
    name: "sum over last axis",
    shapes: [[3, 5]],
    tf: ([a]) => tf.sum(a, -1),
    ref: ([a]) => reduce(a, [1]),
  },
  {
    name: "moments group norm (2 groups)",
    shapes: [[2, 2, 2, 4]],
    tf: ([a]) => groupNorm(a, 2),
    ref: ([a]) => refGroupNorm(a, 2),
  },
  {
    name: "concat axis -1",
    shapes: [[2, 3, 2], [2, 3, 4]],
    tf: ([a, b]) => tf.concat([a, b], -1),
    ref: ([a, b]) =>
      nd([2, 3, 6], (i) => {
        const [p, q, r] = unravel(i, [2, 3, 6]);
        return r < 2 ? a.data[(p * 3 + q) * 2 + r] : b.data[(p * 3 + q) * 4 + r - 2];
      }),
  },
  {
    name: "slice",
    shapes: [[4, 5]],
    tf: ([a]) => tf.slice(a, [1, 2], [2, 3]),
    ref: ([a]) =>
      nd([2, 3], (i) => {
        const [p, q] = unravel(i, [2, 3]);
        return a.data[(p + 1) * 5 + q + 2];
      }),
  },
  {
    name: "gather rows (embedding, repeated ids)",
    shapes: [[5, 3]],
    tf: ([a]) => tf.gather(a, tf.tensor1d([4, 0, 4, 2], "int32")),
    ref: ([a]) =>
      nd([4, 3], (i) => {
        const [p, q] = unravel(i, [4, 3]);
        return a.data[[4, 0, 4, 2][p] * 3 + q];
      }),
  },
  {
    name: "transpose [0,2,1,3]",
    shapes: [[2, 3, 2, 4]],
    tf: ([a]) => tf.transpose(a, [0, 2, 1, 3]),
    ref: ([a]) => refTranspose(a, [0, 2, 1, 3]),
  },
  {
    name: "reshape",
    shapes: [[2, 6]],
    tf: ([a]) => tf.mul(tf.reshape(a, [3, 4]), tf.reshape(tf.range(0, 12), [3, 4])),
    ref: ([a]) => ({ shape: [3, 4], data: a.data.map((v, i) => v * i) }),
  },
  {
    name: "nearest upsample x2 by broadcast",
    shapes: [[1, 2, 3, 2]],
    tf: ([a]) =>
      tf.reshape(tf.mul(tf.reshape(a, [1, 2, 1, 3, 1, 2]), tf.ones([1, 1, 2, 1, 2, 1])), [
        1,
        4,
        6,
        2,
      ]),
    ref: ([a]) =>
      nd([1, 4, 6, 2], (i) => {
        const [, y, x, c] = unravel(i, [1, 4, 6, 2]);
        return a.data[((y >> 1) * 3 + (x >> 1)) * 2 + c];
      }),
  },
  {
    name: "avgPool 2x2",
    shapes: [[1, 4, 4, 2]],
    tf: ([a]) => tf.avgPool(a as tf.Tensor4D, 2, 2, "valid"),
    ref: ([a]) =>
      nd([1, 2, 2, 2], (i) => {
        const [, y, x, c] = unravel(i, [1, 2, 2, 2]);
        let s = 0;
        for (const [dy, dx] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
          s += a.data[((2 * y + dy) * 4 + 2 * x + dx) * 2 + c];
        }
        return s / 4;
      }),
  },
];

// ---------- harness ----------
interface Inputs {
  xs: Float32Array[];
  r: Float32Array;
  outShape: number[];
}
function inputsFor(c: Case, index: number): Inputs {
  const rng = Rng.stream(77, [index]);
  const xs = c.shapes.map((s) => {
    const v = rng.normal(size(s));
    // Positive domain: values in [0.5, 2.5) keep log/sqrt/div well conditioned.
    if (c.positive) { for (let i = 0; i < v.length; i++) v[i] = 0.5 + 2 * rng.uniform(); }
    return v;
  });
  const out = c.ref(xs.map((x, i) => ({ shape: c.shapes[i], data: Float64Array.from(x) })));
  return { xs, r: rng.normal(out.data.length), outShape: out.shape };
}
function refLoss(c: Case, xs: Float64Array[], r: Float32Array): number {
  const y = c.ref(xs.map((data, i) => ({ shape: c.shapes[i], data })));
  let s = 0;
  for (let i = 0; i < y.data.length; i++) s += y.data[i] * r[i];
  return s;
}
function finiteDiff(c: Case, inp: Inputs): Float64Array[] {
  const xs = inp.xs.map((x) => Float64Array.from(x));
  const h = 1e-5;
  return xs.map((x) => {
    const g = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      x[i] = v + h;
      const up = refLoss(c, xs, inp.r);
      x[i] = v - h;
      const dn = refLoss(c, xs, inp.r);
      x[i] = v;
      g[i] = (up - dn) / (2 * h);
    }
    return g;
  });
}
async function runTf(c: Case, inp: Inputs): Promise<{ y: Float32Array; grads: Float32Array[] }> {
  const xs = inp.xs.map((v, i) => tf.tensor(v, c.shapes[i]));
  const r = tf.tensor(inp.r, inp.outShape);
  const y = tf.tidy(() => c.tf(xs));
  assert.deepEqual(y.shape, inp.outShape, `${c.name}: output shape`);
  const gs = tf.grads((...args: tf.Tensor[]) => tf.sum(tf.mul(c.tf(args), r)))(xs);
  const out = { y: (await y.data()) as Float32Array, grads: [] as Float32Array[] };
  for (const g of gs) out.grads.push((await g.data()) as Float32Array);
  tf.dispose([...xs, r, y, ...gs]);
  return out;
}
const BACKENDS: BackendName[] = ["cpu-blas", "cpu-js", "wasm", "webgpu"];
const available = await availableBackends();
const skipReason = (b: BackendName): string | null => {
  if (b === "cpu-blas" && !loadOpenBlas()) return "OpenBLAS not installed (libopenblas0-pthread)";
  if (!available.includes(b)) return `${b} unavailable here`;
  return null;
};
const referenceCache = new Map<number, Promise<{ y: Float32Array; grads: Float32Array[] }>>();
const fdCache = new Map<number, Float64Array[]>();

for (const backend of BACKENDS) {
  const reason = skipReason(backend);
  Deno.test({
    name: `backend ${backend}: forward and gradients of every model op` +
      (reason ? ` (skipped: ${reason})` : ""),
    ignore: reason !== null,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async (t) => {
      for (let i = 0; i < CASES.length; i++) {
        const c = CASES[i];
        await t.step(c.name, async () => {
          const inp = inputsFor(c, i);
          if (!referenceCache.has(i)) {
            referenceCache.set(
              i,
              initBackend("cpu-js", { quiet: true }).then(() => runTf(c, inp)),
            );
          }
          const stock = await referenceCache.get(i)!;
          if (!fdCache.has(i)) fdCache.set(i, finiteDiff(c, inp));
          const fd = fdCache.get(i)!;
          const info = await initBackend(backend, { quiet: true });
          assert.equal(tf.getBackend(), info.tfBackend);
          const before = tf.memory().numTensors;
          const got = await runTf(c, inp);
          assert.equal(tf.memory().numTensors, before, `${c.name}: leaked tensors`);
          const ref = c.ref(
            inp.xs.map((x, k) => ({ shape: c.shapes[k], data: Float64Array.from(x) })),
          );
          // Errors are relative to max(|values|, 1): absolute for values below magnitude 1.
          const unit = { minScale: 1 };
          const name = `${backend} ${c.name}`;
          assertClose(got.y, ref.data, 1e-4, `${name} forward vs float64 reference`, unit);
          assertClose(got.y, stock.y, 1e-4, `${name} forward vs cpu-js`, unit);
          for (let k = 0; k < fd.length; k++) {
            assertClose(got.grads[k], fd[k], 2e-3, `${name} grad ${k} vs finite diff`, unit);
            assertClose(got.grads[k], stock.grads[k], 1e-4, `${name} grad ${k} vs cpu-js`, unit);
          }
        });
      }
    },
  });
}
