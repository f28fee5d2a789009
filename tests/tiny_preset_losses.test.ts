/**
 * Pins the tiny preset's training losses to the bit: the first steps of the autoencoder, CLIP
 * and UNet stages (with the preset's text context) on a fixed shapes-world set, on the stock
 * `cpu-js` backend (composed tfjs ops) and on the kit's `cpu` backend (fused kernels, OpenBLAS).
 * Any change to a layer, a model, a fused kernel or its gradient that moves a single float shows
 * up here. The numbers were recorded from the code before layers and models were written against
 * one ops interface, so a refactor of that kind must leave them unchanged.
 *
 * `cpu-js` runs plain JavaScript float arithmetic: its numbers hold on every machine. The `cpu`
 * numbers depend on the GEMM kernels OpenBLAS picks for the processor, so they are compared
 * exactly only where OpenBLAS reports the kernel set they were recorded with (and loosely
 * elsewhere, to still catch a broken fused path).
 *
 * Set `XGEN_RECORD_LOSSES=1` to print the current values instead of asserting.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import {
  autoencoderStage,
  buildConditioning,
  clipStage,
  loadImageSet,
  resolvePreset,
  unetStage,
} from "../lib/recipe/mod.ts";
import { initBackendAndConvGrad, type MetricRecord } from "../lib/train/mod.ts";
import { buildShapesWorldShards } from "../lib/data/mod.ts";
import { loadOpenBlas } from "../lib/backend/mod.ts";
import { withTempDir } from "./helpers/temp_dir.ts";
import { assertClose } from "./helpers/assert_close.ts";

/** Losses of every stage's first steps and the latent scaling factor. */
interface StageLosses {
  autoencoder: number[];
  clip: number[];
  unet: number[];
  scalingFactor: number;
}

const STEPS = { autoencoder: 3, clip: 3, unet: 4 };

/** Recorded on the code before the ops-interface refactor. */
const PINNED: Record<"cpu-js" | "cpu", StageLosses> = {
  "cpu-js": {
    autoencoder: [0.40512222051620483, 0.3392030596733093, 0.35870617628097534],
    clip: [3.423737049102783, 3.197889804840088, 3.121243715286255],
    unet: [1.0400996208190918, 0.9686718583106995, 0.6416704654693604, 0.9520949721336365],
    scalingFactor: 2.8492204284231044,
  },
  "cpu": {
    autoencoder: [0.40512222051620483, 0.3392030894756317, 0.35870617628097534],
    clip: [3.423737049102783, 3.198075771331787, 3.1214230060577393],
    unet: [1.0400993824005127, 0.9686781764030457, 0.6416691541671753, 0.9520998597145081],
    scalingFactor: 2.849220637824684,
  },
};
/** `openblas_get_corename()` of the machine the `cpu` numbers were recorded on. */
const PINNED_CORE = "Prescott";

const RECORD = Deno.env.get("XGEN_RECORD_LOSSES") === "1";

async function stageLosses(dataDir: string, work: string): Promise<StageLosses> {
  const preset = resolvePreset("tiny");
  const data = await loadImageSet(dataDir);
  const common = { data, seed: 1, resume: false, progress: false };
  const collect = (into: number[]) => (r: MetricRecord) => into.push(r.loss!);
  const out: StageLosses = { autoencoder: [], clip: [], unet: [], scalingFactor: 0 };
  const every = 1000; // no checkpoint inside the pinned steps
  const ae = await autoencoderStage({
    ...common,
    dir: `${work}/ae`,
    settings: { ...preset.autoencoder, steps: STEPS.autoencoder, checkpointEvery: every },
    onLog: collect(out.autoencoder),
  });
  out.scalingFactor = ae.scalingFactor;
  const clip = await clipStage({
    ...common,
    dir: `${work}/clip`,
    settings: { ...preset.clip, steps: STEPS.clip, checkpointEvery: every },
    onLog: collect(out.clip),
  });
  const cond = await buildConditioning(data, ae, clip, undefined, preset.unet.textContext);
  const unet = await unetStage({
    ...common,
    dir: `${work}/unet`,
    settings: { ...preset.unet, steps: STEPS.unet, checkpointEvery: every },
    cond,
    onLog: collect(out.unet),
  });
  tf.dispose([
    ...Object.values(ae.params),
    ...Object.values(clip.params),
    ...Object.values(unet.params),
  ]);
  return out;
}

/** The GEMM kernel set OpenBLAS picked for this processor (`openblas_get_corename`). */
function openBlasCore(): string {
  const blas = loadOpenBlas();
  if (!blas) return "";
  try {
    const lib = Deno.dlopen(blas.path, {
      openblas_get_corename: { parameters: [], result: "pointer" },
    });
    const ptr = lib.symbols.openblas_get_corename();
    const name = ptr ? Deno.UnsafePointerView.getCString(ptr) : "";
    lib.close();
    return name;
  } catch {
    return "";
  }
}

async function withData(fn: (dataDir: string, work: string) => Promise<void>): Promise<void> {
  await withTempDir("xgen_pinned_", async (dir) => {
    await buildShapesWorldShards({
      outDir: `${dir}/data`,
      seed: 1,
      count: 64,
      perShard: 32,
      size: 16,
    });
    await fn(`${dir}/data`, `${dir}/work`);
  });
}

/** Each stage's losses within `rel` of the pinned ones, step by step. */
function assertLossesClose(got: StageLosses, want: StageLosses, rel: number): void {
  for (const k of ["autoencoder", "clip", "unet"] as const) {
    assertClose(got[k], want[k], rel, `${k} vs pinned`, { scale: "each", minScale: 0 });
  }
}

Deno.test("tiny preset: first training losses on cpu-js are bit-identical to the pinned ones", async () => {
  await initBackendAndConvGrad("cpu-js", { quiet: true });
  await withData(async (data, work) => {
    const got = await stageLosses(data, work);
    if (RECORD) return console.log(`cpu-js: ${JSON.stringify(got)}`);
    assert.deepEqual(got, PINNED["cpu-js"]);
  });
});

Deno.test("tiny preset: first training losses on cpu (fused kernels) match the pinned ones", async () => {
  const info = await initBackendAndConvGrad("cpu-blas", { quiet: true });
  await withData(async (data, work) => {
    const got = await stageLosses(data, work);
    const core = openBlasCore();
    if (RECORD) return console.log(`cpu (${info.name}, ${core}): ${JSON.stringify(got)}`);
    if (info.blas && core === PINNED_CORE) assert.deepEqual(got, PINNED.cpu);
    else assertLossesClose(got, PINNED.cpu, 1e-3);
  });
});
