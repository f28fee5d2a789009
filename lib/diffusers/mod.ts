/**
 * diffusers model folders in and out of the kit: a UNet2DConditionModel folder (`config.json` +
 * `diffusion_pytorch_model.safetensors`) loads as the kit's UnetConfig and weights, checked name
 * by name and shape by shape, and the kit's UNet saves as one that diffusers loads. The config and
 * layout mappings themselves live in lib/models (`diffusers_unet_config.ts`,
 * `diffusers_unet_weights.ts`); this folder adds the files.
 *
 * @example
 * ```ts
 * import { loadDiffusersUnet } from "./mod.ts";
 * import { unetParamsFromTensors } from "../models/mod.ts";
 *
 * async function example(dir: string) {
 *   const { config, tensors } = await loadDiffusersUnet(dir);
 *   return unetParamsFromTensors(tensors, config);
 * }
 * ```
 * @module
 */
export * from "./unet_folder.ts";
