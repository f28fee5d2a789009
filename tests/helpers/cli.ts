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

/**
 * `deno run -A ...args` in `cwd` (default: the repository root), without colours.
 *
 * @example
 * ```ts
 * const r = await cli(["lib/cli/train.ts", "--help"]);
 * ```
 */
export async function cli(args: string[], cwd: string = ROOT): Promise<CliResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...args],
    cwd,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
