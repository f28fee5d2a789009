/**
 * Ask the machine what {@link planInstall} needs (apt-get, root, sudo, dpkg's installed set) and
 * run an install plan's steps. The only part of lib/setup that touches the system.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { installedPackages, probeHost } from "./host_access.ts";
 * import { planInstall } from "./install_plan.ts";
 *
 * const have = installedPackages(["gcc"]); // Set {"gcc"}, or null off Debian
 * const host = probeHost(); // { apt, root, sudo }
 * const plan = planInstall(have?.has("gcc") ? [] : ["gcc"], host);
 * assert.ok(["ready", "install", "manual"].includes(plan.kind));
 * // On a machine that allows it: if (plan.kind === "install") await runInstallSteps(plan.steps);
 * ```
 * @module
 */
import type { HostAccess, SudoAccess } from "./install_plan.ts";

/** Run a command quietly; null when it cannot be started at all (not installed, no permission). */
function quietly(cmd: string, args: string[]): { ok: boolean; stdout: string } | null {
  try {
    const r = new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "null" })
      .outputSync();
    return { ok: r.success, stdout: new TextDecoder().decode(r.stdout) };
  } catch {
    return null;
  }
}

function isRoot(): boolean {
  try {
    return Deno.uid() === 0;
  } catch {
    return false; // no --allow-sys: assume not root, which only ever leads to advice
  }
}

/**
 * Probe apt-get, root and sudo. sudo is asked with `-n` (never prompts), and only when not root.
 *
 * @example
 * ```ts
 * probeHost(); // e.g. { apt: true, root: false, sudo: "passwordless" }
 * ```
 */
export function probeHost(): HostAccess {
  const apt = quietly("apt-get", ["--version"])?.ok ?? false;
  const root = isRoot();
  let sudo: SudoAccess = "none";
  if (!root) {
    const r = quietly("sudo", ["-n", "true"]);
    // sudo that runs but refuses `-n` wants a password (or does not allow this user at all; the
    // user then sees sudo's own answer when running the printed command).
    sudo = r === null ? "none" : r.ok ? "passwordless" : "password";
  }
  return { apt, root, sudo };
}

/**
 * Which of `names` dpkg reports as installed ("install ok installed"); null without dpkg-query.
 *
 * @example
 * ```ts
 * installedPackages(["gcc", "no-such-package"]); // Set {"gcc"}
 * ```
 */
export function installedPackages(names: readonly string[]): Set<string> | null {
  if (names.length === 0) return new Set();
  // Exits 1 when a name is unknown, yet still prints the known ones.
  const r = quietly("dpkg-query", ["-W", "-f=${Package}\t${Status}\n", ...names]);
  if (r === null) return null;
  const have = new Set<string>();
  for (const line of r.stdout.split("\n")) {
    const [name, status] = line.split("\t");
    if (status?.trim() === "install ok installed" && names.includes(name)) have.add(name);
  }
  return have;
}

/** Options of {@link runInstallSteps}. */
export interface RunStepsOptions {
  /**
   * Send the steps' stdout to this process's stderr, so a command whose stdout is its result
   * (a path, JSON) keeps it clean. Default false: inherit stdout.
   */
  stdoutToStderr?: boolean;
}

/**
 * Run argv lists in order, stopping at the first failure; returns null on success, else what
 * failed. apt-get runs with `DEBIAN_FRONTEND=noninteractive`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runInstallSteps } from "./host_access.ts";
 *
 * // Usually apt-get steps from planInstall, e.g. [["apt-get", "update", "-qq"]].
 * assert.equal(await runInstallSteps([["true"]]), null);
 * assert.equal(await runInstallSteps([["true"], ["false"]]), "'false' exited with 1");
 * ```
 */
export async function runInstallSteps(
  steps: readonly string[][],
  opts: RunStepsOptions = {},
): Promise<string | null> {
  for (const argv of steps) {
    const shown = `'${argv.join(" ")}'`;
    let code: number;
    try {
      const child = new Deno.Command(argv[0], {
        args: argv.slice(1),
        stdin: "inherit",
        stdout: opts.stdoutToStderr ? "piped" : "inherit",
        stderr: "inherit",
        env: { DEBIAN_FRONTEND: "noninteractive" },
      }).spawn();
      if (opts.stdoutToStderr) {
        await child.stdout.pipeTo(Deno.stderr.writable, { preventClose: true });
      }
      code = (await child.status).code;
    } catch (e) {
      return `${shown} could not start (${e instanceof Error ? e.message : String(e)})`;
    }
    if (code !== 0) return `${shown} exited with ${code}`;
  }
  return null;
}
