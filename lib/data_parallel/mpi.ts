/**
 * Open MPI through Deno's FFI: `MPI_COMM_WORLD` as a {@link Communicator}.
 *
 * Open MPI's handles are the addresses of exported globals (`ompi_mpi_comm_world`,
 * `ompi_mpi_float`, `ompi_mpi_double`, `ompi_mpi_byte`, `ompi_mpi_op_sum`), read here as pointer
 * statics; `MPI_IN_PLACE` is the pointer value 1. Calls are synchronous: a collective blocks the
 * event loop until every rank has joined it, which is what a training step wants. Works across
 * processes on one host and across hosts alike (`mpirun --hostfile ...`).
 *
 * @example
 * ```ts
 * // mpirun --allow-run-as-root -np 2 deno run -A job.ts
 * const comm = openMpi();
 * const g = Float32Array.from([comm.rank]);
 * await comm.allreduceSum(g); // [1] on both ranks
 * await comm.close();
 * ```
 * @module
 */
import { type BroadcastBuffer, type Communicator, settle } from "./comm.ts";

/** Library names tried in order (Debian's `libopenmpi-dev`/`openmpi-bin` install the first). */
export const MPI_LIBRARY_PATHS: readonly string[] = [
  "libmpi.so.40",
  "/usr/lib/x86_64-linux-gnu/libmpi.so.40",
  "/usr/lib/aarch64-linux-gnu/libmpi.so.40",
  "/usr/lib64/openmpi/lib/libmpi.so.40",
  "libmpi.so",
];

const SYMBOLS = {
  MPI_Initialized: { parameters: ["buffer"], result: "i32" },
  MPI_Init_thread: { parameters: ["pointer", "pointer", "i32", "buffer"], result: "i32" },
  MPI_Comm_rank: { parameters: ["pointer", "buffer"], result: "i32" },
  MPI_Comm_size: { parameters: ["pointer", "buffer"], result: "i32" },
  MPI_Allreduce: {
    parameters: ["pointer", "buffer", "i32", "pointer", "pointer", "pointer"],
    result: "i32",
  },
  MPI_Bcast: { parameters: ["buffer", "i32", "pointer", "i32", "pointer"], result: "i32" },
  MPI_Barrier: { parameters: ["pointer"], result: "i32" },
  MPI_Finalize: { parameters: [], result: "i32" },
  MPI_Get_library_version: { parameters: ["buffer", "buffer"], result: "i32" },
  ompi_mpi_comm_world: { type: "pointer" },
  ompi_mpi_float: { type: "pointer" },
  ompi_mpi_double: { type: "pointer" },
  ompi_mpi_byte: { type: "pointer" },
  ompi_mpi_op_sum: { type: "pointer" },
} as const;

type MpiLib = Deno.DynamicLibrary<typeof SYMBOLS>;

/** `MPI_THREAD_SERIALIZED`: only one thread calls MPI at a time (Deno's main thread). */
const MPI_THREAD_SERIALIZED = 2;
/** Open MPI's largest count per call is an int; big buffers go in chunks below it. */
const MAX_COUNT = 1 << 30;

/**
 * True when this process was started by `mpirun` (Open MPI sets `OMPI_COMM_WORLD_SIZE`; PMIx
 * launchers set `PMIX_RANK`).
 *
 * @example
 * ```ts
 * if (launchedByMpi()) console.log("rank", Deno.env.get("OMPI_COMM_WORLD_RANK"));
 * ```
 */
export function launchedByMpi(): boolean {
  return Deno.env.get("OMPI_COMM_WORLD_SIZE") !== undefined ||
    Deno.env.get("PMIX_RANK") !== undefined;
}

function loadLibrary(path?: string): MpiLib {
  const errors: string[] = [];
  for (const p of path ? [path] : MPI_LIBRARY_PATHS) {
    try {
      return Deno.dlopen(p, SYMBOLS);
    } catch (e) {
      errors.push(`${p}: ${(e as Error).message.split("\n")[0]}`);
    }
  }
  throw new Error(
    `MPI library not found (tried ${errors.join("; ")}); on Debian/Ubuntu install it with ` +
      "`apt-get install openmpi-bin libopenmpi-dev`",
  );
}

let world: Communicator | null = null;

/**
 * Initialise MPI once per process and return `MPI_COMM_WORLD` (later calls return the same
 * communicator). Fails with an install hint when Open MPI's library is missing.
 *
 * @example
 * ```ts
 * const comm = openMpi();
 * console.log(`rank ${comm.rank} of ${comm.size}`);
 * ```
 */
export function openMpi(opts: { library?: string } = {}): Communicator {
  if (world) return world;
  const lib = loadLibrary(opts.library);
  const f = lib.symbols;
  const check = (rc: number, what: string) => {
    if (rc !== 0) throw new Error(`MPI: ${what} failed with error code ${rc}`);
  };
  const flag = new Int32Array(1);
  check(f.MPI_Initialized(flag), "MPI_Initialized");
  if (!flag[0]) {
    const provided = new Int32Array(1);
    check(f.MPI_Init_thread(null, null, MPI_THREAD_SERIALIZED, provided), "MPI_Init_thread");
  }
  const commWorld = f.ompi_mpi_comm_world, sum = f.ompi_mpi_op_sum;
  const out = new Int32Array(1);
  check(f.MPI_Comm_rank(commWorld, out), "MPI_Comm_rank");
  const rank = out[0];
  check(f.MPI_Comm_size(commWorld, out), "MPI_Comm_size");
  const size = out[0];
  const version = new Uint8Array(256), vlen = new Int32Array(1);
  check(f.MPI_Get_library_version(version, vlen), "MPI_Get_library_version");
  const versionText = new TextDecoder().decode(version.subarray(0, vlen[0])).split(",")[0].trim();
  const inPlace = Deno.UnsafePointer.create(1n);
  let open = true;
  // MPI_BYTE is copied untouched (no conversion, even between hosts of different byte order).
  const typeOf = (buf: BroadcastBuffer) =>
    buf instanceof Float64Array
      ? f.ompi_mpi_double
      : buf instanceof Uint8Array
      ? f.ompi_mpi_byte
      : f.ompi_mpi_float;
  const guard = (what: string) => {
    if (!open) throw new Error(`MPI: ${what} after close()`);
  };
  // Chunks keep every count below the int limit; subarrays pass as zero-copy pointers.
  const chunks = <B extends BroadcastBuffer>(buf: B, fn: (part: B) => void) => {
    for (let off = 0; off < buf.length; off += MAX_COUNT) {
      fn(buf.subarray(off, Math.min(buf.length, off + MAX_COUNT)) as B);
    }
  };
  world = {
    rank,
    size,
    kind: `mpi (${versionText})`,
    allreduceSum: (buf) =>
      settle(() => {
        guard("allreduceSum");
        chunks(buf, (part) => {
          check(
            f.MPI_Allreduce(inPlace, part, part.length, typeOf(part), sum, commWorld),
            "MPI_Allreduce",
          );
        });
      }),
    broadcast: (buf, root = 0) =>
      settle(() => {
        guard("broadcast");
        if (!Number.isInteger(root) || root < 0 || root >= size) {
          throw new Error(`MPI: broadcast root ${root} outside [0, ${size})`);
        }
        chunks(buf, (part) => {
          check(f.MPI_Bcast(part, part.length, typeOf(part), root, commWorld), "MPI_Bcast");
        });
      }),
    barrier: () =>
      settle(() => {
        guard("barrier");
        check(f.MPI_Barrier(commWorld), "MPI_Barrier");
      }),
    close: () =>
      settle(() => {
        if (open) {
          open = false;
          check(f.MPI_Finalize(), "MPI_Finalize");
        }
      }),
  };
  return world;
}
