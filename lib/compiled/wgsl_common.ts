/**
 * What every WGSL kernel of the compiled step shares: the {@link KernelSpec} a node lowers to
 * (source, bound inputs, uniform words, workgroup grid), the binding layout all kernels follow
 * (binding 0: the dispatch's uniform slice; 1..k: the inputs, read-only; k + 1: the output;
 * k + 2: scratch, when asked) and small helpers for shapes and grids.
 *
 * Shapes and sizes live in the uniforms, not in the source, so one pipeline serves every shape
 * of an op variant; the executor caches pipelines by source.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { header, stridesOf } from "./wgsl_common.ts";
 *
 * assert.deepEqual(stridesOf([2, 3, 4]), [12, 4, 1]);
 * assert.ok(header(2).includes("@binding(3) var<storage, read_write> out"));
 * ```
 * @module
 */

/** Uniform words per dispatch: one 256-byte slice (WebGPU's minimum uniform offset alignment). */
export const UNIFORM_WORDS = 64;

/** Threads of a 1-D workgroup. */
export const WG = 64;

/** Largest workgroup count per grid dimension (WebGPU's default limit). */
const MAX_GROUPS = 65535;

/** One node lowered to one dispatch. */
export interface KernelSpec {
  /** WGSL source (the pipeline cache key): entry point `main`. */
  wgsl: string;
  /** Node ids bound read-only, in binding order 1..k (views allowed: the executor resolves). */
  reads: number[];
  /** Uniform words (u32; floats as their bits, see {@link f32Bits}), at most {@link UNIFORM_WORDS}. */
  uniforms: number[];
  /** Workgroups to dispatch. */
  workgroups: [number, number, number];
  /** float32 scratch elements bound read-write after the outputs, live only for this dispatch. */
  scratch?: number;
  /**
   * Outputs written besides `out` (`out1`, `out2`, ...: the graph's `extra` nodes of this node, in
   * index order; a fused multi-output kernel), bound after `out`. Default 0.
   */
  extraOutputs?: number;
}

const bits = new DataView(new ArrayBuffer(4));

/**
 * The bits of float32 `x` as a u32 uniform word (read back in WGSL with `F(i)`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { f32Bits } from "./wgsl_common.ts";
 *
 * assert.equal(f32Bits(1), 0x3f800000);
 * ```
 */
export function f32Bits(x: number): number {
  bits.setFloat32(0, x, true);
  return bits.getUint32(0, true);
}

/**
 * Row-major strides of `shape` (elements).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stridesOf } from "./wgsl_common.ts";
 *
 * assert.deepEqual(stridesOf([4, 5]), [5, 1]);
 * ```
 */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/**
 * Elements of `shape`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sizeOf } from "./wgsl_common.ts";
 *
 * assert.equal(sizeOf([2, 3]), 6);
 * assert.equal(sizeOf([]), 1);
 * ```
 */
export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * The grid of `n` threads in workgroups of {@link WG}: 2-D once one dimension would exceed the
 * limit (kernels rebuild the index with {@link THREAD_INDEX}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { grid1d } from "./wgsl_common.ts";
 *
 * assert.deepEqual(grid1d(130), [3, 1, 1]);
 * ```
 */
export function grid1d(n: number): [number, number, number] {
  const groups = Math.max(1, Math.ceil(n / WG));
  if (groups <= MAX_GROUPS) return [groups, 1, 1];
  return [MAX_GROUPS, Math.ceil(groups / MAX_GROUPS), 1];
}

/** WGSL: the flat thread index `i` of a {@link grid1d} dispatch (after `@compute` args). */
export const THREAD_INDEX =
  `@compute @workgroup_size(${WG}) fn main(@builtin(global_invocation_id) gid: vec3<u32>, ` +
  `@builtin(num_workgroups) nwg: vec3<u32>) {\n  let i = gid.x + gid.y * nwg.x * ${WG}u;\n`;

/**
 * The bindings and uniform accessors of a kernel with `reads` inputs (`in0`, `in1`, ...), the
 * output `out` (then `extra` more: `out1`, `out2`, ...) and, when `scratch`, a read-write `scr`. `P(i)` is uniform word i as u32, `F(i)`
 * as f32, `I(i)` as i32.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { header } from "./wgsl_common.ts";
 *
 * assert.ok(header(1, true).includes("@binding(3) var<storage, read_write> scr"));
 * ```
 */
export function header(reads: number, scratch = false, extra = 0): string {
  const lines = [
    `struct U { v: array<vec4<u32>, ${UNIFORM_WORDS / 4}> };`,
    `@group(0) @binding(0) var<uniform> u: U;`,
  ];
  for (let k = 0; k < reads; k++) {
    lines.push(`@group(0) @binding(${k + 1}) var<storage, read> in${k}: array<f32>;`);
  }
  lines.push(`@group(0) @binding(${reads + 1}) var<storage, read_write> out: array<f32>;`);
  for (let k = 1; k <= extra; k++) {
    lines.push(
      `@group(0) @binding(${reads + 1 + k}) var<storage, read_write> out${k}: array<f32>;`,
    );
  }
  if (scratch) {
    const b = reads + 2 + extra;
    lines.push(`@group(0) @binding(${b}) var<storage, read_write> scr: array<f32>;`);
  }
  lines.push(
    `fn P(i: u32) -> u32 { return u.v[i / 4u][i % 4u]; }`,
    `fn F(i: u32) -> f32 { return bitcast<f32>(P(i)); }`,
    `fn I(i: u32) -> i32 { return bitcast<i32>(P(i)); }`,
  );
  return lines.join("\n") + "\n";
}

/** Pad `xs` with `fill` to `n` entries (fixed-size uniform fields). */
export function padTo(xs: readonly number[], n: number, fill = 0): number[] {
  if (xs.length > n) throw new Error(`wgsl: rank ${xs.length} above the supported ${n}`);
  return [...xs, ...new Array<number>(n - xs.length).fill(fill)];
}
