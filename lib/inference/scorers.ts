/**
 * {@link Scorer}s for rejection sampling (`bestOfN`), built from this folder's ONNX helper models:
 *
 * - `clip`: the run's own CLIP (its ONNX export's `text_encoder/` + `image_encoder/`, kit
 *   conventions), CLIP score `100 * cos(text, image)`. Unclamped, unlike the evaluation's CLIP
 *   score (`max(cos, 0)`): clamping would make every negative candidate tie at 0.
 * - `pickscore:DIR`: PickScore-style CLIP towers fine-tuned on human preferences, OpenAI
 *   conventions (BPE tokenizer, CLIP preprocessing), `logitScale * cos` (100 by default).
 * - `aesthetic:DIR`: an aesthetic MLP head on the L2-normalised CLIP image embedding (the LAION
 *   predictor on ViT-L/14); the prompt is not used.
 *
 * A folder holds the files in {@link SCORER_FOLDER_FILES}; {@link checkScorerFolder} names the
 * missing ones before anything is loaded.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkScorerFolder, loadScorer, parseScorerSpec } from "./scorers.ts";
 *
 * // Tiny seeded towers; e.g. "pickscore:models/pickscore" for PickScore's export.
 * const spec = parseScorerSpec("pickscore:tests/fixtures/tiny_clip_towers");
 * await checkScorerFolder(spec);
 * const scorer = await loadScorer(spec, { executionProviders: ["cpu"] });
 * const red = { data: new Uint8Array(768).map((_, k) => k % 3 ? 0 : 255), width: 16, height: 16 };
 * const scores = await scorer.score("a red circle", [red]); // Float32Array
 * assert.equal(Math.round(scores[0]), 49);
 * await scorer.release();
 * ```
 * @module
 */
import { type ClipTowers, loadClipTowers, loadKitClipTowers } from "./clip_towers.ts";
import {
  type AestheticScorer,
  aestheticScorer,
  type PreferenceModel,
  preferenceModel,
} from "./preference.ts";
import type { ModelSessionOptions } from "../onnx/io_check.ts";
import type { RgbImage } from "../plot/mod.ts";
import type { Scorer } from "./best_of_n.ts";

/**
 * A scorer holding sessions; call {@link LoadedScorer.release} when done.
 */
export interface LoadedScorer extends Scorer {
  /** Free the sessions it opened. */
  release(): Promise<void>;
}

/**
 * Which scorer, as `--scorer` names it.
 */
export type ScorerSpec =
  | { kind: "clip" }
  | { kind: "pickscore"; dir: string }
  | { kind: "aesthetic"; dir: string };

/**
 * Files a scorer folder must hold, with what each is.
 *
 * @example
 * ```ts
 * SCORER_FOLDER_FILES.pickscore.map(([f]) => f); // ["text_model.onnx", "vision_model.onnx", ...]
 * ```
 */
export const SCORER_FOLDER_FILES: Readonly<
  Record<"pickscore" | "aesthetic", readonly (readonly [string, string])[]>
> = (() => {
  const towers = [
    ["text_model.onnx", "CLIP text tower, input_ids -> text_embeds"],
    ["vision_model.onnx", "CLIP image tower, pixel_values -> image_embeds"],
    ["vocab.json", "CLIP BPE tokenizer; or tokenizer.json"],
    ["merges.txt", "CLIP BPE tokenizer; or tokenizer.json"],
  ] as const;
  return {
    pickscore: towers,
    aesthetic: [...towers, ["aesthetic_head.onnx", "MLP head, [batch, dim] -> [batch, 1]"]],
  };
})();

const SPEC_FORMS = "clip, pickscore:DIR or aesthetic:DIR";

/**
 * Parse a scorer name: `clip`, `pickscore:DIR` or `aesthetic:DIR` (trailing slashes dropped).
 *
 * @example
 * ```ts
 * parseScorerSpec("aesthetic:models/laion/"); // { kind: "aesthetic", dir: "models/laion" }
 * ```
 */
export function parseScorerSpec(text: string): ScorerSpec {
  if (text === "clip") return { kind: "clip" };
  const m = /^([a-z]+):(.*)$/.exec(text);
  if (m && (m[1] === "pickscore" || m[1] === "aesthetic")) {
    // Keep "/" itself; strip only slashes after a name so "dir/" and "dir" are one folder.
    const dir = m[2].length > 1 ? m[2].replace(/\/+$/, "") : m[2];
    if (dir === "") throw new Error(`scorer "${text}" names no folder; write ${m[1]}:DIR`);
    return { kind: m[1], dir };
  }
  if (m && m[1] === "clip") {
    throw new Error(`scorer "${text}": clip is the run's own CLIP and takes no folder`);
  }
  throw new Error(`scorer must be ${SPEC_FORMS}, got "${text}"`);
}

/**
 * The string {@link parseScorerSpec} reads back.
 *
 * @example
 * ```ts
 * formatScorerSpec({ kind: "pickscore", dir: "pick" }); // "pickscore:pick"
 * ```
 */
export function formatScorerSpec(spec: ScorerSpec): string {
  return spec.kind === "clip" ? "clip" : `${spec.kind}:${spec.dir}`;
}

function folderLayout(kind: "pickscore" | "aesthetic"): string {
  return `${kind === "aesthetic" ? "an" : "a"} ${kind} folder holds ` +
    SCORER_FOLDER_FILES[kind].map(([f, what]) => `${f} (${what})`).join(", ");
}

/**
 * Throw one line naming the folder and the files it lacks (nothing to check for `clip`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkScorerFolder } from "./scorers.ts";
 *
 * await checkScorerFolder({ kind: "aesthetic", dir: "tests/fixtures/tiny_clip_towers" }); // ok
 * await assert.rejects(
 *   checkScorerFolder({ kind: "pickscore", dir: "nope" }),
 *   /^Error: nope: folder does not exist; a pickscore folder holds text_model.onnx \(/,
 * );
 * ```
 */
export async function checkScorerFolder(spec: ScorerSpec): Promise<void> {
  if (spec.kind === "clip") return;
  const st = await Deno.stat(spec.dir).catch(() => null);
  if (!st?.isDirectory) {
    const what = st ? "is not a folder" : "folder does not exist";
    throw new Error(`${spec.dir}: ${what}; ${folderLayout(spec.kind)}`);
  }
  const missing: string[] = [];
  const isFile = (f: string) => Deno.stat(`${spec.dir}/${f}`).then((s) => s.isFile, () => false);
  // A tokenizer.json (CLIPTokenizerFast) stands in for vocab.json + merges.txt.
  const fast = await isFile("tokenizer.json");
  for (const [f] of SCORER_FOLDER_FILES[spec.kind]) {
    if (fast && (f === "vocab.json" || f === "merges.txt")) continue;
    if (!(await isFile(f))) missing.push(f);
  }
  if (missing.length) {
    throw new Error(`${spec.dir}: missing ${missing.join(", ")}; ${folderLayout(spec.kind)}`);
  }
}

/** `logitScale * cos(prompt, image)` per image, as float32. */
async function cosScores(
  model: PreferenceModel,
  prompt: string,
  images: readonly RgbImage[],
): Promise<Float32Array> {
  return Float32Array.from(await model.score(prompt, images));
}

/**
 * CLIP score, `100 * cos(text, image)` (unclamped), over loaded towers; named "clip".
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clipScoreScorer } from "./scorers.ts";
 * import { loadClipTowers } from "./clip_towers.ts";
 *
 * // Usually the run's own CLIP: loadKitClipTowers("runs/default/onnx").
 * const dir = "tests/fixtures/tiny_clip_towers"; // tiny seeded towers
 * const towers = await loadClipTowers({
 *   textModel: `${dir}/text_model.onnx`,
 *   imageModel: `${dir}/vision_model.onnx`,
 *   tokenizerDir: dir,
 *   executionProviders: ["cpu"],
 * });
 * const s = clipScoreScorer(towers);
 * const gray = { data: new Uint8Array(768).fill(128), width: 16, height: 16 };
 * const scores = await s.score("a red circle", [gray]);
 * assert.deepEqual([s.name, Math.round(scores[0])], ["clip", -63]); // negative: unclamped
 * await towers.release();
 * ```
 */
export function clipScoreScorer(towers: ClipTowers): Scorer {
  const model = preferenceModel(towers, { logitScale: 100 });
  return { name: "clip", score: (prompt, images) => cosScores(model, prompt, images) };
}

/**
 * PickScore, `logitScale * cos(text, image)`, over loaded preference towers; named "pickscore".
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pickScoreScorer } from "./scorers.ts";
 * import { loadClipTowers } from "./clip_towers.ts";
 * import { preferenceModel } from "./preference.ts";
 *
 * const dir = "tests/fixtures/tiny_clip_towers"; // tiny seeded towers
 * const towers = await loadClipTowers({
 *   textModel: `${dir}/text_model.onnx`,
 *   imageModel: `${dir}/vision_model.onnx`,
 *   tokenizerDir: dir,
 *   executionProviders: ["cpu"],
 * });
 * const s = pickScoreScorer(preferenceModel(towers, { logitScale: 50 }));
 * const gray = { data: new Uint8Array(768).fill(128), width: 16, height: 16 };
 * const scores = await s.score("a red circle", [gray]); // 50 * cos
 * assert.deepEqual([s.name, Math.round(scores[0])], ["pickscore", -32]);
 * await towers.release();
 * ```
 */
export function pickScoreScorer(model: PreferenceModel): Scorer {
  return { name: "pickscore", score: (prompt, images) => cosScores(model, prompt, images) };
}

/**
 * An aesthetic head as a scorer (the prompt is ignored); named "aesthetic".
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { aestheticHeadScorer } from "./scorers.ts";
 * import { loadClipTowers } from "./clip_towers.ts";
 * import { aestheticScorer } from "./preference.ts";
 *
 * const dir = "tests/fixtures/tiny_clip_towers"; // tiny seeded towers
 * const towers = await loadClipTowers({
 *   textModel: `${dir}/text_model.onnx`,
 *   imageModel: `${dir}/vision_model.onnx`,
 *   tokenizerDir: dir,
 *   executionProviders: ["cpu"],
 * });
 * const aes = await aestheticScorer(towers, {
 *   head: `${dir}/aesthetic_head.onnx`,
 *   executionProviders: ["cpu"],
 * });
 * const s = aestheticHeadScorer(aes);
 * const gray = { data: new Uint8Array(768).fill(128), width: 16, height: 16 };
 * const [a, b] = [await s.score("a cat", [gray]), await s.score("a dog", [gray])];
 * assert.deepEqual([s.name, a], ["aesthetic", b]); // the prompt is ignored
 * await aes.release();
 * await towers.release();
 * ```
 */
export function aestheticHeadScorer(aes: AestheticScorer): Scorer {
  return {
    name: "aesthetic",
    score: async (_prompt, images) => Float32Array.from(await aes.score(images)),
  };
}

/**
 * Options of {@link loadScorer}.
 */
export interface LoadScorerOptions extends ModelSessionOptions {
  /** The run's ONNX export (`ensureOnnxExport`), for `clip`. */
  exportDir?: string;
  /** PickScore's logit scale (default 100, PickScore's learnt value). */
  logitScale?: number;
}

/**
 * Load the scorer a spec names (folders are checked first, see {@link checkScorerFolder}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadScorer } from "./scorers.ts";
 *
 * // { kind: "clip" } takes the run's export: { exportDir: "runs/default/onnx" }.
 * const spec = { kind: "aesthetic", dir: "tests/fixtures/tiny_clip_towers" } as const;
 * const scorer = await loadScorer(spec, { threads: 1, executionProviders: ["cpu"] });
 * const gray = { data: new Uint8Array(768).fill(128), width: 16, height: 16 };
 * assert.equal((await scorer.score("", [gray]))[0].toFixed(2), "5.80");
 * await scorer.release();
 * ```
 */
export async function loadScorer(
  spec: ScorerSpec,
  opts: LoadScorerOptions = {},
): Promise<LoadedScorer> {
  const session: ModelSessionOptions = {
    threads: opts.threads,
    executionProviders: opts.executionProviders,
    log: opts.log,
  };
  if (spec.kind === "clip") {
    if (opts.exportDir === undefined) {
      throw new Error("loadScorer: the clip scorer needs exportDir (the run's ONNX export)");
    }
    const towers = await loadKitClipTowers(opts.exportDir, session);
    return { ...clipScoreScorer(towers), release: () => towers.release() };
  }
  await checkScorerFolder(spec);
  const towers = await loadClipTowers({
    ...session,
    textModel: `${spec.dir}/text_model.onnx`,
    imageModel: `${spec.dir}/vision_model.onnx`,
    tokenizerDir: spec.dir,
    convention: "openai",
    logitScale: opts.logitScale,
  });
  try {
    if (spec.kind === "pickscore") {
      return { ...pickScoreScorer(preferenceModel(towers)), release: () => towers.release() };
    }
    const aes = await aestheticScorer(towers, {
      ...session,
      head: `${spec.dir}/aesthetic_head.onnx`,
    });
    return {
      ...aestheticHeadScorer(aes),
      release: async () => {
        await aes.release();
        await towers.release();
      },
    };
  } catch (e) {
    await towers.release();
    throw e;
  }
}
