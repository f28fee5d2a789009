/**
 * A {@link CheckpointStore} wrapper that records every call (`"get ckpt-00000003/state.json"`),
 * tagged with a phase the caller sets, so tests can count what each rank asked of the store and
 * when. It has `deletePrefix`/`renamePrefix` exactly when the wrapped store has them, so the
 * checkpoint code takes the same path as on the store itself.
 *
 * @example
 * ```ts
 * const c = countingStore(new LocalStore(dir));
 * c.phase = "resume";
 * await trainLoop({ ...opts, store: c.store });
 * c.calls.filter((x) => x.phase === "resume").length; // store calls made while resuming
 * ```
 * @module
 */
import type { CheckpointStore } from "../../lib/storage/store.ts";

/** One recorded store call. */
export interface StoreCall {
  phase: string;
  /** `put`, `get`, `list`, `delete`, `deletePrefix` or `renamePrefix`. */
  op: string;
  /** The key, prefix, or `from -> to`. */
  key: string;
}

/** The wrapped store, its call log, and the phase new calls are tagged with. */
export interface CountingStore {
  store: CheckpointStore;
  calls: StoreCall[];
  phase: string;
}

/**
 * Wrap `inner`; every call is appended to `calls` before it runs.
 *
 * @example
 * ```ts
 * const c = countingStore(storeFor("gs://bucket/run"));
 * await c.store.list("ckpt-");
 * c.calls; // [{ phase: "", op: "list", key: "ckpt-" }]
 * ```
 */
export function countingStore(inner: CheckpointStore): CountingStore {
  const out: CountingStore = { store: inner, calls: [], phase: "" };
  const note = (op: string, key: string) => out.calls.push({ phase: out.phase, op, key });
  const store: CheckpointStore = {
    location: inner.location,
    put: (k, d) => (note("put", k), inner.put(k, d)),
    get: (k) => (note("get", k), inner.get(k)),
    list: (p) => (note("list", p ?? ""), inner.list(p)),
    delete: (k) => (note("delete", k), inner.delete(k)),
  };
  if (inner.deletePrefix) {
    store.deletePrefix = (p) => (note("deletePrefix", p), inner.deletePrefix!(p));
  }
  if (inner.renamePrefix) {
    store.renamePrefix = (
      a,
      b,
    ) => (note("renamePrefix", `${a} -> ${b}`), inner.renamePrefix!(a, b));
  }
  out.store = store;
  return out;
}
