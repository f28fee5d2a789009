/**
 * Sampling benchmark: images per second of the default preset's UNet (random weights, 8x8x4
 * latents, text context [24, 64]) under DPM-Solver++ 2M (25 steps, guidance 4, a batch of 8
 * prompts, one image each) through
 *
 * - (a) onnxruntime via the kit's pipeline code (`exportRun`, `loadOnnxPipeline`, `txt2img`),
 * - (b) TensorFlow.js (the same sampler driven by `guidedUnet`, and `generate` end to end),
 * - (c) PyTorch eager on the CPU (`bench/torch_sample.py`: bench/torch_unet.py's architecture,
 *   loaded with the kit's weights, and the same sampler loop),
 *
 * all in one run, with the same thread count everywhere (`--threads`, default all cores):
 * onnxruntime's intra-op threads, OpenBLAS's threads under TensorFlow.js's cpu backend (its
 * other kernels are single-threaded JavaScript) and `torch.set_num_threads`.
 *
 * The run folder is built here: the default preset's autoencoder, CLIP and UNet, randomly
 * initialised (1-D parameters perturbed so norms are not exactly 1/0), saved like trained ones,
 * exported to ONNX. Every engine samples from the same initial noise with the same text states
 * (the ONNX text encoder's), and the outputs are cross-checked: ONNX vs TF.js images (max pixel
 * difference), PyTorch vs TF.js final latents (max absolute difference), the same timesteps.
 *
 * What is timed, per run (median over `--runs` after `--warmup`):
 * - sampler loop: the 25 guided UNet calls plus the JavaScript around them (NHWC/NCHW copies,
 *   guidance, DPM-Solver++ updates, feed checks). For ONNX it is txt2img's wall time minus its
 *   text-encoder and VAE-decoder calls; for TF.js and PyTorch the sampler call itself.
 *   images/s = batch / loop time; the RESULT line compares these.
 * - raw UNet: the same 25 calls straight through onnxruntime's `InferenceSession.run` on
 *   prebuilt tensors; the loop's overhead on top of it is reported in percent (goal: < 5%).
 * - end to end: whole txt2img / `generate` (text encoder, sampler loop, VAE decoder).
 *
 * Usage (default run: about a minute on 2 idle cores):
 *   deno run -A bench/sample.ts [--batch 8] [--steps 25] [--guidance 4] [--runs 3] [--warmup 1]
 *     [--threads N] [--engines onnx,tfjs,torch] [--backend cpu-blas] [--python /usr/bin/python3]
 *     [--seed 0]
 * Output: the settings, one line per engine, the checks, then exactly one last line
 *   RESULT sample images_per_s=<onnx loop images/s> speedup=<torch loop time / onnx loop time>
 * (`nan` where an engine was skipped).
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import * as ort from "onnxruntime-node";
import { fileURLToPath } from "node:url";
import { helpText, parseFlags, runMain, UsageError } from "../lib/cli/args.ts";
import { loadOpenBlas } from "../lib/backend/mod.ts";
import {
  countParamsForConfig,
  initAutoencoder,
  initClip,
  initUnet,
  type UnetConfig,
  WordTokenizer,
} from "../lib/models/mod.ts";
import {
  exportRun,
  generate,
  guidedUnet,
  loadRun,
  RECIPE_PRESETS,
  saveModel,
  unetConfigFor,
} from "../lib/recipe/mod.ts";
import { initBackendAndConvGrad, type TensorDataMap, writeSafetensors } from "../lib/train/mod.ts";
import { getSampler, initialNoise, timesteps } from "../lib/diffusion/mod.ts";
import { encodePrompts, loadOnnxPipeline, type OnnxPipeline, txt2img } from "../lib/onnx/mod.ts";
import { disposeParams, type Params } from "../lib/nn/mod.ts";
import type { RgbImage } from "../lib/plot/mod.ts";
import { Rng, STREAM } from "../lib/util/rng.ts";
import { writeJsonAtomic } from "../lib/util/atomic.ts";

const SPEC = {
  batch: { type: "int", default: 8, min: 1, help: "prompts (one image each) per sampling run" },
  steps: { type: "int", default: 25, min: 1, help: "DPM-Solver++ 2M steps" },
  guidance: { type: "float", default: 4, min: 0, help: "classifier-free guidance scale" },
  runs: { type: "int", default: 3, min: 1, help: "timed runs per engine (median reported)" },
  warmup: { type: "int", default: 1, min: 0, help: "untimed runs first" },
  threads: {
    type: "int",
    default: navigator.hardwareConcurrency ?? 1,
    min: 1,
    help: "threads for every engine (onnxruntime intra-op, OpenBLAS, torch)",
  },
  engines: { type: "string", default: "onnx,tfjs,torch", help: "comma-separated engines to run" },
  backend: {
    type: "string",
    default: "cpu-blas",
    help: "TensorFlow.js backend for the tfjs engine",
  },
  python: { type: "string", default: "/usr/bin/python3", help: "interpreter with torch" },
  seed: { type: "int", default: 0, min: 0, help: "seed of weights and noise" },
} as const;

const ENGINES = ["onnx", "tfjs", "torch"] as const;
type Engine = typeof ENGINES[number];
const SCHEDULER = "dpmpp_2m";
const COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "cyan"];
const SHAPES = ["circle", "square", "triangle", "star", "cross", "diamond"];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const fmt = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms.toFixed(1));

/** Add seeded noise to 1-D parameters so norms and biases are not exactly 1/0. */
function perturb(p: Params, seed: number): Params {
  const rng = Rng.stream(seed, [STREAM.init, 99]);
  for (const v of Object.values(p)) {
    if (v.rank === 1) v.assign(tf.add(v, tf.mul(tf.tensor(rng.normal(v.size), v.shape), 0.3)));
  }
  return p;
}

/** A run folder with the default preset's models, randomly initialised. */
async function makeRun(dir: string, prompts: string[], seed: number): Promise<UnetConfig> {
  const p = RECIPE_PRESETS.default;
  const tok = WordTokenizer.build(prompts, { contextLength: p.clip.model.contextLength });
  await Deno.mkdir(`${dir}/clip`, { recursive: true });
  await tok.save(`${dir}/clip/tokenizer.json`);
  const clipCfg = { ...p.clip.model, vocabSize: tok.vocabSize };
  const clip = perturb(initClip(clipCfg, Rng.stream(seed, [STREAM.init, 2])), seed + 1);
  await saveModel(`${dir}/clip/model`, { kind: "clip", config: clipCfg, params: clip });
  const aeCfg = p.autoencoder.model;
  const ae = perturb(initAutoencoder(aeCfg, Rng.stream(seed, [STREAM.init, 1])), seed + 2);
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
  const unet = perturb(initUnet(unetCfg, Rng.stream(seed, [STREAM.init, 3])), seed + 3);
  await saveModel(`${dir}/unet/model`, {
    kind: "unet",
    config: unetCfg,
    params: unet,
    extra: { schedule: p.unet.schedule, ema: false },
  });
  for (const x of [clip, ae, unet]) disposeParams(x);
  return unetCfg;
}

/** Add the wall time of each `obj.run` call to `acc.ms`; returns the unwrapped `run`. */
function timeCalls<R>(
  obj: { run: (...a: never[]) => Promise<R> },
  acc: { ms: number },
): (...a: never[]) => Promise<R> {
  const run = obj.run.bind(obj);
  obj.run = async (...a: never[]) => {
    const t0 = performance.now();
    try {
      return await run(...a);
    } finally {
      acc.ms += performance.now() - t0;
    }
  };
  return run;
}

interface OnnxTimes {
  /** Whole txt2img. */
  e2e: number;
  /** Text encoder and VAE decoder calls inside it. */
  text: number;
  decode: number;
  /** The sampler loop: e2e - text - decode. */
  loop: number;
  /** Inside onnxruntime's InferenceSession.run for the loop's UNet calls. */
  ortInLoop: number;
  /** The same UNet calls raw, timed right after the loop. */
  raw: number;
}

/** Time accumulators of the pipeline's sessions (see timeCalls). */
interface OnnxAcc {
  text: { ms: number };
  decode: { ms: number };
  ort: { ms: number };
  /** The UNet's InferenceSession.run without the timing wrapper. */
  rawRun: (feeds: Record<string, ort.Tensor>) => Promise<unknown>;
}

/** One txt2img run with the split of its time, then the same UNet calls raw. */
async function onnxRound(
  pipe: OnnxPipeline,
  acc: OnnxAcc,
  o: { prompts: string[]; steps: number; guidance: number; seed: number },
  raw: { feeds: Record<string, ort.Tensor>; ts: number[] },
): Promise<{ times: OnnxTimes; images: RgbImage[] }> {
  acc.text.ms = acc.decode.ms = acc.ort.ms = 0;
  const t0 = performance.now();
  const images = await txt2img(pipe, { ...o, n: 1, scheduler: SCHEDULER });
  const e2e = performance.now() - t0;
  const loop = e2e - acc.text.ms - acc.decode.ms;
  // The raw calls: one timestep tensor per step, as the loop feeds, everything else prebuilt.
  const tName = pipe.io.unet.timestep, batch = raw.feeds[pipe.io.unet.sample].dims[0];
  const tFeeds = raw.ts.map((t) => new ort.Tensor("float32", new Float32Array(batch).fill(t)));
  const r0 = performance.now();
  for (const t of tFeeds) await acc.rawRun({ ...raw.feeds, [tName]: t });
  const rawMs = performance.now() - r0;
  return {
    times: {
      e2e,
      text: acc.text.ms,
      decode: acc.decode.ms,
      ortInLoop: acc.ort.ms,
      loop,
      raw: rawMs,
    },
    images,
  };
}

interface TorchReport {
  params: number;
  threads: number;
  torch: string;
  timesteps: number[];
  loop_ms: number[];
  ms: number;
  unet_ms: number;
}

async function runTorch(
  f: ReturnType<typeof flags>,
  job: string,
  tensors: string,
  out: string,
): Promise<{ report: TorchReport | null; reason: string }> {
  const script = fileURLToPath(new URL("./torch_sample.py", import.meta.url));
  const args = [script, "--job", job, "--tensors", tensors, "--out", out];
  args.push("--threads", `${f.threads}`, "--runs", `${f.runs}`, "--warmup", `${f.warmup}`);
  let res: Deno.CommandOutput;
  try {
    res = await new Deno.Command(f.python, { args, stdout: "piped", stderr: "piped" }).output();
  } catch (e) {
    return { report: null, reason: `cannot start ${f.python}: ${(e as Error).message}` };
  }
  const stdout = new TextDecoder().decode(res.stdout).trim();
  if (!res.success) {
    const err = new TextDecoder().decode(res.stderr).trim().split("\n").slice(-2).join(" | ");
    return { report: null, reason: `${f.python} ${script} failed (${res.code}): ${err}` };
  }
  try {
    return { report: JSON.parse(stdout.split("\n").at(-1)!) as TorchReport, reason: "" };
  } catch {
    return { report: null, reason: `torch_sample.py printed no JSON: ${stdout.slice(0, 200)}` };
  }
}

function maxPixelDiff(a: RgbImage[], b: RgbImage[]): number {
  let m = 0;
  a.forEach((im, i) => {
    for (let k = 0; k < im.data.length; k++) m = Math.max(m, Math.abs(im.data[k] - b[i].data[k]));
  });
  return m;
}

function flags() {
  return parseFlags(Deno.args, SPEC, "bench/sample.ts");
}

async function main(): Promise<void> {
  const f = flags();
  if (f.help) {
    console.log(helpText("bench/sample.ts", "sampling benchmark: onnx vs tfjs vs torch", SPEC));
    return;
  }
  const engines = f.engines.split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (const e of engines) {
    if (!(ENGINES as readonly string[]).includes(e)) {
      throw new UsageError(
        `bench/sample.ts: --engines: unknown engine "${e}"; expected onnx, tfjs, torch`,
      );
    }
  }
  const want = (e: Engine) => engines.includes(e);
  const b = f.batch, th = f.threads;
  const prompts = Array.from(
    { length: b },
    (_, i) => `a ${COLOURS[i % COLOURS.length]} ${SHAPES[(i * 5 + 1) % SHAPES.length]}`,
  );

  const info = await initBackendAndConvGrad(f.backend, { quiet: true });
  const blas = info.blas ? loadOpenBlas() : null;
  blas?.setThreads(th);
  const root = await Deno.makeTempDir({ prefix: "xgen_bench_sample_" });
  try {
    const runDir = `${root}/run`, onnxDir = `${root}/onnx`;
    const unetCfg = await makeRun(runDir, prompts, f.seed);
    const params = countParamsForConfig(unetCfg);
    const p = RECIPE_PRESETS.default;
    const T = p.clip.model.contextLength, D = unetCfg.contextDim;
    console.log(
      `sample: default preset UNet (${params.toLocaleString("en")} params, random weights), ` +
        `latents 8x8x${unetCfg.inChannels}, context [${T}, ${D}]; ${SCHEDULER} ${f.steps} steps, ` +
        `guidance ${f.guidance}, batch ${b} prompts x 1 image (UNet batch ${2 * b})`,
    );
    console.log(
      `threads: ${th} everywhere (onnxruntime intraOpNumThreads, OpenBLAS under tfjs ` +
        `${info.tfBackend}${
          blas ? ` = ${blas.threads()}` : " (no BLAS)"
        }, torch.set_num_threads); ` +
        `cores: ${navigator.hardwareConcurrency}; runs: ${f.runs} timed after ${f.warmup} warm-up`,
    );
    const e0 = performance.now();
    await exportRun(runDir, onnxDir);
    console.log(`export: ${fmt(performance.now() - e0)} ms (exportRun of the whole run folder)`);

    const pipe = await loadOnnxPipeline(onnxDir, { threads: th, executionProviders: ["cpu"] });
    const run = await loadRun(runDir);
    try {
      const [lh, lw, lc] = [8, 8, unetCfg.inChannels];
      const per = lh * lw * lc;
      // The same text states and noise for every engine: the ONNX text encoder's, txt2img's draw.
      const { states } = await encodePrompts(pipe, ["", ...prompts]);
      const ctxPer = T * D;
      const ctx = new Float32Array(2 * b * ctxPer);
      const x = new Float32Array(b * per);
      prompts.forEach((_, j) => {
        x.set(initialNoise(f.seed, j, 0, per), j * per);
        ctx.set(states.subarray(0, ctxPer), j * ctxPer);
        ctx.set(states.subarray((j + 1) * ctxPer, (j + 2) * ctxPer), (b + j) * ctxPer);
      });
      const ts = timesteps(SCHEDULER, f.steps, run.schedule);
      const opts = { prompts, steps: f.steps, guidance: f.guidance, seed: f.seed };

      // PyTorch: before and after the in-process engines; the faster median is the reference.
      const torchRuns: TorchReport[] = [];
      let torchLatents: Float32Array | null = null;
      let torchSkip = want("torch") ? "" : "not in --engines";
      const job = `${root}/job.json`, tens = `${root}/in.safetensors`, zOut = `${root}/z.f32`;
      if (want("torch")) {
        await writeJsonAtomic(job, {
          unet: unetCfg,
          schedule: {
            num_train_timesteps: run.schedule.config.numTrainTimesteps,
            beta_start: run.schedule.config.betaStart,
            beta_end: run.schedule.config.betaEnd,
            beta_schedule: run.schedule.config.betaSchedule,
            prediction_type: run.schedule.config.predictionType,
          },
          steps: f.steps,
          guidance: f.guidance,
        });
        const tensors: TensorDataMap = {
          x: { shape: [b, lh, lw, lc], data: x },
          context: { shape: [2 * b, T, D], data: ctx },
        };
        for (const [k, v] of Object.entries(run.unet.params)) {
          tensors[`unet.${k}`] = { shape: v.shape, data: await v.data<"float32">() };
        }
        await writeSafetensors(tens, tensors);
      }
      const torchRun = async (when: string) => {
        if (torchSkip) return;
        const r = await runTorch(f, job, tens, zOut);
        if (!r.report) {
          torchSkip = r.reason;
          console.log(`torch: skipped (${r.reason})`);
          return;
        }
        const t = r.report;
        if (t.params !== params) {
          throw new Error(
            `torch_sample.py built ${t.params} parameters, the kit's UNet has ${params}: ` +
              "bench/torch_unet.py no longer mirrors lib/models/unet.ts",
          );
        }
        if (t.timesteps.join(",") !== ts.join(",")) {
          throw new Error(
            `torch_sample.py timesteps [${t.timesteps}] differ from the kit's [${ts}]`,
          );
        }
        torchRuns.push(t);
        torchLatents = new Float32Array((await Deno.readFile(zOut)).slice().buffer);
        console.log(
          `torch ${t.torch} (${t.threads} threads, ${when}): loop ${fmt(t.ms)} ms ` +
            `(runs ${t.loop_ms.map(fmt).join(", ")}), of which UNet ${fmt(t.unet_ms)} ms; ` +
            `${(b / (t.ms / 1000)).toFixed(2)} images/s`,
        );
      };
      await torchRun("before");

      // ONNX and TF.js alternate run by run, so load changes hit both alike.
      const acc = { text: { ms: 0 }, decode: { ms: 0 }, ort: { ms: 0 } };
      timeCalls(pipe.textEncoder, acc.text);
      timeCalls(pipe.vaeDecoder, acc.decode);
      const rawRun = timeCalls(pipe.unet.session, acc.ort) as OnnxAcc["rawRun"];
      const u = pipe.io.unet;
      const nchw = new Float32Array(2 * b * per);
      for (let i = 0; i < nchw.length; i++) nchw[i] = x[i % x.length];
      const rawFeeds = {
        [u.sample]: new ort.Tensor("float32", nchw, [2 * b, lc, lh, lw]),
        [u.context]: new ort.Tensor("float32", ctx, [2 * b, T, D]),
      };
      const onnxT: OnnxTimes[] = [];
      const tfLoop: number[] = [], tfE2e: number[] = [];
      let onnxImages: RgbImage[] = [], tfImages: RgbImage[] = [];
      let tfLatents: Float32Array | null = null;
      const sampler = getSampler(SCHEDULER);
      for (let i = 0; i < f.warmup + f.runs; i++) {
        const timed = i >= f.warmup;
        if (want("onnx")) {
          const r = await onnxRound(pipe, { ...acc, rawRun }, opts, { feeds: rawFeeds, ts });
          onnxImages = r.images;
          if (timed) onnxT.push(r.times);
        }
        if (want("tfjs")) {
          const t0 = performance.now();
          const model = guidedUnet(run, ctx, b, f.guidance);
          tfLatents = await sampler(model, x, run.schedule, { steps: f.steps, seed: f.seed });
          const t1 = performance.now();
          tfImages = await generate(run, { ...opts, n: 1, scheduler: SCHEDULER });
          const t2 = performance.now();
          if (timed) {
            tfLoop.push(t1 - t0);
            tfE2e.push(t2 - t1);
          }
        }
      }
      await torchRun("after");

      // Results.
      const rate = (ms: number) => b / (ms / 1000);
      const ipsText = (ms: number) => (Number.isFinite(ms) ? rate(ms).toFixed(2) : "-");
      let onnxLoop = NaN;
      if (onnxT.length) {
        const m = (k: keyof OnnxTimes) => median(onnxT.map((t) => t[k]));
        onnxLoop = m("loop");
        console.log(
          `onnx: loop ${fmt(onnxLoop)} ms (runs ${onnxT.map((t) => fmt(t.loop)).join(", ")}); ` +
            `${rate(onnxLoop).toFixed(2)} images/s; txt2img end to end ${fmt(m("e2e"))} ms ` +
            `(${rate(m("e2e")).toFixed(2)} images/s; text encoder ${fmt(m("text"))} ms, ` +
            `VAE decoder ${fmt(m("decode"))} ms)`,
        );
        const raw = m("raw"), over = (onnxLoop - raw) / raw * 100;
        const pct = (t: OnnxTimes, base: number) => ((t.loop - base) / base * 100).toFixed(1);
        console.log(
          `onnx: raw UNet ${f.steps} x InferenceSession.run ${fmt(raw)} ms ` +
            `(${fmt(raw / f.steps)} ms/call); JavaScript sampler-loop overhead on top of them ` +
            `${over.toFixed(1)}% (goal < 5%; per run ${
              onnxT.map((t) => pct(t, t.raw)).join(", ")
            }%)`,
        );
        // The same split inside one run (immune to load changing between loop and raw calls).
        console.log(
          `onnx: inside the loop, InferenceSession.run ${fmt(m("ortInLoop"))} ms, the rest ` +
            `(JavaScript) ${fmt(onnxLoop - m("ortInLoop"))} ms: overhead ${
              onnxT.map((t) => pct(t, t.ortInLoop)).join(", ")
            }% per run`,
        );
      }
      let tfMs = NaN;
      if (tfLoop.length) {
        tfMs = median(tfLoop);
        console.log(
          `tfjs (${info.name}): loop ${fmt(tfMs)} ms (runs ${tfLoop.map(fmt).join(", ")}); ` +
            `${rate(tfMs).toFixed(2)} images/s; generate end to end ${fmt(median(tfE2e))} ms ` +
            `(${rate(median(tfE2e)).toFixed(2)} images/s)`,
        );
      }
      const torchMs = torchRuns.length ? Math.min(...torchRuns.map((t) => t.ms)) : NaN;

      // Cross-checks: same images, same latents.
      if (onnxImages.length && tfImages.length) {
        console.log(
          `check: onnx vs tfjs images, max pixel diff ${maxPixelDiff(onnxImages, tfImages)}`,
        );
      }
      if (torchLatents && tfLatents) {
        const tl: Float32Array = torchLatents;
        let m = 0, rms = 0;
        for (let i = 0; i < tl.length; i++) {
          m = Math.max(m, Math.abs(tl[i] - tfLatents[i]));
          rms += tfLatents[i] ** 2;
        }
        console.log(
          `check: torch vs tfjs final latents, max abs diff ${m.toExponential(2)} ` +
            `(latent RMS ${Math.sqrt(rms / tl.length).toFixed(3)}); timesteps equal`,
        );
      }
      console.log(
        `summary (images/s, sampler loop): onnx ${ipsText(onnxLoop)}, tfjs ${ipsText(tfMs)}, ` +
          `torch ${ipsText(torchMs)}${torchSkip ? ` (${torchSkip})` : ""}`,
      );
      const ips = rate(onnxLoop);
      const speedup = torchMs / onnxLoop;
      console.log(
        `RESULT sample images_per_s=${Number.isFinite(ips) ? ips.toFixed(3) : "nan"} speedup=${
          Number.isFinite(speedup) ? speedup.toFixed(3) : "nan"
        }`,
      );
    } finally {
      await pipe.release();
      for (const x of [run.ae.params, run.clip.params, run.unet.params]) disposeParams(x);
    }
  } finally {
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await runMain(main);
