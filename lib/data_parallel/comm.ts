/**
 * The communicator data-parallel training talks to: rank, world size and the three collectives
 * the kit needs (sum-allreduce in place, broadcast, barrier). One process is a world of size one
 * where every collective is the identity, so training code never branches on "distributed or
 * not".
 *
 * Everything else is built from these: gradient averaging is a float32 sum-allreduce divided by
 * the world size; gathering one small record per rank (RNG states, peak memory) is a float64
 * sum-allreduce of a zero buffer in which each rank fills its own slot (adding zeros is exact);
 * handing rank 0's bytes (a checkpoint's header) to every rank is a broadcast of the length, then
 * of the bytes.
 *
 * @example
 * ```ts
 * const comm = singleProcess();
 * const g = Float32Array.from([1, 2]);
 * await comm.allreduceSum(g); // unchanged in a world of one
 * ```
 * @module
 */

/** Float arrays the collectives accept (float32 for gradients, float64 for exact small data). */
export type CommBuffer = Float32Array | Float64Array;

/** What {@link Communicator.broadcast} copies: float arrays, or raw bytes (copied as they are). */
export type BroadcastBuffer = CommBuffer | Uint8Array;

/** A group of cooperating processes (MPI's `MPI_COMM_WORLD`, or just this process). */
export interface Communicator {
  /** This process's rank in [0, size). */
  readonly rank: number;
  /** Number of processes. */
  readonly size: number;
  /** What runs the collectives ("single", "mpi (Open MPI ...)"). */
  readonly kind: string;
  /** Replace `buf` on every rank by the element-wise sum over ranks. */
  allreduceSum(buf: CommBuffer): Promise<void>;
  /** Copy `root`'s `buf` into every rank's `buf` (same type and length on every rank). */
  broadcast(buf: BroadcastBuffer, root?: number): Promise<void>;
  /** Return once every rank has called it. */
  barrier(): Promise<void>;
  /** Leave the group (MPI_Finalize); further calls fail. */
  close(): Promise<void>;
}

/**
 * The world of one process: collectives leave buffers as they are.
 *
 * @example
 * ```ts
 * singleProcess().size; // 1
 * ```
 */
export function singleProcess(): Communicator {
  let open = true;
  const call = (what: string, f: () => void = () => {}) =>
    settle(() => {
      if (!open) throw new Error(`communicator: ${what} after close()`);
      f();
    });
  return {
    rank: 0,
    size: 1,
    kind: "single",
    allreduceSum: (_buf) => call("allreduceSum"),
    broadcast: (_buf, root = 0) =>
      call("broadcast", () => {
        if (root !== 0) throw new Error(`communicator: broadcast root ${root} outside [0, 1)`);
      }),
    barrier: () => call("barrier"),
    close: () => settle(() => open = false),
  };
}

/**
 * Run synchronous work as a promise: errors become rejections, so callers see collectives fail
 * the same way whether they block (MPI) or not.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { settle } from "./comm.ts";
 *
 * // A synchronous call (an MPI FFI call) as a promise: its throw becomes a rejection.
 * await settle(() => 42);
 * await assert.rejects(
 *   settle(() => {
 *     throw new Error("MPI_Allreduce failed");
 *   }),
 *   /MPI_Allreduce/,
 * );
 * ```
 */
export function settle(f: () => unknown): Promise<void> {
  try {
    f();
    return Promise.resolve();
  } catch (e) {
    return Promise.reject(e);
  }
}

/**
 * Element-wise mean over ranks of equally long float32 arrays, in place (sum, then divide).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { allreduceMean, singleProcess } from "./comm.ts";
 *
 * const comm = singleProcess(); // or worldCommunicator() under mpirun
 * const grads = new Float32Array([0.5, -1]); // this rank's flattened gradient
 * await allreduceMean(comm, grads); // every rank now holds the average gradient
 * assert.deepEqual(grads, new Float32Array([0.5, -1])); // one rank: unchanged
 * ```
 */
export async function allreduceMean(comm: Communicator, buf: Float32Array): Promise<void> {
  if (comm.size === 1) return;
  await comm.allreduceSum(buf);
  const inv = 1 / comm.size;
  for (let i = 0; i < buf.length; i++) buf[i] *= inv;
}

/**
 * Every rank's `values` (same length on all ranks), as one row per rank, on every rank. Exact for
 * any float64 values: each rank writes its slot of a zero buffer and the sum-allreduce adds zeros
 * to it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { allGather, singleProcess } from "./comm.ts";
 *
 * const rows = await allGather(singleProcess(), [Deno.memoryUsage().rss, 7]); // rows[r] = rank r's
 * assert.equal(rows.length, 1);
 * assert.equal(rows[0][1], 7);
 * ```
 */
export async function allGather(
  comm: Communicator,
  values: readonly number[],
): Promise<number[][]> {
  const n = values.length;
  const buf = new Float64Array(n * comm.size);
  buf.set(values, comm.rank * n);
  await comm.allreduceSum(buf);
  return Array.from({ length: comm.size }, (_, r) => Array.from(buf.subarray(r * n, (r + 1) * n)));
}

/**
 * `root`'s bytes on every rank, whose length only `root` knows: the length goes first (one
 * float64, exact up to 2^53), then the bytes. `bytes` is required on `root` and ignored elsewhere;
 * `root` gets its own array back.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { broadcastBytes, singleProcess } from "./comm.ts";
 *
 * const comm = singleProcess();
 * const state = { step: 12 };
 * const text = comm.rank === 0 ? new TextEncoder().encode(JSON.stringify(state)) : null;
 * const state2 = JSON.parse(new TextDecoder().decode(await broadcastBytes(comm, text)));
 * assert.deepEqual(state2, state);
 * ```
 */
export async function broadcastBytes(
  comm: Communicator,
  bytes: Uint8Array | null,
  root = 0,
): Promise<Uint8Array> {
  const mine = comm.rank === root;
  if (mine && !bytes) throw new Error(`broadcastBytes: rank ${root} is the root and has no bytes`);
  const n = Float64Array.of(mine ? bytes!.length : 0);
  await comm.broadcast(n, root);
  if (comm.size === 1) return bytes!;
  const buf = mine ? bytes! : new Uint8Array(n[0]);
  if (buf.length > 0) await comm.broadcast(buf, root);
  return buf;
}

/**
 * Check that every rank passes the same `value` (a configuration fingerprint, a step number), so a
 * mismatch fails loudly instead of deadlocking later; the error names the ranks that differ.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { assertSameOnAllRanks, type Communicator, singleProcess } from "./comm.ts";
 *
 * await assertSameOnAllRanks(singleProcess(), "resume step", 100); // one rank always agrees
 * // With two ranks reporting 100 and 90 it throws; a stub communicator shows the message.
 * const fake: Communicator = {
 *   ...singleProcess(),
 *   rank: 0,
 *   size: 2,
 *   allreduceSum: (b) => Promise.resolve(void b.set([100, 90])),
 * };
 * await assert.rejects(
 *   assertSameOnAllRanks(fake, "resume step", 100),
 *   /rank 0 has 100, rank 1 has 90/,
 * );
 * ```
 */
export async function assertSameOnAllRanks(
  comm: Communicator,
  what: string,
  value: number,
): Promise<void> {
  if (comm.size === 1) return;
  const rows = await allGather(comm, [value]);
  const bad = rows.map((r, i) => [i, r[0]] as const).filter(([, v]) => v !== rows[0][0]);
  if (bad.length) {
    throw new Error(
      `${what} differs across ranks: rank 0 has ${rows[0][0]}, ` +
        bad.map(([i, v]) => `rank ${i} has ${v}`).join(", "),
    );
  }
}
