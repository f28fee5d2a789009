/**
 * `trainRun({ checkpoints })` / `deno task train --checkpoints`: the stages' training
 * checkpoints go to another folder or a gs:// bucket (on the offline emulator), metrics and frozen
 * models stay in the run folder, and a resume must name the same place.
 */
import assert from "node:assert/strict";
import { resolvePreset } from "../lib/recipe/mod.ts";
import {
  decodeSafetensors,
  initBackendAndConvGrad,
  listCheckpoints,
  loadCheckpoint,
  readMetrics,
  type TensorDataMap,
  toTensorDataMap,
} from "../lib/train/mod.ts";
import { trainRun } from "../lib/jobs/mod.ts";
import { GcsStore } from "../lib/storage/mod.ts";
import { cli } from "./helpers/cli.ts";
import { startGcsEmulator } from "./helpers/gcs_emulator.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

const STAGES = ["autoencoder", "clip", "unet"] as const;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Same tensor names, shapes and float32 bits (compared as integers, so -0 and NaN count). */
function assertSameTensors(got: TensorDataMap, want: TensorDataMap, what: string): void {
  assert.deepEqual(Object.keys(got).sort(), Object.keys(want).sort(), `${what}: tensor names`);
  for (const [name, t] of Object.entries(want)) {
    assert.deepEqual(got[name].shape, t.shape, `${what}: ${name} shape`);
    const a = new Uint32Array(got[name].data.buffer, got[name].data.byteOffset, t.data.length);
    const b = new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length);
    const bad = a.findIndex((v, i) => v !== b[i]);
    assert.equal(bad, -1, `${what}: ${name}[${bad}] is ${got[name].data[bad]}, not ${t.data[bad]}`);
  }
}

function ckptFolders(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.startsWith("ckpt-"))
      .sort();
  } catch {
    return [];
  }
}

Deno.test("trainRun({ checkpoints }) puts every stage's checkpoints under that folder", async () => {
  await initBackendAndConvGrad("cpu-blas", { quiet: true });
  await withTempDir("xgen_ckroot_", async (dir) => {
    const preset = resolvePreset("tiny", { unetSteps: 4 });
    const o = {
      out: `${dir}/run`,
      preset,
      seed: 0,
      resume: true,
      backend: "cpu-blas",
      progress: false,
      skipEval: true,
      log: () => {},
    };
    await trainRun({ ...o, checkpoints: `${dir}/ckpts` });
    for (const stage of STAGES) {
      const steps = preset[stage].steps, every = preset[stage].checkpointEvery;
      // keepLast 2 of the saves at every `every` steps and at the end.
      const saved = [
        ...new Set(
          [...Array(steps + 1).keys()].filter((s) => s > 0 && (s % every === 0 || s === steps)),
        ),
      ].slice(-2).map((s) => `ckpt-${String(s).padStart(8, "0")}`);
      assert.deepEqual(ckptFolders(`${dir}/ckpts/${stage}`), saved, stage);
      assert.deepEqual(ckptFolders(`${dir}/run/${stage}`), [], `${stage}: none in the run folder`);
      const m = await readMetrics(`${dir}/run/${stage}/metrics.jsonl`);
      assert.equal(m.at(-1)!.step, steps, `${stage} metrics stay in the run folder`);
    }
    const config = JSON.parse(await Deno.readTextFile(`${dir}/run/config.json`));
    assert.equal(config.checkpoints, `${dir}/ckpts`);
    await assert.rejects(
      () => trainRun({ ...o, checkpoints: `${dir}/elsewhere` }),
      /run\/config\.json: the run was started with other settings \(preset\/seed\/steps\/--batch-size\/--checkpoints\/--reuse\)/,
    );
    await assert.rejects(() => trainRun(o), /other settings/);
  });
});

Deno.test("deno task train --checkpoints gs://...: checkpoints in the bucket, resumed from it", async () => {
  const emu = await startGcsEmulator();
  await withTempDir("xgen_ckgs_", async (dir) => {
    try {
      const url = "gs://xgen-test/runs/r1";
      const env = { STORAGE_EMULATOR_HOST: emu.endpoint };
      const args = ["lib/cli/train.ts", "--preset", "tiny", "--out", `${dir}/run`, "--skip-eval"];
      const r = await cli([...args, "--checkpoints", url], { env });
      assert.equal(r.code, 0, r.stderr);
      const preset = resolvePreset("tiny");
      for (const stage of STAGES) {
        const store = new GcsStore(`${url}/${stage}`, { apiEndpoint: emu.endpoint });
        const cks = (await listCheckpoints(store, { verify: "manifest" })).filter((c) =>
          c.complete
        );
        assert.equal(cks.at(-1)?.step, preset[stage].steps, `${stage}: final checkpoint in bucket`);
        assert.deepEqual(ckptFolders(`${dir}/run/${stage}`), []);
      }
      // Lose the finished UNet locally: --resume rebuilds it from the bucket's final checkpoint
      // without training a step again (its metrics log is unchanged).
      const before = await Deno.readTextFile(`${dir}/run/unet/metrics.jsonl`);
      const unetDir = `${dir}/run/unet/model`;
      const trained = {
        json: await Deno.readTextFile(`${unetDir}/model.json`),
        weights: await Deno.readFile(`${unetDir}/model.safetensors`),
      };
      await Deno.remove(unetDir, { recursive: true });
      const again = await cli([...args, "--checkpoints", url, "--resume"], { env });
      assert.equal(again.code, 0, again.stderr);
      assert.equal(await Deno.readTextFile(`${dir}/run/unet/metrics.jsonl`), before);
      // The rebuilt model is the one the training run froze, bit for bit ...
      const rebuilt = await Deno.readFile(`${unetDir}/model.safetensors`);
      assert.equal(await Deno.readTextFile(`${unetDir}/model.json`), trained.json);
      assert.ok(sameBytes(rebuilt, trained.weights), "rebuilt model.safetensors differs");
      // ... and both are the EMA weights of the bucket's final checkpoint (what sampling uses).
      const unetStore = new GcsStore(`${url}/unet`, { apiEndpoint: emu.endpoint });
      const last = (await listCheckpoints(unetStore, { verify: "manifest" })).filter((c) =>
        c.complete
      )
        .at(-1)!;
      const ck = await loadCheckpoint({ store: unetStore, name: last.name });
      assert.ok(ck.tensors.ema, `${last.name} has no EMA weights`);
      assertSameTensors(toTensorDataMap(decodeSafetensors(rebuilt)), ck.tensors.ema, last.name);
      const other = await cli([...args, "--resume"], { env });
      assert.equal(other.code, 1);
      assert.match(
        other.stderr,
        /other settings \(preset\/seed\/steps\/--batch-size\/--checkpoints\/--reuse\)/,
      );
    } finally {
      await emu.stop();
    }
  });
});
