/**
 * The places data-parallel training touches the loop: averaging each step's loss and gradients
 * over ranks (one float32 allreduce of everything, in a fixed parameter order), gathering every
 * rank's loss-RNG state for the checkpoint rank 0 writes, so a resumed multi-rank run continues
 * each rank's noise stream exactly, and naming each rank's loss stream (`lossStreamPath`: one per
 * rank, or deliberately one shared by all, to reproduce the study's same-seed workers).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { averageGrads } from "./training.ts";
 * import { singleProcess } from "./comm.ts";
 *
 * // In training the step comes from a GradAccumulator's mean() (lib/train/optim.ts).
 * const step = { value: tf.scalar(0.25), grads: { "fc.weight": tf.tensor1d([1, -1]) } };
 * const avg = await averageGrads(singleProcess(), step); // same values on every rank
 * assert.deepEqual(Array.from(avg.grads["fc.weight"].dataSync()), [1, -1]);
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import { allGather, allreduceMean, type Communicator } from "./comm.ts";
import { type RngState, STREAM } from "../util/rng.ts";

/**
 * Whether data-parallel ranks draw their loss randomness (timesteps, noise, caption dropout) from
 * one stream each (`"per-rank"`, the kit's default) or all from rank 0's (`"shared"`). Shared
 * streams reproduce workers started with the same seed: every rank draws the same timesteps and
 * noise, so a global batch of B over R ranks holds at most B / R distinct timesteps and its loss
 * swings more from step to step. Only for experiments on that effect.
 */
export type SeedStreams = "per-rank" | "shared";

/**
 * The `Rng.stream` path of a rank's loss stream: `[rank, STREAM.noise]`, or rank 0's path on every
 * rank with `"shared"`. A run of one process gets the same stream either way.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lossStreamPath } from "./training.ts";
 * import { Rng, STREAM } from "../util/rng.ts";
 *
 * assert.deepEqual(lossStreamPath(1), [1, STREAM.noise]);
 * assert.deepEqual(lossStreamPath(1, "shared"), [0, STREAM.noise]);
 * const [a, b] = [0, 1].map((r) => Rng.stream(7, lossStreamPath(r, "shared")));
 * assert.equal(a.uniform(), b.uniform()); // every rank draws the same numbers
 * ```
 */
export function lossStreamPath(rank: number, streams: SeedStreams = "per-rank"): number[] {
  if (streams !== "per-rank" && streams !== "shared") {
    throw new Error(`seedStreams: expected "per-rank" or "shared", got ${JSON.stringify(streams)}`);
  }
  return [streams === "shared" ? 0 : rank, STREAM.noise];
}

/**
 * Mean over ranks of the step's loss `value` and `grads`. In a world of one the inputs come back
 * unchanged; otherwise new tensors are returned and the inputs disposed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { averageGrads } from "./training.ts";
 * import { singleProcess } from "./comm.ts";
 *
 * const step = { value: tf.scalar(2), grads: { w: tf.tensor2d([[1, 2]]) } };
 * const { value, grads } = await averageGrads(singleProcess(), step);
 * assert.equal(value.dataSync()[0], 2); // one rank: the step itself
 * assert.deepEqual(grads.w.shape, [1, 2]);
 * ```
 */
export async function averageGrads(
  comm: Communicator,
  step: { value: tf.Scalar; grads: Record<string, tf.Tensor> },
): Promise<{ value: tf.Scalar; grads: Record<string, tf.Tensor> }> {
  if (comm.size === 1) return step;
  const { value, grads } = step;
  // Sorted names: every rank packs the same parameter at the same offset.
  const names = Object.keys(grads).sort();
  let total = 1;
  for (const n of names) total += grads[n].size;
  const buf = new Float32Array(total);
  buf[0] = (await value.data())[0];
  let off = 1;
  for (const n of names) {
    buf.set(await grads[n].data() as Float32Array, off);
    off += grads[n].size;
  }
  tf.dispose([value, ...Object.values(grads)]);
  await allreduceMean(comm, buf);
  const out: Record<string, tf.Tensor> = {};
  off = 1;
  for (const n of names) {
    const shape = grads[n].shape, size = grads[n].size;
    out[n] = tf.tensor(buf.slice(off, off + size), shape, "float32");
    off += size;
  }
  return { value: tf.scalar(buf[0]), grads: out };
}

const RNG_FIELDS = 6;

function packRng(st: RngState): number[] {
  return [...st.s, st.spare === null ? 0 : 1, st.spare ?? 0];
}

function unpackRng(v: readonly number[]): RngState {
  return { s: [v[0], v[1], v[2], v[3]], spare: v[4] ? v[5] : null };
}

/**
 * Every rank's RNG state, in rank order, on every rank (float64 all-gather: exact for the u32
 * words and the cached normal).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gatherRngStates } from "./training.ts";
 * import { singleProcess } from "./comm.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const rng = Rng.stream(3);
 * const states = await gatherRngStates(singleProcess(), rng.state()); // states[r] is rank r's
 * assert.deepEqual(states, [rng.state()]);
 * ```
 */
export async function gatherRngStates(comm: Communicator, st: RngState): Promise<RngState[]> {
  if (comm.size === 1) return [st];
  const rows = await allGather(comm, packRng(st));
  return rows.map((r) => {
    if (r.length !== RNG_FIELDS) throw new Error(`gatherRngStates: bad row length ${r.length}`);
    return unpackRng(r);
  });
}
