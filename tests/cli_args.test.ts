import assert from "node:assert/strict";
import { type FlagSpec, parseFlags, UsageError } from "../lib/cli/args.ts";

const spec = {
  steps: { type: "int", default: 10, help: "steps", min: 1 },
  lr: { type: "float", help: "learning rate" },
  prompt: { type: "strings", help: "prompt, repeatable" },
  guidance: { type: "floats", default: [7.5], help: "scales" },
  backend: { type: "choice", choices: ["cpu", "wasm"], default: "cpu", help: "backend" },
  resume: { type: "bool", default: false, help: "resume" },
} satisfies FlagSpec;

Deno.test("parseFlags converts types and applies defaults", () => {
  const f = parseFlags(
    ["--steps", "20", "--prompt", "a", "--prompt", "b c", "--guidance", "1,2.5", "--resume"],
    spec,
    "train",
  );
  assert.equal(f.steps, 20);
  assert.equal(f.lr, undefined);
  assert.deepEqual(f.prompt, ["a", "b c"]);
  assert.deepEqual(f.guidance, [1, 2.5]);
  assert.equal(f.backend, "cpu");
  assert.equal(f.resume, true);
});

Deno.test("parseFlags names the flag and what was expected", () => {
  const cases: [string[], RegExp][] = [
    [["--steps", "x"], /--steps expects an integer, got "x"/],
    [["--steps", "0"], /--steps expects an integer >= 1/],
    [["--lr", "nan"], /--lr expects a number/],
    [["--guidance", "1,,2"], /--guidance expects a comma-separated list/],
    [["--backend", "tpu"], /--backend expects one of cpu, wasm/],
    [["--nope"], /train: .*nope/],
  ];
  for (const [argv, re] of cases) {
    assert.throws(() => parseFlags(argv, spec, "train"), (e: unknown) => {
      assert.ok(e instanceof UsageError);
      assert.match((e as Error).message, re);
      return true;
    });
  }
});

/** The message of the UsageError `parseFlags(argv, spec)` throws (fails when it does not throw). */
function usageError(argv: string[], s: FlagSpec): string {
  try {
    parseFlags(argv, s, "train");
  } catch (e) {
    assert.ok(e instanceof UsageError, `UsageError, got ${e}`);
    return (e as Error).message;
  }
  assert.fail(`parseFlags(${JSON.stringify(argv)}) accepted it`);
}

const ranged = {
  steps: { type: "int", default: 10, help: "steps", min: 1 },
  seed: { type: "int", default: 0, help: "seed", min: 0, max: 2 ** 32 - 1 },
  checkpoint: { type: "int", help: "step", min: 1 },
  offset: { type: "int", help: "offset" },
  guidance: { type: "float", default: 4, help: "scale", min: 0, max: 100 },
  strength: { type: "float", default: 0.6, help: "strength", min: 0, minExclusive: true, max: 1 },
  scales: { type: "floats", help: "scales", min: 0, max: 100 },
  ts: { type: "ints", help: "timesteps", min: 0, max: 999 },
  range: { type: "choice", choices: ["-1-1", "0-255"], help: "input range" },
  prompt: { type: "strings", help: "prompt" },
} satisfies FlagSpec;

Deno.test("numbers out of range: one line naming the flag, the value and the allowed range", () => {
  const cases: [string[], string][] = [
    [["--steps", "-1"], 'train: --steps expects an integer >= 1, got "-1"'],
    [["--steps=-1"], 'train: --steps expects an integer >= 1, got "-1"'],
    [
      ["--seed", "99999999999999999999"],
      'train: --seed expects an integer from 0 to 4294967295, got "99999999999999999999"',
    ],
    [
      ["--seed", "4294967296"],
      'train: --seed expects an integer from 0 to 4294967295, got "4294967296"',
    ],
    [["--seed", "-3"], 'train: --seed expects an integer from 0 to 4294967295, got "-3"'],
    // No declared maximum: still a safe integer (larger ones lose digits as doubles).
    [
      ["--checkpoint", "9007199254740993"],
      'train: --checkpoint expects an integer from 1 to 9007199254740991, got "9007199254740993"',
    ],
    [
      ["--offset", "-9007199254740993"],
      'train: --offset expects an integer from -9007199254740991 to 9007199254740991, got "-9007199254740993"',
    ],
    [["--guidance", "100.5"], 'train: --guidance expects a number from 0 to 100, got "100.5"'],
    [["--guidance", "-0.5"], 'train: --guidance expects a number from 0 to 100, got "-0.5"'],
    [["--guidance", "1e400"], 'train: --guidance expects a number, got "1e400"'],
    [["--guidance", "0x10"], 'train: --guidance expects a number, got "0x10"'],
    [["--strength", "0"], 'train: --strength expects a number > 0 and <= 1, got "0"'],
    [
      ["--scales", "1,-2"],
      'train: --scales expects a comma-separated list of numbers from 0 to 100, got "1,-2"',
    ],
    [
      ["--scales", "-2,1"],
      'train: --scales expects a comma-separated list of numbers from 0 to 100, got "-2,1"',
    ],
    [
      ["--ts", "100,1000"],
      'train: --ts expects a comma-separated list of integers from 0 to 999, got "100,1000"',
    ],
    [
      ["--ts", "100,x"],
      'train: --ts expects a comma-separated list of integers from 0 to 999, got "100,x"',
    ],
  ];
  for (const [argv, want] of cases) {
    const msg = usageError(argv, ranged);
    assert.equal(msg, want, argv.join(" "));
  }
  // Bounds themselves are accepted, and negative values where the range allows them.
  const f = parseFlags(
    [
      "--seed",
      "4294967295",
      "--offset",
      "-5",
      "--strength",
      "1",
      "--scales",
      "0,100",
      "--ts",
      "0,999",
      "--range",
      "-1-1",
    ],
    ranged,
    "train",
  );
  assert.equal(f.seed, 4294967295);
  assert.equal(f.offset, -5);
  assert.equal(f.strength, 1);
  assert.deepEqual(f.scales, [0, 100]);
  assert.deepEqual(f.ts, [0, 999]);
  assert.equal(f.range, "-1-1");
});

Deno.test("parser errors are one line, also for a value that starts with a dash", () => {
  for (
    const argv of [["--prompt", "-x"], ["--prompt"], ["--steps"], ["stray"], ["--nope"]]
  ) {
    const msg = usageError(argv, ranged);
    assert.ok(!msg.includes("\n"), `one line for ${argv.join(" ")}: ${JSON.stringify(msg)}`);
    assert.match(msg, /^train: .*\(see --help\)$/);
  }
  assert.equal(
    usageError(["--prompt", "-x"], ranged),
    'train: --prompt expects a value, got the flag-like "-x" (write --prompt=-x for a value ' +
      "that starts with a dash) (see --help)",
  );
});

Deno.test("string flags run their check: one line naming the flag and the value", () => {
  const checked = {
    out: {
      type: "string",
      default: "ok",
      help: "where",
      check: (v: string) => {
        if (v.startsWith("s3://")) throw new Error("no built-in store for URL scheme s3://");
      },
    },
  } satisfies FlagSpec;
  assert.equal(
    usageError(["--out", "s3://b/p"], checked),
    "train: --out s3://b/p: no built-in store for URL scheme s3://",
  );
  assert.equal(parseFlags(["--out", "runs/x"], checked, "train").out, "runs/x");
  // --help skips checks, as it skips required flags.
  assert.equal(parseFlags(["--out", "s3://b/p", "--help"], checked, "train").help, true);
});
