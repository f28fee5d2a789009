/**
 * Fused GroupNorm(+SiLU) forward and backward for tfjs-backend-webgpu, under the kernel names and
 * semantics of the `cpu-blas` kernels in lib/nn/fused.ts (`XgenGroupNorm`: inputs `{x, gamma,
 * beta}`, attrs `{groups, eps, silu}`, outputs `[y, mean, rstd]` with statistics `[batch, groups]`;
 * `XgenGroupNormGrad`: inputs `{dy, x, gamma, beta, mean, rstd}`, outputs `[dx, dgamma, dbeta]`),
 * so the gradient registered there works unchanged.
 *
 * Composed from tfjs ops a GroupNorm(+SiLU) is ~10 forward and ~25 backward kernels, each ~200 us
 * of CPU-side dispatch on a real GPU, and a UNet step runs dozens of them (LayerNorm is the
 * one-group case, one row per sample). Here the forward is 3 WGSL programs and the backward 3,
 * one per output (a tfjs-webgpu program writes exactly one tensor):
 *
 * - forward: per-(sample, group) `mean` (one workgroup each), `rstd` from the centred second pass
 *   (no cancellation when |mean| >> std), then `y` per element with optional SiLU.
 * - backward: `dx` with one workgroup per (sample, group), which reduces `sum(g)` and
 *   `sum(g * xhat)` (`g = dz * gamma`) in workgroup memory and then writes the group's `dx`;
 *   `dgamma` and `dbeta` with one workgroup per channel reducing over all rows.
 *
 * Sizes travel as uniforms, so one compiled pipeline serves every shape. Float32 throughout;
 * each lane sums a strided share sequentially and the lanes are combined by a tree, which keeps
 * the rounding error near that of a pairwise sum.
 *
 * @example
 * ```ts
 * registerWebgpuNormKernels(); // after tfjs-backend-webgpu is imported
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import type { Program, WebgpuBackendLike } from "./webgpu_program.ts";

/** Kernel names shared with lib/nn/fused.ts (`FUSED_KERNELS`), which owns the math and gradient. */
const GN_KERNEL = "XgenGroupNorm";
const GN_GRAD_KERNEL = "XgenGroupNormGrad";
const BACKEND = "webgpu";
/** Lanes per workgroup; the reductions' tree below assumes a power of two. */
const WG = 64;

/** Uniforms every program declares (same order as {@link normUniforms} fills them). */
const UNIFORMS = "channels : i32, groups : i32, groupSize : i32, spatial : i32, groupLen : i32, " +
  "rows : i32, segs : i32, eps : f32,";

/** Layout of channels-last `x` viewed as `[batch, spatial, channels]`. */
interface Layout {
  batch: number;
  spatial: number;
  channels: number;
  groups: number;
}

function layoutOf(kernel: string, x: tf.TensorInfo, groups: number): Layout {
  if (x.shape.length < 2) throw new Error(`${kernel}: x must be [B, ..., C], got [${x.shape}]`);
  const batch = x.shape[0], channels = x.shape[x.shape.length - 1];
  if (!Number.isInteger(groups) || groups <= 0 || channels % groups !== 0) {
    throw new Error(`${kernel}: groups=${groups} must divide channels=${channels}`);
  }
  const size = x.shape.reduce((a, b) => a * b, 1);
  return { batch, spatial: batch * channels > 0 ? size / (batch * channels) : 0, channels, groups };
}

function normUniforms(l: Layout, eps: number): { type: string; data: number[] }[] {
  const groupSize = l.channels / l.groups;
  const ints = [
    l.channels,
    l.groups,
    groupSize,
    l.spatial,
    l.spatial * groupSize,
    l.batch * l.spatial,
    l.batch * l.groups,
  ];
  return [
    ...ints.map((v) => ({ type: "int32", data: [v] })),
    { type: "float32", data: [eps] },
  ];
}

/**
 * WGSL shared by the programs: the flat index of a group's k-th element, the workgroup tree sum,
 * and `dz` (dy times silu'(z) with z recomputed from xhat when SiLU is fused, else dy).
 */
function helpers(silu: boolean, withDz: boolean): string {
  const dz = !withDz ? "" : silu
    ? `
      fn dzOf(i : i32, ch : i32, xh : f32) -> f32 {
        let z = xh * Gamma[ch] + Beta[ch];
        let s = 1.0 / (1.0 + exp(-z));
        return Dy[i] * s * (1.0 + z * (1.0 - s));
      }`
    : `
      fn dzOf(i : i32, ch : i32, xh : f32) -> f32 {
        return Dy[i];
      }`;
  return `
      var<workgroup> red1 : array<f32, ${WG}>;
      var<workgroup> red2 : array<f32, ${WG}>;

      // Flat index of element k (of groupLen) of the group starting at flat index base.
      fn elemIndex(base : i32, k : i32) -> i32 {
        let s = k / uniforms.groupSize;
        return base + s * uniforms.channels + (k - s * uniforms.groupSize);
      }

      // Flat index of the first element of (sample, group) seg.
      fn segBase(seg : i32) -> i32 {
        let b = seg / uniforms.groups;
        return b * uniforms.spatial * uniforms.channels +
          (seg - b * uniforms.groups) * uniforms.groupSize;
      }

      // Tree sum of red1 (and red2) over the workgroup; every lane calls it (barriers), and
      // afterwards red1[0] (red2[0]) holds the totals for all lanes to read.
      fn treeSum(lane : i32) {
        workgroupBarrier();
        for (var half = ${WG / 2}; half > 0; half = half / 2) {
          if (lane < half) {
            red1[lane] = red1[lane] + red1[lane + half];
            red2[lane] = red2[lane] + red2[lane + half];
          }
          workgroupBarrier();
        }
      }
      ${dz}`;
}

/** A reduction program: one workgroup (of {@link WG} lanes) per output element. */
function reductionProgram(
  outputShape: number[],
  shaderKey: string,
  variableNames: string[],
  userCode: string,
): Program {
  const n = outputShape.reduce((a, b) => a * b, 1);
  return {
    outputShape,
    shaderKey,
    dispatchLayout: { x: outputShape.map((_, i) => i) },
    dispatch: [Math.max(1, n), 1, 1],
    variableNames,
    workgroupSize: [WG, 1, 1],
    size: true,
    uniforms: UNIFORMS,
    getUserCode: () => userCode,
  };
}

/**
 * Per-(sample, group) statistic: `mean`, or `rstd = 1/sqrt(mean((x - mean)^2) + eps)` from the
 * mean the first program wrote (biased variance, as lib/nn/fused.ts).
 */
function statProgram(l: Layout, stat: "mean" | "rstd"): Program {
  const main = stat === "mean"
    ? `
        var acc = 0.0;
        for (var k = lane; valid && k < uniforms.groupLen; k = k + ${WG}) {
          acc = acc + X[elemIndex(base, k)];
        }
        red1[lane] = acc;
        red2[lane] = 0.0;
        treeSum(lane);
        if (valid && lane == 0) {
          setOutputAtIndex(seg, red1[0] / f32(uniforms.groupLen));
        }`
    : `
        let m = Mean[min(seg, uniforms.segs - 1)];
        var acc = 0.0;
        for (var k = lane; valid && k < uniforms.groupLen; k = k + ${WG}) {
          let d = X[elemIndex(base, k)] - m;
          acc = acc + d * d;
        }
        red1[lane] = acc;
        red2[lane] = 0.0;
        treeSum(lane);
        if (valid && lane == 0) {
          setOutputAtIndex(seg, 1.0 / sqrt(red1[0] / f32(uniforms.groupLen) + uniforms.eps));
        }`;
  return reductionProgram(
    [l.batch, l.groups],
    `xgen_gn_${stat}`,
    stat === "mean" ? ["X"] : ["X", "Mean"],
    `${helpers(false, false)}
      fn main(index : i32) {
        // One workgroup per (sample, group); lanes stride over the group's elements.
        let seg = index / ${WG};
        let lane = index - seg * ${WG};
        let valid = seg < uniforms.segs;
        let base = segBase(min(seg, uniforms.segs - 1));
        ${main}
      }`,
  );
}

/** `y = z` or `silu(z)`, `z = (x - mean) * rstd * gamma + beta`, one invocation per element. */
function outputProgram(shape: number[], silu: boolean): Program {
  const n = shape.reduce((a, b) => a * b, 1);
  return {
    outputShape: shape,
    shaderKey: `xgen_gn_y_${silu ? "silu" : "plain"}`,
    dispatchLayout: { x: shape.map((_, i) => i) },
    dispatch: [Math.max(1, Math.ceil(n / WG)), 1, 1],
    variableNames: ["X", "Gamma", "Beta", "Mean", "Rstd"],
    workgroupSize: [WG, 1, 1],
    size: true,
    uniforms: UNIFORMS,
    getUserCode: () => `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let ch = index % uniforms.channels;
          let seg = (index / (uniforms.spatial * uniforms.channels)) * uniforms.groups +
            ch / uniforms.groupSize;
          let z = (X[index] - Mean[seg]) * Rstd[seg] * Gamma[ch] + Beta[ch];
          setOutputAtIndex(index, ${silu ? "z / (1.0 + exp(-z))" : "z"});
        }
      }`,
  };
}

/** The backward programs' inputs: without SiLU, `dz = dy` and beta is never read. */
function gradInputs(silu: boolean, part: "dx" | "dgamma" | "dbeta"): string[] {
  if (silu) return ["Dy", "X", "Gamma", "Beta", "Mean", "Rstd"];
  return {
    dx: ["Dy", "X", "Gamma", "Mean", "Rstd"],
    dgamma: ["Dy", "X", "Mean", "Rstd"],
    dbeta: ["Dy"],
  }[
    part
  ];
}

/**
 * `dx = rstd * (g - mean(g) - xhat * mean(g * xhat))`, `g = dz * gamma`, with one workgroup per
 * (sample, group): the two group sums stay in workgroup memory, so they need no program of their
 * own. The output has x's shape; `size` is off because the dispatch counts groups, not elements.
 */
function gradXProgram(l: Layout, shape: number[], silu: boolean): Program {
  const p = reductionProgram(
    shape,
    `xgen_gn_dx_${silu ? "silu" : "plain"}`,
    gradInputs(silu, "dx"),
    `${helpers(silu, true)}
      fn main(index : i32) {
        let seg = index / ${WG};
        let lane = index - seg * ${WG};
        let valid = seg < uniforms.segs;
        let segC = min(seg, uniforms.segs - 1);
        let base = segBase(segC);
        let ch0 = (segC % uniforms.groups) * uniforms.groupSize;
        let m = Mean[segC];
        let r = Rstd[segC];
        var s1 = 0.0;
        var s2 = 0.0;
        for (var k = lane; valid && k < uniforms.groupLen; k = k + ${WG}) {
          let i = elemIndex(base, k);
          let ch = ch0 + k % uniforms.groupSize;
          let xh = (X[i] - m) * r;
          let g = dzOf(i, ch, xh) * Gamma[ch];
          s1 = s1 + g;
          s2 = s2 + g * xh;
        }
        red1[lane] = s1;
        red2[lane] = s2;
        treeSum(lane);
        let a = red1[0] / f32(uniforms.groupLen);
        let bb = red2[0] / f32(uniforms.groupLen);
        for (var k = lane; valid && k < uniforms.groupLen; k = k + ${WG}) {
          let i = elemIndex(base, k);
          let ch = ch0 + k % uniforms.groupSize;
          let xh = (X[i] - m) * r;
          let g = dzOf(i, ch, xh) * Gamma[ch];
          setOutputAtIndex(i, r * (g - a - xh * bb));
        }
      }`,
  );
  p.dispatch = [Math.max(1, l.batch * l.groups), 1, 1];
  p.size = false;
  return p;
}

/** `dgamma_c = sum(dz * xhat)` or `dbeta_c = sum(dz)` over all rows, one workgroup per channel. */
function paramGradProgram(l: Layout, part: "dgamma" | "dbeta", silu: boolean): Program {
  // dbeta without SiLU is a plain column sum of dy (the only input it binds).
  const body = part === "dbeta" && !silu ? "acc = acc + Dy[i];" : `
          let seg = (n / uniforms.spatial) * uniforms.groups + g;
          let xh = (X[i] - Mean[seg]) * Rstd[seg];
          acc = acc + dzOf(i, c, xh)${part === "dgamma" ? " * xh" : ""};`;
  return reductionProgram(
    [l.channels],
    `xgen_gn_${part}_${silu ? "silu" : "plain"}`,
    gradInputs(silu, part),
    `${helpers(silu, part !== "dbeta" || silu)}
      fn main(index : i32) {
        let c0 = index / ${WG};
        let lane = index - c0 * ${WG};
        let valid = c0 < uniforms.channels;
        let c = min(c0, uniforms.channels - 1);
        let g = c / uniforms.groupSize;
        var acc = 0.0;
        for (var n = lane; valid && n < uniforms.rows; n = n + ${WG}) {
          let i = n * uniforms.channels + c;
          ${body}
        }
        red1[lane] = acc;
        red2[lane] = 0.0;
        treeSum(lane);
        if (valid && lane == 0) {
          setOutputAtIndex(c, red1[0]);
        }
      }`,
  );
}

interface KernelArgs {
  inputs: Record<string, tf.TensorInfo>;
  backend: WebgpuBackendLike;
  attrs: { groups: number; eps: number; silu: boolean };
}

function checkInputs(kernel: string, inputs: Record<string, tf.TensorInfo>, l: Layout): void {
  for (const [k, t] of Object.entries(inputs)) {
    if (t.dtype !== "float32") {
      throw new Error(`${kernel}: input ${k} must be float32, got ${t.dtype}`);
    }
  }
  const c = l.channels;
  for (const k of ["gamma", "beta"]) {
    const size = inputs[k].shape.reduce((a, b) => a * b, 1);
    if (size !== c) throw new Error(`${kernel}: ${k} must have ${c} elements, got ${size}`);
  }
}

function groupNormKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const { x, gamma, beta } = inputs;
  const l = layoutOf(GN_KERNEL, x, attrs.groups);
  checkInputs(GN_KERNEL, { x, gamma, beta }, l);
  const u = normUniforms(l, attrs.eps);
  const run = (p: Program, ins: tf.TensorInfo[]) => backend.runWebGPUProgram(p, ins, "float32", u);
  const mean = run(statProgram(l, "mean"), [x]);
  const rstd = run(statProgram(l, "rstd"), [x, mean]);
  const y = run(outputProgram(x.shape, !!attrs.silu), [x, gamma, beta, mean, rstd]);
  return [y, mean, rstd];
}

function groupNormGradKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const { dy, x, gamma, beta, mean, rstd } = inputs;
  const l = layoutOf(GN_GRAD_KERNEL, x, attrs.groups);
  checkInputs(GN_GRAD_KERNEL, inputs, l);
  const same = (a: number[], b: number[]) => a.length === b.length && a.every((v, i) => v === b[i]);
  if (
    !same(dy.shape, x.shape) || !same(mean.shape, [l.batch, l.groups]) ||
    !same(rstd.shape, mean.shape)
  ) {
    throw new Error(`${GN_GRAD_KERNEL}: dy/mean/rstd shapes do not match x`);
  }
  const silu = !!attrs.silu;
  const u = normUniforms(l, attrs.eps);
  const named: Record<string, tf.TensorInfo> = {
    Dy: dy,
    X: x,
    Gamma: gamma,
    Beta: beta,
    Mean: mean,
    Rstd: rstd,
  };
  const run = (p: Program) =>
    backend.runWebGPUProgram(p, p.variableNames.map((k) => named[k]), "float32", u);
  const dx = run(gradXProgram(l, x.shape, silu));
  const dgamma = run(paramGradProgram(l, "dgamma", silu));
  const dbeta = run(paramGradProgram(l, "dbeta", silu));
  return [dx, dgamma, dbeta];
}

/**
 * Register `XgenGroupNorm` and `XgenGroupNormGrad` for `webgpu` (idempotent); needs
 * tfjs-backend-webgpu imported. lib/nn's `groupNorm`/`layerNorm` then take the fused path there.
 *
 * @example
 * ```ts
 * await import("npm:@tensorflow/tfjs-backend-webgpu@4.22.0");
 * registerWebgpuNormKernels();
 * ```
 */
export function registerWebgpuNormKernels(): void {
  if (tf.getKernel(GN_KERNEL, BACKEND)) return;
  tf.registerKernel({
    kernelName: GN_KERNEL,
    backendName: BACKEND,
    kernelFunc: groupNormKernel as unknown as tf.KernelFunc,
  });
  tf.registerKernel({
    kernelName: GN_GRAD_KERNEL,
    backendName: BACKEND,
    kernelFunc: groupNormGradKernel as unknown as tf.KernelFunc,
  });
}
