/**
 * The commands that train set up the CPU fast path (OpenBLAS, a C compiler) the way
 * the test task does: install the Debian packages as root or with passwordless sudo, else print
 * one block naming the exact command, then carry on. Every machine here is simulated: probes,
 * the install runner and (for the command itself) apt-get, sudo and dpkg-query are fakes, so
 * nothing is installed.
 */
import assert from "node:assert/strict";
import { aptCommand, type HostAccess, planInstall } from "../lib/setup/install_plan.ts";
import {
  type FastPathOptions,
  type FastPathProbes,
  setUpFastPath,
} from "../lib/setup/fast_path.ts";
import { FAST_PATH_GROUPS, packagesIn, SYSTEM_PACKAGES } from "../lib/setup/system_packages.ts";
import { loadOpenBlas } from "../lib/backend/openblas.ts";
import { cli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

const FAST = ["libopenblas0-pthread", "gcc", "libc6-dev"];
const APT_UPDATE = ["apt-get", "update", "-qq"];
const APT_INSTALL = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", ...FAST];

const ROOT: HostAccess = { apt: true, root: true, sudo: "none" };
const SUDO: HostAccess = { apt: true, root: false, sudo: "passwordless" };
const SUDO_PASSWORD: HostAccess = { apt: true, root: false, sudo: "password" };
const NEITHER: HostAccess = { apt: true, root: false, sudo: "none" };

const USER_SUDO =
  "sudo apt-get update && sudo apt-get install -y --no-install-recommends libopenblas0-pthread " +
  "gcc libc6-dev";
const USER_SU =
  "su -c 'apt-get update && apt-get install -y --no-install-recommends libopenblas0-pthread gcc " +
  "libc6-dev'";
const USER_ROOT =
  "apt-get update && apt-get install -y --no-install-recommends libopenblas0-pthread gcc libc6-dev";

Deno.test("the fast path's packages are lib/setup's list, the one ensure_deps installs", () => {
  assert.deepEqual(packagesIn(FAST_PATH_GROUPS), FAST);
  const names = SYSTEM_PACKAGES.map((p) => p.name);
  assert.equal(new Set(names).size, names.length);
  for (const p of FAST) assert.ok(names.includes(p));
});

Deno.test("the README's Quick start shows the command the advice block prints for sudo users", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  assert.ok(readme.includes(`\n${USER_SUDO}\n`), "README Quick start: the apt-get line");
});

Deno.test("planInstall: (root, sudo, password sudo, neither) x (present, missing)", () => {
  for (const host of [ROOT, SUDO, SUDO_PASSWORD, NEITHER]) {
    assert.deepEqual(planInstall([], host), { kind: "ready" });
  }
  assert.deepEqual(planInstall(FAST, ROOT), {
    kind: "install",
    packages: FAST,
    steps: [APT_UPDATE, APT_INSTALL],
    command: `${APT_UPDATE.join(" ")} && ${APT_INSTALL.join(" ")}`,
  });
  // Passwordless sudo with -n: a training command must never wait at a password prompt.
  const sudo = planInstall(FAST, SUDO);
  assert.equal(sudo.kind, "install");
  assert.deepEqual(sudo.steps, [["sudo", "-n", ...APT_UPDATE], ["sudo", "-n", ...APT_INSTALL]]);
  assert.deepEqual(planInstall(FAST, SUDO_PASSWORD), {
    kind: "manual",
    packages: FAST,
    command: USER_SUDO,
    reason: "sudo needs a password",
  });
  // The interactive test setup may prompt.
  const prompting = planInstall(FAST, SUDO_PASSWORD, { allowPasswordPrompt: true });
  assert.equal(prompting.kind, "install");
  assert.deepEqual(prompting.steps, [["sudo", ...APT_UPDATE], ["sudo", ...APT_INSTALL]]);
  const neither = planInstall(FAST, NEITHER, { allowPasswordPrompt: true });
  assert.equal(neither.kind, "manual");
  assert.equal(neither.command, USER_SU);
  assert.match(neither.reason, /needs root/);
});

Deno.test("planInstall: no apt-get, or installing switched off", () => {
  assert.deepEqual(planInstall(["gcc"], { apt: false, root: true, sudo: "none" }), {
    kind: "manual",
    packages: ["gcc"],
    command: null,
    reason: "apt-get is not available here",
  });
  const off = planInstall(FAST, ROOT, { install: false, installOffReason: "XGEN_AUTO_INSTALL=0" });
  assert.deepEqual(off, {
    kind: "manual",
    packages: FAST,
    command: USER_ROOT,
    reason: "XGEN_AUTO_INSTALL=0",
  });
  assert.equal(
    aptCommand(["gcc"], "sudo"),
    USER_SUDO.replace("libopenblas0-pthread gcc libc6-dev", "gcc"),
  );
});

/** A simulated machine: which parts work, what dpkg has, and who we are. */
interface Machine {
  openblas: boolean;
  native: boolean;
  /** Installed packages; null off Debian. */
  installed: string[] | null;
  host: HostAccess;
  env?: Record<string, string>;
  /** What the install runner answers (null: success). */
  installFails?: string;
}

async function simulate(backend: string, m: Machine) {
  const calls = { openblas: 0, native: 0, host: 0, runs: [] as string[][][] };
  const log: string[] = [];
  const probes: FastPathProbes = {
    openblas: () => (calls.openblas++, m.openblas),
    nativeKernels: () => (calls.native++, m.native),
    installed: (names) => m.installed && new Set(names.filter((n) => m.installed!.includes(n))),
    host: () => (calls.host++, m.host),
  };
  const opts: FastPathOptions = {
    probes,
    env: (k) => m.env?.[k],
    log: (line) => log.push(line),
    runSteps: (steps) => {
      calls.runs.push(steps);
      return Promise.resolve(m.installFails ?? null);
    },
  };
  const outcome = await setUpFastPath(backend, opts);
  return { outcome, log, calls };
}

const MISSING = { openblas: false, native: false, installed: [] };
const PRESENT = { openblas: true, native: true, installed: FAST };

Deno.test("setUpFastPath: everything present is a silent no-op for root, sudo and neither", async () => {
  for (const host of [ROOT, SUDO, NEITHER]) {
    const r = await simulate("auto", { ...PRESENT, host });
    assert.equal(r.outcome, "ready");
    assert.deepEqual(r.log, []);
    // sudo is not even asked when nothing is missing.
    assert.equal(r.calls.host, 0);
    assert.deepEqual(r.calls.runs, []);
  }
});

Deno.test("setUpFastPath: root and passwordless sudo install the missing packages", async () => {
  const root = await simulate("auto", { ...MISSING, host: ROOT });
  assert.equal(root.outcome, "installed");
  assert.deepEqual(root.calls.runs, [[APT_UPDATE, APT_INSTALL]]);
  assert.deepEqual(root.log, [
    "xgen-kit: installing the CPU fast path (OpenBLAS, C compiler; " +
    "XGEN_AUTO_INSTALL=0 skips this):",
    `  ${APT_UPDATE.join(" ")} && ${APT_INSTALL.join(" ")}`,
    "xgen-kit: installed libopenblas0-pthread gcc libc6-dev",
  ]);
  const sudo = await simulate("cpu-blas", { ...MISSING, host: SUDO });
  assert.equal(sudo.outcome, "installed");
  assert.deepEqual(sudo.calls.runs, [[
    ["sudo", "-n", ...APT_UPDATE],
    ["sudo", "-n", ...APT_INSTALL],
  ]]);
});

Deno.test("setUpFastPath: without root or sudo it prints one block naming the exact command", async () => {
  const r = await simulate("auto", { ...MISSING, host: NEITHER });
  assert.equal(r.outcome, "advised");
  assert.deepEqual(r.calls.runs, []);
  assert.deepEqual(r.log, [
    "xgen-kit: the CPU fast path is not set up on this machine:",
    "  - no OpenBLAS (libopenblas0-pthread): the run falls back to the wasm backend, several " +
    "times slower",
    "  - no C compiler (gcc libc6-dev): the kit's C kernels run as TypeScript, about 2x slower",
    "  Not installed automatically: installing needs root, and this process is not root and has " +
    "no sudo. To set it up, run:",
    `    ${USER_SU}`,
    "  then start this command again.",
    "  Continuing without them.",
  ]);
  const pw = await simulate("cpu", { ...MISSING, host: SUDO_PASSWORD });
  assert.equal(pw.outcome, "advised");
  assert.ok(pw.log.includes(`    ${USER_SUDO}`), pw.log.join("\n"));
  assert.match(pw.log[1], /--backend cpu falls back to stock TensorFlow.js kernels/);
});

Deno.test("setUpFastPath: only what is missing, and only for runs on OpenBLAS", async () => {
  // OpenBLAS works, the compile fails, dpkg has gcc but not the headers: only libc6-dev.
  const headers = await simulate("auto", {
    openblas: true,
    native: false,
    installed: ["gcc"],
    host: ROOT,
  });
  assert.deepEqual(headers.calls.runs, [[
    APT_UPDATE,
    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "libc6-dev"],
  ]]);
  // A part that fails although dpkg has its packages cannot be fixed by installing.
  const broken = await simulate("auto", {
    openblas: false,
    native: false,
    installed: FAST,
    host: ROOT,
  });
  assert.equal(broken.outcome, "ready");
  assert.deepEqual(broken.log, []);
  // Native kernels switched off: the compiler is not wanted (nor probed).
  const off = await simulate("auto", {
    openblas: true,
    native: false,
    installed: [],
    host: ROOT,
    env: { XGEN_NATIVE_KERNELS: "0" },
  });
  assert.equal(off.outcome, "ready");
  assert.equal(off.calls.native, 0);
  for (const backend of ["wasm", "cpu-js", "webgpu", "tensorflow"]) {
    const r = await simulate(backend, { ...MISSING, host: ROOT });
    assert.equal(r.outcome, "not-needed");
    assert.equal(r.calls.openblas + r.calls.native + r.calls.host, 0);
  }
});

Deno.test("setUpFastPath: XGEN_AUTO_INSTALL=0, a failed install, and no apt-get all advise", async () => {
  const off = await simulate("auto", { ...MISSING, host: ROOT, env: { XGEN_AUTO_INSTALL: "0" } });
  assert.equal(off.outcome, "advised");
  assert.deepEqual(off.calls.runs, []);
  assert.ok(
    off.log.includes("  Not installed automatically: XGEN_AUTO_INSTALL=0. To set it up, run:"),
  );
  assert.ok(off.log.includes(`    ${USER_ROOT}`));

  const failed = await simulate("auto", {
    ...MISSING,
    host: SUDO,
    installFails: "'sudo -n apt-get update -qq' exited with 100",
  });
  assert.equal(failed.outcome, "advised");
  assert.equal(failed.calls.runs.length, 1);
  assert.ok(failed.log.includes(`    ${USER_SUDO}`), failed.log.join("\n"));
  assert.ok(failed.log.some((l) => l.includes("exited with 100")));

  const other = await simulate("auto", {
    ...MISSING,
    installed: null,
    host: { apt: false, root: true, sudo: "none" },
  });
  assert.equal(other.outcome, "advised");
  assert.match(other.log.join("\n"), /with your package manager \(Debian names: libopenblas0/);
});

/**
 * A bin folder of fakes that record their arguments: dpkg-query (nothing installed), apt-get,
 * sudo (passwordless, runs the rest through the fakes). With it first on PATH and no compiler,
 * `deno task train` sees a fresh machine and "installs" into the log only.
 */
async function fakeMachine(dir: string): Promise<Record<string, string>> {
  const bin = `${dir}/bin`;
  await Deno.mkdir(bin);
  const log = `${dir}/calls.log`;
  const fake = (body: string) => `#!/usr/bin/env bash\n${body}\n`;
  await Deno.writeTextFile(`${bin}/dpkg-query`, fake("exit 1"));
  await Deno.writeTextFile(
    `${bin}/apt-get`,
    fake(`[[ $1 == --version ]] || echo "apt-get $*" >> '${log}'`),
  );
  await Deno.writeTextFile(`${bin}/sudo`, fake(`[[ $1 == -n ]] && shift; "$@"`));
  for (const f of ["dpkg-query", "apt-get", "sudo"]) await Deno.chmod(`${bin}/${f}`, 0o755);
  return {
    PATH: `${bin}:${Deno.env.get("PATH")}`,
    CC: `${dir}/no-such-cc`,
    XGEN_CACHE_DIR: `${dir}/cache`,
  };
}

Deno.test("deno task train sets up the fast path before it starts, or says how first", async () => {
  await withTempDir("xgen_fast_path_", async (dir) => {
    const blasHere = loadOpenBlas() !== null;
    const env = await fakeMachine(dir);
    // --reuse of a missing run stops right after the backend starts: setup, backend, error.
    const args = ["lib/cli/train.ts", "--preset", "tiny", "--out", `${dir}/run`, "--reuse", dir];
    const r = await cli(args, { env });
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.split("\n");
    const first = lines.findIndex((l) => l.startsWith("xgen-kit: installing"));
    const backend = lines.findIndex((l) => l.startsWith("backend: "));
    assert.ok(first >= 0 && backend > first, r.stderr);
    // The compiler probe failed (and OpenBLAS's, on a machine without it): their packages, in
    // one apt-get install.
    const wanted = `${blasHere ? "" : "libopenblas0-pthread "}gcc libc6-dev`;
    const calls = await Deno.readTextFile(`${dir}/calls.log`);
    assert.equal(
      calls,
      `apt-get update -qq\napt-get install -y -qq --no-install-recommends ${wanted}\n`,
    );

    await Deno.remove(`${dir}/calls.log`);
    const off = await cli(args, { env: { ...env, XGEN_AUTO_INSTALL: "0" } });
    const offLines = off.stderr.split("\n");
    const block = offLines.indexOf(
      "xgen-kit: the CPU fast path is not set up on this machine:",
    );
    assert.ok(
      block >= 0 && offLines.findIndex((l) => l.startsWith("backend: ")) > block,
      off.stderr,
    );
    const shown = [aptCommand(wanted.split(" "), "root"), aptCommand(wanted.split(" "), "sudo")];
    assert.ok(offLines.some((l) => shown.some((c) => l === `    ${c}`)), off.stderr);
    assert.equal(await Deno.stat(`${dir}/calls.log`).then(() => true, () => false), false);
  });
});
