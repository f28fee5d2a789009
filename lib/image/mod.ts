/**
 * Image preprocessing as pretrained models expect it, stated in code: Pillow-exact resizes
 * (bicubic/bilinear, antialiased or not, 8-bit or float), shortest-side resize and center crop,
 * crops, per-channel normalisation constants (OpenAI CLIP, ImageNet, `[0, 1]`, `[-1, 1]`) and
 * float32 NCHW packing. Used by lib/inference's ONNX helper models and lib/eval's Inception
 * extractor.
 *
 * @example
 * ```ts
 * import { clipPreprocess, preprocessBatch } from "./mod.ts";
 * const x = preprocessBatch(images, clipPreprocess(224)); // Float32Array [n, 3, 224, 224]
 * ```
 * @module
 */
export * from "./preprocess.ts";
