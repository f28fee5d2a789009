/**
 * Every evaluation of the study, one folder each:
 *
 * - `clip_fid`: the CLIP-score vs FID guidance sweep (feature statistics, Frechet distance, KID,
 *   CLIP score, bootstrap intervals, feature extractors, prompt sets, reference caches,
 *   comparisons);
 * - `human`: the human evaluation loop (PartiPrompts study design, answer ingestion, analysis,
 *   simulation, reports);
 * - `caption_following`: colour and shape read back from generated pixels, and the word-swap
 *   loss probe.
 *
 * @example
 * ```ts
 * import { clip_fid } from "./mod.ts";
 *
 * async function example() {
 *   const promptSet = await clip_fid.textPromptSet("evals/prompts.txt", { count: 64, seed: 0 });
 *   const r = await clip_fid.guidanceSweep({
 *     runDir: "runs/default",
 *     promptSet,
 *     checkpoints: "latest",
 *     guidance: [1, 4],
 *     n: 64,
 *     steps: 25,
 *     scheduler: "dpmpp_2m",
 *     seed: 0,
 *   });
 * }
 * ```
 * @module
 */
export * as clip_fid from "./clip_fid/mod.ts";
export * as human from "./human/mod.ts";
export * as caption_following from "./caption_following/mod.ts";
