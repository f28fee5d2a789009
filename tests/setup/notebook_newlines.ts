/**
 * End every notebook cell's source with a newline, so `deno fmt --check` passes on a fresh
 * machine and not only where Deno's formatting cache already knows the file.
 *
 * Deno 2.9's notebook formatter formats each cell as a file, which gains a final newline, and
 * strips it again when it writes the cell back. A cell without a final newline therefore always
 * counts as "not formatted" to `--check`, while `deno fmt` rewrites the same bytes and records the
 * file as formatted in its cache, so the failure shows up only where that cache is empty (CI).
 * A final newline changes nothing a cell means; `deno task fmt` runs this after `deno fmt`.
 *
 * @example
 * ```sh
 * deno run --allow-read --allow-write tests/setup/notebook_newlines.ts        # fix notebooks/
 * deno run --allow-read tests/setup/notebook_newlines.ts --check              # exit 1 if needed
 * deno run --allow-read --allow-write tests/setup/notebook_newlines.ts a.ipynb # given files
 * ```
 * @module
 */

/** One notebook cell, as far as this script reads it. */
interface Cell {
  cell_type: string;
  source: string | string[];
}

/**
 * The notebook text with every non-empty cell ending in a newline, and how many cells changed.
 * Keeps the nbformat layout Jupyter writes (1-space indent, key order, a final newline); throws
 * when the file is not in that layout, rather than reformatting it wholesale.
 *
 * @example
 * ```ts
 * const nb = { cells: [{ cell_type: "code", source: ["x;"] }] };
 * endCellsWithNewline(JSON.stringify(nb, null, 1) + "\n").changed; // 1
 * ```
 */
export function endCellsWithNewline(text: string): { text: string; changed: number } {
  const nb = JSON.parse(text) as { cells?: Cell[] };
  if (JSON.stringify(nb, null, 1) + "\n" !== text) {
    throw new Error("not in nbformat's layout (JSON with a 1-space indent and a final newline)");
  }
  let changed = 0;
  for (const cell of nb.cells ?? []) {
    const src = cell.source;
    if (typeof src === "string") {
      if (src !== "" && !src.endsWith("\n")) {
        cell.source = `${src}\n`;
        changed++;
      }
    } else if (src.length && !src[src.length - 1].endsWith("\n")) {
      src[src.length - 1] += "\n";
      changed++;
    }
  }
  return { text: changed ? JSON.stringify(nb, null, 1) + "\n" : text, changed };
}

async function notebooksIn(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.endsWith(".ipynb")) out.push(`${dir}/${e.name}`);
  }
  return out.sort();
}

async function main(args: string[]): Promise<number> {
  const check = args.includes("--check");
  const files = args.filter((a) => a !== "--check");
  const root = new URL("../..", import.meta.url).pathname;
  const paths = files.length ? files : await notebooksIn(`${root}notebooks`);
  let bad = 0;
  for (const path of paths) {
    const text = await Deno.readTextFile(path);
    const r = endCellsWithNewline(text);
    if (r.changed === 0) continue;
    if (check) {
      console.error(
        `${path}: ${r.changed} cell(s) do not end with a newline; deno fmt --check fails on them ` +
          "on a fresh machine. Run `deno task fmt`.",
      );
      bad++;
    } else {
      await Deno.writeTextFile(path, r.text);
      console.log(`${path}: ended ${r.changed} cell(s) with a newline`);
    }
  }
  return bad ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
