/**
 * A whole training step on the kit's WebGPU executor: the step graph (forward, loss, every
 * gradient; fused by {@link fuseGraph} unless `fuse: false`) then AdamW ({@link adamWDispatches})
 * in the same compute pass. Parameters, gradients, Adam moments and the optional EMA shadows live
 * in packed GPU buffers updated in place: a step writes the data inputs and four per-step floats
 * (one small write), submits once and reads back the loss only; weights come back only when asked
 * ({@link CompiledTrainStep.readParams}).
 *
 * The update matches lib/train's loop: gradient clipping by global norm (`clipNorm`), AdamW with
 * decoupled weight decay on parameters of rank > 1 (lib/train's default `noDecay`), the EMA with
 * its warmup decay `min(decay, (1 + n) / (10 + n))`; float32 on the GPU.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph } from "./graph.ts";
 * import { gradients } from "./autodiff.ts";
 * import { compileTrainStep } from "./train_step.ts";
 *
 * const adapter = await navigator.gpu?.requestAdapter();
 * if (adapter) {
 *   const device = await adapter.requestDevice();
 *   // loss = mean((w x - y)^2), one weight of shape [1, 1] (decayed: rank 2).
 *   const g = new Graph();
 *   const w = g.input("w", [1, 1], "float32", "param"), x = g.input("x", [4, 1]);
 *   const d = g.add("add", [g.add("matMul", [x, w]), g.add("mulScalar", [x], { s: -2 })]);
 *   const loss = g.add("mean", [g.add("mul", [d, d])], { axes: [0, 1] });
 *   const [dw] = gradients(g, loss, [w]);
 *   g.output("loss", loss);
 *   g.output("grad/w", dw);
 *   const step = await compileTrainStep({ graph: g, grads: { w: dw } }, device, {
 *     adamw: { weightDecay: 0 },
 *   });
 *   step.setParams({ w: new Float32Array([0]) });
 *   const first = await step.step({ x: new Float32Array([1, 2, 3, 4]) }, 0.1);
 *   assert.ok(Math.abs(first - 30) < 1e-4); // mean((2x)^2) at w = 0
 *   const { w: w1 } = await step.readParams();
 *   assert.ok(Math.abs(w1[0] - 0.1) < 1e-5); // Adam's first step moves by lr
 *   step.destroy();
 *   device.destroy();
 * }
 * ```
 * @module
 */
import { ADAMW_PARTIALS_BYTES, adamWDispatches, adamWStepScalars } from "./adamw.ts";
import { fuseGraph } from "./fuse.ts";
import type { Graph, Node } from "./graph.ts";
import { type CompiledGraph, compileGraph } from "./webgpu_executor.ts";
import { NO_KERNEL_OPS } from "./wgsl_lower.ts";

/** Options of {@link compileTrainStep} (defaults: lib/train's AdamW and the UNet stage's loop). */
export interface CompiledTrainStepOptions {
  adamw?: {
    beta1?: number;
    beta2?: number;
    eps?: number;
    weightDecay?: number;
    /** Parameters without weight decay (default: rank <= 1, as lib/train's AdamW). */
    noDecay?: (name: string, shape: readonly number[]) => boolean;
  };
  /** Clip gradients to this global L2 norm first (default: none). */
  clipNorm?: number;
  /** Keep an EMA of the weights (lib/train's `Ema`: `warmup` default false). */
  ema?: { decay: number; warmup?: boolean };
  /** Run {@link fuseGraph} on the graph first (default true). */
  fuse?: boolean;
}

/** The optimizer state of a {@link CompiledTrainStep}, by parameter name. */
export interface CompiledTrainState {
  /** Steps taken (AdamW's `t`). */
  t: number;
  /** EMA updates done (0 without an EMA). */
  emaUpdates: number;
  params: Record<string, Float32Array>;
  m: Record<string, Float32Array>;
  v: Record<string, Float32Array>;
  /** EMA shadows (absent without an EMA). */
  ema?: Record<string, Float32Array>;
}

/** A compiled step: see the module doc. */
export interface CompiledTrainStep {
  /** The executable (its `stats.dispatches` include the optimizer's). */
  readonly exe: CompiledGraph;
  /** Steps taken so far. */
  readonly stepCount: number;
  /** Parameter names in packing order. */
  readonly paramNames: readonly string[];
  /** Each parameter's shape. */
  readonly paramShapes: Readonly<Record<string, readonly number[]>>;
  /** Whether EMA shadows are kept (option `ema`). */
  readonly hasEma: boolean;
  /** Write every parameter (and the EMA shadows, which start as the parameters). */
  setParams(params: Record<string, Float32Array>): void;
  /** One step: write `data` inputs, run forward, backward and AdamW at `lr`; resolve the loss. */
  step(data: Record<string, Float32Array>, lr: number): Promise<number>;
  /** Read the parameters (or the EMA shadows) back. */
  readParams(which?: "params" | "ema"): Promise<Record<string, Float32Array>>;
  /**
   * Everything the next step depends on (parameters, Adam moments, EMA shadows, step and EMA
   * update counts), read back: what a checkpoint holds.
   */
  readState(): Promise<CompiledTrainState>;
  /** Restore a {@link CompiledTrainStep.readState} snapshot (a resume). */
  setState(state: CompiledTrainState): void;
  /** The last step's global gradient norm before clipping (NaN when compiled without clipping). */
  readGradNorm(): Promise<number>;
  /** Free every buffer. */
  destroy(): void;
}

/**
 * Compile `step` (a graph with a scalar `loss` output and `grad/<name>` outputs, `grads` naming
 * each parameter's gradient node) with AdamW for `device`. With `fuse: false` the graph itself
 * is compiled, and may get copy nodes for gradients that share a value.
 */
export async function compileTrainStep(
  step: { graph: Graph; grads: Record<string, Node> },
  device: GPUDevice,
  o: CompiledTrainStepOptions = {},
): Promise<CompiledTrainStep> {
  const a = o.adamw ?? {};
  const beta1 = a.beta1 ?? 0.9, beta2 = a.beta2 ?? 0.999, eps = a.eps ?? 1e-8;
  const weightDecay = a.weightDecay ?? 0.01;
  const noDecay = a.noDecay ?? ((_n: string, s: readonly number[]) => s.length <= 1);
  if (o.clipNorm !== undefined && !(o.clipNorm > 0)) {
    throw new Error(`compileTrainStep: option clipNorm must be > 0, got ${o.clipNorm}`);
  }
  const graph = o.fuse === false ? step.graph : fuseGraph(step.graph);
  const names = Object.keys(step.grads).sort();
  for (const n of names) {
    if (!graph.inputs.has(n)) throw new Error(`compileTrainStep: graph has no input "${n}"`);
    if (!graph.outputs.has(`grad/${n}`)) {
      throw new Error(`compileTrainStep: graph has no output "grad/${n}"`);
    }
  }
  if (!graph.outputs.has("loss")) throw new Error(`compileTrainStep: graph has no output "loss"`);
  // Each packed gradient needs its own kernel output, which no other kernel writing a packed
  // gradient reads (one buffer cannot be bound read-only and writable in one dispatch): a value
  // that is the gradient of two parameters (the same bias gradient after CSE), or that no kernel
  // computes, is copied for each of them.
  const rootOf = (n: Node) => {
    while (n.op === "reshape") n = graph.nodes[n.inputs[0]];
    return n;
  };
  const uses = new Map<number, number>();
  for (const n of names) {
    const r = rootOf(graph.outputs.get(`grad/${n}`)!);
    uses.set(r.id, (uses.get(r.id) ?? 0) + 1);
  }
  for (const n of names) {
    const node = graph.outputs.get(`grad/${n}`)!, r = rootOf(node);
    if (uses.get(r.id)! > 1 || NO_KERNEL_OPS.has(r.op) && r.op !== "extra") {
      graph.outputs.set(`grad/${n}`, graph.add("mulScalar", [node], { s: 1 }));
    }
  }
  const shapeOf = (n: string) => graph.inputs.get(n)!.shape;
  const decayed = names.filter((n) => !noDecay(n, shapeOf(n)));
  const order = [...decayed, ...names.filter((n) => noDecay(n, shapeOf(n)))];
  const S = GPUBufferUsage.STORAGE, DST = GPUBufferUsage.COPY_DST, SRC = GPUBufferUsage.COPY_SRC;
  const own: GPUBuffer[] = [];
  const buf = (size: number, label: string) => {
    const b = device.createBuffer({ size, usage: S | DST | SRC, label });
    own.push(b);
    return b;
  };
  const scalars = buf(16, "adamw step scalars");
  let ema: GPUBuffer | undefined, m: GPUBuffer | undefined, v: GPUBuffer | undefined;
  let partials: GPUBuffer | undefined;
  const exe = await compileGraph(graph, device, {
    pack: { params: order, grads: order.map((n) => `grad/${n}`) },
    after: (packed) => {
      const bytes = 4 * packed.elements;
      ema = o.ema ? buf(bytes, "ema") : undefined;
      const decayEnd = decayed.length
        ? packed.offsets.get(decayed.at(-1)!)! + sizeOf(shapeOf(decayed.at(-1)!))
        : 0;
      return adamWDispatches(device, packed, {
        beta1,
        beta2,
        eps,
        decayEnd,
        clipNorm: o.clipNorm,
        ema,
        m: m = buf(bytes, "adam m"),
        v: v = buf(bytes, "adam v"),
        scalars,
        partials: partials = buf(ADAMW_PARTIALS_BYTES, "adamw norm partials"),
      });
    },
  });
  const packed = exe.packed!;
  let t = 0, emaUpdates = 0;
  /** Named arrays -> one flat array in the packed layout (gaps zero). */
  const pack = (values: Record<string, Float32Array>, what: string) => {
    const flat = new Float32Array(packed.elements);
    for (const n of order) {
      const p = values[n];
      if (!p || p.length !== sizeOf(shapeOf(n))) {
        throw new Error(
          `compileTrainStep: ${what} "${n}" needs ${sizeOf(shapeOf(n))} values, got ${p?.length}`,
        );
      }
      flat.set(p, packed.offsets.get(n)!);
    }
    return flat;
  };
  const unpack = (flat: Float32Array) => {
    const out: Record<string, Float32Array> = {};
    for (const n of order) {
      const at = packed.offsets.get(n)!;
      out[n] = flat.slice(at, at + sizeOf(shapeOf(n)));
    }
    return out;
  };
  const dataNames = new Set([...graph.inputs.keys()].filter((n) => !packed.offsets.has(n)));

  const self: CompiledTrainStep = {
    exe,
    get stepCount() {
      return t;
    },
    paramNames: order,
    paramShapes: Object.fromEntries(order.map((n) => [n, shapeOf(n)])),
    hasEma: !!o.ema,
    setParams(params) {
      const flat = pack(params, "params");
      device.queue.writeBuffer(packed.params, 0, flat);
      if (ema) device.queue.writeBuffer(ema, 0, flat);
    },
    async step(data, lr) {
      if (!Number.isFinite(lr) || lr < 0) {
        throw new Error(`compileTrainStep.step: lr must be >= 0, got ${lr}`);
      }
      for (const k of Object.keys(data)) {
        if (!dataNames.has(k)) throw new Error(`compileTrainStep.step: no data input "${k}"`);
      }
      t += 1;
      const d = o.ema
        ? (o.ema.warmup ? Math.min(o.ema.decay, (1 + emaUpdates) / (10 + emaUpdates)) : o.ema.decay)
        : 1;
      emaUpdates += o.ema ? 1 : 0;
      device.queue.writeBuffer(
        scalars,
        0,
        adamWStepScalars({ t, lr, beta1, beta2, weightDecay, emaDecay: d }),
      );
      return (await exe.run(data, ["loss"])).loss[0];
    },
    async readParams(which = "params") {
      const src = which === "ema" ? ema : packed.params;
      if (!src) throw new Error(`compileTrainStep.readParams: compiled without an EMA`);
      return unpack(await readBuffer(device, src, 0, 4 * packed.elements));
    },
    async readState() {
      const read = async (b: GPUBuffer) =>
        unpack(await readBuffer(device, b, 0, 4 * packed.elements));
      return {
        t,
        emaUpdates,
        params: await read(packed.params),
        m: await read(m!),
        v: await read(v!),
        ...(ema ? { ema: await read(ema) } : {}),
      };
    },
    setState(st) {
      if (!Number.isInteger(st.t) || st.t < 0 || !Number.isInteger(st.emaUpdates)) {
        throw new Error(`compileTrainStep.setState: t and emaUpdates must be integers >= 0`);
      }
      if (ema && !st.ema) throw new Error(`compileTrainStep.setState: state has no EMA shadows`);
      device.queue.writeBuffer(packed.params, 0, pack(st.params, "params"));
      device.queue.writeBuffer(m!, 0, pack(st.m, "m"));
      device.queue.writeBuffer(v!, 0, pack(st.v, "v"));
      if (ema) device.queue.writeBuffer(ema, 0, pack(st.ema!, "ema"));
      t = st.t;
      emaUpdates = ema ? st.emaUpdates : 0;
    },
    async readGradNorm() {
      if (o.clipNorm === undefined) return NaN;
      // The update kernel leaves the norm after the 256 partial sums (adamw.ts).
      return (await readBuffer(device, partials!, ADAMW_PARTIALS_BYTES - 16, 4))[0];
    },
    destroy() {
      exe.destroy();
      for (const b of own) b.destroy();
    },
  };
  return self;
}

/** Copy `bytes` of `src` from `offset` to the host (one submit, one map). */
async function readBuffer(
  device: GPUDevice,
  src: GPUBuffer,
  offset: number,
  bytes: number,
): Promise<Float32Array> {
  const rb = device.createBuffer({
    size: bytes,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  try {
    const enc = device.createCommandEncoder();
    enc.copyBufferToBuffer(src, offset, rb, 0, bytes);
    device.queue.submit([enc.finish()]);
    await rb.mapAsync(GPUMapMode.READ);
    return new Float32Array(rb.getMappedRange().slice(0));
  } finally {
    rb.destroy();
  }
}

function sizeOf(s: readonly number[]): number {
  return s.reduce((x, y) => x * y, 1);
}
