/**
 * Small shared utilities: seeded, serialisable random streams; crash-safe file writes; progress;
 * typed-array concatenation; file digests; confining paths read from files to their folder.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Rng, STREAM, writeJsonAtomic } from "./mod.ts";
 *
 * const eps = Rng.stream(0, [0, STREAM.noise]).normal(16);
 * const path = `${await Deno.makeTempDir()}/x.json`;
 * await writeJsonAtomic(path, { n: eps.length });
 * assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), { n: 16 });
 * ```
 * @module
 */
export * from "./rng.ts";
export * from "./atomic.ts";
export * from "./progress.ts";
export * from "./json_file.ts";
export * from "./concat.ts";
export * from "./file_digest.ts";
export * from "./confined_path.ts";
export * from "./float16.ts";
export * from "./path_exists.ts";
