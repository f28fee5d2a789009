/**
 * Host cost of the compiled WebGPU training step in a data-parallel group: the default preset's
 * UNet (8x8x4 latents, 24 tokens) at a global batch split over `--ranks` ranks, each rank's step
 * run as data-parallel training runs it (forward + backward in one submit, the packed gradients
 * and loss read back with one map, `allreduceMean` over the group, one write back, then clipping,
 * AdamW and the EMA in a second submit). With `--ranks 1` the single-submit step is measured.
 *
 * Ranks run in this process (`localWorld`, one WebGPU device each) unless the script is started
 * by `mpirun`, where each process is a rank of `MPI_COMM_WORLD`.
 *
 * Host ms per step and rank: everything but the time inside the submits, the waits for the GPU
 * and, in the allreduce, the wait for the other ranks (a step's allreduce cost is taken as the
 * fastest rank's call: the last to arrive waits for nobody).
 *
 * Usage:
 *   XDG_RUNTIME_DIR=/tmp deno run -A bench/compiled_dp_step.ts [--ranks 2] [--global-batch 2]
 *     [--steps 5] [--warmup 2]
 *   mpirun -np 2 deno run -A bench/compiled_dp_step.ts
 *
 *   RESULT compiled_dp_step ranks=<n> host_ms_per_step=<median over steps of the slowest rank>
 * @module
 */
import { helpText, parseFlags, runMain, UsageError } from "../lib/cli/args.ts";
import { initBackend } from "../lib/backend/mod.ts";
import { compileTrainStep, unetTrainingGraph } from "../lib/compiled/mod.ts";
import { initUnetArrays, type UnetConfig } from "../lib/models/mod.ts";
import { presetUnetConfig, RECIPE_PRESETS } from "../lib/recipe/mod.ts";
import {
  allGather,
  allreduceMean,
  type Communicator,
  launchedByMpi,
  localWorld,
  worldCommunicator,
} from "../lib/data_parallel/mod.ts";
import { Rng, STREAM } from "../lib/util/rng.ts";
import { BENCH_TOKENS } from "./unet_fixture.ts";

const SPEC = {
  ranks: { type: "int", default: 2, min: 1, help: "in-process ranks (ignored under mpirun)" },
  "global-batch": { type: "int", default: 2, min: 1, help: "samples per step over all ranks" },
  steps: { type: "int", default: 5, min: 1, help: "timed steps (median)" },
  warmup: { type: "int", default: 2, min: 1, help: "untimed steps first" },
} as const;

const DEFAULT_UNET: UnetConfig = presetUnetConfig(RECIPE_PRESETS.default);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (x: number) => x.toFixed(2);

/** One rank's timed steps: per step its host ms (before the allreduce wait is taken out). */
async function rank(
  comm: Communicator,
  f: { "global-batch": number; steps: number; warmup: number },
  weights: Record<string, Float32Array>,
) {
  const cfg = DEFAULT_UNET, [h, w, tokens] = [8, 8, BENCH_TOKENS];
  const b = f["global-batch"] / comm.size;
  const adapter = await navigator.gpu.requestAdapter();
  const device = await adapter!.requestDevice();
  const graph = unetTrainingGraph({ cfg, batch: b, height: h, width: w, tokens });
  const step = await compileTrainStep(graph, device, {
    clipNorm: 1,
    ema: { decay: 0.9999, warmup: true },
  });
  step.setParams(weights);
  const rng = Rng.stream(0, [comm.rank, STREAM.noise]);
  const data = () => ({
    x: rng.normal(b * h * w * cfg.inChannels),
    t: Float32Array.from({ length: b }, () => rng.uniform() * 999),
    context: rng.normal(b * tokens * cfg.contextDim),
    target: rng.normal(b * h * w * cfg.outChannels),
    weights: new Float32Array(b).fill(1),
  });
  const opts = comm.size > 1 ? { reduce: (flat: Float32Array) => allreduceMean(comm, flat) } : {};
  for (let i = 0; i < f.warmup; i++) await step.step(data(), 1e-4, opts);
  const rows: { total: number; host: number; reduce: number; read: number; write: number }[] = [];
  for (let i = 0; i < f.steps; i++) {
    const d = data();
    const t = performance.now();
    await step.step(d, 1e-4, opts);
    const total = performance.now() - t, s = step.lastTimes;
    rows.push({
      total,
      host: total - s.submitMs - s.waitMs - s.reduceMs,
      reduce: s.reduceMs,
      read: s.readMs,
      write: s.writeMs,
    });
  }
  const elements = step.exe.packed!.elements;
  step.destroy();
  device.destroy();
  return { rows, elements, dispatches: step.exe.stats.dispatches };
}

async function main(): Promise<void> {
  const f = parseFlags(Deno.args, SPEC, "bench/compiled_dp_step.ts");
  if (f.help) {
    console.log(helpText("bench/compiled_dp_step.ts", "compiled step host cost per rank", SPEC));
    return;
  }
  if (!navigator.gpu || !(await navigator.gpu.requestAdapter().catch(() => null))) {
    console.log("no WebGPU adapter: nothing to measure (see lib/backend WEBGPU_HELP)");
    console.log(`RESULT compiled_dp_step ranks=${f.ranks} host_ms_per_step=nan`);
    return;
  }
  await initBackend("cpu-blas", { quiet: true });
  const comms = launchedByMpi() ? [worldCommunicator()] : localWorld(f.ranks);
  const size = comms[0].size;
  if (f["global-batch"] % size !== 0) {
    throw new UsageError(`--global-batch ${f["global-batch"]} does not split over ${size} ranks`);
  }
  const weights = initUnetArrays(DEFAULT_UNET, Rng.stream(0, [0, STREAM.init]));
  const results = await Promise.all(comms.map((c) => rank(c, f, weights)));
  // Every rank's rows, gathered (in-process ranks gather too, through their world).
  const gathered = await Promise.all(
    comms.map((c, i) =>
      allGather(c, results[i].rows.flatMap((r) => [r.total, r.host, r.reduce, r.read, r.write]))
    ),
  );
  if (comms[0].rank !== 0) return await comms[0].close();
  const byRank = gathered[0].map((flat) =>
    Array.from({ length: f.steps }, (_, i) => flat.slice(5 * i, 5 * i + 5))
  );
  // A step's allreduce cost: the fastest rank's call; each rank's host ms adds it back.
  const reduceCost = Array.from(
    { length: f.steps },
    (_, i) => Math.min(...byRank.map((r) => r[i][2])),
  );
  const hostPerStep = Array.from(
    { length: f.steps },
    (_, i) => Math.max(...byRank.map((r) => r[i][1] + (size > 1 ? reduceCost[i] : 0))),
  );
  const col = (k: number) => median(byRank.flatMap((r) => r.map((x) => x[k])));
  const { elements, dispatches } = results[0];
  console.log(
    `compiled step, default UNet, global batch ${f["global-batch"]} over ${size} rank(s) ` +
      `(${comms[0].kind}), ${dispatches} dispatches per rank, ${
        size > 1 ? (4 * (elements + 1) / 2 ** 20).toFixed(1) : 0
      } MiB allreduced per step`,
  );
  console.log(
    `  per step (median of ${f.steps}): host ${fmt(median(hostPerStep))} ms (slowest rank; ` +
      `readback map + copy ${fmt(col(3))}, allreduce ${fmt(median(reduceCost))}, writes ${
        fmt(col(4))
      }); total ${fmt(col(0))} ms; host per step ${hostPerStep.map(fmt).join(", ")}`,
  );
  console.log(
    `RESULT compiled_dp_step ranks=${size} host_ms_per_step=${median(hostPerStep).toFixed(2)}`,
  );
  for (const c of comms) await c.close();
}

if (import.meta.main) await runMain(main);
