/**
 * SD folders of a parts run's UNet checkpoints: a run trained on an SD folder's frozen parts
 * (`trainOnParts`) ends with one folder, `<run>/model`; a CLIP-FID curve per checkpoint needs one
 * per kept checkpoint. Each is the finished folder's parts (VAE, text encoder, tokenizer and the
 * scheduler with the run's prediction type) with the checkpoint's UNet (EMA weights when saved),
 * written by `exportPartsFolder`. A folder counts once its `model_index.json` (written last)
 * exists; an incomplete one is replaced.
 *
 * @example
 * ```ts
 * import { exportPartsCheckpoints } from "./parts_checkpoints.ts";
 *
 * async function example() { // a finished `deno task train --parts` run with kept checkpoints
 *   const folders = await exportPartsCheckpoints({ run: "runs/sd_parts", out: "runs/sd_parts/checkpoint_models" });
 *   console.log(folders.map((f) => `${f.step}: ${f.dir}`));
 * }
 * ```
 * @module
 */
import { listCheckpoints } from "../train/mod.ts";
import { disposeParams } from "../nn/mod.ts";
import { loadOnnxPipeline } from "../onnx/sd_pipeline.ts";
import { loadUnetCheckpoint } from "./generate.ts";
import { exportPartsFolder } from "./parts_export.ts";

/** Options of {@link exportPartsCheckpoints}. */
export interface ExportPartsCheckpointsOptions {
  /** The parts run (its `model/` finished, its checkpoints in `unet/ckpt-*`). */
  run: string;
  /** Where the folders go: `<out>/<ckpt-XXXXXXXX>`. */
  out: string;
  /** Only these steps (default: every complete checkpoint). */
  steps?: number[];
  /** Status lines (default none). */
  log?: (line: string) => void;
}

/** One checkpoint's SD folder. */
export interface CheckpointFolder {
  name: string;
  step: number;
  dir: string;
}

/**
 * Write (or find) the SD folder of every complete checkpoint of a parts run, in step order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { exportPartsCheckpoints } from "./parts_checkpoints.ts";
 *
 * await assert.rejects(
 *   () => exportPartsCheckpoints({ run: "/nonexistent/run", out: "/tmp/x" }),
 *   /\/nonexistent\/run\/model: expected the run's finished SD folder/,
 * );
 * ```
 */
export async function exportPartsCheckpoints(
  o: ExportPartsCheckpointsOptions,
): Promise<CheckpointFolder[]> {
  const model = `${o.run}/model`;
  if (!await Deno.stat(`${model}/model_index.json`).then(() => true, () => false)) {
    throw new Error(
      `${model}: expected the run's finished SD folder (model_index.json); finish the run first`,
    );
  }
  const config = JSON.parse(await Deno.readTextFile(`${o.run}/config.json`));
  const resolution = config?.config?.resolution ?? config?.resolution;
  if (!Number.isInteger(resolution)) {
    throw new Error(`${o.run}/config.json: field "resolution" missing (not a parts run?)`);
  }
  // The scale factor and timestep type the finished folder was exported with.
  const pipe = await loadOnnxPipeline(model);
  const vaeScaleFactor = pipe.vaeScaleFactor;
  const timestepDtype = pipe.io.unet.timestepDtype === "int64" ? "int64" : "float32";
  await pipe.release();
  const ckpts = (await listCheckpoints(`${o.run}/unet`, { verify: "manifest" }))
    .filter((c) => c.complete && (!o.steps || o.steps.includes(c.step)));
  const out: CheckpointFolder[] = [];
  for (const c of ckpts) {
    const dir = `${o.out}/${c.name}`;
    if (!await Deno.stat(`${dir}/model_index.json`).then(() => true, () => false)) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      const u = await loadUnetCheckpoint(o.run, c.name);
      try {
        await exportPartsFolder({
          parts: model,
          out: dir,
          unet: { params: u.params, config: u.info.config },
          resolution,
          vaeScaleFactor,
          timestepDtype,
          record: { run: o.run, checkpoint: c.name, step: c.step },
          // The finished folder's UNet records the original parts: so does each checkpoint's.
          trainedOn: config?.config?.parts ?? config?.parts,
        });
      } finally {
        disposeParams(u.params);
      }
      o.log?.(`   ${dir}: SD folder of step ${c.step}`);
    }
    out.push({ name: c.name, step: c.step, dir });
  }
  return out;
}
