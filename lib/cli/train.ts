/**
 * `deno task train`: the command-line main job. Trains the embedded default end to end (data,
 * autoencoder, CLIP, UNet) into a run folder; see `lib/jobs/train_run.ts` for the layout.
 *
 * @example
 * ```sh
 * deno task train --preset tiny --out runs/tiny
 * deno task train --out runs/default --resume   # continue after an interruption
 * deno task train --procs 2                       # data-parallel on 2 local processes (Open MPI)
 * deno task train --reuse runs/default --out runs/unet2 --backend webgpu --batch-size 256
 *                                                  # only the UNet, on runs/default's frozen parts
 * ```
 *
 * With `--procs N` (N > 1) the command starts itself N times under `mpirun`, one BLAS thread per
 * process; a process started by `mpirun` (also across hosts, with your own hostfile) joins
 * MPI_COMM_WORLD and trains its share of every batch.
 * @module
 */
import { type FlagSpec, helpText, parseFlags, runMain, SEED_RANGE } from "./args.ts";
import { checkpointLocation, outputFolder } from "./path_checks.ts";
import { BACKEND_FLAG } from "./backend_flag.ts";
import { initBackendAndConvGrad } from "../train/init_backend.ts";
import { setUpFastPath } from "../setup/fast_path.ts";
import { resolvePreset } from "../recipe/presets.ts";
import { TEXT_CONTEXTS, type TextContext } from "../models/text_context.ts";
import { trainRun } from "../jobs/train_run.ts";
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
  procs: {
    type: "int",
    min: 1,
    max: 1024,
    default: 1,
    help: "data-parallel processes on this machine (>1 starts them with Open MPI's mpirun)",
  },
} satisfies FlagSpec;

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
    // Before any work, and once for all ranks: install (or say how to) what `cpu-blas` runs fast
    // with.
    if (!launchedByMpi()) await setUpFastPath(f.backend);
    if (f.procs > 1 && !launchedByMpi()) {
      const code = await relaunchUnderMpi(f.procs);
      if (code !== 0) Deno.exit(code);
      return;
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
    const preset = resolvePreset(f.preset, {
      unetSteps: f.steps,
      unetBatchSize: f["batch-size"],
      unetTextContext: f["text-context"] as TextContext | undefined,
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
