/**
 * What a long command is about to do, said before it starts: images, UNet batches, files and
 * their size. `deno task sample` and `deno task eval` print one plan line first, so a job ten
 * times larger than meant (`--n 100000`) is visible in its first second rather than after
 * minutes, and `sample` refuses a grid that could not fit in this machine's memory.
 *
 * @example
 * ```ts
 * const plan = samplePlan({
 *   prompts: 2, n: 8, bestOf: 1, batchSize: 32, steps: 25, imageSize: 32,
 * });
 * console.log(formatSamplePlan(plan, "grid.png"));
 * // sample plan: 2 prompts x 8 = 16 images in 1 batch of up to 32 (25 steps each); writes
 * // grid.png (274x70 px, at most 0.059 MB)
 * ```
 * @module
 */
import { UsageError } from "./args.ts";

/** The padding between grid cells, as `imageGrid` is called by the sample command. */
export const GRID_PAD = 2;

/** Inputs of {@link samplePlan}: the sample command's flags and the run's image size. */
export interface SamplePlanInput {
  /** Grid rows. */
  prompts: number;
  /** Grid columns (images per prompt). */
  n: number;
  /** Candidates per cell (1 = plain sampling). */
  bestOf: number;
  batchSize: number;
  steps: number;
  /** Side of the run's square images in pixels. */
  imageSize: number;
}

/** What {@link samplePlan} computes. */
export interface SamplePlan extends SamplePlanInput {
  /** Grid cells (prompts x n). */
  cells: number;
  /** Images generated (cells x bestOf). */
  images: number;
  /** UNet batches: plain sampling batches all images; best-of-N batches each cell's candidates. */
  batches: number;
  gridWidth: number;
  gridHeight: number;
  /** Upper bound of the PNG's size in bytes (uncompressed rows in stored deflate blocks). */
  pngBytes: number;
  /** Bytes of images held at once: the kept images (winners), one cell's candidates, the grid. */
  memoryBytes: number;
}

/**
 * The numbers of a sample job; exact for images, batches and grid size, an upper bound for the
 * PNG's size.
 *
 * @example
 * ```ts
 * samplePlan({ prompts: 2, n: 3, bestOf: 1, batchSize: 4, steps: 6, imageSize: 16 }).batches; // 2
 * ```
 */
export function samplePlan(i: SamplePlanInput): SamplePlan {
  const cells = i.prompts * i.n;
  const images = cells * i.bestOf;
  const batches = i.bestOf === 1
    ? Math.ceil(cells / i.batchSize)
    : cells * Math.ceil(i.bestOf / i.batchSize);
  const gridWidth = i.n * i.imageSize + (i.n + 1) * GRID_PAD;
  const gridHeight = i.prompts * i.imageSize + (i.prompts + 1) * GRID_PAD;
  // Each PNG row is a filter byte plus RGB; deflate at worst stores blocks of 16383 bytes with a
  // 5-byte header; 1 KiB covers the signature, chunk headers, zlib header and checksum.
  const raw = gridHeight * (1 + 3 * gridWidth);
  const pngBytes = raw + 5 * Math.ceil(raw / 16383) + 1024;
  const px = i.imageSize * i.imageSize * 3;
  const candidates = i.bestOf === 1 ? 0 : i.bestOf;
  const memoryBytes = (cells + candidates) * px + gridWidth * gridHeight * 3;
  return { ...i, cells, images, batches, gridWidth, gridHeight, pngBytes, memoryBytes };
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** Bytes as megabytes (10^6), with three decimals below 1 MB. */
function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(bytes < 1e6 ? 3 : 1)} MB`;
}

/**
 * The plan line `deno task sample` prints before it loads anything.
 *
 * @example
 * ```ts
 * const p = samplePlan({ prompts: 1, n: 4, bestOf: 8, batchSize: 8, steps: 25, imageSize: 32 });
 * formatSamplePlan(p, "g.png"); // "sample plan: 1 prompt x 4 = 4 cells, each the best of 8: ..."
 * ```
 */
export function formatSamplePlan(p: SamplePlan, out: string): string {
  const what = p.bestOf === 1
    ? `${plural(p.prompts, "prompt")} x ${p.n} = ${plural(p.images, "image")}`
    : `${plural(p.prompts, "prompt")} x ${p.n} = ${plural(p.cells, "cell")}, each the best of ` +
      `${p.bestOf}: ${plural(p.images, "image")}`;
  const files = `writes ${out} (${p.gridWidth}x${p.gridHeight} px, at most ${mb(p.pngBytes)})` +
    (p.bestOf === 1 ? "" : ` and ${out}.json`);
  return `sample plan: ${what} in ${plural(p.batches, "batch", "batches")} of up to ` +
    `${p.batchSize} (${plural(p.steps, "step")} each); ${files}`;
}

/**
 * Refuse, before any work, a job whose images and grid need more memory than the machine has
 * (`memoryBytes`: its total memory): it would fail at its last step after generating everything.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { assertSamplePlanFits, samplePlan } from "./job_plan.ts";
 *
 * const small = samplePlan({ prompts: 2, n: 4, bestOf: 1, batchSize: 8, steps: 9, imageSize: 8 });
 * assertSamplePlanFits(small, { memoryBytes: Deno.systemMemoryInfo().total }); // ok
 * const big = samplePlan({ ...small, prompts: 16, n: 64, imageSize: 1024 });
 * assert.throws(
 *   () => assertSamplePlanFits(big, { memoryBytes: 2e9 }),
 *   /about 6.5 GB in memory .*, more than this machine's 2.0 GB; lower --n/,
 * );
 * ```
 */
export function assertSamplePlanFits(p: SamplePlan, machine: { memoryBytes: number }): void {
  if (p.memoryBytes <= machine.memoryBytes) return;
  throw new UsageError(
    `sample: the job holds about ${(p.memoryBytes / 1e9).toFixed(1)} GB in memory (its images ` +
      `and the grid), more than this machine's ${(machine.memoryBytes / 1e9).toFixed(1)} GB; ` +
      "lower --n or give fewer prompts",
  );
}

/** Inputs of {@link evalPlan}: the sweep's settings and its feature widths. */
export interface EvalPlanInput {
  /**
   * Curves swept: one per model and UNet checkpoint (a run's finished model, each checkpoint
   * given with `--checkpoints`, an SD folder).
   */
  curves: number;
  /** Guidance scales swept. */
  guidance: number;
  /** Images per (curve, scale). */
  n: number;
  batchSize: number;
  steps: number;
  /** Width of the CLIP-score features. */
  clipDim: number;
  /** Width of the FID features when they are another extractor's (null: the CLIP ones). */
  fidDim: number | null;
  /** Feature cache folder (null: no cache). */
  cacheDir: string | null;
  /** Where clip_fid.json and clip_fid.html go. */
  outDir: string;
}

/** What {@link evalPlan} computes. */
export interface EvalPlan extends EvalPlanInput {
  images: number;
  batches: number;
  /** Feature files the sweep caches (one per curve and scale). */
  cacheFiles: number;
  /** Their float32 feature bytes (each file adds a small header). */
  cacheBytes: number;
}

/**
 * The numbers of a guidance sweep (`deno task eval`).
 *
 * @example
 * ```ts
 * const plan = evalPlan({
 *   curves: 2, guidance: 3, n: 64, batchSize: 32, steps: 25,
 *   clipDim: 512, fidDim: 2048, cacheDir: "c", outDir: "o",
 * });
 * plan.images; // 384
 * ```
 */
export function evalPlan(i: EvalPlanInput): EvalPlan {
  const points = i.curves * i.guidance;
  const cacheFiles = i.cacheDir === null ? 0 : points;
  return {
    ...i,
    images: points * i.n,
    batches: points * Math.ceil(i.n / i.batchSize),
    cacheFiles,
    cacheBytes: cacheFiles * i.n * (i.clipDim + (i.fidDim ?? 0)) * 4,
  };
}

/**
 * The plan line `deno task eval` prints before it generates.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { evalPlan, formatEvalPlan } from "./job_plan.ts";
 *
 * const plan = evalPlan({
 *   curves: 2, guidance: 3, n: 64, batchSize: 32, steps: 25,
 *   clipDim: 512, fidDim: 2048, cacheDir: "cache", outDir: "out",
 * });
 * assert.equal(
 *   formatEvalPlan(plan),
 *   "eval plan: 2 curves x 3 guidance scales x 64 images = 384 images in 12 batches " +
 *     "of up to 32 (25 steps each); caches the images' features in 6 files " +
 *     "(about 3.9 MB) in cache; writes clip_fid.json and clip_fid.html in out",
 * );
 * ```
 */
export function formatEvalPlan(p: EvalPlan): string {
  const cache = p.cacheDir === null
    ? "no cache"
    : `caches the images' features in ${plural(p.cacheFiles, "file")} (about ${
      mb(p.cacheBytes)
    }) in ${p.cacheDir}`;
  return `eval plan: ${plural(p.curves, "curve")} x ${plural(p.guidance, "guidance scale")} x ${
    plural(p.n, "image")
  } = ${plural(p.images, "image")} in ${
    plural(p.batches, "batch", "batches")
  } of up to ${p.batchSize} (${plural(p.steps, "step")} each); ${cache}; writes clip_fid.json ` +
    `and clip_fid.html in ${p.outDir}`;
}

/**
 * A positive integer from the run's frozen CLIP config (`clip/model/model.json`), such as
 * `imageSize` (the side every part was trained at) or `embedDim`, for a plan line; null when it
 * cannot be read, and then loading the run says why.
 *
 * @example
 * ```ts
 * const side = await runClipConfig("runs/tiny", "imageSize"); // e.g. 32, or null
 * ```
 */
export async function runClipConfig(
  run: string,
  key: "imageSize" | "embedDim",
): Promise<number | null> {
  try {
    const info = JSON.parse(await Deno.readTextFile(`${run}/clip/model/model.json`));
    const v = info?.config?.[key];
    return Number.isInteger(v) && v > 0 ? v : null;
  } catch {
    return null;
  }
}
