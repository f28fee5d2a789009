/**
 * `deno task eval`: the CLIP-score vs FID guidance sweep of a trained run. Settings come
 * from a protocol file `evals/<name>.json` (default: `evals/default.json`); flags override them.
 * Writes `<run>/eval/clip_fid.json` and `<run>/eval/clip_fid.html`; caches features under
 * `<run>/eval/cache/`.
 *
 * Several models on one protocol: repeat `--run RUN` and `--model DIR` (an ONNX Stable Diffusion
 * folder in Optimum's layout), in any mix. Every model gets the same prompts, seeds, guidance
 * scales, sampler, CLIP judge, FID extractor and reference statistics; `<out>/clip_fid.html` draws
 * one curve per model (labelled by its folder name, in the order given) and `<out>/clip_fid.json`
 * holds each model's results (default out `eval-models`, cache `<out>/cache/`, resumed like a
 * one-run eval). The CLIP judge is `--clip DIR` when given, else the first `--run`'s own CLIP;
 * SD folders alone need `--clip` (they carry no image tower).
 *
 * `--reference-stats` (or `--ref-stats`) also reads numpy `.npz` statistics with `mu` and
 * `sigma`, as clean-fid publishes them; their dimension must be the FID extractor's.
 *
 * @example
 * ```sh
 * deno task eval --run runs/default                        # evals/default.json
 * deno task eval --run runs/default --checkpoints all --guidance 1,2,4 --n 64
 * deno task eval --run runs/default --protocol coco1k      # needs the COCO files (it says which)
 * deno task eval --run runs/default --prompts coco:captions.json:val2014 --extractor inception \
 *   --inception data/models/pt_inception-2015-12-05.onnx    # FID with Inception-v3 pool3 features
 * deno task eval --model sd15-onnx --model sd21-onnx --run runs/default --clip models/clip-l14 \
 *   --extractor inception --inception data/models/pt_inception-2015-12-05.onnx \
 *   --prompts text:prompts.txt --ref-stats coco_clean_val_256.npz --out eval-sd
 * deno task eval --run runs/default --provider webgpu     # ONNX models on WebGPU (onnxruntime-web)
 * ```
 * @module
 */
import { type FlagSpec, helpText, parseFlags, runMain, SEED_RANGE, UsageError } from "./args.ts";
import { inputFile, outputFolder } from "./path_checks.ts";
import { evalPlan, formatEvalPlan, runClipConfig } from "./job_plan.ts";
import { BACKEND_FLAG } from "./backend_flag.ts";
import { PROVIDER_FLAG } from "./sampling_flags.ts";
import { parseOnnxProvider, setDefaultOnnxProvider } from "../onnx/providers.ts";
import { initBackendAndConvGrad } from "../train/init_backend.ts";
import { setUpFastPath } from "../setup/fast_path.ts";
import { SAMPLERS } from "../diffusion/mod.ts";
import { Progress } from "../util/progress.ts";
import { formatEstimate } from "../eval/clip_fid/bootstrap.ts";
import {
  parsePromptSpec,
  type PromptSet,
  promptSetFromSpec,
} from "../eval/clip_fid/prompt_sets.ts";
import { formatSkipped } from "../eval/clip_fid/image_files.ts";
import { loadClipTowersFolder } from "../inference/clip_towers.ts";
import { clipTowersExtractor } from "../eval/clip_fid/feature_extractors.ts";
import {
  type InceptionInputRange,
  type InceptionOnnxExtractor,
  inceptionOnnxExtractor,
  INPUT_RANGES,
  RESIZE_MODES,
  type ResizeMode,
} from "../eval/clip_fid/inception_onnx.ts";
import {
  type CheckpointSelector,
  guidanceSweep,
  parseCheckpointSelector,
  resolveCheckpoints,
  type SweepPoint,
  type SweepProgress,
  writeSweepOutputs,
} from "../eval/clip_fid/sweep.ts";
import { modelsSweep, writeModelsSweepOutputs } from "../eval/clip_fid/models_sweep.ts";
import { checkSdFolder } from "../inference/sd_model_folder.ts";

/** A file a protocol needs, with where to get it. */
export interface ProtocolRequirement {
  path: string;
  /** `prompts` requirements are skipped when `--prompts` replaces the protocol's prompts. */
  for: "prompts" | "extractor";
  what: string;
  get: string;
}

/** An evaluation protocol (`evals/<name>.json`). */
export interface Protocol {
  name: string;
  description: string;
  prompts: string;
  prefix?: string;
  n: number;
  guidance: number[];
  checkpoints: string;
  steps: number;
  scheduler: string;
  seed: number;
  extractor: "kit-clip" | "inception";
  /** Inception ONNX model (required with the inception extractor unless --inception is given). */
  inceptionModel?: string;
  /** Resize to 299x299 (default "clean", clean-fid's). */
  inceptionResize?: ResizeMode;
  /** Value mapping fed to the network (default "-1-1"). */
  inceptionInput?: InceptionInputRange;
  bootstrap: { clip: number; fid: number };
  kid: boolean;
  requires: ProtocolRequirement[];
}

/**
 * `--prompts`: a spec `parsePromptSpec` reads, whose files exist (so a typo fails before the run's
 * models load, not after).
 */
function promptSpecFiles(spec: string): void {
  let p: ReturnType<typeof parsePromptSpec>;
  try {
    p = parsePromptSpec(spec);
  } catch (e) {
    throw new Error((e as Error).message.replace(/^prompts: /, ""));
  }
  const paths: [string, "file" | "folder"][] = p.kind === "coco"
    ? [[p.captions, "file"], [p.images, "folder"]]
    : p.kind === "heldout"
    ? []
    : p.kind === "shards"
    // A gs:// prefix is listed when the set loads; a local folder must exist now.
    ? (p.data.startsWith("gs://") ? [] : [[p.data, "folder"]])
    : [[p.path, "file"]];
  for (const [path, kind] of paths) {
    const s = (() => {
      try {
        return Deno.statSync(path);
      } catch {
        return null;
      }
    })();
    if (!s || (kind === "file" ? !s.isFile : !s.isDirectory)) {
      throw new Error(`${path}: no such ${kind}`);
    }
  }
}

/** Ranges of the sweep's numbers, the same for flags and protocol files. */
const MAX_IMAGES = 10_000_000, MAX_STEPS = 1000, MAX_GUIDANCE = 100, MAX_BOOTSTRAP = 1_000_000;

/**
 * Validate a protocol document; errors name the file and field.
 *
 * @example
 * ```ts
 * const p = parseProtocol(await Deno.readTextFile("evals/default.json"), "evals/default.json");
 * ```
 */
export function parseProtocol(text: string, source: string): Protocol {
  const fail = (msg: string): never => {
    throw new Error(`protocol ${source}: ${msg}`);
  };
  let d: Record<string, unknown>;
  try {
    d = JSON.parse(text);
  } catch (e) {
    return fail(`not valid JSON (${(e as Error).message})`);
  }
  if (typeof d !== "object" || d === null || Array.isArray(d)) fail("expected a JSON object");
  const str = (k: string) => {
    if (typeof d[k] !== "string") fail(`field "${k}" must be a string`);
    return d[k] as string;
  };
  const int = (k: string, min: number, max: number) => {
    if (!Number.isSafeInteger(d[k]) || (d[k] as number) < min || (d[k] as number) > max) {
      fail(`field "${k}" must be an integer from ${min} to ${max}, got ${JSON.stringify(d[k])}`);
    }
    return d[k] as number;
  };
  const g = d.guidance;
  if (
    !Array.isArray(g) || !g.length ||
    g.some((x) => typeof x !== "number" || !(x >= 0 && x <= MAX_GUIDANCE))
  ) {
    fail(`field "guidance" must be a non-empty array of numbers from 0 to ${MAX_GUIDANCE}`);
  }
  const extractor = str("extractor");
  if (extractor !== "kit-clip" && extractor !== "inception") {
    fail(`field "extractor" must be "kit-clip" or "inception", got ${JSON.stringify(extractor)}`);
  }
  if (!(str("scheduler") in SAMPLERS)) {
    fail(`field "scheduler" must be one of ${Object.keys(SAMPLERS).join(", ")}`);
  }
  const b = (d.bootstrap ?? {}) as Record<string, unknown>;
  for (const k of ["clip", "fid"]) {
    const v = b[k] as number;
    if (b[k] !== undefined && !(Number.isSafeInteger(v) && v >= 2 && v <= MAX_BOOTSTRAP)) {
      fail(`field "bootstrap.${k}" must be an integer from 2 to ${MAX_BOOTSTRAP}`);
    }
  }
  const req = d.requires ?? [];
  if (!Array.isArray(req)) fail(`field "requires" must be an array`);
  (req as Record<string, unknown>[]).forEach((r, i) => {
    for (const k of ["path", "what", "get"]) {
      if (typeof r?.[k] !== "string") fail(`field "requires[${i}].${k}" must be a string`);
    }
    if (r.for !== "prompts" && r.for !== "extractor") {
      fail(`field "requires[${i}].for" must be "prompts" or "extractor"`);
    }
  });
  if (d.prefix !== undefined) str("prefix");
  if (d.inceptionModel !== undefined) str("inceptionModel");
  if (d.inceptionResize !== undefined && !RESIZE_MODES.includes(d.inceptionResize as ResizeMode)) {
    fail(`field "inceptionResize" must be one of ${RESIZE_MODES.join(", ")}`);
  }
  if (
    d.inceptionInput !== undefined &&
    !INPUT_RANGES.includes(d.inceptionInput as InceptionInputRange)
  ) {
    fail(`field "inceptionInput" must be one of ${INPUT_RANGES.join(", ")}`);
  }
  if (d.kid !== undefined && typeof d.kid !== "boolean") fail(`field "kid" must be a boolean`);
  return {
    name: str("name"),
    description: typeof d.description === "string" ? d.description : "",
    prompts: str("prompts"),
    prefix: d.prefix as string | undefined,
    n: int("n", 2, MAX_IMAGES),
    guidance: g as number[],
    checkpoints: str("checkpoints"),
    steps: int("steps", 1, MAX_STEPS),
    scheduler: str("scheduler"),
    seed: int("seed", SEED_RANGE.min, SEED_RANGE.max),
    extractor: extractor as Protocol["extractor"],
    inceptionModel: d.inceptionModel as string | undefined,
    inceptionResize: d.inceptionResize as ResizeMode | undefined,
    inceptionInput: d.inceptionInput as InceptionInputRange | undefined,
    bootstrap: { clip: (b.clip as number) ?? 200, fid: (b.fid as number) ?? 20 },
    kid: (d.kid as boolean) ?? false,
    requires: req as ProtocolRequirement[],
  };
}

/**
 * Load `evals/<name>.json` from the kit's folder; an unknown name lists the available ones.
 *
 * @example
 * ```ts
 * const p = await loadProtocol("coco1k");
 * ```
 */
export async function loadProtocol(name: string): Promise<Protocol> {
  if (!/^[A-Za-z0-9_-]+$/.test(name)) {
    throw new UsageError(`eval: --protocol expects a name like default or coco1k, got "${name}"`);
  }
  const dir = new URL("../../evals/", import.meta.url);
  const url = new URL(`${name}.json`, dir);
  let text: string;
  try {
    text = await Deno.readTextFile(url);
  } catch {
    const have: string[] = [];
    try {
      for (const e of Deno.readDirSync(dir)) {
        if (e.name.endsWith(".json")) have.push(e.name.slice(0, -5));
      }
    } catch { /* no evals folder */ }
    throw new UsageError(
      `eval: no protocol "${name}" (${url.pathname} not found; available: ${
        have.sort().join(", ") || "none"
      })`,
    );
  }
  return parseProtocol(text, `evals/${name}.json`);
}

/**
 * Requirements whose path does not exist (relative paths resolve against the working folder).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { missingRequirements, type ProtocolRequirement } from "./eval.ts";
 *
 * // Usually a protocol's: missingRequirements((await loadProtocol("coco1k")).requires).
 * const reqs: ProtocolRequirement[] = [
 *   { path: "deno.json", for: "prompts", what: "a file that exists", get: "-" },
 *   { path: "data/no_such.json", for: "prompts", what: "one that does not", get: "-" },
 * ];
 * assert.deepEqual((await missingRequirements(reqs)).map((r) => r.path), ["data/no_such.json"]);
 * ```
 */
export async function missingRequirements(
  reqs: ProtocolRequirement[],
): Promise<ProtocolRequirement[]> {
  const out: ProtocolRequirement[] = [];
  for (const r of reqs) {
    if (!(await Deno.stat(r.path).then(() => true, () => false))) out.push(r);
  }
  return out;
}

/** Where the Inception model comes from, in one line (also in evals/coco*.json). */
export const INCEPTION_GET = "pytorch-fid's pt_inception-2015-12-05 weights exported to ONNX: " +
  "torch.onnx.export(pytorch_fid.inception.InceptionV3([3], resize_input=False, " +
  "normalize_input=False).eval(), torch.zeros(1, 3, 299, 299), FILE, input_names=['images'], " +
  "output_names=['pool3'], dynamic_axes={'images': {0: 'batch'}, 'pool3': {0: 'batch'}})";

/**
 * The files a run of `proto` needs: its prompt files unless `--prompts` replaces them, and the
 * Inception model only with the inception extractor (at `--inception` when given).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadProtocol, requirementsFor } from "./eval.ts";
 *
 * const proto = await loadProtocol("coco1k"); // COCO captions + images, Inception model
 * const reqs = requirementsFor(proto, {
 *   promptsReplaced: false,
 *   extractor: "inception",
 *   inceptionPath: "m.onnx",
 * });
 * assert.deepEqual(reqs.map((r) => r.for), ["prompts", "prompts", "extractor"]);
 * assert.equal(reqs[2].path, "m.onnx"); // --inception replaces the protocol's path
 * assert.deepEqual(requirementsFor(proto, { promptsReplaced: true, extractor: "kit-clip" }), []);
 * ```
 */
export function requirementsFor(
  proto: Protocol,
  o: { promptsReplaced: boolean; extractor: Protocol["extractor"]; inceptionPath?: string },
): ProtocolRequirement[] {
  const out: ProtocolRequirement[] = [];
  for (const r of proto.requires) {
    if (r.for === "prompts" && !o.promptsReplaced) out.push(r);
    if (r.for === "extractor" && o.extractor === "inception") {
      out.push({ ...r, path: o.inceptionPath ?? r.path });
    }
  }
  if (o.extractor === "inception" && o.inceptionPath && !out.some((r) => r.for === "extractor")) {
    out.push({
      path: o.inceptionPath,
      for: "extractor",
      what: "Inception-v3 FID network as ONNX (2048-d pool3 features)",
      get: INCEPTION_GET,
    });
  }
  return out;
}

const SPEC = {
  run: {
    type: "strings",
    help: "run folder written by deno task train (repeatable, mixed with --model: one curve each)",
  },
  model: {
    type: "strings",
    help: "ONNX Stable Diffusion folder, Optimum layout (repeatable; sampled with onnxruntime)",
  },
  protocol: {
    type: "string",
    default: "default",
    help: "evaluation protocol evals/<name>.json (default, coco1k, coco30k); flags override it",
  },
  checkpoints: {
    type: "string",
    help: "all | latest | comma list of steps and final (for every --run)",
  },
  guidance: {
    type: "floats",
    min: 0,
    max: MAX_GUIDANCE,
    help: "guidance scales, e.g. 1,1.5,2,3,4",
  },
  n: { type: "int", min: 2, max: MAX_IMAGES, help: "images (one per prompt)" },
  prompts: {
    type: "string",
    check: promptSpecFiles,
    help:
      "heldout | coco:PATH_TO_JSON:IMAGES_DIR | text:PATH (one prompt per line) | parti:PATH.tsv[?category=X&challenge=Y] | shards:DIR (caption/image pairs of webdataset shards)",
  },
  prefix: { type: "string", help: 'COCO caption prefix, e.g. "A photograph of " ("" for none)' },
  steps: { type: "int", min: 1, max: MAX_STEPS, help: "sampling steps" },
  scheduler: { type: "choice", choices: Object.keys(SAMPLERS), help: "sampler" },
  seed: {
    type: "int",
    ...SEED_RANGE,
    help: "seed of the noise, the prompt sample and the bootstrap",
  },
  "batch-size": { type: "int", min: 1, max: 4096, default: 32, help: "images per UNet batch" },
  engine: {
    type: "choice",
    choices: ["onnx", "tfjs"],
    default: "onnx",
    help: "what generates a run's images (onnx: onnxruntime on its export, made once); SD " +
      "folders always use onnx",
  },
  "reference-stats": {
    type: "string",
    check: inputFile,
    help: "precomputed reference statistics: the kit's .safetensors or a numpy .npz with mu " +
      "[d] and sigma [d, d] (clean-fid's); required for text: prompts",
  },
  "ref-stats": { type: "string", check: inputFile, help: "same as --reference-stats" },
  extractor: {
    type: "choice",
    choices: ["clip", "inception"],
    help: "FID features: the run's kit CLIP image tower, or Inception-v3 pool3 (ONNX, --inception)",
  },
  inception: {
    type: "string",
    help: "Inception-v3 pool3 ONNX model (pytorch-fid's weights exported; see README)",
  },
  "inception-resize": {
    type: "choice",
    choices: RESIZE_MODES,
    help: "resize to 299x299: clean (clean-fid, PIL bicubic), legacy_tensorflow, bilinear",
  },
  "inception-input": {
    type: "choice",
    choices: INPUT_RANGES,
    help:
      "values fed to the network: -1-1 = (x-128)/128, 0-255, 0-1 (write --inception-input=-1-1)",
  },
  clip: {
    type: "string",
    help: "shared CLIP judge for CLIP scores (and the default FD space): a kit ONNX export " +
      "(text_encoder/, image_encoder/, tokenizer/) or a folder with text_model.onnx, " +
      "vision_model.onnx and vocab.json + merges.txt; default: the (first) run's own CLIP; " +
      "needed when only --model folders are evaluated",
  },
  kid: { type: "bool", help: "also compute KID (needs reference images)" },
  "bootstrap-clip": {
    type: "int",
    min: 2,
    max: MAX_BOOTSTRAP,
    help: "bootstrap resamples for the CLIP score",
  },
  "bootstrap-fid": {
    type: "int",
    min: 2,
    max: MAX_BOOTSTRAP,
    help: "bootstrap resamples for the Frechet distance",
  },
  "no-cache": { type: "bool", default: false, help: "recompute everything, write no cache" },
  out: {
    type: "string",
    check: outputFolder,
    help: "output folder (default <run>/eval for one run, else eval-models)",
  },
  backend: BACKEND_FLAG,
  provider: PROVIDER_FLAG,
} satisfies FlagSpec;

function printSummary(points: SweepPoint[], model?: string) {
  for (const p of points) {
    const ck = p.step === null ? p.checkpoint === "model" ? "" : "final" : `step ${p.step}`;
    const who = [model, ck].filter((w) => w).join(" ");
    console.log(
      `${who} guidance ${p.guidance}: CLIP ${formatEstimate(p.clipScore)}; FD ` +
        `${formatEstimate(p.fid, 4)}${p.kid ? `; KID ${p.kid.mean.toExponential(3)}` : ""}` +
        `${p.cached ? " (cached)" : ""}`,
    );
  }
}

/** A model named on the command line, in the order given. */
type CliModel = { kind: "run"; dir: string } | { kind: "folder"; dir: string };

/**
 * `--run` and `--model` values in the order they appear (`util.parseArgs` keeps each flag's own
 * order but not how the two interleave), so the figure lists models as the user did.
 */
function modelsInOrder(argv: string[], f: { run?: string[]; model?: string[] }): CliModel[] {
  const runs = [...(f.run ?? [])], folders = [...(f.model ?? [])];
  const out: CliModel[] = [];
  for (const a of argv) {
    if (a === "--") break;
    const flag = /^--(run|model)(=|$)/.exec(a)?.[1];
    if (flag === "run" && runs.length) out.push({ kind: "run", dir: runs.shift()! });
    if (flag === "model" && folders.length) out.push({ kind: "folder", dir: folders.shift()! });
  }
  // Anything the scan missed keeps its flag's order at the end.
  return out.concat(
    runs.map((dir) => ({ kind: "run" as const, dir })),
    folders.map((dir) => ({ kind: "folder" as const, dir })),
  );
}

if (import.meta.main) {
  await runMain(async () => {
    const f = parseFlags(Deno.args, SPEC, "eval");
    if (f.help) {
      console.log(
        helpText("deno task eval", "CLIP score vs FID guidance sweep of runs and SD folders", SPEC),
      );
      return;
    }
    // Every ONNX session of the sweep (pipelines, CLIP judge, Inception) runs on this provider.
    setDefaultOnnxProvider(parseOnnxProvider(f.provider));
    const models = modelsInOrder(Deno.args, f);
    if (!models.length) {
      throw new UsageError("eval: give --run RUN (or several --run and --model DIR to compare)");
    }
    if (f["reference-stats"] !== undefined && f["ref-stats"] !== undefined) {
      throw new UsageError("eval: give --reference-stats or --ref-stats, not both");
    }
    const referenceStats = f["reference-stats"] ?? f["ref-stats"];
    for (const m of models) {
      if (m.kind === "folder") {
        await checkSdFolder(m.dir).catch((e) => {
          throw new UsageError(`eval: --model ${(e as Error).message}`);
        });
      }
    }
    const runs = models.filter((m) => m.kind === "run").map((m) => m.dir);
    // One run alone keeps the one-run report in <run>/eval; anything else is a comparison.
    const single = models.length === 1 && runs.length === 1;
    if (!runs.length && f.clip === undefined) {
      throw new UsageError(
        "eval: SD folders carry no CLIP image tower to score with: give --clip DIR (CLIP towers " +
          "that judge every model) or a --run whose own CLIP judges every model",
      );
    }
    const proto = await loadProtocol(f.protocol);
    const promptsSpec = f.prompts ?? proto.prompts;
    const extractor = f.extractor === undefined
      ? proto.extractor
      : f.extractor === "clip"
      ? "kit-clip"
      : "inception";
    const inceptionPath = f.inception ?? proto.inceptionModel;
    if (extractor === "inception" && !inceptionPath) {
      throw new UsageError(
        `eval: the inception extractor needs --inception FILE (${INCEPTION_GET})`,
      );
    }
    const reqs = requirementsFor(proto, {
      promptsReplaced: f.prompts !== undefined,
      extractor,
      inceptionPath,
    });
    const missing = await missingRequirements(reqs);
    if (missing.length) {
      throw new Error(
        `protocol ${proto.name} needs ${missing.length} missing file(s): ` +
          missing.map((m) => `${m.path} (${m.what}; get: ${m.get})`).join("; "),
      );
    }
    let checkpoints: CheckpointSelector;
    try {
      checkpoints = parseCheckpointSelector(f.checkpoints ?? proto.checkpoints);
    } catch (e) {
      throw new UsageError(`eval: --${(e as Error).message}`);
    }
    const n = f.n ?? proto.n, seed = f.seed ?? proto.seed;
    const prefix = f.prefix ?? proto.prefix ?? "";
    const guidance = f.guidance ?? proto.guidance;
    if (runs.length) {
      // TensorFlow.js runs the kit CLIP and exports runs; SD folders and --clip need neither.
      await setUpFastPath(f.backend);
      await initBackendAndConvGrad(f.backend, { quiet: true });
    }
    let fidExtractor: InceptionOnnxExtractor | undefined;
    if (extractor === "inception") {
      fidExtractor = await inceptionOnnxExtractor(inceptionPath!, {
        resize: (f["inception-resize"] as ResizeMode | undefined) ?? proto.inceptionResize,
        input: (f["inception-input"] as InceptionInputRange | undefined) ?? proto.inceptionInput,
      });
    }
    const towers = f.clip ? await loadClipTowersFolder(f.clip) : null;
    const clipModel = towers ? await clipTowersExtractor(towers) : undefined;
    const steps = f.steps ?? proto.steps;
    const outDir = f.out ?? (single ? `${runs[0]}/eval` : "eval-models");
    const cacheDir = f["no-cache"] ? null : single ? `${runs[0]}/eval/cache` : `${outDir}/cache`;
    const clipDim = clipModel?.dim ??
      (runs.length ? await runClipConfig(runs[0], "embedDim") : null);
    if (clipDim !== null) {
      let curves = 0;
      for (const m of models) {
        curves += m.kind === "run" ? (await resolveCheckpoints(m.dir, checkpoints)).length : 1;
      }
      const plan = evalPlan({
        curves,
        guidance: guidance.length,
        n,
        batchSize: f["batch-size"],
        steps,
        clipDim,
        fidDim: fidExtractor?.dim ?? null,
        cacheDir,
        outDir,
      });
      console.log(formatEvalPlan(plan));
    }
    let bar: Progress | null = null;
    let set: PromptSet | null = null;
    const common = {
      clipModel,
      promptSet: async (size: number) =>
        set = await promptSetFromSpec(promptsSpec, { count: n, seed, size, prefix }),
      extractor: fidExtractor,
      guidance,
      n,
      steps,
      scheduler: f.scheduler ?? proto.scheduler,
      seed,
      batchSize: f["batch-size"],
      engine: f.engine as "onnx" | "tfjs",
      bootstrap: {
        clip: f["bootstrap-clip"] ?? proto.bootstrap.clip,
        fid: f["bootstrap-fid"] ?? proto.bootstrap.fid,
      },
      kid: f.kid ?? proto.kid,
      referenceStats,
      cacheDir,
      onProgress: (p: SweepProgress) => {
        bar ??= new Progress({ total: 2 * p.total, label: "eval (images generated + features)" });
        bar.update(p.generated + p.extracted, {
          ...(single ? {} : { model: p.model }),
          checkpoint: p.checkpoint,
          guidance: p.guidance,
          generated: p.generated,
          extracted: p.extracted,
        });
      },
    };
    let written: { json: string; html: string };
    let label: string;
    try {
      if (single) {
        const result = await guidanceSweep({ ...common, runDir: runs[0], checkpoints });
        (bar as Progress | null)?.done();
        written = await writeSweepOutputs(result, outDir, {
          protocol: proto.name,
          onnxProvider: f.provider,
        });
        printSummary(result.points);
        label = result.fidLabel;
      } else {
        const result = await modelsSweep({
          ...common,
          models: models.map((m) => m.kind === "run" ? { ...m, checkpoints } : m),
        });
        (bar as Progress | null)?.done();
        written = await writeModelsSweepOutputs(result, outDir, {
          protocol: proto.name,
          onnxProvider: f.provider,
        });
        for (const m of result.models) printSummary(m.points, m.name);
        label = result.fidLabel;
      }
    } finally {
      await fidExtractor?.release();
      await towers?.release();
    }
    const skipped = (set as PromptSet | null)?.skipped ?? [];
    if (skipped.length) console.warn(`reference images: ${formatSkipped(skipped)}`);
    console.log(`${label}; wrote ${written.json} and ${written.html}`);
  });
}
