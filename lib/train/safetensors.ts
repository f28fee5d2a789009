/**
 * Reader and writer for the safetensors format (Hugging Face): an 8-byte little-endian header
 * length N, N bytes of JSON (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 * "__metadata__": {string: string}}`, space-padded), then the raw little-endian tensor bytes, with
 * offsets relative to the end of the header.
 *
 * Own implementation: the npm registry has no maintained, dependency-free safetensors package that
 * both reads and writes (and handles F16/BF16) under Deno, and the format is small enough to
 * validate fully here: offsets in range, contiguous, no overlap, sizes matching dtype and shape.
 *
 * @example
 * ```ts
 * const bytes = encodeSafetensors({ w: { shape: [2], data: new Float32Array([1, 2]) } }, {
 *   step: "100",
 * });
 * const file = decodeSafetensors(bytes, "model.safetensors");
 * file.tensors.w.data; // Float32Array [1, 2]
 * file.metadata.step; // "100"
 * ```
 * @module
 */
import { writeFileAtomic } from "../util/atomic.ts";
import {
  bfloat16BitsToFloat32,
  float16BitsToFloat32,
  floatToBFloat16,
  floatToHalf,
} from "../util/float16.ts";
import type { TensorDataMap } from "./tensor_data.ts";

// The half and bfloat16 conversions are defined once in lib/util; callers encoding F16/BF16
// tensor data by hand find them here too.
export { floatToBFloat16, floatToHalf, halfToFloat } from "../util/float16.ts";

/**
 * Element types the reader can decode (F16 and BF16 are widened to float32, or kept as their bits
 * with {@link DecodeSafetensorsOptions.halfBits}).
 */
export type SafetensorsDtype = "F32" | "F16" | "BF16" | "I32" | "I64";

/**
 * One decoded tensor. `dtype` is the type stored in the file; `data` is a `Uint16Array` only for
 * F16/BF16 decoded with `halfBits`.
 */
export interface SafeTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array | Int32Array | BigInt64Array | Uint16Array;
}

/** A decoded safetensors file. */
export interface SafetensorsFile {
  tensors: Record<string, SafeTensor>;
  metadata: Record<string, string>;
}

/** Bytes per element of every dtype the format defines (so headers with others still validate). */
const ITEM_SIZE: Record<string, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};

/** Refuse absurd headers before allocating (the reference implementation uses 100 MB too). */
const MAX_HEADER = 100_000_000;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function fail(source: string, msg: string): never {
  // Parser messages quote the header, line breaks included: keep the error on one line.
  throw new Error(`safetensors ${source}: ${msg.replace(/\r?\n/g, "\\n")}`);
}

/** Float32 values of F16 or BF16 bits. */
function widenHalf(dtype: string, bits: Uint16Array): Float32Array {
  return dtype === "BF16" ? bfloat16BitsToFloat32(bits) : float16BitsToFloat32(bits);
}

function isNonNegInt(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

interface Entry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

/** Options of {@link decodeSafetensors} and {@link readSafetensors}. */
export interface DecodeSafetensorsOptions {
  /**
   * Keep F16 and BF16 tensors as their 16-bit patterns (`Uint16Array`) instead of widening them
   * to float32, e.g. to hold float16 data at half the memory until it is used.
   */
  halfBits?: boolean;
}

/**
 * Parse and validate safetensors bytes. `source` (usually the file path) prefixes every error.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
 *
 * // Usually the bytes of await Deno.readFile("m.safetensors").
 * const bytes = encodeSafetensors({ w: { shape: [2], data: new Float32Array([1, 2]) } }, {
 *   epoch: "3",
 * });
 * const { tensors, metadata } = decodeSafetensors(bytes, "m");
 * assert.deepEqual(tensors.w.shape, [2]);
 * assert.equal(tensors.w.dtype, "F32");
 * assert.deepEqual(metadata, { epoch: "3" });
 * ```
 */
export function decodeSafetensors(
  bytes: Uint8Array,
  source = "<bytes>",
  opts: DecodeSafetensorsOptions = {},
): SafetensorsFile {
  const { entries, metadata, dataStart } = parseLayout(bytes, source);
  const tensors: Record<string, SafeTensor> = {};
  for (const e of entries) {
    const slice = bytes.subarray(dataStart + e.begin, dataStart + e.end);
    // slice() copies into a fresh, aligned buffer the typed arrays can view.
    const buf = slice.slice().buffer;
    let data: SafeTensor["data"];
    switch (e.dtype) {
      case "F32":
        data = new Float32Array(buf);
        break;
      case "F16":
      case "BF16": {
        const bits = new Uint16Array(buf);
        data = opts.halfBits ? bits : widenHalf(e.dtype, bits);
        break;
      }
      case "I32":
        data = new Int32Array(buf);
        break;
      case "I64":
        data = new BigInt64Array(buf);
        break;
      default:
        fail(
          source,
          `tensor ${quote(e.name)}: dtype ${e.dtype} is valid but not supported by this reader`,
        );
    }
    tensors[e.name] = { dtype: e.dtype as SafetensorsDtype, shape: e.shape, data };
  }
  return { tensors, metadata };
}

/**
 * Validate safetensors bytes without decoding the data: the header length, the header JSON and
 * every tensor's dtype, shape and offsets (in range, matching the size, tiling the data exactly).
 * Throws what {@link decodeSafetensors} would for a malformed file, naming `source`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkSafetensors, encodeSafetensors } from "./safetensors.ts";
 *
 * // Usually the bytes of await Deno.readFile("ckpt-00000100/model.safetensors").
 * const bytes = encodeSafetensors({ w: { shape: [2], data: new Float32Array([1, 2]) } });
 * checkSafetensors(bytes, "ckpt-00000100"); // fine
 * assert.throws(
 *   () => checkSafetensors(bytes.subarray(0, bytes.length - 4), "ckpt-00000100"),
 *   /ckpt-00000100/,
 * );
 * ```
 */
export function checkSafetensors(bytes: Uint8Array, source = "<bytes>"): void {
  parseLayout(bytes, source);
}

/** Tensor names are data: quoted as JSON so a hostile one cannot break an error line. */
function quote(name: string): string {
  return JSON.stringify(name);
}

function parseLayout(
  bytes: Uint8Array,
  source: string,
): { entries: Entry[]; metadata: Record<string, string>; dataStart: number } {
  if (!LITTLE_ENDIAN) fail(source, "big-endian hosts are not supported");
  if (bytes.length < 8) {
    fail(source, `file is ${bytes.length} bytes, shorter than the 8-byte header length`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n64 = dv.getBigUint64(0, true);
  if (n64 > BigInt(Math.min(MAX_HEADER, bytes.length - 8))) {
    fail(source, `header length ${n64} exceeds the file (${bytes.length} bytes) or ${MAX_HEADER}`);
  }
  const n = Number(n64);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    fail(source, `header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (!header || typeof header !== "object" || Array.isArray(header)) {
    fail(source, "header must be a JSON object");
  }
  const dataStart = 8 + n;
  const dataLen = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (!raw || typeof raw !== "object" || Array.isArray(raw)) {
        fail(source, `"__metadata__" must be an object of strings`);
      }
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== "string") {
          fail(source, `__metadata__ ${quote(k)} must be a string, got ${typeof v}`);
        }
        metadata[k] = v;
      }
      continue;
    }
    const where = `tensor ${quote(name)}`;
    if (!raw || typeof raw !== "object" || Array.isArray(raw)) {
      fail(source, `${where}: entry must be an object`);
    }
    const { dtype, shape, data_offsets: offs } = raw as Record<string, unknown>;
    if (typeof dtype !== "string" || !Object.hasOwn(ITEM_SIZE, dtype)) {
      fail(source, `${where}: unknown dtype ${JSON.stringify(dtype)}`);
    }
    if (!Array.isArray(shape) || !shape.every(isNonNegInt)) {
      fail(source, `${where}: shape must be an array of non-negative integers`);
    }
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isNonNegInt)) {
      fail(source, `${where}: data_offsets must be [begin, end] non-negative integers`);
    }
    const [begin, end] = offs as number[];
    if (begin > end || end > dataLen) {
      fail(
        source,
        `${where}: data_offsets [${begin}, ${end}] out of range (data is ${dataLen} bytes)`,
      );
    }
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    const want = count * ITEM_SIZE[dtype];
    if (end - begin !== want) {
      fail(
        source,
        `${where}: ${end - begin} bytes for ${dtype}[${shape}] which needs ${want}`,
      );
    }
    entries.push({ name, dtype, shape: shape as number[], begin, end });
  }
  // Tensors must tile the data buffer exactly: sorted by offset, each starting where the last ended.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  let prev: Entry | null = null;
  for (const e of sorted) {
    if (e.begin < pos) {
      fail(
        source,
        `tensor ${quote(e.name)}: data_offsets [${e.begin}, ${e.end}] overlap tensor ${
          quote(prev!.name)
        }`,
      );
    }
    if (e.begin > pos) {
      fail(
        source,
        `tensor ${quote(e.name)}: gap of ${
          e.begin - pos
        } bytes before data_offsets [${e.begin}, ${e.end}]`,
      );
    }
    pos = e.end;
    prev = e;
  }
  if (pos !== dataLen) fail(source, `${dataLen - pos} trailing bytes after the last tensor`);
  return { entries, metadata, dataStart };
}

/** Options of {@link encodeSafetensors} and {@link writeSafetensors}. */
export interface EncodeSafetensorsOptions {
  /**
   * Stored element type of float32 tensors that name none (default F32); F16 and BF16 round to
   * nearest even.
   */
  dtype?: "F32" | "F16" | "BF16";
}

/**
 * A tensor to write: float32 values (stored as its `dtype`, else the options' dtype; F16 and BF16
 * round to nearest even) or, with dtype F16 or BF16, its 16-bit patterns, written as they are.
 * A plain `TensorData` is the first form.
 */
export type EncodableTensor =
  | { shape: number[]; data: Float32Array; dtype?: "F32" | "F16" | "BF16" }
  | { shape: number[]; data: Uint16Array; dtype: "F16" | "BF16" };

const STORED_DTYPES = ["F32", "F16", "BF16"];

/**
 * Serialise tensors (sorted by name) plus string metadata to safetensors bytes: float32 tensors
 * stored as F32 or, with their own or `opts.dtype`, rounded to F16/BF16; F16/BF16 bits as they
 * are (see {@link EncodableTensor}). The header is space-padded to a multiple of 8 so the data is
 * aligned for zero-copy readers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
 *
 * const bytes = encodeSafetensors({ b: { shape: [], data: new Float32Array([3]) } });
 * const half = encodeSafetensors({ b: { shape: [], data: new Float32Array([3]) } }, {}, {
 *   dtype: "F16",
 * });
 * // Mixed: float32 values beside float16 bits (0x3c00 is 1.0), read back as bits.
 * const mixed = encodeSafetensors({
 *   m: { shape: [1], data: Float32Array.of(1.5) },
 *   t: { dtype: "F16", shape: [1], data: Uint16Array.of(0x3c00) },
 * });
 * const back = decodeSafetensors(mixed, "m", { halfBits: true });
 * assert.deepEqual(back.tensors.t.data, Uint16Array.of(0x3c00));
 * assert.deepEqual(decodeSafetensors(mixed).tensors.t.data, Float32Array.of(1));
 * ```
 */
export function encodeSafetensors(
  tensors: Record<string, EncodableTensor>,
  metadata: Record<string, string> = {},
  opts: EncodeSafetensorsOptions = {},
): Uint8Array {
  const fileDtype = opts.dtype ?? "F32";
  if (!STORED_DTYPES.includes(fileDtype)) {
    throw new Error(`encodeSafetensors: dtype must be F32, F16 or BF16, got ${fileDtype}`);
  }
  const header: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== "string") {
      throw new Error(`encodeSafetensors: metadata ${quote(k)} must be a string`);
    }
  }
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  const names = Object.keys(tensors).sort();
  let off = 0;
  for (const name of names) {
    if (name === "__metadata__") throw new Error(`encodeSafetensors: "__metadata__" is reserved`);
    const { shape, data } = tensors[name];
    const dtype = tensors[name].dtype ?? fileDtype;
    if (!STORED_DTYPES.includes(dtype)) {
      throw new Error(
        `encodeSafetensors: tensor ${quote(name)} dtype must be F32, F16 or BF16, got ${dtype}`,
      );
    }
    if (
      !(data instanceof Float32Array) && !(data instanceof Uint16Array && dtype !== "F32")
    ) {
      throw new Error(
        `encodeSafetensors: tensor ${
          quote(name)
        } data must be a Float32Array (or a Uint16Array of F16/BF16 bits)`,
      );
    }
    if (!Array.isArray(shape) || !shape.every(isNonNegInt)) {
      throw new Error(
        `encodeSafetensors: tensor ${quote(name)} shape must be non-negative integers`,
      );
    }
    const count = shape.reduce((a, b) => a * b, 1);
    if (count !== data.length) {
      throw new Error(
        `encodeSafetensors: tensor ${
          quote(name)
        } has ${data.length} values but shape [${shape}] needs ${count}`,
      );
    }
    header[name] = { dtype, shape, data_offsets: [off, off + ITEM_SIZE[dtype] * count] };
    off += ITEM_SIZE[dtype] * count;
  }
  let json = JSON.stringify(header);
  let hbytes = new TextEncoder().encode(json);
  const pad = (8 - (hbytes.length % 8)) % 8;
  if (pad) {
    json += " ".repeat(pad);
    hbytes = new TextEncoder().encode(json);
  }
  const out = new Uint8Array(8 + hbytes.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(hbytes.length), true);
  out.set(hbytes, 8);
  let pos = 8 + hbytes.length;
  for (const name of names) {
    const { data: src, dtype = fileDtype } = tensors[name];
    let d: Float32Array | Uint16Array = src;
    if (src instanceof Float32Array && dtype !== "F32") {
      const round = dtype === "F16" ? floatToHalf : floatToBFloat16;
      d = new Uint16Array(src.length);
      for (let i = 0; i < src.length; i++) d[i] = round(src[i]);
    }
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), pos);
    pos += d.byteLength;
  }
  return out;
}

/**
 * Convert a decoded file to float32 host tensors (integers are converted by value).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeSafetensors, encodeSafetensors, toTensorDataMap } from "./safetensors.ts";
 *
 * const model = { w: { shape: [1, 2], data: new Float32Array([0.5, -1]) } };
 * const weights = toTensorDataMap(decodeSafetensors(encodeSafetensors(model)));
 * assert.deepEqual(weights, model);
 * ```
 */
export function toTensorDataMap(file: SafetensorsFile): TensorDataMap {
  const out: TensorDataMap = {};
  for (const [k, t] of Object.entries(file.tensors)) {
    let data: Float32Array;
    if (t.data instanceof Float32Array) data = t.data;
    else if (t.data instanceof Uint16Array) data = widenHalf(t.dtype, t.data);
    else if (t.data instanceof BigInt64Array) data = Float32Array.from(t.data, (x) => Number(x));
    else data = Float32Array.from(t.data);
    out[k] = { shape: t.shape, data };
  }
  return out;
}

/**
 * Read and validate a safetensors file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readSafetensors, writeSafetensors } from "./safetensors.ts";
 *
 * const dir = await Deno.makeTempDir(); // e.g. runs/x/ckpt-00000100
 * await writeSafetensors(`${dir}/model.safetensors`, {
 *   w: { shape: [1], data: new Float32Array([7]) },
 * });
 * const { tensors } = await readSafetensors(`${dir}/model.safetensors`);
 * assert.deepEqual(tensors.w.shape, [1]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readSafetensors(
  path: string,
  opts: DecodeSafetensorsOptions = {},
): Promise<SafetensorsFile> {
  return decodeSafetensors(await Deno.readFile(path), path, opts);
}

/**
 * Write tensors to `path` atomically, encoded as {@link encodeSafetensors} does.
 *
 * @example
 * ```ts
 * const dir = await Deno.makeTempDir();
 * await writeSafetensors(`${dir}/w.safetensors`, {
 *   w: { shape: [1], data: new Float32Array([1]) },
 * });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, EncodableTensor>,
  metadata: Record<string, string> = {},
  opts: EncodeSafetensorsOptions = {},
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata, opts));
}
