/**
 * Webdataset shards in img2dataset's LAION layout, written atomically and read as a stream.
 *
 * A dataset folder holds, per shard `i`: `0000i.tar` (`key.png`, `key.txt`, `key.json` for each
 * sample), `0000i.parquet` (one row of metadata per sample) and `0000i_stats.json` (counts, written
 * last: a shard without stats is incomplete). {@link buildShapesWorldShards} adds `dataset.json`
 * (written after every shard), so an existing complete dataset is detected and reused.
 *
 * {@link readShards} never dies on bad data: entries escaping the folder (absolute paths, `..`),
 * links, corrupt images, samples without caption, truncated or corrupt tars are skipped and
 * counted in a {@link ReadStats}; so is a parquet sidecar that does not parse (metadata then
 * comes from each sample's `key.json`), with its file name. Samples that LAION metadata filters
 * drop (`filter`: aesthetic, punsafe, pwatermark, similarity, original size; see
 * `laion_meta.ts`) are counted per reason, apart from the corrupt ones. It partitions shards across
 * ranks, shuffles shard order with an {@link Rng}, and resumes from a `{shard, index}` position
 * exactly. Shards can live in a local folder or under a `gs://bucket/prefix` (streamed, see
 * `shard_source.ts`); both read the same.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   buildShapesWorldShards,
 *   formatReadStats,
 *   newReadStats,
 *   readShards,
 * } from "./webdataset.ts";
 *
 * const dir = await Deno.makeTempDir(); // e.g. runs/data/train32
 * await buildShapesWorldShards({ outDir: dir, seed: 0, count: 4, perShard: 2 });
 * const stats = newReadStats();
 * const keys: string[] = [];
 * for await (const s of readShards(dir, { stats, minAesthetic: 0 })) keys.push(s.key);
 * assert.equal(keys.length, 4);
 * assert.equal(formatReadStats(stats), "4 of 4 records read from 2 shards; nothing skipped");
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */

import tarStream from "npm:tar-stream@3.2.2";
import { parquetMetadata, parquetReadObjects, parquetSchema } from "npm:hyparquet@1.33.0";
import { parquetWriteBuffer } from "npm:hyparquet-writer@0.17.0";
import type { Rng } from "../util/rng.ts";
import type { GcsStoreOptions } from "../storage/gcs_store.ts";
import { writeFileAtomic, writeJsonAtomic } from "../util/atomic.ts";
import { concatBytes } from "../util/concat.ts";
import { decodePngRgb, encodePngRgb } from "./png.ts";
import { decodeJpegRgb } from "./jpeg.ts";
import { decodeWebpRgb, loadWebpDecoder } from "./webp.ts";
import { shapesWorldSample } from "./shapes_world.ts";
import {
  absentColumn,
  type DataFilter,
  type FilterReason,
  filterVerdict,
  hasFilter,
  LAION_COLUMN_NAMES,
  type LaionMeta,
  laionMeta,
  mergeMeta,
  missingColumnError,
  normalizeFilter,
} from "./laion_meta.ts";
import {
  parquetNameOf,
  type ShardSource,
  shardSourceFor,
  ShardTransportError,
} from "./shard_source.ts";

/** A sample to write: RGB pixels, caption, optional metadata (stored in `key.json`). */
export interface ShardSampleInput {
  key: string;
  /** Row-major RGB, `height * width * 3` bytes. */
  image: Uint8Array;
  width: number;
  height: number;
  caption: string;
  /** Generator metadata; `meta.aesthetic` (number) fills the aesthetic column. */
  meta?: { aesthetic?: number };
  /** Where the image came from (img2dataset's `url` column; null when unknown). */
  url?: string | null;
  /** EXIF as a JSON string (img2dataset's `exif` column; null when unknown). */
  exif?: string | null;
}

/** Paths and size of one written shard. */
export interface ShardInfo {
  index: number;
  tar: string;
  parquet: string;
  stats: string;
  count: number;
}

/** `00042` style shard stem. */
export function shardStem(index: number): string {
  return index.toString().padStart(5, "0");
}

function joinPath(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

const KEY_RE = /^[A-Za-z0-9_-]+$/;

/** Build an in-memory tar from (name, bytes) entries; fixed mtime so shards are reproducible. */
async function tarBytes(entries: [string, Uint8Array][]): Promise<Uint8Array> {
  const pack = tarStream.pack();
  const mtime = new Date(0);
  const chunks: Uint8Array[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(c as Uint8Array);
  })();
  for (const [name, data] of entries) {
    await new Promise<void>((res, rej) =>
      pack.entry({ name, size: data.length, mtime, mode: 0o644 }, data, (e) => e ? rej(e) : res())
    );
  }
  pack.finalize();
  await done;
  return concatBytes(chunks);
}

/** Options for {@link writeShard}. */
export interface WriteShardOptions {
  outDir: string;
  index: number;
  samples: readonly ShardSampleInput[];
  /** Extra fields for `_stats.json` (e.g. the generator config). */
  extraStats?: Record<string, unknown>;
}

/**
 * Write one shard (tar, parquet, then stats last), each file atomically.
 *
 * @example
 * ```ts
 * import { writeShard } from "./webdataset.ts";
 * import { shapesWorldSample } from "./shapes_world.ts";
 *
 * const outDir = await Deno.makeTempDir(); // e.g. "out"
 * await writeShard({ outDir, index: 0, samples: [shapesWorldSample(0, { seed: 1 })] });
 * await Deno.remove(outDir, { recursive: true });
 * ```
 */
export async function writeShard(opts: WriteShardOptions): Promise<ShardInfo> {
  const { outDir, index, samples } = opts;
  const start = new Date();
  const stem = shardStem(index);
  const entries: [string, Uint8Array][] = [];
  const enc = new TextEncoder();
  const rows = {
    key: [] as string[],
    caption: [] as string[],
    status: [] as string[],
    error_message: [] as (string | null)[],
    width: [] as number[],
    height: [] as number[],
    original_width: [] as number[],
    original_height: [] as number[],
    sha256: [] as string[],
    aesthetic: [] as (number | null)[],
    url: [] as (string | null)[],
    exif: [] as (string | null)[],
    meta: [] as string[],
  };
  const seen = new Set<string>();
  for (const s of samples) {
    if (!KEY_RE.test(s.key)) {
      throw new Error(
        `writeShard ${stem}: key "${s.key}" must match ${KEY_RE} (no dots or slashes)`,
      );
    }
    if (seen.has(s.key)) throw new Error(`writeShard ${stem}: duplicate key "${s.key}"`);
    seen.add(s.key);
    const png = encodePngRgb(s.image, s.width, s.height);
    const sha256 = await sha256Hex(png);
    const aesthetic = typeof s.meta?.aesthetic === "number" ? s.meta.aesthetic : null;
    const url = s.url ?? null, exif = s.exif ?? null;
    // img2dataset's own columns, so tools written for its shards read the kit's as they are.
    const json = {
      key: s.key,
      caption: s.caption,
      status: "success",
      error_message: null,
      width: s.width,
      height: s.height,
      original_width: s.width,
      original_height: s.height,
      sha256,
      aesthetic,
      url,
      exif,
      meta: s.meta ?? null,
    };
    entries.push([`${s.key}.png`, png]);
    entries.push([`${s.key}.txt`, enc.encode(s.caption)]);
    entries.push([`${s.key}.json`, enc.encode(JSON.stringify(json))]);
    rows.key.push(s.key);
    rows.caption.push(s.caption);
    rows.status.push("success");
    rows.error_message.push(null);
    rows.width.push(s.width);
    rows.height.push(s.height);
    rows.original_width.push(s.width);
    rows.original_height.push(s.height);
    rows.sha256.push(sha256);
    rows.aesthetic.push(aesthetic);
    rows.url.push(url);
    rows.exif.push(exif);
    rows.meta.push(JSON.stringify(s.meta ?? null));
  }
  const info: ShardInfo = {
    index,
    tar: joinPath(outDir, `${stem}.tar`),
    parquet: joinPath(outDir, `${stem}.parquet`),
    stats: joinPath(outDir, `${stem}_stats.json`),
    count: samples.length,
  };
  await Deno.mkdir(outDir, { recursive: true });
  await writeFileAtomic(info.tar, await tarBytes(entries));
  const parquet = parquetWriteBuffer({
    columnData: [
      { name: "key", data: rows.key, type: "STRING" },
      { name: "caption", data: rows.caption, type: "STRING" },
      { name: "status", data: rows.status, type: "STRING" },
      { name: "error_message", data: rows.error_message, type: "STRING" },
      { name: "width", data: Int32Array.from(rows.width), type: "INT32" },
      { name: "height", data: Int32Array.from(rows.height), type: "INT32" },
      { name: "original_width", data: Int32Array.from(rows.original_width), type: "INT32" },
      { name: "original_height", data: Int32Array.from(rows.original_height), type: "INT32" },
      { name: "sha256", data: rows.sha256, type: "STRING" },
      { name: "aesthetic", data: rows.aesthetic, type: "DOUBLE" },
      { name: "url", data: rows.url, type: "STRING" },
      { name: "exif", data: rows.exif, type: "STRING" },
      { name: "meta", data: rows.meta, type: "STRING" },
    ],
  });
  await writeFileAtomic(info.parquet, new Uint8Array(parquet));
  const end = new Date();
  await writeJsonAtomic(info.stats, {
    count: samples.length,
    successes: samples.length,
    failed_to_download: 0,
    failed_to_resize: 0,
    duration: (end.getTime() - start.getTime()) / 1000,
    start_time: start.getTime() / 1000,
    end_time: end.getTime() / 1000,
    status_dict: { success: samples.length },
    ...opts.extraStats,
  });
  return info;
}

/**
 * Read a shard's parquet metadata as row objects.
 *
 * @example
 * ```ts
 * import { shapesWorldSample } from "./shapes_world.ts";
 *
 * const outDir = await Deno.makeTempDir(); // e.g. "out"
 * await writeShard({ outDir, index: 0, samples: [shapesWorldSample(0, { seed: 1 })] });
 * const rows = await readShardParquet(`${outDir}/00000.parquet`);
 * console.log(rows[0].key, rows[0].aesthetic);
 * await Deno.remove(outDir, { recursive: true });
 * ```
 */
export async function readShardParquet(path: string): Promise<Record<string, unknown>[]> {
  return await parseShardParquet(await Deno.readFile(path), path);
}

async function parseShardParquet(
  bytes: Uint8Array,
  where: string,
): Promise<Record<string, unknown>[]> {
  try {
    const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    return await parquetReadObjects({ file: file as ArrayBuffer });
  } catch (e) {
    throw new Error(`${where}: cannot read parquet (${(e as Error).message})`);
  }
}

/** Configuration recorded in `dataset.json`; equal config means the dataset can be reused. */
export interface ShapesWorldShardsConfig {
  generator: "shapes_world";
  version: number;
  seed: number;
  count: number;
  perShard: number;
  size: number;
  split: "train" | "heldout";
  singleObjectOnly: boolean;
}

/** Contents of `dataset.json`. */
export interface DatasetManifest {
  config: ShapesWorldShardsConfig;
  count: number;
  /** Tar file names relative to the dataset folder, in order. */
  shards: string[];
}

/** Options for {@link buildShapesWorldShards}. */
export interface BuildShardsOptions {
  outDir: string;
  seed: number;
  count: number;
  /** Samples per shard (default 1000). */
  perShard?: number;
  /** Image side (default 32). */
  size?: number;
  split?: "train" | "heldout";
  singleObjectOnly?: boolean;
  /** Called after each shard. */
  onShard?: (info: ShardInfo) => void;
}

/** Bump when the generator's output changes, so old datasets are rebuilt. */
const SHAPES_WORLD_VERSION = 1;

async function readJsonOrNull(path: string): Promise<unknown> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch {
    return null;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Generate shapes-world samples `0..count-1` and write them as shards, then `dataset.json`.
 * Returns `{ skipped: true }` when `dataset.json` already records the same config and its shards
 * exist. After a crash, shards whose `_stats.json` records the same config are kept.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const outDir = await Deno.makeTempDir(); // e.g. "d"
 * const { manifest } = await buildShapesWorldShards({ outDir, seed: 1, count: 100, perShard: 50 });
 * assert.deepEqual(manifest.shards, ["00000.tar", "00001.tar"]);
 * await Deno.remove(outDir, { recursive: true });
 * ```
 */
export async function buildShapesWorldShards(
  opts: BuildShardsOptions,
): Promise<{ manifest: DatasetManifest; skipped: boolean }> {
  const config: ShapesWorldShardsConfig = {
    generator: "shapes_world",
    version: SHAPES_WORLD_VERSION,
    seed: opts.seed,
    count: opts.count,
    perShard: opts.perShard ?? 1000,
    size: opts.size ?? 32,
    split: opts.split ?? "train",
    singleObjectOnly: opts.singleObjectOnly ?? false,
  };
  if (!Number.isInteger(config.count) || config.count < 0) {
    throw new Error(
      `buildShapesWorldShards: count must be a non-negative integer, got ${config.count}`,
    );
  }
  if (!Number.isInteger(config.perShard) || config.perShard <= 0) {
    throw new Error(
      `buildShapesWorldShards: perShard must be a positive integer, got ${config.perShard}`,
    );
  }
  const same = (c: unknown) => JSON.stringify(c) === JSON.stringify(config);
  const manifestPath = joinPath(opts.outDir, "dataset.json");
  const old = await readJsonOrNull(manifestPath) as DatasetManifest | null;
  if (old && same(old.config)) {
    const all = await Promise.all(old.shards.map((s) => exists(joinPath(opts.outDir, s))));
    if (all.every(Boolean)) return { manifest: old, skipped: true };
  }
  await Deno.remove(manifestPath).catch(() => {});
  await Deno.mkdir(opts.outDir, { recursive: true });
  const nShards = Math.ceil(config.count / config.perShard);
  const shards: string[] = [];
  for (let i = 0; i < nShards; i++) {
    const stem = shardStem(i);
    shards.push(`${stem}.tar`);
    const statsPath = joinPath(opts.outDir, `${stem}_stats.json`);
    const st = await readJsonOrNull(statsPath) as { config?: unknown } | null;
    if (
      st && same(st.config) && await exists(joinPath(opts.outDir, `${stem}.tar`)) &&
      await exists(joinPath(opts.outDir, `${stem}.parquet`))
    ) continue;
    const lo = i * config.perShard, hi = Math.min(config.count, lo + config.perShard);
    const samples = [];
    for (let k = lo; k < hi; k++) {
      samples.push(shapesWorldSample(k, {
        seed: config.seed,
        size: config.size,
        split: config.split,
        singleObjectOnly: config.singleObjectOnly,
      }));
    }
    const info = await writeShard({
      outDir: opts.outDir,
      index: i,
      samples,
      extraStats: { config },
    });
    opts.onShard?.(info);
  }
  const manifest: DatasetManifest = { config, count: config.count, shards };
  await writeJsonAtomic(manifestPath, manifest);
  return { manifest, skipped: false };
}

/** Counts kept by {@link readShards}. */
export interface ReadStats {
  /** Shards opened. */
  shards: number;
  /** Sample groups seen (after the resume point). */
  records: number;
  /** Samples yielded. */
  read: number;
  skipped: {
    /** Tar entries with an absolute path or a `..` component. */
    escape: number;
    /** Symlinks and hard links (could point outside the folder). */
    link: number;
    /** Directories, devices, files without an extension. */
    otherEntry: number;
    /** Image bytes that do not decode. */
    corruptImage: number;
    /**
     * Samples whose only image is in a format the kit does not decode (e.g. `key.gif`, `key.avif`;
     * PNG, JPEG and WebP are decoded).
     */
    unsupportedImage: number;
    /** Samples with no image at all. */
    missingImage: number;
    /** Samples with no (or an empty) caption. */
    missingCaption: number;
    /** `key.json` that is not valid JSON (the sample is kept with `json: null`). */
    corruptJson: number;
    /** Tars that end in the middle of an entry (the unfinished sample is dropped). */
    truncated: number;
    /** Tars with an invalid header (the rest of the shard is dropped). */
    corruptTar: number;
    /** Shards that could not be opened. */
    unreadableShard: number;
    /** Samples under `minAesthetic` (filtered, not corrupt). */
    aesthetic: number;
    /** Samples with no aesthetic score while `minAesthetic` is set. */
    missingAesthetic: number;
    /**
     * Parquet sidecars that exist but do not parse, read while a filter is set or `metadata` is
     * asked for (their samples are kept, their metadata taken from `key.json`); named in
     * {@link ReadStats.corruptFiles}.
     */
    corruptParquet: number;
    /** Samples over `maxPunsafe`. */
    punsafe: number;
    /** Samples with no punsafe value while `maxPunsafe` is set. */
    missingPunsafe: number;
    /** Samples over `maxPwatermark`. */
    pwatermark: number;
    /** Samples with no pwatermark value while `maxPwatermark` is set. */
    missingPwatermark: number;
    /** Samples under `minSimilarity`. */
    similarity: number;
    /** Samples with no similarity value while `minSimilarity` is set. */
    missingSimilarity: number;
    /** Samples whose original width or height is under `minSize`. */
    size: number;
    /** Samples with no original size while `minSize` is set. */
    missingSize: number;
  };
  /** Files counted as corrupt, with why, in the order met (the sample counts cannot name them). */
  corruptFiles: { path: string; reason: string }[];
}

/**
 * Fresh zeroed {@link ReadStats}.
 *
 * @example
 * ```ts
 * const stats = newReadStats();
 * ```
 */
export function newReadStats(): ReadStats {
  return {
    shards: 0,
    records: 0,
    read: 0,
    skipped: {
      escape: 0,
      link: 0,
      otherEntry: 0,
      corruptImage: 0,
      unsupportedImage: 0,
      missingImage: 0,
      missingCaption: 0,
      corruptJson: 0,
      truncated: 0,
      corruptTar: 0,
      unreadableShard: 0,
      aesthetic: 0,
      missingAesthetic: 0,
      corruptParquet: 0,
      punsafe: 0,
      missingPunsafe: 0,
      pwatermark: 0,
      missingPwatermark: 0,
      similarity: 0,
      missingSimilarity: 0,
      size: 0,
      missingSize: 0,
    },
    corruptFiles: [],
  };
}

/**
 * One line for logs: how many records were read, the non-zero skip counts, and the corrupt files
 * by name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatReadStats, newReadStats } from "./webdataset.ts";
 *
 * const stats = newReadStats();
 * Object.assign(stats, { records: 12, read: 9, shards: 2 });
 * stats.skipped.aesthetic = 3;
 * assert.equal(formatReadStats(stats), "9 of 12 records read from 2 shards; skipped: aesthetic 3");
 * ```
 */
export function formatReadStats(stats: ReadStats): string {
  const head = `${stats.read} of ${stats.records} records read from ${stats.shards} shard` +
    (stats.shards === 1 ? "" : "s");
  const counts = Object.entries(stats.skipped).filter(([, n]) => n > 0);
  if (!counts.length) return `${head}; nothing skipped`;
  const files = stats.corruptFiles.map((f) => `${f.path}: ${f.reason}`).join("; ");
  return `${head}; skipped: ${counts.map(([k, n]) => `${k} ${n}`).join(", ")}` +
    (files ? ` (${files})` : "");
}

/** Where to resume: shard position in this rank's order, and groups already consumed in it. */
export interface ReadPosition {
  shard: number;
  index: number;
}

/** A sample read from a shard. */
export interface ShardSample {
  key: string;
  image: Uint8Array;
  width: number;
  height: number;
  caption: string;
  /** Parsed `key.json`, or null when absent or invalid. */
  json: Record<string, unknown> | null;
  /**
   * LAION / img2dataset metadata: the parquet row's values (when the sidecar was read: a filter
   * is set or `metadata` asked for), else `key.json`'s, field by field.
   */
  meta: LaionMeta;
  /**
   * Set only with `yieldFiltered`: why the filter drops this sample (it is counted under that
   * reason in `stats.skipped`, and its image is not decoded).
   */
  dropped?: FilterReason;
  /** Tar file it came from. */
  shardPath: string;
  /** Position to resume from to continue right after this sample. */
  position: ReadPosition;
}

/** Options for {@link readShards} and {@link shardOrder}. */
export interface ReadShardsOptions {
  /** Filled in place with counts. */
  stats?: ReadStats;
  /**
   * Drop samples whose aesthetic score (parquet column, else json) is below this; the same as
   * `filter.minAesthetic` (give one of the two).
   */
  minAesthetic?: number;
  /**
   * Thresholds on LAION metadata (parquet row, else `key.json`); dropped samples are counted per
   * reason in `stats.skipped`. A needed column absent from a shard throws, naming both.
   */
  filter?: DataFilter;
  /** Read each shard's parquet sidecar into `meta` even without a filter (default false). */
  metadata?: boolean;
  /**
   * Decode images (default true). With false, samples that have an image file of any kind are
   * yielded with an empty `image` and `width`/`height` from the metadata (0 when unknown): for
   * caption and metadata statistics, which then never pay for decoding.
   */
  decode?: boolean;
  /** Also yield the samples the filter drops, marked with `dropped` (default false). */
  yieldFiltered?: boolean;
  /** Shuffles this rank's shard order (advances the generator). */
  rng?: Rng;
  /** This worker's rank (default 0); it takes shards i with i % worldSize == rank. */
  rank?: number;
  worldSize?: number;
  /** Resume point (from a yielded sample's `position`). */
  start?: ReadPosition;
  /** Client options for `gs://` shards (emulator endpoint, retries, a ready client...). */
  gcs?: GcsStoreOptions;
}

/**
 * Tar paths (or `gs://` URLs) of a dataset folder or bucket prefix: the shards listed in
 * `dataset.json` when present, else every `*.tar` directly inside, sorted by name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildShapesWorldShards, listShards } from "./webdataset.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await buildShapesWorldShards({ outDir: dir, seed: 0, count: 2, perShard: 1 });
 * assert.deepEqual(await listShards(dir), [`${dir}/00000.tar`, `${dir}/00001.tar`]);
 * // gs:// too: listShards("gs://bucket/laion", { gcs: { apiEndpoint: "http://127.0.0.1:9199" } })
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function listShards(
  location: string,
  opts: Pick<ReadShardsOptions, "gcs"> = {},
): Promise<string[]> {
  return await shardSourceFor(location, opts).list();
}

/**
 * The shards this rank reads, in order: partition the sorted list by `i % worldSize == rank`
 * first (so ranks never overlap whatever generators they use), then shuffle with `rng`.
 *
 * @example
 * ```ts
 * shardOrder(["a.tar", "b.tar", "c.tar"], { rank: 1, worldSize: 2 }); // ["b.tar"]
 * ```
 */
export function shardOrder(
  paths: readonly string[],
  opts: Pick<ReadShardsOptions, "rank" | "worldSize" | "rng"> = {},
): string[] {
  const worldSize = opts.worldSize ?? 1, rank = opts.rank ?? 0;
  if (!Number.isInteger(worldSize) || worldSize < 1) {
    throw new Error(`readShards: worldSize must be a positive integer, got ${worldSize}`);
  }
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
    throw new Error(`readShards: rank must be an integer in [0, ${worldSize}), got ${rank}`);
  }
  const mine = paths.filter((_, i) => i % worldSize === rank);
  return opts.rng ? opts.rng.shuffle(mine) : mine;
}

/** Whether a tar entry path would land outside the extraction folder. */
export function isEscapingPath(name: string): boolean {
  if (name.startsWith("/") || name.startsWith("\\") || /^[A-Za-z]:/.test(name)) return true;
  return name.split(/[\\/]/).some((part) => part === "..");
}

interface Group {
  key: string;
  files: Map<string, Uint8Array>;
}

/** Image extensions decoded, in order of preference when a sample has more than one. */
const DECODED_IMAGE_EXTS = ["png", "jpg", "jpeg", "webp"];

/**
 * Image files the kit cannot decode: a sample with only one of these counts as
 * `unsupportedImage`, not `missingImage` (the image is there, in another format).
 */
const UNDECODED_IMAGE_EXTS = ["gif", "avif", "bmp", "tif", "tiff", "jxl", "heic"];

type TarExtract = ReturnType<typeof tarStream.extract>;

/**
 * Push a shard's bytes into a tar extractor, respecting backpressure; ends or destroys it. The
 * stream's own error is handed to `onError` as is: a storage failure must stay recognisable
 * (streamx may wrap what `destroy` is given).
 */
async function feed(
  bytes: ReadableStream<Uint8Array>,
  extract: TarExtract,
  onError: (e: unknown) => void,
): Promise<void> {
  const reader = bytes.getReader();
  try {
    while (!extract.destroyed) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!extract.write(value)) {
        await new Promise<void>((res) => {
          const done = () => {
            extract.off("drain", done);
            extract.off("close", done);
            res();
          };
          extract.on("drain", done);
          extract.on("close", done);
        });
      }
    }
    if (!extract.destroyed) extract.end(null);
  } catch (e) {
    onError(e);
    extract.destroy(e as Error);
  } finally {
    // Stopping early (consumer broke out, corrupt tar) releases the file or HTTP response.
    await reader.cancel().catch(() => {});
  }
}

/** A shard's parquet sidecar: the metadata rows by key, and the columns the file has. */
interface MetaIndex {
  where: string;
  columns: Set<string>;
  rows: Map<string, LaionMeta>;
}

/** Rows of the LAION columns a parquet file has (not its images or other columns), and them. */
async function parseMetaParquet(
  bytes: Uint8Array,
  where: string,
): Promise<{ columns: Set<string>; rows: Record<string, unknown>[] }> {
  try {
    const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    const metadata = parquetMetadata(file as ArrayBuffer);
    const columns = new Set(parquetSchema(metadata).children.map((c) => c.element.name));
    const wanted = LAION_COLUMN_NAMES.filter((c) => columns.has(c));
    const rows = await parquetReadObjects({
      file: file as ArrayBuffer,
      metadata,
      columns: wanted,
    });
    return { columns, rows };
  } catch (e) {
    throw new Error(`${where}: cannot read parquet (${(e as Error).message})`);
  }
}

/**
 * Metadata by key from a shard's parquet sidecar; null when there is none or it cannot be read,
 * and then each sample's `key.json` is used. An unreadable sidecar is corrupt data: counted
 * (when `count`) and named in `stats`.
 */
async function metaIndex(
  src: ShardSource,
  tarPath: string,
  stats: ReadStats,
  count: boolean,
): Promise<MetaIndex | null> {
  const where = parquetNameOf(tarPath) ?? `${tarPath} (parquet sidecar)`;
  try {
    const bytes = await src.readParquet(tarPath);
    if (!bytes) return null;
    const { columns, rows } = await parseMetaParquet(bytes, where);
    const m = new Map<string, LaionMeta>();
    for (const r of rows) {
      if (typeof r.key === "string") m.set(r.key, laionMeta(r));
    }
    return { where, columns, rows: m };
  } catch (e) {
    // A storage outage is not a bad sidecar: falling back would hide it.
    if (e instanceof ShardTransportError) throw e;
    if (count) {
      stats.skipped.corruptParquet++;
      const msg = (e as Error)?.message ?? String(e);
      // parseShardParquet's message starts with the file name, which `path` already holds.
      const reason = msg.startsWith(`${where}: `) ? msg.slice(where.length + 2) : msg;
      stats.corruptFiles.push({ path: where, reason: reason.split("\n")[0] });
    }
    return null; // fall back to the json metadata
  }
}

/** `opts.filter` with `opts.minAesthetic` folded in, validated. */
function effectiveFilter(opts: ReadShardsOptions): DataFilter {
  const f = opts.filter ?? {};
  if (
    opts.minAesthetic !== undefined && f.minAesthetic !== undefined &&
    opts.minAesthetic !== f.minAesthetic
  ) {
    throw new Error(
      `readShards: minAesthetic ${opts.minAesthetic} and filter.minAesthetic ` +
        `${f.minAesthetic} differ; give one`,
    );
  }
  return normalizeFilter({ ...f, minAesthetic: opts.minAesthetic ?? f.minAesthetic });
}

/** Whether a sample has an image file, decodable or not. */
function hasAnyImage(files: Map<string, Uint8Array>): boolean {
  return DECODED_IMAGE_EXTS.some((e) => files.has(e)) ||
    UNDECODED_IMAGE_EXTS.some((e) => files.has(e));
}

const NO_PIXELS = new Uint8Array(0);

/** Readers' error for a storage failure mid-read, with where to resume. */
function interrupted(e: ShardTransportError, shard: number, index: number): Error {
  return new Error(
    `readShards: ${e.message}; stopped after record ${index} of shard ${shard} in this rank's ` +
      `order (resume with start { shard: ${shard}, index: ${index} })`,
    { cause: e },
  );
}

/**
 * Stream samples from webdataset shards, grouped by key. `source` is a folder, a
 * `gs://bucket/prefix`, a list of tar paths and `gs://` URLs, or a {@link ShardSource}; tars are
 * streamed either way, never read whole. Storage failures that retries cannot repair throw a
 * message naming the object and the position to resume from; bad data never throws.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildShapesWorldShards, newReadStats, readShards } from "./webdataset.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await buildShapesWorldShards({ outDir: dir, seed: 0, count: 4, perShard: 1 });
 * const stats = newReadStats();
 * // Rank 1 of 2 reads shards 1 and 3; a gs://bucket/laion location reads the same way.
 * const it = readShards(dir, { stats, rank: 1, worldSize: 2 });
 * const shards: string[] = [];
 * for await (const s of it) shards.push(s.shardPath.slice(dir.length + 1));
 * assert.deepEqual(shards, ["00001.tar", "00003.tar"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function* readShards(
  source: string | readonly string[] | ShardSource,
  opts: ReadShardsOptions = {},
): AsyncGenerator<ShardSample> {
  const stats = opts.stats ?? newReadStats();
  const src = shardSourceFor(source, opts);
  const all = await src.list();
  const order = shardOrder(all, opts);
  const start = opts.start ?? { shard: 0, index: 0 };
  const dec = new TextDecoder();
  const filter = effectiveFilter(opts);
  const filtering = hasFilter(filter);
  const decode = opts.decode ?? true;
  for (let si = Math.max(0, start.shard); si < order.length; si++) {
    const path = order[si];
    const skip = si === start.shard ? start.index : 0;
    let index: MetaIndex | null = null;
    if (filtering || opts.metadata) {
      try {
        // A resumed shard's sidecar was counted by the run that opened it first.
        index = await metaIndex(src, path, stats, skip === 0);
      } catch (e) {
        throw interrupted(e as ShardTransportError, si, skip);
      }
      // A column the filter needs is missing from the whole shard: the filter cannot mean
      // anything here, so stop rather than drop every record as "missing".
      const absent = index && filtering ? absentColumn(filter, index.columns) : null;
      if (absent) throw missingColumnError(index!.where, absent);
    }
    stats.shards++;
    let bytes: ReadableStream<Uint8Array>;
    try {
      bytes = await src.open(path);
    } catch (e) {
      if (e instanceof ShardTransportError) throw interrupted(e, si, skip);
      stats.skipped.unreadableShard++; // a missing file or object, like any bad data
      continue;
    }
    let groupIndex = 0;
    /** An error of the reader's own setup (not of the data), rethrown past the tar's catch. */
    let fatal: Error | null = null;

    /** Turn a finished group into a sample, or count why not (async: WebP decodes in wasm). */
    const finish = async (g: Group): Promise<ShardSample | null> => {
      groupIndex++;
      if (groupIndex <= skip) return null;
      stats.records++;
      let json: Record<string, unknown> | null = null;
      const jb = g.files.get("json");
      if (jb) {
        try {
          const v = JSON.parse(dec.decode(jb));
          json = v && typeof v === "object" && !Array.isArray(v) ? v : null;
          if (!json) stats.skipped.corruptJson++;
        } catch {
          stats.skipped.corruptJson++;
        }
      }
      const tb = g.files.get("txt");
      const caption = tb
        ? dec.decode(tb).trim()
        : typeof json?.caption === "string"
        ? json.caption
        : "";
      if (!caption) {
        stats.skipped.missingCaption++;
        return null;
      }
      // img2dataset writes one image per sample, JPEG (`key.jpg`) or, with `--encode_format`,
      // PNG or WebP; the kit's own shards are PNG. Bad data is counted before any filter.
      const ext = DECODED_IMAGE_EXTS.find((e) => g.files.has(e));
      if (!hasAnyImage(g.files)) {
        stats.skipped.missingImage++;
        return null;
      }
      if (decode && !ext) {
        stats.skipped.unsupportedImage++;
        return null;
      }
      const fromJson = laionMeta(json);
      const row = index?.rows.get(g.key);
      const meta = row ? mergeMeta(row, fromJson) : fromJson;
      const sample = (
        image: { image: Uint8Array; width: number; height: number },
      ): ShardSample => ({
        key: g.key,
        ...image,
        caption,
        json,
        meta,
        shardPath: path,
        position: { shard: si, index: groupIndex },
      });
      const undecoded = { image: NO_PIXELS, width: meta.width ?? 0, height: meta.height ?? 0 };
      if (filtering) {
        if (!index && json) {
          // No sidecar: the record's json is the only metadata, and must have the columns.
          const absent = absentColumn(filter, new Set(Object.keys(json)));
          if (absent) throw (fatal = missingColumnError(`${path}:${g.key}.json`, absent));
        }
        const reason = filterVerdict(meta, filter);
        if (reason) {
          stats.skipped[reason]++;
          return opts.yieldFiltered ? { ...sample(undecoded), dropped: reason } : null;
        }
      }
      if (!decode) {
        stats.read++;
        return sample(undecoded);
      }
      // A WebP decoder that cannot load is no fault of the record: that throws, uncounted.
      if (ext === "webp") {
        await loadWebpDecoder().catch((e) => {
          throw (fatal = e as Error);
        });
      }
      let img: { image: Uint8Array; width: number; height: number };
      try {
        const bytes = g.files.get(ext!)!, what = `${path}:${g.key}.${ext}`;
        if (ext === "png") img = decodePngRgb(bytes, what);
        else if (ext === "webp") img = await decodeWebpRgb(bytes, what);
        else {
          const j = decodeJpegRgb(bytes, what);
          img = { image: j.data, width: j.width, height: j.height };
        }
      } catch {
        stats.skipped.corruptImage++;
        return null;
      }
      stats.read++;
      return sample(img);
    };

    const extract = tarStream.extract();
    let failure: unknown = null;
    const feeding = feed(bytes, extract, (e) => (failure = e));
    let cur: Group | null = null;
    try {
      for await (const entry of extract) {
        const h = entry.header;
        const name = h.name;
        // Entries before the resume point were counted by the run that read them.
        const counting = groupIndex >= skip;
        const drop = async (reason: "escape" | "link" | "otherEntry" | null) => {
          if (reason && counting) stats.skipped[reason]++;
          for await (const _ of entry) { /* discard */ }
        };
        if (isEscapingPath(name)) {
          await drop("escape");
          continue;
        }
        if (h.type === "symlink" || h.type === "link") {
          await drop("link");
          continue;
        }
        const slash = name.lastIndexOf("/");
        const base = name.slice(slash + 1);
        const dot = base.indexOf(".");
        if ((h.type !== "file" && h.type !== "contiguous-file") || dot <= 0) {
          await drop(h.type === "directory" ? null : "otherEntry");
          continue;
        }
        const key = name.slice(0, slash + 1) + base.slice(0, dot);
        const ext = base.slice(dot + 1).toLowerCase();
        const chunks: Uint8Array[] = [];
        for await (const c of entry) chunks.push(c as Uint8Array);
        if (cur && cur.key !== key) {
          const s = await finish(cur);
          cur = null;
          if (s) yield s;
        }
        cur ??= { key, files: new Map() };
        cur.files.set(ext, concatBytes(chunks));
      }
      if (cur) {
        const s = await finish(cur);
        cur = null;
        if (s) yield s;
      }
    } catch (e) {
      // The storage broke after its retries: stop, and say where to resume (groupIndex groups
      // of this shard are done; an unfinished group is read again from its start).
      if (failure instanceof ShardTransportError) throw interrupted(failure, si, groupIndex);
      if (fatal) throw fatal;
      const msg = (e as Error)?.message ?? String(e);
      if (/Unexpected end/i.test(msg)) stats.skipped.truncated++;
      else stats.skipped.corruptTar++;
    } finally {
      if (!extract.destroyed) extract.destroy();
      await feeding;
    }
  }
}
