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
 * its warmup decay `min(decay, (1 + n) / (10 + n))`; float32 on the GPU. With `precision:
 * "mixed"` the graph's activations and heavy ops run in float16 (mixed_precision.ts) under dynamic
 * loss scaling kept on the GPU (adamw.ts `lossScale`: an overflowing step is skipped and does not
 * count as an AdamW step); weights, moments, EMA, loss and gradients stay float32. The EMA
 * warmup counter is the host's and counts skipped steps too.
 *
 * A data-parallel rank passes `reduce` to {@link CompiledTrainStep.step}: the step then splits at
 * the gradients (forward and backward in one submit, the packed gradients read back with one map,
 * averaged over the group by `reduce`, written back with one write, then clipping, AdamW and the
 * EMA in a second submit), so every rank applies the same update.
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
import {
  ADAMW_PARTIALS_BYTES,
  adamWDispatches,
  adamWStepScalars,
  LOSS_SCALE_STATE,
} from "./adamw.ts";
import { LOSS_SCALE_INPUT, type Precision, scaleLossSeed } from "./mixed_precision.ts";
import { fuseGraph } from "./fuse.ts";
import type { Graph, Node } from "./graph.ts";
import { type CompiledGraph, compileGraph, type InputSlot } from "./webgpu_executor.ts";
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
  /**
   * `"mixed"`: float16 activations and heavy ops (mixed_precision.ts; the device needs
   * `shader-f16`, see `requestStepDevice`) with dynamic loss scaling on the GPU (adamw.ts
   * `lossScale`); weights, moments, EMA, loss and gradients stay float32. Default `"f32"`.
   */
  precision?: Precision;
  /** Loss scaling of `"mixed"`: initial scale (default 2^15) and good steps before doubling (200). */
  lossScale?: { init?: number; growEvery?: number };
}

/** The dynamic loss scale of a mixed-precision step (see {@link CompiledTrainStep.readLossScale}). */
export interface LossScaleState {
  scale: number;
  /** Steps applied (skipped ones excluded): AdamW's step count. */
  applied: number;
  /** Good steps since the scale last changed. */
  goodSteps: number;
  /** Steps skipped for an inf or NaN gradient so far. */
  skipped: number;
}

/** Options of one {@link CompiledTrainStep.step}. */
export interface StepOptions {
  /**
   * Average the gradients over a data-parallel group (e.g. lib/data_parallel's `allreduceMean`):
   * called with this rank's packed gradients followed by its loss (`packed.elements + 1` values:
   * the packed layout, gaps zero, then the loss), it replaces them in place by the group's mean.
   * The step then resolves the mean loss. The array is reused by the next step.
   */
  reduce?: (flat: Float32Array) => Promise<void>;
}

/** Host milliseconds of a {@link CompiledTrainStep}'s last step, by phase. */
export interface StepTimes {
  /** `writeBuffer` calls: data inputs, the step's scalars and (with `reduce`) the gradients. */
  writeMs: number;
  /** Encoding the passes (and readback copies). */
  encodeMs: number;
  /** Inside `queue.submit` (a software driver may run the kernels there). */
  submitMs: number;
  /** Waiting for the GPU: from each submit until its results are on the host. */
  waitMs: number;
  /** With `reduce`: mapping the finished gradient readback and copying it to the host array. */
  readMs: number;
  /** With `reduce`: inside it (an allreduce, waiting for the other ranks included). */
  reduceMs: number;
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
  /**
   * Mixed precision's dynamic loss scale (absent otherwise). On {@link CompiledTrainStep.setState}
   * its `applied` is ignored (`t` is AdamW's count); absent there, the scale starts afresh.
   */
  lossScale?: LossScaleState;
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
  /**
   * One step: write `data` inputs, run forward, backward and AdamW at `lr`; resolve the loss.
   * Without `options.reduce` all of it is one submit; with it, see {@link StepOptions}.
   */
  step(data: Record<string, Float32Array>, lr: number, options?: StepOptions): Promise<number>;
  /** Phases of the last step. */
  readonly lastTimes: StepTimes;
  /** Read the parameters (or the EMA shadows) back. */
  readParams(which?: "params" | "ema"): Promise<Record<string, Float32Array>>;
  /**
   * Everything the next step depends on (parameters, Adam moments, EMA shadows, step and EMA
   * update counts, mixed precision's loss scale), read back: what a checkpoint holds.
   */
  readState(): Promise<CompiledTrainState>;
  /**
   * Restore a {@link CompiledTrainStep.readState} snapshot (a resume); with mixed precision also
   * its loss scale, or the initial scale when the snapshot has none (an older checkpoint).
   */
  setState(state: CompiledTrainState): void;
  /** The loss scale and its counters (undefined unless `precision: "mixed"`). */
  readLossScale(): Promise<LossScaleState | undefined>;
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
  const mixed = o.precision === "mixed";
  if (o.precision !== undefined && o.precision !== "f32" && !mixed) {
    throw new Error(`compileTrainStep: precision must be "f32" or "mixed", got "${o.precision}"`);
  }
  const scaleInit = o.lossScale?.init ?? 32768, growEvery = o.lossScale?.growEvery ?? 200;
  if (!(scaleInit > 0) || !Number.isInteger(growEvery) || growEvery < 1) {
    throw new Error(`compileTrainStep: lossScale needs init > 0 and an integer growEvery >= 1`);
  }
  // Loss scaling: the seed of the backward pass becomes an input the GPU keeps updating.
  const source = mixed ? scaleLossSeed(step.graph) : step.graph;
  const graph = o.fuse === false ? source : fuseGraph(source);
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
  let scaleDirty = mixed, scaleSlot: InputSlot | undefined, nextScale = scaleInit;
  const exe = await compileGraph(graph, device, {
    pack: { params: order, grads: order.map((n) => `grad/${n}`) },
    precision: o.precision,
    after: (packed, inputs) => {
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
        lossScale: mixed
          ? { ...(scaleSlot = inputs.get(LOSS_SCALE_INPUT)!), growEvery }
          : undefined,
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
  const lastTimes: StepTimes = {
    writeMs: 0,
    encodeMs: 0,
    submitMs: 0,
    waitMs: 0,
    readMs: 0,
    reduceMs: 0,
  };
  // A data-parallel rank's gradient readback and host array, made at its first step.
  let gradsRb: GPUBuffer | undefined, flat: Float32Array | undefined;

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
    lastTimes,
    async step(data, lr, so = {}) {
      if (!Number.isFinite(lr) || lr < 0) {
        throw new Error(`compileTrainStep.step: lr must be >= 0, got ${lr}`);
      }
      for (const k of Object.keys(data)) {
        if (!dataNames.has(k) || k === LOSS_SCALE_INPUT) {
          throw new Error(`compileTrainStep.step: no data input "${k}"`);
        }
      }
      if (scaleDirty) {
        // The initial (or restored) scale; from then on only the GPU writes it (adamw.ts).
        data = { ...data, [LOSS_SCALE_INPUT]: new Float32Array([nextScale]) };
        scaleDirty = false;
      }
      t += 1;
      const d = o.ema
        ? (o.ema.warmup ? Math.min(o.ema.decay, (1 + emaUpdates) / (10 + emaUpdates)) : o.ema.decay)
        : 1;
      emaUpdates += o.ema ? 1 : 0;
      const t0 = performance.now();
      device.queue.writeBuffer(
        scalars,
        0,
        adamWStepScalars({ t, lr, beta1, beta2, weightDecay, emaDecay: d, gpuT: mixed }),
      );
      const scalarsMs = performance.now() - t0;
      const r = exe.lastTimes;
      if (!so.reduce) {
        const loss = (await exe.run(data, ["loss"])).loss[0];
        Object.assign(lastTimes, {
          writeMs: r.writeMs + scalarsMs,
          encodeMs: r.encodeMs,
          submitMs: r.submitMs,
          waitMs: r.readMs,
          readMs: 0,
          reduceMs: 0,
        });
        return loss;
      }
      const bytes = 4 * packed.elements;
      if (!gradsRb) {
        gradsRb = device.createBuffer({
          size: bytes,
          usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
          label: "gradient readback",
        });
        own.push(gradsRb);
      }
      flat ??= new Float32Array(packed.elements + 1);
      // Forward and backward only; the gradients go to the readback in the same submit.
      const loss = (await exe.run(data, ["loss"], { dispatches: "graph", gradsTo: gradsRb }))
        .loss[0];
      const first = { ...r };
      const t1 = performance.now();
      await gradsRb.mapAsync(GPUMapMode.READ);
      flat.set(new Float32Array(gradsRb.getMappedRange()));
      gradsRb.unmap();
      flat[packed.elements] = loss;
      const t2 = performance.now();
      await so.reduce(flat);
      const t3 = performance.now();
      device.queue.writeBuffer(packed.grads, 0, flat.buffer as ArrayBuffer, flat.byteOffset, bytes);
      const t4 = performance.now();
      // Clipping, AdamW and the EMA on the averaged gradients.
      await exe.run({}, [], { dispatches: "after" });
      Object.assign(lastTimes, {
        writeMs: first.writeMs + scalarsMs + (t4 - t3) + r.writeMs,
        encodeMs: first.encodeMs + r.encodeMs,
        submitMs: first.submitMs + r.submitMs,
        waitMs: first.readMs + r.readMs,
        readMs: t2 - t1,
        reduceMs: t3 - t2,
      });
      return flat[packed.elements];
    },
    async readParams(which = "params") {
      const src = which === "ema" ? ema : packed.params;
      if (!src) throw new Error(`compileTrainStep.readParams: compiled without an EMA`);
      return unpack(await readBuffer(device, src, 0, 4 * packed.elements));
    },
    async readState() {
      const read = async (b: GPUBuffer) =>
        unpack(await readBuffer(device, b, 0, 4 * packed.elements));
      // Mixed precision: AdamW's count of applied (not skipped) steps is on the GPU, with the
      // loss scale a resume needs to continue bit-identically.
      const lossScale = await self.readLossScale();
      return {
        t: lossScale ? lossScale.applied : t,
        emaUpdates,
        params: await read(packed.params),
        m: await read(m!),
        v: await read(v!),
        ...(ema ? { ema: await read(ema) } : {}),
        ...(lossScale ? { lossScale } : {}),
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
      if (scaleSlot) {
        const ls = st.lossScale;
        if (ls && !(ls.scale > 0 && ls.goodSteps >= 0 && ls.skipped >= 0)) {
          throw new Error(
            `compileTrainStep.setState: lossScale needs scale > 0 and counters >= 0, got ` +
              JSON.stringify(ls),
          );
        }
        const scale = ls?.scale ?? scaleInit;
        device.queue.writeBuffer(
          scaleSlot.buffer,
          scaleSlot.offset,
          new Float32Array([scale, st.t, ls?.goodSteps ?? 0, ls?.skipped ?? 0]),
        );
        // The executor wants the input written through a run once: the next step writes the
        // restored scale (the same value) as its data.
        nextScale = scale;
        scaleDirty = true;
      }
      emaUpdates = ema ? st.emaUpdates : 0;
    },
    async readLossScale() {
      if (!scaleSlot) return undefined;
      const [scale, applied, goodSteps, skipped] = await readBuffer(
        device,
        scaleSlot.buffer,
        scaleSlot.offset,
        4 * LOSS_SCALE_STATE,
      );
      return { scale, applied, goodSteps, skipped };
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
