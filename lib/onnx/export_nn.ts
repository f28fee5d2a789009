/**
 * Export the kit's layers (`lib/nn`) and models to ONNX graphs, so a trained model runs through
 * onnxruntime with the same weights and the same numbers as its TensorFlow.js forward pass.
 *
 * Inside the graph everything is NCHW (onnxruntime's native conv layout): conv weights are
 * transposed once from the kit's HWIO `[kh, kw, cin, cout]` to OIHW `[cout, cin, kh, kw]` (the
 * PyTorch/diffusers layout, under the same dotted names), and model inputs/outputs may stay NHWC
 * with one Transpose at each end. Linear weights keep the kit's `[in, out]` layout (MatMul).
 *
 * @example
 * ```ts
 * const bytes = await exportAutoencoderDecoder(params, AUTOENCODER_PRESETS.small);
 * const s = await openSession(bytes, { name: "vae_decoder.onnx" });
 * const { sample } = await s.run({ latent_sample: { data: z, shape: [1, 8, 8, 4] } });
 * ```
 * @module
 */
import type { Params } from "../nn/params.ts";
import type { AutoencoderConfig } from "../models/autoencoder.ts";
import { timestepFrequencies } from "../nn/timestep.ts";
import { OnnxGraph, type OnnxModelOptions } from "./writer.ts";

/** Weights read out of `Params`: name -> values and shape (kit layout). */
export type WeightArrays = Record<string, { data: Float32Array; shape: number[] }>;

/**
 * Read every parameter's values (async, so it works on backends without `dataSync`).
 *
 * @example
 * ```ts
 * const weights = await readParams(params);
 * weights["decoder.conv_in.weight"].shape; // [3, 3, 4, 64]
 * ```
 */
export async function readParams(p: Params): Promise<WeightArrays> {
  const out: WeightArrays = {};
  for (const [name, v] of Object.entries(p)) {
    if (v.dtype !== "float32") throw new Error(`readParams: "${name}" is ${v.dtype}, not float32`);
    out[name] = { data: Float32Array.from(await v.data() as Float32Array), shape: [...v.shape] };
  }
  return out;
}

/** Options of {@link NnExporter.conv2d} (as `lib/nn` conv2d). */
export interface ExportConvOptions {
  /** Stride (default 1). */
  stride?: number;
  /** "same" (default, (k-1)/2 each side), "valid", or explicit padding each side. */
  padding?: "same" | "valid" | number;
}

/** Options of {@link NnExporter.groupNorm}. */
export interface ExportGroupNormOptions {
  /** Channel groups. */
  groups: number;
  /** Epsilon (default 1e-5). */
  eps?: number;
  /** Apply SiLU after the affine (as `lib/nn` groupNorm's `silu`). */
  silu?: boolean;
}

/** Options of {@link NnExporter.attention}. */
export interface ExportAttentionOptions {
  /** Heads. */
  heads: number;
  /** Key/value source `[B, Tk, Ck]` (default: self-attention). */
  context?: string;
  /** Key mask `[B, Tk]` (1 = attend, 0 = ignore), any numeric dtype. */
  keyMask?: string;
  /** Causal mask over a fixed sequence length (e.g. 77 for CLIP). */
  causalLength?: number;
}

/** Options of {@link NnExporter.resnetBlock}. */
export interface ExportResnetOptions {
  /** Group-norm groups. */
  groups: number;
  /** Group-norm epsilon. */
  eps?: number;
  /** Timestep embedding `[B, tembChannels]`, required when the block has `time_emb_proj`. */
  temb?: string;
}

/** Options of {@link NnExporter.timestepEmbedding} (as `lib/nn` timestepEmbedding). */
export interface ExportTimestepOptions {
  /** Output width. */
  dim: number;
  /** cos before sin (default true). */
  flipSinToCos?: boolean;
  /** Frequency denominator shift (default 0). */
  downscaleFreqShift?: number;
  /** Angle multiplier (default 1). */
  scale?: number;
  /** Longest period (default 10000). */
  maxPeriod?: number;
}

/** Options of {@link NnExporter.transformer2d} (as `lib/models/transformer2d.ts`). */
export interface ExportTransformer2dOptions {
  /** Heads of both attentions. */
  heads: number;
  /** GroupNorm groups of the input norm. */
  groups: number;
  /** Text context `[B, T, D]` for the cross-attention. */
  context: string;
  /** Linear `proj_in`/`proj_out` instead of 1x1 convs. */
  useLinearProjection?: boolean;
  /** Transformer blocks (default 1). */
  depth?: number;
}

/** Masked logits get this bias, as in `lib/nn/attention.ts`. */
const MASKED = -1e9;
const GELU_C = Math.sqrt(2 / Math.PI);

/**
 * Emits the kit's layers into an {@link OnnxGraph}. Methods take and return value names;
 * image-like values are NCHW, sequences `[B, T, C]`. Weights are added as initializers on first
 * use, named as the kit's parameters.
 *
 * @example
 * ```ts
 * const g = new OnnxGraph("block");
 * const ex = new NnExporter(g, await readParams(params));
 * const x = ex.nhwcToNchw(g.input("x", "float32", ["batch", 8, 8, 32]));
 * const y = ex.resnetBlock("mid", x, { groups: 8 });
 * g.output(ex.nchwToNhwc(y), "float32");
 * ```
 */
export class NnExporter {
  /** The graph being built. */
  readonly g: OnnxGraph;
  private readonly weights: WeightArrays;
  private readonly added = new Map<string, string>();

  constructor(g: OnnxGraph, weights: WeightArrays) {
    this.g = g;
    this.weights = weights;
  }

  /** Whether a parameter exists. */
  has(name: string): boolean {
    return name in this.weights;
  }

  private param(name: string): { data: Float32Array; shape: number[] } {
    const w = this.weights[name];
    if (!w) throw new Error(`NnExporter: parameter "${name}" is missing`);
    return w;
  }

  /** Add a (possibly re-laid-out) parameter once; `key` distinguishes layouts of one name. */
  private init(
    key: string,
    name: string,
    make: () => { data: Float32Array; shape: number[] },
  ): string {
    const hit = this.added.get(key);
    if (hit) return hit;
    const { data, shape } = make();
    const id = this.g.initializer(this.g.uniqueName(name), data, shape);
    this.added.set(key, id);
    return id;
  }

  /**
   * NHWC -> NCHW.
   *
   * @example
   * ```ts
   * const x = ex.nhwcToNchw(g.input("x", "float32", ["batch", 8, 8, 4]));
   * ```
   */
  nhwcToNchw(x: string): string {
    return this.g.node("Transpose", [x], { perm: [0, 3, 1, 2] });
  }

  /**
   * NCHW -> NHWC.
   *
   * @example
   * ```ts
   * g.output(ex.nchwToNhwc(y), "float32");
   * ```
   */
  nchwToNhwc(x: string): string {
    return this.g.node("Transpose", [x], { perm: [0, 2, 3, 1] });
  }

  /**
   * `lib/nn` conv2d on an NCHW value: weight HWIO -> OIHW, bias if present.
   *
   * @example
   * ```ts
   * const h = ex.conv2d("decoder.conv_in", x);
   * ```
   */
  conv2d(name: string, x: string, opts: ExportConvOptions = {}): string {
    const wName = `${name}.weight`;
    const w = this.param(wName);
    if (w.shape.length !== 4) {
      throw new Error(`NnExporter.conv2d "${name}": weight must be [kh, kw, cin, cout]`);
    }
    const [kh, kw, cin, cout] = w.shape;
    const weight = this.init(`${wName}@OIHW`, wName, () => {
      const out = new Float32Array(w.data.length);
      for (let y = 0; y < kh; y++) {
        for (let xx = 0; xx < kw; xx++) {
          for (let i = 0; i < cin; i++) {
            for (let o = 0; o < cout; o++) {
              out[((o * cin + i) * kh + y) * kw + xx] =
                w.data[((y * kw + xx) * cin + i) * cout + o];
            }
          }
        }
      }
      return { data: out, shape: [cout, cin, kh, kw] };
    });
    const inputs = [x, weight];
    if (this.has(`${name}.bias`)) {
      inputs.push(this.init(`${name}.bias`, `${name}.bias`, () => this.param(`${name}.bias`)));
    }
    const padding = opts.padding ?? "same";
    const ph = padding === "valid" ? 0 : padding === "same" ? (kh - 1) >> 1 : padding;
    const pw = padding === "valid" ? 0 : padding === "same" ? (kw - 1) >> 1 : padding;
    const s = opts.stride ?? 1;
    return this.g.node("Conv", inputs, {
      kernel_shape: [kh, kw],
      pads: [ph, pw, ph, pw],
      strides: [s, s],
    }, { name: this.g.uniqueName(name) });
  }

  /**
   * Nearest-neighbour 2x upsampling of an NCHW value (exact: each output pixel copies
   * `in[floor(y/2), floor(x/2)]`, as `lib/nn` upsample2x).
   *
   * @example
   * ```ts
   * const up = ex.upsample2x(h);
   * ```
   */
  upsample2x(x: string): string {
    const scales = this.init("@scales2x", "upsample2x.scales", () => ({
      data: new Float32Array([1, 1, 2, 2]),
      shape: [4],
    }));
    return this.g.node("Resize", [x, "", scales], {
      mode: "nearest",
      coordinate_transformation_mode: "asymmetric",
      nearest_mode: "floor",
    });
  }

  /**
   * `lib/nn` downsample: 3x3 conv, stride 2, padding 1.
   *
   * @example
   * ```ts
   * h = ex.downsample("encoder.down.0.downsample", h);
   * ```
   */
  downsample(name: string, x: string): string {
    return this.conv2d(`${name}.conv`, x, { stride: 2, padding: 1 });
  }

  /**
   * `lib/nn` upsample: nearest 2x then 3x3 conv.
   *
   * @example
   * ```ts
   * h = ex.upsample("decoder.up.1.upsample", h);
   * ```
   */
  upsample(name: string, x: string): string {
    return this.conv2d(`${name}.conv`, this.upsample2x(x));
  }

  /**
   * SiLU `x * sigmoid(x)`.
   *
   * @example
   * ```ts
   * const a = ex.silu(h);
   * ```
   */
  silu(x: string): string {
    return this.g.node("Mul", [x, this.g.node("Sigmoid", [x])]);
  }

  /**
   * GELU, tanh approximation (as `lib/nn` gelu; opset 17 has no Gelu operator).
   *
   * @example
   * ```ts
   * const a = ex.gelu(h);
   * ```
   */
  gelu(x: string): string {
    const c = (key: string, v: number) =>
      this.init(`@const${key}`, `gelu.${key}`, () => ({ data: new Float32Array([v]), shape: [] }));
    const g = this.g;
    const x3 = g.node("Mul", [g.node("Mul", [x, x]), x]);
    const inner = g.node("Mul", [
      g.node("Add", [x, g.node("Mul", [x3, c("k", 0.044715)])]),
      c(
        "c",
        GELU_C,
      ),
    ]);
    const t = g.node("Add", [g.node("Tanh", [inner]), c("one", 1)]);
    return g.node("Mul", [g.node("Mul", [x, c("half", 0.5)]), t]);
  }

  /**
   * `lib/nn` groupNorm on an NCHW value (`[N, C, ...]`): Reshape to `[N, G, -1]`,
   * InstanceNormalization, Reshape back, per-channel affine, optional SiLU.
   *
   * @example
   * ```ts
   * const h = ex.groupNorm("decoder.norm_out", x, { groups: 32, silu: true });
   * ```
   */
  groupNorm(name: string, x: string, opts: ExportGroupNormOptions): string {
    const g = this.g;
    const w = this.param(`${name}.weight`);
    const c = w.shape[0];
    const G = opts.groups;
    if (!Number.isInteger(G) || G <= 0 || c % G !== 0) {
      throw new Error(`NnExporter.groupNorm "${name}": groups=${G} must divide channels=${c}`);
    }
    const ones = this.init(`@ones${G}`, `groupnorm.ones${G}`, () => ({
      data: new Float32Array(G).fill(1),
      shape: [G],
    }));
    const zeros = this.init(`@zeros${G}`, `groupnorm.zeros${G}`, () => ({
      data: new Float32Array(G),
      shape: [G],
    }));
    const grouped = g.node("Reshape", [x, g.int64s([0, G, -1])]);
    const normed = g.node("InstanceNormalization", [grouped, ones, zeros], {
      epsilon: opts.eps ?? 1e-5,
    });
    const back = g.node("Reshape", [normed, g.node("Shape", [x])]);
    const col = (suffix: string) =>
      this.init(`${name}.${suffix}@C11`, `${name}.${suffix}`, () => ({
        data: this.param(`${name}.${suffix}`).data,
        shape: [c, 1, 1],
      }));
    const y = g.node("Add", [g.node("Mul", [back, col("weight")]), col("bias")]);
    return opts.silu ? this.silu(y) : y;
  }

  /**
   * `lib/nn` linear on `[..., in]`: MatMul with the `[in, out]` weight, plus bias.
   *
   * @example
   * ```ts
   * const q = ex.linear("attn.to_q", x);
   * ```
   */
  linear(name: string, x: string): string {
    const wName = `${name}.weight`;
    this.param(wName);
    const w = this.init(wName, wName, () => this.param(wName));
    const y = this.g.node("MatMul", [x, w]);
    if (!this.has(`${name}.bias`)) return y;
    return this.g.node("Add", [
      y,
      this.init(`${name}.bias`, `${name}.bias`, () => this.param(`${name}.bias`)),
    ]);
  }

  /**
   * `lib/nn` layerNorm over the last axis (LayerNormalization, opset 17).
   *
   * @example
   * ```ts
   * const h = ex.layerNorm("final_layer_norm", x);
   * ```
   */
  layerNorm(name: string, x: string, opts: { eps?: number } = {}): string {
    const w = this.init(`${name}.weight`, `${name}.weight`, () => this.param(`${name}.weight`));
    const b = this.init(`${name}.bias`, `${name}.bias`, () => this.param(`${name}.bias`));
    return this.g.node("LayerNormalization", [x, w, b], { axis: -1, epsilon: opts.eps ?? 1e-5 });
  }

  /**
   * `lib/nn` attention on `[B, T, C]`: to_q/to_k/to_v, heads, scaled dot product with optional
   * key and causal masks, to_out.0.
   *
   * @example
   * ```ts
   * const h = ex.attention("blocks.0.attn2", x, { heads: 8, context: textStates });
   * ```
   */
  attention(name: string, x: string, opts: ExportAttentionOptions): string {
    const g = this.g;
    const h = opts.heads;
    const inner = this.param(`${name}.to_q.weight`).shape[1];
    if (inner % h !== 0) {
      throw new Error(`NnExporter.attention "${name}": width ${inner} not divisible by ${h}`);
    }
    const d = inner / h;
    const src = opts.context ?? x;
    const split = (v: string, perm: number[]) =>
      g.node("Transpose", [g.node("Reshape", [v, g.int64s([0, 0, h, d])])], { perm });
    const q = split(this.linear(`${name}.to_q`, x), [0, 2, 1, 3]); // [B, h, Tq, d]
    const kT = split(this.linear(`${name}.to_k`, src), [0, 2, 3, 1]); // [B, h, d, Tk]
    const v = split(this.linear(`${name}.to_v`, src), [0, 2, 1, 3]);
    const scale = this.init(`@scale${d}`, `attention.scale${d}`, () => ({
      data: new Float32Array([1 / Math.sqrt(d)]),
      shape: [],
    }));
    let logits = g.node("Mul", [g.node("MatMul", [q, kT]), scale]);
    if (opts.keyMask) {
      const m = g.node("Cast", [opts.keyMask], { to: 1 });
      const one = this.init("@one", "attention.one", () => ({
        data: new Float32Array([1]),
        shape: [],
      }));
      const big = this.init("@masked", "attention.masked", () => ({
        data: new Float32Array([MASKED]),
        shape: [],
      }));
      const bias = g.node("Mul", [g.node("Sub", [one, m]), big]);
      logits = g.node("Add", [logits, g.node("Reshape", [bias, g.int64s([0, 1, 1, -1])])]);
    }
    if (opts.causalLength) {
      const t = opts.causalLength;
      const causal = this.init(`@causal${t}`, `attention.causal${t}`, () => {
        const data = new Float32Array(t * t);
        for (let i = 0; i < t; i++) for (let j = i + 1; j < t; j++) data[i * t + j] = MASKED;
        return { data, shape: [1, 1, t, t] };
      });
      logits = g.node("Add", [logits, causal]);
    }
    const probs = g.node("Softmax", [logits], { axis: -1 });
    const o = g.node("Transpose", [g.node("MatMul", [probs, v])], { perm: [0, 2, 1, 3] });
    return this.linear(`${name}.to_out.0`, g.node("Reshape", [o, g.int64s([0, 0, inner])]));
  }

  /**
   * A float32 scalar constant, added once per value.
   *
   * @example
   * ```ts
   * const half = ex.scalar(0.5);
   * ```
   */
  scalar(v: number): string {
    return this.init(`@scalar${v}`, "scalar", () => ({ data: new Float32Array([v]), shape: [] }));
  }

  /**
   * `lib/nn` embedding: rows of `name.weight` `[vocab, dim]` for integer ids of any shape (Gather
   * takes int32 and int64 ids alike).
   *
   * @example
   * ```ts
   * const e = ex.embedding("text.token_embedding", ids); // [B, T] -> [B, T, D]
   * ```
   */
  embedding(name: string, ids: string): string {
    const wName = `${name}.weight`;
    const w = this.init(wName, wName, () => this.param(wName));
    return this.g.node("Gather", [w, ids], { axis: 0 });
  }

  /**
   * `lib/nn` timestepEmbedding: timesteps `[B]` (any numeric type, cast to float32) to
   * `[B, dim]` sinusoids, cos first by default, zero-padded when `dim` is odd.
   *
   * @example
   * ```ts
   * const tproj = ex.timestepEmbedding(t, { dim: 32 });
   * ```
   */
  timestepEmbedding(t: string, opts: ExportTimestepOptions): string {
    const g = this.g;
    const freqs = timestepFrequencies(opts);
    const half = freqs.length;
    const f = this.init(
      `@freqs${opts.dim}/${opts.downscaleFreqShift ?? 0}/${opts.maxPeriod ?? 10000}`,
      "time_proj.freqs",
      () => ({
        data: freqs,
        shape: [1, half],
      }),
    );
    const tf32 = g.node("Cast", [t], { to: 1 });
    let ang = g.node("Mul", [g.node("Reshape", [tf32, g.int64s([-1, 1])]), f]);
    if (opts.scale !== undefined && opts.scale !== 1) {
      ang = g.node("Mul", [ang, this.scalar(opts.scale)]);
    }
    const cos = g.node("Cos", [ang]);
    const sin = g.node("Sin", [ang]);
    const pair = (opts.flipSinToCos ?? true) ? [cos, sin] : [sin, cos];
    const emb = g.node("Concat", pair, { axis: 1 });
    if (opts.dim % 2 === 0) return emb;
    return g.node("Pad", [emb, g.int64s([0, 0, 0, 1])]);
  }

  /**
   * `lib/nn` geglu on `[..., in]`: project with `name.proj`, split the last axis into
   * (hidden, gate), return `hidden * gelu(gate)`.
   *
   * @example
   * ```ts
   * const h = ex.geglu("ff.net.0", x);
   * ```
   */
  geglu(name: string, x: string): string {
    const y = this.linear(`${name}.proj`, x);
    const [hidden, gate] = this.g.nodeMulti("Split", [y], 2, { axis: -1 });
    return this.g.node("Mul", [hidden, this.gelu(gate)]);
  }

  /**
   * `[B, C, H, W]` -> `[B, H*W, C]` (the token sequence of a feature map).
   *
   * @example
   * ```ts
   * const seq = ex.nchwToSequence(h);
   * ```
   */
  nchwToSequence(x: string): string {
    const flat = this.g.node("Reshape", [x, this.g.int64s([0, 0, -1])]);
    return this.g.node("Transpose", [flat], { perm: [0, 2, 1] });
  }

  /**
   * `[B, H*W, C]` -> `[B, C, H, W]`, with B, H and W taken from the NCHW value `like`.
   *
   * @example
   * ```ts
   * const h = ex.sequenceToNchw(seq, x, 64);
   * ```
   */
  sequenceToNchw(seq: string, like: string, channels: number): string {
    const g = this.g;
    const shape = g.node("Concat", [
      g.node("Shape", [like], { start: 0, end: 1 }),
      g.int64s([channels]),
      g.node("Shape", [like], { start: 2, end: 4 }),
    ], { axis: 0 });
    return g.node("Reshape", [g.node("Transpose", [seq], { perm: [0, 2, 1] }), shape]);
  }

  /**
   * The spatial transformer of `lib/models/transformer2d.ts` on an NCHW value: GroupNorm (eps
   * 1e-6), `proj_in`, blocks of self-attention, cross-attention to `context` and a GEGLU
   * feed-forward (each pre-LayerNorm and residual), `proj_out`, residual.
   *
   * @example
   * ```ts
   * h = ex.transformer2d("mid_block.attentions.0", h, { heads: 4, groups: 8, context });
   * ```
   */
  transformer2d(name: string, x: string, opts: ExportTransformer2dOptions): string {
    const g = this.g;
    const channels = this.param(`${name}.norm.weight`).shape[0];
    const hn = this.groupNorm(`${name}.norm`, x, { groups: opts.groups, eps: 1e-6 });
    let inner: number;
    let h: string;
    if (opts.useLinearProjection) {
      inner = this.param(`${name}.proj_in.weight`).shape[1];
      h = this.linear(`${name}.proj_in`, this.nchwToSequence(hn));
    } else {
      inner = this.param(`${name}.proj_in.weight`).shape[3];
      h = this.nchwToSequence(this.conv2d(`${name}.proj_in`, hn));
    }
    for (let d = 0; d < (opts.depth ?? 1); d++) {
      const t = `${name}.transformer_blocks.${d}`;
      const a1 = this.attention(`${t}.attn1`, this.layerNorm(`${t}.norm1`, h), {
        heads: opts.heads,
      });
      h = g.node("Add", [h, a1]);
      const a2 = this.attention(`${t}.attn2`, this.layerNorm(`${t}.norm2`, h), {
        heads: opts.heads,
        context: opts.context,
      });
      h = g.node("Add", [h, a2]);
      const ff = this.linear(
        `${t}.ff.net.2`,
        this.geglu(`${t}.ff.net.0`, this.layerNorm(`${t}.norm3`, h)),
      );
      h = g.node("Add", [h, ff]);
    }
    const out = opts.useLinearProjection
      ? this.sequenceToNchw(this.linear(`${name}.proj_out`, h), x, channels)
      : this.conv2d(`${name}.proj_out`, this.sequenceToNchw(h, x, inner));
    return g.node("Add", [out, x]);
  }

  /**
   * `lib/nn` resnetBlock on an NCHW value.
   *
   * @example
   * ```ts
   * h = ex.resnetBlock("decoder.mid", h, { groups: 32 });
   * ```
   */
  resnetBlock(name: string, x: string, opts: ExportResnetOptions): string {
    const g = this.g;
    const gn = { groups: opts.groups, eps: opts.eps, silu: true };
    let h = this.conv2d(`${name}.conv1`, this.groupNorm(`${name}.norm1`, x, gn));
    if (this.has(`${name}.time_emb_proj.weight`)) {
      if (!opts.temb) {
        throw new Error(`NnExporter.resnetBlock "${name}": has time_emb_proj but no temb given`);
      }
      const t = this.linear(`${name}.time_emb_proj`, this.silu(opts.temb));
      h = g.node("Add", [h, g.node("Reshape", [t, g.int64s([0, -1, 1, 1])])]);
    }
    h = this.conv2d(`${name}.conv2`, this.groupNorm(`${name}.norm2`, h, gn));
    const skip = this.has(`${name}.conv_shortcut.weight`)
      ? this.conv2d(`${name}.conv_shortcut`, x)
      : x;
    return g.node("Add", [skip, h]);
  }
}

/** Options of {@link exportAutoencoderDecoder}. */
export interface ExportDecoderOptions extends OnnxModelOptions {
  /** Layout of the input latent and output image (default "NHWC", the kit's). */
  layout?: "NHWC" | "NCHW";
}

/**
 * The kit's autoencoder decoder (`decode` in `lib/models/autoencoder.ts`) as ONNX bytes: input
 * `latent_sample` (unscaled latent), output `sample` (image), batch and size free.
 *
 * @example
 * ```ts
 * await saveOnnx("runs/x/vae_decoder.onnx", await exportAutoencoderDecoder(p, cfg));
 * ```
 */
export async function exportAutoencoderDecoder(
  p: Params,
  cfg: AutoencoderConfig,
  opts: ExportDecoderOptions = {},
): Promise<Uint8Array> {
  const layout = opts.layout ?? "NHWC";
  const weights = await readParams(p);
  const g = new OnnxGraph("autoencoder_decoder");
  const ex = new NnExporter(g, weights);
  const inShape = layout === "NHWC"
    ? ["batch", "height", "width", cfg.latentChannels]
    : ["batch", cfg.latentChannels, "height", "width"];
  const z = g.input("latent_sample", "float32", inShape);
  const gn = { groups: cfg.groupNormGroups };
  const ch = cfg.blockChannels;
  let h = ex.conv2d("decoder.conv_in", layout === "NHWC" ? ex.nhwcToNchw(z) : z);
  h = ex.resnetBlock("decoder.mid", h, gn);
  for (let i = ch.length - 1; i >= 0; i--) {
    for (let j = 0; j < cfg.layersPerBlock; j++) {
      h = ex.resnetBlock(`decoder.up.${i}.resnets.${j}`, h, gn);
    }
    if (i > 0) h = ex.upsample(`decoder.up.${i}.upsample`, h);
  }
  h = ex.conv2d("decoder.conv_out", ex.groupNorm("decoder.norm_out", h, { ...gn, silu: true }));
  const y = layout === "NHWC"
    ? g.node("Transpose", [h], { perm: [0, 2, 3, 1] }, { outputs: ["sample"] })
    : g.node("Identity", [h], {}, { outputs: ["sample"] });
  const outShape = layout === "NHWC"
    ? ["batch", "image_height", "image_width", cfg.imageChannels]
    : ["batch", cfg.imageChannels, "image_height", "image_width"];
  g.output(y, "float32", outShape);
  return g.toBytes({
    ...opts,
    metadata: { model: "xgen-kit autoencoder decoder", layout, ...(opts.metadata ?? {}) },
  });
}
