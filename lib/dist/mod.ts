/**
 * Data-parallel plumbing: a communicator (one process, or Open MPI's world through FFI) with
 * sum-allreduce, broadcast and barrier, plus helpers built on them (gradient mean, all-gather of
 * small records, cross-rank consistency checks) and an `mpirun` launcher.
 *
 * @example
 * ```ts
 * import { allreduceMean, worldCommunicator } from "./mod.ts";
 * const comm = worldCommunicator();
 * await allreduceMean(comm, grads);
 * ```
 * @module
 */
export * from "./comm.ts";
export * from "./mpi.ts";
export * from "./world.ts";
