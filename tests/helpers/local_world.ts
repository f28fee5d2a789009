/**
 * The in-process data-parallel world of lib/data_parallel (`localWorld`), kept under its old
 * helper path for the tests that import it from here.
 *
 * @example
 * ```ts
 * const [a, b] = localWorld(2);
 * await Promise.all([a.barrier(), b.barrier()]);
 * ```
 * @module
 */
export { localWorld } from "../../lib/data_parallel/local_world.ts";
