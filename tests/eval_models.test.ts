/**
 * `deno task eval` over several models on one protocol: two SD folders torch.onnx.export wrote
 * (tests/fixtures/tiny_sd) and a tiny kit run, whose CLIP judges all three. One figure with one
 * trace per model, per-model results in one JSON; numbers recomputed from the cached features;
 * a rerun resumes from the cache; `.npz` reference statistics give the same distances as the kit's
 * own; SD folders alone need `--clip`; a folder that is not an SD folder is refused in one line.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { zipSync } from "fflate";
import { decodeStats, encodeNpy, featureStats, frechetDistance } from "../lib/eval/clip_fid/mod.ts";
import { readSafetensors } from "../lib/train/safetensors.ts";
import { cli } from "./helpers/cli.ts";
import { TINY_SD } from "./helpers/tiny_sd.ts";
import { withTempDir } from "./helpers/temp_dir.ts";
import { makeTinyRun } from "./helpers/tiny_run.ts";
import { makeTowersDir } from "./helpers/towers_dir.ts";

await tf.setBackend("cpu");

interface Row {
  checkpoint: string;
  guidance: number;
  n: number;
  clip_score: number;
  fid: number;
  cached: boolean;
}
interface ModelDoc {
  name: string;
  kind: string;
  dir: string;
  engine: string;
  results: Row[];
}

/** The traces of the page's one Plotly figure (the JSON array passed to `Plotly.newPlot`). */
function traces(html: string): { name: string; x: number[]; y: number[] }[] {
  const calls = html.split('Plotly.newPlot("plot", ');
  assert.equal(calls.length, 2, "one figure on the page");
  const s = calls[1];
  let depth = 0, inString = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "[" || c === "{") depth++;
    else if ((c === "]" || c === "}") && --depth === 0) return JSON.parse(s.slice(0, i + 1));
  }
  throw new Error("no trace array");
}

const numbers = (docs: ModelDoc[]) =>
  docs.map((m) => m.results.map((r) => [m.name, r.guidance, r.clip_score, r.fid]));

Deno.test("eval --model A --model B --run R: one protocol, one figure, per-model results", async (t) => {
  await withTempDir("xgen_eval_models_", async (dir) => {
    const run = `${dir}/run`;
    await makeTinyRun(run, { captions: ["a red circle", "two blue squares", "a green triangle"] });
    const [a, b] = [`${TINY_SD}fp32_int64_t`, `${TINY_SD}fp32_scalar_t`];
    const out = `${dir}/out`;
    const protocol = [
      "--guidance",
      "1,3",
      "--n",
      "8",
      "--steps",
      "2",
      "--bootstrap-clip",
      "10",
      "--bootstrap-fid",
      "5",
    ];
    const args = ["lib/cli/eval.ts", "--model", a, "--model", b, "--run", run, ...protocol];
    let first: ModelDoc[] = [];

    await t.step("three models, one JSON with each one's results, one figure", async () => {
      const r = await cli([...args, "--out", out]);
      assert.equal(r.code, 0, r.stderr);
      const doc = JSON.parse(await Deno.readTextFile(`${out}/clip_fid.json`));
      assert.equal(doc.format, "xgen-kit/clip-fid-models@1");
      assert.match(doc.clip_model, /^kit-clip-image-run-[0-9a-f]{8}$/, "the run's CLIP judges");
      assert.equal(doc.prompts.count, 8);
      assert.deepEqual(doc.settings.guidance, [1, 3]);
      first = doc.models;
      assert.deepEqual(
        first.map((m) => [m.name, m.kind, m.dir, m.engine]),
        [
          ["fp32_int64_t", "folder", a, "onnx"],
          ["fp32_scalar_t", "folder", b, "onnx"],
          ["run", "run", run, "onnx"],
        ],
      );
      for (const m of first) {
        assert.deepEqual(m.results.map((x) => x.guidance), [1, 3]);
        for (const x of m.results) {
          assert.equal(x.n, 8);
          assert.equal(x.cached, false);
          assert.ok(x.clip_score >= 0 && x.clip_score <= 100 && x.fid >= 0, JSON.stringify(x));
        }
      }
      assert.deepEqual(first.map((m) => m.results.map((x) => x.checkpoint)), [
        ["model", "model"],
        ["model", "model"],
        ["final", "final"],
      ]);
      // The two folders hold the same weights (one seed), exported with other timestep and id
      // types: the same images up to float rounding, so the same numbers.
      first[0].results.forEach((x, i) => {
        const y = first[1].results[i];
        assert.ok(Math.abs(x.clip_score - y.clip_score) < 1e-3, `${x.clip_score} ${y.clip_score}`);
        assert.ok(Math.abs(x.fid - y.fid) < 1e-3 * Math.max(1, x.fid), `${x.fid} ${y.fid}`);
      });
      // The run is another model: other numbers.
      assert.notEqual(first[2].results[0].fid, first[0].results[0].fid);
      const fig = traces(await Deno.readTextFile(`${out}/clip_fid.html`));
      assert.deepEqual(fig.map((tr) => tr.name), ["fp32_int64_t", "fp32_scalar_t", "run"]);
      fig.forEach((tr, i) => {
        assert.deepEqual(tr.x, first[i].results.map((x) => x.clip_score));
        assert.deepEqual(tr.y, first[i].results.map((x) => x.fid));
      });
    });

    await t.step("each reported FID equals one recomputed from the cached features", async () => {
      const cache = `${out}/cache`;
      const names = [...Deno.readDirSync(cache)].map((e) => e.name);
      const ref = decodeStats(
        await Deno.readFile(`${cache}/${names.find((n) => n.startsWith("ref-"))}`),
      );
      const gens = names.filter((n) => n.startsWith("gen-"));
      assert.equal(gens.length, 6);
      for (const g of gens) {
        const f = await readSafetensors(`${cache}/${g}`);
        const [n, d] = f.tensors.clip.shape;
        const fd = frechetDistance(featureStats(f.tensors.clip.data as Float32Array, n, d), ref);
        const row = first.find((m) => m.name === f.metadata.model)!.results
          .find((x) => String(x.guidance) === f.metadata.guidance)!;
        assert.ok(Math.abs(fd - row.fid) <= 1e-9 * Math.max(1, fd), `${fd} vs ${row.fid}`);
      }
    });

    await t.step(
      "a rerun resumes: only missing results are generated, numbers unchanged",
      async () => {
        const cache = `${out}/cache`;
        const gone = [...Deno.readDirSync(cache)].map((e) => e.name).find((n) =>
          n.startsWith("gen-")
        )!;
        await Deno.remove(`${cache}/${gone}`);
        const r = await cli([...args, "--out", out]);
        assert.equal(r.code, 0, r.stderr);
        const docs: ModelDoc[] = JSON.parse(await Deno.readTextFile(`${out}/clip_fid.json`)).models;
        assert.equal(docs.flatMap((m) => m.results).filter((x) => !x.cached).length, 1);
        assert.deepEqual(numbers(docs), numbers(first));
        assert.ok(Deno.statSync(`${cache}/${gone}`).isFile, "the missing result is cached again");
      },
    );

    await t.step(
      "--ref-stats FILE.npz: the kit's reference statistics as numpy arrays",
      async () => {
        const cache = `${out}/cache`;
        const refFile = [...Deno.readDirSync(cache)].find((e) => e.name.startsWith("ref-"))!.name;
        const ref = decodeStats(await Deno.readFile(`${cache}/${refFile}`));
        const d = ref.mu.length;
        await Deno.writeFile(
          `${dir}/ref.npz`,
          zipSync({ "mu.npy": encodeNpy(ref.mu, [d]), "sigma.npy": encodeNpy(ref.sigma, [d, d]) }),
        );
        const r = await cli([...args, "--out", `${dir}/npz`, "--ref-stats", `${dir}/ref.npz`]);
        assert.equal(r.code, 0, r.stderr);
        const doc = JSON.parse(await Deno.readTextFile(`${dir}/npz/clip_fid.json`));
        assert.deepEqual(doc.reference, { source: `${dir}/ref.npz`, n: null, cached: true });
        assert.deepEqual(numbers(doc.models), numbers(first));
        // Statistics of another dimension (8-d numpy fixture) are refused, naming both.
        const fixture = new URL("./fixtures/npz_stats/stored.npz", import.meta.url).pathname;
        const bad = await cli([...args, "--out", `${dir}/bad`, "--ref-stats", fixture]);
        assert.equal(bad.code, 1);
        assert.match(
          bad.stderr,
          new RegExp(
            `stored\\.npz: statistics of 8-d features, but the FID extractor ` +
              `kit-clip-image-run-[0-9a-f]{8} gives ${d}-d features`,
          ),
        );
      },
    );

    await t.step("eval:compare adds each model of a several-model report", async () => {
      const html = `${dir}/compare.html`;
      const r = await cli([
        "lib/cli/eval_compare.ts",
        "--report",
        `${out}/clip_fid.json`,
        "--report",
        `${dir}/npz/clip_fid.json`,
        "--out",
        html,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /\(6 curves\)/);
      const fig = traces(await Deno.readTextFile(html));
      assert.deepEqual(fig.slice(0, 3).map((tr) => tr.name), [
        "fp32_int64_t",
        "fp32_scalar_t",
        "run final",
      ]);
      assert.deepEqual(fig[1].y, first[1].results.map((x) => x.fid));
      const bad = await cli([
        "lib/cli/eval_compare.ts",
        "--report",
        `${out}/clip_fid.json`,
        "--name",
        "only-one",
        "--out",
        html,
      ]);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /1 --name for 3 models in 1 --report/);
    });

    await t.step("SD folders alone: refused without --clip, judged by --clip towers", async () => {
      const only = ["lib/cli/eval.ts", "--model", a, "--model", `${TINY_SD}fp16`, ...protocol];
      const r = await cli([...only, "--out", `${dir}/folders`]);
      assert.equal(r.code, 2);
      assert.match(r.stderr.trim(), /^eval: SD folders carry no CLIP image tower .* --clip DIR/);
      const towers = `${dir}/towers`;
      await makeTowersDir(towers, { tokenizerDir: `${a}/tokenizer`, size: 16, seed: 4 });
      const ok = await cli([...only, "--clip", towers, "--out", `${dir}/folders`]);
      assert.equal(ok.code, 0, ok.stderr);
      const doc = JSON.parse(await Deno.readTextFile(`${dir}/folders/clip_fid.json`));
      assert.match(doc.clip_model, /^onnx-clip-image-[0-9a-f]{8}$/);
      assert.deepEqual(doc.models.map((m: ModelDoc) => m.name), ["fp32_int64_t", "fp16"]);
      const fig = traces(await Deno.readTextFile(`${dir}/folders/clip_fid.html`));
      assert.deepEqual(fig.map((tr) => tr.name), ["fp32_int64_t", "fp16"]);
    });

    await t.step("a folder that is not an SD folder is refused in one line", async () => {
      const r = await cli(["lib/cli/eval.ts", "--run", run, "--model", dir, ...protocol]);
      assert.equal(r.code, 2);
      const lines = r.stderr.trim().split("\n");
      assert.equal(lines.length, 1, r.stderr);
      assert.match(
        lines[0],
        new RegExp(
          `^eval: --model ${dir}: not an ONNX Stable Diffusion folder \\(missing ` +
            "text_encoder/model\\.onnx, .*\\); it must hold text_encoder/model\\.onnx, " +
            "unet/model\\.onnx, vae_decoder/model\\.onnx, scheduler/scheduler_config\\.json, " +
            "tokenizer/",
        ),
      );
    });
  });
});
