/**
 * `deno task touch-up`: regenerate one region of an image (the study's regional touch-ups).
 * The region is a mask from a prompt (`--region` through a CLIPSeg-style `--segmenter`) or a
 * mask PNG (`--mask`, white = touch up); its box (plus `--margin`) is cropped, enlarged to the
 * model's size, redone by img2img with `--prompt`, shrunk back and blended in through the mask
 * feathered by `--feather` pixels. Writes `--out` and, beside it, the feathered mask (`out.png` -> `out.mask.png`).
 *
 * The model is a kit run (`--run`, through its ONNX export, made on first use as
 * `deno task sample` does) or any ONNX Stable Diffusion folder in Optimum's layout (`--model`).
 *
 * @example
 * ```sh
 * deno task touch-up --run runs/default --image in.png --segmenter models/clipseg \
 *   --region "a face" --prompt "a detailed face" --strength 0.6 --steps 25 --out out.png
 * deno task touch-up --model sd15-onnx --image in.png --mask face.png --prompt "a detailed face"
 * ```
 * @module
 */
import { type FlagSpec, helpText, parseFlags, runMain, UsageError } from "./args.ts";
import { decodePngRgb } from "../data/png.ts";
import { type RgbImage, writePng } from "../plot/mod.ts";
import { ensureOnnxExport } from "../recipe/onnx_export.ts";
import { loadOnnxPipeline, type OnnxPipeline } from "../onnx/sd_pipeline.ts";
import { loadSegmenter, type Segmenter, type SegmentMask } from "../inference/segmenter.ts";
import { touchUp, type TouchUpRegion } from "../inference/touch_up.ts";
import { SAMPLING_FLAGS } from "./sampling_flags.ts";
import { checkSdFolder } from "../inference/sd_model_folder.ts";
import { outputFile } from "./path_checks.ts";

const SPEC = {
  run: { type: "string", help: "run folder written by deno task train (uses its ONNX export)" },
  model: { type: "string", help: "ONNX Stable Diffusion folder (Optimum layout) instead of --run" },
  image: { type: "string", required: true, help: "input PNG" },
  region: { type: "string", help: 'what to touch up, for --segmenter ("a face")' },
  segmenter: {
    type: "string",
    help: "CLIPSeg-style segmenter folder: model.onnx + vocab.json + merges.txt",
  },
  mask: { type: "string", help: "mask PNG of the image's size (white = touch up) instead" },
  prompt: { type: "string", required: true, help: "what the region becomes" },
  strength: {
    type: "float",
    default: 0.6,
    min: 0,
    minExclusive: true,
    max: 1,
    help: "img2img strength in (0, 1]",
  },
  ...SAMPLING_FLAGS,
  margin: {
    type: "float",
    default: 0.25,
    min: 0,
    max: 10,
    help: "box margin, a fraction of its size",
  },
  feather: { type: "int", default: 8, min: 0, max: 4096, help: "mask feather radius in pixels" },
  threshold: {
    type: "float",
    default: 0.5,
    min: 0,
    max: 1,
    help: "mask value (a probability) a pixel must exceed",
  },
  out: {
    type: "string",
    default: "touch_up.png",
    check: outputFile,
    help: "output PNG (the mask goes beside it: out.png -> out.mask.png)",
  },
} satisfies FlagSpec;

type TouchUpFlags = ReturnType<typeof parseFlags<typeof SPEC>>;

const isFile = (p: string) => Deno.stat(p).then((s) => s.isFile, () => false);
const isDir = (p: string) => Deno.stat(p).then((s) => s.isDirectory, () => false);

/** Flag combinations and the files they name, checked before any model is loaded. */
async function checkFlags(f: TouchUpFlags): Promise<void> {
  const bad = (m: string) => new UsageError(`touch-up: ${m}`);
  if ((f.run === undefined) === (f.model === undefined)) {
    throw bad("give exactly one of --run RUN and --model DIR");
  }
  if ((f.segmenter === undefined) === (f.mask === undefined)) {
    throw bad("give exactly one of --segmenter DIR (with --region) and --mask PNG");
  }
  if (f.segmenter !== undefined && !f.region?.trim()) {
    throw bad('--segmenter needs --region, the text of what to touch up ("a face")');
  }
  if (f.mask !== undefined && f.region !== undefined) {
    throw bad("--region goes with --segmenter; --mask already says where");
  }
  if (!(await isFile(f.image))) throw bad(`--image ${f.image}: no such file`);
  if (f.mask !== undefined && !(await isFile(f.mask))) {
    throw bad(`--mask ${f.mask}: no such file`);
  }
  if (f.run !== undefined && !(await isDir(f.run))) throw bad(`--run ${f.run}: no such folder`);
  if (f.model !== undefined) {
    // img2img encodes the crop: the folder needs its VAE encoder too.
    await checkSdFolder(f.model, { img2img: true }).catch((e) => {
      throw bad(`--model ${(e as Error).message}`);
    });
  }
  if (f.segmenter !== undefined) {
    const missing = [];
    for (const n of ["model.onnx", "vocab.json", "merges.txt"]) {
      if (!(await isFile(`${f.segmenter}/${n}`))) missing.push(n);
    }
    if (missing.length) {
      throw bad(
        `--segmenter ${f.segmenter}: missing ${missing.join(", ")} (a segmenter folder holds ` +
          "model.onnx with pixel_values + input_ids -> logits, and CLIP's vocab.json + merges.txt)",
      );
    }
  }
}

async function readPng(path: string): Promise<RgbImage> {
  const { image, width, height } = decodePngRgb(await Deno.readFile(path), path);
  return { data: image, width, height };
}

/** A mask PNG as probabilities: the mean of its channels over 255 (grey PNGs: grey / 255). */
function maskFromPng(img: RgbImage, path: string, want: RgbImage): SegmentMask {
  if (img.width !== want.width || img.height !== want.height) {
    throw new Error(
      `${path}: mask is ${img.width}x${img.height}, the image ${want.width}x${want.height}`,
    );
  }
  const mask = new Float32Array(img.width * img.height);
  for (let p = 0; p < mask.length; p++) {
    mask[p] = (img.data[3 * p] + img.data[3 * p + 1] + img.data[3 * p + 2]) / 765;
  }
  return { mask, width: img.width, height: img.height };
}

/** The feathered mask as a grey PNG image (value * 255, rounded). */
function maskImage(m: SegmentMask): RgbImage {
  const data = new Uint8Array(m.mask.length * 3);
  for (let p = 0; p < m.mask.length; p++) data.fill(Math.round(m.mask[p] * 255), 3 * p, 3 * p + 3);
  return { data, width: m.width, height: m.height };
}

async function openPipeline(f: TouchUpFlags): Promise<OnnxPipeline> {
  if (f.model !== undefined) return await loadOnnxPipeline(f.model);
  const dir = await ensureOnnxExport(f.run!, {
    // TensorFlow.js is only needed to export; a current export skips loading it.
    beforeExport: async () => {
      const { initBackendAndConvGrad } = await import("../train/init_backend.ts");
      await initBackendAndConvGrad("auto", { quiet: true });
    },
    log: (line) => console.log(line),
  });
  return await loadOnnxPipeline(dir);
}

if (import.meta.main) {
  await runMain(async () => {
    const f = parseFlags(Deno.args, SPEC, "touch-up");
    if (f.help) {
      console.log(helpText("deno task touch-up", "regenerate one region of an image", SPEC));
      return;
    }
    await checkFlags(f);
    const image = await readPng(f.image);
    const mask = f.mask === undefined ? null : maskFromPng(await readPng(f.mask), f.mask, image);
    const pipeline = await openPipeline(f);
    let segmenter: Segmenter | null = null;
    try {
      let region: TouchUpRegion;
      if (mask) region = { mask };
      else {
        segmenter = await loadSegmenter({
          model: `${f.segmenter}/model.onnx`,
          tokenizerDir: f.segmenter!,
        });
        region = { segmenter, region: f.region! };
      }
      const r = await touchUp({
        ...region,
        pipeline,
        image,
        prompt: f.prompt,
        strength: f.strength,
        steps: f.steps,
        guidance: f.guidance,
        scheduler: f.scheduler,
        seed: f.seed,
        margin: f.margin,
        feather: f.feather,
        threshold: f.threshold,
      });
      await writePng(f.out, r.image);
      const maskOut = maskPathFor(f.out);
      await writePng(maskOut, maskImage(r.mask));
      const b = r.box;
      console.log(
        `wrote ${f.out} (box ${b.width}x${b.height} at ${b.x},${b.y}) and ${maskOut}`,
      );
    } finally {
      await segmenter?.release();
      await pipeline.release();
    }
  });
}

/** `out.png` -> `out.mask.png` (a name without `.png` just gets `.mask.png` appended). */
export function maskPathFor(out: string): string {
  return out.replace(/(\.png)?$/i, ".mask.png");
}
