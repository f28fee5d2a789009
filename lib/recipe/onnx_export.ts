/**
 * Export a finished run folder to ONNX in the layout of Hugging Face Optimum's Stable Diffusion
 * exports, so the kit's models run through onnxruntime (and `loadOnnxPipeline`) like an SD
 * folder:
 *
 * ```
 * model_index.json              written last: a folder without it is an unfinished export;
 *                               diffusers' OnnxStableDiffusionPipeline reads it (model_index.ts)
 * text_encoder/model.onnx       input_ids -> last_hidden_state, pooler_output, text_embeds
 *                               (+ encoder_hidden_states, the UNet's context, for runs trained
 *                               with textContext tokens or states+tokens)
 * text_encoder/config.json
 * unet/model.onnx               sample, timestep, encoder_hidden_states -> out_sample (NCHW)
 * unet/config.json              diffusers UNet2DConditionModel keys (sample_size, in_channels, ...)
 * vae_encoder/model.onnx        sample -> latent_parameters (mean, logvar)
 * vae_encoder/config.json
 * vae_decoder/model.onnx        latent_sample -> sample
 * vae_decoder/config.json       AutoencoderKL keys, with the latent scaling_factor
 * image_encoder/model.onnx      pixel_values -> image_embeds (the kit's CLIP image tower, for eval)
 * image_encoder/config.json
 * tokenizer/word_tokenizer.json the kit's word tokenizer (`_xgen_kit.tokenizer` names it)
 * tokenizer/tokenizer_config.json
 * scheduler/scheduler_config.json  diffusers keys, from the run's noise schedule
 * ```
 *
 * Real SD folders name `["transformers", "CLIPTokenizer"]` with `vocab.json` + `merges.txt`; the
 * kit's tokenizer is a word tokenizer, so its file gets its own name instead of `tokenizer.json`
 * (which Hugging Face tools would read as a fast-tokenizer file).
 *
 * `ensureOnnxExport(runDir)` keeps such an export inside the run folder (`<run>/onnx`, or
 * `<run>/onnx-ckpt-XXXXXXXX` for a UNet checkpoint) and redoes it only when the run's model files
 * changed: `model_index.json` records the size and SHA-256 of every source file the export read.
 *
 * @example
 * ```ts
 * import { ensureOnnxExport, exportRun } from "./onnx_export.ts";
 * import { loadOnnxPipeline } from "../onnx/sd_pipeline.ts";
 *
 * async function example() {
 *   await exportRun("runs/default", "exports/default");
 *   const pipe = await loadOnnxPipeline("exports/default");
 *   const dir = await ensureOnnxExport("runs/default"); // "runs/default/onnx", exported once
 * }
 * ```
 * @module
 */
import { type LoadedRun, loadRun, type LoadRunOptions } from "./generate.ts";
import { disposeParams } from "../nn/params.ts";
import { downsampleFactor } from "../models/autoencoder.ts";
import { toDiffusersConfig } from "../diffusion/diffusers_config.ts";
import { writeJsonAtomic } from "../util/atomic.ts";
import { confinedJoin } from "../util/confined_path.ts";
import { checkpointName } from "../train/checkpoint.ts";
import { saveOnnx } from "../onnx/writer.ts";
import { saveOnnxModel } from "../onnx/external_data.ts";
import { unetDiffusersConfig } from "./parts_export.ts";
import {
  exportAutoencoderDecoder,
  exportAutoencoderEncoder,
  exportClipImage,
  exportClipText,
  exportUnetGraph,
} from "../onnx/export_models.ts";
import { KIT_ONNX_FORMAT, KIT_TOKENIZER_FILE } from "../onnx/sd_folder.ts";
import { diffusersModelIndex } from "./model_index.ts";

/** Options of {@link exportRun} and {@link exportLoadedRun}. */
export interface ExportRunOptions {
  /** Export this UNet checkpoint's (EMA) weights instead of the finished model (as `loadRun`). */
  checkpoint?: LoadRunOptions["checkpoint"];
  /** Element type of the UNet's `timestep` input (default "float32"). */
  timestepDtype?: "float32" | "int64";
  /** Element type of the text encoder's `input_ids` (default "int32"). */
  idsDtype?: "int32" | "int64";
  /** Called with each file written (relative to the output folder). */
  onFile?: (relPath: string) => void;
  /**
   * Extra fields merged into `model_index.json`'s `_xgen_kit` object (`ensureOnnxExport` records
   * the source fingerprint there, so it lands in the file written last).
   */
  record?: Record<string, unknown>;
}

/** What {@link exportRun} wrote. */
export interface ExportRunResult {
  /** The output folder. */
  dir: string;
  /** Files written, relative to `dir`, in order (`model_index.json` last). */
  files: string[];
  /** Image side the run was trained at. */
  imageSize: number;
  /** Latent scaling factor (also in `vae_decoder/config.json`). */
  scalingFactor: number;
}

/**
 * Export a run folder (finished, or with `checkpoint` a UNet checkpoint) to `outDir`; the run's
 * weights are freed afterwards.
 *
 * @example
 * ```ts
 * async function example() {
 *   const res = await exportRun("runs/tiny", "exports/tiny");
 *   res.files; // ["text_encoder/model.onnx", ..., "model_index.json"]
 * }
 * ```
 */
export async function exportRun(
  runDir: string,
  outDir: string,
  opts: ExportRunOptions = {},
): Promise<ExportRunResult> {
  const run = await loadRun(runDir, { checkpoint: opts.checkpoint });
  try {
    return await exportLoadedRun(run, outDir, opts);
  } finally {
    disposeParams(run.ae.params);
    disposeParams(run.clip.params);
    disposeParams(run.unet.params);
  }
}

/**
 * Export an already loaded run (see `loadRun`) to `outDir`; the run stays usable.
 *
 * @example
 * ```ts
 * import { exportLoadedRun } from "./onnx_export.ts";
 * import { loadRun } from "./generate.ts";
 *
 * async function example() {
 *   const run = await loadRun("runs/tiny");
 *   await exportLoadedRun(run, "exports/tiny");
 * }
 * ```
 */
export async function exportLoadedRun(
  run: LoadedRun,
  outDir: string,
  opts: ExportRunOptions = {},
): Promise<ExportRunResult> {
  const files: string[] = [];
  const put = async (rel: string, data: Uint8Array | Record<string, unknown>) => {
    const path = `${outDir}/${rel}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    if (data instanceof Uint8Array) await saveOnnx(path, data);
    else await writeJsonAtomic(path, data);
    files.push(rel);
    opts.onFile?.(rel);
  };
  // A stale model_index.json would make a half-rewritten folder look complete.
  await Deno.remove(`${outDir}/model_index.json`).catch(() => {});

  const ae = run.ae, clip = run.clip, unet = run.unet;
  const f = downsampleFactor(ae.config);
  const latentSize = run.imageSize / f;
  const source = { source: run.dir };

  await put(
    "text_encoder/model.onnx",
    await exportClipText(clip.params, clip.config, {
      idsDtype: opts.idsDtype,
      unetContext: run.textContext,
      metadata: source,
    }),
  );
  await put("text_encoder/config.json", {
    architectures: ["XgenKitClipTextModel"],
    model_type: "xgen_kit_clip_text",
    vocab_size: clip.config.vocabSize,
    hidden_size: clip.config.textWidth,
    num_hidden_layers: clip.config.textLayers,
    num_attention_heads: clip.config.textHeads,
    max_position_embeddings: clip.config.contextLength,
    projection_dim: clip.config.embedDim,
    eos_token_id: clip.config.eosTokenId ?? 3,
    xgen_kit: { config: clip.config, textContext: run.textContext },
  });

  // The UNet alone can pass protobuf's 2 GiB (SD's is 3.4 GB): saveOnnxModel moves its weights
  // to unet/model.onnx_data then.
  const { graph, options } = await exportUnetGraph(unet.params, unet.config, {
    timestepDtype: opts.timestepDtype,
    metadata: source,
  });
  await Deno.mkdir(`${outDir}/unet`, { recursive: true });
  for (const rel of (await saveOnnxModel(`${outDir}/unet/model.onnx`, graph, options)).files) {
    files.push(`unet/${rel}`);
    opts.onFile?.(`unet/${rel}`);
  }
  await put("unet/config.json", unetDiffusersConfig(unet.config, latentSize));

  const vaeConfig = {
    _class_name: "AutoencoderKL",
    in_channels: ae.config.imageChannels,
    out_channels: ae.config.imageChannels,
    latent_channels: ae.config.latentChannels,
    block_out_channels: ae.config.blockChannels,
    layers_per_block: ae.config.layersPerBlock,
    norm_num_groups: ae.config.groupNormGroups,
    sample_size: run.imageSize,
    scaling_factor: ae.scalingFactor,
    xgen_kit: { config: ae.config },
  };
  await put(
    "vae_encoder/model.onnx",
    await exportAutoencoderEncoder(ae.params, ae.config, { metadata: source }),
  );
  await put("vae_encoder/config.json", vaeConfig);
  await put(
    "vae_decoder/model.onnx",
    await exportAutoencoderDecoder(ae.params, ae.config, { layout: "NCHW", metadata: source }),
  );
  await put("vae_decoder/config.json", vaeConfig);

  await put(
    "image_encoder/model.onnx",
    await exportClipImage(clip.params, clip.config, { metadata: source }),
  );
  await put("image_encoder/config.json", {
    architectures: ["XgenKitClipVisionModel"],
    model_type: "xgen_kit_clip_vision",
    image_size: clip.config.imageSize,
    projection_dim: clip.config.embedDim,
    pixel_range: [-1, 1],
    xgen_kit: { config: clip.config, textContext: run.textContext },
  });

  await put(`tokenizer/${KIT_TOKENIZER_FILE}`, { ...clip.tokenizer.toJSON() });
  await put("tokenizer/tokenizer_config.json", {
    tokenizer_class: "WordTokenizer",
    model_max_length: clip.tokenizer.contextLength,
    file: KIT_TOKENIZER_FILE,
  });

  const scheduler = toDiffusersConfig(run.schedule.config);
  await put("scheduler/scheduler_config.json", scheduler);

  // diffusers loads every ONNX part; the word tokenizer has no Python class (`[null, null]`),
  // so Python passes its own `tokenizer=` (see model_index.ts).
  await put(
    "model_index.json",
    diffusersModelIndex({
      scheduler: scheduler._class_name as string,
      tokenizer: "none",
      extra: {
        image_encoder: ["diffusers", "OnnxRuntimeModel"],
        _xgen_kit: {
          ...opts.record,
          format: KIT_ONNX_FORMAT,
          source: run.dir,
          imageSize: run.imageSize,
          scalingFactor: ae.scalingFactor,
          layout: "NCHW",
          tokenizer: "WordTokenizer",
        },
      },
    }),
  );
  return { dir: outDir, files, imageSize: run.imageSize, scalingFactor: ae.scalingFactor };
}

/** Options of {@link ensureOnnxExport}. */
export interface EnsureOnnxExportOptions {
  /**
   * Export this UNet checkpoint's (EMA) weights instead of the finished model (a step number or a
   * `ckpt-XXXXXXXX` name); the default folder is then `<run>/onnx-ckpt-XXXXXXXX`.
   */
  checkpoint?: LoadRunOptions["checkpoint"];
  /** Element type of the UNet's `timestep` input (default "float32"); a change re-exports. */
  timestepDtype?: ExportRunOptions["timestepDtype"];
  /** Element type of the text encoder's `input_ids` (default "int32"); a change re-exports. */
  idsDtype?: ExportRunOptions["idsDtype"];
  /** Export folder (default `<run>/onnx`, or `<run>/onnx-ckpt-XXXXXXXX` with `checkpoint`). */
  outDir?: string;
  /**
   * Runs before an export, never when the existing one is reused: the place to initialise the
   * TensorFlow.js backend the export loads the run with.
   */
  beforeExport?: () => unknown;
  /** Gets one line saying whether the export was reused or made, and why (default: none). */
  log?: (line: string) => void;
}

/** Size and SHA-256 of one source file; null when it is missing. */
type FilePrint = { size: number; sha256: string } | null;

/** What an export was made from, as recorded in `model_index.json` under `_xgen_kit.fingerprint`. */
interface ExportFingerprint {
  checkpoint: string | null;
  options: { timestepDtype: string; idsDtype: string };
  /** Source files relative to the run folder. */
  files: Record<string, FilePrint>;
}

/** Folders and files an export holds (what may be replaced without asking). */
const EXPORT_ENTRIES = new Set([
  "model_index.json",
  "text_encoder",
  "unet",
  "vae_encoder",
  "vae_decoder",
  "image_encoder",
  "tokenizer",
  "scheduler",
]);

async function pathExists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

function checkpointFolder(which: number | string): string {
  const name = typeof which === "number" ? checkpointName(which) : which;
  // The name becomes part of a folder path: accept only real checkpoint names.
  if (!/^ckpt-\d{8,}$/.test(name)) {
    throw new Error(
      `ensureOnnxExport: checkpoint must be a step number or a ckpt-XXXXXXXX name, got ${
        JSON.stringify(which)
      }`,
    );
  }
  return name;
}

/** The run files `loadRun` reads, relative to the run folder. */
function sourceFiles(checkpoint: string | null): string[] {
  // Weights before model.json: model.json records their SHA-256, so when weights change both
  // do, and the weights are the reason worth reporting.
  const files = [
    "autoencoder/model/model.safetensors",
    "autoencoder/model/model.json",
    "clip/model/model.safetensors",
    "clip/model/model.json",
    "clip/tokenizer.json",
  ];
  // A checkpoint's manifest holds the size and SHA-256 of each of its files, so hashing it
  // fingerprints them all without reading the optimizer state.
  if (checkpoint) files.push(`unet/${checkpoint}/manifest.json`);
  else files.push("unet/model/model.safetensors", "unet/model/model.json");
  return files;
}

async function filePrint(path: string): Promise<FilePrint> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new Error(`${path}: cannot read (${(e as Error).message})`);
  }
  const d = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  const sha256 = Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
  return { size: bytes.length, sha256 };
}

async function fingerprintRun(
  runDir: string,
  checkpoint: string | null,
  opts: EnsureOnnxExportOptions,
): Promise<ExportFingerprint> {
  const files: Record<string, FilePrint> = {};
  for (const rel of sourceFiles(checkpoint)) files[rel] = await filePrint(`${runDir}/${rel}`);
  return {
    checkpoint,
    options: { timestepDtype: opts.timestepDtype ?? "float32", idsDtype: opts.idsDtype ?? "int32" },
    files,
  };
}

/** Why the export in `out` does not match `want`, or null when it does. */
async function staleReason(out: string, want: ExportFingerprint): Promise<string | null> {
  if (!(await pathExists(out))) return "no export yet";
  let index: { _xgen_kit?: { format?: unknown; fingerprint?: ExportFingerprint; files?: unknown } };
  try {
    index = JSON.parse(await Deno.readTextFile(`${out}/model_index.json`));
  } catch (e) {
    return e instanceof Deno.errors.NotFound
      ? "unfinished export: no model_index.json"
      : "model_index.json is unreadable";
  }
  const kit = index?._xgen_kit;
  if (kit?.format !== KIT_ONNX_FORMAT) return `model_index.json is not a ${KIT_ONNX_FORMAT} export`;
  const have = kit.fingerprint;
  if (!have || typeof have !== "object" || typeof have.files !== "object") {
    return "model_index.json records no source fingerprint";
  }
  if (have.checkpoint !== want.checkpoint) return "made from another UNet";
  if (JSON.stringify(have.options) !== JSON.stringify(want.options)) {
    return "export options changed";
  }
  for (const [rel, p] of Object.entries(want.files)) {
    if (JSON.stringify(have.files[rel] ?? null) !== JSON.stringify(p)) {
      return p === null ? `${rel} is missing` : `${rel} changed`;
    }
  }
  // Parts deleted by hand make the folder unusable even though its sources did not change.
  const listed: unknown[] = Array.isArray(kit.files) ? kit.files : [];
  for (const [i, rel] of listed.entries()) {
    let path: string;
    try {
      // The list is data: an entry outside the export makes it stale, never a path to look at.
      path = confinedJoin(out, rel, { file: "model_index.json", field: `_xgen_kit.files[${i}]` });
    } catch (e) {
      return (e as Error).message;
    }
    if (!(await pathExists(path))) return `${rel} is missing`;
  }
  return null;
}

/** Whether `dir` may be replaced: empty, a kit export, or only an export's parts. */
async function replaceable(dir: string): Promise<boolean> {
  for await (const e of Deno.readDir(dir)) if (!EXPORT_ENTRIES.has(e.name)) return false;
  return true;
}

/** Remove temp folders of exports whose process is gone (Linux: no /proc/<pid>). */
async function removeDeadTemps(parent: string, prefix: string): Promise<void> {
  if (Deno.build.os !== "linux") return;
  for await (const e of Deno.readDir(parent)) {
    if (!e.isDirectory || !e.name.startsWith(prefix)) continue;
    const pid = Number(/^(\d+)-/.exec(e.name.slice(prefix.length))?.[1]);
    if (!pid || pid === Deno.pid || (await pathExists(`/proc/${pid}`))) continue;
    await Deno.remove(`${parent}/${e.name}`, { recursive: true }).catch(() => {});
  }
}

/** Put the finished export `tmp` in place of `out` (two renames when `out` exists). */
async function install(tmp: string, out: string): Promise<void> {
  let old: string | null = null;
  const st = await Deno.stat(out).catch(() => null);
  if (st) {
    if (!st.isDirectory || !(await replaceable(out))) {
      throw new Error(
        `${out}: exists and is not an ONNX export of the kit; remove it or pass another outDir`,
      );
    }
    // rename(2) cannot replace a non-empty folder: move the old one aside first.
    old = `${tmp}.old`;
    await Deno.rename(out, old);
  }
  await Deno.rename(tmp, out);
  // The new export is in place; a left-over old one is cleared by a later export's clean-up.
  if (old) await Deno.remove(old, { recursive: true }).catch(() => {});
}

/**
 * The ONNX export of a run folder, made on first use and redone only when it is missing,
 * unfinished, or stale: `model_index.json` (written last) records the size and SHA-256 of every
 * source file (the frozen models, the tokenizer, or the checkpoint's manifest) and the export
 * options, and a later call re-exports when any of them differ. The export is written into a
 * temporary sibling folder and renamed into place, so a killed export never leaves a folder
 * that looks finished. Returns the folder: `<run>/onnx`, or `<run>/onnx-ckpt-XXXXXXXX` for a
 * UNet checkpoint (its EMA weights, as `loadRun`).
 *
 * @example
 * ```ts
 * import { ensureOnnxExport } from "./onnx_export.ts";
 * import { loadOnnxPipeline } from "../onnx/sd_pipeline.ts";
 *
 * async function example() {
 *   const dir = await ensureOnnxExport("runs/default", { log: console.log });
 *   const pipe = await loadOnnxPipeline(dir);
 *   const ck = await ensureOnnxExport("runs/default", { checkpoint: 500 }); // ".../onnx-ckpt-00000500"
 * }
 * ```
 */
export async function ensureOnnxExport(
  runDir: string,
  opts: EnsureOnnxExportOptions = {},
): Promise<string> {
  // Same message as loadRun, so both engines of `deno task sample` fail alike.
  if (!(await pathExists(runDir))) throw new Error(`run folder ${runDir} does not exist`);
  const ckpt = opts.checkpoint === undefined ? null : checkpointFolder(opts.checkpoint);
  const out = (opts.outDir ?? `${runDir}/${ckpt ? `onnx-${ckpt}` : "onnx"}`).replace(/\/+$/, "");
  const want = await fingerprintRun(runDir, ckpt, opts);
  const reason = await staleReason(out, want);
  if (reason === null) {
    opts.log?.(`onnx: using ${out} (up to date with ${runDir})`);
    return out;
  }

  const cut = out.lastIndexOf("/");
  const parent = cut > 0 ? out.slice(0, cut) : cut === 0 ? "/" : ".";
  const prefix = `.${out.slice(cut + 1)}.tmp-`;
  await Deno.mkdir(parent, { recursive: true });
  await removeDeadTemps(parent, prefix);
  const tmp = `${parent}/${prefix}${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  opts.log?.(`onnx: exporting ${runDir}${ckpt ? ` (${ckpt})` : ""} to ${out} (${reason})`);
  const t0 = performance.now();
  try {
    await opts.beforeExport?.();
    // Filled while the parts are written; model_index.json comes last and so lists the others.
    const written: string[] = [];
    await exportRun(runDir, tmp, {
      checkpoint: opts.checkpoint,
      timestepDtype: opts.timestepDtype,
      idsDtype: opts.idsDtype,
      // Hashed before loading: a source changed during the export makes the next call redo it.
      record: { fingerprint: want, files: written },
      onFile: (rel) => written.push(rel),
    });
    try {
      await install(tmp, out);
    } catch (e) {
      // Another process may have installed the same export meanwhile: use it when it fits.
      if ((await staleReason(out, want)) !== null) throw e;
    }
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
  opts.log?.(`onnx: wrote ${out} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return out;
}
