/**
 * Data: the procedurally generated "shapes world" captioned image set, a pixel classifier that reads
 * its objects back, PNG I/O, img2dataset-style webdataset shards, and caption statistics.
 *
 * @example
 * ```ts
 * import { buildShapesWorldShards, readShards } from "./mod.ts";
 * await buildShapesWorldShards({ outDir: "runs/data/t", seed: 0, count: 1000, perShard: 250 });
 * for await (const s of readShards("runs/data/t")) console.log(s.caption);
 * ```
 * @module
 */

export * from "./shapes_world.ts";
export * from "./classify.ts";
export * from "./png.ts";
export * from "./jpeg.ts";
export * from "./webdataset.ts";
export * from "./shard_source.ts";
export * from "./captions.ts";
export * from "./hard_negatives.ts";
