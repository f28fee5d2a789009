/**
 * Upsampling and re-upsampling (`lib/inference/upscale.ts`) over tiny nearest-neighbour ONNX
 * upsamplers, whose output is pixel replication in closed form, and `deno task upscale`.
 */
import assert from "node:assert/strict";
import { OnnxGraph } from "../lib/onnx/mod.ts";
import {
  loadUpsampler,
  reUpsample,
  reUpsamplePlan,
  type Upsampler,
  upscale,
} from "../lib/inference/mod.ts";
import { resizeRgb } from "../lib/image/mod.ts";
import { decodePngRgb } from "../lib/data/png.ts";
import { encodePng, type RgbImage } from "../lib/plot/mod.ts";
import { cli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp_dir.ts";
import { randomImage } from "./helpers/images.ts";

const OPTS = { threads: 1, executionProviders: ["cpu"] } as const;

/** A x`scale` "upsampler": nearest-neighbour Resize, any input size. */
function nearestModel(scale: number): Uint8Array {
  const g = new OnnxGraph(`nearest_x${scale}`);
  const x = g.input("input", "float32", ["batch", 3, "h", "w"]);
  const y = g.node("Resize", [x, "", g.constant([1, 1, scale, scale], [4])], {
    mode: "nearest",
    coordinate_transformation_mode: "asymmetric",
    nearest_mode: "floor",
  });
  g.output(y, "float32", ["batch", 3, "oh", "ow"]);
  return g.toBytes();
}

/** Independent reference of the fixture: every pixel becomes an `s` x `s` block. */
function replicate(img: RgbImage, s: number): RgbImage {
  const { width: W, height: H, data } = img;
  const out = new Uint8Array(W * s * H * s * 3);
  for (let y = 0; y < H * s; y++) {
    for (let x = 0; x < W * s; x++) {
      const p = (Math.floor(y / s) * W + Math.floor(x / s)) * 3;
      out.set(data.subarray(p, p + 3), (y * W * s + x) * 3);
    }
  }
  return { data: out, width: W * s, height: H * s };
}

const x2 = await loadUpsampler({ ...OPTS, model: nearestModel(2), tile: 0 });
// Tiled on purpose: 16-pixel tiles over the test images exercise the part's blending.
const x4 = await loadUpsampler({
  ...OPTS,
  model: nearestModel(4),
  tile: 16,
  overlap: 5,
  margin: 2,
});

Deno.test("reUpsamplePlan: low size, upsampled size and whether it is resized, in closed form", () => {
  assert.deepEqual(reUpsamplePlan({ width: 256, height: 256, lowSize: 64, scale: 4 }), {
    low: { width: 64, height: 64 },
    upsampled: { width: 256, height: 256 },
    resized: false,
  });
  // Long side 64; short side ceil(64 * 100 / 250) = ceil(25.6) = 26, so 4 * 26 = 104 >= 100.
  assert.deepEqual(reUpsamplePlan({ width: 250, height: 100, lowSize: 64, scale: 4 }), {
    low: { width: 64, height: 26 },
    upsampled: { width: 256, height: 104 },
    resized: true,
  });
  assert.deepEqual(reUpsamplePlan({ width: 24, height: 40, lowSize: 10, scale: 4 }).low, {
    width: 6,
    height: 10,
  });
  assert.deepEqual(
    reUpsamplePlan({ width: 40, height: 30, lowSize: { width: 20, height: 15 }, scale: 2 }),
    { low: { width: 20, height: 15 }, upsampled: { width: 40, height: 30 }, resized: false },
  );
  assert.throws(
    () => reUpsamplePlan({ width: 256, height: 256, lowSize: 300, scale: 4 }),
    /^Error: reUpsample: lowSize 300 is larger than the 256x256 image \(the low image must shrink it\)$/,
  );
  assert.throws(
    () => reUpsamplePlan({ width: 40, height: 30, lowSize: { width: 20, height: 31 }, scale: 2 }),
    /reUpsample: lowSize 20x31 is larger than the 40x30 image/,
  );
  assert.throws(
    () => reUpsamplePlan({ width: 256, height: 256, lowSize: 64, scale: 2 }),
    /^Error: reUpsample: a x2 upsampler takes the 64x64 low image only to 128x128, short of the 256x256 image; use lowSize >= 128 or a larger-scale upsampler$/,
  );
  assert.throws(
    () => reUpsamplePlan({ width: 40, height: 30, lowSize: { width: 9, height: 8 }, scale: 4 }),
    /takes the 9x8 low image only to 36x32, short of the 40x30 image; use lowSize >= 10x8/,
  );
  assert.throws(
    () => reUpsamplePlan({ width: 40, height: 40, lowSize: 2.5, scale: 4 }),
    /reUpsample: lowSize must be a positive integer, got 2.5/,
  );
});

Deno.test("upscale: tiled x4 output is exact pixel replication; size shrinks it with Pillow bicubic", async () => {
  const img = randomImage(37, 23, 1);
  const full = await upscale(x4, img);
  assert.deepEqual(full, replicate(img, 4));
  assert.deepEqual(await upscale(x2, img), replicate(img, 2));
  const sized = await upscale(x4, img, { size: { width: 100, height: 60 } });
  assert.equal(sized.width, 100);
  assert.equal(sized.height, 60);
  assert.deepEqual(sized, resizeRgb(replicate(img, 4), { width: 100, height: 60 }));
  // The upsampled size itself is no resize at all.
  assert.deepEqual(await upscale(x4, img, { size: { width: 148, height: 92 } }), full);
  await assert.rejects(
    upscale(x4, img, { size: { width: 149, height: 92 } }),
    /^Error: upscale: size 149x92 is larger than the 148x92 a x4 upsampler makes of the 37x23 image/,
  );
  await assert.rejects(
    upscale(x4, img, { size: { width: 0, height: 5 } }),
    /upscale: size must be positive integers, got 0x5/,
  );
  await assert.rejects(
    upscale(x4, { data: new Uint8Array(5), width: 2, height: 2 }),
    /upscale: image data has 5 bytes, expected 2\*2\*3 RGB/,
  );
});

Deno.test("reUpsample: replication of the Pillow-shrunk image, resized back when the factor misses", async () => {
  // 40 -> 10 -> 40: the factor lands exactly, so each 4x4 block is one low pixel.
  const img = randomImage(40, 40, 2);
  const low = resizeRgb(img, { width: 10, height: 10, filter: "bicubic" });
  assert.deepEqual(await reUpsample(x4, img, { lowSize: 10 }), replicate(low, 4));
  // 38 -> 10 -> 40 -> 38.
  const odd = randomImage(38, 38, 3);
  const want = resizeRgb(replicate(resizeRgb(odd, { width: 10, height: 10 }), 4), {
    width: 38,
    height: 38,
  });
  assert.deepEqual(await reUpsample(x4, odd, { lowSize: 10 }), want);
  // Non-square: 40x24 with long side 10 goes through 10x6.
  const wide = randomImage(40, 24, 4);
  assert.deepEqual(
    await reUpsample(x4, wide, { lowSize: 10 }),
    replicate(resizeRgb(wide, { width: 10, height: 6 }), 4),
  );
  // A flat image stays flat through both resizes (Pillow's weights sum to one).
  const flat = { data: new Uint8Array(38 * 38 * 3), width: 38, height: 38 };
  for (let p = 0; p < 38 * 38; p++) flat.data.set([200, 17, 99], 3 * p);
  assert.deepEqual(await reUpsample(x4, flat, { lowSize: 10 }), flat);
  await assert.rejects(
    reUpsample(x4, img, { lowSize: 41 }),
    /reUpsample: lowSize 41 is larger than the 40x40 image/,
  );
  await assert.rejects(
    reUpsample(x2, img, { lowSize: 10 }),
    /a x2 upsampler takes the 10x10 low image only to 20x20, short of the 40x40 image; use lowSize >= 20/,
  );
});

Deno.test("reUpsample: a 2x2 image through 1x1 is Pillow's rounded two-pass mean, in closed form", async () => {
  // Shrinking 2 -> 1 gives both taps weight 2^21 of 2^22, so each pass is floor((a + b + 1) / 2).
  const img = randomImage(2, 2, 5);
  const at = (x: number, y: number, c: number) => img.data[(y * 2 + x) * 3 + c];
  const half = (a: number, b: number) => Math.floor((a + b + 1) / 2);
  const v = [0, 1, 2].map((c) =>
    half(half(at(0, 0, c), at(1, 0, c)), half(at(0, 1, c), at(1, 1, c)))
  );
  const got = await reUpsample(x2, img, { lowSize: 1 });
  assert.deepEqual(got, { data: Uint8Array.from([...v, ...v, ...v, ...v]), width: 2, height: 2 });
});

Deno.test("deno task upscale: writes the library's result; bad flags and files are one line", async () => {
  await withTempDir("upscale_test_", async (root) => {
    const modelDir = `${root}/x4`;
    await Deno.mkdir(modelDir);
    await Deno.writeFile(`${modelDir}/model.onnx`, nearestModel(4));
    const img = randomImage(40, 40, 6);
    const inPng = `${root}/in.png`, out = `${root}/out.png`;
    await Deno.writeFile(inPng, encodePng(img));
    const base = ["lib/cli/upscale.ts", "--model", modelDir, "--image", inPng, "--threads", "1"];
    const read = async (p: string): Promise<RgbImage> => {
      const { image, width, height } = decodePngRgb(await Deno.readFile(p));
      return { data: image, width, height };
    };

    const r = await cli([...base, "--out", out, "--tile", "16", "--overlap", "5", "--margin", "2"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout.trim(),
      `wrote ${out} (160x160, upsampled from 40x40 with a x4 upsampler)`,
    );
    assert.deepEqual(await read(out), await upscale(x4, img));

    const re = await cli([...base, "--out", out, "--reupsample", "--low", "10"]);
    assert.equal(re.code, 0, re.stderr);
    assert.match(re.stdout, /\(40x40, re-upsampled through 10x10 from 40x40 with a x4 upsampler\)/);
    assert.deepEqual(await read(out), await reUpsample(x4, img, { lowSize: 10 }));

    const missing = await cli([...base.slice(0, 4), `${root}/nope.png`]);
    assert.equal(missing.code, 2);
    assert.equal(missing.stderr.trim(), `upscale: --image ${root}/nope.png: no such file`);
    const notPng = `${root}/not.png`;
    await Deno.writeTextFile(notPng, "hello");
    const bad = await cli([...base.slice(0, 4), notPng]);
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr.trim(), `error: ${notPng}: not a PNG (bad signature)`);
    const noModel = await cli(["lib/cli/upscale.ts", "--model", root, "--image", inPng]);
    assert.equal(noModel.code, 2);
    assert.equal(
      noModel.stderr.trim(),
      `upscale: --model ${root}: missing model.onnx (an upsampler folder holds model.onnx: ` +
        "one float32 input [batch, 3, H, W] -> one output [batch, 3, s*H, s*W])",
    );
    const lowAlone = await cli([...base, "--low", "10"]);
    assert.equal(lowAlone.code, 2);
    assert.equal(lowAlone.stderr.trim(), "upscale: --low goes with --reupsample");
  });
});

Deno.test({
  name: "upscale: release the sessions",
  fn: async () => {
    for (const up of [x2, x4] as Upsampler[]) await up.release();
  },
});
