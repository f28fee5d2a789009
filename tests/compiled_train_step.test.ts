/**
 * The fused compiled step with AdamW on the kit's WebGPU executor: the fused graph against the
 * unfused one (tiny and default UNets), the default UNet's full step (forward, loss, backward,
 * clipping, AdamW, EMA) in at most 1,000 dispatches, one submit and nothing created per step,
 * and 20 training steps against the kit's cpu-blas step (computeGrads, clipGradNorm, AdamW, Ema)
 * on the same data. Skipped, with the reason printed, without a WebGPU adapter.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { countWebgpuCalls, initBackend } from "../lib/backend/mod.ts";
import {
  compileGraph,
  compileTrainStep,
  fuseGraph,
  interpret,
  NO_KERNEL_OPS,
  unetTrainingGraph,
} from "../lib/compiled/mod.ts";
import { initUnetArrays, UNET_PRESETS, type UnetConfig, unetForward } from "../lib/models/unet.ts";
import { presetUnetConfig, RECIPE_PRESETS } from "../lib/recipe/mod.ts";
import { disposeParams } from "../lib/nn/mod.ts";
import { AdamW, clipGradNorm, computeGrads, Ema } from "../lib/train/optim.ts";
import { warmupCosine } from "../lib/train/lr.ts";
import { Rng, STREAM } from "../lib/util/rng.ts";
import { relErr, webgpuForTests } from "./helpers/webgpu.ts";

await initBackend("cpu-blas", { quiet: true });

const { device, skip: ignore } = await webgpuForTests("compiled_train_step", { device: true });

const DEFAULT_UNET: UnetConfig = presetUnetConfig(RECIPE_PRESETS.default);

function weightsOf(cfg: UnetConfig, seed: number): Record<string, Float32Array> {
  return initUnetArrays(cfg, Rng.stream(seed, [0, STREAM.init]));
}

function dataOf(cfg: UnetConfig, sizes: number[], seed: number): Record<string, Float32Array> {
  const [b, h, w, tokens] = sizes;
  const rng = Rng.stream(seed, [0, STREAM.noise]);
  return {
    x: rng.normal(b * h * w * cfg.inChannels),
    t: Float32Array.from({ length: b }, () => Math.floor(rng.uniform() * 1000)),
    context: rng.normal(b * tokens * cfg.contextDim),
    target: rng.normal(b * h * w * cfg.outChannels),
    weights: Float32Array.from({ length: b }, (_, i) => 0.7 + 0.6 * i),
  };
}

/** Fused against unfused graph, both on the executor; the unfused one against the interpreter. */
async function fusedAgainstUnfused(cfg: UnetConfig, sizes: number[], withInterpreter: boolean) {
  const [batch, height, width, tokens] = sizes;
  const step = unetTrainingGraph({ cfg, batch, height, width, tokens });
  const feeds = { ...weightsOf(cfg, 3), ...dataOf(cfg, sizes, 1) };
  const plain = await compileGraph(step.graph, device!);
  const fusedGraph = fuseGraph(step.graph);
  const fused = await compileGraph(fusedGraph, device!);
  const want = await plain.run(feeds), got = await fused.run(feeds);
  let worst = 0, worstRef = 0;
  const ref: Record<string, Float32Array> = {};
  if (withInterpreter) {
    const tfFeeds: Record<string, tf.Tensor> = {};
    for (const [k, v] of Object.entries(feeds)) {
      tfFeeds[k] = tf.tensor(v, [...step.graph.inputs.get(k)!.shape]);
    }
    const r = interpret(step.graph, tfFeeds);
    for (const [k, t] of Object.entries(r)) ref[k] = t.dataSync() as Float32Array;
    tf.dispose([...Object.values(r), ...Object.values(tfFeeds)]);
  }
  for (const name of plain.outputNames) {
    const e = relErr(got[name], want[name]);
    assert.ok(e <= 1e-5, `${name}: fused vs unfused ${e.toExponential(2)}`);
    worst = Math.max(worst, e);
    if (withInterpreter) {
      const e2 = relErr(got[name], ref[name]);
      assert.ok(e2 <= 1e-4, `${name}: fused vs interpreter ${e2.toExponential(2)}`);
      worstRef = Math.max(worstRef, e2);
    }
  }
  const kernels = (g: typeof step.graph) => g.nodes.filter((n) => !NO_KERNEL_OPS.has(n.op)).length;
  assert.equal(fused.stats.dispatches, kernels(fusedGraph));
  console.log(
    `fused vs unfused (batch ${batch}): ${plain.outputNames.length} outputs, worst ${
      worst.toExponential(2)
    }${
      withInterpreter ? `, vs interpreter ${worstRef.toExponential(2)}` : ""
    }; dispatches ${plain.stats.dispatches} -> ${fused.stats.dispatches}`,
  );
  plain.destroy();
  fused.destroy();
}

Deno.test({
  name: "fused tiny UNet graph equals the unfused one (1e-5) and the interpreter (1e-4)",
  ignore,
  fn: () => fusedAgainstUnfused(UNET_PRESETS.tiny, [2, 8, 8, 5], true),
});

Deno.test({
  name: "fused default UNet graph equals the unfused one (1e-5)",
  ignore,
  fn: () => fusedAgainstUnfused(DEFAULT_UNET, [1, 8, 8, 24], false),
});

Deno.test({
  name: "default UNet full step with AdamW: <= 1,000 dispatches, one submit, nothing created",
  ignore,
  async fn() {
    const sizes = [1, 8, 8, 24];
    const step = unetTrainingGraph({
      cfg: DEFAULT_UNET,
      batch: 1,
      height: 8,
      width: 8,
      tokens: 24,
    });
    const train = await compileTrainStep(step, device!, {
      clipNorm: 1,
      ema: { decay: 0.999, warmup: true },
    });
    train.setParams(weightsOf(DEFAULT_UNET, 3));
    const first = await train.step(dataOf(DEFAULT_UNET, sizes, 1), 1e-4);
    device!.pushErrorScope("validation");
    const { result, counts } = await countWebgpuCalls(() =>
      train.step(dataOf(DEFAULT_UNET, sizes, 2), 1e-4)
    );
    const err = await device!.popErrorScope();
    assert.equal(err, null, `validation: ${err?.message}`);
    assert.ok(Number.isFinite(first) && Number.isFinite(result));
    assert.ok(counts.dispatches <= 1000, `${counts.dispatches} dispatches`);
    assert.equal(counts.dispatches, train.exe.stats.dispatches);
    assert.deepEqual(
      [counts.submits, counts.computePasses, counts.mapReads, counts.bufferWrites],
      [1, 1, 1, 6], // 5 data inputs + the step's scalars
    );
    assert.deepEqual(
      [counts.pipelines, counts.shaderModules, counts.bindGroups, counts.buffers],
      [0, 0, 0, 0],
    );
    console.log(
      `default UNet full step: ${counts.dispatches} dispatches (${train.exe.stats.pipelines} ` +
        `pipelines), losses ${first.toFixed(5)}, ${result.toFixed(5)}`,
    );
    train.destroy();
  },
});

Deno.test({
  name: "20 steps of the compiled tiny UNet step with AdamW equal the cpu-blas step (1e-4)",
  ignore,
  async fn() {
    const cfg = UNET_PRESETS.tiny, sizes = [2, 8, 8, 5], [b, h, w, tokens] = sizes;
    const steps = 20, clipNorm = 1;
    const lr = warmupCosine({ baseLr: 1e-3, warmupSteps: 5, totalSteps: steps, minLr: 5e-5 });
    const init = weightsOf(cfg, 4);
    const step = unetTrainingGraph({ cfg, batch: b, height: h, width: w, tokens });
    const train = await compileTrainStep(step, device!, {
      clipNorm,
      ema: { decay: 0.999, warmup: true },
    });
    train.setParams(init);
    // The kit's step, as lib/train's loop runs it for the UNet stage.
    const params: Record<string, tf.Variable> = {};
    for (const [k, v] of Object.entries(init)) {
      params[k] = tf.variable(tf.tensor(v, [...step.graph.inputs.get(k)!.shape]));
    }
    const opt = new AdamW(params, { weightDecay: 0.01 });
    const ema = new Ema(params, { decay: 0.999, warmup: true });
    const worst = { loss: 0 };
    const losses: string[] = [];
    for (let s = 0; s < steps; s++) {
      const d = dataOf(cfg, sizes, 100 + s);
      const got = await train.step(d, lr(s));
      const { value, grads } = computeGrads(params, () =>
        tf.tidy(() => {
          const pred = unetForward(params, cfg, {
            x: tf.tensor4d(d.x, [b, h, w, cfg.inChannels]),
            t: tf.tensor1d(d.t),
            context: tf.tensor3d(d.context, [b, tokens, cfg.contextDim]),
          });
          const target = tf.tensor4d(d.target, [b, h, w, cfg.outChannels]);
          const se = tf.mean(tf.square(tf.sub(pred, target)), [1, 2, 3]);
          return tf.mean(tf.mul(se, tf.tensor1d(d.weights))) as tf.Scalar;
        }));
      const want = value.dataSync()[0];
      const c = clipGradNorm(grads, clipNorm);
      opt.step(c.grads, lr(s));
      ema.update(params);
      tf.dispose([value, c.norm, ...Object.values(c.grads), ...Object.values(grads)]);
      const e = Math.abs(got - want) / Math.abs(want);
      worst.loss = Math.max(worst.loss, e);
      losses.push(`${got.toFixed(5)}/${want.toFixed(5)}`);
      assert.ok(
        e <= 1e-4,
        `step ${s + 1}: loss ${got} vs cpu-blas ${want} (${e.toExponential(2)})`,
      );
    }
    const [pGot, eGot] = [await train.readParams(), await train.readParams("ema")];
    let wp = 0, we = 0;
    for (const k of Object.keys(params)) {
      wp = Math.max(wp, relErr(pGot[k], params[k].dataSync()));
      we = Math.max(we, relErr(eGot[k], ema.shadow[k].dataSync()));
    }
    console.log(
      `20 steps (lr warmup-cosine 1e-3, clip 1, wd 0.01, EMA): worst loss rel diff ${
        worst.loss.toExponential(2)
      }, weights ${wp.toExponential(2)}, EMA ${we.toExponential(2)}; losses got/want ${
        losses.join(" ")
      }`,
    );
    assert.ok(wp <= 1e-3 && we <= 1e-3, `weights ${wp}, EMA ${we}`);
    train.destroy();
    opt.dispose?.();
    ema.dispose?.();
    disposeParams(params);
  },
});
