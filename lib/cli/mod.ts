/**
 * The commands (`deno task train`, `sample`, `eval`, `human-eval`, `eval:compare`, `touch-up`,
 * `upscale`, `word-swap`, `study`; one entry-point file each, run with `deno run`), and what they
 * share, exported here: flag parsing with one-line usage errors and exit codes (`args.ts`), the
 * `--backend` flag, path and checkpoint-location checks made before any work, and the plans large
 * sample and eval jobs print first. (`sampling_flags.ts`, the sampling flags of `sample` and
 * `touch-up`, is imported from its file: its literal types are its point.)
 *
 * @example
 * ```ts
 * import { BACKEND_FLAG, parseFlags, runMain } from "./mod.ts";
 * const f = parseFlags(Deno.args, { out: { type: "string", help: "run folder" }, backend: BACKEND_FLAG }, "train");
 * await runMain(async () => console.log(f.out, f.backend));
 * ```
 * @module
 */
export * from "./args.ts";
export * from "./backend_flag.ts";
export * from "./path_checks.ts";
export * from "./job_plan.ts";
