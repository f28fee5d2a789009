/**
 * The kit's `wasm` backend: tfjs-backend-wasm (single-threaded in Deno, SIMD on) with the
 * training kernels from {@link wasmKernelConfigs}. The backend module is imported lazily:
 * importing it registers `wasm` with a priority above tfjs' `cpu`, which would silently change the
 * default backend of any program that imports this folder.
 *
 * @example
 * ```ts
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { prepareWasmBackend } from "./wasm_backend.ts";
 *
 * await prepareWasmBackend();
 * await tf.setBackend("wasm");
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import { captureStockWasmKernels, wasmKernelConfigs } from "./wasm_kernels.ts";

let prepared: Promise<void> | null = null;

/** Folder (with trailing slash) holding the `.wasm` binaries of the installed package. */
export function wasmBinaryFolder(): string {
  const entry = import.meta.resolve("npm:@tensorflow/tfjs-backend-wasm@4.22.0");
  if (!entry.startsWith("file:")) {
    throw new Error(`backend wasm: expected a local package, resolved to ${entry}`);
  }
  const url = new URL(".", entry); // .../dist/
  return decodeURIComponent(url.pathname);
}

/**
 * Import the wasm backend, point it at its binaries and register the kit's kernels (once).
 *
 * @example
 * ```ts
 * await prepareWasmBackend();
 * ```
 */
export function prepareWasmBackend(): Promise<void> {
  if (!prepared) {
    prepared = (async () => {
      const wasm = await import("npm:@tensorflow/tfjs-backend-wasm@4.22.0");
      try {
        wasm.setWasmPaths(wasmBinaryFolder());
      } catch {
        // Already initialised by someone else: its paths evidently worked.
      }
      const stockKernels = captureStockWasmKernels();
      for (const k of wasmKernelConfigs(stockKernels)) {
        if (tf.getKernel(k.kernelName, "wasm")) tf.unregisterKernel(k.kernelName, "wasm");
        tf.registerKernel(k);
      }
    })();
  }
  return prepared;
}
