/**
 * Standalone pretrained parts through ONNX Runtime, each behind a small interface: image
 * preprocessing conventions (Pillow resize, CLIP / ImageNet normalisation, NCHW packing), CLIP
 * text and image towers (Hugging Face Optimum / open_clip exports or the kit's own), a
 * PickScore-style preference model with best-of-N and an aesthetic-style head, a CLIPSeg-style
 * prompt-conditioned segmenter, and a tiled Real-ESRGAN-style upsampler.
 *
 * @example
 * ```ts
 * import { loadClipTowers, preferenceModel } from "./mod.ts";
 * const clip = await loadClipTowers({ textModel: "t.onnx", imageModel: "v.onnx", tokenizerDir: "tok" });
 * const { index } = await preferenceModel(clip).bestOfN("a red circle", images);
 * ```
 * @module
 */
export * from "./image_preprocess.ts";
export * from "./text_ids.ts";
export type { OpenedPart, PartModel, PartSessionOptions } from "./io_check.ts";
export * from "./clip_towers.ts";
export * from "./preference.ts";
export * from "./segmenter.ts";
export * from "./upsampler.ts";
