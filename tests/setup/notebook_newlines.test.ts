/**
 * The notebooks pass `deno fmt --check` on a fresh machine (an empty Deno cache, as in CI), and
 * `notebook_newlines.ts` keeps them that way by ending every cell with a newline without changing
 * anything else.
 */
import assert from "node:assert/strict";
import { endCellsWithNewline } from "./notebook_newlines.ts";
import { withTempDir } from "../helpers/temp_dir.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

const nbText = (cells: unknown[]) =>
  JSON.stringify({ cells, metadata: {}, nbformat: 4, nbformat_minor: 5 }, null, 1) + "\n";

Deno.test("endCellsWithNewline ends each non-empty cell with a newline and nothing else", () => {
  const cells = [
    { cell_type: "code", execution_count: null, metadata: {}, outputs: [], source: ["a;\n", "b;"] },
    { cell_type: "markdown", metadata: {}, source: "# Title" },
    { cell_type: "code", execution_count: null, metadata: {}, outputs: [], source: ["done;\n"] },
    { cell_type: "code", execution_count: null, metadata: {}, outputs: [], source: [] },
    { cell_type: "markdown", metadata: {}, source: "" },
  ];
  const r = endCellsWithNewline(nbText(cells));
  assert.equal(r.changed, 2);
  const want = structuredClone(cells);
  want[0].source = ["a;\n", "b;\n"];
  want[1].source = "# Title\n";
  assert.equal(r.text, nbText(want));
  assert.deepEqual(endCellsWithNewline(r.text), { text: r.text, changed: 0 });
  assert.throws(() => endCellsWithNewline(JSON.stringify({ cells }, null, 2)), /nbformat's layout/);
});

Deno.test("the notebooks pass deno fmt --check with an empty Deno cache", async () => {
  const names = [...Deno.readDirSync(`${ROOT}notebooks`)]
    .filter((e) => e.name.endsWith(".ipynb"))
    .map((e) => `${ROOT}notebooks/${e.name}`);
  assert.ok(names.length > 0);
  for (const path of names) {
    const r = endCellsWithNewline(await Deno.readTextFile(path));
    assert.equal(r.changed, 0, `${path}: run \`deno task fmt\``);
  }
  await withTempDir("xgen_fmt_cache_", async (cache) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["fmt", "--check", ...names],
      cwd: ROOT,
      env: { DENO_DIR: cache, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  });
});
