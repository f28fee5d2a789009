/**
 * Touch-up statistics: synthetic before/after images with a stand-in scorer (exact values), the
 * outside-the-box pixel count, and one run through the real `touchUp` on the committed tiny SD
 * folder scored by the tiny CLIP towers' CLIP score.
 */
import assert from "node:assert/strict";
import {
  clipScoreScorer,
  countChangedOutside,
  loadClipTowers,
  type Scorer,
  touchUp,
  type TouchUpResult,
  type TouchUpSample,
  touchUpStats,
  touchUpSummary,
} from "../lib/inference/mod.ts";
import { loadOnnxPipeline } from "../lib/onnx/mod.ts";
import { cropRgb, type PixelBox } from "../lib/image/mod.ts";
import type { RgbImage } from "../lib/plot/mod.ts";
import { randomImage } from "./helpers/images.ts";
import { assertClose } from "./helpers/assert_close.ts";
import { TINY_SD } from "./helpers/tiny_sd.ts";

const TOWERS = new URL("./fixtures/tiny_clip_towers", import.meta.url).pathname;
const CPU = { executionProviders: ["cpu"] };

/** Mean of the red channel: a scorer whose value we can compute by hand. */
const redMean: Scorer = {
  name: "red",
  score: (_prompt, images) =>
    Promise.resolve(Float32Array.from(images, (im) => {
      let s = 0;
      for (let p = 0; p < im.data.length; p += 3) s += im.data[p];
      return s / (im.data.length / 3);
    })),
};

/** `image` with the red channel of every pixel in `box` set to `red`. */
function paintBox(image: RgbImage, box: PixelBox, red: number): RgbImage {
  const data = image.data.slice();
  for (let y = box.y; y < box.y + box.height; y++) {
    for (let x = box.x; x < box.x + box.width; x++) data[(y * image.width + x) * 3] = red;
  }
  return { ...image, data };
}

const flat = (w: number, h: number, v: number): RgbImage => ({
  data: new Uint8Array(w * h * 3).fill(v),
  width: w,
  height: h,
});

/** A hand-made touch-up result: the box repainted, nothing else. */
function fakeResult(image: RgbImage, box: PixelBox, red: number): TouchUpResult {
  const mask = { mask: new Float32Array(image.width * image.height), ...image };
  return { image: paintBox(image, box, red), box, mask, patch: image };
}

Deno.test("touchUpStats: exact before/after/difference on synthetic images, stand-in scorer", async () => {
  const box = { x: 2, y: 3, width: 4, height: 4 };
  // Image k is flat at 40 + 10k; its box becomes red 100 + 20k: gain 60 + 10k, mean 80 over 5.
  const samples: TouchUpSample[] = Array.from({ length: 5 }, (_, k) => {
    const image = flat(10, 8, 40 + 10 * k);
    return { image, result: fakeResult(image, box, 100 + 20 * k), prompt: "a face" };
  });
  const s = await touchUpStats(samples, { scorer: redMean, resamples: 1000, seed: 3 });
  assert.equal(s.count, 5);
  assert.deepEqual(s.perImage.map((p) => [p.before, p.after, p.outsideChanged]), [
    [40, 100, 0],
    [50, 120, 0],
    [60, 140, 0],
    [70, 160, 0],
    [80, 180, 0],
  ]);
  assert.deepEqual([s.before.value, s.after.value, s.difference.value], [60, 140, 80]);
  assert.deepEqual([s.improved, s.outsideChanged, s.outsideUnchanged], [1, 0, true]);
  for (const e of [s.before, s.after, s.difference]) {
    assert.ok(e.lo < e.value && e.value < e.hi, `${e.lo} ${e.value} ${e.hi}`);
    assert.deepEqual([e.level, e.resamples], [0.95, 1000]);
  }
  // Resample means of 60..100 lie in [60, 100]; paired, so the difference's interval is that of
  // the gains, not of after minus before resampled apart.
  assert.ok(s.difference.lo >= 60 && s.difference.hi <= 100);
  assert.deepEqual(await touchUpStats(samples, { scorer: redMean, resamples: 1000, seed: 3 }), s);

  // A scored region other than the box: a 2x2 corner of it (all repainted) scores the same.
  const corner = { x: 2, y: 3, width: 2, height: 2 };
  const c = await touchUpStats(samples.map((x) => ({ ...x, region: corner })), {
    scorer: redMean,
    resamples: 10,
  });
  assert.deepEqual([c.before.value, c.after.value], [60, 140]);
  // The whole image as region: 16 of 80 pixels repainted, gain (60 + 10k) * 16 / 80.
  const whole = { x: 0, y: 0, width: 10, height: 8 };
  const w = await touchUpStats(samples.map((x) => ({ ...x, region: whole })), {
    scorer: redMean,
    resamples: 10,
  });
  assertClose(w.difference.value, 80 * 16 / 80, 1e-6, "whole-image gain", { scale: "absolute" });
});

Deno.test("outside pixels: every changed pixel outside the box is counted, none inside", async () => {
  const image = randomImage(12, 9, 1);
  const box = { x: 3, y: 2, width: 5, height: 4 };
  const result = fakeResult(image, box, 7);
  assert.equal(countChangedOutside(image, result.image, box), 0);
  // Break the contract: change three outside pixels (one channel each, green and blue too).
  const data = result.image.data;
  for (const [x, y, ch] of [[0, 0, 0], [11, 8, 1], [8, 2, 2]]) {
    data[(y * 12 + x) * 3 + ch] ^= 1;
  }
  assert.equal(countChangedOutside(image, result.image, box), 3);
  const s = await touchUpStats([{ image, result, prompt: "x" }], { scorer: redMean, resamples: 2 });
  assert.deepEqual([s.outsideChanged, s.outsideUnchanged], [3, false]);
  assert.throws(
    () => countChangedOutside(image, flat(4, 4, 0), box),
    /^Error: countChangedOutside: after is 4x4, before 12x9$/,
  );
  await assert.rejects(
    touchUpStats([{ image, result, prompt: "x", region: { x: 10, y: 0, width: 4, height: 2 } }], {
      scorer: redMean,
    }),
    /^Error: touchUpStats: sample 0 region \{"x":10,"y":0,"width":4,"height":2\} is not inside/,
  );
});

Deno.test("touchUpSummary: paired difference, improved fraction, input checks", () => {
  const s = touchUpSummary(
    { before: [1, 2, 3, 4], after: [2, 2, 5, 3], outsideChanged: [0, 0, 0, 0] },
    { resamples: 300, seed: 1 },
  );
  assert.deepEqual([s.difference.value, s.improved], [0.5, 0.5]);
  assert.ok(s.difference.lo >= -1 && s.difference.hi <= 2);
  assert.throws(
    () => touchUpSummary({ before: [1], after: [1, 2], outsideChanged: [0] }),
    /^Error: touchUpSummary: before has 1 values, after 2, outsideChanged 1; expected one per/,
  );
  assert.throws(
    () => touchUpSummary({ before: [1], after: [Infinity], outsideChanged: [0] }),
    /image 0 scores 1 before, Infinity after; expected finite/,
  );
});

Deno.test("touchUpStats over the real touchUp (tiny SD folder), CLIP score by tiny towers", async () => {
  const pipe = await loadOnnxPipeline(`${TINY_SD}fp32_scalar_t`, CPU);
  const towers = await loadClipTowers({
    textModel: `${TOWERS}/text_model.onnx`,
    imageModel: `${TOWERS}/vision_model.onnx`,
    tokenizerDir: TOWERS,
    ...CPU,
  });
  try {
    const scorer = clipScoreScorer(towers);
    // Two 96x64 images, each with a 16x16 square mask at a different place.
    const squares = [{ x: 48, y: 16 }, { x: 8, y: 40 }];
    const samples: TouchUpSample[] = [];
    for (let k = 0; k < squares.length; k++) {
      const image = randomImage(96, 64, 11, [k]);
      const { x: sx, y: sy } = squares[k];
      const mask = new Float32Array(96 * 64).map((_, p) => {
        const x = p % 96, y = Math.floor(p / 96);
        return x >= sx && x < sx + 16 && y >= sy && y < sy + 16 ? 1 : 0;
      });
      const result = await touchUp({
        pipeline: pipe,
        image,
        mask: { mask, width: 96, height: 64 },
        prompt: "a red circle",
        strength: 0.5,
        steps: 2,
        guidance: 4,
        seed: k,
        feather: 2,
      });
      samples.push({ image, result, prompt: "a red circle" });
    }
    const s = await touchUpStats(samples, { scorer, resamples: 200, seed: 0 });
    assert.equal(s.count, 2);
    assert.equal(s.outsideChanged, 0, "pixels outside the box are bit-identical");
    assert.equal(s.outsideUnchanged, true);
    // The figures are the scorer's on the box crops, computed here independently.
    for (let k = 0; k < 2; k++) {
      const { image, result } = samples[k];
      const changedInside = result.image.data.some((v, i) => v !== image.data[i]);
      assert.ok(changedInside, `image ${k}: the touch-up changed its box`);
      const [b, a] = await scorer.score("a red circle", [
        cropRgb(image, result.box),
        cropRgb(result.image, result.box),
      ]);
      assert.deepEqual([s.perImage[k].before, s.perImage[k].after], [b, a]);
    }
    const gains = s.perImage.map((p) => p.after - p.before);
    assertClose(s.difference.value, (gains[0] + gains[1]) / 2, 1e-12, "mean gain", {
      scale: "absolute",
    });
    assert.deepEqual(
      [s.difference.lo, s.difference.hi].map((v) => +v.toFixed(9)),
      [Math.min(...gains), Math.max(...gains)].map((v) => +v.toFixed(9)),
      "two images: the 2.5% and 97.5% resample means are the all-one-image ones",
    );
  } finally {
    await towers.release();
    await pipe.release();
  }
});
