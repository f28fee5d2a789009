/**
 * Inference tricks over any image generator, whatever engine runs it (TensorFlow.js `generate`,
 * the ONNX Stable Diffusion pipeline, or anything else implementing lib/diffusion's
 * `ImageGenerator`), and the pretrained ONNX helper models they use, each behind a small
 * interface:
 *
 * - rejection sampling: {@link bestOfN} picks the best of N candidates per prompt by a
 *   {@link Scorer} (the run's own CLIP, PickScore-style preference towers, an aesthetic head;
 *   `scorers.ts`), built on CLIP text and image towers (`clip_towers.ts`, `preference.ts`);
 * - regional touch-ups: {@link touchUp} (mask from a CLIPSeg-style {@link Segmenter} or given,
 *   square crop with margin, img2img, blend back through a feathered mask);
 * - what they buy: {@link bestOfNCurve} (the exact expected best-of-N score for every N from
 *   one pool per prompt, and the selection-bias check by a second scorer) and
 *   {@link touchUpStats} (region score before and after, pixels outside the box unchanged),
 *   with bootstrap intervals over prompts or images;
 * - upsampling: {@link upscale} with a tiled Real-ESRGAN-style {@link Upsampler}, and the
 *   study's re-upsampling ({@link reUpsample}: shrink, then upsample back);
 * - the token ids those models take (`text_ids.ts`: CLIP BPE or the kit's word tokenizer).
 *
 * Image preprocessing conventions (Pillow resize, CLIP / ImageNet normalisation, NCHW packing)
 * are lib/image's.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bestOfN, loadScorer, parseScorerSpec } from "./mod.ts";
 * import { loadOnnxPipeline, txt2img } from "../onnx/mod.ts";
 * import type { ImageGenerator } from "../diffusion/generator.ts";
 *
 * // A tiny SD folder and seeded towers with an aesthetic head (e.g. "aesthetic:models/laion").
 * const cpu = { executionProviders: ["cpu"] };
 * const pipe = await loadOnnxPipeline("tests/fixtures/tiny_sd/fp32_scalar_t", cpu);
 * const spec = parseScorerSpec("aesthetic:tests/fixtures/tiny_clip_towers");
 * const scorer = await loadScorer(spec, cpu);
 * const generator: ImageGenerator = (o) => txt2img(pipe, o); // or generate(run, o) on a run
 * const o = { prompts: ["a red circle"], candidates: 2, guidance: 4, steps: 2, seed: 0 };
 * const [pick] = await bestOfN({ ...o, generator, scorer, scheduler: "dpmpp_2m" });
 * assert.deepEqual([pick.image.width, pick.scores.length], [64, 2]);
 * await scorer.release();
 * await pipe.release();
 * ```
 * @module
 */
export * from "./text_ids.ts";
export * from "./clip_towers.ts";
export * from "./preference.ts";
export * from "./segmenter.ts";
export * from "./upsampler.ts";
export * from "./best_of_n.ts";
export * from "./scorers.ts";
export * from "./touch_up.ts";
export * from "./bootstrap_means.ts";
export * from "./best_of_n_stats.ts";
export * from "./touch_up_stats.ts";
export * from "./upscale.ts";
export * from "./sd_model_folder.ts";
