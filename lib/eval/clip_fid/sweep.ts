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
import type { PlotlyFigure } from "../../plot/mod.ts";
import { clipFidFigure, curvesByCheckpoint, writeClipFidOutputs } from "./sweep_figure.ts";
import type { CheckpointRef, CheckpointSelector } from "./checkpoints.ts";
import {
  modelsSweep,
  type ReportExtra,
  reportProtocol,
  reportRow,
  type SweepPoint,
  type SweepProtocolOptions,
  type SweepSummary,
} from "./models_sweep.ts";

export {
  type CheckpointRef,
  type CheckpointSelector,
  parseCheckpointSelector,
  resolveCheckpoints,
  sha256Hex,
} from "./checkpoints.ts";
export type { SweepPoint, SweepProgress } from "./models_sweep.ts";

/** Options of {@link guidanceSweep}: the protocol, for the checkpoints of one run. */
export interface SweepOptions extends SweepProtocolOptions {
  runDir: string;
  checkpoints: CheckpointSelector;
  /** Cache folder (default `<run>/eval/cache`); null disables the cache. */
  cacheDir?: string | null;
}

/** Everything a sweep produced. */
export interface SweepResult extends SweepSummary {
  runDir: string;
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
  const { models: [m], ...summary } = r;
  return { runDir: o.runDir, ...summary, checkpoints: m.checkpoints, points: m.points };
}

/**
 * The JSON report (`clip_fid.json`): settings plus one entry per (checkpoint, scale) with
 * `clip_score`, `fid`, their intervals, `n`, the extractor, the seed and the distance's label.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type SweepResult, sweepReport } from "./sweep.ts";
 * import { modelsSweep } from "./models_sweep.ts";
 * import { clipTowersExtractor } from "./feature_extractors.ts";
 * import { heldoutPromptSet } from "./prompt_sets.ts";
 * import { loadClipTowers } from "../../inference/clip_towers.ts";
 *
 * const t = "tests/fixtures/tiny_clip_towers"; // tiny seeded 3-d CLIP towers judge the images
 * const towers = await loadClipTowers({
 *   textModel: `${t}/text_model.onnx`, imageModel: `${t}/vision_model.onnx`, tokenizerDir: t,
 *   executionProviders: ["cpu"],
 * });
 * const { models: [m], ...summary } = await modelsSweep({
 *   models: [{ kind: "folder", dir: "tests/fixtures/tiny_sd/fp32_scalar_t" }], // a 64 px SD folder
 *   promptSet: (size) => Promise.resolve(heldoutPromptSet({ count: 4, seed: 0, size })),
 *   clipModel: await clipTowersExtractor(towers),
 *   guidance: [1, 3], n: 4, steps: 2, scheduler: "ddim", seed: 0, cacheDir: null,
 * });
 * await towers.release();
 * // A one-run result, as guidanceSweep shapes it (it needs a trained run: runs/default).
 * const result: SweepResult = { runDir: m.dir, ...summary, checkpoints: m.checkpoints, points: m.points };
 * const doc = sweepReport(result, { protocol: "default" }); // e.g. to writeJsonAtomic("clip_fid.json", doc)
 * assert.deepEqual([doc.format, doc.run, (doc.results as unknown[]).length], ["xgen-kit/clip-fid@1", m.dir, 2]);
 * ```
 */
export function sweepReport(
  r: SweepResult,
  extra: ReportExtra = {},
): Record<string, unknown> {
  return {
    format: "xgen-kit/clip-fid@1",
    run: r.runDir,
    ...reportProtocol(r, extra),
    results: r.points.map((p) => reportRow(p, r)),
  };
}

/**
 * The study's figure: x = CLIP score, y = FID, one line per checkpoint, points labelled by the
 * guidance scale, bootstrap intervals as error bars.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sweepFigure, type SweepResult } from "./sweep.ts";
 * import { modelsSweep } from "./models_sweep.ts";
 * import { clipTowersExtractor } from "./feature_extractors.ts";
 * import { heldoutPromptSet } from "./prompt_sets.ts";
 * import { loadClipTowers } from "../../inference/clip_towers.ts";
 *
 * const t = "tests/fixtures/tiny_clip_towers"; // tiny seeded 3-d CLIP towers judge the images
 * const towers = await loadClipTowers({
 *   textModel: `${t}/text_model.onnx`, imageModel: `${t}/vision_model.onnx`, tokenizerDir: t,
 *   executionProviders: ["cpu"],
 * });
 * const { models: [m], ...summary } = await modelsSweep({
 *   models: [{ kind: "folder", dir: "tests/fixtures/tiny_sd/fp32_scalar_t" }], // a 64 px SD folder
 *   promptSet: (size) => Promise.resolve(heldoutPromptSet({ count: 4, seed: 0, size })),
 *   clipModel: await clipTowersExtractor(towers),
 *   guidance: [1, 3], n: 4, steps: 2, scheduler: "ddim", seed: 0, cacheDir: null,
 * });
 * await towers.release();
 * // A one-run result, as guidanceSweep shapes it (it needs a trained run: runs/default).
 * const result: SweepResult = { runDir: m.dir, ...summary, checkpoints: m.checkpoints, points: m.points };
 * const fig = sweepFigure(result); // e.g. to writePlotlyHtml("clip_fid.html", fig)
 * assert.deepEqual(fig.data.map((t) => t.text), [["1", "3"]]); // one curve per checkpoint, labelled by guidance
 * ```
 */
export function sweepFigure(r: SweepResult): PlotlyFigure {
  const name = (c: CheckpointRef) => c.name === "final" ? "final model" : `step ${c.step}`;
  return clipFidFigure(r, curvesByCheckpoint(r.checkpoints, r.points, name));
}

/**
 * Write `clip_fid.json` and `clip_fid.html` into `outDir`; returns their paths.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type SweepResult, writeSweepOutputs } from "./sweep.ts";
 * import { modelsSweep } from "./models_sweep.ts";
 * import { clipTowersExtractor } from "./feature_extractors.ts";
 * import { heldoutPromptSet } from "./prompt_sets.ts";
 * import { loadClipTowers } from "../../inference/clip_towers.ts";
 *
 * const t = "tests/fixtures/tiny_clip_towers"; // tiny seeded 3-d CLIP towers judge the images
 * const towers = await loadClipTowers({
 *   textModel: `${t}/text_model.onnx`, imageModel: `${t}/vision_model.onnx`, tokenizerDir: t,
 *   executionProviders: ["cpu"],
 * });
 * const { models: [m], ...summary } = await modelsSweep({
 *   models: [{ kind: "folder", dir: "tests/fixtures/tiny_sd/fp32_scalar_t" }], // a 64 px SD folder
 *   promptSet: (size) => Promise.resolve(heldoutPromptSet({ count: 4, seed: 0, size })),
 *   clipModel: await clipTowersExtractor(towers),
 *   guidance: [1, 3], n: 4, steps: 2, scheduler: "ddim", seed: 0, cacheDir: null,
 * });
 * await towers.release();
 * // A one-run result, as guidanceSweep shapes it (it needs a trained run: runs/default).
 * const result: SweepResult = { runDir: m.dir, ...summary, checkpoints: m.checkpoints, points: m.points };
 * const dir = await Deno.makeTempDir(); // e.g. "runs/default/eval"
 * const { json, html } = await writeSweepOutputs(result, dir);
 * assert.deepEqual([json, html], [`${dir}/clip_fid.json`, `${dir}/clip_fid.html`]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeSweepOutputs(
  r: SweepResult,
  outDir: string,
  extra: ReportExtra = {},
): Promise<{ json: string; html: string }> {
  return await writeClipFidOutputs(outDir, sweepReport(r, extra), sweepFigure(r));
}
