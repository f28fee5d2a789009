/**
 * The sampling flags every image-making command shares (`sample`, `touch-up`), so their names,
 * defaults and help read the same everywhere.
 *
 * @example
 * ```ts
 * const SPEC = { run: { type: "string", required: true, help: "run" }, ...SAMPLING_FLAGS };
 * ```
 * @module
 */
import { type FlagSpec, SEED_RANGE } from "./args.ts";
import { SAMPLERS } from "../diffusion/mod.ts";

/**
 * `--guidance`, `--steps`, `--scheduler`, `--seed` with the kit's defaults (4, 25, dpmpp_2m, 0).
 * Steps stop at 1000, the training timesteps of the kit's schedule and Stable Diffusion's.
 */
export const SAMPLING_FLAGS = {
  guidance: {
    type: "float",
    default: 4,
    min: 0,
    max: 100,
    help: "classifier-free guidance scale",
  },
  steps: { type: "int", default: 25, min: 1, max: 1000, help: "sampling steps" },
  scheduler: {
    type: "choice",
    choices: Object.keys(SAMPLERS),
    default: "dpmpp_2m",
    help: "sampler",
  },
  seed: { type: "int", default: 0, ...SEED_RANGE, help: "noise seed" },
} as const satisfies FlagSpec;
