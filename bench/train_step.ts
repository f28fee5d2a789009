/**
 * Training-step benchmark of the kit's `UNET_PRESETS.small` UNet (8x8x4 latents, text context
 * [B, 24, 64]) on every available TensorFlow.js backend, against the same architecture in
 * PyTorch (`bench/torch_unet.py`, Debian python3-torch; same parameter count, asserted).
 *
 * One step = forward + plain MSE loss against a random target + backward (`computeGrads`) + an
 * `AdamW` update, at batch 32 (`--batch`). Each backend runs in its own Deno subprocess, so its
 * peak RSS (VmHWM) and tensor count are its own; it does `--warmup` untimed steps, then up to
 * `--steps` timed ones (fewer when `--budget-s` runs out) and reports the median. Tensor count
 * stability compares `tf.memory().numTensors` after step 1 and after the last step. Backends in
 * `--profile` (default `cpu-blas`) also get a forward / forward+backward / AdamW split and a
 * `tf.profile` table of kernel time per kernel name (top 15).
 *
 * Usage (default run: about 1-1.5 minutes on 2 cores):
 *   deno run -A bench/train_step.ts [--batch 32] [--steps 10] [--backends all|cpu-blas,wasm,...]
 *     [--warmup 1] [--budget-s 20] [--profile cpu-blas] [--profile-steps 2] [--blas-threads N]
 *     [--no-torch] [--torch-steps 8] [--torch-runs 2] [--torch-threads 2,1]
 *     [--python /usr/bin/python3] [--torch-device cpu|cuda] [--seed 0]
 * `all` runs every backend `availableBackends()` reports, except webgpu on a software adapter
 * (Mesa lavapipe: ~75 s of shader compilation, then ~25 s a step); name it to include it.
 * Unavailable backends are listed with the reason. `--blas-threads` overrides the OpenBLAS
 * thread count of the `cpu-blas` backend (to compare 1 vs 2 threads on small GEMMs).
 *
 * BLAS setting: the environment may pin `OPENBLAS_CORETYPE` (and `OPENBLAS_L2_SIZE`); this
 * script never changes them, prints their values and the kernel set OpenBLAS picked
 * (`openblas_get_corename`). The kit's OpenBLAS (through FFI) and PyTorch's run under the same
 * setting, in the same command. To compare the AVX-512 path, unset both for the whole command
 * (never inside the kit, its tests or CI):
 *   env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE deno run -A bench/train_step.ts
 *
 * PyTorch runs with `torch.set_num_threads(2)` (both cores, like the kit's BLAS) and also with
 * 1 thread, half of `--torch-runs` before the kit's backends and half after. The reference is
 * the fastest run median over all of them: on a shared 2-core machine PyTorch's 2 OpenMP threads
 * can be several times slower than 1 (measured 640 vs 210 ms under load), and the kit must not
 * look faster only because PyTorch's threads collided with other work.
 * Pass `--torch-threads 2` for the 2-thread figure alone.
 *
 * Output: a table (backend, ms/step, ratio vs PyTorch), then exactly one last line
 *   RESULT train_step ms_per_step=<best kit backend ms> speedup=<torch ms / kit ms>
 * (speedup above 1 means the kit is faster; `nan` when PyTorch could not run).
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { fileURLToPath as fromFileUrl } from "node:url";
import { helpText, parseFlags, runMain, UsageError } from "../lib/cli/args.ts";
import { availableBackends, loadOpenBlas, webgpuAdapterInfo } from "../lib/backend/mod.ts";
import { BACKEND_NAMES, type BackendName, parseBackendName } from "../lib/backend/types.ts";
import { initBackendAndConvGrad } from "../lib/train/init_backend.ts";
import { countParamsForConfig, UNET_PRESETS } from "../lib/models/unet.ts";
import { countParams } from "../lib/nn/mod.ts";
import { AdamW, computeGrads } from "../lib/train/optim.ts";
import { BENCH_TOKENS, unetFixture } from "./unet_fixture.ts";
import { waitChild } from "./child_process.ts";

const SPEC = {
  batch: { type: "int", default: 32, min: 1, help: "batch size" },
  steps: { type: "int", default: 10, min: 1, help: "timed steps per backend (median reported)" },
  warmup: { type: "int", default: 1, min: 1, help: "untimed steps first (step 1 is one)" },
  backends: {
    type: "string",
    default: "all",
    help: "comma-separated backends, or all (every available one except webgpu on a software " +
      "adapter); unavailable ones are skipped with the reason",
  },
  "budget-s": {
    type: "float",
    default: 20,
    min: 0,
    help: "stop timing a backend once its timed steps took this long (at least one step runs)",
  },
  profile: {
    type: "string",
    default: "cpu-blas",
    help: "comma-separated backends to profile (tf.profile + phase split); empty for none",
  },
  "profile-steps": { type: "int", default: 2, min: 1, help: "profiled steps (kernel ms averaged)" },
  "blas-threads": {
    type: "int",
    min: 1,
    help: "OpenBLAS threads for the cpu-blas backend (default: the kit's choice, all cores)",
  },
  "no-torch": { type: "bool", default: false, help: "skip the PyTorch reference" },
  python: { type: "string", default: "/usr/bin/python3", help: "interpreter with torch 1.13" },
  "torch-device": {
    type: "choice",
    choices: ["cpu", "cuda"],
    default: "cpu",
    help: "where PyTorch runs: cpu, or cuda (the peer of webgpu on an accelerator VM)",
  },
  "torch-steps": { type: "int", default: 8, min: 1, help: "timed PyTorch steps per run" },
  "torch-runs": {
    type: "int",
    default: 2,
    min: 1,
    help: "PyTorch runs per thread setting (half before, half after the kit)",
  },
  "torch-threads": {
    type: "floats",
    default: [2, 1] as number[],
    help: "PyTorch thread settings to run; the fastest run median of all is the reference",
  },
  seed: { type: "int", default: 0, min: 0, help: "seed of weights and data" },
  child: { type: "string", help: "internal: run one backend and print its JSON" },
} as const;

const TOP_KERNELS = 15;
const CHILD_TAG = "TRAIN_STEP_JSON ";

/** What one backend's subprocess reports. */
interface BackendReport {
  backend: string;
  details: string;
  params: number;
  msPerStep: number;
  timesMs: number[];
  warmupMs: number[];
  losses: number[];
  tensorsAfterStep1: number;
  tensorsAfterLast: number;
  peakRssMiB: number;
  profile?: ProfileReport;
}

interface ProfileReport {
  /** Median wall time of the loss alone, of loss + gradients, and of one AdamW update. */
  forwardMs: number;
  forwardBackwardMs: number;
  adamwMs: number;
  /** Steps profiled; the kernel numbers below are per step (averaged). */
  profiledSteps: number;
  /** Wall time of a profiled step (gradients + AdamW) and the kernel time inside it. */
  profiledStepWallMs: number;
  kernelTotalMs: number;
  kernelGradMs: number;
  kernelAdamwMs: number;
  kernelCalls: number;
  /** Kernel names by total time per step, split by phase, with the costliest input shapes. */
  top: KernelRow[];
}

interface KernelRow {
  name: string;
  ms: number;
  gradMs: number;
  adamwMs: number;
  calls: number;
  /** The input-shape signature with the largest total time for this kernel, and its share. */
  topShapes: string;
  topShapesMs: number;
}

interface TorchReport {
  params: number;
  ms_per_step: number;
  times_ms: number[];
  torch: string;
  threads: number;
  /** "cpu" or "cuda (<GPU name>)". */
  device?: string;
  losses: number[];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Peak resident set size of this process (Linux VmHWM), else the current RSS. */
function peakRssMiB(): number {
  try {
    const m = /VmHWM:\s+(\d+)\s+kB/.exec(Deno.readTextFileSync("/proc/self/status"));
    if (m) return Number(m[1]) / 1024;
  } catch {
    // Not Linux: fall through to the current RSS.
  }
  return Deno.memoryUsage().rss / 2 ** 20;
}

function parseList(s: string, flag: string): BackendName[] {
  try {
    return s.split(",").map((x) => x.trim()).filter((x) => x !== "").map((x) =>
      parseBackendName(x, flag)
    );
  } catch (e) {
    throw new UsageError(`bench/train_step.ts: ${(e as Error).message}`);
  }
}

/** Run one backend in this process; the parent reads the tagged JSON line. */
async function runChild(name: BackendName, f: ReturnType<typeof flags>): Promise<BackendReport> {
  const info = await initBackendAndConvGrad(name, { quiet: true });
  let details = `${info.tfBackend}: ${info.details}`;
  const blasThreads = f["blas-threads"];
  if (blasThreads !== undefined && info.blas) {
    loadOpenBlas()!.setThreads(blasThreads);
    details += ` (--blas-threads: now ${loadOpenBlas()!.threads()})`;
  }
  const { cfg, params, loss } = unetFixture(f.batch, f.seed);
  const nParams = countParams(params);
  if (nParams !== countParamsForConfig(cfg)) {
    throw new Error(
      `countParams(${nParams}) != countParamsForConfig(${countParamsForConfig(cfg)})`,
    );
  }
  const opt = new AdamW(params, { weightDecay: 0.01 });
  const lr = 1e-4;

  // One full step; reading the loss after the update waits for every queued kernel (webgpu).
  const step = async (): Promise<{ ms: number; loss: number }> => {
    const t0 = performance.now();
    const { value, grads } = computeGrads(params, loss);
    opt.step(grads, lr);
    const v = (await value.data())[0];
    const ms = performance.now() - t0;
    tf.dispose([value, ...Object.values(grads)]);
    return { ms, loss: v };
  };

  const losses: number[] = [];
  const warmupMs: number[] = [];
  let tensorsAfterStep1 = -1;
  for (let i = 0; i < f.warmup; i++) {
    const r = await step();
    warmupMs.push(r.ms);
    losses.push(r.loss);
    if (i === 0) tensorsAfterStep1 = tf.memory().numTensors;
  }
  const timesMs: number[] = [];
  let spent = 0;
  while (timesMs.length < f.steps && (timesMs.length === 0 || spent < f["budget-s"] * 1000)) {
    const r = await step();
    timesMs.push(r.ms);
    losses.push(r.loss);
    spent += r.ms;
  }
  const tensorsAfterLast = tf.memory().numTensors;

  const report: BackendReport = {
    backend: name,
    details,
    params: nParams,
    msPerStep: median(timesMs),
    timesMs,
    warmupMs,
    losses,
    tensorsAfterStep1,
    tensorsAfterLast,
    peakRssMiB: 0,
  };
  if (parseList(f.profile, "--profile").includes(name)) {
    report.profile = await profileSteps(params, opt, loss, lr, f["profile-steps"]);
  }
  report.peakRssMiB = peakRssMiB();
  return report;
}

/** Where a step's time goes: phase split (median of 3 each) and tf.profile kernel times. */
async function profileSteps(
  params: Record<string, tf.Variable>,
  opt: AdamW,
  loss: () => tf.Scalar,
  lr: number,
  steps: number,
): Promise<ProfileReport> {
  const reps = 3;
  const timeIt = async (f: () => Promise<void>) => {
    const ms: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      await f();
      ms.push(performance.now() - t0);
    }
    return median(ms);
  };
  const forwardMs = await timeIt(async () => {
    const l = loss();
    await l.data();
    l.dispose();
  });
  const forwardBackwardMs = await timeIt(async () => {
    const { value, grads } = computeGrads(params, loss);
    await value.data();
    tf.dispose([value, ...Object.values(grads)]);
  });
  // AdamW alone, on fixed gradients (a few extra updates do not matter for timing).
  const fixed = computeGrads(params, loss);
  const probe = Object.values(params)[0];
  const adamwMs = await timeIt(async () => {
    opt.step(fixed.grads, lr);
    await probe.data();
  });
  tf.dispose([fixed.value, ...Object.values(fixed.grads)]);

  // tf.profile's NaN check reads every kernel output back: off, so the wall time stays close.
  const prevCheck = tf.env().getBool("CHECK_COMPUTATION_FOR_ERRORS");
  tf.env().set("CHECK_COMPUTATION_FOR_ERRORS", false);
  type Acc = { grad: number; adamw: number; calls: number; shapes: Map<string, number> };
  const agg = new Map<string, Acc>();
  const add = (
    kernels: Awaited<ReturnType<typeof tf.profile>>["kernels"],
    phase: "grad" | "adamw",
  ) => {
    for (const k of kernels) {
      const ms = typeof k.kernelTimeMs === "number" ? k.kernelTimeMs : 0;
      const a = agg.get(k.name) ?? { grad: 0, adamw: 0, calls: 0, shapes: new Map() };
      a[phase] += ms;
      a.calls += 1;
      const sig = k.inputShapes.map((sh) => `[${sh}]`).join(" ");
      a.shapes.set(sig, (a.shapes.get(sig) ?? 0) + ms);
      agg.set(k.name, a);
    }
  };
  let wall = 0;
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    let grads: Record<string, tf.Tensor> = {};
    const g = await tf.profile(() => {
      const r = computeGrads(params, loss);
      grads = r.grads;
      return [r.value, ...Object.values(r.grads)];
    });
    // tf.profile hands back ONE shared object that the next call overwrites: read it now.
    add(g.kernels, "grad");
    const outs = g.result as tf.Tensor[];
    const u = await tf.profile(() => opt.step(grads, lr));
    add(u.kernels, "adamw");
    wall += performance.now() - t0;
    // tf.profile returns the function's tensors undisposed: free them.
    tf.dispose(outs);
  }
  tf.env().set("CHECK_COMPUTATION_FOR_ERRORS", prevCheck);
  const rows: KernelRow[] = [...agg].map(([name, a]) => {
    const [topShapes, topShapesMs] = [...a.shapes].reduce((p, q) => (q[1] > p[1] ? q : p));
    return {
      name,
      ms: (a.grad + a.adamw) / steps,
      gradMs: a.grad / steps,
      adamwMs: a.adamw / steps,
      calls: a.calls / steps,
      topShapes,
      topShapesMs: topShapesMs / steps,
    };
  }).sort((p, q) => q.ms - p.ms);
  const sum = (f: (r: KernelRow) => number) => rows.reduce((acc, r) => acc + f(r), 0);
  return {
    forwardMs,
    forwardBackwardMs,
    adamwMs,
    profiledSteps: steps,
    profiledStepWallMs: wall / steps,
    kernelTotalMs: sum((r) => r.ms),
    kernelGradMs: sum((r) => r.gradMs),
    kernelAdamwMs: sum((r) => r.adamwMs),
    kernelCalls: sum((r) => r.calls),
    top: rows.slice(0, TOP_KERNELS),
  };
}

function flags() {
  return parseFlags(Deno.args, SPEC, "bench/train_step.ts");
}

/** Spawn this script for one backend; `null` with a reason when it failed. */
async function spawnBackend(
  name: BackendName,
  argv: string[],
  timeoutS: number,
): Promise<{ report: BackendReport | null; reason: string }> {
  const self = fromFileUrl(import.meta.url);
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--max-old-space-size=6144", self, ...argv, "--child", name],
    stdout: "piped",
    stderr: "piped",
  });
  const out = await waitChild(cmd.spawn(), timeoutS);
  const stderr = out.stderrLines.join("\n");
  const line = out.stdout.split("\n").find((l) => l.startsWith(CHILD_TAG));
  if (out.timedOut) return { report: null, reason: `killed after ${timeoutS} s` };
  if (!out.success || !line) {
    const tail = stderr.split("\n").slice(-3).join(" | ");
    return { report: null, reason: `exit code ${out.code}: ${tail || "no output"}` };
  }
  if (stderr) console.log(`  (${name} stderr) ${stderr.split("\n").slice(-3).join(" | ")}`);
  return { report: JSON.parse(line.slice(CHILD_TAG.length)) as BackendReport, reason: "" };
}

/** Run bench/torch_unet.py and parse its JSON; `null` with a reason when it could not run. */
async function runTorch(
  f: ReturnType<typeof flags>,
  threads: number,
): Promise<{ torch: TorchReport | null; reason: string }> {
  const script = fromFileUrl(new URL("./torch_unet.py", import.meta.url));
  const args = [script, "--batch", `${f.batch}`, "--steps", `${f["torch-steps"]}`];
  args.push("--warmup", "2", "--threads", `${threads}`, "--seed", `${f.seed}`);
  args.push("--device", f["torch-device"]);
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(f.python, { args, stdout: "piped", stderr: "piped" }).output();
  } catch (e) {
    return { torch: null, reason: `cannot start ${f.python}: ${(e as Error).message}` };
  }
  const stdout = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-2).join(" | ");
    return { torch: null, reason: `${f.python} ${script} failed (${out.code}): ${err}` };
  }
  try {
    return { torch: JSON.parse(stdout.split("\n").at(-1)!) as TorchReport, reason: "" };
  } catch {
    return { torch: null, reason: `torch_unet.py printed no JSON: ${stdout.slice(0, 200)}` };
  }
}

/** Why `name` is not available, from the error its initialisation throws. */
async function unavailableReason(name: BackendName): Promise<string> {
  try {
    await initBackendAndConvGrad(name, { quiet: true });
    return "reported unavailable by availableBackends()";
  } catch (e) {
    return (e as Error).message.split("\n")[0];
  }
}

/** The CPU kernel set OpenBLAS picked (`openblas_get_corename`), read-only. */
function openBlasCoreName(): string {
  const blas = loadOpenBlas();
  if (!blas) return "none (OpenBLAS not loaded)";
  try {
    const lib = Deno.dlopen(blas.path, {
      openblas_get_corename: { parameters: [], result: "pointer" },
    });
    const ptr = lib.symbols.openblas_get_corename();
    const name = ptr ? Deno.UnsafePointerView.getCString(ptr) : "?";
    lib.close();
    return name;
  } catch (e) {
    return `unknown (${(e as Error).message})`;
  }
}

function fmt(ms: number): string {
  return ms >= 100 ? ms.toFixed(0) : ms.toFixed(1);
}

async function main(): Promise<void> {
  const f = flags();
  if (f.help) {
    console.log(helpText("bench/train_step.ts", "UNet training-step benchmark", SPEC));
    return;
  }
  if (f.child !== undefined) {
    const report = await runChild(parseBackendName(f.child, "--child"), f);
    console.log(CHILD_TAG + JSON.stringify(report));
    return;
  }
  const all = f.backends.trim() === "all";
  const wanted = all ? [...BACKEND_NAMES] : parseList(f.backends, "--backends");
  if (wanted.length === 0) throw new UsageError("bench/train_step.ts: --backends lists nothing");
  parseList(f.profile, "--profile");

  const env = (k: string) => Deno.env.get(k) ?? "(unset)";
  console.log(
    `train_step: UNET_PRESETS.small, batch ${f.batch}, latents 8x8x4, context [${f.batch}, ${BENCH_TOKENS}, 64]`,
  );
  console.log(
    `BLAS setting: OPENBLAS_CORETYPE=${env("OPENBLAS_CORETYPE")} OPENBLAS_L2_SIZE=${
      env("OPENBLAS_L2_SIZE")
    } (inherited by the kit and PyTorch alike; never changed here)`,
  );
  console.log(
    `cores: ${navigator.hardwareConcurrency}; OpenBLAS kernels in use: ${openBlasCoreName()}`,
  );
  const kitParams = countParamsForConfig(UNET_PRESETS.small);

  // PyTorch runs before and after the kit's backends and the faster median counts: on a shared
  // machine its OpenMP threads suffer most from other load, and the lower figure is the
  // conservative reference for the kit's speedup.
  const torchRuns: TorchReport[] = [];
  let torchSkipped = f["no-torch"];
  const torchThreads = f["torch-threads"].map((n) => {
    if (!Number.isInteger(n) || n < 1) {
      throw new UsageError(`bench/train_step.ts: --torch-threads expects positive integers`);
    }
    return n;
  });
  const torchRun = async (when: string) => {
    for (const th of torchThreads) await torchRunWith(th, when);
  };
  const torchRunWith = async (threads: number, when: string) => {
    if (torchSkipped) return;
    const r = await runTorch(f, threads);
    if (!r.torch) {
      console.log(`pytorch: skipped (${r.reason})`);
      torchSkipped = true;
      return;
    }
    const tr = r.torch;
    if (tr.params !== kitParams) {
      throw new Error(
        `PyTorch model has ${tr.params} parameters, the kit's UNet ${kitParams}: ` +
          "bench/torch_unet.py no longer mirrors UNET_PRESETS.small",
      );
    }
    torchRuns.push(tr);
    console.log(
      `pytorch ${tr.torch} on ${tr.device ?? "cpu"} (${tr.threads} thread${
        tr.threads > 1 ? "s" : ""
      }, ${when}): params ${tr.params} = kit ` +
        `${kitParams}; ${fmt(tr.ms_per_step)} ms/step (runs ${tr.times_ms.map(fmt).join(", ")})`,
    );
  };
  const torchBefore = Math.ceil(f["torch-runs"] / 2);
  for (let i = 0; i < torchBefore; i++) await torchRun("before the kit");

  const available = await availableBackends();
  const reports: BackendReport[] = [];
  const passOn = [
    "--batch",
    `${f.batch}`,
    "--steps",
    `${f.steps}`,
    "--warmup",
    `${f.warmup}`,
    "--budget-s",
    `${f["budget-s"]}`,
    "--profile",
    f.profile,
    "--seed",
    `${f.seed}`,
    ...(f["blas-threads"] === undefined ? [] : ["--blas-threads", `${f["blas-threads"]}`]),
  ];
  for (const name of wanted) {
    if (!available.includes(name)) {
      console.log(`${name}: skipped, unavailable (${await unavailableReason(name)})`);
      continue;
    }
    const adapter = name === "webgpu" ? await webgpuAdapterInfo() : null;
    if (all && adapter?.includes("(fallback)")) {
      // Mesa lavapipe measured ~75 s of shader compilation plus ~25 s per step here: it would
      // take more than the whole default run and says nothing about GPU speed.
      console.log(
        `webgpu: skipped by default, software adapter "${adapter}" (~75 s warm-up, ~25 s/step); ` +
          "include it with --backends webgpu",
      );
      continue;
    }
    // Generous: warm-up steps may be slow, but a hung backend must not stall the run.
    const timeout = 120 + 4 * f["budget-s"];
    const { report, reason } = await spawnBackend(name, passOn, timeout);
    if (!report) {
      console.log(`${name}: failed (${reason})`);
      continue;
    }
    if (report.params !== kitParams) {
      throw new Error(`${name}: countParams ${report.params} != ${kitParams}`);
    }
    reports.push(report);
    const stable = report.tensorsAfterStep1 === report.tensorsAfterLast;
    console.log(
      `${name}: ${report.details}\n  ${
        fmt(report.msPerStep)
      } ms/step (median of ${report.timesMs.length}: ${
        report.timesMs.map(fmt).join(", ")
      }; warm-up ${report.warmupMs.map(fmt).join(", ")})` +
        `; tensors after step 1 / step ${f.warmup + report.timesMs.length}: ` +
        `${report.tensorsAfterStep1} / ${report.tensorsAfterLast} (${
          stable ? "stable" : "LEAK"
        }); peak RSS ${report.peakRssMiB.toFixed(0)} MiB; loss ${report.losses[0].toFixed(4)} -> ${
          report.losses.at(-1)!.toFixed(4)
        }`,
    );
  }

  // Same seed, same data: every tfjs backend must trace the same losses up to float rounding.
  if (reports.length > 1) {
    const ref = reports[0];
    for (const r of reports.slice(1)) {
      const n = Math.min(ref.losses.length, r.losses.length);
      let worst = 0;
      for (let i = 0; i < n; i++) {
        worst = Math.max(worst, Math.abs(r.losses[i] - ref.losses[i]) / Math.abs(ref.losses[i]));
      }
      console.log(
        `losses ${r.backend} vs ${ref.backend}: max relative difference ${
          worst.toExponential(2)
        } over ${n} steps`,
      );
    }
  }

  for (let i = torchBefore; i < f["torch-runs"]; i++) await torchRun("after the kit");
  // Reference: the fastest run median over every thread setting (the conservative choice).
  const torch = torchRuns.length
    ? torchRuns.reduce((p, q) => (q.ms_per_step < p.ms_per_step ? q : p))
    : null;

  console.log("\n| backend | ms/step | vs PyTorch (torch ms / kit ms) | peak RSS MiB | tensors |");
  console.log("| --- | --- | --- | --- | --- |");
  for (const th of torchThreads) {
    const runs = torchRuns.filter((r) => r.threads === th);
    if (runs.length === 0) continue;
    const best = Math.min(...runs.map((r) => r.ms_per_step));
    const ref = torch && torch.threads === th ? " (reference)" : "";
    console.log(
      `| pytorch ${f["torch-device"]}, ${th} thread${
        th > 1 ? "s" : ""
      }${ref}, best of ${runs.length} run medians | ${fmt(best)} | ${
        (torch!.ms_per_step / best).toFixed(2)
      } | - | - |`,
    );
  }
  for (const r of reports) {
    const ratio = torch ? (torch.ms_per_step / r.msPerStep).toFixed(2) : "n/a";
    const stable = r.tensorsAfterStep1 === r.tensorsAfterLast ? "stable" : "LEAK";
    console.log(
      `| ${r.backend} | ${fmt(r.msPerStep)} | ${ratio} | ${r.peakRssMiB.toFixed(0)} | ${stable} |`,
    );
  }

  for (const r of reports) {
    const p = r.profile;
    if (!p) continue;
    console.log(
      `\nprofile ${r.backend} (where one step's time goes): forward ${
        fmt(p.forwardMs)
      } ms, forward+backward ${fmt(p.forwardBackwardMs)} ms, AdamW ${fmt(p.adamwMs)} ms ` +
        `(medians of 3).\ntf.profile, per step over ${p.profiledSteps} steps: wall ${
          fmt(p.profiledStepWallMs)
        } ms, kernel time ${fmt(p.kernelTotalMs)} ms (gradients ${fmt(p.kernelGradMs)}, AdamW ${
          fmt(p.kernelAdamwMs)
        }) in ${p.kernelCalls} kernel calls; the rest is JS outside kernels ` +
        "(autodiff tape, tidy, profiler).",
    );
    console.log(
      "| kernel | ms/step | % of kernel time | in gradients | in AdamW | calls | " +
        "costliest input shapes (ms) |",
    );
    console.log("| --- | --- | --- | --- | --- | --- | --- |");
    for (const k of p.top) {
      const pct = (100 * k.ms / p.kernelTotalMs).toFixed(1);
      console.log(
        `| ${k.name} | ${fmt(k.ms)} | ${pct} | ${fmt(k.gradMs)} | ${
          fmt(k.adamwMs)
        } | ${k.calls} | ` +
          `${k.topShapes} (${fmt(k.topShapesMs)}) |`,
      );
    }
  }

  const best = reports.length
    ? reports.reduce((a, c) => (c.msPerStep < a.msPerStep ? c : a))
    : null;
  if (best) console.log(`\nbest kit backend: ${best.backend}`);
  const ms = best ? best.msPerStep.toFixed(1) : "nan";
  const speedup = best && torch ? (torch.ms_per_step / best.msPerStep).toFixed(3) : "nan";
  console.log(`RESULT train_step ms_per_step=${ms} speedup=${speedup}`);
}

if (import.meta.main) await runMain(main);
