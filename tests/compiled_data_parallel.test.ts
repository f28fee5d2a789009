/**
 * Data-parallel training with the compiled WebGPU step (`compiledTrainLoop` with a communicator):
 * two in-process ranks (`localWorld`) of the tiny UNet at a global batch of 4 train as one rank at
 * batch 4 (losses and final weights within 1e-5 relative), only rank 0 writes checkpoints and
 * metrics (with both ranks' RNG states), a two-rank run killed after a checkpoint resumes to
 * exactly the uninterrupted losses and weights, and the same under a real `mpirun -np 2` (skipped
 * without mpirun). Skipped, with the reason printed, without a WebGPU adapter.
 */
import assert from "node:assert/strict";
import "@tensorflow/tfjs-backend-cpu";
import * as tf from "@tensorflow/tfjs-core";
import { findMpirun, localWorld, mpiCommand } from "../lib/data_parallel/mod.ts";
import { readMetrics } from "../lib/train/mod.ts";
import {
  type CompiledRankResult,
  trainCompiledRank,
  worstWeightRel,
} from "./helpers/compiled_dp.ts";
import { withTempDir } from "./helpers/temp_dir.ts";
import { webgpuForTests } from "./helpers/webgpu.ts";

await tf.setBackend("cpu");
const { adapter } = await webgpuForTests("compiled_data_parallel");
const mpirun = await findMpirun();
if (adapter && !mpirun) console.log("compiled_data_parallel: mpirun check skipped, no mpirun");
const here = new URL(".", import.meta.url).pathname;
const STEPS = 4, BATCH = 4;

/** All ranks of an in-process world; `killAt` throws on every rank after that step's log. */
async function ranks(
  dir: string,
  o: { size: number; noise?: number; resume?: boolean; killAt?: number; steps?: number },
): Promise<CompiledRankResult[] | null> {
  const comms = localWorld(o.size);
  try {
    return await Promise.all(comms.map((comm) =>
      trainCompiledRank({
        comm,
        // Each rank its own folder: rank 0's is the run, the others must stay untouched.
        runDir: `${dir}/rank${comm.rank}`,
        steps: o.steps ?? STEPS,
        globalBatch: BATCH,
        noise: o.noise,
        resume: o.resume,
        onLog: (step) => {
          if (step === o.killAt) throw new Error("killed");
        },
      })
    ));
  } catch (e) {
    if ((e as Error).message !== "killed") throw e;
    return null;
  }
}

function worstRel(a: number[], b: number[]): number {
  assert.equal(a.length, b.length);
  return Math.max(...a.map((x, i) => Math.abs(x - b[i]) / Math.abs(b[i])));
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

Deno.test({
  name: "compiled step, 2 in-process ranks x 2 = 1 rank x 4 (1e-5); rank 0 writes; exact resume",
  ignore: !adapter,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir("xgen_compiled_dp_", async (dir) => {
      const t0 = performance.now();
      const [one] = (await ranks(`${dir}/one`, { size: 1 }))!;
      const t1 = performance.now();
      const two = (await ranks(`${dir}/two`, { size: 2 }))!;
      const t2 = performance.now();
      console.log(
        `1 rank x 4: ${((t1 - t0) / STEPS).toFixed(0)} ms/step, 2 ranks x 2 (one process): ` +
          `${((t2 - t1) / STEPS).toFixed(0)} ms/step, compile included`,
      );
      assert.equal(one.losses.length, STEPS);
      // Every rank reports the group's mean loss and ends with the same weights.
      assert.deepEqual(two[1].losses, two[0].losses);
      assert.equal(worstWeightRel(two[1].params, two[0].params), 0);
      const lossRel = worstRel(two[0].losses, one.losses);
      const wRel = worstWeightRel(two[0].params, one.params);
      const emaRel = worstWeightRel(two[0].ema, one.ema);
      console.log(
        `2 ranks vs 1: losses ${lossRel.toExponential(2)}, weights ${wRel.toExponential(2)}, EMA ${
          emaRel.toExponential(2)
        } (worst relative)`,
      );
      assert.ok(lossRel <= 1e-5, `losses differ by ${lossRel}`);
      assert.ok(wRel <= 1e-5, `weights differ by ${wRel}`);
      assert.ok(emaRel <= 1e-5, `EMA shadows differ by ${emaRel}`);
      // The weights moved: the comparison is not of two untouched inits.
      assert.ok(worstWeightRel(one.params, one.ema) > 1e-4);

      // Rank 0 alone writes checkpoints and metrics.
      assert.equal(await exists(`${dir}/two/rank1`), false);
      const names = [...Deno.readDirSync(`${dir}/two/rank0`)].map((e) => e.name).sort();
      assert.deepEqual(names, ["ckpt-00000002", "ckpt-00000004", "metrics.jsonl"]);
      const metrics = await readMetrics(`${dir}/two/rank0/metrics.jsonl`);
      assert.deepEqual(metrics.map((m) => m.loss), two[0].losses);

      // Per-rank noise from each rank's stream; killed after step 3 (checkpoint at 2), resumed.
      const full = (await ranks(`${dir}/full`, { size: 2, noise: 0.3 }))!;
      assert.equal(await ranks(`${dir}/cut`, { size: 2, noise: 0.3, killAt: 3 }), null);
      const state = JSON.parse(
        await Deno.readTextFile(`${dir}/cut/rank0/ckpt-00000002/state.json`),
      );
      assert.equal(state.rng.ranks.length, 2);
      assert.notDeepEqual(state.rng.ranks[0], state.rng.ranks[1]);
      const resumed = (await ranks(`${dir}/cut`, { size: 2, noise: 0.3, resume: true }))!;
      assert.deepEqual(resumed[0].losses, full[0].losses.slice(2));
      for (const [k, v] of Object.entries(full[0].params)) {
        assert.deepEqual(resumed[0].params[k], v, `${k} after the resume`);
        assert.deepEqual(resumed[1].params[k], v, `${k} on rank 1 after the resume`);
      }
      assert.equal(await exists(`${dir}/cut/rank1`), false);
    }),
});

Deno.test({
  name: "compiled step under mpirun -np 2 trains as one process at the same global batch",
  ignore: !adapter || !mpirun,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir("xgen_compiled_mpi_", async (dir) => {
      const worker = `${here}helpers/compiled_dp_worker.ts`;
      const argv = mpiCommand({
        procs: 2,
        script: worker,
        args: [`${dir}/two`, "3", `${dir}/two.json`, String(BATCH)],
        mpirun: mpirun!,
      });
      const out = await new Deno.Command(argv[0], { args: argv.slice(1), stderr: "piped" })
        .output();
      assert.ok(out.success, `mpirun failed: ${new TextDecoder().decode(out.stderr)}`);
      const two = JSON.parse(await Deno.readTextFile(`${dir}/two.json`));
      assert.equal(two.size, 2);
      const [one] = (await ranks(`${dir}/one`, { size: 1, steps: 3 }))!;
      const lossRel = worstRel(two.losses, one.losses);
      const params = Object.fromEntries(
        Object.entries(two.params as Record<string, number[]>).map((
          [k, v],
        ) => [k, Float32Array.from(v)]),
      );
      const wRel = worstWeightRel(params, one.params);
      console.log(
        `mpirun -np 2 vs 1 rank: losses ${lossRel.toExponential(2)}, weights ${
          wRel.toExponential(2)
        }`,
      );
      assert.ok(lossRel <= 1e-5, `losses differ by ${lossRel}`);
      assert.ok(wRel <= 1e-5, `weights differ by ${wRel}`);
    }),
});
