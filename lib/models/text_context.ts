/**
 * What the UNet cross-attends to, as one definition shared by training (`encodeCaptions` in
 * lib/recipe/stages.ts) and the ONNX export (lib/onnx/export_models.ts): the text encoder's
 * per-token states (`states`, Stable Diffusion's choice), the plain token embeddings (`tokens`),
 * layer-normalised token embeddings (`words`), or the states followed by either
 * (`states+tokens`, `states+words`).
 *
 * @example
 * ```ts
 * textContextComposition("states+words"); // { states: true, embeddings: "normalised" }
 * ```
 * @module
 */
import { embedding, type Net } from "../nn/mod.ts";
import { withOps } from "../nn/with_ops.ts";
import { type ClipConfig, textEncoder } from "./clip.ts";

/** See `RecipePreset["unet"].textContext` (lib/recipe/presets.ts). */
export type TextContext = "states" | "states+tokens" | "tokens" | "words" | "states+words";

/** What a {@link TextContext} is made of: the encoder's states, token embeddings, or both. */
export interface TextContextComposition {
  /** The text encoder's per-token states come first. */
  states: boolean;
  /** Token embeddings after them (or alone): none, raw, or layer-normalised. */
  embeddings: "none" | "raw" | "normalised";
}

/**
 * What a text context is composed of, so training and the ONNX export build it from one
 * definition.
 *
 * @example
 * ```ts
 * textContextComposition("states+words"); // { states: true, embeddings: "normalised" }
 * ```
 */
export function textContextComposition(mode: TextContext): TextContextComposition {
  const states = mode === "states" || mode.startsWith("states+");
  const embeddings = mode === "states" ? "none" : mode.endsWith("words") ? "normalised" : "raw";
  return { states, embeddings };
}

/** Epsilon of the parameter-free LayerNorm that `words` applies to each token embedding. */
export const WORDS_NORM_EPS = 1e-5;

/** Options for {@link unetTextContext}. */
export interface UnetTextContextOptions<T> {
  /** The text encoder's states `[B, T, D]` when the caller already has them (the export does). */
  states?: T;
}

/**
 * What the UNet cross-attends to for token ids `[B, T]`: `[B, T, D]` text states or token
 * embeddings, or `[B, 2T, D]` states then embeddings, as {@link textContextComposition} says.
 * Training (on TensorFlow.js, given the frozen CLIP's `Params`) and the ONNX text-encoder export
 * (given an `OnnxOps`) both run this.
 *
 * Why `words` standardizes: a token embedding table starts at ~0.02 per element and a short CLIP
 * run barely moves it, so raw embeddings reach the UNet's cross-attention keys and values near
 * zero and the UNet spends thousands of steps scaling them up before a word can steer the image.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { unetTextContext } from "./text_context.ts";
 * import { CLIP_PRESETS, initClip } from "./clip.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const cfg = CLIP_PRESETS.tiny; // T = 16, D = 32
 * const ids = tf.tensor2d([[2, 5, 3, ...new Array(13).fill(0)]], [1, 16], "int32");
 * const ctx = unetTextContext(initClip(cfg, Rng.stream(0)), cfg, ids, "states+words");
 * assert.deepEqual(ctx.shape, [1, 32, 32]); // [B, 2T, D]: states then token embeddings

 * ```
 */
export function unetTextContext<T>(
  net: Net<T>,
  cfg: ClipConfig,
  ids: T,
  mode: TextContext,
  o: UnetTextContextOptions<T> = {},
): T {
  const parts = textContextComposition(mode);
  return withOps(net, (m) => {
    // The token embedding table alone: each word's identity, untouched by the words before it.
    // `tokens` and `words` need no transformer pass at all.
    const words = () => {
      const e = embedding(m, "text.token_embedding", ids);
      return parts.embeddings === "normalised" ? m.standardize(e, { eps: WORDS_NORM_EPS }) : e;
    };
    if (!parts.states) return words();
    const states = o.states ?? textEncoder(m, cfg, ids).hidden;
    return parts.embeddings === "none" ? states : m.concat([states, words()], 1);
  });
}

/** Every {@link TextContext}, for flags and checks. */
export const TEXT_CONTEXTS: readonly TextContext[] = [
  "states",
  "states+tokens",
  "tokens",
  "words",
  "states+words",
];
