/**
 * `trainRun({ reuse })` / `deno task train --reuse RUN --batch-size N`: a new run copies a
 * finished run's frozen autoencoder and CLIP (as the study reused SD's VAE and CLIP) and trains
 * only the UNet, at the batch size asked for.
 */
import assert from "node:assert/strict";
import { resolvePreset, reuseFrozenParts } from "../lib/recipe/mod.ts";
import { initBackendAndConvGrad, readMetrics } from "../lib/train/mod.ts";
import { trainRun } from "../lib/jobs/mod.ts";
import { makeTinyRun } from "./helpers/tiny_run.ts";
import { cli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

const read = (p: string) => Deno.readFileSync(p);

Deno.test("trainRun({ reuse }) copies the frozen parts and trains only the UNet", async () => {
  await initBackendAndConvGrad("cpu-blas", { quiet: true });
  await withTempDir("xgen_reuse_", async (dir) => {
    const preset = resolvePreset("tiny", { unetSteps: 3, unetBatchSize: 4 });
    const o = {
      preset,
      seed: 0,
      resume: false,
      backend: "cpu-blas",
      progress: false,
      skipEval: true,
      log: () => {},
    };
    await trainRun({ ...o, out: `${dir}/base` });
    await trainRun({ ...o, out: `${dir}/new`, reuse: `${dir}/base` });
    for (
      const f of [
        "autoencoder/model/model.safetensors",
        "autoencoder/model/model.json",
        "clip/model/model.safetensors",
        "clip/tokenizer.json",
      ]
    ) {
      assert.deepEqual(read(`${dir}/new/${f}`), read(`${dir}/base/${f}`), f);
    }
    // The reused stages never trained in the new run: no metrics there, only the UNet's.
    for (const stage of ["autoencoder", "clip"]) {
      assert.deepEqual(await readMetrics(`${dir}/new/${stage}/metrics.jsonl`).catch(() => []), []);
    }
    const m = await readMetrics(`${dir}/new/unet/metrics.jsonl`);
    assert.equal(m.at(-1)!.step, 3);
    const config = JSON.parse(await Deno.readTextFile(`${dir}/new/config.json`));
    assert.equal(config.reuse, `${dir}/base`);
    assert.equal(config.preset.unet.batchSize, 4);
    // Same seed and batch on the same frozen parts: the UNet trains exactly as in the base run.
    const base = await readMetrics(`${dir}/base/unet/metrics.jsonl`);
    assert.deepEqual(m.map((r) => r.loss), base.map((r) => r.loss));
    // A resume must name the same source; a finished copy is left alone on resume.
    await assert.rejects(
      () => trainRun({ ...o, resume: true, out: `${dir}/new` }),
      /other settings \(preset\/seed\/steps\/--batch-size\/--checkpoints\/--reuse\)/,
    );
    await trainRun({ ...o, resume: true, out: `${dir}/new`, reuse: `${dir}/base` });
  });
});

Deno.test("reuseFrozenParts refuses a source without finished parts, naming the folder", async () => {
  await withTempDir("xgen_reuse_bad_", async (dir) => {
    await assert.rejects(
      () => reuseFrozenParts(`${dir}/nothing`, `${dir}/out`),
      new RegExp(`${dir}/nothing/autoencoder/model holds no finished autoencoder`),
    );
    await makeTinyRun(`${dir}/src`, { captions: ["a red circle"] });
    await Deno.remove(`${dir}/src/clip/tokenizer.json`);
    await assert.rejects(
      () => reuseFrozenParts(`${dir}/src`, `${dir}/out`),
      new RegExp(`${dir}/src/clip/tokenizer.json is missing`),
    );
    // The autoencoder copied before the failure is complete; no temporary folder is left.
    const names = [...Deno.readDirSync(`${dir}/out/autoencoder`)].map((e) => e.name);
    assert.deepEqual(names, ["model"]);
    assert.deepEqual(
      read(`${dir}/out/autoencoder/model/model.safetensors`),
      read(`${dir}/src/autoencoder/model/model.safetensors`),
    );
  });
});

Deno.test("resolvePreset sets the UNet batch size and rejects a bad one", () => {
  const p = resolvePreset("default", { unetBatchSize: 256 });
  assert.equal(p.unet.batchSize, 256);
  assert.equal(p.autoencoder.batchSize, resolvePreset("default").autoencoder.batchSize);
  assert.throws(() => resolvePreset("default", { unetBatchSize: 0 }), /positive integer, got 0/);
});

Deno.test("deno task train --reuse names a missing source in one line", async () => {
  await withTempDir("xgen_reuse_cli_", async (dir) => {
    const r = await cli([
      "lib/cli/train.ts",
      "--preset",
      "tiny",
      "--out",
      `${dir}/run`,
      "--reuse",
      `${dir}/missing`,
      "--skip-eval",
    ]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--reuse .*missing.*holds no finished autoencoder/);
    // Nothing was created: the same --out works once the flag is right.
    assert.equal(await Deno.stat(`${dir}/run`).then(() => true, () => false), false);
  });
});
