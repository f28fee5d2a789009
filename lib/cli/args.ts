/**
 * Command-line flags for the kit's commands, on top of Node's `util.parseArgs` (strict: unknown
 * flags are errors). Adds typed numbers with declared ranges, choices, repeatable flags, checks of
 * string values (paths, URLs) and one-line error messages, so every command validates every flag
 * the same way before it does any work.
 *
 * @example
 * ```ts
 * const spec = {
 *   steps: { type: "int", default: 100, min: 1, max: 1e6, help: "training steps" },
 *   seed: { type: "int", default: 0, ...SEED_RANGE, help: "seed" },
 *   backend: { type: "choice", choices: ["cpu-blas", "wasm"], default: "cpu-blas", help: "compute backend" },
 * } satisfies FlagSpec;
 * const flags = parseFlags(["--steps", "20"], spec, "train");
 * // { steps: 20, seed: 0, backend: "cpu-blas", help: false }
 * ```
 * @module
 */
import { parseArgs } from "node:util";

/**
 * Checks a string flag's value; throws an Error whose message says what is wrong (without the
 * value: {@link parseFlags} prefixes the flag and the value).
 */
export type FlagCheck = (value: string) => void;

/**
 * One flag's declaration. Numbers accept only values in `[min, max]` (`(min, max]` with
 * `minExclusive`); integers are also always safe integers (|n| <= 2^53 - 1), so a value is never
 * rounded on the way in.
 */
export type Flag =
  | { type: "string"; default?: string; help: string; required?: boolean; check?: FlagCheck }
  | { type: "strings"; default?: string[]; help: string; check?: FlagCheck }
  | { type: "int"; default?: number; help: string; min?: number; max?: number }
  | { type: "ints"; default?: number[]; help: string; min?: number; max?: number }
  | {
    type: "float";
    default?: number;
    help: string;
    min?: number;
    max?: number;
    minExclusive?: boolean;
  }
  | { type: "floats"; default?: number[]; help: string; min?: number; max?: number }
  | { type: "choice"; choices: readonly string[]; default?: string; help: string }
  | { type: "bool"; default?: boolean; help: string };

/** A command's flags by name (long form, `--name`). */
export type FlagSpec = Record<string, Flag>;

/**
 * The range of seed flags: `Rng.stream` keeps a seed's low 32 bits, so 0..2^32-1 are exactly the
 * seeds that give distinct streams (a larger one would silently repeat a smaller one's images).
 *
 * @example
 * ```ts
 * const spec = { seed: { type: "int", default: 0, ...SEED_RANGE, help: "noise seed" } };
 * ```
 */
export const SEED_RANGE = { min: 0, max: 2 ** 32 - 1 } as const;

type ValueOf<F extends Flag> = F extends { type: "string" } ? string
  : F extends { type: "strings" } ? string[]
  : F extends { type: "int" | "float" } ? number
  : F extends { type: "ints" | "floats" } ? number[]
  : F extends { type: "choice" } ? string
  : boolean;

/** Parsed flags: every declared flag, `undefined` where not given and without default. */
export type Flags<S extends FlagSpec> = { [K in keyof S]: ValueOf<S[K]> } & { help: boolean };

/** A user error in the command line: printed as one line, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

const NUMERIC = new Set(["int", "ints", "float", "floats"]);
const NUMBER_LIKE = /^-(\d|\.\d)/;

/**
 * `--steps -1` as `--steps=-1`: `util.parseArgs` takes a value starting with a dash for a flag, so
 * a negative number (or a choice such as `-1-1`) would otherwise be refused as ambiguous.
 */
function joinDashValues(argv: string[], spec: FlagSpec): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], next = argv[i + 1];
    if (a === "--") return out.concat(argv.slice(i));
    const f = a.startsWith("--") && !a.includes("=") ? spec[a.slice(2)] : undefined;
    const takes = f !== undefined && next !== undefined && next.startsWith("-") &&
      ((NUMERIC.has(f.type) && NUMBER_LIKE.test(next)) ||
        (f.type === "choice" && f.choices.includes(next)));
    if (takes) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/** `util.parseArgs`'s error as one line (some of its messages span three). */
function parserMessage(e: Error, argv: string[]): string {
  const ambiguous = /^Option '(--[^' ]+)'.* argument is ambiguous/.exec(e.message);
  if (ambiguous) {
    const flag = ambiguous[1];
    const value = argv[argv.indexOf(flag) + 1] ?? "";
    return `${flag} expects a value, got the flag-like ${JSON.stringify(value)} (write ` +
      `${flag}=${value} for a value that starts with a dash)`;
  }
  return e.message.replace(/\s*\n\s*/g, " ");
}

/**
 * Parse `argv` against `spec`; throws {@link UsageError} (one line naming the flag, the value and
 * what was expected) on bad input. With `--help`, required flags and checks are skipped.
 */
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
    raw = parseArgs({
      args: joinDashValues(argv, spec),
      options,
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    throw new UsageError(`${command}: ${parserMessage(e as Error, argv)} (see --help)`);
  }
  const out: Record<string, unknown> = { help: raw.help === true };
  for (const [name, f] of Object.entries(spec)) {
    const v = raw[name];
    if (v === undefined) {
      if (f.type === "string" && f.required && !raw.help) {
        throw new UsageError(`${command}: --${name} is required (${f.help})`);
      }
      out[name] = f.default;
    } else out[name] = convert(command, name, f, v);
    if (!raw.help && (f.type === "string" || f.type === "strings") && f.check) {
      const values = out[name] === undefined ? [] : [out[name]].flat() as string[];
      for (const s of values) runCheck(command, name, f.check, s);
    }
  }
  return out as Flags<S>;
}

function runCheck(command: string, name: string, check: FlagCheck, value: string): void {
  try {
    check(value);
  } catch (e) {
    throw new UsageError(`${command}: --${name} ${value}: ${(e as Error).message}`);
  }
}

/**
 * What a range allows, in words: "an integer >= 1", "a number from 0 to 100",
 * "a number > 0 and <= 1".
 */
function rangeText(what: string, min?: number, max?: number, minExclusive = false): string {
  const lo = min === undefined ? "" : `${minExclusive ? ">" : ">="} ${min}`;
  if (min !== undefined && max !== undefined) {
    return minExclusive ? `${what} ${lo} and <= ${max}` : `${what} from ${min} to ${max}`;
  }
  if (min !== undefined) return `${what} ${lo}`;
  if (max !== undefined) return `${what} <= ${max}`;
  return what;
}

const INT_RE = /^-?\d+$/;
const FLOAT_RE = /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i;

/** Whether `n` lies in the flag's range (integers: also a safe integer). */
function inRange(
  n: number,
  f: { min?: number; max?: number; minExclusive?: boolean },
  integer: boolean,
): boolean {
  if (integer && !Number.isSafeInteger(n)) return false;
  if (f.min !== undefined && (f.minExclusive ? n <= f.min : n < f.min)) return false;
  return f.max === undefined || n <= f.max;
}

/**
 * The range an integer flag allows, for messages: its declared one, widened to the safe-integer
 * bounds when the value is beyond them (then the implicit limit is the one that was broken).
 */
function intRangeText(what: string, f: { min?: number; max?: number }, n: number): string {
  if (Number.isSafeInteger(n) || f.max !== undefined && f.min !== undefined) {
    return rangeText(what, f.min, f.max);
  }
  return rangeText(
    what,
    f.min ?? -Number.MAX_SAFE_INTEGER,
    f.max ?? Number.MAX_SAFE_INTEGER,
  );
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
      if (!INT_RE.test(s)) throw bad("an integer");
      const n = Number(s);
      if (!inRange(n, f, true)) throw bad(intRangeText("an integer", f, n));
      return n;
    }
    case "float": {
      const s = String(v).trim();
      const n = Number(s);
      if (!FLOAT_RE.test(s) || !Number.isFinite(n)) throw bad("a number");
      if (!inRange(n, f, false)) throw bad(rangeText("a number", f.min, f.max, f.minExclusive));
      return n;
    }
    case "ints":
    case "floats": {
      const integer = f.type === "ints";
      const what = rangeText(
        `a comma-separated list of ${integer ? "integers" : "numbers"}`,
        f.min,
        f.max,
      );
      const parts = String(v).split(",").map((s) => s.trim());
      const ns = parts.map(Number);
      const ok = parts.every((s, i) =>
        (integer ? INT_RE : FLOAT_RE).test(s) && Number.isFinite(ns[i]) &&
        inRange(ns[i], f, integer)
      );
      if (!ok) throw bad(what);
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
    const notes = [];
    if ("min" in f || "max" in f) {
      const r = f as { min?: number; max?: number; minExclusive?: boolean };
      notes.push(rangeText("", r.min, r.max, r.minExclusive).trim());
    }
    if (f.default !== undefined) notes.push(`default ${JSON.stringify(f.default)}`);
    const tail = notes.length ? ` (${notes.join("; ")})` : "";
    lines.push(`  --${name} <${kind}>  ${f.help}${tail}`);
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
