/**
 * The ONNX execution-provider choice: WebGPU through onnxruntime-web on Deno's `navigator.gpu`
 * gives the CPU provider's image (and PyTorch's) for the committed tiny SD folder; an unknown
 * provider and CUDA without its library are refused in one line. Without a GPU, Mesa's lavapipe
 * software adapter serves WebGPU (mesa-vulkan-drivers); the WebGPU tests are skipped, with the
 * reason printed, only when no adapter exists.
 */
import assert from "node:assert/strict";
import * as ort from "npm:onnxruntime-node@1.30.0";
import { loadOnnxPipeline, txt2img } from "../lib/onnx/sd_pipeline.ts";
import { openSession } from "../lib/onnx/session.ts";
import { openWebGpuInferenceSession, webGpuUnavailableReason } from "../lib/onnx/web_session.ts";
import { parseOnnxProvider, setDefaultOnnxProvider } from "../lib/onnx/providers.ts";
import { decodePngRgb } from "../lib/data/mod.ts";
import { levelDiff, readReference, TINY_SD } from "./helpers/tiny_sd.ts";
import { cli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

// wgpu's Vulkan/Wayland probe wants it; an unset one only adds a stderr line.
if (!Deno.env.get("XDG_RUNTIME_DIR")) Deno.env.set("XDG_RUNTIME_DIR", "/tmp");
const noGpu = await webGpuUnavailableReason();
if (noGpu) console.log(`onnx_webgpu_provider: skipping the WebGPU tests: ${noGpu}`);

const FP32 = `${TINY_SD}fp32_scalar_t`;
// onnxruntime-web keeps its WebGPU device for the process: not a leak of one test.
const gpuTest = { ignore: noGpu !== null, sanitizeResources: false, sanitizeOps: false };

Deno.test({
  name: "webgpu: the tiny SD image equals the cpu provider's and PyTorch's within 1 level",
  ...gpuTest,
  fn: async () => {
    const { job, image } = await readReference(FP32);
    const images = [];
    for (const ep of ["cpu", "webgpu"]) {
      const pipe = await loadOnnxPipeline(FP32, { threads: 1, executionProviders: [ep] });
      try {
        assert.deepEqual(pipe.unet.executionProviders, [ep]);
        images.push((await txt2img(pipe, job))[0]);
      } finally {
        await pipe.release();
      }
    }
    const [cpu, gpu] = images;
    const vsCpu = levelDiff(gpu, cpu), vsTorch = levelDiff(gpu, image);
    assert.ok(vsCpu.max <= 1, `webgpu vs cpu: ${JSON.stringify(vsCpu)}`);
    assert.ok(vsTorch.max <= 1 && vsTorch.mean < 0.01, `vs PyTorch: ${JSON.stringify(vsTorch)}`);
  },
});

Deno.test({
  name: "webgpu: UNet outputs match the cpu provider's; GPU-resident outputs feed back",
  ...gpuTest,
  fn: async () => {
    const path = `${FP32}/unet/model.onnx`;
    const x = new Float32Array(2 * 4 * 8 * 8).map((_, i) => Math.sin(i * 0.37));
    const ctx = new Float32Array(2 * 77 * 32).map((_, i) => Math.cos(i * 0.11));
    const feeds = {
      sample: { data: x, shape: [2, 4, 8, 8] },
      timestep: { data: new Float32Array([500]), shape: [] },
      encoder_hidden_states: { data: ctx, shape: [2, 77, 32] },
    };
    const cpu = await openSession(path, { threads: 1, executionProviders: ["cpu"] });
    const gpu = await openSession(path, { executionProviders: ["webgpu"] });
    try {
      const a = (await cpu.run(feeds)).out_sample, b = (await gpu.run(feeds)).out_sample;
      // The same tensor class as onnxruntime-node's, so callers read both alike.
      assert.ok(b instanceof ort.Tensor);
      assert.deepEqual(b.dims, [2, 4, 8, 8]);
      const ad = a.data as Float32Array, bd = b.data as Float32Array;
      let max = 0;
      for (let i = 0; i < ad.length; i++) max = Math.max(max, Math.abs(ad[i] - bd[i]));
      assert.ok(max < 1e-4, `max |webgpu - cpu| = ${max}`);
      // A session that leaves its output on the GPU: that tensor is fed as it is, checked alike.
      const raw = await openWebGpuInferenceSession(path, { outputLocation: "gpu-buffer" });
      const onGpu = (await raw.run(
        Object.fromEntries(
          Object.entries(feeds).map(([k, v]) => [k, new ort.Tensor("float32", v.data, v.shape)]),
        ),
      )).out_sample;
      assert.equal(onGpu.location, "gpu-buffer");
      const again = (await gpu.run({ ...feeds, sample: onGpu })).out_sample;
      const ref = (await cpu.run({ ...feeds, sample: { data: ad, shape: [2, 4, 8, 8] } }))
        .out_sample.data as Float32Array;
      const cd = again.data as Float32Array;
      max = 0;
      for (let i = 0; i < cd.length; i++) max = Math.max(max, Math.abs(cd[i] - ref[i]));
      assert.ok(max < 1e-4, `fed back: max diff ${max}`);
      assert.throws(
        () => gpu.validate({ sample: onGpu }),
        /missing input "timestep"/,
      );
      await raw.release();
    } finally {
      await cpu.release();
      await gpu.release();
    }
  },
});

Deno.test({
  name: "webgpu: --provider is the default of sessions opened without providers",
  ...gpuTest,
  fn: async () => {
    setDefaultOnnxProvider("webgpu");
    try {
      const s = await openSession(`${FP32}/vae_decoder/model.onnx`);
      assert.deepEqual(s.executionProviders, ["webgpu"]);
      await s.release();
    } finally {
      setDefaultOnnxProvider("auto");
    }
  },
});

Deno.test({
  name: "webgpu: deno task sample --provider webgpu writes the cpu provider's grid",
  ...gpuTest,
  fn: async () => {
    await withTempDir("onnx_webgpu_", async (dir) => {
      const grids = [];
      for (const p of ["cpu", "webgpu"]) {
        const out = `${dir}/${p}.png`;
        const r = await cli([
          "lib/cli/sample.ts",
          "--model",
          FP32,
          "--prompt",
          "a red circle",
          "--n",
          "2",
          "--steps",
          "3",
          "--provider",
          p,
          "--out",
          out,
        ]);
        assert.equal(r.code, 0, r.stderr);
        const { image, width, height } = decodePngRgb(await Deno.readFile(out), out);
        grids.push({ data: image, width, height });
      }
      assert.ok(levelDiff(grids[0], grids[1]).max <= 1);
    });
  },
});

Deno.test("an unknown provider is refused in one line listing the choices", async () => {
  assert.throws(() => parseOnnxProvider("tpu"), {
    message: 'unknown ONNX provider "tpu"; choose one of auto, cpu, cuda, webgpu',
  });
  await assert.rejects(
    openSession(`${FP32}/vae_decoder/model.onnx`, { executionProviders: ["tpu"] }),
    (e: Error) => {
      assert.match(e.message, /unknown execution provider "tpu"; choose from cpu, cuda/);
      assert.ok(!e.message.includes("\n"));
      return true;
    },
  );
  const r = await cli(["lib/cli/sample.ts", "--model", FP32, "--prompt", "a", "--provider", "tpu"]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /--provider expects one of auto, cpu, cuda, webgpu, got "tpu"/);
});

Deno.test("cuda where the binding lacks it fails in one line saying how to install it", async () => {
  const lib = new URL(
    "../bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so",
    import.meta.resolve("npm:onnxruntime-node@1.30.0"),
  );
  const present = await Deno.stat(lib).then(() => true, () => false);
  if (present || Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") {
    console.log("cuda refusal: skipped, this onnxruntime-node has its CUDA library");
    return;
  }
  await assert.rejects(
    openSession(`${FP32}/vae_decoder/model.onnx`, { executionProviders: ["cuda"] }),
    (e: Error) => {
      assert.ok(!e.message.includes("\n"), e.message);
      assert.match(e.message, /CUDA was requested but this onnxruntime-node has no CUDA provider/);
      assert.match(
        e.message,
        /ONNXRUNTIME_NODE_INSTALL=cuda12 deno install --allow-scripts=npm:onnxruntime-node/,
      );
      return true;
    },
  );
});
