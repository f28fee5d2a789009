/**
 * The study's sampling steps on a Stable Diffusion folder (`source`) instead of a kit run: best
 * of N and touch-ups sample the tiny SD fixture at the source's resolution with the source's
 * prompts (cycled), score with the separate CLIP towers and judge with the source's judge. The
 * scores are recomputed from the images the steps kept, so a step that sampled or scored with
 * anything else fails here.
 */
import assert from "node:assert/strict";
import { assertClose } from "./helpers/assert_close.ts";
import { bestOfNSection, bestOfNStep } from "../lib/study/report_best_of_n.ts";
import { touchUpsSection, touchUpsStep } from "../lib/study/report_touch_ups.ts";
import type { StudyModelSource } from "../lib/study/report_source.ts";
import { imageFromJson, type JsonImage } from "../lib/study/report_steps.ts";
import { loadClipTowersFolder } from "../lib/inference/clip_towers.ts";
import { clipScoreScorer, loadScorer } from "../lib/inference/scorers.ts";
import { argmaxFirst } from "../lib/inference/best_of_n.ts";
import { loadOnnxPipeline, txt2img } from "../lib/onnx/sd_pipeline.ts";
import type { RgbImage } from "../lib/plot/mod.ts";

const MODEL = "tests/fixtures/tiny_sd/fp32_scalar_t";
const CLIP = "tests/fixtures/tiny_clip_towers";
const PROMPTS = ["a red circle", "a blue square"];
const SAMPLING = { guidance: 3, steps: 2, scheduler: "ddim", seed: 7, resamples: 50 };
const source: StudyModelSource = {
  model: MODEL,
  clip: CLIP,
  prompts: PROMPTS,
  judge: `aesthetic:${CLIP}`, // the towers plus aesthetic_head.onnx
  resolution: 64,
};

/** Cell (col, row) of a grid made by imageGrid with pad 1 and `side`-pixel cells. */
function cell(grid: JsonImage, col: number, row: number, side: number): RgbImage {
  const g = imageFromJson(grid);
  const data = new Uint8Array(side * side * 3);
  const x0 = 1 + col * (side + 1), y0 = 1 + row * (side + 1);
  for (let y = 0; y < side; y++) {
    const start = ((y0 + y) * g.width + x0) * 3;
    data.set(g.data.subarray(start, start + side * 3), y * side * 3);
  }
  return { data, width: side, height: side };
}

const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;

Deno.test("bestOfNStep with a source: its model, prompts, CLIP towers and judge", async (t) => {
  const r = await bestOfNStep({ runDir: "", source, prompts: 3, candidates: 4, ...SAMPLING });
  assert.deepEqual(r.prompts, [...PROMPTS, PROMPTS[0]]); // cycled
  assert.deepEqual([r.selector, r.judge], [`CLIP towers ${CLIP}`, `aesthetic ${CLIP}`]);
  assert.deepEqual(r.pools.map((p) => [p.selector.length, p.judge?.length]), [[4, 4], [4, 4], [
    4,
    4,
  ]]);
  // Rows: the 3 prompts; columns: the 4 candidates, each at the source's 64 px.
  const g = imageFromJson(r.grid);
  assert.deepEqual([g.width, g.height], [4 * 64 + 5, 3 * 64 + 4]);

  await t.step("selector and judge scores are the source's scorers' scores", async () => {
    const towers = await loadClipTowersFolder(CLIP);
    const judge = await loadScorer({ kind: "aesthetic", dir: CLIP });
    try {
      const clip = clipScoreScorer(towers);
      for (let i = 0; i < 3; i++) {
        const cands = [0, 1, 2, 3].map((c) => cell(r.grid, c, i, 64));
        const selector = await clip.score(r.prompts[i], cands);
        assertClose(r.pools[i].selector, selector, 1e-5, `prompt ${i} selector`);
        assertClose(r.pools[i].judge!, await judge.score(r.prompts[i], cands), 1e-5, "judge");
        assert.equal(r.winners[i], argmaxFirst(selector));
      }
      // Different candidates score differently: the comparison above is not of constants.
      assert.ok(new Set(r.pools.flatMap((p) => p.selector)).size > 4);
    } finally {
      await judge.release();
      await towers.release();
    }
  });

  await t.step("the curve: best of 1 is the pools' mean, best of 4 their maximum", () => {
    assert.equal(r.curve.judged, true);
    const pts = r.curve.points;
    assertClose(pts[0].score.value, mean(r.pools.map((p) => mean(p.selector))), 1e-9, "N=1");
    assertClose(pts[3].score.value, mean(r.pools.map((p) => Math.max(...p.selector))), 1e-9, "N=4");
    assert.equal(pts[0].winRate!.value, 0.5); // best of 1 against best of 1
  });

  await t.step("the section has both figures and headlines", () => {
    const s = bestOfNSection(r);
    assert.deepEqual(s.headlines.map((h) => h.id), [
      "best_of_n.judge_win_rate",
      "best_of_n.selector_score",
    ]);
    assert.deepEqual(s.figures.map((f) => f.id), ["best-of-n-curve", "best-of-n-judge"]);
    assert.match(s.measured, new RegExp(`the judge \\(aesthetic ${CLIP}\\) prefers`));
    assert.ok(!s.caveats?.some((c) => /No second scorer/.test(c)));
  });
});

Deno.test("bestOfNStep with a source and no judge, at another resolution", async () => {
  const bare = { ...source, judge: undefined, resolution: 32 };
  const r = await bestOfNStep({ runDir: "", source: bare, prompts: 2, candidates: 3, ...SAMPLING });
  assert.equal(r.judge, null);
  assert.deepEqual(r.pools.map((p) => [p.selector.length, "judge" in p]), [[3, false], [3, false]]);
  assert.equal(r.curve.judged, false);
  const g = imageFromJson(r.grid);
  assert.deepEqual([g.width, g.height], [3 * 32 + 4, 2 * 32 + 3]); // 32 px, not the folder's 64
  assertClose(
    r.curve.points[0].score.value,
    mean(r.pools.map((p) => mean(p.selector))),
    1e-9,
    "N=1",
  );
  const s = bestOfNSection(r);
  assert.deepEqual(s.headlines.map((h) => h.id), ["best_of_n.selector_score"]);
  assert.deepEqual(s.figures.map((f) => f.id), ["best-of-n-curve"]);
  assert.ok(s.caveats?.some((c) => /No second scorer was given/.test(c)));
  assert.match(s.measured, /no judge scored the picks/);
});

Deno.test("touchUpsStep with a source: its images, centre box only, its CLIP towers", async () => {
  const r = await touchUpsStep({
    runDir: "",
    source,
    images: 3,
    strength: 0.7,
    ...SAMPLING,
    steps: 4,
  });
  assert.deepEqual(r.prompts, [...PROMPTS, PROMPTS[0]]);
  assert.equal(r.scorer, `CLIP score by CLIP towers ${CLIP} of the region crop`);
  assert.deepEqual([r.stats.count, r.stats.outsideChanged, r.stats.outsideUnchanged], [3, 0, true]);
  // Row 0: the generated images, as txt2img makes them from the source; row 1: touched up.
  const pipe = await loadOnnxPipeline(MODEL, { executionProviders: ["cpu"] });
  const made = await txt2img(pipe, {
    prompts: r.prompts,
    guidance: SAMPLING.guidance,
    steps: 4,
    scheduler: SAMPLING.scheduler,
    seed: SAMPLING.seed,
    height: 64,
    width: 64,
  });
  await pipe.release();
  const towers = await loadClipTowersFolder(CLIP);
  const clip = clipScoreScorer(towers);
  let changedInside = 0;
  for (let i = 0; i < 3; i++) {
    const before = cell(r.grid, i, 0, 64), after = cell(r.grid, i, 1, 64);
    assert.deepEqual(before.data, made[i].data, `image ${i} is the source's txt2img image`);
    for (let y = 0; y < 64; y++) {
      for (let x = 0; x < 64; x++) {
        const inBox = x >= 16 && x < 48 && y >= 16 && y < 48; // the centre square
        for (let c = 0; c < 3; c++) {
          const k = (y * 64 + x) * 3 + c;
          if (inBox) changedInside += before.data[k] !== after.data[k] ? 1 : 0;
          else assert.equal(after.data[k], before.data[k], `image ${i} (${x}, ${y}) outside`);
        }
      }
    }
    // The region's scores are the towers' CLIP scores of the centre crop.
    const crop = (im: RgbImage) => {
      const data = new Uint8Array(32 * 32 * 3);
      for (let y = 0; y < 32; y++) {
        data.set(im.data.subarray(((16 + y) * 64 + 16) * 3, ((16 + y) * 64 + 48) * 3), y * 96);
      }
      return { data, width: 32, height: 32 };
    };
    const s = await clip.score(r.prompts[i], [crop(before), crop(after)]);
    const p = r.stats.perImage[i];
    assertClose([p.before, p.after], s, 1e-5, `image ${i} region scores`);
  }
  await towers.release();
  assert.ok(changedInside > 0, "the touch-up changed the centre square");
  const sec = touchUpsSection(r);
  assert.deepEqual(sec.headlines.map((h) => h.id), [
    "touch_ups.difference",
    "touch_ups.before",
    "touch_ups.after",
  ]);
  assert.deepEqual(sec.caveats, []);
});

Deno.test("a bad source fails before sampling, naming the field", async () => {
  const base = { runDir: "", prompts: 1, candidates: 2, ...SAMPLING };
  await assert.rejects(
    bestOfNStep({ ...base, source: { ...source, prompts: [] } }),
    /study source: prompts must be a non-empty list/,
  );
  await assert.rejects(
    bestOfNStep({ ...base, source: { ...source, judge: "clip" } }),
    /judge: "clip" is a kit run's own CLIP/,
  );
  await assert.rejects(
    bestOfNStep({ ...base, source: { ...source, judge: "aesthetic:/nonexistent" } }),
    /\/nonexistent: folder does not exist/,
  );
});
