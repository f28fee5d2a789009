/**
 * Prompt sets for the CLIP-score vs FID guidance sweep: prompts to generate from and, when the set
 * has them, the reference images the Frechet distance compares against.
 *
 * - `heldout` (the embedded default): captions and images of the shapes-world "heldout" split
 *   (colour/shape pairs never seen together in training), rendered at the run's resolution.
 * - `coco:<captions.json>:<images dir>`: captions in the official COCO `captions_*.json` format
 *   (`{images: [{id, file_name}], annotations: [{image_id, caption}]}`), a seeded sample of
 *   caption/image pairs, optionally prefixed the study's way ("A photograph of a man ...").
 *   Reference images are COCO's own `.jpg` files or PNGs (`image_files.ts`, format told
 *   by the bytes); a listed `.jpg` that is absent is looked for as a `.png` with the same base name
 *   (folders converted earlier). Corrupt images are skipped and recorded in `skipped`.
 * - `text:<file>`: one prompt per line, no reference images (FID then needs precomputed reference
 *   statistics).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { promptSetFromSpec } from "./prompt_sets.ts";
 *
 * const set = await promptSetFromSpec("heldout", { count: 64, seed: 0, size: 32 });
 * const first = await set.reference!(0); // RGB image of the first caption (null: skipped)
 * assert.deepEqual([set.prompts.length, first!.width, first!.data.length], [64, 32, 32 * 32 * 3]);
 * ```
 * @module
 */
import { newReadStats, readShards, shapesWorldSample } from "../../data/mod.ts";
import { squareCrop } from "../../image/square_crop.ts";
import { Rng, STREAM } from "../../util/rng.ts";
import type { RgbInput } from "./feature_extractors.ts";
import { readImageOrSkip, type SkippedImage } from "./image_files.ts";
import { parsePromptsTsv } from "../human/prompts.ts";

/** Prompts plus (optionally) one reference image per prompt, loaded lazily. */
export interface PromptSet {
  /** Kind of the set. */
  kind: "heldout" | "coco" | "text" | "parti" | "shards";
  /** The spec it came from, e.g. `coco:data/coco/captions_val2017.json:data/coco/val2017`. */
  spec: string;
  /** One-line description for reports. */
  description: string;
  /** The prompts, in generation order. */
  prompts: string[];
  /**
   * Reference image `i` (same index as `prompts[i]`), or null when the set has no images.
   * Images are read on demand so 30k references never sit in memory at once. A corrupt image
   * resolves to null and is added to {@link PromptSet.skipped}; FID then uses the others.
   */
  reference: ((i: number) => Promise<RgbInput | null>) | null;
  /** Identity of the reference images (file names, seeds), hashed into cache keys. */
  referenceIds: string[] | null;
  /** Reference images skipped as corrupt so far (path and reason), in the order met. */
  skipped: SkippedImage[];
}

/** Options shared by the prompt-set loaders. */
export interface PromptSetOptions {
  /** Number of prompts (pairs) to take. */
  count: number;
  /** Sampling seed (COCO pair sample; shapes-world scenes). */
  seed: number;
  /** Image side of the shapes-world references (the run's resolution). */
  size?: number;
  /** COCO only: prefix such as "A photograph of " (the caption's first letter is lower-cased). */
  prefix?: string;
}

/**
 * Held-out shapes-world captions with their images (`shapesWorldSample(i, {split: "heldout"})`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { heldoutPromptSet } from "./prompt_sets.ts";
 *
 * const set = heldoutPromptSet({ count: 8, seed: 0, size: 16 });
 * assert.deepEqual([set.kind, set.prompts.length, set.referenceIds!.length], ["heldout", 8, 8]);
 * ```
 */
export function heldoutPromptSet(o: PromptSetOptions): PromptSet {
  checkCount(o.count, "heldout");
  const size = o.size ?? 32;
  const samples = Array.from(
    { length: o.count },
    (_, i) => shapesWorldSample(i, { seed: o.seed, size, split: "heldout" }),
  );
  return {
    kind: "heldout",
    spec: "heldout",
    description: `${o.count} shapes-world held-out captions and images (seed ${o.seed}, ${size}px)`,
    prompts: samples.map((s) => s.caption),
    reference: (i) => {
      const s = samples[i];
      return Promise.resolve({ data: s.image, width: s.width, height: s.height });
    },
    referenceIds: samples.map((_, i) => `shapes-heldout:${o.seed}:${size}:${i}`),
    skipped: [],
  };
}

/**
 * Apply the study's prefix: `"A photograph of " + caption` with the caption's first letter
 * lower-cased and surrounding whitespace trimmed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { withPrefix } from "./prompt_sets.ts";
 *
 * assert.equal(withPrefix("A man riding a horse.", "A photograph of "), "A photograph of a man riding a horse.");
 * ```
 */
export function withPrefix(caption: string, prefix: string): string {
  const c = caption.trim();
  if (!prefix) return c;
  return prefix + c.charAt(0).toLowerCase() + c.slice(1);
}

/** A caption/image pair of a COCO captions file. */
export interface CocoPair {
  caption: string;
  imageId: number;
  fileName: string;
}

/**
 * Parse and validate a COCO captions file (`captions_val2017.json` format); errors name the file
 * and the field (`annotations[3].caption must be a string`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCocoCaptions } from "./prompt_sets.ts";
 *
 * const text = JSON.stringify({
 *   images: [{ id: 42, file_name: "000000000042.jpg" }],
 *   annotations: [{ image_id: 42, caption: "A dog on a couch." }],
 * });
 * const pairs = parseCocoCaptions(text, "captions_val2017.json");
 * assert.deepEqual(pairs, [{ caption: "A dog on a couch.", imageId: 42, fileName: "000000000042.jpg" }]);
 * assert.throws(() => parseCocoCaptions("{}", "c.json"), /c\.json: field "images" must be an array/);
 * ```
 */
export function parseCocoCaptions(text: string, source: string): CocoPair[] {
  const fail = (msg: string): never => {
    throw new Error(`COCO captions ${source}: ${msg}`);
  };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    fail(`not valid JSON (${(e as Error).message})`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    fail(`expected an object with "images" and "annotations" arrays`);
  }
  const d = doc as Record<string, unknown>;
  if (!Array.isArray(d.images)) fail(`field "images" must be an array of {id, file_name}`);
  if (!Array.isArray(d.annotations)) {
    fail(`field "annotations" must be an array of {image_id, caption}`);
  }
  const files = new Map<number, string>();
  (d.images as unknown[]).forEach((im, i) => {
    const r = im as Record<string, unknown>;
    if (typeof r !== "object" || r === null) fail(`images[${i}] must be an object`);
    if (!Number.isInteger(r.id)) fail(`images[${i}].id must be an integer, got ${show(r.id)}`);
    if (typeof r.file_name !== "string" || !r.file_name) {
      fail(`images[${i}].file_name must be a non-empty string, got ${show(r.file_name)}`);
    }
    files.set(r.id as number, r.file_name as string);
  });
  const pairs: CocoPair[] = [];
  (d.annotations as unknown[]).forEach((an, i) => {
    const r = an as Record<string, unknown>;
    if (typeof r !== "object" || r === null) fail(`annotations[${i}] must be an object`);
    if (!Number.isInteger(r.image_id)) {
      fail(`annotations[${i}].image_id must be an integer, got ${show(r.image_id)}`);
    }
    if (typeof r.caption !== "string" || !r.caption.trim()) {
      fail(`annotations[${i}].caption must be a non-empty string, got ${show(r.caption)}`);
    }
    const fileName = files.get(r.image_id as number);
    if (fileName === undefined) {
      fail(`annotations[${i}].image_id ${r.image_id} has no entry in "images"`);
    }
    pairs.push({
      caption: r.caption as string,
      imageId: r.image_id as number,
      fileName: fileName!,
    });
  });
  if (!pairs.length) fail(`"annotations" is empty`);
  return pairs;
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? "nothing" : s.length > 40 ? `${s.slice(0, 40)}...` : s;
}

function checkCount(count: number, what: string) {
  if (!Number.isInteger(count) || count < 1) {
    throw new Error(`${what} prompt set: count must be an integer >= 1, got ${count}`);
  }
}

/**
 * Read a reference image (PNG or JPEG, by content). A listed `.jpg`/`.jpeg` that does not exist is
 * looked for as a `.png` with the same base name (folders converted to PNG earlier). Corrupt files
 * resolve to null and are recorded in `skipped`; a file found under neither name throws.
 */
async function readReferenceImage(
  dir: string,
  fileName: string,
  skipped: SkippedImage[],
): Promise<RgbInput | null> {
  const path = `${dir}/${fileName}`;
  const png = path.replace(/\.jpe?g$/i, ".png");
  const exists = (p: string) => Deno.stat(p).then((st) => st.isFile, () => false);
  const used = png !== path && !(await exists(path)) && (await exists(png)) ? png : path;
  try {
    return await readImageOrSkip(used, skipped);
  } catch (e) {
    throw new Error(`COCO reference ${(e as Error).message}`);
  }
}

/**
 * A seeded sample of `count` caption/image pairs from a COCO captions file (stream
 * `[STREAM.eval, 6]`, Fisher-Yates over the annotations), with reference images from `imagesDir`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodePngRgb } from "../../data/png.ts";
 * import { cocoPromptSet } from "./prompt_sets.ts";
 *
 * const dir = await Deno.makeTempDir(); // captions file and an images folder, as COCO's
 * const caps = { images: [{ id: 1, file_name: "1.jpg" }], annotations: [{ image_id: 1, caption: "A red square." }] };
 * await Deno.writeTextFile(`${dir}/captions.json`, JSON.stringify(caps));
 * await Deno.writeFile(`${dir}/1.png`, encodePngRgb(new Uint8Array([255, 0, 0]), 1, 1)); // 1.jpg kept as PNG
 * const set = await cocoPromptSet(`${dir}/captions.json`, dir, { count: 1, seed: 0, prefix: "A photograph of " });
 * assert.deepEqual(set.prompts, ["A photograph of a red square."]);
 * assert.deepEqual(Array.from((await set.reference!(0))!.data), [255, 0, 0]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function cocoPromptSet(
  captionsPath: string,
  imagesDir: string,
  o: PromptSetOptions,
): Promise<PromptSet> {
  checkCount(o.count, "COCO");
  let text: string;
  try {
    text = await Deno.readTextFile(captionsPath);
  } catch (e) {
    throw new Error(`COCO captions ${captionsPath}: cannot be read (${(e as Error).message})`);
  }
  const all = parseCocoCaptions(text, captionsPath);
  if (o.count > all.length) {
    throw new Error(
      `COCO captions ${captionsPath}: ${o.count} pairs requested but the file has only ` +
        `${all.length} captions`,
    );
  }
  const st = await Deno.stat(imagesDir).catch(() => null);
  if (!st?.isDirectory) throw new Error(`COCO images folder ${imagesDir}: not a directory`);
  const order = Array.from({ length: all.length }, (_, i) => i);
  Rng.stream(o.seed, [STREAM.eval, 6]).shuffle(order);
  const picked = order.slice(0, o.count).map((i) => all[i]);
  const prefix = o.prefix ?? "";
  const skipped: SkippedImage[] = [];
  return {
    kind: "coco",
    spec: `coco:${captionsPath}:${imagesDir}`,
    description: `${o.count} COCO caption/image pairs from ${captionsPath} (seed ${o.seed}` +
      `${prefix ? `, prefix ${JSON.stringify(prefix)}` : ""})`,
    prompts: picked.map((p) => withPrefix(p.caption, prefix)),
    reference: (i) => readReferenceImage(imagesDir, picked[i].fileName, skipped),
    referenceIds: picked.map((p) => `${p.imageId}:${p.fileName}`),
    skipped,
  };
}

/**
 * Prompts from a text file, one per line (blank lines and lines starting with `#` skipped); the
 * set has no reference images. Fewer lines than `count` are cycled.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { textPromptSet } from "./prompt_sets.ts";
 *
 * const path = await Deno.makeTempFile({ suffix: ".txt" });
 * await Deno.writeTextFile(path, "# comment\na cat\na dog\n");
 * const set = await textPromptSet(path, { count: 3, seed: 0 }); // lines repeat to reach count
 * assert.deepEqual([set.prompts, set.reference], [["a cat", "a dog", "a cat"], null]);
 * await Deno.remove(path);
 * ```
 */
export async function textPromptSet(path: string, o: PromptSetOptions): Promise<PromptSet> {
  checkCount(o.count, "text");
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`prompt file ${path}: cannot be read (${(e as Error).message})`);
  }
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  if (!lines.length) throw new Error(`prompt file ${path}: no prompts (one per line expected)`);
  return {
    kind: "text",
    spec: `text:${path}`,
    description: `${o.count} prompts from ${path} (${lines.length} lines)`,
    prompts: Array.from({ length: o.count }, (_, i) => lines[i % lines.length]),
    reference: null,
    referenceIds: null,
    skipped: [],
  };
}

/** Row filter of a PartiPrompts set: keep rows whose Category / Challenge equal these. */
export interface PartiFilter {
  category?: string;
  challenge?: string;
}

/**
 * PartiPrompts (the TSV with columns Prompt, Category, Challenge, Note), optionally one category
 * or challenge; `count` prompts drawn without replacement with `seed` (cycled when the file has
 * fewer). No reference images: FID needs `--reference-stats`. Unreadable rows are skipped (the
 * human-evaluation loader's rules) and an empty selection is an error naming the filter.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { partiPromptSet } from "./prompt_sets.ts";
 *
 * const path = await Deno.makeTempFile({ suffix: ".tsv" });
 * const rows = ["a cat\tAnimals\tBasic\t", "a city\tPeople\tBasic\t", "a dog\tAnimals\tBasic\t"];
 * await Deno.writeTextFile(path, ["Prompt\tCategory\tChallenge\tNote", ...rows].join("\n") + "\n");
 * const set = await partiPromptSet(path, { count: 2, seed: 0 }, { category: "Animals" });
 * assert.deepEqual(set.prompts.toSorted(), ["a cat", "a dog"]);
 * await Deno.remove(path);
 * ```
 */
export async function partiPromptSet(
  path: string,
  o: PromptSetOptions,
  filter: PartiFilter = {},
): Promise<PromptSet> {
  checkCount(o.count, "parti");
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`PartiPrompts file ${path}: cannot be read (${(e as Error).message})`);
  }
  const list = parsePromptsTsv(text, path).prompts.filter((p) =>
    (filter.category === undefined || p.category === filter.category) &&
    (filter.challenge === undefined || p.challenge === filter.challenge)
  );
  const what = Object.entries(filter).map(([k, v]) => `${k}=${v}`).join(", ");
  if (!list.length) {
    throw new Error(`PartiPrompts file ${path}: no prompts${what ? ` with ${what}` : ""}`);
  }
  const order = Array.from({ length: list.length }, (_, i) => i);
  Rng.stream(o.seed, [STREAM.eval, 7]).shuffle(order);
  const query = what ? `?${what.replaceAll(", ", "&")}` : "";
  return {
    kind: "parti",
    spec: `parti:${path}${query}`,
    description: `${o.count} PartiPrompts from ${path}${what ? ` (${what})` : ""}, seed ${o.seed}`,
    prompts: Array.from({ length: o.count }, (_, i) => list[order[i % order.length]].prompt),
    reference: null,
    referenceIds: null,
    skipped: [],
  };
}

/**
 * Caption/image pairs from webdataset shards (a folder, `gs://` prefix or tar list; img2dataset's
 * layout): the first `count` records with a caption and a decodable image, in shard order,
 * resized on the shortest side and centre-cropped to `size` (Lanczos, as the latent cache
 * prepares training images). Corrupt records are skipped and counted by the reader, never fatal.
 * For a held-out FID reference give shards the run did not train on.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shardsPromptSet } from "./prompt_sets.ts";
 * import { buildShapesWorldShards } from "../../data/mod.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await buildShapesWorldShards({ outDir: dir, seed: 0, count: 4, perShard: 2, size: 32 });
 * const set = await shardsPromptSet(dir, { count: 3, seed: 0, size: 16 });
 * assert.deepEqual([set.kind, set.prompts.length, set.referenceIds!.length], ["shards", 3, 3]);
 * assert.equal((await set.reference!(2))!.width, 16);
 * await assert.rejects(() => shardsPromptSet(dir, { count: 9, seed: 0, size: 16 }), /4 usable records, 9 requested/);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function shardsPromptSet(
  data: string | readonly string[],
  o: PromptSetOptions,
): Promise<PromptSet> {
  checkCount(o.count, "shards");
  const size = o.size;
  if (!size) throw new Error("shards prompt set: the image size (the run's resolution) is needed");
  const stats = newReadStats();
  const prompts: string[] = [], ids: string[] = [];
  const images: RgbInput[] = [];
  for await (const r of readShards(data, { stats })) {
    if (!r.caption.trim() || r.image.length === 0) continue;
    prompts.push(r.caption.trim());
    ids.push(`${r.shardPath}:${r.key}`);
    images.push(
      squareCrop({ data: r.image, width: r.width, height: r.height }, { size, filter: "lanczos" }),
    );
    if (prompts.length === o.count) break;
  }
  const where = typeof data === "string" ? data : `${data.length} shards`;
  if (prompts.length < o.count) {
    throw new Error(
      `shards prompt set ${where}: ${prompts.length} usable records, ${o.count} requested`,
    );
  }
  return {
    kind: "shards",
    spec: `shards:${where}`,
    description: `${o.count} caption/image pairs from ${where} (first in shard order, ${size} px)`,
    prompts,
    reference: (i) => Promise.resolve(images[i]),
    referenceIds: ids,
    skipped: [],
  };
}

/**
 * Parse a `--prompts` spec: `heldout`, `coco:<captions.json>:<images dir>`, `text:<file>`,
 * `parti:<file.tsv>[?category=NAME&challenge=NAME]` or `shards:<folder | gs://prefix>`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePromptSpec } from "./prompt_sets.ts";
 *
 * const coco = parsePromptSpec("coco:a/captions.json:a/val2017");
 * assert.deepEqual(coco, { kind: "coco", captions: "a/captions.json", images: "a/val2017" });
 * assert.deepEqual(parsePromptSpec("parti:p.tsv?category=Animals"), { kind: "parti", path: "p.tsv", filter: { category: "Animals" } });
 * ```
 */
export function parsePromptSpec(
  spec: string,
):
  | { kind: "heldout" }
  | { kind: "coco"; captions: string; images: string }
  | { kind: "text"; path: string }
  | { kind: "parti"; path: string; filter: PartiFilter }
  | { kind: "shards"; data: string } {
  if (spec === "heldout") return { kind: "heldout" };
  if (spec.startsWith("shards:") && spec.length > 7) return { kind: "shards", data: spec.slice(7) };
  if (spec.startsWith("parti:") && spec.length > 6) {
    const [path, query] = spec.slice(6).split("?", 2);
    const filter: PartiFilter = {};
    for (const [k, v] of new URLSearchParams(query ?? "")) {
      if (k !== "category" && k !== "challenge") {
        throw new Error(`prompts: parti filter must be category= or challenge=, got ${k}=`);
      }
      filter[k] = v;
    }
    return { kind: "parti", path, filter };
  }
  if (spec.startsWith("text:") && spec.length > 5) return { kind: "text", path: spec.slice(5) };
  if (spec.startsWith("coco:")) {
    const rest = spec.slice(5);
    const k = rest.lastIndexOf(":");
    if (k > 0 && k < rest.length - 1) {
      return { kind: "coco", captions: rest.slice(0, k), images: rest.slice(k + 1) };
    }
  }
  throw new Error(
    `prompts: expected heldout, coco:PATH_TO_JSON:IMAGES_DIR, text:PATH, parti:PATH.tsv or ` +
      `shards:DIR, got ${JSON.stringify(spec)}`,
  );
}

/**
 * Load the prompt set named by a `--prompts` spec.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { promptSetFromSpec } from "./prompt_sets.ts";
 *
 * const set = await promptSetFromSpec("heldout", { count: 2, seed: 0, size: 16 });
 * assert.deepEqual([set.kind, set.prompts.length, set.referenceIds?.[1]], ["heldout", 2, "shapes-heldout:0:16:1"]);
 * assert.equal((await set.reference!(0))!.width, 16);
 * ```
 */
export function promptSetFromSpec(spec: string, o: PromptSetOptions): Promise<PromptSet> {
  const p = parsePromptSpec(spec);
  if (p.kind === "heldout") return Promise.resolve(heldoutPromptSet(o));
  if (p.kind === "coco") return cocoPromptSet(p.captions, p.images, o);
  if (p.kind === "parti") return partiPromptSet(p.path, o, p.filter);
  if (p.kind === "shards") return shardsPromptSet(p.data, o);
  return textPromptSet(p.path, o);
}
