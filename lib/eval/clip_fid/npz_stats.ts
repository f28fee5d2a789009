/**
 * Reference statistics from numpy `.npz` files, the form clean-fid (and pytorch-fid) publish
 * theirs in: a zip (stored by `np.savez`, deflated by `np.savez_compressed`) holding `mu.npy`
 * (float64 `[d]`) and `sigma.npy` (float64 `[d, d]`). The zip is read with fflate; the `.npy`
 * header is parsed here, following numpy's format description (`numpy.lib.format`): magic
 * `\x93NUMPY`, version 1.x (uint16 header length), 2.x or 3.x (uint32), then a Python dict literal
 * with `descr`, `fortran_order` and `shape`.
 *
 * A `.npz` records neither the feature extractor nor the image count, so only the dimension can
 * be checked against the extractor in use: {@link readReferenceStats} refuses a mismatch, naming
 * both (clean-fid's statistics are 2048-d Inception-v3 pool3 features).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { zipSync } from "npm:fflate@0.8.3";
 * import { decodeNpzStats, encodeNpy } from "./npz_stats.ts";
 *
 * const npz = zipSync({
 *   "mu.npy": encodeNpy(new Float64Array([1, 2]), [2]),
 *   "sigma.npy": encodeNpy(new Float64Array([1, 0, 0, 1]), [2, 2]),
 * });
 * const s = decodeNpzStats(npz, "ref.npz");
 * assert.deepEqual(Array.from(s.mu), [1, 2]);
 * ```
 * @module
 */
import { unzipSync } from "npm:fflate@0.8.3";
import type { FeatureStats } from "./stats.ts";
import { type ExtractorIdentity, loadReferenceStats } from "./stats_file.ts";

/** One array read from a `.npy` file. */
export interface NpyArray {
  /** numpy's type string, e.g. `<f8`. */
  descr: string;
  fortranOrder: boolean;
  shape: number[];
  /** Values in C (row-major) order, whatever order the file stored. */
  data: Float64Array;
}

/** Statistics read from a `.npz`; `n` is 0 because the format does not record it. */
export interface NpzStats extends FeatureStats {
  /** The file's name, for reports. */
  source: string;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** Parse numpy's header dict literal: `{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }`. */
function parseHeaderDict(text: string, what: string): Omit<NpyArray, "data"> {
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]+)['"]/.exec(text)?.[1];
  const fo = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(text)?.[1];
  const sh = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(text)?.[1];
  if (descr === undefined || fo === undefined || sh === undefined) {
    throw new Error(
      `${what}: .npy header ${JSON.stringify(text.trim())} lacks descr, fortran_order or shape`,
    );
  }
  const parts = sh.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (parts.some((p) => !/^\d+L?$/.test(p))) {
    throw new Error(`${what}: .npy shape (${sh}) is not a tuple of integers`);
  }
  return { descr, fortranOrder: fo === "True", shape: parts.map((p) => parseInt(p, 10)) };
}

/**
 * Decode one `.npy` file holding float64 values (`<f8`, or `>f8` big-endian), any shape; a
 * Fortran-ordered array is returned in C order. `what` names the file and array in errors.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeNpy, encodeNpy } from "./npz_stats.ts";
 *
 * const a = decodeNpy(encodeNpy(new Float64Array([1, 2, 3, 4, 5, 6]), [2, 3]), "x.npy");
 * assert.deepEqual(a.shape, [2, 3]);
 * assert.equal(a.data[5], 6);
 * ```
 */
export function decodeNpy(bytes: Uint8Array, what: string): NpyArray {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new Error(`${what}: not a .npy array (no \\x93NUMPY magic)`);
  }
  const major = bytes[6];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let hlen: number, start: number;
  if (major === 1) [hlen, start] = [dv.getUint16(8, true), 10];
  else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw new Error(`${what}: .npy header is cut short`);
    [hlen, start] = [dv.getUint32(8, true), 12];
  } else throw new Error(`${what}: .npy format version ${major}.${bytes[7]} is not 1, 2 or 3`);
  if (start + hlen > bytes.length) throw new Error(`${what}: .npy header is cut short`);
  const text = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(
    bytes.subarray(start, start + hlen),
  );
  const h = parseHeaderDict(text, what);
  if (h.descr !== "<f8" && h.descr !== ">f8") {
    throw new Error(`${what}: dtype ${h.descr}, expected float64 (<f8)`);
  }
  const count = h.shape.reduce((a, b) => a * b, 1);
  const off = start + hlen;
  if (bytes.length - off !== 8 * count) {
    throw new Error(
      `${what}: ${bytes.length - off} data bytes for shape (${h.shape.join(", ")}), expected ` +
        `${8 * count}`,
    );
  }
  const little = h.descr === "<f8";
  const raw = new Float64Array(count);
  for (let i = 0; i < count; i++) raw[i] = dv.getFloat64(off + 8 * i, little);
  let data = raw;
  if (h.fortranOrder && h.shape.length > 1) {
    // Fortran order is column-major: reverse the index order to get row-major values.
    data = new Float64Array(count);
    const shape = h.shape, rank = shape.length;
    const idx = new Array<number>(rank).fill(0);
    for (let f = 0; f < count; f++) {
      let c = 0;
      for (let k = 0; k < rank; k++) c = c * shape[k] + idx[k];
      data[c] = raw[f];
      for (let k = 0; k < rank && ++idx[k] === shape[k]; k++) idx[k] = 0;
    }
  }
  return { ...h, data };
}

/**
 * Encode float64 values as a version-1.0 `.npy` file (`<f8`, C order), as `np.save` writes it:
 * the header padded with spaces and a newline to a multiple of 64 bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeNpy } from "./npz_stats.ts";
 *
 * const b = encodeNpy(new Float64Array([0.5]), [1]);
 * assert.equal(b.length % 64, 8); // header block, then one float64
 * ```
 */
export function encodeNpy(data: Float64Array, shape: number[]): Uint8Array {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) {
    throw new Error(`encodeNpy: ${data.length} values for shape (${shape.join(", ")})`);
  }
  const tuple = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  let dict = `{'descr': '<f8', 'fortran_order': False, 'shape': ${tuple}, }`;
  const pad = (64 - ((10 + dict.length + 1) % 64)) % 64;
  dict += " ".repeat(pad) + "\n";
  const out = new Uint8Array(10 + dict.length + 8 * count);
  out.set(MAGIC, 0);
  out[6] = 1;
  const dv = new DataView(out.buffer);
  dv.setUint16(8, dict.length, true);
  out.set(new TextEncoder().encode(dict), 10);
  for (let i = 0; i < count; i++) dv.setFloat64(10 + dict.length + 8 * i, data[i], true);
  return out;
}

/**
 * Decode `.npz` bytes holding `mu` (float64 `[d]`) and `sigma` (float64 `[d, d]`); other arrays
 * are ignored. Errors are one line naming `source` and the array.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeNpzStats } from "./npz_stats.ts";
 *
 * // Written by numpy's np.savez (clean-fid's reference statistics are 2048-d files like it).
 * const path = "tests/fixtures/npz_stats/stored.npz";
 * const s = decodeNpzStats(await Deno.readFile(path), path);
 * assert.deepEqual([s.mu.length, s.sigma.length], [8, 64]);
 * ```
 */
export function decodeNpzStats(bytes: Uint8Array, source = "<bytes>"): NpzStats {
  const wanted = ["mu", "sigma"];
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes, { filter: (f) => wanted.includes(f.name.replace(/\.npy$/, "")) });
  } catch (e) {
    throw new Error(`${source}: not a readable .npz (zip) file (${(e as Error).message})`);
  }
  const arr = (name: string): NpyArray => {
    const b = files[`${name}.npy`] ?? files[name];
    if (b === undefined) {
      throw new Error(
        `${source}: no array "${name}"; reference statistics hold mu (float64 [d]) and sigma ` +
          `(float64 [d, d]), as clean-fid's np.savez files do`,
      );
    }
    return decodeNpy(b, `${source}: array "${name}"`);
  };
  const mu = arr("mu"), sigma = arr("sigma");
  if (mu.shape.length !== 1 || mu.shape[0] < 1) {
    throw new Error(`${source}: array "mu" has shape (${mu.shape}), expected (d,)`);
  }
  const d = mu.shape[0];
  if (sigma.shape.length !== 2 || sigma.shape[0] !== d || sigma.shape[1] !== d) {
    throw new Error(
      `${source}: array "sigma" has shape (${sigma.shape.join(", ")}), expected (${d}, ${d}) ` +
        `to match mu`,
    );
  }
  for (const [name, a] of [["mu", mu], ["sigma", sigma]] as const) {
    const bad = a.data.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new Error(`${source}: array "${name}" has a non-finite value at ${bad}`);
  }
  return { mu: mu.data, sigma: sigma.data, n: 0, source };
}

/**
 * Reference statistics read from a file, whichever format, for the extractor in use.
 */
export interface ReadReferenceStats extends FeatureStats {
  /** "kit": the kit's safetensors (extractor checked); "npz": numpy (only the dimension checked). */
  format: "kit" | "npz";
}

/**
 * Read reference statistics for `extractor`: a `.npz` (clean-fid's, by zip magic) whose
 * dimension must equal the extractor's, or the kit's safetensors statistics (name,
 * preprocessing and dimension checked, `loadReferenceStats`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readReferenceStats } from "./npz_stats.ts";
 *
 * const path = "tests/fixtures/npz_stats/stored.npz"; // 8-d statistics from numpy
 * const ex = { name: "inception-v3-pool3-1a2b3c4d", preprocessing: "clean", dim: 8 };
 * const ref = await readReferenceStats(path, ex);
 * assert.deepEqual([ref.format, ref.mu.length], ["npz", 8]);
 * await assert.rejects(readReferenceStats(path, { ...ex, dim: 2048 }), /8-d features/);
 * ```
 */
export async function readReferenceStats(
  path: string,
  extractor: ExtractorIdentity,
): Promise<ReadReferenceStats> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new Error(`reference statistics ${path}: cannot be read (${(e as Error).message})`);
  }
  const zip = bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 3 &&
    bytes[3] === 4;
  if (!zip) return { ...(await loadReferenceStats(path, extractor)), format: "kit" };
  const s = decodeNpzStats(bytes, path);
  if (s.mu.length !== extractor.dim) {
    throw new Error(
      `${path}: statistics of ${s.mu.length}-d features, but the FID extractor ` +
        `${extractor.name} gives ${extractor.dim}-d features (clean-fid's statistics are 2048-d ` +
        `Inception-v3 pool3 features: use --extractor inception)`,
    );
  }
  return { mu: s.mu, sigma: s.sigma, n: 0, format: "npz" };
}
