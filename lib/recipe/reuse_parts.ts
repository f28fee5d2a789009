/**
 * Reuse the frozen parts of a finished run, as the study reused Stable Diffusion's VAE and CLIP:
 * a new run gets copies of another run's autoencoder and CLIP (with its tokenizer), so its
 * pipeline skips those stages and trains only the UNet. Copies, not links: the new run stays
 * self-contained (export, sampling and evaluation read only its own folder), and the source can be
 * deleted or retrained without changing it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reuseFrozenParts } from "./reuse_parts.ts";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { saveModel } from "./model_files.ts";
 *
 * // A finished run's frozen parts (toy weights): autoencoder/model, clip/model, clip/tokenizer.json.
 * const from = await Deno.makeTempDir(); // e.g. "runs/default"
 * for (const kind of ["autoencoder", "clip"]) {
 *   await saveModel(`${from}/${kind}/model`, { kind, config: {}, params: { w: tf.ones([2]) } });
 * }
 * await Deno.writeTextFile(`${from}/clip/tokenizer.json`, "{}");
 * const out = await Deno.makeTempDir(); // e.g. "runs/gpu-unet"
 * await reuseFrozenParts(from, out); // then trainRun({ out, ... }) trains only the UNet
 * assert.deepEqual(Array.from(Deno.readDirSync(out), (e) => e.name).sort(), ["autoencoder", "clip"]);
 * await Promise.all([from, out].map((d) => Deno.remove(d, { recursive: true })));
 * ```
 * @module
 */
import { hasModel, type ModelFiles, readModelFiles } from "./model_files.ts";
import { tempPathFor, writeFileAtomic, writeJsonAtomic } from "../util/atomic.ts";
import { sha256Hex } from "../util/file_digest.ts";

/** The stage folders copied and the files besides `model/` each needs. */
const PARTS = [
  { stage: "autoencoder", kind: "autoencoder", files: [] as string[] },
  { stage: "clip", kind: "clip", files: ["tokenizer.json"] },
];

/**
 * Copy `from`'s frozen autoencoder and CLIP into `out` (stage folders `model/` plus the CLIP's
 * tokenizer). A part `out` already holds complete is left alone, so calling this again on resume
 * is free. Each part is copied under a temporary name and renamed into place, so a kill mid-copy
 * leaves no half model that the pipeline would take for finished.
 * Only `model.json` and the weights it names are copied, after checking the weights against their
 * recorded SHA-256; a source saved before hashes were recorded gets one in the copy.
 * Throws, naming the folder or file, when `from` lacks a finished part or holds a damaged one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hasModel } from "./model_files.ts";
 * import { reuseFrozenParts } from "./reuse_parts.ts";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { saveModel } from "./model_files.ts";
 *
 * // A finished run's frozen parts (toy weights): autoencoder/model, clip/model, clip/tokenizer.json.
 * const from = await Deno.makeTempDir(); // e.g. "runs/default"
 * for (const kind of ["autoencoder", "clip"]) {
 *   await saveModel(`${from}/${kind}/model`, { kind, config: {}, params: { w: tf.ones([2]) } });
 * }
 * await Deno.writeTextFile(`${from}/clip/tokenizer.json`, "{}");
 * const out = await Deno.makeTempDir(); // e.g. "runs/gpu-unet"
 * await reuseFrozenParts(from, out);
 * assert.ok(await hasModel(`${out}/clip/model`, "clip"));
 * assert.equal(await Deno.readTextFile(`${out}/clip/tokenizer.json`), "{}");
 * await Promise.all([from, out].map((d) => Deno.remove(d, { recursive: true })));
 * ```
 */
export async function reuseFrozenParts(from: string, out: string): Promise<void> {
  for (const p of PARTS) {
    const src = `${from}/${p.stage}`, dst = `${out}/${p.stage}`;
    if (await hasModel(`${dst}/model`, p.kind)) continue;
    const model = await readPart(from, p);
    await Deno.mkdir(dst, { recursive: true });
    for (const f of p.files) await copyAtomic(`${src}/${f}`, `${dst}/${f}`);
    const tmp = tempPathFor(`${dst}/model`);
    await Deno.mkdir(tmp);
    await writeFileAtomic(`${tmp}/${model.info.weights}`, model.weights);
    if (model.info.weightsSha256) await writeFileAtomic(`${tmp}/model.json`, model.json);
    else {
      await writeJsonAtomic(`${tmp}/model.json`, {
        ...model.info,
        weightsSha256: await sha256Hex(model.weights),
      });
    }
    await Deno.remove(`${dst}/model`, { recursive: true }).catch(() => {});
    await Deno.rename(tmp, `${dst}/model`);
  }
}

/**
 * Throw, naming the folder or file, unless `from` holds every part {@link reuseFrozenParts}
 * copies, intact (weights matching their recorded SHA-256); a pipeline checks this before it
 * creates the new run folder.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { assertReusable } from "./reuse_parts.ts";
 *
 * const from = await Deno.makeTempDir(); // a run folder whose training never finished
 * await assert.rejects(assertReusable(from), /autoencoder\/model holds no finished autoencoder/);
 * await Deno.remove(from, { recursive: true });
 * ```
 */
export async function assertReusable(from: string): Promise<void> {
  for (const p of PARTS) await readPart(from, p);
}

/** A part's checked files, or an error naming the source run and what is wrong. */
async function readPart(from: string, p: (typeof PARTS)[number]): Promise<ModelFiles> {
  const src = `${from}/${p.stage}`;
  if (!(await hasModel(`${src}/model`, p.kind))) {
    throw new Error(
      `--reuse ${from}: ${src}/model holds no finished ${p.kind} (train that run to the end first)`,
    );
  }
  try {
    return await readModelFiles(`${src}/model`, p.kind);
  } catch (e) {
    throw new Error(`--reuse ${from}: ${(e as Error).message}`);
  }
}

async function copyAtomic(src: string, dst: string): Promise<void> {
  try {
    await Deno.stat(src);
  } catch {
    throw new Error(`--reuse: ${src} is missing (needed beside the frozen model)`);
  }
  const tmp = tempPathFor(dst);
  await Deno.copyFile(src, tmp);
  await Deno.rename(tmp, dst);
}
