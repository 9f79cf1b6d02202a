// AVX-512 kernels (16 lanes), including the 14x32 GEMM micro-kernel. Same pragma scheme as isa_avx2.cc.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "common.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")
#endif

namespace aunet {
namespace {

#define AUNET_ISA_NAME "avx512"

struct VF {
  __m512 v;
};
constexpr int W = 16;
static inline VF vld(const float* p) { return {_mm512_loadu_ps(p)}; }
static inline void vst(float* p, VF a) { _mm512_storeu_ps(p, a.v); }
static inline VF vld_n(const float* p, int n, float fill) {
  return {_mm512_mask_loadu_ps(_mm512_set1_ps(fill), (__mmask16)((1u << n) - 1), p)};
}
static inline void vst_n(float* p, VF a, int n) { _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), a.v); }
static inline VF vset(float x) { return {_mm512_set1_ps(x)}; }
static inline VF vadd(VF a, VF b) { return {_mm512_add_ps(a.v, b.v)}; }
static inline VF vsub(VF a, VF b) { return {_mm512_sub_ps(a.v, b.v)}; }
static inline VF vmul(VF a, VF b) { return {_mm512_mul_ps(a.v, b.v)}; }
static inline VF vdiv(VF a, VF b) { return {_mm512_div_ps(a.v, b.v)}; }
static inline VF vfma(VF a, VF b, VF c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
static inline VF vmax(VF a, VF b) { return {_mm512_max_ps(a.v, b.v)}; }
static inline VF vsqrt(VF a) { return {_mm512_sqrt_ps(a.v)}; }
static inline float vhsum(VF a) { return _mm512_reduce_add_ps(a.v); }
static inline float vhmax(VF a) { return _mm512_reduce_max_ps(a.v); }
// Cephes-style expf polynomial; scalef applies 2^n with correct gradual underflow, so very negative inputs
// (masked scores) come out as exactly 0.
static inline VF vexp(VF xv) {
  __m512 x = _mm512_min_ps(_mm512_max_ps(xv.v, _mm512_set1_ps(-110.0f)), _mm512_set1_ps(88.3762626647949f));
  __m512 fx = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
  x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), x);
  __m512 y = _mm512_set1_ps(1.9875691500E-4f);
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507E-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073E-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894E-2f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459E-1f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201E-1f));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
  return {_mm512_scalef_ps(y, fx)};
}

// x where lo <= d < hi, else other
static inline VF vsel_range(VF d, float lo, float hi, VF x, VF other) {
  __mmask16 m = _mm512_cmp_ps_mask(d.v, _mm512_set1_ps(lo), _CMP_GE_OQ) &
                _mm512_cmp_ps_mask(d.v, _mm512_set1_ps(hi), _CMP_LT_OQ);
  return {_mm512_mask_blend_ps(m, other.v, x.v)};
}

static inline double sum_d(const float* p, long n) {
  __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
  long i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 x = _mm512_loadu_ps(p + i);
    a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm512_castps512_ps256(x)));
    a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(x, 1)));
  }
  double s = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
  for (; i < n; i++) s += p[i];
  return s;
}
static inline double sumsq_d(const float* p, long n) {
  __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
  long i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 x = _mm512_loadu_ps(p + i);
    __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(x));
    __m512d hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(x, 1));
    a0 = _mm512_fmadd_pd(lo, lo, a0);
    a1 = _mm512_fmadd_pd(hi, hi, a1);
  }
  double s = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
  for (; i < n; i++) s += (double)p[i] * p[i];
  return s;
}

// 14x32 micro-tile: 28 zmm accumulators + 2 B vectors + 1 broadcast = 31 of the 32 registers. Each k step
// issues 28 FMAs against 2 vector loads and 14 broadcast loads, which the two load ports sustain.
constexpr int MR = 14, NR = 32;
constexpr long KC = 384, MC = 168, NC = 3072;

static inline void ukernel(long kc, const float* __restrict A, long lda, const float* __restrict B,
                           float* __restrict C, long ldc, bool acc) {
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 14
  for (int i = 0; i < MR; i++) {
    c0[i] = _mm512_setzero_ps();
    c1[i] = _mm512_setzero_ps();
  }
  for (long p = 0; p < kc; p++) {
    __m512 b0 = _mm512_load_ps(B), b1 = _mm512_load_ps(B + 16);
    _mm_prefetch((const char*)(B + 16 * 32), _MM_HINT_T0);
#pragma GCC unroll 14
    for (int i = 0; i < MR; i++) {
      __m512 a = _mm512_set1_ps(A[i]);
      c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
    }
    A += lda;
    B += NR;
  }
  if (acc) {
#pragma GCC unroll 14
    for (int i = 0; i < MR; i++) {
      float* cr = C + i * ldc;
      _mm512_storeu_ps(cr, _mm512_add_ps(c0[i], _mm512_loadu_ps(cr)));
      _mm512_storeu_ps(cr + 16, _mm512_add_ps(c1[i], _mm512_loadu_ps(cr + 16)));
    }
  } else {
#pragma GCC unroll 14
    for (int i = 0; i < MR; i++) {
      float* cr = C + i * ldc;
      _mm512_storeu_ps(cr, c0[i]);
      _mm512_storeu_ps(cr + 16, c1[i]);
    }
  }
}

#include "kernels.inc"

}  // namespace

const Kernels* kernels_avx512() { return &kTable; }

}  // namespace aunet

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif
