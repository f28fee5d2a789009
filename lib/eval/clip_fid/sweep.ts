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
 * so a rerun with more scales or checkpoints only generates what is new.
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
import { type LoadedRun, loadRun } from "../../recipe/generate.ts";
import { ensureOnnxExport } from "../../recipe/onnx_export.ts";
import { loadOnnxPipeline, type OnnxPipeline, txt2img } from "../../onnx/sd_pipeline.ts";
import { generate } from "../../recipe/generate.ts";
import { checkpointName, listCheckpoints } from "../../train/mod.ts";
import { readSafetensors, writeSafetensors } from "../../train/safetensors.ts";
import { type PlotlyFigure, writePlotlyHtml } from "../../plot/mod.ts";
import { writeJsonAtomic } from "../../util/atomic.ts";
import { clipScoreWithInterval, type Estimate, frechetWithInterval } from "./bootstrap.ts";
import {
  type FeatureExtractor,
  frechetLabel,
  type KitClipExtractor,
  kitClipImageExtractor,
  type RgbInput,
} from "./feature_extractors.ts";
import { kernelInceptionDistance } from "./kid.ts";
import { type FeatureStats, FeatureStatsAccumulator } from "./stats.ts";
import { cachedReferenceStats, loadReferenceStats } from "./stats_file.ts";
import type { PromptSet } from "./prompt_sets.ts";

/** Which UNet weights to evaluate. */
export type CheckpointSelector = "all" | "latest" | (number | "final")[];

/** One resolved UNet checkpoint (or the finished model, named "final"). */
export interface CheckpointRef {
  /** `ckpt-XXXXXXXX` or `final`. */
  name: string;
  /** Training step (null for the finished model). */
  step: number | null;
  /** Hash of the manifest / model.json, so retrained weights never reuse stale caches. */
  fingerprint: string;
}

/** Progress of a sweep: images generated and images whose features are extracted. */
export interface SweepProgress {
  generated: number;
  extracted: number;
  /** Images per counter when the sweep is done (checkpoints x scales x n). */
  total: number;
  checkpoint: string;
  guidance: number;
}

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
  /** Precomputed reference statistics (required when the prompt set has no images). */
  referenceStats?: string;
  /** FID feature extractor (default: the run's kit CLIP image tower). */
  extractor?: FeatureExtractor;
  /**
   * CLIP model for CLIP scores (image features + text embeddings), e.g. ONNX CLIP towers shared by
   * every model compared (`clipTowersExtractor` in `feature_extractors.ts`). Default: the run's
   * own kit CLIP, whose scores compare checkpoints of one run but not different runs.
   */
  clipModel?: FeatureExtractor & { embedTexts(texts: string[]): Promise<Float32Array> };
  /** Cache folder (default `<run>/eval/cache`); null disables the cache. */
  cacheDir?: string | null;
  /**
   * What generates the images: "onnx" (default; onnxruntime on the run's export, made once per
   * checkpoint by `ensureOnnxExport`) or "tfjs". Same noise, same images up to rounding.
   */
  engine?: "onnx" | "tfjs";
  onProgress?: (p: SweepProgress) => void;
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
  reference: { source: string; n: number; cached: boolean };
  checkpoints: CheckpointRef[];
  points: SweepPoint[];
}

/**
 * Lowercase hex SHA-256 of a string.
 *
 * @example
 * ```ts
 * await sha256Hex("abc"); // "ba7816bf..."
 * ```
 */
export async function sha256Hex(s: string): Promise<string> {
  const h = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)));
  return Array.from(h, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function fileHash(path: string): Promise<string> {
  return await sha256Hex(await Deno.readTextFile(path));
}

/**
 * Parse a `--checkpoints` value: `all`, `latest`, or a comma list of steps and `final`.
 *
 * @example
 * ```ts
 * parseCheckpointSelector("1000,1500,final"); // [1000, 1500, "final"]
 * ```
 */
export function parseCheckpointSelector(s: string): CheckpointSelector {
  if (s === "all" || s === "latest") return s;
  const parts = s.split(",").map((x) => x.trim());
  return parts.map((p) => {
    if (p === "final") return "final" as const;
    if (!/^\d+$/.test(p)) {
      throw new Error(
        `checkpoints: expected all, latest or a comma list of steps (and "final"), got ${
          JSON.stringify(s)
        }`,
      );
    }
    return Number(p);
  });
}

/**
 * The UNet checkpoints a selector names: `all` = every complete `unet/ckpt-*` plus the finished
 * model, `latest` = the finished model or else the newest complete checkpoint.
 *
 * @example
 * ```ts
 * async function example() {
 *   const refs = await resolveCheckpoints("runs/default", "all");
 * }
 * ```
 */
export async function resolveCheckpoints(
  runDir: string,
  sel: CheckpointSelector,
): Promise<CheckpointRef[]> {
  const unet = `${runDir}/unet`;
  const ckpts = (await listCheckpoints(unet, { verify: "manifest" }).catch(() => []))
    .filter((c) => c.complete);
  const modelJson = `${unet}/model/model.json`;
  const hasFinal = await Deno.stat(modelJson).then(() => true, () => false);
  const ref = async (step: number | "final"): Promise<CheckpointRef> => {
    if (step === "final") {
      if (!hasFinal) throw new Error(`${unet}/model: no finished UNet model`);
      return { name: "final", step: null, fingerprint: await fileHash(modelJson) };
    }
    const name = checkpointName(step);
    if (!ckpts.some((c) => c.name === name)) {
      const have = ckpts.map((c) => c.step).join(", ") || "none";
      throw new Error(`${unet}/${name}: no complete checkpoint at step ${step} (have: ${have})`);
    }
    return { name, step, fingerprint: await fileHash(`${unet}/${name}/manifest.json`) };
  };
  let steps: (number | "final")[];
  if (sel === "all") steps = [...ckpts.map((c) => c.step), ...(hasFinal ? ["final" as const] : [])];
  else if (sel === "latest") {
    steps = hasFinal ? ["final"] : ckpts.length ? [ckpts[ckpts.length - 1].step] : [];
  } else steps = [...new Set(sel)];
  if (!steps.length) {
    throw new Error(`${unet}: no complete UNet checkpoint or finished model to evaluate`);
  }
  return await Promise.all(steps.map(ref));
}

function loadRef(runDir: string, c: CheckpointRef): Promise<LoadedRun> {
  return loadRun(runDir, c.name === "final" ? {} : { checkpoint: c.name });
}

function disposeParams(p: Record<string, { dispose(): void }>) {
  for (const v of Object.values(p)) v.dispose();
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
  if (!o.guidance.length || o.guidance.some((g) => !(g >= 0 && Number.isFinite(g)))) {
    throw new Error(`guidance: expected a non-empty list of scales >= 0, got [${o.guidance}]`);
  }
  if (!Number.isInteger(o.n) || o.n < 2) throw new Error(`n: expected an integer >= 2, got ${o.n}`);
  const batchSize = o.batchSize ?? 32;
  const engine = o.engine ?? "onnx";
  const boot = {
    clip: o.bootstrap?.clip ?? 200,
    fid: o.bootstrap?.fid ?? 20,
    level: o.bootstrap?.level ?? 0.95,
  };
  const cacheDir = o.cacheDir === undefined ? `${o.runDir}/eval/cache` : o.cacheDir;
  if (cacheDir) await Deno.mkdir(cacheDir, { recursive: true });
  const refs = await resolveCheckpoints(o.runDir, o.checkpoints);
  const base = await loadRef(o.runDir, refs[0]);
  try {
    const runName = o.runDir.replace(/\/+$/, "").split("/").pop() || "run";
    const kitClip: KitClipExtractor = await kitClipImageExtractor(base.clip, { runName });
    const clip = o.clipModel ?? kitClip;
    const fidEx = o.extractor ?? clip;
    const ident = { name: fidEx.name, preprocessing: fidEx.preprocessing, dim: fidEx.dim };
    const set = typeof o.promptSet === "function" ? await o.promptSet(base.imageSize) : o.promptSet;
    if (!set.prompts.length) throw new Error(`prompt set ${set.spec}: no prompts`);
    if (!o.referenceStats && !set.reference) {
      throw new Error(
        `prompt set ${set.spec} has no reference images: pass --reference-stats FILE ` +
          `(statistics saved with saveReferenceStats for extractor ${fidEx.name})`,
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
    if (o.referenceStats) {
      refStats = await loadReferenceStats(o.referenceStats, ident);
      refSource = o.referenceStats;
      refCached = true;
    } else {
      const path = cacheDir ? `${cacheDir}/ref-${refKey}.safetensors` : null;
      refCached = path ? await Deno.stat(path).then(() => true, () => false) : false;
      refStats = path
        ? await cachedReferenceStats(path, ident, statsOf, set.description)
        : await statsOf();
      refSource = set.description;
    }
    if (refStats.n < 2) throw new Error(`reference statistics ${refSource}: fewer than 2 images`);

    const total = refs.length * o.guidance.length * o.n;
    let generated = 0, extracted = 0;
    const points: SweepPoint[] = [];
    for (const [ci, ref] of refs.entries()) {
      let run: LoadedRun | null = ci === 0 ? base : null;
      let pipe: OnnxPipeline | null = null;
      for (const g of o.guidance) {
        const t0 = performance.now();
        const report = () =>
          o.onProgress?.({ generated, extracted, total, checkpoint: ref.name, guidance: g });
        const key = await sha256Hex(JSON.stringify({
          v: 1,
          checkpoint: ref.name,
          fingerprint: ref.fingerprint,
          guidance: g,
          n: o.n,
          seed: o.seed,
          scheduler: o.scheduler,
          steps: o.steps,
          batchSize,
          engine,
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
          if (engine === "onnx" && !pipe) {
            const dir = await ensureOnnxExport(
              o.runDir,
              ref.name === "final" ? {} : { checkpoint: ref.name },
            );
            pipe = await loadOnnxPipeline(dir);
          }
          if (engine === "tfjs" && !run) {
            run = await loadRef(o.runDir, ref);
            // Only the UNet differs between checkpoints: keep the base's frozen parts.
            disposeParams(run.ae.params);
            disposeParams(run.clip.params);
            run = { ...run, ae: base.ae, clip: base.clip };
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
          const images = pipe ? await txt2img(pipe, sampleOpts) : await generate(run!, sampleOpts);
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
      if (run && run !== base) disposeParams(run.unet.params);
      await pipe?.release();
    }
    return {
      runDir: o.runDir,
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
      reference: { source: refSource, n: refStats.n, cached: refCached },
      checkpoints: refs,
      points,
    };
  } finally {
    disposeParams(base.ae.params);
    disposeParams(base.clip.params);
    disposeParams(base.unet.params);
  }
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
    results: r.points.map((p) => ({
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
    })),
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
