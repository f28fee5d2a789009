/**
 * Deno-side wrapper around `run_notebook.py`: executes a notebook headless with Deno's Jupyter
 * kernel (the same deno binary as the caller) and returns the exit status, logs and the
 * executed notebook.
 *
 * @example
 * ```ts
 * const missing = notebookDepsMissing();
 * if (missing === null) {
 *   const r = await runNotebook({ notebook: "notebooks/01_training.ipynb", output: "/tmp/o.ipynb" });
 *   console.log(r.code, r.executed?.cells.length);
 * }
 * ```
 * @module
 */

import { fileURLToPath } from "node:url";
import { type Notebook, parseNotebook } from "./notebook.ts";

/** Absolute path of the Python runner script. */
export const RUNNER_SCRIPT: string = fileURLToPath(new URL("./run_notebook.py", import.meta.url));

/** Debian's interpreter: the one apt's python3-nbclient installs into (PATH may differ). */
export const DEFAULT_PYTHON = "/usr/bin/python3";

/** Options of {@linkcode runNotebook}. */
export interface RunNotebookOptions {
  /** Notebook to execute (never modified). */
  notebook: string;
  /** Where the executed notebook is written (also on failure). */
  output: string;
  /** Deno binary for the kernel; default `Deno.execPath()` (the deno running this code). */
  deno?: string;
  /** Python interpreter with nbclient/jupyter_client; default `/usr/bin/python3`. */
  python?: string;
  /** Per-cell timeout in seconds (default 600). */
  cellTimeoutS?: number;
  /** Quiet period after `idle` in ms before a cell counts as finished (default 300). */
  quietMs?: number;
  /** Wait before each asynchronous-error check in ms (default 50). */
  asyncWaitMs?: number;
  /** Wait before the check after the last cell in ms (default 500). */
  finalWaitMs?: number;
  /** Kernel working directory (default: the notebook's folder). */
  cwd?: string;
}

/** Outcome of {@linkcode runNotebook}. */
export interface RunNotebookResult {
  /** Runner exit status: 0 ok, 1 a cell failed, 2 bad input or kernel start failure. */
  code: number;
  stdout: string;
  stderr: string;
  /** The executed notebook read back from `output`, or null when none was written. */
  executed: Notebook | null;
}

/**
 * Why notebooks cannot be executed here (missing interpreter or Python packages), or null
 * when they can. Synchronous so tests can decide at registration time whether to skip.
 *
 * @example
 * ```ts
 * const reason = notebookDepsMissing();
 * Deno.test({ name: "nb", ignore: reason !== null, fn: async () => {} });
 * ```
 */
export function notebookDepsMissing(python: string = DEFAULT_PYTHON): string | null {
  try {
    const r = new Deno.Command(python, {
      args: ["-c", "import nbclient, nbformat, jupyter_client"],
      stdout: "null",
      stderr: "piped",
    }).outputSync();
    if (r.success) return null;
    const err = new TextDecoder().decode(r.stderr).trim().split("\n").at(-1) ?? "";
    return `${python} cannot import nbclient/nbformat/jupyter_client (${err}); ` +
      "run `bash tests/setup/ensure_deps.sh`";
  } catch (e) {
    return `${python} not runnable (${
      (e as Error).message
    }); run \`bash tests/setup/ensure_deps.sh\``;
  }
}

/** Validated command-line value of a numeric option (errors name the option). */
function numberArg(name: string, value: number, min: number): string {
  if (!Number.isFinite(value) || value < min) {
    throw new Error(`runNotebook: ${name}: expected a number >= ${min}, got ${value}`);
  }
  return String(value);
}

/**
 * Execute `opts.notebook` with Deno's kernel via the Python runner and read back the result.
 *
 * @example
 * ```ts
 * const r = await runNotebook({ notebook: "nb.ipynb", output: "out.ipynb", cellTimeoutS: 60 });
 * if (r.code !== 0) throw new Error(r.stderr);
 * ```
 */
export async function runNotebook(opts: RunNotebookOptions): Promise<RunNotebookResult> {
  const args = [RUNNER_SCRIPT, opts.notebook, "--output", opts.output];
  args.push("--deno", opts.deno ?? Deno.execPath());
  const flags: Array<[string, string, number | undefined, number]> = [
    ["cellTimeoutS", "--timeout", opts.cellTimeoutS, 0.001],
    ["quietMs", "--quiet-ms", opts.quietMs, 0],
    ["asyncWaitMs", "--async-wait-ms", opts.asyncWaitMs, 0],
    ["finalWaitMs", "--final-wait-ms", opts.finalWaitMs, 0],
  ];
  for (const [name, flag, value, min] of flags) {
    if (value !== undefined) args.push(flag, numberArg(name, value, min));
  }
  if (opts.cwd !== undefined) args.push("--cwd", opts.cwd);
  // The runner's output file may be left over from an earlier run: remove it so `executed`
  // reflects this run only.
  await Deno.remove(opts.output).catch(() => {});
  const r = await new Deno.Command(opts.python ?? DEFAULT_PYTHON, {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  let executed: Notebook | null = null;
  try {
    executed = parseNotebook(await Deno.readTextFile(opts.output), opts.output);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const dec = new TextDecoder();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr), executed };
}
