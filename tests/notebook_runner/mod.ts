/**
 * Headless notebook execution for the test suite: a Python runner (`run_notebook.py`) that
 * drives Deno's Jupyter kernel robustly (late outputs, asynchronous errors), its Deno wrapper,
 * and nbformat helpers.
 *
 * @example
 * ```ts
 * import { makeNotebook, runNotebook } from "./mod.ts";
 * await Deno.writeTextFile("/tmp/a.ipynb", JSON.stringify(makeNotebook(["1 + 1"])));
 * const r = await runNotebook({ notebook: "/tmp/a.ipynb", output: "/tmp/a.out.ipynb" });
 * ```
 * @module
 */

export {
  type CellSpec,
  joinText,
  makeNotebook,
  type Notebook,
  type NotebookCell,
  type NotebookOutput,
  parseNotebook,
  streamText,
} from "./notebook.ts";
export {
  DEFAULT_PYTHON,
  notebookDepsMissing,
  RUNNER_SCRIPT,
  runNotebook,
  type RunNotebookOptions,
  type RunNotebookResult,
} from "./run_notebook.ts";
