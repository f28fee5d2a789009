/**
 * Rejection sampling, the study's "best of N": for each prompt, generate `candidates` images,
 * score every one against the prompt with a {@link Scorer} (PickScore, CLIP score, an aesthetic
 * head...), and keep the highest-scoring one.
 *
 * Candidates of prompt `i` are one generator call, `{ prompts: [prompt], n: candidates, seed:
 * bestOfNSeed(seed, i) }`, so candidate `k` is image `k` of that call: with a deterministic
 * sampler, `deno task sample --prompt <prompt> --seed <recorded seed> --n <k + 1>` redraws it. The generator's own batching (`batchSize`) bounds UNet memory; scoring
 * goes in chunks of the same size, and only the winner of each prompt is kept unless
 * `keepCandidates` is set, so memory stays at one prompt's candidates however many prompts run.
 * Initial noise does not depend on batch composition, so with a deterministic sampler (ddim,
 * pndm, euler, dpmpp_2m) `batchSize` does not change candidates, scores or winners.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bestOfN } from "./best_of_n.ts";
 * import { loadScorer } from "./scorers.ts";
 * import { loadOnnxPipeline, txt2img } from "../onnx/sd_pipeline.ts";
 *
 * // A tiny 64 px SD folder and seeded PickScore-style towers (e.g. "exports/default" and
 * // "models/pickscore"); the study draws 32 candidates with 25 steps.
 * const cpu = { executionProviders: ["cpu"] };
 * const pipe = await loadOnnxPipeline("tests/fixtures/tiny_sd/fp32_scalar_t", cpu);
 * const spec = { kind: "pickscore", dir: "tests/fixtures/tiny_clip_towers" } as const;
 * const scorer = await loadScorer(spec, cpu);
 * const picks = await bestOfN({
 *   generator: (o) => txt2img(pipe, o),
 *   scorer,
 *   prompts: ["a red circle"],
 *   candidates: 3,
 *   guidance: 4,
 *   steps: 2,
 *   scheduler: "ddim",
 *   seed: 0,
 * });
 * assert.equal(picks[0].score, Math.max(...picks[0].scores)); // the best of the 3 candidates
 * await scorer.release();
 * await pipe.release();
 * ```
 * @module
 */
import type { ImageGenerator } from "../diffusion/generator.ts";
import type { RgbImage } from "../plot/mod.ts";
import { Rng } from "../util/rng.ts";

/**
 * Scores images against a prompt; higher is better. One finite value per image, in order.
 *
 * @example
 * ```ts
 * const brightness: Scorer = {
 *   name: "brightness",
 *   score: (_prompt, images) =>
 *     Promise.resolve(Float32Array.from(images, (im) => im.data.reduce((a, b) => a + b, 0))),
 * };
 * ```
 */
export interface Scorer {
  /** Short name recorded with the scores ("clip", "pickscore", "aesthetic"...). */
  name: string;
  /** One score per image. */
  score(prompt: string, images: readonly RgbImage[]): Promise<Float32Array>;
}

/**
 * Progress of {@link bestOfN}: `done` of `candidates` generated for prompt `prompt` (0-based).
 *
 * @example
 * ```ts
 * import type { BestOfNProgress } from "./best_of_n.ts";
 * import { Progress } from "../util/progress.ts";
 *
 * const bar = new Progress({ total: 2 * 8, label: "best-of-8" });
 * const onProgress = (p: BestOfNProgress) => bar.update(p.prompt * p.candidates + p.done);
 * ```
 */
export interface BestOfNProgress {
  /** Index of the prompt being sampled. */
  prompt: number;
  /** Number of prompts. */
  prompts: number;
  /** Candidates of this prompt generated so far. */
  done: number;
  /** Candidates per prompt. */
  candidates: number;
}

/**
 * Options of {@link bestOfN}.
 */
export interface BestOfNOptions {
  /** Where candidates come from: `generate` bound to a run, or ONNX `txt2img`. */
  generator: ImageGenerator;
  /** What ranks them. */
  scorer: Scorer;
  /** One winner per entry (repeat a prompt for several winners; each gets its own seed). */
  prompts: string[];
  /** Candidates per prompt (the N of best-of-N). */
  candidates: number;
  /** Classifier-free guidance scale. */
  guidance: number;
  /** Sampling steps. */
  steps: number;
  /** Sampler name: ddpm, ddim, pndm, euler, dpmpp_2m. */
  scheduler: string;
  /** Base seed; prompt `i` samples with `bestOfNSeed(seed, i)`. */
  seed: number;
  /** Images per UNet batch and per scorer call (default 32, the study's batch). */
  batchSize?: number;
  /** Return every candidate image, not only the winner (default false). */
  keepCandidates?: boolean;
  /** Called after each generated batch. */
  onProgress?: (p: BestOfNProgress) => void;
}

/**
 * The outcome for one prompt.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bestOfN, bestOfNSeed, type Scorer } from "./best_of_n.ts";
 * import type { ImageGenerator } from "../diffusion/generator.ts";
 *
 * // Candidate k is a flat image of value 10 * k; the scorer ranks by that value.
 * const flat = (v: number) => ({ data: new Uint8Array(12).fill(v), width: 2, height: 2 });
 * const generator: ImageGenerator = (o) =>
 *   Promise.resolve(Array.from({ length: o.n }, (_, k) => flat(10 * k)));
 * const scorer: Scorer = {
 *   name: "value",
 *   score: (_prompt, ims) => Promise.resolve(Float32Array.from(ims, (im) => im.data[0])),
 * };
 * const o = { guidance: 4, steps: 25, scheduler: "pndm", seed: 0 };
 * const [pick] = await bestOfN({ ...o, generator, scorer, prompts: ["a cat"], candidates: 3 });
 * assert.deepEqual([pick.prompt, pick.seed], ["a cat", bestOfNSeed(0, 0)]);
 * assert.deepEqual([pick.winner, pick.score, Array.from(pick.scores)], [2, 20, [0, 10, 20]]);
 * assert.equal(pick.candidates, undefined); // kept only with keepCandidates
 * ```
 */
export interface BestOfNPick {
  /** The prompt. */
  prompt: string;
  /** Seed its candidates were generated with (`bestOfNSeed(seed, index)`). */
  seed: number;
  /** Index of the winning candidate (the lowest on ties). */
  winner: number;
  /** The winning image. */
  image: RgbImage;
  /** The winner's score. */
  score: number;
  /** Score of every candidate. */
  scores: Float32Array;
  /** Every candidate, when `keepCandidates` was set. */
  candidates?: RgbImage[];
}

// Its own stream id (the kit's STREAM values are 1..7), so these seeds never coincide with the
// streams training or sampling draw from for the same base seed.
const BEST_OF_N_STREAM = 0xb0f;

/**
 * The generator seed of prompt `index` in {@link bestOfN}: a hash of `(seed, index)` in
 * `[0, 2^31)`, so neighbouring base seeds or prompts do not share candidates.
 *
 * @example
 * ```ts
 * const s = bestOfNSeed(0, 1);
 * // With a deterministic sampler, candidate k of prompt 1 is the last image of
 * // generate(run, { prompts: [p], n: k + 1, seed: s, ... }).
 * ```
 */
export function bestOfNSeed(seed: number, index: number): number {
  if (!Number.isInteger(seed)) throw new Error(`bestOfNSeed: seed must be an integer, got ${seed}`);
  if (!Number.isInteger(index) || index < 0) {
    throw new Error(`bestOfNSeed: index must be a non-negative integer, got ${index}`);
  }
  return Rng.stream(seed, [BEST_OF_N_STREAM, index]).nextU32() >>> 1;
}

/**
 * Index of the largest value, the lowest index on ties; throws on an empty list or a value that
 * is not finite (a NaN would otherwise silently never win, or always).
 *
 * @example
 * ```ts
 * argmaxFirst([1, 3, 3, 2]); // 1
 * ```
 */
export function argmaxFirst(values: ArrayLike<number>): number {
  if (values.length === 0) throw new Error("argmaxFirst: no values");
  let best = 0;
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw new Error(`argmaxFirst: value ${i} is ${values[i]}, not a finite number`);
    }
    if (values[i] > values[best]) best = i;
  }
  return best;
}

/** Scores of `images` in chunks of `bs`, checked: one finite value per image. */
async function scoreAll(
  scorer: Scorer,
  prompt: string,
  images: readonly RgbImage[],
  bs: number,
): Promise<Float32Array> {
  const scores = new Float32Array(images.length);
  for (let i = 0; i < images.length; i += bs) {
    const part = images.slice(i, i + bs);
    const s = await scorer.score(prompt, part);
    if (s.length !== part.length) {
      throw new Error(
        `bestOfN: scorer "${scorer.name}" gave ${s.length} scores for ${part.length} images`,
      );
    }
    for (let k = 0; k < s.length; k++) {
      if (!Number.isFinite(s[k])) {
        throw new Error(
          `bestOfN: scorer "${scorer.name}" gave ${s[k]} for candidate ${i + k} of "${prompt}"`,
        );
      }
    }
    scores.set(s, i);
  }
  return scores;
}

const posInt = (v: unknown): v is number => Number.isInteger(v) && (v as number) > 0;

/**
 * Generate `candidates` images per prompt and keep the best by `scorer` (see the module doc).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bestOfN, type Scorer } from "./best_of_n.ts";
 * import type { ImageGenerator } from "../diffusion/generator.ts";
 *
 * // Candidate k is a flat image of value 10 * k; the scorer ranks by that value.
 * const flat = (v: number) => ({ data: new Uint8Array(12).fill(v), width: 2, height: 2 });
 * const generator: ImageGenerator = (o) =>
 *   Promise.resolve(Array.from({ length: o.n }, (_, k) => flat(10 * k)));
 * const scorer: Scorer = {
 *   name: "value",
 *   score: (_prompt, ims) => Promise.resolve(Float32Array.from(ims, (im) => im.data[0])),
 * };
 * const o = { guidance: 4, steps: 25, scheduler: "pndm", seed: 0 };
 * const picks = await bestOfN({ ...o, generator, scorer, prompts: ["a", "b"], candidates: 4 });
 * assert.deepEqual(picks.map((p) => [p.winner, p.score]), [[3, 30], [3, 30]]);
 * ```
 */
export async function bestOfN(o: BestOfNOptions): Promise<BestOfNPick[]> {
  if (!Array.isArray(o.prompts) || o.prompts.length === 0) {
    throw new Error("bestOfN: prompts must be a non-empty array of strings");
  }
  if (!posInt(o.candidates)) {
    throw new Error(`bestOfN: candidates must be a positive integer, got ${o.candidates}`);
  }
  const bs = o.batchSize ?? 32;
  if (!posInt(bs)) throw new Error(`bestOfN: batchSize must be a positive integer, got ${bs}`);
  if (!Number.isInteger(o.seed)) throw new Error(`bestOfN: seed must be an integer, got ${o.seed}`);
  const picks: BestOfNPick[] = [];
  for (let i = 0; i < o.prompts.length; i++) {
    const prompt = o.prompts[i];
    const seed = bestOfNSeed(o.seed, i);
    const images = await o.generator({
      prompts: [prompt],
      n: o.candidates,
      guidance: o.guidance,
      steps: o.steps,
      scheduler: o.scheduler,
      seed,
      batchSize: bs,
      onProgress: (done) =>
        o.onProgress?.({
          prompt: i,
          prompts: o.prompts.length,
          done,
          candidates: o.candidates,
        }),
    });
    if (images.length !== o.candidates) {
      throw new Error(
        `bestOfN: the generator gave ${images.length} images for ${o.candidates} candidates`,
      );
    }
    const scores = await scoreAll(o.scorer, prompt, images, bs);
    const winner = argmaxFirst(scores);
    picks.push({
      prompt,
      seed,
      winner,
      image: images[winner],
      score: scores[winner],
      scores,
      ...(o.keepCandidates ? { candidates: images } : {}),
    });
  }
  return picks;
}
