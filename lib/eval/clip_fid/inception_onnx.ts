/**
 * Inception-v3 pool3 features (the FID network) from an ONNX model the user provides, behind the
 * kit's {@link FeatureExtractor} interface, with clean-fid's preprocessing conventions.
 *
 * The kit ships no weights. The expected model is pytorch-fid's port of the 2015-12-05 TensorFlow
 * FID Inception (`pt_inception-2015-12-05-6726825d.pth`) exported to ONNX as the bare network:
 *
 * ```python
 * from pytorch_fid.inception import InceptionV3
 * m = InceptionV3([3], resize_input=False, normalize_input=False).eval()
 * torch.onnx.export(m, torch.zeros(1, 3, 299, 299), "pt_inception-2015-12-05.onnx",
 *     input_names=["images"], output_names=["pool3"],
 *     dynamic_axes={"images": {0: "batch"}, "pool3": {0: "batch"}})
 * ```
 *
 * Contract read from the session, not assumed: one float32 input `[batch, 3, 299, 299]` (NCHW) or
 * `[batch, 299, 299, 3]` (NHWC; a fixed batch size is padded to), and a float32 output
 * `[batch, 2048]` (or `[batch, 2048, 1, 1]`, what the export above gives). Anything else fails
 * naming the input or output and the expected shape.
 *
 * Preprocessing, per image (clean-fid, "clean" mode):
 * 1. RGB uint8 -> float, resized to 299x299 with {@link ResizeMode} (default `"clean"`: Pillow's
 *    `Image.resize(BICUBIC)` on float32 (`"F"` mode) channels — antialiased when shrinking — then
 *    clipped to [0, 255]; `"legacy_tensorflow"` and `"bilinear"` reproduce older FID code).
 * 2. Values mapped per {@link InceptionInputRange} (default `"-1-1"`: `(x - 128) / 128`, the
 *    normalisation of the TensorFlow graph and of clean-fid, for the bare-network export above;
 *    `"0-255"` for models that normalise inside, like clean-fid's own wrapper; `"0-1"` (`x / 255`)
 *    for pytorch-fid's `InceptionV3` exported with its default `normalize_input=True`).
 *    pytorch-fid itself normalises as `2x/255 - 1`, 0.4% away from clean-fid's; the kit follows
 *    clean-fid.
 *
 * The extractor's name is `inception-v3-pool3-<sha256[:8] of the model file>`; its preprocessing
 * string names the resize mode, the input mapping and the output, so cached reference statistics
 * made any other way are refused (`stats_file.ts`).
 *
 * @example
 * ```ts
 * import { inceptionOnnxExtractor } from "./inception_onnx.ts";
 * import type { RgbInput } from "./feature_extractors.ts";
 *
 * async function example(images: RgbInput[]) {
 *   const ex = await inceptionOnnxExtractor("data/models/pt_inception-2015-12-05.onnx");
 *   const feats = await ex.extract(images); // Float32Array, images.length x 2048
 *   await ex.release();
 * }
 * ```
 * @module
 */
import { resampleKernel } from "../../image/preprocess.ts";
import { type OnnxIoInfo, type OnnxSession, openSession } from "../../onnx/session.ts";
import type { FeatureExtractor, RgbInput } from "./feature_extractors.ts";

/** Image side the FID Inception network takes. */
export const INCEPTION_SIZE = 299;

/** Feature dimension of the pool3 layer. */
export const INCEPTION_DIM = 2048;

/**
 * How images are resized to 299x299:
 * - `"clean"`: clean-fid's default. Pillow's `resize(BICUBIC)` on each channel as a float32 image:
 *   separable, horizontal pass then vertical, bicubic kernel with a = -0.5 stretched by the
 *   shrink factor when downscaling (antialiasing), taps outside the image dropped and the rest
 *   renormalised, float64 sums stored as float32 after each pass; result clipped to [0, 255].
 * - `"legacy_tensorflow"`: TensorFlow 1's `resize_bilinear` (align_corners=False, no half-pixel
 *   centres: source = destination x in/out), as in the original TTUR FID code; no antialiasing.
 * - `"bilinear"`: PyTorch's `interpolate(mode="bilinear", align_corners=False)` as in pytorch-fid
 *   (half-pixel centres, source clamped at 0); no antialiasing.
 */
export type ResizeMode = "clean" | "legacy_tensorflow" | "bilinear";

/** The resize modes, in documentation order. */
export const RESIZE_MODES: readonly ResizeMode[] = ["clean", "legacy_tensorflow", "bilinear"];

/**
 * Value mapping of the resized pixels `x` (floats in [0, 255]) before they reach the network:
 * `"-1-1"`: `(x - 128) / 128` (clean-fid / TensorFlow graph normalisation), `"0-255"`: `x`,
 * `"0-1"`: `x / 255`.
 */
export type InceptionInputRange = "-1-1" | "0-255" | "0-1";

/** The input mappings. */
export const INPUT_RANGES: readonly InceptionInputRange[] = ["-1-1", "0-255", "0-1"];

const RESIZE_TEXT: Record<ResizeMode, string> = {
  clean: "PIL BICUBIC on float32 channels, antialiased, clipped to [0, 255]",
  legacy_tensorflow: "TF1 resize_bilinear, align_corners=False, no half-pixel centres",
  bilinear: "torch bilinear, align_corners=False, no antialias",
};

const RANGE_TEXT: Record<InceptionInputRange, string> = {
  "-1-1": "(x - 128) / 128",
  "0-255": "x",
  "0-1": "x / 255",
};

/** Taps of a separable resampling filter along one axis: output `o` reads `count[o]` inputs. */
interface AxisTaps {
  /** First input index of each output. */
  start: Int32Array;
  /** Number of inputs of each output. */
  count: Int32Array;
  /** `k` weights per output (unused ones 0). */
  weights: Float64Array;
  /** Weights stored per output. */
  k: number;
}

/**
 * Pillow's `precompute_coeffs` for BICUBIC over the whole input (antialiased when shrinking): the
 * same kernel the ONNX parts' Pillow-exact resize uses, in this module's tap layout.
 */
function cleanTaps(inSize: number, outSize: number): AxisTaps {
  const r = resampleKernel(inSize, outSize, { filter: "bicubic" });
  return { start: r.starts, count: r.counts, weights: r.weights, k: r.ksize };
}

/** Two-tap linear interpolation at float32 source positions `src(o)` (clamped to the image). */
function linearTaps(inSize: number, outSize: number, src: (o: number) => number): AxisTaps {
  const start = new Int32Array(outSize), count = new Int32Array(outSize);
  const weights = new Float64Array(outSize * 2);
  for (let o = 0; o < outSize; o++) {
    const s = src(o);
    const i0 = Math.min(Math.floor(s), inSize - 1);
    const lerp = Math.min(Math.max(Math.fround(s - i0), 0), 1);
    start[o] = i0;
    count[o] = i0 < inSize - 1 ? 2 : 1;
    weights[o * 2] = count[o] === 2 ? 1 - lerp : 1;
    weights[o * 2 + 1] = count[o] === 2 ? lerp : 0;
  }
  return { start, count, weights, k: 2 };
}

function legacyTfTaps(inSize: number, outSize: number): AxisTaps {
  // TF computes the scale and the source position in float32.
  const scale = Math.fround(inSize / outSize);
  return linearTaps(inSize, outSize, (o) => Math.fround(o * scale));
}

function bilinearTaps(inSize: number, outSize: number): AxisTaps {
  const scale = Math.fround(inSize / outSize);
  return linearTaps(
    inSize,
    outSize,
    (o) => Math.max(0, Math.fround(Math.fround(scale * (o + 0.5)) - 0.5)),
  );
}

const tapCache = new Map<string, AxisTaps>();

function axisTaps(mode: ResizeMode, inSize: number, outSize: number): AxisTaps {
  const key = `${mode}:${inSize}:${outSize}`;
  let t = tapCache.get(key);
  if (!t) {
    t = mode === "clean"
      ? cleanTaps(inSize, outSize)
      : mode === "legacy_tensorflow"
      ? legacyTfTaps(inSize, outSize)
      : bilinearTaps(inSize, outSize);
    // Only a few (input, output) size pairs occur in one evaluation; bound it anyway.
    if (tapCache.size > 256) tapCache.clear();
    tapCache.set(key, t);
  }
  return t;
}

/** Options of {@link resizeRgb}. */
export interface ResizeOptions {
  width: number;
  height: number;
  /** Default "clean". */
  mode?: ResizeMode;
}

/**
 * Resize an RGB uint8 image to float32 RGB (row-major `height x width x 3`, values in 0..255
 * units) with one of the FID resize modes ({@link ResizeMode}). An axis whose size does not
 * change is copied, as Pillow skips that pass.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resizeRgb } from "../../image/preprocess.ts";
 *
 * const data = new Uint8Array(64 * 48 * 3);
 * const x = resizeRgb({ data, width: 64, height: 48 }, { width: 299, height: 299 }); // "clean"
 * assert.equal(x.data.length, 299 * 299 * 3);
 * ```
 */
export function resizeRgb(img: RgbInput, opts: ResizeOptions): Float32Array {
  const { width: w, height: h, data } = img;
  const mode = opts.mode ?? "clean";
  if (!RESIZE_MODES.includes(mode)) {
    throw new Error(`resizeRgb: mode must be one of ${RESIZE_MODES.join(", ")}, got ${mode}`);
  }
  if (!(Number.isInteger(w) && Number.isInteger(h) && w >= 1 && h >= 1)) {
    throw new Error(`resizeRgb: image size must be positive integers, got ${w}x${h}`);
  }
  if (!data || data.length !== w * h * 3) {
    throw new Error(`resizeRgb: image data has ${data?.length} bytes, expected ${w}x${h}x3 RGB`);
  }
  const ow = opts.width, oh = opts.height;
  if (!(Number.isInteger(ow) && Number.isInteger(oh) && ow >= 1 && oh >= 1)) {
    throw new Error(`resizeRgb: output size must be positive integers, got ${ow}x${oh}`);
  }
  // Horizontal pass first, then vertical, each stored as float32 like Pillow's "F" images.
  let cur = Float32Array.from(data);
  if (ow !== w) {
    const t = axisTaps(mode, w, ow);
    const next = new Float32Array(h * ow * 3);
    for (let y = 0; y < h; y++) {
      const row = y * w * 3;
      for (let o = 0; o < ow; o++) {
        const s = t.start[o], n = t.count[o], wo = o * t.k;
        let r = 0, g = 0, b = 0;
        for (let j = 0; j < n; j++) {
          const wt = t.weights[wo + j], p = row + (s + j) * 3;
          r += cur[p] * wt;
          g += cur[p + 1] * wt;
          b += cur[p + 2] * wt;
        }
        const q = (y * ow + o) * 3;
        next[q] = r;
        next[q + 1] = g;
        next[q + 2] = b;
      }
    }
    cur = next;
  }
  if (oh !== h) {
    const t = axisTaps(mode, h, oh);
    const next = new Float32Array(oh * ow * 3);
    const stride = ow * 3;
    // Sums in float64 (as Pillow does), rounded to float32 once per output value.
    const acc = new Float64Array(stride);
    for (let o = 0; o < oh; o++) {
      const s = t.start[o], n = t.count[o], wo = o * t.k;
      acc.fill(0);
      for (let j = 0; j < n; j++) {
        const wt = t.weights[wo + j], p0 = (s + j) * stride;
        for (let x = 0; x < stride; x++) acc[x] += cur[p0 + x] * wt;
      }
      next.set(acc, o * stride);
    }
    cur = next;
  }
  if (mode === "clean") {
    // Bicubic overshoots near edges; clean-fid clips back to the pixel range.
    for (let i = 0; i < cur.length; i++) cur[i] = Math.min(255, Math.max(0, cur[i]));
  }
  return cur;
}

/** Options of {@link inceptionOnnxExtractor}. */
export interface InceptionOnnxOptions {
  /** Resize to 299x299 (default "clean"). */
  resize?: ResizeMode;
  /** Value mapping fed to the network (default "-1-1", see {@link InceptionInputRange}). */
  input?: InceptionInputRange;
  /** Images per session run for a model with a free batch dimension (default 32). */
  batchSize?: number;
  /** Output to read when the model has several (default: the one shaped [batch, 2048]). */
  output?: string;
  /** onnxruntime intra-op threads (default: all cores). */
  threads?: number;
  /** Execution providers (default "auto": CUDA when available, else CPU). */
  executionProviders?: "auto" | readonly string[];
  /** Name of the model in errors (default: the path, or "inception.onnx" for bytes). */
  name?: string;
}

/** An Inception ONNX extractor; release the session when done. */
export interface InceptionOnnxExtractor extends FeatureExtractor {
  /** The open session. */
  session: OnnxSession;
  /** Input fed. */
  inputName: string;
  /** Output read. */
  outputName: string;
  /** Memory layout of the input, read from its declared shape. */
  layout: "NCHW" | "NHWC";
  /** Resize mode. */
  resize: ResizeMode;
  /** Input mapping. */
  input: InceptionInputRange;
  /** Free the onnxruntime session. */
  release(): Promise<void>;
}

function fmtShape(shape: readonly (number | string)[] | null): string {
  return shape === null ? "[?]" : `[${shape.join(", ")}]`;
}

/** A dimension the model leaves free (symbolic name or negative size). */
function isFree(d: number | string): boolean {
  return typeof d === "string" || d < 0;
}

/** Input layout and fixed batch size (null: free), or an error naming the input. */
function checkInput(
  name: string,
  inp: OnnxIoInfo,
): { layout: "NCHW" | "NHWC"; batch: number | null } {
  const S = INCEPTION_SIZE;
  const s = inp.shape;
  const bad = () =>
    new Error(
      `${name}: input "${inp.name}" must be float32 [batch, 3, ${S}, ${S}] (NCHW) or ` +
        `[batch, ${S}, ${S}, 3] (NHWC), got ${inp.dtype} ${fmtShape(s)}`,
    );
  if (inp.dtype !== "float32") throw bad();
  // An input without declared shape is taken as NCHW (the layout of PyTorch exports).
  if (s === null) return { layout: "NCHW", batch: null };
  if (s.length !== 4) throw bad();
  const fits = (d: number | string, v: number) => isFree(d) || d === v;
  const b = s[0];
  if (!isFree(b) && !(Number.isInteger(b) && (b as number) >= 1)) throw bad();
  const batch = isFree(b) ? null : b as number;
  if (fits(s[1], 3) && fits(s[2], S) && fits(s[3], S)) return { layout: "NCHW", batch };
  if (fits(s[1], S) && fits(s[2], S) && fits(s[3], 3)) return { layout: "NHWC", batch };
  throw bad();
}

/** Whether an output shape can be pool3 features: [B, 2048] or [B, 2048, 1, 1]. */
function isPoolShape(shape: readonly (number | string)[] | null): boolean {
  if (shape === null) return true;
  const fits = (d: number | string, v: number) => isFree(d) || d === v;
  if (shape.length === 2) return fits(shape[1], INCEPTION_DIM);
  if (shape.length === 4) {
    return fits(shape[1], INCEPTION_DIM) && fits(shape[2], 1) && fits(shape[3], 1);
  }
  return false;
}

function pickOutput(name: string, outputs: readonly OnnxIoInfo[], want?: string): OnnxIoInfo {
  const expected = `float32 [batch, ${INCEPTION_DIM}] (pool3 features)`;
  const check = (o: OnnxIoInfo) => {
    if (o.dtype !== "float32" || !isPoolShape(o.shape)) {
      throw new Error(
        `${name}: output "${o.name}" must be ${expected}, got ${o.dtype} ${fmtShape(o.shape)}`,
      );
    }
    return o;
  };
  if (want !== undefined) {
    const o = outputs.find((x) => x.name === want);
    if (!o) {
      throw new Error(
        `${name}: no output "${want}"; the model gives ${
          outputs.map((x) => `"${x.name}"`).join(", ")
        }`,
      );
    }
    return check(o);
  }
  if (outputs.length === 1) return check(outputs[0]);
  const fit = outputs.filter((o) => o.dtype === "float32" && isPoolShape(o.shape));
  if (fit.length === 1) return fit[0];
  throw new Error(
    `${name}: expected one output ${expected}, the model gives ${
      outputs.map((o) => `"${o.name}" ${o.dtype} ${fmtShape(o.shape)}`).join(", ")
    }; pick one with the output option`,
  );
}

async function sha8(bytes: Uint8Array): Promise<string> {
  const h = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(h.subarray(0, 4), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The preprocessing string of an Inception extractor (goes into cached statistics).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { inceptionPreprocessing } from "./inception_onnx.ts";
 *
 * const p = inceptionPreprocessing("clean", "-1-1", "pool3");
 * assert.ok(p.startsWith("clean-fid conventions: RGB uint8 -> resize=clean to 299x299"));
 * ```
 */
export function inceptionPreprocessing(
  resize: ResizeMode,
  input: InceptionInputRange,
  output: string,
): string {
  const S = INCEPTION_SIZE;
  return `clean-fid conventions: RGB uint8 -> resize=${resize} to ${S}x${S} ` +
    `(${RESIZE_TEXT[resize]}) -> input=${input} (${RANGE_TEXT[input]}) -> ` +
    `output "${output}" (${INCEPTION_DIM}-d pool3)`;
}

/**
 * Fill image `j` of a batch buffer from 299x299 HWC floats, mapping values and laying them out.
 */
function fillInput(
  x: Float32Array,
  j: number,
  hwc: Float32Array,
  layout: "NCHW" | "NHWC",
  input: InceptionInputRange,
): void {
  const n = INCEPTION_SIZE * INCEPTION_SIZE;
  const [scale, shift] = input === "-1-1" ? [1 / 128, -1] : input === "0-1" ? [1 / 255, 0] : [1, 0];
  const base = j * 3 * n;
  if (layout === "NHWC") {
    for (let i = 0; i < 3 * n; i++) x[base + i] = hwc[i] * scale + shift;
    return;
  }
  for (let p = 0; p < n; p++) {
    x[base + p] = hwc[3 * p] * scale + shift;
    x[base + n + p] = hwc[3 * p + 1] * scale + shift;
    x[base + 2 * n + p] = hwc[3 * p + 2] * scale + shift;
  }
}

/**
 * Open an Inception-v3 pool3 ONNX model (path or bytes) as a {@link FeatureExtractor}; see the
 * module notes for the contract and the preprocessing.
 *
 * @example
 * ```ts
 * async function example() {
 *   const ex = await inceptionOnnxExtractor("pt_inception-2015-12-05.onnx", { resize: "clean" });
 *   ex.name; // "inception-v3-pool3-1a2b3c4d"
 * }
 * ```
 */
export async function inceptionOnnxExtractor(
  model: string | Uint8Array,
  opts: InceptionOnnxOptions = {},
): Promise<InceptionOnnxExtractor> {
  const name = opts.name ?? (typeof model === "string" ? model : "inception.onnx");
  const resize = opts.resize ?? "clean";
  const input = opts.input ?? "-1-1";
  if (!RESIZE_MODES.includes(resize)) {
    throw new Error(`${name}: resize must be one of ${RESIZE_MODES.join(", ")}, got ${resize}`);
  }
  if (!INPUT_RANGES.includes(input)) {
    throw new Error(`${name}: input must be one of ${INPUT_RANGES.join(", ")}, got ${input}`);
  }
  const batchSize = opts.batchSize ?? 32;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new Error(`${name}: batchSize must be an integer >= 1, got ${batchSize}`);
  }
  let bytes: Uint8Array;
  if (typeof model === "string") {
    try {
      bytes = await Deno.readFile(model);
    } catch (e) {
      throw new Error(`${name}: Inception ONNX model cannot be read (${(e as Error).message})`);
    }
  } else bytes = model;
  const session = await openSession(bytes, {
    name,
    threads: opts.threads,
    executionProviders: opts.executionProviders,
  });
  try {
    if (session.inputs.length !== 1) {
      throw new Error(
        `${name}: expected one input (images), the model takes ${
          session.inputs.map((i) => `"${i.name}" ${i.dtype} ${fmtShape(i.shape)}`).join(", ")
        }`,
      );
    }
    const inp = session.inputs[0];
    const { layout, batch: fixedBatch } = checkInput(name, inp);
    const out = pickOutput(name, session.outputs, opts.output);
    const S = INCEPTION_SIZE, D = INCEPTION_DIM;
    const perRun = fixedBatch ?? batchSize;
    const preprocessing = inceptionPreprocessing(resize, input, out.name);
    return {
      name: `inception-v3-pool3-${await sha8(bytes)}`,
      dim: D,
      preprocessing,
      session,
      inputName: inp.name,
      outputName: out.name,
      layout,
      resize,
      input,
      async extract(images: RgbInput[]): Promise<Float32Array> {
        const feats = new Float32Array(images.length * D);
        for (let i = 0; i < images.length; i += perRun) {
          const part = images.slice(i, i + perRun);
          // A fixed batch size is padded with zeros; the padding's rows are dropped.
          const b = fixedBatch ?? part.length;
          const x = new Float32Array(b * 3 * S * S);
          part.forEach((img, j) => {
            fillInput(x, j, resizeRgb(img, { width: S, height: S, mode: resize }), layout, input);
          });
          const shape = layout === "NCHW" ? [b, 3, S, S] : [b, S, S, 3];
          const res = await session.run({ [inp.name]: { data: x, shape } }, [out.name]);
          const y = res[out.name];
          const dims = [...y.dims];
          const ok = y.type === "float32" && dims[0] === b && dims[1] === D &&
            (dims.length === 2 || (dims.length === 4 && dims[2] === 1 && dims[3] === 1));
          if (!ok) {
            throw new Error(
              `${name}: output "${out.name}" must be float32 [${b}, ${D}] (pool3 features) for ` +
                `a batch of ${b}, got ${y.type} [${dims.join(", ")}]`,
            );
          }
          feats.set((y.data as Float32Array).subarray(0, part.length * D), i * D);
        }
        return feats;
      },
      release: () => session.release(),
    };
  } catch (e) {
    await session.release();
    throw e;
  }
}
