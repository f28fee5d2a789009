/**
 * Decide how missing Debian packages get installed: by this process (as root, or through sudo),
 * or by the user, with the exact command to run. Pure: what the machine allows comes in as a
 * {@link HostAccess}, so every case is testable without touching the system.
 *
 * @example
 * ```ts
 * const plan = planInstall(["gcc"], { apt: true, root: false, sudo: "none" });
 * // { kind: "manual", command: "su -c 'apt-get update && apt-get install -y ... gcc'", ... }
 * ```
 * @module
 */

/** What sudo allows: nothing (absent or not permitted), only with a password, or freely. */
export type SudoAccess = "none" | "password" | "passwordless";

/** What this machine lets the process do about packages. */
export interface HostAccess {
  /** `apt-get` runs here (Debian or Ubuntu). */
  apt: boolean;
  /** The process runs as root. */
  root: boolean;
  /** sudo as probed with `sudo -n true` (only consulted when not root). */
  sudo: SudoAccess;
}

/** Options of {@link planInstall}. */
export interface PlanOptions {
  /**
   * Use sudo even when it asks for a password (an interactive setup such as the test task's);
   * default false: a command that trains must never stop at a password prompt.
   */
  allowPasswordPrompt?: boolean;
  /** False: never install, only say what to run (why, in `reason`). Default true. */
  install?: boolean;
  /** Why installing is off, when `install` is false. */
  installOffReason?: string;
}

/** What to do about missing packages. */
export type InstallPlan =
  | { kind: "ready" }
  | {
    kind: "install";
    packages: string[];
    /** argv lists to run in order (apt-get update, then apt-get install). */
    steps: string[][];
    /** The steps as one shell line, for the log. */
    command: string;
  }
  | {
    kind: "manual";
    packages: string[];
    /** The exact shell line the user should run; null where apt-get is not available. */
    command: string | null;
    /** Why this process does not install them itself. */
    reason: string;
  };

/** The two apt-get steps, without any privilege prefix. */
function aptSteps(packages: readonly string[], quiet: boolean): string[][] {
  const q = quiet ? ["-qq"] : [];
  return [
    ["apt-get", "update", ...q],
    ["apt-get", "install", "-y", ...q, "--no-install-recommends", ...packages],
  ];
}

/**
 * The shell line that installs `packages` from a user's shell: as root directly, through sudo,
 * or through `su -c` where there is no sudo.
 *
 * @example
 * ```ts
 * aptCommand(["gcc"], "sudo");
 * // "sudo apt-get update && sudo apt-get install -y --no-install-recommends gcc"
 * ```
 */
export function aptCommand(packages: readonly string[], as: "root" | "sudo" | "su"): string {
  const steps = aptSteps(packages, false).map((s) => s.join(" "));
  if (as === "sudo") return steps.map((s) => `sudo ${s}`).join(" && ");
  if (as === "su") return `su -c '${steps.join(" && ")}'`;
  return steps.join(" && ");
}

/**
 * How to get `missing` installed on a machine with `host` access.
 *
 * @example
 * ```ts
 * planInstall([], { apt: true, root: false, sudo: "none" }); // { kind: "ready" }
 * planInstall(["gcc"], { apt: true, root: true, sudo: "none" }).kind; // "install"
 * ```
 */
export function planInstall(
  missing: readonly string[],
  host: HostAccess,
  opts: PlanOptions = {},
): InstallPlan {
  const packages = [...missing];
  if (packages.length === 0) return { kind: "ready" };
  if (!host.apt) {
    return { kind: "manual", packages, command: null, reason: "apt-get is not available here" };
  }
  const prefix = host.root
    ? []
    : host.sudo === "passwordless"
    ? ["sudo", "-n"]
    : host.sudo === "password" && opts.allowPasswordPrompt
    ? ["sudo"]
    : null;
  const userCommand = aptCommand(
    packages,
    host.root ? "root" : host.sudo === "none" ? "su" : "sudo",
  );
  if (opts.install === false) {
    const reason = opts.installOffReason ?? "installing is switched off";
    return { kind: "manual", packages, command: userCommand, reason };
  }
  if (prefix === null) {
    const reason = host.sudo === "password"
      ? "sudo needs a password"
      : "installing needs root, and this process is not root and has no sudo";
    return { kind: "manual", packages, command: userCommand, reason };
  }
  const steps = aptSteps(packages, true).map((s) => [...prefix, ...s]);
  return { kind: "install", packages, steps, command: steps.map((s) => s.join(" ")).join(" && ") };
}
