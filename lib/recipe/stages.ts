/**
 * The three training stages of the embedded default, as in the study: the UNet is the only part
 * trained "for real"; the autoencoder (the VAE's stand-in) and the CLIP text encoder are trained
 * first, frozen, and reused. Each stage trains in its own folder under the run (with resumable
 * checkpoints) and ends by writing a frozen model folder; a stage whose model folder is complete is
 * skipped, so an interrupted pipeline resumes where it stopped.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import { buildShapesWorldShards } from "../data/mod.ts";
 * import { loadImageSet } from "./memory_data.ts";
 * import { resolvePreset } from "./presets.ts";
 * import { autoencoderStage } from "./stages.ts";
 *
 * const run = await Deno.makeTempDir();
 * await buildShapesWorldShards({ outDir: `${run}/data`, seed: 0, count: 8, perShard: 8, size: 16 });
 * const data = await loadImageSet(`${run}/data`);
 * // One step of batch 2, to be quick; the tiny preset trains 6 steps of 8.
 * const settings = { ...resolvePreset("tiny").autoencoder, steps: 1, batchSize: 2, warmupSteps: 0 };
 * const o = { dir: `${run}/autoencoder`, data, settings, seed: 0, resume: true, progress: false };
 * const ae = await autoencoderStage(o);
 * assert.ok(ae.scalingFactor > 0); // 1 / std of the latents
 * assert.equal((await autoencoderStage(o)).scalingFactor, ae.scalingFactor); // frozen: loaded back
 * await Deno.remove(run, { recursive: true });
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import {
  type AutoencoderConfig,
  autoencoderLoss,
  encode,
  estimateScalingFactor,
  initAutoencoder,
  latentShape,
} from "../models/autoencoder.ts";
import { type ClipConfig, clipForward, initClip } from "../models/clip.ts";
import { WordTokenizer } from "../models/tokenizer.ts";
import { initUnet, type UnetConfig, unetForward } from "../models/unet.ts";
import { disposeParams, type Params } from "../nn/mod.ts";
import {
  makeSchedule,
  minSnrWeights,
  type NoiseSchedule,
  sampleTimesteps,
} from "../diffusion/mod.ts";
import { storeFor } from "../storage/location.ts";
import { float16BitsToFloat32 } from "../onnx/float16.ts";
import {
  type MetricRecord,
  type MicroBatch,
  trainLoop,
  type TrainLoopOptions,
  warmupCosine,
} from "../train/mod.ts";
import { Rng, STREAM } from "../util/rng.ts";
import {
  type BatchPosition,
  gatherImages,
  type ImagePixels,
  type ImageSet,
  nextIndexBatch,
} from "./memory_data.ts";
import { hasModel, loadModel, saveModel } from "./model_files.ts";
import {
  precisionProblem,
  trainUnetCompiled,
  UNET_ENGINES,
  type UnetEngine,
  type UnetPrecision,
} from "./compiled_unet.ts";
import { hardNegativeCaptions } from "../data/hard_negatives.ts";
import { type Communicator, singleProcess } from "../data_parallel/comm.ts";
import type { SeedStreams } from "../data_parallel/training.ts";
import type { RecipePreset, StageSettings } from "./presets.ts";
import {
  type TextContext,
  textContextComposition,
  unetTextContext,
} from "../models/text_context.ts";

/** Options shared by every stage. */
export interface StageOptions<S> {
  /** The stage's folder (checkpoints while training, then the frozen model). */
  dir: string;
  data: ImageSet;
  settings: S;
  seed: number;
  resume: boolean;
  /**
   * Data-parallel group: every rank trains on its share of each batch (`batchSize / size`) and the
   * loop averages gradients; rank 0 alone writes checkpoints and the frozen model. Default: this
   * process alone.
   */
  comm?: Communicator;
  /**
   * `"per-rank"` (default): each data-parallel rank draws its timesteps, noise and caption
   * dropout from its own stream. `"shared"`: every rank draws rank 0's, as workers started with
   * one seed did (each rank still reads its own share of the batch); only for experiments on that
   * effect (`rankSeedsExperiment`). Recorded in the checkpoints' config only when shared.
   */
  seedStreams?: SeedStreams;
  progress?: boolean;
  onLog?: (rec: MetricRecord) => void;
  /**
   * Where training checkpoints go instead of `dir`: a folder or a `gs://bucket/prefix` URL, with
   * the stage's name appended (`gs://b/run/unet`). Metrics and the frozen model stay in `dir`.
   */
  checkpointRoot?: string;
}

/**
 * The loop options every stage shares: warmup-cosine LR down to 5%, clipping at 1, the settings'
 * micro-batches per step and checkpoint retention (the last two by default), and batches from the
 * resumable in-memory order over `n` samples.
 */
function stageLoop(
  o: Omit<StageOptions<unknown>, "data">,
  s: StageSettings,
  stage: string,
  n: number,
): Omit<TrainLoopOptions<number[], BatchPosition>, "params" | "lossFn"> {
  const comm = o.comm ?? singleProcess();
  if (s.batchSize % comm.size !== 0) {
    throw new Error(
      `${stage}: batchSize ${s.batchSize} does not split over ${comm.size} data-parallel ranks`,
    );
  }
  const perRank = s.batchSize / comm.size;
  return {
    runDir: o.dir,
    ...(o.checkpointRoot ? { store: storeFor(`${o.checkpointRoot}/${stage}`) } : {}),
    steps: s.steps,
    lr: warmupCosine({
      baseLr: s.lr,
      warmupSteps: s.warmupSteps,
      totalSteps: s.steps,
      minLr: s.lr * 0.05,
    }),
    clipNorm: 1,
    checkpointEvery: s.checkpointEvery,
    gradAccum: s.gradAccum ?? 1,
    keepLast: s.keep === "all" ? Infinity : s.keep ?? 2,
    keepSteps: s.keepAt ?? [],
    seed: o.seed,
    comm,
    seedStreams: o.seedStreams,
    resume: o.resume,
    // The default is left out, so runs that never chose keep the config they always had.
    config: {
      stage,
      settings: s,
      worldSize: comm.size,
      ...(o.seedStreams === "shared" ? { seedStreams: o.seedStreams } : {}),
    },
    // The whole group's micro-batch (the loop multiplies by gradAccum): the group's rate.
    itemsPerBatch: s.batchSize,
    progress: (o.progress ?? true) && comm.rank === 0,
    onLog: o.onLog,
    initialPosition: { epoch: 0, index: 0 },
    nextBatch: (pos: BatchPosition) =>
      nextIndexBatch(n, perRank, pos, {
        seed: o.seed,
        rank: comm.rank,
        worldSize: comm.size,
      }),
  };
}

/**
 * Rank 0 writes a stage's frozen model; every rank waits until it is complete, so ranks that
 * load it next never see a half-written folder.
 */
async function saveFrozen(
  o: Omit<StageOptions<unknown>, "data">,
  dir: string,
  model: Parameters<typeof saveModel>[1],
): Promise<void> {
  const comm = o.comm ?? singleProcess();
  if (comm.rank === 0) await saveModel(dir, model);
  await comm.barrier();
}

/** A trained, frozen autoencoder and its latent scaling factor. */
export interface FrozenAutoencoder {
  params: Params;
  config: AutoencoderConfig;
  scalingFactor: number;
}

/** Train (or load) the autoencoder; estimates the latent scaling factor as 1/std of latents. */
export async function autoencoderStage(
  o: StageOptions<RecipePreset["autoencoder"]>,
): Promise<FrozenAutoencoder> {
  const modelDir = `${o.dir}/model`;
  if (await hasModel(modelDir, "autoencoder")) {
    const m = await loadModel<AutoencoderConfig>(modelDir, "autoencoder");
    return {
      params: m.params,
      config: m.info.config,
      scalingFactor: m.info.extra.scalingFactor as number,
    };
  }
  const s = o.settings, cfg = s.model, data = o.data;
  const params = initAutoencoder(cfg, Rng.stream(o.seed, [STREAM.init, 1]));
  const res = await trainLoop<number[], BatchPosition>({
    ...stageLoop(o, s, "autoencoder", data.size),
    params,
    optimizer: { weightDecay: 0 },
    lossFn: (idx, rng) => {
      const b = idx.length;
      // The autoencoder is fully convolutional: training on random crops costs a fraction of full
      // images per step and still teaches it every local pattern (SD's VAE was trained on crops).
      const crop = s.cropSize ?? data.width;
      const image = tf.tensor4d(randomCrops(data, idx, crop, rng), [b, crop, crop, 3]);
      const [lh, lw, lc] = latentShape(cfg, crop, crop);
      const noise = tf.tensor4d(rng.normal(b * lh * lw * lc), [b, lh, lw, lc]);
      const l = autoencoderLoss(params, cfg, { image, noise, klWeight: s.klWeight });
      tf.dispose([image, noise, l.recon, l.kl]);
      return l.loss;
    },
  });
  res.dispose();
  // Scaling factor from the latents of (up to) 2048 training images, as SD's 0.18215 was chosen.
  const n = Math.min(2048, data.size);
  const lat = await encodeLatents({ params, config: cfg, scalingFactor: 1 }, data, range(n));
  const scalingFactor = estimateScalingFactor(lat);
  await saveFrozen(o, modelDir, {
    kind: "autoencoder",
    config: cfg,
    params,
    extra: { scalingFactor },
  });
  return { params, config: cfg, scalingFactor };
}

/** Square crops of side `size` at random positions (from `rng`), as floats in [-1, 1]. */
function randomCrops(data: ImageSet, idx: number[], size: number, rng: Rng): Float32Array {
  const full = gatherImages(data, idx);
  if (size === data.width && size === data.height) return full;
  if (size > data.width || size > data.height) {
    throw new Error(
      `autoencoder cropSize ${size} is larger than the ${data.width}x${data.height} images`,
    );
  }
  const out = new Float32Array(idx.length * size * size * 3);
  const row = data.width * 3;
  idx.forEach((_, b) => {
    const y0 = rng.int(data.height - size + 1), x0 = rng.int(data.width - size + 1);
    const src = b * data.height * row;
    for (let y = 0; y < size; y++) {
      const from = src + (y0 + y) * row + x0 * 3;
      out.set(full.subarray(from, from + size * 3), (b * size + y) * size * 3);
    }
  });
  return out;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** Encode images `idx` to scaled latent means (NHWC, flat), in batches of 256. */
export async function encodeLatents(
  ae: FrozenAutoencoder,
  data: ImagePixels,
  idx: number[],
): Promise<Float32Array> {
  const [lh, lw, lc] = latentShape(ae.config, data.height, data.width);
  const per = lh * lw * lc;
  const out = new Float32Array(idx.length * per);
  for (let i = 0; i < idx.length; i += 256) {
    const part = idx.slice(i, i + 256);
    const z = tf.tidy(() => {
      const image = tf.tensor4d(gatherImages(data, part), [
        part.length,
        data.height,
        data.width,
        3,
      ]);
      const d = encode(ae.params, ae.config, image);
      return tf.mul(d.mean, ae.scalingFactor);
    });
    out.set(await z.data<"float32">(), i * per);
    z.dispose();
  }
  return out;
}

/** A trained, frozen CLIP with its tokenizer. */
export interface FrozenClip {
  params: Params;
  config: ClipConfig;
  tokenizer: WordTokenizer;
}

/** Train (or load) the small CLIP on the captions; builds the tokenizer from them first. */
export async function clipStage(o: StageOptions<RecipePreset["clip"]>): Promise<FrozenClip> {
  const modelDir = `${o.dir}/model`;
  const tokPath = `${o.dir}/tokenizer.json`;
  if (await hasModel(modelDir, "clip")) {
    const m = await loadModel<ClipConfig>(modelDir, "clip");
    return {
      params: m.params,
      config: m.info.config,
      tokenizer: await WordTokenizer.load(tokPath),
    };
  }
  const s = o.settings, data = o.data;
  await Deno.mkdir(o.dir, { recursive: true });
  const tokenizer = WordTokenizer.build(data.captions, {
    contextLength: s.model.contextLength,
    minCount: s.minWordCount,
  });
  if ((o.comm?.rank ?? 0) === 0) await tokenizer.save(tokPath);
  const cfg: ClipConfig = { ...s.model, vocabSize: tokenizer.vocabSize, imageSize: data.width };
  const params = initClip(cfg, Rng.stream(o.seed, [STREAM.init, 2]));
  const res = await trainLoop<number[], BatchPosition>({
    ...stageLoop(o, s, "clip", data.size),
    params,
    optimizer: { weightDecay: 0.01 },
    lossFn: (idx, rng) => {
      const b = idx.length;
      const images = tf.tensor4d(gatherImages(data, idx), [b, data.height, data.width, 3]);
      const captions = idx.map((i) => data.captions[i]);
      const ids = tf.tensor2d(tokenizer.encodeBatch(captions), [b, cfg.contextLength], "int32");
      const negativeIds = s.negativeWordGroups
        ? tf.tensor2d(
          tokenizer.encodeBatch(hardNegativeCaptions(captions, s.negativeWordGroups, rng)),
          [b, cfg.contextLength],
          "int32",
        )
        : undefined;
      const out = clipForward(params, cfg, { ids, images, negativeIds });
      tf.dispose([images, ids, out.hidden, out.embeds, out.imageEmbeds]);
      if (negativeIds) negativeIds.dispose();
      return out.loss;
    },
  });
  res.dispose();
  await saveFrozen(o, modelDir, { kind: "clip", config: cfg, params });
  return { params, config: cfg, tokenizer };
}

/** Context tokens per caption the UNet sees for a text-context mode (see `textContext`). */
export function contextTokens(clip: FrozenClip, mode: TextContext = "states"): number {
  const parts = textContextComposition(mode);
  return parts.states && parts.embeddings !== "none"
    ? 2 * clip.config.contextLength
    : clip.config.contextLength;
}

/**
 * Per-token text states `[n, T, D]` (flat) for captions, in batches of 256; with `tokens`,
 * `[n, T, D]` of plain token embeddings; with `words`, the same embeddings layer-normalised
 * (each row to mean 0, variance 1, no learned scale); with `states+tokens` / `states+words`,
 * `[n, 2T, D]`: the states, then those embeddings.
 */
export async function encodeCaptions(
  clip: FrozenClip,
  captions: string[],
  mode: TextContext = "states",
): Promise<Float32Array> {
  const t = clip.config.contextLength, d = clip.config.textWidth;
  const per = contextTokens(clip, mode) * d;
  const out = new Float32Array(captions.length * per);
  for (let i = 0; i < captions.length; i += 256) {
    const part = captions.slice(i, i + 256);
    const h = tf.tidy(() => {
      const ids = tf.tensor2d(clip.tokenizer.encodeBatch(part), [part.length, t], "int32");
      return unetTextContext(clip.params, clip.config, ids, mode);
    });
    out.set(await h.data<"float32">(), i * per);
    h.dispose();
  }
  return out;
}

/** Everything the UNet stage trains on, precomputed with the frozen parts. */
export interface ConditioningSet {
  /** Scaled latents `[N, h, w, c]` flat. */
  latents: Float32Array;
  latentShape: [number, number, number];
  /**
   * Text states of each sample's caption `[N, T, D]` flat: float32, or float16 bits (a latent
   * cache's, widened one batch at a time).
   */
  contexts: Float32Array | Uint16Array;
  /** Text states of the empty caption `[T, D]` (classifier-free guidance's unconditional). */
  emptyContext: Float32Array;
  contextShape: [number, number];
  /**
   * Scaled posterior standard deviations `[N, h, w, c]` (a latent cache's): `latents` are then
   * posterior means and every step draws `x0 = mean + std * noise` from the loop's stream, as
   * diffusers' training script samples `latent_dist` for every batch.
   */
  latentStd?: Float32Array;
}

/**
 * Encode all images and captions once with the frozen autoencoder and text encoder. With a
 * data-parallel `comm`, each rank encodes a contiguous share and a sum-allreduce of zero-filled
 * arrays assembles the whole set on every rank (adding zeros is exact).
 */
export async function buildConditioning(
  data: ImageSet,
  ae: FrozenAutoencoder,
  clip: FrozenClip,
  comm: Communicator = singleProcess(),
  textContext: TextContext = "states",
): Promise<ConditioningSet> {
  const ls = latentShape(ae.config, data.height, data.width) as [number, number, number];
  const per = ls[0] * ls[1] * ls[2];
  const T = contextTokens(clip, textContext), D = clip.config.textWidth;
  const share = Math.ceil(data.size / comm.size);
  const lo = Math.min(data.size, comm.rank * share), hi = Math.min(data.size, lo + share);
  const mine = range(hi - lo).map((i) => lo + i);
  const latents = new Float32Array(data.size * per);
  latents.set(await encodeLatents(ae, data, mine), lo * per);
  const contexts = new Float32Array(data.size * T * D);
  contexts.set(await encodeCaptions(clip, data.captions.slice(lo, hi), textContext), lo * T * D);
  if (comm.size > 1) {
    await comm.allreduceSum(latents);
    await comm.allreduceSum(contexts);
  }
  const emptyContext = await encodeCaptions(clip, [""], textContext);
  return {
    latents,
    latentShape: ls,
    contexts,
    emptyContext,
    contextShape: [T, D],
  };
}

/** The trained UNet (EMA weights). */
export interface TrainedUnet {
  params: Params;
  config: UnetConfig;
}

/** What the UNet is trained on for one batch: its input, its target and each sample's weight. */
export interface DiffusionTargets {
  /** Noised latents `sqrt(abar_t) x0 + sqrt(1 - abar_t) eps`. */
  xt: Float32Array;
  /** `eps` (epsilon prediction) or `sqrt(abar_t) eps - sqrt(1 - abar_t) x0` (v-prediction). */
  target: Float32Array;
  /** Min-SNR-gamma weights for the schedule's prediction type, one per sample. */
  weights: Float32Array;
}

/**
 * The UNet stage's training input, target and weights for a batch of `t.length` samples (x0 and
 * eps split into that many equal chunks), for the schedule's `predictionType`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { makeSchedule } from "../diffusion/mod.ts";
 * import { diffusionTargets } from "./stages.ts";
 *
 * const schedule = makeSchedule({ predictionType: "v_prediction" });
 * const r = diffusionTargets(schedule, { x0: [1], eps: [0], t: [999], minSnrGamma: 5 });
 * const ab = schedule.alphasCumprod[999];
 * assert.ok(Math.abs(r.target[0] + Math.sqrt(1 - ab)) < 1e-6); // v = sqrt(ab) eps - sqrt(1-ab) x0
 * assert.ok(Math.abs(r.weights[0] - ab) < 1e-6); // snr / (snr + 1) = abar when snr < gamma
 * ```
 */
export function diffusionTargets(
  schedule: NoiseSchedule,
  o: { x0: ArrayLike<number>; eps: ArrayLike<number>; t: ArrayLike<number>; minSnrGamma: number },
): DiffusionTargets {
  const t = Array.from(o.t);
  return {
    xt: schedule.addNoise(o.x0, o.eps, t),
    target: schedule.target(o.x0, o.eps, t),
    weights: minSnrWeights(t, schedule, o.minSnrGamma),
  };
}

/**
 * One optimizer step's random draws on one rank for its `n` samples of `per` latent values (all
 * micro-batches of the step together; see `unetStage`).
 */
export interface StepDraws {
  /** Timestep of each sample. */
  t: Int32Array;
  /** Noise, `n * per` values. */
  eps: Float32Array;
  /** Whether each sample's caption is dropped (the unconditional context). */
  drop: boolean[];
  /** Posterior draws (`n * per`) when the conditioning has `latentStd`, else null. */
  z: Float32Array | null;
}

/**
 * Train (or load) the diffusion UNet on precomputed latents and text states: random timesteps,
 * noise and caption dropout (for classifier-free guidance) from the loop's checkpointed stream,
 * epsilon or v targets (`schedule.predictionType`), min-SNR-gamma weighting for that target, EMA
 * weights saved as the final model (its `model.json` records the schedule, prediction type
 * included, and the step). With `gradAccum` K, the first micro-batch of a step draws the whole
 * step's randomness, in the order one batch of K x B draws it, and each micro-batch takes its
 * slice: K micro-batches of B then train exactly as one batch of K x B (the UNet has no
 * batch-dependent layers; GroupNorm is per sample), up to float32 rounding of the averages.
 */
export async function unetStage(
  o: Omit<StageOptions<RecipePreset["unet"]>, "data"> & {
    cond: ConditioningSet;
    /**
     * Initial weights instead of a random init (e.g. a pretrained UNet): names and shapes must be
     * those of `initUnet` for the stage's config. Copied; the caller keeps them.
     */
    init?: Params;
    /**
     * Called on this rank once per optimizer step, in step order, with the step's draws (read
     * only): how experiments see which timesteps and noise each rank trained on.
     */
    onStepDraws?: (draws: StepDraws) => void;
    /**
     * What runs each training step (default `"tfjs"`: tfjs autodiff and AdamW on the active
     * backend). `"compiled"`: the step is compiled once for the batch shape and runs on
     * `navigator.gpu` (lib/compiled), with the same draws, schedule and checkpoint format; one
     * micro-batch per step, gradients allreduced once per step across ranks (see
     * `compiledEngineProblem`).
     */
    engine?: UnetEngine;
    /**
     * The compiled engine's precision (default `"f32"`); `"mixed"`: float16 activations with
     * dynamic loss scaling, refused with the `"tfjs"` engine (see `precisionProblem`).
     */
    precision?: UnetPrecision;
  },
): Promise<TrainedUnet> {
  const modelDir = `${o.dir}/model`;
  if (await hasModel(modelDir, "unet")) {
    const m = await loadModel<UnetConfig>(modelDir, "unet");
    return { params: m.params, config: m.info.config };
  }
  const s = o.settings, cond = o.cond;
  const cfg = unetConfigFor(s.model, {
    latentChannels: cond.latentShape[2],
    contextDim: cond.contextShape[1],
  });
  const schedule = makeSchedule(s.schedule);
  const params = initUnet(cfg, Rng.stream(o.seed, [STREAM.init, 3]));
  if (o.init) copyInitialWeights(params, o.init);
  const [h, w, c] = cond.latentShape, per = h * w * c;
  const [T, D] = cond.contextShape, ctxPer = T * D;
  let draws: StepDraws | null = null;
  const drawStep = (rng: Rng, n: number): StepDraws => {
    const t = sampleTimesteps(rng, n, schedule.numTrainTimesteps);
    const eps = rng.normal(n * per);
    const drop = Array.from({ length: n }, () => rng.uniform() < s.captionDropout);
    // Drawn after the main job's draws, so runs without a posterior keep their streams.
    const z = cond.latentStd ? rng.normal(n * per) : null;
    return { t, eps, drop, z };
  };
  // One step's inputs on the host, for either engine: the draws come from the loop's stream in
  // the same order, so both engines train on the same timesteps, noise and dropout.
  const stepInputs = (idx: number[], rng: Rng, micro: MicroBatch) => {
    const b = idx.length;
    // The step's draws, made at its first micro-batch for all of them (every micro-batch has
    // `b` samples), in the order a single batch draws them: timesteps, noise, dropout, posterior.
    if (micro.index === 0) {
      draws = drawStep(rng, b * micro.count);
      o.onStepDraws?.(draws);
    }
    const lo = micro.index * b, d = draws!;
    const t = d.t.subarray(lo, lo + b);
    const eps = d.eps.subarray(lo * per, (lo + b) * per);
    const x0 = new Float32Array(b * per), ctx = new Float32Array(b * ctxPer);
    idx.forEach((i, k) => {
      x0.set(cond.latents.subarray(i * per, (i + 1) * per), k * per);
      // Caption dropout: the empty caption's states, what guidance uses as "unconditional".
      const row = cond.contexts.subarray(i * ctxPer, (i + 1) * ctxPer);
      ctx.set(
        d.drop[lo + k]
          ? cond.emptyContext
          : row instanceof Uint16Array
          ? float16BitsToFloat32(row)
          : row,
        k * ctxPer,
      );
    });
    if (d.z) {
      const z = d.z.subarray(lo * per, (lo + b) * per);
      idx.forEach((i, k) => {
        for (let j = 0; j < per; j++) {
          x0[k * per + j] += cond.latentStd![i * per + j] * z[k * per + j];
        }
      });
    }
    // One timestep per sample: the schedule splits x0 into t.length equal chunks.
    const { xt, target, weights: wts } = diffusionTargets(schedule, {
      x0,
      eps,
      t,
      minSnrGamma: s.minSnrGamma,
    });
    return { b, xt, t, ctx, target, wts };
  };
  const loop = stageLoop(o, s, "unet", cond.latents.length / per);
  const engine = o.engine ?? "tfjs";
  if (!UNET_ENGINES.includes(engine)) {
    throw new Error(`unetStage: engine must be one of ${UNET_ENGINES.join(", ")}, got "${engine}"`);
  }
  const precisionIssue = precisionProblem(engine, o.precision ?? "f32");
  if (precisionIssue) throw new Error(`unetStage: ${precisionIssue}`);
  // Either engine ends with the weights to save (EMA shadows), the step reached and a release.
  let trained: { weights: Record<string, tf.Tensor>; ema: boolean; step: number; free(): void };
  if (engine === "compiled") {
    const r = await trainUnetCompiled({
      settings: s,
      cfg,
      params,
      loop,
      worldSize: (o.comm ?? singleProcess()).size,
      sizes: { height: h, width: w, tokens: T },
      precision: o.precision,
      inputs: (idx, rng) => {
        const x = stepInputs(idx, rng, { index: 0, count: 1 });
        return {
          x: x.xt,
          t: Float32Array.from(x.t),
          context: x.ctx,
          target: x.target,
          weights: x.wts,
        };
      },
    });
    trained = { ...r, free: () => tf.dispose(Object.values(r.weights)) };
  } else {
    const res = await trainLoop<number[], BatchPosition>({
      ...loop,
      params,
      optimizer: { weightDecay: 0.01 },
      ema: { decay: s.emaDecay, warmup: true },
      lossFn: (idx, rng, micro) => {
        const { b, xt, t, ctx, target, wts } = stepInputs(idx, rng, micro);
        return tf.tidy(() => {
          const pred = unetForward(params, cfg, {
            x: tf.tensor4d(xt, [b, h, w, c]),
            t: tf.tensor1d(Float32Array.from(t)),
            context: tf.tensor3d(ctx, [b, T, D]),
          });
          const se = tf.mean(
            tf.square(tf.sub(pred, tf.tensor4d(target, [b, h, w, c]))),
            [1, 2, 3],
          );
          return tf.mean(tf.mul(se, tf.tensor1d(wts))) as tf.Scalar;
        });
      },
    });
    // Save the EMA weights as the model (what sampling uses).
    const weights = (res.ema ? res.ema.shadow : params) as Record<string, tf.Tensor>;
    trained = { weights, ema: !!res.ema, step: res.step, free: () => res.dispose() };
  }
  await saveFrozen(o, modelDir, {
    kind: "unet",
    config: cfg,
    params: trained.weights,
    extra: {
      schedule: s.schedule,
      ema: trained.ema,
      textContext: s.textContext ?? "states",
      // The step whose weights these are, so an evaluation lists them once, not also as the
      // checkpoint saved at the same step.
      step: trained.step,
    },
  });
  trained.free();
  disposeParams(params);
  const m = await loadModel<UnetConfig>(modelDir, "unet");
  return { params: m.params, config: m.info.config };
}

/** Overwrite freshly initialised weights with `init`'s, checking names and shapes. */
function copyInitialWeights(params: Params, init: Params): void {
  const want = Object.keys(params).sort(), have = Object.keys(init).sort();
  const missing = want.filter((k) => !(k in init)), extra = have.filter((k) => !(k in params));
  if (missing.length || extra.length) {
    throw new Error(
      `initial UNet weights do not fit the config: missing ${
        missing.slice(0, 3).join(", ") || "none"
      }` +
        `, unexpected ${extra.slice(0, 3).join(", ") || "none"}`,
    );
  }
  for (const k of want) {
    if (params[k].shape.join() !== init[k].shape.join()) {
      throw new Error(
        `initial UNet weights: ${k} is [${init[k].shape}], the config needs [${params[k].shape}]`,
      );
    }
    params[k].assign(init[k]);
  }
}

/**
 * The UNet config actually trained: the preset's with its input/output channels and context width
 * taken from the frozen autoencoder and text encoder (given directly, or read off trained weights).
 */
export function unetConfigFor(
  model: UnetConfig,
  from: { latentChannels: number; contextDim: number } | Record<string, { shape: number[] }>,
): UnetConfig {
  let latent: number, context: number;
  if ("latentChannels" in from && typeof from.latentChannels === "number") {
    latent = from.latentChannels;
    context = from.contextDim as number;
  } else {
    const w = from as Record<string, { shape: number[] }>;
    const convIn = w["conv_in.weight"],
      toK = Object.entries(w).find(([k]) => k.endsWith("attn2.to_k.weight"));
    if (!convIn) throw new Error("UNet weights: conv_in.weight missing");
    latent = convIn.shape[2];
    context = toK ? toK[1].shape[0] : model.contextDim;
  }
  return { ...model, inChannels: latent, outChannels: latent, contextDim: context };
}

/**
 * The UNet a recipe preset trains, shaped for its own frozen parts with the text encoder's states
 * as context (`states`, Stable Diffusion's conditioning): what benchmarks and tests time as "the
 * preset's UNet".
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { presetUnetConfig } from "./stages.ts";
 * import { RECIPE_PRESETS } from "./presets.ts";
 *
 * const cfg = presetUnetConfig(RECIPE_PRESETS.default);
 * assert.equal(cfg.inChannels, RECIPE_PRESETS.default.autoencoder.model.latentChannels);
 * assert.equal(cfg.contextDim, RECIPE_PRESETS.default.clip.model.textWidth);
 * ```
 */
export function presetUnetConfig(preset: RecipePreset): UnetConfig {
  return unetConfigFor(preset.unet.model, {
    latentChannels: preset.autoencoder.model.latentChannels,
    contextDim: preset.clip.model.textWidth,
  });
}
