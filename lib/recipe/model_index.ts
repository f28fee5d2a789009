/**
 * `model_index.json` of an ONNX Stable Diffusion folder as diffusers' `DiffusionPipeline` reads
 * it: `_class_name` `OnnxStableDiffusionPipeline` (diffusers' ONNX pipeline, whose components are
 * `vae_encoder`, `vae_decoder`, `text_encoder`, `tokenizer`, `unet`, `scheduler`, and the
 * optional `safety_checker` and `feature_extractor`), each component as `[library, class]`:
 * every ONNX model `["diffusers", "OnnxRuntimeModel"]` (loads `<component>/model.onnx`), the
 * scheduler `["diffusers", <its _class_name>]`, the tokenizer `["transformers", "CLIPTokenizer"]`
 * for CLIP BPE files. `[null, null]` is diffusers' "not loaded": the optional safety checker and
 * feature extractor, and a tokenizer no Python library reads (the kit's word tokenizer). The
 * tokenizer is not one of the pipeline's optional components, so for such a folder diffusers
 * raises ("expected {...} but only {...} were passed") unless `from_pretrained` is given
 * `tokenizer=` (the caller's own, or `None` to load the rest). Keys starting with `_` (the kit's
 * `_xgen_kit` record) are ignored by diffusers; so are components its pipeline does not take
 * (`image_encoder`, with a warning). The pipeline's `__call__` assumes SD v1's VAE (4 latent
 * channels, latents of height // 8, latents divided by 0.18215), so a folder whose VAE differs
 * loads but does not sample correctly there. Optimum's `ORTStableDiffusionPipeline` reads the
 * same folder layout.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { diffusersModelIndex } from "./model_index.ts";
 *
 * const idx = diffusersModelIndex({ scheduler: "PNDMScheduler", tokenizer: "clip" });
 * assert.equal(idx._class_name, "OnnxStableDiffusionPipeline");
 * assert.deepEqual(idx.unet, ["diffusers", "OnnxRuntimeModel"]);
 * assert.deepEqual(idx.safety_checker, [null, null]);
 * ```
 * @module
 */

/** The diffusers release whose `OnnxStableDiffusionPipeline` conventions the folder follows. */
export const DIFFUSERS_VERSION = "0.30.0";

/** Options of {@link diffusersModelIndex}. */
export interface ModelIndexOptions {
  /** The scheduler's diffusers class (`scheduler_config.json`'s `_class_name`). */
  scheduler: string;
  /** "clip": CLIP BPE files (`CLIPTokenizer`); "none": no Python class reads it. */
  tokenizer: "clip" | "none";
  /** Extra entries (the kit's `_xgen_kit` record, extra components); they come last. */
  extra?: Record<string, unknown>;
}

/**
 * A `model_index.json` object diffusers' `OnnxStableDiffusionPipeline.from_pretrained` loads.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { diffusersModelIndex } from "./model_index.ts";
 *
 * const idx = diffusersModelIndex({ scheduler: "DDIMScheduler", tokenizer: "none", extra: { _xgen_kit: {} } });
 * assert.deepEqual(idx.tokenizer, [null, null]);
 * assert.deepEqual(idx.scheduler, ["diffusers", "DDIMScheduler"]);
 * ```
 */
export function diffusersModelIndex(o: ModelIndexOptions): Record<string, unknown> {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(o.scheduler)) {
    throw new Error(
      `model_index.json: scheduler class must be a Python name, got "${o.scheduler}"`,
    );
  }
  const onnx = ["diffusers", "OnnxRuntimeModel"];
  return {
    _class_name: "OnnxStableDiffusionPipeline",
    _diffusers_version: DIFFUSERS_VERSION,
    feature_extractor: [null, null],
    requires_safety_checker: false,
    safety_checker: [null, null],
    scheduler: ["diffusers", o.scheduler],
    text_encoder: onnx,
    tokenizer: o.tokenizer === "clip" ? ["transformers", "CLIPTokenizer"] : [null, null],
    unet: onnx,
    vae_decoder: onnx,
    vae_encoder: onnx,
    ...o.extra,
  };
}
