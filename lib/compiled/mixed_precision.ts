/**
 * The mixed-precision mode of the compiled step (`precision: "mixed"` of `compileGraph` and
 * `compileTrainStep`): which values the executor stores as float16, and the rewrite of a float32
 * kernel's WGSL into one that reads and writes those values (`shader-f16`).
 *
 * What is converted, by op kind ({@link planHalfValues}):
 *
 * - **float32, always**: graph inputs (master weights, data), constants, every graph output (the
 *   loss, the packed gradients), the scratch of a kernel, and the outputs of the reductions
 *   (`sum`, `mean`, `sumRows2`, `conv2dBackpropFilter`: bias and weight gradients, sums over
 *   batch and space); Adam moments and the EMA live outside the graph, in float32;
 * - **float16 storage, f32 accumulation**: the heavy ops (`matMul`, `linear`, `conv2d`,
 *   `conv2dBackpropInput`, `attention`, `attentionGrad`, `attentionGradAll`): their outputs are
 *   stored as float16, every float32 input is rounded to float16 as it is read (so they compute
 *   with float16 inputs; the product of two float16 values is exact in float32, so a float32
 *   multiply-add is float16 multiply with float32 accumulation) and all sums run in float32;
 * - **float16 storage**: the norms and their gradients (`groupNorm`, `layerNorm`, the `*Grad`s,
 *   `normBackward`: statistics and sums in float32 inside the kernel);
 * - **element-wise and copies** (unary, binary, slice, pad, concat, upsample, sumPool2x): float16
 *   when every input that is not a parameter or constant is float16, float32 otherwise. So the
 *   noise schedule arithmetic on the data stays float32 until the first convolution, and the loss
 *   tail (`pred - target`, its square, the weights) stays float32 because `target` is data.
 *
 * Every kernel computes in float32: float16 values are widened as read (`f32(x)`) and narrowed as
 * written ({@link mixedWgsl}: a value beyond float16's range is stored as an infinity of its sign,
 * whatever the driver's conversion does, so overflow is always visible to the loss scaler).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mixedWgsl } from "./mixed_precision.ts";
 *
 * const src = [
 *   "@group(0) @binding(1) var<storage, read> in0: array<f32>;",
 *   "@group(0) @binding(2) var<storage, read_write> out: array<f32>;",
 *   "fn main() { out[0] = in0[1] * 2.0; }",
 * ].join("\n");
 * const got = mixedWgsl(src, { reads: ["f16"], outs: ["f16"] });
 * assert.ok(got.startsWith("enable f16;"));
 * assert.ok(got.includes("out[0] = st16(f32(in0[1]) * 2.0);"));
 * ```
 * @module
 */
import { Graph } from "./graph.ts";

/** How a value is stored. */
export type StoreType = "f32" | "f16";

/** The precisions of a compiled step. */
export type Precision = "f32" | "mixed";

/** Ops computed with float16 inputs and float32 accumulation (outputs float16). */
export const HEAVY_OPS: ReadonlySet<string> = new Set([
  "matMul",
  "linear",
  "conv2d",
  "conv2dBackpropInput",
  "attention",
  "attentionGrad",
  "attentionGradAll",
]);

/** Reductions over batch or space: outputs float32. */
export const F32_OPS: ReadonlySet<string> = new Set([
  "sum",
  "mean",
  "sumRows2",
  "conv2dBackpropFilter",
]);

/** Normalisations: outputs float16, statistics float32 in the kernel. */
const NORM_OPS = new Set([
  "groupNorm",
  "layerNorm",
  "groupNormGrad",
  "layerNormGrad",
  "normBackward",
]);

/**
 * Which values (node ids) are stored as float16 under the rules of the module doc; `root` maps a
 * view (`reshape`) to the value it views, `pinned` marks values that must stay float32 (graph
 * outputs).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph } from "./graph.ts";
 * import { planHalfValues } from "./mixed_precision.ts";
 *
 * const g = new Graph();
 * const x = g.input("x", [1, 4, 4, 2]), w = g.input("w", [3, 3, 2, 2], "float32", "param");
 * const y = g.add("conv2d", [x, w], { stride: 1, pad: [1, 1] });
 * const a = g.add("silu", [y]);
 * const s = g.add("sum", [a], { axes: [0, 1, 2, 3] });
 * const half = planHalfValues(g, Int32Array.from(g.nodes, (n) => n.id), new Uint8Array(5));
 * assert.deepEqual([x, w, y, a, s].map((n) => half[n.id]), [0, 0, 1, 1, 0]);
 * ```
 */
export function planHalfValues(
  graph: Graph,
  root: Int32Array,
  pinned: Uint8Array,
): Uint8Array {
  const nodes = graph.nodes;
  const half = new Uint8Array(nodes.length);
  const fixed = (id: number) => {
    const n = nodes[root[id]];
    return n.op === "constant" || n.op === "input" && n.attrs.kind === "param";
  };
  for (const n of nodes) {
    if (n.op === "input" || n.op === "constant") continue;
    if (n.op === "reshape") {
      half[n.id] = half[root[n.id]];
      continue;
    }
    let h: boolean;
    if (n.op === "extra") h = half[n.inputs[0]] === 1;
    else if (HEAVY_OPS.has(n.op) || NORM_OPS.has(n.op)) h = true;
    else if (F32_OPS.has(n.op)) h = false;
    else {
      const free = n.inputs.filter((i) => !fixed(i));
      h = free.length > 0 && free.every((i) => half[root[i]] === 1);
    }
    // A multi-output kernel decides for its extras before pinning: a pinned extra is float32.
    half[n.id] = h ? 1 : 0;
  }
  for (let i = 0; i < nodes.length; i++) {
    if (pinned[root[i]]) half[i] = 0;
  }
  // Pinned roots make their views float32 too (a view shares its root's buffer).
  for (const n of nodes) if (n.op === "reshape") half[n.id] = half[root[n.id]];
  return half;
}

/** WGSL helpers of a mixed kernel: `st16` narrows (overflow to a signed infinity), `rh` rounds. */
const HELPERS = `enable f16;
fn st16(v: f32) -> f16 {
  if (abs(v) > 65504.0) { return f16(unpack2x16float(select(0xfc00u, 0x7c00u, v > 0.0)).x); }
  return f16(v);
}
fn rh(v: f32) -> f32 { return f32(st16(v)); }
`;

/** Index of the `]` closing the `[` at `open`. */
function closing(src: string, open: number, what: string): number {
  let depth = 0;
  for (let i = open; i < src.length; i++) {
    if (src[i] === "[") depth++;
    else if (src[i] === "]" && --depth === 0) return i;
  }
  throw new Error(`mixedWgsl: unbalanced brackets after ${what}`);
}

/** Start offsets of `name[` as a whole identifier, last first (so edits keep earlier offsets). */
function usesOf(src: string, name: string): number[] {
  const re = new RegExp(`(?<![A-Za-z0-9_])${name}\\[`, "g");
  return [...src.matchAll(re)].map((m) => m.index!).reverse();
}

/**
 * Rewrite a float32 kernel (bindings `in0..`, `out`, `out1..` as `header` declares them) for
 * float16 storage: `reads[k]` / `outs[j]` say how input k and output j (`out`, then `out1`, ...)
 * are stored; float16 reads are widened, float16 writes narrowed with `st16`; with
 * `roundReads`, float32 inputs are rounded to float16 values as they are read (a heavy op's
 * weights). Writes must be plain `out[...] = value;` statements (the kernels' form).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mixedWgsl } from "./mixed_precision.ts";
 *
 * const src = "var<storage, read> in0: array<f32>;\nfn f() { out1[2] = in0[in0[0]]; }";
 * const got = mixedWgsl(src, { reads: ["f32"], outs: ["f32", "f16"], roundReads: true });
 * assert.ok(got.includes("out1[2] = st16(rh(in0[rh(in0[0])]));"));
 * ```
 */
export function mixedWgsl(
  wgsl: string,
  o: { reads: readonly StoreType[]; outs: readonly StoreType[]; roundReads?: boolean },
): string {
  let src = wgsl;
  o.reads.forEach((t, k) => {
    const name = `in${k}`;
    if (t === "f16") {
      src = src.replace(
        `var<storage, read> ${name}: array<f32>;`,
        `var<storage, read> ${name}: array<f16>;`,
      );
    }
    const wrap = t === "f16" ? "f32" : o.roundReads ? "rh" : undefined;
    if (!wrap) return;
    for (const at of usesOf(src, name)) {
      const end = closing(src, at + name.length, name);
      src = src.slice(0, at) + `${wrap}(${src.slice(at, end + 1)})` + src.slice(end + 1);
    }
  });
  o.outs.forEach((t, j) => {
    if (t !== "f16") return;
    const name = j === 0 ? "out" : `out${j}`;
    src = src.replace(
      `var<storage, read_write> ${name}: array<f32>;`,
      `var<storage, read_write> ${name}: array<f16>;`,
    );
    for (const at of usesOf(src, name)) {
      const end = closing(src, at + name.length, name);
      const m = /^\s*=(?!=)\s*/.exec(src.slice(end + 1));
      if (!m) {
        throw new Error(`mixedWgsl: ${name} is read or updated in place; only "= value;" writes`);
      }
      const from = end + 1 + m[0].length;
      let depth = 0, stop = from;
      for (; stop < src.length; stop++) {
        const ch = src[stop];
        if (ch === "(" || ch === "[") depth++;
        else if (ch === ")" || ch === "]") depth--;
        else if (ch === ";" && depth === 0) break;
      }
      src = src.slice(0, from) + `st16(${src.slice(from, stop)})` + src.slice(stop);
    }
  });
  return HELPERS + src;
}

/**
 * A device for a compiled step of `precision`: mixed precision requests `shader-f16` and refuses,
 * in one line naming the adapter, when the adapter lacks it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { requestStepDevice } from "./mixed_precision.ts";
 *
 * const adapter = await navigator.gpu?.requestAdapter();
 * if (adapter?.features.has("shader-f16")) {
 *   const device = await requestStepDevice(adapter, "mixed");
 *   assert.ok(device.features.has("shader-f16"));
 *   device.destroy();
 * }
 * ```
 */
export async function requestStepDevice(
  adapter: GPUAdapter,
  precision: Precision = "f32",
): Promise<GPUDevice> {
  if (precision !== "f32" && precision !== "mixed") {
    throw new Error(`requestStepDevice: precision must be "f32" or "mixed", got "${precision}"`);
  }
  if (precision === "f32") return await adapter.requestDevice();
  if (!adapter.features.has("shader-f16")) {
    throw new Error(
      `precision "mixed" needs the shader-f16 feature, which adapter "${
        adapterName(adapter)
      }" lacks`,
    );
  }
  return await adapter.requestDevice({ requiredFeatures: ["shader-f16"] });
}

/**
 * A readable name of `adapter` (its description, else vendor and architecture).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { adapterName } from "./mixed_precision.ts";
 *
 * const stub = { info: { description: "", vendor: "mesa", architecture: "llvm" } };
 * assert.equal(adapterName(stub as unknown as GPUAdapter), "mesa llvm");
 * ```
 */
export function adapterName(adapter: GPUAdapter): string {
  const info = (adapter as unknown as { info?: GPUAdapterInfo }).info;
  return info?.description || [info?.vendor, info?.architecture].filter((s) => s).join(" ") ||
    "unknown";
}

/** The graph input that replaces the loss seed under loss scaling (see {@link scaleLossSeed}). */
export const LOSS_SCALE_INPUT = "__lossScale";

/**
 * A copy of a differentiated step graph whose loss seed (autodiff's constant `dloss/dloss = 1`,
 * the first scalar constant 1 after the `loss` output's node) is the data input
 * {@link LOSS_SCALE_INPUT} instead: every gradient then comes out multiplied by the value written
 * there, the loss scale, while the loss itself is unscaled.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph } from "./graph.ts";
 * import { gradients } from "./autodiff.ts";
 * import { LOSS_SCALE_INPUT, scaleLossSeed } from "./mixed_precision.ts";
 *
 * const g = new Graph();
 * const w = g.input("w", [2], "float32", "param");
 * const loss = g.add("sum", [g.add("mul", [w, w])], { axes: [0] });
 * g.output("loss", loss);
 * g.output("grad/w", gradients(g, loss, [w])[0]);
 * const s = scaleLossSeed(g);
 * const seed = s.inputs.get(LOSS_SCALE_INPUT)!;
 * assert.equal(seed.id, loss.id + 1); // autodiff's seed, now an input
 * assert.equal(g.nodes[seed.id].op, "constant"); // the original graph is untouched
 * ```
 */
export function scaleLossSeed(graph: Graph, lossName = "loss"): Graph {
  const loss = graph.outputs.get(lossName);
  if (!loss) throw new Error(`scaleLossSeed: graph has no output "${lossName}"`);
  const seed = graph.nodes.find((n) =>
    n.id > loss.id && n.op === "constant" && n.shape.length === 0 &&
    (n.attrs.values as Float32Array)[0] === 1
  );
  if (!seed) throw new Error(`scaleLossSeed: no loss seed (scalar constant 1) after "${lossName}"`);
  if (graph.inputs.has(LOSS_SCALE_INPUT)) {
    throw new Error(`scaleLossSeed: graph already has an input "${LOSS_SCALE_INPUT}"`);
  }
  const out = new Graph();
  out.nodes.push(...graph.nodes);
  const input = {
    id: seed.id,
    op: "input",
    inputs: [],
    attrs: { name: LOSS_SCALE_INPUT, kind: "data" },
    shape: [],
    dtype: "float32" as const,
  };
  out.nodes[seed.id] = input;
  for (const [k, v] of graph.inputs) out.inputs.set(k, v);
  out.inputs.set(LOSS_SCALE_INPUT, input);
  for (const [k, v] of graph.outputs) out.outputs.set(k, v.id === seed.id ? input : v);
  return out;
}
