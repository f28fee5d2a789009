import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import {
  cachedReferenceStats,
  decodeStats,
  encodeStats,
  featureStats,
  frechetLabel,
  kitClipImageExtractor,
  loadReferenceStats,
  saveReferenceStats,
  toClipInput,
} from "../lib/eval/clip_fid/mod.ts";
import { CLIP_PRESETS, encodeImage, encodeText, initClip } from "../lib/models/mod.ts";
import { WordTokenizer } from "../lib/models/tokenizer.ts";
import { Rng } from "../lib/util/rng.ts";
import { withTempDir } from "./helpers/temp_dir.ts";
import { assertClose } from "./helpers/assert_close.ts";

await tf.setBackend("cpu");

const ident = { name: "kit-clip-image-test-00000000", preprocessing: "x/127.5-1", dim: 3 };

function someStats() {
  const rng = Rng.stream(8, [1]);
  const x = Float64Array.from({ length: 40 * 3 }, () => rng.gaussian() * 1e-3 + Math.PI);
  return featureStats(x, 40, 3);
}

Deno.test("reference statistics round-trip exactly through the float64 safetensors file", async () => {
  await withTempDir("xgen_eval_stats_file_extractor_", async (dir) => {
    const s = someStats(), path = `${dir}/ref.safetensors`;
    await saveReferenceStats(path, s, { extractor: ident, source: "unit test" });
    const back = await loadReferenceStats(path, ident);
    assert.deepEqual(Array.from(back.mu), Array.from(s.mu));
    assert.deepEqual(Array.from(back.sigma), Array.from(s.sigma));
    assert.equal(back.n, 40);
    assert.equal(back.source, "unit test");
    assert.deepEqual(back.extractor, ident);
    // Standard safetensors layout: u64 header length, JSON header, aligned data.
    const bytes = await Deno.readFile(path);
    const hlen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal(hlen % 8, 0);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + hlen)));
    assert.deepEqual(header.sigma, { dtype: "F64", shape: [3, 3], data_offsets: [24, 96] });
    assert.equal(bytes.length, 8 + hlen + 96);
  });
});

Deno.test("cached statistics from another extractor or preprocessing are refused clearly", async () => {
  await withTempDir("xgen_eval_stats_file_extractor_", async (dir) => {
    const path = `${dir}/ref.safetensors`;
    await saveReferenceStats(path, someStats(), { extractor: ident });
    await assert.rejects(
      loadReferenceStats(path, { ...ident, name: "inception-v3-pool3-abcd1234" }),
      (e: Error) =>
        e.message.includes(path) && e.message.includes(`extractor "${ident.name}"`) &&
        e.message.includes("inception-v3-pool3-abcd1234") && /recompute/.test(e.message),
    );
    await assert.rejects(
      loadReferenceStats(path, { ...ident, preprocessing: "resize 299 bicubic" }),
      /preprocessing "x\/127.5-1" \(current: "resize 299 bicubic"\)/,
    );
    await assert.rejects(
      loadReferenceStats(path, { ...ident, dim: 4 }),
      /dimension 3 \(current: 4\)/,
    );
    await assert.rejects(loadReferenceStats(`${dir}/missing`, ident), /missing: cannot be read/);
    // cachedReferenceStats: computes once, then reuses; still refuses a mismatch.
    let calls = 0;
    const other = `${dir}/other.safetensors`;
    const compute = () => {
      calls++;
      return Promise.resolve(someStats());
    };
    await cachedReferenceStats(other, ident, compute);
    const second = await cachedReferenceStats(other, ident, compute);
    assert.equal(calls, 1);
    assert.equal(second.n, 40);
    await assert.rejects(cachedReferenceStats(other, { ...ident, name: "x" }, compute), /refusing/);
  });
});

Deno.test("corrupt statistics files give errors naming the problem", () => {
  const good = encodeStats(someStats(), { extractor: ident });
  assert.throws(() => decodeStats(good.subarray(0, 4), "f"), /f: file is 4 bytes/);
  assert.throws(() => decodeStats(good.subarray(0, good.length - 8), "f"), /data_offsets/);
  const bad = good.slice();
  bad.set(new TextEncoder().encode('{"x"'), 8);
  assert.throws(() => decodeStats(bad, "f"), /f: header is not valid JSON/);
  assert.throws(() => encodeStats(someStats(), { extractor: { ...ident, dim: 5 } }), /dim 5/);
});

Deno.test("kit CLIP extractor: encodeImage features, weight-hashed name, labelled CLIP space", async () => {
  const cfg = CLIP_PRESETS.tiny;
  const params = initClip(cfg, Rng.stream(3, [0, 5]));
  const tok = WordTokenizer.build(["a red circle", "a blue square"], {
    contextLength: cfg.contextLength,
  });
  const ex = await kitClipImageExtractor({ params, config: cfg, tokenizer: tok }, {
    runName: "tiny",
    batchSize: 2,
  });
  assert.match(ex.name, /^kit-clip-image-tiny-[0-9a-f]{8}$/);
  assert.equal(ex.dim, cfg.embedDim);
  assert.match(ex.preprocessing, /x\/127.5-1/);
  assert.equal(frechetLabel(ex.name), "Frechet distance in CLIP space (not Inception FID)");
  assert.equal(frechetLabel("inception-v3-pool3-1234abcd"), "FID (Inception-v3 pool3 features)");
  // Same weights -> same name; other weights -> another name.
  assert.equal(
    (await kitClipImageExtractor({ params, config: cfg }, { runName: "tiny" })).name,
    ex.name,
  );
  const other = initClip(cfg, Rng.stream(4, [0, 5]));
  assert.notEqual(
    (await kitClipImageExtractor({ params: other, config: cfg }, { runName: "tiny" })).name,
    ex.name,
  );

  const rng = Rng.stream(3, [1]);
  const s = cfg.imageSize;
  const images = Array.from({ length: 3 }, () => ({
    data: Uint8Array.from({ length: s * s * 3 }, () => rng.int(256)),
    width: s,
    height: s,
  }));
  const feats = await ex.extract(images);
  assert.equal(feats.length, 3 * cfg.embedDim);
  const x = new Float32Array(3 * s * s * 3);
  images.forEach((im, i) => im.data.forEach((v, k) => (x[i * s * s * 3 + k] = v / 127.5 - 1)));
  const direct = tf.tidy(() => encodeImage(params, cfg, tf.tensor4d(x, [3, s, s, 3])).dataSync());
  assertClose(feats, direct, 1e-5, "image features", { scale: "absolute" });
  // Text tower through the tokenizer, same as encodeText.
  const te = await ex.embedTexts(["a red circle"]);
  const want = tf.tidy(() =>
    encodeText(
      params,
      cfg,
      tf.tensor2d(tok.encodeBatch(["a red circle"]), [1, cfg.contextLength], "int32"),
    ).embeds
      .dataSync()
  );
  assertClose(te, want, 1e-5, "text embedding", { scale: "absolute" });
  tf.dispose(Object.values(params));
  tf.dispose(Object.values(other));
});

Deno.test("toClipInput: same size only rescales; 2x downsizing averages 2x2 blocks (bilinear)", () => {
  const img = { data: new Uint8Array([0, 0, 0, 255, 255, 255]), width: 2, height: 1 };
  const one = toClipInput({ ...img, data: new Uint8Array([0, 255, 51]), width: 1, height: 1 }, 1);
  [-1, 1, 51 / 127.5 - 1].forEach((v, i) => assert.ok(Math.abs(one[i] - v) < 1e-7));
  // A 4x4 image to 2x2: half-pixel centres fall between pixels, giving 2x2 block means.
  const data = new Uint8Array(4 * 4 * 3);
  for (let p = 0; p < 16; p++) data.fill(p * 10, p * 3, p * 3 + 3);
  const out = toClipInput({ data, width: 4, height: 4 }, 2);
  const blockMean = (r: number, c: number) =>
    ((r * 4 + c) + (r * 4 + c + 1) + ((r + 1) * 4 + c) + ((r + 1) * 4 + c + 1)) * 10 / 4;
  assert.ok(Math.abs(out[0] - (blockMean(0, 0) / 127.5 - 1)) < 1e-6);
  assert.ok(Math.abs(out[3 * 3] - (blockMean(2, 2) / 127.5 - 1)) < 1e-6);
  assert.throws(() => toClipInput({ ...img, width: 3 }, 2), /expected 3x1x3 RGB/);
});
