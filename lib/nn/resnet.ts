/**
 * Residual conv block, as diffusers' ResnetBlock2D: GroupNorm-SiLU-conv, optional projected time
 * embedding added per channel, GroupNorm-SiLU-conv, plus a 1x1 `conv_shortcut` when the channel
 * count changes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { initResnetBlock, resnetBlock } from "./resnet.ts";
 * import { TensorBuilder } from "./init.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const b = new TensorBuilder(Rng.stream(0));
 * initResnetBlock(b, "resnets.0", { inChannels: 4, outChannels: 8, tembChannels: 16 });
 * const x = tf.ones([1, 4, 4, 4]) as tf.Tensor4D; // [B, H, W, 4]
 * const temb = tf.ones([1, 16]) as tf.Tensor2D; // [B, 16]
 * assert.deepEqual(resnetBlock(b.params, "resnets.0", x, { groups: 2, temb }).shape, [1, 4, 4, 8]);
 * ```
 * @module
 */
import type * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import { joinName, type Params } from "./params.ts";
import type { ParamBuilder } from "./init.ts";
import { conv2d, initConv2d } from "./conv.ts";
import { groupNorm, initGroupNorm } from "./norm.ts";
import { initLinear, linear } from "./linear.ts";
import type { Net, Ops } from "./ops.ts";
import { withOps } from "./with_ops.ts";

/** Options of {@link initResnetBlock}. */
export interface ResnetBlockInit {
  inChannels: number;
  outChannels: number;
  /** Width of the time embedding; no `time_emb_proj` when absent. */
  tembChannels?: number;
}

/**
 * Declare `norm1`, `conv1`, `time_emb_proj`, `norm2`, `conv2` and `conv_shortcut` under `name`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { initResnetBlock } from "./resnet.ts";
 * import { ShapeBuilder } from "./init.ts";
 *
 * const b = new ShapeBuilder();
 * initResnetBlock(b, "mid_block.resnets.0", {
 *   inChannels: 64,
 *   outChannels: 64,
 *   tembChannels: 256,
 * });
 * assert.deepEqual(b.shapes["mid_block.resnets.0.time_emb_proj.weight"], [256, 64]);
 * assert.equal(b.shapes["mid_block.resnets.0.conv_shortcut.weight"], undefined); // same widths
 * ```
 */
export function initResnetBlock(b: ParamBuilder, name: string, o: ResnetBlockInit): void {
  const n = (s: string) => joinName(name, s);
  initGroupNorm(b, n("norm1"), o.inChannels);
  initConv2d(b, n("conv1"), { inChannels: o.inChannels, outChannels: o.outChannels });
  if (o.tembChannels) {
    initLinear(b, n("time_emb_proj"), { inFeatures: o.tembChannels, outFeatures: o.outChannels });
  }
  initGroupNorm(b, n("norm2"), o.outChannels);
  initConv2d(b, n("conv2"), { inChannels: o.outChannels, outChannels: o.outChannels });
  if (o.inChannels !== o.outChannels) {
    initConv2d(b, n("conv_shortcut"), {
      inChannels: o.inChannels,
      outChannels: o.outChannels,
      kernelSize: 1,
    });
  }
}

/** Options of {@link resnetBlock}; tensors are `T` (TensorFlow.js tensors by default). */
export interface ResnetBlockOptions<T = tf.Tensor2D> {
  /** GroupNorm groups. */
  groups: number;
  /** GroupNorm epsilon (default 1e-5). */
  eps?: number;
  /** Time embedding `[B, tembChannels]`; required when the block has `time_emb_proj`. */
  temb?: T;
}

/**
 * Run the block: `x [B,H,W,cin] -> [B,H,W,cout]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { initResnetBlock, resnetBlock } from "./resnet.ts";
 * import { TensorBuilder } from "./init.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const b = new TensorBuilder(Rng.stream(0));
 * initResnetBlock(b, "down_blocks.0.resnets.0", {
 *   inChannels: 4,
 *   outChannels: 4,
 *   tembChannels: 8,
 * });
 * const h = tf.ones([2, 4, 4, 4]) as tf.Tensor4D, temb = tf.ones([2, 8]) as tf.Tensor2D;
 * assert.deepEqual(
 *   resnetBlock(b.params, "down_blocks.0.resnets.0", h, { groups: 2, temb }).shape,
 *   [2, 4, 4, 4],
 * );
 * ```
 */
export function resnetBlock(
  p: Params,
  name: string,
  x: tf.Tensor4D,
  opts: ResnetBlockOptions,
): tf.Tensor4D;
export function resnetBlock<T>(m: Ops<T>, name: string, x: T, opts: ResnetBlockOptions<T>): T;
export function resnetBlock<T>(net: Net<T>, name: string, x: T, opts: ResnetBlockOptions<T>): T {
  const n = (s: string) => joinName(name, s);
  const gn = { groups: opts.groups, eps: opts.eps };
  return withOps(net, (m) => {
    let h = conv2d(m, n("conv1"), groupNorm(m, n("norm1"), x, { ...gn, silu: true }));
    if (m.hasParam(n("time_emb_proj.weight"))) {
      if (!opts.temb) throw new Error(`resnetBlock "${name}": has time_emb_proj but no temb given`);
      const t = linear(m, n("time_emb_proj"), m.silu(opts.temb));
      h = m.add(h, m.reshape(t, [-1, 1, 1, m.shape(t)[1]]));
    }
    h = conv2d(m, n("conv2"), groupNorm(m, n("norm2"), h, { ...gn, silu: true }));
    const skip = m.hasParam(n("conv_shortcut.weight")) ? conv2d(m, n("conv_shortcut"), x) : x;
    return m.add(skip, h);
  });
}
