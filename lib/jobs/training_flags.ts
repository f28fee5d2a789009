/**
 * The UNet training options `deno task train` takes as flags (`--prediction`, `--grad-accum`,
 * `--checkpoint-every`, `--keep`, `--keep-at`, `--unet-engine`, `--precision`) as they sit in a run's `config.json`, so a resume
 * with another value is refused with a message naming the flag rather than a settings path.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { flagChange } from "./training_flags.ts";
 *
 * const d = { path: "preset.unet.gradAccum", was: null, now: 4 };
 * assert.equal(flagChange(d, "preset.unet."), "--grad-accum 1, now 4");
 * ```
 * @module
 */
import type { ConfigDifference } from "./run_folder.ts";

/** A setting's flag and what an absent (null) recorded value means. */
interface FlagOfSetting {
  flag: string;
  absent: string;
}

/** UNet settings paths (under the job's prefix) and their flags. */
const UNET_SETTING_FLAGS: Record<string, FlagOfSetting> = {
  "schedule.predictionType": { flag: "--prediction", absent: "epsilon" },
  gradAccum: { flag: "--grad-accum", absent: "1" },
  checkpointEvery: { flag: "--checkpoint-every", absent: "the preset's" },
  keep: { flag: "--keep", absent: "2" },
  keepAt: { flag: "--keep-at", absent: "none" },
  steps: { flag: "--steps", absent: "the preset's" },
  batchSize: { flag: "--batch-size", absent: "the preset's" },
  lr: { flag: "--lr", absent: "the preset's" },
  textContext: { flag: "--text-context", absent: "states" },
  captionDropout: { flag: "--caption-dropout", absent: "the preset's" },
};

/** Run-level config.json fields (outside the preset) that a flag sets. */
const RUN_SETTING_FLAGS: Record<string, FlagOfSetting> = {
  unetEngine: { flag: "--unet-engine", absent: "tfjs" },
  unetPrecision: { flag: "--precision", absent: "f32" },
};

function shown(v: unknown, absent: string): string {
  if (v === null || v === undefined) return absent;
  return Array.isArray(v) ? v.join(",") : String(v);
}

/**
 * `"<flag> <recorded>, now <new>"` when a config difference is one of the UNet settings a flag
 * sets (`path` is `prefix` + the setting), or null for any other difference.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { flagChange } from "./training_flags.ts";
 *
 * const d = { path: "unet.keepAt", was: [500, 1000], now: null };
 * assert.equal(flagChange(d, "unet."), "--keep-at 500,1000, now none");
 * assert.equal(flagChange({ path: "seed", was: 0, now: 1 }, "unet."), null);
 * const e = { path: "unetEngine", was: "compiled", now: null };
 * assert.equal(flagChange(e, "unet."), "--unet-engine compiled, now tfjs");
 * const p = { path: "unetPrecision", was: null, now: "mixed" };
 * assert.equal(flagChange(p, "unet."), "--precision f32, now mixed");
 * ```
 */
export function flagChange(d: ConfigDifference, prefix: string): string | null {
  const run = RUN_SETTING_FLAGS[d.path];
  if (run) return `${run.flag} ${shown(d.was, run.absent)}, now ${shown(d.now, run.absent)}`;
  if (!d.path.startsWith(prefix)) return null;
  const f = UNET_SETTING_FLAGS[d.path.slice(prefix.length)];
  return f ? `${f.flag} ${shown(d.was, f.absent)}, now ${shown(d.now, f.absent)}` : null;
}
