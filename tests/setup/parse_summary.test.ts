/**
 * Tests of the CI helpers in tests/setup: the deno-test summary parser used by `.ci/run`, and
 * the dependency installer's `--check` / `--list` modes (against dpkg's own answer).
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { withTempDir } from "../helpers/temp_dir.ts";

const PARSER = fileURLToPath(new URL("./parse_summary.sh", import.meta.url));
const ENSURE = fileURLToPath(new URL("./ensure_deps.sh", import.meta.url));

async function sh(args: string[], stdin?: string) {
  const child = new Deno.Command("bash", {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const r = await child.output();
  const dec = new TextDecoder();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}

/** [log text, expected line, expected exit status] */
const CASES: Array<[string, string, number]> = [
  ["ok | 42 passed (3 steps) | 0 failed | 2 ignored (12s)\n", "tests: 42 passed, 0 failed", 0],
  ["FAILED | 40 passed | 2 failed (1m3s)\n", "tests: 40 passed, 2 failed", 1],
  ["ok | 1 passed | 0 failed (15ms)", "tests: 1 passed, 0 failed", 0],
  // Real coloured output as Deno prints it without NO_COLOR.
  [
    "\x1b[0m\x1b[31mFAILED\x1b[0m | 2 passed (2 steps) | 1 failed | 1 ignored " +
    "\x1b[0m\x1b[38;5;245m(20ms)\x1b[0m\n\n\x1b[0m\x1b[1m\x1b[31merror\x1b[0m: Test failed\n",
    "tests: 2 passed, 1 failed",
    1,
  ],
  // A test that printed a summary-like line earlier must not win over the real (last) one.
  [
    "ok | 99 passed | 0 failed (1ms)\nsome output\nFAILED | 3 passed | 4 failed (2s)\n",
    "tests: 3 passed, 4 failed",
    1,
  ],
  // Indented lines are test output, not Deno's summary.
  ["  ok | 5 passed | 0 failed (1s)\n", "tests: 0 passed, 1 failed", 1],
  // No summary at all: type-check error or crash.
  ["error: TS2304 [ERROR]: Cannot find name 'x'.\n", "tests: 0 passed, 1 failed", 1],
  ["", "tests: 0 passed, 1 failed", 1],
  // FAILED with zero failures (e.g. the "only" option) still fails.
  ["FAILED | 1 passed | 0 failed | 1 filtered out (3ms)\n", "tests: 1 passed, 1 failed", 1],
  ["ok | 0 passed | 0 failed | 1 ignored (9ms)\n", "tests: 0 passed, 0 failed", 0],
];

Deno.test("parse_summary.sh reduces deno test logs to `tests: N passed, M failed`", async () => {
  for (const [log, line, code] of CASES) {
    const fromStdin = await sh([PARSER], log);
    assert.equal(fromStdin.stdout, `${line}\n`, JSON.stringify(log));
    assert.equal(fromStdin.code, code, JSON.stringify(log));
  }
});

Deno.test("parse_summary.sh reads a log file and names an unreadable one", async () => {
  await withTempDir("xgen_parse_summary_", async (dir) => {
    await Deno.writeTextFile(`${dir}/log`, "running 3 tests\nok | 3 passed | 0 failed (1s)\n");
    const r = await sh([PARSER, `${dir}/log`]);
    assert.deepEqual([r.code, r.stdout], [0, "tests: 3 passed, 0 failed\n"]);
    const missing = await sh([PARSER, `${dir}/absent.log`]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /absent\.log: expected a readable deno test log/);
  });
});

Deno.test("ensure_deps.sh --check agrees with dpkg about every listed package", async () => {
  const list = await sh([ENSURE, "--list"]);
  assert.equal(list.code, 0, list.stderr);
  const packages = list.stdout.trim().split("\n");
  assert.ok(packages.length > 0);
  for (const p of packages) assert.match(p, /^[a-z0-9][a-z0-9.+-]+$/, `bad package name "${p}"`);
  assert.equal(new Set(packages).size, packages.length, "duplicate package in the list");
  // Independent answer: ask dpkg-query for each package's status.
  const missing: string[] = [];
  for (const p of packages) {
    const q = await sh(["-c", `dpkg-query -W -f='\${Status}' ${p} 2>/dev/null || true`]);
    if (!q.stdout.includes("install ok installed")) missing.push(p);
  }
  const check = await sh([ENSURE, "--check"]);
  if (missing.length === 0) {
    assert.equal(check.code, 0, check.stderr);
    assert.equal(check.stdout, `ensure_deps: all ${packages.length} system packages present\n`);
  } else {
    assert.equal(check.code, 1);
    assert.equal(check.stderr, `ensure_deps: missing: ${missing.join(" ")}\n`);
  }
  const bad = await sh([ENSURE, "--bogus"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown argument '--bogus'/);
});
