/**
 * The kit's `webgpu` backend: tfjs-backend-webgpu on Deno's `navigator.gpu` (on a CPU-only
 * Linux machine, Mesa's lavapipe software Vulkan driver provides an adapter). `dataSync()` throws
 * on this backend; read tensors with `await t.data()`.
 *
 * @example
 * ```ts
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { prepareWebgpuBackend, webgpuAdapterInfo } from "./webgpu_backend.ts";
 *
 * const adapter = await webgpuAdapterInfo();
 * if (adapter) { await prepareWebgpuBackend(); await tf.setBackend("webgpu"); }
 * ```
 * @module
 */
import { registerWebgpuKernels } from "./webgpu_kernels.ts";

interface GpuLike {
  requestAdapter(): Promise<{ info?: Record<string, unknown> } | null>;
}

let adapterProbe: Promise<string | null> | null = null;

/**
 * A short description of the WebGPU adapter, or null when there is none (no `navigator.gpu`,
 * or no Vulkan/Metal driver).
 *
 * @example
 * ```ts
 * console.log(await webgpuAdapterInfo()); // "mesa llvmpipe (fallback)" with lavapipe
 * ```
 */
export function webgpuAdapterInfo(): Promise<string | null> {
  if (!adapterProbe) {
    adapterProbe = (async () => {
      const gpu = (globalThis.navigator as unknown as { gpu?: GpuLike } | undefined)?.gpu;
      if (!gpu) return null;
      try {
        const adapter = await gpu.requestAdapter();
        if (!adapter) return null;
        const info = adapter.info ?? {};
        const parts = [info.vendor, info.device || info.description, info.architecture]
          .filter((s) => typeof s === "string" && s.length > 0);
        if (info.isFallbackAdapter) parts.push("(fallback)");
        return parts.join(" ") || "adapter";
      } catch {
        return null;
      }
    })();
  }
  return adapterProbe;
}

let prepared: Promise<void> | null = null;

/**
 * Import tfjs-backend-webgpu (lazily: it registers `webgpu` with the highest priority).
 *
 * @example
 * ```ts
 * await prepareWebgpuBackend();
 * ```
 */
export function prepareWebgpuBackend(): Promise<void> {
  if (!prepared) {
    prepared = import("npm:@tensorflow/tfjs-backend-webgpu@4.22.0").then(() =>
      registerWebgpuKernels()
    );
  }
  return prepared;
}

/** How to get an adapter on a CPU-only Debian/Ubuntu machine. */
export const WEBGPU_HELP =
  "no WebGPU adapter: Deno's navigator.gpu found no GPU driver. On a CPU-only Debian/Ubuntu " +
  "machine install Mesa's software Vulkan driver (apt-get install -y mesa-vulkan-drivers " +
  "libvulkan1); on a GPU machine install the vendor's Vulkan driver.";
