/**
 * `deno task notebooks`: execute notebooks headless with the test suite's runner and write each
 * one back in place with its outputs, so the committed files show their plots and images on a
 * code host. One runner both tests and regenerates, so a committed output is what the tests saw.
 *
 * A notebook is replaced only when every cell ran; a failure leaves the committed file as it was
 * and keeps the executed copy under `tests/.out/notebooks/` for inspection. The written file is
 * in Jupyter's layout (1-space JSON indent, final newline) with every cell source ending in a
 * newline, which is what `deno fmt --check` accepts.
 *
 * The notebooks cache their tiny runs in `runs/notebook_*`; those folders are removed first so the
 * committed outputs show real training (progress, timings) rather than a cache hit. `--reuse-runs`
 * keeps them (faster, for checking text changes).
 *
 * @example
 * ```sh
 * deno task notebooks                              # every notebooks/*.ipynb
 * deno task notebooks notebooks/02_clip_fid.ipynb  # just these
 * deno task notebooks --reuse-runs                 # keep the cached runs/notebook_* folders
 * ```
 * @module
 */

import { fileURLToPath } from "node:url";
import { notebookDepsMissing, runNotebook } from "./run_notebook.ts";
import { endCellsWithNewline } from "../setup/notebook_newlines.ts";

/** Committed notebooks above this size fail `tests/notebooks.test.ts`. */
export const MAX_NOTEBOOK_BYTES = 1_500_000;

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/**
 * The executed notebook as it is committed: re-serialised by JSON.stringify (Python's json writes
 * floats such as `1e-05` differently, which the newline fixer's layout check would refuse), then
 * every cell ending in a newline.
 *
 * @example
 * ```ts
 * committedText('{"cells": []}'); // '{\n "cells": []\n}\n'
 * ```
 */
export function committedText(executed: string): string {
  return endCellsWithNewline(JSON.stringify(JSON.parse(executed), null, 1) + "\n").text;
}

async function main(args: string[]): Promise<number> {
  const missing = notebookDepsMissing();
  if (missing !== null) {
    console.error(`notebooks: cannot run notebooks here: ${missing}`);
    return 2;
  }
  const reuseRuns = args.includes("--reuse-runs");
  args = args.filter((a) => a !== "--reuse-runs");
  if (!reuseRuns) {
    const entries = (() => {
      try {
        return [...Deno.readDirSync(`${ROOT}runs`)];
      } catch {
        return []; // no runs/ yet: nothing cached
      }
    })();
    for (const e of entries) {
      if (e.isDirectory && e.name.startsWith("notebook_")) {
        await Deno.remove(`${ROOT}runs/${e.name}`, { recursive: true });
      }
    }
  }
  const paths = args.length ? args : [...Deno.readDirSync(`${ROOT}notebooks`)]
    .filter((e) => e.isFile && e.name.endsWith(".ipynb"))
    .map((e) => `${ROOT}notebooks/${e.name}`)
    .sort();
  const outDir = `${ROOT}tests/.out/notebooks`;
  await Deno.mkdir(outDir, { recursive: true });
  let failed = 0;
  for (const path of paths) {
    const name = path.split("/").at(-1)!;
    const t0 = performance.now();
    const output = `${outDir}/${name}`;
    const r = await runNotebook({ notebook: path, output });
    const s = ((performance.now() - t0) / 1000).toFixed(0);
    if (r.code !== 0 || r.executed === null) {
      console.error(`notebooks: ${name} FAILED after ${s} s (left unchanged; see ${output})`);
      console.error(r.stderr.trim());
      failed++;
      continue;
    }
    const text = committedText(await Deno.readTextFile(output));
    // Temp file + rename: an interrupted regeneration never leaves a half-written notebook.
    const tmp = `${path}.tmp-${Deno.pid}`;
    await Deno.writeTextFile(tmp, text);
    await Deno.rename(tmp, path);
    const bytes = new TextEncoder().encode(text).length;
    const warn = bytes > MAX_NOTEBOOK_BYTES ? ` (over the ${MAX_NOTEBOOK_BYTES} byte limit)` : "";
    console.log(`notebooks: ${name} ok in ${s} s, ${(bytes / 1024).toFixed(0)} KiB${warn}`);
  }
  return failed ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
