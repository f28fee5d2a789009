/**
 * Conditional UNet for latent diffusion, structured like diffusers' UNet2DConditionModel (and with
 * its parameter names): `conv_in`; sinusoidal time projection + `time_embedding` MLP; down levels
 * of ResnetBlock2D (+ Transformer2D at attention levels) with a stride-2 downsampler between
 * levels; a middle block (res, attn, res); up levels with skip concatenation and nearest+conv
 * upsamplers; GroupNorm-SiLU-`conv_out`. Layout is NHWC.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { initUnet, UNET_PRESETS, unetForward } from "./unet.ts";
 * import { Rng, STREAM } from "../util/rng.ts";
 *
 * const cfg = UNET_PRESETS.tiny;
 * const p = initUnet(cfg, Rng.stream(0, [0, STREAM.init]));
 * const x = tf.zeros([2, 8, 8, 4]) as tf.Tensor4D; // [B,H,W,4]
 * const context = tf.zeros([2, 4, cfg.contextDim]) as tf.Tensor3D; // [B,T,D]
 * const eps = unetForward(p, cfg, { x, t: tf.tensor1d([10, 500]), context });
 * assert.deepEqual(eps.shape, [2, 8, 8, 4]);
 * ```
 * @module
 */
import type * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import type { Rng } from "../util/rng.ts";
import {
  conv2d,
  countParams,
  type Dim,
  downsample,
  type GeluKind,
  groupNorm,
  initConv2d,
  initDownsample,
  initGroupNorm,
  initLinear,
  initResnetBlock,
  initUpsample,
  linear,
  type Net,
  type Ops,
  type ParamBuilder,
  type Params,
  type ParamShapes,
  resnetBlock,
  ShapeBuilder,
  takeParamArrays,
  TensorBuilder,
  timestepEmbedding,
  upsample,
  withOps,
} from "../nn/mod.ts";
import { initTransformer2d, transformer2d, type Transformer2dConfig } from "./transformer2d.ts";

/** Shape of a {@link unetForward} model. */
export interface UnetConfig {
  /** Latent channels in (4 for SD). */
  inChannels: number;
  /** Prediction channels out (4 for SD). */
  outChannels: number;
  /** Channels per resolution level, highest resolution first. */
  blockChannels: number[];
  /** Resnet blocks per down level (up levels have one more). */
  layersPerBlock: number;
  /** Which levels (same order as `blockChannels`) carry spatial transformers. */
  attentionLevels: boolean[];
  /** Heads per attention layer (SD v1.5: 8). Give this or `headDim`. */
  numHeads?: number;
  /** Channels per head (heads = channels / headDim). Give this or `numHeads`. */
  headDim?: number;
  /** Width of the text context. */
  contextDim: number;
  /** GroupNorm groups everywhere. */
  groupNormGroups: number;
  /** Linear instead of 1x1-conv `proj_in`/`proj_out` in transformers. */
  useLinearProjection: boolean;
  /** Width of the time embedding MLP (default 4 * blockChannels[0]). */
  timeEmbedDim?: number;
  /** Transformer blocks per spatial transformer (default 1). */
  transformerDepth?: number;
  /**
   * GELU of the transformers' GEGLU feed-forward: `"tanh"` (default, every preset) or `"erf"`,
   * the exact GELU of diffusers' UNet2DConditionModel (what `unetConfigFromDiffusers` gives).
   */
  gelu?: GeluKind;
}

/**
 * Presets. `sd15` is Stable Diffusion v1.5's UNet (859,520,964 parameters; too big to train
 * here but counted from shapes). `tiny` is for tests, `small` the default training preset for
 * 8x8x4 latents with a 64-d text context.
 */
export const UNET_PRESETS: {
  sd15: UnetConfig;
  tiny: UnetConfig;
  small: UnetConfig;
} = {
  sd15: {
    inChannels: 4,
    outChannels: 4,
    blockChannels: [320, 640, 1280, 1280],
    layersPerBlock: 2,
    attentionLevels: [true, true, true, false],
    numHeads: 8,
    contextDim: 768,
    groupNormGroups: 32,
    useLinearProjection: false,
    timeEmbedDim: 1280,
  },
  tiny: {
    inChannels: 4,
    outChannels: 4,
    blockChannels: [16, 32],
    layersPerBlock: 1,
    attentionLevels: [false, true],
    numHeads: 2,
    contextDim: 32,
    groupNormGroups: 8,
    useLinearProjection: false,
  },
  small: {
    inChannels: 4,
    outChannels: 4,
    blockChannels: [32, 64, 96],
    layersPerBlock: 1,
    attentionLevels: [false, true, true],
    numHeads: 4,
    contextDim: 64,
    groupNormGroups: 16,
    useLinearProjection: true,
    timeEmbedDim: 128,
  },
};

/**
 * Check a config and fill defaults; errors name the offending field.
 *
 * @example
 * ```ts
 * const cfg = resolveUnetConfig({ ...UNET_PRESETS.tiny, layersPerBlock: 2 });
 * ```
 */
export function resolveUnetConfig(
  c: UnetConfig,
): Required<Omit<UnetConfig, "numHeads" | "headDim" | "gelu">> & {
  numHeads?: number;
  headDim?: number;
  gelu?: GeluKind;
} {
  const bad = (field: string, msg: string): never => {
    throw new Error(`UnetConfig.${field}: ${msg}`);
  };
  const posInt = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
  for (
    const f of [
      "inChannels",
      "outChannels",
      "layersPerBlock",
      "contextDim",
      "groupNormGroups",
    ] as const
  ) {
    if (!posInt(c[f])) bad(f, `expected a positive integer, got ${c[f]}`);
  }
  if (!Array.isArray(c.blockChannels) || c.blockChannels.length === 0) {
    bad("blockChannels", "expected a non-empty array of channel counts");
  }
  if (!Array.isArray(c.attentionLevels) || c.attentionLevels.length !== c.blockChannels.length) {
    bad("attentionLevels", `expected ${c.blockChannels.length} booleans (one per level)`);
  }
  for (const ch of c.blockChannels) {
    if (!posInt(ch) || ch % c.groupNormGroups !== 0) {
      bad(
        "blockChannels",
        `${ch} must be a positive multiple of groupNormGroups=${c.groupNormGroups}`,
      );
    }
  }
  if ((c.numHeads === undefined) === (c.headDim === undefined)) {
    bad("numHeads", "give exactly one of numHeads and headDim");
  }
  const timeEmbedDim = c.timeEmbedDim ?? 4 * c.blockChannels[0];
  if (!posInt(timeEmbedDim)) {
    bad("timeEmbedDim", `expected a positive integer, got ${timeEmbedDim}`);
  }
  const transformerDepth = c.transformerDepth ?? 1;
  if (!posInt(transformerDepth)) bad("transformerDepth", `expected a positive integer`);
  if (c.gelu !== undefined && c.gelu !== "tanh" && c.gelu !== "erf") {
    bad("gelu", `expected "tanh" or "erf", got ${JSON.stringify(c.gelu)}`);
  }
  return { ...c, timeEmbedDim, transformerDepth };
}

function transformerConfig(c: UnetConfig, channels: number): Transformer2dConfig {
  const heads = c.numHeads ?? channels / c.headDim!;
  const headDim = channels / heads;
  if (!Number.isInteger(heads) || !Number.isInteger(headDim)) {
    throw new Error(
      `UnetConfig: attention at ${channels} channels needs heads (${
        c.numHeads ?? "-"
      }) or headDim ` +
        `(${c.headDim ?? "-"}) dividing ${channels}`,
    );
  }
  return {
    channels,
    heads,
    headDim,
    contextDim: c.contextDim,
    groups: c.groupNormGroups,
    useLinearProjection: c.useLinearProjection,
    depth: c.transformerDepth ?? 1,
    gelu: c.gelu,
  };
}

/** Channel bookkeeping shared by init and forward, mirroring diffusers' constructor. */
interface UpLayerPlan {
  inChannels: number;
  outChannels: number;
}

function upPlan(c: UnetConfig): UpLayerPlan[][] {
  const ch = c.blockChannels;
  const n = ch.length;
  // Skip channels in push order: conv_in, then per level its resnets, then its downsampler.
  const skips: number[] = [ch[0]];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < c.layersPerBlock; j++) skips.push(ch[i]);
    if (i < n - 1) skips.push(ch[i]);
  }
  const plan: UpLayerPlan[][] = [];
  let prev = ch[n - 1];
  for (let i = n - 1; i >= 0; i--) {
    const level: UpLayerPlan[] = [];
    for (let j = 0; j <= c.layersPerBlock; j++) {
      const skip = skips.pop()!;
      level.push({ inChannels: prev + skip, outChannels: ch[i] });
      prev = ch[i];
    }
    plan.push(level);
  }
  return plan;
}

function buildUnet(b: ParamBuilder, cfg: UnetConfig): void {
  const c = resolveUnetConfig(cfg);
  const ch = c.blockChannels;
  const n = ch.length;
  const temb = c.timeEmbedDim;
  initConv2d(b, "conv_in", { inChannels: c.inChannels, outChannels: ch[0] });
  initLinear(b, "time_embedding.linear_1", { inFeatures: ch[0], outFeatures: temb });
  initLinear(b, "time_embedding.linear_2", { inFeatures: temb, outFeatures: temb });
  let prev = ch[0];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < c.layersPerBlock; j++) {
      initResnetBlock(b, `down_blocks.${i}.resnets.${j}`, {
        inChannels: prev,
        outChannels: ch[i],
        tembChannels: temb,
      });
      prev = ch[i];
      if (c.attentionLevels[i]) {
        initTransformer2d(b, `down_blocks.${i}.attentions.${j}`, transformerConfig(c, ch[i]));
      }
    }
    if (i < n - 1) initDownsample(b, `down_blocks.${i}.downsamplers.0`, ch[i]);
  }
  const mid = ch[n - 1];
  const midRes = { inChannels: mid, outChannels: mid, tembChannels: temb };
  initResnetBlock(b, "mid_block.resnets.0", midRes);
  initTransformer2d(b, "mid_block.attentions.0", transformerConfig(c, mid));
  initResnetBlock(b, "mid_block.resnets.1", midRes);
  upPlan(c).forEach((level, u) => {
    const i = n - 1 - u;
    level.forEach((l, j) => {
      initResnetBlock(b, `up_blocks.${u}.resnets.${j}`, { ...l, tembChannels: temb });
      if (c.attentionLevels[i]) {
        initTransformer2d(b, `up_blocks.${u}.attentions.${j}`, transformerConfig(c, ch[i]));
      }
    });
    if (i > 0) initUpsample(b, `up_blocks.${u}.upsamplers.0`, ch[i]);
  });
  initGroupNorm(b, "conv_norm_out", ch[0]);
  initConv2d(b, "conv_out", { inChannels: ch[0], outChannels: c.outChannels });
}

/**
 * Allocate a UNet's weights, drawn from `rng` (identical on every backend for one seed).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import { initUnet, UNET_PRESETS } from "./unet.ts";
 * import { Rng, STREAM } from "../util/rng.ts";
 *
 * const p = initUnet(UNET_PRESETS.tiny, Rng.stream(0, [0, STREAM.init]));
 * assert.deepEqual(p["conv_in.weight"].shape, [3, 3, 4, 16]);
 * const q = initUnet(UNET_PRESETS.tiny, Rng.stream(0, [0, STREAM.init])); // same seed, same weights
 * assert.deepEqual(q["conv_in.weight"].dataSync(), p["conv_in.weight"].dataSync());
 * ```
 */
export function initUnet(cfg: UnetConfig, rng: Rng): Params {
  const b = new TensorBuilder(rng);
  buildUnet(b, cfg);
  return b.params;
}

/**
 * {@link initUnet}'s weights as flat float32 arrays by name, the tensors freed: the form the
 * compiled WebGPU step (`setParams`) and data-parallel ranks take initial weights in.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import { initUnet, initUnetArrays, UNET_PRESETS } from "./unet.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const a = initUnetArrays(UNET_PRESETS.tiny, Rng.stream(3));
 * const t = initUnet(UNET_PRESETS.tiny, Rng.stream(3)); // the same draws
 * assert.deepEqual(a["conv_in.weight"], t["conv_in.weight"].dataSync());
 * ```
 */
export function initUnetArrays(cfg: UnetConfig, rng: Rng): Record<string, Float32Array> {
  return takeParamArrays(initUnet(cfg, rng));
}

/**
 * Parameter shapes of a config, computed without allocating tensors.
 *
 * @example
 * ```ts
 * unetParamShapes(UNET_PRESETS.sd15)["conv_in.weight"]; // [3, 3, 4, 320]
 * ```
 */
export function unetParamShapes(cfg: UnetConfig): ParamShapes {
  const b = new ShapeBuilder();
  buildUnet(b, cfg);
  return b.shapes;
}

/**
 * Parameter count of a config, computed from shapes only (SD v1.5: 859,520,964).
 *
 * @example
 * ```ts
 * countParamsForConfig(UNET_PRESETS.sd15); // 859520964
 * ```
 */
export function countParamsForConfig(cfg: UnetConfig): number {
  return countParams(unetParamShapes(cfg));
}

/** Inputs of {@link unetForward} on any {@link Ops} (all `T`). */
export interface UnetInputsOf<T> {
  /** Noisy latents `[B, H, W, inChannels]`; H and W divisible by 2^(levels-1). */
  x: T;
  /** Float timesteps `[B]` (or `[1]`, broadcast over the batch). */
  t: T;
  /** Text context `[B, T, contextDim]`. */
  context: T;
  /** `[B, T]` 1 = real token, 0 = padding ignored by cross-attention. */
  contextMask?: T;
}

/** Inputs of {@link unetForward} on TensorFlow.js. */
export interface UnetInputs extends UnetInputsOf<tf.Tensor> {
  x: tf.Tensor4D;
  t: tf.Tensor1D;
  context: tf.Tensor3D;
  contextMask?: tf.Tensor2D;
}

/** Fails unless every fixed size of `inputs` fits `c`; sizes known only at run time pass. */
function checkInputs<T>(m: Ops<T>, c: UnetConfig, inputs: UnetInputsOf<T>): void {
  const [bsz, hgt, wid, cin] = m.shape(inputs.x);
  const t = m.shape(inputs.t), ctx = m.shape(inputs.context);
  const n = c.blockChannels.length;
  if (m.shape(inputs.x).length !== 4 || cin !== c.inChannels) {
    throw new Error(`unetForward: x must be [B,H,W,${c.inChannels}], got [${dims(m, inputs.x)}]`);
  }
  const mult = 2 ** (n - 1);
  const fits = (d: Dim) => typeof d !== "number" || d % mult === 0;
  if (!fits(hgt) || !fits(wid)) {
    throw new Error(`unetForward: x height/width (${hgt}x${wid}) must be divisible by ${mult}`);
  }
  const sameBatch = (d: Dim) => typeof d !== "number" || typeof bsz !== "number" || d === bsz;
  if (t.length !== 1 || !sameBatch(t[0])) {
    throw new Error(`unetForward: t must be [${bsz}], got [${dims(m, inputs.t)}]`);
  }
  if (ctx.length !== 3 || !sameBatch(ctx[0]) || ctx[2] !== c.contextDim) {
    throw new Error(
      `unetForward: context must be [${bsz}, T, ${c.contextDim}], got [${dims(m, inputs.context)}]`,
    );
  }
}

function dims<T>(m: Ops<T>, x: T): string {
  return m.shape(x).map((d) => typeof d === "number" ? d : d.symbolic).join(",");
}

/**
 * Predict (noise, v, ...) for noisy latents: `[B,H,W,inChannels] -> [B,H,W,outChannels]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { initUnet, UNET_PRESETS, unetForward } from "./unet.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const cfg = { ...UNET_PRESETS.tiny, outChannels: 8 };
 * const p = initUnet(cfg, Rng.stream(0));
 * const x = tf.zeros([2, 8, 8, 4]) as tf.Tensor4D;
 * const context = tf.zeros([2, 4, cfg.contextDim]) as tf.Tensor3D;
 * const out = unetForward(p, cfg, { x, t: tf.tensor1d([10, 500]), context });
 * assert.deepEqual(out.shape, [2, 8, 8, 8]); // [B,H,W,outChannels]

 * ```
 */
export function unetForward(p: Params, cfg: UnetConfig, inputs: UnetInputs): tf.Tensor4D;
export function unetForward<T>(m: Ops<T>, cfg: UnetConfig, inputs: UnetInputsOf<T>): T;
export function unetForward<T>(net: Net<T>, cfg: UnetConfig, inputs: UnetInputsOf<T>): T {
  const c = resolveUnetConfig(cfg);
  const { x, t, context, contextMask } = inputs;
  const ch = c.blockChannels;
  const n = ch.length;
  const gn = { groups: c.groupNormGroups };
  return withOps(net, (m) => {
    checkInputs(m, c, inputs);
    const tproj = timestepEmbedding(m, t, {
      dim: ch[0],
      flipSinToCos: true,
      downscaleFreqShift: 0,
    });
    const temb = linear(
      m,
      "time_embedding.linear_2",
      m.silu(linear(m, "time_embedding.linear_1", tproj)),
    );
    const res = (name: string, h: T) => resnetBlock(m, name, h, { ...gn, temb });
    const attn = (name: string, h: T, channels: number) =>
      transformer2d(m, name, h, { ...transformerConfig(c, channels), context, contextMask });

    let h = conv2d(m, "conv_in", x);
    const skips: T[] = [h];
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < c.layersPerBlock; j++) {
        h = res(`down_blocks.${i}.resnets.${j}`, h);
        if (c.attentionLevels[i]) h = attn(`down_blocks.${i}.attentions.${j}`, h, ch[i]);
        skips.push(h);
      }
      if (i < n - 1) {
        h = downsample(m, `down_blocks.${i}.downsamplers.0`, h);
        skips.push(h);
      }
    }
    h = res("mid_block.resnets.0", h);
    h = attn("mid_block.attentions.0", h, ch[n - 1]);
    h = res("mid_block.resnets.1", h);
    for (let u = 0; u < n; u++) {
      const i = n - 1 - u;
      for (let j = 0; j <= c.layersPerBlock; j++) {
        h = m.concat([h, skips.pop()!], 3);
        h = res(`up_blocks.${u}.resnets.${j}`, h);
        if (c.attentionLevels[i]) h = attn(`up_blocks.${u}.attentions.${j}`, h, ch[i]);
      }
      if (i > 0) h = upsample(m, `up_blocks.${u}.upsamplers.0`, h);
    }
    h = groupNorm(m, "conv_norm_out", h, { ...gn, silu: true });
    return conv2d(m, "conv_out", h);
  });
}
