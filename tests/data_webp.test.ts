/**
 * WebP decoding (lib/data/webp.ts) against libwebp's own tools: the fixtures in
 * tests/fixtures/webp/ were encoded by `cwebp` and decoded by `dwebp` (Debian's `webp` 1.2.4; see
 * tests/fixtures/make_webp.sh). Lossless must give the source pixels, lossy exactly dwebp's
 * pixels; WebP records in webdataset shards decode through `readShards` and the latent cache.
 */
import assert from "node:assert/strict";
import { decodeWebpRgb, isWebp } from "../lib/data/webp.ts";
import { decodePngRgb, encodePngRgb } from "../lib/data/png.ts";
import { newReadStats, readShards } from "../lib/data/webdataset.ts";
import { loadOnnxPipeline } from "../lib/onnx/sd_pipeline.ts";
import { buildLatentCache, cacheShardName, encodeLatentBatch } from "../lib/recipe/latent_cache.ts";
import { decodeCacheTensors } from "../lib/recipe/latent_cache_file.ts";
import { squareCrop } from "../lib/image/square_crop.ts";
import { makeTar } from "./helpers/tar.ts";
import { withTempDir } from "./helpers/temp_dir.ts";
import { assertClose } from "./helpers/assert_close.ts";

const FIX = new URL("./fixtures/webp/", import.meta.url).pathname;
const TINY_SD = new URL("./fixtures/tiny_sd/fp32_scalar_t", import.meta.url).pathname;

const read = (name: string) => Deno.readFileSync(FIX + name);

/** dwebp's `-pam` output: RGBA; returns its RGB (alpha dropped, as the kit does) and alpha. */
function readPam(name: string): { rgb: Uint8Array; alpha: Uint8Array; width: number } {
  const b = read(name);
  const end = new TextDecoder().decode(b.subarray(0, 100)).indexOf("ENDHDR\n") + 7;
  const head = new TextDecoder().decode(b.subarray(0, end));
  const num = (k: string) => Number(new RegExp(`${k} (\\d+)`).exec(head)![1]);
  assert.equal(num("DEPTH"), 4, `${name}: RGBA PAM`);
  const px = b.subarray(end), n = num("WIDTH") * num("HEIGHT");
  assert.equal(px.length, n * 4, `${name}: pixel bytes`);
  const rgb = new Uint8Array(n * 3), alpha = new Uint8Array(n);
  for (let p = 0; p < n; p++) {
    rgb.set(px.subarray(4 * p, 4 * p + 3), 3 * p);
    alpha[p] = px[4 * p + 3];
  }
  return { rgb, alpha, width: num("WIDTH") };
}

function maxAbsDiff(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

Deno.test("lossless WebP with alpha decodes to exactly the source's RGB (and dwebp's)", async () => {
  const src = decodePngRgb(read("src_rgba.png"), "src_rgba.png");
  const ref = readPam("lossless_alpha.pam");
  // The fixture really has alpha, fully transparent pixels included (whose RGB -exact kept).
  assert.ok(ref.alpha.includes(0) && ref.alpha.some((a) => a > 0 && a < 255));
  const got = await decodeWebpRgb(read("lossless_alpha.webp"), "lossless_alpha.webp");
  assert.deepEqual([got.width, got.height], [16, 12]);
  assert.deepEqual(got.image, src.image);
  assert.deepEqual(got.image, ref.rgb);
});

Deno.test("lossy WebP (plain and with alpha) decodes to exactly dwebp's pixels", async () => {
  const cases: [string, string, number, number][] = [
    ["lossy", "src_rgb", 40, 24],
    ["lossy_alpha", "src_rgba", 16, 12],
  ];
  for (const [name, src, w, h] of cases) {
    const got = await decodeWebpRgb(read(`${name}.webp`), `${name}.webp`);
    assert.deepEqual([got.width, got.height], [w, h], name);
    const ref = readPam(`${name}.pam`);
    // Measured: 0 levels apart (the same libwebp decoding as dwebp's default fancy upsampling).
    assert.equal(maxAbsDiff(got.image, ref.rgb), 0, name);
    // ...and the file is lossy indeed: near the source (mean 5.8 and 6.3 levels measured), not
    // equal to it. cwebp rewrites the RGB under fully transparent pixels, so those are left out.
    const source = decodePngRgb(read(`${src}.png`)).image;
    assert.ok(maxAbsDiff(got.image, source) > 0, `${name}: decodes to the source exactly`);
    let sum = 0, count = 0;
    for (let i = 0; i < source.length; i++) {
      if (ref.alpha[Math.floor(i / 3)] === 0) continue;
      sum += Math.abs(got.image[i] - source[i]);
      count++;
    }
    assert.ok(sum / count < 10, `${name}: mean error ${sum / count}`);
  }
});

Deno.test("bad WebP bytes give a one-line error naming the source", async () => {
  const good = read("lossy.webp");
  assert.equal(isWebp(good), true);
  assert.equal(isWebp(read("src_rgb.png")), false);
  const cases: [Uint8Array, RegExp][] = [
    [good.subarray(0, good.length - 40), /^x\.webp: corrupt WebP \(/],
    [good.subarray(0, 30), /^x\.webp: corrupt WebP \(/],
    [Uint8Array.from([...good.subarray(0, 20), ...new Uint8Array(200).fill(7)]), /corrupt WebP/],
    [read("src_rgb.png"), /^x\.webp: not a WebP/],
    [new Uint8Array(0), /^x\.webp: not a WebP/],
  ];
  for (const [bytes, re] of cases) {
    await assert.rejects(decodeWebpRgb(bytes, "x.webp"), (e: Error) => {
      assert.match(e.message, re);
      assert.ok(!e.message.includes("\n"));
      return true;
    });
  }
  // A failed decode leaves the decoder usable.
  assert.equal((await decodeWebpRgb(good)).width, 40);
});

/** One shard: a lossy WebP, a truncated WebP, a PNG, a GIF-only record and a lossless WebP. */
async function webpShard(path: string): Promise<void> {
  const lossy = read("lossy.webp");
  await Deno.writeFile(
    path,
    await makeTar([
      ["a.webp", lossy],
      ["a.txt", "a lossy webp"],
      ["b.webp", lossy.subarray(0, lossy.length - 40)],
      ["b.txt", "a truncated webp"],
      ["c.png", encodePngRgb(new Uint8Array(64 * 64 * 3).fill(90), 64, 64)],
      ["c.txt", "a grey png"],
      ["d.gif", new TextEncoder().encode("GIF89a")],
      ["d.txt", "a gif only"],
      ["e.webp", read("lossless_alpha.webp")],
      ["e.txt", "a lossless webp"],
    ]),
  );
}

Deno.test("readShards decodes .webp records; a corrupt one is skipped and counted", async () => {
  await withTempDir("xgen_data_webp_", async (dir) => {
    await webpShard(`${dir}/00000.tar`);
    const stats = newReadStats();
    const got = [];
    for await (const s of readShards(dir, { stats })) got.push(s);
    assert.deepEqual(got.map((s) => s.key), ["a", "c", "e"]);
    assert.deepEqual(got[0].image, readPam("lossy.pam").rgb);
    assert.deepEqual([got[0].width, got[0].height], [40, 24]);
    assert.deepEqual(got[2].image, decodePngRgb(read("src_rgba.png")).image);
    assert.equal(stats.records, 5);
    assert.equal(stats.read, 3);
    assert.equal(stats.skipped.corruptImage, 1);
    assert.equal(stats.skipped.unsupportedImage, 1);
    assert.equal(stats.skipped.missingImage, 0);
  });
});

Deno.test("the latent cache caches .webp records like any other", async () => {
  await withTempDir("xgen_data_webp_cache_", async (dir) => {
    await Deno.mkdir(`${dir}/shards`);
    await webpShard(`${dir}/shards/00000.tar`);
    const pipe = await loadOnnxPipeline(TINY_SD, { threads: 1 });
    const m = await buildLatentCache({
      parts: pipe,
      data: `${dir}/shards`,
      dir: `${dir}/cache`,
      resolution: 64,
      seed: 0,
      log: () => {},
      progress: false,
    });
    assert.equal(m.records, 3);
    assert.equal(m.seen, 5);
    assert.equal(m.skipped.corruptImage, 1);
    assert.equal(m.skipped.unsupportedImage, 1);
    const path = `${dir}/cache/${cacheShardName(0)}`;
    const f = decodeCacheTensors(await Deno.readFile(path), path);
    assert.deepEqual(JSON.parse(f.metadata.keys), ["a", "c", "e"]);
    // Record a's latent is the encoding of the crop of dwebp's pixels.
    const ref = readPam("lossy.pam");
    const crop = squareCrop({ data: ref.rgb, width: ref.width, height: 24 }, { size: 64 });
    const want = await encodeLatentBatch(pipe, [crop]);
    const per = 8 * 8 * 4;
    assertClose(f.tensors.mean.data.subarray(0, per), want.mean, 1e-5, "a mean");
  });
});

Deno.test("a WebP decoder that cannot load stops readShards, uncounted as corrupt data", async () => {
  await withTempDir("xgen_data_webp_perm_", async (dir) => {
    await webpShard(`${dir}/00000.tar`);
    const lib = new URL("../lib/data/webdataset.ts", import.meta.url).href;
    await Deno.writeTextFile(
      `${dir}/read.ts`,
      `import { readShards } from "${lib}";\n` +
        `for await (const s of readShards(${JSON.stringify(dir)})) console.log(s.key);\n`,
    );
    // Read access to the shard only: not to the package's .wasm.
    const config = new URL("../deno.json", import.meta.url).pathname;
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", `--config=${config}`, `--allow-read=${dir}`, `${dir}/read.ts`],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(r.stderr);
    assert.equal(r.success, false, err);
    assert.match(err, /WebP decoder: cannot load \S+webp_dec\.wasm/);
    assert.equal(new TextDecoder().decode(r.stdout), "");
  });
});
