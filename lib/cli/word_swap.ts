/**
 * `deno task word-swap`: does a trained run use the shape (or colour) word of its captions?
 * Renders single-object shapes-world images of the seen (train) or held-out colour/shape pairs,
 * captions them "a {colour} {shape}", and reports the UNet's loss with those captions against the
 * same captions with the word swapped (`wordSwapLoss`, lib/eval/caption_following/word_swap.ts),
 * per timestep and on average. A mean delta near 0 means the model ignores the word.
 *
 * @example
 * ```sh
 * deno task word-swap --run runs/default --split heldout
 * deno task word-swap --run runs/default --word colour --json swap.json
 * ```
 * @module
 */
import { type FlagSpec, helpText, parseFlags, runMain, SEED_RANGE, UsageError } from "./args.ts";
import { outputFile } from "./path_checks.ts";
import { BACKEND_FLAG } from "./backend_flag.ts";
import { initBackendAndConvGrad } from "../train/init_backend.ts";
import { setUpFastPath } from "../setup/fast_path.ts";
import { loadRun } from "../recipe/generate.ts";
import { wordSwapLoss } from "../eval/caption_following/word_swap.ts";
import {
  COLOR_NAMES,
  type ColorName,
  SHAPE_NAMES,
  type ShapeName,
  shapesWorldSample,
} from "../data/mod.ts";
import { pairPrompt } from "../eval/caption_following/caption_following.ts";
import { writeJsonAtomic } from "../util/atomic.ts";

const SPEC = {
  run: { type: "string", required: true, help: "run folder written by deno task train" },
  checkpoint: {
    type: "int",
    min: 1,
    max: 1e9,
    help: "probe this UNet checkpoint step (EMA weights)",
  },
  split: {
    type: "choice",
    choices: ["train", "heldout"],
    default: "train",
    help: "colour/shape pairs of the images: seen in training, or the held-out ones",
  },
  word: { type: "choice", choices: ["shape", "colour"], default: "shape", help: "word to swap" },
  n: { type: "int", default: 96, min: 1, max: 1_000_000, help: "images" },
  timesteps: {
    type: "string",
    default: "200,300,400,500,600",
    help: "comma-separated timesteps to probe",
  },
  seed: { type: "int", default: 0, ...SEED_RANGE, help: "seed of the images and the noise" },
  json: {
    type: "string",
    check: outputFile,
    help: "also write the rows and settings to this JSON file",
  },
  backend: BACKEND_FLAG,
} satisfies FlagSpec;

/**
 * Images and captions of `n` single-object scenes, and the captions with `word` replaced by
 * another name (cycling through the others, so every alternative appears).
 */
export function swapProbe(
  n: number,
  o: { seed: number; size: number; split: "train" | "heldout"; word: "shape" | "colour" },
): { images: Uint8Array[]; captions: string[]; swapped: string[] } {
  const images: Uint8Array[] = [], captions: string[] = [], swapped: string[] = [];
  for (let i = 0; i < n; i++) {
    const s = shapesWorldSample(i, {
      seed: o.seed,
      size: o.size,
      split: o.split,
      singleObjectOnly: true,
    });
    const obj = s.meta.objects[0];
    const names: readonly string[] = o.word === "shape" ? SHAPE_NAMES : COLOR_NAMES;
    const own = o.word === "shape" ? obj.shape : obj.color;
    const other = names[(names.indexOf(own) + 1 + (i % (names.length - 1))) % names.length];
    images.push(s.image);
    captions.push(pairPrompt(obj.color, obj.shape));
    swapped.push(
      o.word === "shape"
        ? pairPrompt(obj.color, other as ShapeName)
        : pairPrompt(other as ColorName, obj.shape),
    );
  }
  return { images, captions, swapped };
}

if (import.meta.main) {
  await runMain(async () => {
    const f = parseFlags(Deno.args, SPEC, "word-swap");
    if (f.help) {
      console.log(helpText("deno task word-swap", "does a run use a caption word?", SPEC));
      return;
    }
    const timesteps = f.timesteps.split(",").map((v) => Number(v.trim()));
    if (timesteps.some((t) => !Number.isInteger(t) || t < 0)) {
      throw new UsageError(
        `word-swap: --timesteps must be comma-separated integers >= 0, got "${f.timesteps}"`,
      );
    }
    await setUpFastPath(f.backend);
    await initBackendAndConvGrad(f.backend, { quiet: true });
    const run = await loadRun(f.run, { checkpoint: f.checkpoint });
    const T = run.schedule.numTrainTimesteps;
    if (timesteps.some((t) => t >= T)) {
      throw new UsageError(
        `word-swap: --timesteps must be comma-separated integers from 0 to ${T - 1} (the run's ` +
          `training timesteps), got "${f.timesteps}"`,
      );
    }
    const probe = swapProbe(f.n, {
      seed: f.seed,
      size: run.imageSize,
      split: f.split as "train" | "heldout",
      word: f.word as "shape" | "colour",
    });
    const rows = await wordSwapLoss(run, { ...probe, timesteps, seed: f.seed });
    console.log("t\tloss\tswapped\tdelta");
    for (const r of rows) {
      console.log(
        `${r.t}\t${r.loss.toFixed(5)}\t${r.swappedLoss.toFixed(5)}\t${r.delta.toFixed(5)}`,
      );
    }
    const mean = rows.reduce((a, r) => a + r.delta, 0) / rows.length;
    console.log(`mean delta (${f.word} swapped, ${f.split} pairs, n=${f.n}): ${mean.toFixed(5)}`);
    if (f.json) {
      await writeJsonAtomic(f.json, {
        run: f.run,
        checkpoint: f.checkpoint ?? null,
        split: f.split,
        word: f.word,
        n: f.n,
        seed: f.seed,
        textContext: run.textContext,
        rows,
        meanDelta: mean,
      });
    }
  });
}
