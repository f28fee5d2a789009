/**
 * Waiting for a benchmark's child process (one part or backend run in its own process, so a
 * crash or a hang costs that part alone) with a time limit.
 *
 * @example
 * ```ts
 * const r = await waitChild(new Deno.Command("true").spawn(), 10);
 * ```
 * @module
 */

/** What a child left: its exit, stdout and the stderr lines worth showing. */
export interface ChildOutcome {
  /** Killed at the time limit. */
  timedOut: boolean;
  success: boolean;
  code: number;
  stdout: string;
  /** Non-blank stderr lines, less Mesa's harmless XDG_RUNTIME_DIR complaints. */
  stderrLines: string[];
}

/**
 * Wait for `child` (spawned with piped stdout and stderr) at most `limitS` seconds, killing it
 * with SIGKILL at the limit.
 *
 * @example
 * ```ts
 * const cmd = new Deno.Command("sleep", { args: ["5"], stdout: "piped", stderr: "piped" });
 * const r = await waitChild(cmd.spawn(), 1); // r.timedOut === true
 * ```
 */
export async function waitChild(child: Deno.ChildProcess, limitS: number): Promise<ChildOutcome> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }, limitS * 1000);
  const res = await child.output();
  clearTimeout(timer);
  // Mesa's Vulkan loader complains about XDG_RUNTIME_DIR on headless machines: harmless noise.
  const stderrLines = new TextDecoder().decode(res.stderr).split("\n")
    .filter((l) => l.trim() !== "" && !l.includes("XDG_RUNTIME_DIR"));
  return {
    timedOut,
    success: res.success,
    code: res.code,
    stdout: new TextDecoder().decode(res.stdout),
    stderrLines,
  };
}
