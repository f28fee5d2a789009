/**
 * Optimisation primitives over flat `Params` (name -> tf.Variable): AdamW with decoupled weight
 * decay, global-norm gradient clipping, gradient accumulation and an exponential moving average of
 * the weights. All state is held in tf.Variables keyed by parameter name and can be snapshotted to
 * host memory for checkpoints, so a resumed run continues bit for bit.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { AdamW, clipGradNorm, computeGrads } from "./optim.ts";
 *
 * const params = { w: tf.variable(tf.tensor1d([3, 4])) };
 * const opt = new AdamW(params, { weightDecay: 0 });
 * const { value, grads } = computeGrads(params, () => tf.sum(tf.square(params.w))); // grad 2w
 * const clipped = clipGradNorm(grads, 1.0);
 * assert.ok(Math.abs(clipped.norm.dataSync()[0] - 10) < 1e-5); // |(6, 8)| before clipping
 * opt.step(clipped.grads, 1e-3); // Adam's first step moves each weight by -lr
 * assert.deepEqual(Array.from(params.w.dataSync()).map((x) => x.toFixed(3)), ["2.999", "3.999"]);
 * tf.dispose([value, clipped.norm, ...Object.values(grads), ...Object.values(clipped.grads)]);
 * ```
 * @module
 */
import { fusedAdamW, fusedAdamWActive } from "./fused_adamw.ts";
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
// tf.variableGrads needs the gradient registry that only the full tfjs bundle fills.
import "../nn/gradients.ts";
import {
  type Params,
  restoreParams,
  sameShape,
  snapshotParams,
  type TensorDataMap,
} from "./tensor_data.ts";

/** Gradients keyed by parameter name; missing or null entries mean "no gradient". */
export type Grads = Record<string, tf.Tensor | null | undefined>;

/** Options for {@link AdamW}. */
export interface AdamWOptions {
  /** First-moment decay (default 0.9). */
  beta1?: number;
  /** Second-moment decay (default 0.999). */
  beta2?: number;
  /** Added to the denominator (default 1e-8). */
  eps?: number;
  /** Decoupled weight decay coefficient (default 0.01). */
  weightDecay?: number;
  /**
   * Parameters that get no weight decay. Default: rank <= 1 tensors (biases, norm scales), the
   * usual choice since decaying them only hurts.
   */
  noDecay?: (name: string, v: tf.Variable) => boolean;
}

/** Host snapshot of an optimizer, as stored in `optimizer.safetensors` + state.json. */
export interface OptimizerState {
  /** Number of steps taken (for bias correction). */
  t: number;
  /** `m.<param>` and `v.<param>` moments. */
  tensors: TensorDataMap;
}

function checkRange(name: string, x: number, lo: number, hi: number, hiOpen = true): void {
  if (!Number.isFinite(x) || x < lo || (hiOpen ? x >= hi : x > hi)) {
    throw new Error(
      `AdamW: option ${name} must be in [${lo}, ${hi}${hiOpen ? ")" : "]"}, got ${x}`,
    );
  }
}

/**
 * AdamW (Loshchilov & Hutter): Adam moments with bias correction plus weight decay applied
 * directly to the weights (`p -= lr * wd * p`), as in PyTorch's `torch.optim.AdamW`.
 *
 * @example
 * ```ts
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { AdamW } from "./optim.ts";
 *
 * const opt = new AdamW({ w: tf.variable(tf.ones([3, 3])) }, { beta1: 0.9 });
 * opt.step({ w: tf.ones([3, 3]) }, 1e-3);
 * const saved = await opt.state();
 * ```
 */
export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private readonly params: Params;
  private readonly decays: Record<string, boolean> = {};
  private readonly m: Record<string, tf.Variable> = {};
  private readonly v: Record<string, tf.Variable> = {};
  private t = 0;

  constructor(params: Params, opts: AdamWOptions = {}) {
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    checkRange("beta1", this.beta1, 0, 1);
    checkRange("beta2", this.beta2, 0, 1);
    checkRange("eps", this.eps, 0, Infinity);
    checkRange("weightDecay", this.weightDecay, 0, Infinity);
    const noDecay = opts.noDecay ?? ((_n: string, v: tf.Variable) => v.rank <= 1);
    this.params = params;
    // Moments are created up front so the tensor count is constant from the first step on.
    for (const [name, p] of Object.entries(params)) {
      if (!p.trainable) continue;
      this.decays[name] = !noDecay(name, p);
      // tidy frees the initial value; the variable keeps its own reference to the data.
      this.m[name] = tf.tidy(() => tf.variable(tf.zerosLike(p), false));
      this.v[name] = tf.tidy(() => tf.variable(tf.zerosLike(p), false));
    }
  }

  /** Number of steps taken so far. */
  get stepCount(): number {
    return this.t;
  }

  /** Whether parameter `name` receives weight decay. */
  hasDecay(name: string): boolean {
    return this.decays[name] ?? false;
  }

  /**
   * Apply one update with learning rate `lr`. Parameters without a gradient are left unchanged
   * (no decay either, as in PyTorch). Does not dispose `grads`.
   */
  step(grads: Grads, lr: number): void {
    if (!Number.isFinite(lr) || lr < 0) throw new Error(`AdamW.step: lr must be >= 0, got ${lr}`);
    for (const name of Object.keys(grads)) {
      if (!(name in this.params)) {
        throw new Error(`AdamW.step: gradient for unknown param "${name}"`);
      }
      const g = grads[name];
      if (g && !sameShape(g.shape, this.params[name].shape)) {
        throw new Error(
          `AdamW.step: gradient "${name}" has shape [${g.shape}], param has [${
            this.params[name].shape
          }]`,
        );
      }
    }
    this.t += 1;
    const { beta1: b1, beta2: b2, eps, weightDecay: wd } = this;
    const bc1 = 1 - Math.pow(b1, this.t);
    const bc2 = 1 - Math.pow(b2, this.t);
    const stepSize = lr / bc1;
    const sqrtBc2 = Math.sqrt(bc2);
    // On the kit's cpu and webgpu backends one kernel per parameter replaces the update below.
    const fused = fusedAdamWActive();
    tf.tidy(() => {
      for (const [name, g] of Object.entries(grads)) {
        if (!g) continue;
        const p = this.params[name];
        const m = this.m[name];
        const v = this.v[name];
        if (!m) throw new Error(`AdamW.step: param "${name}" is not trainable`);
        const decay = this.decays[name] && wd > 0 ? 1 - lr * wd : 1;
        if (fused && g.dtype === "float32") {
          const [p1, m1, v1] = fusedAdamW(p, g, m, v, {
            beta1: b1,
            beta2: b2,
            eps,
            stepSize,
            sqrtBc2,
            decay,
          });
          m.assign(m1);
          v.assign(v1);
          p.assign(p1);
          continue;
        }
        const m1 = tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1));
        const v1 = tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2));
        m.assign(m1);
        v.assign(v1);
        const denom = tf.add(tf.div(tf.sqrt(v1), sqrtBc2), eps);
        const decayed = decay !== 1 ? tf.mul(p, decay) : p;
        p.assign(tf.sub(decayed, tf.mul(tf.div(m1, denom), stepSize)));
      }
    });
  }

  /** Snapshot moments and step count to host memory. */
  async state(): Promise<OptimizerState> {
    const tensors: TensorDataMap = {};
    const ms = await snapshotParams(this.m);
    const vs = await snapshotParams(this.v);
    for (const k of Object.keys(ms)) tensors[`m.${k}`] = ms[k];
    for (const k of Object.keys(vs)) tensors[`v.${k}`] = vs[k];
    return { t: this.t, tensors };
  }

  /** Restore a snapshot from {@link AdamW.state}; names and shapes must match. */
  loadState(st: OptimizerState, source = "optimizer state"): void {
    if (!Number.isInteger(st?.t) || st.t < 0) {
      throw new Error(`${source}: field "t" must be a non-negative integer, got ${st?.t}`);
    }
    const ms: TensorDataMap = {};
    const vs: TensorDataMap = {};
    for (const [k, t] of Object.entries(st.tensors)) {
      if (k.startsWith("m.")) ms[k.slice(2)] = t;
      else if (k.startsWith("v.")) vs[k.slice(2)] = t;
      else throw new Error(`${source}: unexpected tensor "${k}" (expected m.<param> or v.<param>)`);
    }
    restoreParams(this.m, ms, { source: `${source} (m)` });
    restoreParams(this.v, vs, { source: `${source} (v)` });
    this.t = st.t;
  }

  /** Free the moment variables. */
  dispose(): void {
    tf.dispose([...Object.values(this.m), ...Object.values(this.v)]);
  }
}

/**
 * Global L2 norm over all gradients, as a scalar tensor (no host sync).
 *
 * @example
 * ```ts
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { globalNorm } from "./optim.ts";
 *
 * globalNorm({ a: tf.tensor([3]), b: tf.tensor([4]) }).dataSync(); // [5]
 * ```
 */
export function globalNorm(grads: Grads): tf.Scalar {
  return tf.tidy(() => {
    const parts = Object.values(grads).filter((g): g is tf.Tensor => !!g).map((g) =>
      tf.sum(tf.square(g))
    );
    if (parts.length === 0) return tf.scalar(0);
    return tf.sqrt(parts.length === 1 ? parts[0] : tf.addN(parts)) as tf.Scalar;
  });
}

/**
 * Scale gradients so their global L2 norm is at most `maxNorm` (coefficient
 * `min(1, maxNorm / (norm + 1e-6))`, as PyTorch's `clip_grad_norm_`). Returns NEW tensors (the
 * inputs are untouched; the caller disposes both) and the pre-clipping norm as a scalar tensor.
 *
 * @example
 * ```ts
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { clipGradNorm } from "./optim.ts";
 *
 * const { grads, norm } = clipGradNorm({ a: tf.tensor([3, 4]) }, 1); // a -> [0.6, 0.8], norm 5
 * ```
 */
export function clipGradNorm(
  grads: Grads,
  maxNorm: number,
): { grads: Record<string, tf.Tensor>; norm: tf.Scalar } {
  if (!(maxNorm > 0)) throw new Error(`clipGradNorm: maxNorm must be > 0, got ${maxNorm}`);
  const norm = globalNorm(grads);
  const out = tf.tidy(() => {
    const coef = tf.minimum(tf.div(maxNorm, tf.add(norm, 1e-6)), 1);
    const res: Record<string, tf.Tensor> = {};
    for (const [k, g] of Object.entries(grads)) if (g) res[k] = tf.mul(g, coef);
    return res;
  });
  return { grads: out, norm };
}

/**
 * Loss and gradients of `f` with respect to the trainable `params`, keyed by PARAMETER name
 * (tfjs keys them by variable name, which need not match). Parameters that do not influence the
 * loss are absent from `grads`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { computeGrads } from "./optim.ts";
 *
 * const params = { w: tf.variable(tf.tensor1d([1, -2])) };
 * const { value, grads } = computeGrads(params, () => tf.sum(tf.square(params.w)));
 * assert.equal(value.dataSync()[0], 5);
 * assert.deepEqual(Array.from(grads.w.dataSync()), [2, -4]); // 2w
 * ```
 */
export function computeGrads(
  params: Params,
  f: () => tf.Scalar,
): { value: tf.Scalar; grads: Record<string, tf.Tensor> } {
  const byVarName: Record<string, string> = {};
  const list: tf.Variable[] = [];
  for (const [k, v] of Object.entries(params)) {
    if (!v.trainable) continue;
    byVarName[v.name] = k;
    list.push(v);
  }
  if (list.length === 0) throw new Error("computeGrads: params has no trainable variable");
  const { value, grads } = tf.variableGrads(f, list);
  const out: Record<string, tf.Tensor> = {};
  for (const [vn, g] of Object.entries(grads)) if (g) out[byVarName[vn]] = g;
  return { value, grads: out };
}

/**
 * Sums losses and gradients over micro-batches and returns their mean, disposing every
 * intermediate. Use it when one step's batch does not fit in memory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { computeGrads, GradAccumulator } from "./optim.ts";
 *
 * const params = { w: tf.variable(tf.tensor1d([0])) };
 * const batches = [1, 3]; // loss (w - b)^2, gradient 2 (w - b)
 * const acc = new GradAccumulator();
 * for (const b of batches) {
 *   acc.add(computeGrads(params, () => tf.sum(tf.square(tf.sub(params.w, b)))));
 * }
 * const { value, grads } = acc.mean(); // caller disposes
 * assert.equal(value.dataSync()[0], 5); // (1 + 9) / 2
 * assert.equal(grads.w.dataSync()[0], -4); // (-2 - 6) / 2
 * ```
 */
export class GradAccumulator {
  private sumValue: tf.Scalar | null = null;
  private sums: Record<string, tf.Tensor> = {};
  private n = 0;

  /** Number of micro-batches added. */
  get count(): number {
    return this.n;
  }

  /** Add one micro-batch's loss and grads; takes ownership of (and disposes) them. */
  add(r: { value: tf.Scalar; grads: Record<string, tf.Tensor> }): void {
    this.n += 1;
    if (this.sumValue === null) {
      this.sumValue = r.value;
      this.sums = { ...r.grads };
      return;
    }
    const old = this.sumValue;
    this.sumValue = tf.add(old, r.value);
    tf.dispose([old, r.value]);
    for (const [k, g] of Object.entries(r.grads)) {
      const prev = this.sums[k];
      if (prev) {
        this.sums[k] = tf.add(prev, g);
        tf.dispose([prev, g]);
      } else {
        this.sums[k] = g;
      }
    }
  }

  /** Mean loss and grads over the added micro-batches; resets the accumulator. */
  mean(): { value: tf.Scalar; grads: Record<string, tf.Tensor> } {
    if (this.sumValue === null) throw new Error("GradAccumulator.mean: nothing was added");
    const n = this.n;
    let value = this.sumValue;
    let grads = this.sums;
    if (n > 1) {
      const sv = value;
      value = tf.div(sv, n);
      const sg = grads;
      grads = {};
      for (const [k, g] of Object.entries(sg)) grads[k] = tf.div(g, n);
      tf.dispose([sv, ...Object.values(sg)]);
    }
    this.sumValue = null;
    this.sums = {};
    this.n = 0;
    return { value, grads };
  }
}

/**
 * Gradient accumulation in one call: mean loss and grads of `lossAt(i)` for i in [0, k).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { accumulateGrads } from "./optim.ts";
 *
 * const params = { w: tf.variable(tf.tensor1d([0])) };
 * const batches = [1, 3];
 * const { value, grads } = accumulateGrads(
 *   params,
 *   2,
 *   (i) => tf.sum(tf.square(tf.sub(params.w, batches[i]))),
 * );
 * assert.equal(value.dataSync()[0], 5);
 * assert.equal(grads.w.dataSync()[0], -4);
 * ```
 */
export function accumulateGrads(
  params: Params,
  k: number,
  lossAt: (i: number) => tf.Scalar,
): { value: tf.Scalar; grads: Record<string, tf.Tensor> } {
  if (!Number.isInteger(k) || k < 1) throw new Error(`accumulateGrads: k must be >= 1, got ${k}`);
  const acc = new GradAccumulator();
  for (let i = 0; i < k; i++) acc.add(computeGrads(params, () => lossAt(i)));
  return acc.mean();
}

/** Options for {@link Ema}. */
export interface EmaOptions {
  /** Target decay (default 0.9999). */
  decay?: number;
  /**
   * Ramp the decay as `min(decay, (1 + n) / (10 + n))` with n the number of earlier updates, so
   * early averages are not dominated by the random init (default false).
   */
  warmup?: boolean;
}

/** Host snapshot of an {@link Ema}. */
export interface EmaState {
  updates: number;
  tensors: TensorDataMap;
}

/**
 * Exponential moving average of the weights: `shadow = d * shadow + (1 - d) * param`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { Ema } from "./optim.ts";
 *
 * const params = { w: tf.variable(tf.tensor1d([0])) };
 * const ema = new Ema(params, { decay: 0.5 }); // shadow starts at the live weights
 * params.w.assign(tf.tensor1d([4])); // an optimizer step
 * ema.update(params); // shadow = 0.5 * 0 + 0.5 * 4
 * ema.swapIn(params); // evaluate with averaged weights...
 * assert.equal(params.w.dataSync()[0], 2);
 * ema.swapOut(params); // ...then restore the live ones
 * assert.equal(params.w.dataSync()[0], 4);
 * ```
 */
export class Ema {
  readonly decay: number;
  readonly warmup: boolean;
  /** Shadow copies, keyed like the params (non-trainable variables). */
  readonly shadow: Record<string, tf.Variable> = {};
  private n = 0;
  private backup: Record<string, tf.Tensor> | null = null;

  constructor(params: Params, opts: EmaOptions = {}) {
    this.decay = opts.decay ?? 0.9999;
    this.warmup = opts.warmup ?? false;
    if (!(this.decay >= 0 && this.decay <= 1)) {
      throw new Error(`Ema: option decay must be in [0, 1], got ${this.decay}`);
    }
    for (const [k, p] of Object.entries(params)) {
      this.shadow[k] = tf.tidy(() => tf.variable(p.clone(), false));
    }
  }

  /** Number of updates done. */
  get updates(): number {
    return this.n;
  }

  /** Decay the next {@link Ema.update} will use. */
  currentDecay(): number {
    return this.warmup ? Math.min(this.decay, (1 + this.n) / (10 + this.n)) : this.decay;
  }

  /** Move the shadows towards `params`. */
  update(params: Params): void {
    const d = this.currentDecay();
    tf.tidy(() => {
      for (const [k, s] of Object.entries(this.shadow)) {
        const p = params[k];
        if (!p) throw new Error(`Ema.update: params lack "${k}"`);
        s.assign(tf.add(tf.mul(s, d), tf.mul(p, 1 - d)));
      }
    });
    this.n += 1;
  }

  /** Overwrite `params` with the averaged weights (permanently). */
  copyTo(params: Params): void {
    for (const [k, s] of Object.entries(this.shadow)) {
      if (!params[k]) throw new Error(`Ema.copyTo: params lack "${k}"`);
      params[k].assign(s);
    }
  }

  /** Put the averaged weights into `params`, keeping the live ones for {@link Ema.swapOut}. */
  swapIn(params: Params): void {
    if (this.backup) throw new Error("Ema.swapIn: already swapped in; call swapOut first");
    const backup: Record<string, tf.Tensor> = {};
    for (const k of Object.keys(this.shadow)) {
      if (!params[k]) throw new Error(`Ema.swapIn: params lack "${k}"`);
      backup[k] = params[k].clone();
    }
    this.backup = backup;
    this.copyTo(params);
  }

  /** Restore the live weights saved by {@link Ema.swapIn}. */
  swapOut(params: Params): void {
    if (!this.backup) throw new Error("Ema.swapOut: not swapped in");
    for (const [k, t] of Object.entries(this.backup)) params[k].assign(t);
    tf.dispose(Object.values(this.backup));
    this.backup = null;
  }

  /** Snapshot shadows and update count to host memory. */
  async state(): Promise<EmaState> {
    return { updates: this.n, tensors: await snapshotParams(this.shadow) };
  }

  /** Restore a snapshot from {@link Ema.state}. */
  loadState(st: EmaState, source = "EMA state"): void {
    if (!Number.isInteger(st?.updates) || st.updates < 0) {
      throw new Error(`${source}: field "updates" must be a non-negative integer`);
    }
    restoreParams(this.shadow, st.tensors, { source });
    this.n = st.updates;
  }

  /** Free the shadow variables. */
  dispose(): void {
    if (this.backup) tf.dispose(Object.values(this.backup));
    tf.dispose(Object.values(this.shadow));
  }
}
