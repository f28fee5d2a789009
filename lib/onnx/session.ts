/**
 * ONNX Runtime sessions (onnxruntime-node) with the kit's defaults: one intra-op thread per core
 * (onnxruntime-node defaults to 1 here), full graph optimisation, CUDA when the installed build
 * has it, and feeds checked against the model's declared inputs so a wrong shape fails with the
 * input's name and expected shape instead of a runtime error deep inside a kernel.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openSession } from "./session.ts";
 *
 * const z = new Float32Array(4 * 8 * 8); // a latent
 * const path = "tests/fixtures/tiny_sd/fp32_scalar_t/vae_decoder/model.onnx";
 * const s = await openSession(path, { threads: 1, executionProviders: ["cpu"] });
 * const { sample } = await s.run({ latent_sample: { data: z, shape: [1, 4, 8, 8] } });
 * assert.deepEqual(sample.dims, [1, 3, 64, 64]);
 * await s.release();
 * ```
 * @module
 */
import * as ort from "npm:onnxruntime-node@1.30.0";
import type { OnnxTypedArray } from "./writer.ts";
import {
  CUDA_INSTALL_HINT,
  defaultOnnxProvider,
  executionProvidersFor,
  ONNX_PROVIDERS,
} from "./providers.ts";
import { openWebGpuInferenceSession } from "./web_session.ts";

/** Graph optimisation levels (onnxruntime's names). */
export type OnnxGraphOptimization = "disabled" | "basic" | "extended" | "all";

/** Options of {@link openSession}. */
export interface OnnxSessionOptions {
  /** Intra-op threads (default `navigator.hardwareConcurrency`). */
  threads?: number;
  /** Graph optimisation level (default "all"). */
  graphOptimization?: OnnxGraphOptimization;
  /**
   * Execution providers in order of preference, or "auto": CUDA then CPU when this onnxruntime
   * build has CUDA, otherwise CPU with a one-line notice. ["webgpu"] runs the model with
   * onnxruntime-web's WebGPU provider on `navigator.gpu` (lib/onnx/web_session.ts). Default: the
   * process's provider (`setDefaultOnnxProvider`, "auto" unless a command's `--provider` set it).
   */
  executionProviders?: "auto" | readonly string[];
  /** Name used in errors (default: the path, or "model.onnx" for bytes). */
  name?: string;
  /** Where the CUDA fallback notice goes (default `console.warn`). */
  log?: (line: string) => void;
}

/** A model input or output as the session declares it. */
export interface OnnxIoInfo {
  /** Name. */
  name: string;
  /** Element type (`"float32"`, `"int64"`, ...), or "unknown" for non-tensors. */
  dtype: string;
  /** Dimensions: sizes or symbolic names; null when the model does not give the rank. */
  shape: (number | string)[] | null;
}

/** A feed: an onnxruntime tensor, or data plus shape. */
export type OnnxFeed = ort.Tensor | OnnxArrayFeed;

const DTYPE_OF_ARRAY: [new (n: number) => ArrayBufferView, string][] = [
  [Float32Array, "float32"],
  [Float64Array, "float64"],
  [Int32Array, "int32"],
  [BigInt64Array, "int64"],
  [BigUint64Array, "uint64"],
  [Uint32Array, "uint32"],
  [Int16Array, "int16"],
  [Uint16Array, "float16"],
  [Int8Array, "int8"],
  [Uint8Array, "uint8"],
];

/** A feed given as data plus shape. */
export interface OnnxArrayFeed {
  /** Values, row-major. */
  data: OnnxTypedArray;
  /** Dimensions. */
  shape: readonly number[];
}

function isTensor(feed: OnnxFeed): feed is ort.Tensor {
  // onnxruntime-web's tensors (a WebGPU session's GPU outputs) are tensors of another class.
  return feed instanceof ort.Tensor || ("dims" in feed && "type" in feed);
}

function toTensor(feed: OnnxFeed, dtypeHint: string): ort.Tensor {
  if (isTensor(feed)) return feed;
  let dtype = DTYPE_OF_ARRAY.find(([C]) => feed.data instanceof C)?.[1] ?? "float32";
  // A Uint8Array feed for a bool input, or Uint16Array for uint16, is what the caller means.
  if (
    (dtypeHint === "bool" && dtype === "uint8") || (dtypeHint === "uint16" && dtype === "float16")
  ) {
    dtype = dtypeHint;
  }
  const t = new ort.Tensor(dtype as ort.Tensor.Type, feed.data as never, [...feed.shape]);
  if (dtype === "float16" && feed.data instanceof Uint16Array && !(t.data instanceof Uint16Array)) {
    // onnxruntime-common wraps float16 bits in a Float16Array where the runtime has one (Deno),
    // which onnxruntime-node's native binding reads as empty ("not enough space"): keep the bits.
    (t as unknown as { cpuData: Uint16Array }).cpuData = feed.data;
  }
  return t;
}

function fmtShape(shape: readonly (number | string)[] | null): string {
  return shape === null ? "[?]" : `[${shape.join(", ")}]`;
}

let cudaUnavailable: string | null = null;

/**
 * What `executionProviders` may name: onnxruntime-node's CPU, CUDA and TensorRT providers, and
 * WebGPU, which the kit runs through onnxruntime-web on Deno's `navigator.gpu`.
 */
const SESSION_PROVIDERS: readonly string[] = ["cpu", "cuda", "tensorrt", "webgpu"];

/**
 * Why CUDA was not used by `executionProviders: "auto"` sessions in this process (the first line
 * of onnxruntime's error), or null when it has not failed (not tried yet, or working).
 *
 * @example
 * ```ts
 * if (cudaFallbackReason()) console.log("running ONNX models on the CPU");
 * ```
 */
export function cudaFallbackReason(): string | null {
  return cudaUnavailable;
}

/**
 * An open model. Create with {@link openSession}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openSession } from "./session.ts";
 * import { OnnxGraph } from "./writer.ts";
 *
 * const g = new OnnxGraph();
 * g.output(g.node("Relu", [g.input("x", "float32", ["batch", 4])]), "float32", ["batch", 4]);
 * const s = await openSession(g.toBytes(), { name: "mlp.onnx", threads: 1, executionProviders: ["cpu"] });
 * assert.deepEqual(s.inputs, [{ name: "x", dtype: "float32", shape: ["batch", 4] }]);
 * await s.release();
 * ```
 */
export class OnnxSession {
  /** Name used in errors. */
  readonly name: string;
  /** Declared inputs. */
  readonly inputs: readonly OnnxIoInfo[];
  /** Declared outputs. */
  readonly outputs: readonly OnnxIoInfo[];
  /** Execution providers the session was created with. */
  readonly executionProviders: readonly string[];
  /** Intra-op threads. */
  readonly threads: number;
  /** The underlying onnxruntime session. */
  readonly session: ort.InferenceSession;

  constructor(
    session: ort.InferenceSession,
    info: { name: string; executionProviders: readonly string[]; threads: number },
  ) {
    this.session = session;
    this.name = info.name;
    this.executionProviders = info.executionProviders;
    this.threads = info.threads;
    const io = (meta: readonly ort.InferenceSession.ValueMetadata[]) =>
      meta.map((m): OnnxIoInfo =>
        m.isTensor
          ? {
            name: m.name,
            dtype: m.type,
            // onnxruntime reports "no shape" as []; a real scalar input is rare in these models.
            shape: m.shape.length === 0 ? null : [...m.shape],
          }
          : { name: m.name, dtype: "unknown", shape: null }
      );
    this.inputs = io(session.inputMetadata);
    this.outputs = io(session.outputMetadata);
  }

  /**
   * Check feeds against the declared inputs: every input present, no unknown names, dtype, rank,
   * fixed sizes, and one size per symbolic dimension across inputs. Throws naming the input.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import * as ort from "npm:onnxruntime-node@1.30.0";
   * import { openSession } from "./session.ts";
   * import { OnnxGraph } from "./writer.ts";
   *
   * const g = new OnnxGraph();
   * g.output(g.node("Relu", [g.input("x", "float32", ["batch", 4])]), "float32");
   * const s = await openSession(g.toBytes(), { threads: 1, executionProviders: ["cpu"] });
   * s.validate({ x: new ort.Tensor("float32", new Float32Array(8), [2, 4]) }); // ok
   * assert.throws(() => s.validate({ x: new ort.Tensor("float32", new Float32Array(6), [2, 3]) }));
   * await s.release();
   * ```
   */
  validate(feeds: Record<string, ort.Tensor>): void {
    const symbols = new Map<string, { size: number; input: string }>();
    for (const name of Object.keys(feeds)) {
      if (!this.inputs.some((i) => i.name === name)) {
        throw new Error(
          `${this.name}: unknown input "${name}"; the model takes ${
            this.inputs.map((i) => `"${i.name}"`).join(", ")
          }`,
        );
      }
    }
    for (const inp of this.inputs) {
      const t = feeds[inp.name];
      const expected = `${inp.dtype} ${fmtShape(inp.shape)}`;
      if (!t) throw new Error(`${this.name}: missing input "${inp.name}" (${expected})`);
      const got = `${t.type} [${t.dims.join(", ")}]`;
      const fail = (why: string) =>
        new Error(`${this.name}: input "${inp.name}" expects ${expected}, got ${got}${why}`);
      if (inp.dtype !== "unknown" && t.type !== inp.dtype) throw fail("");
      if (inp.shape === null) continue;
      if (t.dims.length !== inp.shape.length) throw fail("");
      inp.shape.forEach((d, k) => {
        const size = t.dims[k];
        if (typeof d === "number") {
          if (d >= 0 && size !== d) throw fail("");
          return;
        }
        if (d === "") return; // an unnamed free dimension
        const seen = symbols.get(d);
        if (seen && seen.size !== size) {
          throw fail(` (${d} = ${seen.size} from input "${seen.input}")`);
        }
        if (!seen) symbols.set(d, { size, input: inp.name });
      });
    }
  }

  /**
   * Validate and run; returns the requested outputs (default all) by name.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openSession } from "./session.ts";
   * import { OnnxGraph } from "./writer.ts";
   *
   * const g = new OnnxGraph();
   * g.output(g.node("Neg", [g.input("x", "float32", ["batch", 4])]), "float32");
   * const s = await openSession(g.toBytes(), { threads: 1, executionProviders: ["cpu"] });
   * const out = await s.run({ x: { data: new Float32Array([1, 2, 3, 4]), shape: [1, 4] } });
   * assert.deepEqual([...out.Neg_0_out0.data as Float32Array], [-1, -2, -3, -4]);
   * await s.release();
   * ```
   */
  async run(
    feeds: Record<string, OnnxFeed>,
    outputNames?: readonly string[],
  ): Promise<Record<string, ort.Tensor>> {
    const tensors: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(feeds)) {
      const inp = this.inputs.find((i) => i.name === k);
      if (!isTensor(v)) {
        const n = v.shape.reduce((a, b) => a * b, 1);
        if (v.data.length !== n) {
          throw new Error(
            `${this.name}: input "${k}" has shape ${
              fmtShape(v.shape)
            } (${n} elements) but ${v.data.length} values`,
          );
        }
      }
      tensors[k] = toTensor(v, inp?.dtype ?? "");
    }
    this.validate(tensors);
    if (outputNames) {
      for (const o of outputNames) {
        if (!this.outputs.some((x) => x.name === o)) {
          throw new Error(
            `${this.name}: unknown output "${o}"; the model gives ${
              this.outputs.map((x) => `"${x.name}"`).join(", ")
            }`,
          );
        }
      }
      return await this.session.run(tensors, [...outputNames]) as Record<string, ort.Tensor>;
    }
    return await this.session.run(tensors) as Record<string, ort.Tensor>;
  }

  /**
   * Free the native session.
   *
   * @example
   * ```ts
   * import { openSession } from "./session.ts";
   * import { OnnxGraph } from "./writer.ts";
   *
   * const g = new OnnxGraph();
   * g.output(g.node("Relu", [g.input("x", "float32", [4])]), "float32");
   * const s = await openSession(g.toBytes(), { threads: 1, executionProviders: ["cpu"] });
   * await s.release();
   * ```
   */
  async release(): Promise<void> {
    await this.session.release();
  }
}

/**
 * Whether onnxruntime-node's CUDA provider library is installed (Linux; elsewhere, and when the
 * package folder cannot be read, true so that opening with CUDA is simply tried). Checking the
 * file first avoids onnxruntime printing a load error on every CPU-only machine.
 */
function cudaLibraryPresent(): boolean {
  if (Deno.build.os !== "linux") return true;
  try {
    const arch = Deno.build.arch === "aarch64" ? "arm64" : "x64";
    const dir = new URL(
      `../bin/napi-v6/linux/${arch}/`,
      import.meta.resolve("npm:onnxruntime-node@1.30.0"),
    );
    Deno.statSync(new URL("libonnxruntime_providers_cuda.so", dir));
    return true;
  } catch (e) {
    return !(e instanceof Deno.errors.NotFound);
  }
}

/**
 * Open an ONNX model from a path or bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openSession } from "./session.ts";
 * import { OnnxGraph } from "./writer.ts";
 *
 * const unet = "tests/fixtures/tiny_sd/fp32_scalar_t/unet/model.onnx";
 * const s = await openSession(unet, { threads: 1, executionProviders: ["cpu"] });

 * assert.ok(s.inputs.some((i) => i.name === "encoder_hidden_states"));
 * const graph = new OnnxGraph();
 * graph.output(graph.node("Relu", [graph.input("x", "float32", [4])]), "float32");
 * const s2 = await openSession(graph.toBytes(), { name: "test.onnx", executionProviders: ["cpu"] });
 * assert.equal(s2.name, "test.onnx");
 * await s.release();
 * await s2.release();

 * ```
 */
export async function openSession(
  model: string | Uint8Array,
  opts: OnnxSessionOptions = {},
): Promise<OnnxSession> {
  const name = opts.name ?? (typeof model === "string" ? model : "model.onnx");
  const threads = opts.threads ?? navigator.hardwareConcurrency ?? 1;
  if (!Number.isInteger(threads) || threads < 1) {
    throw new Error(`${name}: threads must be a positive integer, got ${threads}`);
  }
  const base: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: threads,
    graphOptimizationLevel: opts.graphOptimization ?? "all",
  };
  const create = async (eps: readonly string[], quiet = false) => {
    // The CUDA probe's failure is reported once by us; keep onnxruntime's own log line out.
    const o = {
      ...base,
      executionProviders: [...eps],
      ...(quiet ? { logSeverityLevel: 4 as const } : {}),
    };
    return typeof model === "string"
      ? await ort.InferenceSession.create(model, o as ort.InferenceSession.SessionOptions)
      : await ort.InferenceSession.create(model, o as ort.InferenceSession.SessionOptions);
  };
  const wrap = (s: ort.InferenceSession, eps: readonly string[]) =>
    new OnnxSession(s, { name, executionProviders: eps, threads });

  const requested = opts.executionProviders ??
    executionProvidersFor(defaultOnnxProvider());
  if (requested !== "auto") {
    const unknown = requested.find((p) => !SESSION_PROVIDERS.includes(p));
    if (unknown !== undefined) {
      throw new Error(
        `${name}: unknown execution provider "${unknown}"; choose from ${
          SESSION_PROVIDERS.join(", ")
        } (--provider: ${ONNX_PROVIDERS.join(", ")})`,
      );
    }
    if (requested.includes("webgpu")) {
      if (requested.some((p) => p !== "webgpu" && p !== "cpu")) {
        throw new Error(`${name}: webgpu (onnxruntime-web) goes with cpu only, got [${requested}]`);
      }
      try {
        const s = await openWebGpuInferenceSession(model, {
          graphOptimization: opts.graphOptimization,
        });
        return wrap(s, ["webgpu"]);
      } catch (e) {
        throw new Error(`${name}: cannot open with [webgpu]: ${(e as Error).message}`);
      }
    }
    if (requested.includes("cuda") && !cudaLibraryPresent()) {
      throw new Error(
        `${name}: CUDA was requested but this onnxruntime-node has no CUDA provider ` +
          `(libonnxruntime_providers_cuda.so); ${CUDA_INSTALL_HINT}`,
      );
    }
    try {
      return wrap(await create(requested), requested);
    } catch (e) {
      throw new Error(`${name}: cannot open with [${requested}]: ${(e as Error).message}`);
    }
  }
  if (cudaUnavailable === null && !cudaLibraryPresent()) {
    cudaUnavailable = "libonnxruntime_providers_cuda.so is not installed next to the binding " +
      "(install onnxruntime-node with ONNXRUNTIME_NODE_INSTALL_CUDA=v12)";
    (opts.log ?? console.warn)(
      `onnx: CUDA is not available in this onnxruntime-node build; using the CPU (${cudaUnavailable})`,
    );
  }
  if (cudaUnavailable === null) {
    try {
      const s = await create(["cuda", "cpu"], true);
      return wrap(s, ["cuda", "cpu"]);
    } catch (e) {
      const msg = (e as Error).message;
      // Only a missing CUDA provider is a reason to fall back; a broken model is not.
      if (!/cuda/i.test(msg)) throw new Error(`${name}: cannot open: ${msg}`);
      cudaUnavailable = msg.split("\n")[0];
      (opts.log ?? console.warn)(
        `onnx: CUDA is not available in this onnxruntime-node build; using the CPU (${cudaUnavailable})`,
      );
    }
  }
  try {
    return wrap(await create(["cpu"]), ["cpu"]);
  } catch (e) {
    throw new Error(`${name}: cannot open: ${(e as Error).message}`);
  }
}
