/**
 * `deno task upscale`: run a pretrained pixel upsampler (Real-ESRGAN-style ONNX) on a PNG, as
 * the study does after sampling at 256 px: plain upsampling (256 -> 1024 with a x4 model,
 * optionally shrunk to `--size`), or with `--reupsample` the refiner that shrinks the image to
 * `--low` pixels and upsamples it back to its own size. Tiling flags are the upsampler part's.
 *
 * @example
 * ```sh
 * deno task upscale --model models/realesrgan_x4 --image in.png --out big.png
 * deno task upscale --model models/realesrgan_x4 --image in.png --out clean.png \
 *   --reupsample --low 64 --tile 128 --overlap 24
 * ```
 * @module
 */
import { type FlagSpec, helpText, parseFlags, runMain, UsageError } from "./args.ts";
import { decodePngRgb } from "../data/png.ts";
import { writePng } from "../plot/mod.ts";
import { NORM_SYMMETRIC, NORM_UNIT } from "../image/preprocess.ts";
import { loadUpsampler } from "../inference/upsampler.ts";
import { type ImageSize, reUpsample, reUpsamplePlan, upscale } from "../inference/upscale.ts";
import { outputFile } from "./path_checks.ts";

/** What an upsampler folder must hold, named in the error when it does not. */
const MODEL_FILE = "model.onnx";
const DEFAULT_LOW = 64;
/** Largest image side the command accepts or makes (a 32768^2 RGB image is 3 GiB). */
const MAX_SIDE = 32768;

const SPEC = {
  model: {
    type: "string",
    required: true,
    help: `upsampler folder holding ${MODEL_FILE} (float32 [batch, 3, H, W] -> [batch, 3, sH, sW])`,
  },
  image: { type: "string", required: true, help: "input PNG" },
  out: { type: "string", default: "upscaled.png", check: outputFile, help: "output PNG" },
  size: { type: "string", help: "exact output size, N or WxH (shrinks the upsampled image)" },
  reupsample: { type: "bool", default: false, help: "shrink to --low, upsample back to the size" },
  low: {
    type: "int",
    min: 1,
    max: MAX_SIDE,
    help: `long side of the low image for --reupsample (default ${DEFAULT_LOW})`,
  },
  tile: {
    type: "int",
    default: 256,
    min: 0,
    max: MAX_SIDE,
    help: "tile side in input pixels (0 = whole image)",
  },
  overlap: {
    type: "int",
    default: 24,
    min: 0,
    max: MAX_SIDE,
    help: "least input pixels neighbouring tiles share",
  },
  margin: {
    type: "int",
    default: 8,
    min: 0,
    max: MAX_SIDE,
    help: "input pixels at a shared tile edge given weight 0 (overlap >= 2*margin+1)",
  },
  scale: { type: "int", min: 1, max: 16, help: "integer scale of the model (default: probed)" },
  norm: {
    type: "choice",
    choices: ["unit", "symmetric"],
    default: "unit",
    help: "pixel range of the model: unit = [0, 1], symmetric = [-1, 1]",
  },
  threads: {
    type: "int",
    min: 1,
    max: 1024,
    help: "ONNX Runtime intra-op threads (default: one per core)",
  },
} satisfies FlagSpec;

type UpscaleFlags = ReturnType<typeof parseFlags<typeof SPEC>>;

const isFile = (p: string) => Deno.stat(p).then((s) => s.isFile, () => false);
const isDir = (p: string) => Deno.stat(p).then((s) => s.isDirectory, () => false);

/**
 * `--size` as a size: `N` (square) or `WxH`; null when not given.
 *
 * @example
 * ```ts
 * parseSize("768x512"); // { width: 768, height: 512 }
 * parseSize("1024"); // { width: 1024, height: 1024 }
 * ```
 */
export function parseSize(text: string | undefined): ImageSize | null {
  if (text === undefined) return null;
  const m = /^\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?$/.exec(text);
  const width = m ? Number(m[1]) : 0, height = m ? Number(m[2] ?? m[1]) : 0;
  if (width < 1 || height < 1 || width > MAX_SIDE || height > MAX_SIDE) {
    throw new UsageError(
      `upscale: --size expects N or WxH with integers from 1 to ${MAX_SIDE}, got "${text}"`,
    );
  }
  return { width, height };
}

/** Flag combinations and the files they name, checked before the model is loaded. */
async function checkFlags(f: UpscaleFlags): Promise<void> {
  const bad = (m: string) => new UsageError(`upscale: ${m}`);
  if (f.low !== undefined && !f.reupsample) throw bad("--low goes with --reupsample");
  if (f.size !== undefined && f.reupsample) {
    throw bad("--size goes without --reupsample (re-upsampling keeps the image's size)");
  }
  parseSize(f.size);
  if (!(await isFile(f.image))) throw bad(`--image ${f.image}: no such file`);
  if (!(await isDir(f.model))) throw bad(`--model ${f.model}: no such folder`);
  if (!(await isFile(`${f.model}/${MODEL_FILE}`))) {
    throw bad(
      `--model ${f.model}: missing ${MODEL_FILE} (an upsampler folder holds ${MODEL_FILE}: ` +
        "one float32 input [batch, 3, H, W] -> one output [batch, 3, s*H, s*W])",
    );
  }
}

if (import.meta.main) {
  await runMain(async () => {
    const f = parseFlags(Deno.args, SPEC, "upscale");
    if (f.help) {
      console.log(helpText("deno task upscale", "upsample or re-upsample a PNG", SPEC));
      return;
    }
    await checkFlags(f);
    const { image: data, width, height } = decodePngRgb(await Deno.readFile(f.image), f.image);
    const image = { data, width, height };
    const up = await loadUpsampler({
      model: `${f.model}/${MODEL_FILE}`,
      tile: f.tile,
      overlap: f.overlap,
      margin: f.margin,
      scale: f.scale,
      norm: f.norm === "symmetric" ? NORM_SYMMETRIC : NORM_UNIT,
      threads: f.threads,
    });
    try {
      let out, how;
      if (f.reupsample) {
        const lowSize = f.low ?? DEFAULT_LOW;
        // Only to name the low size in the message; reUpsample makes the same plan itself.
        const { low } = reUpsamplePlan({ width, height, lowSize, scale: up.scale });
        out = await reUpsample(up, image, { lowSize });
        how = `re-upsampled through ${low.width}x${low.height}`;
      } else {
        const size = parseSize(f.size);
        out = await upscale(up, image, size ? { size } : {});
        how = "upsampled";
      }
      await writePng(f.out, out);
      console.log(
        `wrote ${f.out} (${out.width}x${out.height}, ${how} from ${width}x${height} ` +
          `with a x${up.scale} upsampler)`,
      );
    } finally {
      await up.release();
    }
  });
}
