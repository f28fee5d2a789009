/**
 * LAION metadata as img2dataset stores it, and the study's filters on it.
 *
 * img2dataset writes every sample's metadata twice, with the same columns: a row of the shard's
 * `NNNNN.parquet` and the sample's `key.json`. Its own columns are `url`, `caption`, `key`,
 * `status`, `error_message`, `width`/`height` (after its resize), `original_width` /
 * `original_height` (as downloaded), `exif` (with `--extract_exif`) and a hash; LAION's columns
 * come along through `--save_additional_columns` under their LAION names: `similarity` (CLIP
 * image-text cosine), `punsafe` (NSFW probability), `pwatermark` (watermark probability) and the
 * aesthetic score, spelled `aesthetic` (laion2B-en-aesthetic) or `AESTHETIC_SCORE` (LAION
 * Aesthetics v2, "improved_aesthetics_4.5plus"). LAION's pre-download `WIDTH`/`HEIGHT` stand in
 * for the original size when img2dataset's is absent. {@link laionMeta} reads either spelling
 * into one {@link LaionMeta}.
 *
 * {@link DataFilter} holds the thresholds (the study: `minAesthetic: 4.5`, which keeps about 42%
 * of LAION-2B); {@link filterVerdict} says which one a record fails first, in the fixed order
 * aesthetic, punsafe, pwatermark, similarity, size. A record whose value is null (or NaN) fails
 * as "missing"; a shard that has no such column at all is a configuration error, not data, and
 * {@link missingColumnError} names the shard and the column.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { filterVerdict, laionMeta } from "./laion_meta.ts";
 *
 * const meta = laionMeta({ key: "000000042", AESTHETIC_SCORE: 5.2, punsafe: 0.9 });
 * assert.equal(meta.aesthetic, 5.2);
 * assert.equal(filterVerdict(meta, { minAesthetic: 4.5 }), null); // kept
 * assert.equal(filterVerdict(meta, { minAesthetic: 4.5, maxPunsafe: 0.5 }), "punsafe");
 * ```
 * @module
 */

/** One record's metadata; null where the shard does not say. */
export interface LaionMeta {
  key: string | null;
  url: string | null;
  caption: string | null;
  status: string | null;
  /** LAION aesthetic predictor score (about 1..10). */
  aesthetic: number | null;
  /** Probability that the image is unsafe (NSFW), 0..1. */
  punsafe: number | null;
  /** Probability that the image carries a watermark, 0..1. */
  pwatermark: number | null;
  /** CLIP ViT-B/32 cosine similarity of image and caption. */
  similarity: number | null;
  /** Stored size (after img2dataset's resize). */
  width: number | null;
  height: number | null;
  /** Size as downloaded (img2dataset), else LAION's `WIDTH`/`HEIGHT`. */
  originalWidth: number | null;
  originalHeight: number | null;
  /** img2dataset's EXIF JSON string (`--extract_exif`). */
  exif: string | null;
}

/** Numeric fields of {@link LaionMeta} a filter can read. */
export type FilterField = "aesthetic" | "punsafe" | "pwatermark" | "similarity" | "size";

/**
 * The column names each field is read from, first match wins. Exact names: `width` (stored size)
 * and LAION's `WIDTH` (original size) mean different things, so matching is case-sensitive.
 */
export const LAION_COLUMNS = {
  key: ["key"],
  url: ["url", "URL"],
  caption: ["caption", "TEXT"],
  status: ["status"],
  aesthetic: ["aesthetic", "AESTHETIC_SCORE", "aesthetic_score"],
  punsafe: ["punsafe"],
  pwatermark: ["pwatermark"],
  similarity: ["similarity"],
  width: ["width"],
  height: ["height"],
  originalWidth: ["original_width", "WIDTH"],
  originalHeight: ["original_height", "HEIGHT"],
  exif: ["exif"],
} as const satisfies Record<keyof LaionMeta, readonly string[]>;

/** Every column name {@link laionMeta} reads (the parquet reader loads only these). */
export const LAION_COLUMN_NAMES: readonly string[] = [
  ...new Set(Object.values(LAION_COLUMNS).flat()),
];

/** Thresholds on LAION metadata; an unset one does not filter. */
export interface DataFilter {
  /** Keep aesthetic >= this (the study: 4.5). */
  minAesthetic?: number;
  /** Keep punsafe <= this (LAION-Aesthetics: 0.5). */
  maxPunsafe?: number;
  /** Keep pwatermark <= this (LAION-Aesthetics: 0.8). */
  maxPwatermark?: number;
  /** Keep similarity >= this (LAION-2B was built at 0.28). */
  minSimilarity?: number;
  /** Keep records whose original width and height are both >= this many pixels. */
  minSize?: number;
}

/** Why {@link filterVerdict} drops a record: a threshold, or a null value it needs. */
export type FilterReason =
  | FilterField
  | "missingAesthetic"
  | "missingPunsafe"
  | "missingPwatermark"
  | "missingSimilarity"
  | "missingSize";

/** Filter fields in the order they are applied, with their option and the fields' columns. */
const FILTERS: readonly {
  field: FilterField;
  option: keyof DataFilter;
  missing: FilterReason;
  columns: readonly (readonly string[])[];
}[] = [
  {
    field: "aesthetic",
    option: "minAesthetic",
    missing: "missingAesthetic",
    columns: [LAION_COLUMNS.aesthetic],
  },
  {
    field: "punsafe",
    option: "maxPunsafe",
    missing: "missingPunsafe",
    columns: [LAION_COLUMNS.punsafe],
  },
  {
    field: "pwatermark",
    option: "maxPwatermark",
    missing: "missingPwatermark",
    columns: [LAION_COLUMNS.pwatermark],
  },
  {
    field: "similarity",
    option: "minSimilarity",
    missing: "missingSimilarity",
    columns: [LAION_COLUMNS.similarity],
  },
  {
    field: "size",
    option: "minSize",
    missing: "missingSize",
    columns: [LAION_COLUMNS.originalWidth, LAION_COLUMNS.originalHeight],
  },
];

/** The filter fields in the order {@link filterVerdict} applies them. */
export const FILTER_FIELDS: readonly FilterField[] = FILTERS.map((f) => f.field);

function num(v: unknown): number | null {
  if (typeof v === "bigint") return Number(v); // hyparquet reads INT64 columns as bigint
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

function str(v: unknown): string | null {
  return typeof v === "string" ? v : null;
}

function pick(row: Record<string, unknown>, names: readonly string[]): unknown {
  for (const n of names) {
    const v = row[n];
    if (v !== undefined && v !== null) return v;
  }
  return null;
}

/**
 * A parquet row or a parsed `key.json` as {@link LaionMeta}: each field from the first of its
 * {@link LAION_COLUMNS} that holds a value; numbers that are NaN, missing or not numbers are null.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { laionMeta } from "./laion_meta.ts";
 *
 * const m = laionMeta({ aesthetic: 6.1, original_width: 1024, WIDTH: 900, punsafe: NaN });
 * assert.deepEqual([m.aesthetic, m.originalWidth, m.punsafe, m.url], [6.1, 1024, null, null]);
 * ```
 */
export function laionMeta(row: Record<string, unknown> | null | undefined): LaionMeta {
  const r = row ?? {};
  return {
    key: str(pick(r, LAION_COLUMNS.key)),
    url: str(pick(r, LAION_COLUMNS.url)),
    caption: str(pick(r, LAION_COLUMNS.caption)),
    status: str(pick(r, LAION_COLUMNS.status)),
    aesthetic: num(pick(r, LAION_COLUMNS.aesthetic)),
    punsafe: num(pick(r, LAION_COLUMNS.punsafe)),
    pwatermark: num(pick(r, LAION_COLUMNS.pwatermark)),
    similarity: num(pick(r, LAION_COLUMNS.similarity)),
    width: num(pick(r, LAION_COLUMNS.width)),
    height: num(pick(r, LAION_COLUMNS.height)),
    originalWidth: num(pick(r, LAION_COLUMNS.originalWidth)),
    originalHeight: num(pick(r, LAION_COLUMNS.originalHeight)),
    exif: str(pick(r, LAION_COLUMNS.exif)),
  };
}

/**
 * Field by field, `a`'s value, else `b`'s (parquet row first, then the record's json).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { laionMeta, mergeMeta } from "./laion_meta.ts";
 *
 * const m = mergeMeta(laionMeta({ aesthetic: 5 }), laionMeta({ aesthetic: 1, punsafe: 0.1 }));
 * assert.deepEqual([m.aesthetic, m.punsafe], [5, 0.1]);
 * ```
 */
export function mergeMeta(a: LaionMeta, b: LaionMeta): LaionMeta {
  const out = { ...a } as Record<string, unknown>;
  for (const [k, v] of Object.entries(b)) if (out[k] === null) out[k] = v;
  return out as unknown as LaionMeta;
}

/**
 * Whether any threshold is set.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hasFilter } from "./laion_meta.ts";
 *
 * assert.equal(hasFilter({}), false);
 * assert.equal(hasFilter({ minAesthetic: 4.5 }), true);
 * ```
 */
export function hasFilter(f: DataFilter | undefined): boolean {
  return !!f && FILTERS.some((x) => f[x.option] !== undefined);
}

/**
 * The filter with only its set thresholds, in a fixed key order (for settings files compared as
 * JSON); throws naming the option when a value is not a finite number.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { normalizeFilter } from "./laion_meta.ts";
 *
 * assert.deepEqual(normalizeFilter({ minSize: 256, minAesthetic: 4.5, maxPunsafe: undefined }), {
 *   minAesthetic: 4.5,
 *   minSize: 256,
 * });
 * ```
 */
export function normalizeFilter(f: DataFilter | undefined): DataFilter {
  const out: DataFilter = {};
  for (const { option } of FILTERS) {
    const v = f?.[option];
    if (v === undefined) continue;
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new Error(`data filter: ${option} must be a finite number, got ${String(v)}`);
    }
    out[option] = v;
  }
  return out;
}

/**
 * The fields a filter needs, in application order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { filterFields } from "./laion_meta.ts";
 *
 * assert.deepEqual(filterFields({ minSize: 64, minAesthetic: 4.5 }), ["aesthetic", "size"]);
 * ```
 */
export function filterFields(f: DataFilter | undefined): FilterField[] {
  return FILTERS.filter((x) => f?.[x.option] !== undefined).map((x) => x.field);
}

/**
 * Whether `meta` passes one field's threshold: true (kept), false (below/above it) or null
 * (the value is missing).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { laionMeta, passes } from "./laion_meta.ts";
 *
 * const m = laionMeta({ original_width: 640, original_height: 200 });
 * assert.equal(passes(m, "size", { minSize: 256 }), false); // the short side counts
 * assert.equal(passes(m, "aesthetic", { minAesthetic: 4.5 }), null);
 * ```
 */
export function passes(meta: LaionMeta, field: FilterField, f: DataFilter): boolean | null {
  switch (field) {
    case "aesthetic":
      return meta.aesthetic === null ? null : meta.aesthetic >= f.minAesthetic!;
    case "punsafe":
      return meta.punsafe === null ? null : meta.punsafe <= f.maxPunsafe!;
    case "pwatermark":
      return meta.pwatermark === null ? null : meta.pwatermark <= f.maxPwatermark!;
    case "similarity":
      return meta.similarity === null ? null : meta.similarity >= f.minSimilarity!;
    case "size":
      return meta.originalWidth === null || meta.originalHeight === null
        ? null
        : Math.min(meta.originalWidth, meta.originalHeight) >= f.minSize!;
  }
}

/**
 * The first reason `meta` is filtered out (fields in {@link FILTER_FIELDS} order), or null when
 * it is kept.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { filterVerdict, laionMeta } from "./laion_meta.ts";
 *
 * const m = laionMeta({ aesthetic: 4.4, pwatermark: 0.9 });
 * assert.equal(filterVerdict(m, { maxPwatermark: 0.8, minAesthetic: 4.5 }), "aesthetic");
 * assert.equal(filterVerdict(m, { maxPwatermark: 0.8 }), "pwatermark");
 * assert.equal(filterVerdict(m, { maxPunsafe: 0.5 }), "missingPunsafe");
 * ```
 */
export function filterVerdict(meta: LaionMeta, f: DataFilter): FilterReason | null {
  for (const x of FILTERS) {
    if (f[x.option] === undefined) continue;
    const ok = passes(meta, x.field, f);
    if (ok === null) return x.missing;
    if (!ok) return x.field;
  }
  return null;
}

/**
 * For a filter and the column names a shard has, the first needed field none of whose columns
 * exists, with the column names it looked for; null when every needed column is there.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { absentColumn } from "./laion_meta.ts";
 *
 * const cols = new Set(["key", "caption", "AESTHETIC_SCORE"]);
 * assert.equal(absentColumn({ minAesthetic: 4.5 }, cols), null);
 * assert.deepEqual(absentColumn({ minAesthetic: 4.5, maxPunsafe: 0.5 }, cols), {
 *   field: "punsafe",
 *   option: "maxPunsafe",
 *   columns: ["punsafe"],
 * });
 * ```
 */
export function absentColumn(
  f: DataFilter,
  has: ReadonlySet<string>,
): { field: FilterField; option: keyof DataFilter; columns: string[] } | null {
  for (const x of FILTERS) {
    if (f[x.option] === undefined) continue;
    for (const names of x.columns) {
      if (!names.some((n) => has.has(n))) {
        return { field: x.field, option: x.option, columns: [...names] };
      }
    }
  }
  return null;
}

/**
 * The one-line error for a shard that lacks a column a filter needs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { missingColumnError } from "./laion_meta.ts";
 *
 * const e = missingColumnError("d/00000.parquet", { option: "maxPunsafe", columns: ["punsafe"] });
 * assert.equal(
 *   e.message,
 *   'd/00000.parquet: no column "punsafe", which maxPunsafe needs; drop that filter or ' +
 *     "add the column (img2dataset --save_additional_columns)",
 * );
 * ```
 */
export function missingColumnError(
  where: string,
  absent: { option: keyof DataFilter; columns: string[] },
): Error {
  const names = absent.columns.map((c) => `"${c}"`).join(" or ");
  return new Error(
    `${where}: no column ${names}, which ${absent.option} needs; drop that filter or add the ` +
      "column (img2dataset --save_additional_columns)",
  );
}

/**
 * The filter as short text, e.g. `aesthetic >= 4.5, punsafe <= 0.5`; "none" when empty.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeFilter } from "./laion_meta.ts";
 *
 * assert.equal(describeFilter({ minAesthetic: 4.5, minSize: 256 }), "aesthetic >= 4.5, size >= 256");
 * ```
 */
export function describeFilter(f: DataFilter | undefined): string {
  const parts = FILTERS.filter((x) => f?.[x.option] !== undefined).map((x) =>
    `${x.field} ${x.option.startsWith("max") ? "<=" : ">="} ${f![x.option]}`
  );
  return parts.length ? parts.join(", ") : "none";
}
