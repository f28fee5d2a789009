/**
 * Pluggable key/value storage for checkpoints and data shards: the {@link CheckpointStore}
 * interface, its key rules, and {@link LocalStore} for folders (`gcs_store.ts` has `gs://`,
 * `location.ts` picks one from a location string). Keys are `/`-separated relative paths
 * (`ckpt-00000100/model.safetensors`). Object stores (gs://) have no rename, so the checkpoint
 * protocol never needs one: it writes the files, then `manifest.json` last, and readers trust only
 * manifests. A store that CAN rename folders atomically (the local filesystem) exposes
 * `renamePrefix`, which the writer uses so even a half-written folder never carries the final name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir(); // e.g. "runs/exp1"
 * const store = new LocalStore(dir);
 * await store.put("ckpt-00000001/state.json", new TextEncoder().encode("{}"));
 * assert.deepEqual(await store.list("ckpt-"), ["ckpt-00000001/state.json"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */
import { writeFileAtomic } from "../util/atomic.ts";

/** Storage backend for checkpoints. */
export interface CheckpointStore {
  /** Human-readable location (folder path or URL), used in messages. */
  readonly location: string;
  /** Write `data` under `key`, replacing any previous value; readers never see a partial value. */
  put(key: string, data: Uint8Array): Promise<void>;
  /** Read `key`; throws {@link StoreNotFoundError} when it does not exist. */
  get(key: string): Promise<Uint8Array>;
  /** All keys starting with `prefix` (recursive), sorted. */
  list(prefix?: string): Promise<string[]>;
  /** Remove `key`; a missing key is not an error. */
  delete(key: string): Promise<void>;
  /** Remove every key under the folder `prefix` (optional fast path; else list + delete). */
  deletePrefix?(prefix: string): Promise<void>;
  /** Atomically rename the folder `from` to `to` (optional; object stores lack it). */
  renamePrefix?(from: string, to: string): Promise<void>;
}

/** Thrown by {@link CheckpointStore.get} for a missing key. */
export class StoreNotFoundError extends Error {
  constructor(location: string, key: string) {
    super(`${joinPath(location, key)}: not found`);
    this.name = "StoreNotFoundError";
  }
}

function joinPath(dir: string, key: string): string {
  return dir.endsWith("/") ? dir + key : `${dir}/${key}`;
}

/**
 * Throw when `key` is not a relative `/`-separated path (empty, absolute, or with `.`/`..`
 * segments): every store checks keys the same way so none can escape its folder or prefix.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkStoreKey } from "./store.ts";
 *
 * checkStoreKey("ckpt-00000001/model.safetensors"); // ok
 * assert.throws(() => checkStoreKey("../x"), /invalid key "..\/x"/);
 * ```
 */
export function checkStoreKey(key: string): void {
  if (
    key === "" || key.startsWith("/") || key.split("/").some((p) => p === ".." || p === ".")
  ) {
    throw new Error(`CheckpointStore: invalid key "${key}" (expected a relative path)`);
  }
}

/**
 * A {@link CheckpointStore} over a local folder; writes are atomic (temp file + rename).
 *
 * @example
 * ```ts
 * const dir = await Deno.makeTempDir(); // e.g. "/tmp/run"
 * const store = new LocalStore(dir);
 * await store.put("a/b.bin", new Uint8Array([1]));
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class LocalStore implements CheckpointStore {
  readonly location: string;

  constructor(dir: string) {
    if (!dir) throw new Error("LocalStore: folder path is empty");
    this.location = dir;
  }

  /** Absolute-or-relative filesystem path of a key. */
  pathOf(key: string): string {
    checkStoreKey(key);
    return joinPath(this.location, key);
  }

  async put(key: string, data: Uint8Array): Promise<void> {
    const path = this.pathOf(key);
    const slash = path.lastIndexOf("/");
    if (slash > 0) await Deno.mkdir(path.slice(0, slash), { recursive: true });
    await writeFileAtomic(path, data);
  }

  async get(key: string): Promise<Uint8Array> {
    try {
      return await Deno.readFile(this.pathOf(key));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new StoreNotFoundError(this.location, key);
      throw e;
    }
  }

  async list(prefix = ""): Promise<string[]> {
    const out: string[] = [];
    const walk = async (rel: string) => {
      let it: AsyncIterable<Deno.DirEntry>;
      try {
        it = Deno.readDir(rel ? joinPath(this.location, rel) : this.location);
        for await (const e of it) {
          const k = rel ? `${rel}/${e.name}` : e.name;
          // Prune folders that cannot contain a matching key.
          if (!k.startsWith(prefix) && !prefix.startsWith(k + "/")) continue;
          if (e.isDirectory) await walk(k);
          else if (e.isFile && k.startsWith(prefix)) out.push(k);
        }
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return;
        throw e;
      }
    };
    await walk("");
    return out.sort();
  }

  async delete(key: string): Promise<void> {
    try {
      await Deno.remove(this.pathOf(key));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }

  async deletePrefix(prefix: string): Promise<void> {
    try {
      await Deno.remove(this.pathOf(prefix.replace(/\/+$/, "")), { recursive: true });
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }

  async renamePrefix(from: string, to: string): Promise<void> {
    await Deno.rename(this.pathOf(from.replace(/\/+$/, "")), this.pathOf(to.replace(/\/+$/, "")));
  }
}
