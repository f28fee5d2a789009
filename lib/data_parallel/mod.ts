/**
 * Data-parallel plumbing: a communicator (one process, or Open MPI's world through FFI) with
 * sum-allreduce, broadcast and barrier, plus helpers built on them (gradient mean, all-gather of
 * small records, cross-rank consistency checks), an `mpirun` launcher, and the two places
 * data-parallel training touches the training loop (`averageGrads` over ranks, `gatherRngStates`
 * for checkpoints).
 *
 * @example
 * ```ts
 * import { allreduceMean, worldCommunicator } from "./mod.ts";
 *
 * async function example(grads: Float32Array) {
 *   const comm = worldCommunicator();
 *   await allreduceMean(comm, grads);
 * }
 * ```
 * @module
 */
export * from "./comm.ts";
export * from "./mpi.ts";
export * from "./world.ts";
export * from "./training.ts";
