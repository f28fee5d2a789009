/**
 * The CLIP-score vs FID guidance sweep over several models on one protocol, as the study
 * compared its model with Stable Diffusion 1.5 and 2.1: the same prompts, seeds, guidance scales,
 * sampler, CLIP judge, FID extractor and reference statistics for every model, one curve each.
 * A model is a kit run (each selected UNet checkpoint is a curve; sampled through its ONNX export
 * or TensorFlow.js) or any ONNX Stable Diffusion folder in Optimum's layout (sampled with
 * onnxruntime at the folder's own size).
 *
 * The CLIP judge is `clipModel` when given (ONNX CLIP towers shared by all, `--clip`), otherwise
 * the kit CLIP of the first run among the models; a sweep of folders alone needs `clipModel`,
 * because an SD folder carries no image tower. The FID extractor defaults to the judge. Reference
 * images (prompt sets that have them) are made at the first model's image size; the extractor
 * resizes every image to its own input.
 *
 * Features of every (model, checkpoint, scale) are cached under `cacheDir`, keyed by the weights'
 * fingerprint (a run's manifest or model.json; a folder's file paths, sizes and times) and every
 * setting, so a killed sweep resumes where it stopped and a rerun with more scales or models only
 * generates what is new.
 *
 * @example
 * ```ts
 * import { modelsSweep, writeModelsSweepOutputs } from "./models_sweep.ts";
 * import { heldoutPromptSet } from "./prompt_sets.ts";
 *
 * async function example() {
 *   const r = await modelsSweep({
 *     models: [{ kind: "run", dir: "runs/default", checkpoints: "latest" },
 *       { kind: "folder", dir: "sd15-onnx" }],
 *     promptSet: (size) => Promise.resolve(heldoutPromptSet({ count: 64, seed: 0, size })),
 *     guidance: [1, 2, 4], n: 64, steps: 25, scheduler: "dpmpp_2m", seed: 0,
 *     cacheDir: "eval-models/cache",
 *   });
 *   await writeModelsSweepOutputs(r, "eval-models");
 * }
 * ```
 * @module
 */
import { type LoadedRun, loadRun } from "../../recipe/generate.ts";
import { ensureOnnxExport } from "../../recipe/onnx_export.ts";
import { generate } from "../../recipe/generate.ts";
import { loadOnnxPipeline, type OnnxPipeline, txt2img } from "../../onnx/sd_pipeline.ts";
import { checkSdFolder, folderFingerprint } from "../../inference/sd_model_folder.ts";
import { readSafetensors, writeSafetensors } from "../../train/safetensors.ts";
import type { PlotlyFigure } from "../../plot/mod.ts";
import { clipFidFigure, curvesByCheckpoint, writeClipFidOutputs } from "./sweep_figure.ts";
import { clipScoreWithInterval, type Estimate, frechetWithInterval } from "./bootstrap.ts";
import {
  type FeatureExtractor,
  frechetLabel,
  kitClipImageExtractor,
  type RgbInput,
} from "./feature_extractors.ts";
import { kernelInceptionDistance } from "./kid.ts";
import { type FeatureStats, FeatureStatsAccumulator } from "./stats.ts";
import { cachedReferenceStats } from "./stats_file.ts";
import { readReferenceStats } from "./npz_stats.ts";
import type { PromptSet } from "./prompt_sets.ts";
import {
  type CheckpointRef,
  type CheckpointSelector,
  resolveCheckpoints,
  sha256Hex,
} from "./checkpoints.ts";

/** One model of a sweep: a kit run (some of its checkpoints) or an ONNX SD folder. */
export type SweepModel =
  | { kind: "run"; dir: string; checkpoints: CheckpointSelector; name?: string }
  | { kind: "folder"; dir: string; name?: string };

/** Progress of a sweep: images generated and images whose features are extracted. */
export interface SweepProgress {
  generated: number;
  extracted: number;
  /** Images per counter when the sweep is done (curves x scales x n). */
  total: number;
  checkpoint: string;
  guidance: number;
  /** The model's name (its label in the figure). */
  model?: string;
}

/** One (checkpoint, scale) result. */
export interface SweepPoint {
  checkpoint: string;
  step: number | null;
  guidance: number;
  n: number;
  clipScore: Estimate;
  fid: Estimate & { regularized: boolean };
  kid?: { mean: number; std: number; subsetSize: number };
  /** Features came from the cache. */
  cached: boolean;
  seconds: number;
}

/** A CLIP model for CLIP scores: image features plus text embeddings in the same space. */
export type ClipJudge = FeatureExtractor & { embedTexts(texts: string[]): Promise<Float32Array> };

/** The protocol options of every sweep: one run's (`guidanceSweep`) or several models'. */
export interface SweepProtocolOptions {
  /** The prompts (and reference images); a function gets the first model's image size. */
  promptSet: PromptSet | ((imageSize: number) => Promise<PromptSet>);
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
   * Precomputed reference statistics: the kit's safetensors (extractor checked) or a numpy
   * `.npz` with `mu` and `sigma` (clean-fid's; dimension checked). Required when the prompt set
   * has no images.
   */
  referenceStats?: string;
  /** FID feature extractor (default: the CLIP judge's image tower). */
  extractor?: FeatureExtractor;
  /**
   * The CLIP judge for CLIP scores (image features + text embeddings), e.g. ONNX CLIP towers
   * shared by every model compared (`clipTowersExtractor` in `feature_extractors.ts`). Default:
   * the first run's own kit CLIP, whose scores compare checkpoints of one run but not different
   * runs; required without a run.
   */
  clipModel?: ClipJudge;
  /**
   * What samples the runs: "onnx" (default; onnxruntime on the run's export, made once per
   * checkpoint by `ensureOnnxExport`) or "tfjs" (same noise, same images up to rounding). SD
   * folders always use onnx.
   */
  engine?: "onnx" | "tfjs";
  onProgress?: (p: SweepProgress) => void;
}

/** Options of {@link modelsSweep}. */
export interface ModelsSweepOptions extends SweepProtocolOptions {
  models: SweepModel[];
  /** Cache folder; null disables the cache. */
  cacheDir: string | null;
  /**
   * Add each run's folder to its cache keys (default: with more than one model), so two runs
   * sharing a cache never share entries.
   */
  keyRunDirs?: boolean;
}

/** One model's curves. */
export interface ModelCurves {
  /** The label: `name`, else the folder's name (its path when two models share a name). */
  name: string;
  kind: "run" | "folder";
  dir: string;
  /** What sampled it. */
  engine: "onnx" | "tfjs";
  /** A run's checkpoints; a folder has one, named "model". */
  checkpoints: CheckpointRef[];
  points: SweepPoint[];
}

/** What every sweep's result holds besides its curves: the protocol as it ran. */
export interface SweepSummary {
  prompts: { spec: string; description: string; count: number; hash: string };
  settings: {
    n: number;
    seed: number;
    steps: number;
    scheduler: string;
    batchSize: number;
    /** What sampled the runs (folders always use onnx). */
    engine: "onnx" | "tfjs";
    guidance: number[];
    bootstrap: { clip: number; fid: number; level: number };
  };
  extractor: { name: string; preprocessing: string; dim: number };
  clipModel: string;
  fidLabel: string;
  /** `n` is null for `.npz` statistics, which do not record it. */
  reference: { source: string; n: number | null; cached: boolean };
}

/** Everything a several-model sweep produced. */
export interface ModelsSweepResult extends SweepSummary {
  models: ModelCurves[];
}

function disposeParams(p: Record<string, { dispose(): void }>) {
  for (const v of Object.values(p)) v.dispose();
}

function loadRef(runDir: string, c: CheckpointRef): Promise<LoadedRun> {
  return loadRun(runDir, c.name === "final" ? {} : { checkpoint: c.name });
}

/**
 * Labels of the models: `name` when given, else the folder's last path element, or the path as
 * given when two models would share that.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { modelLabels } from "./models_sweep.ts";
 *
 * assert.deepEqual(
 *   modelLabels([{ dir: "a/sd15/" }, { dir: "runs/x/onnx" }, { dir: "runs/y/onnx" }]),
 *   ["sd15", "runs/x/onnx", "runs/y/onnx"],
 * );
 * ```
 */
export function modelLabels(models: { dir: string; name?: string }[]): string[] {
  const base = models.map((m) => m.name ?? (m.dir.replace(/\/+$/, "").split("/").pop() || m.dir));
  return base.map((b, i) =>
    models[i].name === undefined && base.filter((x) => x === b).length > 1
      ? models[i].dir.replace(/\/+$/, "")
      : b
  );
}

/**
 * Extract features of many images in chunks, reporting each chunk. Images given as null (corrupt
 * reference files, see `PromptSet.skipped`) are left out: the result has one row per image kept.
 */
async function extractAll(
  ex: FeatureExtractor,
  count: number,
  image: (i: number) => Promise<RgbInput | null> | RgbInput | null,
  onChunk?: (done: number) => void,
): Promise<Float32Array> {
  const out = new Float32Array(count * ex.dim);
  const chunk = 64;
  let kept = 0;
  for (let i = 0; i < count; i += chunk) {
    const part: RgbInput[] = [];
    for (let j = i; j < Math.min(count, i + chunk); j++) {
      const img = await image(j);
      if (img) part.push(img);
    }
    if (part.length) out.set(await ex.extract(part), kept * ex.dim);
    kept += part.length;
    onChunk?.(Math.min(count, i + chunk));
  }
  return kept === count ? out : out.slice(0, kept * ex.dim);
}

async function readCache(path: string, key: string): Promise<Record<string, Float32Array> | null> {
  try {
    const f = await readSafetensors(path);
    if (f.metadata.key !== key) return null;
    const out: Record<string, Float32Array> = {};
    for (const [k, t] of Object.entries(f.tensors)) {
      if (!(t.data instanceof Float32Array)) return null;
      out[k] = t.data;
    }
    return out;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    // A damaged cache file is recomputed rather than trusted.
    console.warn(`eval cache ${path}: ignored (${(e as Error).message})`);
    return null;
  }
}

/** A model resolved: its curves' checkpoints and, for folders, the checked folder. */
interface ResolvedModel {
  spec: SweepModel;
  name: string;
  refs: CheckpointRef[];
}

async function resolveModel(m: SweepModel, name: string): Promise<ResolvedModel> {
  if (m.kind === "run") {
    return { spec: m, name, refs: await resolveCheckpoints(m.dir, m.checkpoints) };
  }
  await checkSdFolder(m.dir);
  const fingerprint = await folderFingerprint(m.dir);
  return { spec: m, name, refs: [{ name: "model", step: null, fingerprint }] };
}

/**
 * Run the sweep over every model; see the module notes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
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
 * const r = await modelsSweep({
 *   models: [{ kind: "folder", dir: "tests/fixtures/tiny_sd/fp32_scalar_t" }], // a 64 px SD folder
 *   promptSet: (size) => Promise.resolve(heldoutPromptSet({ count: 4, seed: 0, size })),
 *   clipModel: await clipTowersExtractor(towers),
 *   guidance: [1, 3], n: 4, steps: 2, scheduler: "ddim", seed: 0, cacheDir: null,
 * });
 * await towers.release();
 * // SD v1.5 vs v2.1 on COCO: models: [{ kind: "folder", dir: "sd15-onnx" }, ...], n: 1000, ...
 * assert.deepEqual(r.models.map((m) => [m.name, m.points.map((p) => p.guidance)]), [["fp32_scalar_t", [1, 3]]]);
 * assert.ok(r.models[0].points.every((p) => p.fid.value >= 0 && p.n === 4));
 * ```
 */
export async function modelsSweep(o: ModelsSweepOptions): Promise<ModelsSweepResult> {
  if (!o.models.length) throw new Error("models: expected at least one run or SD folder");
  if (!o.guidance.length || o.guidance.some((g) => !(g >= 0 && Number.isFinite(g)))) {
    throw new Error(`guidance: expected a non-empty list of scales >= 0, got [${o.guidance}]`);
  }
  if (!Number.isInteger(o.n) || o.n < 2) throw new Error(`n: expected an integer >= 2, got ${o.n}`);
  const batchSize = o.batchSize ?? 32;
  const engine = o.engine ?? "onnx";
  const keyRunDirs = o.keyRunDirs ?? o.models.length > 1;
  const boot = {
    clip: o.bootstrap?.clip ?? 200,
    fid: o.bootstrap?.fid ?? 20,
    level: o.bootstrap?.level ?? 0.95,
  };
  const cacheDir = o.cacheDir;
  const labels = modelLabels(o.models);
  const resolved: ResolvedModel[] = [];
  for (const [i, m] of o.models.entries()) resolved.push(await resolveModel(m, labels[i]));
  const firstRun = resolved.find((r) => r.spec.kind === "run");
  if (!firstRun && !o.clipModel) {
    throw new Error(
      "CLIP scores need a CLIP judge: SD folders carry no image tower, so give --clip DIR " +
        "(CLIP towers shared by every model) or a --run whose own CLIP judges every model",
    );
  }
  if (cacheDir) await Deno.mkdir(cacheDir, { recursive: true });
  // The first run's frozen parts: its kit CLIP is the default judge, and the TF.js engine reuses
  // its autoencoder and CLIP for the run's other checkpoints.
  const base = firstRun ? await loadRef(firstRun.spec.dir, firstRun.refs[0]) : null;
  const pipes = new Map<string, OnnxPipeline>();
  try {
    const clip: ClipJudge = o.clipModel ?? await kitClipImageExtractor(base!.clip, {
      runName: firstRun!.spec.dir.replace(/\/+$/, "").split("/").pop() || "run",
    });
    const fidEx = o.extractor ?? clip;
    const ident = { name: fidEx.name, preprocessing: fidEx.preprocessing, dim: fidEx.dim };
    // Reference images are made at the first model's size: a run's, or a folder's own.
    let imageSize: number;
    const first = resolved[0];
    if (first === firstRun) imageSize = base!.imageSize;
    else {
      const pipe = await loadOnnxPipeline(first.spec.dir);
      pipes.set(first.spec.dir, pipe);
      const s = pipe.height ?? pipe.width;
      if (s === null) {
        throw new Error(
          `${first.spec.dir}: does not say its image size (no unet/config.json sample_size, no ` +
            "fixed UNet input size)",
        );
      }
      imageSize = s;
    }
    const set = typeof o.promptSet === "function" ? await o.promptSet(imageSize) : o.promptSet;
    if (!set.prompts.length) throw new Error(`prompt set ${set.spec}: no prompts`);
    if (!o.referenceStats && !set.reference) {
      throw new Error(
        `prompt set ${set.spec} has no reference images: pass --reference-stats FILE ` +
          `(statistics saved with saveReferenceStats for extractor ${fidEx.name}, or a .npz ` +
          `with mu and sigma of its ${fidEx.dim}-d features)`,
      );
    }
    if (o.kid && !set.reference) {
      throw new Error(`KID needs reference images; prompt set ${set.spec} has none`);
    }
    const prompts = Array.from({ length: o.n }, (_, i) => set.prompts[i % set.prompts.length]);
    const promptsHash = await sha256Hex(JSON.stringify(prompts));
    const texts = await clip.embedTexts(prompts);

    // Reference statistics (and features, for KID).
    const refCount = set.referenceIds?.length ?? 0;
    const refKey = set.reference
      ? (await sha256Hex(JSON.stringify({ ...ident, ids: set.referenceIds }))).slice(0, 16)
      : "";
    let refFeatures: Float32Array | null = null;
    const getRefFeatures = async () => {
      if (refFeatures) return refFeatures;
      const path = cacheDir ? `${cacheDir}/reffeat-${refKey}.safetensors` : null;
      const hit = path ? await readCache(path, refKey) : null;
      refFeatures = hit?.features ??
        await extractAll(fidEx, refCount, (i) => set.reference!(i));
      if (path && !hit) {
        await writeSafetensors(path, {
          features: { shape: [refFeatures.length / fidEx.dim, fidEx.dim], data: refFeatures },
        }, { key: refKey, extractor: fidEx.name, source: set.description });
      }
      return refFeatures;
    };
    const statsOf = async (): Promise<FeatureStats> => {
      const acc = new FeatureStatsAccumulator(fidEx.dim);
      const feats = await getRefFeatures();
      acc.add(feats, feats.length / fidEx.dim);
      return acc.stats();
    };
    let refStats: FeatureStats;
    let refSource: string;
    let refCached = false;
    let refN: number | null;
    if (o.referenceStats) {
      const r = await readReferenceStats(o.referenceStats, ident);
      refStats = r;
      refN = r.format === "npz" ? null : r.n;
      refSource = o.referenceStats;
      refCached = true;
    } else {
      const path = cacheDir ? `${cacheDir}/ref-${refKey}.safetensors` : null;
      refCached = path ? await Deno.stat(path).then(() => true, () => false) : false;
      refStats = path
        ? await cachedReferenceStats(path, ident, statsOf, set.description)
        : await statsOf();
      refSource = set.description;
      refN = refStats.n;
    }
    if (refN !== null && refN < 2) {
      throw new Error(`reference statistics ${refSource}: fewer than 2 images`);
    }

    const curves = resolved.reduce((s, m) => s + m.refs.length, 0);
    const total = curves * o.guidance.length * o.n;
    let generated = 0, extracted = 0;
    const out: ModelCurves[] = [];
    for (const model of resolved) {
      const isRun = model.spec.kind === "run";
      const dir = model.spec.dir;
      const modelEngine = isRun ? engine : "onnx";
      const runKey = isRun && keyRunDirs ? await Deno.realPath(dir) : undefined;
      const points: SweepPoint[] = [];
      for (const [ci, ref] of model.refs.entries()) {
        const sameBase = model === firstRun && ci === 0;
        let run: LoadedRun | null = sameBase ? base : null;
        let pipe: OnnxPipeline | null = isRun ? null : pipes.get(dir) ?? null;
        for (const g of o.guidance) {
          const t0 = performance.now();
          const report = () =>
            o.onProgress?.({
              generated,
              extracted,
              total,
              checkpoint: ref.name,
              guidance: g,
              model: model.name,
            });
          // A run's checkpoint keeps the key of the one-run sweep (its caches stay valid).
          const key = await sha256Hex(JSON.stringify({
            v: 1,
            ...(isRun ? {} : { model: "sd-folder" }),
            ...(runKey === undefined ? {} : { run: runKey }),
            checkpoint: ref.name,
            fingerprint: ref.fingerprint,
            guidance: g,
            n: o.n,
            seed: o.seed,
            scheduler: o.scheduler,
            steps: o.steps,
            batchSize,
            engine: modelEngine,
            promptsHash,
            clip: [clip.name, clip.preprocessing],
            fid: [fidEx.name, fidEx.preprocessing],
          }));
          const path = cacheDir ? `${cacheDir}/gen-${key.slice(0, 24)}.safetensors` : null;
          const hit = path ? await readCache(path, key) : null;
          let clipFeats: Float32Array, fidFeats: Float32Array;
          if (hit && hit.clip && (fidEx === clip || hit.fid)) {
            clipFeats = hit.clip;
            fidFeats = fidEx === clip ? hit.clip : hit.fid;
            generated += o.n;
            extracted += o.n;
            report();
          } else {
            if (!isRun && !pipe) {
              pipe = await loadOnnxPipeline(dir);
              pipes.set(dir, pipe);
            }
            if (isRun && engine === "onnx" && !pipe) {
              const exportDir = await ensureOnnxExport(
                dir,
                ref.name === "final" ? {} : { checkpoint: ref.name },
              );
              pipe = await loadOnnxPipeline(exportDir);
            }
            if (isRun && engine === "tfjs" && !run) {
              run = await loadRef(dir, ref);
              if (model === firstRun) {
                // Only the UNet differs between checkpoints: keep the base's frozen parts.
                disposeParams(run.ae.params);
                disposeParams(run.clip.params);
                run = { ...run, ae: base!.ae, clip: base!.clip };
              }
            }
            const g0 = generated, e0 = extracted;
            const sampleOpts = {
              prompts,
              n: 1,
              guidance: g,
              steps: o.steps,
              scheduler: o.scheduler,
              seed: o.seed,
              batchSize,
              onProgress: (d: number) => {
                generated = g0 + d;
                report();
              },
            };
            const images = pipe
              ? await txt2img(pipe, sampleOpts)
              : await generate(run!, sampleOpts);
            const rgb = images.map((im) => ({ data: im.data, width: im.width, height: im.height }));
            clipFeats = await extractAll(clip, o.n, (i) => rgb[i], (d) => {
              extracted = e0 + d;
              report();
            });
            fidFeats = fidEx === clip ? clipFeats : await extractAll(fidEx, o.n, (i) => rgb[i]);
            if (path) {
              const tensors: Record<string, { shape: number[]; data: Float32Array }> = {
                clip: { shape: [o.n, clip.dim], data: clipFeats },
              };
              if (fidEx !== clip) tensors.fid = { shape: [o.n, fidEx.dim], data: fidFeats };
              await writeSafetensors(path, tensors, {
                key,
                model: model.name,
                checkpoint: ref.name,
                guidance: String(g),
                n: String(o.n),
                seed: String(o.seed),
                scheduler: o.scheduler,
                steps: String(o.steps),
                prompts: set.spec,
              });
            }
          }
          const cs = clipScoreWithInterval(
            { data: clipFeats, n: o.n, d: clip.dim },
            { data: texts, n: o.n, d: clip.dim },
            { resamples: boot.clip, level: boot.level, seed: o.seed },
          );
          const fd = frechetWithInterval({ data: fidFeats, n: o.n, d: fidEx.dim }, refStats, {
            resamples: boot.fid,
            level: boot.level,
            seed: o.seed,
          });
          const point: SweepPoint = {
            checkpoint: ref.name,
            step: ref.step,
            guidance: g,
            n: o.n,
            clipScore: cs,
            fid: {
              value: fd.value,
              lo: fd.lo,
              hi: fd.hi,
              level: fd.level,
              resamples: fd.resamples,
              regularized: fd.details.regularized,
            },
            cached: !!hit,
            seconds: (performance.now() - t0) / 1000,
          };
          if (o.kid) {
            const refFeats = await getRefFeatures();
            const r = kernelInceptionDistance(
              { data: fidFeats, n: o.n, d: fidEx.dim },
              { data: refFeats, n: refFeats.length / fidEx.dim, d: fidEx.dim },
              { subsets: 20, subsetSize: 1000, seed: o.seed },
            );
            point.kid = { mean: r.mean, std: r.std, subsetSize: r.subsetSize };
          }
          points.push(point);
        }
        if (run && run !== base) {
          disposeParams(run.unet.params);
          if (model !== firstRun) {
            disposeParams(run.ae.params);
            disposeParams(run.clip.params);
          }
        }
        if (isRun) await pipe?.release();
      }
      if (!isRun) {
        // Free a folder's sessions before the next model loads (an SD UNet is gigabytes).
        await pipes.get(dir)?.release();
        pipes.delete(dir);
      }
      out.push({
        name: model.name,
        kind: model.spec.kind,
        dir,
        engine: modelEngine,
        checkpoints: model.refs,
        points,
      });
    }
    return {
      prompts: { spec: set.spec, description: set.description, count: o.n, hash: promptsHash },
      settings: {
        n: o.n,
        seed: o.seed,
        steps: o.steps,
        scheduler: o.scheduler,
        batchSize,
        engine,
        guidance: o.guidance,
        bootstrap: boot,
      },
      extractor: ident,
      clipModel: clip.name,
      fidLabel: frechetLabel(fidEx.name),
      reference: { source: refSource, n: refN, cached: refCached },
      models: out,
    };
  } finally {
    for (const p of pipes.values()) await p.release();
    if (base) {
      disposeParams(base.ae.params);
      disposeParams(base.clip.params);
      disposeParams(base.unet.params);
    }
  }
}

/**
 * One result row of a report: the point with its settings, as `clip_fid.json` lists them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reportRow, type SweepPoint } from "./models_sweep.ts";
 *
 * const e = { value: 30, lo: 29, hi: 31, level: 0.95, resamples: 200 };
 * const p: SweepPoint = { checkpoint: "final", step: null, guidance: 3, n: 64, clipScore: e,
 *   fid: { ...e, value: 20, regularized: false }, cached: true, seconds: 1.23456 };
 * const r = { settings: { seed: 0 }, extractor: { name: "inception" }, fidLabel: "FID" };
 * const row = reportRow(p, r as Parameters<typeof reportRow>[1]);
 * assert.deepEqual([row.clip_score_interval, row.fid, row.seconds], [[29, 31], 20, 1.235]);
 * ```
 */
export function reportRow(
  p: SweepPoint,
  r: Pick<ModelsSweepResult, "settings" | "extractor" | "fidLabel">,
): Record<string, unknown> {
  return {
    checkpoint: p.checkpoint,
    step: p.step,
    guidance: p.guidance,
    n: p.n,
    seed: r.settings.seed,
    extractor: r.extractor.name,
    label: r.fidLabel,
    clip_score: p.clipScore.value,
    clip_score_interval: [p.clipScore.lo, p.clipScore.hi],
    fid: p.fid.value,
    fid_interval: [p.fid.lo, p.fid.hi],
    fid_regularized: p.fid.regularized,
    interval_level: p.clipScore.level,
    ...(p.kid ? { kid: p.kid.mean, kid_std: p.kid.std } : {}),
    cached: p.cached,
    seconds: Math.round(p.seconds * 1000) / 1000,
  };
}

/**
 * The protocol part of a report, the same in every `clip_fid.json`: the protocol's name, prompts,
 * settings, extractor, CLIP judge, the distance's label and the reference statistics.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reportProtocol, type SweepSummary } from "./models_sweep.ts";
 *
 * // The shared part of a sweep's result (a `modelsSweep` result has all of it).
 * const r = { prompts: { spec: "heldout" }, settings: { n: 64 }, extractor: { name: "inception" },
 *   clipModel: "ViT-B/32", fidLabel: "FID", reference: { source: "coco", n: 5000 } } as SweepSummary;
 * const doc: Record<string, unknown> = { format: "my-report", ...reportProtocol(r, { protocol: "default" }) };
 * assert.deepEqual([doc.protocol, doc.clip_model, doc.label], ["default", "ViT-B/32", "FID"]);
 * ```
 */
export function reportProtocol(
  r: SweepSummary,
  extra: ReportExtra = {},
): Record<string, unknown> {
  return {
    protocol: extra.protocol ?? null,
    prompts: r.prompts,
    settings: r.settings,
    extractor: r.extractor,
    clip_model: r.clipModel,
    label: r.fidLabel,
    reference: r.reference,
    // Only when known: the ONNX provider changes float rounding, so results record it.
    ...(extra.onnxProvider === undefined ? {} : { onnx_provider: extra.onnxProvider }),
  };
}

/** What the caller adds to a sweep's report. */
export interface ReportExtra {
  /** Name of the evaluation protocol (`evals/<name>.json`), or null. */
  protocol?: string | null;
  /** Execution provider the ONNX models ran on (`--provider`), recorded as `onnx_provider`. */
  onnxProvider?: string;
}

/** Format tag of the several-model report. */
export const MODELS_REPORT_FORMAT = "xgen-kit/clip-fid-models@1";

/**
 * The JSON report of a several-model sweep: the shared protocol once, then per model its name,
 * kind, folder, engine, checkpoints and result rows (as a one-run `clip_fid.json` lists them).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { modelsSweep, modelsSweepReport } from "./models_sweep.ts";
 * import { clipTowersExtractor } from "./feature_extractors.ts";
 * import { heldoutPromptSet } from "./prompt_sets.ts";
 * import { loadClipTowers } from "../../inference/clip_towers.ts";
 *
 * const t = "tests/fixtures/tiny_clip_towers"; // tiny seeded 3-d CLIP towers judge the images
 * const towers = await loadClipTowers({
 *   textModel: `${t}/text_model.onnx`, imageModel: `${t}/vision_model.onnx`, tokenizerDir: t,
 *   executionProviders: ["cpu"],
 * });
 * const r = await modelsSweep({
 *   models: [{ kind: "folder", dir: "tests/fixtures/tiny_sd/fp32_scalar_t" }], // a 64 px SD folder
 *   promptSet: (size) => Promise.resolve(heldoutPromptSet({ count: 4, seed: 0, size })),
 *   clipModel: await clipTowersExtractor(towers),
 *   guidance: [1, 3], n: 4, steps: 2, scheduler: "ddim", seed: 0, cacheDir: null,
 * });
 * await towers.release();
 * const doc = modelsSweepReport(r, { protocol: "default" });
 * assert.deepEqual([doc.format, doc.protocol], ["xgen-kit/clip-fid-models@1", "default"]);
 * assert.equal((doc.models as { results: unknown[] }[])[0].results.length, 2); // one per guidance
 * ```
 */
export function modelsSweepReport(
  r: ModelsSweepResult,
  extra: ReportExtra = {},
): Record<string, unknown> {
  return {
    format: MODELS_REPORT_FORMAT,
    ...reportProtocol(r, extra),
    models: r.models.map((m) => ({
      name: m.name,
      kind: m.kind,
      dir: m.dir,
      engine: m.engine,
      checkpoints: m.checkpoints,
      results: m.points.map((p) => reportRow(p, r)),
    })),
  };
}

/** A curve's name: the model's, plus the checkpoint when the model has several. */
function curveName(m: ModelCurves, c: CheckpointRef): string {
  if (m.checkpoints.length === 1) return m.name;
  return `${m.name} ${c.step === null ? "final" : `step ${c.step}`}`;
}

/**
 * One CLIP-FID figure for all models: x = CLIP score, y = FID, one trace per model (per
 * checkpoint when a run has several), points labelled by guidance scale, bootstrap intervals as
 * error bars.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { modelsFigure, modelsSweep } from "./models_sweep.ts";
 * import { clipTowersExtractor } from "./feature_extractors.ts";
 * import { heldoutPromptSet } from "./prompt_sets.ts";
 * import { loadClipTowers } from "../../inference/clip_towers.ts";
 *
 * const t = "tests/fixtures/tiny_clip_towers"; // tiny seeded 3-d CLIP towers judge the images
 * const towers = await loadClipTowers({
 *   textModel: `${t}/text_model.onnx`, imageModel: `${t}/vision_model.onnx`, tokenizerDir: t,
 *   executionProviders: ["cpu"],
 * });
 * const r = await modelsSweep({
 *   models: [{ kind: "folder", dir: "tests/fixtures/tiny_sd/fp32_scalar_t" }], // a 64 px SD folder
 *   promptSet: (size) => Promise.resolve(heldoutPromptSet({ count: 4, seed: 0, size })),
 *   clipModel: await clipTowersExtractor(towers),
 *   guidance: [1, 3], n: 4, steps: 2, scheduler: "ddim", seed: 0, cacheDir: null,
 * });
 * await towers.release();
 * const fig = modelsFigure(r); // fig.data: one trace per model
 * assert.deepEqual(fig.data.map((t) => [t.name, t.text]), [["fp32_scalar_t", ["1", "3"]]]);
 * ```
 */
export function modelsFigure(r: ModelsSweepResult): PlotlyFigure {
  return clipFidFigure(
    r,
    r.models.flatMap((m) => curvesByCheckpoint(m.checkpoints, m.points, (c) => curveName(m, c))),
  );
}

/**
 * Write `clip_fid.json` ({@link modelsSweepReport}) and `clip_fid.html` (one figure, one trace
 * per model) into `outDir`; returns their paths.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { modelsSweep, writeModelsSweepOutputs } from "./models_sweep.ts";
 * import { clipTowersExtractor } from "./feature_extractors.ts";
 * import { heldoutPromptSet } from "./prompt_sets.ts";
 * import { loadClipTowers } from "../../inference/clip_towers.ts";
 *
 * const t = "tests/fixtures/tiny_clip_towers"; // tiny seeded 3-d CLIP towers judge the images
 * const towers = await loadClipTowers({
 *   textModel: `${t}/text_model.onnx`, imageModel: `${t}/vision_model.onnx`, tokenizerDir: t,
 *   executionProviders: ["cpu"],
 * });
 * const r = await modelsSweep({
 *   models: [{ kind: "folder", dir: "tests/fixtures/tiny_sd/fp32_scalar_t" }], // a 64 px SD folder
 *   promptSet: (size) => Promise.resolve(heldoutPromptSet({ count: 4, seed: 0, size })),
 *   clipModel: await clipTowersExtractor(towers),
 *   guidance: [1, 3], n: 4, steps: 2, scheduler: "ddim", seed: 0, cacheDir: null,
 * });
 * await towers.release();
 * const dir = await Deno.makeTempDir(); // e.g. "eval-models"
 * const { json, html } = await writeModelsSweepOutputs(r, dir);
 * assert.deepEqual([json, html], [`${dir}/clip_fid.json`, `${dir}/clip_fid.html`]);
 * assert.equal(JSON.parse(await Deno.readTextFile(json)).models[0].name, "fp32_scalar_t");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeModelsSweepOutputs(
  r: ModelsSweepResult,
  outDir: string,
  extra: ReportExtra = {},
): Promise<{ json: string; html: string }> {
  return await writeClipFidOutputs(outDir, modelsSweepReport(r, extra), modelsFigure(r));
}
