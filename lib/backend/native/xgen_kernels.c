/*
 * xgen-kit native kernels for the `cpu` backend (`cpu-blas`).
 *
 * The kit compiles this file on first use with the machine's C compiler (gcc or clang, `-O3
 * -march=native`) and calls it through Deno FFI on the tfjs cpu backend's Float32Arrays, without
 * copying. Each function here mirrors a pure TypeScript function that stays the reference and the
 * fallback (lib/nn/fused.ts, lib/train/fused_adamw.ts, lib/backend/cpu_fast_kernels.ts); tests
 * compare the two. These loops are what is left of a training step once OpenBLAS runs the GEMMs,
 * and the compiler vectorises them where V8 cannot.
 *
 * Conventions: sizes and counts are int32 (tfjs shapes; callers check), offsets int64; float32 data, float64
 * accumulators. Compiled with -ffp-contract=off so that the plain arithmetic (binary ops, sums,
 * AdamW) rounds exactly as the TypeScript versions do.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Bumped when a signature changes, so a stale cached library is never called. */
int32_t xg_abi_version(void) { return 1; }

/*
 * exp(t) for float32: t = k ln2 + r with |r| <= ln2/2, a degree-7 Taylor polynomial for e^r
 * (relative error ~5e-9 before rounding), 2^k assembled in the exponent bits. Arguments are
 * clamped to [-87, 88] so 2^k stays a normal float. Branch-free, so loops over it vectorise.
 */
static inline float exp_approx(float t) {
  t = t < -87.f ? -87.f : t;
  t = t > 88.f ? 88.f : t;
  /* Round to nearest by the 1.5 * 2^23 trick (exact in float, no libm call). */
  float k = (t * 1.44269504f + 12582912.f) - 12582912.f;
  float r = (t - k * 0.693145752f) - k * 1.42860677e-6f;
  float p =
      1.f + r * (1.f + r * (0.5f + r * (0.166666672f + r * (0.0416666679f +
                r * (0.00833333377f + r * (0.00138888892f + r * 0.000198412701f))))));
  int32_t bits = ((int32_t)k + 127) << 23;
  float s;
  memcpy(&s, &bits, 4);
  return p * s;
}

/* ------------------------------------------------------------------------------------------ */
/* GroupNorm(+SiLU), channels last: x is [batch, spatial, c] with ng groups of c/ng channels.  */

void xg_group_norm(const float *restrict x, const float *restrict gamma,
                   const float *restrict beta, int32_t batch, int32_t spatial, int32_t c,
                   int32_t ng, float eps, int32_t silu, float *restrict y, float *restrict mean,
                   float *restrict rstd) {
  const int32_t cg = c / ng;
  if (spatial == 1) {
    /* One contiguous run of cg values per (sample, group); LayerNorm is this with ng = 1. */
    const int64_t segs = (int64_t)batch * ng;
    for (int64_t seg = 0; seg < segs; seg++) {
      const float *restrict xs = x + seg * cg;
      float *restrict ys = y + seg * cg;
      const int32_t ch0 = (int32_t)(seg % ng) * cg;
      double s = 0;
      for (int32_t i = 0; i < cg; i++) s += xs[i];
      const float m = (float)(s / cg);
      double q = 0;
      for (int32_t i = 0; i < cg; i++) {
        const float d = xs[i] - m;
        q += (double)d * d;
      }
      const float r = (float)(1.0 / sqrt(q / cg + eps));
      mean[seg] = m;
      rstd[seg] = r;
      const float *restrict ga = gamma + ch0, *restrict be = beta + ch0;
      if (silu) {
        for (int32_t i = 0; i < cg; i++) {
          const float z = (xs[i] - m) * r * ga[i] + be[i];
          ys[i] = z / (1.f + exp_approx(-z));
        }
      } else {
        for (int32_t i = 0; i < cg; i++) ys[i] = (xs[i] - m) * r * ga[i] + be[i];
      }
    }
    return;
  }
  /* Many positions: accumulate per channel along whole rows, then fold channels into groups. */
  double *acc = malloc(sizeof(double) * c);
  float *mch = malloc(sizeof(float) * 3 * c);
  float *scale = mch + c, *shift = mch + 2 * c;
  const double count = (double)spatial * cg;
  for (int32_t b = 0; b < batch; b++) {
    const float *xb = x + (int64_t)b * spatial * c;
    float *yb = y + (int64_t)b * spatial * c;
    for (int32_t ch = 0; ch < c; ch++) acc[ch] = 0;
    for (int32_t s = 0; s < spatial; s++) {
      const float *restrict xr = xb + (int64_t)s * c;
      for (int32_t ch = 0; ch < c; ch++) acc[ch] += xr[ch];
    }
    for (int32_t g = 0; g < ng; g++) {
      double t = 0;
      for (int32_t j = 0; j < cg; j++) t += acc[g * cg + j];
      const float m = (float)(t / count);
      for (int32_t j = 0; j < cg; j++) mch[g * cg + j] = m;
    }
    /* Second pass on centred values: no cancellation when |mean| >> std. */
    for (int32_t ch = 0; ch < c; ch++) acc[ch] = 0;
    for (int32_t s = 0; s < spatial; s++) {
      const float *restrict xr = xb + (int64_t)s * c;
      for (int32_t ch = 0; ch < c; ch++) {
        const float d = xr[ch] - mch[ch];
        acc[ch] += (double)d * d;
      }
    }
    for (int32_t g = 0; g < ng; g++) {
      double q = 0;
      for (int32_t j = 0; j < cg; j++) q += acc[g * cg + j];
      const float r = (float)(1.0 / sqrt(q / count + eps));
      mean[b * ng + g] = mch[g * cg];
      rstd[b * ng + g] = r;
      for (int32_t j = 0; j < cg; j++) {
        const int32_t ch = g * cg + j;
        scale[ch] = r * gamma[ch];
        shift[ch] = beta[ch] - mch[ch] * scale[ch];
      }
    }
    for (int32_t s = 0; s < spatial; s++) {
      const float *restrict xr = xb + (int64_t)s * c;
      float *restrict yr = yb + (int64_t)s * c;
      if (silu) {
        for (int32_t ch = 0; ch < c; ch++) {
          const float z = xr[ch] * scale[ch] + shift[ch];
          yr[ch] = z / (1.f + exp_approx(-z));
        }
      } else {
        for (int32_t ch = 0; ch < c; ch++) yr[ch] = xr[ch] * scale[ch] + shift[ch];
      }
    }
  }
  free(acc);
  free(mch);
}

/* dz = dy * silu'(z), z = xh * gamma + beta, silu'(z) = s (1 + z (1 - s)), s = sigmoid(z). */
static inline float silu_dz(float d, float xh, float ga, float be) {
  const float z = xh * ga + be;
  const float s = 1.f / (1.f + exp_approx(-z));
  return d * s * (1.f + z * (1.f - s));
}

/*
 * GroupNorm(+SiLU) backward from the forward's per-(sample, group) mean and rstd:
 * dbeta_c = sum dz, dgamma_c = sum dz xhat, dx = rstd (g - mean_grp(g) - xhat mean_grp(g xhat))
 * with g = dz gamma_c.
 */
void xg_group_norm_grad(const float *restrict dy, const float *restrict x,
                        const float *restrict gamma, const float *restrict beta,
                        const float *restrict mean, const float *restrict rstd, int32_t batch,
                        int32_t spatial, int32_t c, int32_t ng, int32_t silu,
                        float *restrict dx, float *restrict dgamma, float *restrict dbeta) {
  const int32_t cg = c / ng;
  double *dg = malloc(sizeof(double) * 4 * c);
  double *db = dg + c, *c1 = dg + 2 * c, *c2 = dg + 3 * c;
  for (int32_t ch = 0; ch < c; ch++) dg[ch] = db[ch] = 0;
  if (spatial == 1) {
    const int64_t segs = (int64_t)batch * ng;
    for (int64_t seg = 0; seg < segs; seg++) {
      const int64_t i0 = seg * cg;
      const int32_t ch0 = (int32_t)(seg % ng) * cg;
      const float m = mean[seg], r = rstd[seg];
      const float *restrict xs = x + i0, *restrict dys = dy + i0;
      const float *restrict ga = gamma + ch0, *restrict be = beta + ch0;
      float *restrict dxs = dx + i0;
      double *restrict dgs = dg + ch0, *restrict dbs = db + ch0;
      double s1 = 0, s2 = 0;
      for (int32_t i = 0; i < cg; i++) {
        const float xh = (xs[i] - m) * r;
        const float d = silu ? silu_dz(dys[i], xh, ga[i], be[i]) : dys[i];
        dbs[i] += d;
        dgs[i] += (double)d * xh;
        const float gv = d * ga[i];
        dxs[i] = gv;
        s1 += gv;
        s2 += (double)gv * xh;
      }
      const float a = (float)(s1 / cg), bb = (float)(s2 / cg);
      for (int32_t i = 0; i < cg; i++) dxs[i] = r * (dxs[i] - a - (xs[i] - m) * r * bb);
    }
  } else {
    float *mc = malloc(sizeof(float) * 4 * c);
    float *rc = mc + c, *a = mc + 2 * c, *bb = mc + 3 * c;
    const double count = (double)spatial * cg;
    for (int32_t b = 0; b < batch; b++) {
      const int64_t base = (int64_t)b * spatial * c;
      for (int32_t g = 0; g < ng; g++) {
        for (int32_t j = 0; j < cg; j++) {
          mc[g * cg + j] = mean[b * ng + g];
          rc[g * cg + j] = rstd[b * ng + g];
        }
      }
      for (int32_t ch = 0; ch < c; ch++) c1[ch] = c2[ch] = 0;
      /* Pass 1: dz, parameter gradients and per-channel sums; g = dz gamma parks in dx. */
      for (int32_t s = 0; s < spatial; s++) {
        const float *restrict xr = x + base + (int64_t)s * c;
        const float *restrict dyr = dy + base + (int64_t)s * c;
        float *restrict dxr = dx + base + (int64_t)s * c;
        if (silu) {
          for (int32_t ch = 0; ch < c; ch++) {
            const float xh = (xr[ch] - mc[ch]) * rc[ch];
            const float d = silu_dz(dyr[ch], xh, gamma[ch], beta[ch]);
            db[ch] += d;
            dg[ch] += (double)d * xh;
            const float gv = d * gamma[ch];
            dxr[ch] = gv;
            c1[ch] += gv;
            c2[ch] += (double)gv * xh;
          }
        } else {
          for (int32_t ch = 0; ch < c; ch++) {
            const float xh = (xr[ch] - mc[ch]) * rc[ch];
            const float d = dyr[ch];
            db[ch] += d;
            dg[ch] += (double)d * xh;
            const float gv = d * gamma[ch];
            dxr[ch] = gv;
            c1[ch] += gv;
            c2[ch] += (double)gv * xh;
          }
        }
      }
      for (int32_t g = 0; g < ng; g++) {
        double s1 = 0, s2 = 0;
        for (int32_t j = 0; j < cg; j++) {
          s1 += c1[g * cg + j];
          s2 += c2[g * cg + j];
        }
        for (int32_t j = 0; j < cg; j++) {
          a[g * cg + j] = (float)(s1 / count);
          bb[g * cg + j] = (float)(s2 / count);
        }
      }
      /* Pass 2: dx = rstd (g - mean(g) - xhat mean(g xhat)). */
      for (int32_t s = 0; s < spatial; s++) {
        const float *restrict xr = x + base + (int64_t)s * c;
        float *restrict dxr = dx + base + (int64_t)s * c;
        for (int32_t ch = 0; ch < c; ch++) {
          const float xh = (xr[ch] - mc[ch]) * rc[ch];
          dxr[ch] = rc[ch] * (dxr[ch] - a[ch] - xh * bb[ch]);
        }
      }
    }
    free(mc);
  }
  for (int32_t ch = 0; ch < c; ch++) {
    dgamma[ch] = (float)dg[ch];
    dbeta[ch] = (float)db[ch];
  }
  free(dg);
}

/* ------------------------------------------------------------------------------------------ */
/* Activations                                                                                 */

void xg_silu(const float *restrict x, float *restrict y, int32_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = x[i] / (1.f + exp_approx(-x[i]));
}

void xg_silu_grad(const float *restrict dy, const float *restrict x, float *restrict dx,
                  int32_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float s = 1.f / (1.f + exp_approx(-x[i]));
    dx[i] = dy[i] * s * (1.f + x[i] * (1.f - s));
  }
}

#define GELU_C 0.7978845608028654f /* sqrt(2 / pi) */
#define GELU_K 0.044715f

/* tanh-GELU, with 1 + tanh(u) = 2 - 2 / (e^(2u) + 1). */
void xg_gelu(const float *restrict x, float *restrict y, int32_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float v = x[i];
    y[i] = v * (1.f - 1.f / (exp_approx(2.f * GELU_C * (v + GELU_K * v * v * v)) + 1.f));
  }
}

void xg_gelu_grad(const float *restrict dy, const float *restrict x, float *restrict dx,
                  int32_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float v = x[i], v2 = v * v;
    const float t = 1.f - 2.f / (exp_approx(2.f * GELU_C * (v + GELU_K * v2 * v)) + 1.f);
    dx[i] = dy[i] * (0.5f * (1.f + t) +
                     0.5f * v * (1.f - t * t) * GELU_C * (1.f + 3.f * GELU_K * v2));
  }
}

/* Row-wise softmax(scale * x) over rows of `cols` values. */
void xg_softmax(const float *restrict x, float *restrict y, int32_t rows, int32_t cols,
                float scale) {
  for (int64_t r = 0; r < rows; r++) {
    const float *restrict xr = x + r * cols;
    float *restrict yr = y + r * cols;
    float m = -INFINITY;
    for (int32_t i = 0; i < cols; i++) m = xr[i] > m ? xr[i] : m;
    double sum = 0;
    for (int32_t i = 0; i < cols; i++) {
      const float e = exp_approx(scale * (xr[i] - m));
      yr[i] = e;
      sum += e;
    }
    const float inv = (float)(1.0 / sum);
    for (int32_t i = 0; i < cols; i++) yr[i] *= inv;
  }
}

/* Its backward from the output y: dx = scale * y * (dy - sum(dy * y)) per row. */
void xg_softmax_grad(const float *restrict dy, const float *restrict y, float *restrict dx,
                     int32_t rows, int32_t cols, float scale) {
  for (int64_t r = 0; r < rows; r++) {
    const float *restrict dyr = dy + r * cols, *restrict yr = y + r * cols;
    float *restrict dxr = dx + r * cols;
    double s = 0;
    for (int32_t i = 0; i < cols; i++) s += (double)dyr[i] * yr[i];
    const float sf = (float)s;
    for (int32_t i = 0; i < cols; i++) dxr[i] = scale * yr[i] * (dyr[i] - sf);
  }
}

/* ------------------------------------------------------------------------------------------ */
/* AdamW, in float64 per element as lib/train/fused_adamw.ts (bit-identical results).          */

void xg_adamw(const float *restrict p, const float *restrict g, const float *restrict m,
              const float *restrict v, float *restrict p1, float *restrict m1,
              float *restrict v1, int32_t n, double b1, double b2, double eps, double step_size,
              double sqrt_bc2, double decay) {
  const double c1 = 1 - b1, c2 = 1 - b2;
  for (int64_t i = 0; i < n; i++) {
    const double gi = g[i];
    const double mi = b1 * m[i] + c1 * gi;
    const double vi = b2 * v[i] + c2 * gi * gi;
    m1[i] = (float)mi;
    v1[i] = (float)vi;
    p1[i] = (float)(decay * p[i] - step_size * (mi / (sqrt(vi) / sqrt_bc2 + eps)));
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Broadcast binary ops over a merged plan (lib/backend/cpu_fast_kernels.ts broadcastPlan):    */
/* dims[rank] with element strides of a and b per dim (0 where broadcast). Ops: 0 add, 1 sub,  */
/* 2 mul, 3 div, 4 squared difference (in float64, as JavaScript computes it).                 */

#define XG_RUN(EXPR)                                                                         \
  do {                                                                                       \
    if (sa == 1 && sb == 1) {                                                                \
      for (int32_t j = 0; j < n; j++) {                                                      \
        const float xa = pa[j], xb = pb[j];                                                  \
        po[j] = (EXPR);                                                                      \
      }                                                                                      \
    } else if (sa == 1 && sb == 0) {                                                         \
      const float xb = pb[0];                                                                \
      for (int32_t j = 0; j < n; j++) {                                                      \
        const float xa = pa[j];                                                              \
        po[j] = (EXPR);                                                                      \
      }                                                                                      \
    } else if (sa == 0 && sb == 1) {                                                         \
      const float xa = pa[0];                                                                \
      for (int32_t j = 0; j < n; j++) {                                                      \
        const float xb = pb[j];                                                              \
        po[j] = (EXPR);                                                                      \
      }                                                                                      \
    } else {                                                                                 \
      for (int32_t j = 0; j < n; j++) {                                                      \
        const float xa = pa[j * sa], xb = pb[j * sb];                                        \
        po[j] = (EXPR);                                                                      \
      }                                                                                      \
    }                                                                                        \
  } while (0)

static void binary_run(int32_t op, float *restrict po, const float *restrict pa,
                       const float *restrict pb, int32_t n, int32_t sa, int32_t sb) {
  switch (op) {
    case 0: XG_RUN(xa + xb); break;
    case 1: XG_RUN(xa - xb); break;
    case 2: XG_RUN(xa * xb); break;
    case 3: XG_RUN(xa / xb); break;
    case 4: XG_RUN((float)(((double)xa - xb) * ((double)xa - xb))); break;
  }
}

/* Returns 0, or -1 for an unknown op or rank outside [1, 16]. */
int32_t xg_binary(int32_t op, float *o, const float *a, const float *b, int32_t rank,
                  const int32_t *dims, const int32_t *as, const int32_t *bs) {
  if (op < 0 || op > 4 || rank < 1 || rank > 16) return -1;
  const int32_t n = dims[rank - 1], sa = as[rank - 1], sb = bs[rank - 1];
  int64_t outer = 1;
  for (int32_t d = 0; d < rank - 1; d++) outer *= dims[d];
  int32_t idx[16] = {0};
  int64_t ia = 0, ib = 0;
  for (int64_t k = 0; k < outer; k++) {
    binary_run(op, o + k * n, a + ia, b + ib, n, sa, sb);
    for (int32_t d = rank - 2; d >= 0; d--) {
      idx[d]++;
      ia += as[d];
      ib += bs[d];
      if (idx[d] < dims[d]) break;
      ia -= (int64_t)as[d] * dims[d];
      ib -= (int64_t)bs[d] * dims[d];
      idx[d] = 0;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Sum over a merged plan: dims[rank] alternating kept / reduced runs, os[d] the output stride */
/* of dim d (0 for reduced dims). Float64 accumulators in the order the TypeScript loop uses,  */
/* so both give the same float32 result.                                                       */

int32_t xg_sum(const float *x, int32_t total, int32_t rank, const int32_t *dims,
               const int32_t *os, float *out, int32_t out_size) {
  if (rank < 1 || rank > 16) return -1;
  double *acc = calloc(out_size > 0 ? out_size : 1, sizeof(double));
  if (!acc) return -2;
  const int32_t k = rank - 1;
  const int32_t n = dims[k], so = os[k];
  const int32_t rows = k >= 1 ? dims[k - 1] : 1, ro = k >= 1 ? os[k - 1] : 0;
  const int64_t block = (int64_t)rows * n;
  int32_t idx[16] = {0};
  int64_t oi = 0;
  for (int64_t xb = 0; xb < total; xb += block) {
    for (int32_t i = 0; i < rows; i++) {
      const float *restrict xr = x + xb + (int64_t)i * n;
      double *restrict ar = acc + oi + (int64_t)i * ro;
      if (so == 0) {
        double t = 0;
        for (int32_t j = 0; j < n; j++) t += xr[j];
        ar[0] += t;
      } else {
        for (int32_t j = 0; j < n; j++) ar[j] += xr[j];
      }
    }
    for (int32_t d = k - 2; d >= 0; d--) {
      idx[d]++;
      oi += os[d];
      if (idx[d] < dims[d]) break;
      oi -= (int64_t)os[d] * dims[d];
      idx[d] = 0;
    }
  }
  for (int64_t i = 0; i < out_size; i++) out[i] = (float)acc[i];
  free(acc);
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Transpose of 4-byte elements (float32 or int32): out dims[rank] row-major, st[d] the input  */
/* stride of output dim d.                                                                     */

int32_t xg_transpose32(const uint32_t *x, uint32_t *out, int32_t total, int32_t rank,
                       const int32_t *dims, const int32_t *st) {
  if (rank < 1 || rank > 16) return -1;
  const int32_t n = dims[rank - 1], sn = st[rank - 1];
  int32_t idx[16] = {0};
  int64_t ii = 0;
  for (int64_t o = 0; o < total; o += n) {
    uint32_t *restrict po = out + o;
    const uint32_t *restrict px = x + ii;
    if (sn == 1) {
      memcpy(po, px, sizeof(uint32_t) * n);
    } else {
      for (int32_t j = 0; j < n; j++) po[j] = px[(int64_t)j * sn];
    }
    for (int32_t d = rank - 2; d >= 0; d--) {
      idx[d]++;
      ii += st[d];
      if (idx[d] < dims[d]) break;
      ii -= (int64_t)st[d] * dims[d];
      idx[d] = 0;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* NHWC im2col / col2im, as lib/backend/im2col.ts. geo holds inH, inW, inC, outH, outW, kH,   */
/* kW, strideH, strideW, dilationH, dilationW, padTop, padLeft.                               */

void xg_im2col(const float *restrict x, float *restrict cols, const int32_t *geo, int32_t first,
               int32_t count) {
  const int32_t inH = geo[0], inW = geo[1], inC = geo[2], outH = geo[3], outW = geo[4];
  const int32_t kH = geo[5], kW = geo[6], sH = geo[7], sW = geo[8], dH = geo[9], dW = geo[10];
  const int32_t padTop = geo[11], padLeft = geo[12];
  const int64_t imgSize = (int64_t)inH * inW * inC;
  float *o = cols;
  for (int32_t n = first; n < first + count; n++) {
    const float *xb = x + n * imgSize;
    for (int32_t oh = 0; oh < outH; oh++) {
      const int32_t ih0 = oh * sH - padTop;
      for (int32_t ow = 0; ow < outW; ow++) {
        const int32_t iw0 = ow * sW - padLeft;
        for (int32_t kh = 0; kh < kH; kh++) {
          const int32_t ih = ih0 + kh * dH;
          if (ih < 0 || ih >= inH) {
            memset(o, 0, sizeof(float) * kW * inC);
            o += (int64_t)kW * inC;
            continue;
          }
          const float *row = xb + (int64_t)ih * inW * inC;
          for (int32_t kw = 0; kw < kW; kw++) {
            const int32_t iw = iw0 + kw * dW;
            if (iw < 0 || iw >= inW) memset(o, 0, sizeof(float) * inC);
            else memcpy(o, row + (int64_t)iw * inC, sizeof(float) * inC);
            o += inC;
          }
        }
      }
    }
  }
}

/* Scatter-add of patch gradients into dx (zeroed by the caller for these images). */
void xg_col2im(const float *restrict cols, float *restrict dx, const int32_t *geo, int32_t first,
               int32_t count) {
  const int32_t inH = geo[0], inW = geo[1], inC = geo[2], outH = geo[3], outW = geo[4];
  const int32_t kH = geo[5], kW = geo[6], sH = geo[7], sW = geo[8], dH = geo[9], dW = geo[10];
  const int32_t padTop = geo[11], padLeft = geo[12];
  const int64_t imgSize = (int64_t)inH * inW * inC;
  const float *o = cols;
  for (int32_t n = first; n < first + count; n++) {
    float *xb = dx + n * imgSize;
    for (int32_t oh = 0; oh < outH; oh++) {
      const int32_t ih0 = oh * sH - padTop;
      for (int32_t ow = 0; ow < outW; ow++) {
        const int32_t iw0 = ow * sW - padLeft;
        for (int32_t kh = 0; kh < kH; kh++) {
          const int32_t ih = ih0 + kh * dH;
          if (ih < 0 || ih >= inH) {
            o += (int64_t)kW * inC;
            continue;
          }
          float *row = xb + (int64_t)ih * inW * inC;
          for (int32_t kw = 0; kw < kW; kw++) {
            const int32_t iw = iw0 + kw * dW;
            if (iw >= 0 && iw < inW) {
              float *restrict d = row + (int64_t)iw * inC;
              for (int32_t c = 0; c < inC; c++) d[c] += o[c];
            }
            o += inC;
          }
        }
      }
    }
  }
}
