/**
 * Feature extractors for FID/KID (the interface every one implements), the kit's offline default
 * (the image tower of the run's own CLIP), and ONNX CLIP towers (lib/inference) as an extractor
 * with a text tower for CLIP scores. Distances in the kit CLIP's space are "Frechet distance in
 * CLIP space (not Inception FID)": the study's CLIP-FID curves have the same shape, but the
 * numbers are not comparable with published Inception FIDs, and every report says so
 * ({@link frechetLabel}).
 *
 * The Inception network plugs in through `inception_onnx.ts`:
 * `inceptionOnnxExtractor` returns this same {@link FeatureExtractor} (onnxruntime-node, 2048-d
 * pool3 features, name `inception-v3-pool3-<sha256[:8] of the model file>`, clean-fid's resize to
 * 299x299 recorded in its preprocessing string). The statistics cache, FID, KID and bootstrap code
 * take any extractor; {@link frechetLabel} names that space "FID".
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import { kitClipImageExtractor } from "./feature_extractors.ts";
 * import { CLIP_PRESETS, initClip } from "../../models/clip.ts";
 * import { Rng } from "../../util/rng.ts";
 *
 * // A tiny seeded CLIP; a trained run's is `(await loadRun("runs/default")).clip`.
 * const clip = { params: initClip(CLIP_PRESETS.tiny, Rng.stream(0)), config: CLIP_PRESETS.tiny };
 * const ex = await kitClipImageExtractor(clip, { runName: "default" });
 * const img = { data: new Uint8Array(32 * 32 * 3).fill(200), width: 32, height: 32 };
 * const feats = await ex.extract([img, img]); // Float32Array, images.length x ex.dim
 * assert.equal(feats.length, 2 * ex.dim);
 * assert.deepEqual(feats.subarray(0, ex.dim), feats.subarray(ex.dim));
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import { type ClipConfig, encodeImage, encodeText } from "../../models/clip.ts";
import type { Params } from "../../nn/mod.ts";
import { loadRun } from "../../recipe/generate.ts";
import type { ClipTowers } from "../../inference/clip_towers.ts";
import { createHash } from "node:crypto";

/** An RGB image: `width * height * 3` bytes, row-major. */
export interface RgbInput {
  data: Uint8Array;
  width: number;
  height: number;
}

/** Maps images to feature vectors; `name` + `preprocessing` identify the feature space. */
export interface FeatureExtractor {
  /** Stable identifier of the network and weights (goes into cached statistics). */
  name: string;
  /** Feature dimension. */
  dim: number;
  /** Human-readable description of the image preprocessing (goes into cached statistics). */
  preprocessing: string;
  /** Features of `images`, row-major `images.length x dim`. */
  extract(images: RgbInput[]): Promise<Float32Array>;
}

/**
 * What to call a Frechet distance computed with an extractor, for every report and plot.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { frechetLabel } from "./feature_extractors.ts";
 *
 * assert.equal(frechetLabel("kit-clip-image-default-1a2b3c4d"), "Frechet distance in CLIP space (not Inception FID)");
 * assert.equal(frechetLabel("inception-v3-pool3-1a2b3c4d"), "FID (Inception-v3 pool3 features)");
 * ```
 */
export function frechetLabel(extractorName: string): string {
  if (extractorName.startsWith("kit-clip-image")) {
    return "Frechet distance in CLIP space (not Inception FID)";
  }
  if (extractorName.startsWith("inception-v3")) return "FID (Inception-v3 pool3 features)";
  return `Frechet distance in ${extractorName} feature space (not Inception FID)`;
}

/**
 * Bilinear resize of an RGB image to `size x size` floats in [-1, 1] (half-pixel centres, no
 * antialiasing); a same-size image is only rescaled.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { toClipInput } from "./feature_extractors.ts";
 *
 * const data = new Uint8Array(32 * 32 * 3);
 * const x = toClipInput({ data, width: 32, height: 32 }, 16);
 * assert.equal(x.length, 16 * 16 * 3);
 * ```
 */
export function toClipInput(img: RgbInput, size: number): Float32Array {
  const { width: w, height: h, data } = img;
  if (!(w >= 1 && h >= 1) || data.length !== w * h * 3) {
    throw new Error(
      `feature extractor: image data has ${data?.length} bytes, expected ${w}x${h}x3 RGB`,
    );
  }
  const out = new Float32Array(size * size * 3);
  if (w === size && h === size) {
    for (let i = 0; i < out.length; i++) out[i] = data[i] / 127.5 - 1;
    return out;
  }
  const sy = h / size, sx = w / size;
  for (let y = 0; y < size; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), h - 1);
    const y0 = Math.floor(fy), y1 = Math.min(y0 + 1, h - 1), wy = fy - y0;
    for (let x = 0; x < size; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), w - 1);
      const x0 = Math.floor(fx), x1 = Math.min(x0 + 1, w - 1), wx = fx - x0;
      for (let c = 0; c < 3; c++) {
        const v =
          (1 - wy) * ((1 - wx) * data[(y0 * w + x0) * 3 + c] + wx * data[(y0 * w + x1) * 3 + c]) +
          wy * ((1 - wx) * data[(y1 * w + x0) * 3 + c] + wx * data[(y1 * w + x1) * 3 + c]);
        out[(y * size + x) * 3 + c] = v / 127.5 - 1;
      }
    }
  }
  return out;
}

/** A trained kit CLIP (what `loadRun(dir).clip` holds; the tokenizer is optional here). */
export interface KitClip {
  params: Params;
  config: ClipConfig;
  tokenizer?: { encodeBatch(texts: readonly string[]): Int32Array; contextLength: number };
}

/** Options of {@link kitClipImageExtractor}. */
export interface KitClipExtractorOptions {
  /** Run name used in the extractor name (default "run"). */
  runName?: string;
  /** Images per forward pass (default 64). */
  batchSize?: number;
}

/** The kit CLIP as a feature extractor, plus its text tower for CLIP scores. */
export interface KitClipExtractor extends FeatureExtractor {
  /** Text embeddings (`texts.length x dim`, unnormalised); needs the tokenizer. */
  embedTexts(texts: string[]): Promise<Float32Array>;
}

async function weightsDigest(p: Params): Promise<string> {
  // Hash names, shapes and float32 values so retrained or other weights get another name.
  const names = Object.keys(p).sort();
  const parts: Uint8Array[] = [];
  for (const k of names) {
    parts.push(new TextEncoder().encode(`${k}:${p[k].shape.join("x")};`));
    const v = await p[k].data<"float32">();
    parts.push(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  }
  const total = parts.reduce((s, x) => s + x.length, 0);
  const all = new Uint8Array(total);
  let o = 0;
  for (const x of parts) {
    all.set(x, o);
    o += x.length;
  }
  const h = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return Array.from(h.subarray(0, 4), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The kit CLIP's image tower as a {@link FeatureExtractor} named
 * `kit-clip-image-<run>-<sha256[:8] of the weights>` (unnormalised `embedDim` features). Runs on
 * the active TensorFlow.js backend.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import { kitClipImageExtractor } from "./feature_extractors.ts";
 * import { CLIP_PRESETS, initClip } from "../../models/clip.ts";
 * import { Rng } from "../../util/rng.ts";
 *
 * const clip = { params: initClip(CLIP_PRESETS.tiny, Rng.stream(0)), config: CLIP_PRESETS.tiny };
 * const ex = await kitClipImageExtractor(clip, { runName: "default" });
 * assert.match(ex.name, /^kit-clip-image-default-[0-9a-f]{8}$/); // the hash names the weights
 * assert.equal(ex.dim, CLIP_PRESETS.tiny.embedDim);
 * await assert.rejects(ex.embedTexts(["a cat"]), /needs the CLIP tokenizer/);
 * ```
 */
export async function kitClipImageExtractor(
  clip: KitClip,
  opts: KitClipExtractorOptions = {},
): Promise<KitClipExtractor> {
  const cfg = clip.config, s = cfg.imageSize, dim = cfg.embedDim;
  const batch = opts.batchSize ?? 64;
  const name = `kit-clip-image-${opts.runName ?? "run"}-${await weightsDigest(clip.params)}`;
  const preprocessing = `RGB uint8 -> bilinear resize to ${s}x${s} when the size differs ` +
    `(half-pixel centres, no antialias) -> x/127.5-1 -> kit CLIP image tower, ` +
    `unnormalised ${dim}-d embedding`;
  return {
    name,
    dim,
    preprocessing,
    async extract(images: RgbInput[]): Promise<Float32Array> {
      const out = new Float32Array(images.length * dim);
      for (let i = 0; i < images.length; i += batch) {
        const part = images.slice(i, i + batch);
        const x = new Float32Array(part.length * s * s * 3);
        part.forEach((img, j) => x.set(toClipInput(img, s), j * s * s * 3));
        const e = tf.tidy(() =>
          encodeImage(clip.params, cfg, tf.tensor4d(x, [part.length, s, s, 3]))
        );
        out.set(await e.data<"float32">(), i * dim);
        e.dispose();
      }
      return out;
    },
    async embedTexts(texts: string[]): Promise<Float32Array> {
      const tok = clip.tokenizer;
      if (!tok) {
        throw new Error(`${name}: embedTexts needs the CLIP tokenizer (pass clip.tokenizer)`);
      }
      const t = cfg.contextLength;
      const out = new Float32Array(texts.length * dim);
      for (let i = 0; i < texts.length; i += batch) {
        const part = texts.slice(i, i + batch);
        const e = tf.tidy(() => {
          const ids = tf.tensor2d(tok.encodeBatch(part), [part.length, t], "int32");
          const enc = encodeText(clip.params, cfg, ids);
          return enc.embeds;
        });
        out.set(await e.data<"float32">(), i * dim);
        e.dispose();
      }
      return out;
    },
  };
}

/**
 * Load a trained run folder and return its CLIP image extractor (run name = folder name).
 *
 * @example
 * ```ts
 * async function example() {
 *   const ex = await kitClipImageExtractorFromRun("runs/default");
 * }
 * ```
 */
export async function kitClipImageExtractorFromRun(
  dir: string,
  opts: Omit<KitClipExtractorOptions, "runName"> = {},
): Promise<KitClipExtractor> {
  const run = await loadRun(dir);
  const runName = dir.replace(/\/+$/, "").split("/").pop() || "run";
  return kitClipImageExtractor(run.clip, { ...opts, runName });
}

async function digest(src: string | Uint8Array): Promise<string> {
  const h = createHash("sha256");
  if (typeof src === "string") {
    // Streamed: a ViT-L tower is over a gigabyte.
    const f = await Deno.open(src);
    try {
      for await (const chunk of f.readable) h.update(chunk);
    } catch (e) {
      throw new Error(`${src}: cannot read (${(e as Error).message})`);
    }
  } else h.update(src);
  return h.digest("hex").slice(0, 8);
}

/** A {@link FeatureExtractor} over ONNX CLIP towers' image tower, plus their text tower. */
export interface ClipTowersExtractor extends FeatureExtractor {
  /** Text embeddings, row-major `[texts.length, dim]`. */
  embedTexts(texts: string[]): Promise<Float32Array>;
}

/**
 * Use ONNX CLIP towers (lib/inference) wherever the evaluation takes a feature extractor: named
 * `onnx-clip-image-<sha256[:8] of the image model>` (or `name`), features unnormalised.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clipTowersExtractor } from "./feature_extractors.ts";
 * import { loadClipTowers } from "../../inference/clip_towers.ts";
 *
 * const dir = "tests/fixtures/tiny_clip_towers"; // tiny seeded 3-d towers
 * const clip = await loadClipTowers({
 *   textModel: `${dir}/text_model.onnx`,
 *   imageModel: `${dir}/vision_model.onnx`,
 *   tokenizerDir: dir,
 *   executionProviders: ["cpu"],
 * });
 * const ex = await clipTowersExtractor(clip);
 * const img = { data: new Uint8Array(16 * 16 * 3).fill(128), width: 16, height: 16 };
 * const feats = await ex.extract([img, img]); // images.length x ex.dim
 * assert.deepEqual([ex.dim, feats.length], [3, 6]);
 * assert.match(ex.name, /^onnx-clip-image-[0-9a-f]{8}$/);
 * await clip.release();
 * ```
 */
export async function clipTowersExtractor(
  towers: ClipTowers,
  opts: { name?: string } = {},
): Promise<ClipTowersExtractor> {
  let name = opts.name;
  if (name === undefined) {
    const src = towers.sources.image;
    if (src === null) {
      throw new Error(
        "clipTowersExtractor: the image tower was given as a session; pass name to identify it",
      );
    }
    name = `onnx-clip-image-${await digest(src)}`;
  }
  return {
    name,
    dim: towers.dim,
    preprocessing:
      `${towers.preprocessing} -> ${towers.image.name} output "${towers.outputs.image}", unnormalised ${towers.dim}-d embedding`,
    extract: (images: RgbInput[]) => towers.encodeImages(images),
    embedTexts: (texts: string[]) => towers.encodeText(texts),
  };
}
