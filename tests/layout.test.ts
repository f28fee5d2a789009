/**
 * The shape of `lib/`: every `import` / `export ... from` between its files is parsed and checked
 * against the layer table below, which ARCHITECTURE.md draws too (its "Layers" table must list the
 * same folders in the same layers):
 *
 * 1. no import cycle between files;
 * 2. a folder imports only folders of lower layers (files of one folder import each other freely;
 *    `lib/mod.ts` re-exports everything, and a folder's `mod.ts` may re-export its subfolders);
 * 3. no code comment in lib/, tests/ or bench/ cites an issue number.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

/**
 * Folders of lib/, bottom layer first. A folder may import any folder of a lower layer, never one
 * of its own layer or above. A folder not listed here fails the test: place it in a layer (here and
 * in ARCHITECTURE.md) when adding it.
 */
export const LAYERS: readonly (readonly string[])[] = [
  /* 0 */ ["util", "backend"],
  /* 1 */ ["plot", "storage", "data_parallel", "math", "nn", "setup"],
  /* 2 */ ["diffusion", "image", "models", "data", "train", "eval/human"],
  /* 3 */ ["onnx", "diffusers", "compiled"],
  /* 4 */ ["inference", "recipe"],
  /* 5 */ ["eval/clip_fid", "eval/caption_following", "study"],
  /* 6 */ ["jobs"],
  /* 7 */ ["cli"],
];

/** A comment of a source file, with the line it starts on. */
interface Comment {
  line: number;
  text: string;
}

const KEYWORDS_BEFORE_EXPRESSION = new Set([
  "return",
  "typeof",
  "case",
  "do",
  "else",
  "in",
  "of",
  "new",
  "delete",
  "void",
  "throw",
  "yield",
  "await",
  "instanceof",
]);

/** Whether a `/` at `i` starts a regular expression literal (not a division). */
function regexAt(src: string, i: number): boolean {
  let j = i - 1;
  while (j >= 0 && /\s/.test(src[j])) j--;
  if (j < 0) return true;
  const p = src[j];
  if (/[\w$]/.test(p)) {
    let k = j;
    while (k >= 0 && /[\w$]/.test(src[k])) k--;
    return KEYWORDS_BEFORE_EXPRESSION.has(src.slice(k + 1, j + 1));
  }
  return !/[)\]"'`]/.test(p);
}

/**
 * Split TypeScript source into its comments and its code with every comment blanked out (strings,
 * template literals and regular expressions are skipped, so `"//"` or `/\/*\/` is not a comment).
 */
export function lexComments(src: string): { code: string; comments: Comment[] } {
  const comments: Comment[] = [];
  const out: string[] = [];
  const n = src.length;
  // Open `${` expressions of template literals: brace depth inside each.
  const exprDepth: number[] = [];
  let inTemplate = false;
  let line = 1;
  let i = 0;
  const take = (j: number, blank = false) => {
    const s = src.slice(i, j);
    for (const ch of s) if (ch === "\n") line++;
    out.push(blank ? s.replace(/[^\n]/g, " ") : s);
    i = j;
  };
  while (i < n) {
    const c = src[i];
    if (inTemplate) {
      if (c === "\\") take(i + 2);
      else if (c === "`") {
        inTemplate = false;
        take(i + 1);
      } else if (c === "$" && src[i + 1] === "{") {
        exprDepth.push(0);
        inTemplate = false;
        take(i + 2);
      } else take(i + 1);
      continue;
    }
    if (c === "/" && src[i + 1] === "/") {
      const end = src.indexOf("\n", i);
      const j = end < 0 ? n : end;
      comments.push({ line, text: src.slice(i, j) });
      take(j, true);
    } else if (c === "/" && src[i + 1] === "*") {
      const end = src.indexOf("*/", i + 2);
      const j = end < 0 ? n : end + 2;
      comments.push({ line, text: src.slice(i, j) });
      take(j, true);
    } else if (c === "'" || c === '"') {
      let j = i + 1;
      while (j < n && src[j] !== c && src[j] !== "\n") j += src[j] === "\\" ? 2 : 1;
      take(Math.min(n, j + 1));
    } else if (c === "`") {
      inTemplate = true;
      take(i + 1);
    } else if (c === "{") {
      if (exprDepth.length) exprDepth[exprDepth.length - 1]++;
      take(i + 1);
    } else if (c === "}") {
      if (exprDepth.length && exprDepth[exprDepth.length - 1] === 0) {
        exprDepth.pop();
        inTemplate = true;
      } else if (exprDepth.length) exprDepth[exprDepth.length - 1]--;
      take(i + 1);
    } else if (c === "/" && regexAt(src, i)) {
      let j = i + 1, inClass = false;
      while (j < n && src[j] !== "\n") {
        if (src[j] === "\\") j++;
        else if (src[j] === "[") inClass = true;
        else if (src[j] === "]") inClass = false;
        else if (src[j] === "/" && !inClass) break;
        j++;
      }
      take(Math.min(n, j + 1));
    } else take(i + 1);
  }
  return { code: out.join(""), comments };
}

const STATIC_IMPORT =
  /(?:^|[;\n}])\s*(?:import|export)\s+(?:type\s+)?(?:[\w$*{}\s,]+?\s+from\s+)?["']([^"'\n]+)["']/g;
const DYNAMIC_IMPORT = /\bimport\(\s*["']([^"'\n]+)["']\s*\)/g;

/**
 * Relative module specifiers a file imports or re-exports (static and `import("...")`), read
 * from its code with comments blanked out.
 *
 * @example
 * ```ts
 * importSpecifiers('import { a } from "./a.ts";\n// import "./b.ts"'); // ["./a.ts"]
 * ```
 */
export function importSpecifiers(src: string): string[] {
  const { code } = lexComments(src);
  const out: string[] = [];
  for (const re of [STATIC_IMPORT, DYNAMIC_IMPORT]) {
    for (const m of code.matchAll(re)) if (m[1].startsWith(".")) out.push(m[1]);
  }
  return out;
}

function normalize(path: string): string {
  const parts: string[] = [];
  for (const s of path.split("/")) {
    if (s === "..") parts.pop();
    else if (s !== "." && s !== "") parts.push(s);
  }
  return parts.join("/");
}

function* walk(dir: string): Generator<string> {
  for (const e of [...Deno.readDirSync(dir)].sort((a, b) => a.name.localeCompare(b.name))) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) yield* walk(p);
    else if (e.isFile && /\.(ts|tsx)$/.test(e.name)) yield p;
  }
}

/** Files of `dir` (repo-relative), recursively. */
function sourceFiles(dir: string): string[] {
  return [...walk(`${ROOT}/${dir}`)].map((p) => p.slice(ROOT.length + 1));
}

/** Import edges between files of lib/ (repo-relative paths). */
function libGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles("lib")) {
    const dir = file.split("/").slice(0, -1).join("/");
    const targets = importSpecifiers(Deno.readTextFileSync(`${ROOT}/${file}`))
      .map((s) => normalize(`${dir}/${s}`))
      .filter((t) => t.startsWith("lib/"));
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

/** The folder of a lib/ file relative to lib/ (`eval/clip_fid`), "" for lib/mod.ts. */
function folderOf(file: string): string {
  return file.split("/").slice(1, -1).join("/");
}

/** Strongly connected components with more than one file, or a file importing itself. */
function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>(), low = new Map<string, number>();
  const stack: string[] = [], onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return found;
}

const ISSUE_CITATIONS: readonly RegExp[] = [
  /\bissues?\s*(?:#|no\.?\s*|number\s*)?\d+/i,
  /(?:^|[\s([,;:])#\d+\b/,
  /\bgh-\d+\b/i,
  /\/(?:issues|pull)\/\d+/,
];

Deno.test("lexComments finds comments outside strings, templates and regexes", () => {
  const src = [
    'const a = "// not a comment"; // one',
    "const b = `x ${'/* no */'} y`; /* two */",
    "const re = /\\/\\/ no/g; const d = 4 / 2; // three",
    "const t = `${{ a: 1 }.a} // no`;",
  ].join("\n");
  const { comments, code } = lexComments(src);
  assert.deepEqual(comments.map((c) => [c.line, c.text]), [
    [1, "// one"],
    [2, "/* two */"],
    [3, "// three"],
  ]);
  assert.equal(code.split("\n").length, 4);
  assert.deepEqual(
    importSpecifiers(
      'import {\n  a,\n  type B,\n} from "./a.ts";\n// import "./no.ts"\nexport * as c from "../c/mod.ts";\n' +
        'import "./side.ts";\nconst m = await import("./lazy.ts");\nimport x from "npm:x";',
    ),
    ["./a.ts", "../c/mod.ts", "./side.ts", "./lazy.ts"],
  );
});

Deno.test("layout: no import cycle between files of lib/", () => {
  const found = cycles(libGraph());
  assert.deepEqual(
    found.map((c) => c.join(" <-> ")),
    [],
    `import cycles:\n${found.map((c) => `  ${c.join(" <-> ")}`).join("\n")}`,
  );
});

Deno.test("layout: every folder of lib/ sits in a layer and imports only lower layers", () => {
  const rank = new Map<string, number>();
  LAYERS.forEach((folders, r) => {
    for (const f of folders) {
      assert.ok(!rank.has(f), `layer table: ${f} listed twice`);
      rank.set(f, r);
    }
  });
  const graph = libGraph();
  const under = (parent: string, folder: string) => folder.startsWith(`${parent}/`);
  // A namespace folder holds only a mod.ts re-exporting its subfolders (lib/eval): it sits with
  // the highest of them.
  const filesOf = new Map<string, string[]>();
  for (const file of graph.keys()) {
    const f = folderOf(file);
    filesOf.set(f, [...(filesOf.get(f) ?? []), file]);
  }
  for (const [folder, files] of filesOf) {
    if (folder === "" || rank.has(folder)) continue;
    const ns = files.length === 1 && files[0].endsWith("/mod.ts") &&
      graph.get(files[0])!.every((t) => under(folder, folderOf(t)));
    const below = [...rank].filter(([f]) => under(folder, f)).map(([, r]) => r);
    if (ns && below.length) rank.set(folder, Math.max(...below));
  }
  const problems: string[] = [];
  for (const f of [...filesOf.keys()].sort()) {
    if (f !== "" && !rank.has(f)) {
      problems.push(`lib/${f}: not in the layer table (tests/layout.test.ts)`);
    }
  }
  for (const [file, targets] of graph) {
    const from = folderOf(file);
    if (from === "" || !rank.has(from)) continue;
    for (const target of targets) {
      const to = folderOf(target);
      if (to === from || (file.endsWith("/mod.ts") && under(from, to))) continue;
      if (to === "") {
        problems.push(`${file} imports ${target}: only lib/mod.ts re-exports the whole kit`);
      } else if (!rank.has(to)) continue; // reported above
      else if (rank.get(to)! >= rank.get(from)!) {
        problems.push(
          `${file} imports ${target}: lib/${from} (layer ${rank.get(from)}) may only import ` +
            `lower layers, lib/${to} is layer ${rank.get(to)}`,
        );
      }
    }
  }
  assert.deepEqual(problems, [], problems.join("\n"));
});

Deno.test("layout: ARCHITECTURE.md draws the same layer table", () => {
  const md = Deno.readTextFileSync(`${ROOT}/ARCHITECTURE.md`);
  const rows = [...md.matchAll(/^\|\s*(\d+)\s*\|([^|\n]*)\|/gm)].map((m) => ({
    layer: Number(m[1]),
    folders: [...m[2].matchAll(/`([^`]+)`/g)].map((f) => f[1].replace(/^lib\//, "")).sort(),
  }));
  const expected = LAYERS.map((folders, layer) => ({ layer, folders: [...folders].sort() }));
  assert.deepEqual(rows.sort((a, b) => a.layer - b.layer), expected);
});

Deno.test("layout: no code comment in lib/, tests/ or bench/ cites an issue number", () => {
  const problems: string[] = [];
  for (const file of [...sourceFiles("lib"), ...sourceFiles("tests"), ...sourceFiles("bench")]) {
    for (const c of lexComments(Deno.readTextFileSync(`${ROOT}/${file}`)).comments) {
      c.text.split("\n").forEach((text, k) => {
        if (ISSUE_CITATIONS.some((re) => re.test(text))) {
          problems.push(`${file}:${c.line + k}: ${text.trim()}`);
        }
      });
    }
  }
  assert.deepEqual(problems, [], problems.join("\n"));
});
