/**
 * Small convolutional KL autoencoder (the role of SD's VAE): image `[B,H,W,3]` in [-1, 1] ->
 * latent `[B,H/f,W/f,latentChannels]` -> image, with `f = 2^(levels-1)`. The encoder outputs a
 * mean and a log-variance; a light KL term keeps latents smooth and near unit scale, and
 * {@link estimateScalingFactor} gives the factor that makes them unit variance (how SD's 0.18215
 * was chosen).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { AUTOENCODER_PRESETS, decode, encode, initAutoencoder } from "./autoencoder.ts";
 * import { Rng, STREAM } from "../util/rng.ts";
 *
 * const cfg = AUTOENCODER_PRESETS.tiny;
 * const p = initAutoencoder(cfg, Rng.stream(0, [0, STREAM.init]));
 * const images = tf.zeros([2, 8, 8, 3]) as tf.Tensor4D; // values in [-1, 1]
 * const { mean, logvar } = encode(p, cfg, images);
 * assert.deepEqual([mean.shape, logvar.shape], [[2, 2, 2, 4], [2, 2, 2, 4]]); // [B, H/4, W/4, 4]
 * assert.deepEqual(decode(p, cfg, mean).shape, [2, 8, 8, 3]);
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import type { Rng } from "../util/rng.ts";
import {
  conv2d,
  downsample,
  groupNorm,
  initConv2d,
  initDownsample,
  initGroupNorm,
  initResnetBlock,
  initUpsample,
  type Net,
  type Ops,
  type ParamBuilder,
  type Params,
  resnetBlock,
  TensorBuilder,
  upsample,
  withOps,
} from "../nn/mod.ts";

/** Shape of an autoencoder. */
export interface AutoencoderConfig {
  /** Image channels (3). */
  imageChannels: number;
  /** Latent channels (4, like SD). */
  latentChannels: number;
  /** Channels per level, highest resolution first; downsampling factor is 2^(length-1). */
  blockChannels: number[];
  /** Resnet blocks per level. */
  layersPerBlock: number;
  /** GroupNorm groups (must divide every channel count). */
  groupNormGroups: number;
}

/** Presets: `tiny` for tests, `small` for the shapes-world 32x32 images (f = 4 for both). */
export const AUTOENCODER_PRESETS: { tiny: AutoencoderConfig; small: AutoencoderConfig } = {
  tiny: {
    imageChannels: 3,
    latentChannels: 4,
    blockChannels: [8, 16, 16],
    layersPerBlock: 1,
    groupNormGroups: 4,
  },
  small: {
    imageChannels: 3,
    latentChannels: 4,
    blockChannels: [32, 64, 64],
    layersPerBlock: 1,
    groupNormGroups: 16,
  },
};

function checkConfig(c: AutoencoderConfig): void {
  const posInt = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
  for (
    const f of ["imageChannels", "latentChannels", "layersPerBlock", "groupNormGroups"] as const
  ) {
    if (!posInt(c[f])) {
      throw new Error(`AutoencoderConfig.${f}: expected a positive integer, got ${c[f]}`);
    }
  }
  if (!Array.isArray(c.blockChannels) || c.blockChannels.length === 0) {
    throw new Error("AutoencoderConfig.blockChannels: expected a non-empty array");
  }
  for (const ch of c.blockChannels) {
    if (!posInt(ch) || ch % c.groupNormGroups !== 0) {
      throw new Error(
        `AutoencoderConfig.blockChannels: ${ch} must be a positive multiple of groupNormGroups=${c.groupNormGroups}`,
      );
    }
  }
}

/**
 * Spatial downsampling factor `f` (latent = image / f).
 *
 * @example
 * ```ts
 * downsampleFactor(AUTOENCODER_PRESETS.small); // 4
 * ```
 */
export function downsampleFactor(cfg: AutoencoderConfig): number {
  return 2 ** (cfg.blockChannels.length - 1);
}

/**
 * Latent shape `[H/f, W/f, latentChannels]` for an `height x width` image.
 *
 * @example
 * ```ts
 * latentShape(AUTOENCODER_PRESETS.small, 32, 32); // [8, 8, 4]
 * ```
 */
export function latentShape(cfg: AutoencoderConfig, height: number, width: number): number[] {
  const f = downsampleFactor(cfg);
  if (height % f !== 0 || width % f !== 0) {
    throw new Error(`autoencoder: image ${height}x${width} must be divisible by f=${f}`);
  }
  return [height / f, width / f, cfg.latentChannels];
}

function buildAutoencoder(b: ParamBuilder, c: AutoencoderConfig): void {
  checkConfig(c);
  const ch = c.blockChannels;
  const n = ch.length;
  initConv2d(b, "encoder.conv_in", { inChannels: c.imageChannels, outChannels: ch[0] });
  let prev = ch[0];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < c.layersPerBlock; j++) {
      initResnetBlock(b, `encoder.down.${i}.resnets.${j}`, {
        inChannels: prev,
        outChannels: ch[i],
      });
      prev = ch[i];
    }
    if (i < n - 1) initDownsample(b, `encoder.down.${i}.downsample`, ch[i]);
  }
  const top = ch[n - 1];
  initResnetBlock(b, "encoder.mid", { inChannels: top, outChannels: top });
  initGroupNorm(b, "encoder.norm_out", top);
  initConv2d(b, "encoder.conv_out", { inChannels: top, outChannels: 2 * c.latentChannels });

  initConv2d(b, "decoder.conv_in", { inChannels: c.latentChannels, outChannels: top });
  initResnetBlock(b, "decoder.mid", { inChannels: top, outChannels: top });
  prev = top;
  for (let i = n - 1; i >= 0; i--) {
    for (let j = 0; j < c.layersPerBlock; j++) {
      initResnetBlock(b, `decoder.up.${i}.resnets.${j}`, { inChannels: prev, outChannels: ch[i] });
      prev = ch[i];
    }
    if (i > 0) initUpsample(b, `decoder.up.${i}.upsample`, ch[i]);
  }
  initGroupNorm(b, "decoder.norm_out", ch[0]);
  initConv2d(b, "decoder.conv_out", { inChannels: ch[0], outChannels: c.imageChannels });
}

/**
 * Allocate autoencoder weights drawn from `rng`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import { AUTOENCODER_PRESETS, initAutoencoder } from "./autoencoder.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const p = initAutoencoder(AUTOENCODER_PRESETS.tiny, Rng.stream(0));
 * // Mean channels start at bias 0, log-variance channels at -6 (a narrow posterior).
 * assert.deepEqual([...p["encoder.conv_out.bias"].dataSync()], [0, 0, 0, 0, -6, -6, -6, -6]);
 * ```
 */
export function initAutoencoder(cfg: AutoencoderConfig, rng: Rng): Params {
  const b = new TensorBuilder(rng);
  buildAutoencoder(b, cfg);
  // Start the posterior narrow (log-variance bias -6, std ~0.05): with the tiny KL weight the
  // decoder would otherwise spend most of a short training run seeing latents drowned in unit
  // sampling noise, which shows up as blurred, washed-out reconstructions.
  const bias = b.params["encoder.conv_out.bias"];
  const init = new Float32Array(2 * cfg.latentChannels);
  init.fill(INITIAL_LOGVAR, cfg.latentChannels);
  bias.assign(tf.tensor1d(init));
  return b.params;
}

/** Initial log-variance of the encoder's posterior (see {@link initAutoencoder}). */
export const INITIAL_LOGVAR = -6;

/** Posterior of the encoder: a diagonal Gaussian per latent element. */
export interface LatentDistribution<T = tf.Tensor4D> {
  mean: T;
  /** Log-variance, clipped to [-30, 20] like SD's DiagonalGaussianDistribution. */
  logvar: T;
}

/**
 * The encoder's raw output `[B, H/f, W/f, 2 * latentChannels]`: the posterior mean channels, then
 * the log-variance channels before clipping (diffusers' `latent_dist.parameters`, what Optimum's
 * `vae_encoder` returns).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { AUTOENCODER_PRESETS, encoderMoments, initAutoencoder } from "./autoencoder.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const cfg = AUTOENCODER_PRESETS.tiny; // downsamples by 4, 4 latent channels
 * const p = initAutoencoder(cfg, Rng.stream(0));
 * const moments = encoderMoments(p, cfg, tf.zeros([1, 8, 8, 3]) as tf.Tensor4D);
 * assert.deepEqual(moments.shape, [1, 2, 2, 8]); // mean channels, then log-variance channels
 * ```
 */
export function encoderMoments(p: Params, cfg: AutoencoderConfig, image: tf.Tensor4D): tf.Tensor4D;
export function encoderMoments<T>(m: Ops<T>, cfg: AutoencoderConfig, image: T): T;
export function encoderMoments<T>(net: Net<T>, cfg: AutoencoderConfig, image: T): T {
  checkConfig(cfg);
  const gn = { groups: cfg.groupNormGroups };
  const ch = cfg.blockChannels;
  return withOps(net, (m) => {
    const [, hgt, wid, c] = m.shape(image);
    if (m.shape(image).length !== 4 || c !== cfg.imageChannels) {
      throw new Error(
        `encode: image must be [B,H,W,${cfg.imageChannels}], got [${m.shape(image)}]`,
      );
    }
    if (typeof hgt === "number" && typeof wid === "number") latentShape(cfg, hgt, wid);
    let h = conv2d(m, "encoder.conv_in", image);
    for (let i = 0; i < ch.length; i++) {
      for (let j = 0; j < cfg.layersPerBlock; j++) {
        h = resnetBlock(m, `encoder.down.${i}.resnets.${j}`, h, gn);
      }
      if (i < ch.length - 1) h = downsample(m, `encoder.down.${i}.downsample`, h);
    }
    h = resnetBlock(m, "encoder.mid", h, gn);
    return conv2d(
      m,
      "encoder.conv_out",
      groupNorm(m, "encoder.norm_out", h, { ...gn, silu: true }),
    );
  });
}

/**
 * Encode images `[B,H,W,imageChannels]` (values in [-1, 1]) to the latent posterior.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { AUTOENCODER_PRESETS, encode, initAutoencoder } from "./autoencoder.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const cfg = AUTOENCODER_PRESETS.tiny;
 * const images = tf.zeros([1, 16, 8, 3]) as tf.Tensor4D;
 * const { mean } = encode(initAutoencoder(cfg, Rng.stream(0)), cfg, images);
 * assert.deepEqual(mean.shape, [1, 4, 2, 4]);
 * ```
 */
export function encode(p: Params, cfg: AutoencoderConfig, image: tf.Tensor4D): LatentDistribution;
export function encode<T>(m: Ops<T>, cfg: AutoencoderConfig, image: T): LatentDistribution<T>;
export function encode<T>(net: Net<T>, cfg: AutoencoderConfig, image: T): LatentDistribution<T> {
  return withOps(net, (m) => {
    const [mean, logvar] = m.split(encoderMoments(m, cfg, image), 2, 3);
    return { mean, logvar: m.clip(logvar, -30, 20) };
  });
}

/**
 * Draw `z = mean + exp(logvar / 2) * noise`, with `noise` standard normal drawn by the caller
 * from an {@link Rng} (so sampling is reproducible and backend-independent).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { sampleLatent } from "./autoencoder.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * // Mean 1 and variance 4 (logvar ln 4): z = 1 + 2 * noise.
 * const mean = tf.ones([1, 1, 2, 1]) as tf.Tensor4D;
 * const logvar = tf.fill([1, 1, 2, 1], Math.log(4)) as tf.Tensor4D;
 * const noise = Rng.stream(0).normal(2);
 * const z = sampleLatent({ mean, logvar }, tf.tensor4d(noise, [1, 1, 2, 1])).dataSync();
 * z.forEach((v, i) => assert.ok(Math.abs(v - (1 + 2 * noise[i])) < 1e-5));
 * ```
 */
export function sampleLatent(dist: LatentDistribution, noise: tf.Tensor4D): tf.Tensor4D {
  if (noise.shape.join(",") !== dist.mean.shape.join(",")) {
    throw new Error(
      `sampleLatent: noise shape [${noise.shape}] != mean shape [${dist.mean.shape}]`,
    );
  }
  return tf.tidy(() => tf.add(dist.mean, tf.mul(tf.exp(tf.mul(dist.logvar, 0.5)), noise)));
}

/**
 * Decode latents `[B,h,w,latentChannels]` to images `[B,h*f,w*f,imageChannels]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { AUTOENCODER_PRESETS, decode, initAutoencoder } from "./autoencoder.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const cfg = AUTOENCODER_PRESETS.tiny;
 * const z = tf.zeros([1, 2, 3, 4]) as tf.Tensor4D; // [B, h, w, latentChannels]
 * assert.deepEqual(decode(initAutoencoder(cfg, Rng.stream(0)), cfg, z).shape, [1, 8, 12, 3]);
 * ```
 */
export function decode(p: Params, cfg: AutoencoderConfig, z: tf.Tensor4D): tf.Tensor4D;
export function decode<T>(m: Ops<T>, cfg: AutoencoderConfig, z: T): T;
export function decode<T>(net: Net<T>, cfg: AutoencoderConfig, z: T): T {
  checkConfig(cfg);
  const gn = { groups: cfg.groupNormGroups };
  const ch = cfg.blockChannels;
  return withOps(net, (m) => {
    const shape = m.shape(z);
    if (shape.length !== 4 || shape[3] !== cfg.latentChannels) {
      throw new Error(`decode: latent must be [B,h,w,${cfg.latentChannels}], got [${shape}]`);
    }
    let h = conv2d(m, "decoder.conv_in", z);
    h = resnetBlock(m, "decoder.mid", h, gn);
    for (let i = ch.length - 1; i >= 0; i--) {
      for (let j = 0; j < cfg.layersPerBlock; j++) {
        h = resnetBlock(m, `decoder.up.${i}.resnets.${j}`, h, gn);
      }
      if (i > 0) h = upsample(m, `decoder.up.${i}.upsample`, h);
    }
    return conv2d(
      m,
      "decoder.conv_out",
      groupNorm(m, "decoder.norm_out", h, { ...gn, silu: true }),
    );
  });
}

/** Inputs of {@link autoencoderForward}. */
export interface AutoencoderInputs {
  /** Images `[B,H,W,C]` in [-1, 1]. */
  image: tf.Tensor4D;
  /** Standard normal noise of the latent's shape; the posterior mean is decoded when absent. */
  noise?: tf.Tensor4D;
}

/**
 * Reconstruct images: encode, sample (or take the mean), decode.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { AUTOENCODER_PRESETS, autoencoderForward, initAutoencoder } from "./autoencoder.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const cfg = AUTOENCODER_PRESETS.tiny;
 * const image = tf.zeros([2, 8, 8, 3]) as tf.Tensor4D;
 * const recon = autoencoderForward(initAutoencoder(cfg, Rng.stream(0)), cfg, { image });
 * assert.deepEqual(recon.shape, image.shape);
 * ```
 */
export function autoencoderForward(
  p: Params,
  cfg: AutoencoderConfig,
  inputs: AutoencoderInputs,
): tf.Tensor4D {
  return tf.tidy(() => {
    const dist = encode(p, cfg, inputs.image);
    return decode(p, cfg, inputs.noise ? sampleLatent(dist, inputs.noise) : dist.mean);
  });
}

/**
 * KL divergence from N(0, 1), summed over latent elements and averaged over the batch:
 * `0.5 * sum(mean^2 + exp(logvar) - 1 - logvar)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { klDivergence } from "./autoencoder.ts";
 *
 * // Two latent values with mean 1 and unit variance: 0.5 * (1 + 1 - 1 - 0) each.
 * const mean = tf.ones([1, 1, 2, 1]) as tf.Tensor4D;
 * const logvar = tf.zeros([1, 1, 2, 1]) as tf.Tensor4D;
 * assert.ok(Math.abs(klDivergence({ mean, logvar }).dataSync()[0] - 1) < 1e-6);

 * ```
 */
export function klDivergence(dist: LatentDistribution): tf.Scalar {
  return tf.tidy(() => {
    const terms = tf.sub(tf.sub(tf.add(tf.square(dist.mean), tf.exp(dist.logvar)), 1), dist.logvar);
    return tf.div(tf.mul(tf.sum(terms), 0.5), dist.mean.shape[0]) as tf.Scalar;
  });
}

/** Inputs and weights of {@link autoencoderLoss}. */
export interface AutoencoderLossOptions {
  /** Images `[B,H,W,C]` in [-1, 1]. */
  image: tf.Tensor4D;
  /** Standard normal noise of the latent's shape, for the reparameterised sample. */
  noise: tf.Tensor4D;
  /**
   * KL weight relative to the per-sample reconstruction sum, as in SD's autoencoder training
   * (default 1e-6). The kit reports the loss per pixel, so the KL term is divided by H*W*C.
   */
  klWeight?: number;
  /** "l1" (default, SD's choice) or "l2". */
  reconstruction?: "l1" | "l2";
}

/** Scalar losses of {@link autoencoderLoss} (caller disposes). */
export interface AutoencoderLosses {
  /** `recon + klWeight * kl / (H*W*C)`: what to minimise. */
  loss: tf.Scalar;
  /** Mean absolute (l1) or squared (l2) reconstruction error per element. */
  recon: tf.Scalar;
  /** KL per sample (see {@link klDivergence}). */
  kl: tf.Scalar;
}

/**
 * Reconstruction + KL loss of one batch (encode, sample with `noise`, decode).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { AUTOENCODER_PRESETS, autoencoderLoss, initAutoencoder } from "./autoencoder.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const cfg = AUTOENCODER_PRESETS.tiny;
 * const image = tf.zeros([1, 8, 8, 3]) as tf.Tensor4D;
 * const noise = tf.tensor4d(Rng.stream(1).normal(16), [1, 2, 2, 4]); // the latent's shape
 * const p = initAutoencoder(cfg, Rng.stream(0));
 * const { loss } = autoencoderLoss(p, cfg, { image, noise, klWeight: 1e-6 });
 * assert.ok(Number.isFinite(loss.dataSync()[0]) && loss.dataSync()[0] > 0);
 * ```
 */
export function autoencoderLoss(
  p: Params,
  cfg: AutoencoderConfig,
  o: AutoencoderLossOptions,
): AutoencoderLosses {
  const klWeight = o.klWeight ?? 1e-6;
  if (!(klWeight >= 0)) throw new Error(`autoencoderLoss: klWeight must be >= 0, got ${klWeight}`);
  const kind = o.reconstruction ?? "l1";
  if (kind !== "l1" && kind !== "l2") {
    throw new Error(`autoencoderLoss: reconstruction must be "l1" or "l2", got ${kind}`);
  }
  const [loss, recon, kl] = tf.tidy(() => {
    const dist = encode(p, cfg, o.image);
    const out = decode(p, cfg, sampleLatent(dist, o.noise));
    const diff = tf.sub(out, o.image);
    const rec = tf.mean(kind === "l1" ? tf.abs(diff) : tf.square(diff)) as tf.Scalar;
    const k = klDivergence(dist);
    const perSample = o.image.shape[1] * o.image.shape[2] * o.image.shape[3];
    return [tf.add(rec, tf.mul(k, klWeight / perSample)) as tf.Scalar, rec, k];
  });
  return { loss, recon, kl };
}

/**
 * Latent scaling factor `1 / std(latents)` (population std), the way SD's 0.18215 was chosen:
 * diffusion then trains on `z * factor`, which has unit variance.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { estimateScalingFactor } from "./autoencoder.ts";
 *
 * // Latents with population std 4 (e.g. `await mean.data()` of encoded images): factor 0.25.
 * assert.equal(estimateScalingFactor(new Float32Array([3, -5, 3, -5])), 0.25);

 * ```
 */
export function estimateScalingFactor(latents: Float32Array): number {
  const n = latents.length;
  if (n < 2) throw new Error(`estimateScalingFactor: need at least 2 latent values, got ${n}`);
  let mean = 0;
  for (let i = 0; i < n; i++) mean += latents[i];
  mean /= n;
  let v = 0;
  for (let i = 0; i < n; i++) v += (latents[i] - mean) ** 2;
  const std = Math.sqrt(v / n);
  if (!(std > 0) || !Number.isFinite(std)) {
    throw new Error(
      `estimateScalingFactor: latents have std ${std}; expected a positive finite value`,
    );
  }
  return 1 / std;
}
