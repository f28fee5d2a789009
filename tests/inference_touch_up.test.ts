/**
 * Regional touch-ups: the pure helpers with exact values, `touchUp` over a tiny kit run's ONNX
 * export (explicit mask and a tiny CLIPSeg-style segmenter), and `deno task touch-up`.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { img2img, loadOnnxPipeline, OnnxGraph } from "../lib/onnx/mod.ts";
import {
  blendThroughMask,
  expandBox,
  featherMask,
  loadSegmenter,
  maskBoundingBox,
  type SegmentMask,
  touchUp,
} from "../lib/inference/mod.ts";
import { cropRgb, type PixelBox, resizeRgb } from "../lib/image/mod.ts";
import { ensureOnnxExport } from "../lib/recipe/mod.ts";
import { decodePngRgb } from "../lib/data/png.ts";
import { encodePng, type RgbImage } from "../lib/plot/mod.ts";
import { Rng } from "../lib/util/rng.ts";
import { cli } from "./helpers/cli.ts";
import { makeTinyRun } from "./helpers/tiny_run.ts";

await tf.setBackend("cpu");

const mk = (w: number, h: number, f: (x: number, y: number) => number): SegmentMask => {
  const mask = new Float32Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) mask[y * w + x] = f(x, y);
  return { mask, width: w, height: h };
};
const rgb = (w: number, h: number, f: (x: number, y: number, c: number) => number): RgbImage => {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) data[(y * w + x) * 3 + c] = f(x, y, c);
  }
  return { data, width: w, height: h };
};
const inBox = (b: PixelBox, x: number, y: number) =>
  x >= b.x && x < b.x + b.width && y >= b.y && y < b.y + b.height;

Deno.test("featherMask: linear ramp of 2r+1 pixels, exactly 0 far out and 1 deep in", () => {
  const w = 30, h = 9;
  const soft = featherMask(mk(w, h, (x) => (x < 10 ? 1 : 0)), { radius: 2 });
  const want = [1, 1, 1, 1, 1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2, 0, 0];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = soft.mask[y * w + x];
      assert.equal(v, Math.fround(x < want.length ? want[x] : 0), `(${x},${y})`);
      if (x > 0) assert.ok(v <= soft.mask[y * w + x - 1], "monotone across the edge");
    }
  }
  // One pixel, radius 1: a 3x3 block of 1/9 (the blur keeps the mass), nothing else.
  const dot = featherMask(mk(7, 7, (x, y) => (x === 3 && y === 4 ? 0.9 : 0.3)), { radius: 1 });
  let sum = 0;
  for (let y = 0; y < 7; y++) {
    for (let x = 0; x < 7; x++) {
      const v = dot.mask[y * 7 + x];
      sum += v;
      assert.equal(v, Math.abs(x - 3) <= 1 && Math.abs(y - 4) <= 1 ? Math.fround(1 / 9) : 0);
    }
  }
  assert.ok(Math.abs(sum - 1) < 1e-6);
  // Strict threshold (0.5 is outside, as maskBoundingBox), radius 0 is the hard mask.
  const hard = featherMask(mk(4, 1, (x) => [0.5, 0.51, 0.2, 1][x]));
  assert.deepEqual(Array.from(hard.mask), [0, 1, 0, 1]);
  assert.deepEqual(
    Array.from(featherMask(mk(4, 1, (x) => [0.5, 0.51, 0.2, 1][x]), { threshold: 0.3 }).mask),
    [1, 1, 0, 1],
  );
  // The image edge is repeated: a region touching the border stays 1 on the border.
  // (Zero padding would give 0.6 at x = 0.)
  const edge = featherMask(mk(8, 1, (x) => (x < 4 ? 1 : 0)), { radius: 2 });
  assert.deepEqual(Array.from(edge.mask), [1, 1, 0.8, 0.6, 0.4, 0.2, 0, 0].map(Math.fround));
  assert.throws(() => featherMask(mk(2, 2, () => 0), { radius: 1.5 }), /radius must be a non/);
});

Deno.test("expandBox: margin, square, shifted into the image, cut only when too large", () => {
  const within = { width: 64, height: 64 };
  const b = { x: 10, y: 20, width: 20, height: 10 };
  assert.deepEqual(expandBox(b), b);
  // Margin 5 px left/right, round(2.5) = 3 px top/bottom.
  assert.deepEqual(expandBox(b, { margin: 0.25 }), { x: 5, y: 17, width: 30, height: 16 });
  assert.deepEqual(expandBox(b, { margin: 0.25, square: true, within }), {
    x: 5,
    y: 10,
    width: 30,
    height: 30,
  });
  // Near the corner: shifted back in at the same size.
  assert.deepEqual(
    expandBox({ x: 0, y: 0, width: 4, height: 2 }, { margin: 0.5, square: true, within }),
    { x: 0, y: 0, width: 8, height: 8 },
  );
  assert.deepEqual(
    expandBox({ x: 8, y: 3, width: 2, height: 2 }, {
      margin: 0.5,
      within: { width: 10, height: 10 },
    }),
    { x: 6, y: 2, width: 4, height: 4 },
  );
  // A square larger than the image's height: cut to the image there.
  assert.deepEqual(
    expandBox({ x: 2, y: 1, width: 6, height: 2 }, {
      square: true,
      within: { width: 8, height: 4 },
    }),
    { x: 2, y: 0, width: 6, height: 4 },
  );
  // Invariants over many boxes: inside the image, holds the box, square whenever it fits.
  const rng = Rng.stream(3);
  for (let i = 0; i < 500; i++) {
    const r = rng.uniforms(7);
    const W = 1 + Math.floor(r[0] * 50), H = 1 + Math.floor(r[1] * 50);
    const bw = 1 + Math.floor(r[2] * W), bh = 1 + Math.floor(r[3] * H);
    const box = {
      x: Math.floor(r[4] * (W - bw + 1)),
      y: Math.floor(r[5] * (H - bh + 1)),
      width: bw,
      height: bh,
    };
    const square = i % 2 === 0;
    const e = expandBox(box, { margin: r[6], square, within: { width: W, height: H } });
    const what = JSON.stringify({ W, H, box, e });
    assert.ok(e.x >= 0 && e.y >= 0 && e.x + e.width <= W && e.y + e.height <= H, what);
    assert.ok(e.x <= box.x && e.y <= box.y, what);
    assert.ok(e.x + e.width >= box.x + bw && e.y + e.height >= box.y + bh, what);
    if (square && Math.max(e.width, e.height) < Math.min(W, H)) {
      assert.equal(e.width, e.height, what);
    }
  }
});

Deno.test("blendThroughMask: mask*patch + (1-mask)*original, rounded half up, exact ends", () => {
  const a = rgb(5, 4, (x, y, c) => (x * 50 + y * 13 + c * 7) % 256);
  const b = rgb(5, 4, (x, y, c) => (x * 17 + y * 91 + c * 29 + 3) % 256);
  assert.deepEqual(blendThroughMask(a, b, mk(5, 4, () => 0)).data, a.data);
  assert.deepEqual(blendThroughMask(a, b, mk(5, 4, () => 1)).data, b.data);
  const one = (v: number[]) => ({ data: new Uint8Array(v), width: 1, height: 1 });
  const m = (v: number) => ({ mask: new Float32Array([v]), width: 1, height: 1 });
  assert.deepEqual(
    Array.from(blendThroughMask(one([100, 0, 0]), one([200, 255, 9]), m(0.25)).data),
    [125, 64, 2],
  );
  assert.deepEqual(
    Array.from(blendThroughMask(one([10, 0, 255]), one([21, 1, 0]), m(0.5)).data),
    [16, 1, 128],
  );
  assert.throws(() => blendThroughMask(a, b, mk(5, 3, () => 0)), /mask is 5x3, the original 5x4/);
  assert.throws(() => blendThroughMask(a, b, mk(5, 4, () => 1.5)), /outside \[0, 1\]/);
});

// ---- a tiny kit run and its ONNX export (as tests/onnx_sd_pipeline.test.ts makes one) ----

// ---- a tiny CLIPSeg-style segmenter: logits = 4 * red (ImageNet-normalised) - 3 * tok + 16 ----

const S = 32; // segmenter input side = the test image's side, so no resize blurs the mask
const VOCAB = ["a", "c", "t</w>", "ca", "cat</w>", "a</w>", "d", "o", "g</w>", "do", "dog</w>"];
const BPE_VOCAB = [...VOCAB, "<|startoftext|>", "<|endoftext|>"];

/** `first` = the first real token id: 5 for "a cat" (logits 10 on red, -7.5 off), 10 for "dog". */
function segmenterModel(): Uint8Array {
  const g = new OnnxGraph("seg");
  const px = g.input("pixel_values", "float32", ["batch", 3, S, S]);
  const ids = g.input("input_ids", "int32", ["batch", 8]);
  const red = g.node("Squeeze", [
    g.node("Slice", [px, g.int64s([0]), g.int64s([1]), g.int64s([1])]),
    g.int64s([1]),
  ]);
  const first = g.node("Cast", [
    g.node("Slice", [ids, g.int64s([1]), g.int64s([2]), g.int64s([1])]),
  ], {
    to: 1,
  });
  const bias = g.node("Add", [g.node("Mul", [first, g.constant([-3], [])]), g.constant([16], [])]);
  const logits = g.node(
    "Add",
    [g.node("Mul", [red, g.constant([4], [])]), g.node("Unsqueeze", [bias, g.int64s([2])])],
    {},
    { outputs: ["logits"] },
  );
  g.output(logits, "float32", ["batch", S, S]);
  return g.toBytes();
}

async function writeSegmenterDir(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeFile(`${dir}/model.onnx`, segmenterModel());
  await Deno.writeTextFile(
    `${dir}/vocab.json`,
    JSON.stringify(Object.fromEntries(BPE_VOCAB.map((t, i) => [t, i]))),
  );
  await Deno.writeTextFile(
    `${dir}/merges.txt`,
    ["#version: 0.2", "c a", "ca t</w>", "d o", "do g</w>"].join("\n") + "\n",
  );
  await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify({ model_max_length: 8 }));
}

const root = await Deno.makeTempDir({ prefix: "xgen_touch_up_" });
const runDir = `${root}/run`;
const segDir = `${root}/seg`;
await makeTinyRun(runDir, {
  captions: ["a red circle", "a detailed face"],
  schedule: { numTrainTimesteps: 1000 },
});
await writeSegmenterDir(segDir);
// The export the CLI's --run finds up to date (same place, same fingerprint).
const exportDir = await ensureOnnxExport(runDir);
// Default session options, as the CLI opens them, so both compute the same bytes.
const pipe = await loadOnnxPipeline(exportDir);
const SETTINGS = { prompt: "a detailed face", strength: 0.8, steps: 5, guidance: 2, seed: 3 };

/** Varied pixels everywhere; red is 255 exactly on the 6x6 square at (8, 18), else below 128. */
const segImage = rgb(S, S, (x, y, c) => {
  if (c === 0) return inBox({ x: 8, y: 18, width: 6, height: 6 }, x, y) ? 255 : (x * 3 + y) % 60;
  return (x * 29 + y * 11 + c * 71) % 256;
});

function assertOutsideUnchanged(out: RgbImage, input: RgbImage, box: PixelBox): void {
  for (let y = 0; y < input.height; y++) {
    for (let x = 0; x < input.width; x++) {
      if (inBox(box, x, y)) continue;
      const i = (y * input.width + x) * 3;
      assert.deepEqual(out.data.subarray(i, i + 3), input.data.subarray(i, i + 3), `(${x},${y})`);
    }
  }
}

Deno.test("touchUp with a mask: box, outside bit-identical, inside = the shrunk img2img patch", async () => {
  assert.equal(pipe.width, 16);
  const W = 40, H = 28;
  const image = rgb(W, H, (x, y, c) => (x * 37 + y * 91 + c * 53 + ((x * y) % 7) * 19) % 256);
  // A 4x4 region at (14, 10), soft values above the threshold inside.
  const mask = mk(W, H, (x, y) => (inBox({ x: 14, y: 10, width: 4, height: 4 }, x, y) ? 0.8 : 0.1));
  const r = await touchUp({ ...SETTINGS, pipeline: pipe, image, mask, feather: 1, margin: 0.25 });
  // Region grown by the feather (1) -> 6x6 at (13, 9); margin round(1.5) = 2 -> 10x10 at (11, 7).
  assert.deepEqual(r.box, { x: 11, y: 7, width: 10, height: 10 });
  assert.deepEqual(r.mask, featherMask(mask, { radius: 1 }));
  assertOutsideUnchanged(r.image, image, r.box);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) if (!inBox(r.box, x, y)) assert.equal(r.mask.mask[y * W + x], 0);
  }
  // The documented flow, by hand: crop, bicubic up to 16x16, img2img, bicubic back to 10x10.
  const crop = cropRgb(image, r.box);
  const [made] = await img2img(pipe, {
    ...SETTINGS,
    prompts: [SETTINGS.prompt],
    images: [resizeRgb(crop, { width: 16, height: 16, filter: "bicubic" })],
    scheduler: undefined,
  });
  const patch = resizeRgb(made, { width: 10, height: 10, filter: "bicubic" });
  assert.deepEqual(r.patch, patch);
  // Inside: mask 1 gives the patch's bytes, mask 0 the original's; the ramp lies between.
  let changed = 0;
  for (let y = 0; y < 10; y++) {
    for (let x = 0; x < 10; x++) {
      const m = r.mask.mask[(r.box.y + y) * W + r.box.x + x];
      for (let c = 0; c < 3; c++) {
        const o = crop.data[(y * 10 + x) * 3 + c], p = patch.data[(y * 10 + x) * 3 + c];
        const got = r.image.data[((r.box.y + y) * W + r.box.x + x) * 3 + c];
        assert.equal(got, Math.floor(o + m * (p - o) + 0.5));
        if (m === 1) assert.equal(got, p);
        if (m === 0) assert.equal(got, o);
        if (got !== o) changed++;
      }
    }
  }
  assert.ok(changed > 30, `only ${changed} values changed inside the box`);
  // Deterministic for a seed; another seed gives another patch.
  const again = await touchUp({
    ...SETTINGS,
    pipeline: pipe,
    image,
    mask,
    feather: 1,
    margin: 0.25,
  });
  assert.deepEqual(again.image, r.image);
  const other = await touchUp({
    ...SETTINGS,
    seed: 4,
    pipeline: pipe,
    image,
    mask,
    feather: 1,
    margin: 0.25,
  });
  assert.notDeepEqual(other.patch, r.patch);
  await assert.rejects(
    touchUp({ ...SETTINGS, pipeline: pipe, image, mask: mk(W, H, () => 0.2) }),
    /no pixel of the given mask is above threshold 0.5 \(largest mask value 0.200\)/,
  );
});

Deno.test("touchUp with a segmenter: the box is the fixture mask's box; nothing found names the region", async () => {
  const seg = await loadSegmenter({
    model: `${segDir}/model.onnx`,
    tokenizerDir: segDir,
    threads: 1,
    executionProviders: ["cpu"],
  });
  try {
    const square = { x: 8, y: 18, width: 6, height: 6 };
    const raw = await seg.segment(segImage, "a cat");
    assert.deepEqual(maskBoundingBox(raw), square);
    const tight = await touchUp({
      ...SETTINGS,
      pipeline: pipe,
      image: segImage,
      segmenter: seg,
      region: "a cat",
      margin: 0,
      square: false,
    });
    assert.deepEqual(tight.box, square);
    assertOutsideUnchanged(tight.image, segImage, square);
    // Feather 2 -> 10x10 at (6, 16); margin round(2.5) = 3 -> 16x16 at (3, 13): the model size.
    const wide = await touchUp({
      ...SETTINGS,
      pipeline: pipe,
      image: segImage,
      segmenter: seg,
      region: "a cat",
      feather: 2,
    });
    assert.deepEqual(wide.box, { x: 3, y: 13, width: 16, height: 16 });
    assertOutsideUnchanged(wide.image, segImage, wide.box);
    // "dog": bias -14, so the red square's logit is 4 * (1 - 0.485) / 0.229 - 14 = -5.0044,
    // and sigmoid(-5.0044) = 0.00666.
    await assert.rejects(
      touchUp({ ...SETTINGS, pipeline: pipe, image: segImage, segmenter: seg, region: "dog" }),
      /no pixel of the region "dog" is above threshold 0.5 \(largest mask value 0.00666\)/,
    );
  } finally {
    await seg.release();
  }
});

Deno.test("deno task touch-up: writes the image and out.mask.png beside it; bad --image is one line", async () => {
  const inPng = `${root}/in.png`, out = `${root}/out.png`;
  await Deno.writeFile(inPng, encodePng(segImage));
  const args = [
    "lib/cli/touch_up.ts",
    "--image",
    inPng,
    "--prompt",
    SETTINGS.prompt,
    "--strength",
    String(SETTINGS.strength),
    "--steps",
    String(SETTINGS.steps),
    "--guidance",
    String(SETTINGS.guidance),
    "--seed",
    String(SETTINGS.seed),
    "--feather",
    "2",
  ];
  const r = await cli([
    ...args,
    "--run",
    runDir,
    "--segmenter",
    segDir,
    "--region",
    "a cat",
    "--out",
    out,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /onnx: using .*\/run\/onnx/);
  assert.match(r.stdout, /wrote .*out\.png \(box 16x16 at 3,13\) and .*out\.mask\.png/);
  // The same bytes as the library call with the CLI's defaults (dpmpp_2m, margin 0.25).
  const seg = await loadSegmenter({ model: `${segDir}/model.onnx`, tokenizerDir: segDir });
  const want = await touchUp({
    ...SETTINGS,
    pipeline: pipe,
    image: segImage,
    segmenter: seg,
    region: "a cat",
    feather: 2,
    scheduler: "dpmpp_2m",
  });
  await seg.release();
  const got = decodePngRgb(await Deno.readFile(out));
  assert.deepEqual(got.image, want.image.data);
  const maskPng = decodePngRgb(await Deno.readFile(out.replace(/\.png$/, ".mask.png")));
  assert.equal(maskPng.width, S);
  for (let p = 0; p < S * S; p++) {
    const v = Math.round(want.mask.mask[p] * 255);
    assert.deepEqual(Array.from(maskPng.image.subarray(3 * p, 3 * p + 3)), [v, v, v]);
  }

  const missing = await cli([
    ...args.slice(0, 2),
    `${root}/nope.png`,
    ...args.slice(3),
    "--run",
    runDir,
    "--mask",
    inPng,
  ]);
  assert.equal(missing.code, 2);
  assert.equal(missing.stderr.trim(), `touch-up: --image ${root}/nope.png: no such file`);
  const notPng = `${root}/not.png`;
  await Deno.writeTextFile(notPng, "hello");
  const bad = await cli([
    ...args.slice(0, 2),
    notPng,
    ...args.slice(3),
    "--model",
    exportDir,
    "--mask",
    inPng,
  ]);
  assert.equal(bad.code, 1);
  assert.equal(bad.stderr.trim(), `error: ${notPng}: not a PNG (bad signature)`);
});

Deno.test({
  name: "touch_up: clean up",
  fn: async () => {
    await pipe.release();
    await Deno.remove(root, { recursive: true });
  },
});
