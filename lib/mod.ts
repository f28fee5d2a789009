/**
 * xgen-kit: reproduce, interactively, the study behind a text-to-image latent diffusion model
 * trained at low resolution on top of reused pretrained parts (XGen-Image-1 style).
 *
 * Each folder is a namespace with its own `mod.ts`, lowest layer first (ARCHITECTURE.md draws which
 * may import which): `util` (seeded streams, atomic writes, progress), `backend` (TensorFlow.js
 * backends), `plot` (Plotly HTML, PNG grids), `storage` (local and gs:// stores), `data_parallel`
 * (communicators: one process or Open MPI), `math` (float64 eigensolver, BLAS), `nn` (layers),
 * `setup` (system packages, the cpu-blas fast path), `diffusion` (schedules, samplers, guidance,
 * the image-generator contract), `image` (preprocessing conventions), `models` (UNet, autoencoder,
 * CLIP, tokenizers), `data` (shapes world, webdataset shards), `train` (optimizer, checkpoints,
 * loop), `onnx` (format, sessions, export, the ONNX Stable Diffusion pipeline), `diffusers`
 * (diffusers UNet folders in and out), `compiled` (the compiled training step's graph IR,
 * autodiff and reference interpreter), `inference`
 * (best-of-N, touch-ups, upsampling over any image generator), `recipe` (the embedded default:
 * presets, stages, runs, TF.js generation), `evaluation` (`clip_fid`, `human`,
 * `caption_following`), `study` (the study's experiments: data-parallel seeding), `jobs` (the
 * end-to-end training job) and `cli` (what the commands share: flags, checks, job plans).
 *
 * @example
 * ```ts
 * import { recipe, train } from "./mod.ts";
 *
 * async function example() {
 *   await train.initBackendAndConvGrad("auto");
 *   const run = await recipe.loadRun("runs/default");
 *   const images = await recipe.generate(run, { prompts: ["a red circle"], n: 4, guidance: 4, steps: 25, scheduler: "dpmpp_2m", seed: 0 });
 * }
 * ```
 * @module
 */
export * as util from "./util/mod.ts";
export * as backend from "./backend/mod.ts";
export * as plot from "./plot/mod.ts";
export * as storage from "./storage/mod.ts";
export * as data_parallel from "./data_parallel/mod.ts";
export * as math from "./math/mod.ts";
export * as nn from "./nn/mod.ts";
export * as setup from "./setup/mod.ts";
export * as diffusion from "./diffusion/mod.ts";
export * as image from "./image/mod.ts";
export * as models from "./models/mod.ts";
export * as data from "./data/mod.ts";
export * as train from "./train/mod.ts";
export * as onnx from "./onnx/mod.ts";
export * as diffusers from "./diffusers/mod.ts";
export * as compiled from "./compiled/mod.ts";
export * as inference from "./inference/mod.ts";
export * as recipe from "./recipe/mod.ts";
export * as evaluation from "./eval/mod.ts";
export * as study from "./study/mod.ts";
export * as jobs from "./jobs/mod.ts";
export * as cli from "./cli/mod.ts";
