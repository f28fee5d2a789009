/**
 * A {@link CheckpointStore} over a Google Cloud Storage bucket: `gs://bucket/prefix`.
 *
 * Object stores have no rename, so this store has no `renamePrefix`: the checkpoint protocol then
 * writes every file under the final folder name and `manifest.json` last, and readers trust only
 * manifests (see lib/train/checkpoint.ts). Each `put` replaces the whole object in one request, so a reader
 * never sees half an object.
 *
 * `npm:@google-cloud/storage` is imported on the first call, not when this module loads: runs that
 * only use local folders never load it (nor its ~60 dependencies). Credentials are the library's
 * usual ones (Application Default Credentials); an `apiEndpoint` option or the
 * `STORAGE_EMULATOR_HOST` environment variable (read by the library) points it at an emulator, and
 * then no credentials are needed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GcsStore } from "./gcs_store.ts";
 *
 * // An in-memory stand-in for the @google-cloud/storage client (omit `client` for the real one).
 * const objects = new Map<string, Uint8Array>();
 * const bucket = {
 *   file: (name: string) => ({
 *     save: (d: Uint8Array) => Promise.resolve(void objects.set(name, d)),
 *     download: () => Promise.resolve([objects.get(name)!] as [Uint8Array]),
 *     delete: () => Promise.resolve(void objects.delete(name)),
 *   }),
 *   getFiles: ({ prefix }: { prefix: string }) =>
 *     Promise.resolve(
 *       [
 *         [...objects.keys()].filter((k) => k.startsWith(prefix)).map((name) => ({ name })),
 *         null,
 *       ] as [{ name: string }[], null],
 *     ),
 * };
 * const store = new GcsStore("gs://my-bucket/runs/exp1", { client: { bucket: () => bucket } });
 * await store.put("ckpt-00000001/state.json", new TextEncoder().encode("{}"));
 * assert.deepEqual(await store.list("ckpt-"), ["ckpt-00000001/state.json"]);
 * assert.ok(objects.has("runs/exp1/ckpt-00000001/state.json"));
 * ```
 * @module
 */
import { type CheckpointStore, checkStoreKey, StoreNotFoundError } from "./store.ts";

/** The members of a `@google-cloud/storage` File that {@link GcsStore} uses. */
export interface GcsFileLike {
  save(
    data: Uint8Array,
    opts: { resumable: boolean; contentType: string; metadata?: Record<string, unknown> },
  ): Promise<unknown>;
  download(): Promise<[Uint8Array, ...unknown[]]>;
  delete(opts: { ignoreNotFound: boolean }): Promise<unknown>;
  /** Object size and generation (used to stream shards; optional so small fakes can omit it). */
  getMetadata?(): Promise<[{ size?: string | number; generation?: string | number }, ...unknown[]]>;
  /** Byte stream of the object, from byte `start` when given (used to stream shards). */
  createReadStream?(opts?: { start?: number }): AsyncIterable<Uint8Array>;
}

/** One page request of a listing (`autoPaginate: false` so each page is its own, retried, call). */
export interface GcsListQuery {
  prefix: string;
  autoPaginate: false;
  maxResults: number;
  pageToken?: string;
}

/** The members of a `@google-cloud/storage` Bucket that {@link GcsStore} uses. */
export interface GcsBucketLike {
  /** `opts.generation` pins one version of the object (reads of a replaced one then fail). */
  file(name: string, opts?: { generation?: string | number }): GcsFileLike;
  /** Resolves to `[files, nextQuery (with pageToken) or null, ...]`. */
  getFiles(query: GcsListQuery): Promise<[{ name: string }[], unknown, ...unknown[]]>;
}

/** The members of a `@google-cloud/storage` Storage client that {@link GcsStore} uses. */
export interface GcsClientLike {
  bucket(name: string): GcsBucketLike;
}

/** Options for {@link GcsStore}. */
export interface GcsStoreOptions {
  /** API base URL, e.g. an emulator's `http://127.0.0.1:9199` (default: the library's). */
  apiEndpoint?: string;
  /** Google Cloud project id (default: the library's discovery). */
  projectId?: string;
  /** A ready client (tests, custom auth); `apiEndpoint` and `projectId` are then ignored. */
  client?: GcsClientLike;
  /** Tries per request for transient errors (default 5). */
  tries?: number;
  /** First retry delay in ms; doubles per try, capped at 8 s (default 250). */
  retryDelayMs?: number;
  /** Objects per listing page (default 1000, the API's maximum). */
  pageSize?: number;
  /**
   * Objects larger than this use a resumable upload (default 64 MiB); smaller ones a single
   * request, which is one round trip instead of three for the small files of a checkpoint.
   */
  resumableAbove?: number;
  /** Requests run at once by `deletePrefix` (default 8). */
  concurrency?: number;
}

/** A parsed `gs://bucket/prefix` URL. */
export interface GsUrl {
  bucket: string;
  /** Object name prefix without leading or trailing `/` ("" for the bucket root). */
  prefix: string;
}

/**
 * What is wrong with a bucket name under Cloud Storage's naming rules, or null when it is valid:
 * lowercase letters, digits, `-`, `_` and `.`; starts and ends with a letter or digit; 3 to 63
 * characters (with dots up to 222, each dot-separated part at most 63); not an IP address; not
 * starting with "goog" nor containing "google" (or a look-alike such as "g00gle").
 *
 * @example
 * ```ts
 * bucketNameProblem("my-bucket"); // null
 * bucketNameProblem("My-Bucket"); // 'invalid bucket name "My-Bucket" (uppercase letters; ...)'
 * ```
 */
export function bucketNameProblem(bucket: string): string | null {
  const bad = (why: string) => `invalid bucket name "${bucket}" (${why})`;
  if (/[A-Z]/.test(bucket)) {
    return bad("uppercase letters; use lowercase letters, digits, -, _ and .");
  }
  if (!/^[a-z0-9._-]*$/.test(bucket)) return bad("only lowercase letters, digits, -, _ and .");
  const parts = bucket.split(".");
  if (parts.length === 1 && (bucket.length < 3 || bucket.length > 63)) {
    return bad("3 to 63 characters");
  }
  if (bucket.length < 3) return bad("3 to 63 characters");
  if (bucket.length > 222) return bad("at most 222 characters with dots");
  if (!/^[a-z0-9]/.test(bucket) || !/[a-z0-9]$/.test(bucket)) {
    return bad("must start and end with a letter or digit");
  }
  if (parts.some((p) => p === "")) return bad("empty dot-separated part");
  if (parts.some((p) => p.length > 63)) return bad("each dot-separated part at most 63 characters");
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(bucket)) return bad("looks like an IP address");
  if (bucket.startsWith("goog")) return bad('cannot begin with "goog"');
  if (/g[o0][o0]g[l1]e/.test(bucket)) return bad('cannot contain "google" or a look-alike');
  return null;
}

/**
 * What is wrong with a `gs://bucket/prefix` URL (scheme, bucket name, object prefix), or null;
 * checks the text only, so it is instant and needs no credentials.
 *
 * @example
 * ```ts
 * gsUrlProblem("gs://my-bucket/runs/exp1"); // null
 * gsUrlProblem("gs://ab/p"); // 'invalid bucket name "ab" (3 to 63 characters)'
 * ```
 */
export function gsUrlProblem(url: string): string | null {
  const m = /^gs:\/\/([^/]*)\/?(.*)$/.exec(url);
  if (!m) return "not a gs:// URL (expected gs://bucket/prefix)";
  const [, bucket, rest] = m;
  const problem = bucketNameProblem(bucket);
  if (problem) return problem;
  const prefix = rest.replace(/\/+$/, "");
  if (prefix && prefix.split("/").some((p) => p === "" || p === "." || p === "..")) {
    return `invalid object prefix "${prefix}" (empty, "." or ".." segment)`;
  }
  return null;
}

/**
 * Split a `gs://bucket/prefix` URL; throws a one-line error naming the URL and what is wrong with
 * it (see {@link gsUrlProblem}).
 *
 * @example
 * ```ts
 * parseGsUrl("gs://my-bucket/runs/exp1/"); // { bucket: "my-bucket", prefix: "runs/exp1" }
 * ```
 */
export function parseGsUrl(url: string): GsUrl {
  const problem = gsUrlProblem(url);
  if (problem) throw new Error(`"${url}": ${problem}`);
  const [, bucket, rest] = /^gs:\/\/([^/]*)\/?(.*)$/.exec(url)!;
  return { bucket, prefix: rest.replace(/\/+$/, "") };
}

function httpStatus(e: unknown): number | undefined {
  const x = e as { code?: unknown; status?: unknown; response?: { status?: unknown } } | null;
  for (const v of [x?.code, x?.status, x?.response?.status]) {
    if (typeof v === "number") return v;
  }
  return undefined;
}

function errorCode(e: unknown): string | undefined {
  const x = e as { code?: unknown; cause?: { code?: unknown } } | null;
  for (const v of [x?.code, x?.cause?.code]) if (typeof v === "string") return v;
  return undefined;
}

const TRANSIENT_CODES = new Set(["ECONNRESET", "ETIMEDOUT", "EPIPE", "ECONNABORTED", "EAI_AGAIN"]);

/**
 * Whether a failed request is worth repeating: rate limiting (429), server errors (5xx), request
 * timeouts (408) and dropped connections. Other 4xx (403, 404...) fail the same way every time.
 *
 * @example
 * ```ts
 * isTransientGcsError({ code: 503 }); // true
 * isTransientGcsError({ code: 403 }); // false
 * ```
 */
export function isTransientGcsError(e: unknown): boolean {
  const s = httpStatus(e);
  if (s !== undefined) return s === 408 || s === 429 || s >= 500;
  const c = errorCode(e);
  if (c && TRANSIENT_CODES.has(c)) return true;
  return /socket hang up|network socket disconnected/i.test(String((e as Error)?.message ?? ""));
}

function describe(e: unknown): string {
  const s = httpStatus(e);
  const c = errorCode(e);
  const msg = String((e as Error)?.message ?? e).split("\n")[0];
  return s !== undefined ? `HTTP ${s}: ${msg}` : c && !msg.includes(c) ? `${c}: ${msg}` : msg;
}

/**
 * A {@link CheckpointStore} on Google Cloud Storage. See the module docs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GcsStore } from "./gcs_store.ts";
 *
 * // For the real service or an emulator, pass no client:
 * // new GcsStore("gs://bucket/run", { apiEndpoint: "http://127.0.0.1:9199" })
 * const file = { save: () => Promise.resolve(), delete: () => Promise.resolve() };
 * const download = () => Promise.resolve([new TextEncoder().encode("{}")] as [Uint8Array]);
 * const bucket = {
 *   file: () => ({ ...file, download }),
 *   getFiles: () => Promise.resolve([[], null] as [[], null]),
 * };
 * const store = new GcsStore("gs://bucket/run", { client: { bucket: () => bucket } });
 * const bytes = await store.get("ckpt-00000100/manifest.json");
 * assert.equal(new TextDecoder().decode(bytes), "{}");
 * assert.equal(store.location, "gs://bucket/run");
 * ```
 */
export class GcsStore implements CheckpointStore {
  /** `gs://bucket` or `gs://bucket/prefix` (no trailing slash). */
  readonly location: string;
  readonly bucketName: string;
  /** Object name prefix ("" or ending in `/`). */
  readonly #base: string;
  readonly #opts: GcsStoreOptions;
  #bucket: Promise<GcsBucketLike> | null = null;

  constructor(url: string, opts: GcsStoreOptions = {}) {
    const { bucket, prefix } = parseGsUrl(url);
    this.bucketName = bucket;
    this.#base = prefix ? `${prefix}/` : "";
    this.location = `gs://${bucket}${prefix ? `/${prefix}` : ""}`;
    for (const k of ["tries", "pageSize", "concurrency"] as const) {
      const v = opts[k];
      if (v !== undefined && (!Number.isInteger(v) || v < 1)) {
        throw new Error(`GcsStore: option ${k} must be an integer >= 1, got ${v}`);
      }
    }
    this.#opts = opts;
  }

  /** The bucket handle, creating the client on first use (the lazy import lives here). */
  #getBucket(): Promise<GcsBucketLike> {
    if (this.#bucket) return this.#bucket;
    const p = (async () => {
      let client = this.#opts.client;
      if (!client) {
        const { Storage } = await import("npm:@google-cloud/storage@7.19.0");
        client = new Storage({
          ...(this.#opts.apiEndpoint ? { apiEndpoint: this.#opts.apiEndpoint } : {}),
          ...(this.#opts.projectId ? { projectId: this.#opts.projectId } : {}),
          // The library retries reads but not uploads or deletes without generation
          // preconditions, with its own long timeouts; this store retries every operation
          // itself (see #retry), so the library's retries are off to keep one policy.
          retryOptions: { autoRetry: false },
        });
      }
      return client.bucket(this.bucketName);
    })().catch((e) => {
      throw new Error(
        `${this.location}: cannot create the Cloud Storage client (${describe(e)})`,
        { cause: e },
      );
    });
    // A failed start (e.g. the package cannot load) is not cached, so a later call can try again.
    p.catch(() => {
      if (this.#bucket === p) this.#bucket = null;
    });
    this.#bucket = p;
    return p;
  }

  /**
   * The bucket handle this store uses, for reads a {@link CheckpointStore} has no method for
   * (streaming a large object); creates the client on first use, like every other method.
   *
   * @example
   * ```ts
   * const bucket = await new GcsStore("gs://bucket").bucket();
   * const stream = bucket.file("data/00000.tar").createReadStream?.();
   * ```
   */
  bucket(): Promise<GcsBucketLike> {
    return this.#getBucket();
  }

  /** Full `gs://` URL of a key (or of a listing prefix). */
  urlOf(key: string): string {
    return `gs://${this.bucketName}/${this.#base}${key}`;
  }

  /**
   * Run one request, repeating it on transient errors with exponential backoff and jitter. Every
   * operation here is idempotent (a put writes the same bytes under the same name, a delete of a
   * deleted object is fine), so repeating one whose answer was lost does no harm; rate limits and
   * brief 5xx or dropped connections are routine on a busy bucket and must not kill a long run at
   * checkpoint time.
   */
  async #retry<T>(op: string, key: string, fn: () => Promise<T>): Promise<T> {
    const tries = this.#opts.tries ?? 5;
    const base = this.#opts.retryDelayMs ?? 250;
    for (let i = 1;; i++) {
      try {
        return await fn();
      } catch (e) {
        if (e instanceof StoreNotFoundError) throw e;
        if (i >= tries || !isTransientGcsError(e)) {
          const n = i > 1 ? ` after ${i} tries` : "";
          throw new Error(`${this.urlOf(key)}: ${op} failed${n} (${describe(e)})`, { cause: e });
        }
        const delay = Math.min(8000, base * 2 ** (i - 1)) * (0.5 + Math.random() / 2);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  async put(key: string, data: Uint8Array): Promise<void> {
    checkStoreKey(key);
    const bucket = await this.#getBucket();
    const resumable = data.length > (this.#opts.resumableAbove ?? 64 * 2 ** 20);
    await this.#retry("put", key, () =>
      bucket.file(this.#base + key).save(data, {
        resumable,
        contentType: "application/octet-stream",
      }));
  }

  async get(key: string): Promise<Uint8Array> {
    checkStoreKey(key);
    const bucket = await this.#getBucket();
    return await this.#retry("get", key, async () => {
      try {
        const [buf] = await bucket.file(this.#base + key).download();
        // The library returns a Node Buffer; hand out a plain view of the same memory.
        return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
      } catch (e) {
        if (httpStatus(e) === 404) throw new StoreNotFoundError(this.location, key);
        throw e;
      }
    });
  }

  async list(prefix = ""): Promise<string[]> {
    const bucket = await this.#getBucket();
    const pageSize = this.#opts.pageSize ?? 1000;
    const out: string[] = [];
    let pageToken: string | undefined;
    do {
      const query: GcsListQuery = {
        prefix: this.#base + prefix,
        autoPaginate: false,
        maxResults: pageSize,
        ...(pageToken ? { pageToken } : {}),
      };
      const [files, next] = await this.#retry("list", `${prefix}*`, () => bucket.getFiles(query));
      for (const f of files) {
        // Names ending in "/" are folder placeholders made by the Cloud Console, not keys.
        if (!f.name.endsWith("/")) out.push(f.name.slice(this.#base.length));
      }
      pageToken = (next as { pageToken?: string } | null | undefined)?.pageToken;
    } while (pageToken);
    return out.sort();
  }

  async delete(key: string): Promise<void> {
    checkStoreKey(key);
    const bucket = await this.#getBucket();
    await this.#retry(
      "delete",
      key,
      () => bucket.file(this.#base + key).delete({ ignoreNotFound: true }),
    );
  }

  async deletePrefix(prefix: string): Promise<void> {
    const folder = prefix.replace(/\/+$/, "");
    checkStoreKey(folder);
    // GCS has no folder delete: list, then delete objects a few at a time.
    const keys = await this.list(folder + "/");
    const width = this.#opts.concurrency ?? 8;
    let next = 0;
    const worker = async () => {
      while (next < keys.length) await this.delete(keys[next++]);
    };
    await Promise.all(Array.from({ length: Math.min(width, keys.length) }, worker));
  }
}
