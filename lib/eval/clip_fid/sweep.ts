/**
 * The study's CLIP-score vs FID guidance sweep: for each UNet checkpoint and each
 * classifier-free guidance scale, generate one image per prompt (the same initial noise at every
 * scale, see `initialNoise` in lib/diffusion), extract features, and report the CLIP score (image
 * features against the same CLIP's text embeddings) and the Frechet distance to the prompt set's
 * reference images, each with a percentile bootstrap interval; KID on request.
 *
 * Everything expensive is cached under `<run>/eval/cache/`: reference statistics
 * (`cachedReferenceStats`, checked against the extractor) and the generated images' features per
 * (checkpoint fingerprint, scale, n, seed, sampler, steps, batch size, prompts hash, extractors),
 * so a rerun with more scales or checkpoints only generates what is new. Several runs and ONNX
 * Stable Diffusion folders on one protocol: `modelsSweep` (`models_sweep.ts`), which this wraps.
 *
 * @example
 * ```ts
 * import { guidanceSweep, writeSweepOutputs } from "./sweep.ts";
 * import { heldoutPromptSet } from "./prompt_sets.ts";
 *
 * async function example() {
 *   const set = heldoutPromptSet({ count: 64, seed: 0, size: 32 });
 *   const r = await guidanceSweep({ runDir: "runs/default", promptSet: set, checkpoints: "all",
 *     guidance: [1, 2, 4], n: 64, steps: 25, scheduler: "dpmpp_2m", seed: 0 });
 *   await writeSweepOutputs(r, "runs/default/eval");
 * }
 * ```
 * @module
 */
import { type PlotlyFigure, writePlotlyHtml } from "../../plot/mod.ts";
import { writeJsonAtomic } from "../../util/atomic.ts";
import type { FeatureExtractor } from "./feature_extractors.ts";
import type { PromptSet } from "./prompt_sets.ts";
import type { CheckpointRef, CheckpointSelector } from "./checkpoints.ts";
import {
  type ClipJudge,
  modelsSweep,
  reportRow,
  type SweepPoint,
  type SweepProgress,
} from "./models_sweep.ts";

export {
  type CheckpointRef,
  type CheckpointSelector,
  parseCheckpointSelector,
  resolveCheckpoints,
  sha256Hex,
} from "./checkpoints.ts";
export type { SweepPoint, SweepProgress } from "./models_sweep.ts";

/** Options of {@link guidanceSweep}. */
export interface SweepOptions {
  runDir: string;
  /** The prompts (and reference images); a function gets the run's image size. */
  promptSet: PromptSet | ((imageSize: number) => Promise<PromptSet>);
  checkpoints: CheckpointSelector;
  guidance: number[];
  /** Images (one per prompt; prompts cycle when the set is shorter). */
  n: number;
  steps: number;
  scheduler: string;
  seed: number;
  /** Images per UNet batch (default 32); part of the cache key (stochastic samplers). */
  batchSize?: number;
  /** Bootstrap replicates: CLIP score (default 200) and FID (default 20); level 0.95. */
  bootstrap?: { clip?: number; fid?: number; level?: number };
  /** Also compute KID (needs reference images, not only statistics). */
  kid?: boolean;
  /**
   * Precomputed reference statistics, the kit's safetensors or a numpy `.npz` with `mu` and
   * `sigma` (clean-fid's); required when the prompt set has no images.
   */
  referenceStats?: string;
  /** FID feature extractor (default: the run's kit CLIP image tower). */
  extractor?: FeatureExtractor;
  /**
   * CLIP model for CLIP scores (image features + text embeddings), e.g. ONNX CLIP towers shared by
   * every model compared (`clipTowersExtractor` in `feature_extractors.ts`). Default: the run's
   * own kit CLIP, whose scores compare checkpoints of one run but not different runs.
   */
  clipModel?: ClipJudge;
  /** Cache folder (default `<run>/eval/cache`); null disables the cache. */
  cacheDir?: string | null;
  /**
   * What generates the images: "onnx" (default; onnxruntime on the run's export, made once per
   * checkpoint by `ensureOnnxExport`) or "tfjs". Same noise, same images up to rounding.
   */
  engine?: "onnx" | "tfjs";
  onProgress?: (p: SweepProgress) => void;
}

/** Everything a sweep produced. */
export interface SweepResult {
  runDir: string;
  prompts: { spec: string; description: string; count: number; hash: string };
  settings: {
    n: number;
    seed: number;
    steps: number;
    scheduler: string;
    batchSize: number;
    /** What generated the images. */
    engine: "onnx" | "tfjs";
    guidance: number[];
    bootstrap: { clip: number; fid: number; level: number };
  };
  extractor: { name: string; preprocessing: string; dim: number };
  clipModel: string;
  fidLabel: string;
  /** `n` is null for `.npz` statistics, which do not record it. */
  reference: { source: string; n: number | null; cached: boolean };
  checkpoints: CheckpointRef[];
  points: SweepPoint[];
}

/**
 * Run the sweep; see the module notes.
 *
 * @example
 * ```ts
 * import { guidanceSweep } from "./sweep.ts";
 * import type { PromptSet } from "./prompt_sets.ts";
 *
 * async function example(set: PromptSet) {
 *   const r = await guidanceSweep({
 *     runDir: "runs/tiny",
 *     promptSet: set,
 *     checkpoints: "latest",
 *     guidance: [1, 3],
 *     n: 16,
 *     steps: 8,
 *     scheduler: "dpmpp_2m",
 *     seed: 0,
 *   });
 * }
 * ```
 */
export async function guidanceSweep(o: SweepOptions): Promise<SweepResult> {
  const r = await modelsSweep({
    ...o,
    models: [{ kind: "run", dir: o.runDir, checkpoints: o.checkpoints }],
    cacheDir: o.cacheDir === undefined ? `${o.runDir}/eval/cache` : o.cacheDir,
  });
  const m = r.models[0];
  return {
    runDir: o.runDir,
    prompts: r.prompts,
    settings: r.settings,
    extractor: r.extractor,
    clipModel: r.clipModel,
    fidLabel: r.fidLabel,
    reference: r.reference,
    checkpoints: m.checkpoints,
    points: m.points,
  };
}

/**
 * The JSON report (`clip_fid.json`): settings plus one entry per (checkpoint, scale) with
 * `clip_score`, `fid`, their intervals, `n`, the extractor, the seed and the distance's label.
 *
 * @example
 * ```ts
 * import { type SweepResult, sweepReport } from "./sweep.ts";
 * import { writeJsonAtomic } from "../../util/atomic.ts";
 *
 * async function example(result: SweepResult) {
 *   await writeJsonAtomic("clip_fid.json", sweepReport(result, { protocol: "default" }));
 * }
 * ```
 */
export function sweepReport(
  r: SweepResult,
  extra: { protocol?: string | null } = {},
): Record<string, unknown> {
  return {
    format: "xgen-kit/clip-fid@1",
    run: r.runDir,
    protocol: extra.protocol ?? null,
    prompts: r.prompts,
    settings: r.settings,
    extractor: r.extractor,
    clip_model: r.clipModel,
    label: r.fidLabel,
    reference: r.reference,
    results: r.points.map((p) => reportRow(p, r)),
  };
}

/**
 * The study's figure: x = CLIP score, y = FID, one line per checkpoint, points labelled by the
 * guidance scale, bootstrap intervals as error bars.
 *
 * @example
 * ```ts
 * import { sweepFigure, type SweepResult } from "./sweep.ts";
 * import { writePlotlyHtml } from "../../plot/mod.ts";
 *
 * async function example(result: SweepResult) {
 *   await writePlotlyHtml("clip_fid.html", sweepFigure(result));
 * }
 * ```
 */
export function sweepFigure(r: SweepResult): PlotlyFigure {
  const data = r.checkpoints.map((c) => {
    const pts = r.points.filter((p) => p.checkpoint === c.name);
    return {
      type: "scatter",
      mode: "lines+markers+text",
      name: c.name === "final" ? "final model" : `step ${c.step}`,
      x: pts.map((p) => p.clipScore.value),
      y: pts.map((p) => p.fid.value),
      text: pts.map((p) => String(p.guidance)),
      textposition: "top center",
      hovertemplate:
        "guidance %{text}<br>CLIP %{x:.2f}<br>FD %{y:.3f}<extra>%{fullData.name}</extra>",
      // Bootstrap FID intervals can sit above the estimate: clamp the bar lengths at 0.
      error_x: {
        type: "data",
        symmetric: false,
        array: pts.map((p) => Math.max(0, p.clipScore.hi - p.clipScore.value)),
        arrayminus: pts.map((p) => Math.max(0, p.clipScore.value - p.clipScore.lo)),
        thickness: 1,
      },
      error_y: {
        type: "data",
        symmetric: false,
        array: pts.map((p) => Math.max(0, p.fid.hi - p.fid.value)),
        arrayminus: pts.map((p) => Math.max(0, p.fid.value - p.fid.lo)),
        thickness: 1,
      },
    };
  });
  return {
    data,
    layout: {
      title: {
        text: `CLIP score vs ${r.fidLabel} (n=${r.settings.n}, ${r.settings.scheduler} ` +
          `${r.settings.steps} steps; labels: guidance scale)`,
      },
      xaxis: { title: { text: `CLIP score (${r.clipModel})` } },
      yaxis: { title: { text: r.fidLabel } },
    },
  };
}

/**
 * Write `clip_fid.json` and `clip_fid.html` into `outDir`; returns their paths.
 *
 * @example
 * ```ts
 * import { type SweepResult, writeSweepOutputs } from "./sweep.ts";
 *
 * async function example(result: SweepResult) {
 *   const { json, html } = await writeSweepOutputs(result, "runs/default/eval");
 * }
 * ```
 */
export async function writeSweepOutputs(
  r: SweepResult,
  outDir: string,
  extra: { protocol?: string | null } = {},
): Promise<{ json: string; html: string }> {
  await Deno.mkdir(outDir, { recursive: true });
  const json = `${outDir}/clip_fid.json`, html = `${outDir}/clip_fid.html`;
  await writeJsonAtomic(json, sweepReport(r, extra));
  await writePlotlyHtml(html, sweepFigure(r), { title: "CLIP score vs FID" });
  return { json, html };
}
