// Fused causal attention (FlashAttention-2 style): scores exist only as one [query block x key block] tile at a
// time, with an online softmax in the forward and recomputation from the saved log-sum-exp in the backward.
// q [B,Sq,H,hd], k/v [B,Sk,Hkv,hd]; query head h reads kv head h / (H/Hkv); query i sits at position
// qoff + i and sees keys j with 0 <= qoff + i - j < window (window 0: unbounded).
#include "aunet.h"
#include "simd.h"

typedef struct {
  long batch, sq, sk, nh, nkv, hd, qoff, window;
  float scale;
} Attn;

#define QB 64  // queries per tile
#define KB 64  // keys per tile

static Scratch s_S, s_P, s_O, s_D;

// Keys visible to query position qpos: [lo, hi] (empty when hi < lo).
static inline void key_range(const Attn* P, long qpos, long* lo, long* hi) {
  *hi = lmin(qpos, P->sk - 1);
  *lo = P->window > 0 ? lmax(0, qpos - P->window + 1) : 0;
}

static float dot(const float* a, const float* b, long n) {
  vf s0 = vset(0.f), s1 = s0;
  long p = 0;
  for (; p + 8 <= n; p += 8) {
    s0 = vmad(vld(a + p), vld(b + p), s0);
    s1 = vmad(vld(a + p + 4), vld(b + p + 4), s1);
  }
  float s = vhsum(vadd(s0, s1));
  for (; p < n; p++) s += a[p] * b[p];
  return s;
}

// o += alpha * a over n elements.
static void axpy(float* o, const float* a, float alpha, long n) {
  vf al = vset(alpha);
  long p = 0;
  for (; p + W <= n; p += W) vst(o + p, vmad(al, vld(a + p), vld(o + p)));
  for (; p < n; p++) o[p] += alpha * a[p];
}

// A handful of queries (generation: one new position against the cache). Packing tiles of the key/value
// cache for them would cost more than the attention itself, so each query reads K and V in place.
#define SMALL_SQ 4
static void attention_small_sq(float* out, float* lse, const float* q, const float* k, const float* v,
                               const Attn* P) {
  const long H = P->nh, Hkv = P->nkv, hd = P->hd, group = H / Hkv, krs = Hkv * hd;
  float* S = scratch(&s_S, P->sk * 4);
  float* acc = scratch(&s_O, hd * 4);
  for (long b = 0; b < P->batch; b++)
    for (long h = 0; h < H; h++)
      for (long i = 0; i < P->sq; i++) {
        long lo, hi;
        key_range(P, P->qoff + i, &lo, &hi);
        const float* qv = q + ((b * P->sq + i) * H + h) * hd;
        float* o = out + ((b * P->sq + i) * H + h) * hd;
        float* l = lse + (b * H + h) * P->sq + i;
        if (hi < lo) {
          for (long u = 0; u < hd; u++) o[u] = 0.f;
          *l = -__builtin_inff();
          continue;
        }
        const float* kb = k + (b * P->sk * Hkv + h / group) * hd;
        const float* vb = v + (b * P->sk * Hkv + h / group) * hd;
        float m = -__builtin_inff();
        for (long j = lo; j <= hi; j++) {
          S[j] = dot(qv, kb + j * krs, hd) * P->scale;
          m = S[j] > m ? S[j] : m;
        }
        for (long u = 0; u < hd; u++) acc[u] = 0.f;
        double den = 0;
        for (long j = lo; j <= hi; j++) {
          float e = expf_(S[j] - m);
          den += e;
          axpy(acc, vb + j * krs, e, hd);
        }
        float inv = (float)(1.0 / den);
        for (long u = 0; u < hd; u++) o[u] = acc[u] * inv;
        *l = (float)((double)m + log_(den));
      }
}

// One query block [i0, i0 + bq) of one (batch, head): S = Q K^T per key tile, online softmax along each row,
// O += P V. mq/lq: running max and sum per query row.
static void attention_block(float* out, float* lse, const float* q, const float* k, const float* v,
                            const Attn* P, long b, long h, long i0, long bq) {
  const long H = P->nh, Hkv = P->nkv, hd = P->hd, kh = h / (H / Hkv), qrs = H * hd, krs = Hkv * hd;
  float* S = scratch(&s_S, QB * KB * 4);
  float* O = scratch(&s_O, QB * hd * 4);
  float mq[QB], lq[QB];
  for (long i = 0; i < bq; i++) mq[i] = -1e30f, lq[i] = 0.f;  // finite: exp(m_old - m_new) never sees inf - inf
  __builtin_memset(O, 0, (unsigned long)(bq * hd) * 4);
  const float* qp = q + ((b * P->sq + i0) * H + h) * hd;
  const float* kp = k + (b * P->sk * Hkv + kh) * hd;
  const float* vp = v + (b * P->sk * Hkv + kh) * hd;
  long klo, khi, dummy;
  key_range(P, P->qoff + i0, &klo, &dummy);
  key_range(P, P->qoff + i0 + bq - 1, &dummy, &khi);
  for (long j0 = klo; j0 <= khi; j0 += KB) {
    long bk = lmin(KB, khi - j0 + 1);
    Gemm gs = {bq, bk, hd, qp, qrs, 1, kp + j0 * krs, 1, krs, S, KB, 0};
    gemm(&gs);
    for (long i = 0; i < bq; i++) {
      float* s = S + i * KB;
      long lo, hi;
      key_range(P, P->qoff + i0 + i, &lo, &hi);
      long a = lmax(lo, j0) - j0, e = lmin(hi, j0 + bk - 1) - j0 + 1;
      for (long j = 0; j < a; j++) s[j] = 0.f;
      for (long j = lmax(e, a); j < bk; j++) s[j] = 0.f;
      if (e <= a) continue;
      vf sc = vset(P->scale), mx = vset(mq[i]);
      long j = a;
      for (; j + W <= e; j += W) {
        vf x = vmul(vld(s + j), sc);
        vst(s + j, x);
        mx = vmax(mx, x);
      }
      float m = vhmax(mx);
      for (; j < e; j++) {
        s[j] *= P->scale;
        m = s[j] > m ? s[j] : m;
      }
      vf mv = vset(m), sum = vset(0.f);
      j = a;
      for (; j + W <= e; j += W) {
        vf p = vexp(vsub(vld(s + j), mv));
        vst(s + j, p);
        sum = vadd(sum, p);
      }
      float t = vhsum(sum);
      for (; j < e; j++) {
        s[j] = expf_(s[j] - m);
        t += s[j];
      }
      float alpha = expf_(mq[i] - m);
      mq[i] = m;
      lq[i] = lq[i] * alpha + t;
      if (alpha != 1.f) {
        float* o = O + i * hd;
        long u = 0;
        for (; u + W <= hd; u += W) vst(o + u, vmul(vld(o + u), vset(alpha)));
        for (; u < hd; u++) o[u] *= alpha;
      }
    }
    Gemm gv = {bq, hd, bk, S, KB, 1, vp + j0 * krs, krs, 1, O, hd, 1};
    gemm(&gv);
  }
  for (long i = 0; i < bq; i++) {
    float* dst = out + ((b * P->sq + i0 + i) * H + h) * hd;
    float* L = lse + (b * H + h) * P->sq + i0 + i;
    if (lq[i] > 0.f) {
      float inv = 1.f / lq[i];
      for (long u = 0; u < hd; u++) dst[u] = O[i * hd + u] * inv;
      *L = (float)((double)mq[i] + log_((double)lq[i]));
    } else {
      for (long u = 0; u < hd; u++) dst[u] = 0.f;
      *L = -__builtin_inff();
    }
  }
}

static void attention(float* out, float* lse, const float* q, const float* k, const float* v, const Attn* P) {
  if (P->sq <= SMALL_SQ) {
    attention_small_sq(out, lse, q, k, v, P);
    return;
  }
  for (long b = 0; b < P->batch; b++)
    for (long h = 0; h < P->nh; h++)
      for (long i0 = 0; i0 < P->sq; i0 += QB) attention_block(out, lse, q, k, v, P, b, h, i0, lmin(QB, P->sq - i0));
}

// Backward of one (batch, kv head): it owns dK/dV of that head and dQ of the query heads reading it. Per key
// tile and query tile: S = Q K^T, dP = dO V^T, P = exp(scale S - lse), dS = P (dP - D) scale, then
// dV += P^T dO, dQ += dS K, dK += dS^T Q, where D_i = dO_i . O_i.
static void attention_backward_head(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                    const float* k, const float* v, const float* out, const float* lse,
                                    const Attn* P, long b, long kh) {
  const long H = P->nh, Hkv = P->nkv, hd = P->hd, group = H / Hkv, qrs = H * hd, krs = Hkv * hd;
  float* S = scratch(&s_S, QB * KB * 4);
  float* dP = scratch(&s_P, QB * KB * 4);
  float* D = scratch(&s_D, group * P->sq * 4);
  for (long hh = 0; hh < group; hh++)
    for (long i = 0; i < P->sq; i++) {
      long off = ((b * P->sq + i) * H + kh * group + hh) * hd;
      D[hh * P->sq + i] = dot(out + off, dout + off, hd);
    }
  const float* kp = k + (b * P->sk * Hkv + kh) * hd;
  const float* vp = v + (b * P->sk * Hkv + kh) * hd;
  float* dkp = dk + (b * P->sk * Hkv + kh) * hd;
  float* dvp = dv + (b * P->sk * Hkv + kh) * hd;
  for (long j0 = 0; j0 < P->sk; j0 += KB) {
    long bk = lmin(KB, P->sk - j0);
    // Queries that see any key of [j0, j0 + bk): qpos in [j0, j0 + bk - 1 + window - 1].
    long ilo = lmax(0, j0 - P->qoff), ihi = P->sq - 1;
    if (P->window > 0) ihi = lmin(ihi, j0 + bk - 1 + P->window - 1 - P->qoff);
    for (long hh = 0; hh < group; hh++) {
      long h = kh * group + hh;
      for (long i0 = ilo; i0 <= ihi; i0 += QB) {
        long bq = lmin(QB, ihi - i0 + 1);
        const float* qp = q + ((b * P->sq + i0) * H + h) * hd;
        const float* gp = dout + ((b * P->sq + i0) * H + h) * hd;
        float* dqp = dq + ((b * P->sq + i0) * H + h) * hd;
        const float* L = lse + (b * H + h) * P->sq + i0;
        const float* Di = D + hh * P->sq + i0;
        Gemm gs = {bq, bk, hd, qp, qrs, 1, kp + j0 * krs, 1, krs, S, KB, 0};
        gemm(&gs);
        Gemm gd = {bq, bk, hd, gp, qrs, 1, vp + j0 * krs, 1, krs, dP, KB, 0};
        gemm(&gd);
        int any = 0;
        for (long i = 0; i < bq; i++) {
          float* srow = S + i * KB;
          float* drow = dP + i * KB;
          long lo, hi;
          key_range(P, P->qoff + i0 + i, &lo, &hi);
          long a = lmax(lo, j0) - j0, e = lmin(hi, j0 + bk - 1) - j0 + 1;
          for (long j = 0; j < bk; j++)
            if (j < a || j >= e) srow[j] = drow[j] = 0.f;
          if (e <= a) continue;
          any = 1;
          vf sc = vset(P->scale), lv = vset(L[i]), dv_ = vset(Di[i]);
          long j = a;
          for (; j + W <= e; j += W) {
            vf pr = vexp(vsub(vmul(vld(srow + j), sc), lv));
            vst(srow + j, pr);
            vst(drow + j, vmul(vmul(pr, vsub(vld(drow + j), dv_)), sc));
          }
          for (; j < e; j++) {
            float pr = expf_(srow[j] * P->scale - L[i]);
            srow[j] = pr;
            drow[j] = pr * (drow[j] - Di[i]) * P->scale;
          }
        }
        if (!any) continue;
        Gemm g1 = {bk, hd, bq, S, 1, KB, gp, qrs, 1, dvp + j0 * krs, krs, 1};
        gemm(&g1);
        Gemm g2 = {bq, hd, bk, dP, KB, 1, kp + j0 * krs, krs, 1, dqp, qrs, 1};
        gemm(&g2);
        Gemm g3 = {bk, hd, bq, dP, 1, KB, qp, qrs, 1, dkp + j0 * krs, krs, 1};
        gemm(&g3);
      }
    }
  }
}

EXPORT(attention)
void wa_attention(float* out, float* lse, const float* q, const float* k, const float* v, long batch, long sq,
                  long sk, long nh, long nkv, long hd, long qoff, long window, float scale) {
  Attn P = {batch, sq, sk, nh, nkv, hd, qoff, window, scale};
  attention(out, lse, q, k, v, &P);
}

EXPORT(attentionBackward)
void wa_attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                           const float* v, const float* out, const float* lse, long batch, long sq, long sk,
                           long nh, long nkv, long hd, long qoff, long window, float scale) {
  Attn P = {batch, sq, sk, nh, nkv, hd, qoff, window, scale};
  for (long b = 0; b < batch; b++)
    for (long kh = 0; kh < nkv; kh++) attention_backward_head(dq, dk, dv, dout, q, k, v, out, lse, &P, b, kh);
}
