/**
 * Frozen model folders: weights checked against the SHA-256 in `model.json`, paths read from
 * `model.json` confined to the folder, a kill's temporaries removed by the next save or resume,
 * and `--reuse` copies that carry (and check) the hash.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import {
  hasModel,
  loadModel,
  resolvePreset,
  reuseFrozenParts,
  saveModel,
} from "../lib/recipe/mod.ts";
import { initBackendAndConvGrad } from "../lib/train/mod.ts";
import { trainRun } from "../lib/jobs/mod.ts";
import { makeTinyRun } from "./helpers/tiny_run.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

await tf.setBackend("cpu");

/** A pid no process can have (above Linux's pid_max of 2^22). */
const DEAD_PID = 99999999;

async function sha256Bytes(bytes: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

const sha256 = async (path: string) => sha256Bytes(await Deno.readFile(path));

/** A two-tensor model saved into `dir`. */
async function saveTiny(dir: string, scale = 1): Promise<void> {
  const params = {
    w: tf.tensor([1, 2, 3, 4].map((v) => v * scale), [2, 2]),
    b: tf.tensor([0.5 * scale, -1], [2]),
  };
  await saveModel(dir, { kind: "toy", config: { width: 2 }, params, extra: { k: 1 } });
  tf.dispose(Object.values(params));
}

const exists = (p: string) => Deno.stat(p).then(() => true, () => false);
const names = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort();

function oneLine(re: RegExp) {
  return (e: Error) => {
    assert.equal(e.message.split("\n").length, 1, `one line: ${e.message}`);
    assert.match(e.message, re);
    return true;
  };
}

Deno.test("saveModel records the weights' SHA-256; a bit flip is refused naming the file", async () => {
  await withTempDir("xgen_model_hash_", async (dir) => {
    await saveTiny(dir);
    const m = await loadModel(dir, "toy");
    assert.deepEqual(Array.from(await m.params.w.data()), [1, 2, 3, 4]);
    tf.dispose(Object.values(m.params));

    // Flip one bit of the last weight: same size, so only the hash can tell.
    const bytes = await Deno.readFile(`${dir}/model.safetensors`);
    bytes[bytes.length - 1] ^= 0x10;
    await Deno.writeFile(`${dir}/model.safetensors`, bytes);
    await assert.rejects(
      loadModel(dir, "toy"),
      oneLine(
        new RegExp(
          `^${dir}/model\\.safetensors: sha256 [0-9a-f]{12}\\.\\.\\. does not match model\\.json$`,
        ),
      ),
    );
    const info = JSON.parse(await Deno.readTextFile(`${dir}/model.json`));
    bytes[bytes.length - 1] ^= 0x10;
    assert.equal(info.weightsSha256, await sha256Bytes(bytes));
    // hasModel stays a cheap size check (it is asked on every resume); loading is what verifies.
    assert.equal(await hasModel(dir, "toy"), true);
  });
});

Deno.test("model folders written before the hash load unchecked; a malformed hash is refused", async () => {
  await withTempDir("xgen_model_old_", async (dir) => {
    await saveTiny(dir, 2);
    const info = JSON.parse(await Deno.readTextFile(`${dir}/model.json`));
    delete info.weightsSha256;
    await Deno.writeTextFile(`${dir}/model.json`, JSON.stringify(info));
    const m = await loadModel(dir, "toy");
    assert.deepEqual(Array.from(await m.params.b.data()), [1, -1]);
    tf.dispose(Object.values(m.params));

    await Deno.writeTextFile(
      `${dir}/model.json`,
      JSON.stringify({ ...info, weightsSha256: "abc" }),
    );
    await assert.rejects(
      loadModel(dir, "toy"),
      oneLine(/model\.json: field "weightsSha256" must be 64 lowercase hex digits, got "abc"$/),
    );
    // The JSON parser quotes the text, line breaks included; the error stays one line.
    await Deno.writeTextFile(`${dir}/model.json`, '{"kind":\n x}');
    await assert.rejects(loadModel(dir, "toy"), oneLine(/model\.json: not valid JSON \(/));
  });
});

Deno.test("model.json's weights path cannot leave the model folder", async () => {
  await withTempDir("xgen_model_escape_", async (base) => {
    const dir = `${base}/run/unet/model`;
    await saveTiny(dir);
    const info = JSON.parse(await Deno.readTextFile(`${dir}/model.json`));
    // A file outside the folder with the right size, so only the path check can refuse it.
    const outside = `${base}/secret.safetensors`;
    await Deno.copyFile(`${dir}/model.safetensors`, outside);
    const cases: [string, RegExp][] = [
      ["../../../secret.safetensors", /field "weights" must be a file name inside/],
      [outside, /field "weights" must be a file name inside/],
      ["sub/../../../../secret.safetensors", /field "weights" must be a file name inside/],
      ["link.safetensors", /field "weights" \("link\.safetensors"\) resolves outside/],
    ];
    await Deno.symlink(outside, `${dir}/link.safetensors`);
    for (const [weights, re] of cases) {
      await Deno.writeTextFile(`${dir}/model.json`, JSON.stringify({ ...info, weights }));
      await assert.rejects(loadModel(dir, "toy"), oneLine(re), weights);
      await assert.rejects(
        loadModel(dir, "toy"),
        oneLine(new RegExp(`^${dir}/model\\.json: `)),
        weights,
      );
      assert.equal(await hasModel(dir, "toy"), false, weights);
    }
  });
});

Deno.test("a re-save removes a killed save's temporaries and nothing else", async () => {
  await withTempDir("xgen_model_tmp_", async (dir) => {
    await saveTiny(dir);
    const stale = [
      `model.json.tmp-${DEAD_PID}-0123abcd`,
      `model.safetensors.tmp-${DEAD_PID}-89ef4567`,
    ];
    // Names that only look similar, or a temporary of a live process (this one's parent).
    const kept = [
      "notes.txt",
      "model.json.tmp-mine",
      "model.safetensors.tmp-12-xyz",
      `model.json.tmp-${Deno.ppid}-0123abcd`,
      "model.json.bak",
    ];
    for (const n of [...stale, ...kept]) await Deno.writeTextFile(`${dir}/${n}`, "x");
    await saveTiny(dir, 3);
    assert.deepEqual(names(dir), [...kept, "model.json", "model.safetensors"].sort());
    const m = await loadModel(dir, "toy");
    assert.deepEqual(Array.from(await m.params.w.data()), [3, 6, 9, 12]);
    tf.dispose(Object.values(m.params));
  });
});

Deno.test("--reuse copies verify the source hash, carry it, and skip stray files", async () => {
  await withTempDir("xgen_model_reuse_", async (dir) => {
    await makeTinyRun(`${dir}/src`, { captions: ["a red circle"] });
    const ae = `${dir}/src/autoencoder/model`;
    // A stray temporary in the source is not part of the model and is not copied.
    await Deno.writeTextFile(`${ae}/model.safetensors.tmp-${DEAD_PID}-0123abcd`, "x");
    // A source written before the hash existed: the copy gains one.
    const clipJson = `${dir}/src/clip/model/model.json`;
    const clipInfo = JSON.parse(await Deno.readTextFile(clipJson));
    const clipHash = clipInfo.weightsSha256;
    delete clipInfo.weightsSha256;
    await Deno.writeTextFile(clipJson, JSON.stringify(clipInfo));

    await reuseFrozenParts(`${dir}/src`, `${dir}/ok`);
    assert.deepEqual(names(`${dir}/ok/autoencoder/model`), ["model.json", "model.safetensors"]);
    assert.deepEqual(
      await Deno.readFile(`${dir}/ok/autoencoder/model/model.json`),
      await Deno.readFile(`${ae}/model.json`),
    );
    const copied = JSON.parse(await Deno.readTextFile(`${dir}/ok/clip/model/model.json`));
    assert.equal(copied.weightsSha256, clipHash);
    assert.equal(copied.weightsSha256, await sha256(`${dir}/ok/clip/model/model.safetensors`));

    // A bit-flipped source is refused, naming the file; nothing half-made is left behind.
    const bytes = await Deno.readFile(`${ae}/model.safetensors`);
    bytes[bytes.length - 5] ^= 1;
    await Deno.writeFile(`${ae}/model.safetensors`, bytes);
    await assert.rejects(
      reuseFrozenParts(`${dir}/src`, `${dir}/bad`),
      oneLine(
        new RegExp(`${ae}/model\\.safetensors: sha256 [0-9a-f]{12}\\.\\.\\. does not match`),
      ),
    );
    assert.equal(await exists(`${dir}/bad`), false, "nothing made for a damaged source");
    // The pipeline checks the source before it creates the new run folder.
    await assert.rejects(
      trainRun({
        out: `${dir}/bad-run`,
        reuse: `${dir}/src`,
        preset: resolvePreset("tiny"),
        seed: 0,
        resume: false,
        backend: "cpu-blas",
        progress: false,
        skipEval: true,
        log: () => {},
      }),
      oneLine(new RegExp(`^--reuse ${dir}/src: ${ae}/model\\.safetensors: sha256 `)),
    );
    assert.equal(await exists(`${dir}/bad-run`), false, "no half-made run folder");
  });
});

Deno.test("a resumed pipeline removes its dead temporaries in the run folder and nothing else", async () => {
  await initBackendAndConvGrad("cpu-blas", { quiet: true });
  await withTempDir("xgen_model_resume_", async (dir) => {
    const out = `${dir}/run`;
    const o = {
      out,
      preset: resolvePreset("tiny", { unetSteps: 2 }),
      seed: 0,
      backend: "cpu-blas",
      progress: false,
      skipEval: true,
      log: () => {},
    };
    await trainRun({ ...o, resume: false });
    const stale = [
      `unet/model/model.json.tmp-${DEAD_PID}-0123abcd`,
      `unet/model/model.safetensors.tmp-${DEAD_PID}-89ef4567`,
      `clip/tokenizer.json.tmp-${DEAD_PID}-aaaabbbb`,
      `config.json.tmp-${DEAD_PID}-ccccdddd`,
      `autoencoder/model.tmp-${DEAD_PID}-eeeeffff/model.json`,
    ];
    const kept = [
      "unet/model/model.json.tmp-notes",
      "unet/notes.tmp-1-2",
      `unet/model/model.json.tmp-${Deno.ppid}-0123abcd`,
      "keep.txt",
    ];
    for (const n of [...stale, ...kept]) {
      await Deno.mkdir(`${out}/${n}`.replace(/\/[^/]*$/, ""), { recursive: true });
      await Deno.writeTextFile(`${out}/${n}`, "x");
    }
    const before = await listTree(out);
    await trainRun({ ...o, resume: true });
    const gone = [...stale, `autoencoder/model.tmp-${DEAD_PID}-eeeeffff`];
    assert.deepEqual(await listTree(out), before.filter((p) => !gone.includes(p)));
    for (const n of kept) assert.equal(await Deno.readTextFile(`${out}/${n}`), "x", n);
  });
});

/** Every path under `root`, relative, sorted (folders included). */
async function listTree(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    for await (const e of Deno.readDir(rel ? `${root}/${rel}` : root)) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      out.push(p);
      if (e.isDirectory) await walk(p);
    }
  };
  await walk("");
  return out.sort();
}
