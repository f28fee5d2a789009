/**
 * xgen-kit: reproduce, interactively, the study behind a text-to-image latent diffusion model
 * trained at low resolution on top of reused pretrained parts (XGen-Image-1 style).
 *
 * Each domain is a namespace with its own `mod.ts`:
 * `backend` (TensorFlow.js backends), `data` (shapes world, webdataset shards), `nn` (layers),
 * `models` (UNet, autoencoder, CLIP, tokenizer), `diffusion` (schedules, samplers, guidance),
 * `dist` (data-parallel communicators: one process or Open MPI),
 * `train` (optimizer, checkpoints, loop), `plot` (Plotly HTML, PNG grids), `pipeline` (the
 * embedded default end to end), `util` (seeded streams, atomic writes, progress).
 *
 * @example
 * ```ts
 * import { pipeline } from "./mod.ts";
 * await pipeline.initCompute("auto");
 * const run = await pipeline.loadRun("runs/default");
 * const images = await pipeline.generate(run, { prompts: ["a red circle"], n: 4, guidance: 4, steps: 25, scheduler: "dpmpp_2m", seed: 0 });
 * ```
 * @module
 */
export * as backend from "./backend/mod.ts";
export * as data from "./data/mod.ts";
export * as nn from "./nn/mod.ts";
export * as models from "./models/mod.ts";
export * as diffusion from "./diffusion/mod.ts";
export * as dist from "./dist/mod.ts";
export * as train from "./train/mod.ts";
export * as plot from "./plot/mod.ts";
export * as pipeline from "./pipeline/mod.ts";
export * as evaluation from "./eval/mod.ts";
export * as onnx from "./onnx/mod.ts";
export * as human_eval from "./human_eval/mod.ts";
export * as util from "./util/mod.ts";
