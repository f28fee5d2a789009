/**
 * Pick the communicator for this process, and start a job under `mpirun` from a plain command.
 *
 * `worldCommunicator()` returns MPI's world when the process was started by `mpirun` and a world
 * of one otherwise, so the same script runs alone or data-parallel. `mpiCommand()` builds the
 * `mpirun` command line a launcher uses to run N copies of a Deno script on this host with one
 * BLAS thread each (N processes on N cores, instead of one process whose element-wise kernels
 * leave all but one core idle).
 *
 * @example
 * ```ts
 * const comm = worldCommunicator();
 * if (comm.rank === 0) console.log(`world of ${comm.size} (${comm.kind})`);
 * ```
 * @module
 */
import { type Communicator, singleProcess } from "./comm.ts";
import { launchedByMpi, openMpi } from "./mpi.ts";

/**
 * MPI's world under `mpirun`, else a world of one.
 *
 * @example
 * ```ts
 * const { rank, size } = worldCommunicator();
 * ```
 */
export function worldCommunicator(): Communicator {
  return launchedByMpi() ? openMpi() : singleProcess();
}

/** Where `mpirun` is, or null when Open MPI is not installed. */
export async function findMpirun(): Promise<string | null> {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin").split(":")) {
    try {
      const p = `${dir}/mpirun`;
      if ((await Deno.stat(p)).isFile) return p;
    } catch { /* not here */ }
  }
  return null;
}

/** Options of {@link mpiCommand}. */
export interface MpiCommandOptions {
  /** Number of processes. */
  procs: number;
  /** The Deno script and its arguments, run as `deno run -A script ...args`. */
  script: string;
  args: readonly string[];
  /** BLAS threads per process (default 1: one core per process). */
  blasThreads?: number;
  /** The `mpirun` binary (default "mpirun"). */
  mpirun?: string;
}

/**
 * The argument vector that runs `script` on `procs` local processes. `--bind-to none` lets the
 * OS place the processes (binding to cores fights BLAS thread pools); running as root needs
 * `--allow-run-as-root`, which is harmless otherwise; `-x` forwards the thread settings.
 *
 * @example
 * ```ts
 * const argv = mpiCommand({ procs: 2, script: "lib/cli/train.ts", args: ["--preset", "tiny"] });
 * new Deno.Command(argv[0], { args: argv.slice(1) }).spawn();
 * ```
 */
export function mpiCommand(o: MpiCommandOptions): string[] {
  if (!Number.isInteger(o.procs) || o.procs < 1) {
    throw new Error(`mpiCommand: procs must be a positive integer, got ${o.procs}`);
  }
  const threads = String(o.blasThreads ?? 1);
  return [
    o.mpirun ?? "mpirun",
    "--allow-run-as-root",
    "--oversubscribe",
    "--bind-to",
    "none",
    "-np",
    String(o.procs),
    "-x",
    `OPENBLAS_NUM_THREADS=${threads}`,
    "-x",
    `XGEN_BLAS_THREADS=${threads}`,
    Deno.execPath(),
    "run",
    "-A",
    o.script,
    ...o.args,
  ];
}
