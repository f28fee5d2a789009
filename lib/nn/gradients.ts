/**
 * Registers TensorFlow.js gradient functions.
 *
 * `@tensorflow/tfjs-core`'s Node bundle registers no gradients (they live in ESM files with
 * extension-less imports that Deno cannot load), so `tf.variableGrads` fails with "gradient
 * function not found". The `@tensorflow/tfjs` bundle registers all of them into the global
 * registry shared with tfjs-core. Importing this module (as `lib/nn/mod.ts` does) is enough.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "./gradients.ts";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 *
 * const v = tf.variable(tf.tensor1d([1, 2]));
 * const { grads } = tf.variableGrads(() => tf.sum(tf.square(v)));
 * assert.deepEqual(Array.from(grads[v.name].dataSync()), [2, 4]); // d(v^2)/dv = 2v
 * ```
 * @module
 */
import "npm:@tensorflow/tfjs@4.22.0";

/** True once this module has run (gradients registered). */
export const GRADIENTS_REGISTERED = true;
