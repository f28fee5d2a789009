/**
 * The kit's own marks inside an ONNX Stable Diffusion folder (Hugging Face Optimum's layout):
 * `exportRun` (lib/recipe/onnx_export.ts) writes them, `loadOnnxPipeline` and the text-id
 * tokenizers of lib/inference read them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KIT_ONNX_FORMAT } from "./sd_folder.ts";
 *
 * const dir = "tests/fixtures/tiny_sd/fp32_scalar_t"; // a real exporter's folder, not the kit's
 * const index = JSON.parse(await Deno.readTextFile(`${dir}/model_index.json`));
 * const isKit = index._xgen_kit?.format === KIT_ONNX_FORMAT;
 * assert.equal(isKit, false);
 * ```
 * @module
 */

/**
 * Format tag of a kit export, in `model_index.json` under `_xgen_kit`.
 */
export const KIT_ONNX_FORMAT = "xgen-kit-onnx/1";

/**
 * File name of the kit's word tokenizer inside `tokenizer/`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KIT_TOKENIZER_FILE } from "./sd_folder.ts";
 * import { WordTokenizer } from "../models/tokenizer.ts";
 *
 * const dir = await Deno.makeTempDir(); // a kit export
 * await WordTokenizer.build(["a red circle"]).save(`${dir}/${KIT_TOKENIZER_FILE}`);
 * const tok = await WordTokenizer.load(`${dir}/${KIT_TOKENIZER_FILE}`); // `${export}/tokenizer/...`
 * assert.equal(tok.vocabSize, 7);
 * await Deno.remove(dir, { recursive: true });

 * ```
 */
export const KIT_TOKENIZER_FILE = "word_tokenizer.json";
