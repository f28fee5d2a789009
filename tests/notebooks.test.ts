/**
 * Executes every `notebooks/*.ipynb` headless with Deno's Jupyter kernel (one test each) and
 * self-tests the notebook runner on generated notebooks: synchronous and asynchronous errors
 * must fail naming the cell, late outputs and MIME bundles must be kept.
 *
 * Executed notebooks are kept under `tests/.out/notebooks/` for inspection.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  type CellSpec,
  joinText,
  makeNotebook,
  type Notebook,
  type NotebookCell,
  notebookDepsMissing,
  parseNotebook,
  runNotebook,
  type RunNotebookOptions,
  type RunNotebookResult,
  streamText,
} from "./notebook_runner/mod.ts";
import { MAX_NOTEBOOK_BYTES } from "./notebook_runner/regenerate.ts";

const NOTEBOOK_DIR = fileURLToPath(new URL("../notebooks/", import.meta.url));
const OUT_DIR = fileURLToPath(new URL("./.out/notebooks/", import.meta.url));

const missing = notebookDepsMissing();
if (missing !== null) console.warn(`notebooks.test.ts: skipping notebook tests: ${missing}`);

/** Sorted `*.ipynb` names in notebooks/ (none when the folder does not exist). */
function listNotebooks(): string[] {
  try {
    return [...Deno.readDirSync(NOTEBOOK_DIR)]
      .filter((e) => e.isFile && e.name.endsWith(".ipynb"))
      .map((e) => e.name)
      .sort();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

function codeCells(nb: Notebook): Array<[number, NotebookCell]> {
  return nb.cells.flatMap((c, i): Array<[number, NotebookCell]> =>
    c.cell_type === "code" ? [[i, c]] : []
  );
}

function describe(r: RunNotebookResult): string {
  return `exit ${r.code}\n--- stderr ---\n${r.stderr}\n--- stdout ---\n${r.stdout}`;
}

for (const name of listNotebooks()) {
  Deno.test({
    name: `notebook ${name} executes without errors`,
    ignore: missing !== null,
    fn: async () => {
      await Deno.mkdir(OUT_DIR, { recursive: true });
      const output = `${OUT_DIR}${name}`;
      const r = await runNotebook({ notebook: `${NOTEBOOK_DIR}${name}`, output });
      assert.equal(r.code, 0, `${name}: ${describe(r)}`);
      assert.ok(r.executed, `${name}: runner wrote no executed notebook to ${output}`);
      const source = parseNotebook(await Deno.readTextFile(`${NOTEBOOK_DIR}${name}`), name);
      assert.equal(r.executed.cells.length, source.cells.length, `${name}: cell count changed`);
      for (const [i, cell] of codeCells(r.executed)) {
        assert.equal(typeof cell.execution_count, "number", `${name}: cell ${i} did not execute`);
        const errors = (cell.outputs ?? []).filter((o) => o.output_type === "error");
        assert.deepEqual(errors, [], `${name}: cell ${i} has error outputs`);
      }
    },
  });
}

for (const name of listNotebooks()) {
  // Not ignored without Jupyter: this checks the committed file, not an execution.
  Deno.test(`notebook ${name} is committed small, with outputs and no inlined plotly.js`, async () => {
    const text = await Deno.readTextFile(`${NOTEBOOK_DIR}${name}`);
    const bytes = new TextEncoder().encode(text).length;
    assert.ok(bytes <= MAX_NOTEBOOK_BYTES, `${name}: ${bytes} bytes, over ${MAX_NOTEBOOK_BYTES}`);
    const nb = parseNotebook(text, name);
    const outputs = codeCells(nb).flatMap(([, c]) => c.outputs ?? []);
    assert.ok(outputs.length > 0, `${name}: no outputs; run \`deno task notebooks\``);
    for (const o of outputs) {
      const data = o.data ?? {};
      assert.ok(
        !/Plotly\.newPlot|plotly\.js v/.test(joinText(data["text/html"] as string ?? "")),
        `${name}: a figure carries plotly.js or needs scripts`,
      );
      if ("application/vnd.plotly.v1+json" in data) {
        assert.ok("image/svg+xml" in data, `${name}: a Plotly figure without a static fallback`);
      }
    }
  });
}

/** Write `cells` as a notebook into a fresh temp dir, run it, clean up, return the result. */
async function runCells(
  cells: CellSpec[],
  opts: Partial<RunNotebookOptions> = {},
): Promise<RunNotebookResult & { input: string }> {
  const dir = await Deno.makeTempDir({ prefix: "xgen-nb-test-" });
  try {
    const notebook = `${dir}/t.ipynb`;
    const input = JSON.stringify(makeNotebook(cells), null, 1);
    await Deno.writeTextFile(notebook, input);
    const r = await runNotebook({ notebook, output: `${dir}/out/t.ipynb`, ...opts });
    // The user's notebook must be left exactly as it was (no injected cells, no outputs).
    assert.equal(await Deno.readTextFile(notebook), input, "input notebook was modified");
    return { ...r, input };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function selfTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name: `notebook runner: ${name}`, ignore: missing !== null, fn });
}

selfTest("runs every code cell in order, keeps markdown, injects nothing", async () => {
  const r = await runCells([
    { markdown: "# title" },
    "const a = 6 * 7;\nconsole.log(`a=${a}`);",
    "a + 1",
    { markdown: "end" },
  ]);
  assert.equal(r.code, 0, describe(r));
  const nb = r.executed!;
  assert.deepEqual(nb.cells.map((c) => c.cell_type), ["markdown", "code", "code", "markdown"]);
  assert.equal(joinText(nb.cells[0].source), "# title");
  // State flows between cells and each cell's output lands in that cell.
  assert.equal(streamText(nb.cells[1]), "a=42\n");
  const result = nb.cells[2].outputs!.find((o) => o.output_type === "execute_result");
  assert.equal(joinText(result?.data?.["text/plain"] as string | string[]), "43");
  // Execution counts start at 1 and increase: the hidden setup/check requests take none.
  assert.deepEqual(codeCells(nb).map(([, c]) => c.execution_count), [1, 2]);
  assert.ok(!JSON.stringify(nb).includes("__xgenNotebookAsyncErrors"), "hidden code leaked");
});

selfTest("a synchronous throw fails naming the cell and stops the run", async () => {
  const r = await runCells(["1", { markdown: "m" }, 'throw new Error("boom-sync")', "3"]);
  assert.equal(r.code, 1, describe(r));
  assert.match(r.stderr, /cell 2 failed: Error: boom-sync/);
  const nb = r.executed!;
  const err = nb.cells[2].outputs!.find((o) => o.output_type === "error");
  assert.equal(err?.evalue, "boom-sync");
  assert.equal(nb.cells[3].execution_count, null, "cell after the failure must not run");
});

selfTest("an error thrown in a timer fails naming the cell", async () => {
  const r = await runCells([
    "1",
    'setTimeout(() => { throw new Error("late-timer") }, 10);\n"scheduled"',
    "3",
  ]);
  assert.equal(r.code, 1, describe(r));
  assert.match(r.stderr, /cell 1 failed: AsyncError: .*late-timer/);
  const err = r.executed!.cells[1].outputs!.find((o) => o.output_type === "error");
  assert.match(err?.evalue ?? "", /uncaught error: Error: late-timer/);
  assert.equal(r.executed!.cells[2].execution_count, null);
});

selfTest("an unawaited rejected promise fails naming the cell", async () => {
  const r = await runCells(["1", "2", 'Promise.reject(new Error("never-awaited"));\n"x"']);
  assert.equal(r.code, 1, describe(r));
  assert.match(r.stderr, /cell 2 failed: AsyncError: .*unhandled promise rejection.*never-awaited/);
});

selfTest("a late asynchronous error in the last cell is caught by the final check", async () => {
  // 200 ms is beyond the per-cell wait (50 ms) but within the final wait (500 ms).
  const r = await runCells([
    "1",
    'setTimeout(() => Promise.reject(new Error("after-last")), 200);\n"x"',
  ]);
  assert.equal(r.code, 1, describe(r));
  assert.match(r.stderr, /cell 1 failed: AsyncError: .*after-last/);
});

selfTest("many outputs right before the cell ends are all kept (3 runs)", async () => {
  const lines = 200;
  for (let run = 0; run < 3; run++) {
    const r = await runCells([
      `for (let i = 0; i < ${lines}; i++) console.log("line " + i);\n` +
      'Deno.jupyter.display({ "text/plain": "tail-display" }, { raw: true });',
    ]);
    assert.equal(r.code, 0, describe(r));
    const cell = r.executed!.cells[0];
    const expected = Array.from({ length: lines }, (_, i) => `line ${i}\n`).join("");
    assert.equal(streamText(cell), expected, `run ${run}: stdout lines lost or reordered`);
    const display = cell.outputs!.filter((o) => o.output_type === "display_data");
    assert.deepEqual(display.map((o) => joinText(o.data?.["text/plain"] as string)), [
      "tail-display",
    ], `run ${run}: display output lost`);
  }
});

selfTest("a raw Plotly MIME bundle with HTML fallback is saved as is", async () => {
  const figure = {
    data: [{ x: [1, 2, 3], y: [4, 1, 9], type: "scatter" }],
    layout: { title: "t" },
  };
  const r = await runCells([
    `Deno.jupyter.display({
  "application/vnd.plotly.v1+json": ${JSON.stringify(figure)},
  "text/html": "<div id='fig'>fallback</div>",
}, { raw: true });`,
  ]);
  assert.equal(r.code, 0, describe(r));
  const display = r.executed!.cells[0].outputs!.filter((o) => o.output_type === "display_data");
  assert.equal(display.length, 1);
  assert.deepEqual(display[0].data?.["application/vnd.plotly.v1+json"], figure);
  assert.equal(joinText(display[0].data?.["text/html"] as string), "<div id='fig'>fallback</div>");
});

selfTest("a cell over the per-cell timeout fails naming the cell", async () => {
  const r = await runCells(["1", "await new Promise((r) => setTimeout(r, 20000));"], {
    cellTimeoutS: 1,
  });
  assert.equal(r.code, 1, describe(r));
  assert.match(r.stderr, /cell 1 failed: timed out/);
});

selfTest("a missing or malformed notebook is a usage error naming the file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "xgen-nb-test-" });
  try {
    const r = await runNotebook({ notebook: `${dir}/nope.ipynb`, output: `${dir}/o.ipynb` });
    assert.equal(r.code, 2, describe(r));
    assert.match(r.stderr, /nope\.ipynb: expected a readable nbformat-4 notebook/);
    assert.equal(r.executed, null);
    await Deno.writeTextFile(`${dir}/bad.ipynb`, '{"cells": 3}');
    const bad = await runNotebook({ notebook: `${dir}/bad.ipynb`, output: `${dir}/o.ipynb` });
    assert.equal(bad.code, 2, describe(bad));
    assert.match(bad.stderr, /bad\.ipynb: expected a readable nbformat-4 notebook/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

selfTest("a kernel that exits mid-run fails naming the cell", async () => {
  const r = await runCells(["1", "Deno.exit(3);", "2"]);
  assert.equal(r.code, 1, describe(r));
  assert.match(r.stderr, /cell 1 failed: kernel died/);
  assert.equal(r.executed!.cells[2].execution_count, null);
});
