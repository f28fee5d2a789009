/**
 * Storage for checkpoints and data shards, one interface over a local folder and Google Cloud
 * Storage: {@link CheckpointStore} (put/get/list/delete, optional atomic `renamePrefix`),
 * {@link LocalStore}, {@link GcsStore} for `gs://bucket/prefix` (bucket naming rules, retries of
 * transient errors, URL parsing), and {@link storeFor} to pick one from a location string. Used by
 * lib/data (shards) and lib/train (checkpoints).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { storeFor } from "./mod.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const store = storeFor(dir); // or "gs://my-bucket/runs/exp1"
 * await store.put("ckpt-00000001/state.json", new TextEncoder().encode("{}"));
 * assert.deepEqual(await store.list("ckpt-"), ["ckpt-00000001/state.json"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */
export * from "./store.ts";
export * from "./gcs_store.ts";
export * from "./location.ts";
