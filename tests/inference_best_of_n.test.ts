/**
 * Rejection sampling (`bestOfN`, its scorers, `deno task sample --best-of`): the winner is the
 * argmax of scores recomputed independently, ties go to the lowest index, the same seed gives
 * the same candidates and winners whatever the batch size, and the CLI writes the grid of
 * winners with a JSON record that matches it. On a tiny untrained run (as
 * onnx_sd_pipeline.test.ts builds it) and hand-built PickScore-style ONNX towers.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import {
  argmaxFirst,
  bestOfN,
  bestOfNSeed,
  checkScorerFolder,
  loadKitClipTowers,
  loadScorer,
  parseScorerSpec,
  type Scorer,
} from "../lib/inference/mod.ts";
import type { GenerateOptions } from "../lib/diffusion/mod.ts";
import { loadOnnxPipeline, OnnxGraph, saveOnnx, txt2img } from "../lib/onnx/mod.ts";
import { ensureOnnxExport } from "../lib/recipe/mod.ts";
import { NORM_OPENAI_CLIP, normalizeValue } from "../lib/image/mod.ts";
import { decodePngRgb } from "../lib/data/mod.ts";
import type { RgbImage } from "../lib/plot/mod.ts";
import { Rng } from "../lib/util/rng.ts";
import { cli } from "./helpers/cli.ts";
import { makeTinyRun } from "./helpers/tiny_run.ts";

await tf.setBackend("cpu");

const OPTS = { threads: 1, executionProviders: ["cpu"] } as const;
const CAPTIONS = ["a red circle", "two blue squares", "a green triangle"];
const SIZE = 16; // the tiny presets' image side

// A PickScore-style folder: a letters-only CLIP BPE vocabulary without merges, so every word is
// its letters with "</w>" on the last one, and towers simple enough to recompute by hand.
const LETTERS = [..."abcdefghijklmnopqrstuvwxyz"];
const VOCAB = [...LETTERS, ...LETTERS.map((c) => `${c}</w>`), "<|startoftext|>", "<|endoftext|>"];
const START = VOCAB.length - 2, END = VOCAB.length - 1;
const T = 24;
const EMB = Rng.stream(21).normal(VOCAB.length * 4); // token embedding [V, 4]
const PROJ_T = Rng.stream(22).normal(4 * 3); // text projection [4, 3]
const PROJ_I = Rng.stream(23).normal(3 * 3); // image projection [3, 3]
const HEAD_W = Rng.stream(24).normal(3); // aesthetic head [3, 1], bias 0.5

/** Ids the BPE tokenizer gives `prompt` with this vocabulary, padded with the end token. */
function expectIds(prompt: string): number[] {
  const ids = [START];
  for (const w of prompt.split(" ")) {
    [...w].forEach((c, i) => ids.push(LETTERS.indexOf(c) + (i === w.length - 1 ? 26 : 0)));
  }
  ids.push(END);
  while (ids.length < T) ids.push(END);
  return ids;
}

/** Text embedding by hand: mean of the token rows over all T positions, times PROJ_T. */
function expectText(prompt: string): number[] {
  const mean = [0, 0, 0, 0];
  for (const id of expectIds(prompt)) for (let j = 0; j < 4; j++) mean[j] += EMB[id * 4 + j] / T;
  return [0, 1, 2].map((k) => mean.reduce((s, m, j) => s + m * PROJ_T[j * 3 + k], 0));
}

/** Image embedding by hand: 16x16 needs no resize or crop; channel means normalised, PROJ_I. */
function expectImage(im: RgbImage): number[] {
  const mean = [0, 0, 0];
  for (let i = 0; i < SIZE * SIZE; i++) for (let c = 0; c < 3; c++) mean[c] += im.data[i * 3 + c];
  const norm = mean.map((m, c) => normalizeValue(m / (SIZE * SIZE), c, NORM_OPENAI_CLIP));
  return [0, 1, 2].map((k) => norm.reduce((s, v, c) => s + v * PROJ_I[c * 3 + k], 0));
}

function cos(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    d += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return d / Math.sqrt(na * nb);
}

async function makePickScoreDir(dir: string, withHead: boolean): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/vocab.json`,
    JSON.stringify(Object.fromEntries(VOCAB.map((t, i) => [t, i]))),
  );
  await Deno.writeTextFile(`${dir}/merges.txt`, "#version: 0.2\n");
  await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify({ model_max_length: T }));
  const t = new OnnxGraph("text");
  const h = t.node("Gather", [
    t.initializer("emb", EMB, [VOCAB.length, 4]),
    t.input("input_ids", "int64", ["batch", T]),
  ], { axis: 0 });
  const pooled = t.node("ReduceMean", [h], { axes: [1], keepdims: 0 });
  const te = t.node("MatMul", [pooled, t.initializer("p", PROJ_T, [4, 3])], {}, {
    outputs: ["text_embeds"],
  });
  t.output(te, "float32", ["batch", 3]);
  await saveOnnx(`${dir}/text_model.onnx`, t.toBytes());
  const v = new OnnxGraph("vision");
  const px = v.input("pixel_values", "float32", ["batch", 3, SIZE, SIZE]);
  const pv = v.node("Flatten", [v.node("GlobalAveragePool", [px])], { axis: 1 });
  const ie = v.node("MatMul", [pv, v.initializer("q", PROJ_I, [3, 3])], {}, {
    outputs: ["image_embeds"],
  });
  v.output(ie, "float32", ["batch", 3]);
  await saveOnnx(`${dir}/vision_model.onnx`, v.toBytes());
  if (withHead) {
    const g = new OnnxGraph("aesthetic");
    const x = g.input("embeds", "float32", ["batch", 3]);
    const y = g.node("Gemm", [x, g.initializer("w", HEAD_W, [3, 1]), g.constant([0.5], [1])]);
    g.output(y, "float32", ["batch", 1]);
    await saveOnnx(`${dir}/aesthetic_head.onnx`, g.toBytes());
  }
}

function sameImages(a: readonly RgbImage[], b: readonly RgbImage[], what: string): void {
  assert.equal(a.length, b.length, `${what}: count`);
  a.forEach((im, i) => assert.deepEqual(im.data, b[i].data, `${what}: image ${i}`));
}

const root = await Deno.makeTempDir({ prefix: "xgen_best_of_n_" });
const runDir = `${root}/run`;
const pickDir = `${root}/pickscore`;
const aesDir = `${root}/aesthetic`;
await makeTinyRun(runDir, { captions: CAPTIONS });
// The same export the CLI makes, so its runs below find it up to date.
const exportDir = await ensureOnnxExport(runDir);
await makePickScoreDir(pickDir, false);
await makePickScoreDir(aesDir, true);
const SAMPLING = { guidance: 4, steps: 3, scheduler: "pndm", seed: 5 } as const;

Deno.test("bestOfN with fakes: one generator call per prompt, chunked scoring, ties to the lowest index", async () => {
  const calls: GenerateOptions[] = [];
  // Pixel value = candidate index, so a scorer can tell candidates apart.
  const generator = (o: GenerateOptions) => {
    calls.push(o);
    o.onProgress?.(o.n, o.n);
    return Promise.resolve(Array.from({ length: o.n }, (_, k) => ({
      data: new Uint8Array(3).fill(k),
      width: 1,
      height: 1,
    })));
  };
  const table: Record<string, number[]> = { a: [1, 5, 2, 5, 0], b: [3, 3, 3, 3, 3] };
  const chunks: number[] = [];
  const scorer: Scorer = {
    name: "table",
    score: (prompt, images) => {
      chunks.push(images.length);
      return Promise.resolve(Float32Array.from(images, (im) => table[prompt][im.data[0]]));
    },
  };
  const events: string[] = [];
  const picks = await bestOfN({
    ...SAMPLING,
    generator,
    scorer,
    prompts: ["a", "b"],
    candidates: 5,
    batchSize: 2,
    keepCandidates: true,
    onProgress: (p) => events.push(`${p.prompt}/${p.prompts}:${p.done}/${p.candidates}`),
  });
  assert.deepEqual(picks.map((p) => p.winner), [1, 0]);
  assert.deepEqual(picks.map((p) => p.score), [5, 3]);
  assert.deepEqual(Array.from(picks[0].scores), table.a);
  assert.equal(picks[0].image.data[0], 1);
  assert.equal(picks[1].candidates!.length, 5);
  assert.deepEqual(chunks, [2, 2, 1, 2, 2, 1]);
  assert.deepEqual(events, ["0/2:5/5", "1/2:5/5"]);
  assert.deepEqual(
    calls.map((c) => [c.prompts, c.n, c.seed, c.batchSize, c.scheduler, c.steps, c.guidance]),
    [
      [["a"], 5, bestOfNSeed(5, 0), 2, "pndm", 3, 4],
      [["b"], 5, bestOfNSeed(5, 1), 2, "pndm", 3, 4],
    ],
  );
  const noKeep = await bestOfN({ ...SAMPLING, generator, scorer, prompts: ["a"], candidates: 5 });
  assert.equal(noKeep[0].candidates, undefined);

  // Seeds: a hash of (seed, index) in [0, 2^31), stable, distinct for neighbours.
  const seeds = [bestOfNSeed(0, 0), bestOfNSeed(0, 1), bestOfNSeed(1, 0), bestOfNSeed(5, 0)];
  assert.equal(new Set(seeds).size, 4);
  assert.ok(seeds.every((s) => Number.isInteger(s) && s >= 0 && s < 2 ** 31));
  assert.equal(bestOfNSeed(5, 0), seeds[3]);
  assert.equal(argmaxFirst([2, 7, 7, -1]), 1);

  // A scorer that miscounts or gives NaN stops the run with one line.
  const bad = (v: number[]): Scorer => ({
    name: "bad",
    score: () => Promise.resolve(Float32Array.from(v)),
  });
  await assert.rejects(
    bestOfN({ ...SAMPLING, generator, scorer: bad([1]), prompts: ["a"], candidates: 2 }),
    { message: 'bestOfN: scorer "bad" gave 1 scores for 2 images' },
  );
  await assert.rejects(
    bestOfN({ ...SAMPLING, generator, scorer: bad([1, NaN]), prompts: ["a"], candidates: 2 }),
    { message: 'bestOfN: scorer "bad" gave NaN for candidate 1 of "a"' },
  );
  await assert.rejects(
    bestOfN({ ...SAMPLING, generator, scorer, prompts: ["a"], candidates: 0 }),
    { message: "bestOfN: candidates must be a positive integer, got 0" },
  );
});

Deno.test("scorer specs: parsed forms and one-line errors naming the folder and its files", async () => {
  assert.deepEqual(parseScorerSpec("clip"), { kind: "clip" });
  assert.deepEqual(parseScorerSpec("pickscore:m/p/"), { kind: "pickscore", dir: "m/p" });
  assert.deepEqual(parseScorerSpec("aesthetic:/"), { kind: "aesthetic", dir: "/" });
  assert.throws(() => parseScorerSpec("pickscore:"), {
    message: 'scorer "pickscore:" names no folder; write pickscore:DIR',
  });
  assert.throws(() => parseScorerSpec("clip:x"), {
    message: 'scorer "clip:x": clip is the run\'s own CLIP and takes no folder',
  });
  assert.throws(() => parseScorerSpec("best"), {
    message: 'scorer must be clip, pickscore:DIR or aesthetic:DIR, got "best"',
  });
  const layout = "a pickscore folder holds text_model.onnx (CLIP text tower, input_ids -> " +
    "text_embeds), vision_model.onnx (CLIP image tower, pixel_values -> image_embeds), " +
    "vocab.json (CLIP BPE tokenizer; or tokenizer.json), merges.txt (CLIP BPE tokenizer; or tokenizer.json)";
  await assert.rejects(checkScorerFolder({ kind: "pickscore", dir: `${root}/nope` }), {
    message: `${root}/nope: folder does not exist; ${layout}`,
  });
  // The PickScore folder has no head: as an aesthetic folder it lacks exactly that file.
  await assert.rejects(checkScorerFolder({ kind: "aesthetic", dir: pickDir }), {
    message: new RegExp(`^${pickDir}: missing aesthetic_head\\.onnx; an aesthetic folder holds `),
  });
  await checkScorerFolder({ kind: "aesthetic", dir: aesDir });
});

Deno.test("bestOfN on a tiny run: winners are the argmax of independently recomputed scores, deterministic, batch size free", async () => {
  const pipe = await loadOnnxPipeline(exportDir, OPTS);
  const clip = await loadScorer({ kind: "clip" }, { ...OPTS, exportDir });
  const towers = await loadKitClipTowers(exportDir, OPTS);
  const prompts = ["a red circle", "two blue squares"];
  const run = (batchSize?: number, scorer: Scorer = clip) =>
    bestOfN({
      ...SAMPLING,
      generator: (o) => txt2img(pipe, o),
      scorer,
      prompts,
      candidates: 4,
      batchSize,
      keepCandidates: true,
    });
  const picks = await run();
  for (const [i, p] of picks.entries()) {
    const c = p.candidates!;
    // The scorer again, on the returned candidates: same scores, same argmax.
    assert.deepEqual(await clip.score(p.prompt, c), p.scores);
    // CLIP score by hand from the towers' raw embeddings, in float64.
    const t = await towers.encodeText([p.prompt]);
    const e = await towers.encodeImages(c);
    const want = c.map((_, k) => 100 * cos(e.subarray(k * towers.dim, (k + 1) * towers.dim), t));
    want.forEach((w, k) =>
      assert.ok(Math.abs(p.scores[k] - w) < 1e-3, `${i}/${k}: ${p.scores[k]} vs ${w}`)
    );
    assert.equal(p.winner, want.indexOf(Math.max(...want)));
    assert.equal(p.image, c[p.winner]);
    assert.equal(p.seed, bestOfNSeed(SAMPLING.seed, i));
    // Candidate k is image k of a plain sample with the recorded seed.
    sameImages(
      c,
      await txt2img(pipe, { ...SAMPLING, prompts: [p.prompt], n: 4, seed: p.seed }),
      "replay",
    );
    assert.ok(new Set(p.scores).size === 4, "candidates score differently");
  }
  assert.notDeepEqual(picks[0].candidates![0].data, picks[1].candidates![0].data);

  // Default batch (one UNet batch of 4), 4 batches of 1, and batches of 3 + 1.
  const reruns = {
    "same call": await run(),
    "batchSize 1": await run(1),
    "batchSize 3": await run(3),
  };
  for (const [what, again] of Object.entries(reruns)) {
    again.forEach((p, i) => {
      assert.equal(p.winner, picks[i].winner, `${what}: winner ${i}`);
      assert.deepEqual(p.scores, picks[i].scores, `${what}: scores ${i}`);
      sameImages(p.candidates!, picks[i].candidates!, `${what}: prompt ${i}`);
    });
  }

  // PickScore-style towers (OpenAI conventions) and the aesthetic head, recomputed by hand.
  const pick = await loadScorer(parseScorerSpec(`pickscore:${pickDir}`), OPTS);
  const aes = await loadScorer(parseScorerSpec(`aesthetic:${aesDir}`), OPTS);
  assert.deepEqual([pick.name, aes.name], ["pickscore", "aesthetic"]);
  for (
    const [scorer, expect] of [
      [pick, (p: string, im: RgbImage) => 100 * cos(expectImage(im), expectText(p))],
      [aes, (_p: string, im: RgbImage) => {
        const e = expectImage(im), n = Math.hypot(...e);
        return 0.5 + e.reduce((s, v, j) => s + (v / n) * HEAD_W[j], 0);
      }],
    ] as const
  ) {
    const got = await run(undefined, scorer);
    got.forEach((p, i) => {
      sameImages(p.candidates!, picks[i].candidates!, `${scorer.name}: same candidates`);
      const want = p.candidates!.map((im) => expect(p.prompt, im));
      want.forEach((w, k) =>
        assert.ok(
          Math.abs(p.scores[k] - w) < 1e-3 * (1 + Math.abs(w)),
          `${scorer.name} ${i}/${k}: ${p.scores[k]} vs ${w}`,
        )
      );
      assert.equal(p.winner, want.indexOf(Math.max(...want)), `${scorer.name}: winner ${i}`);
    });
  }
  for (const s of [clip, pick, aes]) await s.release();
  await towers.release();
  await pipe.release();
});

Deno.test("deno task sample --best-of: grid of winners and a JSON record that matches it; bad --scorer", async () => {
  const out = `${root}/best.png`;
  const prompts = ["a red circle", "two blue squares"];
  const args = [
    "lib/cli/sample.ts",
    "--run",
    runDir,
    ...prompts.flatMap((p) => ["--prompt", p]),
    "--n",
    "2",
    "--steps",
    "3",
    "--scheduler",
    "pndm",
    "--seed",
    "9",
    "--out",
    out,
  ];
  const r = await cli([...args, "--best-of", "3", "--batch-size", "2"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /onnx: using .*run\/onnx \(up to date/);
  assert.match(
    r.stdout,
    new RegExp(`wrote ${out} \\(2 rows x 2, each the best of 3 by clip\\) and ${out}\\.json`),
  );
  const rec = JSON.parse(await Deno.readTextFile(`${out}.json`));
  assert.equal(rec.format, "xgen-kit-best-of-n/1");
  assert.deepEqual(rec.scorer, { name: "clip", spec: "clip" });
  assert.deepEqual(rec.settings, {
    run: runDir,
    model: null,
    checkpoint: null,
    engine: "onnx",
    n: 2,
    bestOf: 3,
    guidance: 4,
    steps: 3,
    scheduler: "pndm",
    seed: 9,
    batchSize: 2,
    provider: "auto",
  });
  assert.deepEqual(rec.prompts.map((p: { prompt: string }) => p.prompt), prompts);
  assert.deepEqual(
    [...Deno.readDirSync(root)].map((e) => e.name).filter((n) => n.includes(".tmp-")),
    [],
  );

  // Each cell: winner = argmax of its recorded scores, seed = bestOfNSeed(9, cell), and the
  // grid holds exactly that candidate of a replay with the recorded seed.
  const grid = decodePngRgb(await Deno.readFile(out), out);
  assert.equal(grid.width, 2 * SIZE + 3 * 2);
  assert.equal(grid.height, 2 * SIZE + 3 * 2);
  const pipe = await loadOnnxPipeline(exportDir, OPTS);
  for (const [row, p] of rec.prompts.entries()) {
    assert.equal(p.cells.length, 2);
    for (const [col, c] of p.cells.entries()) {
      assert.equal(c.scores.length, 3);
      assert.equal(c.winner, argmaxFirst(c.scores));
      assert.equal(c.score, c.scores[c.winner]);
      assert.equal(c.seed, bestOfNSeed(9, row * 2 + col));
      const [im] = (await txt2img(pipe, { ...SAMPLING, prompts: [p.prompt], n: 3, seed: c.seed }))
        .slice(c.winner);
      const x0 = 2 + col * (SIZE + 2), y0 = 2 + row * (SIZE + 2);
      let diff = 0;
      for (let y = 0; y < SIZE; y++) {
        for (let x = 0; x < SIZE; x++) {
          for (let k = 0; k < 3; k++) {
            diff = Math.max(
              diff,
              Math.abs(
                grid.image[((y0 + y) * grid.width + x0 + x) * 3 + k] -
                  im.data[(y * SIZE + x) * 3 + k],
              ),
            );
          }
        }
      }
      assert.equal(diff, 0, `cell ${row},${col}`);
    }
  }
  await pipe.release();

  // PickScore through the CLI: the record names it.
  const r2 = await cli([...args, "--best-of", "2", "--scorer", `pickscore:${pickDir}/`]);
  assert.equal(r2.code, 0, r2.stderr);
  const rec2 = JSON.parse(await Deno.readTextFile(`${out}.json`));
  assert.deepEqual(rec2.scorer, { name: "pickscore", spec: `pickscore:${pickDir}` });
  for (const p of rec2.prompts) {
    for (const c of p.cells) assert.equal(c.winner, argmaxFirst(c.scores));
  }

  // Bad values: one line, exit code 2, before anything is loaded.
  const bad = await Promise.all([
    ["--best-of", "3", "--scorer", "pickscore:"],
    ["--best-of", "3", "--scorer", `pickscore:${root}/missing`],
    ["--best-of", "3", "--scorer", `aesthetic:${pickDir}`],
    ["--best-of", "3", "--scorer", "vibes"],
    ["--scorer", "clip"],
    ["--best-of", "0"],
  ].map((extra) => cli([...args, ...extra])));
  const lines = bad.map((b) => {
    assert.equal(b.code, 2, b.stderr);
    // Deno itself may note a node_modules lock held by a concurrent run; the rest is ours.
    const own = b.stderr.split("\n").filter((l) => l !== "" && !l.startsWith("Blocking waiting"));
    assert.equal(own.length, 1, `one line: ${b.stderr}`);
    return own[0];
  });
  assert.equal(lines[0], 'sample: scorer "pickscore:" names no folder; write pickscore:DIR');
  assert.equal(
    lines[1],
    `sample: ${root}/missing: folder does not exist; a pickscore folder holds text_model.onnx (CLIP text tower, input_ids -> text_embeds), vision_model.onnx (CLIP image tower, pixel_values -> image_embeds), vocab.json (CLIP BPE tokenizer; or tokenizer.json), merges.txt (CLIP BPE tokenizer; or tokenizer.json)`,
  );
  assert.match(
    lines[2],
    new RegExp(
      `^sample: ${pickDir}: missing aesthetic_head\\.onnx; an aesthetic folder holds .*aesthetic_head\\.onnx \\(MLP head, \\[batch, dim\\] -> \\[batch, 1\\]\\)$`,
    ),
  );
  assert.equal(
    lines[3],
    'sample: scorer must be clip, pickscore:DIR or aesthetic:DIR, got "vibes"',
  );
  assert.equal(
    lines[4],
    "sample: --scorer needs --best-of N with N >= 2 (--best-of 1, the default, does not rank)",
  );
  assert.equal(lines[5], 'sample: --best-of expects an integer from 1 to 10000, got "0"');
  await Deno.remove(root, { recursive: true });
});
