/**
 * End-to-end jobs chaining the steps below them: {@link trainRun} (`deno task train`) builds the
 * embedded data, trains the recipe's stages into a run folder, then leaves samples and
 * caption-following scores there.
 *
 * @example
 * ```ts
 * import { trainRun } from "./mod.ts";
 * import { resolvePreset } from "../recipe/mod.ts";
 *
 * async function example() {
 *   await trainRun({ out: "runs/tiny", preset: resolvePreset("tiny"), seed: 0, resume: true, backend: "cpu-blas" });
 * }
 * ```
 * @module
 */
export * from "./train_run.ts";
export * from "./train_parts.ts";
