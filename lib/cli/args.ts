/**
 * Command-line flags for the kit's commands, on top of Node's `util.parseArgs` (strict: unknown
 * flags are errors). Adds typed numbers, choices, repeatable flags and one-line error messages.
 *
 * @example
 * ```ts
 * const spec = {
 *   steps: { type: "int", default: 100, help: "training steps" },
 *   backend: { type: "choice", choices: ["cpu", "wasm"], default: "cpu", help: "compute backend" },
 * } satisfies FlagSpec;
 * const flags = parseFlags(["--steps", "20"], spec, "train"); // { steps: 20, backend: "cpu" }
 * ```
 * @module
 */
import { parseArgs } from "node:util";

/** One flag's declaration. */
export type Flag =
  | { type: "string"; default?: string; help: string; required?: boolean }
  | { type: "strings"; default?: string[]; help: string }
  | { type: "int"; default?: number; help: string; min?: number }
  | { type: "float"; default?: number; help: string; min?: number }
  | { type: "floats"; default?: number[]; help: string }
  | { type: "choice"; choices: readonly string[]; default?: string; help: string }
  | { type: "bool"; default?: boolean; help: string };

/** A command's flags by name (long form, `--name`). */
export type FlagSpec = Record<string, Flag>;

type ValueOf<F extends Flag> = F extends { type: "string" } ? string
  : F extends { type: "strings" } ? string[]
  : F extends { type: "int" | "float" } ? number
  : F extends { type: "floats" } ? number[]
  : F extends { type: "choice" } ? string
  : boolean;

/** Parsed flags: every declared flag, `undefined` where not given and without default. */
export type Flags<S extends FlagSpec> = { [K in keyof S]: ValueOf<S[K]> } & { help: boolean };

/** A user error in the command line: printed as one line, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Parse `argv` against `spec`; throws {@link UsageError} naming the flag on bad input. */
export function parseFlags<S extends FlagSpec>(argv: string[], spec: S, command: string): Flags<S> {
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = {
    help: { type: "boolean" },
  };
  for (const [name, f] of Object.entries(spec)) {
    options[name] = f.type === "bool"
      ? { type: "boolean" }
      : { type: "string", multiple: f.type === "strings" };
  }
  let raw: Record<string, unknown>;
  try {
    raw = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw new UsageError(`${command}: ${(e as Error).message} (see --help)`);
  }
  const out: Record<string, unknown> = { help: raw.help === true };
  for (const [name, f] of Object.entries(spec)) {
    const v = raw[name];
    if (v === undefined) {
      if (f.type === "string" && f.required && !raw.help) {
        throw new UsageError(`${command}: --${name} is required (${f.help})`);
      }
      out[name] = f.default;
      continue;
    }
    out[name] = convert(command, name, f, v);
  }
  return out as Flags<S>;
}

function convert(command: string, name: string, f: Flag, v: unknown): unknown {
  const bad = (what: string) =>
    new UsageError(`${command}: --${name} expects ${what}, got ${JSON.stringify(v)}`);
  switch (f.type) {
    case "bool":
      return v;
    case "string":
    case "strings":
      return v;
    case "int": {
      const s = String(v);
      if (!/^-?\d+$/.test(s)) throw bad("an integer");
      const n = Number(s);
      if (f.min !== undefined && n < f.min) throw bad(`an integer >= ${f.min}`);
      return n;
    }
    case "float": {
      const n = Number(v);
      if (String(v).trim() === "" || !Number.isFinite(n)) throw bad("a number");
      if (f.min !== undefined && n < f.min) throw bad(`a number >= ${f.min}`);
      return n;
    }
    case "floats": {
      const parts = String(v).split(",").map((s) => s.trim());
      const ns = parts.map(Number);
      if (parts.some((s) => s === "") || ns.some((n) => !Number.isFinite(n))) {
        throw bad("a comma-separated list of numbers");
      }
      return ns;
    }
    case "choice":
      if (!f.choices.includes(String(v))) throw bad(`one of ${f.choices.join(", ")}`);
      return v;
  }
}

/** Help text for `spec`, one line per flag. */
export function helpText(command: string, summary: string, spec: FlagSpec): string {
  const lines = [`${command}: ${summary}`, "", "Flags:"];
  for (const [name, f] of Object.entries(spec)) {
    const kind = f.type === "choice" ? f.choices.join("|") : f.type;
    const def = f.default === undefined ? "" : ` (default ${JSON.stringify(f.default)})`;
    lines.push(`  --${name} <${kind}>  ${f.help}${def}`);
  }
  return lines.join("\n");
}

/**
 * Run a command's main function: usage errors and known failures become one line on stderr and
 * exit code 2 (usage) or 1 (failure), instead of a stack trace.
 */
export async function runMain(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (e) {
    const err = e as Error;
    if (err instanceof UsageError) {
      console.error(err.message);
      Deno.exit(2);
    }
    console.error(`error: ${err.message}`);
    if (Deno.env.get("XGEN_DEBUG")) console.error(err.stack);
    Deno.exit(1);
  }
}
