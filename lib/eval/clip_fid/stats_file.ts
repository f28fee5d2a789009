/**
 * Cached reference statistics: a safetensors file holding `mu` (F64 `[d]`) and `sigma`
 * (F64 `[d, d]`), with `__metadata__` recording the format, the feature extractor's name and
 * preprocessing, the dimension, the image count and a free-text source. Loading checks the
 * extractor: statistics from another network or another preprocessing are refused, because a
 * Frechet distance between them is meaningless.
 *
 * The kit's general safetensors module (`lib/train/safetensors.ts`) reads and writes float32
 * tensors only; statistics need float64, so this file carries its own small F64 codec for the
 * same container (readable by Hugging Face `safetensors.numpy.load_file`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadReferenceStats, saveReferenceStats } from "./stats_file.ts";
 * import { featureStats } from "./stats.ts";
 *
 * const extractor = { name: "clip-vit-b32", preprocessing: "clip 224", dim: 2 };
 * const stats = featureStats(new Float32Array([0, 0, 2, 2, 1, 3]), 3, 2);
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await saveReferenceStats(path, stats, { extractor, source: "shapes train 3" });
 * const ref = await loadReferenceStats(path, extractor);
 * assert.deepEqual([ref.mu, ref.sigma, ref.n, ref.source], [stats.mu, stats.sigma, 3, "shapes train 3"]);
 * await assert.rejects(loadReferenceStats(path, { ...extractor, name: "inception" }), /refusing/);
 * await Deno.remove(path);
 * ```
 * @module
 */
import { writeFileAtomic } from "../../util/atomic.ts";
import type { FeatureStats } from "./stats.ts";

/** Format tag stored in the metadata. */
export const STATS_FORMAT = "xgen-kit/feature-stats@1";

/** What identifies a feature space: the extractor's name, preprocessing and dimension. */
export interface ExtractorIdentity {
  name: string;
  preprocessing: string;
  dim: number;
}

/** Statistics read from a file, with their provenance. */
export interface StoredStats extends FeatureStats {
  extractor: ExtractorIdentity;
  source: string;
  created: string;
}

function fail(src: string, msg: string): never {
  throw new Error(`reference statistics ${src}: ${msg}`);
}

/**
 * Encode statistics and provenance as safetensors bytes (F64 tensors).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeStats, encodeStats } from "./stats_file.ts";
 * import { featureStats } from "./stats.ts";
 *
 * const stats = featureStats(new Float32Array([0, 0, 2, 2]), 2, 2);
 * const extractor = { name: "inception-v3", preprocessing: "clean 299", dim: 2 };
 * const bytes = encodeStats(stats, { extractor, source: "ref" });
 * assert.deepEqual(decodeStats(bytes).extractor, extractor);
 * assert.throws(() => encodeStats(stats, { extractor: { ...extractor, dim: 2048 } }), /2048 != statistics dim 2/);
 * ```
 */
export function encodeStats(
  stats: FeatureStats,
  meta: { extractor: ExtractorIdentity; source?: string; created?: string },
): Uint8Array {
  const d = stats.mu.length;
  if (stats.sigma.length !== d * d) throw new Error(`encodeStats: sigma must be ${d}x${d}`);
  if (meta.extractor.dim !== d) {
    throw new Error(`encodeStats: extractor dim ${meta.extractor.dim} != statistics dim ${d}`);
  }
  const header = {
    __metadata__: {
      format: STATS_FORMAT,
      extractor: meta.extractor.name,
      preprocessing: meta.extractor.preprocessing,
      dim: String(d),
      n: String(stats.n),
      source: meta.source ?? "",
      created: meta.created ?? new Date().toISOString(),
    },
    mu: { dtype: "F64", shape: [d], data_offsets: [0, 8 * d] },
    sigma: { dtype: "F64", shape: [d, d], data_offsets: [8 * d, 8 * d + 8 * d * d] },
  };
  let json = JSON.stringify(header);
  const len0 = new TextEncoder().encode(json).length;
  json += " ".repeat((8 - (len0 % 8)) % 8);
  const hb = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + hb.length + 8 * (d + d * d));
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(hb.length), true);
  out.set(hb, 8);
  let o = 8 + hb.length;
  for (const arr of [stats.mu, stats.sigma]) {
    for (let i = 0; i < arr.length; i++, o += 8) dv.setFloat64(o, arr[i], true);
  }
  return out;
}

/**
 * Decode bytes written by {@link encodeStats}; `source` names the file in errors.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeStats, encodeStats } from "./stats_file.ts";
 *
 * const stats = { mu: new Float64Array([1]), sigma: new Float64Array([4]), n: 5 };
 * const extractor = { name: "x", preprocessing: "none", dim: 1 };
 * const s = decodeStats(encodeStats(stats, { extractor, source: "toy" }), "toy.safetensors");
 * assert.deepEqual([Array.from(s.mu), Array.from(s.sigma), s.n, s.source], [[1], [4], 5, "toy"]);
 * assert.throws(() => decodeStats(new Uint8Array(3), "bad.safetensors"), /bad\.safetensors/);
 * ```
 */
export function decodeStats(bytes: Uint8Array, source = "<bytes>"): StoredStats {
  if (bytes.length < 8) fail(source, `file is ${bytes.length} bytes, not a safetensors file`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hlen = Number(dv.getBigUint64(0, true));
  if (hlen > bytes.length - 8) fail(source, `header length ${hlen} exceeds the file`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(
      new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + hlen)),
    );
  } catch (e) {
    fail(source, `header is not valid JSON (${(e as Error).message})`);
  }
  const meta = header.__metadata__ as Record<string, string> | undefined;
  if (!meta || meta.format !== STATS_FORMAT) {
    fail(
      source,
      `__metadata__.format must be "${STATS_FORMAT}", got ${JSON.stringify(meta?.format)}`,
    );
  }
  const d = Number(meta.dim), n = Number(meta.n);
  if (!Number.isInteger(d) || d < 1) fail(source, `__metadata__.dim must be a positive integer`);
  if (!Number.isInteger(n) || n < 0) fail(source, `__metadata__.n must be an integer >= 0`);
  const dataStart = 8 + hlen;
  const read = (name: string, shape: number[]): Float64Array => {
    const e = header[name] as { dtype?: string; shape?: number[]; data_offsets?: number[] };
    if (!e || e.dtype !== "F64") fail(source, `tensor "${name}" must be F64`);
    if (JSON.stringify(e.shape) !== JSON.stringify(shape)) {
      fail(source, `tensor "${name}" has shape ${JSON.stringify(e.shape)}, expected [${shape}]`);
    }
    const [b, en] = e.data_offsets ?? [];
    const count = shape.reduce((x, y) => x * y, 1);
    if (!Number.isInteger(b) || en - b !== 8 * count || dataStart + en > bytes.length) {
      fail(source, `tensor "${name}" data_offsets ${JSON.stringify(e.data_offsets)} are invalid`);
    }
    const out = new Float64Array(count);
    for (let i = 0; i < count; i++) out[i] = dv.getFloat64(dataStart + b + 8 * i, true);
    return out;
  };
  const mu = read("mu", [d]), sigma = read("sigma", [d, d]);
  return {
    mu,
    sigma,
    n,
    extractor: { name: meta.extractor ?? "", preprocessing: meta.preprocessing ?? "", dim: d },
    source: meta.source ?? "",
    created: meta.created ?? "",
  };
}

/**
 * Throw unless the statistics were computed by the same extractor (name, preprocessing, dim).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { assertSameExtractor } from "./stats_file.ts";
 *
 * const stored = { name: "inception-v3", preprocessing: "clean 299", dim: 2048 }; // from the file
 * assertSameExtractor(stored, { ...stored }, "ref.safetensors"); // same feature space: no throw
 * assert.throws(
 *   () => assertSameExtractor(stored, { ...stored, preprocessing: "legacy" }, "ref.safetensors"),
 *   /ref\.safetensors: computed with preprocessing "clean 299" \(current: "legacy"\)/,
 * );
 * ```
 */
export function assertSameExtractor(
  stored: ExtractorIdentity,
  current: ExtractorIdentity,
  source: string,
): void {
  const diffs: string[] = [];
  if (stored.name !== current.name) {
    diffs.push(`extractor "${stored.name}" (current: "${current.name}")`);
  }
  if (stored.preprocessing !== current.preprocessing) {
    diffs.push(`preprocessing "${stored.preprocessing}" (current: "${current.preprocessing}")`);
  }
  if (stored.dim !== current.dim) diffs.push(`dimension ${stored.dim} (current: ${current.dim})`);
  if (diffs.length) {
    fail(
      source,
      `computed with ${diffs.join(", ")}; refusing to compare features from different ` +
        `extractors. Delete the file or recompute the reference statistics.`,
    );
  }
}

/**
 * Write statistics and the extractor identity to `path` (atomically).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { saveReferenceStats } from "./stats_file.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const stats = { mu: new Float64Array([1]), sigma: new Float64Array([4]), n: 5 };
 * const extractor = { name: "x", preprocessing: "none", dim: 1 };
 * await saveReferenceStats(`${dir}/ref.safetensors`, stats, { extractor });
 * assert.deepEqual(Array.from(Deno.readDirSync(dir), (e) => e.name), ["ref.safetensors"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function saveReferenceStats(
  path: string,
  stats: FeatureStats,
  meta: { extractor: ExtractorIdentity; source?: string },
): Promise<void> {
  await writeFileAtomic(path, encodeStats(stats, meta));
}

/**
 * Read cached statistics, refusing them unless they match `extractor`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadReferenceStats } from "./stats_file.ts";
 *
 * const extractor = { name: "x", preprocessing: "none", dim: 1 };
 * await assert.rejects(loadReferenceStats("no/such/ref.safetensors", extractor), /cannot be read/);
 * ```
 */
export async function loadReferenceStats(
  path: string,
  extractor: ExtractorIdentity,
): Promise<StoredStats> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    fail(path, `cannot be read (${(e as Error).message})`);
  }
  const s = decodeStats(bytes, path);
  assertSameExtractor(s.extractor, extractor, path);
  return s;
}

/**
 * Cached statistics when `path` exists (checked against `extractor`), otherwise `compute()` them
 * and write the cache.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cachedReferenceStats } from "./stats_file.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const extractor = { name: "x", preprocessing: "none", dim: 1 };
 * let computed = 0;
 * const statsOfDataset = () => {
 *   computed++;
 *   return Promise.resolve({ mu: new Float64Array([1]), sigma: new Float64Array([4]), n: 5 });
 * };
 * await cachedReferenceStats(`${dir}/ref.safetensors`, extractor, statsOfDataset);
 * const ref = await cachedReferenceStats(`${dir}/ref.safetensors`, extractor, statsOfDataset);
 * assert.deepEqual([computed, ref.n], [1, 5]); // the second call read the cached file
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function cachedReferenceStats(
  path: string,
  extractor: ExtractorIdentity,
  compute: () => Promise<FeatureStats>,
  source = "",
): Promise<FeatureStats> {
  try {
    await Deno.stat(path);
    return await loadReferenceStats(path, extractor);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const stats = await compute();
  await saveReferenceStats(path, stats, { extractor, source });
  return stats;
}
