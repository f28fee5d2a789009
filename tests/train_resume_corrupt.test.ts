/**
 * A resume whose newest checkpoint is corrupt in a way the manifest cannot see (the file was
 * re-hashed after the damage) falls back to the previous complete checkpoint, like every other
 * corruption, and reproduces the uninterrupted losses from there.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { trainLoop } from "../lib/train/mod.ts";
import { initTinyMlp, tinyMlpLoopOptions } from "./helpers/tiny_mlp.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

await tf.setBackend("cpu");

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("resume skips a checkpoint with a 2^63-1 safetensors header length and a re-hashed manifest", async () => {
  await withTempDir("xgen_resume_corrupt_", async (base) => {
    const p0 = initTinyMlp();
    const straight = await trainLoop(
      tinyMlpLoopOptions(p0, { runDir: `${base}/straight`, steps: 10 }),
    );
    const want = straight.history.map((h) => h.loss);
    straight.dispose();
    tf.dispose(Object.values(p0));

    const run = `${base}/killed`;
    const p1 = initTinyMlp();
    (await trainLoop(tinyMlpLoopOptions(p1, { runDir: run, steps: 6 }))).dispose();
    tf.dispose(Object.values(p1));
    // Damage the newest checkpoint's header length and make the manifest agree with the damage.
    const ck = `${run}/ckpt-00000006`;
    const bytes = await Deno.readFile(`${ck}/model.safetensors`);
    new DataView(bytes.buffer).setBigUint64(0, 2n ** 63n - 1n, true);
    await Deno.writeFile(`${ck}/model.safetensors`, bytes);
    const m = JSON.parse(await Deno.readTextFile(`${ck}/manifest.json`));
    m.files.find((f: { name: string }) => f.name === "model.safetensors").sha256 = await sha256Hex(
      bytes,
    );
    await Deno.writeTextFile(`${ck}/manifest.json`, JSON.stringify(m));

    const p2 = initTinyMlp();
    const warn = console.warn;
    const warnings: string[] = [];
    console.warn = (msg: string) => warnings.push(msg);
    let r;
    try {
      r = await trainLoop({ ...tinyMlpLoopOptions(p2, { runDir: run, steps: 10 }), resume: true });
    } finally {
      console.warn = warn;
    }
    assert.equal(r.resumedFrom, "ckpt-00000003");
    assert.equal(warnings.length, 1);
    assert.match(
      warnings[0],
      /ckpt-00000006: skipped \(safetensors .*ckpt-00000006\/model\.safetensors: header length 9223372036854775807 exceeds/,
    );
    assert.deepEqual(r.history.map((h) => h.loss), want.slice(3));
    r.dispose();
    tf.dispose(Object.values(p2));
  });
});
