/**
 * NHWC im2col / col2im: turn a 2-D convolution into one GEMM.
 *
 * Row `((n * outH + oh) * outW + ow)` of the column matrix holds the input patch seen by output
 * pixel `(n, oh, ow)`, ordered `(kh, kw, cin)` so that it multiplies a HWIO filter reshaped to
 * `[kh * kw * cin, cout]` directly. Out-of-image taps are zeros (that is what padding means).
 *
 * @example
 * ```ts
 * import { im2col } from "./im2col.ts";
 *
 * const x = new Float32Array(16).map((_, i) => i); // one 4x4x1 image
 * const g = { inH: 4, inW: 4, inC: 1, outH: 2, outW: 2, kH: 2, kW: 2, strideH: 2, strideW: 2,
 *   dilationH: 1, dilationW: 1, padTop: 0, padLeft: 0 };
 * const cols = new Float32Array(4 * 4);
 * im2col(x, cols, g, 0, 1);
 * ```
 * @module
 */

/** Geometry of one NHWC convolution (per image). */
export interface ConvGeometry {
  /** Input height. */
  inH: number;
  /** Input width. */
  inW: number;
  /** Input channels. */
  inC: number;
  /** Output height. */
  outH: number;
  /** Output width. */
  outW: number;
  /** Kernel height. */
  kH: number;
  /** Kernel width. */
  kW: number;
  /** Vertical stride. */
  strideH: number;
  /** Horizontal stride. */
  strideW: number;
  /** Vertical dilation. */
  dilationH: number;
  /** Horizontal dilation. */
  dilationW: number;
  /** Zero rows padded above the input. */
  padTop: number;
  /** Zero columns padded left of the input. */
  padLeft: number;
}

/** Number of columns of the patch matrix (`kH * kW * inC`). */
export function patchSize(g: ConvGeometry): number {
  return g.kH * g.kW * g.inC;
}

/**
 * Fill `cols` (`[count * outH * outW, kH * kW * inC]`) with the patches of images
 * `first .. first + count - 1` of `x` (NHWC). Every entry is written, so `cols` may be reused.
 */
export function im2col(
  x: Float32Array,
  cols: Float32Array,
  g: ConvGeometry,
  first: number,
  count: number,
): void {
  const { inH, inW, inC, outH, outW, kH, kW, strideH, strideW, dilationH, dilationW } = g;
  const rowLen = kH * kW * inC;
  const imgSize = inH * inW * inC;
  let r = 0;
  for (let n = first; n < first + count; n++) {
    const xBase = n * imgSize;
    for (let oh = 0; oh < outH; oh++) {
      const ih0 = oh * strideH - g.padTop;
      for (let ow = 0; ow < outW; ow++) {
        const iw0 = ow * strideW - g.padLeft;
        let o = r * rowLen;
        for (let kh = 0; kh < kH; kh++) {
          const ih = ih0 + kh * dilationH;
          if (ih < 0 || ih >= inH) {
            cols.fill(0, o, o + kW * inC);
            o += kW * inC;
            continue;
          }
          const rowBase = xBase + ih * inW * inC;
          for (let kw = 0; kw < kW; kw++) {
            const iw = iw0 + kw * dilationW;
            if (iw < 0 || iw >= inW) {
              cols.fill(0, o, o + inC);
            } else {
              const s = rowBase + iw * inC;
              if (inC >= 16) cols.set(x.subarray(s, s + inC), o);
              else for (let c = 0; c < inC; c++) cols[o + c] = x[s + c];
            }
            o += inC;
          }
        }
        r++;
      }
    }
  }
}

/**
 * Scatter-add patch gradients `cols` back into `dx` (NHWC) for images `first .. first+count-1`:
 * the adjoint of {@link im2col}. `dx` must be zeroed by the caller for those images.
 */
export function col2im(
  cols: Float32Array,
  dx: Float32Array,
  g: ConvGeometry,
  first: number,
  count: number,
): void {
  const { inH, inW, inC, outH, outW, kH, kW, strideH, strideW, dilationH, dilationW } = g;
  const rowLen = kH * kW * inC;
  const imgSize = inH * inW * inC;
  let r = 0;
  for (let n = first; n < first + count; n++) {
    const xBase = n * imgSize;
    for (let oh = 0; oh < outH; oh++) {
      const ih0 = oh * strideH - g.padTop;
      for (let ow = 0; ow < outW; ow++) {
        const iw0 = ow * strideW - g.padLeft;
        let o = r * rowLen;
        for (let kh = 0; kh < kH; kh++) {
          const ih = ih0 + kh * dilationH;
          if (ih < 0 || ih >= inH) {
            o += kW * inC;
            continue;
          }
          const rowBase = xBase + ih * inW * inC;
          for (let kw = 0; kw < kW; kw++) {
            const iw = iw0 + kw * dilationW;
            if (iw >= 0 && iw < inW) {
              const s = rowBase + iw * inC;
              for (let c = 0; c < inC; c++) dx[s + c] += cols[o + c];
            }
            o += inC;
          }
        }
        r++;
      }
    }
  }
}

/** True when the patch matrix equals the input itself (1x1 filter, stride 1, no padding). */
export function isPointwise(g: ConvGeometry): boolean {
  return g.kH === 1 && g.kW === 1 && g.strideH === 1 && g.strideW === 1 && g.padTop === 0 &&
    g.padLeft === 0 && g.outH === g.inH && g.outW === g.inW;
}
