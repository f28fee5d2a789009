/**
 * Watch what a crash would leave on disk: while `fn` runs, every file-system mutation made through
 * the `Deno` namespace (create, open, write, sync, close, rename, remove, mkdir, copy, link,
 * truncate, and their sync forms) is followed by a snapshot of `dir`, taken before the caller
 * continues. Each snapshot is what a process killed right after that call would leave behind, so
 * a test can assert ordering rules ("this file appears only once all the others are complete")
 * on the disk itself rather than on what the code reports, and without timing or mtime races.
 *
 * The patches are global and removed when `fn` settles; run nothing else concurrently.
 *
 * @example
 * ```ts
 * const { states } = await recordDiskStates(out, () => exportRun(run, out));
 * for (const s of states) if (s.has("model_index.json")) // every other file is complete
 * ```
 * @module
 */

/** One snapshot: relative path -> content digest (`<length>:<hash>`), files only. */
export type DiskState = Map<string, string>;

/** What {@link recordDiskStates} saw. */
export interface RecordedStates<T> {
  result: T;
  /** Snapshots in order, one after each mutating call. */
  states: DiskState[];
  /** Name of the call behind each snapshot (`"rename"`, `"FsFile.write"`, ...). */
  ops: string[];
}

const DENO_MUTATIONS = [
  "writeFile",
  "writeTextFile",
  "rename",
  "remove",
  "mkdir",
  "copyFile",
  "create",
  "open",
  "truncate",
  "link",
  "symlink",
  "makeTempFile",
  "makeTempDir",
] as const;

const FILE_MUTATIONS = ["write", "truncate", "sync", "syncData", "close"] as const;

/** 53-bit content hash (cyrb53): enough to tell file versions apart in a test. */
function digest(bytes: Uint8Array): string {
  let h1 = 0xdeadbeef, h2 = 0x41c6ce57;
  for (let i = 0; i < bytes.length; i++) {
    h1 = Math.imul(h1 ^ bytes[i], 2654435761);
    h2 = Math.imul(h2 ^ bytes[i], 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return `${bytes.length}:${(4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(16)}`;
}

/**
 * Snapshot of the files under `dir` (recursive, relative paths, `/`-separated); empty when `dir`
 * does not exist. Synchronous so it can run inside sync calls too.
 *
 * @example
 * ```ts
 * diskState("exports/tiny").get("model_index.json"); // "1234:1f0c..."
 * ```
 */
export function diskState(dir: string): DiskState {
  const out: DiskState = new Map();
  const walk = (rel: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(rel ? `${dir}/${rel}` : dir)];
    } catch (e) {
      // A folder removed between listing and reading is simply not there in this state.
      if (e instanceof Deno.errors.NotFound) return;
      throw e;
    }
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) walk(r);
      else if (e.isFile) {
        try {
          out.set(r, digest(Deno.readFileSync(`${dir}/${r}`)));
        } catch (err) {
          if (!(err instanceof Deno.errors.NotFound)) throw err;
        }
      }
    }
  };
  walk("");
  return out;
}

/**
 * Run `fn`, snapshotting `dir` after every file-system mutation it makes (see the module notes).
 *
 * @example
 * ```ts
 * const { result, states } = await recordDiskStates(dir, () => save(dir));
 * ```
 */
export async function recordDiskStates<T>(
  dir: string,
  fn: () => Promise<T>,
): Promise<RecordedStates<T>> {
  const states: DiskState[] = [];
  const ops: string[] = [];
  const snap = (op: string) => {
    states.push(diskState(dir));
    ops.push(op);
  };
  const restore: (() => void)[] = [];
  // deno-lint-ignore no-explicit-any
  const patch = (target: any, name: string, label: string) => {
    const orig = target[name];
    if (typeof orig !== "function") return;
    target[name] = function (this: unknown, ...args: unknown[]) {
      const r = orig.apply(this, args);
      if (r instanceof Promise) {
        return r.then((v) => {
          snap(label);
          return v;
        });
      }
      snap(label);
      return r;
    };
    restore.push(() => (target[name] = orig));
  };
  try {
    for (const name of DENO_MUTATIONS) {
      patch(Deno, name, name);
      patch(Deno, `${name}Sync`, `${name}Sync`);
    }
    for (const name of FILE_MUTATIONS) {
      patch(Deno.FsFile.prototype, name, `FsFile.${name}`);
      patch(Deno.FsFile.prototype, `${name}Sync`, `FsFile.${name}Sync`);
    }
    const result = await fn();
    return { result, states, ops };
  } finally {
    for (const undo of restore.reverse()) undo();
  }
}
