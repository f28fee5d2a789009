/**
 * The LAION metadata filter flags, shared by `deno task train --parts` and `deno task data-stats`:
 * `--min-aesthetic 4.5` (the study's threshold), `--max-punsafe`, `--max-pwatermark`,
 * `--min-similarity` and `--min-size` (both sides of the original image, in pixels). The values
 * are read from each shard's parquet sidecar, else each record's `key.json`; see
 * `lib/data/laion_meta.ts`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseFlags } from "./args.ts";
 * import { DATA_FILTER_FLAGS, dataFilterFromFlags } from "./data_filter_flags.ts";
 *
 * const f = parseFlags(["--min-aesthetic", "4.5", "--min-size", "256"], DATA_FILTER_FLAGS, "x");
 * assert.deepEqual(dataFilterFromFlags(f), { minAesthetic: 4.5, minSize: 256 });
 * ```
 * @module
 */
import type { FlagSpec } from "./args.ts";
import { type DataFilter, normalizeFilter } from "../data/laion_meta.ts";

/** The filter flags (spread them into a command's spec). */
export const DATA_FILTER_FLAGS = {
  "min-aesthetic": {
    type: "float",
    min: 0,
    max: 10,
    help: "keep records with LAION aesthetic score (`aesthetic` or `AESTHETIC_SCORE`) >= this " +
      "(the study: 4.5)",
  },
  "max-punsafe": {
    type: "float",
    min: 0,
    max: 1,
    help: "keep records with punsafe (NSFW probability) <= this",
  },
  "max-pwatermark": {
    type: "float",
    min: 0,
    max: 1,
    help: "keep records with pwatermark (watermark probability) <= this",
  },
  "min-similarity": {
    type: "float",
    min: -1,
    max: 1,
    help: "keep records with CLIP image-text similarity >= this",
  },
  "min-size": {
    type: "int",
    min: 1,
    max: 1e6,
    help: "keep records whose original width and height (original_width/original_height) are " +
      "both >= this many pixels",
  },
} satisfies FlagSpec;

/** The flag names, for "needs --parts" checks. */
export const DATA_FILTER_FLAG_NAMES = Object.keys(DATA_FILTER_FLAGS) as (
  keyof typeof DATA_FILTER_FLAGS
)[];

/**
 * The {@link DataFilter} of parsed flags (only the ones given).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dataFilterFromFlags } from "./data_filter_flags.ts";
 *
 * assert.deepEqual(dataFilterFromFlags({ "max-punsafe": 0.5 }), { maxPunsafe: 0.5 });
 * ```
 */
export function dataFilterFromFlags(
  f: { [K in keyof typeof DATA_FILTER_FLAGS]?: number },
): DataFilter {
  return normalizeFilter({
    minAesthetic: f["min-aesthetic"],
    maxPunsafe: f["max-punsafe"],
    maxPwatermark: f["max-pwatermark"],
    minSimilarity: f["min-similarity"],
    minSize: f["min-size"],
  });
}
