/**
 * Count the WebGPU API calls a piece of work makes: compute dispatches, queue submits, buffer,
 * bind-group and pipeline creations, uniform uploads and readbacks, with the host time spent
 * inside those calls. It wraps methods of the global `GPUDevice`, `GPUQueue`,
 * `GPUComputePassEncoder`, `GPUCommandEncoder` and `GPUBuffer` prototypes for the duration of
 * one call and restores them after, so it sees every WebGPU user in the process (tfjs-webgpu,
 * the kit's WGSL kernels) without touching their code. Calls still in flight when the counted
 * function settles are not counted; do not count two things at once.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { countWebgpuCalls } from "./webgpu_counters.ts";
 * import { prepareWebgpuBackend, webgpuAdapterInfo } from "./webgpu_backend.ts";
 *
 * if (await webgpuAdapterInfo()) {
 *   await prepareWebgpuBackend();
 *   await tf.setBackend("webgpu");
 *   // Small inputs still on the host would be added on the CPU (tfjs-webgpu's CPU forwarding).
 *   tf.env().set("WEBGPU_CPU_FORWARD", false);
 *   const a = tf.tensor1d([1, 2, 3]), b = tf.tensor1d([10, 20, 30]);
 *   const { result, counts } = await countWebgpuCalls(() => tf.add(a, b).data());
 *   assert.deepEqual(Array.from(result), [11, 22, 33]);
 *   assert.equal(counts.dispatches, 1); // one element-wise program
 *   assert.equal(counts.mapReads, 1); // one readback
 * }
 * ```
 * @module
 */

/** What {@link countWebgpuCalls} counted; `*Ms` are host milliseconds inside those calls. */
export interface WebgpuCallCounts {
  /** `GPUComputePassEncoder.dispatchWorkgroups(Indirect)` calls: programs run. */
  dispatches: number;
  /** `GPUQueue.submit` calls, and the command buffers they carried. */
  submits: number;
  commandBuffers: number;
  /** `GPUDevice.createBuffer` calls (tfjs-webgpu recycles buffers: zero once warm). */
  buffers: number;
  /** `GPUDevice.createBindGroup` calls (tfjs-webgpu makes one per dispatch). */
  bindGroups: number;
  /** `GPUDevice.createComputePipeline(Async)` calls (tfjs-webgpu caches them by shader key). */
  pipelines: number;
  /** `GPUDevice.createShaderModule` calls. */
  shaderModules: number;
  /** `GPUDevice.createCommandEncoder` and `GPUCommandEncoder.beginComputePass` calls. */
  commandEncoders: number;
  computePasses: number;
  /** `GPUQueue.writeBuffer` calls (uploads; tfjs-webgpu writes each dispatch's uniforms). */
  bufferWrites: number;
  /** `GPUCommandEncoder.copyBufferToBuffer` calls. */
  bufferCopies: number;
  /** `GPUBuffer.mapAsync` calls: readbacks to the host. */
  mapReads: number;
  /** Host ms inside submits (a software driver may execute work here). */
  submitMs: number;
  /** Host ms inside `mapAsync` promises, from the call until they settled. */
  mapWaitMs: number;
  /** Host ms inside every other counted call. */
  callMs: number;
}

type CountKey = Exclude<keyof WebgpuCallCounts, "submitMs" | "mapWaitMs" | "callMs">;

/**
 * All counts zero (a starting point for summing the counts of several steps).
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { zeroWebgpuCounts } from "./webgpu_counters.ts";
 *
 * assert.equal(zeroWebgpuCounts().dispatches, 0);
 * ```
 */
export function zeroWebgpuCounts(): WebgpuCallCounts {
  return {
    dispatches: 0,
    submits: 0,
    commandBuffers: 0,
    buffers: 0,
    bindGroups: 0,
    pipelines: 0,
    shaderModules: 0,
    commandEncoders: 0,
    computePasses: 0,
    bufferWrites: 0,
    bufferCopies: 0,
    mapReads: 0,
    submitMs: 0,
    mapWaitMs: 0,
    callMs: 0,
  };
}

/** Which method of which global class bumps which count. */
const WRAPPED: [className: string, method: string, key: CountKey][] = [
  ["GPUComputePassEncoder", "dispatchWorkgroups", "dispatches"],
  ["GPUComputePassEncoder", "dispatchWorkgroupsIndirect", "dispatches"],
  ["GPUQueue", "submit", "submits"],
  ["GPUQueue", "writeBuffer", "bufferWrites"],
  ["GPUDevice", "createBuffer", "buffers"],
  ["GPUDevice", "createBindGroup", "bindGroups"],
  ["GPUDevice", "createComputePipeline", "pipelines"],
  ["GPUDevice", "createComputePipelineAsync", "pipelines"],
  ["GPUDevice", "createShaderModule", "shaderModules"],
  ["GPUDevice", "createCommandEncoder", "commandEncoders"],
  ["GPUCommandEncoder", "beginComputePass", "computePasses"],
  ["GPUCommandEncoder", "copyBufferToBuffer", "bufferCopies"],
  ["GPUBuffer", "mapAsync", "mapReads"],
];

let active = false;

// deno-lint-ignore no-explicit-any
type AnyFn = (this: unknown, ...args: any[]) => any;

/**
 * Run `fn` (sync or async) with the WebGPU API counted, and return its result and the counts.
 * Without WebGPU in this runtime (`GPUDevice` undefined) everything counts zero. Throws when a
 * count is already running (the prototypes are global: nested counts would double up).
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { countWebgpuCalls } from "./webgpu_counters.ts";
 *
 * // No GPU work inside: every count is zero and the result comes through.
 * const { result, counts } = await countWebgpuCalls(() => 6 * 7);
 * assert.equal(result, 42);
 * assert.equal(counts.dispatches + counts.submits + counts.bindGroups, 0);
 * ```
 */
export async function countWebgpuCalls<T>(
  fn: () => T | Promise<T>,
): Promise<{ result: T; counts: WebgpuCallCounts }> {
  if (active) throw new Error("countWebgpuCalls: a count is already running (no nesting)");
  active = true;
  const counts = zeroWebgpuCounts();
  const restore: (() => void)[] = [];
  const g = globalThis as unknown as Record<string, { prototype: Record<string, AnyFn> }>;
  try {
    for (const [cls, method, key] of WRAPPED) {
      const proto = g[cls]?.prototype;
      const orig = proto?.[method];
      if (typeof orig !== "function") continue;
      const wrapped = wrap(orig, key, counts);
      Object.defineProperty(proto, method, { value: wrapped, configurable: true, writable: true });
      restore.push(() =>
        Object.defineProperty(proto, method, { value: orig, configurable: true, writable: true })
      );
    }
    const result = await fn();
    return { result, counts };
  } finally {
    for (const r of restore.reverse()) r();
    active = false;
  }
}

function wrap(orig: AnyFn, key: CountKey, counts: WebgpuCallCounts): AnyFn {
  if (key === "mapReads") {
    return function (this: unknown, ...args) {
      counts.mapReads++;
      const t0 = performance.now();
      const p = orig.apply(this, args) as Promise<void>;
      const done = () => {
        counts.mapWaitMs += performance.now() - t0;
      };
      p.then(done, done);
      return p;
    };
  }
  return function (this: unknown, ...args) {
    counts[key]++;
    if (key === "submits") counts.commandBuffers += (args[0] as unknown[] | undefined)?.length ?? 0;
    const t0 = performance.now();
    try {
      return orig.apply(this, args);
    } finally {
      const ms = performance.now() - t0;
      if (key === "submits") counts.submitMs += ms;
      else counts.callMs += ms;
    }
  };
}
