/**
 * The host-time floor of replaying a recorded WebGPU training step: with raw `navigator.gpu`
 * (no tfjs), pre-create N compute dispatches (pipelines, bind groups over a pool of buffers,
 * uniform buffers) once, then time only what a replay must do per step: encode every dispatch
 * into one command encoder (`setPipeline` / `setBindGroup` / `dispatchWorkgroups`), finish, and
 * submit. Encoding is timed apart from the submit and apart from waiting for the GPU
 * (`onSubmittedWorkDone`), since on a software adapter (Mesa lavapipe) the kernels run on the
 * same CPU.
 *
 * Variants, each at every `--dispatches` count:
 * - `one-pass`: every dispatch in one compute pass, `setPipeline` only when the pipeline changes
 *   (dispatches sorted by pipeline: the best case);
 * - `one-pass-switch`: one pass, the pipeline changes at every dispatch (the worst case; a real
 *   step sits between);
 * - `pass-per-dispatch`: a compute pass per dispatch (what tfjs-webgpu does when timestamp
 *   queries or a readback split a batch; a naive replay);
 * - `+ uniform writes`: the same with one 16-byte `queue.writeBuffer` per dispatch (what
 *   tfjs-webgpu does for every program's uniforms) before encoding;
 * - `+ one uniform write`: all dispatches' uniforms in one buffer written by one `writeBuffer`
 *   (bind groups point at 256-byte-aligned slices): what a planned replay would do.
 *
 * Usage:
 *   deno run -A bench/webgpu_replay_floor.ts [--dispatches 3200,1000] [--pipelines 60]
 *     [--buffers 256] [--reps 7]
 * Output: a line per variant and count (median encode / submit / GPU-wait ms, host us per
 * dispatch), then one line per count:
 *   RESULT webgpu_replay_floor_n<N> host_ms=<encode+submit ms, one pass, grouped, one uniform
 *     write> us_per_dispatch=<same / N>
 * @module
 */
import { helpText, parseFlags, runMain } from "../lib/cli/args.ts";

const SPEC = {
  dispatches: {
    type: "ints",
    default: [3200, 1000] as number[],
    min: 1,
    help: "dispatches per replayed step",
  },
  pipelines: { type: "int", default: 60, min: 1, help: "distinct compute pipelines" },
  buffers: { type: "int", default: 256, min: 3, help: "storage buffers in the pool" },
  reps: { type: "int", default: 7, min: 1, help: "timed repetitions per variant (median)" },
} as const;

/** 64 floats per storage buffer: the kernels do next to nothing, so encoding dominates. */
const ELEMS = 64;
/** Uniform slices sit at this alignment (minUniformBufferOffsetAlignment is at most 256). */
const UNIFORM_STRIDE = 256;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Trivial kernel number `k`: out = a * u.scale + b + k (distinct code, so distinct pipelines). */
function shader(k: number): string {
  return `
struct U { scale: f32, pad0: f32, pad1: f32, pad2: f32 };
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> u: U;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x;
  if (i < ${ELEMS}u) { out[i] = a[i] * u.scale + b[i] + ${k}.0; }
}`;
}

interface Plan {
  pipelines: GPUComputePipeline[];
  /** Per dispatch: its pipeline index and bind group. */
  pipeOf: Int32Array;
  groups: GPUBindGroup[];
  /** Per-dispatch uniform buffers (tfjs style) and their bind groups. */
  ownUniforms: GPUBuffer[];
  ownGroups: GPUBindGroup[];
  /** One buffer holding every dispatch's uniforms (planned style). */
  shared: GPUBuffer;
}

/** Pre-create everything a replay of `n` dispatches needs (not timed). */
function plan(device: GPUDevice, n: number, nPipes: number, nBufs: number, seed: number): Plan {
  const layout = device.createBindGroupLayout({
    entries: [
      { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: "read-only-storage" } },
      { binding: 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: "read-only-storage" } },
      { binding: 2, visibility: GPUShaderStage.COMPUTE, buffer: { type: "storage" } },
      { binding: 3, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } },
    ],
  });
  const pl = device.createPipelineLayout({ bindGroupLayouts: [layout] });
  const pipelines = Array.from({ length: nPipes }, (_, k) =>
    device.createComputePipeline({
      layout: pl,
      compute: { module: device.createShaderModule({ code: shader(k) }), entryPoint: "main" },
    }));
  const pool = Array.from({ length: nBufs }, () =>
    device.createBuffer({
      size: ELEMS * 4,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
    }));
  const shared = device.createBuffer({
    size: n * UNIFORM_STRIDE,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  // A deterministic mix of pipelines and buffers (an LCG): neighbours rarely share either.
  let s = seed >>> 0;
  const next = (m: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % m;
  };
  const pipeOf = new Int32Array(n);
  const groups: GPUBindGroup[] = [];
  const ownUniforms: GPUBuffer[] = [];
  const ownGroups: GPUBindGroup[] = [];
  for (let i = 0; i < n; i++) {
    pipeOf[i] = next(nPipes);
    const a = pool[next(nBufs)], b = pool[next(nBufs)];
    let o = pool[next(nBufs)];
    while (o === a || o === b) o = pool[next(nBufs)];
    const io = [
      { binding: 0, resource: { buffer: a } },
      { binding: 1, resource: { buffer: b } },
      { binding: 2, resource: { buffer: o } },
    ];
    groups.push(device.createBindGroup({
      layout,
      entries: [...io, {
        binding: 3,
        resource: { buffer: shared, offset: i * UNIFORM_STRIDE, size: 16 },
      }],
    }));
    const u = device.createBuffer({
      size: 16,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    ownUniforms.push(u);
    ownGroups.push(device.createBindGroup({
      layout,
      entries: [...io, { binding: 3, resource: { buffer: u } }],
    }));
  }
  return { pipelines, pipeOf, groups, ownUniforms, ownGroups, shared };
}

type Variant = {
  name: string;
  /** Pipeline switches at every dispatch (in recorded order) vs sorted by pipeline. */
  switchEvery: boolean;
  passPerDispatch: boolean;
  uniforms: "none" | "per-dispatch" | "one-write";
};

const VARIANTS: Variant[] = [
  {
    name: "one pass, grouped pipelines",
    switchEvery: false,
    passPerDispatch: false,
    uniforms: "none",
  },
  {
    name: "one pass, pipeline switch every dispatch",
    switchEvery: true,
    passPerDispatch: false,
    uniforms: "none",
  },
  {
    name: "pass per dispatch, switch every dispatch",
    switchEvery: true,
    passPerDispatch: true,
    uniforms: "none",
  },
  {
    name: "one pass, grouped + uniform write per dispatch",
    switchEvery: false,
    passPerDispatch: false,
    uniforms: "per-dispatch",
  },
  {
    name: "one pass, switch every + uniform write per dispatch",
    switchEvery: true,
    passPerDispatch: false,
    uniforms: "per-dispatch",
  },
  {
    name: "pass per dispatch, switch every + uniform write per dispatch",
    switchEvery: true,
    passPerDispatch: true,
    uniforms: "per-dispatch",
  },
  {
    name: "one pass, grouped + one uniform write",
    switchEvery: false,
    passPerDispatch: false,
    uniforms: "one-write",
  },
  {
    name: "one pass, switch every + one uniform write",
    switchEvery: true,
    passPerDispatch: false,
    uniforms: "one-write",
  },
];

interface Timing {
  writeMs: number;
  encodeMs: number;
  submitMs: number;
  waitMs: number;
}

/** One replay: uniform uploads, encode, submit, wait for the GPU; each phase timed. */
async function replay(device: GPUDevice, p: Plan, v: Variant, order: Int32Array): Promise<Timing> {
  const n = order.length;
  const t0 = performance.now();
  const uni = new Float32Array(4);
  if (v.uniforms === "per-dispatch") {
    for (let j = 0; j < n; j++) {
      uni[0] = 1 + (j & 7) * 1e-3;
      device.queue.writeBuffer(p.ownUniforms[order[j]], 0, uni);
    }
  } else if (v.uniforms === "one-write") {
    const all = new Float32Array(n * UNIFORM_STRIDE / 4);
    for (let j = 0; j < n; j++) all[j * UNIFORM_STRIDE / 4] = 1 + (j & 7) * 1e-3;
    device.queue.writeBuffer(p.shared, 0, all);
  }
  const t1 = performance.now();
  const groups = v.uniforms === "per-dispatch" ? p.ownGroups : p.groups;
  const enc = device.createCommandEncoder();
  let pass = enc.beginComputePass();
  let last = -1;
  for (let j = 0; j < n; j++) {
    const i = order[j];
    if (v.passPerDispatch && j > 0) {
      pass.end();
      pass = enc.beginComputePass();
      last = -1;
    }
    const pi = p.pipeOf[i];
    if (pi !== last) {
      pass.setPipeline(p.pipelines[pi]);
      last = pi;
    }
    pass.setBindGroup(0, groups[i]);
    pass.dispatchWorkgroups(1);
  }
  pass.end();
  const cb = enc.finish();
  const t2 = performance.now();
  device.queue.submit([cb]);
  const t3 = performance.now();
  await device.queue.onSubmittedWorkDone();
  const t4 = performance.now();
  return { writeMs: t1 - t0, encodeMs: t2 - t1, submitMs: t3 - t2, waitMs: t4 - t3 };
}

async function main(): Promise<void> {
  const f = parseFlags(Deno.args, SPEC, "bench/webgpu_replay_floor.ts");
  if (f.help) {
    console.log(helpText("bench/webgpu_replay_floor.ts", "host floor of a WebGPU replay", SPEC));
    return;
  }
  const adapter = await navigator.gpu?.requestAdapter();
  if (!adapter) {
    console.log("no WebGPU adapter: nothing to measure (see lib/backend WEBGPU_HELP)");
    for (const n of f.dispatches) {
      console.log(`RESULT webgpu_replay_floor_n${n} host_ms=nan us_per_dispatch=nan`);
    }
    return;
  }
  const info = adapter.info;
  const device = await adapter.requestDevice();
  console.log(
    `adapter: ${info.vendor} ${info.device || info.description} ${info.architecture}` +
      `${info.isFallbackAdapter ? " (fallback)" : ""}; cores ${navigator.hardwareConcurrency}; ` +
      `${f.pipelines} pipelines, ${f.buffers} buffers, median of ${f.reps}`,
  );
  const results: string[] = [];
  for (const n of f.dispatches) {
    const p = plan(device, n, f.pipelines, f.buffers, 12345 + n);
    // Grouped order: dispatches sorted by pipeline (stable), as if independent runs were merged.
    const recorded = Int32Array.from({ length: n }, (_, i) => i);
    const grouped = Int32Array.from(
      [...recorded].sort((a, b) => p.pipeOf[a] - p.pipeOf[b] || a - b),
    );
    for (const v of VARIANTS) {
      const order = v.switchEvery ? recorded : grouped;
      for (let w = 0; w < 2; w++) await replay(device, p, v, order); // warm-up
      const ts: Timing[] = [];
      for (let r = 0; r < f.reps; r++) ts.push(await replay(device, p, v, order));
      const m = (k: keyof Timing) => median(ts.map((t) => t[k]));
      const host = median(ts.map((t) => t.writeMs + t.encodeMs + t.submitMs));
      console.log(
        `n=${n} ${v.name}: writes ${m("writeMs").toFixed(2)} ms, encode ${
          m("encodeMs").toFixed(2)
        } ms, submit ${m("submitMs").toFixed(2)} ms, GPU wait ${m("waitMs").toFixed(2)} ms; ` +
          `host ${host.toFixed(2)} ms = ${(host * 1000 / n).toFixed(2)} us/dispatch ` +
          `(encode alone ${(m("encodeMs") * 1000 / n).toFixed(2)} us/dispatch)`,
      );
      if (v.uniforms === "one-write" && !v.switchEvery) {
        results.push(
          `RESULT webgpu_replay_floor_n${n} host_ms=${host.toFixed(3)} us_per_dispatch=${
            (host * 1000 / n).toFixed(3)
          }`,
        );
      }
    }
  }
  for (const r of results) console.log(r);
  device.destroy();
}

if (import.meta.main) await runMain(main);
