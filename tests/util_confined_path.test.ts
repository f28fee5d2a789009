/**
 * Paths read from a run's files stay inside their folder: the shared check itself, and the places
 * besides `model.json` and checkpoint manifests that join such paths (a data folder's
 * `dataset.json` shard list, an ONNX export's `model_index.json` file list).
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { confinedJoin, confinedRealPath } from "../lib/util/confined_path.ts";
import { LocalShardSource } from "../lib/data/shard_source.ts";
import { ensureOnnxExport } from "../lib/recipe/mod.ts";
import { makeTinyRun } from "./helpers/tiny_run.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

await tf.setBackend("cpu");

const at = { file: "d/model.json", field: "weights" };

Deno.test("confinedJoin accepts relative paths inside the folder and refuses the rest", () => {
  assert.equal(confinedJoin("d", "model.safetensors", at), "d/model.safetensors");
  assert.equal(confinedJoin("d/", "unet/model.onnx", at), "d/unet/model.onnx");
  assert.equal(confinedJoin("d", "a..b", at), "d/a..b", "dots inside a name are fine");
  const bad: unknown[] = [
    "../x",
    "a/../../x",
    "a/..",
    "..",
    ".",
    "./x",
    "/etc/passwd",
    "\\x",
    "..\\x",
    "C:x",
    "a//b",
    "",
    "x\0y",
    7,
    null,
    undefined,
    ["x"],
  ];
  for (const rel of bad) {
    assert.throws(() => confinedJoin("d", rel, at), (e: Error) => {
      assert.match(e.message, /^d\/model\.json: field "weights" must be a relative path inside d /);
      assert.equal(e.message.split("\n").length, 1);
      return true;
    }, String(rel));
  }
  assert.throws(
    () => confinedJoin("d", "sub/x", { ...at, fileName: true }),
    /^Error: d\/model\.json: field "weights" must be a file name inside d, got "sub\/x"$/,
  );
});

Deno.test("confinedRealPath refuses links that lead out, allows links that stay in", async () => {
  await withTempDir("xgen_confined_", async (base) => {
    const dir = `${base}/run`;
    await Deno.mkdir(`${dir}/sub`, { recursive: true });
    await Deno.writeTextFile(`${base}/secret`, "s");
    await Deno.writeTextFile(`${dir}/sub/real`, "r");
    await Deno.symlink(`${base}/secret`, `${dir}/out`);
    await Deno.symlink(`${dir}/sub/real`, `${dir}/in`);
    await Deno.symlink(`${base}`, `${dir}/up`);
    assert.equal(await confinedRealPath(dir, "in", at), `${dir}/in`);
    assert.equal(await confinedRealPath(dir, "missing", at), `${dir}/missing`);
    for (const rel of ["out", "up/secret"]) {
      await assert.rejects(
        confinedRealPath(dir, rel, at),
        new RegExp(`field "weights" \\("${rel.replace("/", "\\/")}"\\) resolves outside ${dir}`),
      );
    }
    // A run folder reached through a link is still "inside" itself.
    await Deno.symlink(dir, `${base}/alias`);
    assert.equal(await confinedRealPath(`${base}/alias`, "sub/real", at), `${base}/alias/sub/real`);
  });
});

Deno.test("dataset.json shard names cannot leave the data folder", async () => {
  await withTempDir("xgen_confined_data_", async (dir) => {
    await Deno.writeTextFile(`${dir}/dataset.json`, JSON.stringify({ shards: ["00000.tar"] }));
    assert.deepEqual(await new LocalShardSource(dir).list(), [`${dir}/00000.tar`]);
    await Deno.writeTextFile(
      `${dir}/dataset.json`,
      JSON.stringify({ shards: ["00000.tar", "../../../../etc/passwd"] }),
    );
    await assert.rejects(
      new LocalShardSource(dir).list(),
      new RegExp(
        `^Error: ${dir}/dataset\\.json: field "shards\\[1\\]" must be a relative path inside ${dir} .*got "\\.\\./\\.\\./\\.\\./\\.\\./etc/passwd"$`,
      ),
    );
  });
});

Deno.test("an export whose model_index.json lists a path outside it is stale, not probed", async () => {
  await withTempDir("xgen_confined_onnx_", async (dir) => {
    await makeTinyRun(`${dir}/run`, { captions: ["a red circle"] });
    const lines: string[] = [];
    const out = await ensureOnnxExport(`${dir}/run`, { log: (l) => lines.push(l) });
    const indexPath = `${out}/model_index.json`;
    const index = JSON.parse(await Deno.readTextFile(indexPath));
    const listed = index._xgen_kit.files.length;
    // It exists, so a probe of it would call the export complete.
    await Deno.writeTextFile(`${dir}/secret`, "s");
    index._xgen_kit.files.push("../../secret");
    await Deno.writeTextFile(indexPath, JSON.stringify(index));
    await ensureOnnxExport(`${dir}/run`, { log: (l) => lines.push(l) });
    assert.match(
      lines.at(-2)!,
      new RegExp(
        `exporting .* \\(model_index\\.json: field "_xgen_kit\\.files\\[${listed}\\]" must be a relative path inside`,
      ),
    );
    const again = JSON.parse(await Deno.readTextFile(indexPath));
    assert.equal(again._xgen_kit.files.length, listed, "the rewritten index lists its own files");
    assert.ok(!again._xgen_kit.files.includes("../../secret"));
  });
});
