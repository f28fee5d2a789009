import assert from "node:assert/strict";
import {
  centerCropBox,
  clipPreprocess,
  cropRgb,
  denormalizeValue,
  kitClipPreprocess,
  NORM_IMAGENET,
  NORM_OPENAI_CLIP,
  NORM_SYMMETRIC,
  NORM_UNIT,
  normalizeValue,
  packNchw,
  preprocessBatch,
  preprocessImage,
  resampleKernel,
  resizeFloat,
  resizeRgb,
  shortestSideSize,
  unpackNchw,
} from "../lib/image/mod.ts";
import { toClipInput } from "../lib/eval/clip_fid/feature_extractors.ts";
import type { RgbImage } from "../lib/plot/mod.ts";
import { randomImage } from "./helpers/images.ts";

/** The fixture image: high-frequency content, so Pillow's byte clipping is exercised. */
function pattern(w: number, h: number): RgbImage {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 3; c++) {
        data[(y * w + x) * 3 + c] = (x * 37 + y * 91 + c * 53 + x * y * 13) % 256;
      }
    }
  }
  return { data, width: w, height: h };
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// Produced once with Pillow 9.4.0 (Debian bookworm python3-pil):
//   Image.fromarray(pattern(w, h), "RGB").resize((W, H), resample=BICUBIC | BILINEAR).tobytes().hex()
const PILLOW_FIXTURES: [[number, number], [number, number], "bicubic" | "bilinear", string][] = [
  [
    [9, 7],
    [4, 3],
    "bicubic",
    "6785948b90968c8f8b827b6b809878947f7b896e957c799267a6988e70a7897d8697788b",
  ],
  [
    [5, 4],
    [8, 7],
    "bicubic",
    "002b60053a6e1f54893569ae4c87cc62abe188c6faa1d5ff174989265f9e4382b363a190839d8c9b7aab818fce69a5e35085c2649de388c6f1acf661d6be28f32e59773b82155d9a94d46eb3a88dcf76aa8fa275859e71b2689c8a866a66a43facf41ad49936ed2763664e88377db771a2de9cd06cb6eb11417d5464727b916fa081a859969e4fc95788927c8562a37a00327d1d5bab57a0ca94e43bd5b40bff264f8b45942a72bd",
  ],
  [
    [13, 6],
    [5, 6],
    "bilinear",
    "275c917cb1c08e635e4075a295ca4b90b4ae8f6e7587a6a17f67757eb39bac7b63929880807b84a07f67789c8462867f9c7c82895e936ba08061966d7eb38278608d82679c8c6ba0867f6781a58daa89987b9b95a58c926fa49d",
  ],
  [
    [6, 11],
    [6, 4],
    "bicubic",
    "4e837a8676b078ad6baa6da269a495a0917c6ba47d8fa27f5f9979b76a9f8d616e7f929f7b888d9e83af6679b4ba70a592669da7956e7e6eaa8b487eb35489567db24f8a5b8c5d54",
  ],
  [
    [16, 9],
    [8, 5],
    "bicubic",
    "497da089909b869d9a8a7b6c5a5b8b76b797bb833b33498a918b76958878977b84797e999f8c5d54849db57f445a70b371b1808c7d8c81718e86669a8989a3767e7aaa766085a07b6d98a48475b3ad798c91729497967b6c9973ac72b5b47580ad6099a970a9817a7e938e789d6688b160978572a78371ab",
  ],
  [
    [10, 10],
    [3, 7],
    "bilinear",
    "59809f8a949266657a9b91828985859a86707d8a798d708f84878c849e8e887c908b77a57384ac9a6f958e8383ad6ca1987a8ca27486815682677a666b7267",
  ],
];

Deno.test("resizeRgb: byte-identical to Pillow's Image.resize (bicubic, bilinear; up, down, one axis)", () => {
  for (const [[w, h], [W, H], filter, want] of PILLOW_FIXTURES) {
    const got = resizeRgb(pattern(w, h), { width: W, height: H, filter });
    assert.equal(got.width, W);
    assert.equal(got.height, H);
    assert.equal(hex(got.data), want, `${w}x${h} -> ${W}x${H} ${filter}`);
  }
});

Deno.test("resizeFloat: equal to Pillow's mode F bicubic resize (float64 sums, float32 per pass)", () => {
  // Pillow 9.4.0: Image.fromarray(np.arange(35, dtype=float32).reshape(5, 7) * 3.5 - 20, "F")
  //   .resize((3, 4), BICUBIC)
  const want = [
    [-14.139128684997559, -6.151225566864014, 1.8366776704788208],
    [15.850704193115234, 23.838607788085938, 31.82651138305664],
    [47.17348861694336, 55.16139221191406, 63.1492919921875],
    [77.16332244873047, 85.1512222290039, 93.13912200927734],
  ].flat();
  const src = Float32Array.from({ length: 35 }, (_, i) => i * 3.5 - 20);
  const got = resizeFloat({ data: src, width: 7, height: 5, channels: 1 }, {
    width: 3,
    height: 4,
    filter: "bicubic",
  });
  assert.deepEqual(Array.from(got.data), want.map(Math.fround));
});

Deno.test("resize: a constant image stays constant for every filter, direction and precision", () => {
  for (const filter of ["bicubic", "bilinear"] as const) {
    for (const antialias of [true, false]) {
      for (const [W, H] of [[3, 2], [17, 11], [7, 23], [40, 40]]) {
        const img: RgbImage = {
          data: Uint8Array.from({ length: 9 * 13 * 3 }, (_, i) => [0, 137, 255][i % 3]),
          width: 9,
          height: 13,
        };
        const r = resizeRgb(img, { width: W, height: H, filter, antialias });
        for (let i = 0; i < r.data.length; i++) assert.equal(r.data[i], [0, 137, 255][i % 3]);
        const f = resizeFloat(
          { data: Float32Array.from(img.data), width: 9, height: 13, channels: 3 },
          { width: W, height: H, filter, antialias },
        );
        for (let i = 0; i < f.data.length; i++) {
          assert.ok(Math.abs(f.data[i] - [0, 137, 255][i % 3]) < 1e-4, `${filter} ${W}x${H}`);
        }
      }
    }
  }
});

Deno.test("resize: integer-factor shrink of a ramp gives the centre value; bilinear upscale is linear", () => {
  // Symmetric taps reproduce linear functions away from the borders: shrinking v = 2x by k
  // gives 2 * (k * x + (k - 1) / 2) for output pixel x.
  const w = 24, h = 3;
  const ramp: RgbImage = { data: new Uint8Array(w * h * 3), width: w, height: h };
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) ramp.data.fill(2 * x, (y * w + x) * 3, (y * w + x) * 3 + 3);
  }
  for (const filter of ["bicubic", "bilinear"] as const) {
    for (const k of [2, 3]) {
      const r = resizeRgb(ramp, { width: w / k, height: h, filter });
      const reach = filter === "bicubic" ? 2 : 1; // output pixels whose taps are all inside
      const f = resizeFloat(
        { data: Float32Array.from(ramp.data), width: w, height: h, channels: 3 },
        { width: w / k, height: h, filter },
      );
      for (let x = reach; x < w / k - reach; x++) {
        const want = 2 * (k * x + (k - 1) / 2);
        for (let y = 0; y < h; y++) assert.equal(r.data[(y * (w / k) + x) * 3], want);
        assert.ok(Math.abs(f.data[x * 3] - want) < 1e-4, `${filter} /${k} x=${x}`);
      }
    }
  }
  // Bilinear without antialias, x3 upscale: value at source coordinate (x + 0.5) / 3 - 0.5,
  // clamped to the border pixel outside [0, w - 1].
  const f = resizeFloat({
    data: Float32Array.from({ length: 8 }, (_, i) => 10 * i),
    width: 8,
    height: 1,
    channels: 1,
  }, {
    width: 24,
    height: 1,
    filter: "bilinear",
    antialias: false,
  });
  for (let x = 0; x < 24; x++) {
    const src = Math.min(Math.max((x + 0.5) / 3 - 0.5, 0), 7);
    assert.ok(Math.abs(f.data[x] - 10 * src) < 1e-4, `x=${x}`);
  }
});

/** PyTorch's bilinear (align_corners=False, no antialias), written directly. */
function torchBilinear(img: RgbImage, W: number, H: number): Float32Array {
  const out = new Float32Array(W * H * 3);
  const sx = img.width / W, sy = img.height / H;
  for (let y = 0; y < H; y++) {
    const fy = Math.max((y + 0.5) * sy - 0.5, 0);
    const y0 = Math.floor(fy), y1 = Math.min(y0 + 1, img.height - 1), ly = fy - y0;
    for (let x = 0; x < W; x++) {
      const fx = Math.max((x + 0.5) * sx - 0.5, 0);
      const x0 = Math.floor(fx), x1 = Math.min(x0 + 1, img.width - 1), lx = fx - x0;
      for (let c = 0; c < 3; c++) {
        const p = (xx: number, yy: number) => img.data[(yy * img.width + xx) * 3 + c];
        out[(y * W + x) * 3 + c] = (1 - ly) * ((1 - lx) * p(x0, y0) + lx * p(x1, y0)) +
          ly * ((1 - lx) * p(x0, y1) + lx * p(x1, y1));
      }
    }
  }
  return out;
}

Deno.test("resizeFloat bilinear without antialias = PyTorch's bilinear; kit preprocessing = toClipInput", () => {
  const img = randomImage(13, 9, 1);
  for (const [W, H] of [[5, 4], [26, 18], [7, 20]]) {
    const got = resizeFloat({
      data: Float32Array.from(img.data),
      width: 13,
      height: 9,
      channels: 3,
    }, {
      width: W,
      height: H,
      filter: "bilinear",
      antialias: false,
    });
    const want = torchBilinear(img, W, H);
    for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got.data[i] - want[i]) < 1e-3);
  }
  // The kit's ONNX image tower must see the numbers lib/eval feeds the tfjs tower.
  for (const im of [img, randomImage(16, 16, 2), randomImage(40, 24, 3)]) {
    const chw = preprocessImage(im, kitClipPreprocess(16));
    const hwc = toClipInput(im, 16);
    for (let p = 0; p < 256; p++) {
      for (let c = 0; c < 3; c++) assert.ok(Math.abs(chw[c * 256 + p] - hwc[p * 3 + c]) < 1e-5);
    }
  }
});

Deno.test("resampleKernel: Pillow's taps (stretched triangle when shrinking, renormalised at borders)", () => {
  const k = resampleKernel(4, 2, { filter: "bilinear" });
  // Output 0 centred at 1.0, triangle of half-width 2: taps 0..2 at distances 0.5, 0.5, 1.5.
  assert.deepEqual(Array.from(k.starts), [0, 1]);
  assert.deepEqual(Array.from(k.counts), [3, 3]);
  assert.deepEqual(
    Array.from(k.weights.subarray(0, 3)),
    [0.375, 0.375, 0.125].map((v) => v / 0.875),
  );
  const n = resampleKernel(4, 2, { filter: "bilinear", antialias: false });
  assert.deepEqual(Array.from(n.weights.subarray(0, n.counts[0])), [0.5, 0.5]);
});

Deno.test("shortestSideSize and centerCropBox: Hugging Face / torchvision conventions", () => {
  assert.deepEqual(shortestSideSize(640, 480, 224), { width: 298, height: 224 });
  assert.deepEqual(shortestSideSize(480, 640, 224), { width: 224, height: 298 });
  assert.deepEqual(shortestSideSize(16, 9, 5), { width: 8, height: 5 });
  assert.deepEqual(shortestSideSize(300, 300, 224), { width: 224, height: 224 });
  // Differences 1, 2, 3, 5: floor -> 0, 1, 1, 2; Python round (half to even) -> 0, 1, 2, 2.
  const offs = (r: "floor" | "round_half_even") =>
    [1, 2, 3, 5].map((d) =>
      centerCropBox({ width: 5 + d, height: 5 }, { width: 5, height: 5 }, r).x
    );
  assert.deepEqual(offs("floor"), [0, 1, 1, 2]);
  assert.deepEqual(offs("round_half_even"), [0, 1, 2, 2]);
  // A crop larger than the image pads, the extra pixel going last.
  assert.deepEqual(centerCropBox({ width: 5, height: 5 }, { width: 8, height: 6 }), {
    x: -1,
    y: 0,
    width: 8,
    height: 6,
  });
  const img = pattern(3, 2);
  const c = cropRgb(img, { x: -1, y: 1, width: 4, height: 2 });
  const px = (im: RgbImage, x: number, y: number) =>
    Array.from(im.data.subarray((y * im.width + x) * 3, (y * im.width + x) * 3 + 3));
  assert.deepEqual(px(c, 0, 0), [0, 0, 0]);
  assert.deepEqual(px(c, 1, 0), px(img, 0, 1));
  assert.deepEqual(px(c, 3, 0), px(img, 2, 1));
  assert.deepEqual(px(c, 2, 1), [0, 0, 0]);
});

Deno.test("normalisation constants and the mean/std round trip through NCHW packing", () => {
  assert.equal(normalizeValue(255, 0, NORM_SYMMETRIC), 1);
  assert.equal(normalizeValue(0, 2, NORM_SYMMETRIC), -1);
  assert.equal(normalizeValue(255, 1, NORM_UNIT), 1);
  assert.equal(normalizeValue(0, 0, NORM_OPENAI_CLIP), -0.48145466 / 0.26862954);
  assert.equal(normalizeValue(0, 2, NORM_IMAGENET), -0.406 / 0.225);
  const imgs = [randomImage(5, 3, 7), randomImage(5, 3, 8)];
  for (const norm of [NORM_OPENAI_CLIP, NORM_IMAGENET, NORM_UNIT, NORM_SYMMETRIC]) {
    const x = packNchw(imgs, norm);
    // NCHW layout: image n, channel c, row y, column x.
    for (const [n, c, y, xx] of [[0, 0, 0, 0], [1, 2, 2, 4], [1, 1, 0, 3]]) {
      const v = imgs[n].data[(y * 5 + xx) * 3 + c];
      assert.equal(x[((n * 3 + c) * 3 + y) * 5 + xx], Math.fround(normalizeValue(v, c, norm)));
      assert.ok(Math.abs(denormalizeValue(normalizeValue(v, c, norm), c, norm) - v) < 1e-9);
    }
    const back = unpackNchw(x, { n: 2, width: 5, height: 3 }, norm);
    assert.deepEqual(back.map((b) => Array.from(b.data)), imgs.map((b) => Array.from(b.data)));
  }
  assert.throws(
    () => packNchw([randomImage(5, 3, 1), randomImage(4, 3, 1)], NORM_UNIT),
    /images\[1\] is 4x3, expected 5x3/,
  );
});

Deno.test("clipPreprocess: Pillow bicubic short side, floor center crop, CLIP mean/std (Pillow fixture)", () => {
  // 16x9 -> short side 5 -> 8x5 (the Pillow fixture above) -> crop 5x5 at x = (8 - 5) // 2 = 1.
  const spec = clipPreprocess(5);
  const resized = PILLOW_FIXTURES[4][3];
  const bytes = Uint8Array.from(resized.match(/../g)!, (b) => parseInt(b, 16));
  const got = preprocessImage(pattern(16, 9), spec);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < 5; y++) {
      for (let x = 0; x < 5; x++) {
        const v = bytes[(y * 8 + x + 1) * 3 + c];
        assert.equal(got[(c * 5 + y) * 5 + x], Math.fround(normalizeValue(v, c, NORM_OPENAI_CLIP)));
      }
    }
  }
  const batch = preprocessBatch([pattern(16, 9), pattern(5, 5)], spec);
  assert.deepEqual(batch.subarray(0, 75), got);
  assert.throws(
    () => preprocessBatch([pattern(2, 2), { data: new Uint8Array(5), width: 2, height: 2 }], spec),
    /images\[1\]: preprocessImage: image data has 5 bytes, expected 2\*2\*3 RGB/,
  );
});
