/**
 * Pick the compute backend for a job and the matching convolution-gradient strategy.
 *
 * @example
 * ```ts
 * const info = await initCompute("cpu");
 * ```
 * @module
 */
import { type BackendInfo, defaultBackend, initBackend, parseBackendName } from "../backend/mod.ts";
import { setConvFilterGrad } from "../nn/mod.ts";

/**
 * Activate backend `name` ("auto" picks the default for this machine). Backends with a fast
 * Conv2DBackpropFilter kernel (the kit's BLAS cpu kernels, wasm with the kit's kernel, webgpu,
 * tensorflow) use it; stock cpu-js computes the filter gradient as a forward convolution instead,
 * which is ~100x faster there.
 */
export async function initCompute(
  name: string,
  opts: { quiet?: boolean } = {},
): Promise<BackendInfo> {
  const backend = name === "auto" ? defaultBackend() : parseBackendName(name, "--backend");
  const info = await initBackend(backend, { quiet: opts.quiet });
  setConvFilterGrad(
    info.name === "cpu-js" || (info.name === "cpu" && !info.blas) ? "conv" : "kernel",
  );
  return info;
}
