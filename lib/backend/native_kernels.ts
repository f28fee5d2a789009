/**
 * Native element-wise kernels for the `cpu-blas` backend, compiled from C on first use and called
 * through Deno FFI.
 *
 * Once OpenBLAS runs the GEMMs, a UNet training step on `cpu-blas` spends about half its kernel
 * time in loops V8 does not vectorise: GroupNorm/LayerNorm (+SiLU) forward and backward, GELU, softmax,
 * broadcast adds, bias-gradient sums, transposes and the AdamW update. `native/xgen_kernels.c`
 * holds those loops; the machine's C compiler builds it once (`-O3 -march=native`) into a cache
 * folder, keyed by the source, the compiler and the CPU, so a library built for one processor is
 * never loaded on another. The kernels take the tfjs cpu backend's Float32Arrays as pointers,
 * without copying.
 *
 * Everything here is optional: with no compiler (`cc`, or `$CC`), no FFI/run permission, or
 * `XGEN_NATIVE_KERNELS=0`, {@link loadNativeKernels} returns null, says why in
 * {@link nativeKernelsStatus}, and the kernels run their TypeScript versions, which stay the
 * reference the tests compare against.
 *
 * @example
 * ```ts
 * const nk = loadNativeKernels();
 * if (nk) {
 *   const y = new Float32Array(3);
 *   nk.silu(Float32Array.from([-1, 0, 1]), y); // y ~ [-0.269, 0, 0.731]
 * }
 * ```
 * @module
 */
import { createHash } from "node:crypto";
import type { ConvGeometry } from "./im2col.ts";

/** Bumped with the C file's `xg_abi_version()` whenever a signature changes. */
const ABI_VERSION = 1;

/** Largest element count a native call takes (int32 sizes in C). */
const MAX_ELEMENTS = 2 ** 31 - 1;

/** Compiler flags; `-ffp-contract=off` keeps plain arithmetic rounding as in JavaScript. */
export const NATIVE_CFLAGS: readonly string[] = [
  "-O3",
  "-march=native",
  "-fno-math-errno",
  "-fno-trapping-math",
  "-ffp-contract=off",
  "-fPIC",
  "-shared",
];

const SYMBOLS = {
  xg_abi_version: { parameters: [], result: "i32" },
  xg_group_norm: {
    parameters: [
      "buffer",
      "buffer",
      "buffer",
      "i32",
      "i32",
      "i32",
      "i32",
      "f32",
      "i32",
      "buffer",
      "buffer",
      "buffer",
    ],
    result: "void",
  },
  xg_group_norm_grad: {
    parameters: [
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "buffer",
      "buffer",
      "buffer",
    ],
    result: "void",
  },
  xg_silu: { parameters: ["buffer", "buffer", "i32"], result: "void" },
  xg_silu_grad: { parameters: ["buffer", "buffer", "buffer", "i32"], result: "void" },
  xg_gelu: { parameters: ["buffer", "buffer", "i32"], result: "void" },
  xg_gelu_grad: { parameters: ["buffer", "buffer", "buffer", "i32"], result: "void" },
  xg_softmax: { parameters: ["buffer", "buffer", "i32", "i32", "f32"], result: "void" },
  xg_softmax_grad: {
    parameters: ["buffer", "buffer", "buffer", "i32", "i32", "f32"],
    result: "void",
  },
  xg_adamw: {
    parameters: [
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "i32",
      "f64",
      "f64",
      "f64",
      "f64",
      "f64",
      "f64",
    ],
    result: "void",
  },
  xg_binary: {
    parameters: ["i32", "buffer", "buffer", "buffer", "i32", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  xg_sum: {
    parameters: ["buffer", "i32", "i32", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  xg_im2col: { parameters: ["buffer", "buffer", "buffer", "i32", "i32"], result: "void" },
  xg_col2im: { parameters: ["buffer", "buffer", "buffer", "i32", "i32"], result: "void" },
  xg_transpose32: {
    parameters: ["buffer", "buffer", "i32", "i32", "buffer", "buffer"],
    result: "i32",
  },
} as const;

type Lib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** Layout and settings of a channels-last GroupNorm `[batch, spatial, channels]`. */
export interface NativeGroupNormShape {
  batch: number;
  /** Positions per sample (product of the middle dims; 1 for LayerNorm rows). */
  spatial: number;
  channels: number;
  groups: number;
  /** Apply SiLU after the affine transform (forward) / include its derivative (backward). */
  silu: boolean;
}

/** Scalars of one AdamW step (bias corrections already folded in). */
export interface NativeAdamWScalars {
  beta1: number;
  beta2: number;
  eps: number;
  /** lr / (1 - beta1^t). */
  stepSize: number;
  /** sqrt(1 - beta2^t). */
  sqrtBc2: number;
  /** Decoupled weight decay factor, 1 - lr * weightDecay (1 for no decay). */
  decay: number;
}

/** Binary ops with a native loop (the others stay in TypeScript). */
export type NativeBinOp = "add" | "sub" | "mul" | "div" | "sqdiff";

const BIN_OPS: Record<NativeBinOp, number> = { add: 0, sub: 1, mul: 2, div: 3, sqdiff: 4 };

/** The loaded kernels. Every method checks array sizes before calling into C. */
export interface NativeKernels {
  /** The shared library in use. */
  path: string;
  /** First line of `<cc> --version`. */
  compiler: string;
  /** GroupNorm(+SiLU) forward into `y`, `mean`, `rstd` (`[batch * groups]` each). */
  groupNorm(
    x: Float32Array,
    gamma: Float32Array,
    beta: Float32Array,
    s: NativeGroupNormShape & { eps: number },
    out: { y: Float32Array; mean: Float32Array; rstd: Float32Array },
  ): void;
  /** GroupNorm(+SiLU) backward into `dx`, `dgamma`, `dbeta`. */
  groupNormGrad(
    inp: {
      dy: Float32Array;
      x: Float32Array;
      gamma: Float32Array;
      beta: Float32Array;
      mean: Float32Array;
      rstd: Float32Array;
    },
    s: NativeGroupNormShape,
    out: { dx: Float32Array; dgamma: Float32Array; dbeta: Float32Array },
  ): void;
  silu(x: Float32Array, y: Float32Array): void;
  siluGrad(dy: Float32Array, x: Float32Array, dx: Float32Array): void;
  gelu(x: Float32Array, y: Float32Array): void;
  geluGrad(dy: Float32Array, x: Float32Array, dx: Float32Array): void;
  /** Row-wise `softmax(scale * x)` over rows of `cols`. */
  softmax(x: Float32Array, y: Float32Array, cols: number, scale: number): void;
  softmaxGrad(
    dy: Float32Array,
    y: Float32Array,
    dx: Float32Array,
    cols: number,
    scale: number,
  ): void;
  /** One AdamW step into `out` (new param, m, v). */
  adamW(
    inp: { p: Float32Array; g: Float32Array; m: Float32Array; v: Float32Array },
    a: NativeAdamWScalars,
    out: [Float32Array, Float32Array, Float32Array],
  ): void;
  /** `o = op(a, b)` over merged broadcast dims with per-dim element strides (0 = broadcast). */
  binary(
    op: NativeBinOp,
    o: Float32Array,
    a: Float32Array,
    b: Float32Array,
    plan: { dims: number[]; aStrides: number[]; bStrides: number[] },
  ): void;
  /** Sum of `x` over merged dims into `out`; `outStrides[d]` is 0 for reduced dims. */
  sum(x: Float32Array, plan: { dims: number[]; outStrides: number[] }, out: Float32Array): void;
  /** lib/backend/im2col.ts `im2col` in C (same layout and arguments). */
  im2col(
    x: Float32Array,
    cols: Float32Array,
    g: ConvGeometry,
    first: number,
    count: number,
  ): void;
  /** lib/backend/im2col.ts `col2im` in C (scatter-add; `dx` zeroed by the caller). */
  col2im(
    cols: Float32Array,
    dx: Float32Array,
    g: ConvGeometry,
    first: number,
    count: number,
  ): void;
  /** Gather-transpose of 4-byte elements: output dims and the input stride of each. */
  transpose32(
    x: Float32Array | Int32Array,
    out: Float32Array | Int32Array,
    plan: { dims: number[]; strides: number[] },
  ): void;
}

/** Options of {@link loadNativeKernels} and {@link buildNativeKernels}. */
export interface NativeKernelOptions {
  /** Where compiled libraries are kept (default {@link nativeCacheDir}). */
  cacheDir?: string;
  /** C compiler command (default `$CC`, else `cc`). */
  compiler?: string;
}

/**
 * The cache folder: `$XGEN_CACHE_DIR/native`, else `$XDG_CACHE_HOME/xgen-kit/native`, else
 * `~/.cache/xgen-kit/native`.
 *
 * @example
 * ```ts
 * console.log(nativeCacheDir()); // e.g. /root/.cache/xgen-kit/native
 * ```
 */
export function nativeCacheDir(): string {
  const env = (k: string) => Deno.env.get(k) || undefined;
  const kit = env("XGEN_CACHE_DIR");
  if (kit) return `${kit}/native`;
  const xdg = env("XDG_CACHE_HOME");
  if (xdg) return `${xdg}/xgen-kit/native`;
  const home = env("HOME") ?? env("USERPROFILE");
  if (home) return `${home}/.cache/xgen-kit/native`;
  return `${Deno.makeTempDirSync({ prefix: "xgen-kit-cache-" })}/native`;
}

/** The C source shipped next to this module. */
export function nativeSource(): string {
  const url = new URL("./native/xgen_kernels.c", import.meta.url);
  if (url.protocol !== "file:") {
    throw new Error(`the C source is not a local file (${url.href})`);
  }
  return Deno.readTextFileSync(url);
}

function run(cmd: string, args: string[]): { ok: boolean; out: string } {
  const r = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
  const dec = new TextDecoder();
  return { ok: r.success, out: (dec.decode(r.stdout) + dec.decode(r.stderr)).trim() };
}

/** What identifies the processor for `-march=native` (model and feature flags). */
function cpuIdentity(): string {
  let id = `${Deno.build.os}-${Deno.build.arch}`;
  try {
    const info = Deno.readTextFileSync("/proc/cpuinfo");
    const pick = (key: string) => info.match(new RegExp(`^${key}\\s*:\\s*(.*)$`, "m"))?.[1] ?? "";
    id += `|${pick("model name")}|${pick("flags") || pick("Features")}`;
  } catch {
    // Not Linux: the compiler version and os/arch stand in.
  }
  return id;
}

/**
 * Compile the kernels unless the cache already holds a library for this source, compiler and
 * CPU; returns its path and the compiler's version line. The library is compiled under a
 * temporary name and renamed into place, so concurrent processes (MPI ranks) never load a
 * half-written file. Throws with the compiler's output on failure.
 *
 * @example
 * ```ts
 * const { path } = buildNativeKernels(); // ~/.cache/xgen-kit/native/xgen_kernels-<key>.so
 * ```
 */
export function buildNativeKernels(
  opts: NativeKernelOptions = {},
): { path: string; compiler: string; built: boolean } {
  const cc = opts.compiler ?? (Deno.env.get("CC") || "cc");
  const source = nativeSource();
  let version: { ok: boolean; out: string };
  try {
    version = run(cc, ["--version"]);
  } catch (e) {
    throw new Error(`no C compiler '${cc}' (${e instanceof Error ? e.message : e})`);
  }
  if (!version.ok) throw new Error(`'${cc} --version' failed: ${version.out.slice(0, 200)}`);
  const compiler = version.out.split("\n")[0];
  const key = createHash("sha256")
    .update([source, cc, version.out, NATIVE_CFLAGS.join(" "), cpuIdentity()].join("\0"))
    .digest("hex")
    .slice(0, 16);
  const dir = opts.cacheDir ?? nativeCacheDir();
  const ext = Deno.build.os === "darwin" ? "dylib" : "so";
  const path = `${dir}/xgen_kernels-${key}.${ext}`;
  try {
    Deno.statSync(path);
    return { path, compiler, built: false };
  } catch {
    // Not built yet.
  }
  Deno.mkdirSync(dir, { recursive: true });
  const tmp = `${dir}/.xgen_kernels-${key}-${Deno.pid}-${Date.now()}`;
  try {
    Deno.writeTextFileSync(`${tmp}.c`, source);
    const r = run(cc, [...NATIVE_CFLAGS, "-o", `${tmp}.${ext}`, `${tmp}.c`, "-lm"]);
    if (!r.ok) throw new Error(`'${cc}' failed to compile the native kernels:\n${r.out}`);
    Deno.renameSync(`${tmp}.${ext}`, path);
  } finally {
    for (const f of [`${tmp}.c`, `${tmp}.${ext}`]) {
      try {
        Deno.removeSync(f);
      } catch {
        // Already renamed or never written.
      }
    }
  }
  return { path, compiler, built: true };
}

let cached: NativeKernels | null | undefined;
let status = "not loaded yet";

/**
 * Build (first time) and open the native kernels once per process; null when they cannot be
 * used, with the reason in {@link nativeKernelsStatus}. `XGEN_NATIVE_KERNELS=0` disables them.
 *
 * @example
 * ```ts
 * const nk = loadNativeKernels();
 * console.log(nk ? `native kernels: ${nk.path}` : nativeKernelsStatus());
 * ```
 */
export function loadNativeKernels(opts: NativeKernelOptions = {}): NativeKernels | null {
  const custom = opts.cacheDir !== undefined || opts.compiler !== undefined;
  if (cached !== undefined && !custom) return cached;
  let result: NativeKernels | null = null;
  try {
    const off = Deno.env.get("XGEN_NATIVE_KERNELS");
    if (off === "0" || off === "false") {
      status = "disabled by XGEN_NATIVE_KERNELS=0";
    } else {
      let { path, compiler, built } = buildNativeKernels(opts);
      let lib: Deno.DynamicLibrary<typeof SYMBOLS>;
      try {
        lib = Deno.dlopen(path, SYMBOLS);
      } catch (e) {
        if (built) throw e;
        // A cached library that no longer opens (damaged, or left by a different libc): rebuild
        // it once rather than running without native kernels from then on.
        Deno.removeSync(path);
        ({ path, compiler, built } = buildNativeKernels(opts));
        lib = Deno.dlopen(path, SYMBOLS);
      }
      const abi = lib.symbols.xg_abi_version();
      if (abi !== ABI_VERSION) {
        lib.close();
        throw new Error(`${path} has ABI ${abi}, expected ${ABI_VERSION}`);
      }
      result = wrap(path, compiler, lib.symbols);
      status = `native kernels (${compiler}) from ${path}`;
    }
  } catch (e) {
    status = `native kernels unavailable: ${e instanceof Error ? e.message : String(e)}`;
    result = null;
  }
  if (!custom) cached = result;
  return result;
}

/** What the last {@link loadNativeKernels} attempt gave: the library, or why there is none. */
export function nativeKernelsStatus(): string {
  return status;
}

let active: NativeKernels | null = null;

/**
 * The kernels the `cpu-blas` backend's kernel functions call now (null: TypeScript loops).
 * `initBackend("cpu-blas")` sets it; benchmarks and tests switch it to compare both paths.
 *
 * @example
 * ```ts
 * setActiveNativeKernels(null); // measure the TypeScript loops
 * ```
 */
export function setActiveNativeKernels(k: NativeKernels | null): void {
  active = k;
}

/** See {@link setActiveNativeKernels}. */
export function activeNativeKernels(): NativeKernels | null {
  return active;
}

function need(what: string, arr: { length: number }, n: number): void {
  if (n > MAX_ELEMENTS) throw new Error(`native ${what}: ${n} values exceed 2^31 - 1`);
  if (arr.length < n) throw new Error(`native ${what}: has ${arr.length} values, needs ${n}`);
}

function product(xs: number[]): number {
  let p = 1;
  for (const x of xs) p *= x;
  return p;
}

/** Largest element offset a strided walk over `dims` reaches, plus one. */
function extent(dims: number[], strides: number[]): number {
  let e = 0;
  for (let d = 0; d < dims.length; d++) e += (dims[d] - 1) * strides[d];
  return e + 1;
}

function checkRank(what: string, dims: number[], ...others: number[][]): void {
  if (dims.length < 1 || dims.length > 16 || others.some((o) => o.length !== dims.length)) {
    throw new Error(`native ${what}: plan needs 1-16 dims with matching strides`);
  }
  if (dims.some((d) => !(Number.isInteger(d) && d > 0))) {
    throw new Error(`native ${what}: dims must be positive integers, got [${dims}]`);
  }
}

/** Geometry as the C side reads it, the image size and the patch-matrix size; checks values. */
function convCheck(g: ConvGeometry, first: number, count: number) {
  const v = [
    g.inH,
    g.inW,
    g.inC,
    g.outH,
    g.outW,
    g.kH,
    g.kW,
    g.strideH,
    g.strideW,
    g.dilationH,
    g.dilationW,
    g.padTop,
    g.padLeft,
  ];
  if (v.some((x) => !Number.isInteger(x)) || v.slice(0, 11).some((x) => x < 1)) {
    throw new Error(`native im2col: bad geometry ${JSON.stringify(g)}`);
  }
  if (!(Number.isInteger(first) && first >= 0 && Number.isInteger(count) && count >= 0)) {
    throw new Error(`native im2col: bad image range first=${first} count=${count}`);
  }
  const img = g.inH * g.inW * g.inC;
  const rows = count * g.outH * g.outW * g.kH * g.kW * g.inC;
  return { geo: Int32Array.from(v), img, rows };
}

function wrap(path: string, compiler: string, f: Lib): NativeKernels {
  const i32 = (xs: number[]) => Int32Array.from(xs);
  const checkGn = (x: { length: number }, s: NativeGroupNormShape) => {
    const { batch, spatial, channels: c, groups: g } = s;
    if (!(g > 0 && c % g === 0)) {
      throw new Error(`native groupNorm: groups=${g} must divide channels=${c}`);
    }
    if (x.length !== batch * spatial * c) {
      throw new Error(`native groupNorm: ${x.length} values are not [${batch}, ${spatial}, ${c}]`);
    }
    return batch * spatial * c;
  };
  const unary =
    (name: string, k: (x: Float32Array, y: Float32Array, n: number) => void) =>
    (x: Float32Array, y: Float32Array) => {
      need(name, y, x.length);
      if (x.length > 0) k(x, y, x.length);
    };
  const unaryGrad = (
    name: string,
    k: (dy: Float32Array, x: Float32Array, dx: Float32Array, n: number) => void,
  ) =>
  (dy: Float32Array, x: Float32Array, dx: Float32Array) => {
    need(`${name} dy`, dy, x.length);
    need(`${name} dx`, dx, x.length);
    if (x.length > 0) k(dy, x, dx, x.length);
  };
  return {
    path,
    compiler,
    groupNorm(x, gamma, beta, s, out) {
      const n = checkGn(x, s);
      need("groupNorm gamma", gamma, s.channels);
      need("groupNorm beta", beta, s.channels);
      need("groupNorm y", out.y, n);
      need("groupNorm mean", out.mean, s.batch * s.groups);
      need("groupNorm rstd", out.rstd, s.batch * s.groups);
      if (n === 0) return;
      f.xg_group_norm(
        x,
        gamma,
        beta,
        s.batch,
        s.spatial,
        s.channels,
        s.groups,
        s.eps,
        s.silu ? 1 : 0,
        out.y,
        out.mean,
        out.rstd,
      );
    },
    groupNormGrad(inp, s, out) {
      const n = checkGn(inp.x, s);
      need("groupNormGrad dy", inp.dy, n);
      need("groupNormGrad dx", out.dx, n);
      for (const [k, a] of [["gamma", inp.gamma], ["beta", inp.beta]] as const) {
        need(`groupNormGrad ${k}`, a, s.channels);
      }
      need("groupNormGrad dgamma", out.dgamma, s.channels);
      need("groupNormGrad dbeta", out.dbeta, s.channels);
      need("groupNormGrad mean", inp.mean, s.batch * s.groups);
      need("groupNormGrad rstd", inp.rstd, s.batch * s.groups);
      if (n === 0) {
        out.dgamma.fill(0, 0, s.channels);
        out.dbeta.fill(0, 0, s.channels);
        return;
      }
      f.xg_group_norm_grad(
        inp.dy,
        inp.x,
        inp.gamma,
        inp.beta,
        inp.mean,
        inp.rstd,
        s.batch,
        s.spatial,
        s.channels,
        s.groups,
        s.silu ? 1 : 0,
        out.dx,
        out.dgamma,
        out.dbeta,
      );
    },
    silu: unary("silu", (x, y, n) => f.xg_silu(x, y, n)),
    siluGrad: unaryGrad("siluGrad", (dy, x, dx, n) => f.xg_silu_grad(dy, x, dx, n)),
    gelu: unary("gelu", (x, y, n) => f.xg_gelu(x, y, n)),
    geluGrad: unaryGrad("geluGrad", (dy, x, dx, n) => f.xg_gelu_grad(dy, x, dx, n)),
    softmax(x, y, cols, scale) {
      if (!(cols > 0) || x.length % cols !== 0) {
        throw new Error(`native softmax: ${x.length} values do not split into rows of ${cols}`);
      }
      need("softmax y", y, x.length);
      if (x.length > 0) f.xg_softmax(x, y, x.length / cols, cols, scale);
    },
    softmaxGrad(dy, y, dx, cols, scale) {
      if (!(cols > 0) || y.length % cols !== 0) {
        throw new Error(`native softmaxGrad: ${y.length} values do not split into rows of ${cols}`);
      }
      need("softmaxGrad dy", dy, y.length);
      need("softmaxGrad dx", dx, y.length);
      if (y.length > 0) f.xg_softmax_grad(dy, y, dx, y.length / cols, cols, scale);
    },
    adamW(inp, a, out) {
      const n = inp.p.length;
      for (const [k, arr] of Object.entries(inp)) need(`adamW ${k}`, arr, n);
      out.forEach((o, i) => need(`adamW out ${i}`, o, n));
      if (n === 0) return;
      f.xg_adamw(
        inp.p,
        inp.g,
        inp.m,
        inp.v,
        out[0],
        out[1],
        out[2],
        n,
        a.beta1,
        a.beta2,
        a.eps,
        a.stepSize,
        a.sqrtBc2,
        a.decay,
      );
    },
    binary(op, o, a, b, plan) {
      const { dims, aStrides, bStrides } = plan;
      checkRank("binary", dims, aStrides, bStrides);
      const code = BIN_OPS[op];
      if (code === undefined) throw new Error(`native binary: unknown op '${op}'`);
      need("binary out", o, product(dims));
      need("binary a", a, extent(dims, aStrides));
      need("binary b", b, extent(dims, bStrides));
      const r = f.xg_binary(code, o, a, b, dims.length, i32(dims), i32(aStrides), i32(bStrides));
      if (r !== 0) throw new Error(`native binary: failed (${r})`);
    },
    sum(x, plan, out) {
      const { dims, outStrides } = plan;
      checkRank("sum", dims, outStrides);
      const total = product(dims);
      if (x.length !== total) throw new Error(`native sum: ${x.length} values, dims [${dims}]`);
      const outSize = product(dims.filter((_, d) => outStrides[d] !== 0));
      need("sum out", out, outSize);
      need("sum plan", { length: outSize }, extent(dims, outStrides));
      const r = f.xg_sum(x, total, dims.length, i32(dims), i32(outStrides), out, outSize);
      if (r !== 0) throw new Error(`native sum: failed (${r})`);
    },
    im2col(x, cols, g, first, count) {
      const { geo, img, rows } = convCheck(g, first, count);
      need("im2col x", x, (first + count) * img);
      need("im2col cols", cols, rows);
      if (rows > 0) f.xg_im2col(x, cols, geo, first, count);
    },
    col2im(cols, dx, g, first, count) {
      const { geo, img, rows } = convCheck(g, first, count);
      need("col2im dx", dx, (first + count) * img);
      need("col2im cols", cols, rows);
      if (rows > 0) f.xg_col2im(cols, dx, geo, first, count);
    },
    transpose32(x, out, plan) {
      const { dims, strides } = plan;
      checkRank("transpose", dims, strides);
      const total = product(dims);
      need("transpose out", out, total);
      need("transpose x", x, extent(dims, strides));
      const r = f.xg_transpose32(x, out, total, dims.length, i32(dims), i32(strides));
      if (r !== 0) throw new Error(`native transpose: failed (${r})`);
    },
  };
}
