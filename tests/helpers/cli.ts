/**
 * Run a kit command the way a user does (`deno run -A <script> ...args` from the repository root)
 * and capture its exit code and output, for the CLI tests.
 */

/** The repository root. */
export const ROOT: string = new URL("../..", import.meta.url).pathname;

/** Exit code, stdout and stderr of one command run. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Where and with which extra environment variables {@link cli} runs. */
export interface CliOptions {
  /** Working folder (default: the repository root). */
  cwd?: string;
  /** Variables added to the inherited environment. */
  env?: Record<string, string>;
}

/**
 * `deno run -A ...args` in the repository root (or `cwd`), without colours.
 *
 * @example
 * ```ts
 * const r = await cli(["lib/cli/train.ts", "--help"]);
 * const s = await cli(["lib/cli/sample.ts", "--help"], { env: { XGEN_DEBUG: "1" } });
 * ```
 */
export async function cli(args: string[], opts: string | CliOptions = {}): Promise<CliResult> {
  const o = typeof opts === "string" ? { cwd: opts } : opts;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...args],
    cwd: o.cwd ?? ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...o.env },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
