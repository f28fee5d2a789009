/**
 * Training a UNet on a Stable Diffusion folder's frozen parts (the tiny real-exporter fixture,
 * 64 px -> 8x8x4 latents, 77 x 32 text states) and webdataset shards made here: the square crop
 * against Pillow, the latent cache against a direct encode, its resume and rank split, the UNet
 * stage's resume, and the exported SD folder.
 */
import assert from "node:assert/strict";
import { encodePngRgb } from "../lib/data/png.ts";
import { squareCrop } from "../lib/image/square_crop.ts";
import { NORM_SYMMETRIC, packNchw } from "../lib/image/preprocess.ts";
import {
  encodeImages,
  encodePrompts,
  loadOnnxPipeline,
  type OnnxPipeline,
  txt2img,
} from "../lib/onnx/sd_pipeline.ts";
import { float32ToFloat16Bits } from "../lib/onnx/float16.ts";
import { buildLatentCache, cacheShardName, loadLatentCache } from "../lib/recipe/latent_cache.ts";
import { decodeCacheTensors } from "../lib/recipe/latent_cache_file.ts";
import { resolvePreset } from "../lib/recipe/presets.ts";
import { resolveUnetConfig, UNET_PRESETS, type UnetConfig } from "../lib/models/unet.ts";
import { unetConfigFromDiffusers } from "../lib/models/diffusers_unet_config.ts";
import { loadModel } from "../lib/recipe/model_files.ts";
import { exportPartsFolder } from "../lib/recipe/parts_export.ts";
import { trainOnParts } from "../lib/jobs/train_parts.ts";
import { readMetrics } from "../lib/train/mod.ts";
import { initBackendAndConvGrad } from "../lib/train/init_backend.ts";
import { Rng, STREAM } from "../lib/util/rng.ts";
import { randomImage } from "./helpers/images.ts";
import { makeTar } from "./helpers/tar.ts";
import { localWorld } from "./helpers/local_world.ts";
import { assertClose } from "./helpers/assert_close.ts";
import { cli } from "./helpers/cli.ts";
import type { RgbImage } from "../lib/plot/mod.ts";

const FIXTURE = new URL("./fixtures/tiny_sd/fp32_scalar_t", import.meta.url).pathname;
/** Tiny CLIP towers over the fixture's tokenizer: the CLIP-FID judge of SD folders. */
const TOWERS = new URL("./fixtures/tiny_clip_towers", import.meta.url).pathname;
const SEED = 3;

/** Shard i, record j: a random picture; sizes whose short side is 64 need no resize. */
const SIZES: [number, number][][] = [
  [[80, 64], [64, 96], [64, 64]],
  [[96, 64], [128, 100], [64, 70]],
  [[70, 64], [64, 81], [90, 72]],
];

function record(i: number, j: number): { key: string; image: RgbImage; caption: string } {
  const [w, h] = SIZES[i][j];
  return {
    key: `s${i}r${j}`,
    image: randomImage(w, h, 11, [i, j]),
    caption: ["a red circle", "two blue squares", "a green star at night"][(i + j) % 3],
  };
}

/** Three shards of three images; shard 1 also holds a corrupt PNG (skipped and counted). */
async function writeShards(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (let i = 0; i < SIZES.length; i++) {
    const entries: [string, Uint8Array | string][] = [];
    for (let j = 0; j < SIZES[i].length; j++) {
      const r = record(i, j);
      entries.push([`${r.key}.png`, encodePngRgb(r.image.data, r.image.width, r.image.height)]);
      entries.push([`${r.key}.txt`, r.caption]);
      if (i === 1 && j === 0) {
        entries.push(["s1bad.png", Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3])]);
        entries.push(["s1bad.txt", "a broken picture"]);
      }
    }
    await Deno.writeFile(`${dir}/0000${i}.tar`, await makeTar(entries));
  }
}

async function filesOf(dir: string): Promise<Map<string, Uint8Array>> {
  const m = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile) m.set(e.name, await Deno.readFile(`${dir}/${e.name}`));
  }
  return m;
}

function assertSameFiles(a: Map<string, Uint8Array>, b: Map<string, Uint8Array>, what: string) {
  assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort(), `${what}: file names`);
  for (const [k, v] of a) assert.deepEqual(b.get(k), v, `${what}: ${k} differs`);
}

/** Posterior std of one image computed here from the encoder's raw output (NCHW -> NHWC). */
async function directStd(pipe: OnnxPipeline, img: RgbImage): Promise<Float32Array> {
  const io = pipe.io.encoder!;
  const x = packNchw([img], NORM_SYMMETRIC);
  const out = (await pipe.vaeEncoder!.run({
    [io.image]: { data: x, shape: [1, 3, img.height, img.width] },
  }, [io.latent]))[io.latent];
  const raw = out.data as Float32Array, [, , h, w] = out.dims, L = 4;
  const std = new Float32Array(h * w * L);
  for (let c = 0; c < L; c++) {
    for (let p = 0; p < h * w; p++) {
      const lv = Math.min(20, Math.max(-30, raw[(L + c) * h * w + p]));
      std[p * L + c] = Math.exp(lv / 2) * 0.18215;
    }
  }
  return std;
}

Deno.test("squareCrop = Pillow LANCZOS resize + torchvision's CenterCrop, and its flip", async () => {
  const ref = JSON.parse(
    await Deno.readTextFile(new URL("./fixtures/lanczos_pillow.json", import.meta.url)),
  );
  const { resizeRgb } = await import("../lib/image/preprocess.ts");
  const img = { data: Uint8Array.from(ref.image), width: ref.width, height: ref.height };
  const down = resizeRgb(img, { width: 11, height: 8, filter: "lanczos" });
  assert.deepEqual([...down.data], ref.down_11x8);
  assert.deepEqual(
    [...resizeRgb(img, { width: 27, height: 21, filter: "lanczos" }).data],
    ref.up_27x21,
  );
  assert.deepEqual([...squareCrop(img, { size: 8 }).data], ref.crop_8);
  assert.deepEqual([...squareCrop(img, { size: 8, flip: true }).data], ref.crop_8_flipped);
});

Deno.test("latent cache, rank split, resume, UNet training and the SD folder", async (t) => {
  await initBackendAndConvGrad("cpu-js", { quiet: true });
  const root = await Deno.makeTempDir({ prefix: "sd_parts_" });
  const data = `${root}/shards`;
  await writeShards(data);
  const pipe = await loadOnnxPipeline(FIXTURE, { threads: 1 });
  const quiet = { log: () => {}, progress: false };
  const base = { parts: pipe, data, resolution: 64, randomFlip: true, seed: SEED, ...quiet };
  try {
    const A = `${root}/cacheA`;
    await t.step("cache records = a direct encode of the same crop", async () => {
      const m = await buildLatentCache({ ...base, dir: A, encodeBatch: 2 });
      assert.equal(m.records, 9);
      assert.equal(m.seen, 10);
      assert.equal(m.skipped.corruptImage, 1);
      assert.deepEqual(m.latentShape, [8, 8, 4]);
      assert.deepEqual(m.contextShape, [77, 32]);
      assert.equal(m.posterior, true);
      let flips = 0;
      for (let i = 0; i < 3; i++) {
        const path = `${A}/${cacheShardName(i)}`;
        const f = decodeCacheTensors(await Deno.readFile(path), path);
        assert.deepEqual(JSON.parse(f.metadata.keys), SIZES[i].map((_, j) => `s${i}r${j}`));
        const flipped: boolean[] = JSON.parse(f.metadata.flipped);
        for (let j = 0; j < 3; j++) {
          const r = record(i, j);
          // The record's position in its tar counts groups (shard 1's corrupt one after r0).
          const pos = i === 1 && j > 0 ? j + 2 : j + 1;
          const flip = Rng.stream(SEED, [STREAM.data, 0xf11b, i, pos]).uniform() < 0.5;
          assert.equal(flipped[j], flip, `s${i}r${j} flip`);
          flips += flip ? 1 : 0;
          let crop: RgbImage;
          const [w, h] = SIZES[i][j];
          if (Math.min(w, h) === 64) {
            // No resize: the crop is the centre slice at torchvision's offset
            // int(round((side - 64) / 2.0)), Python's round: 8.5 -> 8.
            const half = (d: number) =>
              d % 2 === 0 || (d - 1) % 4 === 0 ? (d - d % 2) / 2 : (d + 1) / 2;
            const x0 = half(w - 64), y0 = half(h - 64);
            const px = new Uint8Array(64 * 64 * 3);
            for (let y = 0; y < 64; y++) {
              for (let x = 0; x < 64; x++) {
                const sx = flip ? x0 + 63 - x : x0 + x;
                px.set(
                  r.image.data.subarray(((y0 + y) * w + sx) * 3, ((y0 + y) * w + sx) * 3 + 3),
                  (y * 64 + x) * 3,
                );
              }
            }
            crop = { data: px, width: 64, height: 64 };
          } else crop = squareCrop(r.image, { size: 64, flip });
          const per = 8 * 8 * 4, at = j * per;
          const want = await encodeImages(pipe, [crop]);
          assertClose(
            f.tensors.mean.data.subarray(at, at + per),
            want.latents,
            1e-5,
            `s${i}r${j} mean`,
          );
          assertClose(
            f.tensors.std.data.subarray(at, at + per),
            await directStd(pipe, crop),
            1e-5,
            `s${i}r${j} std`,
          );
          const text = (await encodePrompts(pipe, [r.caption])).states;
          assert.deepEqual(
            f.tensors.text.data.subarray(j * 77 * 32, (j + 1) * 77 * 32),
            float32ToFloat16Bits(text),
          );
        }
      }
      assert.ok(flips > 0 && flips < 9, `a mix of flipped and kept records (${flips} of 9)`);
      const set = await loadLatentCache(A);
      assert.equal(set.keys.length, 9);
      assert.deepEqual(set.emptyContext, (await encodePrompts(pipe, [""])).states);
    });

    await t.step("float16 parts, and an encoder giving only the mean", async () => {
      // The three fixture folders hold the same seeded weights: float16 rounds them, and
      // fp32_int64_t's encoder returns the mean alone (latent_sample, as older exports).
      const a = await loadLatentCache(A);
      for (const [variant, tol] of [["fp16", 3e-3], ["fp32_int64_t", 1e-6]] as const) {
        const p = await loadOnnxPipeline(FIXTURE.replace("fp32_scalar_t", variant), { threads: 1 });
        try {
          const dir = `${root}/cache_${variant}`;
          const m = await buildLatentCache({ ...base, parts: p, dir });
          assert.equal(m.posterior, variant === "fp16");
          const c = await loadLatentCache(dir);
          assert.equal(c.latentStd === undefined, variant !== "fp16");
          assertClose(c.latents, a.latents, tol, `${variant} means`);
        } finally {
          await p.release();
        }
      }
    });

    await t.step("a build killed after its first shard resumes to the same cache", async () => {
      const B = `${root}/cacheB`;
      await assert.rejects(
        buildLatentCache({
          ...base,
          dir: B,
          onShard: () => {
            throw new Error("killed");
          },
        }),
        /killed/,
      );
      assert.deepEqual([...(await filesOf(B)).keys()].sort(), [
        "00000.safetensors",
        "cache.json",
        "empty_prompt.safetensors",
      ]);
      // What a kill in mid-write leaves: a temporary that must never count as a shard.
      await Deno.writeFile(`${B}/00001.safetensors.tmp-999999-0a1b2c3d`, new Uint8Array(10));
      const done: number[] = [];
      await buildLatentCache({ ...base, dir: B, onShard: (i) => void done.push(i) });
      assert.deepEqual(done, [1, 2]);
      const b = await filesOf(B);
      b.delete("00001.safetensors.tmp-999999-0a1b2c3d");
      assertSameFiles(await filesOf(A), b, "resumed cache");
      // Other settings over the same folder are refused, naming the field.
      await assert.rejects(
        buildLatentCache({ ...base, dir: B, resolution: 128 }),
        /cache\.json: field "resolution" is 64/,
      );
    });

    await t.step("ranks split the shards i % size == r, each once", async () => {
      const C = `${root}/cacheC`;
      const [r0, r1] = localWorld(2);
      const seen: number[][] = [[], []];
      await Promise.all([r0, r1].map((comm) =>
        buildLatentCache({
          ...base,
          dir: C,
          comm,
          onShard: (i) => void seen[comm.rank].push(i),
        })
      ));
      assert.deepEqual(seen, [[0, 2], [1]]);
      assertSameFiles(await filesOf(A), await filesOf(C), "2-rank cache");
    });

    const settings = {
      ...resolvePreset("tiny").unet,
      model: UNET_PRESETS.tiny,
      steps: 4,
      batchSize: 4,
      checkpointEvery: 2,
      warmupSteps: 1,
    };
    const job = (out: string) => ({
      parts: FIXTURE,
      data,
      out,
      settings,
      resolution: 64,
      randomFlip: true,
      seed: SEED,
      resume: false,
      backend: "cpu-js",
      skipSamples: true,
      ...quiet,
    });
    const copyCache = async (out: string) => {
      await Deno.mkdir(`${out}/cache`, { recursive: true });
      for (const [k, v] of await filesOf(A)) await Deno.writeFile(`${out}/cache/${k}`, v);
    };

    const R1 = `${root}/run1`, R2 = `${root}/run2`;
    await t.step("UNet training resumes exactly where it stopped", async () => {
      await copyCache(R1);
      const full = await trainOnParts(job(R1));
      assert.ok(Number.isFinite(full.finalLoss!) && full.finalLoss! > 0);
      await copyCache(R2);
      await assert.rejects(
        trainOnParts({
          ...job(R2),
          onLog: (r) => {
            if (r.step === 3) throw new Error("killed at step 3");
          },
        }),
        /killed at step 3/,
      );
      await assert.rejects(trainOnParts(job(R2)), /already holds a run; pass --resume/);
      await trainOnParts({ ...job(R2), resume: true });
      const m1 = await readMetrics(`${R1}/unet/metrics.jsonl`);
      const m2 = await readMetrics(`${R2}/unet/metrics.jsonl`);
      assert.deepEqual(m2.map((r) => r.loss).slice(-2), m1.map((r) => r.loss).slice(-2));
      assert.ok(m1.every((r) => Number.isFinite(r.loss as number)));
      assert.deepEqual(
        await Deno.readFile(`${R2}/unet/model/model.safetensors`),
        await Deno.readFile(`${R1}/unet/model/model.safetensors`),
      );
      assert.deepEqual(
        await Deno.readFile(`${R2}/model/unet/model.onnx`),
        await Deno.readFile(`${R1}/model/unet/model.onnx`),
      );
    });

    await t.step(
      "the SD folder loads, samples deterministically, names diffusers' classes",
      async () => {
        const index = JSON.parse(await Deno.readTextFile(`${R1}/model/model_index.json`));
        assert.equal(index._class_name, "OnnxStableDiffusionPipeline");
        assert.equal(typeof index._diffusers_version, "string");
        for (const part of ["unet", "vae_encoder", "vae_decoder", "text_encoder"]) {
          assert.deepEqual(index[part], ["diffusers", "OnnxRuntimeModel"], part);
        }
        assert.deepEqual(index.tokenizer, ["transformers", "CLIPTokenizer"]);
        assert.deepEqual(index.scheduler, ["diffusers", "PNDMScheduler"]);
        assert.deepEqual(index.safety_checker, [null, null]);
        assert.equal(index.requires_safety_checker, false);
        for (
          const f of ["vae_encoder/model.onnx", "text_encoder/model.onnx", "tokenizer/vocab.json"]
        ) {
          assert.deepEqual(
            await Deno.readFile(`${R1}/model/${f}`),
            await Deno.readFile(`${FIXTURE}/${f}`),
          );
        }
        const unetCfg = JSON.parse(await Deno.readTextFile(`${R1}/model/unet/config.json`));
        assert.deepEqual([unetCfg.sample_size, unetCfg.cross_attention_dim], [8, 32]);
        // unet/config.json is diffusers' own config, read back as the UNet that was trained.
        assert.deepEqual(
          resolveUnetConfig(unetConfigFromDiffusers(unetCfg).config),
          resolveUnetConfig(unetCfg._xgen_kit.config),
        );
        const o = { prompts: ["a red circle"], n: 2, guidance: 3, steps: 3, seed: 5 };
        const out = await loadOnnxPipeline(`${R1}/model`, { threads: 1 });
        let a: RgbImage[];
        try {
          a = await txt2img(out, o);
          const b = await txt2img(out, o);
          assert.equal(a[0].width, 64);
          assert.deepEqual(a.map((x) => x.data), b.map((x) => x.data));
          assert.notDeepEqual(a[0].data, a[1].data);
        } finally {
          await out.release();
        }
        // The same UNet with its weights in unet/model.onnx_data (as an SD-sized one must be)
        // samples the same images.
        const ext = `${root}/model_external`;
        const files = await exportPartsFolder({
          parts: FIXTURE,
          out: ext,
          unet: await (async () => {
            const m = await loadModel<UnetConfig>(`${R1}/unet/model`, "unet");
            return { params: m.params, config: m.info.config };
          })(),
          resolution: 64,
          unetExternalData: "always",
        });
        assert.ok(files.includes("unet/model.onnx_data"), files.join(", "));
        const extPipe = await loadOnnxPipeline(ext, { threads: 1 });
        try {
          assert.deepEqual((await txt2img(extPipe, o)).map((x) => x.data), a.map((x) => x.data));
        } finally {
          await extPipe.release();
        }
      },
    );

    await t.step(
      "the trained folder and the folder it was trained on: one CLIP-FID figure",
      async () => {
        const out = `${root}/eval`;
        const r = await cli([
          "lib/cli/eval.ts",
          ...["--model", `${R1}/model`, "--model", FIXTURE],
          ...["--clip", TOWERS, "--guidance", "1,3", "--n", "4", "--steps", "2"],
          ...["--bootstrap-clip", "10", "--bootstrap-fid", "5", "--out", out],
        ]);
        assert.equal(r.code, 0, r.stderr);
        const doc = JSON.parse(await Deno.readTextFile(`${out}/clip_fid.json`));
        assert.deepEqual(doc.models.map((m: { name: string }) => m.name), [
          "model",
          "fp32_scalar_t",
        ]);
        for (const m of doc.models as { results: { guidance: number; fid: number }[] }[]) {
          assert.deepEqual(m.results.map((row) => row.guidance), [1, 3]);
          assert.ok(m.results.every((row) => Number.isFinite(row.fid) && row.fid >= 0));
        }
        const html = await Deno.readTextFile(`${out}/clip_fid.html`);
        const calls = html.split('Plotly.newPlot("plot", ');
        assert.equal(calls.length, 2, "one figure");
        // One trace per model, named as the JSON names them.
        assert.ok(calls[1].indexOf('"name":"model"') < calls[1].indexOf('"name":"fp32_scalar_t"'));
        assert.ok(calls[1].indexOf('"name":"model"') >= 0);
      },
    );
  } finally {
    await pipe.release();
    await Deno.remove(root, { recursive: true });
  }
});
