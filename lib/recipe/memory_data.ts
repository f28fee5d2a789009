/**
 * An in-memory view of a (small) captioned image set read from webdataset shards, with a
 * deterministic, resumable batch order.
 *
 * The embedded data is small enough to hold in memory (20k 32x32 images are 60 MB), which keeps
 * the 2-core training loop free of I/O. Batches come from a per-epoch permutation drawn from
 * `Rng.stream(seed, [rank, STREAM.data, epoch])`, so the position `{epoch, index}` alone determines
 * every later batch: a resumed run sees exactly the batches an uninterrupted run would, and every
 * rank walks its own order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildShapesWorldShards } from "../data/mod.ts";
 * import { loadImageSet, nextIndexBatch } from "./memory_data.ts";
 *
 * const dir = await Deno.makeTempDir(); // e.g. "runs/default/data/train"
 * await buildShapesWorldShards({ outDir: dir, seed: 0, count: 5, perShard: 5 });
 * const ds = await loadImageSet(dir);
 * assert.equal(ds.images.length, ds.size * ds.width * ds.height * 3);
 * const { batch, position } = nextIndexBatch(ds.size, 4, { epoch: 0, index: 3 }, { seed: 0 });
 * assert.deepEqual([batch.length, position], [4, { epoch: 1, index: 2 }]); // ran into epoch 1
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */
import { newReadStats, readShards, type ReadStats } from "../data/mod.ts";
import { Rng, STREAM } from "../util/rng.ts";

/** Images (RGB uint8, N*H*W*3), captions and per-sample JSON read from shards. */
export interface ImageSet {
  size: number;
  width: number;
  height: number;
  images: Uint8Array;
  captions: string[];
  keys: string[];
  meta: unknown[];
  stats: ReadStats;
}

/** Options for {@link loadImageSet}. */
export interface LoadImageSetOptions {
  /** Drop samples whose aesthetic score is below this (the study kept >= 4.5). */
  minAesthetic?: number;
  /** Stop after this many samples. */
  limit?: number;
}

/** Read every sample of a shard folder into memory; all images must share one size. */
export async function loadImageSet(dir: string, opts: LoadImageSetOptions = {}): Promise<ImageSet> {
  const stats = newReadStats();
  const chunks: Uint8Array[] = [];
  const captions: string[] = [], keys: string[] = [], meta: unknown[] = [];
  let width = 0, height = 0;
  for await (const s of readShards(dir, { stats, minAesthetic: opts.minAesthetic })) {
    if (width === 0) [width, height] = [s.width, s.height];
    if (s.width !== width || s.height !== height) {
      throw new Error(
        `${s.shardPath}: sample ${s.key} is ${s.width}x${s.height}, expected ${width}x${height} like the first sample`,
      );
    }
    chunks.push(s.image);
    captions.push(s.caption);
    keys.push(s.key);
    meta.push(s.json);
    if (opts.limit && captions.length >= opts.limit) break;
  }
  if (captions.length === 0) {
    throw new Error(`${dir}: no usable samples (read stats ${JSON.stringify(stats)})`);
  }
  const px = width * height * 3;
  const images = new Uint8Array(captions.length * px);
  chunks.forEach((c, i) => images.set(c, i * px));
  return { size: captions.length, width, height, images, captions, keys, meta, stats };
}

/** Where a batch stream stands: the epoch and the next index into that epoch's order. */
export interface BatchPosition {
  epoch: number;
  index: number;
}

/** Options for {@link nextIndexBatch}. */
export interface BatchOrderOptions {
  seed: number;
  rank?: number;
  worldSize?: number;
}

const permCache = new Map<string, number[]>();

function epochOrder(n: number, epoch: number, o: BatchOrderOptions): number[] {
  const rank = o.rank ?? 0, world = o.worldSize ?? 1;
  const key = `${n}/${epoch}/${o.seed}/${rank}/${world}`;
  let order = permCache.get(key);
  if (!order) {
    // One permutation shared by all ranks (same stream without rank), then each rank takes its
    // strided slice: ranks see disjoint samples within an epoch.
    const perm = Rng.stream(o.seed, [STREAM.data, epoch]).permutation(n);
    order = perm.filter((_, i) => i % world === rank);
    if (permCache.size > 8) permCache.clear();
    permCache.set(key, order);
  }
  return order;
}

/**
 * The sample indices of the next batch of `batchSize` and the position after it. Pure apart from a
 * small permutation cache: the same position always gives the same batch.
 */
export function nextIndexBatch(
  n: number,
  batchSize: number,
  pos: BatchPosition,
  o: BatchOrderOptions,
): { batch: number[]; position: BatchPosition } {
  const batch: number[] = [];
  let { epoch, index } = pos;
  while (batch.length < batchSize) {
    const order = epochOrder(n, epoch, o);
    if (order.length === 0) throw new Error(`nextIndexBatch: rank ${o.rank} has no samples`);
    if (index >= order.length) {
      epoch++;
      index = 0;
      continue;
    }
    batch.push(order[index++]);
  }
  return { batch, position: { epoch, index } };
}

/** The pixels of an {@link ImageSet} (or of any images of one size, RGB bytes back to back). */
export type ImagePixels = Pick<ImageSet, "images" | "width" | "height">;

/** Gather images `idx` as floats in [-1, 1], NHWC. */
export function gatherImages(set: ImagePixels, idx: number[]): Float32Array {
  const px = set.width * set.height * 3;
  const out = new Float32Array(idx.length * px);
  idx.forEach((i, b) => {
    const src = set.images.subarray(i * px, (i + 1) * px);
    const o = b * px;
    for (let k = 0; k < px; k++) out[o + k] = src[k] / 127.5 - 1;
  });
  return out;
}
