/**
 * `initBackend` (lib/backend) plus what lib/nn needs to know about the backend it got: which
 * convolution filter-gradient strategy is fast there. Takes a `--backend` value, `auto` included.
 * Jobs (commands, notebooks, tests that train) call this; lib/backend's `initBackend` alone does not
 * touch lib/nn.
 *
 * @example
 * ```ts
 * const info = await initBackendAndConvGrad("cpu-blas");
 * ```
 * @module
 */
import { type BackendInfo, defaultBackend, initBackend, parseBackendName } from "../backend/mod.ts";
import { setConvFilterGrad } from "../nn/mod.ts";

/**
 * Activate backend `name` ("auto" picks the default for this machine), then set lib/nn's
 * Conv2D filter-gradient strategy for it: backends with a fast Conv2DBackpropFilter kernel (the
 * kit's BLAS cpu kernels, wasm with the kit's kernel, webgpu, tensorflow) use it; stock cpu-js
 * computes the filter gradient as a forward convolution instead, which is ~100x faster there.
 *
 * @example
 * ```ts
 * const info = await initBackendAndConvGrad("auto", { quiet: true });
 * console.log(info.name, info.details);
 * ```
 */
export async function initBackendAndConvGrad(
  name: string,
  opts: { quiet?: boolean } = {},
): Promise<BackendInfo> {
  const backend = name === "auto" ? defaultBackend() : parseBackendName(name, "--backend");
  const info = await initBackend(backend, { quiet: opts.quiet });
  setConvFilterGrad(
    info.name === "cpu-js" || (info.name === "cpu-blas" && !info.blas) ? "conv" : "kernel",
  );
  return info;
}
