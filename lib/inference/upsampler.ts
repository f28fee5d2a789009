/**
 * An image upsampler (Real-ESRGAN-style) with tiling, so memory stays bounded by the tile size
 * rather than the image size.
 *
 * I/O contract, read from the session: one float32 input `[batch, 3, H, W]` with pixels in
 * [0, 1] RGB (Real-ESRGAN's convention; other ranges via `norm`) and one output
 * `[batch, 3, sH, sW]` in the same range, clamped and rounded back to bytes. The integer scale
 * `s` is the `scale` option, else the ratio of fixed input and output sizes, else read from
 * one probe run on a small black image.
 *
 * Tiling: tiles of `tile` input pixels (the model's fixed size when it has one) are laid out
 * evenly so neighbours share at least `overlap` pixels; every tile is run whole and its output
 * blended with weights that are 0 within `margin` input pixels of an edge it shares with another
 * tile and ramp linearly to 1 across the rest of the shared band (edges on the image border
 * keep weight 1). Weights are normalised per pixel. A model whose receptive field reaches at
 * most `margin` pixels therefore gives exactly the untiled result (the blended values are all
 * exact); for a pointwise model any tiling is exact. Edges of images smaller than a fixed model
 * size are padded by repeating the border pixels. Output rows are finalised one tile row at a
 * time, so the float buffers hold one tile row of output, not the whole image.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadUpsampler } from "./upsampler.ts";
 * import { OnnxGraph } from "../onnx/writer.ts";
 *
 * // A x2 nearest-neighbour stand-in for Real-ESRGAN ("RealESRGAN_x4plus.onnx", x4).
 * const g = new OnnxGraph("nearest_x2");
 * const x = g.input("image", "float32", ["batch", 3, "height", "width"]);
 * const w = g.initializer("w", new Float32Array(12).fill(1), [3, 1, 2, 2]);
 * const y = g.node("ConvTranspose", [x, w], { group: 3, strides: [2, 2] });
 * g.output(y, "float32", ["batch", 3, "height2", "width2"]);
 * const cpu = { executionProviders: ["cpu"] };
 * const up = await loadUpsampler({ ...cpu, model: g.toBytes(), tile: 24, overlap: 8, margin: 2 });
 * const image = { data: new Uint8Array(40 * 30 * 3).map((_, k) => k * 7), width: 40, height: 30 };
 * const big = await up.upsample(image); // 2x the width and height, in 2x2 tiles
 * const whole = await loadUpsampler({ ...cpu, model: g.toBytes(), tile: 0 }); // one run
 * assert.deepEqual(big, await whole.upsample(image)); // a pointwise model tiles exactly
 * assert.deepEqual([big.width, big.height], [80, 60]);
 * await up.release();
 * await whole.release();
 * ```
 * @module
 */
import type { RgbImage } from "../plot/mod.ts";
import type { OnnxSession } from "../onnx/session.ts";
import {
  denormalizeValue,
  NORM_UNIT,
  type Normalization,
  normalizeValue,
} from "../image/preprocess.ts";
import {
  checkImageInput,
  fixedDim,
  listIo,
  misfitOutput,
  type ModelSessionOptions,
  type ModelSource,
  openModel,
} from "../onnx/io_check.ts";

/** Options of {@link loadUpsampler}. */
export interface LoadUpsamplerOptions extends ModelSessionOptions {
  /** The upsampler model. */
  model: ModelSource;
  /** Integer scale (default: from fixed shapes, else a probe run). */
  scale?: number;
  /**
   * Tile side in input pixels for models that take any size (default 256; 0 = the whole image
   * in one run). A model with a fixed input size always uses that size.
   */
  tile?: number;
  /** Least number of input pixels neighbouring tiles share (default 24). */
  overlap?: number;
  /** Input pixels at a shared tile edge that get weight 0 (default 8; overlap >= 2*margin+1). */
  margin?: number;
  /** Pixel value mapping of input and output (default [0, 1]). */
  norm?: Normalization;
  /** Side of the black image probed for the scale (default 16, or the fixed input size). */
  probeSize?: number;
}

/** A loaded upsampler. */
export interface Upsampler {
  /** The session. */
  session: OnnxSession;
  /** Output pixels per input pixel, per axis. */
  scale: number;
  /** Tile size in input pixels (`width`, `height`), or null for whole images. */
  tile: { width: number; height: number } | null;
  /** Whether the model fixes its input size (images are then tiled or padded to it). */
  fixedSize: boolean;
  /** Upsample one image. */
  upsample(image: RgbImage): Promise<RgbImage>;
  /** Release the session (when the loader opened it). */
  release(): Promise<void>;
}

/**
 * Start offsets of tiles of `tile` pixels covering `length` pixels with neighbours sharing at
 * least `overlap` pixels, spread evenly; one tile at 0 when `length <= tile`.
 *
 * @example
 * ```ts
 * tileStarts(100, 40, 8); // [0, 30, 60]
 * ```
 */
export function tileStarts(length: number, tile: number, overlap: number): number[] {
  for (const [k, v] of [["length", length], ["tile", tile]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`tileStarts: ${k} must be >= 1, got ${v}`);
  }
  if (!Number.isInteger(overlap) || overlap < 0 || overlap >= tile) {
    throw new Error(`tileStarts: overlap must be an integer in [0, tile), got ${overlap}`);
  }
  if (length <= tile) return [0];
  const n = Math.ceil((length - overlap) / (tile - overlap));
  const step = (length - tile) / (n - 1);
  return Array.from({ length: n }, (_, k) => Math.round(k * step));
}

/**
 * Blend weight of output pixel `j` (tile-local, output resolution) of tile `k` along one axis:
 * 0 within `margin` input pixels of an edge shared with a neighbour, then a linear ramp to 1
 * across the rest of the shared band.
 *
 * @example
 * ```ts
 * tileWeight({ starts: [0, 30], k: 1, tile: 40, scale: 1, margin: 2 }, 0); // 0
 * ```
 */
export function tileWeight(
  axis: { starts: readonly number[]; k: number; tile: number; scale: number; margin: number },
  j: number,
): number {
  const { starts, k, tile, scale, margin } = axis;
  const s = starts[k], e = s + tile;
  const u = s + (j + 0.5) / scale;
  const ramp = (d: number, band: number) => {
    const r = (d - margin) / (band - 2 * margin);
    return r <= 0 ? 0 : r >= 1 ? 1 : r;
  };
  let w = 1;
  if (k > 0) w = Math.min(w, ramp(u - s, starts[k - 1] + tile - s));
  if (k < starts.length - 1) w = Math.min(w, ramp(e - u, e - starts[k + 1]));
  return w;
}

function checkInt(v: number, what: string, min: number): void {
  if (!Number.isInteger(v) || v < min) {
    throw new Error(`loadUpsampler: ${what} must be an integer >= ${min}, got ${v}`);
  }
}

/**
 * Load an upsampler (see the module doc for the I/O contract and the tiling).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadUpsampler } from "./upsampler.ts";
 * import { OnnxGraph } from "../onnx/writer.ts";
 *
 * // A x2 nearest-neighbour stand-in for "realesrgan_x2.onnx".
 * const g = new OnnxGraph("nearest_x2");
 * const x = g.input("image", "float32", ["batch", 3, "height", "width"]);
 * const w = g.initializer("w", new Float32Array(12).fill(1), [3, 1, 2, 2]);
 * const y = g.node("ConvTranspose", [x, w], { group: 3, strides: [2, 2] });
 * g.output(y, "float32", ["batch", 3, "height2", "width2"]);
 * const opts = { tile: 192, overlap: 32, executionProviders: ["cpu"] };
 * const up = await loadUpsampler({ ...opts, model: g.toBytes() });
 * assert.equal(up.scale, 2); // from one probe run: the model's sizes are free
 * assert.deepEqual([up.tile, up.fixedSize], [{ width: 192, height: 192 }, false]);
 * await up.release();
 * ```
 */
export async function loadUpsampler(opts: LoadUpsamplerOptions): Promise<Upsampler> {
  const overlap = opts.overlap ?? 24, margin = opts.margin ?? 8;
  checkInt(overlap, "overlap", 0);
  checkInt(margin, "margin", 0);
  if (overlap < 2 * margin + 1) {
    throw new Error(
      `loadUpsampler: overlap (${overlap}) must be at least 2*margin+1 = ${2 * margin + 1} so ` +
        `every pixel of a shared band gets a positive weight`,
    );
  }
  const norm = opts.norm ?? NORM_UNIT;
  const { session: s, owned } = await openModel(opts.model, opts, "upsampler model");
  try {
    if (s.inputs.length !== 1) {
      throw new Error(
        `${s.name}: an upsampler takes one input float32 [batch, 3, height, width], it has ` +
          `${listIo(s.inputs)}`,
      );
    }
    const inp = s.inputs[0];
    const px = checkImageInput(s, inp, "RGB images in [0, 1]");
    const out = s.outputs[0];
    const want = "float32 [batch, 3, scale*height, scale*width]";
    if (out.dtype !== "float32" && out.dtype !== "unknown") {
      misfitOutput(s, out, want, "RGB images");
    }
    if (out.shape !== null) {
      if (out.shape.length !== 4 || (fixedDim(out.shape[1]) ?? 3) !== 3) {
        misfitOutput(s, out, want, "RGB images, NCHW");
      }
    }
    const fixedSize = px.height !== null && px.width !== null;
    if ((px.height === null) !== (px.width === null)) {
      throw new Error(
        `${s.name}: input "${inp.name}" fixes only one of height and width; expected both fixed ` +
          `or both free (its shape is [${inp.shape?.join(", ")}])`,
      );
    }
    const feedN = px.batch ?? 1;

    const runTile = async (x: Float32Array, fw: number, fh: number, scale: number | null) => {
      const y = (await s.run({ [inp.name]: { data: x, shape: [feedN, 3, fh, fw] } }, [out.name]))[
        out.name
      ];
      const d = y.dims;
      const sc = scale ?? d[2] / fh;
      if (
        d.length !== 4 || d[0] !== feedN || d[1] !== 3 || d[2] !== fh * sc || d[3] !== fw * sc ||
        !Number.isInteger(sc) || sc < 1
      ) {
        throw new Error(
          `${s.name}: output "${out.name}" came out [${d.join(", ")}] for a ` +
            `[${feedN}, 3, ${fh}, ${fw}] input, expected [${feedN}, 3, ${
              scale === null ? "s*" : scale + "*"
            }${fh}, ${scale === null ? "s*" : scale + "*"}${fw}] with one integer scale s`,
        );
      }
      return { data: y.data as Float32Array, scale: sc };
    };

    // Scale: option, then fixed shapes, then a probe on a black image.
    let scale = opts.scale ?? null;
    if (scale !== null) checkInt(scale, "scale", 1);
    if (scale === null && fixedSize) {
      const oh = fixedDim(out.shape?.[2]), ow = fixedDim(out.shape?.[3]);
      if (oh !== null && ow !== null) {
        const sy = oh / px.height!, sx = ow / px.width!;
        if (sy !== sx || !Number.isInteger(sy) || sy < 1) {
          misfitOutput(s, out, `[batch, 3, s*${px.height}, s*${px.width}]`, "one integer scale");
        }
        scale = sy;
      }
    }
    if (scale === null) {
      const p = fixedSize ? null : (opts.probeSize ?? 16);
      if (p !== null) checkInt(p, "probeSize", 1);
      const fw = px.width ?? p!, fh = px.height ?? p!;
      scale = (await runTile(new Float32Array(feedN * 3 * fw * fh), fw, fh, null)).scale;
    }

    let tile: { width: number; height: number } | null;
    if (fixedSize) tile = { width: px.width!, height: px.height! };
    else {
      const t = opts.tile ?? 256;
      checkInt(t, "tile", 0);
      tile = t === 0 ? null : { width: t, height: t };
    }
    if (tile && overlap >= Math.min(tile.width, tile.height)) {
      throw new Error(
        `loadUpsampler: overlap (${overlap}) must be smaller than the tile ` +
          `(${tile.width}x${tile.height}${fixedSize ? `, the fixed input size of ${s.name}` : ""})`,
      );
    }
    const S = scale;

    const upsample = async (img: RgbImage): Promise<RgbImage> => {
      const { width: W, height: H, data } = img;
      if (!Number.isInteger(W) || !Number.isInteger(H) || W < 1 || H < 1) {
        throw new Error(`upsample: image size ${W}x${H}, expected positive integers`);
      }
      if (!(data instanceof Uint8Array) || data.length !== W * H * 3) {
        throw new Error(`upsample: image data has ${data?.length} bytes, expected ${W}*${H}*3`);
      }
      // Per axis: content size of a tile and the size fed (larger only for padded fixed sizes).
      const tw = tile ? Math.min(tile.width, W) : W, th = tile ? Math.min(tile.height, H) : H;
      const fw = fixedSize ? tile!.width : tw, fh = fixedSize ? tile!.height : th;
      const xs = tileStarts(W, tw, Math.min(overlap, tw - 1));
      const ys = tileStarts(H, th, Math.min(overlap, th - 1));
      const OW = W * S, OH = H * S;
      const wx = xs.map((_, k) =>
        Float32Array.from(
          { length: tw * S },
          (_, j) => tileWeight({ starts: xs, k, tile: tw, scale: S, margin }, j),
        )
      );
      const wy = ys.map((_, k) =>
        Float32Array.from(
          { length: th * S },
          (_, j) => tileWeight({ starts: ys, k, tile: th, scale: S, margin }, j),
        )
      );
      const lut = [0, 1, 2].map((c) =>
        Float32Array.from({ length: 256 }, (_, v) => normalizeValue(v, c, norm))
      );
      const result = new Uint8Array(OW * OH * 3);
      // Rolling accumulator of one tile row of output: rows [accStart, accStart + th*S).
      const rows = th * S;
      const acc = new Float32Array(rows * OW * 3);
      const wsum = new Float32Array(rows * OW);
      let accStart = 0;
      const finalize = (upTo: number) => {
        for (let r = accStart; r < upTo; r++) {
          const br = r - accStart;
          for (let x = 0; x < OW; x++) {
            const wgt = wsum[br * OW + x];
            for (let c = 0; c < 3; c++) {
              const v = denormalizeValue(acc[(br * OW + x) * 3 + c] / wgt, c, norm);
              result[(r * OW + x) * 3 + c] = v <= 0 ? 0 : v >= 255 ? 255 : Math.floor(v + 0.5);
            }
          }
        }
        // Shift the rows still open to the top of the buffer.
        const keep = accStart + rows - upTo;
        const from = upTo - accStart;
        acc.copyWithin(0, from * OW * 3, (from + keep) * OW * 3);
        acc.fill(0, keep * OW * 3);
        wsum.copyWithin(0, from * OW, (from + keep) * OW);
        wsum.fill(0, keep * OW);
        accStart = upTo;
      };
      const x = new Float32Array(feedN * 3 * fw * fh);
      const plane = fw * fh;
      for (let ky = 0; ky < ys.length; ky++) {
        const sy = ys[ky];
        finalize(sy * S);
        for (let kx = 0; kx < xs.length; kx++) {
          const sx = xs[kx];
          // Fill the tile; positions past the image repeat its last row/column.
          for (let ty = 0; ty < fh; ty++) {
            const iy = Math.min(sy + ty, H - 1);
            for (let tx = 0; tx < fw; tx++) {
              const ix = Math.min(sx + tx, W - 1);
              const p = (iy * W + ix) * 3;
              for (let c = 0; c < 3; c++) x[c * plane + ty * fw + tx] = lut[c][data[p + c]];
            }
          }
          const y = (await runTile(x, fw, fh, S)).data;
          const ow = fw * S, oplane = fw * S * fh * S;
          for (let j = 0; j < th * S; j++) {
            const wyj = wy[ky][j];
            if (wyj === 0) continue;
            const br = sy * S + j - accStart;
            for (let i = 0; i < tw * S; i++) {
              const w = wyj * wx[kx][i];
              if (w === 0) continue;
              const o = br * OW + sx * S + i;
              wsum[o] += w;
              for (let c = 0; c < 3; c++) acc[o * 3 + c] += w * y[c * oplane + j * ow + i];
            }
          }
        }
      }
      finalize(OH);
      return { data: result, width: OW, height: OH };
    };

    return {
      session: s,
      scale: S,
      tile,
      fixedSize,
      upsample,
      release: async () => {
        if (owned) await s.release();
      },
    };
  } catch (e) {
    if (owned) await s.release();
    throw e;
  }
}
