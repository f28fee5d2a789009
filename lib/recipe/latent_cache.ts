/**
 * The latent cache: webdataset shards of real images and captions encoded once with a Stable
 * Diffusion folder's frozen VAE encoder and text encoder (through onnxruntime), so training the
 * UNet never runs them again.
 *
 * Each record is decoded (PNG/JPEG), resized and centre-cropped to `resolution` as diffusers'
 * `train_text_to_image.py` does (`squareCrop`: Lanczos by default), mirrored when `randomFlip`
 * draws it (one seeded draw per record: the same image flips the same way on every rebuild and
 * every rank), normalised to [-1, 1] (`(v / 255 - 0.5) / 0.5`, torchvision's order) and encoded.
 *
 * What is stored, and why:
 * - `mean`, `std` float32 `[n, h, w, c]` (NHWC, already times the folder's `scaling_factor`): the
 *   VAE posterior `DiagonalGaussianDistribution(latent_parameters)`, log-variance clamped to
 *   [-30, 20] as diffusers does, `std = exp(logvar / 2)`. The sample `mean + std * noise` is drawn
 *   at training time from the training loop's checkpointed stream, so every epoch sees a fresh
 *   posterior sample, as diffusers' script gets by encoding every batch anew, and a resumed run
 *   draws exactly what the uninterrupted one would. Latents are small (4 x 32 x 32 at 256 px) and
 *   are the regression target, so they stay float32. An encoder that outputs only
 *   `latent_sample` (older exports: the mean) gives `mean` alone and deterministic latents.
 * - `text` float16 bits `[n, T, D]`: the text encoder's `last_hidden_state` for the caption (77
 *   tokens). It is 14x the latents at SD's 77 x 768, so it is what fills disks; float16 halves
 *   it at a relative rounding of 2^-11, below anything cross-attention resolves (SD's own text
 *   encoder usually runs in float16).
 *
 * Layout of the cache folder:
 * ```
 * cache.json                 settings (parts' model digests, resolution, filter, flip, seed,
 *                            shards, data filter); written first, a rebuild with other settings
 *                            is refused
 * empty_prompt.safetensors   text [1, T, D] float32: the empty caption (caption dropout)
 * 00000.safetensors ...      one per source shard (same index in the sorted shard list):
 *                            mean, std, text + metadata keys, captions, flipped, source, stats
 * manifest.json              written last: records, skipped counts by reason, corrupt files
 * ```
 * Every file is written under a temporary name and renamed, so after a kill a cache shard is
 * either complete or absent; a resumed build skips the complete ones. With a data-parallel
 * `comm`, rank r encodes the source shards `i % size == r` and rank 0 writes the manifest once
 * every shard exists.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildLatentCache, loadLatentCache } from "./latent_cache.ts";
 * import { loadOnnxPipeline } from "../onnx/sd_pipeline.ts";
 * import { buildShapesWorldShards } from "../data/mod.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await buildShapesWorldShards({ outDir: `${dir}/shards`, seed: 0, count: 4, perShard: 2 }); // 2 tars
 * const parts = await loadOnnxPipeline("tests/fixtures/tiny_sd/fp32_scalar_t", { executionProviders: ["cpu"] });
 * // SD v1.5 on LAION: parts = loadOnnxPipeline("sd15-onnx"), data "laion/shards", resolution 256.
 * await buildLatentCache({ parts, data: `${dir}/shards`, dir: `${dir}/cache`, resolution: 64, seed: 0, log: () => {} });
 * await parts.release();
 * const cache = await loadLatentCache(`${dir}/cache`);
 * assert.deepEqual([cache.keys.length, cache.latentShape, cache.contextShape], [4, [8, 8, 4], [77, 32]]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */
import type { OnnxPipeline } from "../onnx/sd_pipeline.ts";
import { encodePrompts } from "../onnx/sd_pipeline.ts";
import { float16BitsToFloat32, float32ToFloat16Bits } from "../onnx/float16.ts";
import { NORM_SYMMETRIC, packNchw, type ResampleFilter } from "../image/preprocess.ts";
import { squareCrop } from "../image/square_crop.ts";
import { newReadStats, readShards, type ReadStats } from "../data/webdataset.ts";
import { shardSourceFor } from "../data/shard_source.ts";
import { type DataFilter, normalizeFilter } from "../data/laion_meta.ts";
import type { GcsStoreOptions } from "../storage/gcs_store.ts";
import { type Communicator, singleProcess } from "../data_parallel/comm.ts";
import { writeFileAtomic, writeJsonAtomic } from "../util/atomic.ts";
import { sha256Hex } from "../util/file_digest.ts";
import { Progress } from "../util/progress.ts";
import { Rng, STREAM } from "../util/rng.ts";
import { type CacheTensor, decodeCacheTensors, encodeCacheTensors } from "./latent_cache_file.ts";
import type { ConditioningSet } from "./stages.ts";

/** Format tag of `cache.json`. */
export const LATENT_CACHE_FORMAT = "xgen-kit-latent-cache/1";

/** Sub-path of the per-record flip streams: `Rng.stream(seed, [STREAM.data, FLIP, shard, record])`. */
const FLIP_STREAM = 0xf11b;

/** Options of {@link buildLatentCache}. */
export interface LatentCacheOptions {
  /** The loaded SD folder whose `vae_encoder` and `text_encoder` encode (its UNet is unused). */
  parts: OnnxPipeline;
  /** Where the shards are: a folder, a `gs://bucket/prefix`, or a list of tar paths / URLs. */
  data: string | readonly string[];
  /** The cache folder. */
  dir: string;
  /** Square training side in pixels (a multiple of the VAE's downsampling). */
  resolution: number;
  /** Resampling filter of the shortest-side resize (default "lanczos", diffusers' default). */
  filter?: ResampleFilter;
  /** Mirror each record left-right with probability 1/2 (seeded per record; default false). */
  randomFlip?: boolean;
  /** Seed of the flips. */
  seed: number;
  /** Data-parallel group: rank r encodes source shards i % size == r (default: this process). */
  comm?: Communicator;
  /** Images per VAE encoder call (default 8). */
  encodeBatch?: number;
  /** Status lines (default console.error). */
  log?: (line: string) => void;
  /** Show a progress line with rate and ETA on stderr (default true on rank 0). */
  progress?: boolean;
  /** Called after each cache shard is written (tests inject interruptions here). */
  onShard?: (index: number) => void | Promise<void>;
  /** Client options for `gs://` shards. */
  gcs?: GcsStoreOptions;
  /**
   * LAION metadata thresholds (aesthetic, punsafe, ...): records they drop are counted per reason
   * in the manifest's `skipped`. Part of `cache.json`: a rebuild with other filters is refused.
   */
  dataFilter?: DataFilter;
}

/** `manifest.json` of a finished cache. */
export interface LatentCacheManifest {
  format: string;
  /** Cache shard files in source-shard order. */
  shards: string[];
  /** Records cached. */
  records: number;
  /** Records in the source shards that were seen (cached or skipped). */
  seen: number;
  /** Skipped records by reason (`ReadStats.skipped`), summed over shards. */
  skipped: Record<string, number>;
  /** Files counted as corrupt, with why. */
  corruptFiles: { path: string; reason: string }[];
  /** `[h, w, c]` of a latent. */
  latentShape: [number, number, number];
  /** `[T, D]` of a caption's text states. */
  contextShape: [number, number];
  /** Whether `std` is stored (the encoder gave mean and log-variance). */
  posterior: boolean;
  scalingFactor: number;
}

/** The settings a cache was made with (`cache.json`); a rebuild must match them. */
interface CacheSettings {
  format: string;
  parts: { vaeEncoder: string; textEncoder: string; tokenizer: string };
  resolution: number;
  filter: ResampleFilter;
  randomFlip: boolean;
  seed: number;
  scalingFactor: number;
  sources: string[];
  /** Only the set thresholds; `{}` (also what a cache.json without the field means) for none. */
  dataFilter: DataFilter;
}

/**
 * Cache file of source shard `i` (its index in the sorted shard list).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cacheShardName } from "./latent_cache.ts";
 *
 * assert.equal(cacheShardName(42), "00042.safetensors");
 * ```
 */
export function cacheShardName(i: number): string {
  return `${String(i).padStart(5, "0")}.safetensors`;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** SHA-256 of a file, or "" when absent (then it is not part of the fingerprint). */
async function digestOf(path: string): Promise<string> {
  try {
    return await sha256Hex(await Deno.readFile(path));
  } catch {
    return "";
  }
}

/**
 * Build (or finish) the latent cache in `o.dir`; returns its manifest. Safe to call again after a
 * kill: complete shards are kept, and the manifest is rewritten from the shards' own records.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildLatentCache } from "./latent_cache.ts";
 * import { loadOnnxPipeline } from "../onnx/sd_pipeline.ts";
 * import { buildShapesWorldShards } from "../data/mod.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await buildShapesWorldShards({ outDir: `${dir}/shards`, seed: 0, count: 4, perShard: 2 }); // 2 tars
 * const parts = await loadOnnxPipeline("tests/fixtures/tiny_sd/fp32_scalar_t", { executionProviders: ["cpu"] });
 * const m = await buildLatentCache({ parts, data: `${dir}/shards`, dir: `${dir}/cache`, resolution: 64, seed: 0, log: () => {} });
 * await parts.release();
 * assert.deepEqual([m.records, m.shards], [4, ["00000.safetensors", "00001.safetensors"]]);
 * assert.equal(m.skipped.corruptImage, 0);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function buildLatentCache(o: LatentCacheOptions): Promise<LatentCacheManifest> {
  const comm = o.comm ?? singleProcess();
  const log = o.log ?? ((s: string) => console.error(s));
  const pipe = o.parts;
  if (!pipe.vaeEncoder || !pipe.io.encoder) {
    throw new Error(`${pipe.dir}/vae_encoder/model.onnx: missing; the latent cache needs it`);
  }
  if (!Number.isInteger(o.resolution) || o.resolution % pipe.vaeScaleFactor !== 0) {
    throw new Error(
      `resolution must be a positive multiple of ${pipe.vaeScaleFactor} (the VAE's downsampling), got ${o.resolution}`,
    );
  }
  const sources = await shardSourceFor(o.data, { gcs: o.gcs }).list();
  if (sources.length === 0) throw new Error(`${o.data}: no shards (*.tar) found`);
  const settings: CacheSettings = {
    format: LATENT_CACHE_FORMAT,
    parts: {
      vaeEncoder: await digestOf(`${pipe.dir}/vae_encoder/model.onnx`),
      textEncoder: await digestOf(`${pipe.dir}/text_encoder/model.onnx`),
      tokenizer: await digestOf(`${pipe.dir}/tokenizer/vocab.json`),
    },
    resolution: o.resolution,
    filter: o.filter ?? "lanczos",
    randomFlip: !!o.randomFlip,
    seed: o.seed,
    scalingFactor: pipe.scalingFactor,
    sources,
    dataFilter: normalizeFilter(o.dataFilter),
  };
  // Rank 0 checks or writes cache.json and the empty prompt; a failure stops every rank.
  await allRanks(comm, async () => {
    if (comm.rank !== 0) return;
    await Deno.mkdir(o.dir, { recursive: true });
    await checkSettings(`${o.dir}/cache.json`, settings);
    const empty = `${o.dir}/empty_prompt.safetensors`;
    if (!(await exists(empty))) {
      const { states, shape } = await encodePrompts(pipe, [""]);
      await writeFileAtomic(
        empty,
        encodeCacheTensors({ text: { dtype: "F32", shape: [...shape], data: states } }),
      );
    }
  });
  const mine = sources.map((_, i) => i).filter((i) => i % comm.size === comm.rank);
  const todo: number[] = [];
  for (const i of mine) if (!(await exists(`${o.dir}/${cacheShardName(i)}`))) todo.push(i);
  const lead = comm.rank === 0;
  if (lead && todo.length < mine.length) {
    log(`   latent cache: ${mine.length - todo.length} of ${mine.length} shards already cached`);
  }
  await allRanks(comm, async () => {
    const bar = (o.progress ?? true) && lead && todo.length
      ? new Progress({ total: todo.length, label: "latent cache (shards)" })
      : null;
    let images = 0;
    const t0 = performance.now();
    for (let k = 0; k < todo.length; k++) {
      const i = todo[k];
      images += await encodeShard(o, settings, i);
      const s = (performance.now() - t0) / 1000;
      bar?.update(k + 1, { images, "img/s": Number((images / s).toFixed(2)) });
      await o.onShard?.(i);
    }
    bar?.done();
  });
  let manifest: LatentCacheManifest | null = null;
  await allRanks(comm, async () => {
    if (lead) manifest = await writeManifest(o.dir, sources.length, pipe.scalingFactor);
  });
  if (!lead) manifest = await readManifest(o.dir);
  return manifest!;
}

/**
 * Run `f` on every rank, then agree: if it threw on any rank, every rank throws (rank-local
 * errors as they are), so no rank waits forever at the next collective.
 */
async function allRanks(comm: Communicator, f: () => Promise<void>): Promise<void> {
  let failure: unknown = null;
  try {
    await f();
  } catch (e) {
    failure = e;
  }
  const flag = Float64Array.of(failure ? 1 : 0);
  if (comm.size > 1) await comm.allreduceSum(flag);
  if (failure) throw failure;
  if (flag[0] > 0) throw new Error("latent cache: another rank failed; see its error");
}

async function checkSettings(path: string, want: CacheSettings): Promise<void> {
  let text: string | null = null;
  try {
    text = await Deno.readTextFile(path);
  } catch { /* a new cache */ }
  if (text === null) {
    await writeJsonAtomic(path, want);
    return;
  }
  let have: Record<string, unknown>;
  try {
    have = JSON.parse(text);
  } catch {
    throw new Error(`${path}: not valid JSON; delete the cache folder to rebuild it`);
  }
  for (const k of Object.keys(want) as (keyof CacheSettings)[]) {
    // Caches written before data filters existed were built unfiltered.
    const had = k === "dataFilter" ? have[k] ?? {} : have[k];
    if (JSON.stringify(had) !== JSON.stringify(want[k])) {
      throw new Error(
        `${path}: field "${k}" is ${JSON.stringify(had)}, but this build needs ` +
          `${JSON.stringify(want[k])}; delete the cache folder or use the same settings`,
      );
    }
  }
}

/** Encode source shard `i` into its cache file; returns the records cached. */
async function encodeShard(o: LatentCacheOptions, s: CacheSettings, i: number): Promise<number> {
  const pipe = o.parts;
  const size = s.resolution, batch = o.encodeBatch ?? 8;
  const stats = newReadStats();
  const keys: string[] = [], captions: string[] = [], flipped: boolean[] = [];
  const means: Float32Array[] = [], stds: Float32Array[] = [];
  let pending: { data: Uint8Array; width: number; height: number }[] = [];
  let posterior: boolean | null = null, dims: number[] = [];
  const flush = async () => {
    if (!pending.length) return;
    const r = await encodeLatentBatch(pipe, pending);
    posterior = r.std !== null;
    dims = r.shape;
    means.push(r.mean);
    if (r.std) stds.push(r.std);
    pending = [];
  };
  const read = readShards([s.sources[i]], { stats, gcs: o.gcs, filter: s.dataFilter });
  for await (const rec of read) {
    const flip = s.randomFlip &&
      Rng.stream(s.seed, [STREAM.data, FLIP_STREAM, i, rec.position.index]).uniform() < 0.5;
    const img = { data: rec.image, width: rec.width, height: rec.height };
    pending.push(squareCrop(img, { size, filter: s.filter, flip }));
    keys.push(rec.key);
    captions.push(rec.caption);
    flipped.push(flip);
    if (pending.length >= batch) await flush();
  }
  await flush();
  const n = keys.length;
  const lat = pipe.vaeScaleFactor;
  const [h, w, c] = n ? dims.slice(1) : [size / lat, size / lat, pipe.latentChannels];
  const text = n ? await encodePrompts(pipe, captions) : null;
  const T = text ? text.shape[1] : pipe.contextTokens, D = text ? text.shape[2] : 0;
  const tensors: Record<string, CacheTensor> = {
    mean: { dtype: "F32", shape: [n, h, w, c], data: concat(means, n * h * w * c) },
    text: {
      dtype: "F16",
      shape: [n, T, D],
      data: text ? float32ToFloat16Bits(text.states) : new Uint16Array(0),
    },
  };
  if (posterior) {
    tensors.std = { dtype: "F32", shape: [n, h, w, c], data: concat(stds, n * h * w * c) };
  }
  const bytes = encodeCacheTensors(tensors, {
    source: s.sources[i],
    keys: JSON.stringify(keys),
    captions: JSON.stringify(captions),
    flipped: JSON.stringify(flipped),
    stats: JSON.stringify({
      records: stats.records,
      skipped: stats.skipped,
      corruptFiles: stats.corruptFiles,
    }),
  });
  await writeFileAtomic(`${o.dir}/${cacheShardName(i)}`, bytes);
  return n;
}

function concat(parts: Float32Array[], total: number): Float32Array {
  const out = new Float32Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** What {@link encodeLatentBatch} returns: scaled NHWC posterior mean and std (or null). */
export interface EncodedLatents {
  mean: Float32Array;
  std: Float32Array | null;
  /** `[n, h, w, c]`. */
  shape: [number, number, number, number];
}

/**
 * Encode equally sized RGB images with the folder's VAE encoder: pixels to [-1, 1] as
 * torchvision's `Normalize([0.5], [0.5])` after `ToTensor()`, then the posterior of
 * `latent_parameters` (mean, log-variance clamped to [-30, 20], `std = exp(logvar / 2)`), both
 * times the folder's scaling factor, NHWC; `std` is null for an encoder that outputs only the
 * mean (`latent_sample`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeLatentBatch } from "./latent_cache.ts";
 * import { loadOnnxPipeline } from "../onnx/sd_pipeline.ts";
 *
 * const pipe = await loadOnnxPipeline("tests/fixtures/tiny_sd/fp32_scalar_t", { executionProviders: ["cpu"] });
 * const img = { data: new Uint8Array(64 * 64 * 3), width: 64, height: 64 };
 * const { mean, std, shape } = await encodeLatentBatch(pipe, [img]);
 * assert.deepEqual([shape, mean.length, std?.length], [[1, 8, 8, 4], 256, 256]);
 * await pipe.release();
 * ```
 */
export async function encodeLatentBatch(
  pipe: OnnxPipeline,
  images: readonly { data: Uint8Array; width: number; height: number }[],
): Promise<EncodedLatents> {
  const enc = pipe.vaeEncoder, io = pipe.io.encoder;
  if (!enc || !io) throw new Error(`${pipe.dir}/vae_encoder/model.onnx: missing`);
  const n = images.length, H = images[0].height, W = images[0].width;
  const x = packNchw(images, NORM_SYMMETRIC);
  const feed = io.imageDtype === "float16" ? float32ToFloat16Bits(x) : x;
  const out = (await enc.run({ [io.image]: { data: feed, shape: [n, 3, H, W] } }, [io.latent]))[
    io.latent
  ];
  const L = pipe.latentChannels;
  const [on, oc, h, w] = out.dims;
  if (out.dims.length !== 4 || on !== n || (oc !== L && oc !== 2 * L)) {
    throw new Error(
      `${enc.name}: output "${io.latent}" is [${out.dims}], expected [${n}, ${L} or ${
        2 * L
      }, h, w]`,
    );
  }
  // onnxruntime gives float16 as raw bits (Uint16Array), or a Float16Array where one exists.
  const raw = out.data instanceof Float32Array
    ? out.data
    : out.type === "float16" && out.data instanceof Uint16Array
    ? float16BitsToFloat32(out.data)
    : out.type === "float16" && ArrayBuffer.isView(out.data)
    ? Float32Array.from(out.data as unknown as ArrayLike<number>)
    : null;
  if (!raw) throw new Error(`${enc.name}: output "${io.latent}" is ${out.type}; expected float`);
  const sf = pipe.scalingFactor, plane = h * w;
  const mean = new Float32Array(n * plane * L);
  const std = oc === 2 * L ? new Float32Array(n * plane * L) : null;
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < L; ch++) {
      const mo = (b * oc + ch) * plane, lo = (b * oc + L + ch) * plane;
      for (let p = 0; p < plane; p++) {
        const dst = (b * plane + p) * L + ch;
        mean[dst] = raw[mo + p] * sf;
        if (std) {
          const lv = Math.min(20, Math.max(-30, raw[lo + p]));
          std[dst] = Math.exp(0.5 * lv) * sf;
        }
      }
    }
  }
  return { mean, std, shape: [n, h, w, L] };
}

/** Rank 0: read every cache shard's record counts and write `manifest.json` (last). */
async function writeManifest(
  dir: string,
  count: number,
  scalingFactor: number,
): Promise<LatentCacheManifest> {
  const skipped: Record<string, number> = { ...newReadStats().skipped };
  const corruptFiles: { path: string; reason: string }[] = [];
  let records = 0, seen = 0, posterior = true;
  let latentShape: [number, number, number] = [0, 0, 0], contextShape: [number, number] = [0, 0];
  const shards: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = cacheShardName(i);
    const path = `${dir}/${name}`;
    if (!(await exists(path))) {
      throw new Error(`${path}: missing; a rank did not finish its shards`);
    }
    const f = decodeCacheTensors(await Deno.readFile(path), path);
    const st = JSON.parse(f.metadata.stats ?? "{}") as Partial<ReadStats>;
    for (const [k, v] of Object.entries(st.skipped ?? {})) skipped[k] = (skipped[k] ?? 0) + v;
    corruptFiles.push(...(st.corruptFiles ?? []));
    seen += st.records ?? 0;
    const n = f.tensors.mean.shape[0];
    records += n;
    if (n > 0) {
      latentShape = f.tensors.mean.shape.slice(1) as [number, number, number];
      contextShape = f.tensors.text.shape.slice(1) as [number, number];
      posterior &&= !!f.tensors.std;
    }
    shards.push(name);
  }
  const m: LatentCacheManifest = {
    format: LATENT_CACHE_FORMAT,
    shards,
    records,
    seen,
    skipped,
    corruptFiles,
    latentShape,
    contextShape,
    posterior: records > 0 && posterior,
    scalingFactor,
  };
  await writeJsonAtomic(`${dir}/manifest.json`, m);
  return m;
}

async function readManifest(dir: string): Promise<LatentCacheManifest> {
  const path = `${dir}/manifest.json`;
  let m: LatentCacheManifest;
  try {
    m = JSON.parse(await Deno.readTextFile(path));
  } catch {
    throw new Error(
      `${path}: missing or unreadable; build the cache first (an unfinished cache has none)`,
    );
  }
  if (m.format !== LATENT_CACHE_FORMAT) {
    throw new Error(
      `${path}: format is ${JSON.stringify(m.format)}, expected ${LATENT_CACHE_FORMAT}`,
    );
  }
  return m;
}

/** A loaded cache: what the UNet stage trains on, plus each record's key and caption. */
export interface LatentCacheSet extends ConditioningSet {
  keys: string[];
  captions: string[];
  manifest: LatentCacheManifest;
}

/**
 * Load a finished cache into memory for training: posterior means as `latents`, `latentStd` when
 * stored, text states kept as float16 bits (`contexts`), the empty prompt's states.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildLatentCache, loadLatentCache } from "./latent_cache.ts";
 * import { loadOnnxPipeline } from "../onnx/sd_pipeline.ts";
 * import { buildShapesWorldShards } from "../data/mod.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await buildShapesWorldShards({ outDir: `${dir}/shards`, seed: 0, count: 4, perShard: 2 }); // 2 tars
 * const parts = await loadOnnxPipeline("tests/fixtures/tiny_sd/fp32_scalar_t", { executionProviders: ["cpu"] });
 * await buildLatentCache({ parts, data: `${dir}/shards`, dir: `${dir}/cache`, resolution: 64, seed: 0, log: () => {} });
 * await parts.release();
 * const set = await loadLatentCache(`${dir}/cache`); // e.g. "runs/sd/cache"
 * assert.deepEqual([set.keys.length, set.captions.length, set.latentShape, set.contextShape], [4, 4, [8, 8, 4], [77, 32]]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadLatentCache(dir: string): Promise<LatentCacheSet> {
  const manifest = await readManifest(dir);
  const N = manifest.records;
  if (N === 0) throw new Error(`${dir}/manifest.json: the cache holds no records`);
  const [h, w, c] = manifest.latentShape, [T, D] = manifest.contextShape;
  const per = h * w * c, ctxPer = T * D;
  const latents = new Float32Array(N * per);
  const latentStd = manifest.posterior ? new Float32Array(N * per) : undefined;
  const contexts = new Uint16Array(N * ctxPer);
  const keys: string[] = [], captions: string[] = [];
  let at = 0;
  for (const name of manifest.shards) {
    const path = `${dir}/${name}`;
    const f = decodeCacheTensors(await Deno.readFile(path), path);
    const n = f.tensors.mean.shape[0];
    if (n === 0) continue;
    const shapeOk = f.tensors.mean.shape.slice(1).join() === manifest.latentShape.join() &&
      f.tensors.text.shape.slice(1).join() === manifest.contextShape.join();
    if (!shapeOk) {
      throw new Error(
        `${path}: mean [${f.tensors.mean.shape}] / text [${f.tensors.text.shape}] do not match ` +
          `the manifest's [n, ${manifest.latentShape}] / [n, ${manifest.contextShape}]`,
      );
    }
    latents.set(f.tensors.mean.data as Float32Array, at * per);
    if (latentStd) latentStd.set(f.tensors.std.data as Float32Array, at * per);
    contexts.set(f.tensors.text.data as Uint16Array, at * ctxPer);
    keys.push(...JSON.parse(f.metadata.keys));
    captions.push(...JSON.parse(f.metadata.captions));
    at += n;
  }
  const emptyPath = `${dir}/empty_prompt.safetensors`;
  const empty = decodeCacheTensors(await Deno.readFile(emptyPath), emptyPath).tensors.text;
  if (empty.data.length !== ctxPer) {
    throw new Error(`${emptyPath}: text [${empty.shape}], expected [1, ${T}, ${D}]`);
  }
  return {
    latents,
    latentStd,
    latentShape: [h, w, c],
    contexts,
    emptyContext: empty.data as Float32Array,
    contextShape: [T, D],
    keys,
    captions,
    manifest,
  };
}
