/**
 * Preference scoring for rejection sampling (the study's best-of-N), behind small interfaces:
 *
 * - PickScore-style ({@link preferenceModel}): CLIP towers fine-tuned on human preferences plus
 *   the checkpoint's logit scale; `score(prompt, images)` is PickScore's definition,
 *   `logitScale * cos(text_embedding, image_embedding)` per image, and `bestOfN` returns the
 *   highest-scoring index with all scores and their softmax over the candidates (PickScore's
 *   "probabilities"). PickScore's checkpoint, like OpenAI CLIP's, holds `ln 100` as its learnt
 *   logit scale, hence the default 100; pass the value from the checkpoint if it differs.
 * - Aesthetic-style ({@link aestheticScorer}): an image embedding (L2-normalised by default, as
 *   the LAION aesthetic predictor takes it) fed through an MLP head exported as ONNX
 *   (`[batch, dim]` -> `[batch, 1]` or `[batch]`), one scalar per image.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { preferenceModel } from "./preference.ts";
 * import { loadClipTowers } from "./clip_towers.ts";
 *
 * // Tiny seeded towers; a PickScore export ("pickscore/text_model.onnx", ...) loads the same way.
 * const dir = "tests/fixtures/tiny_clip_towers";
 * const clip = await loadClipTowers({
 *   textModel: `${dir}/text_model.onnx`,
 *   imageModel: `${dir}/vision_model.onnx`,
 *   tokenizerDir: dir,
 *   executionProviders: ["cpu"],
 * });
 * const px = (r: number, b: number) => new Uint8Array(768).map((_, k) => [r, 0, b][k % 3]);
 * const [blue, red] = [px(0, 255), px(255, 0)].map((data) => ({ data, width: 16, height: 16 }));
 * const pick = preferenceModel(clip);
 * const { index, scores, probs } = await pick.bestOfN("a red circle", [blue, red]);
 * assert.deepEqual([index, scores.map(Math.round)], [1, [37, 49]]);
 * assert.ok(Math.abs(probs[0] + probs[1] - 1) < 1e-12);
 * await pick.release();
 * ```
 * @module
 */
import type { RgbImage } from "../plot/mod.ts";
import type { OnnxSession } from "../onnx/session.ts";
import {
  type ClipTowers,
  l2NormalizeRows,
  loadClipTowers,
  type LoadClipTowersOptions,
} from "./clip_towers.ts";
import {
  batchSteps,
  fixedDim,
  misfitInput,
  misfitOutput,
  type ModelSessionOptions,
  type ModelSource,
  openModel,
} from "../onnx/io_check.ts";

/**
 * PickScore's (and OpenAI CLIP's) logit scale: `exp(ln 100)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PICKSCORE_LOGIT_SCALE, scaledCosines } from "./preference.ts";
 *
 * // The checkpoint holds ln 100; scores are cosines times its exponential.
 * const [a, b] = [new Float32Array([0, 1]), new Float32Array([0, 2])];
 * assert.deepEqual(scaledCosines(a, b, PICKSCORE_LOGIT_SCALE), [100]);
 * ```
 */
export const PICKSCORE_LOGIT_SCALE = 100;

/** Result of {@link PreferenceModel.bestOfN}. */
export interface BestOfN {
  /** Index of the best image (the first one on ties). */
  index: number;
  /** Score of every image. */
  scores: number[];
  /** Softmax of the scores over the candidates. */
  probs: number[];
}

/** A preference model. */
export interface PreferenceModel {
  /** The towers scored with. */
  towers: ClipTowers;
  /** Multiplier of the cosine. */
  logitScale: number;
  /** `logitScale * cos(text, image)` for each image. */
  score(prompt: string, images: readonly RgbImage[]): Promise<number[]>;
  /** The best image for `prompt` with all scores. */
  bestOfN(prompt: string, images: readonly RgbImage[]): Promise<BestOfN>;
  /** Release the towers. */
  release(): Promise<void>;
}

/**
 * `scale * cos(a_i, b)` for every row `a_i` of `[n, dim]` against one vector `b`, in float64.
 *
 * @example
 * ```ts
 * scaledCosines(new Float32Array([1, 0, 1, 1]), new Float32Array([1, 0]), 100); // [100, 70.71...]
 * ```
 */
export function scaledCosines(rows: Float32Array, b: Float32Array, scale: number): number[] {
  const d = b.length;
  if (d === 0 || rows.length % d !== 0) {
    throw new Error(`scaledCosines: ${rows.length} values are not rows of width ${d}`);
  }
  let nb = 0;
  for (let j = 0; j < d; j++) nb += b[j] * b[j];
  const out: number[] = [];
  for (let r = 0; r < rows.length; r += d) {
    let dot = 0, na = 0;
    for (let j = 0; j < d; j++) {
      dot += rows[r + j] * b[j];
      na += rows[r + j] * rows[r + j];
    }
    if (na === 0 || nb === 0) {
      throw new Error(`scaledCosines: row ${r / d} or the query is a zero vector`);
    }
    out.push(scale * dot / Math.sqrt(na * nb));
  }
  return out;
}

/**
 * Softmax of scores (shifted by the maximum for stability).
 *
 * @example
 * ```ts
 * softmaxScores([0, Math.log(3)]); // [0.25, 0.75]
 * ```
 */
export function softmaxScores(scores: readonly number[]): number[] {
  if (scores.length === 0) return [];
  const m = Math.max(...scores);
  const e = scores.map((s) => Math.exp(s - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

/**
 * A PickScore-style preference model over loaded CLIP towers; the logit scale comes from
 * `opts.logitScale`, then the towers', then {@link PICKSCORE_LOGIT_SCALE}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { preferenceModel } from "./preference.ts";
 * import { loadClipTowers } from "./clip_towers.ts";
 *
 * const dir = "tests/fixtures/tiny_clip_towers"; // tiny seeded towers
 * const pick = preferenceModel(
 *   await loadClipTowers({
 *     textModel: `${dir}/text_model.onnx`,
 *     imageModel: `${dir}/vision_model.onnx`,
 *     tokenizerDir: dir,
 *     executionProviders: ["cpu"],
 *   }),
 * );
 * const red = { data: new Uint8Array(768).map((_, k) => k % 3 ? 0 : 255), width: 16, height: 16 };
 * const scores = await pick.score("a red circle", [red]); // 100 * cos(text, image)
 * assert.deepEqual([pick.logitScale, Math.round(scores[0])], [100, 49]);
 * await pick.release();
 * ```
 */
export function preferenceModel(
  towers: ClipTowers,
  opts: { logitScale?: number } = {},
): PreferenceModel {
  const logitScale = opts.logitScale ?? towers.logitScale ?? PICKSCORE_LOGIT_SCALE;
  if (!(logitScale > 0 && Number.isFinite(logitScale))) {
    throw new Error(`preferenceModel: logitScale must be a positive number, got ${logitScale}`);
  }
  const score = async (prompt: string, images: readonly RgbImage[]): Promise<number[]> => {
    if (typeof prompt !== "string") {
      throw new Error("preferenceModel.score: prompt must be a string");
    }
    if (images.length === 0) return [];
    const t = await towers.encodeText([prompt]);
    const im = await towers.encodeImages(images);
    return scaledCosines(im, t, logitScale);
  };
  return {
    towers,
    logitScale,
    score,
    async bestOfN(prompt: string, images: readonly RgbImage[]): Promise<BestOfN> {
      if (images.length === 0) throw new Error("preferenceModel.bestOfN: no images given");
      const scores = await score(prompt, images);
      let index = 0;
      for (let i = 1; i < scores.length; i++) if (scores[i] > scores[index]) index = i;
      return { index, scores, probs: softmaxScores(scores) };
    },
    release: () => towers.release(),
  };
}

/** Options of {@link aestheticScorer}. */
export interface AestheticScorerOptions extends ModelSessionOptions {
  /** The MLP head: `[batch, dim]` float32 -> `[batch, 1]` or `[batch]`. */
  head: ModelSource;
  /** L2-normalise the image embedding before the head (default true, as LAION's predictor). */
  normalize?: boolean;
  /** Embeddings per head call when its batch dimension is free (default 64). */
  batchSize?: number;
}

/** An aesthetic-style scorer. */
export interface AestheticScorer {
  /** The head session. */
  head: OnnxSession;
  /** One score per image. */
  score(images: readonly RgbImage[]): Promise<number[]>;
  /** Release the head (the towers stay open; they belong to the caller). */
  release(): Promise<void>;
}

/**
 * An aesthetic-style scorer: CLIP image embedding -> ONNX MLP head -> scalar per image.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { aestheticScorer } from "./preference.ts";
 * import { loadClipTowers } from "./clip_towers.ts";
 *
 * // Tiny seeded towers and head; LAION's is e.g. "laion_aesthetic_vit_l14.onnx" on ViT-L/14.
 * const dir = "tests/fixtures/tiny_clip_towers";
 * const cpu = { executionProviders: ["cpu"] };
 * const clip = await loadClipTowers({
 *   ...cpu,
 *   textModel: `${dir}/text_model.onnx`,
 *   imageModel: `${dir}/vision_model.onnx`,
 *   tokenizerDir: dir,
 * });
 * const aes = await aestheticScorer(clip, { ...cpu, head: `${dir}/aesthetic_head.onnx` });
 * const gray = { data: new Uint8Array(768).fill(128), width: 16, height: 16 };
 * const s = await aes.score([gray, gray]);
 * assert.deepEqual(s.map((v) => v.toFixed(2)), ["5.80", "5.80"]);
 * await aes.release();
 * await clip.release();
 * ```
 */
export async function aestheticScorer(
  towers: ClipTowers,
  opts: AestheticScorerOptions,
): Promise<AestheticScorer> {
  const { session: head, owned } = await openModel(opts.head, opts, "aesthetic head");
  try {
    if (head.inputs.length !== 1) {
      throw new Error(
        `${head.name}: an aesthetic head takes one input float32 [batch, ${towers.dim}], ` +
          `it has ${head.inputs.length}`,
      );
    }
    const inp = head.inputs[0];
    const want = `float32 [batch, ${towers.dim}]`;
    if (inp.dtype !== "float32") misfitInput(head, inp, want, "CLIP image embeddings");
    if (
      inp.shape !== null &&
      (inp.shape.length !== 2 || (fixedDim(inp.shape[1]) ?? towers.dim) !== towers.dim)
    ) {
      misfitInput(head, inp, want, `the ${towers.dim}-d embeddings of ${towers.image.name}`);
    }
    const out = head.outputs[0];
    if (out.shape !== null && !(out.shape.length === 1 || out.shape.length === 2)) {
      misfitOutput(head, out, "[batch, 1] or [batch]", "one score per image");
    }
    const fixedBatch = fixedDim(inp.shape?.[0]);
    const maxBatch = opts.batchSize ?? 64;
    const normalize = opts.normalize ?? true;
    return {
      head,
      async score(images: readonly RgbImage[]): Promise<number[]> {
        let e = await towers.encodeImages(images);
        if (normalize) e = l2NormalizeRows(e, towers.dim);
        const d = towers.dim;
        const scores: number[] = [];
        for (const st of batchSteps(images.length, { fixedBatch, maxBatch })) {
          const x = new Float32Array(st.feedN * d);
          x.set(e.subarray(st.start * d, (st.start + st.n) * d));
          const y = (await head.run({ [inp.name]: { data: x, shape: [st.feedN, d] } }, [out.name]))[
            out.name
          ];
          const ok = (y.dims.length === 1 && y.dims[0] === st.feedN) ||
            (y.dims.length === 2 && y.dims[0] === st.feedN && y.dims[1] === 1);
          if (!ok) {
            throw new Error(
              `${head.name}: output "${out.name}" came out [${y.dims.join(", ")}], expected ` +
                `[${st.feedN}, 1] or [${st.feedN}] (one score per image)`,
            );
          }
          const v = y.data as Float32Array;
          for (let i = 0; i < st.n; i++) scores.push(v[i]);
        }
        return scores;
      },
      release: async () => {
        if (owned) await head.release();
      },
    };
  } catch (e) {
    if (owned) await head.release();
    throw e;
  }
}

/**
 * Load CLIP towers (see `loadClipTowers`) and wrap them as a PickScore-style preference model.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadPreferenceModel } from "./preference.ts";
 *
 * const dir = "tests/fixtures/tiny_clip_towers"; // e.g. a PickScore export's folder
 * const pick = await loadPreferenceModel({
 *   textModel: `${dir}/text_model.onnx`,
 *   imageModel: `${dir}/vision_model.onnx`,
 *   tokenizerDir: dir,
 *   executionProviders: ["cpu"],
 * });
 * assert.equal(pick.logitScale, 100);
 * await pick.release();
 * ```
 */
export async function loadPreferenceModel(opts: LoadClipTowersOptions): Promise<PreferenceModel> {
  const towers = await loadClipTowers(opts);
  try {
    return preferenceModel(towers, { logitScale: opts.logitScale });
  } catch (e) {
    await towers.release();
    throw e;
  }
}
