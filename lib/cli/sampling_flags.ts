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
import { ONNX_PROVIDERS } from "../onnx/providers.ts";

/**
 * `--provider`: where every ONNX session of the command runs (lib/onnx/providers.ts): auto (CUDA
 * when installed, else the CPU), cpu, cuda, or webgpu (onnxruntime-web on `navigator.gpu`).
 *
 * @example
 * ```ts
 * import { PROVIDER_FLAG } from "./sampling_flags.ts";
 * const SPEC = { provider: PROVIDER_FLAG };
 * ```
 */
export const PROVIDER_FLAG = {
  type: "choice",
  choices: ONNX_PROVIDERS,
  default: "auto",
  help: "ONNX execution provider of every model: auto (CUDA when onnxruntime-node has it, else " +
    "cpu), cpu, cuda, webgpu (onnxruntime-web on Deno's WebGPU)",
} as const satisfies FlagSpec[string];

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
