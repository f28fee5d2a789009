/**
 * System setup: the Debian packages the kit uses (one list, with reasons), how to get missing ones
 * installed (by this process as root or with passwordless sudo, or by the user with the exact
 * command), and the CPU fast path (OpenBLAS, C kernels) that commands set up before they train.
 *
 * @example
 * ```ts
 * import { setUpFastPath } from "./mod.ts";
 *
 * async function example() {
 *   await setUpFastPath("auto"); // installs OpenBLAS + a C compiler, or says how
 * }
 * ```
 * @module
 */
export * from "./system_packages.ts";
export * from "./install_plan.ts";
export * from "./host_access.ts";
export * from "./fast_path.ts";
