/**
 * Models: the conditional UNet (SD v1.5 structure and small presets), the KL autoencoder, the
 * kit's small CLIP and its word tokenizer, and diffusers' UNet config and weight layouts.
 *
 * @example
 * ```ts
 * import { initUnet, unetForward, UNET_PRESETS } from "./mod.ts";
 * import { Rng, STREAM } from "../util/rng.ts";
 *
 * const p = initUnet(UNET_PRESETS.small, Rng.stream(0, [0, STREAM.init]));
 * ```
 * @module
 */
export * from "./unet.ts";
export * from "./transformer2d.ts";
export * from "./autoencoder.ts";
export * from "./clip.ts";
export * from "./tokenizer.ts";
export * from "./clip_bpe_tokenizer.ts";
export * from "./text_context.ts";
export * from "./diffusers_unet_config.ts";
export * from "./diffusers_unet_weights.ts";
