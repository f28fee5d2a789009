/**
 * `countWebgpuCalls` on tiny programs whose WebGPU calls are known exactly, on whatever adapter
 * Deno finds (Mesa lavapipe on CPU-only machines). tfjs-webgpu records one bind group, one uniform
 * upload and one dispatch per program, submits every `WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE`
 * dispatches and on a readback (a buffer copy, a submit, a `mapAsync`), compiles a pipeline once
 * per shader key and recycles buffers; these tests pin those counts.
 */
import assert from "node:assert";
import * as tf from "@tensorflow/tfjs-core";
import { countWebgpuCalls, initBackend, webgpuAdapterInfo } from "../lib/backend/mod.ts";

const adapter = await webgpuAdapterInfo();
if (!adapter) {
  console.log(
    "backend_webgpu_counters: SKIPPED, no WebGPU adapter (install mesa-vulkan-drivers libvulkan1)",
  );
}

Deno.test("countWebgpuCalls: no GPU work counts zero and passes the result", async () => {
  const { result, counts } = await countWebgpuCalls(() => Promise.resolve("done"));
  assert.equal(result, "done");
  for (const [k, v] of Object.entries(counts)) assert.equal(v, 0, k);
});

Deno.test("countWebgpuCalls: nesting is refused and the prototypes come back", async () => {
  const queue = (globalThis as unknown as { GPUQueue?: { prototype: { submit: unknown } } })
    .GPUQueue;
  const before = queue?.prototype.submit;
  await assert.rejects(
    countWebgpuCalls(() => countWebgpuCalls(() => 1)),
    /already running/,
  );
  assert.equal(queue?.prototype.submit, before);
  // And a later count works again after the refusal.
  assert.equal((await countWebgpuCalls(() => 2)).result, 2);
});

Deno.test({
  name: "countWebgpuCalls: exact counts of an add chain and a matmul on webgpu",
  ignore: !adapter,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await initBackend("webgpu", { quiet: true });
    const prevForward = tf.env().getBool("WEBGPU_CPU_FORWARD");
    // Keep every op on the GPU: small host-side inputs would otherwise run on the CPU.
    tf.env().set("WEBGPU_CPU_FORWARD", false);
    const batch = tf.env().getNumber("WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE");
    try {
      const x = tf.ones([256]);
      await x.data(); // uploaded before counting
      const k = 2 * batch + 10; // two full submit batches and a partial one
      const chain = async () => {
        let y = tf.add(x, x);
        for (let i = 1; i < k; i++) {
          const z = tf.add(y, x);
          y.dispose();
          y = z;
        }
        const v = await y.data();
        y.dispose();
        return v[0];
      };
      const cold = await countWebgpuCalls(chain);
      assert.equal(cold.result, k + 1); // 1 + k adds of 1
      assert.equal(cold.counts.dispatches, k);
      assert.equal(cold.counts.pipelines, 1); // one shader key for every add
      assert.equal(cold.counts.shaderModules, 1);

      const warm = await countWebgpuCalls(chain);
      assert.equal(warm.result, k + 1);
      const c = warm.counts;
      assert.equal(c.dispatches, k);
      assert.equal(c.bindGroups, k);
      assert.equal(c.bufferWrites, k); // each dispatch's uniforms
      assert.equal(c.submits, Math.floor(k / batch) + 1); // full batches + the readback's
      assert.equal(c.commandBuffers, c.submits);
      assert.equal(c.computePasses, Math.ceil(k / batch));
      assert.equal(c.bufferCopies, 1);
      assert.equal(c.mapReads, 1);
      assert.equal(c.pipelines, 0); // cached by shader key
      assert.equal(c.buffers, 0); // recycled by tfjs-webgpu's buffer manager
      assert.ok(c.mapWaitMs > 0 && c.submitMs > 0 && c.callMs > 0);

      const a = tf.randomNormal([64, 64], 0, 1, "float32", 1);
      const b = tf.randomNormal([64, 64], 0, 1, "float32", 2);
      await Promise.all([a.data(), b.data()]);
      const mm = async () => {
        const p = tf.matMul(a, b);
        const v = await p.data();
        p.dispose();
        return v;
      };
      await countWebgpuCalls(mm); // compiles the matmul pipeline
      const m = await countWebgpuCalls(mm);
      assert.equal(m.counts.dispatches, 1);
      assert.equal(m.counts.submits, 1);
      assert.equal(m.counts.pipelines, 0);
      assert.equal(m.counts.buffers, 0);
      // The counted result is the real product: check one entry against a host dot product.
      const [av, bv] = [await a.data(), await b.data()];
      let ref = 0;
      for (let i = 0; i < 64; i++) ref += av[3 * 64 + i] * bv[i * 64 + 5];
      assert.ok(Math.abs(m.result[3 * 64 + 5] - ref) < 1e-4 * (1 + Math.abs(ref)));
      tf.dispose([x, a, b]);
    } finally {
      tf.env().set("WEBGPU_CPU_FORWARD", prevForward);
    }
  },
});
