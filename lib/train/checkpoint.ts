/**
 * Crash-safe training checkpoints.
 *
 * A checkpoint is the folder `ckpt-<step:08d>/` with `model.safetensors`, optionally
 * `ema.safetensors` and `optimizer.safetensors`, `state.json` (step, RNG states, data position,
 * config...) and `manifest.json` (every file's name, size and sha256), written LAST. A folder
 * without a valid manifest, or whose files do not match it, does not exist for readers. On stores
 * that can rename (local disk) the parts go to `ckpt-<step>.partial-<rand>/` first and the folder is
 * renamed once the manifest is in; on object stores the manifest-last rule alone makes it complete.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   latestCheckpoint,
 *   loadCheckpoint,
 *   pruneCheckpoints,
 *   saveCheckpoint,
 * } from "./checkpoint.ts";
 * import { storeFor } from "../storage/location.ts";
 *
 * const run = await Deno.makeTempDir(); // e.g. runs/x
 * const model = { w: { shape: [2], data: new Float32Array([1, 2]) } }; // weights as host arrays
 * for (const step of [100, 200]) {
 *   await saveCheckpoint(run, { step, tensors: { model }, state: {} });
 * }
 * const latest = await latestCheckpoint(run); // { name: "ckpt-00000200", step: 200, ... }
 * const ck = await loadCheckpoint({ store: storeFor(run), name: latest!.name });
 * assert.deepEqual(ck.tensors.model, model);
 * assert.deepEqual(await pruneCheckpoints(run, 1), ["ckpt-00000100"]);
 * await Deno.remove(run, { recursive: true });
 * ```
 * @module
 */
import {
  checkSafetensors,
  decodeSafetensors,
  encodeSafetensors,
  toTensorDataMap,
} from "./safetensors.ts";
import { confinedJoin } from "../util/confined_path.ts";
import { fileDigest, verifyDigest } from "../util/file_digest.ts";
import { type CheckpointStore, LocalStore } from "../storage/store.ts";
import { storeFor } from "../storage/location.ts";
import type { TensorDataMap } from "./tensor_data.ts";

/** Tensor groups stored in a checkpoint. */
export interface CheckpointTensors {
  model: TensorDataMap;
  ema?: TensorDataMap;
  optimizer?: TensorDataMap;
}

/** What {@link saveCheckpoint} writes. */
export interface SaveCheckpointOptions {
  /** Optimizer steps completed. */
  step: number;
  tensors: CheckpointTensors;
  /** JSON-safe training state (RNG states, data position, config...); `step` is added. */
  state: Record<string, unknown>;
  /** Data-parallel rank; only rank 0 writes (default 0). */
  rank?: number;
  /** Extra safetensors `__metadata__` for every tensor file. */
  metadata?: Record<string, string>;
}

/** One entry of `manifest.json`. */
export interface ManifestFile {
  name: string;
  size: number;
  sha256: string;
}

/** Contents of `manifest.json`. */
export interface Manifest {
  format: "xgen-kit-checkpoint";
  version: 1;
  step: number;
  files: ManifestFile[];
}

/** A checkpoint folder found in a run. */
export interface CheckpointInfo {
  /** Folder name (`ckpt-00000100` or `ckpt-00000100.partial-1a2b3c4d`). */
  name: string;
  step: number;
  /** True when the manifest is present and the files match it. */
  complete: boolean;
  /** Why it is not complete. */
  problem?: string;
}

/** A loaded checkpoint. */
export interface LoadedCheckpoint {
  name: string;
  step: number;
  state: Record<string, unknown>;
  tensors: CheckpointTensors;
  manifest: Manifest;
}

const MANIFEST = "manifest.json";
const GROUPS = ["model", "ema", "optimizer"] as const;

/**
 * Folder name for a step: `ckpt-<step:08d>`.
 *
 * @example
 * ```ts
 * checkpointName(42); // "ckpt-00000042"
 * ```
 */
export function checkpointName(step: number): string {
  if (!Number.isInteger(step) || step < 0) {
    throw new Error(`checkpointName: step must be a non-negative integer, got ${step}`);
  }
  return `ckpt-${String(step).padStart(8, "0")}`;
}

function parseName(name: string): { step: number; partial: boolean } | null {
  const m = /^ckpt-(\d{8,})(\.partial-[A-Za-z0-9]+)?$/.exec(name);
  return m ? { step: Number(m[1]), partial: !!m[2] } : null;
}

/** JSON.parse quotes the text it failed on, line breaks included: keep errors on one line. */
function oneLine(msg: string): string {
  return msg.replace(/\r?\n/g, "\\n");
}

function where(store: CheckpointStore, key: string): string {
  const loc = store.location;
  return loc.endsWith("/") ? loc + key : `${loc}/${key}`;
}

async function deleteFolder(store: CheckpointStore, prefix: string): Promise<void> {
  if (store.deletePrefix) return await store.deletePrefix(prefix);
  for (const k of await store.list(prefix + "/")) await store.delete(k);
}

/**
 * Write a checkpoint; returns its folder name, or null on ranks other than 0 (which write nothing).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
 * import { Rng } from "../util/rng.ts";
 *
 * const run = await Deno.makeTempDir();
 * const rng = Rng.stream(0);
 * await saveCheckpoint(run, {
 *   step: 3,
 *   tensors: { model: { w: { shape: [1], data: new Float32Array([1]) } } },
 *   state: { rng: rng.state() },
 * });
 * const ck = await loadCheckpoint(`${run}/ckpt-00000003`);
 * assert.deepEqual(ck.state, { rng: rng.state(), step: 3 }); // `step` is added
 * await Deno.remove(run, { recursive: true });
 * ```
 */
export async function saveCheckpoint(
  run: string | CheckpointStore,
  opts: SaveCheckpointOptions,
): Promise<string | null> {
  if ((opts.rank ?? 0) !== 0) return null;
  const store = storeFor(run);
  const name = checkpointName(opts.step);
  const parts: [string, Uint8Array][] = [];
  const meta = { ...(opts.metadata ?? {}), step: String(opts.step) };
  for (const g of GROUPS) {
    const t = opts.tensors[g];
    if (g === "model" && !t) throw new Error(`saveCheckpoint: tensors.model is required`);
    if (t) parts.push([`${g}.safetensors`, encodeSafetensors(t, { ...meta, group: g })]);
  }
  const state = { ...opts.state, step: opts.step };
  parts.push(["state.json", new TextEncoder().encode(JSON.stringify(state, null, 2) + "\n")]);
  const files: ManifestFile[] = [];
  for (const [n, b] of parts) files.push({ name: n, ...(await fileDigest(b)) });
  const manifest: Manifest = { format: "xgen-kit-checkpoint", version: 1, step: opts.step, files };
  const mbytes = new TextEncoder().encode(JSON.stringify(manifest, null, 2) + "\n");

  if (store.renamePrefix) {
    const tmp = `${name}.partial-${crypto.randomUUID().slice(0, 8)}`;
    for (const [n, b] of parts) await store.put(`${tmp}/${n}`, b);
    await store.put(`${tmp}/${MANIFEST}`, mbytes);
    // A previous (possibly corrupt) folder of the same step is replaced, e.g. after a resume.
    await deleteFolder(store, name);
    await store.renamePrefix(tmp, name);
  } else {
    // No rename: retract the old manifest first so the folder is never "complete" while mixed.
    await store.delete(`${name}/${MANIFEST}`);
    for (const [n, b] of parts) await store.put(`${name}/${n}`, b);
    await store.put(`${name}/${MANIFEST}`, mbytes);
  }
  return name;
}

function parseManifest(bytes: Uint8Array, path: string): Manifest {
  let m: Manifest;
  try {
    m = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${oneLine((e as Error).message)})`);
  }
  if (m?.format !== "xgen-kit-checkpoint" || m.version !== 1) {
    throw new Error(`${path}: expected format "xgen-kit-checkpoint" version 1`);
  }
  if (!Number.isInteger(m.step) || !Array.isArray(m.files)) {
    throw new Error(`${path}: fields "step" (integer) and "files" (array) are required`);
  }
  m.files.forEach((f, i) => {
    if (typeof f?.name !== "string" || !Number.isInteger(f.size) || typeof f.sha256 !== "string") {
      throw new Error(`${path}: every file entry needs name, size and sha256`);
    }
    // Names become store keys next to the manifest: plain file names only.
    confinedJoin(path.replace(/\/[^/]*$/, ""), f.name, {
      file: path,
      field: `files[${i}].name`,
      fileName: true,
    });
  });
  return m;
}

async function readManifest(store: CheckpointStore, name: string): Promise<Manifest> {
  const key = `${name}/${MANIFEST}`;
  let bytes: Uint8Array;
  try {
    bytes = await store.get(key);
  } catch {
    throw new Error(`${where(store, key)}: missing (checkpoint incomplete)`);
  }
  return parseManifest(bytes, where(store, key));
}

/** Read every file of a checkpoint, checking each against the manifest. */
async function readVerified(
  store: CheckpointStore,
  name: string,
): Promise<{ manifest: Manifest; files: Map<string, Uint8Array> }> {
  const manifest = await readManifest(store, name);
  const files = new Map<string, Uint8Array>();
  for (const f of manifest.files) {
    const key = `${name}/${f.name}`;
    let b: Uint8Array;
    try {
      b = await store.get(key);
    } catch {
      throw new Error(`${where(store, key)}: listed in the manifest but missing`);
    }
    await verifyDigest(b, f, { path: where(store, key), recordedIn: "manifest" });
    checkContent(f.name, b, where(store, key));
    files.set(f.name, b);
  }
  return { manifest, files };
}

/**
 * A file can match its manifest and still be unusable (damaged before it was hashed, or the
 * manifest rewritten to agree): tensor files must parse as safetensors and state.json as a JSON
 * object, so such a checkpoint counts as corrupt like any other and a resume falls back past it.
 */
function checkContent(name: string, bytes: Uint8Array, path: string): void {
  if (name.endsWith(".safetensors")) checkSafetensors(bytes, path);
  else if (name === "state.json") parseState(bytes, path);
}

function parseState(bytes: Uint8Array, path: string): Record<string, unknown> {
  let state: unknown;
  try {
    state = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${oneLine((e as Error).message)})`);
  }
  if (!state || typeof state !== "object" || Array.isArray(state)) {
    throw new Error(`${path}: expected a JSON object`);
  }
  return state as Record<string, unknown>;
}

/** Options for {@link listCheckpoints}. */
export interface ListOptions {
  /**
   * `"full"` reads every file and checks sizes and hashes; `"manifest"` only checks that the
   * manifest parses and lists the expected files (cheap; used by pruning). Default `"full"`.
   */
  verify?: "full" | "manifest";
}

async function check(
  store: CheckpointStore,
  name: string,
  step: number,
  verify: "full" | "manifest",
  keys: Set<string>,
): Promise<CheckpointInfo> {
  try {
    if (verify === "full") {
      await readVerified(store, name);
    } else {
      const m = await readManifest(store, name);
      for (const f of m.files) {
        if (!keys.has(`${name}/${f.name}`)) {
          throw new Error(
            `${where(store, `${name}/${f.name}`)}: listed in the manifest but missing`,
          );
        }
      }
    }
    return { name, step, complete: true };
  } catch (e) {
    return { name, step, complete: false, problem: (e as Error).message };
  }
}

/**
 * Every checkpoint folder in a run (complete or not), sorted by step then name.
 *
 * @example
 * ```ts
 * for (const c of await listCheckpoints("runs/x")) console.log(c.name, c.complete);
 * ```
 */
export async function listCheckpoints(
  run: string | CheckpointStore,
  opts: ListOptions = {},
): Promise<CheckpointInfo[]> {
  const store = storeFor(run);
  const keys = await store.list("ckpt-");
  const folders = new Set(keys.map((k) => k.split("/")[0]).filter((f) => parseName(f)));
  const keySet = new Set(keys);
  const out: CheckpointInfo[] = [];
  for (const f of folders) {
    const p = parseName(f)!;
    if (p.partial) {
      out.push({
        name: f,
        step: p.step,
        complete: false,
        problem: "partial write, never finished",
      });
    } else {
      out.push(await check(store, f, p.step, opts.verify ?? "full", keySet));
    }
  }
  return out.sort((a, b) => a.step - b.step || (a.name < b.name ? -1 : 1));
}

/** Options for {@link latestCheckpoint}. */
export interface LatestOptions {
  /** Called for every newer checkpoint that was skipped (default: console.warn). */
  warn?: (msg: string) => void;
}

/**
 * The newest COMPLETE checkpoint (fully verified), or null. Newer partial or corrupt folders are
 * skipped with a warning naming them.
 *
 * @example
 * ```ts
 * const c = await latestCheckpoint("runs/x"); // { name: "ckpt-00000300", step: 300, ... }
 * ```
 */
export async function latestCheckpoint(
  run: string | CheckpointStore,
  opts: LatestOptions = {},
): Promise<CheckpointInfo | null> {
  const store = storeFor(run);
  const warn = opts.warn ?? ((m: string) => console.warn(m));
  const keys = await store.list("ckpt-");
  const keySet = new Set(keys);
  const folders = [...new Set(keys.map((k) => k.split("/")[0]))]
    .map((f) => ({ f, p: parseName(f) }))
    .filter((x) => x.p)
    .sort((a, b) => b.p!.step - a.p!.step || (a.p!.partial ? 1 : 0) - (b.p!.partial ? 1 : 0));
  for (const { f, p } of folders) {
    if (p!.partial) {
      warn(`checkpoint ${where(store, f)}: skipped (partial write, never finished)`);
      continue;
    }
    const info = await check(store, f, p!.step, "full", keySet);
    if (info.complete) return info;
    warn(`checkpoint ${where(store, f)}: skipped (${info.problem})`);
  }
  return null;
}

/** Where to load a checkpoint from: a folder path, or a store plus folder name. */
export type CheckpointLocation = string | { store: CheckpointStore; name: string };

/**
 * Load and verify a checkpoint. Any mismatch with the manifest throws one error line naming the
 * file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
 *
 * const run = await Deno.makeTempDir(); // e.g. runs/x
 * const model = { w: { shape: [1, 2], data: new Float32Array([3, 4]) } };
 * await saveCheckpoint(run, { step: 300, tensors: { model }, state: {} });
 * const ck = await loadCheckpoint(`${run}/ckpt-00000300`);
 * assert.deepEqual(ck.tensors.model, model); // name -> {shape, data}
 * await Deno.remove(run, { recursive: true });
 * ```
 */
export async function loadCheckpoint(loc: CheckpointLocation): Promise<LoadedCheckpoint> {
  let store: CheckpointStore;
  let name: string;
  if (typeof loc === "string") {
    const clean = loc.replace(/\/+$/, "");
    const i = clean.lastIndexOf("/");
    store = new LocalStore(i > 0 ? clean.slice(0, i) : i === 0 ? "/" : ".");
    name = clean.slice(i + 1);
  } else {
    store = loc.store;
    name = loc.name;
  }
  const { manifest, files } = await readVerified(store, name);
  const stateBytes = files.get("state.json");
  if (!stateBytes) throw new Error(`${where(store, `${name}/${MANIFEST}`)}: lists no state.json`);
  const state = parseState(stateBytes, where(store, `${name}/state.json`));
  const tensors: Partial<CheckpointTensors> = {};
  for (const g of GROUPS) {
    const b = files.get(`${g}.safetensors`);
    if (b) {
      tensors[g] = toTensorDataMap(decodeSafetensors(b, where(store, `${name}/${g}.safetensors`)));
    }
  }
  if (!tensors.model) {
    throw new Error(`${where(store, `${name}/${MANIFEST}`)}: lists no model.safetensors`);
  }
  return { name, step: manifest.step, state, tensors: tensors as CheckpointTensors, manifest };
}

/** Options of {@link pruneCheckpoints}. */
export interface PruneOptions {
  /** Data-parallel rank; only rank 0 deletes (default 0). */
  rank?: number;
  /**
   * Steps whose complete checkpoints are kept whatever `keepLast` says (a sweep's fixed points,
   * e.g. every 1,000 steps); they do not count towards `keepLast`.
   */
  keepSteps?: readonly number[];
}

/**
 * Keep the newest `keepLast` complete checkpoints (`Infinity`: all) and those at `keepSteps`, and
 * delete older ones, plus leftover partial folders and incomplete folders older than the newest
 * complete checkpoint. The newest complete checkpoint is never deleted, so a caller that prunes
 * right after a save only ever deletes once a newer checkpoint is complete. Returns the deleted
 * folder names.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pruneCheckpoints, saveCheckpoint } from "./checkpoint.ts";
 *
 * const run = await Deno.makeTempDir(); // e.g. runs/x/unet
 * const model = { w: { shape: [1], data: new Float32Array([0]) } };
 * for (const step of [1, 2, 3, 4]) await saveCheckpoint(run, { step, tensors: { model }, state: {} });
 * assert.deepEqual(await pruneCheckpoints(run, 1, { keepSteps: [2] }), [
 *   "ckpt-00000001",
 *   "ckpt-00000003",
 * ]);
 * await Deno.remove(run, { recursive: true });
 * ```
 */
export async function pruneCheckpoints(
  run: string | CheckpointStore,
  keepLast: number,
  opts: PruneOptions = {},
): Promise<string[]> {
  if (keepLast !== Infinity && (!Number.isInteger(keepLast) || keepLast < 1)) {
    throw new Error(
      `pruneCheckpoints: keepLast must be an integer >= 1, got ${keepLast} (Infinity keeps all)`,
    );
  }
  if ((opts.rank ?? 0) !== 0) return [];
  const store = storeFor(run);
  const all = await listCheckpoints(store, { verify: "manifest" });
  const complete = all.filter((c) => c.complete);
  if (complete.length === 0) return [];
  const newest = complete[complete.length - 1];
  const pinned = new Set(opts.keepSteps ?? []);
  const rolling = complete.filter((c) => !pinned.has(c.step));
  const keep = new Set([
    ...(keepLast === Infinity ? rolling : rolling.slice(-keepLast)).map((c) => c.name),
    ...complete.filter((c) => pinned.has(c.step)).map((c) => c.name),
  ]);
  const doomed = all.filter((c) =>
    !keep.has(c.name) && c.name !== newest.name &&
    (c.complete || c.name.includes(".partial-") || c.step < newest.step)
  );
  for (const c of doomed) await deleteFolder(store, c.name);
  return doomed.map((c) => c.name);
}
