/**
 * Host cost of the kit's compiled training step on WebGPU (lib/compiled: the UNet step as one IR
 * graph, run by `compileGraph`'s executor): the default preset's UNet at batch 1, 8x8x4 latents,
 * 24 tokens (bench/gpu.ts part 3's setting; `--latent 32 --batch N` for the study's latents, where
 * the kernels rather than the host dominate). `--step full` (default): the whole training step
 * as the UNet stage runs it, fused (`fuseGraph`), then global-norm clipping, AdamW and the EMA on
 * packed GPU buffers (`compileTrainStep`); `--step grads`: the unfused forward, loss and backward
 * only (every parameter gradient, no optimizer).
 *
 * Per step: data inputs written (x, t, context, target, weights; parameters stay on the GPU) and,
 * with AdamW, four per-step floats; one command buffer with one compute pass, one submit, the
 * loss read back. Host ms per step is
 * what bench/gpu.ts calls host cost: the time until submit returns, less the time inside the
 * submit (on a software adapter the submit runs the kernels), plus one empty submit's cost.
 * WebGPU calls are counted (`countWebgpuCalls`) on a separate step, since the counting wrappers
 * cost time themselves.
 *
 * The peer is tfjs-webgpu's host cost of the same step (with AdamW): `--tfjs-host-ms` (default:
 * the 300 ms, the low end of docs/webgpu_compiled_step.md's 300-420 ms, measured on the same
 * kind of machine), or measured now with `--measure-tfjs` (runs `bench/gpu.ts --host-only`).
 *
 * Usage:
 *   deno run -A bench/compiled_step.ts [--preset default|tiny] [--step full|grads] [--steps 5]
 *     [--warmup 2] [--precision f32|mixed] [--latent 8|16|32] [--batch 1]
 *     [--tfjs-host-ms 300] [--measure-tfjs] [--seed 0]
 * `--precision mixed`: float16 activations and heavy ops with dynamic loss scaling
 * (lib/compiled/mixed_precision.ts; the adapter must have `shader-f16`); the stats line then
 * also gives the pooled (activation) bytes and the values stored as float16.
 *
 * Output: a line per measurement and
 *   RESULT compiled_step host_ms_per_step=<kit> speedup=<tfjs-webgpu host ms / kit host ms>
 * @module
 */
import { fileURLToPath } from "node:url";
import { helpText, parseFlags, runMain, UsageError } from "../lib/cli/args.ts";
import { countWebgpuCalls, initBackend } from "../lib/backend/mod.ts";
import {
  compileGraph,
  compileTrainStep,
  fuseGraph,
  NO_KERNEL_OPS,
  type Precision,
  requestStepDevice,
  unetTrainingGraph,
} from "../lib/compiled/mod.ts";
import {
  countParamsForConfig,
  initUnetArrays,
  UNET_PRESETS,
  type UnetConfig,
} from "../lib/models/mod.ts";
import { presetUnetConfig, RECIPE_PRESETS } from "../lib/recipe/mod.ts";
import { Rng, STREAM } from "../lib/util/rng.ts";
import { BENCH_TOKENS } from "./unet_fixture.ts";

const SPEC = {
  preset: { type: "string", default: "default", help: "UNet: default (the recipe's) or tiny" },
  step: {
    type: "string",
    default: "full",
    help: "full (fused, clipping, AdamW, EMA) or grads (unfused forward + backward only)",
  },
  steps: { type: "int", default: 5, min: 1, help: "timed steps (median)" },
  warmup: { type: "int", default: 2, min: 1, help: "untimed steps first" },
  "tfjs-host-ms": {
    type: "float",
    default: 300,
    min: 0,
    help: "tfjs-webgpu host ms per step of the peer (docs: 300-420 on lavapipe)",
  },
  "measure-tfjs": {
    type: "bool",
    default: false,
    help: "measure the peer now (bench/gpu.ts --host-only, a minute or two on lavapipe)",
  },
  seed: { type: "int", default: 0, min: 0, help: "seed of weights and data" },
  latent: {
    type: "int",
    default: 8,
    min: 8,
    help:
      "latent side: 8 (host cost: compute negligible) or 32 (the study's 256 px; kernels dominate)",
  },
  batch: { type: "int", default: 1, min: 1, help: "batch size" },
  precision: {
    type: "string",
    default: "f32",
    help: "f32, or mixed (float16 activations and heavy ops; needs shader-f16)",
  },
} as const;

/** The default preset's UNet, with the channels and context width its frozen parts give it. */
const DEFAULT_UNET: UnetConfig = presetUnetConfig(RECIPE_PRESETS.default);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const fmt = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms >= 1 ? ms.toFixed(2) : ms.toFixed(3));

/** tfjs-webgpu's host ms per step from bench/gpu.ts's host-cost part, or null. */
async function measureTfjs(seed: number): Promise<number | null> {
  const gpu = fileURLToPath(new URL("./gpu.ts", import.meta.url));
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", gpu, "--host-only", "--host-steps", "3", "--seed", `${seed}`],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  // bench/gpu.ts's host-cost lines: its header, then indented details.
  for (const line of text.split("\n")) {
    if (/^(host cost| {2}(per step|ms to issue|host ms))/.test(line)) {
      console.log(`  tfjs: ${line.trim()}`);
    }
  }
  const m = text.match(/RESULT webgpu_host_cost host_ms_per_step=([0-9.]+)/);
  return m ? Number(m[1]) : null;
}

async function main(): Promise<void> {
  const f = parseFlags(Deno.args, SPEC, "bench/compiled_step.ts");
  if (f.help) {
    console.log(helpText("bench/compiled_step.ts", "host cost of the compiled WebGPU step", SPEC));
    return;
  }
  if (f.preset !== "default" && f.preset !== "tiny") {
    throw new UsageError(`bench/compiled_step.ts: --preset must be default or tiny`);
  }
  if (f.step !== "full" && f.step !== "grads") {
    throw new UsageError(`bench/compiled_step.ts: --step must be full or grads`);
  }
  if (f.precision !== "f32" && f.precision !== "mixed") {
    throw new UsageError(`bench/compiled_step.ts: --precision must be f32 or mixed`);
  }
  const precision = f.precision as Precision;
  const full = f.step === "full";
  const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
  if (!adapter) {
    console.log("no WebGPU adapter: nothing to measure (see lib/backend WEBGPU_HELP)");
    console.log("RESULT compiled_step host_ms_per_step=nan speedup=nan");
    return;
  }
  const device = await requestStepDevice(adapter, precision);
  const info = adapter.info;
  // Weights are drawn with tfjs on the CPU, then handed over as arrays.
  await initBackend("cpu-blas", { quiet: true });
  const cfg = f.preset === "tiny" ? UNET_PRESETS.tiny : DEFAULT_UNET;
  const [b, h, w, tokens] = [f.batch, f.latent, f.latent, BENCH_TOKENS];
  let t0 = performance.now();
  const step = unetTrainingGraph({ cfg, batch: b, height: h, width: w, tokens });
  const graphMs = performance.now() - t0;
  t0 = performance.now();
  const train = full
    ? await compileTrainStep(step, device, {
      clipNorm: 1,
      ema: { decay: 0.9999, warmup: true },
      precision,
    })
    : undefined;
  const exe = train ? train.exe : await compileGraph(step.graph, device, { precision });
  const compileMs = performance.now() - t0;
  const graph = full ? fuseGraph(step.graph) : step.graph;
  const kernels = graph.nodes.filter((n) => !NO_KERNEL_OPS.has(n.op)).length;
  console.log(
    `compiled step on "${info.description || info.device} (${info.vendor})"${
      info.isFallbackAdapter ? " (fallback)" : ""
    }, cores ${navigator.hardwareConcurrency}: ${f.preset} UNet (${
      countParamsForConfig(cfg)
    } params) at batch ${b}, ${h}x${w} latents, ${tokens} tokens; ${
      full
        ? "full step: fused forward + loss + backward, clipping, AdamW and EMA on the GPU"
        : "forward + loss + backward (every gradient, unfused), no optimizer"
    }`,
  );
  const st = exe.stats;
  console.log(
    `  graph ${graph.nodes.length} nodes (${kernels} kernels) built in ${fmt(graphMs)} ms; ` +
      `compiled in ${fmt(compileMs)} ms: ${st.dispatches} dispatches, ${st.pipelines} ` +
      `pipelines, ${st.bindGroups} bind groups, ${st.buffers} storage buffers ` +
      `(${st.pooledBuffers} pooled for ${st.pooledValues} intermediates), ${
        (st.storageBytes / 2 ** 20).toFixed(1)
      } MiB; precision ${precision}: pooled ${
        (st.pooledBytes / 2 ** 20).toFixed(2)
      } MiB, ${st.halfValues} values float16`,
  );

  const weights = initUnetArrays(cfg, Rng.stream(f.seed, [0, STREAM.init]));
  const rng = Rng.stream(f.seed, [0, STREAM.noise]);
  const data = () => ({
    x: rng.normal(b * h * w * cfg.inChannels),
    t: Float32Array.from({ length: b }, () => rng.uniform() * 999),
    context: rng.normal(b * tokens * cfg.contextDim),
    target: rng.normal(b * h * w * cfg.outChannels),
    weights: new Float32Array(b).fill(1),
  });
  // One step: the full one at a fixed lr (the schedule's value is a host number per step).
  const runStep = async (d: Record<string, Float32Array>) =>
    train ? await train.step(d, 1e-4) : (await exe.run(d, ["loss"])).loss[0];
  t0 = performance.now();
  if (train) {
    train.setParams(weights);
    await runStep(data());
  } else await exe.run({ ...weights, ...data() }, ["loss"]);
  const firstMs = performance.now() - t0;
  for (let i = 1; i < f.warmup; i++) await runStep(data());

  // What a submit costs the host with no work in it (bench/gpu.ts's estimate of a submit's share).
  const empty: number[] = [];
  for (let i = 0; i < 41; i++) {
    const t = performance.now();
    device.queue.submit([device.createCommandEncoder().finish()]);
    empty.push(performance.now() - t);
  }
  await device.queue.onSubmittedWorkDone();
  const emptyMs = median(empty);

  const rows: { host: number; write: number; encode: number; submit: number; total: number }[] = [];
  const losses: number[] = [];
  for (let i = 0; i < f.steps; i++) {
    const d = data();
    const t = performance.now();
    losses.push(await runStep(d));
    const total = performance.now() - t;
    const r = exe.lastTimes;
    rows.push({
      // Everything but the submit's inside and the wait for the loss (the step's scalars write
      // and bookkeeping included), plus an empty submit's cost.
      host: total - r.submitMs - r.readMs + emptyMs,
      write: r.writeMs,
      encode: r.encodeMs,
      submit: r.submitMs,
      total,
    });
  }
  const { counts } = await countWebgpuCalls(() => runStep(data()));
  const med = (k: keyof typeof rows[0]) => median(rows.map((r) => r[k]));
  const hostMs = med("host");
  console.log(
    `  per step (median of ${f.steps}): host ${fmt(hostMs)} ms (writes ${fmt(med("write"))} + ` +
      `encode ${fmt(med("encode"))} + empty submit ${fmt(emptyMs)} + bookkeeping); inside submit ${
        fmt(med("submit"))
      } ms (a software driver may run kernels there); total to the loss on the host ${
        fmt(med("total"))
      } ms; host per dispatch ${(hostMs * 1000 / st.dispatches).toFixed(2)} us (per step: ${
        rows.map((r) => fmt(r.host)).join(", ")
      }); first run (all inputs, cold) ${fmt(firstMs)} ms; losses ${
        losses.map((l) => l.toFixed(4)).join(", ")
      }`,
  );
  console.log(
    `  WebGPU calls of one step: ${counts.dispatches} dispatches, ${counts.submits} submit, ` +
      `${counts.computePasses} compute pass, ${counts.bufferWrites} buffer writes, ` +
      `${counts.bufferCopies} copies, ${counts.mapReads} readback; created: ${counts.pipelines} ` +
      `pipelines, ${counts.bindGroups} bind groups, ${counts.buffers} buffers`,
  );
  let peer: number | null = f["tfjs-host-ms"];
  let peerWhat = `${fmt(peer)} ms (--tfjs-host-ms; docs/webgpu_compiled_step.md, default UNet: ` +
    `3,194 dispatches, 213 submits, 300-420 ms host, with AdamW)`;
  if (f["measure-tfjs"]) {
    peer = await measureTfjs(f.seed);
    peerWhat = peer === null ? "measurement failed" : `${fmt(peer)} ms (bench/gpu.ts, now)`;
  }
  console.log(`  peer tfjs-webgpu host ms per step: ${peerWhat}`);
  if (train) train.destroy();
  else exe.destroy();
  device.destroy();
  const speedup = peer !== null && hostMs > 0 ? (peer / hostMs).toFixed(1) : "nan";
  console.log(`RESULT compiled_step host_ms_per_step=${hostMs.toFixed(2)} speedup=${speedup}`);
}

if (import.meta.main) await runMain(main);
