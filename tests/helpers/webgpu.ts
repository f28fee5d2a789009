/**
 * The WebGPU preamble of the compiled-engine tests: the adapter (Mesa lavapipe in CI), a device
 * when asked, and the one line saying why a file's GPU tests are skipped; plus the relative error
 * those tests compare kernels by.
 *
 * @example
 * ```ts
 * const gpu = await webgpuForTests("compiled_train_step", { device: true });
 * Deno.test({ name: "...", ignore: gpu.skip, fn: async () => { await use(gpu.device!); } });
 * ```
 * @module
 */
import assert from "node:assert/strict";
import { requestStepDevice } from "../../lib/compiled/mod.ts";

/** What {@link webgpuForTests} found. */
export interface TestGpu {
  adapter: GPUAdapter | null;
  /** A device (float16 requested with `f16`), when `device` or `f16` was asked and one was made. */
  device?: GPUDevice;
  /** True when the file's GPU tests cannot run (the reason was printed). */
  skip: boolean;
}

/**
 * The adapter, and with `device` a plain device, with `f16` one with `shader-f16` (skipped when
 * the adapter lacks it); prints `<file>: skipped, <reason>` when the tests cannot run.
 */
export async function webgpuForTests(
  file: string,
  o: { device?: boolean; f16?: boolean } = {},
): Promise<TestGpu> {
  const adapter = await navigator.gpu?.requestAdapter().catch(() => null) ?? null;
  if (!adapter) {
    console.log(`${file}: skipped, no WebGPU adapter in this runtime`);
    return { adapter, skip: true };
  }
  if (o.f16 && !adapter.features.has("shader-f16")) {
    console.log(`${file}: skipped, the adapter lacks shader-f16`);
    return { adapter, skip: true };
  }
  if (!o.device && !o.f16) return { adapter, skip: false };
  const device = await requestStepDevice(adapter, o.f16 ? "mixed" : "f32");
  return { adapter, device, skip: false };
}

/** `max|got - want| / max|want|` (the absolute difference when `want` is all zeros). */
export function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  assert.equal(got.length, want.length);
  let d = 0, m = 0;
  for (let i = 0; i < want.length; i++) {
    d = Math.max(d, Math.abs(got[i] - want[i]));
    m = Math.max(m, Math.abs(want[i]));
  }
  assert.ok(Number.isFinite(d), "non-finite values");
  return m === 0 ? d : d / m;
}
