/**
 * Size plus SHA-256 of a file's bytes, and the check against a recorded pair: one routine for
 * checkpoint manifests and frozen models' `model.json`, so both refuse damage with the same words.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fileDigest, verifyDigest } from "./file_digest.ts";
 *
 * const bytes = new TextEncoder().encode("hello world!");
 * const want = await fileDigest(bytes);
 * assert.equal(want.size, 12);
 * await verifyDigest(bytes, want, { path: "m/model.safetensors", recordedIn: "model.json" });
 * ```
 * @module
 */

/** A file's size in bytes and the lowercase hex SHA-256 of its contents. */
export interface FileDigest {
  size: number;
  sha256: string;
}

/** Options for {@link verifyDigest}. */
export interface VerifyDigestOptions {
  /** The file checked (starts every error). */
  path: string;
  /** What recorded the expected digest, e.g. "manifest" or "model.json" (ends every error). */
  recordedIn: string;
}

/**
 * Lowercase hex SHA-256 of `data`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sha256Hex } from "./file_digest.ts";
 *
 * assert.match(await sha256Hex(new TextEncoder().encode("test")), /^9f86d081884c7d65/);
 * ```
 */
export async function sha256Hex(data: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Whether `x` has the form of a SHA-256 as the kit writes it (64 lowercase hex digits).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isSha256Hex } from "./file_digest.ts";
 *
 * assert.equal(isSha256Hex("ab"), false);
 * assert.equal(isSha256Hex("0".repeat(64)), true);
 * ```
 */
export function isSha256Hex(x: unknown): x is string {
  return typeof x === "string" && /^[0-9a-f]{64}$/.test(x);
}

/**
 * Size and SHA-256 of `data`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fileDigest } from "./file_digest.ts";
 *
 * const { size, sha256 } = await fileDigest(new Uint8Array(3));
 * assert.deepEqual([size, sha256.length], [3, 64]);
 * ```
 */
export async function fileDigest(data: Uint8Array): Promise<FileDigest> {
  return { size: data.length, sha256: await sha256Hex(data) };
}

/**
 * Throw one line naming `o.path` unless `data` has the recorded size and SHA-256.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fileDigest, verifyDigest } from "./file_digest.ts";
 *
 * const entry = await fileDigest(new TextEncoder().encode("v1"));
 * const bytes = new TextEncoder().encode("v2");
 * const path = "ckpt-00000100/model.safetensors";
 * await assert.rejects(
 *   verifyDigest(bytes, entry, { path, recordedIn: "manifest" }),
 *   /does not match manifest/,
 * );
 * ```
 */
export async function verifyDigest(
  data: Uint8Array,
  want: FileDigest,
  o: VerifyDigestOptions,
): Promise<void> {
  if (data.length !== want.size) {
    throw new Error(`${o.path}: size ${data.length} bytes, ${o.recordedIn} says ${want.size}`);
  }
  const h = await sha256Hex(data);
  if (h !== want.sha256) {
    throw new Error(`${o.path}: sha256 ${h.slice(0, 12)}... does not match ${o.recordedIn}`);
  }
}
