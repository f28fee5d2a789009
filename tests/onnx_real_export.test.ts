/**
 * SD folders a real exporter wrote: tests/fixtures/tiny_sd/ holds three tiny Stable Diffusion
 * folders in Optimum's layout that PyTorch's `torch.onnx.export` made (tests/fixtures/make_tiny_sd.py:
 * float32 with an int64 `[batch]` timestep, float16 weights and IO, float32 with a rank-0 float32
 * timestep as Optimum >= 1.24, whose graph fails with a broadcast error when fed a `[batch]`
 * timestep), each with a PyTorch reference image of 4 DDIM steps with guidance from fixed latents.
 * The kit's sampler on the ONNX folder must give the same uint8 image.
 *
 * The folders are committed, so these tests need no torch; where Debian's python3-torch is
 * installed, the last test also regenerates them into a temp dir and checks that fresh export.
 */
import assert from "node:assert/strict";
import { float16BitsToFloat32, float32ToFloat16Bits } from "../lib/onnx/float16.ts";
import {
  img2img,
  loadOnnxPipeline,
  OnnxGraph,
  type OnnxPipeline,
  saveOnnx,
  txt2img,
} from "../lib/onnx/mod.ts";
import { withTempDir } from "./helpers/temp_dir.ts";
import { LEVEL_TOLERANCE, levelDiff, readReference } from "./helpers/tiny_sd.ts";

const FIXTURES = new URL("./fixtures/tiny_sd/", import.meta.url).pathname;
const SESSION = { threads: 1, executionProviders: ["cpu"] } as const;

/** Sample the reference's job on the folder; returns the level difference to its image. */
async function compareWithReference(dir: string, variant: string) {
  const { ref, job, image, size } = await readReference(dir);
  const pipe = await loadOnnxPipeline(dir, SESSION);
  try {
    assert.equal(pipe.source, "optimum");
    assert.equal(pipe.tokenizer.kind, "clip_bpe");
    // The kit's CLIP BPE tokenizer on the script's vocab gives the ids the reference used.
    assert.deepEqual(
      [...pipe.tokenizer.encodeBatch([ref.negative_prompt, ref.prompt])],
      ref.ids.flat(),
    );
    assert.equal(pipe.height, size[0]);
    assert.equal(pipe.width, size[1]);
    const [out] = await txt2img(pipe, job);
    assert.ok(new Set(image.data).size > 50, `${variant}: reference image is (nearly) flat`);
    const d = levelDiff(out, image);
    const tol = LEVEL_TOLERANCE[ref.model_dtype];
    assert.ok(
      d.max <= tol,
      `${variant}: max level difference ${d.max} > ${tol} (mean ${d.mean.toFixed(3)})`,
    );
    console.log(`${variant}: max level difference ${d.max}, mean ${d.mean.toFixed(4)}`);
    return { pipe, d };
  } catch (e) {
    await pipe.release();
    throw e;
  }
}

const VARIANTS: [string, Partial<OnnxPipeline["io"]["unet"]>, string][] = [
  ["fp32_int64_t", {
    sampleDtype: "float32",
    timestepDtype: "int64",
    timestepRank: 1,
    timestepScalarBatch: false,
  }, "int64"],
  ["fp16", {
    sampleDtype: "float16",
    contextDtype: "float16",
    timestepDtype: "float16",
    timestepRank: 1,
  }, "int32"],
  ["fp32_scalar_t", {
    sampleDtype: "float32",
    timestepDtype: "float32",
    timestepRank: 0,
    timestepScalarBatch: true,
  }, "int32"],
];

for (const [variant, unetIo, idsDtype] of VARIANTS) {
  Deno.test(`real torch export ${variant}: loads, and DDIM + guidance = the PyTorch reference image`, async () => {
    const { pipe } = await compareWithReference(`${FIXTURES}${variant}`, variant);
    try {
      for (const [k, v] of Object.entries(unetIo)) {
        assert.equal(pipe.io.unet[k as keyof typeof unetIo], v, `io.unet.${k}`);
      }
      assert.equal(pipe.io.text.idsDtype, idsDtype);
      assert.equal(pipe.io.decoder.latentDtype, unetIo.sampleDtype);
      assert.equal(pipe.latentChannels, 4);
      assert.equal(pipe.contextTokens, 77);
      assert.equal(pipe.defaultScheduler, "pndm");
      // Older exports give latent_sample (the mean), newer latent_parameters (mean, logvar).
      assert.equal(
        pipe.io.encoder?.latent,
        variant === "fp32_int64_t" ? "latent_sample" : "latent_parameters",
      );
      // The SD folder's own scheduler (PNDM) and img2img (VAE encoder) run too, batch of 2.
      const txt = await txt2img(pipe, {
        prompts: ["a red circle"],
        n: 2,
        guidance: 4,
        steps: 3,
        seed: 1,
      });
      assert.equal(txt.length, 2);
      assert.ok(txt.every((im) => im.width === 64 && im.height === 64));
      const back = await img2img(pipe, {
        images: [txt[0]],
        prompts: ["a red circle", ""],
        strength: 0.5,
        guidance: 4,
        steps: 4,
        scheduler: "ddim",
        seed: 2,
      });
      assert.equal(back.length, 2);
      assert.ok(back.every((im) => new Set(im.data).size > 20));
    } finally {
      await pipe.release();
    }
  });
}

Deno.test("float16 bits: round to nearest even, subnormals, overflow, and back", () => {
  const v = new Float32Array([
    0,
    -0,
    1,
    1 + 2 ** -11,
    1 + 3 * 2 ** -11,
    65504,
    65520,
    2 ** -24,
    1e-9,
  ]);
  const back = float16BitsToFloat32(float32ToFloat16Bits(v));
  assert.deepEqual([...back], [0, -0, 1, 1, 1 + 2 ** -9, 65504, Infinity, 2 ** -24, 0]);
  assert.ok(Number.isNaN(float16BitsToFloat32(float32ToFloat16Bits([NaN]))[0]));
});

Deno.test("an SD folder whose input has another element type fails in one line naming the file, input and dtype", async () => {
  await withTempDir("xgen-real-export-", async (dir) => {
    const src = `${FIXTURES}fp32_scalar_t`;
    for await (const e of Deno.readDir(src)) {
      if (e.isDirectory) {
        await Deno.mkdir(`${dir}/${e.name}`);
        for await (const f of Deno.readDir(`${src}/${e.name}`)) {
          await Deno.copyFile(`${src}/${e.name}/${f.name}`, `${dir}/${e.name}/${f.name}`);
        }
      } else await Deno.copyFile(`${src}/${e.name}`, `${dir}/${e.name}`);
    }
    const g = new OnnxGraph("vae_decoder");
    const x = g.input("latent_sample", "int32", ["batch", 4, "h", "w"]);
    g.output(g.node("Identity", [x]), "int32", ["batch", 4, "h", "w"]);
    await saveOnnx(`${dir}/vae_decoder/model.onnx`, g.toBytes());
    const err = await loadOnnxPipeline(dir, SESSION).then(
      (p) => (p.release(), null),
      (e: Error) => e,
    );
    assert.ok(err, "an int32 latent input must be refused");
    assert.match(
      err.message,
      /vae_decoder\/model\.onnx: input "latent_sample" expects int32 \[batch, 4, h, w\], but the pipeline feeds float32 or float16/,
    );
    assert.ok(!err.message.includes("\n"), "one line");
  });
});

const TORCH = await new Deno.Command("/usr/bin/python3", { args: ["-c", "import torch, onnx"] })
  .output().then((o) => o.success, () => false);

Deno.test({
  name: "make_tiny_sd.py regenerates folders the kit matches (needs python3-torch)",
  ignore: !TORCH,
  fn: async () => {
    await withTempDir("xgen-tiny-sd-", async (dir) => {
      const script = new URL("./fixtures/make_tiny_sd.py", import.meta.url).pathname;
      const out = await new Deno.Command("/usr/bin/python3", { args: [script, dir] }).output();
      assert.ok(out.success, new TextDecoder().decode(out.stderr).slice(-2000));
      for (const [variant] of VARIANTS) {
        const { pipe } = await compareWithReference(`${dir}/${variant}`, `${variant} (fresh)`);
        await pipe.release();
      }
    });
  },
});
