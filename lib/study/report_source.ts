/**
 * What the study's sampling sections (best of N, touch-ups) sample and score with: a kit run's
 * ONNX export with the run's own CLIP, shapes-world prompts and the pixel judge, or a
 * {@link StudyModelSource}: a Stable Diffusion folder, separate CLIP towers, the source's prompts
 * and an optional second scorer. {@link openStudyModels} opens either, released together.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openStudyModels } from "./report_source.ts";
 *
 * // A tiny 64 px SD folder and tiny seeded CLIP towers; e.g. a trained SD folder and ViT-L/14.
 * const m = await openStudyModels({
 *   runDir: "unused with a source",
 *   prompts: 3,
 *   source: {
 *     model: "tests/fixtures/tiny_sd/fp32_scalar_t",
 *     clip: "tests/fixtures/tiny_clip_towers",
 *     prompts: ["a cat", "a dog"],
 *     resolution: 64,
 *   },
 * });
 * assert.deepEqual(m.prompts, ["a cat", "a dog", "a cat"]); // cycled
 * assert.deepEqual([m.clipLabel, m.judge], ["CLIP towers tests/fixtures/tiny_clip_towers", null]);
 * await m.release();
 * ```
 * @module
 */
import { ensureOnnxExport } from "../recipe/onnx_export.ts";
import { loadOnnxPipeline, type OnnxPipeline } from "../onnx/sd_pipeline.ts";
import { loadClipTowersFolder, loadKitClipTowers } from "../inference/clip_towers.ts";
import { clipScoreScorer, loadScorer, parseScorerSpec } from "../inference/scorers.ts";
import type { Scorer } from "../inference/best_of_n.ts";
import { pixelJudge, spreadPrompts } from "./report_prompts.ts";

/** What the sampling sections of a study on an SD folder use instead of a kit run's export. */
export interface StudyModelSource {
  /** The SD folder (ONNX, Optimum's layout) to sample. */
  model: string;
  /** CLIP towers folder that scores: text_model.onnx, vision_model.onnx and its tokenizer files. */
  clip: string;
  /** Prompts to sample, e.g. held-out captions of the run's data (used in order, cycled if short). */
  prompts: string[];
  /**
   * Best-of-N's second scorer, as `deno task sample --scorer` takes it ("pickscore:DIR",
   * "aesthetic:DIR"), or "clip:DIR" for the CLIP score of other towers than `clip`; none when
   * absent.
   */
  judge?: string;
  /** Image side in pixels to sample at (the run's training resolution). */
  resolution: number;
}

/** Options of {@link openStudyModels}. */
export interface OpenStudyModelsOptions {
  /** The kit run folder (its ONNX export is made when missing); not read when `source` is given. */
  runDir: string;
  /** Sample and score this instead of the run's export. */
  source?: StudyModelSource;
  /** How many prompts to take. */
  prompts: number;
  /**
   * Also open best of N's second scorer: the pixel judge for a run, `source.judge` for a source
   * (none when it has none).
   */
  judge?: boolean;
}

/** What {@link openStudyModels} opened. Call {@link StudyModels.release} when done. */
export interface StudyModels {
  /** The pipeline to sample. */
  pipe: OnnxPipeline;
  /** CLIP score (`100 * cos`, unclamped) over the towers that score. */
  clip: Scorer;
  /** Which towers `clip` uses, for labels: "the run's CLIP score" or "CLIP towers DIR". */
  clipLabel: string;
  /** `prompts` prompts: spread shapes-world prompts for a run, the source's in order, cycled. */
  prompts: string[];
  /** Size to sample at: the source's resolution; undefined for a run (the export's own size). */
  size?: { width: number; height: number };
  /** Best of N's second scorer, when asked for and there is one. */
  judge: Scorer | null;
  /** What `judge` is, for labels; null without a judge. */
  judgeLabel: string | null;
  /** Free every session opened. */
  release(): Promise<void>;
}

/** Whether two paths name one folder (either missing: compared as written). */
async function sameFolder(a: string, b: string): Promise<boolean> {
  const real = (p: string) => Deno.realPath(p).catch(() => p);
  return (await real(a)) === (await real(b));
}

/** Throw unless `s` is a usable source, naming the field. */
function checkSource(s: StudyModelSource): void {
  const where = "study source";
  for (const k of ["model", "clip"] as const) {
    if (typeof s[k] !== "string" || s[k] === "") {
      throw new Error(`${where}: ${k} must be a folder path, got ${JSON.stringify(s[k])}`);
    }
  }
  if (!Array.isArray(s.prompts) || s.prompts.length === 0) {
    throw new Error(`${where}: prompts must be a non-empty list of strings`);
  }
  const bad = s.prompts.findIndex((p) => typeof p !== "string");
  if (bad >= 0) throw new Error(`${where}: prompts[${bad}] is not a string`);
  if (!Number.isInteger(s.resolution) || s.resolution < 8) {
    throw new Error(`${where}: resolution must be an integer >= 8 pixels, got ${s.resolution}`);
  }
  if (s.judge !== undefined && typeof s.judge !== "string") {
    throw new Error(`${where}: judge must be a scorer spec string, got ${JSON.stringify(s.judge)}`);
  }
}

/** The scorer a source's `judge` names, with its label. */
async function openJudge(
  text: string,
  selectorClip: string,
): Promise<{ scorer: Scorer; label: string; release(): Promise<void> }> {
  const clipDir = /^clip:(.+)$/.exec(text)?.[1]?.replace(/(.)\/+$/, "$1");
  if (clipDir !== undefined) {
    // The selector's own towers would judge their own pick: the win rate says nothing then.
    if (await sameFolder(clipDir, selectorClip)) {
      throw new Error(
        `study source judge: ${text} is the towers that select (clip ${selectorClip}); a judge ` +
          "must be another scorer",
      );
    }
    const towers = await loadClipTowersFolder(clipDir);
    return {
      scorer: clipScoreScorer(towers),
      label: `CLIP towers ${clipDir}`,
      release: () => towers.release(),
    };
  }
  let spec;
  try {
    spec = parseScorerSpec(text);
  } catch (e) {
    throw new Error(`study source judge: ${(e as Error).message}`);
  }
  if (spec.kind === "clip") {
    throw new Error(
      'study source judge: "clip" is a kit run\'s own CLIP, which an SD folder has none of; ' +
        "give pickscore:DIR, aesthetic:DIR or clip:DIR",
    );
  }
  const scorer = await loadScorer(spec);
  return { scorer, label: `${spec.kind} ${spec.dir}`, release: () => scorer.release() };
}

/**
 * Open what a sampling section needs (see the module doc): from `source` when given, else from
 * the run's ONNX export (`ensureOnnxExport(runDir)`). On a failure, whatever was opened is
 * released before the error is thrown.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openStudyModels } from "./report_source.ts";
 *
 * const source = {
 *   model: "tests/fixtures/tiny_sd/fp32_scalar_t",
 *   clip: "tests/fixtures/tiny_clip_towers",
 *   prompts: ["a cat"],
 *   judge: "aesthetic:tests/fixtures/tiny_clip_towers", // towers plus aesthetic_head.onnx
 *   resolution: 64,
 * };
 * const m = await openStudyModels({ runDir: "", source, prompts: 2, judge: true });
 * assert.deepEqual([m.size, m.judgeLabel], [
 *   { width: 64, height: 64 },
 *   "aesthetic tests/fixtures/tiny_clip_towers",
 * ]);
 * await m.release();
 * await assert.rejects(
 *   openStudyModels({ runDir: "", source: { ...source, judge: "clip" }, prompts: 1, judge: true }),
 *   /judge: "clip" is a kit run's own CLIP/,
 * );
 * const self = { ...source, judge: "clip:tests/fixtures/tiny_clip_towers/" };
 * await assert.rejects(
 *   openStudyModels({ runDir: "", source: self, prompts: 1, judge: true }),
 *   /is the towers that select/,
 * );
 * ```
 */
export async function openStudyModels(o: OpenStudyModelsOptions): Promise<StudyModels> {
  if (!Number.isInteger(o.prompts) || o.prompts < 1) {
    throw new Error(`openStudyModels: prompts must be a positive integer, got ${o.prompts}`);
  }
  const s = o.source;
  if (s) checkSource(s);
  const releases: (() => Promise<void>)[] = [];
  const release = async () => {
    // Last opened first; every one is released even when one fails.
    const errors: unknown[] = [];
    for (const r of releases.splice(0).reverse()) await r().catch((e) => errors.push(e));
    if (errors.length) throw errors[0];
  };
  try {
    // The judge first: a bad spec fails before the larger models load.
    let judge: Scorer | null = null, judgeLabel: string | null = null;
    if (o.judge && s?.judge !== undefined) {
      const j = await openJudge(s.judge, s.clip);
      releases.push(j.release);
      [judge, judgeLabel] = [j.scorer, j.label];
    } else if (o.judge && !s) {
      [judge, judgeLabel] = [pixelJudge, pixelJudge.name];
    }
    const dir = s ? s.model : await ensureOnnxExport(o.runDir);
    const pipe = await loadOnnxPipeline(dir);
    releases.push(() => pipe.release());
    const towers = s ? await loadClipTowersFolder(s.clip) : await loadKitClipTowers(dir);
    releases.push(() => towers.release());
    return {
      pipe,
      clip: clipScoreScorer(towers),
      clipLabel: s ? `CLIP towers ${s.clip}` : "the run's CLIP score",
      prompts: s
        ? Array.from({ length: o.prompts }, (_, i) => s.prompts[i % s.prompts.length])
        : spreadPrompts(o.prompts),
      size: s ? { width: s.resolution, height: s.resolution } : undefined,
      judge,
      judgeLabel,
      release,
    };
  } catch (e) {
    await release().catch(() => {});
    throw e;
  }
}
