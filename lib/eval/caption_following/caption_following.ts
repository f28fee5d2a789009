/**
 * Does the model follow captions? For single-object prompts ("a purple circle") generate images and
 * read the object's colour and shape back from the pixels with the shapes-world classifier.
 * Held-out (colour, shape) pairs never appeared together in training, so their scores measure
 * compositional generalisation; seen pairs are the reference.
 *
 * @example
 * ```ts
 * import { captionFollowing } from "./caption_following.ts";
 * import { loadRun } from "../../recipe/generate.ts";
 *
 * async function example() {
 *   const run = await loadRun("runs/default");
 *   const r = await captionFollowing(run, {
 *     pairs: "heldout",
 *     n: 8,
 *     guidance: 4,
 *     steps: 25,
 *     scheduler: "dpmpp_2m",
 *     seed: 0,
 *   });
 *   console.log(r.colorAccuracy, r.shapeAccuracy);
 * }
 * ```
 * @module
 */
import {
  classifyObject,
  COLOR_NAMES,
  type ColorName,
  HELDOUT_PAIRS,
  isHeldoutPair,
  SHAPE_NAMES,
  type ShapeName,
} from "../../data/mod.ts";
import type { RgbImage } from "../../plot/mod.ts";
import type { GenerateOptions, ImageGenerator } from "../../diffusion/generator.ts";
import { generate, type LoadedRun } from "../../recipe/generate.ts";

/** Options for {@link captionFollowing}. */
export interface CaptionFollowingOptions extends Omit<GenerateOptions, "prompts"> {
  /** Which pairs: the held-out ones, or (a sample of) seen ones. */
  pairs: "heldout" | "seen";
  /** Cap on the number of pairs (seen pairs are many). */
  maxPairs?: number;
}

/** Per-prompt and overall accuracies, plus the images for inspection. */
export interface CaptionFollowingResult {
  pairs: "heldout" | "seen";
  n: number;
  colorAccuracy: number;
  shapeAccuracy: number;
  bothAccuracy: number;
  perPrompt: { prompt: string; color: number; shape: number; n: number }[];
  images: RgbImage[];
  settings: { guidance: number; steps: number; scheduler: string; seed: number };
}

/** The prompt for a pair, in the plainest template the training captions use. */
export function pairPrompt(color: ColorName, shape: ShapeName): string {
  return `a ${color} ${shape}`;
}

/** Seen (training) pairs in a fixed order. */
export function seenPairs(): [ColorName, ShapeName][] {
  const out: [ColorName, ShapeName][] = [];
  for (const c of COLOR_NAMES) {
    for (const s of SHAPE_NAMES) if (!isHeldoutPair(c, s)) out.push([c, s]);
  }
  return out;
}

/**
 * Generate single-object images and score colour and shape from the pixels. `source` is a loaded
 * TensorFlow.js run or any {@link ImageGenerator} (e.g. onnxruntime on the run's export).
 */
export async function captionFollowing(
  source: LoadedRun | ImageGenerator,
  o: CaptionFollowingOptions,
): Promise<CaptionFollowingResult> {
  const gen: ImageGenerator = typeof source === "function" ? source : (g) => generate(source, g);
  let pairs: [ColorName, ShapeName][] = o.pairs === "heldout"
    ? HELDOUT_PAIRS.map(([c, s]) => [c, s])
    : seenPairs();
  // A spread-out subset: every k-th pair, so all colours and shapes appear.
  if (o.maxPairs && pairs.length > o.maxPairs) {
    const k = pairs.length / o.maxPairs;
    pairs = Array.from({ length: o.maxPairs }, (_, i) => pairs[Math.floor(i * k)]);
  }
  const prompts = pairs.map(([c, s]) => pairPrompt(c, s));
  const images = await gen({ ...o, prompts });
  let color = 0, shape = 0, both = 0;
  const perPrompt = prompts.map((prompt, p) => {
    let pc = 0, ps = 0;
    for (let k = 0; k < o.n; k++) {
      const im = images[p * o.n + k];
      const det = classifyObject(im.data, im.width, im.height);
      const okC = det?.color === pairs[p][0], okS = det?.shape === pairs[p][1];
      pc += okC ? 1 : 0;
      ps += okS ? 1 : 0;
      both += okC && okS ? 1 : 0;
    }
    color += pc;
    shape += ps;
    return { prompt, color: pc / o.n, shape: ps / o.n, n: o.n };
  });
  const total = prompts.length * o.n;
  return {
    pairs: o.pairs,
    n: total,
    colorAccuracy: color / total,
    shapeAccuracy: shape / total,
    bothAccuracy: both / total,
    perPrompt,
    images,
    settings: { guidance: o.guidance, steps: o.steps, scheduler: o.scheduler, seed: o.seed },
  };
}
