/**
 * Host-side tensor snapshots: the plain `{shape, data}` form that checkpoints, safetensors files and
 * optimizer/EMA state exchange, independent of any tfjs backend.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { restoreParams, snapshotParams } from "./tensor_data.ts";
 *
 * const params = { w: tf.variable(tf.tensor1d([1, 2])) };
 * const snap = await snapshotParams(params); // name -> {shape, data}
 * params.w.assign(tf.zeros([2]));
 * restoreParams(params, snap, { source: "ckpt-00000100/model.safetensors" });
 * assert.deepEqual(Array.from(params.w.dataSync()), [1, 2]);
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";

/** A float32 tensor held in host memory. */
export interface TensorData {
  shape: number[];
  data: Float32Array;
}

/** Named host tensors, e.g. the contents of one safetensors file. */
export type TensorDataMap = Record<string, TensorData>;

/** Flat model weights: dotted name -> variable (see ARCHITECTURE.md). */
export type Params = Record<string, tf.Variable>;

/**
 * Download every variable of `vars` into host memory (async, so it also works on WebGPU).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { snapshotParams } from "./tensor_data.ts";
 *
 * const snap = await snapshotParams({ w: tf.variable(tf.ones([2])) });
 * assert.deepEqual(snap.w, { shape: [2], data: new Float32Array([1, 1]) });
 * ```
 */
export async function snapshotParams(vars: Record<string, tf.Tensor>): Promise<TensorDataMap> {
  const out: TensorDataMap = {};
  for (const [name, v] of Object.entries(vars)) {
    if (v.dtype !== "float32") {
      throw new Error(`snapshotParams: "${name}" has dtype ${v.dtype}, expected float32`);
    }
    // Copy: data() may return the backend's own buffer on cpu.
    out[name] = { shape: [...v.shape], data: new Float32Array(await v.data<"float32">()) };
  }
  return out;
}

/** Options for {@link restoreParams}. */
export interface RestoreOptions {
  /** Where the data came from, used in error messages. */
  source?: string;
  /** Require that the snapshot has exactly the same names as `vars` (default true). */
  strict?: boolean;
}

/**
 * Assign host tensors into existing variables, checking names and shapes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { restoreParams } from "./tensor_data.ts";
 *
 * const p = { w: tf.variable(tf.zeros([2])) };
 * restoreParams(p, { w: { shape: [2], data: new Float32Array([1, 2]) } });
 * assert.deepEqual(Array.from(p.w.dataSync()), [1, 2]);
 * assert.throws(() => restoreParams(p, { w: { shape: [3], data: new Float32Array(3) } }), /w/);
 * ```
 */
export function restoreParams(
  vars: Record<string, tf.Variable>,
  snap: TensorDataMap,
  opts: RestoreOptions = {},
): void {
  const src = opts.source ?? "snapshot";
  const strict = opts.strict ?? true;
  if (strict) {
    const missing = Object.keys(vars).filter((k) => !(k in snap));
    const extra = Object.keys(snap).filter((k) => !(k in vars));
    if (missing.length || extra.length) {
      throw new Error(
        `${src}: tensor names do not match the model` +
          (missing.length ? `; missing: ${missing.slice(0, 5).join(", ")}` : "") +
          (extra.length ? `; unexpected: ${extra.slice(0, 5).join(", ")}` : ""),
      );
    }
  }
  // Validate everything before assigning anything, so a bad file leaves the model untouched.
  for (const [name, v] of Object.entries(vars)) {
    const t = snap[name];
    if (!t) continue;
    if (!sameShape(t.shape, v.shape)) {
      throw new Error(
        `${src}: tensor "${name}" has shape [${t.shape}], expected [${v.shape}]`,
      );
    }
  }
  for (const [name, v] of Object.entries(vars)) {
    const t = snap[name];
    if (!t) continue;
    tf.tidy(() => v.assign(tf.tensor(t.data, t.shape, "float32")));
  }
}

/**
 * Whether two shapes are equal element by element.
 *
 * @example
 * ```ts
 * sameShape([2, 3], [2, 3]); // true
 * ```
 */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
