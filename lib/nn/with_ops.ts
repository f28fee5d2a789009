/**
 * Picking the ops a layer runs on: a `Params` record runs on TensorFlow.js ({@link TfOps}), an
 * {@link Ops} object on itself. Kept apart from `ops.ts` so the interface does not import its
 * TensorFlow.js implementation (which imports the interface's types).
 *
 * @module
 */
import type { Net, Ops } from "./ops.ts";
import { TfOps } from "./tf_ops.ts";

/**
 * Whether `net` is an {@link Ops} (a `Params` record holds tensors, never functions).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { isOps } from "./with_ops.ts";
 * import { TfOps } from "./tf_ops.ts";
 *
 * const params = { "fc.weight": tf.variable(tf.zeros([2, 2])) };
 * assert.equal(isOps(params), false);
 * assert.equal(isOps(new TfOps(params)), true);
 * ```
 */
export function isOps<T>(net: Net<T>): net is Ops<T> {
  return typeof (net as Ops<T>).param === "function";
}

/**
 * The ops of `net` (TensorFlow.js over the record for `Params`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { opsOf } from "./with_ops.ts";
 *
 * const m = opsOf<tf.Tensor>({}); // TensorFlow.js over an (empty) Params record
 * assert.deepEqual(Array.from(m.silu(tf.tensor1d([0])).dataSync()), [0]);
 * ```
 */
export function opsOf<T>(net: Net<T>): Ops<T> {
  return isOps(net) ? net : new TfOps(net) as unknown as Ops<T>;
}

/**
 * Run a layer body with the ops of `net`, as one {@link Ops.scope} (a `tf.tidy` on
 * TensorFlow.js, so intermediates are freed when the layer returns).
 *
 * @example
 * ```ts
 * import type { Net } from "./ops.ts";
 * import { withOps } from "./with_ops.ts";
 * import { conv2d } from "./conv.ts";
 * import { joinName } from "./params.ts";
 *
 * export function block<T>(net: Net<T>, name: string, x: T): T {
 *   return withOps(net, (m) => m.silu(conv2d(m, joinName(name, "conv"), x)));
 * }
 * ```
 */
export function withOps<T, R>(net: Net<T>, body: (m: Ops<T>) => R): R {
  const m = opsOf(net);
  return m.scope(() => body(m));
}
