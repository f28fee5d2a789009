/**
 * A PickScore-style CLIP towers folder (`text_model.onnx`, `vision_model.onnx`, a CLIP BPE
 * tokenizer) small enough to recompute by hand, for tests that need a scorer or a CLIP judge
 * for an SD folder: the text tower averages token embeddings and projects them to 3 numbers, the
 * image tower projects the per-channel means of the normalised pixels. The committed
 * tests/fixtures/tiny_clip_towers/ (lib/inference's JSDoc examples) is written with it too, by
 * tests/fixtures/make_tiny_clip_towers.ts.
 */
import { OnnxGraph, saveOnnx } from "../../lib/onnx/mod.ts";
import { Rng } from "../../lib/util/rng.ts";

/** Options of {@link makeTowersDir}. */
export interface TowersDirOptions {
  /** Folder whose `vocab.json`, `merges.txt` and `tokenizer_config.json` the towers use. */
  tokenizerDir: string;
  /** Image side the vision tower takes (images are resized and cropped to it). */
  size: number;
  /** Seed of the random weights. */
  seed: number;
}

/**
 * Write the towers into `dir` (created); deterministic for the same options.
 *
 * @example
 * ```ts
 * await makeTowersDir(`${dir}/pick`, { tokenizerDir: `${TINY_SD}fp16/tokenizer`, size: 16, seed: 1 });
 * ```
 */
export async function makeTowersDir(dir: string, o: TowersDirOptions): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const f of ["vocab.json", "merges.txt", "tokenizer_config.json"]) {
    await Deno.copyFile(`${o.tokenizerDir}/${f}`, `${dir}/${f}`);
  }
  const vocab = Object.keys(JSON.parse(await Deno.readTextFile(`${o.tokenizerDir}/vocab.json`)));
  const cfg = JSON.parse(await Deno.readTextFile(`${o.tokenizerDir}/tokenizer_config.json`));
  const t = new OnnxGraph("text");
  const h = t.node("Gather", [
    t.initializer("emb", Rng.stream(o.seed, [1]).normal(vocab.length * 4), [vocab.length, 4]),
    t.input("input_ids", "int64", ["batch", cfg.model_max_length]),
  ], { axis: 0 });
  const pooled = t.node("ReduceMean", [h], { axes: [1], keepdims: 0 });
  const te = t.node(
    "MatMul",
    [
      pooled,
      t.initializer("p", Rng.stream(o.seed, [2]).normal(12), [
        4,
        3,
      ]),
    ],
    {},
    { outputs: ["text_embeds"] },
  );
  t.output(te, "float32", ["batch", 3]);
  await saveOnnx(`${dir}/text_model.onnx`, t.toBytes());
  const v = new OnnxGraph("vision");
  const px = v.input("pixel_values", "float32", ["batch", 3, o.size, o.size]);
  const pv = v.node("Flatten", [v.node("GlobalAveragePool", [px])], { axis: 1 });
  const ie = v.node(
    "MatMul",
    [pv, v.initializer("q", Rng.stream(o.seed, [3]).normal(9), [3, 3])],
    {},
    {
      outputs: ["image_embeds"],
    },
  );
  v.output(ie, "float32", ["batch", 3]);
  await saveOnnx(`${dir}/vision_model.onnx`, v.toBytes());
}
