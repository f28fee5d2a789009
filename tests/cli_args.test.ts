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
