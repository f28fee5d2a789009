/**
 * One reader of the checkpoint store per data-parallel group: rank 0 runs the read (list, verify,
 * load the newest complete checkpoint, or check that a fresh run has none) and hands its outcome
 * to every rank through the communicator, so the other ranks make no request to the store at all
 * (a `gs://` bucket bills and throttles per request, and a folder on a shared disk is read once).
 *
 * The outcome goes first, as a JSON header: a fresh start, rank 0's error (every rank then
 * fails with it, none waits forever in the next collective), or the checkpoint's name, step,
 * state, manifest and the names and shapes of its tensors. The tensors follow as one float32
 * broadcast of all of them packed in the header's order, so every rank restores the very bits rank
 * 0 read.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { shareCheckpoint } from "./checkpoint_broadcast.ts";
 * import { singleProcess } from "../data_parallel/comm.ts";
 * import { storeFor } from "../storage/location.ts";
 * import { latestCheckpoint, loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
 * import { restoreParams } from "./tensor_data.ts";
 *
 * const store = storeFor(await Deno.makeTempDir());
 * const model = { w: { shape: [2], data: new Float32Array([5, 6]) } };
 * await saveCheckpoint(store, { step: 10, tensors: { model }, state: {} });
 * const params = { w: tf.variable(tf.zeros([2])) };
 * const ck = await shareCheckpoint({
 *   comm: singleProcess(), // worldCommunicator() under mpirun: rank 0 reads, the others receive
 *   location: store.location,
 *   read: async () => {
 *     const latest = await latestCheckpoint(store);
 *     return latest ? await loadCheckpoint({ store, name: latest.name }) : null;
 *   },
 * });
 * if (ck) restoreParams(params, ck.tensors.model);
 * assert.deepEqual(Array.from(params.w.dataSync()), [5, 6]);
 * await Deno.remove(store.location, { recursive: true });
 * ```
 * @module
 */
import { broadcastBytes, type Communicator } from "../data_parallel/comm.ts";
import type { CheckpointTensors, LoadedCheckpoint, Manifest } from "./checkpoint.ts";
import type { TensorDataMap } from "./tensor_data.ts";

/** Options for {@link shareCheckpoint}. */
export interface ShareCheckpointOptions {
  comm: Communicator;
  /**
   * Runs on rank 0 only: the checkpoint every rank starts from, or null for a fresh start. What
   * it throws is thrown on every rank.
   */
  read: () => Promise<LoadedCheckpoint | null>;
  /** Where rank 0 reads (the store's location), named in the other ranks' errors. */
  location: string;
}

type Group = keyof CheckpointTensors;
const GROUPS: readonly Group[] = ["model", "ema", "optimizer"];

/** The JSON header rank 0 broadcasts first. */
type Header =
  | { outcome: "fresh" }
  | { outcome: "error"; message: string }
  | {
    outcome: "checkpoint";
    name: string;
    step: number;
    state: Record<string, unknown>;
    manifest: Manifest;
    /** Per group present, its tensors' names and shapes, in payload order. */
    tensors: [Group, [string, number[]][]][];
    /** Float32 values in the payload. */
    floats: number;
  };

function elements(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Header and packed payload of a checkpoint (rank 0). */
function pack(ck: LoadedCheckpoint): { header: Header; payload: Float32Array } {
  const tensors: [Group, [string, number[]][]][] = [];
  let floats = 0;
  for (const g of GROUPS) {
    const m = ck.tensors[g];
    if (!m) continue;
    const entries: [string, number[]][] = [];
    for (const [name, t] of Object.entries(m)) {
      if (t.data.length !== elements(t.shape)) {
        throw new Error(
          `${ck.name}: ${g} tensor "${name}" holds ${t.data.length} values, shape [${t.shape}] needs ${
            elements(t.shape)
          }`,
        );
      }
      entries.push([name, t.shape]);
      floats += t.data.length;
    }
    tensors.push([g, entries]);
  }
  const payload = new Float32Array(floats);
  let off = 0;
  for (const [g, entries] of tensors) {
    for (const [name] of entries) {
      const d = ck.tensors[g]![name].data;
      payload.set(d, off);
      off += d.length;
    }
  }
  const { name, step, state, manifest } = ck;
  return {
    header: { outcome: "checkpoint", name, step, state, manifest, tensors, floats },
    payload,
  };
}

/** The checkpoint a header and its payload describe (ranks other than 0). */
function unpack(h: Extract<Header, { outcome: "checkpoint" }>, payload: Float32Array) {
  const tensors: Partial<CheckpointTensors> = {};
  let off = 0;
  for (const [g, entries] of h.tensors) {
    const m: TensorDataMap = {};
    for (const [name, shape] of entries) {
      const n = elements(shape);
      // A copy per tensor: nothing downstream may keep the whole payload alive through a view.
      m[name] = { shape, data: payload.slice(off, off + n) };
      off += n;
    }
    tensors[g] = m;
  }
  if (off !== payload.length || !tensors.model) {
    throw new Error(`shareCheckpoint: ${h.name}: header and payload of rank 0 disagree`);
  }
  return {
    name: h.name,
    step: h.step,
    state: h.state,
    manifest: h.manifest,
    tensors: tensors as CheckpointTensors,
  };
}

/**
 * Run `read` on rank 0 and give its outcome to every rank: the same checkpoint (bit for bit),
 * null, or an error. In a world of one this is just `read()`. Every rank must call it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shareCheckpoint } from "./checkpoint_broadcast.ts";
 * import { singleProcess } from "../data_parallel/comm.ts";
 *
 * // No checkpoint yet: every rank gets null and starts fresh.
 * const ck = await shareCheckpoint({
 *   comm: singleProcess(),
 *   location: "runs/x",
 *   read: () => Promise.resolve(null),
 * });
 * assert.equal(ck, null);
 * // What rank 0's read throws, every rank throws.
 * const read = () => Promise.reject(new Error("runs/x/ckpt-00000100: bad manifest"));
 * await assert.rejects(
 *   shareCheckpoint({ comm: singleProcess(), location: "runs/x", read }),
 *   /bad manifest/,
 * );
 * ```
 */
export async function shareCheckpoint(o: ShareCheckpointOptions): Promise<LoadedCheckpoint | null> {
  const comm = o.comm;
  if (comm.size === 1) return await o.read();
  const root = comm.rank === 0;
  const encode = (h: Header) => new TextEncoder().encode(JSON.stringify(h));
  let found: LoadedCheckpoint | null = null;
  let failure: unknown = null;
  let header: Header | null = null;
  let headerBytes: Uint8Array | null = null;
  let payload: Float32Array | null = null;
  if (root) {
    // Whatever fails on rank 0 becomes the outcome: throwing before the broadcast would leave the
    // other ranks waiting in it.
    try {
      found = await o.read();
      if (found) ({ header, payload } = pack(found));
      else header = { outcome: "fresh" };
      headerBytes = encode(header);
    } catch (e) {
      failure = e;
      header = { outcome: "error", message: e instanceof Error ? e.message : String(e) };
      headerBytes = encode(header);
    }
  }
  const bytes = await broadcastBytes(comm, headerBytes);
  const h: Header = root ? header! : JSON.parse(new TextDecoder().decode(bytes));
  if (h.outcome === "error") {
    if (root) throw failure;
    throw new Error(`rank 0 could not prepare the start from ${o.location}: ${h.message}`);
  }
  if (h.outcome === "fresh") return null;
  const data = root ? payload! : new Float32Array(h.floats);
  if (data.length > 0) await comm.broadcast(data, 0);
  return root ? found : unpack(h, data);
}
