/**
 * Data: the procedurally generated "shapes world" captioned image set, a pixel classifier that reads
 * its objects back, PNG I/O, JPEG and WebP decoding, img2dataset-style webdataset shards, and
 * caption statistics.
 *
 * @example
 * ```ts
 * import { buildShapesWorldShards, readShards } from "./mod.ts";
 *
 * const outDir = await Deno.makeTempDir(); // e.g. "runs/data/t"
 * await buildShapesWorldShards({ outDir, seed: 0, count: 20, perShard: 10 });
 * for await (const s of readShards(outDir)) console.log(s.caption);
 * await Deno.remove(outDir, { recursive: true });
 * ```
 * @module
 */

export * from "./shapes_world.ts";
export * from "./classify.ts";
export * from "./png.ts";
export * from "./jpeg.ts";
export * from "./webp.ts";
export * from "./webdataset.ts";
export * from "./shard_source.ts";
export * from "./captions.ts";
export * from "./caption_stats.ts";
export * from "./laion_meta.ts";
export * from "./hard_negatives.ts";
