import assert from "node:assert/strict";
import * as ort from "onnxruntime-node";
import { cudaFallbackReason, OnnxGraph, openSession, saveOnnx } from "../lib/onnx/mod.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

/** A UNet-like toy: sample [batch, 4, 8, 8] + per-batch scale [batch, 1] -> sample * 2 + mean. */
function toyUnet(): Uint8Array {
  const g = new OnnxGraph("toy_unet");
  const x = g.input("sample", "float32", ["batch", 4, 8, 8]);
  const s = g.input("scale", "float32", ["batch", 1]);
  const t = g.input("timestep", "int64", [1]);
  const tf = g.node("Cast", [t], { to: 1 }); // to float32
  const s4 = g.node("Reshape", [s, g.int64s([-1, 1, 1, 1])]);
  const y = g.node("Add", [g.node("Mul", [x, s4]), tf], {}, { outputs: ["out_sample"] });
  const m = g.node("ReduceMean", [y], { axes: [1, 2, 3], keepdims: 0 }, { outputs: ["mean"] });
  g.output(y, "float32", ["batch", 4, 8, 8]);
  g.output(m, "float32", ["batch"]);
  return g.toBytes();
}

Deno.test("openSession auto: CUDA when this build has it, else CPU with one notice", async () => {
  const lines: string[] = [];
  const s = await openSession(toyUnet(), { log: (l) => lines.push(l) });
  if (s.executionProviders.includes("cuda")) {
    assert.equal(cudaFallbackReason(), null);
    assert.equal(lines.length, 0);
  } else {
    assert.deepEqual(s.executionProviders, ["cpu"]);
    assert.equal(lines.length, 1);
    assert.match(
      lines[0],
      /^onnx: CUDA is not available in this onnxruntime-node build; using the CPU/,
    );
    assert.ok(cudaFallbackReason());
    // Later sessions do not repeat the notice.
    await openSession(toyUnet(), { log: (l) => lines.push(l) });
    assert.equal(lines.length, 1);
  }
  assert.equal(s.threads, navigator.hardwareConcurrency);
});

Deno.test("OnnxSession: metadata, run with arrays and tensors, output selection", async () => {
  const s = await openSession(toyUnet(), {
    name: "unet/model.onnx",
    threads: 1,
    executionProviders: ["cpu"],
  });
  assert.deepEqual(s.inputs, [
    { name: "sample", dtype: "float32", shape: ["batch", 4, 8, 8] },
    { name: "scale", dtype: "float32", shape: ["batch", 1] },
    { name: "timestep", dtype: "int64", shape: [1] },
  ]);
  assert.deepEqual(s.outputs, [
    { name: "out_sample", dtype: "float32", shape: ["batch", 4, 8, 8] },
    { name: "mean", dtype: "float32", shape: ["batch"] },
  ]);
  assert.equal(s.threads, 1);
  const x = Float32Array.from({ length: 2 * 256 }, (_, i) => (i % 7) - 3);
  const out = await s.run({
    sample: { data: x, shape: [2, 4, 8, 8] },
    scale: new ort.Tensor("float32", new Float32Array([2, -1]), [2, 1]),
    timestep: { data: new BigInt64Array([5n]), shape: [1] },
  });
  const y = out.out_sample.data as Float32Array;
  for (let i = 0; i < x.length; i++) assert.equal(y[i], x[i] * (i < 256 ? 2 : -1) + 5);
  const mean = out.mean.data as Float32Array;
  for (let b = 0; b < 2; b++) {
    let sum = 0;
    for (let i = 0; i < 256; i++) sum += y[b * 256 + i];
    assert.ok(Math.abs(mean[b] - sum / 256) < 1e-5);
  }
  const only = await s.run({
    sample: { data: x.subarray(0, 256), shape: [1, 4, 8, 8] },
    scale: { data: new Float32Array([1]), shape: [1, 1] },
    timestep: { data: new BigInt64Array([0n]), shape: [1] },
  }, ["mean"]);
  assert.deepEqual(Object.keys(only), ["mean"]);
  await s.release();
});

Deno.test("OnnxSession.run: bad feeds fail naming the input and the expected shape", async () => {
  const s = await openSession(toyUnet(), {
    name: "unet/model.onnx",
    threads: 1,
    executionProviders: ["cpu"],
  });
  const ok = {
    sample: { data: new Float32Array(256), shape: [1, 4, 8, 8] },
    scale: { data: new Float32Array(1), shape: [1, 1] },
    timestep: { data: new BigInt64Array(1), shape: [1] },
  };
  await s.run(ok);
  const bad = (feeds: Record<string, unknown>, re: RegExp) =>
    assert.rejects(s.run({ ...ok, ...feeds } as typeof ok), re);
  await bad(
    { sample: { data: new Float32Array(64), shape: [1, 4, 4, 4] } },
    /^Error: unet\/model\.onnx: input "sample" expects float32 \[batch, 4, 8, 8\], got float32 \[1, 4, 4, 4\]$/,
  );
  await bad(
    { sample: { data: new Float32Array(256), shape: [4, 8, 8] } },
    /input "sample" expects float32 \[batch, 4, 8, 8\], got float32 \[4, 8, 8\]/,
  );
  await bad(
    { sample: { data: new Int32Array(256), shape: [1, 4, 8, 8] } },
    /input "sample" expects float32 \[batch, 4, 8, 8\], got int32 \[1, 4, 8, 8\]/,
  );
  await bad(
    { timestep: { data: new Float32Array(1), shape: [1] } },
    /input "timestep" expects int64 \[1\], got float32 \[1\]/,
  );
  // "batch" must be one size across inputs.
  await bad(
    { scale: { data: new Float32Array(2), shape: [2, 1] } },
    /input "scale" expects float32 \[batch, 1\], got float32 \[2, 1\] \(batch = 1 from input "sample"\)/,
  );
  await bad(
    { sample: { data: new Float32Array(10), shape: [1, 4, 8, 8] } },
    /input "sample" has shape \[1, 4, 8, 8\] \(256 elements\) but 10 values/,
  );
  await bad(
    { extra: { data: new Float32Array(1), shape: [1] } },
    /unknown input "extra"; the model takes "sample", "scale", "timestep"/,
  );
  const { timestep: _drop, ...missing } = ok;
  await assert.rejects(
    s.run(missing),
    /unet\/model\.onnx: missing input "timestep" \(int64 \[1\]\)/,
  );
  await assert.rejects(
    s.run(ok, ["nope"]),
    /unknown output "nope"; the model gives "out_sample", "mean"/,
  );
  await s.release();
});

Deno.test("openSession: from a file; unreadable or invalid models name the file", async () => {
  await withTempDir("xgen_onnx_session_", async (dir) => {
    const path = `${dir}/toy.onnx`;
    await saveOnnx(path, toyUnet());
    const s = await openSession(path, { threads: 1, executionProviders: ["cpu"] });
    assert.equal(s.name, path);
    assert.equal(s.inputs.length, 3);
    await s.release();
    await Deno.writeFile(`${dir}/junk.onnx`, new Uint8Array([1, 2, 3, 4]));
    await assert.rejects(
      openSession(`${dir}/junk.onnx`, { threads: 1, executionProviders: ["cpu"] }),
      /junk\.onnx: cannot open with \[cpu\]/,
    );
    await assert.rejects(
      openSession(`${dir}/junk.onnx`, { threads: 1 }),
      /junk\.onnx: cannot open/,
    );
    await assert.rejects(openSession(path, { threads: 0 }), /threads must be a positive integer/);
  });
});
