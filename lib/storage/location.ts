/**
 * From a location string to a store: a folder gives a {@link LocalStore}, `gs://bucket/prefix` a
 * {@link GcsStore}; {@link storeLocationProblem} checks the text first, so commands refuse a bad
 * location before any work.
 *
 * @example
 * ```ts
 * const store = storeFor("gs://my-bucket/runs/exp1");
 * storeLocationProblem("s3://b/p"); // "no built-in store for URL scheme s3:// (...)"
 * ```
 * @module
 */
import { type CheckpointStore, LocalStore } from "./store.ts";
import { GcsStore, gsUrlProblem } from "./gcs_store.ts";

/**
 * What is wrong with a checkpoint location given as text, or null when {@link storeFor} can use
 * it: a local folder path, or a `gs://bucket/prefix` URL with a valid bucket name and prefix. Only
 * the text is checked (no storage is touched), so commands can refuse a bad location before any
 * work.
 *
 * @example
 * ```ts
 * storeLocationProblem("runs/x"); // null
 * storeLocationProblem("s3://b/p"); // "no built-in store for URL scheme s3:// (...)"
 * ```
 */
export function storeLocationProblem(location: string): string | null {
  if (location === "") return "empty location (expected a folder or gs://bucket/prefix)";
  if (location.startsWith("gs://")) return gsUrlProblem(location);
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(location);
  if (scheme) {
    return `no built-in store for URL scheme ${scheme[1]}:// (expected a folder or ` +
      "gs://bucket/prefix)";
  }
  return null;
}

/**
 * Resolve a run location to a store: a {@link CheckpointStore} is returned as is, `gs://bucket/prefix`
 * gives a {@link GcsStore} (default client options; it loads `@google-cloud/storage` on first use,
 * so this stays synchronous), and a path gives a {@link LocalStore}. Refuses what
 * {@link storeLocationProblem} refuses.
 *
 * @example
 * ```ts
 * const local = storeFor("runs/exp1");
 * const remote = storeFor("gs://my-bucket/runs/exp1");
 * ```
 */
export function storeFor(location: string | CheckpointStore): CheckpointStore {
  if (typeof location !== "string") return location;
  const problem = storeLocationProblem(location);
  if (problem) {
    const hint = location.startsWith("gs://") || location === ""
      ? ""
      : "; pass a CheckpointStore instead of a string";
    throw new Error(`"${location}": ${problem}${hint}`);
  }
  if (location.startsWith("gs://")) return new GcsStore(location);
  return new LocalStore(location);
}
