/**
 * `textContext: "states+tokens"` (`deno task train --text-context states+tokens`): the UNet
 * cross-attends to the text encoder's states followed by each word's plain token embedding, so a
 * shape word is also seen apart from the colour word before it in the causal encoder; with
 * `tokens`, the plain embeddings alone; `words` and `states+words` are the same with each
 * embedding layer-normalised. The ONNX export carries any of them as `encoder_hidden_states`.
 */
import assert from "node:assert/strict";
import {
  contextTokens,
  encodeCaptions,
  generate,
  type LoadedRun,
  loadRun,
  resolvePreset,
} from "../lib/recipe/mod.ts";
import { initBackendAndConvGrad } from "../lib/train/mod.ts";
import { TEXT_CONTEXTS } from "../lib/models/mod.ts";
import { trainRun } from "../lib/jobs/mod.ts";
import {
  encodePrompts,
  exportClipText,
  loadOnnxPipeline,
  openSession,
  txt2img,
} from "../lib/onnx/mod.ts";
import { disposeParams } from "../lib/nn/mod.ts";
import { makeTinyRun } from "./helpers/tiny_run.ts";
import { withTempDir } from "./helpers/temp_dir.ts";
import { assertClose } from "./helpers/assert_close.ts";

const ORT = { threads: 1, executionProviders: ["cpu"] } as const;

Deno.test("encodeCaptions with states+tokens appends each word's embedding row", async () => {
  await initBackendAndConvGrad("cpu-blas", { quiet: true });
  await withTempDir("xgen_textctx_", async (dir) => {
    const caps = ["a red circle", "a blue circle"];
    await makeTinyRun(dir, { captions: caps });
    const run = await loadRun(dir);
    const T = run.clip.config.contextLength, D = run.clip.config.textWidth;
    assert.equal(contextTokens(run.clip), T);
    assert.equal(contextTokens(run.clip, "states+tokens"), 2 * T);
    const states = await encodeCaptions(run.clip, caps);
    const both = await encodeCaptions(run.clip, caps, "states+tokens");
    const words = await encodeCaptions(run.clip, caps, "tokens");
    assert.equal(contextTokens(run.clip, "tokens"), T);
    // `tokens` is exactly the second half of `states+tokens`.
    for (let n = 0; n < caps.length; n++) {
      assert.deepEqual(
        words.subarray(n * T * D, (n + 1) * T * D),
        both.subarray((n * 2 + 1) * T * D, (n * 2 + 2) * T * D),
      );
    }
    assert.equal(both.length, caps.length * 2 * T * D);
    const table = await run.clip.params["text.token_embedding.weight"].data<"float32">();
    const ids = run.clip.tokenizer.encodeBatch(caps);
    for (let n = 0; n < caps.length; n++) {
      // First T rows: exactly the states alone.
      assert.deepEqual(
        both.subarray(n * 2 * T * D, (n * 2 + 1) * T * D),
        states.subarray(n * T * D, (n + 1) * T * D),
      );
      // Last T rows: the embedding table's row of each token id.
      for (let t = 0; t < T; t++) {
        const id = ids[n * T + t];
        const row = both.subarray(((n * 2 + 1) * T + t) * D, ((n * 2 + 1) * T + t + 1) * D);
        const want = table.subarray(id * D, (id + 1) * D);
        for (let k = 0; k < D; k++) assert.ok(Math.abs(row[k] - want[k]) < 1e-6, `${n},${t},${k}`);
      }
    }
    // The point of the option: "circle" (token 3) has the same embedding row after "red" and
    // "blue", while its causal state differs with the colour before it.
    const rowOf = (a: Float32Array, n: number, t: number) =>
      a.subarray((n * 2 * T + t) * D, (n * 2 * T + t + 1) * D);
    assert.deepEqual(rowOf(both, 0, T + 3), rowOf(both, 1, T + 3));
    assert.notDeepEqual(rowOf(both, 0, 3), rowOf(both, 1, 3));

    // `words`: each `tokens` row moved to mean 0 and divided by sqrt(variance + 1e-5), computed
    // here in float64; `states+words` is the states followed by exactly those rows.
    const normed = await encodeCaptions(run.clip, caps, "words");
    const bothNormed = await encodeCaptions(run.clip, caps, "states+words");
    assert.equal(contextTokens(run.clip, "words"), T);
    assert.equal(contextTokens(run.clip, "states+words"), 2 * T);
    for (let n = 0; n < caps.length; n++) {
      assert.deepEqual(
        bothNormed.subarray(n * 2 * T * D, (n * 2 + 1) * T * D),
        states.subarray(n * T * D, (n + 1) * T * D),
      );
      assert.deepEqual(
        bothNormed.subarray((n * 2 + 1) * T * D, (n * 2 + 2) * T * D),
        normed.subarray(n * T * D, (n + 1) * T * D),
      );
      for (let t = 0; t < T; t++) {
        const raw = words.subarray((n * T + t) * D, (n * T + t + 1) * D);
        const got = normed.subarray((n * T + t) * D, (n * T + t + 1) * D);
        const mean = raw.reduce((a, v) => a + v, 0) / D;
        const variance = raw.reduce((a, v) => a + (v - mean) ** 2, 0) / D;
        for (let k = 0; k < D; k++) {
          const want = (raw[k] - mean) / Math.sqrt(variance + 1e-5);
          assert.ok(Math.abs(got[k] - want) < 1e-4 * Math.max(1, Math.abs(want)), `${n},${t},${k}`);
        }
      }
    }
    // The raw table is small (init std 0.02), the normalised rows have about unit scale (the
    // epsilon, 1e-5 against a variance of ~4e-4, keeps them ~1% under): the reason for `words`.
    const rms = (a: Float32Array) => Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length);
    assert.ok(rms(words) < 0.1, `raw embeddings rms ${rms(words)}`);
    assert.ok(rms(normed) > 0.9 && rms(normed) <= 1, `normalised rms ${rms(normed)}`);
    for (const p of [run.ae.params, run.clip.params, run.unet.params]) disposeParams(p);
  });
});

Deno.test("resolvePreset: presets use words, states stays implicit, others are set or fail", () => {
  assert.equal(resolvePreset("default").unet.textContext, "words");
  assert.equal(resolvePreset("tiny").unet.textContext, "words");
  // An absent field means `states`, so runs made before the option resume with the same preset.
  const states = resolvePreset("tiny", { unetTextContext: "states" });
  assert.equal("textContext" in states.unet, false);
  const { textContext: _, ...rest } = resolvePreset("tiny").unet;
  assert.deepEqual(states.unet, rest);
  assert.equal(
    resolvePreset("tiny", { unetTextContext: "states+tokens" }).unet.textContext,
    "states+tokens",
  );
  assert.throws(
    // deno-lint-ignore no-explicit-any
    () => resolvePreset("tiny", { unetTextContext: "bag" as any }),
    /textContext must be one of states, states\+tokens, tokens, words, states\+words, got "bag"/,
  );
});

Deno.test("a states+tokens run trains and samples through ONNX, whose context equals encodeCaptions", async () => {
  await initBackendAndConvGrad("cpu-blas", { quiet: true });
  await withTempDir("xgen_textctx_run_", async (dir) => {
    let run: LoadedRun | undefined;
    try {
      const preset = resolvePreset("tiny", { unetSteps: 3, unetTextContext: "states+tokens" });
      const summary = await trainRun({
        out: `${dir}/run`,
        preset,
        seed: 0,
        resume: false,
        backend: "cpu-blas",
        progress: false,
        sampleEngine: "onnx",
        log: () => {},
      });
      assert.equal(summary.sampleEngine, "onnx");
      assert.ok(summary.captionFollowing, "the finished run was evaluated");
      run = await loadRun(`${dir}/run`);
      assert.equal(run.textContext, "states+tokens");
      assert.equal((await loadRun(`${dir}/run`, { checkpoint: 3 })).textContext, "states+tokens");
      const gen = {
        prompts: ["a red circle"],
        n: 2,
        guidance: 3,
        steps: 2,
        scheduler: "ddim",
        seed: 0,
      };
      const images = await generate(run, gen);
      assert.equal(images.length, 2);

      // The export made for the evaluation above: its UNet context is the training context.
      const T = run.clip.config.contextLength, D = run.clip.config.textWidth;
      const pipe = await loadOnnxPipeline(`${dir}/run/onnx`, ORT);
      try {
        assert.equal(pipe.contextTokens, 2 * T);
        assert.equal(pipe.io.text.hidden, "encoder_hidden_states");
        const prompts = ["", "a red circle", "a blue square"];
        const onnx = await encodePrompts(pipe, prompts);
        assert.deepEqual(onnx.shape, [3, 2 * T, D]);
        assertNear(onnx.states, await encodeCaptions(run.clip, prompts, "states+tokens"), "both");
        // Same seed, same images from both engines (8-bit pixels, float32 rounding apart).
        const viaOnnx = await txt2img(pipe, gen);
        let worst = 0;
        viaOnnx.forEach((im, i) =>
          im.data.forEach((v, k) => worst = Math.max(worst, Math.abs(v - images[i].data[k])))
        );
        assert.ok(worst <= 2, `ONNX and tfjs images differ by ${worst} levels`);
      } finally {
        await pipe.release();
      }

      // Every other mode: the output is what encodeCaptions gives; `states` adds no output (SD
      // layout).
      const ids = run.clip.tokenizer.encodeBatch(["a red circle", ""]);
      for (const mode of TEXT_CONTEXTS) {
        const s = await openSession(
          await exportClipText(run.clip.params, run.clip.config, { unetContext: mode }),
          ORT,
        );
        try {
          const names = s.outputs.map((o) => o.name);
          assert.equal(names.includes("encoder_hidden_states"), mode !== "states", mode);
          if (mode === "states") continue;
          const out = await s.run({ input_ids: { data: ids, shape: [2, T] } });
          assert.deepEqual(out.encoder_hidden_states.dims, [2, contextTokens(run.clip, mode), D]);
          const want = await encodeCaptions(run.clip, ["a red circle", ""], mode);
          assertNear(out.encoder_hidden_states.data as Float32Array, want, mode);
        } finally {
          await s.release();
        }
      }
      await assert.rejects(
        // deno-lint-ignore no-explicit-any
        () => exportClipText(run!.clip.params, run!.clip.config, { unetContext: "bag" as any }),
        /unetContext must be one of states, states\+tokens, tokens, words, states\+words, got "bag"/,
      );
    } finally {
      if (run) {
        for (const p of [run.ae.params, run.clip.params, run.unet.params]) disposeParams(p);
      }
    }
  });
});

/** ONNX within 1e-4 of tfjs, element-wise. */
const assertNear = (got: Float32Array, want: Float32Array, what: string) =>
  assertClose(got, want, 1e-4, `${what}: ONNX vs tfjs`, { scale: "absolute" });
