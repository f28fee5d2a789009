/**
 * `--unet` and `--resolution` of the commands that train on an SD folder's parts (`deno task
 * train --parts`, `deno task study --parts`): a UNet preset name, or a JSON file holding the kit's
 * `UnetConfig` or diffusers' `UNet2DConditionModel` config; the square training side.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { unetModelFlag } from "./unet_flag.ts";
 *
 * assert.deepEqual((await unetModelFlag("tiny")).blockChannels.length > 0, true);
 * await assert.rejects(() => unetModelFlag("nope.json"), /--unet nope\.json: not a preset/);
 * ```
 * @module
 */
import {
  resolveUnetConfig,
  UNET_PRESETS,
  type UnetConfig,
  unetConfigFromDiffusers,
} from "../models/mod.ts";

/** `--resolution` of a parts run (flag spec). */
export const PARTS_RESOLUTION_FLAG = {
  type: "int",
  min: 8,
  max: 4096,
  default: 256,
  help: "with --parts: square training side in pixels",
} as const;

/** `--unet` of a parts run (flag spec; parse the value with {@link unetModelFlag}). */
export const PARTS_UNET_FLAG = {
  type: "string",
  help: "with --parts: UNet preset (tiny, small, sd15) or a config.json (the kit's UnetConfig " +
    "or diffusers' UNet2DConditionModel); default: the preset's UNet",
} as const;

/**
 * The UNet config `--unet value` names; errors name the flag and what was expected.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { unetModelFlag } from "./unet_flag.ts";
 * import { UNET_PRESETS } from "../models/mod.ts";
 *
 * assert.deepEqual(await unetModelFlag("small"), UNET_PRESETS.small);
 * ```
 */
export async function unetModelFlag(value: string): Promise<UnetConfig> {
  if (value in UNET_PRESETS) return UNET_PRESETS[value as keyof typeof UNET_PRESETS];
  let json: unknown;
  try {
    json = JSON.parse(await Deno.readTextFile(value));
  } catch (e) {
    throw new Error(
      `--unet ${value}: not a preset (${Object.keys(UNET_PRESETS).join(", ")}) nor a readable ` +
        `JSON file (${(e as Error).message.split("\n")[0]})`,
    );
  }
  const o = json as Record<string, unknown>;
  if (o && typeof o === "object" && ("_class_name" in o || "block_out_channels" in o)) {
    return unetConfigFromDiffusers(o, { source: value }).config;
  }
  resolveUnetConfig(o as unknown as UnetConfig); // throws naming the field
  return o as unknown as UnetConfig;
}
