/**
 * Latent-cache throughput: how fast the kit turns webdataset shards into the UNet's training
 * cache (`buildLatentCache`: read tar, JPEG decode, Lanczos shortest-side resize + centre crop,
 * normalise, VAE encoder through onnxruntime, captions through the text encoder, float16 text
 * states, atomic shard files), against
 * - what the UNet training step consumes: images/s of `unetStage` steps (forward, backward, AdamW,
 *   EMA; steps 2+ of a short run) on the cached latents, for `--unet` at `--unet-batch`;
 * - a PyTorch peer in the same command (`bench/latent_cache_torch.py run`, Debian torch 1.13):
 *   the same shards, PIL decode, the same resize/crop formulas on Pillow, the same encoder
 *   weights, `torch.no_grad()` batches of `--batch`, the same text encoder.
 *
 * Data: `--images` JPEG records (300-520 x 260-480, smooth pictures + noise) in 4 tars, written by
 * the Python script. Encoders (`--encoder`): `tiny` is the tests' fp32 tiny_sd fixture folder
 * (4 convolutions of 32 channels: the cost is almost all decode and resize), `sdlike` (default)
 * that folder with its VAE encoder replaced by diffusers' AutoencoderKL encoder layout scaled to
 * channels 32-64-128-128 (ResNet blocks, mid attention), exported by `torch.onnx.export`. Both
 * sides run with `--threads` threads (onnxruntime intra-op / `torch.set_num_threads`). The kit's
 * first cached mean is compared with PyTorch's: with `--format png` both sides see the same pixels
 * and agree to float rounding; JPEG decoders differ (jpeg-js vs libjpeg: 1.4 levels on average).
 *
 * Usage: deno task bench:latent_cache [--images 32] [--encoder sdlike|tiny] [--resolution 256]
 *   [--batch 8] [--threads 2] [--unet small] [--unet-batch 8] [--backend auto] [--format jpg|png]
 *   [--no-torch]
 *   [--python /usr/bin/python3]
 * Ends with exactly one line:
 *   RESULT latent_cache images_per_s=<kit> speedup=<PyTorch time / kit time>
 * @module
 */
import { helpText, parseFlags, runMain } from "../lib/cli/args.ts";
import { loadOnnxPipeline } from "../lib/onnx/sd_pipeline.ts";
import { buildLatentCache, loadLatentCache } from "../lib/recipe/latent_cache.ts";
import { unetStage } from "../lib/recipe/stages.ts";
import { resolvePreset } from "../lib/recipe/presets.ts";
import { UNET_PRESETS } from "../lib/models/unet.ts";
import { readShards } from "../lib/data/webdataset.ts";
import { squareCrop } from "../lib/image/square_crop.ts";
import { readMetrics } from "../lib/train/mod.ts";
import { initBackendAndConvGrad } from "../lib/train/init_backend.ts";

const SPEC = {
  images: { type: "int", default: 32, min: 4, max: 100000, help: "records in the shards" },
  encoder: {
    type: "choice",
    choices: ["sdlike", "tiny"],
    default: "sdlike",
    help: "VAE encoder (see the module docs)",
  },
  resolution: { type: "int", default: 256, min: 8, max: 2048, help: "training side in pixels" },
  batch: { type: "int", default: 8, min: 1, max: 1024, help: "images per encoder call" },
  threads: { type: "int", default: 2, min: 1, max: 256, help: "threads of each side" },
  unet: {
    type: "choice",
    choices: Object.keys(UNET_PRESETS),
    default: "small",
    help: "UNet preset of the training-step figure",
  },
  "unet-batch": { type: "int", default: 8, min: 1, max: 1024, help: "UNet batch size" },
  backend: { type: "string", default: "auto", help: "TensorFlow.js backend of the UNet step" },
  format: {
    type: "choice",
    choices: ["jpg", "png"],
    default: "jpg",
    help: "image format of the records (png: the same pixels on both sides)",
  },
  "no-torch": { type: "bool", default: false, help: "skip the PyTorch peer" },
  python: { type: "string", default: "/usr/bin/python3", help: "interpreter with torch" },
} as const;

const HERE = new URL(".", import.meta.url).pathname;
const FIXTURE = new URL("../tests/fixtures/tiny_sd/fp32_scalar_t", import.meta.url).pathname;

async function py(python: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(python, {
    args: [`${HERE}latent_cache_torch.py`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  if (out.code !== 0) {
    throw new Error(`latent_cache_torch.py ${args[0]} failed: ${dec.decode(out.stderr).trim()}`);
  }
  return dec.decode(out.stdout);
}

async function copyTree(src: string, dst: string): Promise<void> {
  await Deno.mkdir(dst, { recursive: true });
  for await (const e of Deno.readDir(src)) {
    if (e.isDirectory) await copyTree(`${src}/${e.name}`, `${dst}/${e.name}`);
    else await Deno.copyFile(`${src}/${e.name}`, `${dst}/${e.name}`);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

await runMain(async () => {
  const f = parseFlags(Deno.args, SPEC, "bench:latent_cache");
  if (f.help) {
    console.log(helpText("deno task bench:latent_cache", "latent cache throughput", SPEC));
    return;
  }
  const tmp = await Deno.makeTempDir({ prefix: "bench_latent_cache_" });
  try {
    const shards = `${tmp}/shards`;
    await py(f.python, ["make", shards, String(f.images), "0", f.format]);
    let parts = FIXTURE;
    if (f.encoder === "sdlike") {
      parts = `${tmp}/parts`;
      await copyTree(FIXTURE, parts);
      await py(f.python, ["export", parts, "sdlike"]);
    }
    console.log(
      `${f.images} ${f.format.toUpperCase()} records, ${f.resolution} px, encoder ${f.encoder}, batch ${f.batch}, ` +
        `${f.threads} threads`,
    );

    // Kit: the whole cache build, then the same reading + crop alone (where the time goes).
    const pipe = await loadOnnxPipeline(parts, { threads: f.threads, executionProviders: ["cpu"] });
    let kitS: number, records: number;
    try {
      const t0 = performance.now();
      const m = await buildLatentCache({
        parts: pipe,
        data: shards,
        dir: `${tmp}/cache`,
        resolution: f.resolution,
        seed: 0,
        encodeBatch: f.batch,
        log: () => {},
        progress: false,
      });
      kitS = (performance.now() - t0) / 1000;
      records = m.records;
    } finally {
      await pipe.release();
    }
    const t1 = performance.now();
    for await (const r of readShards(shards)) {
      squareCrop({ data: r.image, width: r.width, height: r.height }, { size: f.resolution });
    }
    const prepS = (performance.now() - t1) / 1000;
    const kitIps = records / kitS;
    console.log(
      `kit cache:        ${kitIps.toFixed(2)} images/s (${kitS.toFixed(2)} s for ${records}; ` +
        `read + decode + crop alone ${(records / prepS).toFixed(1)} images/s)`,
    );

    // What the UNet step consumes, on the cached latents.
    const info = await initBackendAndConvGrad(f.backend, { quiet: true });
    const cond = await loadLatentCache(`${tmp}/cache`);
    const steps = 4;
    await unetStage({
      dir: `${tmp}/unet`,
      settings: {
        ...resolvePreset("default").unet,
        model: UNET_PRESETS[f.unet as keyof typeof UNET_PRESETS],
        textContext: "states",
        steps,
        batchSize: f["unet-batch"],
        warmupSteps: 1,
        checkpointEvery: 0,
      },
      cond,
      seed: 0,
      resume: false,
      progress: false,
    });
    const rates = (await readMetrics(`${tmp}/unet/metrics.jsonl`))
      .filter((r) => r.step > 1 && typeof r.images_per_s === "number")
      .map((r) => r.images_per_s as number);
    const unetIps = median(rates);
    const [h, w, c] = cond.latentShape;
    console.log(
      `UNet step:        ${unetIps.toFixed(2)} images/s (${f.unet}, batch ${f["unet-batch"]}, ` +
        `${h}x${w}x${c} latents, context ${cond.contextShape.join("x")}, ${info.name}; ` +
        `the cache is ${(kitIps / unetIps).toFixed(1)}x what it consumes)`,
    );

    let speedup = NaN;
    if (!f["no-torch"]) {
      const out = await py(f.python, [
        "run",
        shards,
        f.encoder,
        String(f.resolution),
        String(f.batch),
        String(f.threads),
      ]);
      const peer = JSON.parse(out.trim().split("\n").at(-1)!);
      speedup = peer.seconds / kitS;
      const first = cond.latents.subarray(0, peer.first_mean.length);
      const diff = Math.max(
        ...peer.first_mean.map((v: number, i: number) => Math.abs(v - first[i])),
      );
      const scale = Math.max(...peer.first_mean.map(Math.abs));
      console.log(
        `PyTorch peer:     ${(peer.images / peer.seconds).toFixed(2)} images/s ` +
          `(${peer.seconds.toFixed(2)} s for ${peer.images}); first mean max |diff| ` +
          `${diff.toExponential(2)} of max |value| ${scale.toExponential(2)}`,
      );
    }
    console.log(
      `RESULT latent_cache images_per_s=${kitIps.toFixed(3)} speedup=${
        Number.isFinite(speedup) ? speedup.toFixed(2) : "nan"
      }`,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
