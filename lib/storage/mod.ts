/**
 * Storage for checkpoints and data shards, one interface over a local folder and Google Cloud
 * Storage: {@link CheckpointStore} (put/get/list/delete, optional atomic `renamePrefix`),
 * {@link LocalStore}, {@link GcsStore} for `gs://bucket/prefix` (bucket naming rules, retries of
 * transient errors, URL parsing), and {@link storeFor} to pick one from a location string. Used by
 * lib/data (shards) and lib/train (checkpoints).
 *
 * @example
 * ```ts
 * import { storeFor } from "./mod.ts";
 *
 * async function example() {
 *   const store = storeFor("gs://my-bucket/runs/exp1"); // or a folder
 *   await store.put("ckpt-00000001/state.json", new TextEncoder().encode("{}"));
 * }
 * ```
 * @module
 */
export * from "./store.ts";
export * from "./gcs_store.ts";
export * from "./location.ts";
