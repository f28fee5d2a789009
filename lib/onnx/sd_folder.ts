/**
 * The kit's own marks inside an ONNX Stable Diffusion folder (Hugging Face Optimum's layout):
 * `exportRun` (lib/recipe/onnx_export.ts) writes them, `loadOnnxPipeline` and the text-id
 * tokenizers of lib/inference read them.
 *
 * @example
 * ```ts
 * import { KIT_ONNX_FORMAT } from "./sd_folder.ts";
 *
 * async function example() {
 *   const index = JSON.parse(await Deno.readTextFile("export/model_index.json"));
 *   const isKit = index._xgen_kit?.format === KIT_ONNX_FORMAT;
 * }
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
 * import { KIT_TOKENIZER_FILE } from "./sd_folder.ts";
 * import { WordTokenizer } from "../models/tokenizer.ts";
 *
 * async function example(dir: string) {
 *   const tok = await WordTokenizer.load(`${dir}/tokenizer/${KIT_TOKENIZER_FILE}`);
 * }
 * ```
 */
export const KIT_TOKENIZER_FILE = "word_tokenizer.json";
