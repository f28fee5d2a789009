/**
 * The CLIP-score vs FID guidance sweep: prompt sets (COCO format, prefix, PNG references, field
 * errors, text files, held-out shapes), then `deno task eval` on a tiny trained run: every
 * (checkpoint, scale) reported with finite numbers and intervals, FID recomputed independently from
 * the cached features, cache reuse, identical numbers when recomputed from scratch, and the
 * one-line errors (missing protocol files, bad COCO field, text prompts without reference stats).
 */
import assert from "node:assert/strict";
import { encodePngRgb, shapesWorldSample } from "../lib/data/mod.ts";
import {
  cocoPromptSet,
  heldoutPromptSet,
  parseCocoCaptions,
  parsePromptSpec,
  textPromptSet,
  withPrefix,
} from "../lib/eval/clip_fid/prompt_sets.ts";
import { parseCheckpointSelector } from "../lib/eval/clip_fid/sweep.ts";
import { decodeStats } from "../lib/eval/clip_fid/stats_file.ts";
import { featureStats } from "../lib/eval/clip_fid/stats.ts";
import { frechetDistance } from "../lib/eval/clip_fid/frechet.ts";
import { kernelInceptionDistance } from "../lib/eval/clip_fid/kid.ts";
import { readSafetensors } from "../lib/train/safetensors.ts";
import { cli, ROOT } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

function cocoDoc(captions: [number, unknown][]) {
  return {
    images: [
      { id: 1, file_name: "a.png" },
      { id: 2, file_name: "b.jpg" },
      { id: 3, file_name: "c.jpg" },
    ],
    annotations: captions.map(([image_id, caption], i) => ({ id: 10 + i, image_id, caption })),
  };
}

Deno.test("prompt sets: COCO captions format, prefix, image references and field errors", async () => {
  await withTempDir("xgen_coco_", async (dir) => {
    const img = (v: number) => new Uint8Array(4 * 3 * 3).fill(v);
    await Deno.writeFile(`${dir}/a.png`, encodePngRgb(img(10), 4, 3));
    await Deno.writeFile(`${dir}/b.png`, encodePngRgb(img(200), 4, 3)); // b.jpg converted to PNG
    await Deno.writeFile(`${dir}/c.jpg`, new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 16]));
    const caps: [number, string][] = [
      [1, "A man riding a horse."],
      [1, "  Two dogs on a beach"],
      [2, "A RED bus"],
      [3, "Ocean waves"],
      [2, "a cat"],
    ];
    const json = `${dir}/captions.json`;
    await Deno.writeTextFile(json, JSON.stringify(cocoDoc(caps)));

    assert.equal(
      withPrefix("A man riding a horse.", "A photograph of "),
      "A photograph of a man riding a horse.",
    );
    assert.equal(withPrefix(" Ocean", ""), "Ocean");

    const o = { count: 5, seed: 3, prefix: "A photograph of " };
    const set = await cocoPromptSet(json, dir, o);
    const expected = caps.map(([, c]) => withPrefix(c, "A photograph of "));
    assert.deepEqual([...set.prompts].sort(), [...expected].sort(), "a permutation of all pairs");
    assert.ok(set.prompts.includes("A photograph of two dogs on a beach"));
    assert.deepEqual((await cocoPromptSet(json, dir, o)).prompts, set.prompts, "seeded sample");
    const other = await cocoPromptSet(json, dir, { ...o, seed: 4 });
    assert.notDeepEqual(other.prompts, set.prompts, "another seed, another order");
    // References follow their prompts: image 1 -> a.png (10), 2 -> b.png (200), 3 -> c.jpg, a
    // truncated JPEG: skipped (null) and recorded with its path.
    for (let i = 0; i < 5; i++) {
      const id = caps[expected.indexOf(set.prompts[i])][0];
      if (id === 3) {
        assert.equal(await set.reference!(i), null);
        assert.equal(set.skipped.at(-1)?.path, `${dir}/c.jpg`);
        assert.match(set.skipped.at(-1)!.reason, /corrupt JPEG/);
        continue;
      }
      const r = await set.reference!(i);
      assert.ok(r);
      assert.equal(r.width, 4);
      assert.equal(r.height, 3);
      assert.ok(r.data.every((v) => v === (id === 1 ? 10 : 200)));
    }
    const two = await cocoPromptSet(json, dir, { count: 2, seed: 3 });
    const plain = set.prompts.slice(0, 2).map((p) =>
      caps.find(([, c]) => withPrefix(c, "A photograph of ") === p)![1].trim()
    );
    assert.deepEqual(two.prompts, plain, "same seed, same pairs, no prefix");
    await assert.rejects(
      cocoPromptSet(json, dir, { count: 6, seed: 0 }),
      /6 pairs requested but the file has only 5 captions/,
    );

    // Field errors name the file and the field.
    const bad = (doc: unknown) => () =>
      parseCocoCaptions(JSON.stringify(doc), "x/captions_val2017.json");
    assert.throws(
      bad(cocoDoc([[1, "ok"], [2, 5]])),
      /x\/captions_val2017\.json: annotations\[1\]\.caption must be a non-empty string, got 5/,
    );
    assert.throws(
      bad(cocoDoc([[7, "no image"]])),
      /annotations\[0\]\.image_id 7 has no entry in "images"/,
    );
    assert.throws(
      bad({ images: [{ id: 1 }], annotations: [] }),
      /images\[0\]\.file_name must be a non-empty string/,
    );
    assert.throws(bad({ images: [] }), /field "annotations" must be an array/);
    assert.throws(() => parseCocoCaptions("{", "y.json"), /COCO captions y\.json: not valid JSON/);
    await assert.rejects(cocoPromptSet(`${dir}/none.json`, dir, o), /none\.json: cannot be read/);

    // Text files: comments and blanks skipped, cycled to the count; no references.
    await Deno.writeTextFile(`${dir}/p.txt`, "# prompts\na red circle\n\n a blue star \n");
    const txt = await textPromptSet(`${dir}/p.txt`, { count: 5, seed: 0 });
    assert.deepEqual(txt.prompts, [
      "a red circle",
      "a blue star",
      "a red circle",
      "a blue star",
      "a red circle",
    ]);
    assert.equal(txt.reference, null);
    await Deno.writeTextFile(`${dir}/empty.txt`, "\n# nothing\n");
    await assert.rejects(
      textPromptSet(`${dir}/empty.txt`, { count: 1, seed: 0 }),
      /empty\.txt: no prompts/,
    );

    // Held-out shapes: the split's captions and images, at the requested size.
    const h = heldoutPromptSet({ count: 3, seed: 5, size: 16 });
    const s2 = shapesWorldSample(2, { seed: 5, size: 16, split: "heldout" });
    assert.equal(h.prompts[2], s2.caption);
    assert.deepEqual((await h.reference!(2))?.data, s2.image);

    assert.deepEqual(parsePromptSpec("coco:a:b/c.json:imgs"), {
      kind: "coco",
      captions: "a:b/c.json",
      images: "imgs",
    });
    assert.throws(
      () => parsePromptSpec("coco:only.json"),
      /expected heldout, coco:PATH_TO_JSON:IMAGES_DIR, text:PATH, parti:PATH\.tsv or shards:DIR/,
    );
    assert.deepEqual(parseCheckpointSelector("4, 8,final"), [4, 8, "final"]);
    assert.throws(() => parseCheckpointSelector("4,x"), /comma list of steps/);
  });
});

interface Row {
  checkpoint: string;
  guidance: number;
  clip_score: number;
  clip_score_interval: [number, number];
  fid: number;
  fid_interval: [number, number];
  cached: boolean;
  label: string;
  extractor: string;
  n: number;
  seed: number;
}

const numbers = (rows: Row[]) =>
  rows.map((
    r,
  ) => [r.checkpoint, r.guidance, r.clip_score, r.clip_score_interval, r.fid, r.fid_interval]);

async function mtimes(dir: string): Promise<Map<string, number>> {
  const m = new Map<string, number>();
  for await (const e of Deno.readDir(dir)) {
    m.set(e.name, (await Deno.stat(`${dir}/${e.name}`)).mtime!.getTime());
  }
  return m;
}

Deno.test("eval command: 2 checkpoints x 2 scales on a tiny run, cache, determinism, errors", async (t) => {
  await withTempDir("xgen_eval_", async (dir) => {
    const run = `${dir}/run`;
    const r0 = await cli([
      "lib/cli/train.ts",
      "--preset",
      "tiny",
      "--out",
      run,
      "--seed",
      "1",
      "--skip-eval",
    ]);
    assert.equal(r0.code, 0, r0.stderr);
    const steps = [...Deno.readDirSync(`${run}/unet`)].map((e) => /^ckpt-(\d{8})$/.exec(e.name))
      .filter((m) => m).map((m) => Number(m![1])).sort((a, b) => a - b);
    assert.ok(steps.length >= 2, `tiny run has 2 UNet checkpoints, got ${steps}`);
    const ck = steps.slice(0, 2);
    const sweepArgs = [
      "lib/cli/eval.ts",
      "--run",
      run,
      "--checkpoints",
      ck.join(","),
      "--guidance",
      "1,3",
      "--n",
      "24",
      "--steps",
      "4",
      "--bootstrap-clip",
      "50",
      "--bootstrap-fid",
      "10",
    ];
    let first: Row[] = [];
    let before = new Map<string, number>();

    await t.step("first sweep writes every (checkpoint, scale) with finite numbers", async () => {
      const r = await cli(sweepArgs);
      assert.equal(r.code, 0, r.stderr);
      const doc = JSON.parse(await Deno.readTextFile(`${run}/eval/clip_fid.json`));
      first = doc.results;
      assert.equal(first.length, 4);
      for (const c of ck) {
        for (const g of [1, 3]) {
          const row = first.find((x) =>
            x.checkpoint === `ckpt-${String(c).padStart(8, "0")}` && x.guidance === g
          );
          assert.ok(row, `result for step ${c} guidance ${g}`);
          assert.equal(row.n, 24);
          assert.equal(row.seed, 0);
          assert.equal(row.cached, false);
          assert.equal(row.label, "Frechet distance in CLIP space (not Inception FID)");
          assert.match(row.extractor, /^kit-clip-image-run-[0-9a-f]{8}$/);
          const [clo, chi] = row.clip_score_interval, [flo, fhi] = row.fid_interval;
          for (const v of [row.clip_score, clo, chi, row.fid, flo, fhi]) {
            assert.ok(Number.isFinite(v));
          }
          // A mean's percentile interval brackets it; CLIP scores are in [0, 100].
          assert.ok(
            clo <= row.clip_score && row.clip_score <= chi,
            `CLIP ${clo} <= ${row.clip_score} <= ${chi}`,
          );
          assert.ok(row.clip_score >= 0 && row.clip_score <= 100);
          // FID resamples duplicate images, which biases replicates upward: the interval is ordered
          // and non-negative but need not contain the estimate.
          assert.ok(row.fid >= 0 && 0 <= flo && flo <= fhi, `FID ${row.fid} [${flo}, ${fhi}]`);
        }
      }
      // The 2 scales of one checkpoint differ (guidance changes the images).
      assert.notEqual(first[0].fid, first[1].fid);
      assert.match(r.stdout, /wrote .*clip_fid\.json/);
      const html = await Deno.readTextFile(`${run}/eval/clip_fid.html`);
      assert.match(html, /Plotly/);
      for (const c of ck) assert.match(html, new RegExp(`step ${c}`));
    });

    await t.step("the reported FID equals one recomputed from the cached features", async () => {
      const cache = `${run}/eval/cache`;
      const names = [...Deno.readDirSync(cache)].map((e) => e.name);
      const ref = names.filter((n) => n.startsWith("ref-"));
      assert.equal(ref.length, 1);
      const refStats = decodeStats(await Deno.readFile(`${cache}/${ref[0]}`));
      assert.equal(refStats.n, 24);
      const gens = names.filter((n) => n.startsWith("gen-"));
      assert.equal(gens.length, 4);
      for (const g of gens) {
        const f = await readSafetensors(`${cache}/${g}`);
        const feats = f.tensors.clip;
        const [n, d] = feats.shape;
        const fd = frechetDistance(featureStats(feats.data as Float32Array, n, d), refStats);
        const row = first.find((x) =>
          x.checkpoint === f.metadata.checkpoint && String(x.guidance) === f.metadata.guidance
        )!;
        assert.ok(Math.abs(fd - row.fid) <= 1e-9 * Math.max(1, fd), `${fd} vs ${row.fid}`);
      }
      before = await mtimes(cache);
    });

    await t.step("a rerun reuses the cache and reports the same numbers", async () => {
      const r = await cli(sweepArgs);
      assert.equal(r.code, 0, r.stderr);
      const rows: Row[] = JSON.parse(await Deno.readTextFile(`${run}/eval/clip_fid.json`)).results;
      assert.ok(rows.every((x) => x.cached));
      assert.equal(r.stdout.match(/\(cached\)/g)?.length, 4);
      assert.deepEqual(numbers(rows), numbers(first));
      assert.deepEqual(await mtimes(`${run}/eval/cache`), before, "cache files untouched");
    });

    await t.step("recomputing from scratch gives identical numbers", async () => {
      const r = await cli([...sweepArgs, "--no-cache", "--out", `${dir}/fresh`]);
      assert.equal(r.code, 0, r.stderr);
      const rows: Row[] = JSON.parse(await Deno.readTextFile(`${dir}/fresh/clip_fid.json`)).results;
      assert.ok(rows.every((x) => !x.cached));
      assert.deepEqual(numbers(rows), numbers(first));
    });

    await t.step("the TF.js engine gives the same numbers as the default ONNX engine", async () => {
      const r = await cli([...sweepArgs, "--engine", "tfjs", "--no-cache", "--out", `${dir}/tfjs`]);
      assert.equal(r.code, 0, r.stderr);
      const doc = JSON.parse(await Deno.readTextFile(`${dir}/tfjs/clip_fid.json`));
      const rows: Row[] = doc.results;
      assert.equal(rows.length, first.length);
      // Same noise, same sampler: images differ by float rounding at most (a level of 255 here
      // and there), so CLIP scores and distances agree closely but need not be bit-equal.
      rows.forEach((row, i) => {
        assert.equal(row.checkpoint, first[i].checkpoint);
        assert.ok(Math.abs(row.clip_score - first[i].clip_score) < 0.05, `${row.clip_score}`);
        assert.ok(
          Math.abs(row.fid - first[i].fid) < 0.02 * Math.max(1, first[i].fid),
          `${row.fid}`,
        );
      });
    });

    await t.step("--clip: a shared ONNX CLIP judge gives the run's own CLIP numbers", async () => {
      // The run's own export is a judge with the same weights as the kit CLIP: same numbers.
      const judge = `${run}/onnx-ckpt-${String(ck[0]).padStart(8, "0")}`;
      const r = await cli([...sweepArgs, "--clip", judge, "--no-cache", "--out", `${dir}/judge`]);
      assert.equal(r.code, 0, r.stderr);
      const doc = JSON.parse(await Deno.readTextFile(`${dir}/judge/clip_fid.json`));
      assert.match(doc.clip_model, /^onnx-clip-image-[0-9a-f]{8}$/);
      assert.match(doc.label, /feature space \(not Inception FID\)/);
      doc.results.forEach((row: Row, i: number) => {
        assert.ok(Math.abs(row.clip_score - first[i].clip_score) < 0.05, `${row.clip_score}`);
        assert.ok(
          Math.abs(row.fid - first[i].fid) < 0.02 * Math.max(1, first[i].fid),
          `${row.fid}`,
        );
      });
      const bad = await cli([...sweepArgs, "--clip", dir, "--no-cache", "--out", `${dir}/bad`]);
      assert.equal(bad.code, 1);
      assert.match(
        bad.stderr,
        /missing text_model\.onnx, vision_model\.onnx, vocab\.json, merges\.txt/,
      );
    });

    await t.step("eval:compare overlays comparable reports and refuses others", async () => {
      const html = `${dir}/compare.html`;
      const ok = await cli([
        "lib/cli/eval_compare.ts",
        "--report",
        `${dir}/fresh/clip_fid.json`,
        "--report",
        `${dir}/tfjs/clip_fid.json`,
        "--name",
        "onnx",
        "--name",
        "tfjs",
        "--out",
        html,
      ]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /\(4 curves\)/);
      const page = await Deno.readTextFile(html);
      for (const name of ["onnx step", "tfjs step"]) assert.ok(page.includes(name), name);
      const bad = await cli([
        "lib/cli/eval_compare.ts",
        "--report",
        `${dir}/fresh/clip_fid.json`,
        "--report",
        `${dir}/judge/clip_fid.json`,
        "--out",
        `${dir}/bad.html`,
      ]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /differ in their FID extractor .* not comparable/);
    });

    await t.step("--kid adds KID, equal to one recomputed from the cached features", async () => {
      const r = await cli([...sweepArgs, "--kid", "--out", `${dir}/kid`]);
      assert.equal(r.code, 0, r.stderr);
      const rows: (Row & { kid: number; kid_std: number })[] =
        JSON.parse(await Deno.readTextFile(`${dir}/kid/clip_fid.json`)).results;
      assert.deepEqual(numbers(rows), numbers(first), "KID changes nothing else");
      const cache = `${run}/eval/cache`;
      const names = [...Deno.readDirSync(cache)].map((e) => e.name);
      const refFile = names.find((n) => n.startsWith("reffeat-"))!;
      const ref = (await readSafetensors(`${cache}/${refFile}`)).tensors.features;
      for (const g of names.filter((n) => n.startsWith("gen-"))) {
        const f = await readSafetensors(`${cache}/${g}`);
        const row = rows.find((x) =>
          x.checkpoint === f.metadata.checkpoint && String(x.guidance) === f.metadata.guidance
        )!;
        const [n, d] = f.tensors.clip.shape;
        const k = kernelInceptionDistance(
          { data: f.tensors.clip.data as Float32Array, n, d },
          { data: ref.data as Float32Array, n: ref.shape[0], d },
          { subsets: 20, subsetSize: 1000, seed: 0 },
        );
        assert.ok(Number.isFinite(row.kid) && row.kid_std >= 0);
        assert.ok(Math.abs(k.mean - row.kid) <= 1e-12 + 1e-9 * Math.abs(k.mean));
      }
    });

    await t.step("text prompts need reference statistics; cached ones are accepted", async () => {
      await Deno.writeTextFile(`${dir}/p.txt`, "a red circle\na blue star\n");
      const base = [
        "lib/cli/eval.ts",
        "--run",
        run,
        "--prompts",
        `text:${dir}/p.txt`,
        "--checkpoints",
        "latest",
        "--guidance",
        "2",
        "--n",
        "24",
        "--steps",
        "2",
        "--out",
        `${dir}/txt`,
      ];
      const r = await cli(base);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /p\.txt has no reference images: pass --reference-stats FILE/);
      const ref = [...Deno.readDirSync(`${run}/eval/cache`)].find((e) =>
        e.name.startsWith("ref-")
      )!;
      const r2 = await cli([...base, "--reference-stats", `${run}/eval/cache/${ref.name}`]);
      assert.equal(r2.code, 0, r2.stderr);
      const doc = JSON.parse(await Deno.readTextFile(`${dir}/txt/clip_fid.json`));
      assert.equal(doc.results.length, 1);
      assert.ok(Number.isFinite(doc.results[0].fid));
    });

    await t.step("a protocol with missing files names them and where to get them", async () => {
      const r = await cli(
        [
          "--config",
          `${ROOT}deno.json`,
          `${ROOT}lib/cli/eval.ts`,
          "--run",
          run,
          "--protocol",
          "coco30k",
        ],
        dir,
      );
      assert.equal(r.code, 1);
      assert.match(r.stderr, /protocol coco30k needs 3 missing file\(s\)/);
      for (
        const p of [
          "data/coco/annotations/captions_val2014.json",
          "data/coco/val2014",
          "data/models/pt_inception-2015-12-05.onnx",
        ]
      ) {
        assert.ok(r.stderr.includes(p), `names ${p}`);
      }
      assert.match(r.stderr, /images\.cocodataset\.org/);
      const u = await cli(["lib/cli/eval.ts", "--run", run, "--protocol", "nope"]);
      assert.equal(u.code, 2);
      assert.match(u.stderr, /no protocol "nope".*available: coco1k, coco30k, default/);
    });

    await t.step("a COCO file with a bad field is named with the field", async () => {
      await Deno.writeTextFile(`${dir}/bad.json`, JSON.stringify(cocoDoc([[1, null]])));
      const r = await cli([
        "lib/cli/eval.ts",
        "--run",
        run,
        "--prompts",
        `coco:${dir}/bad.json:${dir}`,
        "--n",
        "4",
      ]);
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        /bad\.json: annotations\[0\]\.caption must be a non-empty string, got null/,
      );
    });
  });
});
