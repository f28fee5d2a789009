/**
 * The `--backend` flag of the commands that run TensorFlow.js (`train`, `sample`, `eval`), so its
 * choices and default stay the same everywhere as backends are added to lib/backend.
 *
 * @example
 * ```ts
 * import { BACKEND_FLAG } from "./backend_flag.ts";
 * import { parseFlags } from "./args.ts";
 * import { initBackendAndConvGrad } from "../train/init_backend.ts";
 *
 * const SPEC = { out: { type: "string", help: "run folder" }, backend: BACKEND_FLAG } as const;
 * const f = parseFlags(Deno.args, SPEC, "train");
 * await initBackendAndConvGrad(String(f.backend));
 * ```
 * @module
 */
import type { Flag } from "./args.ts";
import { BACKEND_NAMES } from "../backend/mod.ts";

/**
 * `--backend`: one of lib/backend's names, or `auto` (default): `initBackendAndConvGrad` picks this
 * machine's default. Spread it to reword the help for a command, keeping choices and default.
 *
 * @example
 * ```ts
 * const spec = { backend: { ...BACKEND_FLAG, help: "TensorFlow.js backend (tfjs engine)" } };
 * ```
 */
export const BACKEND_FLAG = {
  type: "choice",
  choices: ["auto", ...BACKEND_NAMES],
  default: "auto",
  help: "compute backend",
} as const satisfies Flag;
