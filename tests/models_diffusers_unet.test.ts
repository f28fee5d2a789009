/**
 * diffusers UNet folders in and out: the fixture (tests/fixtures/diffusers_unet, written by
 * make_diffusers_unet.py with diffusers' own UNet2DConditionModel) loads into the kit and gives
 * diffusers' outputs; saving gives the same tensors bit for bit and the same config.json.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import {
  diffusersUnetShapes,
  initUnet,
  UNET_PRESETS,
  unetConfigFromDiffusers,
  unetConfigToDiffusers,
  unetForward,
  unetParamsFromTensors,
  unetTensorsFromDiffusers,
  unetTensorsToDiffusers,
} from "../lib/models/mod.ts";
import { loadDiffusersUnet, saveDiffusersUnet } from "../lib/diffusers/mod.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  floatToBFloat16,
  floatToHalf,
  halfToFloat,
  readSafetensors,
  type SafeTensor,
} from "../lib/train/safetensors.ts";
import { disposeParams, type GeluKind } from "../lib/nn/mod.ts";
import { Rng, STREAM } from "../lib/util/rng.ts";
import { withTempDir } from "./helpers/temp_dir.ts";
import { maxAbsDiff } from "./helpers/assert_close.ts";

await tf.setBackend("cpu");

const FIX = new URL("./fixtures/diffusers_unet/", import.meta.url).pathname.replace(/\/$/, "");
const WEIGHTS = "diffusion_pytorch_model.safetensors";
const WEIGHTS16 = "diffusion_pytorch_model.fp16.safetensors";

interface Ref {
  file: string;
  shape: number[];
}
const reference = JSON.parse(await Deno.readTextFile(`${FIX}/reference.json`)) as {
  diffusers_version: string;
  inputs: Record<"sample" | "timestep" | "encoder_hidden_states", Ref>;
  outputs: Record<
    "sample" | "sample_fp16_weights" | "sample_tanh_gelu" | "sample_fp16_weights_tanh_gelu",
    Ref
  >;
};
const fixtureConfig = JSON.parse(await Deno.readTextFile(`${FIX}/config.json`));

async function bin(r: Ref): Promise<tf.Tensor> {
  const bytes = await Deno.readFile(`${FIX}/${r.file}`);
  return tf.tensor(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4), r.shape);
}

/**
 * Run the kit's UNet on the fixture's NCHW inputs and return NCHW output values; `gelu` replaces
 * the loaded config's GEGLU GELU (diffusers' exact one).
 */
async function kitOutput(
  dir: string,
  o: { variant?: "fp16"; gelu?: GeluKind } = {},
): Promise<Float32Array> {
  const loaded = await loadDiffusersUnet(dir, { variant: o.variant });
  assert.equal(loaded.config.gelu, "erf");
  const config = { ...loaded.config, gelu: o.gelu ?? loaded.config.gelu };
  const p = unetParamsFromTensors(loaded.tensors, config);
  const sample = await bin(reference.inputs.sample);
  const t = await bin(reference.inputs.timestep);
  const context = await bin(reference.inputs.encoder_hidden_states);
  const out = tf.tidy(() => {
    const x = tf.transpose(sample, [0, 2, 3, 1]) as tf.Tensor4D;
    const y = unetForward(p, config, { x, t: t as tf.Tensor1D, context: context as tf.Tensor3D });
    return tf.transpose(y, [0, 3, 1, 2]);
  });
  const values = out.dataSync() as Float32Array;
  tf.dispose([out, sample, t, context]);
  disposeParams(p);
  return values;
}

const bits = (t: SafeTensor) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);

/** Every tensor of `b` has the name, dtype, shape and exact bytes of `a`'s. */
function assertSameTensors(a: Record<string, SafeTensor>, b: Record<string, SafeTensor>) {
  assert.deepEqual(Object.keys(b).sort(), Object.keys(a).sort());
  for (const [name, t] of Object.entries(a)) {
    assert.equal(b[name].dtype, t.dtype, name);
    assert.deepEqual(b[name].shape, t.shape, name);
    assert.ok(
      bits(b[name]).every((x, i) => x === bits(t)[i]),
      `${name}: values differ`,
    );
  }
}

/** Copy the fixture's config and fp32 weights to `dir`, letting `edit` change the tensors. */
async function copyFixture(
  dir: string,
  edit: (t: Record<string, { shape: number[]; data: Float32Array }>) => void,
  config: unknown = fixtureConfig,
) {
  const { tensors } = await readSafetensors(`${FIX}/${WEIGHTS}`);
  const host = Object.fromEntries(
    Object.entries(tensors).map(([k, t]) => [k, { shape: t.shape, data: t.data as Float32Array }]),
  );
  edit(host);
  await Deno.writeFile(`${dir}/${WEIGHTS}`, encodeSafetensors(host));
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config));
}

Deno.test("diffusers UNet: config.json maps to the kit's config (attention_head_dim = heads)", () => {
  const { config, sampleSize } = unetConfigFromDiffusers(fixtureConfig);
  // [2, 4] heads at 8 and 16 channels (the middle block takes the last) = 4 channels per head.
  assert.deepEqual(config, {
    inChannels: 4,
    outChannels: 4,
    blockChannels: [8, 16],
    layersPerBlock: 1,
    attentionLevels: [true, false],
    headDim: 4,
    contextDim: 16,
    groupNormGroups: 4,
    useLinearProjection: false,
    gelu: "erf", // diffusers' GEGLU
  });
  assert.equal(sampleSize, 8);
});

Deno.test("diffusers UNet: config.json round trip gives diffusers' own file back", () => {
  const { config, sampleSize } = unetConfigFromDiffusers(fixtureConfig);
  assert.deepEqual(unetConfigToDiffusers(config, { sampleSize }), fixtureConfig);
  // Every kit preset survives kit -> diffusers -> kit, its tanh GELU kept by a private note that
  // diffusers ignores; an erf UNet (diffusers' own GELU) needs none.
  for (const [name, preset] of Object.entries(UNET_PRESETS)) {
    const json = unetConfigToDiffusers(preset);
    assert.equal(json._xgen_kit_gelu, "tanh", name);
    assert.deepEqual(unetConfigFromDiffusers(json).config, preset, name);
    const exact = unetConfigToDiffusers({ ...preset, gelu: "erf" });
    assert.ok(!("_xgen_kit_gelu" in exact), name);
    assert.deepEqual(unetConfigFromDiffusers(exact).config, { ...preset, gelu: "erf" }, name);
  }
  assert.ok(!("_xgen_kit_gelu" in fixtureConfig));
  // SD v1.5's published values.
  const sd = unetConfigToDiffusers(UNET_PRESETS.sd15, { sampleSize: 64 });
  assert.equal(sd.attention_head_dim, 8);
  assert.equal(sd.cross_attention_dim, 768);
  assert.deepEqual(sd.down_block_types, [
    "CrossAttnDownBlock2D",
    "CrossAttnDownBlock2D",
    "CrossAttnDownBlock2D",
    "DownBlock2D",
  ]);
  assert.deepEqual(sd.up_block_types, [
    "UpBlock2D",
    "CrossAttnUpBlock2D",
    "CrossAttnUpBlock2D",
    "CrossAttnUpBlock2D",
  ]);
  assert.equal(sd.time_embedding_dim, 1280);
});

/**
 * A loaded diffusers UNet computes diffusers' exact (erf) GELU in its GEGLU: its output matches
 * diffusers' to float32 rounding (measured 1.7e-6 with fp32 weights, 1.1e-6 with fp16 ones; outputs up to 1.5).
 * The fixture also holds diffusers' output with the tanh GELU, which a kit config asking for
 * `gelu: "tanh"` matches as tightly; the two GELUs differ by ~2e-4 at the output, so each match
 * also tells them apart.
 */
const TIGHT = 5e-6, GELU_GAP = 1e-4;

Deno.test("diffusers UNet: fp32 weights give diffusers' output", async () => {
  const got = await kitOutput(FIX);
  const want = (await bin(reference.outputs.sample)).dataSync();
  const scale = Math.max(...Array.from(want, Math.abs));
  assert.ok(scale > 0.5, `reference output is not trivial (max |y| ${scale})`);
  const diff = maxAbsDiff(got, want);
  assert.ok(diff < TIGHT, `max |kit - diffusers| = ${diff} (max |y| = ${scale})`);
  const wantTanh = (await bin(reference.outputs.sample_tanh_gelu)).dataSync();
  const tanh = maxAbsDiff(await kitOutput(FIX, { gelu: "tanh" }), wantTanh);
  assert.ok(tanh < TIGHT, `max |kit - diffusers|, both tanh GELU = ${tanh}`);
  assert.ok(maxAbsDiff(want, wantTanh) > GELU_GAP, "the GELUs give different outputs");
});

Deno.test("diffusers UNet: the fp16 variant loads and gives diffusers' fp16-weight output", async () => {
  const loaded = await loadDiffusersUnet(FIX, { variant: "fp16" });
  assert.deepEqual(loaded.dtypes, ["F16"]);
  assert.ok(loaded.files[0].endsWith(WEIGHTS16));
  const got = await kitOutput(FIX, { variant: "fp16" });
  const want16 = (await bin(reference.outputs.sample_fp16_weights)).dataSync();
  const want32 = (await bin(reference.outputs.sample)).dataSync();
  const diff = maxAbsDiff(got, want16);
  assert.ok(diff < TIGHT, `max |kit - diffusers|, fp16 weights = ${diff}`);
  // Rounding the weights moves the output by far more, so this tells the two files apart.
  assert.ok(maxAbsDiff(want16, want32) > 100 * TIGHT);
  const tanh = maxAbsDiff(
    await kitOutput(FIX, { variant: "fp16", gelu: "tanh" }),
    (await bin(reference.outputs.sample_fp16_weights_tanh_gelu)).dataSync(),
  );
  assert.ok(tanh < TIGHT, `max |kit - diffusers|, fp16 weights, both tanh GELU = ${tanh}`);
});

Deno.test("diffusers UNet: save then reload gives every tensor bit for bit (fp32, fp16)", async () => {
  await withTempDir("diffusers_unet_", async (dir) => {
    for (const variant of [undefined, "fp16"] as const) {
      const { config, sampleSize, tensors } = await loadDiffusersUnet(FIX, { variant });
      const p = unetParamsFromTensors(tensors, config);
      const out = `${dir}/${variant ?? "fp32"}`;
      const dtype = variant ? "float16" : "float32";
      await saveDiffusersUnet(out, { config, params: p, dtype, variant, sampleSize });
      disposeParams(p);
      const file = variant ? WEIGHTS16 : WEIGHTS;
      const saved = await readSafetensors(`${out}/${file}`);
      const original = await readSafetensors(`${FIX}/${file}`);
      assertSameTensors(original.tensors, saved.tensors);
      assert.deepEqual(saved.metadata, { format: "pt" });
      assert.deepEqual(JSON.parse(await Deno.readTextFile(`${out}/config.json`)), fixtureConfig);
      // And the saved folder loads again, to the same kit tensors.
      const again = await loadDiffusersUnet(out, { variant });
      for (const [k, t] of Object.entries(tensors)) assert.deepEqual(again.tensors[k], t, k);
    }
  });
});

Deno.test("diffusers UNet: a kit UNet of the fixture's config saves the fixture's names and shapes", async () => {
  const { config } = unetConfigFromDiffusers(fixtureConfig);
  const p = initUnet(config, Rng.stream(3, [0, STREAM.init]));
  await withTempDir("diffusers_unet_", async (dir) => {
    await saveDiffusersUnet(dir, { config, params: p, dtype: "bfloat16" });
    disposeParams(p);
    const saved = decodeSafetensors(await Deno.readFile(`${dir}/${WEIGHTS}`));
    const original = await readSafetensors(`${FIX}/${WEIGHTS}`);
    const shapes = (f: typeof saved) =>
      Object.fromEntries(Object.entries(f.tensors).map(([k, t]) => [k, t.shape]));
    assert.deepEqual(shapes(saved), shapes(original));
    assert.deepEqual(shapes(original), diffusersUnetShapes(config));
    assert.ok(Object.values(saved.tensors).every((t) => t.dtype === "BF16"));
  });
});

Deno.test("diffusers UNet: wrong shape, missing and unexpected tensors are named", async () => {
  await withTempDir("diffusers_unet_", async (dir) => {
    await copyFixture(dir, (t) => {
      t["conv_in.weight"] = { shape: [8, 4, 1, 1], data: new Float32Array(32) };
    });
    await assert.rejects(
      loadDiffusersUnet(dir),
      (e: Error) =>
        e.message.includes(
          `${WEIGHTS}: tensor "conv_in.weight" has shape [8,4,1,1], expected [8,4,3,3]`,
        ) &&
        e.message.includes("config.json"),
    );
    await copyFixture(dir, (t) => {
      delete t["mid_block.attentions.0.proj_out.bias"];
      t["class_embedding.linear_1.weight"] = { shape: [1], data: new Float32Array(1) };
    });
    await assert.rejects(
      loadDiffusersUnet(dir),
      (e: Error) =>
        e.message.includes("tensor names do not match the UNet of") &&
        e.message.includes("missing 1: mid_block.attentions.0.proj_out.bias") &&
        e.message.includes("unexpected 1: class_embedding.linear_1.weight"),
    );
    // A config that does not fit the weights is caught the same way.
    await copyFixture(dir, () => {}, { ...fixtureConfig, cross_attention_dim: 24 });
    await assert.rejects(
      loadDiffusersUnet(dir),
      /attn2\.to_k\.weight" has shape \[8,16\], expected \[8,24\]/,
    );
    await assert.rejects(
      loadDiffusersUnet(dir, { variant: "fp16" }),
      /fp16\.safetensors: file not found; diffusion_pytorch_model\.safetensors is there/,
    );
  });
  assert.throws(
    () => unetTensorsToDiffusers({}, UNET_PRESETS.tiny),
    /missing \d+: conv_in\.bias, conv_in\.weight/,
  );
});

Deno.test("diffusers UNet: unsupported config fields are refused in one line", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [
      { class_embed_type: "timestep" },
      /field "class_embed_type" is "timestep"; the kit supports null/,
    ],
    [
      { addition_embed_type: "text_time" },
      /field "addition_embed_type" is "text_time"; the kit supports null/,
    ],
    [
      { mid_block_type: "UNetMidBlock2D" },
      /field "mid_block_type" is "UNetMidBlock2D"; the kit supports "UNetMidBlock2DCrossAttn"/,
    ],
    [
      { down_block_types: ["CrossAttnDownBlock2D", "SimpleCrossAttnDownBlock2D"] },
      /field "down_block_types"/,
    ],
    [
      { up_block_types: ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"] },
      /field "up_block_types" .*\["UpBlock2D","CrossAttnUpBlock2D"\] \(the down blocks mirrored\)/,
    ],
    [{ attention_head_dim: [2, 8] }, /field "attention_head_dim" is \[2,8\]/],
    [{ num_attention_heads: 2 }, /field "num_attention_heads" is 2; the kit supports null/],
    [{ flip_sin_to_cos: false }, /field "flip_sin_to_cos" is false; the kit supports true/],
    [{ norm_eps: 1e-6 }, /field "norm_eps" is 0.000001; the kit supports 1e-05/],
    [{ act_fn: "gelu" }, /field "act_fn" is "gelu"; the kit supports "silu"/],
    [{ _xgen_kit_gelu: "fast" }, /field "_xgen_kit_gelu" is "fast"; the kit supports "tanh" or/],
    [
      { layers_per_block: [1, 2] },
      /field "layers_per_block" is \[1,2\]; the kit supports a positive integer, or 2 equal/,
    ],
    [
      { _class_name: "UNet2DModel" },
      /field "_class_name" is "UNet2DModel"; the kit supports "UNet2DConditionModel"/,
    ],
    [
      { brand_new_field: 1 },
      /field "brand_new_field" is 1; the kit supports only UNet2DConditionModel's fields/,
    ],
    [
      { norm_num_groups: 3 },
      /unet\/config.json: UnetConfig.blockChannels: 8 must be a positive multiple of groupNormGroups=3/,
    ],
  ];
  for (const [change, re] of cases) {
    assert.throws(
      () =>
        unetConfigFromDiffusers({ ...fixtureConfig, ...change }, { source: "unet/config.json" }),
      (e: Error) =>
        re.test(e.message) && !e.message.includes("\n") &&
        e.message.startsWith("unet/config.json: "),
      JSON.stringify(change),
    );
  }
  // Settings that do not change a float32 forward pass load.
  assert.doesNotThrow(() => unetConfigFromDiffusers({ ...fixtureConfig, upcast_attention: true }));
});

Deno.test("diffusers UNet: layout conversion is a permutation and its inverse", () => {
  const cfg = UNET_PRESETS.tiny;
  const torch = Object.fromEntries(
    Object.entries(diffusersUnetShapes(cfg)).map(([k, s], j) => {
      const n = s.reduce((a, b) => a * b, 1);
      return [k, { shape: s, data: Float32Array.from({ length: n }, (_, i) => i + j / 7) }];
    }),
  );
  const kit = unetTensorsFromDiffusers(torch, cfg);
  // conv_in.weight: diffusers [cout=16, cin=4, 3, 3] -> kit [3, 3, 4, 16]; element (o,i,h,w).
  const w = kit["conv_in.weight"];
  assert.deepEqual(w.shape, [3, 3, 4, 16]);
  const [o, i, h, x] = [5, 2, 1, 2];
  assert.equal(
    w.data[((h * 3 + x) * 4 + i) * 16 + o],
    torch["conv_in.weight"].data[((o * 4 + i) * 3 + h) * 3 + x],
  );
  // A linear [out=64, in=16] -> [16, 64].
  const l = kit["time_embedding.linear_1.weight"];
  assert.deepEqual(l.shape, [16, 64]);
  assert.equal(l.data[3 * 64 + 50], torch["time_embedding.linear_1.weight"].data[50 * 16 + 3]);
  const back = unetTensorsToDiffusers(kit, cfg);
  for (const [k, t] of Object.entries(torch)) assert.deepEqual(back[k], t, k);
});

Deno.test("safetensors: float16 and bfloat16 encoding round to nearest even", () => {
  // Every half value survives float -> half -> float -> half.
  for (let hbits = 0; hbits < 65536; hbits++) {
    const v = halfToFloat(hbits);
    if (Number.isNaN(v)) assert.equal(floatToHalf(v) & 0x7c00, 0x7c00);
    else assert.equal(floatToHalf(v), hbits, `half 0x${hbits.toString(16)}`);
  }
  // Ties go to even; overflow to infinity; below half the smallest subnormal to zero.
  assert.equal(floatToHalf(1 + 2 ** -11), 0x3c00);
  assert.equal(floatToHalf(1 + 3 * 2 ** -11), 0x3c02);
  assert.equal(floatToHalf(65520), 0x7c00);
  assert.equal(floatToHalf(65519), 0x7bff);
  assert.equal(floatToHalf(2 ** -25), 0);
  assert.equal(floatToHalf(-(2 ** -25) * 1.5), 0x8001);
  assert.equal(floatToBFloat16(1 + 2 ** -8), 0x3f80);
  assert.equal(floatToBFloat16(1 + 3 * 2 ** -8), 0x3f82);
  const f = decodeSafetensors(
    encodeSafetensors({ a: { shape: [2], data: new Float32Array([0.1, -3]) } }, {}, {
      dtype: "BF16",
    }),
  );
  assert.equal(f.tensors.a.dtype, "BF16");
  assert.deepEqual(Array.from(f.tensors.a.data as Float32Array), [0.10009765625, -3]);
});
