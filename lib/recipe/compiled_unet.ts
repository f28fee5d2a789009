/**
 * The UNet stage's `"compiled"` engine: the stage's training step (forward, min-SNR weighted loss,
 * backward, clipping, AdamW, EMA) compiled once for the batch shape by lib/compiled and run on
 * `navigator.gpu`, inside the resumable loop of `compiledTrainLoop` (lib/train's checkpoint
 * format). The stage prepares each step's inputs on the host exactly as for the `"tfjs"` engine
 * (same streams, same order), so both engines train on the same data.
 *
 * In a data-parallel group (`--procs N`) each rank compiles the step for its share of the batch
 * (`batchSize / N`) and draws its own streams as the `"tfjs"` engine's ranks do; the packed
 * gradients are averaged with one allreduce per step, and rank 0 alone writes checkpoints.
 *
 * What the compiled step does not do is refused before any work, naming the flag
 * ({@link compiledEngineProblem}): gradient accumulation. Prediction
 * types, text-context modes and latent-cache posteriors only change the host-side inputs and
 * work as with `"tfjs"`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { compiledEngineProblem, UNET_ENGINES } from "./compiled_unet.ts";
 * import { resolvePreset } from "./presets.ts";
 *
 * assert.deepEqual([...UNET_ENGINES], ["tfjs", "compiled"]);
 * const unet = resolvePreset("tiny", { unetGradAccum: 2 }).unet;
 * assert.match(compiledEngineProblem(unet, 1)!, /--grad-accum 2/);
 * assert.equal(compiledEngineProblem(resolvePreset("tiny").unet, 1), null);
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import type { UnetConfig } from "../models/unet.ts";
import type { Params } from "../nn/mod.ts";
import type { MetricRecord, TrainLoopOptions } from "../train/mod.ts";
import type { Rng } from "../util/rng.ts";
import { compileTrainStep } from "../compiled/train_step.ts";
import { type Precision, requestStepDevice } from "../compiled/mixed_precision.ts";
import { compiledTrainLoop } from "../compiled/train_loop.ts";
import { unetTrainingGraph } from "../compiled/training_graph.ts";
import type { BatchPosition } from "./memory_data.ts";
import type { RecipePreset } from "./presets.ts";

/** The UNet stage's engines (`--unet-engine`); `"tfjs"` is the default. */
export const UNET_ENGINES = ["tfjs", "compiled"] as const;

/** What runs the UNet stage's training step. */
export type UnetEngine = typeof UNET_ENGINES[number];

/** The compiled engine's precisions (`--precision`); `"f32"` is the default. */
export const UNET_PRECISIONS = ["f32", "mixed"] as const satisfies readonly Precision[];

/** The UNet stage's training precision (lib/compiled's `Precision`). */
export type UnetPrecision = typeof UNET_PRECISIONS[number];

/**
 * Why `precision` cannot train on `engine`, as one line naming the flags, or null when it can:
 * mixed precision is the compiled step's (the tfjs engine trains in float32).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { precisionProblem } from "./compiled_unet.ts";
 *
 * assert.equal(precisionProblem("compiled", "mixed"), null);
 * assert.equal(precisionProblem("tfjs", "f32"), null);
 * assert.match(precisionProblem("tfjs", "mixed")!, /--precision mixed needs --unet-engine compiled/);
 * ```
 */
export function precisionProblem(engine: UnetEngine, precision: UnetPrecision): string | null {
  if (!UNET_PRECISIONS.includes(precision)) {
    return `--precision must be one of ${UNET_PRECISIONS.join(", ")}, got "${precision}"`;
  }
  if (precision !== "f32" && engine !== "compiled") {
    return `--precision ${precision} needs --unet-engine compiled (the ${engine} engine trains ` +
      `in float32)`;
  }
  return null;
}

/**
 * Why the `"compiled"` engine cannot train these settings in a group of `worldSize` processes, as
 * one line naming the flag, or null when it can.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { compiledEngineProblem } from "./compiled_unet.ts";
 * import { resolvePreset } from "./presets.ts";
 *
 * // Data-parallel groups train; gradient accumulation is refused whatever the group.
 * assert.equal(compiledEngineProblem(resolvePreset("tiny").unet, 2), null);
 * const accum = resolvePreset("tiny", { unetGradAccum: 4 }).unet;
 * assert.match(compiledEngineProblem(accum, 2)!, /--grad-accum 4/);
 * ```
 */
export function compiledEngineProblem(
  settings: RecipePreset["unet"],
  worldSize: number,
): string | null {
  if (!Number.isInteger(worldSize) || worldSize < 1) {
    return `--procs must be a positive integer, got ${worldSize}`;
  }
  const k = settings.gradAccum ?? 1;
  if (k > 1) {
    return `--unet-engine compiled takes one micro-batch per step, got --grad-accum ${k}; ` +
      `raise --batch-size instead or use --unet-engine tfjs`;
  }
  return null;
}

/** The WebGPU device the compiled engine runs on, or an error saying there is none. */
async function gpuDevice(precision: Precision): Promise<GPUDevice> {
  const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
  if (!adapter) {
    throw new Error(
      "--unet-engine compiled needs WebGPU: navigator.gpu has no adapter in this runtime " +
        "(on Linux without a GPU, Mesa's lavapipe provides one; set XDG_RUNTIME_DIR)",
    );
  }
  // Mixed precision needs shader-f16: refused in one line naming the adapter without it.
  return await requestStepDevice(adapter, precision);
}

/** Options of {@link trainUnetCompiled}, from `unetStage`. */
export interface TrainUnetCompiledOptions {
  settings: RecipePreset["unet"];
  cfg: UnetConfig;
  /** Initial weights (read once; not updated). */
  params: Params;
  /** The stage's loop options (data order, schedule, checkpoints, resume). */
  loop: Omit<TrainLoopOptions<number[], BatchPosition>, "params" | "lossFn">;
  worldSize: number;
  /** Latent height and width, text context length. */
  sizes: { height: number; width: number; tokens: number };
  /** One step's graph inputs (`x`, `t`, `context`, `target`, `weights`) for a batch. */
  inputs: (idx: number[], rng: Rng) => Record<string, Float32Array>;
  /**
   * `"mixed"`: float16 activations with dynamic loss scaling (`compileTrainStep`'s `precision`;
   * the adapter needs `shader-f16`), recorded in the checkpoints' config. Default `"f32"`.
   */
  precision?: UnetPrecision;
}

/**
 * Train the UNet with the compiled step (see the module doc); resolves the EMA weights as new
 * tensors (the caller disposes them) and the step reached. `unetStage` calls it with
 * `engine: "compiled"`; the example shows that call, which needs a WebGPU adapter.
 *
 * @example
 * ```ts
 * import type { ConditioningSet } from "./stages.ts";
 * import { unetStage } from "./stages.ts";
 * import { resolvePreset } from "./presets.ts";
 *
 * // The tiny preset's UNet stage on a conditioning set, through the compiled engine.
 * async function trainCompiled(cond: ConditioningSet, dir: string) {
 *   const settings = resolvePreset("tiny").unet;
 *   return await unetStage({ dir, settings, cond, seed: 0, resume: true, engine: "compiled" });
 * }
 * ```
 */
export async function trainUnetCompiled(
  o: TrainUnetCompiledOptions,
): Promise<{ weights: Record<string, tf.Tensor>; ema: boolean; step: number }> {
  const problem = compiledEngineProblem(o.settings, o.worldSize);
  if (problem) throw new Error(problem);
  const precision = o.precision ?? "f32";
  const precisionIssue = precisionProblem("compiled", precision);
  if (precisionIssue) throw new Error(precisionIssue);
  const l = o.loop;
  const device = await gpuDevice(precision);
  try {
    // Each rank's share of the batch (the stage's loop checked that it splits).
    const graph = unetTrainingGraph({
      cfg: o.cfg,
      batch: o.settings.batchSize / o.worldSize,
      height: o.sizes.height,
      width: o.sizes.width,
      tokens: o.sizes.tokens,
    });
    const step = await compileTrainStep(graph, device, {
      // lib/train's AdamW defaults with the stage's weight decay, as the tfjs engine's loop.
      adamw: { weightDecay: 0.01 },
      clipNorm: l.clipNorm,
      ema: { decay: o.settings.emaDecay, warmup: true },
      precision,
    });
    try {
      const init: Record<string, Float32Array> = {};
      for (const [k, v] of Object.entries(o.params)) {
        init[k] = new Float32Array(await v.data<"float32">());
      }
      step.setParams(init);
      const r = await compiledTrainLoop<number[], BatchPosition>({
        runDir: l.runDir,
        store: l.store,
        step,
        inputs: o.inputs,
        nextBatch: l.nextBatch,
        initialPosition: l.initialPosition,
        steps: l.steps,
        lr: l.lr,
        checkpointEvery: l.checkpointEvery,
        keepLast: l.keepLast,
        keepSteps: l.keepSteps,
        seed: l.seed,
        seedStreams: l.seedStreams,
        comm: l.comm,
        resume: l.resume,
        config: {
          ...(l.config as Record<string, unknown>),
          engine: "compiled",
          ...(precision === "f32" ? {} : { precision }),
        },
        itemsPerBatch: l.itemsPerBatch,
        progress: l.progress,
        onLog: l.onLog as ((rec: MetricRecord) => void) | undefined,
      });
      const shadow = r.state.ema ?? r.state.params;
      const weights: Record<string, tf.Tensor> = {};
      for (const [k, v] of Object.entries(shadow)) {
        weights[k] = tf.tensor(v, [...step.paramShapes[k]]);
      }
      return { weights, ema: r.state.ema !== undefined, step: r.step };
    } finally {
      step.destroy();
    }
  } finally {
    device.destroy();
  }
}
