/**
 * Lowering of one IR node to one WGSL dispatch ({@link KernelSpec}): picks the kernel of its op
 * and fills its uniforms from the node's static shapes and attributes. `input`, `constant` and
 * `reshape` (a view) lower to no dispatch. Ops without a kernel yet (`cast`, `equal`, `argMax`,
 * `oneHot`, `embedding`, `embeddingGrad`: none is in the UNet step) fail naming the op and node.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph } from "./graph.ts";
 * import { lowerNode } from "./wgsl_lower.ts";
 *
 * const g = new Graph();
 * const x = g.input("x", [2, 3]);
 * const y = g.add("silu", [x]);
 * assert.equal(lowerNode(g, x), undefined);
 * assert.deepEqual(lowerNode(g, y)!.reads, [x.id]);
 * ```
 * @module
 */
import type { Graph, Node } from "./graph.ts";
import { type KernelSpec, sizeOf } from "./wgsl_common.ts";
import {
  axesReduceKernel,
  binaryKernel,
  broadcastKernel,
  concatKernel,
  type KernelBody,
  padKernel,
  sliceKernel,
  sumPoolKernel,
  unaryKernel,
  upsampleKernel,
} from "./wgsl_elementwise.ts";
import {
  conv2dBackpropFilterKernel,
  conv2dBackpropInputKernel,
  conv2dKernel,
  matMulKernel,
} from "./wgsl_linalg.ts";
import {
  attentionGradKernel,
  attentionKernel,
  normBackwardKernel,
  normGradKernel,
  normKernel,
  sumRows2Kernel,
} from "./wgsl_norm_attention.ts";

/** Ops that lower to no dispatch. */
export const NO_KERNEL_OPS: ReadonlySet<string> = new Set([
  "input",
  "constant",
  "reshape",
  "extra",
]);

/**
 * The dispatch of `node` (undefined for `input`, `constant`, `reshape`); every value must be
 * float32.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph } from "./graph.ts";
 * import { lowerNode } from "./wgsl_lower.ts";
 *
 * const g = new Graph();
 * const a = g.input("a", [4, 3]), b = g.input("b", [3, 5]);
 * const k = lowerNode(g, g.add("matMul", [a, b]))!;
 * assert.deepEqual(k.uniforms.slice(0, 3), [4, 5, 3]);
 * ```
 */
export function lowerNode(graph: Graph, node: Node): KernelSpec | undefined {
  if (NO_KERNEL_OPS.has(node.op)) return undefined;
  const ins = node.inputs.map((i) => graph.nodes[i]);
  for (const v of [node, ...ins]) {
    if (v.dtype !== "float32") {
      throw new Error(
        `webgpu executor: node ${node.id} (${node.op}) has a ${v.dtype} value; only float32 runs`,
      );
    }
  }
  const body = lowerBody(node, ins.map((i) => i.shape));
  return { ...body, reads: [...node.inputs] };
}

function lowerBody(n: Node, s: readonly (readonly number[])[]): KernelBody {
  const a = n.attrs;
  switch (n.op) {
    case "silu":
    case "gelu":
    case "sin":
    case "cos":
    case "clip":
    case "addScalar":
    case "mulScalar":
      return unaryKernel(n.op, a, sizeOf(n.shape));
    case "add":
    case "mul":
    case "siluGrad":
    case "geluGrad":
    case "clipGrad":
      return binaryKernel(n.op, a, s[0], s[1], n.shape);
    case "slice":
      return sliceKernel(s[0], a.begin as number[], a.size as number[]);
    case "broadcastTo":
      return broadcastKernel(s[0], n.shape);
    case "upsample2x":
      return upsampleKernel(s[0]);
    case "pad":
      return padKernel(s[0], a.paddings as [number, number][]);
    case "concat":
      if (s.length > 6) throw new Error(`webgpu executor: concat of ${s.length} inputs (max 6)`);
      return concatKernel(s, a.axis as number);
    case "sum":
    case "mean":
      return axesReduceKernel(s[0], a.axes as number[], n.op === "mean");
    case "sumPool2x":
      return sumPoolKernel(s[0]);
    case "linear": {
      const k = s[1][0], m = sizeOf(s[0]) / k;
      return matMulKernel({
        m,
        n: s[1][1],
        k,
        transposeA: false,
        transposeB: false,
        bias: s.length === 3,
      });
    }
    case "matMul": {
      const ta = !!a.transposeA, tb = !!a.transposeB;
      return matMulKernel({
        m: n.shape[0],
        n: n.shape[1],
        k: ta ? s[0][0] : s[0][1],
        transposeA: ta,
        transposeB: tb,
        bias: false,
      });
    }
    case "conv2d":
      return conv2dKernel(
        { x: s[0], w: s[1], out: n.shape, stride: a.stride as number, pad: a.pad as number[] },
        s.length === 3,
      );
    case "conv2dBackpropInput":
      return conv2dBackpropInputKernel({
        x: n.shape,
        w: s[1],
        out: s[0],
        stride: a.stride as number,
        pad: a.pad as number[],
      });
    case "conv2dBackpropFilter":
      return conv2dBackpropFilterKernel({
        x: s[0],
        w: n.shape,
        out: s[1],
        stride: a.stride as number,
        pad: a.pad as number[],
      });
    case "groupNorm":
    case "layerNorm":
      return normKernel({
        x: s[0],
        groups: n.op === "layerNorm" ? 0 : a.groups as number,
        eps: a.eps as number,
        affine: s.length === 3,
        silu: !!a.silu,
      });
    case "groupNormGrad":
    case "layerNormGrad":
      return normGradKernel({
        x: s[1],
        groups: n.op === "layerNormGrad" ? 0 : a.groups as number,
        eps: a.eps as number,
        affine: s.length === 3,
      });
    case "normBackward":
      return normBackwardKernel({
        x: s[1],
        groups: a.groups as number,
        eps: a.eps as number,
        affine: true,
        silu: !!a.silu,
      });
    case "sumRows2":
      return sumRows2Kernel(s[0]);
    case "attentionGradAll":
      return attentionGradKernel({
        q: s[0],
        k: s[1],
        v: s[2],
        heads: a.heads as number,
        causal: !!a.causal,
        mask: s.length === 5,
      }, "all");
    case "attention":
    case "attentionGrad": {
      const sizes = {
        q: s[0],
        k: s[1],
        v: s[2],
        heads: a.heads as number,
        causal: !!a.causal,
        mask: s.length === (n.op === "attention" ? 4 : 5),
      };
      return n.op === "attention"
        ? attentionKernel(sizes)
        : attentionGradKernel(sizes, a.wrt as "q" | "k" | "v");
    }
  }
  throw new Error(`webgpu executor: no WGSL kernel for op "${n.op}" (node ${n.id})`);
}
