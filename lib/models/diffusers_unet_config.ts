/**
 * diffusers' `unet/config.json` (UNet2DConditionModel) to and from the kit's {@link UnetConfig}.
 *
 * The kit's UNet is SD v1/v2's design: CrossAttnDownBlock2D/DownBlock2D levels, the
 * UNetMidBlock2DCrossAttn middle block, sinusoidal timesteps with cos first and no frequency
 * shift, GroupNorm eps 1e-5, SiLU. A config that asks for anything else (class or addition
 * embeddings, other blocks or activations, per-level sizes that differ) is refused with one line
 * naming the file, the field, its value and what the kit supports, rather than loaded into a model
 * that would compute something else. Missing fields take diffusers' defaults, as `from_config`
 * does; fields starting with `_` are diffusers' bookkeeping: only `_class_name` and the kit's own
 * `_xgen_kit_gelu` (below) are read.
 *
 * GELU: diffusers' GEGLU feed-forward computes the exact GELU, `0.5 x (1 + erf(x / sqrt 2))`, so a
 * diffusers config loads as `gelu: "erf"`. The kit's own UNets use the tanh approximation, which
 * UNet2DConditionModel cannot be told to use: saving one still works, with a private
 * `"_xgen_kit_gelu": "tanh"` note in config.json that diffusers ignores (it runs the exact GELU, a
 * slightly different network: the outputs move by ~2e-4 on the test fixture) and
 * {@link unetConfigFromDiffusers} reads back, so a kit UNet saved and reloaded is the same network.
 *
 * diffusers' SD v1 quirk: `attention_head_dim` holds the number of heads (per level, or one for
 * all), and `num_attention_heads` must stay null (UNet2DConditionModel refuses it). A list whose
 * heads differ but give the same channels per head (SD v2's `[5, 10, 20, 20]`) becomes the kit's
 * `headDim`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { unetConfigFromDiffusers, unetConfigToDiffusers } from "./diffusers_unet_config.ts";
 *
 * const json = unetConfigToDiffusers(
 *   {
 *     inChannels: 4,
 *     outChannels: 4,
 *     blockChannels: [16, 32],
 *     layersPerBlock: 1,
 *     attentionLevels: [false, true],
 *     numHeads: 2,
 *     contextDim: 32,
 *     groupNormGroups: 8,
 *     useLinearProjection: false,
 *   },
 *   { sampleSize: 8 },
 * );
 * assert.deepEqual(json.down_block_types, ["DownBlock2D", "CrossAttnDownBlock2D"]);
 * assert.equal(json.attention_head_dim, 2);
 * const back = unetConfigFromDiffusers(json);
 * assert.equal(back.config.numHeads, 2);
 * assert.equal(back.sampleSize, 8);
 * ```
 * @module
 */
import { resolveUnetConfig, type UnetConfig, unetParamShapes } from "./unet.ts";

/** The diffusers class the kit's UNet corresponds to (`_class_name` of its config.json). */
export const DIFFUSERS_UNET_CLASS = "UNet2DConditionModel";

/**
 * The diffusers release whose UNet2DConditionModel fields {@link unetConfigToDiffusers} writes
 * (the field set is unchanged in later releases); written as `_diffusers_version`.
 */
export const DIFFUSERS_UNET_VERSION = "0.31.0";

/**
 * The private config.json field that marks a UNet whose GEGLU uses the tanh GELU (diffusers drops
 * fields starting with `_` when it builds the model).
 */
const KIT_GELU_FIELD = "_xgen_kit_gelu";

/** What {@link unetConfigFromDiffusers} returns. */
export interface DiffusersUnetConfig {
  /** The kit's config for the same network. */
  config: UnetConfig;
  /**
   * diffusers' `sample_size` (latent side, or `[height, width]`; null when absent). The network
   * does not depend on it; pipelines use it as the default latent size.
   */
  sampleSize: number | [number, number] | null;
}

/** Options of {@link unetConfigFromDiffusers}. */
export interface UnetConfigFromDiffusersOptions {
  /** File name used in error messages (default `config.json`). */
  source?: string;
}

/** Options of {@link unetConfigToDiffusers}. */
export interface UnetConfigToDiffusersOptions {
  /** `sample_size` to record (default null). */
  sampleSize?: number | [number, number] | null;
}

const CROSS_DOWN = "CrossAttnDownBlock2D";
const PLAIN_DOWN = "DownBlock2D";
const CROSS_UP = "CrossAttnUpBlock2D";
const PLAIN_UP = "UpBlock2D";
const MID = "UNetMidBlock2DCrossAttn";

/**
 * Fields whose only supported value is diffusers' default (the kit has no such feature), with
 * the value(s) accepted. `upcast_attention` only changes float16 inference (q and k upcast to
 * float32), so both values load; the kit computes in float32.
 */
const FIXED: Record<string, { ok: unknown[]; what: string }> = {
  center_input_sample: { ok: [false], what: "false" },
  flip_sin_to_cos: { ok: [true], what: "true (cos before sin, as SD)" },
  freq_shift: { ok: [0], what: "0 (as SD)" },
  downsample_padding: { ok: [1], what: "1" },
  mid_block_scale_factor: { ok: [1], what: "1" },
  dropout: { ok: [0], what: "0 (the kit's UNet has no dropout)" },
  act_fn: { ok: ["silu"], what: '"silu"' },
  norm_eps: { ok: [1e-5], what: "1e-05" },
  reverse_transformer_layers_per_block: { ok: [null], what: "null" },
  encoder_hid_dim: { ok: [null], what: "null (no encoder_hid_proj)" },
  encoder_hid_dim_type: { ok: [null], what: "null (no encoder_hid_proj)" },
  num_attention_heads: {
    ok: [null],
    what: "null (diffusers reads attention_head_dim as the number of heads)",
  },
  dual_cross_attention: { ok: [false], what: "false" },
  class_embed_type: { ok: [null], what: "null (no class embedding)" },
  addition_embed_type: { ok: [null], what: "null (no addition embedding)" },
  addition_time_embed_dim: { ok: [null], what: "null (no addition embedding)" },
  num_class_embeds: { ok: [null], what: "null (no class embedding)" },
  upcast_attention: { ok: [false, true], what: "true or false" },
  resnet_time_scale_shift: { ok: ["default"], what: '"default"' },
  resnet_skip_time_act: { ok: [false], what: "false" },
  resnet_out_scale_factor: { ok: [1], what: "1" },
  time_embedding_type: { ok: ["positional"], what: '"positional"' },
  time_embedding_act_fn: { ok: [null], what: "null" },
  timestep_post_act: { ok: [null], what: "null" },
  time_cond_proj_dim: { ok: [null], what: "null" },
  conv_in_kernel: { ok: [3], what: "3" },
  conv_out_kernel: { ok: [3], what: "3" },
  projection_class_embeddings_input_dim: { ok: [null], what: "null (no class embedding)" },
  attention_type: { ok: ["default"], what: '"default"' },
  class_embeddings_concat: { ok: [false], what: "false" },
  mid_block_only_cross_attention: { ok: [null, false], what: "null or false" },
  cross_attention_norm: { ok: [null], what: "null" },
  // Only read together with an addition embedding, which is refused above.
  addition_embed_type_num_heads: { ok: [], what: "any" },
};

/** Fields mapped onto UnetConfig, with diffusers' defaults for when they are missing. */
const MAPPED_DEFAULTS: Record<string, unknown> = {
  sample_size: null,
  in_channels: 4,
  out_channels: 4,
  down_block_types: [CROSS_DOWN, CROSS_DOWN, CROSS_DOWN, PLAIN_DOWN],
  mid_block_type: MID,
  up_block_types: [PLAIN_UP, CROSS_UP, CROSS_UP, CROSS_UP],
  only_cross_attention: false,
  block_out_channels: [320, 640, 1280, 1280],
  layers_per_block: 2,
  norm_num_groups: 32,
  cross_attention_dim: 1280,
  transformer_layers_per_block: 1,
  attention_head_dim: 8,
  use_linear_projection: false,
  time_embedding_dim: null,
};

const show = (v: unknown) => JSON.stringify(v);
const isPosInt = (v: unknown): v is number => Number.isInteger(v) && (v as number) > 0;

/**
 * Read a diffusers UNet2DConditionModel config (the parsed `config.json`) as the kit's
 * {@link UnetConfig}; throws one line naming the file, field, value and what is supported.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { unetConfigFromDiffusers } from "./diffusers_unet_config.ts";
 *
 * // SD v2's heads per level: 64 channels per head everywhere.
 * const { config } = unetConfigFromDiffusers({
 *   attention_head_dim: [5, 10, 20, 20],
 *   use_linear_projection: true,
 *   cross_attention_dim: 1024,
 * });
 * assert.equal(config.headDim, 64);
 * assert.equal(config.gelu, "erf"); // diffusers' GEGLU: the exact GELU
 * assert.deepEqual(config.blockChannels, [320, 640, 1280, 1280]);
 * assert.throws(
 *   () => unetConfigFromDiffusers({ class_embed_type: "timestep" }),
 *   /config.json: field "class_embed_type" is "timestep"; the kit supports null/,
 * );
 * ```
 */
export function unetConfigFromDiffusers(
  json: unknown,
  opts: UnetConfigFromDiffusersOptions = {},
): DiffusersUnetConfig {
  const src = opts.source ?? "config.json";
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new Error(`${src}: expected a JSON object (diffusers' UNet2DConditionModel config)`);
  }
  const raw = json as Record<string, unknown>;
  const refuse = (field: string, value: unknown, supported: string): never => {
    throw new Error(
      `${src}: field "${field}" is ${show(value)}; the kit supports ${supported}`,
    );
  };
  if ("_class_name" in raw && raw._class_name !== DIFFUSERS_UNET_CLASS) {
    refuse("_class_name", raw._class_name, show(DIFFUSERS_UNET_CLASS));
  }
  const geluNote = raw[KIT_GELU_FIELD];
  if (KIT_GELU_FIELD in raw && geluNote !== "tanh" && geluNote !== "erf") {
    refuse(KIT_GELU_FIELD, geluNote, '"tanh" or "erf" (the GELU of the GEGLU feed-forward)');
  }
  for (const [field, value] of Object.entries(raw)) {
    if (field.startsWith("_") || field in MAPPED_DEFAULTS) continue;
    const fixed = FIXED[field];
    if (!fixed) {
      refuse(field, value, "only UNet2DConditionModel's fields (this one is unknown)");
    }
    if (fixed.ok.length && !fixed.ok.some((ok) => ok === value)) refuse(field, value, fixed.what);
  }
  const get = (field: string): unknown => field in raw ? raw[field] : MAPPED_DEFAULTS[field];
  const posInt = (field: string): number => {
    const v = get(field);
    return isPosInt(v) ? v : refuse(field, v, "a positive integer");
  };
  /** An int, or a list (one per level) whose values all agree. */
  const uniform = (field: string, n: number): number => {
    const v = get(field);
    if (isPosInt(v)) return v;
    if (Array.isArray(v) && v.length === n && v.every(isPosInt) && v.every((x) => x === v[0])) {
      return v[0];
    }
    return refuse(field, v, `a positive integer, or ${n} equal ones (one per level)`);
  };

  const blockChannels = get("block_out_channels");
  if (!Array.isArray(blockChannels) || !blockChannels.length || !blockChannels.every(isPosInt)) {
    refuse("block_out_channels", blockChannels, "a non-empty list of positive integers");
  }
  const ch = blockChannels as number[];
  const n = ch.length;
  const down = get("down_block_types");
  if (
    !Array.isArray(down) || down.length !== n ||
    !down.every((t) => t === CROSS_DOWN || t === PLAIN_DOWN)
  ) {
    refuse("down_block_types", down, `${n} of "${CROSS_DOWN}" / "${PLAIN_DOWN}"`);
  }
  const attentionLevels = (down as string[]).map((t) => t === CROSS_DOWN);
  const upWanted = [...attentionLevels].reverse().map((a) => a ? CROSS_UP : PLAIN_UP);
  const up = get("up_block_types");
  if (!Array.isArray(up) || show(up) !== show(upWanted)) {
    refuse("up_block_types", up, `${show(upWanted)} (the down blocks mirrored)`);
  }
  if (get("mid_block_type") !== MID) refuse("mid_block_type", get("mid_block_type"), show(MID));
  const only = get("only_cross_attention");
  if (only !== false && !(Array.isArray(only) && only.every((x) => x === false))) {
    refuse("only_cross_attention", only, "false (self- and cross-attention in every block)");
  }
  const useLinearProjection = get("use_linear_projection");
  if (typeof useLinearProjection !== "boolean") {
    refuse("use_linear_projection", useLinearProjection, "true or false");
  }
  const timeEmbedDim = get("time_embedding_dim");
  if (timeEmbedDim !== null && !isPosInt(timeEmbedDim)) {
    refuse("time_embedding_dim", timeEmbedDim, "null (4 * block_out_channels[0]) or an integer");
  }
  const sampleSize = get("sample_size");
  if (
    sampleSize !== null && !isPosInt(sampleSize) &&
    !(Array.isArray(sampleSize) && sampleSize.length === 2 && sampleSize.every(isPosInt))
  ) {
    refuse("sample_size", sampleSize, "null, an integer or [height, width]");
  }

  const config: UnetConfig = {
    inChannels: posInt("in_channels"),
    outChannels: posInt("out_channels"),
    blockChannels: [...ch],
    layersPerBlock: uniform("layers_per_block", n),
    attentionLevels,
    ...headsFromDiffusers(get("attention_head_dim"), ch, attentionLevels, refuse),
    contextDim: uniform("cross_attention_dim", n),
    groupNormGroups: posInt("norm_num_groups"),
    useLinearProjection: useLinearProjection as boolean,
  };
  // diffusers' GEGLU is the exact GELU; a kit UNet saved with the tanh one says so (the default).
  if (geluNote !== "tanh") config.gelu = "erf";
  if (timeEmbedDim !== null) config.timeEmbedDim = timeEmbedDim as number;
  const depth = uniform("transformer_layers_per_block", n);
  if (depth !== 1) config.transformerDepth = depth;
  try {
    resolveUnetConfig(config);
    unetParamShapes(config); // checks that heads divide every attention level's channels
  } catch (e) {
    throw new Error(`${src}: ${(e as Error).message}`);
  }
  return { config, sampleSize: sampleSize as DiffusersUnetConfig["sampleSize"] };
}

/**
 * Heads of diffusers' `attention_head_dim` (an int or one per level; the middle block uses the
 * last) as the kit's `numHeads` when they agree, else `headDim` when channels per head agree.
 */
function headsFromDiffusers(
  value: unknown,
  ch: number[],
  attentionLevels: boolean[],
  refuse: (field: string, value: unknown, supported: string) => never,
): { numHeads: number } | { headDim: number } {
  const n = ch.length;
  if (isPosInt(value)) return { numHeads: value };
  if (!Array.isArray(value) || value.length !== n || !value.every(isPosInt)) {
    return refuse("attention_head_dim", value, `heads as an integer or ${n} integers`);
  }
  // Levels that attend, plus the middle block (last level's channels and heads).
  const used = [...attentionLevels.flatMap((a, i) => a ? [i] : []), n - 1];
  const heads = used.map((i) => value[i]);
  if (heads.every((h) => h === heads[0])) return { numHeads: heads[0] };
  const dims = used.map((i) => ch[i] / value[i]);
  if (dims.every((d) => d === dims[0]) && Number.isInteger(dims[0])) return { headDim: dims[0] };
  return refuse(
    "attention_head_dim",
    value,
    "one head count for all attention levels, or counts giving the same channels per head",
  );
}

/**
 * Write the kit's {@link UnetConfig} as diffusers' `config.json` object (every
 * UNet2DConditionModel field, keys sorted as diffusers' `save_config` writes them), which
 * `UNet2DConditionModel.from_config` accepts. A config whose `gelu` is not `"erf"` (the kit's
 * default tanh GELU) gets `"_xgen_kit_gelu": "tanh"`: diffusers ignores it and computes the exact
 * GELU, a slightly different network; the kit reads it back as the tanh GELU.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { unetConfigToDiffusers } from "./diffusers_unet_config.ts";
 * import { UNET_PRESETS } from "./unet.ts";
 *
 * const json = unetConfigToDiffusers(UNET_PRESETS.sd15, { sampleSize: 64 });
 * assert.equal(json._class_name, "UNet2DConditionModel");
 * assert.deepEqual(json.block_out_channels, [320, 640, 1280, 1280]);
 * assert.equal(json.attention_head_dim, 8);
 * assert.equal(json.cross_attention_dim, 768);
 * assert.equal(json._xgen_kit_gelu, "tanh"); // the kit's GELU; diffusers runs the exact one
 * ```
 */
export function unetConfigToDiffusers(
  config: UnetConfig,
  opts: UnetConfigToDiffusersOptions = {},
): Record<string, unknown> {
  const c = resolveUnetConfig(config);
  unetParamShapes(config); // heads must divide every attention level
  const ch = c.blockChannels;
  // diffusers reads attention_head_dim as heads; a level without attention ignores its entry.
  const heads = c.numHeads ??
    ch.map((x) => Number.isInteger(x / c.headDim!) ? x / c.headDim! : 1);
  const out: Record<string, unknown> = {
    _class_name: DIFFUSERS_UNET_CLASS,
    _diffusers_version: DIFFUSERS_UNET_VERSION,
    sample_size: opts.sampleSize ?? null,
    in_channels: c.inChannels,
    out_channels: c.outChannels,
    down_block_types: c.attentionLevels.map((a) => a ? CROSS_DOWN : PLAIN_DOWN),
    mid_block_type: MID,
    up_block_types: [...c.attentionLevels].reverse().map((a) => a ? CROSS_UP : PLAIN_UP),
    only_cross_attention: false,
    block_out_channels: [...ch],
    layers_per_block: c.layersPerBlock,
    norm_num_groups: c.groupNormGroups,
    cross_attention_dim: c.contextDim,
    transformer_layers_per_block: c.transformerDepth,
    attention_head_dim: heads,
    use_linear_projection: c.useLinearProjection,
    time_embedding_dim: config.timeEmbedDim ?? null,
  };
  // diffusers has no tanh GEGLU: note it for the kit (diffusers itself runs the exact GELU).
  if (c.gelu !== "erf") out[KIT_GELU_FIELD] = "tanh";
  for (const [field, { ok }] of Object.entries(FIXED)) {
    if (field === "addition_embed_type_num_heads") out[field] = 64;
    else out[field] = ok[0];
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0));
}
