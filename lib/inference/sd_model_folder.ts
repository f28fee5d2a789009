/**
 * Checks of an ONNX Stable Diffusion folder (Hugging Face Optimum's layout) given to a command
 * by `--model DIR`, before anything is loaded: one line naming the folder, what it lacks and what
 * it must hold. `loadOnnxPipeline` (lib/onnx) then checks the models themselves.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkSdFolder } from "./sd_model_folder.ts";
 *
 * const dir = "tests/fixtures/tiny_sd/fp32_scalar_t"; // e.g. "sd15-onnx"
 * await checkSdFolder(dir); // throws unless it holds the models and tokenizer
 * await checkSdFolder(dir, { img2img: true }); // also vae_encoder/model.onnx
 * await assert.rejects(checkSdFolder("tests/fixtures"));
 * ```
 * @module
 */
import { hasClipBpeFiles } from "../models/clip_bpe_tokenizer.ts";
import { KIT_TOKENIZER_FILE } from "../onnx/sd_folder.ts";

/** Files every SD folder holds (`tokenizer/` is checked apart: it has several forms). */
const REQUIRED = [
  "text_encoder/model.onnx",
  "unet/model.onnx",
  "vae_decoder/model.onnx",
  "scheduler/scheduler_config.json",
] as const;
const ENCODER = "vae_encoder/model.onnx";
const TOKENIZER = `tokenizer/ (vocab.json + merges.txt, tokenizer.json or ${KIT_TOKENIZER_FILE})`;

/**
 * What an SD folder must hold, in words, for error messages.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sdFolderLayout } from "./sd_model_folder.ts";
 *
 * assert.match(sdFolderLayout(), /^text_encoder\/model\.onnx, unet\/model\.onnx/);
 * ```
 */
export function sdFolderLayout(o: { img2img?: boolean } = {}): string {
  return [...REQUIRED, ...(o.img2img ? [ENCODER] : []), TOKENIZER].join(", ") +
    " (Optimum's ONNX Stable Diffusion layout)";
}

const isFile = (p: string) => Deno.stat(p).then((s) => s.isFile, () => false);

/**
 * Throw one line unless `dir` is an ONNX Stable Diffusion folder: the text encoder, UNet, VAE
 * decoder, scheduler config and a tokenizer (and the VAE encoder with `img2img`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkSdFolder } from "./sd_model_folder.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await assert.rejects(checkSdFolder(dir), /missing text_encoder\/model\.onnx/);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function checkSdFolder(dir: string, o: { img2img?: boolean } = {}): Promise<void> {
  const st = await Deno.stat(dir).catch(() => null);
  if (!st?.isDirectory) {
    throw new Error(
      `${dir}: ${st ? "is not a folder" : "no such folder"}; an ONNX Stable Diffusion folder ` +
        `holds ${sdFolderLayout(o)}`,
    );
  }
  const missing: string[] = [];
  for (const f of [...REQUIRED, ...(o.img2img ? [ENCODER] : [])]) {
    if (!(await isFile(`${dir}/${f}`))) missing.push(f);
  }
  const tok = `${dir}/tokenizer`;
  if (!(await hasClipBpeFiles(tok)) && !(await isFile(`${tok}/${KIT_TOKENIZER_FILE}`))) {
    missing.push("tokenizer files");
  }
  if (missing.length) {
    throw new Error(
      `${dir}: not an ONNX Stable Diffusion folder (missing ${missing.join(", ")}); it must ` +
        `hold ${sdFolderLayout(o)}`,
    );
  }
}

/**
 * The image size an SD folder samples at, from its configs alone (no model loaded), by the rule
 * `loadOnnxPipeline` uses: `unet/config.json` `sample_size` times the VAE's scale factor
 * (`2^(len(block_out_channels) - 1)` of `vae_decoder/config.json`, else 8). Null when the config
 * does not say (the pipeline may still read it from a fixed UNet input).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sdFolderImageSize } from "./sd_model_folder.ts";
 *

 * // 64 px here; { width: 512, height: 512 } for "sd15-onnx".
 * const size = await sdFolderImageSize("tests/fixtures/tiny_sd/fp32_scalar_t");
 * assert.deepEqual(size, { width: 64, height: 64 });

 * ```
 */
export async function sdFolderImageSize(
  dir: string,
): Promise<{ width: number; height: number } | null> {
  const read = async (p: string): Promise<Record<string, unknown>> => {
    try {
      const v = JSON.parse(await Deno.readTextFile(`${dir}/${p}`));
      return v && typeof v === "object" ? v : {};
    } catch {
      return {};
    }
  };
  const unet = await read("unet/config.json"), vae = await read("vae_decoder/config.json");
  const pos = (v: unknown): v is number => Number.isInteger(v) && (v as number) > 0;
  const blocks = vae.block_out_channels;
  const scale = Array.isArray(blocks) && blocks.length > 0 ? 2 ** (blocks.length - 1) : 8;
  const s = unet.sample_size;
  if (pos(s)) return { width: s * scale, height: s * scale };
  if (Array.isArray(s) && s.length === 2 && s.every(pos)) {
    return { width: s[1] * scale, height: s[0] * scale };
  }
  return null;
}

/**
 * A folder's fingerprint for caches: every file's path, size and modification time (no
 * contents: an SD UNet is gigabytes), so a rewritten or replaced model gets a new one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { folderFingerprint } from "./sd_model_folder.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a.txt`, "1");
 * const a = await folderFingerprint(dir);
 * await Deno.writeTextFile(`${dir}/a.txt`, "12");
 * assert.notEqual(await folderFingerprint(dir), a);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function folderFingerprint(dir: string): Promise<string> {
  const lines: string[] = [];
  const walk = async (rel: string) => {
    const names: Deno.DirEntry[] = [];
    for await (const e of Deno.readDir(rel ? `${dir}/${rel}` : dir)) names.push(e);
    names.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of names) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) await walk(p);
      else {
        const s = await Deno.stat(`${dir}/${p}`);
        lines.push(`${p}\t${s.size}\t${s.mtime?.getTime() ?? 0}`);
      }
    }
  };
  await walk("");
  const h = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(lines.join("\n")));
  return Array.from(new Uint8Array(h), (b) => b.toString(16).padStart(2, "0")).join("");
}
