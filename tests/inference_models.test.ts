import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import {
  exportClipImage,
  exportClipText,
  OnnxGraph,
  openSession,
  saveOnnx,
} from "../lib/onnx/mod.ts";
import {
  aestheticScorer,
  type ClipTowers,
  l2NormalizeRows,
  loadClipTowers,
  loadKitClipTowers,
  loadPreferenceModel,
  loadSegmenter,
  loadTextIdsTokenizer,
  maskBoundingBox,
  PICKSCORE_LOGIT_SCALE,
  preferenceModel,
} from "../lib/inference/mod.ts";
import {
  clipPreprocess,
  NORM_IMAGENET,
  NORM_OPENAI_CLIP,
  normalizeValue,
  resizeFloat,
} from "../lib/image/mod.ts";
import { clipTowersExtractor } from "../lib/eval/clip_fid/mod.ts";
import { CLIP_PRESETS, encodeText, initClip, WordTokenizer } from "../lib/models/mod.ts";
import { kitClipImageExtractor } from "../lib/eval/clip_fid/feature_extractors.ts";
import type { RgbImage } from "../lib/plot/mod.ts";
import { Rng } from "../lib/util/rng.ts";
import { withTempDir } from "./helpers/temp_dir.ts";
import { randomImage } from "./helpers/images.ts";
import { assertClose } from "./helpers/assert_close.ts";

await tf.setBackend("cpu");

const OPTS = { threads: 1, executionProviders: ["cpu"] } as const;

// A tiny CLIP BPE vocabulary (id = index) and merges; expected ids below follow from them.
const VOCAB = [
  "a", //  0
  "c", //  1
  "t</w>", //  2
  "ca", //  3
  "cat</w>", //  4
  "a</w>", //  5
  "d", //  6
  "o", //  7
  "g</w>", //  8
  "do", //  9
  "dog</w>", // 10
  "<|startoftext|>", // 11
  "<|endoftext|>", // 12
];
const MERGES = ["#version: 0.2", "c a", "ca t</w>", "d o", "do g</w>"];
const T = 8;

/** A BPE tokenizer's files (vocab.json, merges.txt, tokenizer_config.json) in `dir`. */
async function writeBpeFiles(dir: string): Promise<void> {
  await Deno.writeTextFile(
    `${dir}/vocab.json`,
    JSON.stringify(Object.fromEntries(VOCAB.map((t, i) => [t, i]))),
  );
  await Deno.writeTextFile(`${dir}/merges.txt`, MERGES.join("\n") + "\n");
  await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify({ model_max_length: T }));
}

function matrix(rows: number, cols: number, seed: number): Float32Array {
  return Rng.stream(seed).normal(rows * cols);
}

const E = matrix(VOCAB.length, 4, 1); // token embedding
const P = matrix(4, 3, 2); // text projection
const Q = matrix(3, 3, 3); // image projection

/**
 * A "CLIP text tower": mean of the token embeddings (over the mask when `withMask`), then a
 * projection; `pooler_output` is the unprojected mean.
 */
function textTower(
  opts: {
    dtype?: "int32" | "int64";
    withMask?: boolean;
    length?: number;
    outputs?: "both" | "pooler_only";
    inputName?: string;
  } = {},
): Uint8Array {
  const dtype = opts.dtype ?? "int32";
  const L = opts.length ?? T;
  const g = new OnnxGraph("text");
  const ids = g.input(opts.inputName ?? "input_ids", dtype, ["batch", L]);
  const h = g.node("Gather", [g.initializer("emb", E, [VOCAB.length, 4]), ids], { axis: 0 });
  let pooled: string;
  if (opts.withMask) {
    const m = g.node("Cast", [g.input("attention_mask", dtype, ["batch", L])], { to: 1 });
    const m3 = g.node("Unsqueeze", [m, g.int64s([2])]);
    const sum = g.node("ReduceSum", [g.node("Mul", [h, m3]), g.int64s([1])], { keepdims: 0 });
    const cnt = g.node("ReduceSum", [m, g.int64s([1])], { keepdims: 1 });
    pooled = g.node("Div", [sum, cnt], {}, { outputs: ["pooler_output"] });
  } else {
    pooled = g.node("ReduceMean", [h], { axes: [1], keepdims: 0 }, { outputs: ["pooler_output"] });
  }
  g.output(pooled, "float32", ["batch", 4]);
  if (opts.outputs !== "pooler_only") {
    const e = g.node("MatMul", [pooled, g.initializer("proj", P, [4, 3])], {}, {
      outputs: ["text_embeds"],
    });
    g.output(e, "float32", ["batch", 3]);
  } else {
    g.output(g.node("Identity", [h], {}, { outputs: ["last_hidden_state"] }), "float32", [
      "batch",
      L,
      4,
    ]);
  }
  return g.toBytes();
}

/**
 * A "CLIP image tower": global average pool, then a projection. `rank3` makes the embedding
 * [batch, 3, 1]; `outName` renames it; `twin` adds a second [batch, 3] output.
 */
function imageTower(
  opts: {
    size?: number | string;
    batch?: number | string;
    channels?: number;
    rank3?: boolean;
    outName?: string;
    twin?: boolean;
  } = {},
): Uint8Array {
  const S = opts.size ?? 6;
  const B = opts.batch ?? "batch";
  const g = new OnnxGraph("image");
  const x = g.input("pixel_values", "float32", [B, opts.channels ?? 3, S, S]);
  const pooled = g.node("Flatten", [g.node("GlobalAveragePool", [x])], { axis: 1 });
  const ch = opts.channels ?? 3;
  const proj = ch === 3 ? Q : matrix(ch, 3, 3);
  const name = opts.outName ?? "image_embeds";
  const e = g.node("MatMul", [pooled, g.initializer("proj", proj, [ch, 3])]);
  if (opts.rank3) {
    g.output(g.node("Unsqueeze", [e, g.int64s([2])], {}, { outputs: [name] }), "float32", [
      B,
      3,
      1,
    ]);
  } else g.output(g.node("Identity", [e], {}, { outputs: [name] }), "float32", [B, 3]);
  if (opts.twin) g.output(g.node("Neg", [e], {}, { outputs: ["twin"] }), "float32", [B, 3]);
  return g.toBytes();
}

/** Independent text embedding: mean of embedding rows (masked or all), times P. */
function expectText(ids: number[], mask: number[] | null): Float64Array {
  const mean = new Float64Array(4);
  let n = 0;
  ids.forEach((id, i) => {
    if (mask && !mask[i]) return;
    n++;
    for (let j = 0; j < 4; j++) mean[j] += E[id * 4 + j];
  });
  const out = new Float64Array(3);
  for (let k = 0; k < 3; k++) {
    for (let j = 0; j < 4; j++) out[k] += (mean[j] / n) * P[j * 3 + k];
  }
  return out;
}

/** Independent image embedding: per-channel mean of normalised pixels in a window, times Q. */
function expectImage(
  img: RgbImage,
  win: { x: number; y: number; size: number },
  norm = NORM_OPENAI_CLIP,
): Float64Array {
  const mean = new Float64Array(3);
  for (let y = win.y; y < win.y + win.size; y++) {
    for (let x = win.x; x < win.x + win.size; x++) {
      for (let c = 0; c < 3; c++) mean[c] += img.data[(y * img.width + x) * 3 + c];
    }
  }
  const out = new Float64Array(3);
  for (let k = 0; k < 3; k++) {
    for (let c = 0; c < 3; c++) {
      // Normalisation is affine, so the mean of normalised values is the normalised mean.
      out[k] += normalizeValue(mean[c] / win.size ** 2, c, norm) * Q[c * 3 + k];
    }
  }
  return out;
}

/** Element-wise |got - want| <= tol * (1 + |want|). */
const assertNear = (got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string) =>
  assertClose(got, want, tol, what, { scale: "1+each" });

const PROMPTS = ["a cat", "dog"];
// <start> a cat <end> <pad=end>... and <start> dog <end> ...
const IDS = [[11, 5, 4, 12, 12, 12, 12, 12], [11, 10, 12, 12, 12, 12, 12, 12]];
const MASKS = [[1, 1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0]];

Deno.test("loadClipTowers: BPE ids, text_embeds over pooler_output, int32 and int64 (+ attention_mask)", async () => {
  await withTempDir("parts_tok_", async (dir) => {
    await writeBpeFiles(dir);
    const tok = await loadTextIdsTokenizer(dir);
    assert.equal(tok.kind, "clip_bpe");
    assert.equal(tok.contextLength, T);
    const enc = tok.encodeBatch(PROMPTS);
    assert.deepEqual(Array.from(enc.ids), IDS.flat());
    assert.deepEqual(Array.from(enc.attentionMask), MASKS.flat());
    for (
      const v of [
        { dtype: "int32", withMask: false },
        { dtype: "int64", withMask: false },
        { dtype: "int64", withMask: true },
      ] as const
    ) {
      const clip = await loadClipTowers({
        ...OPTS,
        textModel: textTower(v),
        imageModel: imageTower(),
        tokenizerDir: dir,
      });
      assert.equal(clip.convention, "openai");
      assert.equal(clip.dim, 3);
      assert.deepEqual(clip.outputs, { text: "text_embeds", image: "image_embeds" });
      const got = await clip.encodeText(PROMPTS);
      const want = IDS.flatMap((ids, i) => [...expectText(ids, v.withMask ? MASKS[i] : null)]);
      assertNear(got, want, 1e-5, `text ${v.dtype} mask=${v.withMask}`);
      await clip.release();
    }
    // The masked mean differs from the plain one: the mask really reached the model.
    assert.ok(Math.abs(expectText(IDS[0], MASKS[0])[0] - expectText(IDS[0], null)[0]) > 1e-3);
  });
});

Deno.test("loadClipTowers: image embeddings follow CLIP preprocessing at the session's size; fixed batch padded", async () => {
  await withTempDir("parts_tok_", async (dir) => {
    await writeBpeFiles(dir);
    const clip = await loadClipTowers({
      ...OPTS,
      textModel: textTower(),
      imageModel: imageTower({ size: 6 }),
      tokenizerDir: dir,
    });
    assert.deepEqual(clip.preprocess, clipPreprocess(6));
    // 6x6: no resize, no crop. 9x6: short side already 6, crop 6x6 at x = (9 - 6) // 2 = 1.
    // 6x10: crop at y = 2.
    const imgs = [randomImage(6, 6, 10), randomImage(9, 6, 11), randomImage(6, 10, 12)];
    const wins = [{ x: 0, y: 0, size: 6 }, { x: 1, y: 0, size: 6 }, { x: 0, y: 2, size: 6 }];
    const want = imgs.flatMap((im, i) => [...expectImage(im, wins[i])]);
    assertNear(await clip.encodeImages(imgs), want, 1e-5, "image embeds");
    await clip.release();

    // A tower fixing its batch at 2 gets [2, 2] with one padding row; a free-size tower uses
    // imageSize.
    for (const v of [{ batch: 2, size: 6 }, { batch: "batch", size: "side" }]) {
      const c = await loadClipTowers({
        ...OPTS,
        textModel: textTower(),
        imageModel: imageTower(v),
        tokenizerDir: dir,
        imageSize: 6,
        batchSize: 2,
      });
      assertNear(await c.encodeImages(imgs), want, 1e-5, `image embeds ${JSON.stringify(v)}`);
      await c.release();
    }
  });
});

Deno.test("loadClipTowers: models that do not fit fail naming the input or output and the expected shape", async () => {
  await withTempDir("parts_tok_", async (dir) => {
    await writeBpeFiles(dir);
    const load = (text: Uint8Array, image: Uint8Array, extra = {}) =>
      loadClipTowers({ ...OPTS, textModel: text, imageModel: image, tokenizerDir: dir, ...extra });
    await assert.rejects(
      load(textTower({ outputs: "pooler_only" }), imageTower()),
      /CLIP text model: cannot tell which output is the projected text embedding: expected "text_embeds" or "text_features".*"pooler_output" \(the unprojected pooled state\).*textOutput/,
    );
    // Naming the output explicitly is allowed (here 4 wide, so the widths then disagree).
    await assert.rejects(
      load(textTower({ outputs: "pooler_only" }), imageTower(), { textOutput: "pooler_output" }),
      /output "image_embeds" is \[batch, 3\] but CLIP text model's "pooler_output" is \[batch, 4\]; the towers must give embeddings of one width/,
    );
    await assert.rejects(
      load(textTower({ inputName: "ids" }), imageTower()),
      /CLIP text model: has no input "input_ids" \(expected int32 or int64 \[batch, sequence\]\); its inputs are "ids" int32 \[batch, 8\]/,
    );
    // A BPE tokenizer folder pads to the model's fixed length; a given tokenizer must match it.
    const ten = await load(textTower({ length: 10 }), imageTower());
    assert.equal(ten.contextLength, 10);
    await ten.release();
    const tok8 = await loadTextIdsTokenizer(dir);
    await assert.rejects(
      loadClipTowers({
        ...OPTS,
        textModel: textTower({ length: 10 }),
        imageModel: imageTower(),
        tokenizer: tok8,
      }),
      /CLIP text model: input "input_ids" is int32 \[batch, 10\], but the tokenizer gives 8 ids per text/,
    );
    await assert.rejects(
      load(textTower(), imageTower({ channels: 4 })),
      /CLIP image model: input "pixel_values" is float32 \[batch, 4, 6, 6\], expected float32 \[batch, 3, height, width\] \(RGB images, 3 channels \(NCHW\)\)/,
    );
    await assert.rejects(
      load(textTower(), imageTower({ rank3: true })),
      /CLIP image model: output "image_embeds" is float32 \[batch, 3, 1\], expected float32 \[batch, dim\] \(one image embedding per row\)/,
    );
    await assert.rejects(
      load(textTower(), imageTower({ outName: "feats", twin: true })),
      /CLIP image model: cannot tell which output is the projected image embedding: expected "image_embeds" or "image_features".*its outputs are "feats" float32 \[batch, 3\], "twin" float32 \[batch, 3\]; name it with imageOutput/,
    );
    // A single [batch, dim] output under another name is taken; imageOutput picks among several.
    for (
      const [m, o] of [[imageTower({ outName: "feats" }), undefined], [
        imageTower({ outName: "feats", twin: true }),
        "feats",
      ]] as const
    ) {
      const c = await load(textTower(), m, { imageOutput: o });
      assert.equal(c.outputs.image, "feats");
      await c.release();
    }
    await assert.rejects(
      loadClipTowers({ ...OPTS, textModel: textTower(), imageModel: imageTower() }),
      /loadClipTowers: give tokenizerDir/,
    );
  });
});

Deno.test("preferenceModel: PickScore's logitScale * cos, best-of-N with softmax; aesthetic head", async () => {
  await withTempDir("parts_tok_", async (dir) => {
    await writeBpeFiles(dir);
    const pick = await loadPreferenceModel({
      ...OPTS,
      textModel: textTower(),
      imageModel: imageTower(),
      tokenizerDir: dir,
    });
    assert.equal(pick.logitScale, PICKSCORE_LOGIT_SCALE);
    const imgs = [randomImage(6, 6, 20), randomImage(6, 6, 21), randomImage(6, 6, 22)];
    const t = expectText(IDS[1], null);
    const cos = (a: Float64Array, b: Float64Array) => {
      let d = 0, na = 0, nb = 0;
      for (let i = 0; i < a.length; i++) {
        d += a[i] * b[i];
        na += a[i] * a[i];
        nb += b[i] * b[i];
      }
      return d / Math.sqrt(na * nb);
    };
    const want = imgs.map((im) => 100 * cos(expectImage(im, { x: 0, y: 0, size: 6 }), t));
    const scores = await pick.score("dog", imgs);
    assertNear(scores, want, 1e-4, "scores");
    const best = await pick.bestOfN("dog", imgs);
    assert.equal(best.index, want.indexOf(Math.max(...want)));
    assertNear(best.scores, want, 1e-4, "bestOfN scores");
    // Softmax: probabilities sum to 1 and their log-ratios are the score differences.
    assert.ok(Math.abs(best.probs.reduce((a, b) => a + b, 0) - 1) < 1e-12);
    assert.ok(Math.abs(Math.log(best.probs[0] / best.probs[1]) - (want[0] - want[1])) < 1e-3);
    // Ties go to the first image; another logit scale scales the scores.
    const tie = await pick.bestOfN("dog", [imgs[1], imgs[1]]);
    assert.equal(tie.index, 0);
    const scaled = preferenceModel(pick.towers, { logitScale: 10 });
    assertNear(await scaled.score("dog", imgs), want.map((w) => w / 10), 1e-4, "scale 10");

    // Aesthetic head: relu(e W1 + b1) W2 + b2 on the L2-normalised image embedding.
    const W1 = matrix(3, 4, 30), b1 = matrix(1, 4, 31), W2 = matrix(4, 1, 32);
    const g = new OnnxGraph("aesthetic");
    const x = g.input("embeds", "float32", ["batch", 3]);
    const hdn = g.node("Relu", [
      g.node("Gemm", [x, g.initializer("w1", W1, [3, 4]), g.initializer("b1", b1, [4])]),
    ]);
    const y = g.node("Gemm", [hdn, g.initializer("w2", W2, [4, 1]), g.constant([0.5], [1])]);
    g.output(y, "float32", ["batch", 1]);
    const aes = await aestheticScorer(pick.towers, { ...OPTS, head: g.toBytes() });
    const e = l2NormalizeRows(await pick.towers.encodeImages(imgs), 3);
    const wantAes = imgs.map((_, n) => {
      let s = 0.5;
      for (let j = 0; j < 4; j++) {
        let a = b1[j];
        for (let i = 0; i < 3; i++) a += e[n * 3 + i] * W1[i * 4 + j];
        s += Math.max(a, 0) * W2[j];
      }
      return s;
    });
    assertNear(await aes.score(imgs), wantAes, 1e-5, "aesthetic");
    await aes.release();
    const bad = new OnnxGraph("bad_head");
    bad.output(bad.node("Identity", [bad.input("e", "float32", ["batch", 5])]), "float32");
    await assert.rejects(
      aestheticScorer(pick.towers, { ...OPTS, head: bad.toBytes() }),
      /aesthetic head: input "e" is float32 \[batch, 5\], expected float32 \[batch, 3\]/,
    );
    await pick.release();
  });
});

Deno.test("loadKitClipTowers: the kit's exported towers give lib/eval's tfjs numbers (word tokenizer, [-1,1])", async () => {
  const cfg = CLIP_PRESETS.tiny;
  const p = initClip(cfg, Rng.stream(40));
  const tok = WordTokenizer.build(["a red circle", "two blue squares", "a green triangle"], {
    contextLength: cfg.contextLength,
  });
  await withTempDir("parts_kit_", async (dir) => {
    for (const d of ["text_encoder", "image_encoder", "tokenizer"]) await Deno.mkdir(`${dir}/${d}`);
    await saveOnnx(
      `${dir}/text_encoder/model.onnx`,
      await exportClipText(p, cfg, { idsDtype: "int64" }),
    );
    await saveOnnx(`${dir}/image_encoder/model.onnx`, await exportClipImage(p, cfg));
    await tok.save(`${dir}/tokenizer/word_tokenizer.json`);

    const clip: ClipTowers = await loadKitClipTowers(dir, OPTS);
    assert.equal(clip.convention, "kit");
    assert.equal(clip.dim, cfg.embedDim);
    const captions = ["a red circle", "two green squares"];
    const wantText = tf.tidy(() =>
      encodeText(p, cfg, tf.tensor2d(tok.encodeBatch(captions), [2, cfg.contextLength], "int32"))
        .embeds.dataSync()
    );
    assertNear(await clip.encodeText(captions), wantText, 1e-4, "kit text");
    const ref = await kitClipImageExtractor({ params: p, config: cfg, tokenizer: tok });
    const imgs = [randomImage(16, 16, 41), randomImage(20, 12, 42), randomImage(7, 9, 43)];
    assertNear(await clip.encodeImages(imgs), await ref.extract(imgs), 1e-4, "kit images");

    const ex = await clipTowersExtractor(clip);
    const bytes = await Deno.readFile(`${dir}/image_encoder/model.onnx`);
    const sha = Array.from(
      new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)).subarray(0, 4),
      (b) => b.toString(16).padStart(2, "0"),
    ).join("");
    assert.equal(ex.name, `onnx-clip-image-${sha}`);
    assert.equal(ex.dim, cfg.embedDim);
    assertNear(await ex.extract(imgs), await ref.extract(imgs), 1e-4, "extractor");
    assertNear(await ex.embedTexts(captions), await ref.embedTexts(captions), 1e-4, "embedTexts");
    await clip.release();
    tf.dispose(Object.values(p));
  });
});

/**
 * A "segmenter": logits = 4 * (red channel as fed) + 0.25 * (first text token id) - 3
 * (+ 0.5 * number of real tokens when it takes an attention mask), at the input size or
 * average-pooled 2x2 to half of it.
 */
function segmenterModel(
  opts: {
    S: number;
    dtype?: "int32" | "int64";
    withMask?: boolean;
    half?: boolean;
    channels?: number;
  },
): Uint8Array {
  const dtype = opts.dtype ?? "int32";
  const g = new OnnxGraph("seg");
  const px = g.input("pixel_values", "float32", ["batch", opts.channels ?? 3, opts.S, opts.S]);
  const ids = g.input("input_ids", dtype, ["batch", T]);
  let r = g.node("Slice", [px, g.int64s([0]), g.int64s([1]), g.int64s([1])]); // [B,1,S,S]
  if (opts.half) r = g.node("AveragePool", [r], { kernel_shape: [2, 2], strides: [2, 2] });
  const tok = g.node(
    "Cast",
    [g.node("Slice", [ids, g.int64s([1]), g.int64s([2]), g.int64s([1])])],
    {
      to: 1,
    },
  ); // [B,1]
  let bias = g.node("Mul", [tok, g.constant([0.25], [])]);
  if (opts.withMask) {
    const m = g.node("Cast", [g.input("attention_mask", dtype, ["batch", T])], { to: 1 });
    const cnt = g.node("ReduceSum", [m, g.int64s([1])], { keepdims: 1 });
    bias = g.node("Add", [bias, g.node("Mul", [cnt, g.constant([0.5], [])])]);
  }
  bias = g.node("Sub", [bias, g.constant([3], [])]);
  let logits: string;
  if (opts.half) {
    const b4 = g.node("Unsqueeze", [bias, g.int64s([2, 3])]); // [B,1,1,1]
    logits = g.node("Add", [g.node("Mul", [r, g.constant([4], [])]), b4], {}, {
      outputs: ["logits"],
    });
    g.output(logits, "float32", ["batch", 1, opts.S / 2, opts.S / 2]);
  } else {
    const r3 = g.node("Squeeze", [r, g.int64s([1])]); // [B,S,S]
    const b3 = g.node("Unsqueeze", [bias, g.int64s([2])]); // [B,1,1]
    logits = g.node("Add", [g.node("Mul", [r3, g.constant([4], [])]), b3], {}, {
      outputs: ["logits"],
    });
    g.output(logits, "float32", ["batch", opts.S, opts.S]);
  }
  return g.toBytes();
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

Deno.test("loadSegmenter: sigmoid of the logits at the image's size (ImageNet mean/std, ids int32/int64, mask)", async () => {
  await withTempDir("parts_tok_", async (dir) => {
    await writeBpeFiles(dir);
    const S = 8;
    const img = randomImage(S, S, 50);
    const red = (x: number, y: number) =>
      normalizeValue(img.data[(y * S + x) * 3], 0, NORM_IMAGENET);
    for (
      const v of [{ dtype: "int32" }, { dtype: "int64" }, {
        dtype: "int64",
        withMask: true,
      }] as const
    ) {
      const seg = await loadSegmenter({
        ...OPTS,
        model: segmenterModel({ S, ...v }),
        tokenizerDir: dir,
      });
      assert.equal(seg.preprocess.norm, NORM_IMAGENET);
      assert.equal(seg.preprocess.width, S);
      for (const [prompt, first, real] of [["a cat", 5, 4], ["dog", 10, 3]] as const) {
        const m = await seg.segment(img, prompt);
        assert.equal(m.width, S);
        assert.equal(m.height, S);
        for (let y = 0; y < S; y++) {
          for (let x = 0; x < S; x++) {
            const z = 4 * red(x, y) + 0.25 * first - 3 + ("withMask" in v ? 0.5 * real : 0);
            assert.ok(Math.abs(m.mask[y * S + x] - sigmoid(z)) < 1e-5, `${prompt} (${x},${y})`);
          }
        }
      }
      await seg.release();
    }
    // Logits at half resolution ([B,1,h,w]) come back to the image size by bilinear interpolation.
    const seg = await loadSegmenter({
      ...OPTS,
      model: segmenterModel({ S, half: true }),
      tokenizerDir: dir,
    });
    const m = await seg.segment(img, "dog");
    const small = new Float32Array(16);
    for (let y = 0; y < 4; y++) {
      for (let x = 0; x < 4; x++) {
        const avg = (red(2 * x, 2 * y) + red(2 * x + 1, 2 * y) + red(2 * x, 2 * y + 1) +
          red(2 * x + 1, 2 * y + 1)) / 4;
        small[y * 4 + x] = 4 * avg + 0.25 * 10 - 3;
      }
    }
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        // PyTorch bilinear, align_corners=False: source (x + 0.5) / 2 - 0.5, clamped.
        const fx = Math.min(Math.max((x + 0.5) / 2 - 0.5, 0), 3),
          fy = Math.min(Math.max((y + 0.5) / 2 - 0.5, 0), 3);
        const x0 = Math.floor(fx), y0 = Math.floor(fy);
        const x1 = Math.min(x0 + 1, 3), y1 = Math.min(y0 + 1, 3), lx = fx - x0, ly = fy - y0;
        const z = (1 - ly) * ((1 - lx) * small[y0 * 4 + x0] + lx * small[y0 * 4 + x1]) +
          ly * ((1 - lx) * small[y1 * 4 + x0] + lx * small[y1 * 4 + x1]);
        assert.ok(Math.abs(m.mask[y * S + x] - sigmoid(z)) < 1e-5, `half (${x},${y})`);
      }
    }
    // An image of another size: the model sees it squashed to 8x8, the mask has the image's size.
    const wide = randomImage(20, 6, 51);
    const mw = await seg.segment(wide, "dog");
    assert.equal(mw.mask.length, 20 * 6);
    const l = await seg.logits(wide, "dog");
    const back = resizeFloat({ data: l.data, width: 4, height: 4, channels: 1 }, {
      width: 20,
      height: 6,
      filter: "bilinear",
      antialias: false,
    });
    assertNear(mw.mask, Array.from(back.data, sigmoid), 1e-6, "wide mask");
    await seg.release();
    await assert.rejects(
      loadSegmenter({ ...OPTS, model: segmenterModel({ S, channels: 1 }), tokenizerDir: dir }),
      /segmenter model: input "pixel_values" is float32 \[batch, 1, 8, 8\], expected float32 \[batch, 3, height, width\]/,
    );
  });
});

Deno.test("maskBoundingBox: strict threshold, padding clipped to the image, null when empty", () => {
  const w = 10, h = 7;
  const mask = new Float32Array(w * h);
  for (let y = 2; y <= 4; y++) for (let x = 3; x <= 6; x++) mask[y * w + x] = 0.9;
  mask[0 * w + 9] = 0.5; // exactly at the threshold: outside
  const m = { mask, width: w, height: h };
  assert.deepEqual(maskBoundingBox(m), { x: 3, y: 2, width: 4, height: 3 });
  assert.deepEqual(maskBoundingBox(m, { pad: 1 }), { x: 2, y: 1, width: 6, height: 5 });
  assert.deepEqual(maskBoundingBox(m, { pad: 3 }), { x: 0, y: 0, width: 10, height: 7 });
  assert.deepEqual(maskBoundingBox(m, { threshold: 0.4 }), { x: 3, y: 0, width: 7, height: 5 });
  assert.equal(maskBoundingBox(m, { threshold: 0.95 }), null);
  assert.throws(() => maskBoundingBox(m, { pad: -1 }), /pad must be a non-negative integer/);
});

Deno.test("openModel: an open session is used as is and left open by release", async () => {
  await withTempDir("parts_tok_", async (dir) => {
    await writeBpeFiles(dir);
    const s = await openSession(imageTower(), { ...OPTS, name: "mine.onnx" });
    const clip = await loadClipTowers({
      ...OPTS,
      textModel: textTower(),
      imageModel: s,
      tokenizerDir: dir,
    });
    assert.equal(clip.image, s);
    await clip.release();
    const out = await s.run({ pixel_values: { data: new Float32Array(108), shape: [1, 3, 6, 6] } });
    assert.deepEqual(out.image_embeds.dims, [1, 3]);
    await s.release();
  });
});
