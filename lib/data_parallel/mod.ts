/**
 * Data-parallel plumbing: a communicator (one process, or Open MPI's world through FFI) with
 * sum-allreduce, broadcast and barrier, plus helpers built on them (gradient mean, all-gather of
 * small records, cross-rank consistency checks), an `mpirun` launcher, the places
 * data-parallel training touches the training loop (`averageGrads` over ranks, `gatherRngStates`
 * for checkpoints, `lossStreamPath` for each rank's loss stream), and `localWorld`, N ranks in one
 * process for tests and small experiments.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { allreduceMean, singleProcess } from "./mod.ts";
 *
 * // Under mpirun: const comm = worldCommunicator();
 * const comm = singleProcess();
 * const grads = new Float32Array([1, 2, 3]);
 * await allreduceMean(comm, grads);
 * assert.deepEqual(grads, new Float32Array([1, 2, 3]));
 * ```
 * @module
 */
export * from "./comm.ts";
export * from "./mpi.ts";
export * from "./world.ts";
export * from "./training.ts";
export * from "./local_world.ts";
