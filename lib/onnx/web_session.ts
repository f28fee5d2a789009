/**
 * onnxruntime-web's WebGPU execution provider on Deno's `navigator.gpu`, behind the same
 * inference-session interface as onnxruntime-node, so `openSession(model, { executionProviders:
 * ["webgpu"] })` gives an ordinary `OnnxSession` (same checks, same feeds, onnxruntime-node
 * tensors back). The package is imported on first use only: CPU and CUDA users never load its
 * WebAssembly.
 *
 * onnxruntime-web runs the graph in WebAssembly and hands the operators its WebGPU provider has to
 * the GPU; shape operators and the few it lacks stay on the WebAssembly CPU, single-threaded here
 * (its threads need cross-origin-isolated workers, which Deno has no notion of).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { webGpuUnavailableReason } from "./web_session.ts";
 *
 * const why = await webGpuUnavailableReason();
 * assert.ok(why === null || typeof why === "string"); // null: an adapter exists
 * ```
 * @module
 */
import * as ort from "npm:onnxruntime-node@1.30.0";
import { onnxSchema } from "./schema.ts";

const WEB = "npm:onnxruntime-web@1.30.0/webgpu";

type Web = typeof import("npm:onnxruntime-web@1.30.0/webgpu");

let web: Promise<Web> | null = null;

/** The onnxruntime-web module, configured once. */
function loadWeb(): Promise<Web> {
  web ??= (async () => {
    const m = await import("npm:onnxruntime-web@1.30.0/webgpu");
    // Its .wasm lies beside the bundle; say so rather than rely on how the bundle finds it.
    m.env.wasm.wasmPaths = new URL("./", import.meta.resolve(WEB)).href;
    m.env.wasm.numThreads = 1;
    // "Some nodes were not assigned to the preferred execution providers" is expected (shape ops).
    m.env.logLevel = "error";
    return m;
  })();
  return web;
}

let adapterCheck: Promise<string | null> | null = null;

/**
 * Why WebGPU cannot be used in this process (one line), or null when `navigator.gpu` gives an
 * adapter. Checked once.
 *
 * @example
 * ```ts
 * import { webGpuUnavailableReason } from "./web_session.ts";
 * const why = await webGpuUnavailableReason();
 * if (why) console.log(`no WebGPU: ${why}`);
 * ```
 */
export function webGpuUnavailableReason(): Promise<string | null> {
  adapterCheck ??= (async () => {
    const gpu = (navigator as { gpu?: GPU }).gpu;
    if (!gpu) return "navigator.gpu is missing (this Deno has no WebGPU)";
    const adapter = await gpu.requestAdapter().catch(() => null);
    if (!adapter) {
      return "navigator.gpu gives no adapter (no GPU driver; on Linux without a GPU install " +
        "mesa-vulkan-drivers for the lavapipe software adapter, and set XDG_RUNTIME_DIR)";
    }
    return null;
  })();
  return adapterCheck;
}

/** Options of {@link openWebGpuInferenceSession}. */
export interface WebGpuSessionOptions {
  /** Graph optimisation level (default "all"). */
  graphOptimization?: "disabled" | "basic" | "extended" | "all";
  /**
   * Where outputs are left: "cpu" (default, read back after each run) or "gpu-buffer" (they stay
   * on the GPU; read with `getData()`, or feed them to another WebGPU session without a copy).
   */
  outputLocation?: "cpu" | "gpu-buffer";
}

/**
 * Files a model keeps its weights in besides itself (ONNX external data), read for
 * onnxruntime-web, which cannot open files: it is given their bytes under their names. Only a
 * small model file is parsed for them, since a graph with external weights is small and a large
 * file holds its weights itself.
 */
async function externalData(
  path: string,
  bytes: Uint8Array,
): Promise<{ path: string; data: Uint8Array }[]> {
  if (bytes.length > 64 * 2 ** 20) return [];
  const { ModelProto } = onnxSchema();
  // deno-lint-ignore no-explicit-any
  const m = ModelProto.toObject(ModelProto.decode(bytes), { defaults: false }) as any;
  const files = new Set<string>();
  for (const t of m.graph?.initializer ?? []) {
    for (const kv of t.external_data ?? []) if (kv.key === "location") files.add(kv.value);
  }
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/") + 1) : "";
  return await Promise.all(
    [...files].map(async (f) => ({ path: f, data: await Deno.readFile(dir + f) })),
  );
}

/**
 * An onnxruntime-web session with the WebGPU provider, typed and behaving as an onnxruntime-node
 * `InferenceSession`: onnxruntime-node tensors are fed as they are, and outputs read back to the
 * CPU come back as onnxruntime-node tensors over the same data. Throws a one-line error when no
 * WebGPU adapter exists.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openWebGpuInferenceSession, webGpuUnavailableReason } from "./web_session.ts";
 *
 * if ((await webGpuUnavailableReason()) === null) {
 *   const path = "tests/fixtures/tiny_sd/fp32_scalar_t/vae_decoder/model.onnx";
 *   const s = await openWebGpuInferenceSession(path);
 *   assert.deepEqual(s.inputNames, ["latent_sample"]);
 *   await s.release();
 * }
 * ```
 */
export async function openWebGpuInferenceSession(
  model: string | Uint8Array,
  opts: WebGpuSessionOptions = {},
): Promise<ort.InferenceSession> {
  const why = await webGpuUnavailableReason();
  if (why) throw new Error(`WebGPU is not available: ${why}`);
  const m = await loadWeb();
  const bytes = typeof model === "string" ? await Deno.readFile(model) : model;
  const ext = typeof model === "string" ? await externalData(model, bytes) : [];
  const s = await m.InferenceSession.create(bytes, {
    executionProviders: ["webgpu"],
    graphOptimizationLevel: opts.graphOptimization ?? "all",
    logSeverityLevel: 3, // errors only: see loadWeb
    ...(ext.length ? { externalData: ext } : {}),
    ...(opts.outputLocation ? { preferredOutputLocation: opts.outputLocation } : {}),
  });
  const run = s.run.bind(s);
  const toNode = (out: Record<string, ort.Tensor>) => {
    const r: Record<string, ort.Tensor> = {};
    for (const [k, t] of Object.entries(out)) {
      // Same data, no copy; GPU outputs stay onnxruntime-web tensors (they have no CPU data).
      r[k] = t.location === "cpu"
        ? new ort.Tensor(t.type as "float32", t.data as Float32Array, t.dims)
        : t;
    }
    return r;
  };
  // deno-lint-ignore no-explicit-any
  (s as any).run = async (...args: any[]) => toNode(await (run as any)(...args));
  return s as unknown as ort.InferenceSession;
}
