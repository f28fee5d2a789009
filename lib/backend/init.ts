/**
 * Select the active TensorFlow.js backend by the kit's name for it.
 *
 * @example
 * ```ts
 * const info = await initBackend(defaultBackend());
 * console.log(info.tfBackend, info.blas, info.details);
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
import type { BackendInfo, BackendName, InitBackendOptions } from "./types.ts";
import { parseBackendName } from "./types.ts";
import { loadOpenBlas } from "./openblas.ts";
import {
  CPU_BLAS_BACKEND,
  CPU_JS_BACKEND,
  registerCpuBlasBackend,
  registerCpuJsBackend,
} from "./cpu_backend.ts";
import {
  loadNativeKernels,
  nativeKernelsStatus,
  setActiveNativeKernels,
} from "./native_kernels.ts";
import { prepareWasmBackend } from "./wasm_backend.ts";
import { prepareWebgpuBackend, WEBGPU_HELP, webgpuAdapterInfo } from "./webgpu_backend.ts";
import { findTensorflowPackage, prepareTensorflowBackend } from "./tensorflow_backend.ts";

function cores(): number {
  return Math.max(1, navigator.hardwareConcurrency || 1);
}

async function activate(tfName: string, kitName: BackendName): Promise<void> {
  let ok = false;
  let cause = "";
  try {
    ok = await tf.setBackend(tfName);
    await tf.ready();
  } catch (e) {
    cause = `: ${e instanceof Error ? e.message : String(e)}`;
  }
  if (!ok || tf.getBackend() !== tfName) {
    throw new Error(`initBackend('${kitName}'): tfjs backend '${tfName}' failed to start${cause}`);
  }
}

function silenceCpuBanner(): void {
  const b = tf.findBackend(CPU_JS_BACKEND) as unknown as { firstUse?: boolean } | null;
  if (b && "firstUse" in b) b.firstUse = false;
}

/**
 * Make `name` the active tfjs backend (`tf.setBackend` + `tf.ready`) and describe it.
 * `cpu-blas` falls back to `cpu-js` (stock tfjs cpu) with a warning when OpenBLAS cannot be loaded.
 *
 * @example
 * ```ts
 * const info = await initBackend("cpu-blas", { threads: 2 });
 * // { name: "cpu-blas", tfBackend: "cpu-blas", blas: true, details: "OpenBLAS ... 2 threads" }
 * ```
 */
export async function initBackend(
  name: BackendName,
  opts: InitBackendOptions = {},
): Promise<BackendInfo> {
  parseBackendName(name, "initBackend: name");
  if (opts.threads !== undefined && !(Number.isInteger(opts.threads) && opts.threads > 0)) {
    throw new Error(`initBackend: threads must be a positive integer, got ${opts.threads}`);
  }
  switch (name) {
    case "cpu-blas": {
      const blas = loadOpenBlas();
      if (!blas) {
        if (!opts.quiet) {
          console.warn(
            "initBackend('cpu-blas'): OpenBLAS not found (apt-get install libopenblas0-pthread; " +
              "needs --allow-ffi); using the stock tfjs cpu backend, which is slow for training",
          );
        }
        registerCpuJsBackend();
        if (opts.quiet) silenceCpuBanner();
        await activate(CPU_JS_BACKEND, name);
        return {
          name,
          tfBackend: CPU_JS_BACKEND,
          blas: false,
          details: "stock tfjs cpu (no OpenBLAS)",
        };
      }
      const threads = opts.threads ?? cores();
      blas.setThreads(threads);
      registerCpuBlasBackend(blas);
      // The C element-wise kernels are optional: without a compiler the TypeScript loops run.
      const native = opts.native === false ? null : loadNativeKernels();
      setActiveNativeKernels(native);
      if (
        !native && opts.native !== false && !opts.quiet &&
        !/disabled by/.test(nativeKernelsStatus())
      ) {
        console.warn(
          `initBackend('cpu-blas'): ${nativeKernelsStatus()}; using the TypeScript loops, about 2x ` +
            "slower for training (Debian: apt-get install gcc libc6-dev; XGEN_NATIVE_KERNELS=0 " +
            "silences this)",
        );
      }
      await activate(CPU_BLAS_BACKEND, name);
      const elementwise = native
        ? `native element-wise kernels (${native.compiler})`
        : `TypeScript element-wise kernels (${
          opts.native === false ? "native ones switched off" : nativeKernelsStatus()
        })`;
      return {
        name,
        tfBackend: CPU_BLAS_BACKEND,
        blas: true,
        details: `OpenBLAS ${blas.path}, ${blas.threads()} threads, ${elementwise}`,
      };
    }
    case "cpu-js": {
      registerCpuJsBackend();
      if (opts.quiet) silenceCpuBanner();
      await activate(CPU_JS_BACKEND, name);
      return { name, tfBackend: CPU_JS_BACKEND, blas: false, details: "stock tfjs cpu" };
    }
    case "wasm": {
      await prepareWasmBackend();
      await activate("wasm", name);
      return {
        name,
        tfBackend: "wasm",
        blas: false,
        details: "tfjs wasm (XNNPACK, SIMD, 1 thread) + kit training kernels",
      };
    }
    case "webgpu": {
      const adapter = await webgpuAdapterInfo();
      if (!adapter) throw new Error(`initBackend('webgpu'): ${WEBGPU_HELP}`);
      await prepareWebgpuBackend();
      await activate("webgpu", name);
      return { name, tfBackend: "webgpu", blas: false, details: `WebGPU adapter: ${adapter}` };
    }
    case "tensorflow": {
      const pkg = await prepareTensorflowBackend();
      await activate("tensorflow", name);
      return { name, tfBackend: "tensorflow", blas: false, details: `${pkg} (libtensorflow)` };
    }
  }
}

let available: Promise<BackendName[]> | null = null;

/**
 * Backends that actually start here, probed once per process. Probing wasm starts it, and the
 * previously active backend is restored afterwards; `tensorflow` is reported only when an
 * installed tfjs-node package has its native binding (it is not imported here).
 *
 * @example
 * ```ts
 * const names = await availableBackends(); // e.g. ["cpu-blas", "wasm", "cpu-js", "webgpu"]
 * ```
 */
export function availableBackends(): Promise<BackendName[]> {
  if (!available) {
    available = (async () => {
      const names: BackendName[] = ["cpu-blas"];
      const previous = tf.getBackend();
      try {
        await prepareWasmBackend();
        if (await tf.setBackend("wasm")) names.push("wasm");
      } catch {
        // wasm missing or failed to compile: not available.
      }
      names.push("cpu-js");
      if (await webgpuAdapterInfo()) names.push("webgpu");
      if (findTensorflowPackage()) names.push("tensorflow");
      if (previous && tf.getBackend() !== previous) await tf.setBackend(previous);
      return names;
    })();
  }
  return available;
}

/**
 * The backend the kit uses when none is named: `cpu-blas` when OpenBLAS loads, else `wasm`.
 *
 * @example
 * ```ts
 * await initBackend(defaultBackend());
 * ```
 */
export function defaultBackend(): BackendName {
  return loadOpenBlas() ? "cpu-blas" : "wasm";
}
