/**
 * `deno task train`: the command-line main job. Trains the embedded default end to end (data,
 * autoencoder, CLIP, UNet) into a run folder; see `lib/jobs/train_run.ts` for the layout.
 *
 * @example
 * ```sh
 * deno task train --preset tiny --out runs/tiny
 * deno task train --out runs/default --resume   # continue after an interruption
 * deno task train --procs 2                       # data-parallel on 2 local processes (Open MPI)
 * deno task train --unet-engine compiled          # the UNet step compiled for navigator.gpu
 * deno task train --unet-engine compiled --precision mixed   # ... with float16 activations
 * deno task train --reuse runs/default --out runs/unet2 --backend webgpu --batch-size 256
 *                                                  # only the UNet, on runs/default's frozen parts
 * deno task train --parts sd15-onnx --data laion/ --out runs/sd --unet small --resolution 256
 *                                                  # only a UNet, on an SD folder's VAE + CLIP
 * ```
 *
 * With `--parts DIR` (an SD folder in Optimum's ONNX layout) the command trains only a UNet on
 * the folder's frozen VAE and text encoder and the webdataset shards of `--data`, through a
 * resumable latent cache, and leaves a complete SD folder in `<out>/model`
 * (`lib/jobs/train_parts.ts`).
 *
 * With `--procs N` (N > 1) the command starts itself N times under `mpirun`, one BLAS thread per
 * process; a process started by `mpirun` (also across hosts, with your own hostfile) joins
 * MPI_COMM_WORLD and trains its share of every batch.
 * @module
 */
import { type FlagSpec, helpText, parseFlags, runMain, SEED_RANGE } from "./args.ts";
import { checkpointLocation, outputFolder } from "./path_checks.ts";
import { BACKEND_FLAG } from "./backend_flag.ts";
import { PARTS_RESOLUTION_FLAG, PARTS_UNET_FLAG, unetModelFlag } from "./unet_flag.ts";
import {
  DATA_FILTER_FLAG_NAMES,
  DATA_FILTER_FLAGS,
  dataFilterFromFlags,
} from "./data_filter_flags.ts";
import { initBackendAndConvGrad } from "../train/init_backend.ts";
import { setUpFastPath } from "../setup/fast_path.ts";
import { type PresetOverrides, resolvePreset } from "../recipe/presets.ts";
import {
  compiledEngineProblem,
  precisionProblem,
  UNET_ENGINES,
  UNET_PRECISIONS,
  type UnetEngine,
  type UnetPrecision,
} from "../recipe/compiled_unet.ts";
import type { PredictionType } from "../diffusion/types.ts";
import { TEXT_CONTEXTS, type TextContext } from "../models/text_context.ts";
import { trainRun } from "../jobs/train_run.ts";
import { trainOnParts } from "../jobs/train_parts.ts";
import { unetParamsFromTensors } from "../models/mod.ts";
import { loadDiffusersUnet } from "../diffusers/unet_folder.ts";
import type { ResampleFilter } from "../image/preprocess.ts";
import type { Params } from "../nn/mod.ts";
import { findMpirun, launchedByMpi, mpiCommand, worldCommunicator } from "../data_parallel/mod.ts";

const SPEC = {
  preset: {
    type: "choice",
    choices: ["default", "tiny"],
    default: "default",
    help: "training preset",
  },
  steps: { type: "int", min: 1, max: 1e9, help: "UNet steps (other stages scale with it)" },
  "batch-size": {
    type: "int",
    min: 1,
    max: 65536,
    help: "UNet batch size (default: the preset's)",
  },
  "text-context": {
    type: "choice",
    choices: TEXT_CONTEXTS,
    help: "what the UNet cross-attends to: each word's layer-normalised embedding (words, the " +
      "presets' default), the text encoder's states (states, as Stable Diffusion), both " +
      "(states+words), or the raw embeddings (tokens, states+tokens)",
  },
  reuse: {
    type: "string",
    help: "finished run whose frozen autoencoder and CLIP to copy; only the UNet trains",
  },
  out: { type: "string", default: "runs/default", check: outputFolder, help: "run folder" },
  backend: BACKEND_FLAG,
  seed: { type: "int", default: 0, ...SEED_RANGE, help: "seed of data, init, noise and sampling" },
  resume: {
    type: "bool",
    default: false,
    help: "continue an interrupted run from its newest complete checkpoint",
  },
  checkpoints: {
    type: "string",
    check: checkpointLocation,
    help: "where training checkpoints go: a folder or gs://bucket/prefix (default: inside --out)",
  },
  "skip-eval": { type: "bool", default: false, help: "do not sample or evaluate at the end" },
  engine: {
    type: "choice",
    choices: ["onnx", "tfjs"],
    default: "onnx",
    help: "what samples and evaluates the finished run (onnx: onnxruntime on its export)",
  },
  "unet-engine": {
    type: "choice",
    choices: UNET_ENGINES,
    default: "tfjs",
    help: "what runs the UNet stage's training step: tfjs (autodiff on --backend) or compiled " +
      "(the whole step compiled once and run on navigator.gpu; with --procs, gradients allreduced once per step; no --grad-accum)",
  },
  precision: {
    type: "choice",
    choices: UNET_PRECISIONS,
    default: "f32",
    help: "the compiled UNet step's precision: f32, or mixed (float16 activations with dynamic " +
      "loss scaling; needs --unet-engine compiled and a GPU with shader-f16)",
  },
  procs: {
    type: "int",
    min: 1,
    max: 1024,
    default: 1,
    help: "data-parallel processes on this machine (>1 starts them with Open MPI's mpirun)",
  },
  parts: {
    type: "string",
    help: "SD folder (Optimum ONNX layout) whose VAE and text encoder to reuse: train only a " +
      "UNet on --data and write <out>/model, a complete SD folder",
  },
  data: {
    type: "string",
    help: "with --parts: webdataset shards (folder or gs://bucket/prefix of NNNNN.tar)",
  },
  resolution: PARTS_RESOLUTION_FLAG,
  unet: PARTS_UNET_FLAG,
  "init-unet": {
    type: "string",
    help: "with --parts: start from this diffusers UNet folder (config.json + " +
      "diffusion_pytorch_model.safetensors) instead of a random init",
  },
  "random-flip": {
    type: "bool",
    default: false,
    help: "with --parts: mirror images left-right at random (seeded per record, in the cache)",
  },
  "caption-dropout": {
    type: "float",
    min: 0,
    max: 1,
    help:
      "with --parts: share of captions replaced by the empty prompt (default: the preset's, 0.1)",
  },
  lr: { type: "float", min: 0, minExclusive: true, max: 1, help: "UNet learning rate" },
  prediction: {
    type: "choice",
    choices: ["epsilon", "v_prediction"],
    help: "what the UNet learns to predict (min-SNR weights follow; samplers read it from the " +
      "run); default: the preset's epsilon, with --parts the folder's scheduler_config.json",
  },
  "grad-accum": {
    type: "int",
    min: 1,
    max: 65536,
    help: "UNet micro-batches per optimizer step: gradients of K batches of --batch-size are " +
      "averaged, as one batch of K x --batch-size (default 1)",
  },
  "checkpoint-every": {
    type: "int",
    min: 1,
    max: 1e9,
    help: "UNet checkpoint interval in steps (default: the preset's)",
  },
  keep: {
    type: "string",
    check: keepFlag,
    help: "newest complete UNet checkpoints kept, or all (default 2)",
  },
  "keep-at": {
    type: "ints",
    min: 1,
    max: 1e9,
    help: "UNet steps also checkpointed and never deleted, e.g. 1000,2000,3000,4000",
  },
  "resize-filter": {
    type: "choice",
    choices: ["lanczos", "bicubic", "bilinear"],
    default: "lanczos",
    help: "with --parts: resampling of the shortest-side resize (diffusers' default: lanczos)",
  },
  "encode-batch": {
    type: "int",
    min: 1,
    max: 4096,
    default: 8,
    help: "with --parts: images per VAE encoder call while caching",
  },
  // With --parts: LAION metadata filters of the shards (--min-aesthetic 4.5 is the study's).
  ...DATA_FILTER_FLAGS,
} satisfies FlagSpec;

/** `--keep`: a count of checkpoints, or `all`. */
function keepFlag(v: string): void {
  if (v !== "all" && !(/^\d+$/.test(v) && Number(v) >= 1)) {
    throw new Error("expected an integer >= 1 or all");
  }
}

/** The UNet training options of the flags, as preset overrides (flags not given stay unset). */
function unetTrainingOverrides(f: {
  prediction?: string;
  "grad-accum"?: number;
  "checkpoint-every"?: number;
  keep?: string;
  "keep-at"?: number[];
}): PresetOverrides {
  return {
    unetPrediction: f.prediction as PredictionType | undefined,
    unetGradAccum: f["grad-accum"],
    unetCheckpointEvery: f["checkpoint-every"],
    unetKeep: f.keep === undefined ? undefined : f.keep === "all" ? "all" : Number(f.keep),
    unetKeepAt: f["keep-at"],
  };
}

/** Flags that only mean something with --parts. */
const PARTS_ONLY = [
  "resolution",
  "data",
  "unet",
  "init-unet",
  "random-flip",
  "caption-dropout",
  "resize-filter",
  "encode-batch",
  ...DATA_FILTER_FLAG_NAMES,
] as const;

/** Start this command `procs` times under mpirun and return its exit code. */
async function relaunchUnderMpi(procs: number): Promise<number> {
  const mpirun = await findMpirun();
  if (!mpirun) {
    throw new Error(
      `--procs ${procs} needs Open MPI's mpirun; install it with ` +
        "`apt-get install openmpi-bin libopenmpi-dev`, or use --procs 1",
    );
  }
  const argv = mpiCommand({
    procs,
    script: new URL(import.meta.url).pathname,
    args: Deno.args,
    mpirun,
  });
  const child = new Deno.Command(argv[0], { args: argv.slice(1) }).spawn();
  return (await child.status).code;
}

if (import.meta.main) {
  await runMain(async () => {
    const f = parseFlags(Deno.args, SPEC, "train");
    if (f.help) {
      console.log(helpText("deno task train", "train the embedded default model end to end", SPEC));
      return;
    }
    // A precision the engine does not train fails in one line before anything is set up.
    const precisionIssue = precisionProblem(
      f["unet-engine"] as UnetEngine,
      f.precision as UnetPrecision,
    );
    if (precisionIssue) throw new Error(precisionIssue);
    // Before any work, and once for all ranks: install (or say how to) what `cpu-blas` runs fast
    // with.
    if (!launchedByMpi()) await setUpFastPath(f.backend);
    if (f["unet-engine"] === "compiled") {
      // Before mpirun or any stage: what the compiled step cannot do fails in one line.
      if (f.parts !== undefined) {
        throw new Error("--unet-engine compiled does not apply to --parts yet; use tfjs there");
      }
      const problem = compiledEngineProblem(
        resolvePreset(f.preset, unetTrainingOverrides(f)).unet,
        f.procs,
      );
      if (problem) throw new Error(problem);
    }
    if (f.procs > 1 && !launchedByMpi()) {
      const code = await relaunchUnderMpi(f.procs);
      if (code !== 0) Deno.exit(code);
      return;
    }
    if (f.parts === undefined) {
      // Whole flag names only: `--unet-engine` is not `--unet`.
      const given = PARTS_ONLY.filter((k) =>
        Deno.args.some((a) => a === `--${k}` || a.startsWith(`--${k}=`))
      );
      if (given.length) throw new Error(`--${given[0]} needs --parts`);
    } else {
      if (f.data === undefined) throw new Error("--parts needs --data (the shards to train on)");
      if (f.reuse !== undefined) throw new Error("--parts and --reuse exclude each other");
      if (f["text-context"] !== undefined) {
        throw new Error("--text-context does not apply to --parts (the UNet reads the states)");
      }
    }
    const comm = worldCommunicator();
    const lead = comm.rank === 0;
    const info = await initBackendAndConvGrad(f.backend, { quiet: !lead });
    if (lead) {
      console.error(
        `backend: ${info.name} (${info.details})` +
          (comm.size > 1 ? `; ${comm.size} data-parallel processes (${comm.kind})` : ""),
      );
    }
    if (f.parts !== undefined) {
      // --prediction overrides the folder's scheduler instead of the preset's schedule.
      const { unetPrediction, ...training } = unetTrainingOverrides(f);
      const base = resolvePreset(f.preset, {
        unetSteps: f.steps,
        unetBatchSize: f["batch-size"],
        ...training,
      });
      let model = f.unet ? await unetModelFlag(f.unet) : base.unet.model;
      let init: Params | undefined;
      if (f["init-unet"]) {
        const loaded = await loadDiffusersUnet(f["init-unet"]);
        model = loaded.config;
        init = unetParamsFromTensors(loaded.tensors, loaded.config);
      }
      const settings = {
        ...base.unet,
        model,
        ...(f.lr !== undefined ? { lr: f.lr } : {}),
        ...(f["caption-dropout"] !== undefined ? { captionDropout: f["caption-dropout"] } : {}),
      };
      const summary = await trainOnParts({
        parts: f.parts,
        data: f.data!,
        out: f.out,
        settings,
        resolution: f.resolution,
        randomFlip: f["random-flip"],
        filter: f["resize-filter"] as ResampleFilter,
        encodeBatch: f["encode-batch"],
        dataFilter: dataFilterFromFlags(f),
        seed: f.seed,
        resume: f.resume,
        backend: info.name,
        checkpoints: f.checkpoints,
        init,
        initFrom: f["init-unet"],
        predictionType: unetPrediction,
        comm,
        progress: true,
        skipSamples: f["skip-eval"],
        log: lead ? undefined : () => {},
      });
      await comm.close();
      if (lead) console.log(JSON.stringify(summary));
      return;
    }
    const preset = resolvePreset(f.preset, {
      unetSteps: f.steps,
      unetBatchSize: f["batch-size"],
      unetTextContext: f["text-context"] as TextContext | undefined,
      ...unetTrainingOverrides(f),
    });
    const summary = await trainRun({
      out: f.out,
      preset,
      seed: f.seed,
      resume: f.resume,
      checkpoints: f.checkpoints,
      reuse: f.reuse,
      backend: info.name,
      progress: true,
      skipEval: f["skip-eval"],
      sampleEngine: f.engine as "onnx" | "tfjs",
      unetEngine: f["unet-engine"] as UnetEngine,
      unetPrecision: f.precision as UnetPrecision,
      comm,
      log: lead ? undefined : () => {},
    });
    await comm.close();
    if (!lead) return;
    console.log(
      JSON.stringify({
        out: summary.out,
        seconds: summary.seconds,
        peakRssMiB: summary.peakRssMiB,
      }),
    );
  });
}
