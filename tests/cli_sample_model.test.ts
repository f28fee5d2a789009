/**
 * `deno task sample --model DIR` on the SD folders torch.onnx.export wrote
 * (tests/fixtures/tiny_sd): the grid equals `loadOnnxPipeline` + `txt2img` called directly with
 * the same settings, pixel for pixel, for every variant and seed; `--best-of` with `--model`
 * picks the argmax of independently recomputed scores; bad folders and flag mixes are refused in
 * one line.
 */
import assert from "node:assert/strict";
import { decodePngRgb } from "../lib/data/mod.ts";
import { loadOnnxPipeline, txt2img } from "../lib/onnx/mod.ts";
import { bestOfNSeed, loadScorer } from "../lib/inference/mod.ts";
import { imageGrid, writePng } from "../lib/plot/mod.ts";
import { cli } from "./helpers/cli.ts";
import { TINY_SD } from "./helpers/tiny_sd.ts";
import { withTempDir } from "./helpers/temp_dir.ts";
import { makeTowersDir } from "./helpers/towers_dir.ts";

const VARIANTS = ["fp32_int64_t", "fp16", "fp32_scalar_t"];
const PROMPTS = ["a red circle", "two blue squares"];
const SETTINGS = { guidance: 4, steps: 3, scheduler: "dpmpp_2m", batchSize: 32 } as const;

function sampleArgs(model: string, out: string, seed: number, extra: string[] = []): string[] {
  return [
    "lib/cli/sample.ts",
    "--model",
    model,
    ...PROMPTS.flatMap((p) => ["--prompt", p]),
    "--n",
    "2",
    "--steps",
    String(SETTINGS.steps),
    "--seed",
    String(seed),
    "--out",
    out,
    ...extra,
  ];
}

Deno.test("sample --model: each tiny SD variant's grid equals loadOnnxPipeline + txt2img", async () => {
  await withTempDir("xgen_sample_model_", async (dir) => {
    for (const v of VARIANTS) {
      const model = `${TINY_SD}${v}`;
      const pipe = await loadOnnxPipeline(model, { executionProviders: ["cpu"] });
      try {
        for (const seed of [7, 8]) {
          const out = `${dir}/${v}_${seed}.png`;
          const r = await cli(sampleArgs(model, out, seed));
          assert.equal(r.code, 0, `${v}: ${r.stderr}`);
          assert.match(r.stdout, /wrote .* \(2 rows x 2\)/);
          const direct = await txt2img(pipe, { ...SETTINGS, prompts: PROMPTS, n: 2, seed });
          const want = imageGrid(direct, { cols: 2, pad: 2 });
          const got = decodePngRgb(await Deno.readFile(out), out);
          assert.deepEqual([got.width, got.height], [2 * 64 + 3 * 2, 2 * 64 + 3 * 2]);
          assert.deepEqual(got.image, want.data, `${v} seed ${seed}: grid differs from txt2img`);
          assert.ok(new Set(got.image).size > 20, `${v}: grid is not flat`);
        }
        // Another seed, other images: the seed reaches the noise.
        const [a, b] = [7, 8].map((s) => Deno.readFileSync(`${dir}/${v}_${s}.png`));
        assert.notDeepEqual(a, b);
      } finally {
        await pipe.release();
      }
    }
  });
});

Deno.test("sample --model --best-of: winners are the argmax of recomputed scores", async () => {
  await withTempDir("xgen_sample_model_best_", async (dir) => {
    const model = `${TINY_SD}fp32_scalar_t`;
    const pick = `${dir}/pick`;
    await makeTowersDir(pick, { tokenizerDir: `${model}/tokenizer`, size: 16, seed: 3 });
    const out = `${dir}/best.png`;
    const r = await cli(
      sampleArgs(model, out, 5, ["--best-of", "3", "--scorer", `pickscore:${pick}`]),
    );
    assert.equal(r.code, 0, r.stderr);
    const rec = JSON.parse(await Deno.readTextFile(`${out}.json`));
    assert.equal(rec.settings.model, model);
    assert.equal(rec.settings.run, null);
    assert.equal(rec.scorer.name, "pickscore");
    const pipe = await loadOnnxPipeline(model, { executionProviders: ["cpu"] });
    const scorer = await loadScorer({ kind: "pickscore", dir: pick }, {
      executionProviders: ["cpu"],
    });
    try {
      const winners = [];
      let cell = 0;
      for (const [row, prompt] of PROMPTS.entries()) {
        assert.equal(rec.prompts[row].prompt, prompt);
        for (const c of rec.prompts[row].cells) {
          assert.equal(c.seed, bestOfNSeed(5, cell++));
          const cands = await txt2img(pipe, { ...SETTINGS, prompts: [prompt], n: 3, seed: c.seed });
          const scores = Array.from(await scorer.score(prompt, cands));
          scores.forEach((s, k) =>
            assert.ok(Math.abs(s - c.scores[k]) < 1e-4, `${s} vs ${c.scores[k]}`)
          );
          const best = scores.indexOf(Math.max(...scores));
          assert.equal(c.winner, best);
          winners.push(cands[best]);
        }
      }
      const got = decodePngRgb(await Deno.readFile(out), out);
      assert.deepEqual(got.image, imageGrid(winners, { cols: 2, pad: 2 }).data);
    } finally {
      await scorer.release();
      await pipe.release();
    }
  });
});

Deno.test("sample --model: refusals name the folder and what it must hold", async () => {
  await withTempDir("xgen_sample_model_bad_", async (dir) => {
    const model = `${TINY_SD}fp16`;
    const cases: [string[], RegExp][] = [
      [
        ["--model", dir],
        new RegExp(
          `^sample: --model ${dir}: not an ONNX Stable Diffusion folder \\(missing ` +
            "text_encoder/model\\.onnx, unet/model\\.onnx, vae_decoder/model\\.onnx, " +
            "scheduler/scheduler_config\\.json, tokenizer files\\); it must hold .*tokenizer/",
        ),
      ],
      [["--model", `${dir}/nope`], /^sample: --model .*nope: no such folder; an ONNX Stable/],
      [["--model", model, "--run", dir], /^sample: give exactly one of --run RUN and --model DIR$/],
      [[], /^sample: give exactly one of --run RUN and --model DIR$/],
      [["--model", model, "--engine", "tfjs"], /^sample: --engine tfjs needs --run/],
      [["--model", model, "--checkpoint", "4"], /^sample: --checkpoint needs --run/],
      [
        ["--model", model, "--best-of", "2"],
        /^sample: --scorer clip scores with the model's own CLIP, but .*fp16 has no image_encoder/,
      ],
    ];
    for (const [flags, want] of cases) {
      const r = await cli([
        "lib/cli/sample.ts",
        ...flags,
        "--prompt",
        "x",
        "--out",
        `${dir}/o.png`,
      ]);
      assert.equal(r.code, 2, `${flags.join(" ")}: ${r.stderr}`);
      const lines = r.stderr.trim().split("\n");
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], want);
    }
    // A valid SD folder without a VAE encoder samples (txt2img needs none).
    await Deno.mkdir(`${dir}/copy`);
    for (const part of ["text_encoder", "unet", "vae_decoder", "scheduler", "tokenizer"]) {
      await Deno.mkdir(`${dir}/copy/${part}`);
      for (const e of Deno.readDirSync(`${model}/${part}`)) {
        await Deno.copyFile(`${model}/${part}/${e.name}`, `${dir}/copy/${part}/${e.name}`);
      }
    }
    const ok = await cli(sampleArgs(`${dir}/copy`, `${dir}/copy.png`, 7));
    assert.equal(ok.code, 0, ok.stderr);
  });
});

Deno.test("touch-up --model: an SD folder's img2img redoes the masked region only", async () => {
  await withTempDir("xgen_touch_up_model_", async (dir) => {
    const model = `${TINY_SD}fp32_scalar_t`;
    const pipe = await loadOnnxPipeline(model, { executionProviders: ["cpu"] });
    const [image] = await txt2img(pipe, { ...SETTINGS, prompts: ["a red circle"], n: 1, seed: 3 });
    await pipe.release();
    await writePng(`${dir}/in.png`, image);
    // White (touch up) in the top-left quarter only.
    const mask = new Uint8Array(64 * 64 * 3);
    for (let y = 0; y < 24; y++) mask.fill(255, y * 64 * 3, (y * 64 + 24) * 3);
    await writePng(`${dir}/mask.png`, { data: mask, width: 64, height: 64 });
    const args = ["--image", `${dir}/in.png`, "--mask", `${dir}/mask.png`, "--prompt", "a cat"];
    const r = await cli([
      "lib/cli/touch_up.ts",
      "--model",
      model,
      ...args,
      "--steps",
      "4",
      "--feather",
      "0",
      "--margin",
      "0",
      "--out",
      `${dir}/out.png`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const out = decodePngRgb(await Deno.readFile(`${dir}/out.png`), "out.png");
    assert.deepEqual([out.width, out.height], [64, 64]);
    let inside = 0;
    for (let y = 0; y < 64; y++) {
      for (let x = 0; x < 64; x++) {
        const i = (y * 64 + x) * 3;
        const same = out.image[i] === image.data[i] && out.image[i + 1] === image.data[i + 1] &&
          out.image[i + 2] === image.data[i + 2];
        if (x >= 24 || y >= 24) assert.ok(same, `pixel ${x},${y} outside the mask changed`);
        else if (!same) inside++;
      }
    }
    assert.ok(inside > 100, `only ${inside} masked pixels changed`);
    // A folder without the VAE encoder img2img needs is refused in one line.
    const bad = await cli(["lib/cli/touch_up.ts", "--model", dir, ...args]);
    assert.equal(bad.code, 2);
    assert.match(
      bad.stderr.trim(),
      new RegExp(`^touch-up: --model ${dir}: not an ONNX Stable Diffusion folder .*vae_encoder`),
    );
  });
});
