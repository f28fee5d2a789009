/**
 * The `cpu-blas` backend's data-movement kernels (Slice, SplitV, Concat, PadV2, StridedSlice, Tile),
 * unary kernels, Pow/Maximum/Minimum and its output-buffer pool, against stock tfjs cpu
 * (`cpu-js`): copies must be bit-identical, math identical (same float64 formulas), on random
 * shapes with odd sizes, every axis, size -1 and negative strided-slice indices, several dtypes;
 * plus gradients through them and the pool's ownership rules.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import {
  BufferPool,
  concatValues,
  initBackend,
  loadOpenBlas,
  padValues,
  sliceValues,
  tileValues,
} from "../lib/backend/mod.ts";
import { Rng } from "../lib/util/rng.ts";
import "../lib/nn/gradients.ts";

const noBlas = loadOpenBlas() === null;
const rng = Rng.stream(77, [3]);

type DType = "float32" | "int32" | "bool";
interface Out {
  shape: number[];
  dtype: string;
  values: number[];
}

function randomShape(rank: number, max = 6): number[] {
  return Array.from({ length: rank }, () => 1 + rng.int(max));
}

/** Random values for a dtype, including -0 and repeated values for float32. */
function randomValues(n: number, dtype: DType): number[] {
  const v = Array.from(rng.normal(n));
  if (dtype === "int32") return v.map((x) => Math.round(x * 100));
  if (dtype === "bool") return v.map((x) => (x > 0 ? 1 : 0));
  if (n > 2) v[1] = -0;
  return v;
}

/** Run `f` on fresh tensors on `backend`; every output's shape, dtype and values. */
async function runOn(
  backend: "cpu-blas" | "cpu-js",
  inputs: { shape: number[]; dtype: DType; values: number[] }[],
  f: (xs: tf.Tensor[]) => tf.Tensor | tf.Tensor[],
): Promise<Out[]> {
  await initBackend(backend, { quiet: true });
  const xs = inputs.map((i) => tf.tensor(i.values, i.shape, i.dtype));
  const before = tf.memory().numTensors;
  const y = tf.tidy(() => f(xs));
  const ys = Array.isArray(y) ? y : [y];
  const out = ys.map((t) => ({ shape: t.shape, dtype: t.dtype, values: Array.from(t.dataSync()) }));
  tf.dispose([...xs, ...ys]);
  assert.equal(tf.memory().numTensors, before - xs.length, `${backend}: leaked tensors`);
  return out;
}

/** Assert `f` gives bit-identical results (NaN == NaN, -0 != +0) on cpu and cpu-js. */
async function sameAsStock(
  what: string,
  inputs: { shape: number[]; dtype: DType; values: number[] }[],
  f: (xs: tf.Tensor[]) => tf.Tensor | tf.Tensor[],
): Promise<void> {
  const fast = await runOn("cpu-blas", inputs, f);
  const stock = await runOn("cpu-js", inputs, f);
  assert.equal(fast.length, stock.length, `${what}: output count`);
  for (let i = 0; i < stock.length; i++) {
    assert.deepEqual(fast[i].shape, stock[i].shape, `${what}: output ${i} shape`);
    assert.equal(fast[i].dtype, stock[i].dtype, `${what}: output ${i} dtype`);
    for (let j = 0; j < stock[i].values.length; j++) {
      if (!Object.is(fast[i].values[j], stock[i].values[j])) {
        assert.fail(
          `${what}: output ${i}[${j}] = ${fast[i].values[j]}, stock ${stock[i].values[j]}`,
        );
      }
    }
  }
}

function input(shape: number[], dtype: DType = "float32") {
  return { shape, dtype, values: randomValues(shape.reduce((a, b) => a * b, 1), dtype) };
}

const DTYPES: DType[] = ["float32", "int32", "bool"];
const blasOnly = { ignore: noBlas, sanitizeOps: false, sanitizeResources: false };
const skipNote = noBlas ? " (skipped: no OpenBLAS, cpu is stock)" : "";

Deno.test("sliceValues, padValues, concatValues, tileValues match closed forms", () => {
  const x = Float32Array.from({ length: 24 }, (_, i) => i); // [2, 3, 4]
  assert.deepEqual([...sliceValues(x, [2, 3, 4], [1, 1, 2], [1, 2, 2])], [18, 19, 22, 23]);
  assert.deepEqual([...sliceValues(x, [2, 3, 4], [0, 2, 0], [2, 1, 4])], [
    8,
    9,
    10,
    11,
    20,
    21,
    22,
    23,
  ]);
  const p = padValues(Int32Array.from([1, 2, 3, 4]), [2, 2], [[1, 0], [0, 2]], 7);
  assert.deepEqual(p.shape, [3, 4]);
  assert.deepEqual([...p.values], [7, 7, 7, 7, 1, 2, 7, 7, 3, 4, 7, 7]);
  const c = concatValues(
    [Float32Array.from([1, 2, 3, 4]), Float32Array.from([5, 6])],
    [[2, 2], [2, 1]],
    1,
  );
  assert.deepEqual(c.shape, [2, 3]);
  assert.deepEqual([...c.values], [1, 2, 5, 3, 4, 6]);
  const t = tileValues(Uint8Array.from([1, 0]), [2, 1], [2, 3]);
  assert.deepEqual(t.shape, [4, 3]);
  assert.deepEqual([...t.values], [1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0]);
  // A zero-sized box copies nothing and leaves the output as it was.
  assert.deepEqual([...sliceValues(x, [2, 3, 4], [0, 0, 0], [2, 0, 4])], []);
});

Deno.test({
  name: "copy kernels are bit-identical to stock cpu-js" + skipNote,
  ...blasOnly,
  async fn(t) {
    await t.step("slice: ranks 1-5, random begin/size, size -1, short begin, dtypes", async () => {
      for (let c = 0; c < 30; c++) {
        const rank = 1 + (c % 5), dtype = DTYPES[c % 3];
        const shape = randomShape(rank);
        const begin = shape.map((s) => rng.int(s));
        const size = shape.map((s, d) => rng.int(4) === 0 ? -1 : 1 + rng.int(s - begin[d]) // -1 = to the end
        );
        await sameAsStock(`slice ${shape} ${begin} ${size} ${dtype}`, [input(shape, dtype)], (
          [x],
        ) => tf.slice(x, begin, size));
      }
      await sameAsStock(
        "slice short begin/size",
        [input([5, 4, 3])],
        ([x]) => tf.slice(x, [2], [2]),
      );
      await sameAsStock("slice empty", [input([5, 4])], ([x]) => tf.slice(x, [1, 1], [0, 2]));
    });
    await t.step("split: every axis (also negative), sizes with -1, even splits", async () => {
      for (let c = 0; c < 16; c++) {
        const rank = 1 + (c % 4), dtype = DTYPES[c % 3];
        const shape = randomShape(rank, 7).map((s) => s + 2);
        for (let axis = -1; axis < rank; axis++) {
          const len = shape[axis < 0 ? rank + axis : axis];
          const a = 1 + rng.int(len - 1);
          await sameAsStock(`split ${shape} axis ${axis} [${a},-1]`, [input(shape, dtype)], (
            [x],
          ) => tf.split(x, [a, -1], axis));
        }
        await sameAsStock(
          `split ${shape} into 1`,
          [input(shape, dtype)],
          ([x]) => tf.split(x, 1, 0),
        );
      }
      await sameAsStock("split 3 even", [input([3, 6, 5])], ([x]) => tf.split(x, 3, 1));
    });
    await t.step("concat: every axis, 1-4 inputs, empty inputs, dtypes", async () => {
      for (let c = 0; c < 20; c++) {
        const rank = 1 + (c % 4), dtype = DTYPES[c % 3];
        const base = randomShape(rank);
        const axis = rng.int(rank);
        const n = 1 + rng.int(4);
        const inputs = Array.from({ length: n }, (_, i) => {
          const s = base.slice();
          s[axis] = c === 7 && i === 0 ? 0 : 1 + rng.int(5);
          return input(s, dtype);
        });
        await sameAsStock(
          `concat ${inputs.map((i) => i.shape).join(" | ")} axis ${axis}`,
          inputs,
          (xs) => tf.concat(xs, axis),
        );
        await sameAsStock(
          `concat axis -1 (${dtype})`,
          inputs.slice(0, 1),
          (xs) => tf.concat([xs[0], xs[0]], -1),
        );
      }
    });
    await t.step("pad: random paddings, zero and nonzero constants, dtypes", async () => {
      for (let c = 0; c < 20; c++) {
        const rank = 1 + (c % 5), dtype = DTYPES[c % 3];
        const shape = randomShape(rank, 5);
        const pads = shape.map(() => [rng.int(3), rng.int(3)] as [number, number]);
        const k = dtype === "bool" ? 1 : c % 2 === 0 ? 0 : -2.5;
        await sameAsStock(`pad ${shape} ${JSON.stringify(pads)} ${k}`, [input(shape, dtype)], (
          [x],
        ) => tf.pad(x, pads, k));
      }
    });
    await t.step("stridedSlice: negative begin/end, masks, shrink, stride 2", async () => {
      const x = input([5, 6, 7]);
      const cases: [number[], number[], number[], number, number, number][] = [
        [[1, 0, 2], [4, 6, 7], [1, 1, 1], 0, 0, 0],
        [[-3, 1, -5], [-1, -1, 7], [1, 1, 1], 0, 0, 0],
        [[0, 2, 0], [0, 4, 0], [1, 1, 1], 1, 1, 0], // masks: full axis 0
        [[2, 0, 3], [3, 6, 7], [1, 1, 1], 0, 0, 1], // shrink axis 0
        [[0, 1, 1], [5, 6, 7], [2, 2, 3], 0, 0, 0], // stepped: stock path
        [[4, 5, 6], [0, 0, 0], [-1, -2, -1], 0, 0, 0], // reversed: stock path
      ];
      for (const [b, e, s, bm, em, shrink] of cases) {
        await sameAsStock(
          `stridedSlice ${b} ${e} ${s}`,
          [x],
          ([t]) => tf.stridedSlice(t, b, e, s, bm, em, 0, 0, shrink),
        );
      }
    });
    await t.step("tile: random reps, dtypes", async () => {
      for (let c = 0; c < 12; c++) {
        const rank = 1 + (c % 4), dtype = DTYPES[c % 3];
        const shape = randomShape(rank, 4);
        const reps = shape.map(() => 1 + rng.int(3));
        await sameAsStock(
          `tile ${shape} ${reps}`,
          [input(shape, dtype)],
          ([x]) => tf.tile(x, reps),
        );
      }
    });
  },
});

/** Float inputs with the special values every math kernel must treat like stock. */
function mathInput(n: number, scale = 3): { shape: number[]; dtype: DType; values: number[] } {
  const v = Array.from(rng.normal(n)).map((x) => x * scale);
  const special = [0, -0, NaN, Infinity, -Infinity, 1e-30, -1e-30, 88.7, -88.7, 1, -1, 100];
  for (let i = 0; i < special.length && i < n; i++) v[i] = special[i];
  return { shape: [n], dtype: "float32", values: v };
}

Deno.test({
  name: "unary, Pow, Maximum, Minimum kernels equal stock cpu-js exactly" + skipNote,
  ...blasOnly,
  async fn(t) {
    const x = mathInput(1031);
    const unary: [string, (a: tf.Tensor) => tf.Tensor][] = [
      ["sigmoid", tf.sigmoid],
      ["tanh", tf.tanh],
      ["exp", tf.exp],
      ["log", tf.log],
      ["sqrt", tf.sqrt],
      ["rsqrt", tf.rsqrt],
      ["neg", tf.neg],
      ["square", tf.square],
      ["abs", tf.abs],
      ["relu", tf.relu],
      ["step", (a) => tf.step(a, 0.25)],
      ["reciprocal", tf.reciprocal],
    ];
    await t.step("unary float32 with NaN, +-0, +-Inf", async () => {
      for (const [name, f] of unary) await sameAsStock(name, [x], ([a]) => f(a));
    });
    await t.step("unary on int32 falls back to stock", async () => {
      const xi = input([37], "int32");
      // The op layer rejects int32 for some ops; those never reach a kernel.
      let ran = 0;
      for (const [name, f] of unary) {
        try {
          tf.tidy(() => f(tf.tensor([1], [1], "int32")));
        } catch {
          continue;
        }
        await sameAsStock(`${name} int32`, [xi], ([a]) => f(a));
        ran++;
      }
      assert.ok(ran >= 4, `only ${ran} unary ops accept int32`);
    });
    await t.step(
      "pow: scalar exponents (special-cased and general), broadcast exponents",
      async () => {
        for (const e of [2, 3, 0.5, 1, 0, -1, -0.5, 2.5, -2]) {
          await sameAsStock(`pow x^${e}`, [x], ([a]) => tf.pow(a, tf.scalar(e)));
        }
        await sameAsStock("pow [1,1] exponent", [input([4, 5]), {
          shape: [1, 1],
          dtype: "float32",
          values: [3],
        }], ([a, b]) => tf.pow(a, b));
        await sameAsStock(
          "pow broadcast",
          [input([3, 1, 5]), mathInput(20, 2)],
          ([a, b]) => tf.pow(tf.abs(a), tf.reshape(b, [4, 5])),
        );
      },
    );
    await t.step("maximum/minimum with broadcasting and NaN", async () => {
      const a = { ...mathInput(60), shape: [3, 4, 5] };
      const b = input([4, 1]);
      await sameAsStock("maximum", [a, b], ([p, q]) => tf.maximum(p, q));
      await sameAsStock("minimum", [b, a], ([p, q]) => tf.minimum(p, q));
    });
    await t.step("broadcast paths: same shape, scalars, blocks, widened runs", async () => {
      const ops = [tf.add, tf.sub, tf.mul, tf.div, tf.squaredDifference, tf.maximum, tf.minimum];
      const pairs: [number[], number[]][] = [
        [[3, 5, 4, 2], [3, 5, 4, 2]], // same shape
        [[3, 5, 4, 2], []], // scalar right
        [[1, 1], [7, 3]], // scalar left (as a [1,1] tensor)
        [[3, 5, 4, 2], [3, 1, 4, 1]], // short runs, operand too big to widen
        [[3, 50, 16, 2], [3, 1, 16, 1]], // group norm: the small operand is widened
        [[3, 1, 16, 1], [1, 50, 1, 2]], // both broadcast: one operand too big to widen
        [[2, 3, 4, 5, 6], [3, 1, 5, 1]], // rank 5: odometer over outer dims
        [[6, 1, 33], [1, 5, 1]],
      ];
      for (const [sa, sb] of pairs) {
        for (const f of ops) {
          await sameAsStock(`${f.name} ${sa} ${sb}`, [input(sa), input(sb)], ([p, q]) => f(p, q));
          await sameAsStock(`${f.name} ${sb} ${sa}`, [input(sb), input(sa)], ([p, q]) => f(p, q));
        }
      }
    });
    await t.step("sums: short innermost reduced runs, every axis set", async () => {
      // Sums accumulate in float64 in a different order than stock: compare within 1e-6.
      const cases: [number[], number[]][] = [
        [[3, 5, 4, 2], [1, 3]],
        [[3, 50, 16, 2], [1, 3]], // group norm: reduced in two stages
        [[3, 50, 16, 2], [0, 1, 2]],
        [[3, 50, 16, 2], [0, 2, 3]],
        [[4, 7, 1, 3], [1, 2, 3]],
        [[5, 6], [0, 1]],
      ];
      for (const [shape, axes] of cases) {
        const x = input(shape);
        const fast = await runOn("cpu-blas", [x], ([p]) => tf.sum(p, axes));
        const stock = await runOn("cpu-js", [x], ([p]) => tf.sum(p, axes));
        assert.deepEqual(fast[0].shape, stock[0].shape);
        fast[0].values.forEach((v, i) => {
          const w = stock[0].values[i];
          assert.ok(
            Math.abs(v - w) <= 1e-6 * Math.max(1, Math.abs(w)),
            `sum ${shape} over ${axes} [${i}]: ${v} vs ${w}`,
          );
        });
      }
    });
  },
});

Deno.test({
  name: "gradients through slice/split/concat/pad/tile/pow/sigmoid equal stock cpu-js" + skipNote,
  ...blasOnly,
  async fn() {
    const shapes = [[3, 4, 5, 6], [3, 4, 5, 2]];
    const inputs = shapes.map((s) => input(s));
    const cot = Array.from(rng.normal(3 * 6 * 7 * 8));
    const f = ([a, b]: tf.Tensor[]) => {
      const c = tf.concat([a, b], 3); // [3,4,5,8]
      const [p, q] = tf.split(c, [3, 5], 3);
      const s = tf.slice(tf.sigmoid(p), [0, 1, 0, 0], [-1, 2, 3, -1]); // [3,2,3,3]
      const u = tf.concat([s, tf.slice(tf.tanh(q), [0, 0, 2, 0], [-1, 2, 3, 3])], 2); // [3,2,6,3]
      const v = tf.pad(tf.pow(u, tf.scalar(3)), [[0, 0], [1, 3], [0, 1], [2, 3]]); // [3,6,7,8]
      return tf.mul(tf.add(v, tf.tile(tf.slice(a, [0, 0, 0, 0], [3, 1, 1, 1]), [1, 6, 7, 8])), 0.5);
    };
    const g = (xs: tf.Tensor[]) => {
      const r = tf.tensor(cot, [3, 6, 7, 8]);
      const gs = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f([a, b]), r)))(xs);
      return [f(xs), ...gs];
    };
    const fast = await runOn("cpu-blas", inputs, g);
    const stock = await runOn("cpu-js", inputs, g);
    for (let i = 0; i < stock.length; i++) {
      assert.deepEqual(fast[i].shape, stock[i].shape);
      let scale = 0;
      for (const w of stock[i].values) scale = Math.max(scale, Math.abs(w));
      stock[i].values.forEach((w, j) => {
        const e = Math.abs(fast[i].values[j] - w);
        assert.ok(e <= 1e-6 * scale, `output ${i}[${j}]: ${fast[i].values[j]} vs ${w}`);
      });
    }
  },
});

Deno.test("BufferPool: recycles adopted arrays, never pinned, viewed or shared ones", () => {
  const pool = new BufferPool({ limitBytes: 4 * 4096 * 3 });
  const a = pool.take(4096);
  pool.adopt(a);
  pool.release(a);
  assert.equal(pool.take(4096), a, "released array is reused");
  assert.deepEqual(pool.stats().hits, 1);
  // Read (pinned) arrays are never reused.
  const b = pool.take(4096);
  pool.adopt(b);
  pool.pin(b);
  pool.release(b);
  assert.notEqual(pool.take(4096), b);
  // A view of an adopted array, or a second owner, pins it.
  const c = pool.take(4096);
  pool.adopt(c);
  pool.adopt(c.subarray(10, 20));
  pool.release(c);
  const d = pool.take(4096);
  pool.adopt(d);
  pool.adopt(d);
  pool.release(d);
  const e = pool.take(4096);
  assert.ok(e !== c && e !== d, "viewed or shared arrays are not reused");
  // Arrays never adopted by a tensor (still out) are not recycled on release.
  const f = pool.take(4096);
  pool.release(f);
  assert.notEqual(pool.take(4096), f);
  // Foreign arrays are ignored; small arrays bypass the pool; zero-fill on request.
  pool.release(new Float32Array(4096));
  assert.equal(pool.stats().freeBytes, 0);
  const g = pool.take(4096);
  g.fill(5);
  pool.adopt(g);
  pool.release(g);
  assert.ok(pool.take(4096, true).every((v) => v === 0));
  // The byte limit bounds the free lists.
  const many = Array.from({ length: 5 }, () => pool.take(4096));
  for (const m of many) pool.adopt(m);
  for (const m of many) pool.release(m);
  assert.equal(pool.stats().freeBytes, 4 * 4096 * 3);
  // Over the limit, arrays of other lengths are evicted to make room for the newest.
  const other = pool.take(8192);
  pool.adopt(other);
  pool.release(other);
  assert.equal(pool.stats().freeBytes, 4 * 4096 + 4 * 8192);
  assert.equal(pool.take(8192), other);
  pool.clear();
  assert.equal(pool.stats().freeBytes, 0);
  assert.throws(() => new BufferPool({ limitBytes: -1 }), /limitBytes/);
});

Deno.test({
  name: "cpu backend pool: read values and live tensors survive recycling" + skipNote,
  ...blasOnly,
  async fn() {
    await initBackend("cpu-blas", { quiet: true });
    const xv = rng.normal(64 * 64);
    const x = tf.tensor(xv, [64, 64]);
    // A live tensor, never read until the end, whose array must never be handed out again.
    const keep = tf.mul(x, 2);
    const keepWant = Array.from(xv, (v) => 2 * v); // exact: doubling a float32
    const y = tf.mul(x, 3);
    const read = y.dataSync(); // the user's array: pinned
    const readWant = Array.from(read);
    y.dispose();
    const noisy = tf.tidy(() => {
      let z = x;
      for (let i = 0; i < 20; i++) z = tf.add(tf.mul(z, 0.5), tf.sigmoid(z));
      return tf.sum(z);
    });
    assert.deepEqual(Array.from(read), readWant, "a read array changed after its tensor died");
    assert.deepEqual(Array.from(keep.dataSync()), keepWant, "a live tensor changed");
    // Recycled arrays carry stale values: results must still equal stock cpu.
    const got = noisy.dataSync()[0];
    await initBackend("cpu-js", { quiet: true });
    const want = tf.tidy(() => {
      let z = tf.tensor(x.dataSync(), x.shape);
      for (let i = 0; i < 20; i++) z = tf.add(tf.mul(z, 0.5), tf.sigmoid(z));
      return tf.sum(z).dataSync()[0];
    });
    assert.ok(Math.abs(got - want) <= 1e-6 * Math.abs(want), `${got} vs ${want}`);
    await initBackend("cpu-blas", { quiet: true });
    const pool = (tf.backend() as unknown as { bufferPool: BufferPool }).bufferPool;
    assert.ok(pool.stats().hits > 0, "the pool was used");
    tf.dispose([x, keep, noisy]);
  },
});
