/**
 * The op set of the compiled-step IR: what each op computes and its static shape rule. Forward ops
 * mirror lib/nn's {@link Ops} (NHWC images, `[B, T, C]` sequences, TensorFlow.js semantics); the
 * backward ops are the primitives reverse-mode differentiation emits. Every op has one output.
 *
 * | op | inputs | attrs | output |
 * | --- | --- | --- | --- |
 * | `input` | - | `name`, `kind` ("param" / "data") | the fed tensor |
 * | `constant` | - | `values` (Float32Array / Int32Array) | the values |
 * | `add`, `mul` | a, b | - | `a + b`, `a * b` with NumPy broadcasting |
 * | `addScalar`, `mulScalar` | x | `s` | `x + s`, `x * s` |
 * | `silu`, `sin`, `cos` | x | - | `x sigmoid(x)`, `sin x`, `cos x` |
 * | `gelu` | x | `kind` | GELU (`"tanh"` approximation or `"erf"`) |
 * | `clip` | x | `min`, `max` | `min(max(x, min), max)` |
 * | `cast` | x | `dtype` | x converted (int -> float32) |
 * | `equal` | x | `value` | bool `x == value` |
 * | `argMax` | x | `axis` | int32 index of the first maximum, axis removed |
 * | `oneHot` | ids | `depth` | float32 `[..., depth]` |
 * | `reshape` | x | `shape` (static, no -1) | x re-viewed |
 * | `concat` | xs... | `axis` | inputs joined along `axis` |
 * | `slice` | x | `begin`, `size` | `x[begin : begin + size]` per axis |
 * | `pad` | x | `paddings` (`[before, after]` per axis) | x surrounded by zeros |
 * | `sum`, `mean` | x | `axes` | reduction over `axes` (removed) |
 * | `broadcastTo` | x | `shape` | x broadcast (NumPy rules) to `shape` |
 * | `linear` | x `[..., in]`, w `[in, out]`, b? `[out]` | - | `x @ w + b` |
 * | `matMul` | a, b (2-D) | `transposeA`, `transposeB` | `op(a) @ op(b)` |
 * | `conv2d` | x NHWC, w HWIO, b? | `stride`, `pad` `[ph, pw]` | zero-padded cross-correlation |
 * | `upsample2x` | x NHWC | - | nearest-neighbour 2x |
 * | `groupNorm` | x, gamma?, beta? | `groups`, `eps`, `silu` | GroupNorm over the last axis |
 * | `layerNorm` | x, gamma?, beta? | `eps` | LayerNorm over the last axis |
 * | `attention` | q, k, v, keyMask? | `heads`, `causal` | multi-head `softmax(S) v`, see below |
 * | `embedding` | table `[V, D]`, ids | - | rows of `table` `[..., D]` |
 *
 * Backward primitives (`dy` is the gradient flowing into the forward op's output):
 *
 * | op | inputs | attrs | output |
 * | --- | --- | --- | --- |
 * | `siluGrad` | x, dy | - | `dy * s (1 + x (1 - s))`, `s = sigmoid(x)` |
 * | `geluGrad` | x, dy | `kind` | `dy * gelu'(x)` |
 * | `clipGrad` | x, dy | `min`, `max` | `dy` where `min <= x <= max`, else 0 |
 * | `sumPool2x` | dy NHWC | - | sum of each 2x2 block (the VJP of `upsample2x`) |
 * | `conv2dBackpropInput` | dy, w | `stride`, `pad`, `inputShape` | `(d conv2d / d x)^T dy` |
 * | `conv2dBackpropFilter` | x, dy | `stride`, `pad`, `filterShape` | `(d conv2d / d w)^T dy` |
 * | `groupNormGrad` | dy, x, gamma? | `groups`, `eps` | `(d groupNorm / d x)^T dy`, no SiLU |
 * | `layerNormGrad` | dy, x, gamma? | `eps` | `(d layerNorm / d x)^T dy` |
 * | `attentionGrad` | q, k, v, dy, keyMask? | `heads`, `causal`, `wrt` | `(d attn / d wrt)^T dy` |
 * | `embeddingGrad` | ids, dy | `vocab` | `[vocab, D]`: row r = sum of dy rows whose id is r |
 *
 * `conv2d`: `y[b, i, j, o] = sum_{di, dj, c} xp[b, i s + di, j s + dj, c] w[di, dj, c, o] + b[o]`,
 * `xp` = x zero-padded by `pad` on both sides, output `floor((H + 2 ph - kh) / s) + 1` rows.
 *
 * Norms: `groupNorm` normalises each (sample, group of `C / groups` channels) over all its
 * positions, `layerNorm` each row of the last axis; both with the biased variance,
 * `xhat = (x - mean) / sqrt(var + eps)`, then `xhat * gamma + beta` when given (then SiLU when
 * `silu`). Their gradients, per normalisation set, with `rstd = 1 / sqrt(var + eps)` and
 * `g = dy * gamma`: `dx = rstd (g - mean(g) - xhat mean(g xhat))`.
 *
 * Attention splits the width of q, k, v into `heads` equal parts; per head
 * `S = q k^T / sqrt(dh)`, plus -1e9 where `keyMask` is 0 and where key j > query i when `causal`,
 * `P = softmax(S)` over the keys, output `P v` (heads joined back). `attentionGrad` (`wrt` "q",
 * "k" or "v"; one node each, so a fusion pass can merge the three): `dv = P^T dy`,
 * `dS = P (dP - rowsum(dP P))` with `dP = dy v^T`, `dq = dS k / sqrt(dh)`,
 * `dk = dS^T q / sqrt(dh)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { inferShape } from "./ir_ops.ts";
 *
 * const x = { shape: [2, 8, 8, 4], dtype: "float32" as const };
 * const w = { shape: [3, 3, 4, 16], dtype: "float32" as const };
 * const out = inferShape("conv2d", [x, w], { stride: 2, pad: [1, 1] });
 * assert.deepEqual(out.shape, [2, 4, 4, 16]);
 * ```
 * @module
 */

/** Element types of IR values. */
export type IrDType = "float32" | "int32" | "bool";

/** Attribute values of an IR node (plain data; `constant` holds its values typed). */
export type AttrValue =
  | number
  | string
  | boolean
  | number[]
  | [number, number][]
  | Float32Array
  | Int32Array;

/** Attributes of an IR node by name. */
export type Attrs = Record<string, AttrValue>;

/** What shape inference needs to know of an input. */
export interface ShapedValue {
  readonly shape: readonly number[];
  readonly dtype: IrDType;
}

/** Static shape and dtype of an op's output. */
export interface OutputType {
  shape: number[];
  dtype: IrDType;
}

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const fmt = (s: readonly number[]) => `[${s.join(", ")}]`;

/**
 * NumPy broadcasting of two shapes, or undefined when they do not broadcast.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { broadcastShapes } from "./ir_ops.ts";
 *
 * assert.deepEqual(broadcastShapes([2, 1, 3], [4, 1]), [2, 4, 3]);
 * assert.equal(broadcastShapes([2, 3], [4]), undefined);
 * ```
 */
export function broadcastShapes(
  a: readonly number[],
  b: readonly number[],
): number[] | undefined {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const da = a[a.length - r + i] ?? 1, db = b[b.length - r + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) return undefined;
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Attribute `name` of an op as a number; fails naming the op. */
function num(op: string, attrs: Attrs, name: string): number {
  const v = attrs[name];
  if (typeof v !== "number") throw new Error(`${op}: attribute ${name} must be a number`);
  return v;
}

function nums(op: string, attrs: Attrs, name: string): number[] {
  const v = attrs[name];
  if (!Array.isArray(v)) throw new Error(`${op}: attribute ${name} must be an array`);
  return v as number[];
}

function axisOk(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw new Error(`${op}: axis ${axis} out of range for rank ${rank}`);
  }
  return a;
}

/** Output of a `conv2d` of input `[b, h, w, c]` with a `[kh, kw, c, o]` filter. */
function convOut(op: string, x: readonly number[], w: readonly number[], attrs: Attrs): number[] {
  const stride = num(op, attrs, "stride");
  const [ph, pw] = nums(op, attrs, "pad");
  if (x.length !== 4 || w.length !== 4 || x[3] !== w[2]) {
    throw new Error(`${op}: input ${fmt(x)} and HWIO filter ${fmt(w)} do not match`);
  }
  const oh = Math.floor((x[1] + 2 * ph - w[0]) / stride) + 1;
  const ow = Math.floor((x[2] + 2 * pw - w[1]) / stride) + 1;
  if (oh < 1 || ow < 1) throw new Error(`${op}: filter ${fmt(w)} larger than input ${fmt(x)}`);
  return [x[0], oh, ow, w[3]];
}

function same(op: string, a: readonly number[], b: readonly number[], what: string): void {
  if (a.length !== b.length || a.some((d, i) => d !== b[i])) {
    throw new Error(`${op}: ${what} ${fmt(a)} and ${fmt(b)} differ`);
  }
}

function count(op: string, inputs: readonly ShapedValue[], lo: number, hi = lo): void {
  if (inputs.length < lo || inputs.length > hi) {
    const want = lo === hi ? `${lo}` : `${lo}-${hi}`;
    throw new Error(`${op}: expected ${want} inputs, got ${inputs.length}`);
  }
}

/** Check the optional affine inputs of a norm over the last axis of `x`. */
function normAffine(op: string, inputs: readonly ShapedValue[]): void {
  count(op, inputs, 1, 3);
  if (inputs.length === 2) throw new Error(`${op}: give both gamma and beta or neither`);
  const c = inputs[0].shape.at(-1)!;
  for (const p of inputs.slice(1)) {
    if (p.shape.length !== 1 || p.shape[0] !== c) {
      throw new Error(
        `${op}: affine ${fmt(p.shape)} must be [${c}] for input ${fmt(inputs[0].shape)}`,
      );
    }
  }
}

function attentionShapes(
  op: string,
  q: readonly number[],
  k: readonly number[],
  v: readonly number[],
  heads: number,
) {
  if (q.length !== 3 || k.length !== 3 || v.length !== 3) {
    throw new Error(`${op}: q ${fmt(q)}, k ${fmt(k)}, v ${fmt(v)} must be [B, T, D]`);
  }
  if (k[0] !== q[0] || v[0] !== q[0] || k[2] !== q[2] || v[1] !== k[1]) {
    throw new Error(`${op}: q ${fmt(q)}, k ${fmt(k)}, v ${fmt(v)} disagree`);
  }
  if (q[2] % heads !== 0 || v[2] % heads !== 0) {
    throw new Error(`${op}: widths of q ${fmt(q)} / v ${fmt(v)} not divisible by ${heads} heads`);
  }
}

const FLOAT_UNARY = new Set(["silu", "gelu", "sin", "cos", "clip", "addScalar", "mulScalar"]);

/**
 * Output shape and dtype of `op` on `inputs` with `attrs`; errors name the op and the shapes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { inferShape } from "./ir_ops.ts";
 *
 * const a = { shape: [2, 3], dtype: "float32" as const };
 * assert.deepEqual(inferShape("matMul", [a, a], { transposeA: true }).shape, [3, 3]);
 * assert.throws(() => inferShape("matMul", [a, a], {}), /matMul: .*\[2, 3\]/);
 * ```
 */
export function inferShape(op: string, inputs: readonly ShapedValue[], attrs: Attrs): OutputType {
  const s = inputs.map((v) => v.shape);
  const f32 = (shape: readonly number[]): OutputType => ({ shape: [...shape], dtype: "float32" });
  if (FLOAT_UNARY.has(op)) {
    count(op, inputs, 1);
    return f32(s[0]);
  }
  switch (op) {
    case "input":
    case "constant":
      throw new Error(`${op}: has no inputs to infer from (Graph.${op} sets its shape)`);
    case "add":
    case "mul": {
      count(op, inputs, 2);
      const out = broadcastShapes(s[0], s[1]);
      if (!out) throw new Error(`${op}: shapes ${fmt(s[0])} and ${fmt(s[1])} do not broadcast`);
      return f32(out);
    }
    case "siluGrad":
    case "geluGrad":
    case "clipGrad":
      count(op, inputs, 2);
      same(op, s[0], s[1], "x and dy");
      return f32(s[0]);
    case "cast":
      count(op, inputs, 1);
      return f32(s[0]);
    case "equal":
      count(op, inputs, 1);
      return { shape: [...s[0]], dtype: "bool" };
    case "argMax": {
      count(op, inputs, 1);
      const a = axisOk(op, num(op, attrs, "axis"), s[0].length);
      return { shape: s[0].filter((_, i) => i !== a), dtype: "int32" };
    }
    case "oneHot":
      count(op, inputs, 1);
      return f32([...s[0], num(op, attrs, "depth")]);
    case "reshape": {
      count(op, inputs, 1);
      const shape = nums(op, attrs, "shape");
      if (shape.some((d) => !Number.isInteger(d) || d < 0) || size(shape) !== size(s[0])) {
        throw new Error(`${op}: cannot view ${fmt(s[0])} as ${fmt(shape)}`);
      }
      return { shape: [...shape], dtype: inputs[0].dtype };
    }
    case "concat": {
      if (inputs.length < 1) throw new Error(`${op}: needs at least one input`);
      const a = axisOk(op, num(op, attrs, "axis"), s[0].length);
      const out = [...s[0]];
      for (const t of s.slice(1)) {
        if (t.length !== out.length || t.some((d, i) => i !== a && d !== out[i])) {
          throw new Error(`${op}: ${s.map(fmt).join(", ")} differ off axis ${a}`);
        }
        out[a] += t[a];
      }
      return { shape: out, dtype: inputs[0].dtype };
    }
    case "slice": {
      count(op, inputs, 1);
      const begin = nums(op, attrs, "begin"), sz = nums(op, attrs, "size");
      const x = s[0];
      if (
        begin.length !== x.length || sz.length !== x.length ||
        x.some((d, i) => begin[i] < 0 || sz[i] < 0 || begin[i] + sz[i] > d)
      ) {
        throw new Error(`${op}: begin ${fmt(begin)} size ${fmt(sz)} outside ${fmt(x)}`);
      }
      return { shape: [...sz], dtype: inputs[0].dtype };
    }
    case "pad": {
      count(op, inputs, 1);
      const p = attrs.paddings as [number, number][];
      if (!Array.isArray(p) || p.length !== s[0].length) {
        throw new Error(`${op}: paddings must have one [before, after] per axis of ${fmt(s[0])}`);
      }
      return f32(s[0].map((d, i) => d + p[i][0] + p[i][1]));
    }
    case "sum":
    case "mean": {
      count(op, inputs, 1);
      const axes = nums(op, attrs, "axes").map((a) => axisOk(op, a, s[0].length));
      return f32(s[0].filter((_, i) => !axes.includes(i)));
    }
    case "broadcastTo": {
      count(op, inputs, 1);
      const shape = nums(op, attrs, "shape");
      const out = broadcastShapes(s[0], shape);
      if (!out || out.length !== shape.length || out.some((d, i) => d !== shape[i])) {
        throw new Error(`${op}: ${fmt(s[0])} does not broadcast to ${fmt(shape)}`);
      }
      return f32(shape);
    }
    case "linear": {
      count(op, inputs, 2, 3);
      const [x, w] = s;
      if (w.length !== 2 || x.at(-1) !== w[0]) {
        throw new Error(`${op}: input ${fmt(x)} and weight ${fmt(w)} do not match`);
      }
      if (s[2] && (s[2].length !== 1 || s[2][0] !== w[1])) {
        throw new Error(`${op}: bias ${fmt(s[2])} must be [${w[1]}]`);
      }
      return f32([...x.slice(0, -1), w[1]]);
    }
    case "matMul": {
      count(op, inputs, 2);
      const [a, b] = s;
      const ta = !!attrs.transposeA, tb = !!attrs.transposeB;
      if (a.length !== 2 || b.length !== 2) {
        throw new Error(`${op}: ${fmt(a)} and ${fmt(b)} must be 2-D`);
      }
      const [m, k] = ta ? [a[1], a[0]] : a;
      const [k2, n] = tb ? [b[1], b[0]] : b;
      if (k !== k2) {
        throw new Error(`${op}: ${fmt(a)}${ta ? "^T" : ""} @ ${fmt(b)}${tb ? "^T" : ""} disagree`);
      }
      return f32([m, n]);
    }
    case "conv2d": {
      count(op, inputs, 2, 3);
      const out = convOut(op, s[0], s[1], attrs);
      if (s[2] && (s[2].length !== 1 || s[2][0] !== s[1][3])) {
        throw new Error(`${op}: bias ${fmt(s[2])} must be [${s[1][3]}]`);
      }
      return f32(out);
    }
    case "conv2dBackpropInput": {
      count(op, inputs, 2);
      const xs = nums(op, attrs, "inputShape");
      same(op, convOut(op, xs, s[1], attrs), s[0], "conv output and dy");
      return f32(xs);
    }
    case "conv2dBackpropFilter": {
      count(op, inputs, 2);
      const ws = nums(op, attrs, "filterShape");
      same(op, convOut(op, s[0], ws, attrs), s[1], "conv output and dy");
      return f32(ws);
    }
    case "upsample2x":
      count(op, inputs, 1);
      if (s[0].length !== 4) throw new Error(`${op}: input ${fmt(s[0])} must be NHWC`);
      return f32([s[0][0], 2 * s[0][1], 2 * s[0][2], s[0][3]]);
    case "sumPool2x":
      count(op, inputs, 1);
      if (s[0].length !== 4 || s[0][1] % 2 || s[0][2] % 2) {
        throw new Error(`${op}: input ${fmt(s[0])} must be NHWC with even height and width`);
      }
      return f32([s[0][0], s[0][1] / 2, s[0][2] / 2, s[0][3]]);
    case "groupNorm": {
      normAffine(op, inputs);
      const g = num(op, attrs, "groups"), c = s[0].at(-1)!;
      if (s[0].length < 2 || c % g !== 0) {
        throw new Error(`${op}: ${c} channels of ${fmt(s[0])} not divisible by ${g} groups`);
      }
      return f32(s[0]);
    }
    case "layerNorm":
      normAffine(op, inputs);
      return f32(s[0]);
    case "groupNormGrad":
    case "layerNormGrad":
      count(op, inputs, 2, 3);
      same(op, s[0], s[1], "dy and x");
      if (s[2] && (s[2].length !== 1 || s[2][0] !== s[1].at(-1))) {
        throw new Error(`${op}: gamma ${fmt(s[2])} must be [${s[1].at(-1)}]`);
      }
      return f32(s[0]);
    case "attention": {
      count(op, inputs, 3, 4);
      attentionShapes(op, s[0], s[1], s[2], num(op, attrs, "heads"));
      if (s[3] && (s[3].length !== 2 || s[3][0] !== s[0][0] || s[3][1] !== s[1][1])) {
        throw new Error(`${op}: keyMask ${fmt(s[3])} must be [${s[0][0]}, ${s[1][1]}]`);
      }
      return f32([s[0][0], s[0][1], s[2][2]]);
    }
    case "attentionGrad": {
      count(op, inputs, 4, 5);
      attentionShapes(op, s[0], s[1], s[2], num(op, attrs, "heads"));
      same(op, s[3], [s[0][0], s[0][1], s[2][2]], "dy and attention output");
      const wrt = attrs.wrt;
      if (wrt !== "q" && wrt !== "k" && wrt !== "v") {
        throw new Error(`${op}: wrt must be "q", "k" or "v", got ${wrt}`);
      }
      return f32(s["qkv".indexOf(wrt)]);
    }
    case "embedding":
      count(op, inputs, 2);
      if (s[0].length !== 2) throw new Error(`${op}: table ${fmt(s[0])} must be [vocab, dim]`);
      return f32([...s[1], s[0][1]]);
    case "embeddingGrad":
      count(op, inputs, 2);
      same(op, s[1].slice(0, -1), s[0], "dy rows and ids");
      return f32([num(op, attrs, "vocab"), s[1].at(-1)!]);
    default:
      throw new Error(`inferShape: unknown op "${op}"`);
  }
}
