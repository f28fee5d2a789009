/**
 * `deno task sample` on the ONNX engine (the default) against the TensorFlow.js engine on a tiny
 * trained run: the same grid for the same seed, the export made once and reused, re-exported
 * when the run's UNet changes, `--checkpoint` exported separately; and `ensureOnnxExport`'s
 * refusals and clean-up. One test with steps: every step works on the same trained run.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { decodePngRgb } from "../lib/data/mod.ts";
import { loadModel, saveModel } from "../lib/recipe/model_files.ts";
import { disposeParams } from "../lib/nn/mod.ts";
import { ensureOnnxExport } from "../lib/recipe/mod.ts";
import { cli } from "./helpers/cli.ts";

await tf.setBackend("cpu");

const PROMPTS = ["--prompt", "a red circle", "--prompt", "two blue squares"];

/** Run the sample command; fails the test with its stderr when it does not exit 0. */
async function sample(run: string, out: string, extra: string[] = []) {
  const r = await cli([
    "lib/cli/sample.ts",
    "--run",
    run,
    ...PROMPTS,
    "--n",
    "3",
    "--steps",
    "6",
    "--seed",
    "7",
    "--out",
    out,
    ...extra,
  ]);
  assert.equal(r.code, 0, `sample ${extra.join(" ")} failed:\n${r.stderr}`);
  return r;
}

function grid(path: string) {
  return decodePngRgb(Deno.readFileSync(path), path);
}

function maxDiff(a: string, b: string): number {
  const [x, y] = [grid(a), grid(b)];
  assert.equal(x.width, y.width);
  assert.equal(x.height, y.height);
  let m = 0;
  for (let i = 0; i < x.image.length; i++) m = Math.max(m, Math.abs(x.image[i] - y.image[i]));
  return m;
}

async function readIndex(dir: string) {
  return JSON.parse(await Deno.readTextFile(`${dir}/model_index.json`));
}

/** Names in `dir` starting with `prefix` (leftover temp folders). */
function entries(dir: string, prefix: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.startsWith(prefix)).sort();
}

const root = await Deno.makeTempDir({ prefix: "xgen_cli_onnx_" });
const run = `${root}/run`;

Deno.test("sample: onnx engine by default, same grid as tfjs, export reused and refreshed", async (t) => {
  const trained = await cli([
    "lib/cli/train.ts",
    "--preset",
    "tiny",
    "--out",
    run,
    "--seed",
    "5",
    "--skip-eval",
  ]);
  assert.equal(trained.code, 0, trained.stderr);
  const [onnx1, onnx2, tfjs1] = ["onnx1", "onnx2", "tfjs1"].map((n) => `${root}/${n}.png`);

  await t.step("first onnx call exports the run, then samples", async () => {
    // A temp folder left by a dead process (pid above Linux's pid_max) is cleared on export.
    await Deno.mkdir(`${run}/.onnx.tmp-999999999-deadbeef/unet`, { recursive: true });
    const r = await sample(run, onnx1);
    assert.match(r.stdout, /onnx: exporting .*run to .*run\/onnx \(no export yet\)/);
    const index = await readIndex(`${run}/onnx`);
    const fp = index._xgen_kit.fingerprint;
    assert.equal(fp.checkpoint, null);
    const w = await Deno.readFile(`${run}/unet/model/model.safetensors`);
    const sha = new Uint8Array(await crypto.subtle.digest("SHA-256", w));
    assert.deepEqual(fp.files["unet/model/model.safetensors"], {
      size: w.length,
      sha256: Array.from(sha, (b) => b.toString(16).padStart(2, "0")).join(""),
    });
    assert.ok(index._xgen_kit.files.includes("unet/model.onnx"));
    assert.deepEqual(entries(run, ".onnx"), [], "no temp folders left");
    // 2 prompts x 3 samples of 16 px, 2 px padding: same layout as the tfjs grid.
    const g = grid(onnx1);
    assert.equal(g.width, 3 * 16 + 4 * 2);
    assert.equal(g.height, 2 * 16 + 3 * 2);
    assert.ok(new Set(g.image).size > 20, "grid is not flat");
  });

  await t.step("tfjs engine gives the same grid (max pixel diff <= 2)", async () => {
    const r = await sample(run, tfjs1, ["--engine", "tfjs"]);
    assert.doesNotMatch(r.stdout, /onnx:/);
    const d = maxDiff(onnx1, tfjs1);
    assert.ok(d <= 2, `onnx vs tfjs max pixel diff ${d}`);
  });

  await t.step("second onnx call reuses the export", async () => {
    const before = (await Deno.stat(`${run}/onnx/model_index.json`)).mtime!.getTime();
    const unetBefore = (await Deno.stat(`${run}/onnx/unet/model.onnx`)).mtime!.getTime();
    const r = await sample(run, onnx2);
    assert.match(r.stdout, /onnx: using .*run\/onnx \(up to date/);
    assert.doesNotMatch(r.stdout, /exporting/);
    assert.equal((await Deno.stat(`${run}/onnx/model_index.json`)).mtime!.getTime(), before);
    assert.equal((await Deno.stat(`${run}/onnx/unet/model.onnx`)).mtime!.getTime(), unetBefore);
    assert.deepEqual(await Deno.readFile(onnx2), await Deno.readFile(onnx1));
  });

  await t.step("--checkpoint exports that checkpoint's EMA UNet to its own folder", async () => {
    const [ck, ckTf] = [`${root}/ck_onnx.png`, `${root}/ck_tfjs.png`];
    const r = await sample(run, ck, ["--checkpoint", "4"]);
    assert.match(r.stdout, /exporting .*\(ckpt-00000004\) to .*run\/onnx-ckpt-00000004/);
    const fp = (await readIndex(`${run}/onnx-ckpt-00000004`))._xgen_kit.fingerprint;
    assert.equal(fp.checkpoint, "ckpt-00000004");
    assert.ok(fp.files["unet/ckpt-00000004/manifest.json"].size > 0);
    await sample(run, ckTf, ["--checkpoint", "4", "--engine", "tfjs"]);
    const d = maxDiff(ck, ckTf);
    assert.ok(d <= 2, `checkpoint: onnx vs tfjs max pixel diff ${d}`);
    assert.ok(maxDiff(ck, onnx1) > 2, "checkpoint grid equals the finished model's");
    const again = await sample(run, `${root}/ck_again.png`, ["--checkpoint", "4"]);
    assert.match(again.stdout, /onnx: using .*onnx-ckpt-00000004/);
  });

  await t.step("a changed UNet is re-exported and still matches tfjs", async () => {
    const dir = `${run}/unet/model`;
    const m = await loadModel(dir, "unet");
    const scaled: Record<string, tf.Tensor> = {};
    for (const [k, v] of Object.entries(m.params)) {
      scaled[k] = k.startsWith("conv_out.") ? tf.mul(v, 3) : v;
    }
    await saveModel(dir, {
      kind: "unet",
      config: m.info.config,
      params: scaled,
      extra: m.info.extra,
    });
    tf.dispose(Object.entries(scaled).filter(([k]) => k.startsWith("conv_out.")).map(([, v]) => v));
    disposeParams(m.params);

    const [o, tj] = [`${root}/changed_onnx.png`, `${root}/changed_tfjs.png`];
    const r = await sample(run, o);
    assert.match(r.stdout, /exporting .* \(unet\/model\/model\.safetensors changed\)/);
    await sample(run, tj, ["--engine", "tfjs"]);
    const d = maxDiff(o, tj);
    assert.ok(d <= 2, `after the change: onnx vs tfjs max pixel diff ${d}`);
    assert.ok(maxDiff(o, onnx1) > 2, "the new export samples like the old UNet");
    assert.deepEqual(entries(run, ".onnx"), [], "no temp or old folders left");
  });

  await t.step("an export without model_index.json is redone", async () => {
    await Deno.remove(`${run}/onnx/model_index.json`);
    const r = await sample(run, `${root}/redo.png`);
    assert.match(r.stdout, /unfinished export: no model_index\.json/);
    assert.ok((await readIndex(`${run}/onnx`))._xgen_kit.fingerprint);
  });

  await t.step("ensureOnnxExport refuses foreign folders and bad checkpoint names", async () => {
    const foreign = `${root}/foreign`;
    await Deno.mkdir(foreign);
    await Deno.writeTextFile(`${foreign}/notes.txt`, "keep me");
    await assert.rejects(
      ensureOnnxExport(run, { outDir: foreign }),
      /foreign: exists and is not an ONNX export of the kit/,
    );
    assert.equal(await Deno.readTextFile(`${foreign}/notes.txt`), "keep me");
    assert.deepEqual(entries(root, ".foreign"), [], "the temp export was removed");
    await assert.rejects(
      ensureOnnxExport(run, { checkpoint: "../unet" }),
      /checkpoint must be a step number or a ckpt-XXXXXXXX name, got "..\/unet"/,
    );
    await assert.rejects(
      ensureOnnxExport(`${root}/nope`),
      new RegExp(`^Error: run folder ${root}/nope does not exist$`),
    );
    // Another export folder is fine, and is reused by the next call with the same options.
    const lines: string[] = [];
    const other = await ensureOnnxExport(run, {
      outDir: `${root}/exp/`,
      log: (l) => lines.push(l),
    });
    assert.equal(other, `${root}/exp`);
    await ensureOnnxExport(run, { outDir: `${root}/exp`, log: (l) => lines.push(l) });
    await ensureOnnxExport(run, {
      outDir: `${root}/exp`,
      timestepDtype: "int64",
      log: (l) => lines.push(l),
    });
    assert.match(lines[0], /exporting .* \(no export yet\)/);
    assert.match(lines[2], /using .*exp \(up to date/);
    assert.match(lines[3], /exporting .* \(export options changed\)/);
  });
  await Deno.remove(root, { recursive: true });
});
