/**
 * Float32 unary kernels (Sigmoid, Tanh, Exp, Log, Sqrt, Rsqrt, Neg, Square, Abs, Relu, Step,
 * Reciprocal) for a `MathBackendCPU` backend.
 *
 * The stock kernels call a per-op closure through a generic helper and allocate through
 * `getArrayFromDType`; these run one tight loop per op over the input Float32Array, computing
 * the same expression in the same (float64) arithmetic, so results match the stock kernels
 * exactly. Non-float32 inputs go to the stock kernels.
 *
 * @example
 * ```ts
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { fastUnaryConfigs } from "./cpu_unary_kernels.ts";
 *
 * for (const k of fastUnaryConfigs("cpu-blas")) tf.registerKernel(k);
 * ```
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import type { MathBackendCPU } from "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
import { type AllocF32, broadcastBinary } from "./cpu_fast_kernels.ts";
import { takeF32 } from "./cpu_buffer_pool.ts";

type Info = tf.TensorInfo;
// deno-lint-ignore no-explicit-any
type Attrs = Record<string, any>;
interface KernelArgs {
  inputs: Record<string, Info>;
  backend: MathBackendCPU;
  attrs?: Attrs;
}

/** Names of the unary ops `unaryValues` computes. */
export type UnaryOp =
  | "sigmoid"
  | "tanh"
  | "exp"
  | "log"
  | "sqrt"
  | "rsqrt"
  | "neg"
  | "square"
  | "abs"
  | "relu"
  | "step"
  | "reciprocal";

const newF32: AllocF32 = (n) => new Float32Array(n);

/**
 * `op` applied element-wise to a Float32Array; `alpha` is Step's value at x <= 0 and `alloc`
 * supplies the output array.
 *
 * @example
 * ```ts
 * unaryValues("sigmoid", Float32Array.from([0])); // [0.5]
 * ```
 */
export function unaryValues(
  op: UnaryOp,
  x: Float32Array,
  alpha = 0,
  alloc: AllocF32 = newF32,
): Float32Array {
  const n = x.length;
  const o = alloc(n);
  // One loop per op keeps each inner loop monomorphic and call-free.
  switch (op) {
    case "sigmoid":
      for (let i = 0; i < n; i++) o[i] = 1 / (1 + Math.exp(-x[i]));
      break;
    case "tanh":
      for (let i = 0; i < n; i++) o[i] = Math.tanh(x[i]);
      break;
    case "exp":
      for (let i = 0; i < n; i++) o[i] = Math.exp(x[i]);
      break;
    case "log":
      for (let i = 0; i < n; i++) o[i] = Math.log(x[i]);
      break;
    case "sqrt":
      for (let i = 0; i < n; i++) o[i] = Math.sqrt(x[i]);
      break;
    case "rsqrt":
      for (let i = 0; i < n; i++) o[i] = 1 / Math.sqrt(x[i]);
      break;
    case "neg":
      for (let i = 0; i < n; i++) o[i] = -x[i];
      break;
    case "square":
      for (let i = 0; i < n; i++) o[i] = x[i] * x[i];
      break;
    case "abs":
      for (let i = 0; i < n; i++) o[i] = Math.abs(x[i]);
      break;
    case "relu":
      // Math.max keeps stock's NaN propagation and its +0 for -0 inputs.
      for (let i = 0; i < n; i++) o[i] = Math.max(0, x[i]);
      break;
    case "step":
      for (let i = 0; i < n; i++) {
        const v = x[i];
        o[i] = v !== v ? NaN : v > 0 ? 1 : alpha;
      }
      break;
    case "reciprocal":
      for (let i = 0; i < n; i++) o[i] = 1 / x[i];
      break;
  }
  return o;
}

/**
 * `x ** e` element-wise with a scalar exponent. Common exponents use cheaper exact forms whose
 * float32 results equal `Math.pow`'s; everything else calls `Math.pow`.
 *
 * @example
 * ```ts
 * powScalarValues(Float32Array.from([3]), 2); // [9]
 * ```
 */
export function powScalarValues(
  x: Float32Array,
  e: number,
  alloc: AllocF32 = newF32,
): Float32Array {
  const n = x.length;
  const o = alloc(n);
  if (e === 2) {
    // The float64 square of a float32 is exact, so rounding it gives the correctly rounded pow.
    for (let i = 0; i < n; i++) o[i] = x[i] * x[i];
  } else if (e === 1) {
    o.set(x);
  } else if (e === 0.5) {
    // pow(-0, 0.5) = +0 and pow(-Inf, 0.5) = +Inf, where sqrt gives -0 and NaN.
    for (let i = 0; i < n; i++) {
      const v = x[i];
      o[i] = v === -Infinity ? Infinity : Math.sqrt(v) + 0;
    }
  } else {
    for (let i = 0; i < n; i++) o[i] = Math.pow(x[i], e);
  }
  return o;
}

function f32(backend: MathBackendCPU, t: Info): Float32Array {
  return backend.data.get(t.dataId).values as Float32Array;
}

function stock(name: string, args: KernelArgs): Info | Info[] {
  const k = tf.getKernel(name, "cpu");
  if (!k) throw new Error(`backend cpu: stock kernel '${name}' is not registered`);
  return k.kernelFunc(args as unknown as Parameters<tf.KernelFunc>[0]) as Info | Info[];
}

/**
 * Fast float32 unary kernel configs, plus Pow (scalar exponents special-cased), for `backendName`.
 *
 * @example
 * ```ts
 * import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
 * import { fastUnaryConfigs } from "./cpu_unary_kernels.ts";
 *
 * for (const k of fastUnaryConfigs("cpu-blas")) tf.registerKernel(k);
 * ```
 */
export function fastUnaryConfigs(backendName: string): tf.KernelConfig[] {
  const unary = (name: string, op: UnaryOp) => (args: KernelArgs): Info | Info[] => {
    const { x } = args.inputs;
    if (x.dtype !== "float32") return stock(name, args);
    const alpha = op === "step" ? (args.attrs?.alpha ?? 0) : 0;
    const out = unaryValues(op, f32(args.backend, x), alpha, (n) => takeF32(args.backend, n));
    return args.backend.makeTensorInfo(x.shape, "float32", out);
  };
  const pow = (args: KernelArgs): Info | Info[] => {
    const { a, b } = args.inputs;
    if (a.dtype !== "float32" || b.dtype !== "float32") return stock("Pow", args);
    const av = f32(args.backend, a), bv = f32(args.backend, b);
    const alloc = (n: number) => takeF32(args.backend, n);
    if (bv.length === 1) {
      const shape = tf.broadcast_util.assertAndGetBroadcastShape(a.shape, b.shape);
      return args.backend.makeTensorInfo(shape, "float32", powScalarValues(av, bv[0], alloc));
    }
    const { values, shape } = broadcastBinary("pow", av, a.shape, bv, b.shape, alloc);
    return args.backend.makeTensorInfo(shape, "float32", values);
  };
  const table: [string, (a: KernelArgs) => Info | Info[]][] = [
    ["Sigmoid", unary("Sigmoid", "sigmoid")],
    ["Tanh", unary("Tanh", "tanh")],
    ["Exp", unary("Exp", "exp")],
    ["Log", unary("Log", "log")],
    ["Sqrt", unary("Sqrt", "sqrt")],
    ["Rsqrt", unary("Rsqrt", "rsqrt")],
    ["Neg", unary("Neg", "neg")],
    ["Square", unary("Square", "square")],
    ["Abs", unary("Abs", "abs")],
    ["Relu", unary("Relu", "relu")],
    ["Step", unary("Step", "step")],
    ["Reciprocal", unary("Reciprocal", "reciprocal")],
    ["Pow", pow],
  ];
  return table.map(([kernelName, f]) => ({
    kernelName,
    backendName,
    kernelFunc: f as unknown as tf.KernelFunc,
  }));
}
