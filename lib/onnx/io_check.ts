/**
 * Shared plumbing of the ONNX model loaders (the CLIP towers, preference model, segmenter and
 * upsampler of lib/inference): open a model given as a path, bytes or an open session; find inputs and outputs by name with errors that list what the model has; check
 * declared shapes; split work into batches the model accepts (a fixed batch dimension is padded
 * to).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openModel, requireInput } from "./io_check.ts";
 *
 * const path = "tests/fixtures/tiny_sd/fp32_scalar_t/text_encoder/model.onnx"; // a CLIP text model
 * const { session } = await openModel(path, { executionProviders: ["cpu"] }, "CLIP text model");
 * const ids = requireInput(session, ["input_ids"], "int32 or int64 [batch, 77]");
 * assert.equal(ids.dtype, "int32");
 * assert.throws(() => requireInput(session, ["pixel_values"], "images"), /pixel_values/);
 * await session.release();
 * ```
 * @module
 */
import { type OnnxIoInfo, type OnnxSession, openSession } from "./session.ts";

/** A model: a path, ONNX bytes, or an already open session (then not released by its loader). */
export type ModelSource = string | Uint8Array | OnnxSession;

/** Session options shared by the model loaders. */
export interface ModelSessionOptions {
  /** Intra-op threads (default: one per core). */
  threads?: number;
  /** Execution providers (default "auto": CUDA when this onnxruntime build has it, else CPU). */
  executionProviders?: "auto" | readonly string[];
  /** Where onnxruntime's CUDA fallback notice goes (default `console.warn`). */
  log?: (line: string) => void;
}

/** An opened model. */
export interface OpenedModel {
  /** The session. */
  session: OnnxSession;
  /** Whether the loader opened it (and so releases it). */
  owned: boolean;
}

/**
 * Open a model; `what` names it in errors when it is given as bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openModel } from "./io_check.ts";
 * import { OnnxGraph } from "./writer.ts";
 *
 * const g = new OnnxGraph();
 * g.output(g.node("Relu", [g.input("x", "float32", [4])]), "float32");
 * const opts = { threads: 1, executionProviders: ["cpu" as const] };
 * const { session, owned } = await openModel(g.toBytes(), opts, "upsampler.onnx");
 * assert.equal(owned, true); // opened here, so the caller releases it
 * assert.equal((await openModel(session, opts, "again")).owned, false);
 * await session.release();
 * ```
 */
export async function openModel(
  model: ModelSource,
  opts: ModelSessionOptions,
  what: string,
): Promise<OpenedModel> {
  if (typeof model !== "string" && !(model instanceof Uint8Array)) {
    if (!model || !Array.isArray(model.inputs) || typeof model.run !== "function") {
      throw new Error(`${what}: expected a model path, ONNX bytes or an OnnxSession`);
    }
    return { session: model, owned: false };
  }
  const session = await openSession(model, {
    name: typeof model === "string" ? model : what,
    threads: opts.threads,
    executionProviders: opts.executionProviders,
    log: opts.log,
  });
  return { session, owned: true };
}

/**
 * `[a, b, c]`, or `[?]` when the rank is unknown.
 *
 * @example
 * ```ts
 * fmtShape(["batch", 3, 224, 224]); // "[batch, 3, 224, 224]"
 * ```
 */
export function fmtShape(shape: readonly (number | string)[] | null): string {
  return shape === null ? "[?]" : `[${shape.join(", ")}]`;
}

/**
 * `"name" dtype [shape]` for each entry, comma-separated.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { listIo } from "./io_check.ts";
 *
 * const inputs = [{ name: "input_ids", dtype: "int64" as const, shape: ["batch", 77] }];
 * assert.equal(listIo(inputs), '"input_ids" int64 [batch, 77]');
 * ```
 */
export function listIo(list: readonly OnnxIoInfo[]): string {
  return list.map((i) => `"${i.name}" ${i.dtype} ${fmtShape(i.shape)}`).join(", ");
}

/**
 * A declared size, or null for symbolic or unknown dimensions.
 *
 * @example
 * ```ts
 * fixedDim(224); // 224
 * fixedDim("height"); // null
 * ```
 */
export function fixedDim(d: number | string | undefined): number | null {
  return typeof d === "number" && d > 0 ? d : null;
}

/**
 * The first input named in `names`; throws naming the model, the expected input and what the
 * model takes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { requireInput } from "./io_check.ts";
 * import { openSession } from "./session.ts";
 * import { OnnxGraph } from "./writer.ts";
 *
 * const g = new OnnxGraph();
 * g.output(g.node("Relu", [g.input("pixel_values", "float32", ["batch", 3, 224, 224])]), "float32");
 * const s = await openSession(g.toBytes(), { threads: 1, executionProviders: ["cpu"] });
 * const px = requireInput(s, ["images", "pixel_values"], "float32 [batch, 3, 224, 224]");
 * assert.deepEqual(px.shape, ["batch", 3, 224, 224]);
 * await s.release();
 * ```
 */
export function requireInput(
  s: OnnxSession,
  names: readonly string[],
  expected: string,
): OnnxIoInfo {
  for (const n of names) {
    const i = s.inputs.find((x) => x.name === n);
    if (i) return i;
  }
  throw new Error(
    `${s.name}: has no input ${names.map((n) => `"${n}"`).join(" or ")} (expected ${expected}); ` +
      `its inputs are ${listIo(s.inputs)}`,
  );
}

/**
 * Throw when the model declares an input its loader does not feed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { onlyInputs } from "./io_check.ts";
 * import { openSession } from "./session.ts";
 * import { OnnxGraph } from "./writer.ts";
 *
 * const g = new OnnxGraph();
 * g.output(g.node("Relu", [g.input("input_ids", "float32", [4])]), "float32");
 * const s = await openSession(g.toBytes(), { threads: 1, executionProviders: ["cpu"] });
 * onlyInputs(s, ["pixel_values", "input_ids", "attention_mask"]); // ok: every input is fed
 * assert.throws(() => onlyInputs(s, ["pixel_values"]), /is not one this loader feeds/);
 * await s.release();
 * ```
 */
export function onlyInputs(s: OnnxSession, fed: readonly string[]): void {
  const extra = s.inputs.filter((i) => !fed.includes(i.name));
  if (extra.length) {
    throw new Error(
      `${s.name}: input ${listIo(extra)} is not one this loader feeds (it feeds ${
        fed.map((n) => `"${n}"`).join(", ")
      })`,
    );
  }
}

/**
 * Throw naming an input and the expected type and shape.
 */
export function misfitInput(s: OnnxSession, io: OnnxIoInfo, expected: string, why: string): never {
  throw new Error(
    `${s.name}: input "${io.name}" is ${io.dtype} ${fmtShape(io.shape)}, expected ${expected} ` +
      `(${why})`,
  );
}

/**
 * Throw naming an output and the expected shape.
 */
export function misfitOutput(s: OnnxSession, io: OnnxIoInfo, expected: string, why: string): never {
  throw new Error(
    `${s.name}: output "${io.name}" is ${io.dtype} ${fmtShape(io.shape)}, expected ${expected} ` +
      `(${why})`,
  );
}

/**
 * Check an image input: float32, rank 4, NCHW with 3 channels, fixed sizes (when declared)
 * equal to `size`. Returns the declared fixed height and width (null when symbolic).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkImageInput } from "./io_check.ts";
 * import { openSession } from "./session.ts";
 *
 * const path = "tests/fixtures/tiny_sd/fp32_scalar_t/vae_encoder/model.onnx"; // [batch, 3, h, w]
 * const s = await openSession(path, { threads: 1, executionProviders: ["cpu"] });
 * const { height, width } = checkImageInput(s, s.inputs[0], "RGB images");
 * assert.deepEqual([height, width], [null, null]); // dynamic; a CLIP vision model gives 224
 * await s.release();
 * ```
 */
export function checkImageInput(
  s: OnnxSession,
  io: OnnxIoInfo,
  why: string,
  size?: { width: number; height: number },
): { height: number | null; width: number | null; batch: number | null } {
  const want = `float32 [batch, 3, ${size?.height ?? "height"}, ${size?.width ?? "width"}]`;
  if (io.dtype !== "float32") {
    misfitInput(s, io, want, `${why}; other element types are not supported`);
  }
  if (io.shape === null) return { height: null, width: null, batch: null };
  if (io.shape.length !== 4) misfitInput(s, io, want, `${why}, NCHW`);
  if ((fixedDim(io.shape[1]) ?? 3) !== 3) misfitInput(s, io, want, `${why}, 3 channels (NCHW)`);
  const height = fixedDim(io.shape[2]), width = fixedDim(io.shape[3]);
  if (size && ((height ?? size.height) !== size.height || (width ?? size.width) !== size.width)) {
    misfitInput(s, io, want, `${why} of the configured size`);
  }
  return { height, width, batch: fixedDim(io.shape[0]) };
}

/**
 * Check an ids input (int32 or int64, rank 2); returns the fixed sequence length, if declared.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkIdsInput } from "./io_check.ts";
 * import { openSession } from "./session.ts";
 *
 * const path = "tests/fixtures/tiny_sd/fp32_scalar_t/text_encoder/model.onnx";
 * const s = await openSession(path, { threads: 1, executionProviders: ["cpu"] });
 * const { length } = checkIdsInput(s, s.inputs[0]); // 77, or null for a dynamic length
 * assert.equal(length, null);
 * await s.release();

 * ```
 */
export function checkIdsInput(
  s: OnnxSession,
  io: OnnxIoInfo,
): { length: number | null; batch: number | null } {
  const want = "int32 or int64 [batch, sequence]";
  if (io.dtype !== "int32" && io.dtype !== "int64") misfitInput(s, io, want, "token ids");
  if (io.shape === null) return { length: null, batch: null };
  if (io.shape.length !== 2) misfitInput(s, io, want, "token ids, one row per text");
  return { length: fixedDim(io.shape[1]), batch: fixedDim(io.shape[0]) };
}

/** One model call of a batched job: items `start .. start + n - 1`, fed as `feedN` rows. */
export interface BatchStep {
  /** First item. */
  start: number;
  /** Items in this call. */
  n: number;
  /** Rows fed (the model's fixed batch size, else `n`); rows past `n` are padding. */
  feedN: number;
}

/**
 * Split `count` items into model calls: `fixedBatch` rows per call when the model fixes its batch
 * dimension, else up to `maxBatch`.
 *
 * @example
 * ```ts
 * batchSteps(5, { fixedBatch: 2, maxBatch: 16 });
 * // [{start:0,n:2,feedN:2}, {start:2,n:2,feedN:2}, {start:4,n:1,feedN:2}]
 * ```
 */
export function batchSteps(
  count: number,
  opts: { fixedBatch: number | null; maxBatch: number },
): BatchStep[] {
  if (!Number.isInteger(opts.maxBatch) || opts.maxBatch < 1) {
    throw new Error(`batchSize must be a positive integer, got ${opts.maxBatch}`);
  }
  const per = opts.fixedBatch ?? opts.maxBatch;
  const steps: BatchStep[] = [];
  for (let start = 0; start < count; start += per) {
    const n = Math.min(per, count - start);
    steps.push({ start, n, feedN: opts.fixedBatch ?? n });
  }
  return steps;
}

/**
 * Rows `0 .. n-1` of a `[rows, ...]` float output as a fresh array, checking the row count.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { takeRows } from "./io_check.ts";
 *
 * const out = new Float32Array(3 * 512); // a session's "image_embeds" output
 * const rows = takeRows(out, { n: 3, rowSize: 512, where: "clip.onnx: output \"image_embeds\"" });
 * assert.equal(rows.length, 3 * 512);
 * ```
 */
export function takeRows(
  data: ArrayLike<number>,
  opts: { n: number; rowSize: number; where: string },
): Float32Array {
  const need = opts.n * opts.rowSize;
  if (data.length < need) {
    throw new Error(`${opts.where}: gave ${data.length} values, expected at least ${need}`);
  }
  if (data instanceof Float32Array) return data.slice(0, need);
  return Float32Array.from({ length: need }, (_, i) => data[i]);
}
