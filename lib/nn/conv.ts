/**
 * Convolutions and resampling on NHWC tensors. Weights are `[kh, kw, cin, cout]`.
 *
 * Padding is applied with an explicit `tf.pad` followed by a "valid" convolution, which matches
 * PyTorch's symmetric `padding=k//2` exactly (tfjs "same" pads stride-2 convs asymmetrically) and
 * keeps the conv kernels the backends must provide to the plain "valid" case.
 *
 * @example
 * ```ts
 * initConv2d(b, "conv_in", { inChannels: 4, outChannels: 32, kernelSize: 3 });
 * const h = conv2d(b.params, "conv_in", x); // [B, H, W, 32]
 * ```
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { getParam, joinName, type Params } from "./params.ts";
import { kaiming, type ParamBuilder } from "./init.ts";

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
 * initConv2d(b, "conv_out", { inChannels: 32, outChannels: 4, kernelSize: 3 });
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
 * const y = conv2d(p, "down.conv", x, { stride: 2 }); // [B, H/2, W/2, cout]
 * ```
 */
export function conv2d(
  p: Params,
  name: string,
  x: tf.Tensor4D,
  opts: Conv2dOptions = {},
): tf.Tensor4D {
  const w = getParam(p, joinName(name, "weight")) as tf.Variable<tf.Rank.R4>;
  const [kh, kw, cin] = w.shape;
  if (x.rank !== 4) throw new Error(`conv2d "${name}": expected NHWC input, got rank ${x.rank}`);
  if (x.shape[3] !== cin) {
    throw new Error(`conv2d "${name}": input has ${x.shape[3]} channels, weight expects ${cin}`);
  }
  const stride = opts.stride ?? 1;
  const padding = opts.padding ?? "same";
  const ph = padding === "valid" ? 0 : padding === "same" ? (kh - 1) >> 1 : padding;
  const pw = padding === "valid" ? 0 : padding === "same" ? (kw - 1) >> 1 : padding;
  return tf.tidy(() => {
    // tfjs "same" at stride 1 with an odd kernel pads (k-1)/2 on both sides, exactly PyTorch's
    // padding; using it saves a pad op and its slice gradient. Other cases pad explicitly.
    const native = stride === 1 && kh % 2 === 1 && kw % 2 === 1 && 2 * ph === kh - 1 &&
      2 * pw === kw - 1 && ph + pw > 0;
    const xp = native || ph + pw === 0 ? x : tf.pad(x, [[0, 0], [ph, ph], [pw, pw], [0, 0]]);
    const mode = native ? "same" : "valid";
    let y = filterGradMode === "conv"
      ? convWithConvGrad(xp, w, stride, mode)
      : tf.conv2d(xp, w, stride, mode);
    const bias = p[joinName(name, "bias")];
    if (bias) y = tf.add(y, bias);
    return y;
  });
}

/** How the weight gradient of {@link conv2d} is computed; see {@link setConvFilterGrad}. */
export type ConvFilterGradMode = "conv" | "kernel";

let filterGradMode: ConvFilterGradMode = "conv";

/**
 * Choose how {@link conv2d} computes its weight gradient:
 * - `"conv"` (default): as a forward convolution of the transposed input with the transposed
 *   output gradient (dilation = stride). It needs only the Conv2D kernel, which every backend has
 *   and accelerates; the stock tfjs `cpu` Conv2DBackpropFilter is ~100x slower and `wasm` has none.
 * - `"kernel"`: tfjs' own gradient, i.e. the backend's Conv2DBackpropFilter kernel (use it when a
 *   backend registers a fast one).
 * Both give the same values up to float rounding. Returns the previous mode.
 *
 * @example
 * ```ts
 * const prev = setConvFilterGrad("kernel");
 * ```
 */
export function setConvFilterGrad(mode: ConvFilterGradMode): ConvFilterGradMode {
  if (mode !== "conv" && mode !== "kernel") {
    throw new Error(`setConvFilterGrad: mode must be "conv" or "kernel", got ${mode}`);
  }
  const prev = filterGradMode;
  filterGradMode = mode;
  return prev;
}

/**
 * Weight gradient of a "valid" conv, `dW[kh,kw,cin,cout] = sum_b,y x[b, y*s + k, cin] dy[b, y, cout]`,
 * computed as a convolution with batch as the reduction channel: input `x^T [cin, H, W, B]`, filter
 * `dy^T [H', W', B, cout]`, dilation `s`.
 *
 * @example
 * ```ts
 * const dw = convFilterGrad(x, dy, { kernelHeight: 3, kernelWidth: 3, stride: 1 });
 * ```
 */
export function convFilterGrad(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  o: { kernelHeight: number; kernelWidth: number; stride: number },
): tf.Tensor4D {
  return tf.tidy(() => {
    const xt = tf.transpose(x, [3, 1, 2, 0]);
    const dyt = tf.transpose(dy, [1, 2, 0, 3]);
    let g = tf.conv2d(xt, dyt, 1, "valid", "NHWC", o.stride);
    // With a stride that does not divide (H - kh), the conv covers rows past the kernel: drop them.
    if (g.shape[1] !== o.kernelHeight || g.shape[2] !== o.kernelWidth) {
      g = tf.slice(g, [0, 0, 0, 0], [-1, o.kernelHeight, o.kernelWidth, -1]);
    }
    return tf.transpose(g, [1, 2, 0, 3]);
  });
}

function convWithConvGrad(
  x: tf.Tensor4D,
  w: tf.Tensor4D,
  stride: number,
  pad: "same" | "valid",
): tf.Tensor4D {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xs = args[0] as tf.Tensor4D;
    const ws = args[1] as tf.Tensor4D;
    const save = args[2] as tf.GradSaveFunc;
    save([xs, ws]);
    return {
      value: tf.conv2d(xs, ws, stride, pad),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [xv, wv] = saved as [tf.Tensor4D, tf.Tensor4D];
        const g = dy as tf.Tensor4D;
        const [kh, kw] = wv.shape;
        const dx = tf.conv2dTranspose(g, wv, xv.shape, stride, pad);
        // "same" only occurs at stride 1 with odd kernels: (k-1)/2 on each side.
        const xpad = pad === "same"
          ? tf.pad(xv, [[0, 0], [(kh - 1) >> 1, (kh - 1) >> 1], [(kw - 1) >> 1, (kw - 1) >> 1], [
            0,
            0,
          ]])
          : xv;
        const dw = convFilterGrad(xpad, g, { kernelHeight: kh, kernelWidth: kw, stride });
        return [dx, dw];
      },
    };
  });
  return f(x, w) as tf.Tensor4D;
}

/**
 * Nearest-neighbour 2x upsampling by broadcast (reshape, multiply by ones, reshape). Its gradient
 * is the exact 2x2 block sum on every backend, unlike `tf.image.resizeNearestNeighbor` on cpu.
 *
 * @example
 * ```ts
 * upsample2x(tf.ones([1, 4, 4, 8])).shape; // [1, 8, 8, 8]
 * ```
 */
export function upsample2x(x: tf.Tensor4D): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  return tf.tidy(() => {
    const rep = tf.mul(tf.reshape(x, [b, h, 1, w, 1, c]), tf.ones([1, 1, 2, 1, 2, 1]));
    return tf.reshape(rep, [b, 2 * h, 2 * w, c]) as tf.Tensor4D;
  });
}

/**
 * Declare a downsampler: a 3x3 stride-2 conv `name.conv` (diffusers' Downsample2D).
 *
 * @example
 * ```ts
 * initDownsample(b, "down_blocks.0.downsamplers.0", 32);
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
 * downsample(p, "down_blocks.0.downsamplers.0", x); // [B, H/2, W/2, C]
 * ```
 */
export function downsample(p: Params, name: string, x: tf.Tensor4D): tf.Tensor4D {
  return conv2d(p, joinName(name, "conv"), x, { stride: 2, padding: 1 });
}

/**
 * Declare an upsampler: nearest 2x then a 3x3 conv `name.conv` (diffusers' Upsample2D).
 *
 * @example
 * ```ts
 * initUpsample(b, "up_blocks.0.upsamplers.0", 64);
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
 * upsample(p, "up_blocks.0.upsamplers.0", x); // [B, 2H, 2W, C]
 * ```
 */
export function upsample(p: Params, name: string, x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => conv2d(p, joinName(name, "conv"), upsample2x(x)));
}
