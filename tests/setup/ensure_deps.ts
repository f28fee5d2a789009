/**
 * What `tests/setup/ensure_deps.sh` runs: install every Debian package of lib/setup's list
 * (the test suite uses them all) when one is missing. A fast no-op when all are present.
 *
 * @example
 * ```sh
 * deno run --allow-run --allow-sys tests/setup/ensure_deps.ts           # install what is missing
 * deno run --allow-run --allow-sys tests/setup/ensure_deps.ts --check   # report; exit 1 if missing
 * deno run --allow-run --allow-sys tests/setup/ensure_deps.ts --list    # the list, one a line
 * ```
 * @module
 */
import { ALL_GROUPS, packagesIn } from "../../lib/setup/system_packages.ts";
import { planInstall } from "../../lib/setup/install_plan.ts";
import { installedPackages, probeHost, runInstallSteps } from "../../lib/setup/host_access.ts";

async function main(args: string[]): Promise<number> {
  const mode = args.length === 0 ? "--install" : args.length === 1 ? args[0] : args.join(" ");
  if (!["--install", "--check", "--list"].includes(mode)) {
    console.error(`ensure_deps: unknown argument '${mode}'; expected --check, --list or nothing`);
    return 2;
  }
  const packages = packagesIn(ALL_GROUPS);
  if (mode === "--list") {
    console.log(packages.join("\n"));
    return 0;
  }
  const have = installedPackages(packages) ?? new Set<string>();
  const missing = packages.filter((p) => !have.has(p));
  if (missing.length === 0) {
    console.log(`ensure_deps: all ${packages.length} system packages present`);
    return 0;
  }
  if (mode === "--check") {
    console.error(`ensure_deps: missing: ${missing.join(" ")}`);
    return 1;
  }
  // The test task runs at a terminal: sudo may ask for a password here.
  const plan = planInstall(missing, probeHost(), { allowPasswordPrompt: true });
  if (plan.kind === "ready") return 0;
  if (plan.kind === "manual") {
    console.error(
      `ensure_deps: missing packages (${missing.join(" ")}): ${plan.reason}; ` +
        (plan.command ? `run: ${plan.command}` : "install them by hand"),
    );
    return 1;
  }
  console.log(`ensure_deps: installing: ${missing.join(" ")}`);
  const failed = await runInstallSteps(plan.steps);
  if (failed) {
    console.error(`ensure_deps: ${failed}`);
    return 1;
  }
  console.log(`ensure_deps: installed ${missing.length} package(s)`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
