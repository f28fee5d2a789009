/**
 * One rank of the compiled engine's data-parallel checks: the tiny UNet's training step compiled
 * for this rank's share of a global batch (lib/compiled), trained with `compiledTrainLoop` over a
 * fixed synthetic set. Each sample's latents, timestep, context, target and weight come from its
 * own seeded stream, so the global batch is the same data whatever the world size: 2 ranks x B
 * must train as 1 rank x 2B. The loop's own stream adds a per-rank perturbation when `noise` > 0
 * (what a resume must restore on every rank).
 *
 * Run alone or under `mpirun` (`tests/helpers/compiled_dp_worker.ts`), or in-process with
 * `localWorld` ranks (`tests/compiled_data_parallel.test.ts`).
 *
 * @example
 * ```ts
 * import { localWorld } from "../../lib/data_parallel/local_world.ts";
 * import { trainCompiledRank } from "./compiled_dp.ts";
 *
 * // Two in-process ranks, 4 steps of a global batch of 4 (needs a WebGPU adapter).
 * async function twoRanks(dir: string) {
 *   const comms = localWorld(2);
 *   return await Promise.all(comms.map((comm) =>
 *     trainCompiledRank({ comm, runDir: `${dir}/r${comm.rank}`, steps: 4, globalBatch: 4 })
 *   ));
 * }
 * ```
 * @module
 */
import type { Communicator } from "../../lib/data_parallel/comm.ts";
import { initUnetArrays, UNET_PRESETS } from "../../lib/models/unet.ts";
import { compileTrainStep } from "../../lib/compiled/train_step.ts";
import { compiledTrainLoop } from "../../lib/compiled/train_loop.ts";
import { unetTrainingGraph } from "../../lib/compiled/training_graph.ts";
import { warmupCosine } from "../../lib/train/lr.ts";
import { Rng, STREAM } from "../../lib/util/rng.ts";

/** Latent height and width, text tokens, samples in the set. */
const H = 8, W = 8, TOKENS = 5, N = 16;

/** Options of {@link trainCompiledRank}. */
export interface CompiledRankOptions {
  comm: Communicator;
  runDir: string;
  steps: number;
  globalBatch: number;
  /** Per-rank perturbation of the targets from the loop's stream (default 0: none). */
  noise?: number;
  resume?: boolean;
  checkpointEvery?: number;
  /** Called on every rank after each logged step; throwing stops the run (a kill). */
  onLog?: (step: number, loss: number) => void;
}

/** What a rank ends with. */
export interface CompiledRankResult {
  losses: number[];
  params: Record<string, Float32Array>;
  ema: Record<string, Float32Array>;
}

/** Train one rank (see the module doc); the weights come back read from the GPU. */
export async function trainCompiledRank(o: CompiledRankOptions): Promise<CompiledRankResult> {
  const cfg = UNET_PRESETS.tiny, size = o.comm.size, per = o.globalBatch / size;
  const px = H * W * cfg.inChannels, cx = TOKENS * cfg.contextDim;
  const sample = (i: number) => {
    const r = Rng.stream(99, [i]);
    return {
      x: r.normal(px),
      t: r.uniform() * 999,
      context: r.normal(cx),
      target: r.normal(H * W * cfg.outChannels),
      weight: 0.5 + r.uniform(),
    };
  };
  const set = Array.from({ length: N }, (_, i) => sample(i));
  const adapter = await navigator.gpu.requestAdapter();
  const device = await adapter!.requestDevice();
  const graph = unetTrainingGraph({ cfg, batch: per, height: H, width: W, tokens: TOKENS });
  const step = await compileTrainStep(graph, device, {
    // Adam's eps raised from 1e-8: with it, an element whose gradient cancels to near zero moves
    // by about +-lr whatever its size, so float32 rounding of the batch split alone moves such
    // weights apart (1.6e-4 relative after 2 steps of the tiny UNet); 1e-4 keeps the comparison
    // of 2 ranks with 1 at the precision of the gradients themselves.
    adamw: { weightDecay: 0.01, eps: 1e-4 },
    clipNorm: 1,
    ema: { decay: 0.999, warmup: true },
  });
  try {
    step.setParams(initUnetArrays(cfg, Rng.stream(5, [STREAM.init, 3])));
    const losses: number[] = [];
    const r = await compiledTrainLoop<number[], number>({
      runDir: o.runDir,
      comm: o.comm,
      step,
      // Rank r takes every size-th sample of the global batch, as lib/data's index batches.
      nextBatch: (pos) => ({
        batch: Array.from(
          { length: per },
          (_, k) => (pos * o.globalBatch + k * size + o.comm.rank) % N,
        ),
        position: pos + 1,
      }),
      inputs: (idx, rng) => {
        const s = idx.map((i) => set[i]);
        const cat = (f: (x: typeof s[0]) => Float32Array) => {
          const out = new Float32Array(s.length * f(s[0]).length);
          s.forEach((x, k) => out.set(f(x), k * f(x).length));
          return out;
        };
        const target = cat((x) => x.target);
        if (o.noise) {
          const e = rng.normal(target.length);
          for (let j = 0; j < target.length; j++) target[j] += o.noise * e[j];
        }
        return {
          x: cat((x) => x.x),
          t: Float32Array.from(s, (x) => x.t),
          context: cat((x) => x.context),
          target,
          weights: Float32Array.from(s, (x) => x.weight),
        };
      },
      initialPosition: 0,
      steps: o.steps,
      lr: warmupCosine({ baseLr: 2e-3, warmupSteps: 2, totalSteps: o.steps, minLr: 1e-4 }),
      checkpointEvery: o.checkpointEvery ?? 2,
      seed: 3,
      resume: o.resume ?? false,
      progress: false,
      onLog: (rec) => {
        losses.push(rec.loss!);
        o.onLog?.(rec.step, rec.loss!);
      },
    });
    return { losses, params: r.state.params, ema: r.state.ema! };
  } finally {
    step.destroy();
    device.destroy();
  }
}

/** max over tensors of max|a - b| / max|b|. */
export function worstWeightRel(
  a: Record<string, Float32Array>,
  b: Record<string, Float32Array>,
): number {
  let worst = 0;
  for (const [k, v] of Object.entries(b)) {
    let d = 0, m = 0;
    for (let i = 0; i < v.length; i++) {
      d = Math.max(d, Math.abs(a[k][i] - v[i]));
      m = Math.max(m, Math.abs(v[i]));
    }
    worst = Math.max(worst, m > 0 ? d / m : d);
  }
  return worst;
}
