/**
 * Convolutions and resampling on NHWC images. Weights are `[kh, kw, cin, cout]`.
 *
 * Padding is symmetric, as PyTorch's `padding=k//2` (tfjs "same" pads stride-2 convs
 * asymmetrically), so the ONNX export and diffusers' weights line up exactly.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { conv2d, initConv2d } from "./conv.ts";
 * import { TensorBuilder } from "./init.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const b = new TensorBuilder(Rng.stream(0));
 * initConv2d(b, "conv_in", { inChannels: 4, outChannels: 8, kernelSize: 3 });
 * const h = conv2d(b.params, "conv_in", tf.ones([1, 4, 4, 4])); // [B, H, W, 4] -> [B, H, W, 8]
 * assert.deepEqual(h.shape, [1, 4, 4, 8]);
 * ```
 * @module
 */
import type * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import { joinName, type Params } from "./params.ts";
import { kaiming, type ParamBuilder } from "./init.ts";
import type { Net, Ops } from "./ops.ts";
import { withOps } from "./with_ops.ts";

/** Options of {@link initConv2d}. */
export interface Conv2dInit {
  inChannels: number;
  outChannels: number;
  /** Square kernel size (default 3). */
  kernelSize?: number;
  /** Add a bias (default true). */
  bias?: boolean;
}

/**
 * Declare `name.weight` `[k, k, cin, cout]` and `name.bias` `[cout]` (PyTorch default init).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { initConv2d } from "./conv.ts";
 * import { ShapeBuilder } from "./init.ts";
 *
 * const b = new ShapeBuilder();
 * initConv2d(b, "conv_out", { inChannels: 32, outChannels: 4, kernelSize: 3 });
 * assert.deepEqual(b.shapes, { "conv_out.weight": [3, 3, 32, 4], "conv_out.bias": [4] });
 * ```
 */
export function initConv2d(b: ParamBuilder, name: string, o: Conv2dInit): void {
  const k = o.kernelSize ?? 3;
  const fanIn = k * k * o.inChannels;
  b.add(joinName(name, "weight"), [k, k, o.inChannels, o.outChannels], kaiming(fanIn));
  if (o.bias ?? true) b.add(joinName(name, "bias"), [o.outChannels], kaiming(fanIn));
}

/** Options of {@link conv2d}. */
export interface Conv2dOptions {
  /** Stride in both directions (default 1). */
  stride?: number;
  /**
   * "same" (default: symmetric (k-1)/2 padding, PyTorch's `padding=k//2`), "valid" (none), or an
   * explicit symmetric pad in pixels.
   */
  padding?: "same" | "valid" | number;
}

/**
 * 2-D convolution `x [B,H,W,cin] -> [B,H',W',cout]` reading `name.weight` and `name.bias`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { conv2d, initConv2d } from "./conv.ts";
 * import { TensorBuilder } from "./init.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const b = new TensorBuilder(Rng.stream(0));
 * initConv2d(b, "down.conv", { inChannels: 2, outChannels: 3, kernelSize: 3 });
 * const y = conv2d(b.params, "down.conv", tf.ones([1, 8, 8, 2]), { stride: 2 });
 * assert.deepEqual(y.shape, [1, 4, 4, 3]); // [B, H/2, W/2, cout]
 * ```
 */
export function conv2d(p: Params, name: string, x: tf.Tensor4D, opts?: Conv2dOptions): tf.Tensor4D;
export function conv2d<T>(m: Ops<T>, name: string, x: T, opts?: Conv2dOptions): T;
export function conv2d<T>(net: Net<T>, name: string, x: T, opts: Conv2dOptions = {}): T {
  return withOps(net, (m) => {
    const w = m.param(joinName(name, "weight"));
    const [kh, kw, cin] = m.shape(w) as number[];
    const shape = m.shape(x);
    if (shape.length !== 4) {
      throw new Error(`conv2d "${name}": expected NHWC input, got rank ${shape.length}`);
    }
    if (shape[3] !== cin) {
      throw new Error(`conv2d "${name}": input has ${shape[3]} channels, weight expects ${cin}`);
    }
    const padding = opts.padding ?? "same";
    const ph = padding === "valid" ? 0 : padding === "same" ? (kh - 1) >> 1 : padding;
    const pw = padding === "valid" ? 0 : padding === "same" ? (kw - 1) >> 1 : padding;
    const bias = joinName(name, "bias");
    return m.conv2d(x, w, m.hasParam(bias) ? m.param(bias) : undefined, {
      stride: opts.stride ?? 1,
      pad: [ph, pw],
    });
  });
}

/**
 * Declare a downsampler: a 3x3 stride-2 conv `name.conv` (diffusers' Downsample2D).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { initDownsample } from "./conv.ts";
 * import { ShapeBuilder } from "./init.ts";
 *
 * const b = new ShapeBuilder();
 * initDownsample(b, "down_blocks.0.downsamplers.0", 32);
 * assert.deepEqual(b.shapes["down_blocks.0.downsamplers.0.conv.weight"], [3, 3, 32, 32]);
 * ```
 */
export function initDownsample(
  b: ParamBuilder,
  name: string,
  channels: number,
  outChannels?: number,
): void {
  initConv2d(b, joinName(name, "conv"), {
    inChannels: channels,
    outChannels: outChannels ?? channels,
    kernelSize: 3,
  });
}

/**
 * Halve H and W with a 3x3 stride-2 conv, padding 1 (PyTorch alignment).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { downsample, initDownsample } from "./conv.ts";
 * import { TensorBuilder } from "./init.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const b = new TensorBuilder(Rng.stream(0));
 * initDownsample(b, "down", 4);
 * assert.deepEqual(downsample(b.params, "down", tf.ones([1, 4, 4, 4])).shape, [1, 2, 2, 4]);
 * ```
 */
export function downsample(p: Params, name: string, x: tf.Tensor4D): tf.Tensor4D;
export function downsample<T>(m: Ops<T>, name: string, x: T): T;
export function downsample<T>(net: Net<T>, name: string, x: T): T {
  return withOps(net, (m) => conv2d(m, joinName(name, "conv"), x, { stride: 2, padding: 1 }));
}

/**
 * Declare an upsampler: nearest 2x then a 3x3 conv `name.conv` (diffusers' Upsample2D).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { initUpsample } from "./conv.ts";
 * import { ShapeBuilder } from "./init.ts";
 *
 * const b = new ShapeBuilder();
 * initUpsample(b, "up_blocks.0.upsamplers.0", 64);
 * assert.deepEqual(b.shapes["up_blocks.0.upsamplers.0.conv.weight"], [3, 3, 64, 64]);
 * ```
 */
export function initUpsample(b: ParamBuilder, name: string, channels: number): void {
  initConv2d(b, joinName(name, "conv"), { inChannels: channels, outChannels: channels });
}

/**
 * Nearest 2x upsampling followed by a 3x3 conv.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { initUpsample, upsample } from "./conv.ts";
 * import { TensorBuilder } from "./init.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const b = new TensorBuilder(Rng.stream(0));
 * initUpsample(b, "up", 4);
 * assert.deepEqual(upsample(b.params, "up", tf.ones([1, 4, 4, 4])).shape, [1, 8, 8, 4]);
 * ```
 */
export function upsample(p: Params, name: string, x: tf.Tensor4D): tf.Tensor4D;
export function upsample<T>(m: Ops<T>, name: string, x: T): T;
export function upsample<T>(net: Net<T>, name: string, x: T): T {
  return withOps(net, (m) => conv2d(m, joinName(name, "conv"), m.upsample2x(x)));
}
