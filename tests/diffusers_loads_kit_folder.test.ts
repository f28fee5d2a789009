/**
 * The Stable Diffusion folders the kit writes load through diffusers' own pipeline loader:
 * `tests/fixtures/check_diffusers_load.py` imports diffusers v0.31.0 from the source of the
 * diffusers git mirror (as `make_diffusers_unet.py` does), fakes onnxruntime and transformers
 * (Debian has neither; the fakes check the model, external-data and CLIP BPE files exist), calls
 * `OnnxStableDiffusionPipeline.from_pretrained` and `DiffusionPipeline.from_pretrained` on the
 * folder and prints what diffusers loaded. Checked here on a parts-run folder (a UNet trained two
 * steps on the tiny real-exporter SD fixture's frozen parts), the same UNet with its weights in
 * `unet/model.onnx_data`, and a kit-run export (whose word tokenizer is `[null, null]`).
 *
 * Needs Debian's `/usr/bin/python3` with torch and onnx, and the diffusers mirror at
 * /work/.mirror/huggingface+diffusers/repo; the tests are skipped with the reason printed when
 * either is missing. CI (`.ci/run`) installs neither (tests/setup/ensure_deps.sh lists no
 * python3-torch, and the mirror is never there), so in CI these tests skip.
 */
import assert from "node:assert/strict";
import { trainOnParts } from "../lib/jobs/train_parts.ts";
import { exportPartsFolder } from "../lib/recipe/parts_export.ts";
import { exportRun } from "../lib/recipe/onnx_export.ts";
import { loadModel } from "../lib/recipe/model_files.ts";
import { resolvePreset } from "../lib/recipe/presets.ts";
import { UNET_PRESETS, type UnetConfig } from "../lib/models/unet.ts";
import { buildShapesWorldShards } from "../lib/data/webdataset.ts";
import { initBackendAndConvGrad } from "../lib/train/init_backend.ts";
import { makeTinyRun } from "./helpers/tiny_run.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

const FIXTURE = new URL("./fixtures/tiny_sd/fp32_scalar_t", import.meta.url).pathname;
const SCRIPT = new URL("./fixtures/check_diffusers_load.py", import.meta.url).pathname;
const MIRROR = "/work/.mirror/huggingface+diffusers/repo";
const ONNX_MODEL = "diffusers.pipelines.onnx_utils.OnnxRuntimeModel";

/** Why the check cannot run here, or null when it can. */
async function missing(): Promise<string | null> {
  const py = await new Deno.Command("/usr/bin/python3", {
    args: ["-c", "import torch, onnx, PIL, requests, filelock, regex, importlib_metadata, tqdm"],
    stderr: "null",
  }).output().then((o) => o.success, () => false);
  if (!py) return "/usr/bin/python3 lacks torch/onnx (Debian's python3-torch, python3-onnx)";
  const tag = await new Deno.Command("git", {
    args: [`--git-dir=${MIRROR}`, "rev-parse", "--verify", "-q", "v0.31.0^{commit}"],
    stdout: "null",
    stderr: "null",
  }).output().then((o) => o.success, () => false);
  return tag ? null : `no diffusers mirror with tag v0.31.0 at ${MIRROR}`;
}
const SKIP = await missing();
if (SKIP) console.log(`diffusers_loads_kit_folder: skipped: ${SKIP}`);

// deno-lint-ignore no-explicit-any
type Summary = any;

/** Run the check script on `folder`: its JSON summary, or its exit code and stderr. */
async function check(folder: string): Promise<{ code: number; summary?: Summary; err: string }> {
  const out = await new Deno.Command("/usr/bin/python3", { args: [SCRIPT, folder] }).output();
  const err = new TextDecoder().decode(out.stderr);
  if (!out.success) return { code: out.code, err };
  return { code: 0, summary: JSON.parse(new TextDecoder().decode(out.stdout)), err };
}

/** The ONNX parts every kit folder has, each loaded by diffusers from `<part>/model.onnx`. */
function assertOnnxParts(s: Summary, folder: string) {
  for (const part of ["unet", "vae_encoder", "vae_decoder", "text_encoder"]) {
    assert.deepEqual(s.components[part], {
      class: ONNX_MODEL,
      model_path: `${folder}/${part}/model.onnx`,
      model_save_dir: `${folder}/${part}`,
    }, part);
  }
  assert.equal(s.pipeline_class, "OnnxStableDiffusionPipeline");
  // DiffusionPipeline resolves the class from model_index.json's _class_name, same components.
  assert.equal(s.auto_pipeline_class, "OnnxStableDiffusionPipeline");
  assert.equal(s.auto_components_same, true);
  assert.equal(s.diffusers_version, "0.31.0");
  assert.equal(s.components.safety_checker, null);
  assert.equal(s.components.feature_extractor, null);
  assert.equal(s.requires_safety_checker, false);
}

/** unet/config.json as diffusers read it: every field the kit wrote, none ignored. */
async function assertUnetConfig(s: Summary, folder: string, params: number) {
  const written = JSON.parse(await Deno.readTextFile(`${folder}/unet/config.json`));
  for (const [k, v] of Object.entries(written)) {
    if (!k.startsWith("_")) assert.deepEqual(s.unet_config.read[k], v, `unet config ${k}`);
  }
  assert.deepEqual(s.unet_config.ignored, []);
  // UNet2DConditionModel.from_config(unet/config.json) has exactly the kit UNet's parameters.
  assert.equal(s.unet_config.parameters, params);
}

Deno.test({
  name: "diffusers' OnnxStableDiffusionPipeline loads a parts-run SD folder (needs torch)",
  ignore: SKIP !== null,
  fn: async () => {
    await initBackendAndConvGrad("cpu-js", { quiet: true });
    await withTempDir("xgen-diffusers-load-", async (dir) => {
      await buildShapesWorldShards({ outDir: `${dir}/shards`, seed: 0, count: 4, perShard: 4 });
      const settings = {
        ...resolvePreset("tiny").unet,
        model: UNET_PRESETS.tiny,
        steps: 2,
        batchSize: 2,
        warmupSteps: 0,
      };
      const run = `${dir}/run`;
      await trainOnParts({
        parts: FIXTURE,
        data: `${dir}/shards`,
        out: run,
        settings,
        resolution: 64,
        seed: 0,
        resume: false,
        backend: "cpu-js",
        skipSamples: true,
        progress: false,
        log: () => {},
      });
      const m = await loadModel<UnetConfig>(`${run}/unet/model`, "unet");
      const params = Object.values(m.params).reduce((n, v) => n + v.size, 0);
      const folder = `${run}/model`;
      const r = await check(folder);
      assert.equal(r.code, 0, r.err.slice(-3000));
      const s = r.summary;
      assertOnnxParts(s, folder);
      assert.deepEqual(s.components.tokenizer, {
        class: "__main__.CLIPTokenizer",
        directory: `${folder}/tokenizer`,
        model_max_length: 77,
      });
      assert.equal(s.null_tokenizer_plain_load_error, null);
      assert.deepEqual(s.load_kwargs, {});
      // The scheduler is the fixture's config, with diffusers' defaults for what it leaves out.
      const sched = JSON.parse(
        await Deno.readTextFile(`${FIXTURE}/scheduler/scheduler_config.json`),
      );
      assert.deepEqual(s.scheduler, {
        class: "PNDMScheduler",
        num_train_timesteps: sched.num_train_timesteps,
        beta_start: sched.beta_start,
        beta_end: sched.beta_end,
        beta_schedule: "scaled_linear",
        prediction_type: "epsilon",
        steps_offset: 1,
        set_alpha_to_one: false,
        skip_prk_steps: true,
        clip_sample: false,
        timestep_spacing: "leading",
      });
      await assertUnetConfig(s, folder, params);
      assert.deepEqual([s.unet_config.read.sample_size, s.unet_config.read.cross_attention_dim], [
        8,
        32,
      ]);
      // What the pipeline's __call__ feeds (int32 input_ids, sample/timestep/encoder_hidden_states,
      // latent_sample) the folder's models take; no diffusers warning on loading.
      assert.deepEqual(s.call_contract, { timestep_type: "tensor(float)", notes: [] });
      assert.deepEqual(s.warnings, []);
      const unet = s.sessions.find((x: Summary) => x.path === `${folder}/unet/model.onnx`);
      assert.deepEqual(unet.external_data, {});
      assert.deepEqual(Object.keys(unet.inputs), ["sample", "timestep", "encoder_hidden_states"]);

      // The same UNet with its weights in unet/model.onnx_data (as an SD-sized one must be).
      const ext = `${dir}/model_external`;
      await exportPartsFolder({
        parts: FIXTURE,
        out: ext,
        unet: { params: m.params, config: m.info.config },
        resolution: 64,
        unetExternalData: "always",
      });
      const re = await check(ext);
      assert.equal(re.code, 0, re.err.slice(-3000));
      assertOnnxParts(re.summary, ext);
      const extUnet = re.summary.sessions.find((x: Summary) => x.path === `${ext}/unet/model.onnx`);
      assert.ok(extUnet.external_data["model.onnx_data"] > 0, JSON.stringify(extUnet));
      assert.equal(re.summary.unet_config.parameters, params);
      // Without its weights file the folder does not load: the fake session checks it.
      await Deno.remove(`${ext}/unet/model.onnx_data`);
      const broken = await check(ext);
      assert.equal(broken.code, 1);
      assert.match(broken.err, /names model\.onnx_data, missing beside it/);
    });
  },
});

Deno.test({
  name: "diffusers loads a kit-run export once given tokenizer= (needs torch)",
  ignore: SKIP !== null,
  fn: async () => {
    await initBackendAndConvGrad("cpu-js", { quiet: true });
    await withTempDir("xgen-diffusers-load-run-", async (dir) => {
      await makeTinyRun(`${dir}/run`, { captions: ["a red circle", "two blue squares"] });
      const folder = `${dir}/onnx`;
      await exportRun(`${dir}/run`, folder);
      const m = await loadModel<UnetConfig>(`${dir}/run/unet/model`, "unet");
      const params = Object.values(m.params).reduce((n, v) => n + v.size, 0);
      const r = await check(folder);
      assert.equal(r.code, 0, r.err.slice(-3000));
      const s = r.summary;
      // The word tokenizer is [null, null]: diffusers drops it and, the tokenizer not being an
      // optional component of the pipeline, refuses the folder unless `tokenizer=` is passed.
      assert.match(
        s.null_tokenizer_plain_load_error,
        /expected \{.*'tokenizer'.*\}, but only \{.*\} were passed/,
      );
      assert.doesNotMatch(s.null_tokenizer_plain_load_error.split("only")[1], /tokenizer/);
      assert.deepEqual(s.load_kwargs, { tokenizer: "None" });
      assert.equal(s.components.tokenizer, null);
      assert.deepEqual(s.tokenizers, []);
      assertOnnxParts(s, folder);
      assert.equal(s.scheduler.class, "PNDMScheduler");
      await assertUnetConfig(s, folder, params);
      // image_encoder is not a component of the pipeline: diffusers ignores it, with a warning.
      assert.equal(s.warnings.length, 2, s.warnings.join("\n"));
      for (const w of s.warnings) {
        assert.match(w, /\{'image_encoder': \['diffusers', 'OnnxRuntimeModel'\]\}/);
      }
      // Loading works; the pipeline's __call__ hard-codes SD v1's latent scale and VAE factor,
      // which the tiny run's autoencoder (scaling factor 0.8, downsampling by 4) does not have.
      assert.deepEqual(s.call_contract.notes, [
        "vae scaling_factor 0.8; the pipeline divides latents by 0.18215",
        "vae downsamples by 4; the pipeline's latents are height // 8",
      ]);
    });
  },
});
