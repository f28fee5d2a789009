/**
 * Every numeric flag of every kit command declares its range, and
 * a value just outside it is refused by the argument parser with one line naming the command, the
 * flag, the value and the range, before the command does anything (exit code 2).
 */
import assert from "node:assert/strict";
import { cli } from "./helpers/cli.ts";

/**
 * Each command (as it names itself in errors), the arguments that start it, and the flags it
 * requires (dummy values: parsing fails before they are used).
 */
const COMMANDS: [string, string[], string[]][] = [
  ["train", ["lib/cli/train.ts"], []],
  ["sample", ["lib/cli/sample.ts"], ["--run", "nope"]],
  ["eval", ["lib/cli/eval.ts"], ["--run", "nope"]],
  ["touch-up", ["lib/cli/touch_up.ts"], ["--image", "nope.png", "--prompt", "x"]],
  ["upscale", ["lib/cli/upscale.ts"], ["--model", "nope", "--image", "nope.png"]],
  ["word-swap", ["lib/cli/word_swap.ts"], ["--run", "nope"]],
  ["eval:compare", ["lib/cli/eval_compare.ts"], []],
  ["human-eval design", ["lib/cli/human_eval.ts", "design"], ["--models", "a,b", "--out", "x"]],
  ["human-eval simulate", ["lib/cli/human_eval.ts", "simulate"], ["--design", "x", "--out", "y"]],
  ["human-eval", ["lib/cli/human_eval.ts", "analyze"], ["--responses", "nope.csv"]],
];

const KIND: Record<string, string> = {
  int: "an integer",
  float: "a number",
  ints: "a comma-separated list of integers",
  floats: "a comma-separated list of numbers",
};

/** Our own stderr lines (Deno may note a node_modules lock held by a concurrent run). */
function ownLines(stderr: string): string[] {
  return stderr.split("\n").filter((l) => l !== "" && !l.startsWith("Blocking waiting"));
}

Deno.test("every numeric flag declares a range; one past it is one line naming flag, value, range", async () => {
  let flags = 0;
  for (const [name, script, required] of COMMANDS) {
    const help = await cli([...script, "--help"]);
    assert.equal(help.code, 0, help.stderr);
    const lines = help.stdout.split("\n").filter((l) =>
      /^ {2}--\S+ <(int|float|ints|floats)>/.test(l)
    );
    for (const line of lines) {
      const [, flag, type] = /^ {2}--(\S+) <(\w+)>/.exec(line)!;
      const range = /\((?:from (-?[\d.]+) to (-?[\d.]+)|> (-?[\d.]+) and <= (-?[\d.]+))[;)]/.exec(
        line,
      );
      assert.ok(range, `${name} --${flag}: no declared range in its help: ${line}`);
      const max = Number(range[2] ?? range[4]);
      const text = range[1] !== undefined
        ? `from ${range[1]} to ${range[2]}`
        : `> ${range[3]} and <= ${range[4]}`;
      const value = type.startsWith("int") ? String(max + 1) : String(max + 0.5);
      const r = await cli([...script, ...required, `--${flag}`, value]);
      assert.equal(r.code, 2, `${name} --${flag} ${value}: ${r.stderr}`);
      assert.deepEqual(ownLines(r.stderr), [
        `${name}: --${flag} expects ${KIND[type]} ${text}, got "${value}"`,
      ]);
      flags++;
    }
  }
  assert.ok(flags >= 45, `${flags} numeric flags checked`);
});

Deno.test("eval protocol files get the same ranges as the flags", async () => {
  const { parseProtocol } = await import("../lib/cli/eval.ts");
  const base = JSON.parse(
    await Deno.readTextFile(new URL("../evals/default.json", import.meta.url)),
  );
  const cases: [Record<string, unknown>, string][] = [
    [{ seed: 2 ** 32 }, 'field "seed" must be an integer from 0 to 4294967295, got 4294967296'],
    [
      { seed: 1e20 },
      'field "seed" must be an integer from 0 to 4294967295, got 100000000000000000000',
    ],
    [{ steps: 1001 }, 'field "steps" must be an integer from 1 to 1000, got 1001'],
    [{ n: 1 }, 'field "n" must be an integer from 2 to 10000000, got 1'],
    [{ guidance: [1, 101] }, 'field "guidance" must be a non-empty array of numbers from 0 to 100'],
  ];
  for (const [patch, want] of cases) {
    assert.throws(
      () => parseProtocol(JSON.stringify({ ...base, ...patch }), "p.json"),
      (e: Error) => {
        assert.equal(e.message, `protocol p.json: ${want}`);
        return true;
      },
    );
  }
  assert.equal(
    parseProtocol(JSON.stringify({ ...base, seed: 2 ** 32 - 1 }), "p.json").seed,
    2 ** 32 - 1,
  );
});
