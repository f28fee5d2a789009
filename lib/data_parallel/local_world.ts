/**
 * A data-parallel world inside one process, for tests of rank protocols and small experiments
 * without `mpirun`: N {@link Communicator}s whose collectives meet like MPI's, each rank an async
 * task of this process (TensorFlow.js work of the ranks interleaves between collectives). Every rank's n-th collective joins the
 * other ranks' n-th one and completes once all have arrived, so a rank that skips a collective
 * leaves the others pending (Deno's test runner then reports the promise that never resolved),
 * and ranks calling different collectives at the same position fail with an error naming both.
 *
 * Sums are taken in rank order in float64 and stored into each rank's array (rounded to float32
 * for float32 arrays), which is exact for the small integers and zero-filled gathers tests use.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { localWorld } from "./local_world.ts";
 *
 * const [a, b] = localWorld(2);
 * const x = Float64Array.of(1), y = Float64Array.of(2);
 * await Promise.all([a.allreduceSum(x), b.allreduceSum(y)]);
 * assert.deepEqual([x[0], y[0]], [3, 3]);
 * ```
 * @module
 */
import type { Communicator } from "./comm.ts";

type Buf = Float32Array | Float64Array | Uint8Array;

interface Arrival {
  what: string;
  buf: Buf | null;
  root: number;
}

interface Meeting {
  arrivals: (Arrival | undefined)[];
  count: number;
  done: Promise<void>;
  resolve: () => void;
  reject: (e: Error) => void;
}

/**
 * `size` communicators of one in-process world, in rank order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { localWorld } from "./local_world.ts";
 *
 * const ranks = localWorld(2);
 * assert.deepEqual(ranks.map((c) => [c.rank, c.size]), [[0, 2], [1, 2]]);
 * await Promise.all(ranks.map((c) => c.barrier()));
 * ```
 */
export function localWorld(size: number): Communicator[] {
  if (!Number.isInteger(size) || size < 1) {
    throw new Error(`localWorld: size must be a positive integer, got ${size}`);
  }
  const meetings = new Map<number, Meeting>();
  const calls = new Array(size).fill(0);
  const open = new Array(size).fill(true);

  const finish = (m: Meeting) => {
    const a = m.arrivals as Arrival[];
    const what = a[0].what;
    const other = a.find((x) => x.what !== what);
    if (other) {
      throw new Error(`localWorld: ranks disagree on the collective (${what} vs ${other.what})`);
    }
    if (what === "barrier") return;
    const len = a[0].buf!.length;
    if (a.some((x) => x.buf!.length !== len || x.buf!.constructor !== a[0].buf!.constructor)) {
      throw new Error(`localWorld: ${what} buffers differ in type or length across ranks`);
    }
    if (what === "broadcast") {
      const root = a[0].root;
      if (a.some((x) => x.root !== root)) throw new Error("localWorld: broadcast roots differ");
      for (const x of a) if (x !== a[root]) x.buf!.set(a[root].buf!);
      return;
    }
    const sum = new Float64Array(len);
    for (const x of a) for (let i = 0; i < len; i++) sum[i] += x.buf![i];
    for (const x of a) x.buf!.set(sum);
  };

  const join = (rank: number, arrival: Arrival): Promise<void> => {
    if (!open[rank]) return Promise.reject(new Error(`localWorld: ${arrival.what} after close()`));
    const n = calls[rank]++;
    let m = meetings.get(n);
    if (!m) {
      let resolve = () => {}, reject = (_e: Error) => {};
      const done = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      m = { arrivals: new Array(size), count: 0, done, resolve, reject };
      meetings.set(n, m);
    }
    m.arrivals[rank] = arrival;
    if (++m.count === size) {
      meetings.delete(n);
      try {
        finish(m);
        m.resolve();
      } catch (e) {
        m.reject(e as Error);
      }
    }
    return m.done;
  };

  return Array.from({ length: size }, (_, rank): Communicator => ({
    rank,
    size,
    kind: `local (${size} ranks in one process)`,
    allreduceSum: (buf) => join(rank, { what: "allreduceSum", buf, root: 0 }),
    broadcast: (buf, root = 0) => {
      if (!Number.isInteger(root) || root < 0 || root >= size) {
        return Promise.reject(new Error(`localWorld: broadcast root ${root} outside [0, ${size})`));
      }
      return join(rank, { what: "broadcast", buf, root });
    },
    barrier: () => join(rank, { what: "barrier", buf: null, root: 0 }),
    close: () => {
      open[rank] = false;
      return Promise.resolve();
    },
  }));
}
