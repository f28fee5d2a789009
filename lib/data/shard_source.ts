/**
 * Where webdataset shards come from: a local folder, a `gs://bucket/prefix`, or an explicit list
 * of tar paths and `gs://` URLs. A {@link ShardSource} lists shard names, opens one shard as a
 * byte stream and reads its parquet sidecar; {@link readShards} does everything else (filtering,
 * rank split, resume, stats) the same way whatever the source.
 *
 * A shard is named by its full local path or full `gs://` URL, so sample positions, `shardPath`
 * and rank partitions are the same strings a user would type.
 *
 * Tars are streamed, never downloaded whole: LAION shards are hundreds of MB each. A dropped
 * connection mid-shard is repaired by reopening the same object version from the byte reached
 * (a ranged read), so the tar parser never notices; when the retries run out, or the storage
 * answers with anything but "not found" (403, bad credentials...), a {@link ShardTransportError}
 * stops the read instead of silently skipping shards.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shardSourceFor } from "./shard_source.ts";
 * import { buildShapesWorldShards } from "./webdataset.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await buildShapesWorldShards({ outDir: dir, seed: 0, count: 4, perShard: 2 });
 * const src = shardSourceFor(dir); // or "gs://my-bucket/laion/aesthetic6"
 * const shards = await src.list(); // [`${dir}/00000.tar`, `${dir}/00001.tar`]
 * assert.deepEqual(shards, [`${dir}/00000.tar`, `${dir}/00001.tar`]);
 * await (await src.open(shards[0])).cancel();
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */

import {
  type GcsBucketLike,
  GcsStore,
  type GcsStoreOptions,
  isTransientGcsError,
  parseGsUrl,
} from "../storage/gcs_store.ts";
import { StoreNotFoundError } from "../storage/store.ts";
import { confinedJoin } from "../util/confined_path.ts";

/** Lists and opens webdataset shards; see the module docs. */
export interface ShardSource {
  /** Folder path or `gs://` URL, for messages. */
  readonly location: string;
  /** Shard names (full paths or URLs) in dataset order; throws when the location is missing. */
  list(): Promise<string[]>;
  /**
   * Open one shard as a byte stream. Throws {@link ShardTransportError} when the storage failed;
   * any other error means this shard cannot be read (missing file or object).
   */
  open(shard: string): Promise<ReadableStream<Uint8Array>>;
  /** Bytes of the shard's `.parquet` sidecar, or null when it does not exist. */
  readParquet(shard: string): Promise<Uint8Array | null>;
}

/** Options for {@link shardSourceFor} (and for the `gs://` sources it makes). */
export interface ShardSourceOptions {
  /** Client options for `gs://` sources (emulator endpoint, retries, ready client...). */
  gcs?: GcsStoreOptions;
}

/**
 * The storage failed for good (retries spent, permission or credential errors, a shard replaced
 * while being read): not a data problem, so the reader stops rather than skipping and counting.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ShardTransportError } from "./shard_source.ts";
 *
 * // Thrown by a source when the storage failed (retries exhausted, 403...), as opposed to a
 * // missing or corrupt shard, which readShards skips: callers stop on it.
 * const e = new ShardTransportError("gs://b/d/00000.tar", "read failed", new Error("HTTP 403"));
 * assert.equal(e.message, "gs://b/d/00000.tar: read failed (HTTP 403)");
 * assert.ok(e instanceof ShardTransportError && e.url === "gs://b/d/00000.tar");
 * ```
 */
export class ShardTransportError extends Error {
  /** The shard (or listing) URL that failed. */
  readonly url: string;

  constructor(url: string, what: string, cause?: unknown) {
    const why = cause === undefined ? "" : ` (${describeError(cause)})`;
    super(`${url}: ${what}${why}`, { cause });
    this.name = "ShardTransportError";
    this.url = url;
  }
}

/**
 * The sidecar of `00042.tar` is `00042.parquet` next to it; null for names not ending in .tar.
 *
 * @example
 * ```ts
 * parquetNameOf("gs://b/d/00042.tar"); // "gs://b/d/00042.parquet"
 * ```
 */
export function parquetNameOf(shard: string): string | null {
  const pq = shard.replace(/\.tar$/, ".parquet");
  return pq === shard ? null : pq;
}

function joinPath(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

function describeError(e: unknown): string {
  const x = e as { code?: unknown; message?: unknown } | null;
  const msg = String(x?.message ?? e).split("\n")[0];
  return typeof x?.code === "number" ? `HTTP ${x.code}: ${msg}` : msg;
}

/** Shard names from a parsed `dataset.json`, or null when it has no `shards` list. */
function manifestShards(manifest: unknown): string[] | null {
  const shards = (manifest as { shards?: unknown } | null)?.shards;
  return Array.isArray(shards) ? shards.map(String) : null;
}

/**
 * Shards in a local folder (the kit's original behaviour): `dataset.json`'s list when present,
 * else every `*.tar` directly in the folder, sorted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalShardSource } from "./shard_source.ts";
 * import { buildShapesWorldShards } from "./webdataset.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await buildShapesWorldShards({ outDir: dir, seed: 0, count: 2, perShard: 2 });
 * const src = new LocalShardSource(dir);
 * const first = await src.open((await src.list())[0]);
 * assert.ok((await first.getReader().read()).value!.length > 0); // tar bytes
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class LocalShardSource implements ShardSource {
  readonly location: string;

  /** `dir` is only needed by {@link list}; `open` takes any path. */
  constructor(dir = ".") {
    this.location = dir;
  }

  async list(): Promise<string[]> {
    const dir = this.location;
    let manifest: unknown = null;
    try {
      manifest = JSON.parse(await Deno.readTextFile(joinPath(dir, "dataset.json")));
    } catch {
      // No (or an unreadable) manifest: fall back to the folder listing.
    }
    const names = manifestShards(manifest);
    if (names) {
      // The list is data: each name must stay inside the folder.
      const file = joinPath(dir, "dataset.json");
      return names.map((s, i) => confinedJoin(dir, s, { file, field: `shards[${i}]` }));
    }
    const out: string[] = [];
    try {
      for await (const e of Deno.readDir(dir)) {
        if (e.isFile && e.name.endsWith(".tar")) out.push(joinPath(dir, e.name));
      }
    } catch (e) {
      throw new Error(`listShards: cannot read folder ${dir} (${(e as Error).message})`);
    }
    return out.sort();
  }

  async open(shard: string): Promise<ReadableStream<Uint8Array>> {
    // `readable` reads 64 KiB at a time and closes the file when read to the end or cancelled.
    return (await Deno.open(shard)).readable;
  }

  async readParquet(shard: string): Promise<Uint8Array | null> {
    const pq = parquetNameOf(shard);
    if (!pq) return null;
    try {
      return await Deno.readFile(pq);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
  }
}

/** Errors worth reopening a read stream for, beyond {@link isTransientGcsError}. */
class EarlyEndError extends Error {}

function isRetryableRead(e: unknown): boolean {
  if (e instanceof EarlyEndError || isTransientGcsError(e)) return true;
  // Node streams report a socket closed mid-body as a premature close, without an HTTP status.
  const code = (e as { code?: unknown } | null)?.code;
  return code === "ERR_STREAM_PREMATURE_CLOSE" ||
    /premature close|aborted|terminated/i.test(String((e as Error)?.message ?? ""));
}

function httpStatusOf(e: unknown): number | undefined {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === "number" ? c : undefined;
}

/** Options for {@link reopeningStream}. */
interface ReopeningStreamOptions {
  url: string;
  /** Object size: a stream that ends before it was cut short and is reopened. */
  size: number;
  /** Open the object from byte `start`. */
  openAt: (start: number) => AsyncIterable<Uint8Array>;
  tries: number;
  retryDelayMs: number;
}

function backoffMs(base: number, failures: number): number {
  return Math.min(8000, base * 2 ** (failures - 1)) * (0.5 + Math.random() / 2);
}

/**
 * A pull stream over an object that survives dropped connections: on a retryable error it
 * reopens at the byte reached. Pulling one chunk at a time keeps the memory bounded by the
 * library's stream buffer, whatever the object's size.
 */
function reopeningStream(o: ReopeningStreamOptions): ReadableStream<Uint8Array> {
  let offset = 0;
  let failures = 0;
  let it: AsyncIterator<Uint8Array> | null = null;
  // A pull still waiting for the network when the reader cancels must not reconnect after it.
  let cancelled = false;
  const drop = async () => {
    const old = it;
    it = null;
    // `return` destroys the underlying HTTP response; an already failed one may throw again.
    await old?.return?.().catch(() => {});
  };
  return new ReadableStream<Uint8Array>({
    async pull(ctl) {
      while (!cancelled) {
        try {
          it ??= o.openAt(offset)[Symbol.asyncIterator]();
          const r = await it.next();
          if (cancelled) return;
          if (!r.done) {
            if (r.value.length === 0) continue;
            if (offset + r.value.length > o.size) {
              // More bytes than the version opened has: never hand the tar parser a splice.
              throw new ShardTransportError(
                o.url,
                `got more than the object's ${o.size} bytes (replaced while reading?)`,
              );
            }
            offset += r.value.length;
            failures = 0;
            ctl.enqueue(r.value);
            return;
          }
          it = null;
          if (offset >= o.size) {
            ctl.close();
            return;
          }
          throw new EarlyEndError(`the connection ended at byte ${offset} of ${o.size}`);
        } catch (e) {
          await drop();
          if (cancelled) return;
          if (e instanceof ShardTransportError) throw e;
          const retryable = isRetryableRead(e);
          // Every byte arrived and only the goodbye failed: nothing left to fetch.
          if (retryable && offset >= o.size) {
            ctl.close();
            return;
          }
          failures++;
          if (!retryable || failures >= o.tries) {
            const n = failures > 1 ? ` after ${failures} tries` : "";
            throw new ShardTransportError(
              o.url,
              `read failed at byte ${offset} of ${o.size}${n}`,
              e,
            );
          }
          await new Promise((r) => setTimeout(r, backoffMs(o.retryDelayMs, failures)));
        }
      }
    },
    cancel: () => {
      cancelled = true;
      return drop();
    },
  });
}

/**
 * Shards under a `gs://bucket/prefix`: the names in `dataset.json` when that object exists, else
 * every `*.tar` object directly under the prefix, sorted. Uses a {@link GcsStore} on the bucket
 * for the client, listing, small downloads and their retries; tars are streamed (see the module
 * docs). `open` and `readParquet` take any `gs://` URL in the same bucket.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GcsShardSource } from "./shard_source.ts";
 *
 * // For the real service or an emulator, pass no client, e.g.
 * // new GcsShardSource("gs://bucket/laion", { apiEndpoint: "http://127.0.0.1:9199" }).
 * // Here an in-memory bucket: no dataset.json (404), so the tars are listed by prefix.
 * const names = ["laion/00000.tar", "laion/00000.parquet", "laion/00001.tar"];
 * const notFound = () => Promise.reject(Object.assign(new Error("No such object"), { code: 404 }));
 * const bucket = {
 *   file: () => ({ save: notFound, download: notFound, delete: notFound }),
 *   getFiles: () =>
 *     Promise.resolve([names.map((name) => ({ name })), null] as [{ name: string }[], null]),
 * };
 * const src = new GcsShardSource("gs://bucket/laion", { client: { bucket: () => bucket } });
 * assert.deepEqual(await src.list(), [
 *   "gs://bucket/laion/00000.tar",
 *   "gs://bucket/laion/00001.tar",
 * ]);
 * ```
 */
export class GcsShardSource implements ShardSource {
  /** `gs://bucket` or `gs://bucket/prefix`, no trailing slash. */
  readonly location: string;
  readonly #bucket: string;
  /** Object name prefix ("" or ending in `/`). */
  readonly #base: string;
  readonly #store: GcsStore;
  readonly #tries: number;
  readonly #retryDelayMs: number;

  constructor(url: string, opts: GcsStoreOptions = {}) {
    const { bucket, prefix } = parseGsUrl(url);
    this.#bucket = bucket;
    this.#base = prefix ? `${prefix}/` : "";
    this.location = `gs://${bucket}${prefix ? `/${prefix}` : ""}`;
    // Rooted at the bucket so object names are store keys as they are, for any shard URL.
    this.#store = new GcsStore(`gs://${bucket}`, opts);
    this.#tries = opts.tries ?? 5;
    this.#retryDelayMs = opts.retryDelayMs ?? 250;
  }

  /** Object name of a shard URL in this bucket. */
  #objectName(url: string): string {
    const { bucket, prefix } = parseGsUrl(url);
    if (bucket !== this.#bucket) {
      throw new Error(`${url}: not in bucket gs://${this.#bucket} of ${this.location}`);
    }
    if (!prefix) throw new Error(`"${url}": not an object URL`);
    return prefix;
  }

  async list(): Promise<string[]> {
    let manifest: unknown = null;
    try {
      const bytes = await this.#store.get(`${this.#base}dataset.json`);
      try {
        manifest = JSON.parse(new TextDecoder().decode(bytes));
      } catch {
        // Invalid JSON: fall back to the listing, as for a local folder.
      }
    } catch (e) {
      if (!(e instanceof StoreNotFoundError)) {
        throw new ShardTransportError(this.location, "cannot read dataset.json", e);
      }
    }
    const names = manifestShards(manifest);
    if (names) return names.map((s) => joinPath(this.location, s));
    let keys: string[];
    try {
      keys = await this.#store.list(this.#base);
    } catch (e) {
      throw new ShardTransportError(this.location, "cannot list shards", e);
    }
    // An object store has no folders: an empty listing is how a missing prefix looks.
    if (keys.length === 0) {
      throw new Error(
        `listShards: no objects under ${this.location} (wrong bucket or prefix, or not uploaded yet)`,
      );
    }
    // Only objects directly under the prefix, like a folder's files (store.list is sorted).
    return keys
      .map((k) => k.slice(this.#base.length))
      .filter((rel) => !rel.includes("/") && rel.endsWith(".tar"))
      .map((rel) => joinPath(this.location, rel));
  }

  async open(shard: string): Promise<ReadableStream<Uint8Array>> {
    const name = this.#objectName(shard);
    let bucket: GcsBucketLike;
    try {
      bucket = await this.#store.bucket();
    } catch (e) {
      throw new ShardTransportError(shard, "no Cloud Storage client", e);
    }
    const head = bucket.file(name);
    if (!head.getMetadata || !head.createReadStream) {
      throw new ShardTransportError(shard, "this Cloud Storage client cannot stream objects");
    }
    const getMetadata = head.getMetadata.bind(head);
    let meta: { size?: string | number; generation?: string | number };
    for (let i = 1;; i++) {
      try {
        [meta] = await getMetadata();
        break;
      } catch (e) {
        if (httpStatusOf(e) === 404) throw new Error(`${shard}: not found`);
        if (i >= this.#tries || !isTransientGcsError(e)) {
          throw new ShardTransportError(shard, `open failed${i > 1 ? ` after ${i} tries` : ""}`, e);
        }
        await new Promise((r) => setTimeout(r, backoffMs(this.#retryDelayMs, i)));
      }
    }
    const size = Number(meta.size);
    if (!Number.isFinite(size)) throw new ShardTransportError(shard, "the object has no size");
    // Pin the version read first, so a reopened read never splices two versions of a shard.
    const file = meta.generation === undefined
      ? head
      : bucket.file(name, { generation: meta.generation });
    const createReadStream = file.createReadStream!.bind(file);
    return reopeningStream({
      url: shard,
      size,
      // From byte 0 the library checks the whole object's checksum; ranged reads cannot.
      openAt: (start) => createReadStream(start > 0 ? { start } : {}),
      tries: this.#tries,
      retryDelayMs: this.#retryDelayMs,
    });
  }

  async readParquet(shard: string): Promise<Uint8Array | null> {
    const pq = parquetNameOf(shard);
    if (!pq) return null;
    try {
      return await this.#store.get(this.#objectName(pq));
    } catch (e) {
      if (e instanceof StoreNotFoundError) return null;
      throw new ShardTransportError(pq, "cannot read the parquet sidecar", e);
    }
  }
}

function isShardSource(x: unknown): x is ShardSource {
  const s = x as Partial<ShardSource> | null;
  return typeof s?.list === "function" && typeof s.open === "function" &&
    typeof s.readParquet === "function";
}

/**
 * An explicit list of shards, each a local path or a `gs://` URL (one client per bucket).
 *
 * @example
 * ```ts
 * const src = new ShardListSource(["d/00000.tar", "gs://bucket/d/00001.tar"]);
 * ```
 */
export class ShardListSource implements ShardSource {
  readonly location: string;
  readonly #shards: readonly string[];
  readonly #opts: ShardSourceOptions;
  readonly #local = new LocalShardSource();
  readonly #buckets = new Map<string, GcsShardSource>();

  constructor(shards: readonly string[], opts: ShardSourceOptions = {}) {
    this.#shards = [...shards];
    this.#opts = opts;
    this.location = shards.length === 1 ? shards[0] : `${shards.length} shards`;
  }

  #sourceOf(shard: string): ShardSource {
    if (!shard.startsWith("gs://")) return this.#local;
    const { bucket } = parseGsUrl(shard);
    let src = this.#buckets.get(bucket);
    if (!src) {
      src = new GcsShardSource(`gs://${bucket}`, this.#opts.gcs);
      this.#buckets.set(bucket, src);
    }
    return src;
  }

  list(): Promise<string[]> {
    return Promise.resolve([...this.#shards]);
  }

  open(shard: string): Promise<ReadableStream<Uint8Array>> {
    return this.#sourceOf(shard).open(shard);
  }

  readParquet(shard: string): Promise<Uint8Array | null> {
    return this.#sourceOf(shard).readParquet(shard);
  }
}

/**
 * The source for a folder, a `gs://bucket/prefix`, a list of tar paths/URLs, or a ready source
 * (returned as is).
 *
 * @example
 * ```ts
 * shardSourceFor("runs/data/train32"); // LocalShardSource
 * shardSourceFor("gs://bucket/laion", { gcs: { apiEndpoint: "http://127.0.0.1:9199" } });
 * ```
 */
export function shardSourceFor(
  location: string | readonly string[] | ShardSource,
  opts: ShardSourceOptions = {},
): ShardSource {
  if (isShardSource(location)) return location;
  if (typeof location !== "string") return new ShardListSource(location, opts);
  return location.startsWith("gs://")
    ? new GcsShardSource(location, opts.gcs)
    : new LocalShardSource(location);
}
