/**
 * Convolutions and resampling on NHWC images. Weights are `[kh, kw, cin, cout]`.
 *
 * Padding is symmetric, as PyTorch's `padding=k//2` (tfjs "same" pads stride-2 convs
 * asymmetrically), so the ONNX export and diffusers' weights line up exactly.
 *
 * @example
 * ```ts
 * import type * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { conv2d, initConv2d } from "./conv.ts";
 * import type { TensorBuilder } from "./init.ts";
 *
 * function example(
 *   b: TensorBuilder,
 *   x: tf.Tensor4D, // [B, H, W, 4]
 * ) {
 *   initConv2d(b, "conv_in", { inChannels: 4, outChannels: 32, kernelSize: 3 });
 *   const h = conv2d(b.params, "conv_in", x); // [B, H, W, 32]
 * }
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
 * import { initConv2d } from "./conv.ts";
 * import type { ParamBuilder } from "./init.ts";
 *
 * function example(b: ParamBuilder) {
 *   initConv2d(b, "conv_out", { inChannels: 32, outChannels: 4, kernelSize: 3 });
 * }
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
 * import type * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { conv2d } from "./conv.ts";
 * import type { Params } from "./params.ts";
 *
 * function example(
 *   p: Params,
 *   x: tf.Tensor4D,
 * ) {
 *   const y = conv2d(p, "down.conv", x, { stride: 2 }); // [B, H/2, W/2, cout]
 * }
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
 * import { initDownsample } from "./conv.ts";
 * import type { ParamBuilder } from "./init.ts";
 *
 * function example(b: ParamBuilder) {
 *   initDownsample(b, "down_blocks.0.downsamplers.0", 32);
 * }
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
 * import type * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { downsample } from "./conv.ts";
 * import type { Params } from "./params.ts";
 *
 * function example(
 *   p: Params,
 *   x: tf.Tensor4D,
 * ) {
 *   downsample(p, "down_blocks.0.downsamplers.0", x); // [B, H/2, W/2, C]
 * }
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
 * import { initUpsample } from "./conv.ts";
 * import type { ParamBuilder } from "./init.ts";
 *
 * function example(b: ParamBuilder) {
 *   initUpsample(b, "up_blocks.0.upsamplers.0", 64);
 * }
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
 * import type * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { upsample } from "./conv.ts";
 * import type { Params } from "./params.ts";
 *
 * function example(
 *   p: Params,
 *   x: tf.Tensor4D,
 * ) {
 *   upsample(p, "up_blocks.0.upsamplers.0", x); // [B, 2H, 2W, C]
 * }
 * ```
 */
export function upsample(p: Params, name: string, x: tf.Tensor4D): tf.Tensor4D;
export function upsample<T>(m: Ops<T>, name: string, x: T): T;
export function upsample<T>(net: Net<T>, name: string, x: T): T {
  return withOps(net, (m) => conv2d(m, joinName(name, "conv"), m.upsample2x(x)));
}
