/**
 * Image preprocessing as pretrained models expect it, stated in code: Pillow-exact resizes
 * (bicubic/bilinear/Lanczos, antialiased or not, 8-bit or float), shortest-side resize and center crop,
 * crops, per-channel normalisation constants (OpenAI CLIP, ImageNet, `[0, 1]`, `[-1, 1]`) and
 * float32 NCHW packing. Used by lib/inference's ONNX helper models and lib/eval's Inception
 * extractor; `squareCrop` is the square training crop of diffusers' text-to-image scripts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clipPreprocess, preprocessBatch } from "./mod.ts";
 *
 * const img = { data: new Uint8Array(300 * 200 * 3).fill(128), width: 300, height: 200 };
 * const x = preprocessBatch([img, img], clipPreprocess(224));
 * assert.equal(x.length, 2 * 3 * 224 * 224); // [n, 3, 224, 224]
 * ```
 * @module
 */
export * from "./preprocess.ts";
export * from "./square_crop.ts";
