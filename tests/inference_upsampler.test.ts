import assert from "node:assert/strict";
import { OnnxGraph } from "../lib/onnx/mod.ts";
import { loadUpsampler, tileStarts, tileWeight } from "../lib/inference/mod.ts";
import type { Normalization } from "../lib/image/mod.ts";
import type { RgbImage } from "../lib/plot/mod.ts";
import { randomImage } from "./helpers/images.ts";

const OPTS = { threads: 1, executionProviders: ["cpu"] } as const;

/**
 * Pixels fed as their byte values (x = v / 255 / (1 / 255) rounds to v in float32), so a model
 * with dyadic weights computes exactly, whatever order a kernel sums in.
 */
const BYTES: Normalization = { name: "bytes", mean: [0, 0, 0], std: [1 / 255, 1 / 255, 1 / 255] };

/**
 * A 2x "upsampler": nearest-neighbour Resize, optionally after a depthwise 3x3 blur (weights
 * 1/2 centre, 1/8 for each 4-neighbour, zero padding: receptive radius 1).
 */
function upsamplerModel(
  opts: {
    blur?: boolean;
    size?: number;
    scale?: number;
    outChannels?: number;
    declareOut?: boolean;
  } = {},
): Uint8Array {
  const g = new OnnxGraph("up");
  const S = opts.size;
  let x = g.input("input", "float32", ["batch", 3, S ?? "h", S ?? "w"]);
  if (opts.blur) {
    const k = [0, 1 / 8, 0, 1 / 8, 1 / 2, 1 / 8, 0, 1 / 8, 0];
    const w = g.initializer("blur", Float32Array.from([...k, ...k, ...k]), [3, 1, 3, 3]);
    x = g.node("Conv", [x, w], { group: 3, kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
  }
  const s = opts.scale ?? 2;
  let y = g.node("Resize", [x, "", g.constant([1, 1, s, s], [4])], {
    mode: "nearest",
    coordinate_transformation_mode: "asymmetric",
    nearest_mode: "floor",
  });
  if (opts.outChannels) {
    y = g.node("Concat", [y, g.node("Slice", [y, g.int64s([0]), g.int64s([1]), g.int64s([1])])], {
      axis: 1,
    });
  }
  const oc = opts.outChannels ?? 3;
  g.output(
    y,
    "float32",
    opts.declareOut && S ? [1, oc, S * s, S * s] : ["batch", oc, "oh", "ow"],
  );
  return g.toBytes();
}

/** Independent reference: (optional blur with zero padding), then 2x pixel replication. */
function reference(img: RgbImage, blur: boolean): RgbImage {
  const { width: W, height: H, data } = img;
  const at = (x: number, y: number, c: number) =>
    x < 0 || y < 0 || x >= W || y >= H ? 0 : data[(y * W + x) * 3 + c];
  const out = new Uint8Array(4 * W * H * 3);
  for (let y = 0; y < 2 * H; y++) {
    for (let x = 0; x < 2 * W; x++) {
      const sx = x >> 1, sy = y >> 1;
      for (let c = 0; c < 3; c++) {
        const v = blur
          ? at(sx, sy, c) / 2 +
            (at(sx - 1, sy, c) + at(sx + 1, sy, c) + at(sx, sy - 1, c) + at(sx, sy + 1, c)) / 8
          : at(sx, sy, c);
        out[(y * 2 * W + x) * 3 + c] = Math.min(255, Math.floor(v + 0.5));
      }
    }
  }
  return { data: out, width: 2 * W, height: 2 * H };
}

function diffCount(a: RgbImage, b: RgbImage): number {
  assert.equal(a.width, b.width);
  assert.equal(a.height, b.height);
  let n = 0;
  for (let i = 0; i < a.data.length; i++) if (a.data[i] !== b.data[i]) n++;
  return n;
}

Deno.test("tileStarts and tileWeight: even layout, weights of two overlapping tiles sum to 1", () => {
  assert.deepEqual(tileStarts(100, 40, 8), [0, 30, 60]);
  assert.deepEqual(tileStarts(40, 40, 8), [0]);
  assert.deepEqual(tileStarts(41, 40, 8), [0, 1]);
  assert.deepEqual(tileStarts(37, 16, 5), [0, 11, 21]);
  const starts = tileStarts(100, 40, 8), tile = 40, margin = 2, scale = 2;
  for (let u = 0; u < 100 * scale; u++) {
    let sum = 0;
    starts.forEach((s, k) => {
      const j = u - s * scale;
      if (j >= 0 && j < tile * scale) sum += tileWeight({ starts, k, tile, scale, margin }, j);
    });
    assert.ok(Math.abs(sum - 1) < 1e-12, `output pixel ${u}: weights sum to ${sum}`);
  }
  // Within the margin of a shared edge the weight is 0; on the image border it is 1.
  assert.equal(tileWeight({ starts, k: 1, tile, scale, margin }, 0), 0);
  assert.equal(tileWeight({ starts, k: 1, tile, scale, margin }, 3), 0);
  assert.ok(tileWeight({ starts, k: 1, tile, scale, margin }, 4) > 0);
  assert.equal(tileWeight({ starts, k: 0, tile, scale, margin }, 0), 1);
  assert.throws(() => tileStarts(100, 8, 8), /overlap must be an integer in \[0, tile\)/);
});

Deno.test("loadUpsampler: scale from a probe; tiled = untiled = reference for a pointwise model", async () => {
  const img = randomImage(37, 23, 1);
  const whole = await loadUpsampler({ ...OPTS, model: upsamplerModel(), tile: 0 });
  assert.equal(whole.scale, 2);
  assert.equal(whole.tile, null);
  const want = reference(img, false);
  assert.equal(diffCount(await whole.upsample(img), want), 0);
  await whole.release();
  const tiled = await loadUpsampler({
    ...OPTS,
    model: upsamplerModel(),
    tile: 16,
    overlap: 5,
    margin: 2,
  });
  assert.deepEqual(tiled.tile, { width: 16, height: 16 });
  assert.equal(diffCount(await tiled.upsample(img), want), 0);
  // Smaller than a tile on one axis.
  const thin = randomImage(40, 7, 2);
  assert.equal(diffCount(await tiled.upsample(thin), reference(thin, false)), 0);
  await tiled.release();
});

Deno.test("loadUpsampler: with context (radius 1) the margin makes tiling exact; without it, it is not", async () => {
  // Multiples of 8: the blur's sums are then integers, so no rounding tie decides a byte.
  const img = randomImage(45, 30, 3);
  img.data.forEach((v, i) => img.data[i] = v & 0xf8);
  const want = reference(img, true);
  const whole = await loadUpsampler({
    ...OPTS,
    model: upsamplerModel({ blur: true }),
    tile: 0,
    norm: BYTES,
  });
  assert.equal(diffCount(await whole.upsample(img), want), 0);
  await whole.release();
  const tiled = await loadUpsampler({
    ...OPTS,
    model: upsamplerModel({ blur: true }),
    tile: 12,
    overlap: 6,
    margin: 1,
    norm: BYTES,
  });
  assert.equal(diffCount(await tiled.upsample(img), want), 0);
  await tiled.release();
  // margin 0: tile-edge pixels (blurred against zero padding) get a positive weight.
  const naive = await loadUpsampler({
    ...OPTS,
    model: upsamplerModel({ blur: true }),
    tile: 12,
    overlap: 6,
    margin: 0,
    norm: BYTES,
  });
  assert.ok(diffCount(await naive.upsample(img), want) > 0);
  await naive.release();
});

Deno.test("loadUpsampler: a fixed-size model sets the tile; smaller images are edge-padded", async () => {
  const up = await loadUpsampler({
    ...OPTS,
    model: upsamplerModel({ size: 8, declareOut: true }),
    overlap: 3,
    margin: 1,
  });
  assert.equal(up.scale, 2);
  assert.ok(up.fixedSize);
  assert.deepEqual(up.tile, { width: 8, height: 8 });
  for (const [w, h, seed] of [[13, 10, 4], [5, 3, 5], [8, 8, 6], [30, 6, 7]]) {
    const img = randomImage(w, h, seed);
    assert.equal(diffCount(await up.upsample(img), reference(img, false)), 0, `${w}x${h}`);
  }
  await up.release();
});

Deno.test("loadUpsampler: models and options that do not fit fail naming what is wrong", async () => {
  await assert.rejects(
    loadUpsampler({ ...OPTS, model: upsamplerModel({ outChannels: 4 }) }),
    /upsampler model: output "[^"]+" is float32 \[batch, 4, oh, ow\], expected float32 \[batch, 3, scale\*height, scale\*width\] \(RGB images, NCHW\)/,
  );
  await assert.rejects(
    loadUpsampler({ ...OPTS, model: upsamplerModel({ scale: 1.5 }) }),
    /upsampler model: output "[^"]+" came out \[1, 3, 24, 24\] for a \[1, 3, 16, 16\] input, expected \[1, 3, s\*16, s\*16\] with one integer scale s/,
  );
  await assert.rejects(
    loadUpsampler({ ...OPTS, model: upsamplerModel(), overlap: 4, margin: 2 }),
    /loadUpsampler: overlap \(4\) must be at least 2\*margin\+1 = 5/,
  );
  await assert.rejects(
    loadUpsampler({ ...OPTS, model: upsamplerModel({ size: 8 }), overlap: 8, margin: 2 }),
    /loadUpsampler: overlap \(8\) must be smaller than the tile \(8x8, the fixed input size of upsampler model\)/,
  );
  const g = new OnnxGraph("two_inputs");
  const a = g.input("a", "float32", ["batch", 3, "h", "w"]);
  g.output(g.node("Add", [a, g.input("b", "float32", ["batch", 3, "h", "w"])]), "float32");
  await assert.rejects(
    loadUpsampler({ ...OPTS, model: g.toBytes() }),
    /upsampler model: an upsampler takes one input float32 \[batch, 3, height, width\], it has "a" float32 \[batch, 3, h, w\], "b" float32 \[batch, 3, h, w\]/,
  );
});
