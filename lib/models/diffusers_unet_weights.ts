/**
 * diffusers UNet2DConditionModel weights to and from the kit's layout, checked against a config.
 *
 * The names are the same (the kit's UNet uses diffusers' parameter names); only the layouts
 * differ: PyTorch convolutions are `[cout, cin, kh, kw]` where the kit's are `[kh, kw, cin, cout]`,
 * and PyTorch linears `[out, in]` where the kit's are `[in, out]`. Every rank-4 tensor of the UNet
 * is a convolution and every rank-2 one a linear, so the layout follows from the rank. Conversion
 * is a pure permutation: a round trip gives every value back bit for bit.
 *
 * Host tensors are `{ shape, data: Float32Array }` (the same shape as lib/train's `TensorData`),
 * so a safetensors file's contents feed in directly; file reading and writing live one layer up,
 * in lib/diffusers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { diffusersUnetShapes } from "./diffusers_unet_weights.ts";
 * import { UNET_PRESETS } from "./unet.ts";
 *
 * const shapes = diffusersUnetShapes(UNET_PRESETS.sd15);
 * assert.deepEqual(shapes["conv_in.weight"], [320, 4, 3, 3]);
 * assert.deepEqual(shapes["time_embedding.linear_1.weight"], [1280, 320]);
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import { transposeValues } from "../backend/cpu_fast_kernels.ts";
import type { Params, ParamShapes } from "../nn/mod.ts";
import { type UnetConfig, unetParamShapes } from "./unet.ts";

/** A float32 tensor in host memory (row-major). */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** Named host tensors, e.g. a safetensors file's contents. */
export type HostTensors = Record<string, HostTensor>;

/** Options of the conversions: where the tensors came from, for error messages. */
export interface UnetTensorsOptions {
  /** The tensors' file (default `"tensors"`). */
  source?: string;
  /** The config's file (default `"config.json"`). */
  configSource?: string;
}

/**
 * Axis orders of the two directions by rank (out axis i = in axis perm[i]); a rank not listed
 * keeps its layout. OIHW -> HWIO is (2, 3, 1, 0), HWIO -> OIHW is (3, 2, 0, 1); a linear swaps.
 */
const PERMS: Record<"toKit" | "toDiffusers", Record<number, number[]>> = {
  toKit: { 4: [2, 3, 1, 0], 2: [1, 0] },
  toDiffusers: { 4: [3, 2, 0, 1], 2: [1, 0] },
};

/** diffusers' shape of a kit-layout shape: HWIO -> OIHW, `[in, out]` -> `[out, in]`. */
function toDiffusersShape(s: number[]): number[] {
  return (PERMS.toDiffusers[s.length] ?? s.map((_, i) => i)).map((p) => s[p]);
}

/**
 * Every parameter's shape in diffusers' layout for a config, as diffusers' state_dict has them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { diffusersUnetShapes } from "./diffusers_unet_weights.ts";
 * import { UNET_PRESETS } from "./unet.ts";
 *
 * const s = diffusersUnetShapes(UNET_PRESETS.tiny);
 * assert.deepEqual(s["conv_out.weight"], [4, 16, 3, 3]);
 * assert.deepEqual(s["mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight"], [32, 32]);
 * ```
 */
export function diffusersUnetShapes(config: UnetConfig): ParamShapes {
  const out: ParamShapes = {};
  for (const [name, s] of Object.entries(unetParamShapes(config))) out[name] = toDiffusersShape(s);
  return out;
}

const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/** Fails unless `tensors` has exactly the names of `expected` with those shapes. */
function checkAgainst(
  tensors: HostTensors,
  expected: ParamShapes,
  src: string,
  cfgSrc: string,
): void {
  const missing = Object.keys(expected).filter((k) => !Object.hasOwn(tensors, k)).sort();
  const extra = Object.keys(tensors).filter((k) => !Object.hasOwn(expected, k)).sort();
  if (missing.length || extra.length) {
    const list = (names: string[]) =>
      names.slice(0, 8).join(", ") + (names.length > 8 ? `, ... (${names.length} in all)` : "");
    throw new Error(
      `${src}: tensor names do not match the UNet of ${cfgSrc}` +
        (missing.length ? `; missing ${missing.length}: ${list(missing)}` : "") +
        (extra.length ? `; unexpected ${extra.length}: ${list(extra)}` : ""),
    );
  }
  for (const name of Object.keys(expected).sort()) {
    const t = tensors[name];
    if (!sameShape(t.shape, expected[name])) {
      throw new Error(
        `${src}: tensor "${name}" has shape [${t.shape}], expected [${
          expected[name]
        }] for the UNet of ${cfgSrc}`,
      );
    }
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (!(t.data instanceof Float32Array) || t.data.length !== count) {
      throw new Error(
        `${src}: tensor "${name}" needs ${count} float32 values for shape [${t.shape}]`,
      );
    }
  }
}

function convert(t: HostTensor, direction: "toKit" | "toDiffusers"): HostTensor {
  const s = t.shape;
  const perm = PERMS[direction][s.length];
  if (!perm) return { shape: [...s], data: new Float32Array(t.data) };
  return { shape: perm.map((p) => s[p]), data: transposeValues(t.data, s, perm) };
}

/**
 * Check `tensors` against the shapes they should have (names in errors from `opts`, else the
 * given defaults) and return each converted in `direction`, in name order.
 */
function checkAndConvert(
  tensors: HostTensors,
  expected: ParamShapes,
  direction: "toKit" | "toDiffusers",
  opts: UnetTensorsOptions,
  defaults: Required<UnetTensorsOptions>,
): HostTensors {
  checkAgainst(
    tensors,
    expected,
    opts.source ?? defaults.source,
    opts.configSource ?? defaults.configSource,
  );
  const out: HostTensors = {};
  for (const name of Object.keys(tensors).sort()) out[name] = convert(tensors[name], direction);
  return out;
}

/**
 * Check diffusers-layout UNet tensors against a config (every name, every shape; the error names
 * the tensor, its shape and the expected one, or lists missing and unexpected names) and return
 * them in the kit's layout.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { unetTensorsFromDiffusers } from "./diffusers_unet_weights.ts";
 * import { UNET_PRESETS } from "./unet.ts";
 *
 * assert.throws(
 *   () => unetTensorsFromDiffusers({}, UNET_PRESETS.tiny, { source: "unet.safetensors" }),
 *   /unet.safetensors: tensor names do not match the UNet of config.json; missing \d+: conv_in/,
 * );
 * ```
 */
export function unetTensorsFromDiffusers(
  tensors: HostTensors,
  config: UnetConfig,
  opts: UnetTensorsOptions = {},
): HostTensors {
  return checkAndConvert(tensors, diffusersUnetShapes(config), "toKit", opts, {
    source: "tensors",
    configSource: "config.json",
  });
}

/**
 * Check kit-layout UNet tensors against a config and return them in diffusers' layout (what
 * diffusers' `load_state_dict` takes).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { diffusersUnetShapes, unetTensorsToDiffusers } from "./diffusers_unet_weights.ts";
 * import { UNET_PRESETS, unetParamShapes } from "./unet.ts";
 *
 * const cfg = UNET_PRESETS.tiny;
 * const kit = Object.fromEntries(
 *   Object.entries(unetParamShapes(cfg)).map(([k, s]) => [
 *     k,
 *     { shape: s, data: new Float32Array(s.reduce((a, b) => a * b, 1)) },
 *   ]),
 * );
 * const torch = unetTensorsToDiffusers(kit, cfg);
 * assert.deepEqual(torch["conv_in.weight"].shape, diffusersUnetShapes(cfg)["conv_in.weight"]);
 * ```
 */
export function unetTensorsToDiffusers(
  tensors: HostTensors,
  config: UnetConfig,
  opts: UnetTensorsOptions = {},
): HostTensors {
  return checkAndConvert(tensors, unetParamShapes(config), "toDiffusers", opts, {
    source: "params",
    configSource: "the config",
  });
}

/**
 * Kit-layout host tensors as trainable TensorFlow.js variables (what `unetForward` and training
 * take). With a config, names and shapes are checked against it first.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { unetParamsFromTensors } from "./diffusers_unet_weights.ts";
 *
 * const p = unetParamsFromTensors({ "conv_in.bias": { shape: [2], data: new Float32Array([1, 2]) } });
 * assert.deepEqual(Array.from(p["conv_in.bias"].dataSync()), [1, 2]);
 * p["conv_in.bias"].dispose();
 * ```
 */
export function unetParamsFromTensors(
  tensors: HostTensors,
  config?: UnetConfig,
  opts: UnetTensorsOptions = {},
): Params {
  if (config) {
    checkAgainst(
      tensors,
      unetParamShapes(config),
      opts.source ?? "tensors",
      opts.configSource ?? "the config",
    );
  }
  const p: Params = {};
  for (const name of Object.keys(tensors).sort()) {
    const { shape, data } = tensors[name];
    const t = tf.tensor(data, shape, "float32");
    // No variable name: tfjs names are global and two UNets share parameter names.
    p[name] = tf.variable(t, true);
    t.dispose();
  }
  return p;
}
