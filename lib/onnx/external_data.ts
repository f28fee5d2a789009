/**
 * Save an {@link OnnxGraph} with its large weights in a second file ("external data"), as
 * exporters do for Stable Diffusion's UNet: a protobuf message cannot pass 2 GiB, and the UNet is
 * ~3.4 GB in float32 (~1.7 GB in float16). `model.onnx` then holds the graph, the small tensors
 * and, per large initializer, the `location`, `offset` and `length` of its bytes in
 * `model.onnx_data` (Optimum's name for that file). onnxruntime resolves the location relative to
 * the model's folder, so a session must be opened from the path, not from bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { OnnxGraph } from "./writer.ts";
 * import { saveOnnxModel } from "./external_data.ts";
 * import { openSession } from "./session.ts";
 *
 * const g = new OnnxGraph("scale");
 * const x = g.input("x", "float32", [512]);
 * const w = g.initializer("w", new Float32Array(512).fill(2), [512]);
 * g.output(g.node("Mul", [x, w], {}, { outputs: ["y"] }), "float32", [512]);
 * const dir = await Deno.makeTempDir();
 * const saved = await saveOnnxModel(`${dir}/model.onnx`, g, { externalData: "always" });
 * assert.deepEqual(saved.files, ["model.onnx_data", "model.onnx"]);
 * const s = await openSession(`${dir}/model.onnx`, { threads: 1, executionProviders: ["cpu"] });
 * const { y } = await s.run({ x: { data: new Float32Array(512).fill(3), shape: [512] } });
 * assert.equal((y.data as Float32Array)[0], 6);
 * await s.release();
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */
import { tempPathFor, writeFileAtomic } from "../util/atomic.ts";
import { onnxSchema } from "./schema.ts";
import type { OnnxGraph, OnnxModelOptions } from "./writer.ts";

/** `TensorProto.DataLocation.EXTERNAL`. */
const EXTERNAL = 1;

/**
 * Total initializer bytes above which `"auto"` moves weights out: protobuf refuses messages of
 * 2 GiB and more; the margin leaves room for the graph itself.
 */
export const EXTERNAL_DATA_AUTO_BYTES = 1.75 * 2 ** 30;

/** Options of {@link saveOnnxModel}. */
export interface SaveOnnxModelOptions extends OnnxModelOptions {
  /**
   * `"auto"` (default): external data only when the initializers pass
   * {@link EXTERNAL_DATA_AUTO_BYTES}; `"always"`; `"never"` (one file, fails past 2 GiB).
   */
  externalData?: "auto" | "always" | "never";
  /** Initializers smaller than this many bytes stay inside the model (default 1024, as ONNX's). */
  sizeThreshold?: number;
  /**
   * Each external tensor starts at a multiple of this many bytes (default 4096, a page), so
   * onnxruntime can map the file instead of copying it; 1 packs them.
   */
  align?: number;
}

/** What {@link saveOnnxModel} wrote. */
export interface SavedOnnxModel {
  /** Files written, names relative to the model's folder, the model last. */
  files: string[];
  /** Initializers stored in the data file. */
  externalTensors: number;
  /** Bytes of the data file (0 when none was written). */
  externalBytes: number;
}

/**
 * Write `graph` to `path`, with its large initializers in `<basename>_data` beside it when asked
 * or needed. Both files are written under temporary names and renamed, the data file first, so a
 * model file on disk always has its complete data beside it; a data file left from an earlier
 * save of the same model is removed when the new one keeps everything inline.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { OnnxGraph } from "./writer.ts";
 * import { saveOnnxModel } from "./external_data.ts";
 *
 * const g = new OnnxGraph("id");
 * g.output(g.node("Identity", [g.input("x", "float32", [1])]), "float32", [1]);
 * const dir = await Deno.makeTempDir();
 * const saved = await saveOnnxModel(`${dir}/tiny.onnx`, g); // "auto": small, one file
 * assert.deepEqual(saved, { files: ["tiny.onnx"], externalTensors: 0, externalBytes: 0 });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function saveOnnxModel(
  path: string,
  graph: OnnxGraph,
  opts: SaveOnnxModelOptions = {},
): Promise<SavedOnnxModel> {
  const mode = opts.externalData ?? "auto";
  const threshold = opts.sizeThreshold ?? 1024;
  const align = opts.align ?? 4096;
  if (!["auto", "always", "never"].includes(mode)) {
    throw new Error(`saveOnnxModel: externalData must be "auto", "always" or "never", got ${mode}`);
  }
  if (!Number.isInteger(align) || align < 1) {
    throw new Error(`saveOnnxModel: align must be a positive integer, got ${align}`);
  }
  const model = graph.toModel(opts) as { graph: { initializer: Tensor[] } };
  const name = path.slice(path.lastIndexOf("/") + 1);
  const dataName = `${name}_data`;
  const dataPath = `${path.slice(0, path.length - name.length)}${dataName}`;
  const total = model.graph.initializer.reduce((s, t) => s + (t.raw_data?.length ?? 0), 0);
  const external = mode === "always" || (mode === "auto" && total > EXTERNAL_DATA_AUTO_BYTES);
  const { ModelProto } = onnxSchema();
  if (!external) {
    await writeFileAtomic(path, ModelProto.encode(model).finish());
    await Deno.remove(dataPath).catch(() => {});
    return { files: [name], externalTensors: 0, externalBytes: 0 };
  }

  // Stream the data file: at SD's size it does not fit one ArrayBuffer comfortably.
  const tmp = tempPathFor(dataPath);
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  let offset = 0, count = 0;
  const initializer: Tensor[] = [];
  try {
    for (const t of model.graph.initializer) {
      const raw = t.raw_data;
      if (!raw || raw.length < threshold) {
        initializer.push(t);
        continue;
      }
      const pad = (align - (offset % align)) % align;
      if (pad) await writeAll(file, new Uint8Array(pad));
      offset += pad;
      await writeAll(file, raw);
      const { raw_data: _, ...rest } = t;
      initializer.push({
        ...rest,
        data_location: EXTERNAL,
        external_data: [
          { key: "location", value: dataName },
          { key: "offset", value: String(offset) },
          { key: "length", value: String(raw.length) },
        ],
      });
      offset += raw.length;
      count++;
    }
    await file.sync();
  } finally {
    file.close();
  }
  try {
    await Deno.rename(tmp, dataPath);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  const slim = { ...model, graph: { ...model.graph, initializer } };
  await writeFileAtomic(path, ModelProto.encode(slim).finish());
  return { files: [dataName, name], externalTensors: count, externalBytes: offset };
}

/** The part of a TensorProto plain object this module reads and writes. */
interface Tensor {
  raw_data?: Uint8Array;
  [field: string]: unknown;
}

async function writeAll(f: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) done += await f.write(bytes.subarray(done));
}
