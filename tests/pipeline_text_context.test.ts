/**
 * `textContext: "states+tokens"` (`deno task train --text-context states+tokens`): the UNet
 * cross-attends to the text encoder's states followed by each word's plain token embedding, so a
 * shape word is also seen apart from the colour word before it in the causal encoder.
 */
import assert from "node:assert/strict";
import {
  contextTokens,
  encodeCaptions,
  generate,
  initCompute,
  loadRun,
  resolvePreset,
  trainPipeline,
} from "../lib/pipeline/mod.ts";
import { exportLoadedRun } from "../lib/onnx/mod.ts";
import { disposeParams } from "../lib/nn/mod.ts";
import { makeTinyRun } from "./helpers/tiny_run.ts";

Deno.test("encodeCaptions with states+tokens appends each word's embedding row", async () => {
  await initCompute("cpu", { quiet: true });
  const dir = await Deno.makeTempDir({ prefix: "xgen_textctx_" });
  try {
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
    for (const p of [run.ae.params, run.clip.params, run.unet.params]) disposeParams(p);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resolvePreset: textContext states stays implicit, states+tokens is set, others fail", () => {
  assert.deepEqual(resolvePreset("tiny", { unetTextContext: "states" }), resolvePreset("tiny"));
  assert.equal(
    resolvePreset("tiny", { unetTextContext: "states+tokens" }).unet.textContext,
    "states+tokens",
  );
  assert.throws(
    // deno-lint-ignore no-explicit-any
    () => resolvePreset("tiny", { unetTextContext: "words" as any }),
    /textContext must be one of states, states\+tokens, tokens, got "words"/,
  );
});

Deno.test("a states+tokens run trains, samples with tfjs and refuses an ONNX export", async () => {
  await initCompute("cpu", { quiet: true });
  const dir = await Deno.makeTempDir({ prefix: "xgen_textctx_run_" });
  try {
    const preset = resolvePreset("tiny", { unetSteps: 3, unetTextContext: "states+tokens" });
    const summary = await trainPipeline({
      out: `${dir}/run`,
      preset,
      seed: 0,
      resume: false,
      backend: "cpu",
      progress: false,
      sampleEngine: "onnx",
      log: () => {},
    });
    assert.equal(summary.sampleEngine, "tfjs", "falls back to the engine that carries the option");
    assert.ok(summary.captionFollowing, "the finished run was evaluated");
    const run = await loadRun(`${dir}/run`);
    assert.equal(run.textContext, "states+tokens");
    assert.equal((await loadRun(`${dir}/run`, { checkpoint: 3 })).textContext, "states+tokens");
    const images = await generate(run, {
      prompts: ["a red circle"],
      n: 2,
      guidance: 3,
      steps: 2,
      scheduler: "ddim",
      seed: 0,
    });
    assert.equal(images.length, 2);
    await assert.rejects(
      () => exportLoadedRun(run, `${dir}/onnx`),
      /textContext "states\+tokens", which the ONNX export does not carry.*--engine tfjs/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
