/**
 * System setup: the Debian packages the kit uses (one list, with reasons), how to get missing ones
 * installed (by this process as root or with passwordless sudo, or by the user with the exact
 * command), and the CPU fast path (OpenBLAS, C kernels) that commands set up before they train.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fastPathGaps, setUpFastPath } from "./mod.ts";
 *
 * // setUpFastPath("auto") installs OpenBLAS + a C compiler, or says how; a run on another
 * // backend needs neither.
 * assert.equal(await setUpFastPath("wasm"), "not-needed");
 * const probes = {
 *   openblas: () => true,
 *   nativeKernels: () => true,
 *   installed: () => null,
 *   host: () => ({ apt: false, root: false, sudo: "none" as const }),
 * };
 * assert.deepEqual(fastPathGaps("auto", { probes }), []); // everything in place: "ready"
 * ```
 * @module
 */
export * from "./system_packages.ts";
export * from "./install_plan.ts";
export * from "./host_access.ts";
export * from "./fast_path.ts";
