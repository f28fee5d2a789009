/**
 * Where a `webgpu` training step goes: per-dispatch overhead, raw matmul and conv speed, the UNet
 * step by phase, two tfjs-webgpu flag variants and a kernel table (GPU time from timestamp queries
 * where the adapter has them). The peer is the same UNet step on the kit's `cpu-blas` backend in
 * the same process: is the GPU backend worth it on this machine?
 *
 * Usage (on a GPU VM; on lavapipe expect minutes):
 *   deno run -A bench/webgpu_probe.ts [--batch 32] [--reps 3] [--backend webgpu] [--peer cpu-blas]
 * Last line:
 *   RESULT webgpu_probe ms_per_step=<probed backend ms> speedup=<peer ms / probed ms>
 * (above 1: the probed backend is faster than the peer).
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { helpText, parseFlags, runMain } from "../lib/cli/args.ts";
import { initBackendAndConvGrad } from "../lib/train/init_backend.ts";
import { AdamW, computeGrads } from "../lib/train/optim.ts";
import { unetFixture } from "./unet_fixture.ts";

const SPEC = {
  batch: { type: "int", default: 32, min: 1, help: "UNet batch size" },
  reps: { type: "int", default: 3, min: 1, help: "timed repetitions (median reported)" },
  backend: { type: "string", default: "webgpu", help: "backend probed" },
  peer: { type: "string", default: "cpu-blas", help: "backend timed for the same UNet step" },
} as const;

const fmt = (x: number) => x.toFixed(3);
type Out = tf.Tensor | tf.Tensor[];

/** Median wall time of `f` until its outputs are read back (one untimed call first). */
async function timeIt(label: string, f: () => Out, reps: number): Promise<number> {
  const once = async () => {
    const t0 = performance.now();
    const r = f();
    const arr = Array.isArray(r) ? r : [r];
    await Promise.all(arr.map((t) => t.data()));
    const ms = performance.now() - t0;
    tf.dispose(arr);
    return ms;
  };
  await once();
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) ms.push(await once());
  ms.sort((a, b) => a - b);
  const med = ms[ms.length >> 1];
  console.log(`${label}: ${fmt(med)} ms (min ${fmt(ms[0])})`);
  return med;
}

/** The UNet step of bench/train_step.ts: forward, forward+backward and full AdamW step. */
function unetStep(batch: number) {
  const u = unetFixture(batch, 0);
  const opt = new AdamW(u.params, { weightDecay: 0.01 });
  return {
    forward: () => u.loss(),
    backward: (): Out => {
      const { value, grads } = computeGrads(u.params, u.loss);
      return [value, ...Object.values(grads)];
    },
    step: (): Out => {
      const { value, grads } = computeGrads(u.params, u.loss);
      opt.step(grads, 1e-4);
      tf.dispose(Object.values(grads));
      return value;
    },
    dispose: () => {
      opt.dispose();
      u.dispose();
    },
  };
}

async function probeDispatch(reps: number): Promise<void> {
  for (const n of [1024, 1 << 20]) {
    const k = 1000;
    const ms = await timeIt(`chain of ${k} dependent adds on ${n} floats`, () => {
      let x = tf.ones([n]);
      for (let i = 0; i < k; i++) {
        const y = tf.add(x, 1);
        x.dispose();
        x = y;
      }
      return x;
    }, Math.min(reps, 2));
    console.log(`  -> ${fmt((ms / k) * 1000)} us per kernel`);
  }
}

async function probeKernels(batch: number, reps: number): Promise<void> {
  const a = tf.randomNormal([2048, 2048]), b = tf.randomNormal([2048, 2048]);
  const ms = await timeIt("matmul 2048^3, 10 in a row", () => {
    let r = tf.matMul(a, b);
    for (let i = 0; i < 9; i++) {
      const s = tf.matMul(a, b);
      r.dispose();
      r = s;
    }
    return r;
  }, Math.min(reps, 2));
  console.log(`  -> ${fmt((10 * 2 * 2048 ** 3) / (ms / 1000) / 1e12)} TFLOP/s`);
  tf.dispose([a, b]);
  for (const c of [32, 96]) {
    const x = tf.randomNormal([batch, 8, 8, c]) as tf.Tensor4D;
    const w = tf.randomNormal([3, 3, c, c]) as tf.Tensor4D;
    await timeIt(`conv3x3 forward [${batch},8,8,${c}]`, () => tf.conv2d(x, w, 1, "same"), reps);
    const g = tf.grads((xx: tf.Tensor, ww: tf.Tensor) =>
      tf.sum(tf.conv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, 1, "same"))
    );
    await timeIt(`conv3x3 forward+backward [${batch},8,8,${c}]`, () => g([x, w]), reps);
    tf.dispose([x, w]);
  }
}

/** GPU (or wall) time per kernel name over one step, from tf.profile. */
async function kernelTable(step: () => Out): Promise<void> {
  const prof = await tf.profile(async () => {
    const r = step();
    const arr = Array.isArray(r) ? r : [r];
    await Promise.all(arr.map((t) => t.data()));
    tf.dispose(arr);
  });
  const by = new Map<string, { n: number; ms: number }>();
  for (const k of prof.kernels) {
    const e = by.get(k.name) ?? { n: 0, ms: 0 };
    e.n++;
    const ms = await (k as unknown as { kernelTimeMs: unknown }).kernelTimeMs;
    if (typeof ms === "number") e.ms += ms;
    by.set(k.name, e);
  }
  const rows = [...by.entries()].sort((p, q) => q[1].ms - p[1].ms || q[1].n - p[1].n);
  const total = rows.reduce((s, [, e]) => s + e.ms, 0);
  console.log(`kernels in one step: ${prof.kernels.length}, summed kernel time ${fmt(total)} ms`);
  for (const [name, e] of rows.slice(0, 12)) {
    console.log(`  ${name}: ${e.n} calls, ${fmt(e.ms)} ms`);
  }
}

async function main(): Promise<void> {
  const f = parseFlags(Deno.args, SPEC, "webgpu_probe");
  if (f.help) {
    console.log(helpText("deno run -A bench/webgpu_probe.ts", "where a webgpu step goes", SPEC));
    return;
  }
  // The peer runs before and after the probe; its faster median is the reference, so a cold
  // first run (JIT, buffer pools) does not flatter the probed backend.
  const timePeer = async (when: string) => {
    const peerInfo = await initBackendAndConvGrad(f.peer, { quiet: true });
    const peer = unetStep(f.batch);
    const label = `peer ${peerInfo.name} (${when}): UNet step b${f.batch}`;
    const ms = await timeIt(label, peer.step, f.reps);
    peer.dispose();
    return ms;
  };
  const peerBefore = await timePeer("before");

  const info = await initBackendAndConvGrad(f.backend, { quiet: true });
  console.log(`probed: ${info.name} (${info.details})`);
  await probeDispatch(f.reps);
  await probeKernels(f.batch, f.reps);
  const u = unetStep(f.batch);
  await timeIt(`UNet forward b${f.batch}`, u.forward, f.reps);
  await timeIt(`UNet forward+backward b${f.batch}`, u.backward, f.reps);
  const ms = await timeIt(`UNet step b${f.batch}`, u.step, f.reps);
  if (info.tfBackend === "webgpu") {
    const variants: [string, string, number | boolean][] = [
      ["WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE", "WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE", 200],
      ["WEBGPU_CPU_FORWARD=false", "WEBGPU_CPU_FORWARD", false],
    ];
    for (const [label, flag, value] of variants) {
      const before = tf.env().get(flag);
      tf.env().set(flag, value);
      await timeIt(`UNet step b${f.batch} with ${label}=${value}`, u.step, f.reps);
      tf.env().set(flag, before);
    }
  }
  await kernelTable(u.step);
  u.dispose();
  const peerMs = Math.min(peerBefore, await timePeer("after"));
  console.log(
    `RESULT webgpu_probe ms_per_step=${ms.toFixed(1)} speedup=${(peerMs / ms).toFixed(3)}`,
  );
}

if (import.meta.main) await runMain(main);
