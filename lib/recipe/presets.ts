/**
 * Training presets for the embedded default: every size, step count and learning rate of the
 * three stages (autoencoder, CLIP, UNet) in one place, so a run's `config.json` says exactly what
 * was trained.
 *
 * - `tiny`: seconds on 2 cores; for tests and smoke runs (the model learns little).
 * - `default`: the kit's embedded default; sized to finish within ~20 minutes on 2 CPU cores
 *   (about 13 with the `cpu-blas` backend's native kernels) and follow colour and shape in captions.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolvePreset } from "./presets.ts";
 *
 * const p = resolvePreset("tiny", { unetSteps: 50 }); // other stages scaled by the same ratio
 * assert.equal(p.unet.steps, 50);
 * assert.throws(() => resolvePreset("huge"), /unknown preset "huge"; expected one of tiny, default/);
 * ```
 * @module
 */
import { AUTOENCODER_PRESETS, type AutoencoderConfig } from "../models/autoencoder.ts";
import { CLIP_PRESETS, type ClipConfig } from "../models/clip.ts";
import { UNET_PRESETS, type UnetConfig } from "../models/unet.ts";
import type { PredictionType, ScheduleConfig } from "../diffusion/mod.ts";
import { SHAPES_WORLD_WORD_GROUPS } from "../data/hard_negatives.ts";
import { TEXT_CONTEXTS, type TextContext } from "../models/text_context.ts";

/** Settings of one training stage. */
export interface StageSettings {
  steps: number;
  /** Samples per micro-batch, over all data-parallel ranks together. */
  batchSize: number;
  lr: number;
  warmupSteps: number;
  /** Save a checkpoint every N steps (and at the last). */
  checkpointEvery: number;
  /**
   * Micro-batches per optimizer step (absent: 1): the effective batch is `batchSize x gradAccum`
   * (`batchSize` is already split over the ranks).
   */
  gradAccum?: number;
  /** Newest complete checkpoints kept (absent: 2; `"all"`: none deleted). */
  keep?: number | "all";
  /** Steps also saved and never deleted (absent: none), e.g. for CLIP-FID curves over training. */
  keepAt?: number[];
}

/** Everything a run of the embedded default recipe needs. */
export interface RecipePreset {
  name: string;
  data: { imageSize: number; trainCount: number; perShard: number; minAesthetic: number };
  autoencoder: StageSettings & {
    model: AutoencoderConfig;
    klWeight: number;
    /** Train on random square crops of this side (default: whole images). */
    cropSize?: number;
  };
  clip: StageSettings & {
    model: Omit<ClipConfig, "vocabSize">;
    minWordCount: number;
    /**
     * Interchangeable words for NegCLIP-style hard negatives (each caption also competes with a
     * copy that has one of these words swapped); none when absent.
     */
    negativeWordGroups?: readonly (readonly string[])[];
  };
  unet: StageSettings & {
    model: UnetConfig;
    schedule: Partial<ScheduleConfig>;
    minSnrGamma: number;
    captionDropout: number;
    emaDecay: number;
    /**
     * What the UNet cross-attends to: the text encoder's per-token states (`states`, the
     * fallback when absent, as Stable Diffusion), or those followed by the plain token embeddings
     * (`states+tokens`, twice the tokens), so a word is also seen apart from the words before it
     * in a causal encoder, or the plain token embeddings alone (`tokens`: no word sees another).
     * `words` and `states+words` are `tokens` and `states+tokens` with each embedding
     * layer-normalised to unit scale (the embedded presets use `words`; see the README's caption
     * following). The ONNX export carries it as the text encoder's `encoder_hidden_states`.
     */
    textContext?: TextContext;
  };
  sample: { scheduler: string; steps: number; guidance: number };
  eval: { samplesPerPrompt: number };
}

const SD_LIKE_SCHEDULE: Partial<ScheduleConfig> = {
  numTrainTimesteps: 1000,
  betaStart: 0.00085,
  betaEnd: 0.012,
  betaSchedule: "scaled_linear",
  predictionType: "epsilon",
};

/** The built-in presets. */
export const RECIPE_PRESETS: Record<"tiny" | "default", RecipePreset> = {
  tiny: {
    name: "tiny",
    data: { imageSize: 16, trainCount: 256, perShard: 128, minAesthetic: 0 },
    autoencoder: {
      model: AUTOENCODER_PRESETS.tiny,
      klWeight: 1e-6,
      steps: 6,
      batchSize: 8,
      lr: 2e-3,
      warmupSteps: 2,
      checkpointEvery: 3,
    },
    clip: {
      model: { ...CLIP_PRESETS.tiny, contextLength: 24 },
      minWordCount: 1,
      negativeWordGroups: SHAPES_WORLD_WORD_GROUPS,
      steps: 6,
      batchSize: 16,
      lr: 2e-3,
      warmupSteps: 2,
      checkpointEvery: 3,
    },
    unet: {
      model: UNET_PRESETS.tiny,
      schedule: SD_LIKE_SCHEDULE,
      minSnrGamma: 5,
      captionDropout: 0.1,
      emaDecay: 0.99,
      textContext: "words",
      steps: 8,
      batchSize: 8,
      lr: 2e-3,
      warmupSteps: 2,
      checkpointEvery: 4,
    },
    sample: { scheduler: "dpmpp_2m", steps: 8, guidance: 3 },
    eval: { samplesPerPrompt: 1 },
  },
  default: {
    name: "default",
    data: { imageSize: 32, trainCount: 12000, perShard: 2000, minAesthetic: 4.5 },
    autoencoder: {
      // Narrow full-resolution levels: the autoencoder's cost is its 32x32 convolutions.
      model: { ...AUTOENCODER_PRESETS.small, blockChannels: [16, 32, 64], groupNormGroups: 8 },
      klWeight: 1e-6,
      cropSize: 16,
      steps: 450,
      batchSize: 32,
      lr: 3e-3,
      warmupSteps: 50,
      checkpointEvery: 200,
    },
    clip: {
      model: {
        ...CLIP_PRESETS.small,
        contextLength: 24,
        imageChannels: [16, 32, 64],
        imageGroups: 8,
      },
      minWordCount: 1,
      // No hard negatives here: at 300 steps they did not lift zero-shot shape accuracy above
      // chance (24%, measured) and cost ~30% more per step; longer CLIP runs may want them.
      steps: 200,
      batchSize: 32,
      lr: 1e-3,
      warmupSteps: 50,
      checkpointEvery: 200,
    },
    unet: {
      // Cross-attention where shapes are resolved (8x8 and 4x4 latents), none at 2x2.
      model: { ...UNET_PRESETS.small, attentionLevels: [true, true, false] },
      schedule: SD_LIKE_SCHEDULE,
      minSnrGamma: 5,
      captionDropout: 0.1,
      emaDecay: 0.999,
      // Each caption word's own embedding, layer-normalised (see `textContext`): with it the UNet
      // draws the requested shape for 62.5% of held-out colour/shape pairs at 2,000 steps,
      // against 14.3% with the encoder's states and 17.9% with raw embeddings, and for 87.5% at
      // 2,500 (measured; see the README).
      textContext: "words",
      // The native kernels halved the step time (~0.3 s), which bought a second 1,000 steps
      // (held-out colour 82-91% -> 100%); with `words`, shape appears between 1,000 steps (at
      // chance) and 2,000 (held-out 62.5% and 51.8% on seeds 0 and 1), and 2,500 steps gave 87.5%
      // with the whole run in 14.9 minutes (measured; see the README).
      steps: 2500,
      batchSize: 32,
      lr: 2e-3,
      warmupSteps: 100,
      checkpointEvery: 500,
    },
    sample: { scheduler: "dpmpp_2m", steps: 25, guidance: 4 },
    eval: { samplesPerPrompt: 8 },
  },
};

/** Overrides accepted on top of a preset (from command-line flags). */
export interface PresetOverrides {
  /** Scale every stage's steps so the UNet gets this many (others keep their ratio). */
  unetSteps?: number;
  /** The UNet's batch size (e.g. larger on an accelerator); the learning rate is kept. */
  unetBatchSize?: number;
  /** What the UNet cross-attends to (see `RecipePreset["unet"].textContext`). */
  unetTextContext?: TextContext;
  /** The UNet's target, `schedule.predictionType` (min-SNR weights follow it). */
  unetPrediction?: PredictionType;
  /** Micro-batches per UNet optimizer step (see `StageSettings.gradAccum`). */
  unetGradAccum?: number;
  /** UNet checkpoint interval in steps. */
  unetCheckpointEvery?: number;
  /** Newest complete UNet checkpoints kept (`"all"`: every one). */
  unetKeep?: number | "all";
  /** UNet steps also saved and never deleted. */
  unetKeepAt?: number[];
}

/** A preset by name with overrides applied; unknown names list the known ones. */
export function resolvePreset(name: string, o: PresetOverrides = {}): RecipePreset {
  const base = RECIPE_PRESETS[name as keyof typeof RECIPE_PRESETS];
  if (!base) {
    throw new Error(
      `unknown preset "${name}"; expected one of ${Object.keys(RECIPE_PRESETS).join(", ")}`,
    );
  }
  const p: RecipePreset = structuredClone(base);
  if (o.unetSteps !== undefined) {
    const ratio = o.unetSteps / base.unet.steps;
    for (const s of [p.autoencoder, p.clip, p.unet]) {
      s.steps = Math.max(1, Math.round(s.steps * ratio));
      s.warmupSteps = Math.min(s.warmupSteps, Math.max(0, s.steps - 1));
      s.checkpointEvery = Math.max(1, Math.min(s.checkpointEvery, s.steps));
    }
    p.unet.steps = o.unetSteps;
  }
  if (o.unetBatchSize !== undefined) {
    if (!Number.isInteger(o.unetBatchSize) || o.unetBatchSize < 1) {
      throw new Error(`unetBatchSize must be a positive integer, got ${o.unetBatchSize}`);
    }
    p.unet.batchSize = o.unetBatchSize;
  }
  if (o.unetTextContext !== undefined) {
    if (!TEXT_CONTEXTS.includes(o.unetTextContext)) {
      throw new Error(
        `textContext must be one of ${TEXT_CONTEXTS.join(", ")}, got "${o.unetTextContext}"`,
      );
    }
    // `states` is left implicit (an absent field means it), so runs made before the option
    // existed resume with the same preset.
    if (o.unetTextContext === "states") delete p.unet.textContext;
    else p.unet.textContext = o.unetTextContext;
  }
  applyUnetTraining(p.unet, o);
  return p;
}

/** An integer >= 1, or an error naming the override (the command-line flag in parentheses). */
function count(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be an integer >= 1, got ${v}`);
  return v;
}

/**
 * The UNet's training options. Defaults are left implicit (absent fields: 1 micro-batch, 2 kept
 * checkpoints, no fixed ones) so runs made before these options existed resume with the same
 * preset.
 */
function applyUnetTraining(u: RecipePreset["unet"], o: PresetOverrides): void {
  if (o.unetPrediction !== undefined) {
    if (o.unetPrediction !== "epsilon" && o.unetPrediction !== "v_prediction") {
      throw new Error(
        `unetPrediction (--prediction) must be "epsilon" or "v_prediction", got "${o.unetPrediction}"`,
      );
    }
    u.schedule = { ...u.schedule, predictionType: o.unetPrediction };
  }
  if (o.unetGradAccum !== undefined) {
    if (count("unetGradAccum (--grad-accum)", o.unetGradAccum) === 1) delete u.gradAccum;
    else u.gradAccum = o.unetGradAccum;
  }
  if (o.unetCheckpointEvery !== undefined) {
    u.checkpointEvery = count("unetCheckpointEvery (--checkpoint-every)", o.unetCheckpointEvery);
  }
  if (o.unetKeep !== undefined) {
    if (o.unetKeep !== "all") count("unetKeep (--keep)", o.unetKeep);
    if (o.unetKeep === 2) delete u.keep;
    else u.keep = o.unetKeep;
  }
  if (o.unetKeepAt !== undefined) {
    const steps = [...new Set(o.unetKeepAt)].sort((a, b) => a - b);
    for (const k of steps) {
      count("unetKeepAt (--keep-at) steps", k);
      if (k > u.steps) {
        throw new Error(`unetKeepAt (--keep-at): step ${k} is past the UNet's ${u.steps} steps`);
      }
    }
    if (steps.length) u.keepAt = steps;
    else delete u.keepAt;
  }
}
