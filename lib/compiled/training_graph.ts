/**
 * The UNet training step as one IR graph: inputs (the UNet's parameters by name, `x`, `t`,
 * `context`, the prediction `target` and per-sample loss `weights`) -> `loss` and one
 * `grad/<param>` output per parameter. The forward is `unetForward` recorded through
 * {@link GraphOps} (the one model definition), the loss is lib/recipe's UNet-stage loss
 * `mean_b(w_b * mean_hwc((pred - target)^2))` (min-SNR weights, or ones for a plain MSE), and the
 * backward comes from {@link gradients}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UNET_PRESETS } from "../models/unet.ts";
 * import { unetTrainingGraph } from "./training_graph.ts";
 *
 * const cfg = UNET_PRESETS.tiny;
 * const s = unetTrainingGraph({ cfg, batch: 1, height: 8, width: 8, tokens: 4 });
 * assert.deepEqual(s.graph.outputs.get("loss")!.shape, []);
 * assert.equal(s.graph.outputs.size, 1 + Object.keys(s.grads).length);
 * assert.ok(s.forwardNodes < s.graph.nodes.length);
 * ```
 * @module
 */
import { type UnetConfig, unetForward, unetParamShapes } from "../models/unet.ts";
import type { Ops } from "../nn/ops.ts";
import { gradients } from "./autodiff.ts";
import { Graph, GraphOps, type Node } from "./graph.ts";

/** Sizes of one training step's graph. */
export interface UnetTrainingGraphOptions {
  cfg: UnetConfig;
  batch: number;
  /** Latent height and width. */
  height: number;
  width: number;
  /** Text context length. */
  tokens: number;
}

/** A recorded training step. */
export interface UnetTrainingGraph {
  graph: Graph;
  loss: Node;
  /** Gradient node per parameter name. */
  grads: Record<string, Node>;
  /** Nodes `[0, forwardNodes)` are the forward pass and loss; the rest are the backward. */
  forwardNodes: number;
}

/**
 * The weighted MSE of the UNet stage on any {@link Ops}:
 * `mean_b(weights_b * mean_{h,w,c}((pred - target)^2))`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, GraphOps } from "./graph.ts";
 * import { weightedMse } from "./training_graph.ts";
 *
 * const m = new GraphOps(new Graph(), {});
 * const p = m.input("p", [2, 1, 1, 3]), t = m.input("t", [2, 1, 1, 3]);
 * assert.deepEqual(weightedMse(m, p, t, m.input("w", [2])).shape, []);
 * ```
 */
export function weightedMse<T>(m: Ops<T>, pred: T, target: T, weights: T): T {
  const d = m.add(pred, m.mul(target, -1));
  const perSample = m.mean(m.mul(d, d), [1, 2, 3]);
  return m.mean(m.mul(perSample, weights), [0]);
}

/**
 * Record the UNet training step of `o.cfg` for the given sizes (see the module doc).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UNET_PRESETS } from "../models/unet.ts";
 * import { unetTrainingGraph } from "./training_graph.ts";
 *
 * const cfg = UNET_PRESETS.tiny;
 * const s = unetTrainingGraph({ cfg, batch: 2, height: 8, width: 8, tokens: 4 });
 * assert.deepEqual(s.grads["conv_in.weight"].shape, [3, 3, 4, 16]);
 * ```
 */
export function unetTrainingGraph(o: UnetTrainingGraphOptions): UnetTrainingGraph {
  const { cfg, batch, height, width, tokens } = o;
  const shapes = unetParamShapes(cfg);
  const m = new GraphOps(new Graph(), shapes);
  const x = m.input("x", [batch, height, width, cfg.inChannels]);
  const t = m.input("t", [batch]);
  const context = m.input("context", [batch, tokens, cfg.contextDim]);
  const target = m.input("target", [batch, height, width, cfg.outChannels]);
  const weights = m.input("weights", [batch]);
  const pred = unetForward(m, cfg, { x, t, context });
  const loss = weightedMse(m, pred, target, weights);
  const g = m.graph;
  const forwardNodes = g.nodes.length;
  const names = Object.keys(shapes).sort();
  const params = names.map((n) => m.param(n));
  const gs = gradients(g, loss, params);
  g.output("loss", loss);
  const grads: Record<string, Node> = {};
  names.forEach((n, i) => {
    grads[n] = gs[i];
    g.output(`grad/${n}`, gs[i]);
  });
  return { graph: g, loss, grads, forwardNodes };
}
