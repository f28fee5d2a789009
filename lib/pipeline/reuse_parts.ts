/**
 * Reuse the frozen parts of a finished run, as the study reused Stable Diffusion's VAE and CLIP:
 * a new run gets copies of another run's autoencoder and CLIP (with its tokenizer), so its
 * pipeline skips those stages and trains only the UNet. Copies, not links: the new run stays
 * self-contained (export, sampling and evaluation read only its own folder), and the source can be
 * deleted or retrained without changing it.
 *
 * @example
 * ```ts
 * await reuseFrozenParts("runs/default", "runs/gpu-unet");
 * // then trainPipeline({ out: "runs/gpu-unet", ... }) trains only the UNet
 * ```
 * @module
 */
import { hasModel } from "./model_files.ts";

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
 * Throws, naming the folder, when `from` lacks a finished part.
 */
export async function reuseFrozenParts(from: string, out: string): Promise<void> {
  for (const p of PARTS) {
    const src = `${from}/${p.stage}`, dst = `${out}/${p.stage}`;
    if (await hasModel(`${dst}/model`, p.kind)) continue;
    await assertPart(from, p);
    await Deno.mkdir(dst, { recursive: true });
    for (const f of p.files) await copyAtomic(`${src}/${f}`, `${dst}/${f}`);
    const tmp = `${dst}/model.tmp-${crypto.randomUUID().slice(0, 8)}`;
    await Deno.mkdir(tmp);
    for await (const e of Deno.readDir(`${src}/model`)) {
      if (e.isFile) await Deno.copyFile(`${src}/model/${e.name}`, `${tmp}/${e.name}`);
    }
    await Deno.remove(`${dst}/model`, { recursive: true }).catch(() => {});
    await Deno.rename(tmp, `${dst}/model`);
  }
}

/**
 * Throw, naming the folder, unless `from` holds every part {@link reuseFrozenParts} copies; a
 * pipeline checks this before it creates the new run folder.
 *
 * @example
 * ```ts
 * await assertReusable("runs/default");
 * ```
 */
export async function assertReusable(from: string): Promise<void> {
  for (const p of PARTS) await assertPart(from, p);
}

async function assertPart(from: string, p: (typeof PARTS)[number]): Promise<void> {
  const src = `${from}/${p.stage}`;
  if (!(await hasModel(`${src}/model`, p.kind))) {
    throw new Error(
      `--reuse ${from}: ${src}/model holds no finished ${p.kind} (train that run to the end first)`,
    );
  }
}

async function copyAtomic(src: string, dst: string): Promise<void> {
  try {
    await Deno.stat(src);
  } catch {
    throw new Error(`--reuse: ${src} is missing (needed beside the frozen model)`);
  }
  const tmp = `${dst}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.copyFile(src, tmp);
  await Deno.rename(tmp, dst);
}
