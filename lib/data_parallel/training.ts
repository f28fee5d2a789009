/**
 * The two places data-parallel training touches the loop: averaging each step's loss and
 * gradients over ranks (one float32 allreduce of everything, in a fixed parameter order), and
 * gathering every rank's loss-RNG state for the checkpoint rank 0 writes, so a resumed multi-rank
 * run continues each rank's noise stream exactly.
 *
 * @example
 * ```ts
 * import { averageGrads } from "./training.ts";
 * import type { Communicator } from "./comm.ts";
 * import type { GradAccumulator } from "../train/optim.ts";
 *
 * async function example(
 *   comm: Communicator,
 *   acc: GradAccumulator,
 * ) {
 *   const avg = await averageGrads(comm, acc.mean()); // same values on every rank
 * }
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import { allGather, allreduceMean, type Communicator } from "./comm.ts";
import type { RngState } from "../util/rng.ts";

/**
 * Mean over ranks of the step's loss `value` and `grads`. In a world of one the inputs come back
 * unchanged; otherwise new tensors are returned and the inputs disposed.
 *
 * @example
 * ```ts
 * import { averageGrads } from "./training.ts";
 * import type { Communicator } from "./comm.ts";
 * import type { GradAccumulator } from "../train/optim.ts";
 *
 * async function example(
 *   comm: Communicator,
 *   acc: GradAccumulator,
 * ) {
 *   const { value, grads } = await averageGrads(comm, acc.mean());
 * }
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
 * import { gatherRngStates } from "./training.ts";
 * import type { Communicator } from "./comm.ts";
 * import type { Rng } from "../util/rng.ts";
 *
 * async function example(
 *   comm: Communicator,
 *   rng: Rng,
 * ) {
 *   const states = await gatherRngStates(comm, rng.state()); // states[r] is rank r's
 * }
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
