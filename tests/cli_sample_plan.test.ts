/**
 * `deno task sample` says what a job will do before it starts (images, batches, output size) and
 * refuses, before any model loads, an output it could not write or a grid that cannot fit in
 * memory. `samplePlan`'s numbers are closed forms; the command prints them on a tiny run.
 */
import assert from "node:assert/strict";
import { decodePngRgb } from "../lib/data/mod.ts";
import {
  assertSamplePlanFits,
  evalPlan,
  formatEvalPlan,
  formatSamplePlan,
  samplePlan,
} from "../lib/cli/job_plan.ts";
import { UsageError } from "../lib/cli/args.ts";
import { makeTinyRun } from "./helpers/tiny_run.ts";
import { CLIP_PRESETS } from "../lib/models/clip.ts";
import { cli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

Deno.test("samplePlan: images, batches, grid and memory in closed form", () => {
  const p = samplePlan({ prompts: 2, n: 3, bestOf: 1, batchSize: 4, steps: 6, imageSize: 16 });
  assert.equal(p.cells, 6);
  assert.equal(p.images, 6);
  assert.equal(p.batches, 2); // 6 images in batches of 4: 4 + 2
  assert.equal(p.gridWidth, 3 * 16 + 4 * 2);
  assert.equal(p.gridHeight, 2 * 16 + 3 * 2);
  // PNG rows hold a filter byte then RGB; deflate's stored blocks add 5 bytes per 16383.
  const raw = 38 * (1 + 56 * 3);
  assert.equal(p.pngBytes, raw + 5 * Math.ceil(raw / 16383) + 1024);
  // Every image, then the grid.
  assert.equal(p.memoryBytes, 6 * 16 * 16 * 3 + 56 * 38 * 3);
  assert.equal(
    formatSamplePlan(p, "g.png"),
    "sample plan: 2 prompts x 3 = 6 images in 2 batches of up to 4 (6 steps each); " +
      "writes g.png (56x38 px, at most 0.007 MB)",
  );

  // Best of 5: every cell is its own generator call (ceil(5 / 2) = 3 batches), 30 images.
  const b = samplePlan({ prompts: 2, n: 3, bestOf: 5, batchSize: 2, steps: 6, imageSize: 16 });
  assert.equal(b.images, 30);
  assert.equal(b.batches, 6 * 3);
  // Winners, one cell's candidates, then the grid.
  assert.equal(b.memoryBytes, (6 + 5) * 16 * 16 * 3 + 56 * 38 * 3);
  assert.equal(
    formatSamplePlan(b, "g.png"),
    "sample plan: 2 prompts x 3 = 6 cells, each the best of 5: 30 images in 18 batches of up to " +
      "2 (6 steps each); writes g.png (56x38 px, at most 0.007 MB) and g.png.json",
  );

  // A runaway request: 100000 per prompt at 256 px is a 25.6-gigapixel-wide grid.
  const big = samplePlan({
    prompts: 1,
    n: 100000,
    bestOf: 1,
    batchSize: 32,
    steps: 25,
    imageSize: 256,
  });
  assert.equal(big.batches, 3125);
  assert.equal(big.gridWidth, 100000 * 256 + 100001 * 2);
  assert.equal(big.memoryBytes, 100000 * 256 * 256 * 3 + big.gridWidth * 260 * 3); // 39.8 GB
  assert.throws(() => assertSamplePlanFits(big, { memoryBytes: 32 * 2 ** 30 }), (e: Error) => {
    assert.ok(e instanceof UsageError);
    assert.equal(
      e.message,
      "sample: the job holds about 39.8 GB in memory (its images and the grid), more than this " +
        "machine's 34.4 GB; lower --n or give fewer prompts",
    );
    return true;
  });
  assertSamplePlanFits(big, { memoryBytes: 64 * 2 ** 30 }); // fits: no error
});

Deno.test("evalPlan: images, batches and feature cache of a sweep in closed form", () => {
  const p = evalPlan({
    curves: 2,
    guidance: 3,
    n: 70,
    batchSize: 32,
    steps: 25,
    clipDim: 512,
    fidDim: 2048,
    cacheDir: "runs/x/eval/cache",
    outDir: "runs/x/eval",
  });
  assert.equal(p.images, 2 * 3 * 70);
  assert.equal(p.batches, 2 * 3 * 3); // 70 = 32 + 32 + 6 per (checkpoint, scale)
  assert.equal(p.cacheFiles, 6);
  assert.equal(p.cacheBytes, 6 * 70 * (512 + 2048) * 4);
  assert.equal(
    formatEvalPlan(p),
    "eval plan: 2 curves x 3 guidance scales x 70 images = 420 images in 18 batches of up " +
      "to 32 (25 steps each); caches the images' features in 6 files (about 4.3 MB) in " +
      "runs/x/eval/cache; " +
      "writes clip_fid.json and clip_fid.html in runs/x/eval",
  );
  // The FID space is the CLIP one (no second extractor) and nothing is cached.
  const q = evalPlan({
    curves: 1,
    guidance: 1,
    n: 8,
    batchSize: 32,
    steps: 4,
    clipDim: 16,
    fidDim: null,
    cacheDir: null,
    outDir: "o",
  });
  assert.equal(q.cacheFiles, 0);
  assert.equal(q.cacheBytes, 0);
  assert.equal(
    formatEvalPlan(q),
    "eval plan: 1 curve x 1 guidance scale x 8 images = 8 images in 1 batch of up to 32 " +
      "(4 steps each); no cache; writes clip_fid.json and clip_fid.html in o",
  );
});

Deno.test("deno task sample prints its plan first and refuses an unwritable --out up front", async () => {
  await withTempDir("xgen_cli_sample_plan_", async (dir) => {
    const run = `${dir}/run`;
    await makeTinyRun(run, { captions: ["a red circle", "a blue square"] });
    const base = [
      "lib/cli/sample.ts",
      "--run",
      run,
      "--prompt",
      "a red circle",
      "--prompt",
      "a blue square",
      "--n",
      "3",
      "--steps",
      "2",
      "--batch-size",
      "4",
      "--engine",
      "tfjs",
    ];
    const out = `${dir}/grid.png`;
    const r = await cli([...base, "--out", out]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    const plan = "sample plan: 2 prompts x 3 = 6 images in 2 batches of up to 4 (2 steps each); " +
      `writes ${out} (56x38 px, at most 0.007 MB)`;
    assert.equal(lines[0], plan);
    assert.equal(lines.at(-1), `wrote ${out} (2 rows x 3)`);
    const png = await Deno.readFile(out);
    const g = decodePngRgb(png, out);
    assert.deepEqual([g.width, g.height], [56, 38]);
    assert.ok(
      png.length <= samplePlan({
        prompts: 2,
        n: 3,
        bestOf: 1,
        batchSize: 4,
        steps: 2,
        imageSize: 16,
      }).pngBytes,
    );

    // An output folder that does not exist: refused before sampling, in one line.
    const bad = await cli([...base, "--out", `${dir}/nope/grid.png`]);
    assert.equal(bad.code, 2, bad.stderr);
    const own = bad.stderr.split("\n").filter((l) => l !== "" && !l.startsWith("Blocking"));
    assert.deepEqual(own, [
      `sample: --out ${dir}/nope/grid.png: folder ${dir}/nope does not exist`,
    ]);
    assert.equal(bad.stdout, "");
    // Out-of-range numbers: one line naming the flag, value and range.
    const n = await cli([...base, "--n", "0", "--out", out]);
    assert.equal(n.code, 2);
    assert.equal(n.stderr.trim(), 'sample: --n expects an integer from 1 to 1000000, got "0"');
    const seed = await cli([...base, "--seed", "4294967296", "--out", out]);
    assert.equal(seed.code, 2);
    assert.equal(
      seed.stderr.trim(),
      'sample: --seed expects an integer from 0 to 4294967295, got "4294967296"',
    );
  });
});

Deno.test("deno task eval prints its plan before generating", async () => {
  await withTempDir("xgen_cli_eval_plan_", async (dir) => {
    const run = `${dir}/run`;
    await makeTinyRun(run, { captions: ["a red circle", "a blue square"] });
    const r = await cli([
      "lib/cli/eval.ts",
      "--run",
      run,
      "--checkpoints",
      "final",
      "--n",
      "4",
      "--guidance",
      "1,2",
      "--steps",
      "2",
      "--batch-size",
      "3",
      "--engine",
      "tfjs",
      "--bootstrap-clip",
      "2",
      "--bootstrap-fid",
      "2",
      "--out",
      `${dir}/eval`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const dim = CLIP_PRESETS.tiny.embedDim;
    const plan = evalPlan({
      curves: 1,
      guidance: 2,
      n: 4,
      batchSize: 3,
      steps: 2,
      clipDim: dim,
      fidDim: null,
      cacheDir: `${run}/eval/cache`,
      outDir: `${dir}/eval`,
    });
    assert.equal(
      r.stdout.split("\n")[0],
      "eval plan: 1 curve x 2 guidance scales x 4 images = 8 images in 4 batches of up to 3 " +
        `(2 steps each); caches the images' features in 2 files (about 0.001 MB) in ${run}/eval/` +
        `cache; writes clip_fid.json and clip_fid.html in ${dir}/eval`,
    );
    assert.equal(formatEvalPlan(plan), r.stdout.split("\n")[0]);
    // The cache holds exactly those files, each the features plus a small header.
    const gen = [...Deno.readDirSync(`${run}/eval/cache`)].filter((e) => e.name.startsWith("gen-"));
    assert.equal(gen.length, plan.cacheFiles);
    for (const e of gen) {
      const size = (await Deno.stat(`${run}/eval/cache/${e.name}`)).size;
      assert.ok(size >= 4 * dim * 4 && size < 4 * dim * 4 + 1024, `${e.name}: ${size} bytes`);
    }
  });
});
