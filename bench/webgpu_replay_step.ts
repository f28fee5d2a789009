/**
 * Capture and replay of a `webgpu` UNet training step (lib/backend/webgpu_replay.ts, an
 * experiment): are two warm tfjs steps the same WebGPU command sequence apart from their data,
 * and does replaying a captured step (one command buffer, one submit, no tfjs) give the loss and
 * weights tfjs gives, at what host cost?
 *
 * Steps: `--warmup` plain steps; three captured steps A, B, C (diffed pairwise: A-B neighbours,
 * A-C two apart); then the check: snapshot the buffers A uses, run step D in tfjs (captured:
 * its uniforms and uploads are D's data), read its loss and every parameter, restore the
 * snapshot, replay A's plan with D's data, read the loss buffer and the parameter buffers and
 * compare bit for bit. Then `--reps` timed replays (restore, replay, wait) for host ms.
 *
 * Usage:
 *   deno run -A bench/webgpu_replay_step.ts [--preset tiny|default] [--warmup 2] [--reps 5]
 * Last line:
 *   RESULT webgpu_replay_step_<preset> host_ms=<replay host ms> speedup=<tfjs issue ms / replay>
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { helpText, parseFlags, runMain } from "../lib/cli/args.ts";
import {
  captureWebgpuTrace,
  diffWebgpuTraces,
  planWebgpuReplay,
  readBuffers,
  snapshotBuffers,
  traceInputs,
  webgpuAdapterInfo,
  type WebgpuTrace,
} from "../lib/backend/mod.ts";
import { initBackendAndConvGrad } from "../lib/train/init_backend.ts";
import { AdamW, computeGrads } from "../lib/train/optim.ts";
import { initUnet, UNET_PRESETS, type UnetConfig, unetForward } from "../lib/models/mod.ts";
import { disposeParams } from "../lib/nn/mod.ts";
// presets.ts directly: the default UNet without the rest of lib/recipe (training stages).
import { RECIPE_PRESETS } from "../lib/recipe/presets.ts";
import { Rng, STREAM } from "../lib/util/rng.ts";

const SPEC = {
  preset: { type: "choice", choices: ["tiny", "default"], default: "tiny", help: "UNet" },
  warmup: { type: "int", default: 2, min: 1, help: "plain steps first (compile shaders)" },
  reps: { type: "int", default: 5, min: 1, help: "timed replays (median)" },
  tokens: { type: "int", default: 8, min: 1, help: "context tokens" },
} as const;

type Backend = {
  device: GPUDevice;
  tensorMap: { get(id: object): { resource: GPUBuffer | null } };
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** One batch-1 training step over fixed inputs, as bench/gpu.ts builds it. */
function unetStep(cfg: UnetConfig, tokens: number) {
  const params = initUnet(cfg, Rng.stream(0, [0, STREAM.init]));
  const rng = Rng.stream(0, [0, STREAM.noise]);
  const x = tf.tensor4d(rng.normal(64 * cfg.inChannels), [1, 8, 8, cfg.inChannels]);
  const target = tf.tensor4d(rng.normal(64 * cfg.outChannels), [1, 8, 8, cfg.outChannels]);
  const t = tf.tensor1d([rng.uniform() * 999]);
  const context = tf.tensor3d(rng.normal(tokens * cfg.contextDim), [1, tokens, cfg.contextDim]);
  const loss = () =>
    tf.tidy(() =>
      tf.mean(tf.square(tf.sub(unetForward(params, cfg, { x, t, context }), target))) as tf.Scalar
    );
  const opt = new AdamW(params, { weightDecay: 0.01 });
  return {
    params,
    opt,
    data: { x, target, t, context },
    issue: (): tf.Tensor[] => {
      const { value, grads } = computeGrads(params, loss);
      opt.step(grads, 1e-3);
      return [value, ...Object.values(grads)];
    },
    dispose: () => {
      opt.dispose();
      disposeParams(params);
      tf.dispose([x, target, t, context]);
    },
  };
}

async function main(): Promise<void> {
  const f = parseFlags(Deno.args, SPEC, "bench/webgpu_replay_step.ts");
  if (f.help) {
    console.log(helpText("bench/webgpu_replay_step.ts", "capture/replay of a webgpu step", SPEC));
    return;
  }
  const adapter = await webgpuAdapterInfo();
  if (!adapter) {
    console.log("no WebGPU adapter: nothing to measure");
    console.log(`RESULT webgpu_replay_step_${f.preset} host_ms=nan speedup=nan`);
    return;
  }
  await initBackendAndConvGrad("webgpu", { quiet: true });
  const backend = tf.backend() as unknown as Backend;
  const device = backend.device;
  const rp = RECIPE_PRESETS.default;
  // The default preset's UNet with the channels and context width its frozen parts give it.
  const cfg: UnetConfig = f.preset === "tiny" ? UNET_PRESETS.tiny : {
    ...rp.unet.model,
    inChannels: rp.autoencoder.model.latentChannels,
    outChannels: rp.autoencoder.model.latentChannels,
    contextDim: rp.clip.model.textWidth,
  };
  const s = unetStep(cfg, f.tokens);
  const names = Object.keys(s.params);
  const plain = async () => {
    const outs = s.issue();
    await outs[0].data();
    tf.dispose(outs);
  };
  const t0 = performance.now();
  for (let i = 0; i < f.warmup; i++) await plain();
  console.log(
    `adapter ${adapter}; ${f.preset} UNet, ${names.length} tensors; warm-up ${
      ((performance.now() - t0) / 1000).toFixed(1)
    } s`,
  );
  const issueMs: number[] = [];
  const captured = async (): Promise<{ trace: WebgpuTrace; outs: tf.Tensor[] }> => {
    const { result, trace } = await captureWebgpuTrace(async () => {
      const a = performance.now();
      const outs = s.issue();
      issueMs.push(performance.now() - a);
      await outs[0].data();
      return outs;
    });
    return { trace, outs: result };
  };
  const opt = s.opt as unknown as Record<"m" | "v", Record<string, tf.Variable>>;
  /** The buffer of every tensor a step reads and keeps: parameters, moments, data. */
  const roles = () => {
    const m = new Map<string, GPUBuffer>();
    const put = (k: string, t: tf.Tensor) => m.set(k, backend.tensorMap.get(t.dataId).resource!);
    for (const n of names) {
      put(`p.${n}`, s.params[n]);
      put(`m.${n}`, opt.m[n]);
      put(`v.${n}`, opt.v[n]);
    }
    for (const [k, t] of Object.entries(s.data)) put(`data.${k}`, t);
    return m;
  };
  const startA = roles();
  const first = await captured();
  const endA = roles();
  const lossA = backend.tensorMap.get(first.outs[0].dataId).resource!;
  // Kept alive until the end, so no later step reuses the buffers the plan reads through `endA`.
  const traces: WebgpuTrace[] = [first.trace];
  for (let i = 0; i < 2; i++) {
    const c = await captured();
    tf.dispose(c.outs);
    traces.push(c.trace);
  }
  const [A, B, C] = traces;
  console.log(`capture A: ${JSON.stringify(A.stats)}`);
  console.log(`tfjs issue ms (captured steps): ${issueMs.map((m) => m.toFixed(1)).join(", ")}`);
  console.log(`diff A-B (neighbours): ${JSON.stringify(diffWebgpuTraces(A, B))}`);
  console.log(`diff A-C (two apart):  ${JSON.stringify(diffWebgpuTraces(A, C))}`);
  console.log(`diff B-C (neighbours): ${JSON.stringify(diffWebgpuTraces(B, C))}`);

  // The check: step D in tfjs, then A's plan with D's data on D's starting state. Every buffer of
  // A not bound to tfjs's live tensors gets a private twin (tfjs's pool hands out other buffers
  // each step, so A's scratch buffers may hold D's live tensors).
  const startD = roles();
  const inputsA = traceInputs(A);
  const bind = new Map<GPUBuffer, GPUBuffer>();
  for (const [r, buf] of startA) if (inputsA.has(buf)) bind.set(buf, startD.get(r)!);
  const unbound = [...inputsA].filter((b) => !bind.has(b));
  console.log(
    `inputs of A (read before written): ${inputsA.size}; bound to tfjs tensors ${bind.size}; ` +
      `other ${unbound.length} (${unbound.map((b) => b.size).join(", ")} bytes)`,
  );
  // Other inputs (constants tfjs keeps across steps) keep their captured buffers.
  for (const b of unbound) bind.set(b, b);
  const snap = snapshotBuffers(device, bind.values());
  const d = await captured();
  const endD = roles();
  const dDiff = diffWebgpuTraces(A, d.trace);
  console.log(`diff A-D: ${JSON.stringify(dDiff)}`);
  const lossBuf = backend.tensorMap.get(d.outs[0].dataId).resource!;
  const outRoles = [...endD.keys()].filter((r) => !r.startsWith("data."));
  const refLoss = (await readBuffers(device, [lossBuf]))[0][0];
  const refParams = await readBuffers(device, outRoles.map((r) => endD.get(r)!));
  snap.restore();
  const replay = planWebgpuReplay(device, A, { bind });
  const p0 = performance.now();
  replay.run(d.trace);
  const firstMs = performance.now() - p0;
  const readOut = async () => {
    const [[loss]] = await readBuffers(device, [replay.buffer(lossA)]);
    const ps = await readBuffers(device, outRoles.map((r) => replay.buffer(endA.get(r)!)));
    return { loss, ps };
  };
  const got = await readOut();
  let diffElems = 0, maxAbs = 0, total = 0;
  for (let i = 0; i < got.ps.length; i++) {
    for (let j = 0; j < got.ps[i].length; j++) {
      total++;
      const e = Math.abs(got.ps[i][j] - refParams[i][j]);
      if (!Object.is(got.ps[i][j], refParams[i][j])) diffElems++;
      if (!(e <= maxAbs)) maxAbs = e;
    }
  }
  console.log(
    `replay of A's plan with D's data: loss ${got.loss} vs tfjs ${refLoss}; ` +
      `params+moments (${outRoles.length} tensors): ${diffElems} of ${total} floats differ, ` +
      `max |diff| ${maxAbs}; plan: ${replay.dispatches} dispatches, ${replay.passes} passes, ` +
      `${replay.hoistedUploads} hoisted + ${replay.inPlaceUploads} in-place uploads, ` +
      `${replay.privateBuffers} private buffers ${(replay.privateBytes / 1e6).toFixed(2)} MB; ` +
      `first run ${firstMs.toFixed(2)} ms`,
  );
  const host: number[] = [],
    w: number[] = [],
    e: number[] = [],
    sub: number[] = [],
    gpu: number[] = [];
  for (let r = 0; r < f.reps + 1; r++) {
    snap.restore();
    await device.queue.onSubmittedWorkDone();
    const tm = replay.run(d.trace);
    const g0 = performance.now();
    await device.queue.onSubmittedWorkDone();
    if (r === 0) continue;
    gpu.push(performance.now() - g0);
    host.push(tm.writeMs + tm.encodeMs + tm.submitMs);
    w.push(tm.writeMs);
    e.push(tm.encodeMs);
    sub.push(tm.submitMs);
  }
  const again = (await readOut()).loss;
  console.log(
    `replay host ms (median of ${f.reps}): ${median(host).toFixed(2)} = writes ${
      median(w).toFixed(2)
    } + encode ${median(e).toFixed(2)} + submit ${median(sub).toFixed(2)}; ` +
      `${(median(host) * 1000 / replay.dispatches).toFixed(2)} us/dispatch; GPU wait ${
        median(gpu).toFixed(1)
      } ms; loss after the timed replays ${again}`,
  );
  const tfjsMs = median(issueMs);
  console.log(`tfjs issue ms (median of captured steps) ${tfjsMs.toFixed(1)}`);
  replay.destroy();
  snap.destroy();
  tf.dispose([...d.outs, ...first.outs]);
  s.dispose();
  console.log(
    `RESULT webgpu_replay_step_${f.preset} host_ms=${median(host).toFixed(3)} speedup=${
      (tfjsMs / median(host)).toFixed(2)
    }`,
  );
}

if (import.meta.main) await runMain(main);
