/**
 * EXPERIMENTAL: capture the WebGPU commands tfjs-backend-webgpu issues for one piece of work
 * (a training step) and replay them without tfjs. A study prototype for a compiled training step,
 * not used by training; its API may change or go.
 *
 * {@link captureWebgpuTrace} wraps the WebGPU prototypes (as `countWebgpuCalls` does) while the
 * work runs and records, in order: compute passes, dispatches (pipeline, bind group, workgroup
 * counts), uniform writes (`queue.writeBuffer` with their bytes), uploads (tfjs writes a
 * mapped-at-creation staging buffer, then copies it into the tensor's buffer: recorded as the
 * destination and the bytes), other buffer copies, submits and readbacks.
 * {@link diffWebgpuTraces} says how two captures of the same step differ (buffer identities,
 * uniform bytes, uploaded bytes). {@link planWebgpuReplay} turns a capture into a replay: bind
 * groups rebuilt once over one replay-owned uniform buffer (every dispatch's uniforms in its own
 * 256-byte slice), uploads hoisted to `writeBuffer` calls where no earlier command touches their
 * destination, every dispatch in one command buffer and one compute pass (split only around the
 * copies that must stay in place), one submit. {@link WebgpuReplay.run} can take a newer capture
 * of the same structure to take its uniform and upload bytes (a new step's timesteps, noise and
 * optimizer constants) without re-encoding anything tfjs-side.
 *
 * The replay reads and writes the very buffers tfjs used while capturing; it is only correct
 * while those buffers hold what they held when the captured work began (the caller's job: tfjs's
 * buffer manager must hand the next step the same buffers, see `diffWebgpuTraces`).
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { captureWebgpuTrace, planWebgpuReplay } from "./webgpu_replay.ts";
 * import { prepareWebgpuBackend, webgpuAdapterInfo } from "./webgpu_backend.ts";
 *
 * if (await webgpuAdapterInfo()) {
 *   await prepareWebgpuBackend();
 *   await tf.setBackend("webgpu");
 *   tf.env().set("WEBGPU_CPU_FORWARD", false);
 *   const a = tf.tensor1d([1, 2, 3]);
 *   await a.data();
 *   const { result: y, trace } = await captureWebgpuTrace(async () => {
 *     const y = tf.add(a, a);
 *     await y.data();
 *     return y;
 *   });
 *   assert.equal(trace.stats.dispatches, 1);
 *   const backend = tf.backend() as unknown as {
 *     device: GPUDevice;
 *     tensorMap: { get(id: object): { resource: GPUBuffer } };
 *   };
 *   const out = backend.tensorMap.get(y.dataId).resource;
 *   const replay = planWebgpuReplay(backend.device, trace);
 *   backend.device.queue.writeBuffer(out, 0, new Float32Array([0, 0, 0]));
 *   replay.run();
 *   const [back] = await replay.read([out]);
 *   assert.deepEqual(Array.from(back), [2, 4, 6]);
 *   replay.destroy();
 * }
 * ```
 * @module
 */

/** A buffer binding of a recorded bind group. */
export interface TraceBinding {
  binding: number;
  buffer: GPUBuffer;
  offset: number;
  size: number | undefined;
}

/** One recorded command, in issue order. */
export type TraceEvent =
  | { kind: "pass" }
  | {
    kind: "dispatch";
    pipeline: GPUComputePipeline;
    bindGroup: GPUBindGroup;
    layout: GPUBindGroupLayout;
    bindings: TraceBinding[];
    workgroups: [number, number, number];
  }
  | { kind: "uniform"; buffer: GPUBuffer; offset: number; bytes: Uint8Array<ArrayBuffer> }
  | {
    kind: "upload";
    staging: GPUBuffer | null;
    dst: GPUBuffer;
    dstOffset: number;
    bytes: Uint8Array<ArrayBuffer>;
  }
  | {
    kind: "copy";
    src: GPUBuffer;
    srcOffset: number;
    dst: GPUBuffer;
    dstOffset: number;
    size: number;
  }
  | { kind: "submit" }
  | { kind: "map"; buffer: GPUBuffer };

/** A captured sequence and its counts. */
export interface WebgpuTrace {
  events: TraceEvent[];
  stats: {
    dispatches: number;
    passes: number;
    submits: number;
    uniformWrites: number;
    uploads: number;
    copies: number;
    maps: number;
    /** Distinct pipelines and storage buffers the dispatches use. */
    pipelines: number;
    storageBuffers: number;
  };
}

// deno-lint-ignore no-explicit-any
type AnyFn = (this: any, ...args: any[]) => any;

let capturing = false;

/** Bytes of a `writeBuffer` source (`dataOffset`/`size` in elements for typed arrays). */
function writeBytes(data: BufferSource, dataOffset = 0, size?: number): Uint8Array<ArrayBuffer> {
  if (ArrayBuffer.isView(data)) {
    const el = (data as unknown as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT ?? 1;
    const start = data.byteOffset + dataOffset * el;
    const len = size !== undefined ? size * el : data.byteLength - dataOffset * el;
    return new Uint8Array(data.buffer.slice(start, start + len));
  }
  const len = size ?? data.byteLength - dataOffset;
  return new Uint8Array((data as ArrayBuffer).slice(dataOffset, dataOffset + len));
}

/**
 * Run `fn` with every WebGPU command recorded; return its result and the trace. Throws when a
 * capture is already running (the wrapped prototypes are global) or when a dispatch uses a bind
 * group made before the capture began (its buffers are unknown).
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { captureWebgpuTrace } from "./webgpu_replay.ts";
 *
 * const { result, trace } = await captureWebgpuTrace(() => 7);
 * assert.equal(result, 7);
 * assert.equal(trace.events.length, 0);
 * ```
 */
export async function captureWebgpuTrace<T>(
  fn: () => T | Promise<T>,
): Promise<{ result: T; trace: WebgpuTrace }> {
  if (capturing) throw new Error("captureWebgpuTrace: a capture is already running (no nesting)");
  capturing = true;
  const events: TraceEvent[] = [];
  const groups = new WeakMap<
    GPUBindGroup,
    { layout: GPUBindGroupLayout; bindings: TraceBinding[] }
  >();
  const passState = new WeakMap<object, { pipeline?: GPUComputePipeline; group?: GPUBindGroup }>();
  const mapped = new WeakMap<GPUBuffer, ArrayBuffer[]>();
  const staged = new WeakMap<GPUBuffer, Uint8Array>();
  const g = globalThis as unknown as Record<string, { prototype: Record<string, AnyFn> }>;
  const restore: (() => void)[] = [];
  const hook = (cls: string, method: string, make: (orig: AnyFn) => AnyFn) => {
    const proto = g[cls]?.prototype;
    const orig = proto?.[method];
    if (typeof orig !== "function") return;
    Object.defineProperty(proto, method, { value: make(orig), configurable: true, writable: true });
    restore.push(() =>
      Object.defineProperty(proto, method, { value: orig, configurable: true, writable: true })
    );
  };
  hook("GPUDevice", "createBindGroup", (orig) =>
    function (desc: GPUBindGroupDescriptor) {
      const bg = orig.call(this, desc) as GPUBindGroup;
      const bindings: TraceBinding[] = [];
      for (const e of desc.entries) {
        const r = e.resource as GPUBufferBinding;
        if (!r || !(r.buffer instanceof GPUBuffer)) {
          throw new Error("captureWebgpuTrace: only buffer bindings are supported");
        }
        bindings.push({
          binding: e.binding,
          buffer: r.buffer,
          offset: r.offset ?? 0,
          size: r.size,
        });
      }
      groups.set(bg, { layout: desc.layout, bindings });
      return bg;
    });
  hook("GPUCommandEncoder", "beginComputePass", (orig) =>
    function (...args) {
      events.push({ kind: "pass" });
      const pass = orig.apply(this, args);
      passState.set(pass, {});
      return pass;
    });
  hook("GPUComputePassEncoder", "setPipeline", (orig) =>
    function (p: GPUComputePipeline) {
      const s = passState.get(this) ?? {};
      s.pipeline = p;
      passState.set(this, s);
      return orig.call(this, p);
    });
  hook(
    "GPUComputePassEncoder",
    "setBindGroup",
    (orig) =>
      function (index: number, bg: GPUBindGroup, ...rest: unknown[]) {
        if (index !== 0) throw new Error("captureWebgpuTrace: only bind group 0 is supported");
        const s = passState.get(this) ?? {};
        s.group = bg;
        passState.set(this, s);
        return orig.call(this, index, bg, ...rest);
      },
  );
  hook("GPUComputePassEncoder", "dispatchWorkgroups", (orig) =>
    function (x: number, y = 1, z = 1) {
      const s = passState.get(this);
      const desc = s?.group ? groups.get(s.group) : undefined;
      if (!s?.pipeline || !s.group || !desc) {
        throw new Error("captureWebgpuTrace: a dispatch's bind group was made before the capture");
      }
      events.push({
        kind: "dispatch",
        pipeline: s.pipeline,
        bindGroup: s.group,
        layout: desc.layout,
        bindings: desc.bindings,
        workgroups: [x, y, z],
      });
      return orig.call(this, x, y, z);
    });
  hook(
    "GPUQueue",
    "writeBuffer",
    (orig) =>
      function (
        buffer: GPUBuffer,
        offset: number,
        data: BufferSource,
        dOff?: number,
        size?: number,
      ) {
        events.push({ kind: "uniform", buffer, offset, bytes: writeBytes(data, dOff, size) });
        return orig.call(this, buffer, offset, data, dOff, size);
      },
  );
  hook("GPUQueue", "submit", (orig) =>
    function (...args) {
      events.push({ kind: "submit" });
      return orig.apply(this, args);
    });
  hook("GPUBuffer", "getMappedRange", (orig) =>
    function (...args) {
      const r = orig.apply(this, args) as ArrayBuffer;
      const list = mapped.get(this) ?? [];
      list.push(r);
      mapped.set(this, list);
      return r;
    });
  hook("GPUBuffer", "unmap", (orig) =>
    function (...args) {
      // The bytes written through the mapped range are only readable before unmap detaches it.
      const list = mapped.get(this);
      if (list?.length && (this.usage & GPUBufferUsage.MAP_WRITE)) {
        staged.set(this, new Uint8Array(list[0].slice(0)));
      } else if (list?.length && (this.usage & GPUBufferUsage.STORAGE)) {
        // tfjs writes straight into a tensor buffer it just created mapped (its pool had no free
        // buffer of that size): an upload without a staging copy.
        events.push({
          kind: "upload",
          staging: null,
          dst: this,
          dstOffset: 0,
          bytes: new Uint8Array(list[0].slice(0)),
        });
      }
      mapped.delete(this);
      return orig.apply(this, args);
    });
  hook("GPUBuffer", "mapAsync", (orig) =>
    function (...args) {
      events.push({ kind: "map", buffer: this });
      return orig.apply(this, args);
    });
  hook(
    "GPUCommandEncoder",
    "copyBufferToBuffer",
    (orig) =>
      function (src: GPUBuffer, so: number, dst: GPUBuffer, doff: number, size: number) {
        const bytes = staged.get(src);
        if (bytes) {
          events.push({
            kind: "upload",
            staging: src,
            dst,
            dstOffset: doff,
            bytes: bytes.slice(so, so + size),
          });
        } else {
          events.push({ kind: "copy", src, srcOffset: so, dst, dstOffset: doff, size });
        }
        return orig.call(this, src, so, dst, doff, size);
      },
  );
  try {
    const result = await fn();
    return { result, trace: { events, stats: traceStats(events) } };
  } finally {
    for (const r of restore.reverse()) r();
    capturing = false;
  }
}

function traceStats(events: TraceEvent[]): WebgpuTrace["stats"] {
  const count = (k: TraceEvent["kind"]) => events.filter((e) => e.kind === k).length;
  const pipes = new Set<GPUComputePipeline>(), bufs = new Set<GPUBuffer>();
  for (const e of events) {
    if (e.kind !== "dispatch") continue;
    pipes.add(e.pipeline);
    for (const b of e.bindings) if (b.buffer.usage & GPUBufferUsage.STORAGE) bufs.add(b.buffer);
  }
  return {
    dispatches: count("dispatch"),
    passes: count("pass"),
    submits: count("submit"),
    uniformWrites: count("uniform"),
    uploads: count("upload"),
    copies: count("copy"),
    maps: count("map"),
    pipelines: pipes.size,
    storageBuffers: bufs.size,
  };
}

/** How two captures of the same work differ; `same*` are true when nothing of that kind did. */
export interface WebgpuTraceDiff {
  /** Same command kinds in the same order, same pipelines and workgroup counts. */
  sameStructure: boolean;
  /** Dispatches binding a different storage buffer (not counting uniform buffers). */
  storageBufferDiffs: number;
  /** Dispatches whose uniform buffer object differs (tfjs pools them: harmless for a replay). */
  uniformBufferDiffs: number;
  /** Dispatches whose uniform bytes differ, by pipeline label ("AdamWProgram": 12, ...). */
  uniformByteDiffs: Record<string, number>;
  /** Uploads to a different destination buffer; uploads with different bytes. */
  uploadDstDiffs: number;
  uploadByteDiffs: number;
  /** Readback copies whose source differs (the loss's buffer). */
  copyDiffs: number;
  /** First structural mismatch, for the error message ("" when none). */
  firstMismatch: string;
}

/** The uniform bytes each dispatch saw: the last write to its uniform buffer before it. */
function dispatchUniforms(trace: WebgpuTrace): (Uint8Array | null)[] {
  const last = new Map<GPUBuffer, Uint8Array>();
  const out: (Uint8Array | null)[] = [];
  for (const e of trace.events) {
    if (e.kind === "uniform") last.set(e.buffer, e.bytes);
    else if (e.kind === "dispatch") {
      const u = e.bindings.find((b) => b.buffer.usage & GPUBufferUsage.UNIFORM);
      out.push(u ? last.get(u.buffer) ?? null : null);
    }
  }
  return out;
}

function sameBytes(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Compare two captures of the same work (two warm training steps) command by command, ignoring
 * submits, passes and the staging buffers themselves (tfjs makes a new one per upload).
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { diffWebgpuTraces } from "./webgpu_replay.ts";
 *
 * const empty = { events: [], stats: { dispatches: 0, passes: 0, submits: 0, uniformWrites: 0,
 *   uploads: 0, copies: 0, maps: 0, pipelines: 0, storageBuffers: 0 } };
 * assert.equal(diffWebgpuTraces(empty, empty).sameStructure, true);
 * ```
 */
export function diffWebgpuTraces(a: WebgpuTrace, b: WebgpuTrace): WebgpuTraceDiff {
  const key = (e: TraceEvent) => e.kind === "dispatch" || e.kind === "upload" || e.kind === "copy";
  const ea = a.events.filter(key), eb = b.events.filter(key);
  const d: WebgpuTraceDiff = {
    sameStructure: true,
    storageBufferDiffs: 0,
    uniformBufferDiffs: 0,
    uniformByteDiffs: {},
    uploadDstDiffs: 0,
    uploadByteDiffs: 0,
    copyDiffs: 0,
    firstMismatch: "",
  };
  const ua = dispatchUniforms(a), ub = dispatchUniforms(b);
  let di = 0;
  const n = Math.max(ea.length, eb.length);
  for (let i = 0; i < n; i++) {
    const x = ea[i], y = eb[i];
    if (!x || !y || x.kind !== y.kind) {
      d.sameStructure = false;
      d.firstMismatch = `command ${i}: ${x?.kind ?? "end"} vs ${y?.kind ?? "end"}`;
      break;
    }
    if (x.kind === "dispatch" && y.kind === "dispatch") {
      if (x.pipeline !== y.pipeline || x.workgroups.join() !== y.workgroups.join()) {
        d.sameStructure = false;
        d.firstMismatch = `dispatch ${di}: ${x.pipeline.label} vs ${y.pipeline.label}`;
        break;
      }
      let storage = false, uniform = false;
      for (let j = 0; j < x.bindings.length; j++) {
        if (x.bindings[j].buffer === y.bindings[j]?.buffer) continue;
        if (x.bindings[j].buffer.usage & GPUBufferUsage.UNIFORM) uniform = true;
        else storage = true;
      }
      if (storage) d.storageBufferDiffs++;
      if (uniform) d.uniformBufferDiffs++;
      if (!sameBytes(ua[di], ub[di])) {
        const label = x.pipeline.label || "?";
        d.uniformByteDiffs[label] = (d.uniformByteDiffs[label] ?? 0) + 1;
      }
      di++;
    } else if (x.kind === "upload" && y.kind === "upload") {
      if (x.dst !== y.dst) d.uploadDstDiffs++;
      if (!sameBytes(x.bytes, y.bytes)) d.uploadByteDiffs++;
    } else if (x.kind === "copy" && y.kind === "copy") {
      if (x.src !== y.src || x.dst !== y.dst) d.copyDiffs++;
    }
  }
  return d;
}

/** Host milliseconds of one {@link WebgpuReplay.run}, by phase (GPU work not included). */
export interface ReplayTiming {
  /** Uniform and upload `writeBuffer` calls. */
  writeMs: number;
  /** Encoding every command and `finish`. */
  encodeMs: number;
  submitMs: number;
}

/** A planned replay of one capture; see {@link planWebgpuReplay}. */
export interface WebgpuReplay {
  /** Dispatches, compute passes and uploads per run. */
  readonly dispatches: number;
  readonly passes: number;
  readonly hoistedUploads: number;
  readonly inPlaceUploads: number;
  /** Buffers (and their bytes) the replay made for the captured buffers not bound. */
  readonly privateBuffers: number;
  readonly privateBytes: number;
  /** Where the replay keeps a captured buffer (itself, its bound buffer or its private twin). */
  buffer(captured: GPUBuffer): GPUBuffer;
  /**
   * Write the uniforms and uploads (from `data`, a capture of the same structure, or else the
   * planned capture), encode everything into one command buffer and submit it. Returns host ms.
   */
  run(data?: WebgpuTrace): ReplayTiming;
  /** Copy `buffers` back to the host as float32 (after the GPU finished earlier work). */
  read(buffers: GPUBuffer[]): Promise<Float32Array[]>;
  /** Free the replay's own buffers. */
  destroy(): void;
}

type Cmd =
  | { kind: "dispatch"; pipeline: GPUComputePipeline; group: GPUBindGroup; wg: number[] }
  | {
    kind: "copy";
    src: GPUBuffer;
    srcOffset: number;
    dst: GPUBuffer;
    dstOffset: number;
    size: number;
  }
  | { kind: "upload"; index: number; dst: GPUBuffer; dstOffset: number; size: number };

const UNIFORM_ALIGN = 256;

/**
 * Plan a replay of `trace` on `device`: rebuild each dispatch's bind group once over a slice of
 * one replay-owned uniform buffer, hoist every upload whose destination no earlier command
 * touches to a `writeBuffer`, keep the other uploads and the non-readback copies in place (a
 * pass break each) and drop the readbacks (copies into `MAP_READ` buffers).
 *
 * @example
 * ```ts
 * import { planWebgpuReplay, type WebgpuTrace } from "./webgpu_replay.ts";
 *
 * // With a captured training step (see the module example):
 * export function replayOnce(device: GPUDevice, trace: WebgpuTrace) {
 *   const replay = planWebgpuReplay(device, trace);
 *   return replay.run();
 * }
 * ```
 */
export function planWebgpuReplay(
  device: GPUDevice,
  trace: WebgpuTrace,
  opts: { bind?: Map<GPUBuffer, GPUBuffer> } = {},
): WebgpuReplay {
  // Without `bind` the replay runs on the captured buffers themselves; with it, every buffer not
  // bound gets a private twin, so tfjs's pool (which hands out other buffers each step) and the
  // replay never share scratch memory.
  const owned: GPUBuffer[] = [];
  const twins = new Map<GPUBuffer, GPUBuffer>(opts.bind ?? []);
  const map = (b: GPUBuffer): GPUBuffer => {
    if (!opts.bind) return b;
    let t = twins.get(b);
    if (!t) {
      t = device.createBuffer({
        size: b.size,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
      owned.push(t);
      twins.set(b, t);
    }
    return t;
  };
  const dispatches = trace.events.filter((e) => e.kind === "dispatch").length;
  const uniformSizes = dispatchUniforms(trace).map((u) => u?.length ?? 0);
  const offsets: number[] = [];
  let total = 0;
  for (const s of uniformSizes) {
    offsets.push(total);
    total += Math.ceil(Math.max(s, 4) / UNIFORM_ALIGN) * UNIFORM_ALIGN;
  }
  const uniforms = device.createBuffer({
    size: Math.max(total, UNIFORM_ALIGN),
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  const cmds: Cmd[] = [];
  const touched = new Set<GPUBuffer>();
  const hoisted: { index: number; dst: GPUBuffer; dstOffset: number }[] = [];
  const inPlace: { index: number; size: number; offset: number }[] = [];
  let uploadIndex = 0, stagingSize = 0, di = 0;
  for (const e of trace.events) {
    if (e.kind === "dispatch") {
      const entries = e.bindings.map((b) =>
        b.buffer.usage & GPUBufferUsage.UNIFORM
          ? {
            binding: b.binding,
            resource: { buffer: uniforms, offset: offsets[di], size: uniformSizes[di] },
          }
          : {
            binding: b.binding,
            resource: { buffer: map(b.buffer), offset: b.offset, size: b.size },
          }
      );
      for (const b of e.bindings) touched.add(b.buffer);
      cmds.push({
        kind: "dispatch",
        pipeline: e.pipeline,
        group: device.createBindGroup({ layout: e.layout, entries }),
        wg: e.workgroups,
      });
      di++;
    } else if (e.kind === "upload") {
      if (!touched.has(e.dst)) {
        hoisted.push({ index: uploadIndex, dst: map(e.dst), dstOffset: e.dstOffset });
      } else {
        inPlace.push({ index: uploadIndex, size: e.bytes.length, offset: stagingSize });
        cmds.push({
          kind: "upload",
          index: uploadIndex,
          dst: map(e.dst),
          dstOffset: e.dstOffset,
          size: e.bytes.length,
        });
        stagingSize += Math.ceil(e.bytes.length / 4) * 4;
      }
      uploadIndex++;
    } else if (e.kind === "copy" && !(e.dst.usage & GPUBufferUsage.MAP_READ)) {
      cmds.push({ ...e, kind: "copy", src: map(e.src), dst: map(e.dst) });
      touched.add(e.src);
      touched.add(e.dst);
    }
  }
  const staging = device.createBuffer({
    size: Math.max(stagingSize, 4),
    usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
  let passes = 0, inPass = false;
  for (const c of cmds) {
    if (c.kind === "dispatch" && !inPass) {
      passes++;
      inPass = true;
    } else if (c.kind !== "dispatch") inPass = false;
  }
  const uniformBytes = new Uint8Array(uniforms.size);
  const stagingBytes = new Uint8Array(staging.size);

  const run = (data: WebgpuTrace = trace): ReplayTiming => {
    const t0 = performance.now();
    const us = dispatchUniforms(data);
    if (us.length !== dispatches) {
      throw new Error(`WebgpuReplay.run: data has ${us.length} dispatches, plan ${dispatches}`);
    }
    for (let i = 0; i < us.length; i++) if (us[i]) uniformBytes.set(us[i]!, offsets[i]);
    device.queue.writeBuffer(uniforms, 0, uniformBytes);
    const ups = data.events.filter((e) => e.kind === "upload");
    for (const h of hoisted) device.queue.writeBuffer(h.dst, h.dstOffset, ups[h.index].bytes);
    if (inPlace.length) {
      for (const p of inPlace) stagingBytes.set(ups[p.index].bytes, p.offset);
      device.queue.writeBuffer(staging, 0, stagingBytes);
    }
    const t1 = performance.now();
    const enc = device.createCommandEncoder();
    let pass: GPUComputePassEncoder | null = null;
    let last: GPUComputePipeline | null = null;
    let stagingAt = 0;
    for (const c of cmds) {
      if (c.kind === "dispatch") {
        if (!pass) {
          pass = enc.beginComputePass();
          last = null;
        }
        if (c.pipeline !== last) pass.setPipeline(last = c.pipeline);
        pass.setBindGroup(0, c.group);
        pass.dispatchWorkgroups(c.wg[0], c.wg[1], c.wg[2]);
        continue;
      }
      pass?.end();
      pass = null;
      if (c.kind === "copy") {
        enc.copyBufferToBuffer(c.src, c.srcOffset, c.dst, c.dstOffset, c.size);
      } else {
        enc.copyBufferToBuffer(staging, stagingAt, c.dst, c.dstOffset, c.size);
        stagingAt += Math.ceil(c.size / 4) * 4;
      }
    }
    pass?.end();
    const cb = enc.finish();
    const t2 = performance.now();
    device.queue.submit([cb]);
    const t3 = performance.now();
    return { writeMs: t1 - t0, encodeMs: t2 - t1, submitMs: t3 - t2 };
  };

  return {
    dispatches,
    passes,
    hoistedUploads: hoisted.length,
    inPlaceUploads: inPlace.length,
    privateBuffers: owned.length,
    privateBytes: owned.reduce((n, b) => n + b.size, 0),
    buffer: map,
    run,
    read: (buffers) => readBuffers(device, buffers),
    destroy: () => {
      uniforms.destroy();
      staging.destroy();
      for (const b of owned) b.destroy();
    },
  };
}

/**
 * Copy `buffers` (each with `COPY_SRC` usage) to the host as float32 in one submit.
 *
 * @example
 * ```ts
 * import { readBuffers } from "./webgpu_replay.ts";
 *
 * export async function firstValue(device: GPUDevice, buffer: GPUBuffer): Promise<number> {
 *   const [v] = await readBuffers(device, [buffer]);
 *   return v[0];
 * }
 * ```
 */
export async function readBuffers(
  device: GPUDevice,
  buffers: GPUBuffer[],
): Promise<Float32Array[]> {
  const enc = device.createCommandEncoder();
  const reads = buffers.map((b) => {
    const r = device.createBuffer({
      size: b.size,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    enc.copyBufferToBuffer(b, 0, r, 0, b.size);
    return r;
  });
  device.queue.submit([enc.finish()]);
  const out: Float32Array[] = [];
  for (const r of reads) {
    await r.mapAsync(GPUMapMode.READ);
    out.push(new Float32Array(r.getMappedRange().slice(0)));
    r.unmap();
    r.destroy();
  }
  return out;
}

/**
 * Copy `buffers` into fresh buffers and return a function that copies them back (to rerun
 * captured work from the same starting contents).
 *
 * @example
 * ```ts
 * import { snapshotBuffers } from "./webgpu_replay.ts";
 *
 * export function rewindable(device: GPUDevice, buffers: GPUBuffer[]) {
 *   const snap = snapshotBuffers(device, buffers);
 *   return () => snap.restore();
 * }
 * ```
 */
export function snapshotBuffers(
  device: GPUDevice,
  buffers: Iterable<GPUBuffer>,
): { restore(): void; destroy(): void; buffers: number; bytes: number } {
  const pairs = [...new Set(buffers)].map((b) => ({
    orig: b,
    copy: device.createBuffer({
      size: b.size,
      usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    }),
  }));
  const copy = (back: boolean) => {
    const enc = device.createCommandEncoder();
    for (const p of pairs) {
      if (back) enc.copyBufferToBuffer(p.copy, 0, p.orig, 0, p.orig.size);
      else enc.copyBufferToBuffer(p.orig, 0, p.copy, 0, p.orig.size);
    }
    device.queue.submit([enc.finish()]);
  };
  copy(false);
  return {
    restore: () => copy(true),
    destroy: () => pairs.forEach((p) => p.copy.destroy()),
    buffers: pairs.length,
    bytes: pairs.reduce((s, p) => s + p.orig.size, 0),
  };
}

/**
 * The buffers captured work reads before it writes them: its inputs (parameters, optimizer
 * moments, data, cached constants). tfjs-webgpu binds each program's output at binding 0 and its
 * inputs after it; uploads and copies write their destination.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { traceInputs } from "./webgpu_replay.ts";
 *
 * assert.equal(traceInputs({ events: [] }).size, 0);
 * ```
 */
export function traceInputs(trace: Pick<WebgpuTrace, "events">): Set<GPUBuffer> {
  const written = new Set<GPUBuffer>(), inputs = new Set<GPUBuffer>();
  const read = (b: GPUBuffer) => {
    if (!written.has(b)) inputs.add(b);
  };
  for (const e of trace.events) {
    if (e.kind === "dispatch") {
      for (const b of e.bindings) {
        if (b.binding !== 0 && b.buffer.usage & GPUBufferUsage.STORAGE) read(b.buffer);
      }
      written.add(e.bindings.find((b) => b.binding === 0)!.buffer);
    } else if (e.kind === "upload") written.add(e.dst);
    else if (e.kind === "copy") {
      read(e.src);
      written.add(e.dst);
    }
  }
  return inputs;
}
