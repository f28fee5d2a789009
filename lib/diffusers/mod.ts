/**
 * diffusers model folders in and out of the kit: a UNet2DConditionModel folder (`config.json` +
 * `diffusion_pytorch_model.safetensors`) loads as the kit's UnetConfig and weights, checked name
 * by name and shape by shape, and the kit's UNet saves as one that diffusers loads. The config and
 * layout mappings themselves live in lib/models (`diffusers_unet_config.ts`,
 * `diffusers_unet_weights.ts`); this folder adds the files.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import { loadDiffusersUnet } from "./mod.ts";
 * import { unetParamsFromTensors } from "../models/mod.ts";
 *
 * const { config, tensors } = await loadDiffusersUnet("tests/fixtures/diffusers_unet"); // a tiny UNet
 * const params = unetParamsFromTensors(tensors, config);
 * assert.deepEqual(params["conv_in.weight"].shape, [3, 3, 4, 8]);

 * ```
 * @module
 */
export * from "./unet_folder.ts";
