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

/** Every {@link TextContext}, for flags and checks. */
export const TEXT_CONTEXTS: readonly TextContext[] = [
  "states",
  "states+tokens",
  "tokens",
  "words",
  "states+words",
];
