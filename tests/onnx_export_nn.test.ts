import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import {
  attention,
  conv2d,
  downsample,
  gelu,
  groupNorm,
  initAttention,
  initConv2d,
  initDownsample,
  initGroupNorm,
  initLayerNorm,
  initLinear,
  initResnetBlock,
  initUpsample,
  layerNorm,
  linear,
  type Ops,
  type Params,
  resnetBlock,
  TensorBuilder,
  TfOps,
  upsample,
} from "../lib/nn/mod.ts";
import { AUTOENCODER_PRESETS, decode, initAutoencoder } from "../lib/models/mod.ts";
import {
  exportAutoencoderDecoder,
  OnnxGraph,
  OnnxOps,
  type OnnxValue,
  openSession,
  readOnnx,
  readParams,
} from "../lib/onnx/mod.ts";
import { Rng } from "../lib/util/rng.ts";
import { assertClose } from "./helpers/assert_close.ts";

await tf.setBackend("cpu");

const OPTS = { threads: 1, executionProviders: ["cpu"] } as const;
const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** Params from `init`, then every weight redrawn (norm scales are 1/0 at init: too easy). */
function makeParams(seed: number, init: (b: TensorBuilder) => void): Params {
  const rng = Rng.stream(seed);
  const b = new TensorBuilder(rng);
  init(b);
  for (const v of Object.values(b.params)) {
    v.assign(tf.tensor(rng.normal(v.size), v.shape).mul(0.5));
  }
  return b.params;
}

interface Feed {
  name: string;
  shape: number[];
  data: Float32Array;
}

/**
 * Run the lib/nn layers in `build` on the ONNX graph builder (inputs and outputs in the kit's
 * NHWC layout), then the graph on `feeds`; return each output's values.
 */
async function runOnnx(
  p: Params,
  feeds: Feed[],
  build: (m: OnnxOps, inputs: OnnxValue[]) => OnnxValue[],
): Promise<Float32Array[]> {
  const g = new OnnxGraph("layers");
  const m = new OnnxOps(g, await readParams(p));
  const ins = feeds.map((f) => m.input(f.name, "float32", f.shape));
  const outs = build(m, ins).map((o, i) => {
    m.output(o, `out${i}`);
    return `out${i}`;
  });
  const s = await openSession(g.toBytes(), OPTS);
  const res = await s.run(Object.fromEntries(feeds.map((f) => [f.name, f])));
  await s.release();
  return outs.map((o) => res[o].data as Float32Array);
}

function feed(rng: Rng, name: string, shape: number[]): Feed {
  return { name, shape, data: rng.normal(size(shape)) };
}

/** ONNX within `tol` of the tfjs reference, which must not be ~0. */
const assertNear = (onnx: Float32Array, ref: tf.Tensor, tol: number, what: string) =>
  assertClose(onnx, ref.dataSync(), tol, what, { scale: "absolute", nonTrivial: 0.05 });

Deno.test("export conv2d (same/valid/1x1, no bias), downsample, upsample = tfjs", async () => {
  const p = makeParams(21, (b) => {
    initConv2d(b, "c3", { inChannels: 3, outChannels: 5 });
    initDownsample(b, "down", 5);
    initUpsample(b, "up", 5);
    initConv2d(b, "c1", { inChannels: 5, outChannels: 4, kernelSize: 1, bias: false });
  });
  const x = feed(Rng.stream(1), "x", [2, 6, 7, 3]);
  const [chain, valid] = await runOnnx(p, [x], (m, [xi]) => {
    let h = conv2d(m, "c3", xi);
    h = upsample(m, "up", downsample(m, "down", h));
    return [conv2d(m, "c1", h), conv2d(m, "c3", xi, { padding: "valid" })];
  });
  tf.tidy(() => {
    const xt = tf.tensor4d(x.data, x.shape as [number, number, number, number]);
    let h = conv2d(p, "c3", xt);
    h = upsample(p, "up", downsample(p, "down", h));
    const ref = conv2d(p, "c1", h);
    assert.deepEqual(ref.shape, [2, 6, 8, 4]); // 6x7 -> 3x4 -> 6x8
    assertNear(chain, ref, 1e-4, "conv chain");
    assertNear(valid, conv2d(p, "c3", xt, { padding: "valid" }), 1e-4, "valid conv");
  });
});

Deno.test("export groupNorm(+silu), layerNorm, linear, gelu = tfjs", async () => {
  const p = makeParams(22, (b) => {
    initGroupNorm(b, "gn", 8);
    initLayerNorm(b, "ln", 8);
    initLinear(b, "fc", { inFeatures: 8, outFeatures: 6 });
    initLinear(b, "nobias", { inFeatures: 6, outFeatures: 3, bias: false });
  });
  const rng = Rng.stream(2);
  const img = feed(rng, "img", [2, 3, 5, 8]);
  const seq = feed(rng, "seq", [2, 5, 8]);
  const [gnOut, gnPlain, seqOut] = await runOnnx(p, [img, seq], (m, [im, sq]) => [
    groupNorm(m, "gn", im, { groups: 4, silu: true }),
    groupNorm(m, "gn", im, { groups: 2, eps: 1e-3 }),
    linear(m, "nobias", m.gelu(linear(m, "fc", layerNorm(m, "ln", sq)))),
  ]);
  tf.tidy(() => {
    const im = tf.tensor4d(img.data, img.shape as [number, number, number, number]);
    assertNear(gnOut, groupNorm(p, "gn", im, { groups: 4, silu: true }), 1e-4, "groupNorm");
    assertNear(gnPlain, groupNorm(p, "gn", im, { groups: 2, eps: 1e-3 }), 1e-4, "groupNorm 2");
    const sq = tf.tensor3d(seq.data, seq.shape as [number, number, number]);
    const ref = linear(p, "nobias", gelu(linear(p, "fc", layerNorm(p, "ln", sq))));
    assertNear(seqOut, ref, 1e-4, "layerNorm/linear/gelu");
  });
});

Deno.test("export attention (self with key + causal masks, cross) = tfjs", async () => {
  const p = makeParams(23, (b) => {
    initAttention(b, "self", { queryDim: 8, heads: 2, headDim: 4, qkvBias: true });
    initAttention(b, "cross", { queryDim: 8, contextDim: 6, heads: 4, headDim: 3 });
  });
  const rng = Rng.stream(3);
  const x = feed(rng, "x", [2, 5, 8]);
  const ctx = feed(rng, "ctx", [2, 3, 6]);
  const mask = {
    name: "mask",
    shape: [2, 5],
    data: new Float32Array([1, 1, 1, 0, 0, 1, 1, 1, 1, 1]),
  };
  const [selfOut, crossOut] = await runOnnx(p, [x, ctx, mask], (m, [xi, ci, mi]) => [
    attention(m, "self", xi, { heads: 2, keyMask: mi, causal: true }),
    attention(m, "cross", xi, { heads: 4, context: ci }),
  ]);
  tf.tidy(() => {
    const xt = tf.tensor3d(x.data, [2, 5, 8]);
    const keyMask = tf.tensor2d(mask.data, [2, 5]);
    const ref = attention(p, "self", xt, { heads: 2, keyMask, causal: true });
    assertNear(selfOut, ref, 1e-4, "self attention");
    const cref = attention(p, "cross", xt, { heads: 4, context: tf.tensor3d(ctx.data, [2, 3, 6]) });
    assertNear(crossOut, cref, 1e-4, "cross attention");
  });
});

Deno.test("export resnetBlock (shortcut + timestep embedding) = tfjs", async () => {
  const p = makeParams(24, (b) => {
    initResnetBlock(b, "res", { inChannels: 8, outChannels: 12, tembChannels: 10 });
  });
  const rng = Rng.stream(4);
  const x = feed(rng, "x", [2, 4, 4, 8]);
  const temb = feed(rng, "temb", [2, 10]);
  const [out] = await runOnnx(p, [x, temb], (m, [xi, ti]) => [
    resnetBlock(m, "res", xi, { groups: 4, temb: ti }),
  ]);
  tf.tidy(() => {
    const ref = resnetBlock(p, "res", tf.tensor4d(x.data, [2, 4, 4, 8]), {
      groups: 4,
      temb: tf.tensor2d(temb.data, [2, 10]),
    });
    assertNear(out, ref, 1e-4, "resnet block");
  });
  const m = new OnnxOps(new OnnxGraph("no_temb"), await readParams(p));
  const xv = m.input("x", "float32", [1, 8, 4, 4], { layout: "NCHW" });
  assert.throws(
    () => resnetBlock(m, "res", xv, { groups: 4 }),
    /"res": has time_emb_proj but no temb given/,
  );
  assert.throws(() => conv2d(m, "missing", xv), /parameter "missing\.weight" is missing/);
});

Deno.test("exportAutoencoderDecoder: ONNX output = tfjs decode (NHWC and NCHW, any size)", async () => {
  const cfg = AUTOENCODER_PRESETS.tiny;
  const p = initAutoencoder(cfg, Rng.stream(25));
  const bytes = await exportAutoencoderDecoder(p, cfg);
  const view = readOnnx(bytes, "vae_decoder.onnx");
  assert.deepEqual(view.graph.inputs[0], {
    name: "latent_sample",
    dtype: "float32",
    shape: ["batch", "height", "width", 4],
  });
  assert.equal(view.graph.outputs[0].name, "sample");
  // Every decoder weight is in the file; conv weights are OIHW.
  const decoderParams = Object.keys(p).filter((k) => k.startsWith("decoder."));
  const inits = new Map(view.graph.initializers.map((t) => [t.name, t]));
  for (const k of decoderParams) assert.ok(inits.has(k), `initializer ${k}`);
  assert.deepEqual(inits.get("decoder.conv_in.weight")!.shape, [16, 4, 3, 3]);

  const s = await openSession(bytes, { ...OPTS, name: "vae_decoder.onnx" });
  const s2 = await openSession(await exportAutoencoderDecoder(p, cfg, { layout: "NCHW" }), OPTS);
  const rng = Rng.stream(5);
  for (const shape of [[2, 4, 4, 4], [1, 3, 5, 4]]) {
    const z = rng.normal(size(shape));
    const out = (await s.run({ latent_sample: { data: z, shape } })).sample;
    const ref = tf.tidy(() =>
      decode(p, cfg, tf.tensor4d(z, shape as [number, number, number, number]))
    );
    assert.deepEqual(out.dims, ref.shape);
    assertNear(out.data as Float32Array, ref, 1e-4, `decoder ${shape}`);
    // NCHW export: same numbers, channels first.
    const [n, h, w, c] = shape;
    const zc = tf.tidy(() => tf.transpose(tf.tensor4d(z, [n, h, w, c]), [0, 3, 1, 2]).dataSync());
    const outc =
      (await s2.run({ latent_sample: { data: Float32Array.from(zc), shape: [n, c, h, w] } }))
        .sample;
    const back = tf.tidy(() =>
      tf.transpose(
        tf.tensor4d(
          outc.data as Float32Array,
          outc.dims as number[] as [number, number, number, number],
        ),
        [0, 2, 3, 1],
      )
        .dataSync()
    );
    assertClose(back, out.data as Float32Array, 1e-5, `decoder NCHW ${shape}`, {
      scale: "absolute",
    });
    ref.dispose();
  }
  await s.release();
  await s2.release();
});

Deno.test("OnnxOps: broadcasts against NCHW values, reductions, pads, slices at run-time sizes = TfOps", async () => {
  const p = makeParams(26, (b) => {
    initConv2d(b, "c", { inChannels: 3, outChannels: 4 });
    initLinear(b, "fc", { inFeatures: 5, outFeatures: 4 });
  });
  // One generic body on both implementations: the graph keeps conv outputs NCHW, so every op
  // below has to map its logical (NHWC) axes and broadcasts through that layout.
  function body<T>(m: Ops<T>, x: T, v: T): T[] {
    const h = conv2d(m, "c", x);
    const withBias = m.add(h, m.constant(Float32Array.of(1, 2, 3, 4), [4])); // constant [C]
    const scaled = m.mul(withBias, linear(m, "fc", v)); // run-time [1, C]
    const [first, rest] = m.split(scaled, [1, 3], 3);
    return [
      m.mean(rest, [1, 2]),
      m.sum(first, 2),
      m.pad(m.clip(scaled, -1, 1), [[0, 0], [1, 0], [0, 2], [0, 0]]),
      m.slice(m.upsample2x(m.reshape(scaled, [-1, 6, 5, 4])), [0, 1, 0, 1], [-1, 3, 4, 2]),
    ];
  }
  const rng = Rng.stream(6);
  const x = feed(rng, "x", [2, 6, 5, 3]);
  const v = feed(rng, "v", [1, 5]);
  const g = new OnnxGraph("paths");
  const m = new OnnxOps(g, await readParams(p));
  // Height and width are run-time sizes: the reshape must read them from the graph.
  const outs = body(
    m,
    m.input("x", "float32", ["batch", "h", "w", 3]),
    m.input("v", "float32", [1, 5]),
  );
  outs.forEach((o, i) => m.output(o, `o${i}`));
  const s = await openSession(g.toBytes(), OPTS);
  const res = await s.run({ x, v });
  await s.release();
  tf.tidy(() => {
    const ref = body(
      new TfOps(p) as Ops<tf.Tensor>,
      tf.tensor4d(x.data, [2, 6, 5, 3]),
      tf.tensor2d(v.data, [1, 5]),
    );
    ref.forEach((r, i) => {
      assert.deepEqual(res[`o${i}`].dims, r.shape, `o${i} shape`);
      assertNear(res[`o${i}`].data as Float32Array, r, 1e-4, `o${i}`);
    });
  });
});
