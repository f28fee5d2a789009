/**
 * The `webgpu` backend's scorecard, one short script that fits in a few minutes of GPU time:
 *
 * 1. train step of the default UNet (the `default` preset's: `UNET_PRESETS.small` with
 *    cross-attention at 8x8 and 4x4; 8x8x4 latents, context [B, 24, 64], MSE + backward + AdamW)
 *    on `webgpu` at batch 32 and 256, against the same architecture in PyTorch on CUDA
 *    (`bench/torch_unet.py` with the preset's attention levels; parameter counts asserted equal);
 * 2. best-of-32 sampling at 256 px (32x32 latents: the default preset's models, random weights,
 *    with a 4-level f=8 autoencoder; 50 PNDM steps, guidance 4, scored by the run's own CLIP)
 *    through onnxruntime, with CUDA when its provider loads, else the CPU; the peer is the same
 *    job on onnxruntime's CPU provider when the kit's ran on CUDA;
 * 3. host cost of one `webgpu` training step at batch 1 (counted with `countWebgpuCalls`): WebGPU
 *    dispatches, queue submits, buffer, bind-group and pipeline creations per warm step, host ms
 *    to issue the step (JavaScript until the final readback starts) against total ms to the loss
 *    on the host; the peer is the same batch-1 step on the `cpu-blas` backend (what the webgpu
 *    step's host time must beat to be worth a GPU);
 * 1b. the same train step through the kit's compiled engine (`--unet-engine compiled`: the step
 *    compiled once by lib/compiled, clipping, AdamW and EMA on the GPU, one submit per step) at
 *    the same batches, against the same PyTorch numbers;
 * 3b. host cost of the compiled step at batch 1 (same counting), next to the tfjs `webgpu` step's;
 * 4. peak GPU memory per phase (device-wide `nvidia-smi` memory.used, sampled every 100 ms), when
 *    `nvidia-smi` exists.
 *
 * On a software adapter (Mesa lavapipe: a "fallback" adapter) only part 3 runs. `--gpu-phases`
 * forces parts 1-2 (with `--batches`, `--sample-*` small they are a smoke test on any machine).
 * Every part runs in its own subprocess under its own time limit (`--limit-s`), so one hung part
 * costs only its own limit; the defaults stay under 5 minutes in total on an H100.
 *
 * Usage:
 *   deno task bench:gpu [--batches 32,256] [--steps 5] [--host-steps 3] [--host-warmup 2]
 *     [--sample-steps 50] [--candidates 32] [--size 256] [--python /usr/bin/python3]
 *     [--gpu-phases] [--host-only] [--limit-s 150] [--seed 0]
 * Output: a line per measurement and one RESULT line per part:
 *   RESULT gpu_train_step_b<B> ms_per_step=<kit webgpu ms> speedup=<torch cuda ms / kit ms>
 *   RESULT gpu_best_of_32 s_per_prompt=<kit s> speedup=<onnxruntime cpu s / kit s>
 *   RESULT gpu_compiled_train_step_b<B> ms_per_step=<compiled ms> speedup=<torch cuda ms / it>
 *   RESULT webgpu_host_cost host_ms_per_step=<issue ms> speedup=<cpu-blas step ms / issue ms>
 *   RESULT compiled_host_cost host_ms_per_step=<compiled ms> speedup=<tfjs-webgpu host ms / it>
 *   RESULT gpu_peak_memory_b<B> mib=<kit's peak> speedup=<torch's peak / kit's peak>
 * (`nan` where a side could not run; the line before each RESULT says why).
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { fileURLToPath } from "node:url";
import { helpText, parseFlags, runMain, UsageError } from "../lib/cli/args.ts";
import { countWebgpuCalls, webgpuAdapterInfo, type WebgpuCallCounts } from "../lib/backend/mod.ts";
import { initBackendAndConvGrad } from "../lib/train/init_backend.ts";
import { AdamW, computeGrads } from "../lib/train/optim.ts";
import {
  countParamsForConfig,
  initAutoencoder,
  initClip,
  initUnet,
  initUnetArrays,
  type UnetConfig,
  WordTokenizer,
} from "../lib/models/mod.ts";
import { disposeParams } from "../lib/nn/mod.ts";
import {
  exportRun,
  presetUnetConfig,
  RECIPE_PRESETS,
  saveModel,
  unetConfigFor,
} from "../lib/recipe/mod.ts";
import { cudaFallbackReason, loadOnnxPipeline, txt2img } from "../lib/onnx/mod.ts";
import { bestOfN, loadScorer } from "../lib/inference/mod.ts";
import { Rng, STREAM } from "../lib/util/rng.ts";
import { compileTrainStep, unetTrainingGraph } from "../lib/compiled/mod.ts";
import { BENCH_TOKENS, unetFixture } from "./unet_fixture.ts";
import { waitChild } from "./child_process.ts";

const SPEC = {
  batches: {
    type: "ints",
    default: [32, 256] as number[],
    min: 1,
    help: "webgpu train-step batches",
  },
  steps: { type: "int", default: 5, min: 1, help: "timed train steps per batch (median)" },
  "host-steps": { type: "int", default: 5, min: 1, help: "counted batch-1 steps (median)" },
  "host-warmup": {
    type: "int",
    default: 2,
    min: 1,
    help: "untimed batch-1 steps first (the first compiles every shader)",
  },
  "sample-steps": { type: "int", default: 50, min: 1, help: "PNDM steps of the sampling part" },
  candidates: { type: "int", default: 32, min: 1, help: "best-of-N candidates per prompt" },
  size: { type: "int", default: 256, min: 8, help: "sampled image size (latents: size / 8)" },
  guidance: { type: "float", default: 4, min: 0, help: "classifier-free guidance scale" },
  python: {
    type: "string",
    default: "/usr/bin/python3",
    help: "interpreter with torch (python3 on PATH is tried when this one has no CUDA)",
  },
  "gpu-phases": {
    type: "bool",
    default: false,
    help: "run the train and sampling parts even on a software adapter (a smoke test there)",
  },
  "host-only": { type: "bool", default: false, help: "run only the host-cost part" },
  "limit-s": {
    type: "int",
    default: 150,
    min: 10,
    help: "time limit of each part's subprocess (the lavapipe host-cost part gets 2x)",
  },
  seed: { type: "int", default: 0, min: 0, help: "seed of weights and data" },
  child: { type: "string", help: "internal: run one part and print its JSON" },
  batch: { type: "int", default: 1, min: 1, help: "internal: the child's batch" },
} as const;

type GpuFlags = ReturnType<typeof flags>;
const CHILD_TAG = "GPU_BENCH_JSON ";
/** The default preset's UNet, with the channels and context width its frozen parts give it. */
const DEFAULT_UNET: UnetConfig = presetUnetConfig(RECIPE_PRESETS.default);

function flags() {
  return parseFlags(Deno.args, SPEC, "bench/gpu.ts");
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const fmt = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms.toFixed(1));
const ratio = (peer: number | null, kit: number | null) =>
  peer !== null && kit !== null && kit > 0 ? (peer / kit).toFixed(3) : "nan";

/**
 * One training step of the default UNet, seeded like bench/unet_fixture.ts (weights, then x,
 * target, t, context): forward, MSE against a random target, gradients, AdamW.
 */
function unetStep(batch: number, seed: number) {
  const u = unetFixture(batch, seed, { cfg: DEFAULT_UNET });
  const opt = new AdamW(u.params, { weightDecay: 0.01 });
  return {
    /** Issue the whole step; the loss tensor is the last thing to read back. */
    issue: (): tf.Tensor[] => {
      const { value, grads } = computeGrads(u.params, u.loss);
      opt.step(grads, 1e-4);
      return [value, ...Object.values(grads)];
    },
    dispose: () => {
      opt.dispose();
      u.dispose();
    },
  };
}

/** Peak resident set size of this process (Linux VmHWM) in MiB, else the current RSS. */
function peakRssMiB(): number {
  try {
    const m = /VmHWM:\s+(\d+)\s+kB/.exec(Deno.readTextFileSync("/proc/self/status"));
    if (m) return Number(m[1]) / 1024;
  } catch {
    // Not Linux: fall through to the current RSS.
  }
  return Deno.memoryUsage().rss / 2 ** 20;
}

// ---------------------------------------------------------------- children (one part each)

/** Train-step timing of `backend` at `batch`: warm-up steps, then up to `steps` timed ones. */
async function childTrain(f: GpuFlags, backend: string, warmup: number, steps: number) {
  const info = await initBackendAndConvGrad(backend, { quiet: true });
  const s = unetStep(f.batch, f.seed);
  const one = async () => {
    const t0 = performance.now();
    const outs = s.issue();
    const loss = (await outs[0].data())[0];
    const ms = performance.now() - t0;
    tf.dispose(outs);
    return { ms, loss };
  };
  const warmupMs: number[] = [], timesMs: number[] = [], losses: number[] = [];
  for (let i = 0; i < warmup; i++) {
    const r = await one();
    warmupMs.push(r.ms);
    losses.push(r.loss);
  }
  for (let i = 0; i < steps; i++) {
    const r = await one();
    timesMs.push(r.ms);
    losses.push(r.loss);
  }
  s.dispose();
  return {
    backend: info.name,
    details: info.details,
    params: countParamsForConfig(DEFAULT_UNET),
    msPerStep: median(timesMs),
    timesMs,
    warmupMs,
    losses,
    peakRssMiB: peakRssMiB(),
  };
}

/** One counted step: host ms to issue it, ms until the loss is on the host, WebGPU calls. */
interface HostStep {
  issueMs: number;
  totalMs: number;
  counts: WebgpuCallCounts;
}

/** Host cost of the batch-1 `webgpu` step (see the module doc). */
async function childHost(f: GpuFlags) {
  const info = await initBackendAndConvGrad("webgpu", { quiet: true });
  const s = unetStep(1, f.seed);
  const counted = async (): Promise<HostStep> => {
    let issueMs = 0;
    const { result: totalMs, counts } = await countWebgpuCalls(async () => {
      const t0 = performance.now();
      const outs = s.issue();
      issueMs = performance.now() - t0;
      await outs[0].data();
      const total = performance.now() - t0;
      tf.dispose(outs);
      return total;
    });
    return { issueMs, totalMs, counts };
  };
  const warm: HostStep[] = [];
  for (let i = 0; i < f["host-warmup"]; i++) warm.push(await counted());
  const steps: HostStep[] = [];
  for (let i = 0; i < f["host-steps"]; i++) steps.push(await counted());
  s.dispose();
  // What a submit costs the host when the driver has no work to run: an empty command buffer.
  // On lavapipe a submit executes the kernels in it, so the host's share of the step's submits
  // is estimated as this per-submit cost, not the time they took.
  const device = (tf.backend() as unknown as { device: GPUDevice }).device;
  const empty: number[] = [];
  for (let i = 0; i < 41; i++) {
    const t0 = performance.now();
    device.queue.submit([device.createCommandEncoder().finish()]);
    empty.push(performance.now() - t0);
  }
  await device.queue.onSubmittedWorkDone();
  return {
    adapter: info.details,
    emptySubmitMs: median(empty),
    params: countParamsForConfig(DEFAULT_UNET),
    warmup: warm,
    steps,
    deferredSubmitBatch: tf.env().get("WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE"),
  };
}

/** A run folder with the default preset's models (random weights), its autoencoder f=8. */
async function makeRun(dir: string, prompts: string[], seed: number): Promise<void> {
  const p = RECIPE_PRESETS.default;
  const tok = WordTokenizer.build(prompts, { contextLength: p.clip.model.contextLength });
  await Deno.mkdir(`${dir}/clip`, { recursive: true });
  await tok.save(`${dir}/clip/tokenizer.json`);
  const clipCfg = { ...p.clip.model, vocabSize: tok.vocabSize };
  const clip = initClip(clipCfg, Rng.stream(seed, [STREAM.init, 2]));
  await saveModel(`${dir}/clip/model`, { kind: "clip", config: clipCfg, params: clip });
  // One more level than the preset's (f=4 for its 32 px images): 256 px images <-> 32x32 latents,
  // the study's latent size.
  const base = p.autoencoder.model;
  const aeCfg = { ...base, blockChannels: [...base.blockChannels, base.blockChannels.at(-1)!] };
  const ae = initAutoencoder(aeCfg, Rng.stream(seed, [STREAM.init, 1]));
  await saveModel(`${dir}/autoencoder/model`, {
    kind: "autoencoder",
    config: aeCfg,
    params: ae,
    extra: { scalingFactor: 0.9 },
  });
  const unetCfg = unetConfigFor(p.unet.model, {
    latentChannels: aeCfg.latentChannels,
    contextDim: clipCfg.textWidth,
  });
  const unet = initUnet(unetCfg, Rng.stream(seed, [STREAM.init, 3]));
  await saveModel(`${dir}/unet/model`, {
    kind: "unet",
    config: unetCfg,
    params: unet,
    extra: { schedule: p.unet.schedule, ema: false },
  });
  for (const x of [clip, ae, unet]) disposeParams(x);
}

/** Best-of-N sampling of one prompt through onnxruntime (`auto`: CUDA, else CPU; or `cpu`). */
async function childSample(f: GpuFlags, provider: "auto" | "cpu") {
  await initBackendAndConvGrad("cpu-blas", { quiet: true });
  const root = await Deno.makeTempDir({ prefix: "xgen_bench_gpu_" });
  try {
    const prompt = "a red circle";
    await makeRun(`${root}/run`, [prompt, "a blue square"], f.seed);
    await exportRun(`${root}/run`, `${root}/onnx`);
    const executionProviders = provider === "auto" ? "auto" : ["cpu"];
    const pipe = await loadOnnxPipeline(`${root}/onnx`, { executionProviders });
    const scorer = await loadScorer({ kind: "clip" }, {
      exportDir: `${root}/onnx`,
      executionProviders,
    });
    const engine = provider === "cpu"
      ? "onnxruntime CPU"
      : cudaFallbackReason() === null
      ? "onnxruntime CUDA"
      : `onnxruntime CPU (CUDA unavailable: ${cudaFallbackReason()})`;
    try {
      const o = {
        generator: (g: Parameters<typeof txt2img>[1]) =>
          txt2img(pipe, { ...g, height: f.size, width: f.size }),
        scorer,
        prompts: [prompt],
        candidates: f.candidates,
        guidance: f.guidance,
        scheduler: "pndm",
        seed: f.seed,
      };
      // Warm-up: session start-up, CUDA kernels' first launches, allocator growth.
      const w0 = performance.now();
      await bestOfN({ ...o, steps: 2 });
      const warmupMs = performance.now() - w0;
      const t0 = performance.now();
      const [pick] = await bestOfN({ ...o, steps: f["sample-steps"] });
      const ms = performance.now() - t0;
      return { engine, ms, warmupMs, winner: pick.winner, score: pick.score };
    } finally {
      await scorer.release();
      await pipe.release();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

/**
 * The same step as {@link unetStep} through the compiled engine: the default UNet's training graph
 * at `batch` (8x8 latents, BENCH_TOKENS tokens), fused, with clipping at 1, AdamW (weight decay
 * 0.01) and the EMA on the GPU, as `--unet-engine compiled` trains it. Weights are drawn with
 * tfjs on cpu-blas and handed over as arrays; each step's data comes from the seeded stream.
 */
async function compiledUnetStep(batch: number, seed: number) {
  const adapter = await navigator.gpu?.requestAdapter();
  if (!adapter) throw new Error("no WebGPU adapter");
  const device = await adapter.requestDevice();
  await initBackendAndConvGrad("cpu-blas", { quiet: true });
  const cfg = DEFAULT_UNET, [h, w, tokens] = [8, 8, BENCH_TOKENS];
  const t0 = performance.now();
  const train = await compileTrainStep(
    unetTrainingGraph({ cfg, batch, height: h, width: w, tokens }),
    device,
    { adamw: { weightDecay: 0.01 }, clipNorm: 1, ema: { decay: 0.9999, warmup: true } },
  );
  const compileMs = performance.now() - t0;
  const weights = initUnetArrays(cfg, Rng.stream(seed, [0, STREAM.init]));
  train.setParams(weights);
  const rng = Rng.stream(seed, [0, STREAM.noise]);
  const data = () => ({
    x: rng.normal(batch * h * w * cfg.inChannels),
    t: Float32Array.from({ length: batch }, () => rng.uniform() * 999),
    context: rng.normal(batch * tokens * cfg.contextDim),
    target: rng.normal(batch * h * w * cfg.outChannels),
    weights: new Float32Array(batch).fill(1),
  });
  // What a submit costs the host with no work in it (as childHost estimates a submit's share).
  const emptySubmitMs = () => {
    const empty: number[] = [];
    for (let i = 0; i < 41; i++) {
      const t = performance.now();
      device.queue.submit([device.createCommandEncoder().finish()]);
      empty.push(performance.now() - t);
    }
    return median(empty);
  };
  const info = adapter.info;
  return {
    train,
    data,
    compileMs,
    emptySubmitMs,
    details: `${info.description || info.device} (${info.vendor})${
      info.isFallbackAdapter ? " (fallback)" : ""
    }`,
    dispose: () => {
      train.destroy();
      device.destroy();
    },
  };
}

/** Compiled-engine train-step timing at `f.batch`: ms until the loss is on the host. */
async function childCompiledTrain(f: GpuFlags) {
  const s = await compiledUnetStep(f.batch, f.seed);
  const warmupMs: number[] = [], timesMs: number[] = [], losses: number[] = [];
  for (let i = 0; i < 2 + f.steps; i++) {
    const d = s.data();
    const t0 = performance.now();
    losses.push(await s.train.step(d, 1e-4));
    (i < 2 ? warmupMs : timesMs).push(performance.now() - t0);
  }
  const dispatches = s.train.exe.stats.dispatches;
  s.dispose();
  return {
    details: s.details,
    compileMs: s.compileMs,
    dispatches,
    msPerStep: median(timesMs),
    timesMs,
    warmupMs,
    losses,
  };
}

/**
 * Host cost of the compiled batch-1 step: everything but the time inside the submit and the wait
 * for the loss (the step's writes, encoding, bookkeeping), plus an empty submit's cost, as
 * bench/compiled_step.ts measures it; and its WebGPU calls.
 */
async function childCompiledHost(f: GpuFlags) {
  const s = await compiledUnetStep(1, f.seed);
  const t0 = performance.now();
  await s.train.step(s.data(), 1e-4);
  const firstMs = performance.now() - t0;
  for (let i = 1; i < f["host-warmup"]; i++) await s.train.step(s.data(), 1e-4);
  const emptyMs = s.emptySubmitMs();
  const hostMs: number[] = [], totalMs: number[] = [];
  for (let i = 0; i < f["host-steps"]; i++) {
    const d = s.data();
    const t = performance.now();
    await s.train.step(d, 1e-4);
    const total = performance.now() - t;
    const r = s.train.exe.lastTimes;
    hostMs.push(total - r.submitMs - r.readMs + emptyMs);
    totalMs.push(total);
  }
  const { counts } = await countWebgpuCalls(() => s.train.step(s.data(), 1e-4));
  s.dispose();
  return { details: s.details, compileMs: s.compileMs, firstMs, emptyMs, hostMs, totalMs, counts };
}

// ---------------------------------------------------------------- parent

/** Spawn this script for one part; its JSON, or null with the reason. */
async function spawnChild<T>(
  args: string[],
  limitS: number,
): Promise<{ out: T | null; reason: string }> {
  const self = fileURLToPath(import.meta.url);
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--max-old-space-size=8192", self, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
  });
  return await collect<T>(cmd.spawn(), limitS, (s) => {
    const line = s.split("\n").find((l) => l.startsWith(CHILD_TAG));
    return line ? JSON.parse(line.slice(CHILD_TAG.length)) as T : null;
  });
}

/** Wait for `child` at most `limitS` seconds, then parse its stdout. */
async function collect<T>(
  child: Deno.ChildProcess,
  limitS: number,
  parse: (stdout: string) => T | null,
): Promise<{ out: T | null; reason: string }> {
  const res = await waitChild(child, limitS);
  if (res.timedOut) return { out: null, reason: `time limit of ${limitS} s reached` };
  const stderr = res.stderrLines.slice(-3).join(" | ");
  let out: T | null = null;
  try {
    out = res.success ? parse(res.stdout) : null;
  } catch {
    out = null;
  }
  if (out === null) return { out, reason: `exit code ${res.code}: ${stderr || "no output"}` };
  return { out, reason: "" };
}

/** The first interpreter (of `--python`, then python3) whose torch sees CUDA, or why none. */
async function torchWithCuda(f: GpuFlags): Promise<{ python: string | null; why: string }> {
  const tried: string[] = [];
  for (const py of [...new Set([f.python, "python3"])]) {
    try {
      const r = await new Deno.Command(py, {
        args: ["-c", "import torch; print(torch.cuda.is_available())"],
        stdout: "piped",
        stderr: "null",
      }).output();
      const said = new TextDecoder().decode(r.stdout).trim();
      if (r.success && said === "True") return { python: py, why: "" };
      tried.push(`${py}: ${r.success ? `cuda.is_available() = ${said}` : "no torch"}`);
    } catch {
      tried.push(`${py}: not found`);
    }
  }
  return { python: null, why: tried.join("; ") };
}

interface TorchReport {
  params: number;
  ms_per_step: number;
  times_ms: number[];
  torch: string;
  device: string;
}

/** bench/torch_unet.py on CUDA with the default preset's attention levels. */
async function runTorch(python: string, batch: number, f: GpuFlags, limitS: number) {
  const dir = fileURLToPath(new URL(".", import.meta.url));
  const levels = DEFAULT_UNET.attentionLevels.map((b) => (b ? "True" : "False")).join(", ");
  // torch_unet.py builds UNET_PRESETS.small; the preset differs only in where attention sits.
  const code = [
    "import sys",
    `sys.path.insert(0, ${JSON.stringify(dir)})`,
    "import torch_unet",
    `torch_unet.SMALL["attention_levels"] = [${levels}]`,
    `sys.argv = ["torch_unet.py", "--batch", "${batch}", "--steps", "${f.steps * 2}", ` +
    `"--warmup", "3", "--seed", "${f.seed}", "--device", "cuda"]`,
    "torch_unet.main()",
  ].join("\n");
  const child = new Deno.Command(python, {
    args: ["-c", code],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return await collect<TorchReport>(
    child,
    limitS,
    (s) => JSON.parse(s.trim().split("\n").at(-1)!) as TorchReport,
  );
}

/** Device-wide GPU memory in use, sampled by `nvidia-smi` in the background. */
class GpuMemory {
  private samples: { t: number; mib: number }[] = [];
  private proc: Deno.ChildProcess | null = null;
  readonly why: string;

  constructor() {
    try {
      this.proc = new Deno.Command("nvidia-smi", {
        args: ["--query-gpu=memory.used", "--format=csv,noheader,nounits", "-lms", "100"],
        stdout: "piped",
        stderr: "null",
      }).spawn();
      this.why = "";
      this.read(this.proc.stdout);
    } catch {
      this.why = "not measurable (no nvidia-smi on this machine)";
    }
  }

  private async read(stream: ReadableStream<Uint8Array>) {
    let buf = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      const lines = buf.split("\n");
      buf = lines.pop()!;
      for (const l of lines) {
        const mib = Number(l.trim().split(/\s+/)[0]);
        if (Number.isFinite(mib)) this.samples.push({ t: performance.now(), mib });
      }
    }
  }

  /** Largest sample taken between `t0` and `t1` (performance.now() times), or null. */
  peak(t0: number, t1: number): number | null {
    const xs = this.samples.filter((s) => s.t >= t0 && s.t <= t1).map((s) => s.mib);
    return xs.length ? Math.max(...xs) : null;
  }

  stop() {
    try {
      this.proc?.kill("SIGTERM");
    } catch {
      // Already gone.
    }
  }
}

type TrainOut = Awaited<ReturnType<typeof childTrain>>;
type HostOut = Awaited<ReturnType<typeof childHost>>;
type SampleOut = Awaited<ReturnType<typeof childSample>>;
type CompiledTrainOut = Awaited<ReturnType<typeof childCompiledTrain>>;
type CompiledHostOut = Awaited<ReturnType<typeof childCompiledHost>>;

async function trainPart(f: GpuFlags, mem: GpuMemory): Promise<void> {
  const cuda = await torchWithCuda(f);
  console.log(
    cuda.python
      ? `PyTorch CUDA: ${cuda.python}`
      : `PyTorch CUDA not present (${cuda.why}): train steps have no peer`,
  );
  for (const batch of f.batches) {
    const k0 = performance.now();
    const kit = await spawnChild<TrainOut>(
      ["--child", "train", "--batch", `${batch}`, "--steps", `${f.steps}`, "--seed", `${f.seed}`],
      f["limit-s"],
    );
    const k1 = performance.now();
    let torch: { out: TorchReport | null; reason: string } = { out: null, reason: cuda.why };
    if (cuda.python) torch = await runTorch(cuda.python, batch, f, f["limit-s"]);
    const k2 = performance.now();
    const kitMs = kit.out?.msPerStep ?? null, torchMs = torch.out?.ms_per_step ?? null;
    if (kit.out) {
      const o = kit.out;
      console.log(
        `webgpu b${batch}: ${fmt(o.msPerStep)} ms/step (median of ${o.timesMs.length}: ${
          o.timesMs.map(fmt).join(", ")
        }; warm-up ${o.warmupMs.map(fmt).join(", ")}); ${o.details}; params ${o.params}; ` +
          `loss ${o.losses[0].toFixed(4)} -> ${o.losses.at(-1)!.toFixed(4)}; ` +
          `peak RSS ${o.peakRssMiB.toFixed(0)} MiB`,
      );
    } else console.log(`webgpu b${batch}: failed (${kit.reason})`);
    if (torch.out) {
      const o = torch.out;
      if (o.params !== countParamsForConfig(DEFAULT_UNET)) {
        throw new Error(
          `bench/gpu.ts: PyTorch model has ${o.params} parameters, the kit's ` +
            `${countParamsForConfig(DEFAULT_UNET)}: torch_unet.py no longer mirrors the UNet`,
        );
      }
      console.log(`pytorch ${o.torch} ${o.device} b${batch}: ${fmt(o.ms_per_step)} ms/step`);
    } else if (cuda.python) console.log(`pytorch b${batch}: failed (${torch.reason})`);
    console.log(
      `RESULT gpu_train_step_b${batch} ms_per_step=${kitMs?.toFixed(1) ?? "nan"} speedup=${
        ratio(torchMs, kitMs)
      }`,
    );
    const compiled = await spawnChild<CompiledTrainOut>(
      ["--child", "compiled-train", "--batch", `${batch}`, "--steps", `${f.steps}`],
      f["limit-s"],
    );
    const cMs = compiled.out?.msPerStep ?? null;
    if (compiled.out) {
      const o = compiled.out;
      console.log(
        `compiled b${batch}: ${fmt(o.msPerStep)} ms/step (median of ${o.timesMs.length}: ${
          o.timesMs.map(fmt).join(", ")
        }; warm-up ${o.warmupMs.map(fmt).join(", ")}); ${o.details}; ${o.dispatches} ` +
          `dispatches, compiled in ${fmt(o.compileMs)} ms; loss ${o.losses[0].toFixed(4)} -> ` +
          `${o.losses.at(-1)!.toFixed(4)}`,
      );
    } else console.log(`compiled b${batch}: failed (${compiled.reason})`);
    console.log(
      `RESULT gpu_compiled_train_step_b${batch} ms_per_step=${cMs?.toFixed(1) ?? "nan"} ` +
        `speedup=${ratio(torchMs, cMs)}`,
    );
    if (mem.why) console.log(`peak GPU memory b${batch}: ${mem.why}`);
    else {
      const kitMiB = mem.peak(k0, k1), torchMiB = mem.peak(k1, k2);
      console.log(
        `peak GPU memory b${batch} (device-wide nvidia-smi): webgpu ${kitMiB ?? "?"} MiB, ` +
          `PyTorch ${torchMiB ?? "?"} MiB`,
      );
      console.log(
        `RESULT gpu_peak_memory_b${batch} mib=${kitMiB ?? "nan"} speedup=${
          ratio(torchMiB, kitMiB)
        }`,
      );
    }
  }
}

async function samplePart(f: GpuFlags): Promise<void> {
  const args = ["--sample-steps", `${f["sample-steps"]}`, "--candidates", `${f.candidates}`];
  args.push("--size", `${f.size}`, "--guidance", `${f.guidance}`, "--seed", `${f.seed}`);
  const kit = await spawnChild<SampleOut>(["--child", "sample", ...args], f["limit-s"]);
  const lat = f.size / 8;
  const what = `best-of-${f.candidates} at ${f.size} px (${lat}x${lat} latents), ` +
    `PNDM ${f["sample-steps"]} steps, guidance ${f.guidance}`;
  if (!kit.out) {
    console.log(`sampling ${what}: failed (${kit.reason})`);
    console.log(`RESULT gpu_best_of_${f.candidates} s_per_prompt=nan speedup=nan`);
    return;
  }
  console.log(
    `sampling ${what}: ${(kit.out.ms / 1000).toFixed(2)} s per prompt on ${kit.out.engine} ` +
      `(warm-up ${fmt(kit.out.warmupMs)} ms)`,
  );
  let peerMs: number | null = null;
  if (kit.out.engine === "onnxruntime CUDA") {
    const peer = await spawnChild<SampleOut>(["--child", "sample-cpu", ...args], f["limit-s"]);
    peerMs = peer.out?.ms ?? null;
    console.log(
      peer.out
        ? `peer: ${(peer.out.ms / 1000).toFixed(2)} s per prompt on ${peer.out.engine}`
        : `peer onnxruntime CPU: failed (${peer.reason})`,
    );
  } else console.log("peer: none (the kit's run was already on onnxruntime's CPU provider)");
  console.log(
    `RESULT gpu_best_of_${f.candidates} s_per_prompt=${(kit.out.ms / 1000).toFixed(3)} speedup=${
      ratio(peerMs, kit.out.ms)
    }`,
  );
}

async function hostPart(f: GpuFlags, software: boolean): Promise<void> {
  // lavapipe compiles every shader on the first step (~1-2 minutes on 2 cores): twice the limit.
  const limit = software ? 2 * f["limit-s"] : f["limit-s"];
  const pass = ["--host-steps", `${f["host-steps"]}`, "--host-warmup", `${f["host-warmup"]}`];
  const host = await spawnChild<HostOut>(
    ["--child", "host", ...pass, "--seed", `${f.seed}`],
    limit,
  );
  const peer = await spawnChild<TrainOut>(
    ["--child", "peer", "--batch", "1", "--steps", "10", "--seed", `${f.seed}`],
    f["limit-s"],
  );
  const peerMs = peer.out?.msPerStep ?? null;
  if (!host.out) {
    console.log(`host cost: failed (${host.reason})`);
    console.log(`RESULT webgpu_host_cost host_ms_per_step=nan speedup=nan`);
    await compiledHostPart(f, limit, null, "?");
    return;
  }
  const h = host.out;
  const c = h.steps.map((s) => s.counts);
  const show = (k: keyof WebgpuCallCounts) => {
    const lo = Math.min(...c.map((x) => x[k])), hi = Math.max(...c.map((x) => x[k]));
    return lo === hi ? `${lo}` : `${lo}-${hi}`;
  };
  const med = (g: (s: HostStep) => number) => median(h.steps.map(g));
  const issue = med((s) => s.issueMs), total = med((s) => s.totalMs);
  const inApi = med((s) => s.counts.callMs + s.counts.submitMs);
  // Host time: issuing the step, less what the driver spent inside submits beyond the cost of
  // an empty submit (lavapipe runs the kernels there; a real GPU returns at once).
  const hostOf = (s: HostStep) =>
    s.issueMs - s.counts.submitMs + s.counts.submits * h.emptySubmitMs;
  const hostMs = med(hostOf);
  console.log(
    `host cost, webgpu on ${h.adapter}, default UNet (${h.params} params) at batch 1, ` +
      `${h.steps.length} counted steps after ${h.warmup.length} warm-up:`,
  );
  console.log(
    `  per step: dispatches ${show("dispatches")}, submits ${show("submits")} ` +
      `(deferred-submit batch ${h.deferredSubmitBatch}), buffers created ${show("buffers")}, ` +
      `bind groups ${show("bindGroups")}, pipelines ${show("pipelines")}, shader modules ` +
      `${show("shaderModules")}, compute passes ${show("computePasses")}, buffer writes ` +
      `${show("bufferWrites")}, buffer copies ${show("bufferCopies")}, readbacks ${
        show("mapReads")
      }`,
  );
  console.log(
    `  ms to issue the step ${fmt(issue)} (inside WebGPU calls ${fmt(inApi)}, of which ` +
      `submits ${fmt(med((s) => s.counts.submitMs))}); total to the loss on the host ` +
      `${fmt(total)} ms (issue/total per step: ${
        h.steps.map((s) => `${fmt(s.issueMs)}/${fmt(s.totalMs)}`).join(", ")
      })`,
  );
  console.log(
    `  host ms per step ${fmt(hostMs)} = issue - submits + ${show("submits")} x empty-submit ` +
      `cost ${(h.emptySubmitMs * 1000).toFixed(0)} us (per step: ${
        h.steps.map((s) => fmt(hostOf(s))).join(", ")
      }); of it ${fmt(med((s) => s.counts.callMs))} ms in other WebGPU calls`,
  );
  const w = h.warmup[0];
  console.log(
    `  first step (cold): ${fmt(w.totalMs)} ms, ${w.counts.pipelines} pipelines, ` +
      `${w.counts.buffers} buffers created`,
  );
  console.log(
    peer.out
      ? `peer cpu-blas batch 1: ${fmt(peer.out.msPerStep)} ms/step (${peer.out.details})`
      : `peer cpu-blas: failed (${peer.reason})`,
  );
  console.log(
    `RESULT webgpu_host_cost host_ms_per_step=${hostMs.toFixed(1)} speedup=${
      ratio(peerMs, hostMs)
    }`,
  );
  await compiledHostPart(f, limit, hostMs, show("dispatches"));
}

/** The compiled step's host cost at batch 1, next to the tfjs `webgpu` step's (`tfjsMs`). */
async function compiledHostPart(
  f: GpuFlags,
  limit: number,
  tfjsMs: number | null,
  tfjsDispatches: string,
): Promise<void> {
  const pass = ["--host-steps", `${f["host-steps"]}`, "--host-warmup", `${f["host-warmup"]}`];
  const c = await spawnChild<CompiledHostOut>(
    ["--child", "compiled-host", ...pass, "--seed", `${f.seed}`],
    limit,
  );
  if (!c.out) {
    console.log(`compiled host cost: failed (${c.reason})`);
    console.log(`RESULT compiled_host_cost host_ms_per_step=nan speedup=nan`);
    return;
  }
  const o = c.out, k = o.counts, hostMs = median(o.hostMs);
  console.log(
    `host cost, compiled engine on ${o.details}, same UNet and batch: per step ${k.dispatches} ` +
      `dispatches (tfjs webgpu: ${tfjsDispatches}), ${k.submits} submit, ${k.computePasses} ` +
      `compute pass, ${k.bufferWrites} buffer writes, ${k.mapReads} readback, buffers / bind ` +
      `groups / pipelines created ${k.buffers} / ${k.bindGroups} / ${k.pipelines}`,
  );
  console.log(
    `  host ms per step ${fmt(hostMs)} (per step: ${o.hostMs.map(fmt).join(", ")}; empty ` +
      `submit ${(o.emptyMs * 1000).toFixed(0)} us); total to the loss ${
        fmt(median(o.totalMs))
      } ms; compile ${fmt(o.compileMs)} ms, first step ${fmt(o.firstMs)} ms; tfjs webgpu host ` +
      `${tfjsMs === null ? "?" : fmt(tfjsMs)} ms`,
  );
  console.log(
    `RESULT compiled_host_cost host_ms_per_step=${hostMs.toFixed(2)} speedup=${
      ratio(tfjsMs, hostMs)
    }`,
  );
}

async function main(): Promise<void> {
  const f = flags();
  if (f.help) {
    console.log(helpText("bench/gpu.ts", "webgpu scorecard: train, sampling, host cost", SPEC));
    return;
  }
  if (f.child !== undefined) {
    let out: unknown;
    if (f.child === "train") out = await childTrain(f, "webgpu", 2, f.steps);
    else if (f.child === "peer") out = await childTrain(f, "cpu-blas", 2, f.steps);
    else if (f.child === "host") out = await childHost(f);
    else if (f.child === "compiled-train") out = await childCompiledTrain(f);
    else if (f.child === "compiled-host") out = await childCompiledHost(f);
    else if (f.child === "sample") out = await childSample(f, "auto");
    else if (f.child === "sample-cpu") out = await childSample(f, "cpu");
    else throw new UsageError(`bench/gpu.ts: --child: unknown part "${f.child}"`);
    console.log(CHILD_TAG + JSON.stringify(out));
    return;
  }
  if (f.size % 8 !== 0) throw new UsageError(`bench/gpu.ts: --size must be a multiple of 8`);
  const adapter = await webgpuAdapterInfo();
  if (!adapter) {
    console.log(`no WebGPU adapter: nothing to measure (see lib/backend WEBGPU_HELP)`);
    console.log(`RESULT webgpu_host_cost host_ms_per_step=nan speedup=nan`);
    return;
  }
  const software = adapter.includes("(fallback)");
  const t0 = performance.now();
  console.log(
    `bench:gpu on adapter "${adapter}"${
      software && !f["gpu-phases"] ? " (software: host-cost part only)" : ""
    }; ` +
      `default UNet: ${countParamsForConfig(DEFAULT_UNET)} params, attention at levels ` +
      `[${DEFAULT_UNET.attentionLevels}]; cores ${navigator.hardwareConcurrency}`,
  );
  if ((!software || f["gpu-phases"]) && !f["host-only"]) {
    const mem = new GpuMemory();
    try {
      await trainPart(f, mem);
      await samplePart(f);
    } finally {
      mem.stop();
    }
  }
  await hostPart(f, software);
  console.log(`bench:gpu took ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}

if (import.meta.main) await runMain(main);
