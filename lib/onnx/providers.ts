/**
 * Execution-provider choice for every ONNX session of a process: `auto` (CUDA when this
 * onnxruntime-node build has it, else the CPU), `cpu`, `cuda` (onnxruntime-node's CUDA provider,
 * refused in one line when it is not installed) or `webgpu` (onnxruntime-web's WebGPU provider on
 * Deno's `navigator.gpu`). The commands set it once from `--provider`
 * ({@link setDefaultOnnxProvider}); sessions opened without `executionProviders` then use it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { executionProvidersFor, parseOnnxProvider } from "./providers.ts";
 *
 * assert.deepEqual(executionProvidersFor(parseOnnxProvider("webgpu")), ["webgpu"]);
 * assert.throws(() => parseOnnxProvider("tpu"), /choose one of auto, cpu, cuda, webgpu/);
 * ```
 * @module
 */

/** The provider names `--provider` takes. */
export const ONNX_PROVIDERS = ["auto", "cpu", "cuda", "webgpu"] as const;

/** One of {@link ONNX_PROVIDERS}. */
export type OnnxProvider = typeof ONNX_PROVIDERS[number];

/**
 * How to get onnxruntime-node's CUDA provider (its install script downloads it; Deno runs the
 * script only when allowed to).
 */
export const CUDA_INSTALL_HINT = "on a machine with a CUDA 12 GPU (and cuDNN 9) and internet, " +
  "run: ONNXRUNTIME_NODE_INSTALL=cuda12 deno install --allow-scripts=npm:onnxruntime-node " +
  "(see the README's GPU sampling section)";

/**
 * The provider named by `text`, or a one-line error listing the choices.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseOnnxProvider } from "./providers.ts";
 *
 * assert.equal(parseOnnxProvider("cpu"), "cpu");
 * assert.throws(() => parseOnnxProvider("gpu"), {
 *   message: 'unknown ONNX provider "gpu"; choose one of auto, cpu, cuda, webgpu',
 * });
 * ```
 */
export function parseOnnxProvider(text: string): OnnxProvider {
  if ((ONNX_PROVIDERS as readonly string[]).includes(text)) return text as OnnxProvider;
  throw new Error(`unknown ONNX provider "${text}"; choose one of ${ONNX_PROVIDERS.join(", ")}`);
}

/**
 * The `executionProviders` of `openSession` for a provider: "auto" stays "auto"; CUDA keeps the
 * CPU after it for the few operators CUDA lacks (onnxruntime places those on the CPU).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { executionProvidersFor } from "./providers.ts";
 *
 * assert.deepEqual(executionProvidersFor("cuda"), ["cuda", "cpu"]);
 * assert.equal(executionProvidersFor("auto"), "auto");
 * ```
 */
export function executionProvidersFor(p: OnnxProvider): "auto" | readonly string[] {
  switch (p) {
    case "auto":
      return "auto";
    case "cpu":
      return ["cpu"];
    case "cuda":
      return ["cuda", "cpu"];
    case "webgpu":
      return ["webgpu"];
  }
}

let processDefault: OnnxProvider = "auto";

/**
 * Make `p` the provider of every session opened later without `executionProviders` (what the
 * commands' `--provider` sets, so the pipeline, scorers and FID models all follow it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultOnnxProvider, setDefaultOnnxProvider } from "./providers.ts";
 *
 * setDefaultOnnxProvider("cpu");
 * assert.equal(defaultOnnxProvider(), "cpu");
 * setDefaultOnnxProvider("auto");
 * ```
 */
export function setDefaultOnnxProvider(p: OnnxProvider): void {
  processDefault = parseOnnxProvider(p);
}

/**
 * The provider sessions use when none is given ("auto" unless {@link setDefaultOnnxProvider}
 * changed it).
 *
 * @example
 * ```ts
 * import { defaultOnnxProvider } from "./providers.ts";
 * console.log(defaultOnnxProvider()); // "auto"
 * ```
 */
export function defaultOnnxProvider(): OnnxProvider {
  return processDefault;
}
