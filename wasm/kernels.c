// Elementwise kernels, reductions, rows, normalisation, activations, rotary embedding, the indexed linear,
// cross-entropy and AdamW. Semantics are those of src/engine/backend.ts (backward kernels accumulate).
#include "aunet.h"
#include "simd.h"

// ---------------------------------------------------------------------------------------------------------
// Elementwise

EXPORT(fill) void wa_fill(float* o, long n, float v) {
  long i = 0;
  for (; i + W <= n; i += W) vst(o + i, vset(v));
  for (; i < n; i++) o[i] = v;
}
EXPORT(copy) void wa_copy(float* o, const float* a, long n) {
  __builtin_memmove(o, a, (unsigned long)n * sizeof(float));
}
// add and scale allow out to alias an input.
EXPORT(add) void wa_add(float* o, const float* a, const float* b, long n) {
  long i = 0;
  for (; i + W <= n; i += W) vst(o + i, vadd(vld(a + i), vld(b + i)));
  for (; i < n; i++) o[i] = a[i] + b[i];
}
EXPORT(axpy) void wa_axpy(float* o, const float* a, float alpha, long n) {
  vf al = vset(alpha);
  long i = 0;
  for (; i + W <= n; i += W) vst(o + i, vmad(al, vld(a + i), vld(o + i)));
  for (; i < n; i++) o[i] += alpha * a[i];
}
EXPORT(scale) void wa_scale(float* o, const float* a, float alpha, long n) {
  vf al = vset(alpha);
  long i = 0;
  for (; i + W <= n; i += W) vst(o + i, vmul(al, vld(a + i)));
  for (; i < n; i++) o[i] = alpha * a[i];
}

// Sums in double: each group of 4 floats is widened into two f64x2 accumulators.
static double sum_d(const float* a, long n, int squares) {
  v128_t s0 = wasm_f64x2_splat(0), s1 = s0;
  long i = 0;
  for (; i + W <= n; i += W) {
    vf x = vld(a + i);
    v128_t lo = wasm_f64x2_promote_low_f32x4(x);
    v128_t hi = wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(x, x, 2, 3, 0, 1));
    if (squares) {
      lo = wasm_f64x2_mul(lo, lo);
      hi = wasm_f64x2_mul(hi, hi);
    }
    s0 = wasm_f64x2_add(s0, lo);
    s1 = wasm_f64x2_add(s1, hi);
  }
  v128_t s = wasm_f64x2_add(s0, s1);
  double t = wasm_f64x2_extract_lane(s, 0) + wasm_f64x2_extract_lane(s, 1);
  for (; i < n; i++) t += squares ? (double)a[i] * a[i] : a[i];
  return t;
}
EXPORT(sum) double wa_sum(const float* a, long n) { return sum_d(a, n, 0); }
EXPORT(sumSquares) double wa_sum_squares(const float* a, long n) { return sum_d(a, n, 1); }
EXPORT(reduceSum) void wa_reduce_sum(float* o, const float* a, long n, float alpha) {
  o[0] = (float)(alpha * sum_d(a, n, 0));
}

// ---------------------------------------------------------------------------------------------------------
// Rows

EXPORT(gather) void wa_gather(float* out, const float* src, const int32_t* idx, long nidx, long dim) {
  for (long i = 0; i < nidx; i++)
    __builtin_memcpy(out + i * dim, src + (long)idx[i] * dim, (unsigned long)dim * sizeof(float));
}
EXPORT(scatterAdd) void wa_scatter_add(float* dst, const float* src, const int32_t* idx, long nidx, long dim) {
  for (long i = 0; i < nidx; i++) wa_axpy(dst + (long)idx[i] * dim, src + i * dim, 1.f, dim);
}

// ---------------------------------------------------------------------------------------------------------
// Normalisation and activations

EXPORT(rmsnorm)
void wa_rmsnorm(float* out, float* rstd, const float* x, const float* w, long rows, long dim, float eps) {
  for (long r = 0; r < rows; r++) {
    const float* xr = x + r * dim;
    float* orow = out + r * dim;
    // The stored float rstd is what the output uses, as in the reference.
    float rs = (float)(1.0 / __builtin_sqrt(sum_d(xr, dim, 1) / (double)dim + (double)eps));
    rstd[r] = rs;
    vf rv = vset(rs);
    long j = 0;
    for (; j + W <= dim; j += W) vst(orow + j, vmul(vmul(vld(xr + j), rv), vld(w + j)));
    for (; j < dim; j++) orow[j] = xr[j] * rs * w[j];
  }
}

// y = x rs w: dx = rs (g w) - x rs^3 mean(g w x); dw = sum over rows of g x rs.
EXPORT(rmsnormBackward)
void wa_rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd,
                         long rows, long dim) {
  for (long r = 0; r < rows; r++) {
    const float* g = dout + r * dim;
    const float* xr = x + r * dim;
    float* dxr = dx + r * dim;
    float rs = rstd[r];
    vf acc = vset(0.f);
    long j = 0;
    for (; j + W <= dim; j += W) acc = vmad(vmul(vld(g + j), vld(w + j)), vld(xr + j), acc);
    double dot = vhsum(acc);
    for (; j < dim; j++) dot += (double)g[j] * w[j] * xr[j];
    float c = (float)(dot / (double)dim * (double)rs * (double)rs * (double)rs);
    vf rv = vset(rs), cv = vset(c);
    j = 0;
    for (; j + W <= dim; j += W) {
      vf gj = vld(g + j), xj = vld(xr + j);
      vst(dxr + j, vadd(vld(dxr + j), vsub(vmul(vmul(gj, vld(w + j)), rv), vmul(xj, cv))));
      vst(dw + j, vmad(vmul(gj, xj), rv, vld(dw + j)));
    }
    for (; j < dim; j++) {
      dxr[j] += g[j] * w[j] * rs - xr[j] * c;
      dw[j] += g[j] * xr[j] * rs;
    }
  }
}

static inline vf vsigmoid(vf x) { return vdiv(vset(1.f), vadd(vset(1.f), vexp(vsub(vset(0.f), x)))); }

// Tails run through a zero-padded 4-lane copy, so every element takes the same vector code path.
EXPORT(swiglu) void wa_swiglu(float* o, const float* a, const float* b, long n) {
  long i = 0;
  for (; i + W <= n; i += W) {
    vf x = vld(a + i);
    vst(o + i, vmul(vmul(x, vsigmoid(x)), vld(b + i)));
  }
  if (i < n) {
    float ta[W] = {0}, tb[W] = {0}, to[W];
    for (long t = 0; t < n - i; t++) ta[t] = a[i + t], tb[t] = b[i + t];
    wa_swiglu(to, ta, tb, W);
    for (long t = 0; t < n - i; t++) o[i + t] = to[t];
  }
}

EXPORT(swigluBackward)
void wa_swiglu_backward(float* da, float* db, const float* g, const float* a, const float* b, long n) {
  long i = 0;
  for (; i + W <= n; i += W) {
    vf gv = vld(g + i), x = vld(a + i), sg = vsigmoid(x);
    vst(db + i, vmad(vmul(gv, x), sg, vld(db + i)));
    vf t = vadd(vset(1.f), vmul(x, vsub(vset(1.f), sg)));
    vst(da + i, vmad(vmul(vmul(gv, vld(b + i)), sg), t, vld(da + i)));
  }
  if (i < n) {
    float tda[W] = {0}, tdb[W] = {0}, tg[W] = {0}, ta[W] = {0}, tb[W] = {0};
    for (long t = 0; t < n - i; t++) tg[t] = g[i + t], ta[t] = a[i + t], tb[t] = b[i + t];
    wa_swiglu_backward(tda, tdb, tg, ta, tb, W);
    for (long t = 0; t < n - i; t++) da[i + t] += tda[t], db[i + t] += tdb[t];
  }
}

// ---------------------------------------------------------------------------------------------------------
// Rotary embedding of interleaved pairs. out may alias x in the forward, so each pair is read before written;
// the backward rotates by -angle and accumulates.

EXPORT(rope)
void wa_rope(float* out, const float* x, const float* cs, const float* sn, long rows, long seq, long nh, long hd,
             const int32_t* pos, int backward) {
  long half = hd / 2;
  float sign = backward ? -1.f : 1.f;
  for (long r = 0; r < rows; r++) {
    long p = pos ? (long)pos[r] : r % seq;
    const float* c = cs + p * half;
    const float* s = sn + p * half;
    for (long h = 0; h < nh; h++) {
      const float* xi = x + (r * nh + h) * hd;
      float* oi = out + (r * nh + h) * hd;
      for (long j = 0; j < half; j++) {
        float cj = c[j], sj = sign * s[j];
        float x0 = xi[2 * j], x1 = xi[2 * j + 1];
        float y0 = x0 * cj - x1 * sj, y1 = x0 * sj + x1 * cj;
        if (backward) {
          oi[2 * j] += y0;
          oi[2 * j + 1] += y1;
        } else {
          oi[2 * j] = y0;
          oi[2 * j + 1] = y1;
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Indexed linear: rows are grouped by position (counting sort); each group is gathered into scratch and is one
// GEMM against W[p].

static Scratch s_order, s_start, s_xg, s_og;

// order: row ids sorted by position; start: npos + 1 offsets into order.
static void group_rows(const int32_t* pos, long rows, long npos, int32_t** order, int32_t** start) {
  int32_t* o = scratch(&s_order, lmax(1, rows) * 4);
  int32_t* st = scratch(&s_start, (npos + 2) * 4);
  for (long p = 0; p <= npos + 1; p++) st[p] = 0;
  for (long r = 0; r < rows; r++) st[pos[r] + 2]++;
  for (long p = 2; p <= npos + 1; p++) st[p] += st[p - 1];
  for (long r = 0; r < rows; r++) o[st[pos[r] + 1]++] = (int32_t)r;
  *order = o;
  *start = st;
}

static void gather_rows(float* dst, const float* src, const int32_t* rr, long c, long dim) {
  for (long i = 0; i < c; i++)
    __builtin_memcpy(dst + i * dim, src + (long)rr[i] * dim, (unsigned long)dim * sizeof(float));
}

// out[r,:] = W[pos[r]] x[r,:], W [npos, dout, din].
EXPORT(indexedLinear)
void wa_indexed_linear(float* out, const float* x, const float* w, const int32_t* pos, long rows, long din,
                       long dout, long npos) {
  int32_t *order, *start;
  group_rows(pos, rows, npos, &order, &start);
  for (long p = 0; p < npos; p++) {
    long c = start[p + 1] - start[p];
    if (c == 0) continue;
    const int32_t* rr = order + start[p];
    float* xg = scratch(&s_xg, c * din * 4);
    float* og = scratch(&s_og, c * dout * 4);
    gather_rows(xg, x, rr, c, din);
    Gemm g = {c, dout, din, xg, din, 1, w + p * dout * din, 1, din, og, dout, 0};
    gemm(&g);
    for (long i = 0; i < c; i++)
      __builtin_memcpy(out + (long)rr[i] * dout, og + i * dout, (unsigned long)dout * sizeof(float));
  }
}

// dx[r] += W[pos[r]]^T dout[r]; dW[pos[r]] += dout[r] x[r]^T.
EXPORT(indexedLinearBackward)
void wa_indexed_linear_backward(float* dx, float* dw, const float* dout_, const float* x, const float* w,
                                const int32_t* pos, long rows, long din, long dout,
                                long npos) {
  int32_t *order, *start;
  group_rows(pos, rows, npos, &order, &start);
  for (long p = 0; p < npos; p++) {
    long c = start[p + 1] - start[p];
    if (c == 0) continue;
    const int32_t* rr = order + start[p];
    float* gx = scratch(&s_xg, c * (dout + din) * 4);  // [c, dout] gradients then [c, din] inputs
    float* xg = gx + c * dout;
    float* dxg = scratch(&s_og, c * din * 4);
    gather_rows(gx, dout_, rr, c, dout);
    gather_rows(xg, x, rr, c, din);
    Gemm g1 = {c, din, dout, gx, dout, 1, w + p * dout * din, din, 1, dxg, din, 0};
    gemm(&g1);
    for (long i = 0; i < c; i++) wa_axpy(dx + (long)rr[i] * din, dxg + i * din, 1.f, din);
    Gemm g2 = {dout, din, c, gx, 1, dout, xg, din, 1, dw + p * dout * din, din, 1};
    gemm(&g2);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Cross-entropy through log-softmax

EXPORT(crossEntropy)
void wa_cross_entropy(float* loss, float* lse, const float* logits, const int32_t* t, long rows, long vocab) {
  for (long r = 0; r < rows; r++) {
    const float* x = logits + r * vocab;
    vf mx = vset(-__builtin_inff());
    long j = 0;
    for (; j + W <= vocab; j += W) mx = vmax(mx, vld(x + j));
    float m = vhmax(mx);
    for (; j < vocab; j++) m = x[j] > m ? x[j] : m;
    vf mv = vset(m), acc = vset(0.f);
    j = 0;
    for (; j + W <= vocab; j += W) acc = vadd(acc, vexp(vsub(vld(x + j), mv)));
    double s = vhsum(acc);
    for (; j < vocab; j++) s += expf_(x[j] - m);
    double l = (double)m + log_(s);
    lse[r] = (float)l;
    loss[r] = (float)(l - (double)x[t[r]]);
  }
}

EXPORT(crossEntropyBackward)
void wa_cross_entropy_backward(float* dl, const float* dloss, const float* logits, const float* lse,
                               const int32_t* t, long rows, long vocab) {
  for (long r = 0; r < rows; r++) {
    const float* x = logits + r * vocab;
    float* d = dl + r * vocab;
    float g = dloss[r], l = lse[r];
    vf gv = vset(g), lv = vset(l);
    long j = 0;
    for (; j + W <= vocab; j += W) vst(d + j, vmad(gv, vexp(vsub(vld(x + j), lv)), vld(d + j)));
    for (; j < vocab; j++) d[j] += g * expf_(x[j] - l);
    d[t[r]] -= g;
  }
}

// ---------------------------------------------------------------------------------------------------------
// AdamW (decoupled weight decay). The constants are derived in double by the caller: c1 = 1 - beta1,
// c2 = 1 - beta2, decay = 1 - lr wd, stepSize = lr / (1 - beta1^t), invBc2s = 1 / sqrt(1 - beta2^t).

typedef struct {
  float beta1, beta2, c1, c2, gradScale, decay, stepSize, invBc2s, eps;
} Adam;

static void adamw(float* p, const float* g, float* m, float* v, long n, const Adam* a) {
  vf b1 = vset(a->beta1), b2 = vset(a->beta2), c1 = vset(a->c1), c2 = vset(a->c2), gs = vset(a->gradScale),
     dec = vset(a->decay), ss = vset(a->stepSize), ib = vset(a->invBc2s), ep = vset(a->eps);
  long i = 0;
  for (; i + W <= n; i += W) {
    vf gi = vmul(vld(g + i), gs);
    vf mi = vmad(b1, vld(m + i), vmul(c1, gi));
    vf vi = vmad(b2, vld(v + i), vmul(vmul(c2, gi), gi));
    vst(m + i, mi);
    vst(v + i, vi);
    vf den = vmad(vsqrt(vi), ib, ep);
    vst(p + i, vsub(vmul(vld(p + i), dec), vdiv(vmul(ss, mi), den)));
  }
  for (; i < n; i++) {
    float gi = g[i] * a->gradScale;
    float mi = a->beta1 * m[i] + a->c1 * gi;
    float vi = a->beta2 * v[i] + a->c2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * a->decay - a->stepSize * mi / (__builtin_sqrtf(vi) * a->invBc2s + a->eps);
  }
}

EXPORT(adamw)
void wa_adamw(float* p, const float* g, float* m, float* v, long n, float beta1, float beta2, float c1, float c2,
              float gradScale, float decay, float stepSize, float invBc2s, float eps) {
  Adam a = {beta1, beta2, c1, c2, gradScale, decay, stepSize, invBc2s, eps};
  adamw(p, g, m, v, n, &a);
}
