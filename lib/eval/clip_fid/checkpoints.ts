/**
 * Which UNet weights of a run an evaluation reads: the `--checkpoints` selector (`all`,
 * `latest`, or a list of steps and `final`) resolved against the run's complete checkpoints,
 * each with a fingerprint so retrained weights never reuse stale caches.
 *
 * @example
 * ```ts
 * import { parseCheckpointSelector, resolveCheckpoints } from "./checkpoints.ts";
 *
 * async function example() {
 *   const refs = await resolveCheckpoints("runs/default", parseCheckpointSelector("latest"));
 * }
 * ```
 * @module
 */
import { checkpointName, listCheckpoints } from "../../train/mod.ts";

/** Which UNet weights to evaluate. */
export type CheckpointSelector = "all" | "latest" | (number | "final")[];

/** One resolved UNet checkpoint (or the finished model, named "final"). */
export interface CheckpointRef {
  /** `ckpt-XXXXXXXX` or `final`. */
  name: string;
  /** Training step (null for the finished model). */
  step: number | null;
  /** Hash of the manifest / model.json, so retrained weights never reuse stale caches. */
  fingerprint: string;
}

/**
 * Lowercase hex SHA-256 of a string.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sha256Hex } from "./checkpoints.ts";
 *
 * assert.ok((await sha256Hex("abc")).startsWith("ba7816bf"));
 * ```
 */
export async function sha256Hex(s: string): Promise<string> {
  const h = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)));
  return Array.from(h, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function fileHash(path: string): Promise<string> {
  return await sha256Hex(await Deno.readTextFile(path));
}

/**
 * Parse a `--checkpoints` value: `all`, `latest`, or a comma list of steps and `final`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCheckpointSelector } from "./checkpoints.ts";
 *
 * assert.deepEqual(parseCheckpointSelector("1000,1500,final"), [1000, 1500, "final"]);
 * assert.equal(parseCheckpointSelector("latest"), "latest");
 * ```
 */
export function parseCheckpointSelector(s: string): CheckpointSelector {
  if (s === "all" || s === "latest") return s;
  const parts = s.split(",").map((x) => x.trim());
  return parts.map((p) => {
    if (p === "final") return "final" as const;
    if (!/^\d+$/.test(p)) {
      throw new Error(
        `checkpoints: expected all, latest or a comma list of steps (and "final"), got ${
          JSON.stringify(s)
        }`,
      );
    }
    return Number(p);
  });
}

/**
 * The step whose weights a run's finished UNet model holds, or null when unknown: its
 * `model.json`'s `extra.step` (recorded since the step was), or else the step of the newest
 * checkpoint when that checkpoint's `state.json` says it was the stage's last (training always
 * saves its last step, and the model is the EMA weights of that same state).
 */
async function finalStep(
  unet: string,
  modelJson: string,
  newest: { name: string; step: number } | undefined,
): Promise<number | null> {
  try {
    const step = JSON.parse(await Deno.readTextFile(modelJson))?.extra?.step;
    if (Number.isInteger(step)) return step;
  } catch { /* unreadable: no step */ }
  if (!newest) return null;
  try {
    const state = JSON.parse(await Deno.readTextFile(`${unet}/${newest.name}/state.json`));
    return state?.config?.settings?.steps === newest.step ? newest.step : null;
  } catch {
    return null;
  }
}

/**
 * The UNet checkpoints a selector names: `all` = every complete `unet/ckpt-*` plus the finished
 * model, `latest` = the finished model or else the newest complete checkpoint. The finished model
 * holds the same weights as the checkpoint of the stage's last step (both the EMA of that state),
 * so that checkpoint and `final` are listed once: `all` lists it as `ckpt-<step>` (a curve over
 * steps then ends at its step), and an explicit list keeps whichever of the two it names first.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveCheckpoints, sha256Hex } from "./checkpoints.ts";
 *
 * const run = await Deno.makeTempDir(); // a run with only a finished UNet model
 * await Deno.mkdir(`${run}/unet/model`, { recursive: true });
 * await Deno.writeTextFile(`${run}/unet/model/model.json`, "{}");
 * const refs = await resolveCheckpoints(run, "all");
 * assert.deepEqual(refs, [{ name: "final", step: null, fingerprint: await sha256Hex("{}") }]);
 * await assert.rejects(resolveCheckpoints(run, [1000]), /no complete checkpoint at step 1000/);
 * await Deno.remove(run, { recursive: true });
 * ```
 */
export async function resolveCheckpoints(
  runDir: string,
  sel: CheckpointSelector,
): Promise<CheckpointRef[]> {
  const unet = `${runDir}/unet`;
  const ckpts = (await listCheckpoints(unet, { verify: "manifest" }).catch(() => []))
    .filter((c) => c.complete);
  const modelJson = `${unet}/model/model.json`;
  const hasFinal = await Deno.stat(modelJson).then(() => true, () => false);
  const ref = async (step: number | "final"): Promise<CheckpointRef> => {
    if (step === "final") {
      if (!hasFinal) throw new Error(`${unet}/model: no finished UNet model`);
      return { name: "final", step: null, fingerprint: await fileHash(modelJson) };
    }
    const name = checkpointName(step);
    if (!ckpts.some((c) => c.name === name)) {
      const have = ckpts.map((c) => c.step).join(", ") || "none";
      throw new Error(`${unet}/${name}: no complete checkpoint at step ${step} (have: ${have})`);
    }
    return { name, step, fingerprint: await fileHash(`${unet}/${name}/manifest.json`) };
  };
  const same = hasFinal ? await finalStep(unet, modelJson, ckpts.at(-1)) : null;
  const sameAsFinal = (s: number | "final") =>
    same !== null && ckpts.some((c) => c.step === same) &&
    (s === "final" || s === same);
  let steps: (number | "final")[];
  if (sel === "all") {
    steps = [
      ...ckpts.map((c) => c.step),
      ...(hasFinal && !sameAsFinal("final") ? ["final" as const] : []),
    ];
  } else if (sel === "latest") {
    steps = hasFinal ? ["final"] : ckpts.length ? [ckpts[ckpts.length - 1].step] : [];
  } else {
    // One entry per distinct weights: a later name of the final model's step is dropped.
    steps = [];
    for (const s of new Set(sel)) {
      if (!(sameAsFinal(s) && steps.some(sameAsFinal))) steps.push(s);
    }
  }
  if (!steps.length) {
    throw new Error(`${unet}: no complete UNet checkpoint or finished model to evaluate`);
  }
  return await Promise.all(steps.map(ref));
}
