/**
 * The study's step cache: each step's result is one JSON file, `<dir>/steps/<name>.json`,
 * written atomically when the step finishes and holding the settings it ran with. A killed study
 * run continues with the finished steps read back; a step whose settings changed is refused
 * (so a report never mixes sizes), unless the caller starts a fresh folder.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { studyStep } from "./report_steps.ts";
 *
 * const dir = await Deno.makeTempDir();
 * let calls = 0;
 * const run = () => studyStep(dir, "sum", { n: 3 }, () => Promise.resolve(++calls + 2));
 * assert.deepEqual([await run(), await run(), calls], [3, 3, 1]); // the second is read back
 * await assert.rejects(
 *   studyStep(dir, "sum", { n: 4 }, () => Promise.resolve(0)),
 *   /steps\/sum\.json was made with other settings/,
 * );
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */
import { writeJsonAtomic } from "../util/atomic.ts";

/** What a step file holds. */
interface StepFile<T> {
  step: string;
  settings: unknown;
  seconds: number;
  result: T;
}

/** Options of {@link studyStep}. */
export interface StudyStepOptions {
  /** Status lines (default none). */
  log?: (line: string) => void;
}

/**
 * Run `fn` once for (`name`, `settings`) in `dir`, or read back its finished result. Results
 * must be plain JSON (numbers, strings, arrays, objects).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { studyStep } from "./report_steps.ts";
 *
 * const dir = await Deno.makeTempDir();
 * assert.deepEqual(await studyStep(dir, "two", {}, () => Promise.resolve({ x: 2 })), { x: 2 });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function studyStep<T>(
  dir: string,
  name: string,
  settings: unknown,
  fn: () => Promise<T>,
  opts: StudyStepOptions = {},
): Promise<T> {
  if (!/^[a-z0-9_]+$/.test(name)) {
    throw new Error(`studyStep: name must be lower-case letters, digits and _, got "${name}"`);
  }
  const path = `${dir}/steps/${name}.json`;
  let text: string | null = null;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const want = JSON.stringify(settings);
  if (text !== null) {
    let saved: StepFile<T>;
    try {
      saved = JSON.parse(text);
    } catch {
      throw new Error(`${path}: not valid JSON; delete it to rerun the step`);
    }
    if (JSON.stringify(saved.settings) !== want) {
      throw new Error(
        `${path} was made with other settings (${JSON.stringify(saved.settings)}); ` +
          `pick another --out or delete it`,
      );
    }
    opts.log?.(`== ${name}: done before (${saved.seconds.toFixed(1)} s), read back`);
    return saved.result;
  }
  opts.log?.(`== ${name}`);
  const t0 = performance.now();
  const result = await fn();
  const seconds = (performance.now() - t0) / 1000;
  await Deno.mkdir(`${dir}/steps`, { recursive: true });
  const file: StepFile<T> = { step: name, settings, seconds, result };
  await writeJsonAtomic(path, file);
  opts.log?.(`   ${name}: ${seconds.toFixed(1)} s`);
  return result;
}

/** An RGB image as plain JSON: its size and its bytes in base64. */
export interface JsonImage {
  width: number;
  height: number;
  rgbBase64: string;
}

/**
 * An RGB image as {@link JsonImage}, for step results.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { imageFromJson, imageToJson } from "./report_steps.ts";
 *
 * const im = { data: Uint8Array.of(1, 2, 3, 4, 5, 6), width: 2, height: 1 };
 * assert.deepEqual(imageFromJson(imageToJson(im)), im);
 * ```
 */
export function imageToJson(im: { data: Uint8Array; width: number; height: number }): JsonImage {
  let s = "";
  for (let i = 0; i < im.data.length; i += 0x8000) {
    s += String.fromCharCode(...im.data.subarray(i, i + 0x8000));
  }
  return { width: im.width, height: im.height, rgbBase64: btoa(s) };
}

/**
 * The image back from {@link imageToJson}; a wrong byte count is an error.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { imageFromJson } from "./report_steps.ts";
 *
 * assert.throws(() => imageFromJson({ width: 2, height: 2, rgbBase64: "" }), /0 bytes for 2x2 RGB/);
 * ```
 */
export function imageFromJson(j: JsonImage): { data: Uint8Array; width: number; height: number } {
  const bin = atob(j.rgbBase64);
  const data = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  if (data.length !== j.width * j.height * 3) {
    throw new Error(
      `image: ${data.length} bytes for ${j.width}x${j.height} RGB, expected ${
        j.width * j.height * 3
      }`,
    );
  }
  return { data, width: j.width, height: j.height };
}
