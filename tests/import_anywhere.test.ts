/**
 * The kit can be imported from a script or notebook anywhere on the machine, by path or file://
 * URL, whatever deno.json (or none) that script has:
 *
 * 1. lib/ names its packages with full specifiers (`npm:fast-png@8.0.0`, `node:crypto`), never
 *    bare names, because deno.json's `imports` map applies only to code run under this config;
 * 2. every `npm:` specifier in lib/ carries exactly the version pinned in deno.json's `imports`
 *    (the one place versions are bumped; tests, bench and notebooks use the map's bare names);
 * 3. scripts in fresh folders outside the repo (no deno.json; their own unrelated deno.json; a
 *    copy of lib/ with no node_modules anywhere, so Deno's global cache only) and a notebook run
 *    by Deno's Jupyter kernel import `lib/mod.ts` and compute known values through it.
 */
import assert from "node:assert/strict";
import { notebookDepsMissing, runNotebook } from "./notebook_runner/mod.ts";
import { makeNotebook } from "./notebook_runner/mod.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
const LIB_MOD = `${ROOT}/lib/mod.ts`;

/** deno.json's `imports`: bare name -> full specifier. */
function importMap(): Record<string, string> {
  const cfg = JSON.parse(Deno.readTextFileSync(`${ROOT}/deno.json`));
  return cfg.imports as Record<string, string>;
}

/** Every `.ts` file under `dir`, as paths. */
function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...tsFiles(p));
    else if (e.isFile && e.name.endsWith(".ts")) out.push(p);
  }
  return out.sort();
}

/**
 * Module specifiers a source file names: static `import`/`export ... from`, side-effect imports,
 * dynamic `import("...")` and `import.meta.resolve("...")` (JSDoc examples included).
 */
function specifiers(src: string): Array<{ line: number; spec: string }> {
  const re =
    /(?:\bfrom\s+|\bimport\s+|\bimport\(\s*|import\.meta\.resolve\(\s*)(["'])([^"'\n]+)\1/g;
  const out: Array<{ line: number; spec: string }> = [];
  for (const m of src.matchAll(re)) {
    out.push({ line: src.slice(0, m.index).split("\n").length, spec: m[2] });
  }
  return out;
}

/** `npm:name@version[/path]` -> name and version (null when not an npm specifier). */
function parseNpm(spec: string): { name: string; version: string | null } | null {
  const m = /^npm:((?:@[^/@]+\/)?[^/@]+)(?:@([^/]+))?/.exec(spec);
  return m ? { name: m[1], version: m[2] ?? null } : null;
}

Deno.test("lib/ names packages with full specifiers (npm:, node:), never deno.json's bare names", () => {
  const bad: string[] = [];
  for (const file of tsFiles(`${ROOT}/lib`)) {
    for (const { line, spec } of specifiers(Deno.readTextFileSync(file))) {
      if (/^(\.{1,2}\/|npm:|node:)/.test(spec)) continue;
      bad.push(`${file.slice(ROOT.length + 1)}:${line}: "${spec}"`);
    }
  }
  assert.deepEqual(
    bad,
    [],
    "bare or other specifiers in lib/ (a script outside the repo cannot resolve them; write the " +
      "full npm:/node: specifier, version as in deno.json imports)",
  );
});

Deno.test("every npm: specifier in lib/ uses the version pinned in deno.json imports", () => {
  const pinned = new Map<string, string>();
  for (const target of Object.values(importMap())) {
    const p = parseNpm(target);
    if (p?.version) pinned.set(p.name, p.version);
  }
  const bad: string[] = [];
  let seen = 0;
  for (const file of tsFiles(`${ROOT}/lib`)) {
    const src = Deno.readTextFileSync(file);
    // Every quoted npm: specifier in the file, in code or docs, whatever the syntax around it.
    for (const m of src.matchAll(/["'](npm:[^"'\s]+)["']/g)) {
      const p = parseNpm(m[1])!;
      seen++;
      const where = `${file.slice(ROOT.length + 1)}:${src.slice(0, m.index).split("\n").length}`;
      const want = pinned.get(p.name);
      if (want === undefined) bad.push(`${where}: ${m[1]} is not in deno.json imports`);
      else if (p.version !== want) bad.push(`${where}: ${m[1]}, deno.json pins ${p.name}@${want}`);
    }
    // A computed name (`npm:${pkg}@4.22.0`, optional packages deno.json does not list): its
    // version must still be one deno.json pins, so bumping a package family catches it.
    for (const m of src.matchAll(/`npm:\$\{[^}]+\}@([^`/]+)[^`]*`/g)) {
      seen++;
      if (![...pinned.values()].includes(m[1])) {
        const line = src.slice(0, m.index).split("\n").length;
        bad.push(
          `${file.slice(ROOT.length + 1)}:${line}: ${m[0]}, a version deno.json pins nowhere`,
        );
      }
    }
  }
  assert.ok(seen > 10, `expected lib/ to import npm packages, found ${seen} specifiers`);
  assert.deepEqual(bad, []);
});

/** What the probe scripts print as their last stdout line (JSON). */
interface ProbeResult {
  duration: string;
  png: number[];
  silu: number[];
  backend: string;
}

/** A script that imports the kit from `kitUrl` and computes known values through it. */
function probeScript(kitUrl: string): string {
  return `import * as kit from ${JSON.stringify(kitUrl)};
import * as tf from "npm:@tensorflow/tfjs-core@${pinnedVersion("@tensorflow/tfjs-core")}";
await kit.backend.initBackend("cpu-js", { quiet: true });
const png = kit.data.encodePngRgb(new Uint8Array([255, 0, 0, 0, 255, 0]), 2, 1);
const silu = kit.nn.silu(tf.tensor1d([0, 1, -1])).dataSync();
console.log(JSON.stringify({
  duration: kit.util.formatDuration(3725),
  png: Array.from(kit.data.decodePngRgb(png).image),
  silu: Array.from(silu, (v) => Math.round(v * 1e4) / 1e4),
  backend: tf.getBackend(),
}));
`;
}

function pinnedVersion(name: string): string {
  const v = parseNpm(importMap()[name] ?? "")?.version;
  if (!v) throw new Error(`deno.json imports has no versioned npm: entry for ${name}`);
  return v;
}

const EXPECTED: ProbeResult = {
  duration: "1h02m05s",
  png: [255, 0, 0, 0, 255, 0],
  silu: [0, 0.7311, -0.2689],
  backend: "cpu-js",
};

/** `deno run -A <script>` in `cwd`; returns stdout's last line as JSON, or fails with stderr. */
async function runIn(cwd: string, script: string): Promise<unknown> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script],
    cwd,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  const stdout = dec.decode(r.stdout).trim();
  assert.equal(r.code, 0, `deno run ${script} in ${cwd} failed:\n${dec.decode(r.stderr)}`);
  return JSON.parse(stdout.split("\n").at(-1)!);
}

Deno.test("a script in a folder without deno.json imports lib/mod.ts by absolute path", async () => {
  await withTempDir("xgen-import-anywhere-", async (dir) => {
    await Deno.writeTextFile(`${dir}/probe.ts`, probeScript(LIB_MOD));
    assert.deepEqual(await runIn(dir, "probe.ts"), EXPECTED);
  });
});

Deno.test("a script with its own unrelated deno.json imports lib/mod.ts by file:// URL", async () => {
  await withTempDir("xgen-import-anywhere-", async (dir) => {
    // Its own import map (which even maps a name the kit uses, to nothing of the kit's) and no
    // node_modules: the kit must resolve its packages without either.
    await Deno.writeTextFile(
      `${dir}/deno.json`,
      JSON.stringify({
        imports: { "fast-png": "./not_fast_png.ts", "mine/": "./mine/" },
        nodeModulesDir: "none",
        lock: false,
      }),
    );
    await Deno.writeTextFile(`${dir}/not_fast_png.ts`, "export const decode = null;\n");
    await Deno.writeTextFile(`${dir}/probe.ts`, probeScript(new URL(`file://${LIB_MOD}`).href));
    assert.deepEqual(await runIn(dir, "probe.ts"), EXPECTED);
  });
});

Deno.test("a copy of lib/ with no node_modules anywhere runs on Deno's global npm cache", async () => {
  await withTempDir("xgen-import-anywhere-", async (dir) => {
    // A fresh checkout: no node_modules next to lib/ or above it, so the packages that lib/ looks
    // up by file (plotly.js, the wasm binaries, onnxruntime's native binding) come from the
    // global cache.
    await new Deno.Command("cp", { args: ["-r", `${ROOT}/lib`, `${dir}/lib`] }).output();
    await Deno.mkdir(`${dir}/user`);
    await Deno.writeTextFile(
      `${dir}/user/probe.ts`,
      `import * as kit from "../lib/mod.ts";
import { wasmBinaryFolder } from "../lib/backend/wasm_backend.ts";
const g = new kit.onnx.OnnxGraph("double");
const x = g.input("x", "float32", [2]);
g.output(g.node("Add", [x, x]), "float32", [2]);
const s = await kit.onnx.openSession(g.toBytes(), { threads: 1, executionProviders: ["cpu"] });
const out = await s.run({ x: { data: new Float32Array([1, 2.5]), shape: [2] } });
const y = Object.values(out)[0] as { data: Float32Array };
const wasm = wasmBinaryFolder();
console.log(JSON.stringify({
  onnx: Array.from(y.data),
  plotlyJsBytes: kit.plot.plotlyJs().length,
  wasmBinary: Deno.statSync(wasm + "tfjs-backend-wasm.wasm").isFile,
  wasmFromNodeModules: wasm.includes("/node_modules/"),
}));
`,
    );
    const r = await runIn(`${dir}/user`, "probe.ts") as Record<string, unknown>;
    assert.deepEqual(r.onnx, [2, 5]);
    assert.ok((r.plotlyJsBytes as number) > 1_000_000, `plotly.js: ${r.plotlyJsBytes} bytes`);
    assert.equal(r.wasmBinary, true);
    assert.equal(r.wasmFromNodeModules, false);
  });
});

const nbMissing = notebookDepsMissing();

Deno.test({
  name: "a notebook outside the repo imports lib/mod.ts (Deno's Jupyter kernel)",
  ignore: nbMissing !== null,
  fn: async () => {
    await withTempDir("xgen-import-anywhere-nb-", async (dir) => {
      const nb = makeNotebook([
        `const kit = await import(${JSON.stringify(new URL(`file://${LIB_MOD}`).href)});`,
        "console.log(kit.util.formatDuration(3725), kit.data.isPng(kit.data.encodePngRgb(" +
        "new Uint8Array(3), 1, 1)));",
      ]);
      await Deno.writeTextFile(`${dir}/t.ipynb`, JSON.stringify(nb));
      const r = await runNotebook({
        notebook: `${dir}/t.ipynb`,
        output: `${dir}/out.ipynb`,
        cwd: dir,
        cellTimeoutS: 120,
      });
      assert.equal(r.code, 0, `notebook failed:\n${r.stdout}\n${r.stderr}`);
      const text = JSON.stringify(r.executed?.cells.at(-1)?.outputs ?? []);
      assert.match(text, /1h02m05s true/);
    });
  },
});
