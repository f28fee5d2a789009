import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { disposeParams } from "../lib/nn/mod.ts";
import {
  CLIP_PRESETS,
  ClipBpeTokenizer,
  type ClipConfig,
  encode,
  encodeText,
  initClip,
  initUnet,
} from "../lib/models/mod.ts";
import {
  decodeLatents,
  encodeCaptions,
  exportRun,
  generate,
  guidedUnet,
  type LoadedRun,
  loadRun,
} from "../lib/recipe/mod.ts";
import {
  getSampler,
  initialNoise,
  makeSchedule,
  type ScheduleConfig,
  SD_SCHEDULER_JSON,
} from "../lib/diffusion/mod.ts";
import {
  exportAutoencoderDecoder,
  exportAutoencoderEncoder,
  exportClipText,
  exportUnet,
  img2img,
  loadOnnxPipeline,
  type OnnxPipeline,
  saveOnnx,
  txt2img,
} from "../lib/onnx/mod.ts";
import type { RgbImage } from "../lib/plot/mod.ts";
import { Rng } from "../lib/util/rng.ts";
import { diskState, recordDiskStates } from "./helpers/disk_states.ts";
import { makeTinyRun, perturb } from "./helpers/tiny_run.ts";

await tf.setBackend("cpu");

const SESSION = { threads: 1, executionProviders: ["cpu"] } as const;
const CAPTIONS = ["a red circle", "two blue squares", "a green triangle on the left"];
// v-prediction with trailing spacing: the scheduler config round trip must carry both.
const SCHEDULE: Partial<ScheduleConfig> = {
  numTrainTimesteps: 1000,
  betaStart: 0.00085,
  betaEnd: 0.012,
  betaSchedule: "scaled_linear",
  predictionType: "v_prediction",
  timestepSpacing: "trailing",
};

function maxPixelDiff(a: RgbImage[], b: RgbImage[]): number {
  assert.equal(a.length, b.length);
  let m = 0;
  a.forEach((im, i) => {
    assert.equal(im.width, b[i].width);
    assert.equal(im.height, b[i].height);
    for (let k = 0; k < im.data.length; k++) m = Math.max(m, Math.abs(im.data[k] - b[i].data[k]));
  });
  return m;
}

/** Guard against trivially equal outputs: images must vary inside and between each other. */
function assertVaried(images: RgbImage[]): void {
  for (const im of images) {
    const distinct = new Set(im.data).size;
    assert.ok(distinct > 20, `image has only ${distinct} distinct values`);
  }
  assert.ok(maxPixelDiff([images[0]], [images[1]]) > 10, "first two images are (nearly) equal");
}

async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isDirectory) await copyDir(`${from}/${e.name}`, `${to}/${e.name}`);
    else await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

const root = await Deno.makeTempDir({ prefix: "xgen_onnx_sd_" });
const runDir = `${root}/run`;
const exportDir = `${root}/export`;
await makeTinyRun(runDir, { captions: CAPTIONS, schedule: SCHEDULE });
const exported = await exportRun(runDir, exportDir);
const int64 = { timestepDtype: "int64", idsDtype: "int64" } as const;
const run = await loadRun(runDir);

Deno.test("exportRun writes the Optimum layout, model_index.json last", async () => {
  assert.deepEqual(exported.files, [
    "text_encoder/model.onnx",
    "text_encoder/config.json",
    "unet/model.onnx",
    "unet/config.json",
    "vae_encoder/model.onnx",
    "vae_encoder/config.json",
    "vae_decoder/model.onnx",
    "vae_decoder/config.json",
    "image_encoder/model.onnx",
    "image_encoder/config.json",
    "tokenizer/word_tokenizer.json",
    "tokenizer/tokenizer_config.json",
    "scheduler/scheduler_config.json",
    "model_index.json",
  ]);
  const json = async (p: string) => JSON.parse(await Deno.readTextFile(`${exportDir}/${p}`));
  const index = await json("model_index.json");
  // diffusers' ONNX pipeline reads the folder; the word tokenizer is the kit's alone.
  assert.equal(index._class_name, "OnnxStableDiffusionPipeline");
  assert.deepEqual(index.unet, ["diffusers", "OnnxRuntimeModel"]);
  assert.deepEqual(index.tokenizer, [null, null]);
  assert.equal(index._xgen_kit.tokenizer, "WordTokenizer");
  assert.deepEqual(index.scheduler, ["diffusers", "PNDMScheduler"]);
  assert.equal((await json("vae_decoder/config.json")).scaling_factor, 0.8);
  assert.equal((await json("unet/config.json")).sample_size, 4);
  const sched = await json("scheduler/scheduler_config.json");
  assert.equal(sched.prediction_type, "v_prediction");
  assert.equal(sched.timestep_spacing, "trailing");
  assert.equal(sched.beta_schedule, "scaled_linear");
  // The tokenizer file is the run's, byte for byte in content.
  assert.deepEqual(
    await json("tokenizer/word_tokenizer.json"),
    JSON.parse(await Deno.readTextFile(`${runDir}/clip/tokenizer.json`)),
  );

  // "Last" on disk, not just in the returned list: export again, snapshotting the folder after
  // every file-system call, i.e. at every point a crash could stop the export. Whenever
  // model_index.json is on disk the folder must be one whole export, the old or the new one.
  // Once into an empty folder, and once over a copy of the first export with other input dtypes
  // (the text encoder and the UNet change, so a folder of old and new parts is possible).
  const whole = (s: Map<string, string>, ref: Map<string, string>) =>
    [...ref].every(([rel, d]) => s.get(rel) === d);
  await copyDir(exportDir, `${root}/export_over`);
  const scenarios = [
    { out: `${root}/export_fresh`, opts: {} },
    { out: `${root}/export_over`, opts: int64 },
  ];
  for (const { out, opts } of scenarios) {
    const before = diskState(out);
    const { states, ops } = await recordDiskStates(out, () => exportRun(runDir, out, opts));
    const after = diskState(out);
    assert.deepEqual([...after.keys()].sort(), [...exported.files].sort(), `${out}: files left`);
    // Every file needs at least a write and a rename: fewer snapshots means nothing was watched.
    assert.ok(states.length >= 2 * exported.files.length, `only ${states.length} snapshots`);
    states.forEach((s, i) => {
      if (!s.has("model_index.json")) return;
      const stale = [...after.keys()].filter((rel) => s.get(rel) !== after.get(rel));
      assert.ok(
        (before.size > 0 && whole(s, before)) || whole(s, after),
        `${out}: after call ${i} (${ops[i]}) model_index.json is on disk but the folder is ` +
          `neither the old nor the new export (differs from the new one in ${stale.join(", ")})`,
      );
    });
    assert.ok(whole(states.at(-1)!, after), `${out}: the last call leaves the new export`);
    if (before.size > 0) {
      for (const part of ["text_encoder/model.onnx", "unet/model.onnx"]) {
        assert.notEqual(after.get(part), before.get(part), `${part} should change`);
      }
    }
  }
});

Deno.test("txt2img on a kit export = TF.js generate for the same seed (dpmpp_2m + CFG, ddpm)", async () => {
  const pipe = await loadOnnxPipeline(exportDir, SESSION);
  try {
    assert.equal(pipe.source, "xgen-kit");
    assert.equal(pipe.tokenizer.kind, "word");
    assert.equal(pipe.height, 16);
    assert.equal(pipe.width, 16);
    assert.equal(pipe.scalingFactor, 0.8);
    assert.equal(pipe.latentChannels, 4);
    assert.equal(pipe.defaultScheduler, "pndm");
    assert.equal(pipe.io.unet.timestepDtype, "float32");
    const prompts = CAPTIONS.slice(0, 2);
    const o = { prompts, n: 2, guidance: 3, steps: 6, scheduler: "dpmpp_2m", seed: 7 };
    const ref = await generate(run, o);
    const got = await txt2img(pipe, o);
    assertVaried(ref);
    const d = maxPixelDiff(got, ref);
    assert.ok(d <= 2, `dpmpp_2m: max pixel diff ${d} > 2`);
    // Stochastic DDPM without guidance, batches of 3: the per-batch sampler seeds line up too.
    const o2 = { prompts, n: 2, guidance: 1, steps: 5, scheduler: "ddpm", seed: 3, batchSize: 3 };
    const ref2 = await generate(run, o2);
    const d2 = maxPixelDiff(await txt2img(pipe, o2), ref2);
    assert.ok(d2 <= 2, `ddpm: max pixel diff ${d2} > 2`);
    assert.ok(maxPixelDiff(ref, ref2) > 10, "different samplers gave the same images");
  } finally {
    await pipe.release();
  }
});

Deno.test("txt2img with an int64-timestep UNet (SD v1 style) gives the same images", async () => {
  const dir = `${root}/int64`;
  await copyDir(exportDir, dir);
  await saveOnnx(
    `${dir}/unet/model.onnx`,
    await exportUnet(run.unet.params, run.unet.config, { timestepDtype: "int64" }),
  );
  const pipe = await loadOnnxPipeline(dir, SESSION);
  try {
    assert.equal(pipe.io.unet.timestepDtype, "int64");
    const o = { prompts: [CAPTIONS[2]], n: 2, guidance: 2, steps: 5, scheduler: "ddim", seed: 1 };
    const d = maxPixelDiff(await txt2img(pipe, o), await generate(run, o));
    assert.ok(d <= 2, `int64 timesteps: max pixel diff ${d} > 2`);
  } finally {
    await pipe.release();
  }
});

Deno.test("img2img = the same steps through TF.js (encoder mean, per-image noise, strength)", async () => {
  const pipe = await loadOnnxPipeline(exportDir, SESSION);
  try {
    const start = await generate(run, {
      prompts: [CAPTIONS[0]],
      n: 1,
      guidance: 1,
      steps: 3,
      scheduler: "ddim",
      seed: 5,
    });
    const o = {
      images: start,
      prompts: CAPTIONS.slice(1, 3),
      n: 1,
      guidance: 2.5,
      steps: 8,
      strength: 0.5,
      scheduler: "euler",
      seed: 9,
    };
    const got = await img2img(pipe, o);

    // Reference: the kit's TF.js parts in the documented order.
    const S = run.imageSize, per = 4 * 4 * 4;
    const x0 = tf.tidy(() => {
      const px = Float32Array.from(start[0].data, (v) => v / 127.5 - 1);
      const d = encode(run.ae.params, run.ae.config, tf.tensor4d(px, [1, S, S, 3]));
      return tf.mul(d.mean, run.ae.scalingFactor).dataSync() as Float32Array;
    });
    const states = await encodeCaptions(run.clip, ["", ...o.prompts]);
    const ctxPer = 16 * 32, b = 2;
    const ctx = new Float32Array(2 * b * ctxPer);
    const x = new Float32Array(b * per), noise = new Float32Array(b * per);
    for (let j = 0; j < b; j++) {
      x.set(x0, j * per);
      noise.set(initialNoise(o.seed, j, 0, per), j * per);
      ctx.set(states.subarray(0, ctxPer), j * ctxPer);
      ctx.set(states.subarray((j + 1) * ctxPer, (j + 2) * ctxPer), (b + j) * ctxPer);
    }
    const z = await getSampler("euler")(guidedUnet(run, ctx, b, o.guidance), x, run.schedule, {
      steps: o.steps,
      seed: o.seed,
      strength: o.strength,
      noise,
    });
    const ref = await decodeLatents(run, z, b);
    assertVaried(ref);
    const d = maxPixelDiff(got, ref);
    assert.ok(d <= 2, `img2img: max pixel diff ${d} > 2`);
    assert.ok(maxPixelDiff(got, [start[0], start[0]]) > 5, "img2img returned the input");
  } finally {
    await pipe.release();
  }
});

/** A tiny CLIP BPE vocabulary: the special tokens, letters (inner and word-final) and "red". */
function bpeFiles(): { vocab: Record<string, number>; merges: string } {
  const vocab: Record<string, number> = { "<|startoftext|>": 0, "<|endoftext|>": 1 };
  for (const ch of "abcdefghijklmnopqrstuvwxyz") {
    vocab[ch] = Object.keys(vocab).length;
    vocab[`${ch}</w>`] = Object.keys(vocab).length;
  }
  vocab["re"] = Object.keys(vocab).length;
  vocab["red</w>"] = Object.keys(vocab).length;
  return { vocab, merges: "#version: 0.2\nr e\nre d</w>\n" };
}

Deno.test("an Optimum-style SD folder (CLIP BPE tokenizer, 77 tokens, int64 ids and timesteps, SD scheduler) = TF.js", async () => {
  const dir = `${root}/optimum`;
  const { vocab, merges } = bpeFiles();
  await Deno.mkdir(`${dir}/tokenizer`, { recursive: true });
  await Deno.writeTextFile(`${dir}/tokenizer/vocab.json`, JSON.stringify(vocab));
  await Deno.writeTextFile(`${dir}/tokenizer/merges.txt`, merges);
  await Deno.writeTextFile(
    `${dir}/tokenizer/tokenizer_config.json`,
    JSON.stringify({ model_max_length: 77, pad_token: "<|endoftext|>" }),
  );
  const tok = await ClipBpeTokenizer.load(`${dir}/tokenizer`);
  const clipCfg: ClipConfig = {
    ...CLIP_PRESETS.tiny,
    vocabSize: tok.vocabSize,
    contextLength: 77,
    eosTokenId: tok.endId,
  };
  const clip = perturb(initClip(clipCfg, Rng.stream(21)), 22);
  const files: [string, Uint8Array | unknown][] = [
    ["text_encoder/model.onnx", await exportClipText(clip, clipCfg, { idsDtype: "int64" })],
    [
      "unet/model.onnx",
      await exportUnet(run.unet.params, run.unet.config, { timestepDtype: "int64" }),
    ],
    [
      "vae_decoder/model.onnx",
      await exportAutoencoderDecoder(run.ae.params, run.ae.config, { layout: "NCHW" }),
    ],
    ["vae_encoder/model.onnx", await exportAutoencoderEncoder(run.ae.params, run.ae.config)],
    ["scheduler/scheduler_config.json", SD_SCHEDULER_JSON],
    // No scaling_factor: older diffusers configs lack it and 0.18215 applies.
    ["vae_decoder/config.json", { _class_name: "AutoencoderKL", block_out_channels: [8, 16, 16] }],
    ["unet/config.json", { _class_name: "UNet2DConditionModel", sample_size: 4, in_channels: 4 }],
    ["model_index.json", {
      _class_name: "StableDiffusionPipeline",
      tokenizer: ["transformers", "CLIPTokenizer"],
      scheduler: ["diffusers", "PNDMScheduler"],
    }],
  ];
  for (const [rel, data] of files) {
    await Deno.mkdir(`${dir}/${rel.slice(0, rel.lastIndexOf("/"))}`, { recursive: true });
    if (data instanceof Uint8Array) await saveOnnx(`${dir}/${rel}`, data);
    else await Deno.writeTextFile(`${dir}/${rel}`, JSON.stringify(data));
  }
  const pipe = await loadOnnxPipeline(dir, SESSION);
  try {
    assert.equal(pipe.source, "optimum");
    assert.equal(pipe.tokenizer.kind, "clip_bpe");
    assert.equal(pipe.tokenizer.contextLength, 77);
    assert.equal(pipe.io.text.idsDtype, "int64");
    assert.equal(pipe.io.unet.timestepDtype, "int64");
    assert.equal(pipe.scalingFactor, 0.18215);
    assert.equal(pipe.defaultScheduler, "pndm");
    assert.equal(pipe.io.encoder?.latent, "latent_parameters");
    const prompts = ["a red circle", "red"];
    const o = { prompts, n: 1, guidance: 4, steps: 4, seed: 2 };
    const got = await txt2img(pipe, o);

    // Reference: TF.js text states of the BPE ids, the run's UNet and decoder, SD's PNDM schedule.
    const sdRun: LoadedRun = {
      ...run,
      ae: { ...run.ae, scalingFactor: 0.18215 },
      clip: { ...run.clip, params: clip, config: clipCfg },
      schedule: makeSchedule(pipe.scheduleConfig),
    };
    const states = tf.tidy(() => {
      const ids = tok.encodeBatch(["", ...prompts]).ids;
      const e = encodeText(clip, clipCfg, tf.tensor2d(ids, [3, 77], "int32"));
      return e.hidden.dataSync() as Float32Array;
    });
    const ctxPer = 77 * 32, b = 2, per = 64;
    const ctx = new Float32Array(2 * b * ctxPer), x = new Float32Array(b * per);
    for (let j = 0; j < b; j++) {
      x.set(initialNoise(o.seed, j, 0, per), j * per);
      ctx.set(states.subarray(0, ctxPer), j * ctxPer);
      ctx.set(states.subarray((j + 1) * ctxPer, (j + 2) * ctxPer), (b + j) * ctxPer);
    }
    assert.equal(sdRun.schedule.config.stepsOffset, 1);
    const z = await getSampler("pndm")(guidedUnet(sdRun, ctx, b, o.guidance), x, sdRun.schedule, {
      steps: o.steps,
      seed: o.seed,
    });
    const ref = await decodeLatents(sdRun, z, b);
    assertVaried(ref);
    const d = maxPixelDiff(got, ref);
    assert.ok(d <= 2, `optimum folder: max pixel diff ${d} > 2`);
  } finally {
    await pipe.release();
    disposeParams(clip);
  }
});

Deno.test("loadOnnxPipeline: a missing part or a UNet that does not fit fails clearly", async () => {
  const missing = `${root}/missing`;
  await copyDir(exportDir, missing);
  await Deno.remove(`${missing}/unet/model.onnx`);
  await assert.rejects(
    loadOnnxPipeline(missing, SESSION),
    /missing\/unet\/model\.onnx: missing; an ONNX Stable Diffusion folder has text_encoder\/, unet\//,
  );
  await assert.rejects(
    loadOnnxPipeline(`${root}/nope`, SESSION),
    /nope: ONNX pipeline folder does not exist/,
  );

  // A UNet trained for 16-wide text states, next to a 32-wide text encoder.
  const wrongCtx = `${root}/wrong_ctx`;
  await copyDir(exportDir, wrongCtx);
  const cfg16 = { ...run.unet.config, contextDim: 16 };
  const p16 = initUnet(cfg16, Rng.stream(31));
  await saveOnnx(`${wrongCtx}/unet/model.onnx`, await exportUnet(p16, cfg16));
  await assert.rejects(
    loadOnnxPipeline(wrongCtx, SESSION),
    /unet\/model\.onnx: input "encoder_hidden_states" expects float32 \[batch, sequence, 16\], but the pipeline feeds float32 \[batch, 16, 32\]/,
  );
  disposeParams(p16);

  // A UNet for 3-channel latents, next to a 4-channel VAE.
  const wrongC = `${root}/wrong_channels`;
  await copyDir(exportDir, wrongC);
  const cfg3 = { ...run.unet.config, inChannels: 3, outChannels: 3 };
  const p3 = initUnet(cfg3, Rng.stream(32));
  await saveOnnx(`${wrongC}/unet/model.onnx`, await exportUnet(p3, cfg3));
  await assert.rejects(
    loadOnnxPipeline(wrongC, SESSION),
    /unet\/model\.onnx: input "sample" expects float32 \[batch, 3, height, width\], but the pipeline feeds float32 \[batch, 4, height, width\]/,
  );
  disposeParams(p3);

  // A size the VAE cannot produce, and img2img without a VAE encoder.
  const pipe: OnnxPipeline = await loadOnnxPipeline(exportDir, SESSION);
  try {
    await assert.rejects(
      txt2img(pipe, { prompts: ["a"], guidance: 1, steps: 2, seed: 0, height: 18, width: 16 }),
      /txt2img: image size 18x16 must be positive multiples of the VAE factor 4/,
    );
  } finally {
    await pipe.release();
  }
  const noEnc = `${root}/no_encoder`;
  await copyDir(exportDir, noEnc);
  await Deno.remove(`${noEnc}/vae_encoder/model.onnx`);
  const pipe2 = await loadOnnxPipeline(noEnc, SESSION);
  try {
    const image = { data: new Uint8Array(16 * 16 * 3), width: 16, height: 16 };
    await assert.rejects(
      img2img(pipe2, {
        images: [image],
        prompts: ["a"],
        strength: 0.5,
        guidance: 1,
        steps: 2,
        seed: 0,
      }),
      /no_encoder\/vae_encoder\/model\.onnx: missing; img2img needs the VAE encoder/,
    );
  } finally {
    await pipe2.release();
  }
});

Deno.test("cleanup", async () => {
  disposeParams(run.ae.params);
  disposeParams(run.clip.params);
  disposeParams(run.unet.params);
  await Deno.remove(root, { recursive: true });
});
