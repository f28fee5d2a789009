import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { type Params, timestepEmbedding } from "../lib/nn/mod.ts";
import {
  AUTOENCODER_PRESETS,
  CLIP_PRESETS,
  type ClipConfig,
  encode,
  encodeImage,
  encodeText,
  initAutoencoder,
  initClip,
  initUnet,
  UNET_PRESETS,
  type UnetConfig,
  unetForward,
} from "../lib/models/mod.ts";
import {
  exportAutoencoderEncoder,
  exportClipImage,
  exportClipText,
  exportUnet,
  OnnxGraph,
  OnnxOps,
  openSession,
  readOnnx,
} from "../lib/onnx/mod.ts";
import { Rng } from "../lib/util/rng.ts";
import { assertClose } from "./helpers/assert_close.ts";

await tf.setBackend("cpu");

const OPTS = { threads: 1, executionProviders: ["cpu"] } as const;

/**
 * Perturb every 1-D parameter (biases, norm scales and shifts): at init norms are exactly 1/0,
 * which would hide a swapped weight and bias. Matrices keep their (scaled) init so activations
 * stay O(1) and 1e-4 is a meaningful float32 tolerance.
 */
function perturb(p: Params, seed: number): Params {
  const rng = Rng.stream(seed);
  for (const v of Object.values(p)) {
    if (v.rank === 1) v.assign(tf.add(v, tf.tensor(rng.normal(v.size), v.shape).mul(0.3)));
  }
  return p;
}

/** NCHW values -> NHWC values. */
function toNhwc(data: Float32Array, [n, c, h, w]: number[]): Float32Array {
  return tf.tidy(() =>
    tf.transpose(tf.tensor4d(data, [n, c, h, w]), [0, 2, 3, 1]).dataSync() as Float32Array
  );
}

/** NHWC values -> NCHW values. */
function toNchw(data: Float32Array, [n, h, w, c]: number[]): Float32Array {
  return tf.tidy(() =>
    tf.transpose(tf.tensor4d(data, [n, h, w, c]), [0, 3, 1, 2]).dataSync() as Float32Array
  );
}

/** ONNX within 1e-4 of the tfjs reference, which must not be ~0. */
const assertNear = (got: ArrayLike<number>, ref: ArrayLike<number>, what: string) =>
  assertClose(got, ref, 1e-4, what, { scale: "absolute", nonTrivial: 0.05 });

/** Run a UNet export against unetForward on random NHWC inputs. */
async function checkUnet(cfg: UnetConfig, seed: number, hw: [number, number]): Promise<void> {
  const p = perturb(initUnet(cfg, Rng.stream(seed)), seed + 1);
  const rng = Rng.stream(seed + 2);
  const [B, H, W, C, T] = [2, hw[0], hw[1], cfg.inChannels, 5];
  const x = rng.normal(B * H * W * C);
  const ctx = rng.normal(B * T * cfg.contextDim);
  const ts = [17, 731.5];
  const ref = tf.tidy(() =>
    unetForward(p, cfg, {
      x: tf.tensor4d(x, [B, H, W, C]),
      t: tf.tensor1d(ts),
      context: tf.tensor3d(ctx, [B, T, cfg.contextDim]),
    }).dataSync() as Float32Array
  );
  const s = await openSession(await exportUnet(p, cfg), { ...OPTS, name: "unet.onnx" });
  assert.deepEqual(s.inputs.map((i) => [i.name, i.dtype, i.shape]), [
    ["sample", "float32", ["batch", C, "height", "width"]],
    ["timestep", "float32", ["steps"]],
    ["encoder_hidden_states", "float32", ["batch", "sequence", cfg.contextDim]],
  ]);
  assert.deepEqual(s.outputs.map((o) => o.name), ["out_sample"]);
  const feeds = {
    sample: { data: toNchw(x, [B, H, W, C]), shape: [B, C, H, W] },
    timestep: { data: Float32Array.from(ts), shape: [B] },
    encoder_hidden_states: { data: ctx, shape: [B, T, cfg.contextDim] },
  };
  const out = (await s.run(feeds)).out_sample;
  assert.deepEqual(out.dims, [B, cfg.outChannels, H, W]);
  assertNear(toNhwc(out.data as Float32Array, [B, cfg.outChannels, H, W]), ref, "unet");

  // One timestep broadcast over the batch (how diffusers' ONNX pipelines feed it).
  const same = tf.tidy(() =>
    unetForward(p, cfg, {
      x: tf.tensor4d(x, [B, H, W, C]),
      t: tf.tensor1d([ts[0], ts[0]]),
      context: tf.tensor3d(ctx, [B, T, cfg.contextDim]),
    }).dataSync() as Float32Array
  );
  const one = (await s.run({ ...feeds, timestep: { data: Float32Array.of(ts[0]), shape: [1] } }))
    .out_sample;
  assertNear(toNhwc(one.data as Float32Array, [B, cfg.outChannels, H, W]), same, "unet t[1]");
  await s.release();

  // int64 timesteps (Stable Diffusion v1's Optimum export) at integer t.
  const s64 = await openSession(await exportUnet(p, cfg, { timestepDtype: "int64" }), OPTS);
  assert.equal(s64.inputs[1].dtype, "int64");
  const out64 = (await s64.run({
    ...feeds,
    timestep: { data: BigInt64Array.of(17n, 731n), shape: [B] },
  })).out_sample;
  const ref64 = tf.tidy(() =>
    unetForward(p, cfg, {
      x: tf.tensor4d(x, [B, H, W, C]),
      t: tf.tensor1d([17, 731]),
      context: tf.tensor3d(ctx, [B, T, cfg.contextDim]),
    }).dataSync() as Float32Array
  );
  assertNear(toNhwc(out64.data as Float32Array, [B, cfg.outChannels, H, W]), ref64, "unet i64");
  await s64.release();
  tf.dispose(Object.values(p));
}

Deno.test("exportUnet (tiny preset) = unetForward, float and int64 timesteps", async () => {
  await checkUnet(UNET_PRESETS.tiny, 100, [8, 6]);
});

Deno.test("exportUnet: attention on two levels, linear projections, depth 2 = unetForward", async () => {
  const cfg: UnetConfig = {
    inChannels: 3,
    outChannels: 5,
    blockChannels: [16, 24],
    layersPerBlock: 2,
    attentionLevels: [true, true],
    headDim: 8,
    contextDim: 12,
    groupNormGroups: 8,
    useLinearProjection: true,
    timeEmbedDim: 40,
    transformerDepth: 2,
  };
  await checkUnet(cfg, 200, [4, 6]);
});

Deno.test("timestepEmbedding on OnnxOps (odd dim, sin first, scale) = tfjs", async () => {
  const g = new OnnxGraph("temb");
  const m = new OnnxOps(g, {});
  const t = m.input("t", "float32", ["n"]);
  const opts = { dim: 7, flipSinToCos: false, downscaleFreqShift: 1, scale: 2, maxPeriod: 100 };
  m.output(timestepEmbedding(m, t, opts), "emb");
  const s = await openSession(g.toBytes(), OPTS);
  const ts = Float32Array.of(0, 3.5, 999);
  const out = await s.run({ t: { data: ts, shape: [3] } });
  const ref = tf.tidy(() => timestepEmbedding(tf.tensor1d(ts), opts).dataSync());
  assert.deepEqual(out[s.outputs[0].name].dims, [3, 7]);
  assertNear(out[s.outputs[0].name].data as Float32Array, ref, "timestep embedding");
  await s.release();
});

Deno.test("exportAutoencoderEncoder: latent_parameters = encode's mean and logvar (NCHW)", async () => {
  const cfg = AUTOENCODER_PRESETS.tiny;
  const p = perturb(initAutoencoder(cfg, Rng.stream(300)), 301);
  const [B, H, W] = [2, 16, 12];
  const x = Rng.stream(302).normal(B * H * W * 3).map((v) => Math.tanh(v));
  const lc = cfg.latentChannels;
  const [mean, logvar] = tf.tidy(() => {
    const d = encode(p, cfg, tf.tensor4d(x, [B, H, W, 3]));
    return [d.mean.dataSync() as Float32Array, d.logvar.dataSync() as Float32Array];
  });
  const bytes = await exportAutoencoderEncoder(p, cfg);
  const view = readOnnx(bytes, "vae_encoder.onnx");
  assert.deepEqual(view.graph.outputs[0], {
    name: "latent_parameters",
    dtype: "float32",
    shape: ["batch", 2 * lc, "latent_height", "latent_width"],
  });
  const s = await openSession(bytes, OPTS);
  const out = (await s.run({ sample: { data: toNchw(x, [B, H, W, 3]), shape: [B, 3, H, W] } }))
    .latent_parameters;
  const [h, w] = [H / 4, W / 4];
  assert.deepEqual(out.dims, [B, 2 * lc, h, w]);
  const nhwc = toNhwc(out.data as Float32Array, [B, 2 * lc, h, w]);
  const gotMean = new Float32Array(mean.length), gotLogvar = new Float32Array(mean.length);
  for (let i = 0; i < B * h * w; i++) {
    for (let c = 0; c < lc; c++) {
      gotMean[i * lc + c] = nhwc[i * 2 * lc + c];
      gotLogvar[i * lc + c] = Math.min(20, Math.max(-30, nhwc[i * 2 * lc + lc + c]));
    }
  }
  assertNear(gotMean, mean, "encoder mean");
  assertNear(gotLogvar, logvar, "encoder logvar");
  await s.release();
  // NHWC layout: same numbers, channels last.
  const s2 = await openSession(await exportAutoencoderEncoder(p, cfg, { layout: "NHWC" }), OPTS);
  const o2 = (await s2.run({ sample: { data: x, shape: [B, H, W, 3] } })).latent_parameters;
  assertClose(o2.data as Float32Array, nhwc, 1e-5, "encoder NHWC", { scale: "absolute" });
  await s2.release();
  tf.dispose(Object.values(p));
});

/** Token ids: row 0 with one end token, row 1 with two (the first pools), row 2 with none. */
function clipIds(cfg: ClipConfig): Int32Array {
  const T = cfg.contextLength;
  const rng = Rng.stream(401);
  const ids = Int32Array.from({ length: 3 * T }, () => 4 + rng.int(cfg.vocabSize - 4));
  ids[0] = ids[T] = ids[2 * T] = 2;
  ids[5] = 3;
  ids[T + 3] = 3;
  ids[T + 9] = 3;
  return ids;
}

Deno.test("exportClipText: last_hidden_state, pooler_output, text_embeds = encodeText (int32, int64)", async () => {
  const cfg: ClipConfig = { ...CLIP_PRESETS.tiny, textLayers: 2 };
  const p = perturb(initClip(cfg, Rng.stream(400)), 402);
  const T = cfg.contextLength, D = cfg.textWidth;
  const ids = clipIds(cfg);
  const [hidden, embeds] = tf.tidy(() => {
    const e = encodeText(p, cfg, tf.tensor2d(ids, [3, T], "int32"));
    return [e.hidden.dataSync() as Float32Array, e.embeds.dataSync() as Float32Array];
  });
  for (const dtype of ["int32", "int64"] as const) {
    const s = await openSession(await exportClipText(p, cfg, { idsDtype: dtype }), OPTS);
    assert.deepEqual(s.inputs[0], { name: "input_ids", dtype, shape: ["batch", T] });
    assert.deepEqual(s.outputs.map((o) => o.name), [
      "last_hidden_state",
      "pooler_output",
      "text_embeds",
    ]);
    const data = dtype === "int32" ? ids : BigInt64Array.from(ids, (v) => BigInt(v));
    const out = await s.run({ input_ids: { data, shape: [3, T] } });
    assert.deepEqual(out.last_hidden_state.dims, [3, T, D]);
    assertNear(out.last_hidden_state.data as Float32Array, hidden, `hidden ${dtype}`);
    assertNear(out.text_embeds.data as Float32Array, embeds, `embeds ${dtype}`);
    // pooler_output is the hidden state at positions 5, 3 (first of two) and 0 (no end token).
    const pooled = out.pooler_output.data as Float32Array;
    [5, 3, 0].forEach((pos, b) => {
      const row = hidden.subarray((b * T + pos) * D, (b * T + pos + 1) * D);
      assertNear(pooled.subarray(b * D, (b + 1) * D), row, `pooled row ${b}`);
    });
    await s.release();
  }
  tf.dispose(Object.values(p));
});

Deno.test("exportClipImage: image_embeds = encodeImage", async () => {
  const cfg = CLIP_PRESETS.tiny;
  const p = perturb(initClip(cfg, Rng.stream(500)), 501);
  const S = cfg.imageSize;
  const x = Rng.stream(502).normal(2 * S * S * 3).map((v) => Math.tanh(v));
  const ref = tf.tidy(() => encodeImage(p, cfg, tf.tensor4d(x, [2, S, S, 3])).dataSync());
  const s = await openSession(await exportClipImage(p, cfg), OPTS);
  assert.deepEqual(s.inputs[0], {
    name: "pixel_values",
    dtype: "float32",
    shape: ["batch", 3, S, S],
  });
  const out =
    (await s.run({ pixel_values: { data: toNchw(x, [2, S, S, 3]), shape: [2, 3, S, S] } }))
      .image_embeds;
  assert.deepEqual(out.dims, [2, cfg.embedDim]);
  assertNear(out.data as Float32Array, ref, "image embeds");
  await s.release();
  tf.dispose(Object.values(p));
});

Deno.test("exported models reject inputs that do not fit, naming the input and expected shape", async () => {
  const cfg = UNET_PRESETS.tiny;
  const p = initUnet(cfg, Rng.stream(600));
  const s = await openSession(await exportUnet(p, cfg), { ...OPTS, name: "unet/model.onnx" });
  const ok = {
    sample: { data: new Float32Array(2 * 4 * 4 * 4), shape: [2, 4, 4, 4] },
    timestep: { data: new Float32Array(2), shape: [2] },
    encoder_hidden_states: { data: new Float32Array(2 * 3 * 32), shape: [2, 3, 32] },
  };
  await assert.rejects(
    s.run({
      ...ok,
      encoder_hidden_states: { data: new Float32Array(2 * 3 * 31), shape: [2, 3, 31] },
    }),
    /unet\/model\.onnx: input "encoder_hidden_states" expects float32 \[batch, sequence, 32\], got float32 \[2, 3, 31\]/,
  );
  await assert.rejects(
    s.run({ ...ok, sample: { data: new Float32Array(3 * 4 * 4 * 4), shape: [3, 4, 4, 4] } }),
    /input "encoder_hidden_states" expects .*\(batch = 3 from input "sample"\)/,
  );
  await assert.rejects(
    s.run({ ...ok, timestep: { data: new Int32Array(2), shape: [2] } }),
    /input "timestep" expects float32 \[steps\], got int32 \[2\]/,
  );
  await s.release();
  const bad = { ...cfg, numHeads: undefined, headDim: 5 };
  await assert.rejects(exportUnet(p, bad), /UnetConfig|headDim/);
  tf.dispose(Object.values(p));
});
