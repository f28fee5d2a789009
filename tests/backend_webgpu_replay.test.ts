/**
 * The experimental capture/replay of lib/backend/webgpu_replay.ts: a captured tiny-UNet training
 * step (forward, MSE, backward, fused AdamW), planned once and replayed on a later step's starting
 * state with that step's uniforms, gives bit for bit the loss, weights and moments tfjs computes
 * for that step. Skipped (with a printed reason) without a WebGPU adapter.
 */
import assert from "node:assert";
import * as tf from "@tensorflow/tfjs-core";
import {
  captureWebgpuTrace,
  diffWebgpuTraces,
  initBackend,
  planWebgpuReplay,
  readBuffers,
  snapshotBuffers,
  traceInputs,
  webgpuAdapterInfo,
} from "../lib/backend/mod.ts";
import { AdamW, computeGrads } from "../lib/train/optim.ts";
import { initUnet, UNET_PRESETS, unetForward } from "../lib/models/mod.ts";
import { disposeParams, setConvFilterGrad } from "../lib/nn/mod.ts";
import { Rng, STREAM } from "../lib/util/rng.ts";

const adapter = await webgpuAdapterInfo();
if (!adapter) {
  console.log(
    "backend_webgpu_replay: SKIPPED, no WebGPU adapter (install mesa-vulkan-drivers libvulkan1)",
  );
}

type Backend = {
  device: GPUDevice;
  tensorMap: { get(id: object): { resource: GPUBuffer | null } };
};

Deno.test("captureWebgpuTrace: no GPU work records nothing", async () => {
  const { result, trace } = await captureWebgpuTrace(() => "x");
  assert.equal(result, "x");
  assert.equal(trace.events.length, 0);
  assert.equal(trace.stats.dispatches, 0);
});

Deno.test({
  name: "webgpu replay: a replayed tiny-UNet step equals the tfjs step bit for bit",
  ignore: !adapter,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await initBackend("webgpu", { quiet: true });
    setConvFilterGrad("kernel");
    const backend = tf.backend() as unknown as Backend;
    const device = backend.device;
    const cfg = UNET_PRESETS.tiny;
    const params = initUnet(cfg, Rng.stream(0, [0, STREAM.init]));
    const rng = Rng.stream(0, [0, STREAM.noise]);
    const data = {
      x: tf.tensor4d(rng.normal(64 * 4), [1, 8, 8, 4]),
      target: tf.tensor4d(rng.normal(64 * 4), [1, 8, 8, 4]),
      t: tf.tensor1d([rng.uniform() * 999]),
      context: tf.tensor3d(rng.normal(4 * cfg.contextDim), [1, 4, cfg.contextDim]),
    };
    const opt = new AdamW(params, { weightDecay: 0.01 });
    const moments = opt as unknown as Record<"m" | "v", Record<string, tf.Variable>>;
    const names = Object.keys(params);
    const issue = () => {
      const loss = () =>
        tf.tidy(() => {
          const eps = unetForward(params, cfg, { x: data.x, t: data.t, context: data.context });
          return tf.mean(tf.square(tf.sub(eps, data.target))) as tf.Scalar;
        });
      const { value, grads } = computeGrads(params, loss);
      opt.step(grads, 1e-3);
      return [value, ...Object.values(grads)];
    };
    const step = () =>
      captureWebgpuTrace(async () => {
        const outs = issue();
        await outs[0].data();
        return outs;
      });
    /** The buffer of every tensor the step keeps: parameters, moments, data. */
    const roles = () => {
      const m = new Map<string, GPUBuffer>();
      const put = (k: string, t: tf.Tensor) => m.set(k, backend.tensorMap.get(t.dataId).resource!);
      for (const n of names) {
        put(`p.${n}`, params[n]);
        put(`m.${n}`, moments.m[n]);
        put(`v.${n}`, moments.v[n]);
      }
      for (const [k, t] of Object.entries(data)) put(`data.${k}`, t);
      return m;
    };
    try {
      for (let i = 0; i < 2; i++) tf.dispose((await step()).result); // compile every shader
      const startA = roles();
      const a = await step();
      const endA = roles();
      const lossA = backend.tensorMap.get(a.result[0].dataId).resource!;
      // A later step B, captured for its data (AdamW's bias corrections change every step).
      const startB = roles();
      const bind = new Map<GPUBuffer, GPUBuffer>();
      const inputs = traceInputs(a.trace);
      for (const [r, buf] of startA) if (inputs.has(buf)) bind.set(buf, startB.get(r)!);
      // Every input of the step is a parameter, a moment or a data tensor.
      assert.equal(bind.size, inputs.size);
      const snap = snapshotBuffers(device, bind.values());
      const b = await step();
      const endB = roles();
      const diff = diffWebgpuTraces(a.trace, b.trace);
      assert.ok(diff.sameStructure, diff.firstMismatch);
      assert.ok(diff.storageBufferDiffs > 0); // tfjs's pool hands out other buffers
      assert.equal(diff.uniformByteDiffs["Object"], 3 * names.length); // AdamW's p, m, v programs
      const outRoles = [...endB.keys()].filter((r) => !r.startsWith("data."));
      const refLoss = await b.result[0].data();
      const ref = await readBuffers(device, outRoles.map((r) => endB.get(r)!));

      snap.restore();
      const before = await readBuffers(device, outRoles.map((r) => startB.get(r)!));
      const replay = planWebgpuReplay(device, a.trace, { bind });
      assert.equal(replay.dispatches, a.trace.stats.dispatches);
      replay.run(b.trace);
      const [[loss]] = await readBuffers(device, [replay.buffer(lossA)]);
      const got = await readBuffers(device, outRoles.map((r) => replay.buffer(endA.get(r)!)));
      assert.ok(Number.isFinite(loss) && loss > 0);
      assert.equal(loss, refLoss[0]);
      let differ = 0, changed = 0;
      for (let i = 0; i < got.length; i++) {
        for (let j = 0; j < got[i].length; j++) {
          if (!Object.is(got[i][j], ref[i][j])) differ++;
          if (got[i][j] !== before[i][j]) changed++;
        }
      }
      assert.equal(differ, 0);
      assert.ok(changed > 0); // the replay really updated weights and moments
      replay.destroy();
      snap.destroy();
      tf.dispose([...a.result, ...b.result]);
    } finally {
      opt.dispose();
      disposeParams(params);
      tf.dispose(Object.values(data));
    }
  },
});
