/**
 * Set up the CPU fast path before a command trains or samples: OpenBLAS (GEMMs
 * through FFI) and a C compiler (the kit's element-wise kernels, built on first use). When they
 * are missing, the command installs their Debian packages itself where it may (root, or
 * passwordless sudo), else prints one block saying what is slower and the exact command that
 * fixes it, then carries on with the fallback. `XGEN_AUTO_INSTALL=0` turns installing off.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { setUpFastPath } from "./fast_path.ts";
 *
 * // Before initCompute("auto"): setUpFastPath("auto"). Here with a machine that lacks OpenBLAS,
 * // runs as root with apt, and an install that is only recorded.
 * const probes = {
 *   openblas: () => false,
 *   nativeKernels: () => true,
 *   installed: () => new Set<string>(),
 *   host: () => ({ apt: true, root: true, sudo: "none" as const }),
 * };
 * let ran: string[][] = [];
 * const runSteps = (steps: string[][]) => (ran = steps, Promise.resolve(null));
 * const log = () => {};
 * assert.equal(
 *   await setUpFastPath("auto", { probes, runSteps, log, env: () => undefined }),
 *   "installed",
 * );
 * assert.deepEqual(ran.at(-1)?.at(-1), "libopenblas0-pthread");
 * ```
 * @module
 */
import { loadOpenBlas, OPENBLAS_PATHS } from "../backend/openblas.ts";
import { loadNativeKernels, nativeCacheDir } from "../backend/native_kernels.ts";
import { FAST_PATH_GROUPS, type PackageGroup, packagesIn } from "./system_packages.ts";
import { type HostAccess, type InstallPlan, planInstall } from "./install_plan.ts";
import { installedPackages, probeHost, runInstallSteps } from "./host_access.ts";

/**
 * `--backend` values that run on OpenBLAS: `auto` picks the BLAS CPU backend wherever OpenBLAS
 * loads, which the fast path makes true; that backend answers to `cpu` and `cpu-blas`.
 */
export const FAST_PATH_BACKENDS: readonly string[] = ["auto", "cpu", "cpu-blas"];

/** The environment variable that, set to `0`, stops commands from installing packages. */
export const AUTO_INSTALL_ENV = "XGEN_AUTO_INSTALL";

/** What {@link setUpFastPath} asks the machine; tests pass their own. */
export interface FastPathProbes {
  /** OpenBLAS opens through FFI. */
  openblas(): boolean;
  /** The kit's C kernels build (or are cached) and load. */
  nativeKernels(): boolean;
  /** Which of these Debian packages are installed; null off Debian (no dpkg). */
  installed(names: readonly string[]): Set<string> | null;
  /** apt-get, root, sudo; only asked when something is missing. */
  host(): HostAccess;
}

/** The probes of this machine. */
export const SYSTEM_PROBES: FastPathProbes = {
  // A copy of the path list bypasses loadOpenBlas's per-process cache, so a library installed
  // just after this probe still loads when the backend starts.
  openblas: () => loadOpenBlas([...OPENBLAS_PATHS]) !== null,
  // A custom cacheDir bypasses the per-process cache the same way; a library built here lands
  // in the usual cache, so the backend's own load reuses it instead of compiling again.
  nativeKernels: () => loadNativeKernels({ cacheDir: nativeCacheDir() }) !== null,
  installed: installedPackages,
  host: probeHost,
};

/** One part of the fast path that does not work here. */
export interface FastPathGap {
  group: PackageGroup;
  /** What is missing, for people. */
  what: string;
  /** What runs instead and what it costs. */
  fallback: string;
  /** Its packages that dpkg does not report installed (all of them off Debian). */
  missing: string[];
}

/** Options of {@link fastPathGaps} and {@link setUpFastPath}. */
export interface FastPathOptions {
  probes?: FastPathProbes;
  /** Environment lookup (default `Deno.env.get`). */
  env?: (name: string) => string | undefined;
  /** Where the notes go (default `console.error`: stdout may be a command's result). */
  log?: (line: string) => void;
  /** Runs an install plan's steps; null on success, else what failed. */
  runSteps?: (steps: string[][]) => Promise<string | null>;
}

function describe(group: PackageGroup, backend: string): { what: string; fallback: string } {
  if (group === "blas") {
    return {
      what: "OpenBLAS",
      fallback: backend === "auto"
        ? "the run falls back to the wasm backend, several times slower"
        : `--backend ${backend} falls back to stock TensorFlow.js kernels, far slower`,
    };
  }
  return {
    what: "C compiler",
    fallback: "the kit's C kernels run as TypeScript, about 2x slower",
  };
}

/**
 * The parts of the fast path that do not work here and can be fixed by installing packages.
 * A part that fails although dpkg has all its packages (a broken install, no FFI permission) is
 * left out: installing would not help, and `initBackend` names the cause itself.
 *
 * @example
 * ```ts
 * fastPathGaps("auto").map((g) => g.missing); // [] when OpenBLAS and the compiler work
 * ```
 */
export function fastPathGaps(backend: string, opts: FastPathOptions = {}): FastPathGap[] {
  const probes = opts.probes ?? SYSTEM_PROBES;
  const env = opts.env ?? ((k: string) => Deno.env.get(k));
  const nativeOff = ["0", "false"].includes(env("XGEN_NATIVE_KERNELS") ?? "");
  const gaps: FastPathGap[] = [];
  for (const group of FAST_PATH_GROUPS) {
    if (group === "cc" && nativeOff) continue;
    const works = group === "blas" ? probes.openblas() : probes.nativeKernels();
    if (works) continue;
    const names = packagesIn([group]);
    const have = probes.installed(names);
    const missing = have === null ? names : names.filter((n) => !have.has(n));
    if (missing.length) gaps.push({ group, ...describe(group, backend), missing });
  }
  return gaps;
}

/**
 * The block printed when the fast path is missing and this process does not install it: what is
 * slower and why, and the exact command.
 *
 * @example
 * ```ts
 * import { planInstall } from "./install_plan.ts";
 * const gaps = fastPathGaps("auto");
 * const plan = planInstall(gaps.flatMap((g) => g.missing), SYSTEM_PROBES.host());
 * if (plan.kind === "manual") console.error(fastPathAdvice(gaps, plan).join("\n"));
 * ```
 */
export function fastPathAdvice(
  gaps: readonly FastPathGap[],
  plan: Extract<InstallPlan, { kind: "manual" }>,
): string[] {
  const lines = ["xgen-kit: the CPU fast path is not set up on this machine:"];
  for (const g of gaps) lines.push(`  - no ${g.what} (${g.missing.join(" ")}): ${g.fallback}`);
  if (plan.command === null) {
    lines.push(
      `  Install them with your package manager (Debian names: ${plan.packages.join(" ")}), ` +
        "then start this command again.",
    );
  } else {
    lines.push(
      `  Not installed automatically: ${plan.reason}. To set it up, run:`,
      `    ${plan.command}`,
      "  then start this command again.",
    );
  }
  lines.push("  Continuing without them.");
  return lines;
}

/** What {@link setUpFastPath} did. */
export type FastPathOutcome =
  /** Not a run on the BLAS CPU backend (`--backend wasm`, ...): nothing checked. */
  | "not-needed"
  /** Everything was in place. */
  | "ready"
  /** Missing packages were installed. */
  | "installed"
  /** The advice block was printed (including after a failed install). */
  | "advised";

/**
 * Make sure the CPU fast path is set up before `backend` (one of {@link FAST_PATH_BACKENDS}) starts:
 * install its missing Debian packages where this process may (root or passwordless sudo, and
 * `XGEN_AUTO_INSTALL` is not `0`), else print what to run. Never throws for a failed install:
 * the command carries on with the fallback.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { setUpFastPath } from "./fast_path.ts";
 *
 * assert.equal(await setUpFastPath("wasm"), "not-needed"); // no CPU fast path involved
 * // "ready" | "installed" | "advised" otherwise; XGEN_AUTO_INSTALL=0 only advises:
 * const probes = {
 *   openblas: () => false,
 *   nativeKernels: () => true,
 *   installed: () => new Set<string>(),
 *   host: () => ({ apt: true, root: true, sudo: "none" as const }),
 * };
 * const env = (k: string) => k === "XGEN_AUTO_INSTALL" ? "0" : undefined;
 * assert.equal(await setUpFastPath("cpu", { probes, env, log: () => {} }), "advised");
 * ```
 */
export async function setUpFastPath(
  backend: string,
  opts: FastPathOptions = {},
): Promise<FastPathOutcome> {
  if (!FAST_PATH_BACKENDS.includes(backend)) return "not-needed";
  const gaps = fastPathGaps(backend, opts);
  if (gaps.length === 0) return "ready";
  const probes = opts.probes ?? SYSTEM_PROBES;
  const env = opts.env ?? ((k: string) => Deno.env.get(k));
  const log = opts.log ?? ((line: string) => console.error(line));
  const host = probes.host();
  const missing = gaps.flatMap((g) => g.missing);
  const plan = planInstall(missing, host, {
    install: env(AUTO_INSTALL_ENV) !== "0",
    installOffReason: `${AUTO_INSTALL_ENV}=0`,
  });
  if (plan.kind === "ready") return "ready";
  if (plan.kind === "manual") {
    for (const line of fastPathAdvice(gaps, plan)) log(line);
    return "advised";
  }
  log(
    `xgen-kit: installing the CPU fast path (${gaps.map((g) => g.what).join(", ")}; ` +
      `${AUTO_INSTALL_ENV}=0 skips this):`,
  );
  log(`  ${plan.command}`);
  const run = opts.runSteps ?? ((steps) => runInstallSteps(steps, { stdoutToStderr: true }));
  const failed = await run(plan.steps);
  if (failed === null) {
    log(`xgen-kit: installed ${plan.packages.join(" ")}`);
    return "installed";
  }
  // Same packages, but as a command for the user to run, with what went wrong as the reason.
  const retry = planInstall(missing, host, { install: false, installOffReason: failed });
  if (retry.kind === "manual") { for (const line of fastPathAdvice(gaps, retry)) log(line); }
  return "advised";
}
