/**
 * A training job's run folder and its `config.json`: a new folder records the settings; an
 * existing one is trained on only with `resume` and the same settings, so a resume never mixes two
 * runs' checkpoints. Both jobs (`trainRun`, `trainOnParts`) check their folder with
 * {@link prepareRunFolder}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { prepareRunFolder } from "./run_folder.ts";
 *
 * const out = `${await Deno.makeTempDir()}/run`;
 * await prepareRunFolder({ out, config: { seed: 1 }, record: { backend: "cpu-js" } });
 * await prepareRunFolder({ out, config: { seed: 1 }, record: {}, resume: true });
 * await assert.rejects(
 *   () => prepareRunFolder({ out, config: { seed: 2 }, record: {}, resume: true }),
 *   /config\.json: field "seed" was 1, now 2; resume with the same flags or pick another --out/,
 * );
 * await Deno.remove(out, { recursive: true });
 * ```
 * @module
 */
import { writeJsonAtomic } from "../util/atomic.ts";

/** Options of {@link prepareRunFolder}. */
export interface RunFolderOptions {
  /** The run folder; its `config.json` is checked or written. */
  out: string;
  /**
   * The settings a resume must repeat, compared field by field with the recorded ones (a field
   * the recorded config lacks reads as null, as runs made before the field existed lack it).
   */
  config: Record<string, unknown>;
  /** What a new `config.json` records besides `config` (backend, ...); `created` is added. */
  record: Record<string, unknown>;
  /** Continue an existing run (default false: an existing run is refused). */
  resume?: boolean;
  /**
   * The refusal when a setting differs, after `<out>/config.json: `: a text, or a function of the
   * first difference (default: names the field, its recorded value and the new one).
   */
  mismatchMessage?: string | ((d: ConfigDifference) => string);
  /**
   * Looks at an existing config first (before `resume` is asked): true writes `config.json`
   * afresh, as for a new run, e.g. for a config no run could have trained with.
   */
  rewrites?: (prev: Record<string, unknown>) => boolean;
  /**
   * Called when a setting differs, before refusing: true when it has removed the folder, which is
   * then made afresh as a new run.
   */
  onMismatch?: () => Promise<boolean>;
}

/** Where two configs first differ: a dotted path into them and the two values there. */
export interface ConfigDifference {
  /** E.g. `preset.unet.gradAccum` (a field absent on one side reads as null). */
  path: string;
  was: unknown;
  now: unknown;
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/**
 * The first place where `now` differs from `prev`, descending into objects (arrays are compared
 * whole), or null when they are the same; absent fields and null are equal.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { firstDifference } from "./run_folder.ts";
 *
 * const prev = { seed: 1, preset: { unet: { steps: 8 } } };
 * assert.deepEqual(firstDifference(prev, { seed: 1, preset: { unet: { steps: 8, keep: "all" } } }), {
 *   path: "preset.unet.keep",
 *   was: null,
 *   now: "all",
 * });
 * assert.equal(firstDifference(prev, { seed: 1, preset: { unet: { steps: 8 } }, reuse: null }), null);
 * ```
 */
export function firstDifference(
  prev: Record<string, unknown>,
  now: Record<string, unknown>,
  path = "",
): ConfigDifference | null {
  for (const k of [...new Set([...Object.keys(now), ...Object.keys(prev)])]) {
    const a = prev[k] ?? null, b = now[k] ?? null, at = path ? `${path}.${k}` : k;
    if (isRecord(a) && isRecord(b)) {
      const d = firstDifference(a, b, at);
      if (d) return d;
    } else if (JSON.stringify(a) !== JSON.stringify(b)) {
      return { path: at, was: a, now: b };
    }
  }
  return null;
}

/**
 * Make `out` a run folder for these settings, or check the run it holds (see the module notes);
 * throws a one-line error naming `config.json` or the folder and what to do.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { prepareRunFolder } from "./run_folder.ts";
 *
 * const out = await Deno.makeTempDir();
 * await prepareRunFolder({ out, config: { preset: "tiny" }, record: { backend: "cpu-js" } });
 * const saved = JSON.parse(await Deno.readTextFile(`${out}/config.json`));
 * assert.equal(saved.preset, "tiny");
 * assert.equal(saved.backend, "cpu-js");
 * await assert.rejects(
 *   () => prepareRunFolder({ out, config: { preset: "tiny" }, record: {} }),
 *   /already holds a run; pass --resume to continue it or pick another --out/,
 * );
 * await Deno.remove(out, { recursive: true });
 * ```
 */
export async function prepareRunFolder(o: RunFolderOptions): Promise<void> {
  const path = `${o.out}/config.json`;
  let existing: string | null = null;
  try {
    existing = await Deno.readTextFile(path);
  } catch { /* a new run */ }
  if (existing !== null) {
    let prev: Record<string, unknown>;
    try {
      prev = JSON.parse(existing);
      if (typeof prev !== "object" || prev === null) throw new Error("not an object");
    } catch {
      throw new Error(`${path}: not valid JSON; delete the run folder or pick another --out`);
    }
    if (!o.rewrites?.(prev)) {
      if (!o.resume) {
        throw new Error(
          `${o.out} already holds a run; pass --resume to continue it or pick another --out`,
        );
      }
      const differs = Object.entries(o.config).find(([k, v]) =>
        JSON.stringify(prev[k] ?? null) !== JSON.stringify(v ?? null)
      );
      if (!differs) return;
      if (!(await o.onMismatch?.())) {
        const [k, v] = differs;
        // Where inside the field (e.g. which UNet setting), for a message that can name a flag.
        const d = firstDifference(prev, o.config) ?? { path: k, was: prev[k] ?? null, now: v };
        throw new Error(
          `${path}: ` +
            (typeof o.mismatchMessage === "function" ? o.mismatchMessage(d) : o.mismatchMessage ??
              `field "${k}" was ${JSON.stringify(prev[k] ?? null)}, now ${JSON.stringify(v)}; ` +
                "resume with the same flags or pick another --out"),
        );
      }
    }
  }
  await Deno.mkdir(o.out, { recursive: true });
  await writeJsonAtomic(path, { ...o.config, ...o.record, created: new Date().toISOString() });
}
