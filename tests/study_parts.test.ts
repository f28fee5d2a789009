/**
 * `deno task study --parts`: the whole study on a Stable Diffusion folder's frozen parts and
 * webdataset shards (the committed tiny real-exporter SD folder at 64 px, shapes-world shards as
 * stand-in data, the tiny CLIP towers as scorer), at the `test` size: every kept UNet checkpoint
 * becomes an SD folder and a CLIP-FID curve, the sampling sections sample the finished folder and
 * score with the towers, the training section has the UNet's loss, and the command line refuses
 * incomplete flag sets in one line.
 */
import assert from "node:assert/strict";
import { initBackendAndConvGrad } from "../lib/train/init_backend.ts";
import { buildShapesWorldShards } from "../lib/data/mod.ts";
import { studyRun } from "../lib/jobs/study_run.ts";
import { studySize } from "../lib/study/report_sizes.ts";
import { UNET_PRESETS } from "../lib/models/mod.ts";
import { withTempDir } from "./helpers/temp_dir.ts";
import { cli } from "./helpers/cli.ts";
import { TINY_SD } from "./helpers/tiny_sd.ts";

const TOWERS = new URL("./fixtures/tiny_clip_towers", import.meta.url).pathname;

Deno.test({
  name: "study on parts: checkpoints as SD folders, CLIP-FID per checkpoint, towers score",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir("xgen_study_parts_", async (dir) => {
      await initBackendAndConvGrad("cpu-blas", { quiet: true });
      await buildShapesWorldShards({
        outDir: `${dir}/train`,
        seed: 0,
        count: 24,
        perShard: 12,
        size: 64,
      });
      await buildShapesWorldShards({
        outDir: `${dir}/heldout`,
        seed: 7,
        count: 16,
        perShard: 16,
        size: 64,
      });
      const size = studySize("test");
      const r = await studyRun({
        size,
        out: `${dir}/study`,
        reuse: false,
        backend: "cpu-blas",
        log: () => {},
        parts: {
          parts: `${TINY_SD}fp32_scalar_t`,
          data: `${dir}/train`,
          evalData: `${dir}/heldout`,
          clip: TOWERS,
          resolution: 64,
          unet: UNET_PRESETS.tiny,
        },
      });
      const ids = r.report.sections.map((s) => s.id);
      assert.deepEqual(ids, [
        "data",
        "rank_seeds",
        "clip_fid",
        "best_of_n",
        "touch_ups",
        "human",
        "training",
      ]);
      // One SD folder and one curve per kept checkpoint (10, 20, 30 and the last, 40).
      const steps = [...size.keepAt, size.unetSteps];
      for (const s of steps) {
        const name = `ckpt-${String(s).padStart(8, "0")}`;
        const idx = JSON.parse(
          await Deno.readTextFile(`${dir}/study/run/checkpoint_models/${name}/model_index.json`),
        );
        assert.equal(idx._xgen_kit.step, s);
      }
      const json = JSON.parse(await Deno.readTextFile(r.json));
      const clipFid =
        JSON.parse(await Deno.readTextFile(`${dir}/study/steps/clip_fid.json`)).result;
      assert.deepEqual(
        [...new Set(clipFid.points.map((p: { step: number }) => p.step))],
        steps,
      );
      assert.equal(clipFid.points.length, steps.length * size.clipFid.guidance.length);
      // The last checkpoint is the finished model: its exported UNet is the same file.
      const last = `ckpt-${String(size.unetSteps).padStart(8, "0")}`;
      assert.deepEqual(
        await Deno.readFile(`${dir}/study/run/checkpoint_models/${last}/unet/model.onnx`),
        await Deno.readFile(`${dir}/study/run/model/unet/model.onnx`),
      );
      const headline = (id: string) => json.headlines.find((h: { id: string }) => h.id === id);
      assert.ok(Number.isFinite(headline("clip_fid.fid").value));
      const loss = headline("training.final_loss");
      assert.ok(loss.lo <= loss.value && loss.value <= loss.hi && loss.value > 0);
      // The data section counts the training shards' words (24 captions).
      assert.match(r.report.sections[0].measured, /The run.s 24 captions hold/);
      assert.ok(!r.report.sections[0].caveats!.some((c) => /shapes world/.test(c)));
      assert.ok(await Deno.stat(r.html).then((s) => s.size > 10_000));
    }),
});

Deno.test("study --parts: incomplete flag sets are refused in one line", async () => {
  const noClip = await cli(["lib/cli/study.ts", "--parts", "x", "--data", "y"]);
  assert.notEqual(noClip.code, 0);
  assert.match(noClip.stderr, /--parts needs --clip DIR/);
  const stray = await cli(["lib/cli/study.ts", "--clip", "x"]);
  assert.notEqual(stray.code, 0);
  assert.match(stray.stderr, /--clip needs --parts/);
});
