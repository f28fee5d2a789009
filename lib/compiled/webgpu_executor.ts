/**
 * A kit-owned WebGPU executor of a compiled-step {@link Graph}: everything that does not change
 * from run to run is built once by {@link compileGraph}, so a run is input writes, one command
 * buffer with one compute pass of prebuilt dispatches, one submit and one readback.
 *
 * What compiling does:
 *
 * - **buffers**, planned once: graph inputs (params and data), constants and the roots of graph
 *   outputs get their own storage buffers; every other value takes a pooled buffer from the
 *   first free one large enough, freed after its last use (liveness over the node order), so
 *   buffers are reused across the step; a `reshape` is a view (the same buffer, no copy);
 * - **one WGSL compute shader per node** (`wgsl_lower.ts`), shapes in uniforms, pipelines and
 *   shader modules cached by WGSL source, bind-group layouts by binding signature;
 * - **one bind group per dispatch**, made once;
 * - **one uniform buffer** holding every dispatch's uniforms in its own 256-byte slice, written
 *   once at compile time;
 * - **one readback buffer** with a fixed slot per graph output;
 * - with `precision: "mixed"`, **float16 storage** for the intermediate values that
 *   `mixed_precision.ts` picks by op kind (half the bytes of their pooled buffers), each kernel's
 *   WGSL rewritten to widen float16 reads and narrow float16 writes (`stats.halfValues`,
 *   `stats.pooledBytes`).
 *
 * A run (`run(inputs, outputs)`) writes each given input with `queue.writeBuffer` (inputs not
 * given keep their last values: parameters need not be rewritten every step), encodes all
 * dispatches into one compute pass of one command buffer, copies the requested outputs to the
 * readback buffer, submits once and maps only the range the requested outputs occupy.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph } from "./graph.ts";
 * import { compileGraph } from "./webgpu_executor.ts";
 *
 * const adapter = await navigator.gpu?.requestAdapter();
 * if (adapter) {
 *   const device = await adapter.requestDevice();
 *   const g = new Graph();
 *   const x = g.input("x", [4]);
 *   g.output("y", g.add("mulScalar", [g.add("add", [x, x])], { s: 0.5 }));
 *   const exe = await compileGraph(g, device);
 *   const out = await exe.run({ x: new Float32Array([1, 2, 3, 4]) });
 *   assert.deepEqual(Array.from(out.y), [1, 2, 3, 4]);
 *   assert.equal(exe.stats.dispatches, 2);
 *   exe.destroy();
 *   device.destroy();
 * }
 * ```
 * @module
 */
import type { Graph, Node } from "./graph.ts";
import { HEAVY_OPS, mixedWgsl, planHalfValues, type Precision } from "./mixed_precision.ts";
import { type KernelSpec, sizeOf, UNIFORM_WORDS } from "./wgsl_common.ts";
import { lowerNode } from "./wgsl_lower.ts";

/** What a compiled graph holds (all fixed at compile time). */
export interface ExecutorStats {
  /** Dispatches per run: one per node that is not an input, constant or reshape. */
  dispatches: number;
  /** Distinct WGSL sources, hence compute pipelines and shader modules. */
  pipelines: number;
  bindGroups: number;
  /** Storage buffers: inputs, constants, output roots, pooled intermediates (and scratch). */
  buffers: number;
  /** Of those, pooled (shared by values with disjoint lifetimes). */
  pooledBuffers: number;
  /** Values the pooled buffers hold over the run (> pooledBuffers when buffers are reused). */
  pooledValues: number;
  /** Bytes of all storage buffers. */
  storageBytes: number;
  /** Bytes of the pooled buffers (intermediate values and scratch): the activation memory. */
  pooledBytes: number;
  /** Values stored as float16 (0 unless `precision: "mixed"`). */
  halfValues: number;
}

/** Host milliseconds of the last run, by phase. */
export interface RunTimes {
  /** `queue.writeBuffer` of the given inputs. */
  writeMs: number;
  /** Command encoder creation to `finish()`: the pass, its dispatches, the output copies. */
  encodeMs: number;
  /** Inside `queue.submit` (a software driver may execute the work here). */
  submitMs: number;
  /** After submit until the outputs are on the host (GPU work and mapping). */
  readMs: number;
}

/**
 * Parameters and their gradients packed into one flat buffer each (see {@link CompileOptions}):
 * every parameter input reads, and its gradient output is written, at the same element offset
 * (a multiple of 64: WebGPU binds storage at 256-byte offsets), the gaps between them zero.
 */
export interface PackedBuffers {
  /** All packed parameters (storage, copy source and destination). */
  params: GPUBuffer;
  /** All packed gradients, the graph's kernels writing them in place. */
  grads: GPUBuffer;
  /** Element offset of each packed parameter (and of its gradient) by input name. */
  offsets: ReadonlyMap<string, number>;
  /** Elements of both buffers, gaps included. */
  elements: number;
}

/** A dispatch made outside the graph (e.g. an optimizer update), run after the graph's. */
export interface ExtraDispatch {
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  workgroups: [number, number, number];
}

/** Options of {@link compileGraph}. */
export interface CompileOptions {
  /**
   * Pack these parameter inputs (`params`, in packing order) and the graph outputs holding their
   * gradients (`grads[i]` of `params[i]`) into two flat buffers ({@link PackedBuffers}); each
   * gradient output must be computed by its own kernel (not an input, constant or shared value).
   */
  pack?: { params: readonly string[]; grads: readonly string[] };
  /**
   * Dispatches to append after the graph's in the same pass (built once, from the packed
   * buffers): an optimizer updating the parameters in place.
   */
  after?: (
    packed: PackedBuffers,
    inputs: ReadonlyMap<string, InputSlot>,
  ) => ExtraDispatch[] | Promise<ExtraDispatch[]>;
  /**
   * `"mixed"`: intermediate values stored as float16 and the heavy ops computed from float16
   * inputs, by op kind as `mixed_precision.ts` documents (the device must have `shader-f16`);
   * inputs, constants and outputs stay float32. Default `"f32"`.
   */
  precision?: Precision;
}

/** Where a graph input lives (what `after` may bind, e.g. to update an input on the GPU). */
export interface InputSlot {
  buffer: GPUBuffer;
  /** Byte offset and size of the input's range. */
  offset: number;
  size: number;
}

/** Options of one {@link CompiledGraph.run}. */
export interface RunOptions {
  /**
   * Which dispatches run: `"all"` (default), `"graph"` (the graph's own, without the `after`
   * ones) or `"after"` (only those: e.g. an optimizer update from gradients written meanwhile).
   */
  dispatches?: "all" | "graph" | "after";
  /**
   * Copy the whole packed gradient buffer to offset 0 of this buffer (`COPY_DST`, at least
   * `4 * packed.elements` bytes) after the pass, in the same submit: a data-parallel rank's
   * readback of its gradients.
   */
  gradsTo?: GPUBuffer;
}

/** The executable of a graph on one device: see the module doc. */
export interface CompiledGraph {
  readonly stats: ExecutorStats;
  /** Names of the graph outputs (the ones `run` may read back). */
  readonly outputNames: readonly string[];
  /** Phases of the last run. */
  readonly lastTimes: RunTimes;
  /**
   * Write `inputs` (by input name; lengths checked; every input must have been written once),
   * run the whole graph and return the `outputs` (default: all) as new arrays.
   */
  run(
    inputs: Record<string, Float32Array>,
    outputs?: readonly string[],
    options?: RunOptions,
  ): Promise<Record<string, Float32Array>>;
  /** The packed parameter and gradient buffers, when compiled with `pack`. */
  readonly packed?: PackedBuffers;
  /** Free every buffer (the pipelines go with the device). */
  destroy(): void;
}

const ALIGN = 256;
const alignUp = (n: number, a = ALIGN) => Math.ceil(n / a) * a;
/** Storage bindings must be a multiple of 4 bytes and not empty; float16 values take 2 bytes. */
const bytesOf = (n: Node, half = false) =>
  Math.max(16, alignUp((half ? 2 : 4) * n.shape.reduce((a, b) => a * b, 1), 16));

type Dispatch = ExtraDispatch;

/** Where a value lives: a range of a buffer. */
interface Slot {
  buffer: GPUBuffer;
  offset: number;
  size: number;
}

/**
 * Compile `graph` for `device` (see the module doc). Every needed node must lower to a kernel
 * (`wgsl_lower.ts`); WGSL or validation errors name the node.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph } from "./graph.ts";
 * import { compileGraph } from "./webgpu_executor.ts";
 *
 * const adapter = await navigator.gpu?.requestAdapter();
 * if (adapter) {
 *   const device = await adapter.requestDevice();
 *   const g = new Graph();
 *   const a = g.input("a", [2, 3]), b = g.input("b", [3]);
 *   g.output("s", g.add("sum", [g.add("mul", [a, b])], { axes: [1] }));
 *   const exe = await compileGraph(g, device);
 *   const out = await exe.run({ a: new Float32Array([1, 2, 3, 4, 5, 6]), b: new Float32Array([1, 0, -1]) });
 *   assert.deepEqual(Array.from(out.s), [-2, -2]);
 *   exe.destroy();
 *   device.destroy();
 * }
 * ```
 */
export async function compileGraph(
  graph: Graph,
  device: GPUDevice,
  options: CompileOptions = {},
): Promise<CompiledGraph> {
  const nodes = graph.nodes;
  const precision = options.precision ?? "f32";
  if (precision !== "f32" && precision !== "mixed") {
    throw new Error(`webgpu executor: precision must be "f32" or "mixed", got "${precision}"`);
  }
  if (precision === "mixed" && !device.features.has("shader-f16")) {
    throw new Error(
      `webgpu executor: precision "mixed" needs a device created with the shader-f16 feature`,
    );
  }
  const outputNames = [...graph.outputs.keys()];
  // Needed nodes: everything an output depends on (inputs always get a buffer).
  const needed = new Uint8Array(nodes.length);
  for (const n of graph.outputs.values()) needed[n.id] = 1;
  for (let i = nodes.length - 1; i >= 0; i--) {
    if (needed[i]) { for (const j of nodes[i].inputs) needed[j] = 1; }
  }
  // A reshape is a view of its input's root.
  const root = new Int32Array(nodes.length);
  for (const n of nodes) root[n.id] = n.op === "reshape" ? root[n.inputs[0]] : n.id;
  // The extra outputs of multi-output kernels, in index order, by their kernel node.
  const extrasOf = new Map<number, number[]>();
  for (const n of nodes) {
    if (n.op !== "extra") continue;
    const list = extrasOf.get(n.inputs[0]) ?? [];
    list[n.attrs.index as number] = n.id;
    extrasOf.set(n.inputs[0], list);
  }
  for (const n of nodes) if (needed[n.id] && n.op === "extra") needed[n.inputs[0]] = 1;
  const specs = new Map<number, KernelSpec>();
  for (const n of nodes) {
    if (!needed[n.id]) continue;
    const s = lowerNode(graph, n);
    if (s) {
      const extras = extrasOf.get(n.id)?.length ?? 0;
      if ((s.extraOutputs ?? 0) !== extras) {
        throw new Error(
          `webgpu executor: node ${n.id} (${n.op}) writes ${s.extraOutputs ?? 0} extra outputs, ` +
            `the graph has ${extras}`,
        );
      }
      if (s.uniforms.length > UNIFORM_WORDS) {
        throw new Error(`webgpu executor: node ${n.id} (${n.op}) needs ${s.uniforms.length} words`);
      }
      specs.set(n.id, s);
    }
  }
  // Liveness: the last dispatch reading each root (through any view).
  const lastUse = new Int32Array(nodes.length).fill(-1);
  for (const [id, s] of specs) for (const r of s.reads) lastUse[root[r]] = id;
  const pinned = new Uint8Array(nodes.length);
  for (const n of graph.outputs.values()) pinned[root[n.id]] = 1;
  const half = precision === "mixed" ? planHalfValues(graph, root, pinned) : undefined;
  const isHalf = (id: number) => half !== undefined && half[root[id]] === 1;
  if (half) {
    for (const [id, s] of specs) {
      const n = nodes[id];
      s.wgsl = mixedWgsl(s.wgsl, {
        reads: s.reads.map((r) => isHalf(r) ? "f16" : "f32"),
        outs: [id, ...extrasOf.get(id) ?? []].map((o) => isHalf(o) ? "f16" : "f32"),
        roundReads: HEAVY_OPS.has(n.op),
      });
    }
  }

  const allBuffers: GPUBuffer[] = [];
  let storageBytes = 0;
  const create = (size: number, usage: number, label: string) => {
    const b = device.createBuffer({ size, usage, label });
    allBuffers.push(b);
    storageBytes += usage & GPUBufferUsage.STORAGE ? size : 0;
    return b;
  };
  const S = GPUBufferUsage.STORAGE, DST = GPUBufferUsage.COPY_DST, SRC = GPUBufferUsage.COPY_SRC;
  const bufferOf = new Map<number, Slot>();
  const whole = (buffer: GPUBuffer): Slot => ({ buffer, offset: 0, size: buffer.size });
  const inputBuffers = new Map<string, Slot & { length: number }>();
  const packed = options.pack ? packBuffers(graph, options.pack, root, specs, create) : undefined;
  const packedGrads = new Map<number, Slot>();
  if (packed) {
    options.pack!.params.forEach((name, i) => {
      const n = graph.inputs.get(name)!, off = 4 * packed.offsets.get(name)!;
      const size = alignUp(4 * sizeOf(n.shape), 16);
      bufferOf.set(n.id, { buffer: packed.params, offset: off, size });
      const gr = root[graph.outputs.get(options.pack!.grads[i])!.id];
      packedGrads.set(gr, { buffer: packed.grads, offset: off, size });
    });
  }
  for (const [name, n] of graph.inputs) {
    if (n.dtype !== "float32") {
      throw new Error(`webgpu executor: input "${name}" is ${n.dtype}; only float32 runs`);
    }
    if (!bufferOf.has(n.id)) {
      bufferOf.set(n.id, whole(create(bytesOf(n), S | DST | SRC, `input ${name}`)));
    }
    inputBuffers.set(name, { ...bufferOf.get(n.id)!, length: sizeOf(n.shape) });
  }

  device.pushErrorScope("validation");
  // Pool of intermediate buffers: the smallest free one that fits, else a new one.
  const free: GPUBuffer[] = [];
  let pooledBuffers = 0, pooledValues = 0, pooledBytes = 0;
  const take = (size: number, label: string): Slot => whole(takeBuffer(size, label));
  const takeBuffer = (size: number, label: string): GPUBuffer => {
    let best = -1;
    free.forEach((b, i) => {
      if (b.size >= size && (best < 0 || b.size < free[best].size)) best = i;
    });
    pooledValues++;
    if (best >= 0) return free.splice(best, 1)[0];
    pooledBuffers++;
    pooledBytes += size;
    return create(size, S | SRC, label);
  };
  const scratchOf = new Map<number, GPUBuffer>();
  const place = (v: Node) =>
    bufferOf.set(
      v.id,
      packedGrads.get(v.id) ??
        (pinned[v.id]
          ? whole(create(bytesOf(v), S | SRC, `output ${v.id} ${v.op}`))
          : take(bytesOf(v, isHalf(v.id)), `pool (${v.op} ${v.id})`)),
    );
  for (const n of nodes) {
    if (!needed[n.id]) continue;
    if (n.op === "constant") {
      const b = create(bytesOf(n), S | DST | SRC, `constant ${n.id}`);
      const v = n.attrs.values as Float32Array | Int32Array;
      device.queue.writeBuffer(b, 0, v.buffer as ArrayBuffer, v.byteOffset, v.byteLength);
      bufferOf.set(n.id, whole(b));
      continue;
    }
    const s = specs.get(n.id);
    if (!s) continue; // input, view or extra output (placed with its kernel)
    place(n);
    for (const e of extrasOf.get(n.id) ?? []) place(nodes[e]);
    const scratch = s.scratch
      ? takeBuffer(Math.max(16, alignUp(4 * s.scratch, 16)), "scratch")
      : null;
    if (scratch) scratchOf.set(n.id, scratch);
    if (scratch) free.push(scratch);
    for (const r of new Set(s.reads.map((i) => root[i]))) {
      const src = nodes[r];
      if (lastUse[r] === n.id && !pinned[r] && src.op !== "input" && src.op !== "constant") {
        free.push(bufferOf.get(r)!.buffer);
      }
    }
  }
  const bufOf = (id: number) => bufferOf.get(root[id])!;

  // Every dispatch's uniforms in one buffer, one 256-byte slice each, written once.
  const order = [...specs.keys()];
  const uniformData = new Uint32Array(Math.max(1, order.length) * (ALIGN / 4));
  order.forEach((id, k) => uniformData.set(specs.get(id)!.uniforms, k * (ALIGN / 4)));
  const uniforms = create(uniformData.byteLength, GPUBufferUsage.UNIFORM | DST, "uniforms");
  device.queue.writeBuffer(uniforms, 0, uniformData);

  const pipelines = new Map<string, GPUComputePipeline>();
  const layouts = new Map<string, GPUBindGroupLayout>();
  const layoutFor = (reads: number, outs: number, scratch: boolean) => {
    const key = `${reads}/${outs}/${scratch}`;
    let l = layouts.get(key);
    if (!l) {
      const C = GPUShaderStage.COMPUTE;
      const entries: GPUBindGroupLayoutEntry[] = [
        { binding: 0, visibility: C, buffer: { type: "uniform" } },
      ];
      for (let k = 0; k < reads; k++) {
        entries.push({ binding: k + 1, visibility: C, buffer: { type: "read-only-storage" } });
      }
      for (let k = 0; k < outs + (scratch ? 1 : 0); k++) {
        entries.push({ binding: reads + 1 + k, visibility: C, buffer: { type: "storage" } });
      }
      l = device.createBindGroupLayout({ entries });
      layouts.set(key, l);
    }
    return l;
  };
  const dispatches: Dispatch[] = [];
  const failures: Promise<string | undefined>[] = [];
  order.forEach((id, k) => {
    const s = specs.get(id)!, n = nodes[id];
    const extras = extrasOf.get(id) ?? [];
    const layout = layoutFor(s.reads.length, 1 + extras.length, !!s.scratch);
    let pipeline = pipelines.get(s.wgsl);
    if (!pipeline) {
      device.pushErrorScope("validation");
      const module = device.createShaderModule({ code: s.wgsl, label: n.op });
      pipeline = device.createComputePipeline({
        layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module, entryPoint: "main" },
        label: n.op,
      });
      failures.push(
        device.popErrorScope().then((e) =>
          e ? `node ${id} (${n.op}) WGSL: ${e.message}\n${s.wgsl}` : undefined
        ),
      );
      pipelines.set(s.wgsl, pipeline);
    }
    const entries: GPUBindGroupEntry[] = [
      { binding: 0, resource: { buffer: uniforms, offset: k * ALIGN, size: ALIGN } },
    ];
    const bind = (binding: number, v: Slot) =>
      entries.push({ binding, resource: { buffer: v.buffer, offset: v.offset, size: v.size } });
    s.reads.forEach((r, j) => bind(j + 1, bufOf(r)));
    [id, ...extras].forEach((o, j) => bind(s.reads.length + 1 + j, bufOf(o)));
    const scratch = scratchOf.get(id);
    if (scratch) bind(s.reads.length + 2 + extras.length, whole(scratch));
    const bindGroup = device.createBindGroup({ layout, entries, label: `${n.op} ${id}` });
    dispatches.push({ pipeline, bindGroup, workgroups: s.workgroups });
  });
  // The graph's own dispatches come first; a run may stop there or skip them (RunOptions).
  const graphDispatches = dispatches.length;
  if (options.after && packed) dispatches.push(...await options.after(packed, inputBuffers));
  const errors = (await Promise.all(failures)).filter((e) => e);
  const outer = await device.popErrorScope();
  if (errors.length) throw new Error(`webgpu executor: ${errors[0]}`);
  if (outer) throw new Error(`webgpu executor: compile failed: ${outer.message}`);

  // One readback buffer, a fixed slot per output.
  const slots = new Map<string, { offset: number; bytes: number; node: Node }>();
  let readBytes = 0;
  for (const [name, n] of graph.outputs) {
    const bytes = 4 * n.shape.reduce((a, b) => a * b, 1);
    slots.set(name, { offset: readBytes, bytes, node: n });
    readBytes = alignUp(readBytes + Math.max(bytes, 4));
  }
  const readback = create(
    Math.max(ALIGN, readBytes),
    GPUBufferUsage.MAP_READ | DST,
    "readback",
  );

  const stats: ExecutorStats = {
    dispatches: dispatches.length,
    pipelines: pipelines.size,
    bindGroups: dispatches.length,
    buffers: allBuffers.filter((b) => b.usage & GPUBufferUsage.STORAGE).length,
    pooledBuffers,
    pooledValues,
    storageBytes,
    pooledBytes,
    halfValues: half
      ? [...specs.keys()].reduce(
        (a, id) => a + [id, ...extrasOf.get(id) ?? []].filter((o) => isHalf(o)).length,
        0,
      )
      : 0,
  };
  // Packed parameters are written through `packed.params` by their owner, not by `run`.
  const written = new Set<string>(options.pack?.params ?? []);
  const lastTimes: RunTimes = { writeMs: 0, encodeMs: 0, submitMs: 0, readMs: 0 };
  let busy = false;

  async function run(
    inputs: Record<string, Float32Array>,
    outputs: readonly string[] = outputNames,
    ro: RunOptions = {},
  ): Promise<Record<string, Float32Array>> {
    if (busy) throw new Error("webgpu executor: run called while a run is in flight");
    busy = true;
    try {
      const t0 = performance.now();
      for (const [name, data] of Object.entries(inputs)) {
        const b = inputBuffers.get(name);
        if (!b) throw new Error(`webgpu executor: graph has no input "${name}"`);
        if (data.length !== b.length) {
          throw new Error(
            `webgpu executor: input "${name}" has ${data.length} values, the graph wants ${b.length}`,
          );
        }
        device.queue.writeBuffer(
          b.buffer,
          b.offset,
          data.buffer as ArrayBuffer,
          data.byteOffset,
          data.byteLength,
        );
        written.add(name);
      }
      for (const name of inputBuffers.keys()) {
        if (!written.has(name)) throw new Error(`webgpu executor: input "${name}" never written`);
      }
      const want = outputs.map((name) => {
        const s = slots.get(name);
        if (!s) throw new Error(`webgpu executor: graph has no output "${name}"`);
        return { name, ...s };
      });
      const t1 = performance.now();
      const enc = device.createCommandEncoder();
      const pass = enc.beginComputePass();
      let current: GPUComputePipeline | undefined;
      const which = ro.dispatches ?? "all";
      const from = which === "after" ? graphDispatches : 0;
      const to = which === "graph" ? graphDispatches : dispatches.length;
      for (let k = from; k < to; k++) {
        const d = dispatches[k];
        if (d.pipeline !== current) {
          pass.setPipeline(d.pipeline);
          current = d.pipeline;
        }
        pass.setBindGroup(0, d.bindGroup);
        pass.dispatchWorkgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
      }
      pass.end();
      if (ro.gradsTo) {
        if (!packed) throw new Error("webgpu executor: gradsTo needs a graph compiled with pack");
        enc.copyBufferToBuffer(packed.grads, 0, ro.gradsTo, 0, 4 * packed.elements);
      }
      let lo = Infinity, hi = 0;
      for (const w of want) {
        if (w.bytes === 0) continue;
        const src = bufOf(w.node.id);
        enc.copyBufferToBuffer(src.buffer, src.offset, readback, w.offset, w.bytes);
        lo = Math.min(lo, w.offset);
        hi = Math.max(hi, w.offset + w.bytes);
      }
      const cmd = enc.finish();
      const t2 = performance.now();
      device.queue.submit([cmd]);
      const t3 = performance.now();
      const out: Record<string, Float32Array> = {};
      if (hi > 0) {
        await readback.mapAsync(GPUMapMode.READ, lo, alignUp(hi - lo, 4));
        const mapped = readback.getMappedRange(lo, alignUp(hi - lo, 4));
        for (const w of want) {
          out[w.name] = new Float32Array(mapped.slice(w.offset - lo, w.offset - lo + w.bytes));
        }
        readback.unmap();
      } else {
        await device.queue.onSubmittedWorkDone();
        for (const w of want) out[w.name] = new Float32Array(0);
      }
      const t4 = performance.now();
      Object.assign(lastTimes, {
        writeMs: t1 - t0,
        encodeMs: t2 - t1,
        submitMs: t3 - t2,
        readMs: t4 - t3,
      });
      return out;
    } finally {
      busy = false;
    }
  }

  return {
    stats,
    outputNames,
    lastTimes,
    run,
    packed,
    destroy() {
      for (const b of allBuffers) b.destroy();
    },
  };
}

/** Lay out `pack` (offsets 64-aligned, in the given order) and create its two buffers. */
function packBuffers(
  graph: Graph,
  pack: NonNullable<CompileOptions["pack"]>,
  root: Int32Array,
  specs: ReadonlyMap<number, KernelSpec>,
  create: (size: number, usage: number, label: string) => GPUBuffer,
): PackedBuffers {
  if (pack.params.length !== pack.grads.length) {
    throw new Error(
      `webgpu executor: pack has ${pack.params.length} params and ${pack.grads.length} grads`,
    );
  }
  const offsets = new Map<string, number>();
  const roots = new Set<number>();
  let at = 0;
  pack.params.forEach((name, i) => {
    const p = graph.inputs.get(name);
    if (!p) throw new Error(`webgpu executor: pack.params: graph has no input "${name}"`);
    const gname = pack.grads[i], g = graph.outputs.get(gname);
    if (!g) throw new Error(`webgpu executor: pack.grads: graph has no output "${gname}"`);
    const r = root[g.id];
    const own = specs.has(r) || graph.nodes[r].op === "extra";
    if (sizeOf(g.shape) !== sizeOf(p.shape) || !own || roots.has(r)) {
      throw new Error(
        `webgpu executor: output "${gname}" cannot be packed: it must be computed by its own ` +
          `kernel and have the size of "${name}"`,
      );
    }
    roots.add(r);
    offsets.set(name, at);
    at += Math.ceil(sizeOf(p.shape) / 64) * 64;
  });
  const elements = Math.max(64, at);
  const S = GPUBufferUsage.STORAGE, DST = GPUBufferUsage.COPY_DST, SRC = GPUBufferUsage.COPY_SRC;
  return {
    params: create(4 * elements, S | DST | SRC, "packed params"),
    grads: create(4 * elements, S | DST | SRC, "packed grads"),
    offsets,
    elements,
  };
}
