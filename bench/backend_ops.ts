/**
 * Time the two operations that dominate training on each backend:
 * a 3x3 conv 64->64 on 8x32x32 (forward + both gradients) and the three matmuls of a
 * [256,1024]x[1024,1024] linear layer (x@W, dy@W^T, x^T@dy).
 *
 * Usage: deno run -A bench/backend_ops.ts [--backends=cpu,wasm,cpu-js,webgpu] [--reps=5]
 *   [--threads=N] (OpenBLAS threads for cpu-blas; default: all cores)
 * Stock cpu-js runs one repetition of the conv (it takes tens of seconds).
 * Ends with `RESULT backend_ops conv_ms=<cpu ms> speedup=<cpu-js ms / cpu ms>`.
 */
import * as tf from "@tensorflow/tfjs-core";
import { availableBackends, type BackendName, initBackend } from "../lib/backend/mod.ts";
import { Rng } from "../lib/util/rng.ts";
import "../lib/nn/gradients.ts";

function arg(name: string, fallback: string): string {
  const hit = Deno.args.find((a) => a.startsWith(`--${name}=`));
  return hit ? hit.slice(name.length + 3) : fallback;
}

async function timeIt(reps: number, f: () => tf.Tensor[]): Promise<number> {
  const run = async () => {
    const t0 = performance.now();
    const outs = f();
    for (const o of outs) await o.data(); // webgpu is asynchronous: wait for the results
    const ms = performance.now() - t0;
    tf.dispose(outs);
    return ms;
  };
  await run(); // warm-up: kernel compilation, scratch buffers
  const times: number[] = [];
  for (let i = 0; i < reps; i++) times.push(await run());
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

const reps = Number(arg("reps", "5"));
const wanted = arg("backends", "cpu,wasm,webgpu,cpu-js").split(",") as BackendName[];
const available = await availableBackends();
const rng = Rng.stream(7, [0]);
const xv = rng.normal(8 * 32 * 32 * 64), wv = rng.normal(3 * 3 * 64 * 64).map((v) => v * 0.05);
const dyv = rng.normal(8 * 32 * 32 * 64);
const av = rng.normal(256 * 1024), bv = rng.normal(1024 * 1024).map((v) => v * 0.03);
const gv = rng.normal(256 * 1024);

const results: Record<string, { conv: number; mm: number[] }> = {};
for (const name of wanted) {
  if (!available.includes(name)) {
    console.log(`${name}: unavailable, skipped`);
    continue;
  }
  const threads = arg("threads", "") ? Number(arg("threads", "")) : undefined;
  const info = await initBackend(name, { quiet: true, threads });
  const x = tf.tensor4d(xv, [8, 32, 32, 64]), w = tf.tensor4d(wv, [3, 3, 64, 64]);
  const dy = tf.tensor4d(dyv, [8, 32, 32, 64]);
  const a = tf.tensor2d(av, [256, 1024]), b = tf.tensor2d(bv, [1024, 1024]);
  const g = tf.tensor2d(gv, [256, 1024]);
  const convGrad = tf.grads((xx: tf.Tensor, ww: tf.Tensor) =>
    tf.sum(tf.mul(tf.conv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, 1, "same"), dy))
  );
  const conv = await timeIt(name === "cpu-js" ? 1 : reps, () => convGrad([x, w]));
  const mm = [
    await timeIt(reps, () => [tf.matMul(a, b)]),
    await timeIt(reps, () => [tf.matMul(g, b, false, true)]),
    await timeIt(reps, () => [tf.matMul(a, g, true, false)]),
  ];
  results[name] = { conv, mm };
  console.log(
    `${name.padEnd(7)} (${info.tfBackend}) conv3x3 64->64 8x32x32 fwd+bwd ${
      conv.toFixed(1)
    } ms | ` +
      `matmul x@W ${mm[0].toFixed(1)} ms, dy@W^T ${mm[1].toFixed(1)} ms, x^T@dy ${
        mm[2].toFixed(1)
      } ms`,
  );
  tf.dispose([x, w, dy, a, b, g]);
}

const cpu = results["cpu-blas"], js = results["cpu-js"];
for (const [name, r] of Object.entries(results)) {
  if (!js || name === "cpu-js") continue;
  const mmRatio = js.mm.reduce((p, v) => p + v) / r.mm.reduce((p, v) => p + v);
  console.log(
    `${name}: ${(js.conv / r.conv).toFixed(1)}x faster than cpu-js on the conv, ` +
      `${mmRatio.toFixed(1)}x on the matmuls`,
  );
}
if (cpu) {
  const speedup = js ? (js.conv / cpu.conv).toFixed(1) : "nan";
  console.log(`RESULT backend_ops conv_ms=${cpu.conv.toFixed(1)} speedup=${speedup}`);
}
