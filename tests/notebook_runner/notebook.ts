/**
 * Minimal nbformat-4 types and builders used to generate and inspect notebooks in tests.
 *
 * @example
 * ```ts
 * const nb = makeNotebook([{ markdown: "# Demo" }, "console.log(1 + 1)"]);
 * await Deno.writeTextFile("/tmp/demo.ipynb", JSON.stringify(nb));
 * ```
 * @module
 */

/** One output of a code cell as nbformat 4 stores it. */
export interface NotebookOutput {
  output_type: "stream" | "display_data" | "execute_result" | "error";
  /** Stream name (`stdout` / `stderr`) for stream outputs. */
  name?: string;
  text?: string | string[];
  data?: Record<string, unknown>;
  metadata?: Record<string, unknown>;
  execution_count?: number | null;
  ename?: string;
  evalue?: string;
  traceback?: string[];
}

/** One notebook cell; `outputs` and `execution_count` exist on code cells only. */
export interface NotebookCell {
  id?: string;
  cell_type: "code" | "markdown" | "raw";
  source: string | string[];
  metadata: Record<string, unknown>;
  outputs?: NotebookOutput[];
  execution_count?: number | null;
}

/** An nbformat-4 notebook document. */
export interface Notebook {
  nbformat: number;
  nbformat_minor: number;
  metadata: Record<string, unknown>;
  cells: NotebookCell[];
}

/** A code cell's source, or `{ markdown }` for a markdown cell. */
export type CellSpec = string | { markdown: string };

/**
 * Build an nbformat 4.5 notebook for Deno's kernel from cell sources (ids `cell-0`, `cell-1`...).
 *
 * @example
 * ```ts
 * const nb = makeNotebook(["const x = 2;", { markdown: "## note" }, "x * 21"]);
 * nb.cells.length; // 3
 * ```
 */
export function makeNotebook(cells: CellSpec[]): Notebook {
  return {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {
      kernelspec: { name: "deno", display_name: "Deno", language: "typescript" },
      language_info: { name: "typescript", file_extension: ".ts" },
    },
    cells: cells.map((spec, i): NotebookCell =>
      typeof spec === "string"
        ? {
          id: `cell-${i}`,
          cell_type: "code",
          source: spec,
          metadata: {},
          outputs: [],
          execution_count: null,
        }
        : { id: `cell-${i}`, cell_type: "markdown", source: spec.markdown, metadata: {} }
    ),
  };
}

/**
 * Text of a multiline nbformat field (stored as a string or a list of lines).
 *
 * @example
 * ```ts
 * joinText(["a\n", "b"]); // "a\nb"
 * ```
 */
export function joinText(value: string | string[] | undefined): string {
  if (value === undefined) return "";
  return typeof value === "string" ? value : value.join("");
}

/**
 * All text a cell wrote to one stream (`stdout` by default), across its stream outputs.
 *
 * @example
 * ```ts
 * const lines = streamText(executed.cells[1]).split("\n");
 * ```
 */
export function streamText(cell: NotebookCell, name = "stdout"): string {
  return (cell.outputs ?? [])
    .filter((o) => o.output_type === "stream" && o.name === name)
    .map((o) => joinText(o.text))
    .join("");
}

/**
 * Parse and shape-check notebook JSON; `source` names the file in errors.
 *
 * @example
 * ```ts
 * const nb = parseNotebook(await Deno.readTextFile("notebooks/01_training.ipynb"), "01.ipynb");
 * ```
 */
export function parseNotebook(text: string, source: string): Notebook {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`${source}: expected notebook JSON: ${(e as Error).message}`);
  }
  const nb = value as Partial<Notebook> | null;
  if (nb === null || typeof nb !== "object" || nb.nbformat !== 4 || !Array.isArray(nb.cells)) {
    throw new Error(`${source}: expected an nbformat-4 notebook with a "cells" array`);
  }
  nb.cells.forEach((cell, i) => {
    if (!cell || !["code", "markdown", "raw"].includes(cell.cell_type)) {
      throw new Error(`${source}: cells[${i}].cell_type: expected code, markdown or raw`);
    }
  });
  return nb as Notebook;
}
