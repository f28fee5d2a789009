/**
 * Size plus SHA-256 of a file's bytes, and the check against a recorded pair: one routine for
 * checkpoint manifests and frozen models' `model.json`, so both refuse damage with the same words.
 *
 * @example
 * ```ts
 * const want = await fileDigest(bytes); // { size: 12, sha256: "9f86d0..." }
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
 * await sha256Hex(new TextEncoder().encode("test")); // "9f86d081884c7d65..."
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
 * isSha256Hex("ab"); // false
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
 * const { size, sha256 } = await fileDigest(await Deno.readFile("model.safetensors"));
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
 * await verifyDigest(bytes, entry, { path: "ckpt-00000100/model.safetensors", recordedIn: "manifest" });
 * // Error: ckpt-00000100/model.safetensors: sha256 1a2b3c4d5e6f... does not match manifest
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
