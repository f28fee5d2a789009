/**
 * ONNX weights in an external-data file, the form Stable Diffusion's UNet takes (past protobuf's
 * 2 GiB): one written by ONNX's own saver (tests/fixtures/make_external_data.py) samples the
 * reference image, and the kit's `saveOnnxModel` writes files onnxruntime reads back exactly.
 */
import assert from "node:assert/strict";
import {
  loadOnnxPipeline,
  OnnxGraph,
  onnxSchema,
  openSession,
  saveOnnxModel,
  txt2img,
} from "../lib/onnx/mod.ts";
import { withTempDir } from "./helpers/temp_dir.ts";
import { levelDiff, readReference, TINY_SD } from "./helpers/tiny_sd.ts";

const EXTERNAL_UNET = new URL("./fixtures/tiny_sd_external/unet/", import.meta.url).pathname;
const SESSION = { threads: 1, executionProviders: ["cpu"] } as const;

Deno.test("an SD folder whose UNet keeps its weights in model.onnx_data samples the reference image", async () => {
  await withTempDir("xgen_external_", async (root) => {
    const dir = `${root}/sd`;
    await copyDir(`${TINY_SD}fp32_scalar_t`, dir);
    // The graph alone is ~10x smaller than the inline model: the weights really are outside.
    const inline = (await Deno.stat(`${dir}/unet/model.onnx`)).size;
    for (const f of ["model.onnx", "model.onnx_data"]) {
      await Deno.copyFile(`${EXTERNAL_UNET}${f}`, `${dir}/unet/${f}`);
    }
    assert.ok((await Deno.stat(`${dir}/unet/model.onnx`)).size * 5 < inline);

    const { job, image } = await readReference(dir);
    const pipe = await loadOnnxPipeline(dir, SESSION);
    try {
      const [out] = await txt2img(pipe, job);
      const d = levelDiff(out, image);
      assert.ok(d.max <= 2, `max level difference ${d.max} > 2 (mean ${d.mean})`);
    } finally {
      await pipe.release();
    }
    // Without its data file the UNet cannot load, and the error says which model failed.
    await Deno.remove(`${dir}/unet/model.onnx_data`);
    await assert.rejects(loadOnnxPipeline(dir, SESSION), /unet\/model\.onnx/);
  });
});

/** A two-layer graph with weights big and small enough to land on both sides of the threshold. */
function mlp(): { graph: OnnxGraph; w1: Float32Array; w2: Float32Array } {
  const w1 = Float32Array.from({ length: 64 * 32 }, (_, i) => Math.sin(i) * 0.1);
  const w2 = Float32Array.from({ length: 32 * 8 }, (_, i) => Math.cos(i) * 0.1);
  const g = new OnnxGraph("mlp");
  const x = g.input("x", "float32", ["batch", 64]);
  const h = g.node("Relu", [
    g.node("Gemm", [
      x,
      g.initializer("fc1.weight", w1, [64, 32]),
      g.initializer("fc1.bias", new Float32Array(32).fill(0.01), [32]),
    ]),
  ]);
  const y = g.node("Gemm", [h, g.initializer("fc2.weight", w2, [32, 8])], {}, { outputs: ["y"] });
  g.output(y, "float32", ["batch", 8]);
  return { graph: g, w1, w2 };
}

async function runMlp(path: string, x: Float32Array): Promise<Float32Array> {
  const s = await openSession(path, SESSION);
  try {
    const out = await s.run({ x: { data: x, shape: [x.length / 64, 64] } });
    return out.y.data as Float32Array;
  } finally {
    await s.release();
  }
}

Deno.test("saveOnnxModel: external tensors at aligned offsets, same outputs as one file", async () => {
  await withTempDir("xgen_external_", async (dir) => {
    const { graph, w1, w2 } = mlp();
    const one = await saveOnnxModel(`${dir}/one.onnx`, graph, { externalData: "never" });
    assert.deepEqual(one.files, ["one.onnx"]);
    const two = await saveOnnxModel(`${dir}/two.onnx`, graph, { externalData: "always" });
    // fc1.weight (8 KiB) and fc2.weight (1 KiB) go out; the 128-byte bias stays inline.
    assert.deepEqual(two, {
      files: ["two.onnx_data", "two.onnx"],
      externalTensors: 2,
      externalBytes: 4096 * 2 + w2.byteLength,
    });

    const x = Float32Array.from({ length: 3 * 64 }, (_, i) => (i % 7) - 3);
    assert.deepEqual(await runMlp(`${dir}/two.onnx`, x), await runMlp(`${dir}/one.onnx`, x));

    // The records point at the right bytes, each tensor starting on a 4096-byte boundary.
    const model = onnxSchema().ModelProto.decode(
      await Deno.readFile(`${dir}/two.onnx`),
    ) as unknown as {
      graph: {
        initializer: {
          name: string;
          data_location?: number;
          raw_data?: Uint8Array;
          external_data: { key: string; value: string }[];
        }[];
      };
    };
    const data = await Deno.readFile(`${dir}/two.onnx_data`);
    const byName = Object.fromEntries(model.graph.initializer.map((t) => [t.name, t]));
    assert.equal(byName["fc1.bias"].data_location ?? 0, 0);
    assert.equal(byName["fc1.bias"].raw_data?.length, 128);
    for (const [name, want] of [["fc1.weight", w1], ["fc2.weight", w2]] as const) {
      const t = byName[name];
      assert.equal(t.data_location, 1, name);
      assert.equal(t.raw_data?.length ?? 0, 0, name);
      const kv = Object.fromEntries(t.external_data.map((e) => [e.key, e.value]));
      assert.equal(kv.location, "two.onnx_data");
      const offset = Number(kv.offset), length = Number(kv.length);
      assert.equal(offset % 4096, 0, `${name} offset ${offset}`);
      assert.equal(length, want.byteLength);
      const got = new Float32Array(data.slice(offset, offset + length).buffer);
      assert.deepEqual(got, want);
    }
  });
});

Deno.test("saveOnnxModel: auto keeps small models in one file and drops a stale data file", async () => {
  await withTempDir("xgen_external_", async (dir) => {
    const { graph } = mlp();
    await saveOnnxModel(`${dir}/m.onnx`, graph, { externalData: "always" });
    await Deno.stat(`${dir}/m.onnx_data`);
    const saved = await saveOnnxModel(`${dir}/m.onnx`, graph);
    assert.deepEqual(saved.files, ["m.onnx"]);
    await assert.rejects(Deno.stat(`${dir}/m.onnx_data`), Deno.errors.NotFound);
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
      ["m.onnx"],
      "no temporaries left behind",
    );
    await assert.rejects(
      saveOnnxModel(`${dir}/m.onnx`, graph, { externalData: "sometimes" as "auto" }),
      /externalData must be "auto", "always" or "never", got sometimes/,
    );
    await assert.rejects(saveOnnxModel(`${dir}/m.onnx`, graph, { align: 0 }), /align must be/);
  });
});

async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isDirectory) await copyDir(`${from}/${e.name}`, `${to}/${e.name}`);
    else await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}
