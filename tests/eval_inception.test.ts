/**
 * The Inception-v3 ONNX feature extractor with clean-fid conventions: the 299x299 resize modes
 * against closed forms and hand-computed values, the I/O contract read from the session (a tiny
 * stand-in model with the real model's input and output shapes), features equal to an independent
 * TypeScript computation, errors naming the input/output, the reference-statistics cache tied to
 * the resize mode, and `deno task eval --extractor inception` end to end on a tiny run with JPEG
 * references (one corrupt, skipped and reported).
 */
import assert from "node:assert/strict";
import { encode as encodeJpeg } from "jpeg-js";
import {
  decodeJpegRgb,
  featureStats,
  inceptionOnnxExtractor,
  loadReferenceStats,
  resizeRgb,
  type RgbInput,
  saveReferenceStats,
} from "../lib/eval/clip_fid/mod.ts";
import { decodeStats } from "../lib/eval/clip_fid/stats_file.ts";
import { OnnxGraph, type OnnxShape, saveOnnx } from "../lib/onnx/mod.ts";
import { readSafetensors } from "../lib/train/safetensors.ts";
import { INCEPTION_GET, loadProtocol, parseProtocol, requirementsFor } from "../lib/cli/eval.ts";
import { Rng } from "../lib/util/rng.ts";
import { cli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp_dir.ts";
import { assertClose } from "./helpers/assert_close.ts";
import { randomImage } from "./helpers/images.ts";

const S = 299;

/** Spatial probes of the stand-in: channel means plus two 8-pixel rows (row, first column). */
const PROBES: [number, number][] = [[0, 0], [150, 100]];
const FEAT_IN = 3 + PROBES.length * 3 * 8;

function standInWeights(): Float32Array {
  const rng = Rng.stream(11, [4]);
  return Float32Array.from({ length: FEAT_IN * 2048 }, () => rng.gaussian() * 0.1);
}

/**
 * A stand-in with the FID network's I/O contract: images [batch, 3, 299, 299] (or NHWC) ->
 * [channel means, two rows of 8 pixels per channel] (51 values) -> fixed MatMul -> [batch, 2048].
 */
function standIn(
  opts: { input?: OnnxShape; layout?: "NCHW" | "NHWC"; outDim?: number; outName?: string } = {},
): Uint8Array {
  const layout = opts.layout ?? "NCHW";
  const shape = opts.input ??
    (layout === "NCHW" ? ["batch", 3, S, S] : ["batch", S, S, 3]);
  const outDim = opts.outDim ?? 2048;
  const g = new OnnxGraph("inception_stand_in");
  let x = g.input("images", "float32", shape);
  if (layout === "NHWC") x = g.node("Transpose", [x], { perm: [0, 3, 1, 2] });
  const parts = [g.node("Flatten", [g.node("GlobalAveragePool", [x])], { axis: 1 })];
  for (const [r, c] of PROBES) {
    const sl = g.node("Slice", [x, g.int64s([r, c]), g.int64s([r + 1, c + 8]), g.int64s([2, 3])]);
    parts.push(g.node("Flatten", [sl], { axis: 1 }));
  }
  const feat = g.node("Concat", parts, { axis: 1 });
  const w = outDim === 2048
    ? g.initializer("w", standInWeights(), [FEAT_IN, 2048])
    : g.initializer("w", new Float32Array(FEAT_IN * outDim).fill(0.01), [FEAT_IN, outDim]);
  const y = g.node("MatMul", [feat, w], {}, { outputs: [opts.outName ?? "pool3"] });
  g.output(y, "float32", [shape[0], outDim]);
  return g.toBytes();
}

/** The stand-in's features computed in TypeScript (float64) from a preprocessed image. */
function expectedFeatures(pre: Float32Array, map: (v: number) => number): Float64Array {
  const n = S * S;
  const f = new Float64Array(FEAT_IN);
  for (let c = 0; c < 3; c++) {
    let s = 0;
    for (let p = 0; p < n; p++) s += map(pre[3 * p + c]);
    f[c] = s / n;
  }
  let k = 3;
  for (const [r, c0] of PROBES) {
    for (let c = 0; c < 3; c++) {
      for (let j = 0; j < 8; j++) f[k++] = map(pre[(r * S + c0 + j) * 3 + c]);
    }
  }
  const w = standInWeights();
  const out = new Float64Array(2048);
  for (let o = 0; o < 2048; o++) {
    let s = 0;
    for (let i = 0; i < FEAT_IN; i++) s += f[i] * w[i * 2048 + o];
    out[o] = s;
  }
  return out;
}

/** Element-wise |got - want| <= tol. */
const assertNear = (got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string) =>
  assertClose(got, want, tol, what, { scale: "absolute" });

/** One channel of a resized HWC float image. */
const channel = (x: Float32Array, c: number) =>
  Array.from({ length: x.length / 3 }, (_, i) => x[3 * i + c]);

Deno.test("resize: constant images stay constant in every mode and direction", () => {
  for (const mode of ["clean", "legacy_tensorflow", "bilinear"] as const) {
    for (const [w, h] of [[37, 23], [400, 300], [299, 299], [1, 1]]) {
      const data = new Uint8Array(w * h * 3);
      for (let i = 0; i < w * h; i++) data.set([17, 128, 255], 3 * i);
      const out = resizeRgb({ data, width: w, height: h }, { width: S, height: S, mode });
      assert.equal(out.length, S * S * 3);
      for (let i = 0; i < out.length; i++) {
        assert.ok(Math.abs(out[i] - [17, 128, 255][i % 3]) < 1e-4, `${mode} ${w}x${h} [${i}]`);
      }
    }
  }
});

Deno.test("resize clean: a linear ramp is reproduced exactly away from the edges", () => {
  // Keys' cubic (a = -0.5) reproduces linear functions when upscaling; shrinking by an integer
  // factor gives taps symmetric about the centre. Pixel centres sit at i + 0.5.
  const ramp = (w: number, f: (i: number) => number): RgbInput => {
    const data = new Uint8Array(w * 3);
    for (let i = 0; i < w; i++) data.fill(f(i), 3 * i, 3 * i + 3);
    return { data, width: w, height: 1 };
  };
  const up = resizeRgb(ramp(8, (i) => 10 + 20 * i), { width: 20, height: 1 });
  let checked = 0;
  for (let o = 0; o < 20; o++) {
    const center = (o + 0.5) * 0.4;
    if (center - 2 < 0 || center + 2 > 8) continue; // taps cut by the image edge
    assert.ok(Math.abs(up[3 * o] - (10 + 20 * (center - 0.5))) < 1e-4, `up ${o}: ${up[3 * o]}`);
    checked++;
  }
  assert.equal(checked, 10);
  const down = resizeRgb(ramp(16, (i) => 5 + 15 * i), { width: 8, height: 1 });
  for (let o = 2; o <= 5; o++) {
    assert.ok(Math.abs(down[3 * o] - (5 + 15 * (2 * o + 0.5))) < 1e-4, `down ${o}: ${down[3 * o]}`);
  }
  // Other modes: linear interpolation at their source positions.
  const tf = resizeRgb(ramp(8, (i) => 10 + 20 * i), {
    width: 20,
    height: 1,
    mode: "legacy_tensorflow",
  });
  const bl = resizeRgb(ramp(8, (i) => 10 + 20 * i), { width: 20, height: 1, mode: "bilinear" });
  for (let o = 0; o < 20; o++) {
    const srcTf = Math.min(o * 0.4, 7);
    const srcBl = Math.min(Math.max((o + 0.5) * 0.4 - 0.5, 0), 7);
    assert.ok(Math.abs(tf[3 * o] - (10 + 20 * srcTf)) < 1e-4, `legacy_tensorflow ${o}`);
    assert.ok(Math.abs(bl[3 * o] - (10 + 20 * srcBl)) < 1e-4, `bilinear ${o}`);
  }
});

Deno.test("resize: hand-computed values (PIL bicubic weights, clipping, legacy aliasing)", () => {
  // Shrinking 4 -> 2: filter scale 2, so output 0 (centre 1) weighs inputs 0..3 with
  // cubic((x - 0.5) / 2) = [111, 111, 29, -9] / 128, normalised by their sum 242 / 128.
  const row = (v: number[]): RgbInput => ({
    data: Uint8Array.from(v.flatMap((x) => [x, x, x])),
    width: v.length,
    height: 1,
  });
  const r = resizeRgb(row([0, 0, 255, 255]), { width: 2, height: 1 });
  assertNear(channel(r, 0), [20 * 255 / 242, 222 * 255 / 242], 1e-4, "0 0 255 255");
  // Growing 2 -> 4: weights [111, -9]/102, [111, 29]/140, [29, 111]/140, [-9, 111]/102; the
  // negative lobe (-9 * 140 / 102) is clipped to 0.
  const u = resizeRgb(row([0, 140]), { width: 4, height: 1 });
  assertNear(channel(u, 0), [0, 29, 111, 140 * 111 / 102], 1e-4, "0 140");

  // 2-D, separable: a single pixel of 242 in a 4x4 image, shrunk to 2x2.
  const dot = (y: number, x: number, v: number): RgbInput => {
    const data = new Uint8Array(4 * 4 * 3);
    data.fill(v, (y * 4 + x) * 3, (y * 4 + x) * 3 + 3);
    return { data, width: 4, height: 4 };
  };
  const a = resizeRgb(dot(2, 2, 242), { width: 2, height: 2 });
  assertNear(channel(a, 1), [841 / 242, 3219 / 242, 3219 / 242, 12321 / 242], 1e-4, "dot 2,2");
  const b = resizeRgb(dot(3, 3, 242), { width: 2, height: 2 });
  // (-9)(111)/242 < 0 is clipped; (-9)(-9)/242 > 0 is kept.
  assertNear(channel(b, 2), [81 / 242, 0, 0, 12321 / 242], 1e-4, "dot 3,3");

  // legacy_tensorflow samples inputs 0 and 2 when halving: a dot at (1, 1) vanishes (aliasing);
  // bilinear with half-pixel centres averages 2x2 blocks.
  const c = dot(1, 1, 200);
  assertNear(
    channel(resizeRgb(c, { width: 2, height: 2, mode: "legacy_tensorflow" }), 0),
    [0, 0, 0, 0],
    0,
    "legacy dot",
  );
  assertNear(
    channel(resizeRgb(c, { width: 2, height: 2, mode: "bilinear" }), 0),
    [50, 0, 0, 0],
    1e-4,
    "bilinear dot",
  );
  assert.throws(
    () => resizeRgb({ data: new Uint8Array(5), width: 2, height: 1 }, { width: 2, height: 2 }),
    /image data has 5 bytes, expected 2x1x3 RGB/,
  );
});

/**
 * Reference values from Pillow 9.4 (clean-fid's resize: `Image.fromarray(x.astype(float32),
 * mode="F").resize((w, h), BICUBIC)`, clipped to [0, 255]) for one 7x5 grey image; printed as
 * float64 of the float32 results, so equality is bit-exact.
 */
const PIL_INPUT_7X5 = [
  175,
  196,
  25,
  246,
  67,
  211,
  151,
  103,
  92,
  185,
  142,
  23,
  72,
  89,
  110,
  42,
  218,
  136,
  167,
  230,
  68,
  176,
  127,
  135,
  172,
  0,
  75,
  55,
  250,
  6,
  19,
  188,
  44,
  191,
  69,
];
const PIL_OUTPUTS: [number, number, number[]][] = [
  [3, 8, [
    158.18287658691406,
    138.1750030517578,
    170.42515563964844,
    141.74087524414062,
    126.97139739990234,
    119.62527465820312,
    116.6364517211914,
    119.91989135742188,
    65.15684509277344,
    100.6351318359375,
    159.7106475830078,
    135.30810546875,
    115.1659927368164,
    158.4281463623047,
    131.03921508789062,
    151.29200744628906,
    114.06121826171875,
    51.335121154785156,
    123.17434692382812,
    98.67515563964844,
    86.1574935913086,
    96.5676040649414,
    94.12504577636719,
    124.18061065673828,
  ]],
  [11, 2, [
    127.71381378173828,
    123.01898956298828,
    120.64425659179688,
    133.53707885742188,
    158.6919708251953,
    176.0970458984375,
    101.54122924804688,
    84.10281372070312,
    151.1570587158203,
    129.98248291015625,
    101.6594009399414,
    192.38699340820312,
    129.93873596191406,
    60.01769256591797,
    99.65238952636719,
    143.8436279296875,
    165.74505615234375,
    86.00346374511719,
    69.55638122558594,
    145.50155639648438,
    102.08330535888672,
    54.83765411376953,
  ]],
];

Deno.test("resize clean: bit-exact with Pillow's float BICUBIC (shrink and grow per axis)", () => {
  const img = {
    data: Uint8Array.from(PIL_INPUT_7X5.flatMap((v) => [v, v, v])),
    width: 7,
    height: 5,
  };
  for (const [w, h, want] of PIL_OUTPUTS) {
    const out = resizeRgb(img, { width: w, height: h, mode: "clean" });
    for (let c = 0; c < 3; c++) assert.deepEqual(channel(out, c), want, `${w}x${h} channel ${c}`);
  }
});

Deno.test("inception extractor: features equal an independent computation, batched", async () => {
  await withTempDir("xgen_inception_", async (dir) => {
    const path = `${dir}/inception.onnx`;
    await saveOnnx(path, standIn());
    const images = [
      randomImage(16, 16, 1, [9]),
      randomImage(40, 30, 2, [9]),
      randomImage(299, 299, 3, [9]),
      randomImage(500, 320, 4, [9]),
      randomImage(7, 11, 5, [9]),
    ];
    const ex = await inceptionOnnxExtractor(path, { batchSize: 2, threads: 1 });
    try {
      assert.match(ex.name, /^inception-v3-pool3-[0-9a-f]{8}$/);
      assert.equal(ex.dim, 2048);
      assert.equal(ex.layout, "NCHW");
      assert.equal(ex.outputName, "pool3");
      assert.match(ex.preprocessing, /resize=clean to 299x299 \(PIL BICUBIC/);
      assert.match(ex.preprocessing, /input=-1-1 \(\(x - 128\) \/ 128\)/);
      const feats = await ex.extract(images);
      assert.equal(feats.length, 5 * 2048);
      images.forEach((img, i) => {
        const pre = resizeRgb(img, { width: S, height: S, mode: "clean" });
        const want = expectedFeatures(pre, (v) => (v - 128) / 128);
        assertNear(feats.subarray(i * 2048, (i + 1) * 2048), want, 2e-4, `image ${i}`);
      });
      // A constant colour needs no resize arithmetic: the closed form of the whole pipeline.
      const flat = { data: new Uint8Array(9 * 5 * 3), width: 9, height: 5 };
      for (let p = 0; p < 45; p++) flat.data.set([0, 64, 255], 3 * p);
      const [one] = [await ex.extract([flat])];
      const m = [-1, -0.5, 127 / 128];
      const f = [
        ...m,
        ...Array.from({ length: PROBES.length * 24 }, (_, k) => m[Math.floor(k / 8) % 3]),
      ];
      const w = standInWeights();
      const closed = Array.from(
        { length: 2048 },
        (_, o) => f.reduce((s, v, i) => s + v * w[i * 2048 + o], 0),
      );
      assertNear(one, closed, 1e-4, "constant image");
    } finally {
      await ex.release();
    }
    // Input range 0-255 and NHWC layout, read from the model; a fixed batch size is padded.
    const nhwc = await inceptionOnnxExtractor(standIn({ layout: "NHWC" }), {
      input: "0-255",
      resize: "bilinear",
      threads: 1,
    });
    const fixed = await inceptionOnnxExtractor(standIn({ input: [2, 3, S, S] }), {
      input: "0-1",
      threads: 1,
    });
    try {
      assert.equal(nhwc.layout, "NHWC");
      const got = await nhwc.extract(images.slice(0, 2));
      for (let i = 0; i < 2; i++) {
        const pre = resizeRgb(images[i], { width: S, height: S, mode: "bilinear" });
        assertNear(
          got.subarray(i * 2048, (i + 1) * 2048),
          expectedFeatures(pre, (v) => v),
          3e-2,
          `nhwc ${i}`,
        );
      }
      const three = await fixed.extract(images.slice(0, 3));
      for (let i = 0; i < 3; i++) {
        const pre = resizeRgb(images[i], { width: S, height: S });
        const want = expectedFeatures(pre, (v) => v / 255);
        assertNear(three.subarray(i * 2048, (i + 1) * 2048), want, 1e-4, `fixed batch ${i}`);
      }
    } finally {
      await nhwc.release();
      await fixed.release();
    }
  });
});

Deno.test("inception extractor: wrong input or output shapes fail naming them", async () => {
  await assert.rejects(
    inceptionOnnxExtractor(standIn({ input: ["batch", 3, 224, 224] }), { name: "bad.onnx" }),
    (e: Error) =>
      e.message.startsWith("bad.onnx: ") &&
      e.message.includes(
        'input "images" must be float32 [batch, 3, 299, 299] (NCHW) or [batch, 299, 299, 3] ' +
          "(NHWC), got float32 [batch, 3, 224, 224]",
      ),
  );
  await assert.rejects(
    inceptionOnnxExtractor(standIn({ outDim: 1008, outName: "logits" }), { name: "m.onnx" }),
    /m\.onnx: output "logits" must be float32 \[batch, 2048\] \(pool3 features\), got float32 \[batch, 1008\]/,
  );
  await assert.rejects(
    inceptionOnnxExtractor("/nonexistent/pt_inception.onnx"),
    /\/nonexistent\/pt_inception\.onnx: Inception ONNX model cannot be read/,
  );
});

Deno.test("reference statistics of one resize mode or model are refused by another", async () => {
  await withTempDir("xgen_inception_", async (dir) => {
    const clean = await inceptionOnnxExtractor(standIn(), { threads: 1 });
    const legacy = await inceptionOnnxExtractor(standIn(), {
      resize: "legacy_tensorflow",
      threads: 1,
    });
    const other = await inceptionOnnxExtractor(standIn({ input: [4, 3, S, S] }), { threads: 1 });
    try {
      assert.equal(clean.name, legacy.name, "same model file, same name");
      assert.notEqual(clean.name, other.name, "another model file, another name");
      const imgs = [1, 2, 3].map((s) => randomImage(24, 24, s, [9]));
      const stats = featureStats(await clean.extract(imgs), 3, 2048);
      const path = `${dir}/ref.safetensors`;
      await saveReferenceStats(path, stats, { extractor: clean, source: "test" });
      const back = await loadReferenceStats(path, clean);
      assert.equal(back.extractor.preprocessing, clean.preprocessing);
      await assert.rejects(
        loadReferenceStats(path, legacy),
        /preprocessing ".*resize=clean.*" \(current: ".*resize=legacy_tensorflow.*"\)/,
      );
      await assert.rejects(
        loadReferenceStats(path, other),
        new RegExp(`extractor "${clean.name}" \\(current: "${other.name}"\\)`),
      );
      // The two resize modes really give different features for the same images.
      const lf = await legacy.extract(imgs);
      assert.ok(lf.some((v, i) => Math.abs(v - stats.mu[i % 2048]) > 1e-3));
    } finally {
      await clean.release();
      await legacy.release();
      await other.release();
    }
  });
});

Deno.test("protocols: coco1k/coco30k use Inception; requirements follow --extractor/--inception", async () => {
  for (const name of ["coco1k", "coco30k"]) {
    const p = await loadProtocol(name);
    assert.equal(p.extractor, "inception");
    assert.equal(p.inceptionResize, "clean");
    assert.equal(p.inceptionInput, "-1-1");
    const model = p.requires.find((r) => r.for === "extractor")!;
    assert.equal(model.path, p.inceptionModel);
    assert.match(
      model.get,
      /pytorch-fid.*InceptionV3\(\[3\], resize_input=False, normalize_input=False\)/,
    );
    const paths = (o: Parameters<typeof requirementsFor>[1]) =>
      requirementsFor(p, o).map((r) => r.path);
    const prompts = p.requires.filter((r) => r.for === "prompts").map((r) => r.path);
    assert.equal(prompts.length, 2);
    assert.deepEqual(paths({ promptsReplaced: false, extractor: "kit-clip" }), prompts);
    assert.deepEqual(
      paths({ promptsReplaced: false, extractor: "inception", inceptionPath: "my.onnx" }),
      [...prompts, "my.onnx"],
    );
    assert.deepEqual(
      paths({ promptsReplaced: true, extractor: "inception", inceptionPath: p.inceptionModel }),
      [p.inceptionModel],
    );
  }
  // A protocol without an Inception requirement gets one for --inception FILE.
  const def = await loadProtocol("default");
  assert.deepEqual(requirementsFor(def, { promptsReplaced: false, extractor: "kit-clip" }), []);
  const [r] = requirementsFor(def, {
    promptsReplaced: false,
    extractor: "inception",
    inceptionPath: "m.onnx",
  });
  assert.deepEqual([r.path, r.for, r.get], ["m.onnx", "extractor", INCEPTION_GET]);
  const text = await Deno.readTextFile(new URL("../evals/coco1k.json", import.meta.url));
  assert.throws(
    () => parseProtocol(text.replace('"clean"', '"lanczos"'), "x.json"),
    /protocol x\.json: field "inceptionResize" must be one of clean, legacy_tensorflow, bilinear/,
  );
  assert.throws(
    () => parseProtocol(text.replace('"-1-1"', '"0-2"'), "x.json"),
    /field "inceptionInput" must be one of -1-1, 0-255, 0-1/,
  );
});

Deno.test("deno task eval --extractor inception: COCO-style JPEG references, FID from the stand-in", async () => {
  await withTempDir("xgen_eval_inception_", async (dir) => {
    const run = `${dir}/run`;
    const tr = await cli([
      "lib/cli/train.ts",
      "--preset",
      "tiny",
      "--out",
      run,
      "--seed",
      "2",
      "--skip-eval",
    ]);
    assert.equal(tr.code, 0, tr.stderr);
    // Six JPEG references (16x16, like the tiny run's images), one of them truncated.
    const imgs = `${dir}/val`;
    await Deno.mkdir(imgs);
    const images = [], annotations = [];
    for (let i = 0; i < 6; i++) {
      const rgba = new Uint8Array(16 * 16 * 4);
      for (let p = 0; p < 256; p++) rgba.set([(i * 40 + p) % 256, 30 * i, p, 255], 4 * p);
      let bytes: Uint8Array = encodeJpeg({ data: rgba, width: 16, height: 16 }, 90).data;
      if (i === 4) bytes = bytes.subarray(0, Math.floor(bytes.length / 2));
      await Deno.writeFile(`${imgs}/${i}.jpg`, bytes);
      images.push({ id: i, file_name: `${i}.jpg` });
      annotations.push({
        id: 100 + i,
        image_id: i,
        caption: ["a red circle", "a blue square"][i % 2],
      });
    }
    await Deno.writeTextFile(`${dir}/captions.json`, JSON.stringify({ images, annotations }));
    const model = `${dir}/inception.onnx`;
    const base = [
      "lib/cli/eval.ts",
      "--run",
      run,
      "--prompts",
      `coco:${dir}/captions.json:${imgs}`,
      "--checkpoints",
      "latest",
      "--guidance",
      "2",
      "--n",
      "6",
      "--steps",
      "2",
      "--bootstrap-clip",
      "10",
      "--bootstrap-fid",
      "2",
      "--out",
      `${dir}/out`,
    ];
    const missing = await cli([...base, "--extractor", "inception", "--inception", model]);
    assert.equal(missing.code, 1);
    assert.ok(
      missing.stderr.includes(`${model} (Inception-v3 FID network as ONNX`),
      missing.stderr,
    );
    assert.match(missing.stderr, /pytorch-fid's pt_inception-2015-12-05 weights exported to ONNX/);
    const noFlag = await cli([...base, "--extractor", "inception", "--protocol", "default"]);
    assert.equal(noFlag.code, 2);
    assert.match(noFlag.stderr, /the inception extractor needs --inception FILE/);

    await saveOnnx(model, standIn());
    const r = await cli([...base, "--extractor", "inception", "--inception", model]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stderr.includes(`1 corrupt image skipped: ${imgs}/4.jpg (corrupt JPEG`), r.stderr);
    const doc = JSON.parse(await Deno.readTextFile(`${dir}/out/clip_fid.json`));
    assert.equal(doc.label, "FID (Inception-v3 pool3 features)");
    assert.match(doc.extractor.name, /^inception-v3-pool3-[0-9a-f]{8}$/);
    assert.match(doc.extractor.preprocessing, /resize=clean/);
    assert.equal(doc.reference.n, 5, "the corrupt reference is left out");
    assert.equal(doc.results.length, 1);
    assert.ok(Number.isFinite(doc.results[0].fid) && doc.results[0].fid >= 0);
    // The cached reference statistics are those of the 5 readable JPEGs through the stand-in,
    // computed here in-process (decode + extractor + mean).
    const cache = `${run}/eval/cache`;
    const names = [...Deno.readDirSync(cache)].map((e) => e.name);
    const ref = decodeStats(
      await Deno.readFile(`${cache}/${names.find((n) => n.startsWith("ref-"))}`),
    );
    assert.equal(ref.extractor.name, doc.extractor.name);
    assert.equal(ref.n, 5);
    const ex = await inceptionOnnxExtractor(model, { threads: 1 });
    try {
      const good = [0, 1, 2, 3, 5].map((i) =>
        decodeJpegRgb(Deno.readFileSync(`${imgs}/${i}.jpg`), `${i}.jpg`)
      );
      const want = featureStats(await ex.extract(good), 5, 2048);
      assertNear(ref.mu, want.mu, 1e-6, "reference mean");
    } finally {
      await ex.release();
    }
    const gen = await readSafetensors(`${cache}/${names.find((n) => n.startsWith("gen-"))}`);
    assert.deepEqual(gen.tensors.fid.shape, [6, 2048]);
  });
});
