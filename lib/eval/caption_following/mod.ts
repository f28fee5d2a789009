/**
 * Does a model follow its captions? {@link captionFollowing} generates single-object images with
 * any `ImageGenerator` (or a loaded run) and reads colour and shape back from the pixels, on
 * held-out and seen (colour, shape) pairs; {@link wordSwapLoss} probes a trained UNet without
 * sampling: its training loss with each caption and with one word swapped.
 *
 * @example
 * ```ts
 * import { captionFollowing } from "./mod.ts";
 * import { loadRun } from "../../recipe/generate.ts";
 *
 * async function example() {
 *   const run = await loadRun("runs/default");
 *   const opts = { n: 8, guidance: 4, steps: 25, scheduler: "dpmpp_2m", seed: 0 } as const;
 *   const r = await captionFollowing(run, { pairs: "heldout", ...opts });
 *   console.log(r.colorAccuracy, r.shapeAccuracy);
 * }
 * ```
 * @module
 */
export * from "./caption_following.ts";
export * from "./word_swap.ts";
