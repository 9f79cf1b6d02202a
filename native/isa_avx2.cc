// AVX2 + FMA kernels (8 lanes). Compiled with a target pragma placed after every standard header, so only
// this file's own functions (all with internal linkage) use the extended ISA: no inline library function
// compiled for AVX2 can be picked by the linker for code that runs on an older CPU.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "common.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

namespace aunet {
namespace {

#define AUNET_ISA_NAME "avx2"

struct VF {
  __m256 v;
};
constexpr int W = 8;
static inline VF vld(const float* p) { return {_mm256_loadu_ps(p)}; }
static inline void vst(float* p, VF a) { _mm256_storeu_ps(p, a.v); }
static inline __m256i tail_mask(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline VF vld_n(const float* p, int n, float fill) {
  __m256i m = tail_mask(n);
  __m256 x = _mm256_maskload_ps(p, m);
  return {_mm256_blendv_ps(_mm256_set1_ps(fill), x, _mm256_castsi256_ps(m))};
}
static inline void vst_n(float* p, VF a, int n) { _mm256_maskstore_ps(p, tail_mask(n), a.v); }
static inline VF vset(float x) { return {_mm256_set1_ps(x)}; }
static inline VF vadd(VF a, VF b) { return {_mm256_add_ps(a.v, b.v)}; }
static inline VF vsub(VF a, VF b) { return {_mm256_sub_ps(a.v, b.v)}; }
static inline VF vmul(VF a, VF b) { return {_mm256_mul_ps(a.v, b.v)}; }
static inline VF vdiv(VF a, VF b) { return {_mm256_div_ps(a.v, b.v)}; }
static inline VF vfma(VF a, VF b, VF c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
static inline VF vmax(VF a, VF b) { return {_mm256_max_ps(a.v, b.v)}; }
static inline VF vsqrt(VF a) { return {_mm256_sqrt_ps(a.v)}; }
static inline float vhsum(VF a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
static inline float vhmax(VF a) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
// Cephes-style expf (about 1 ulp on the clamped range). Inputs below -87.3 give exactly 0, which the
// masked-out scores of attention rely on.
static inline VF vexp(VF xv) {
  __m256 x = xv.v;
  __m256 under = _mm256_cmp_ps(x, _mm256_set1_ps(-87.33654f), _CMP_LT_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.33654f)), _mm256_set1_ps(88.3762626647949f));
  __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
  __m256 y = _mm256_set1_ps(1.9875691500E-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507E-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073E-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894E-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459E-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201E-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
  y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
  return {_mm256_andnot_ps(under, y)};
}

// x where lo <= d < hi, else other
static inline VF vsel_range(VF d, float lo, float hi, VF x, VF other) {
  __m256 m = _mm256_and_ps(_mm256_cmp_ps(d.v, _mm256_set1_ps(lo), _CMP_GE_OQ),
                           _mm256_cmp_ps(d.v, _mm256_set1_ps(hi), _CMP_LT_OQ));
  return {_mm256_blendv_ps(other.v, x.v, m)};
}

static inline double sum_d(const float* p, long n) {
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
  long i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 x = _mm256_loadu_ps(p + i);
    a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(x)));
    a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)));
  }
  double t[4];
  _mm256_storeu_pd(t, _mm256_add_pd(a0, a1));
  double s = (t[0] + t[1]) + (t[2] + t[3]);
  for (; i < n; i++) s += p[i];
  return s;
}
static inline double sumsq_d(const float* p, long n) {
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
  long i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 x = _mm256_loadu_ps(p + i);
    __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(x));
    __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1));
    a0 = _mm256_fmadd_pd(lo, lo, a0);
    a1 = _mm256_fmadd_pd(hi, hi, a1);
  }
  double t[4];
  _mm256_storeu_pd(t, _mm256_add_pd(a0, a1));
  double s = (t[0] + t[1]) + (t[2] + t[3]);
  for (; i < n; i++) s += (double)p[i] * p[i];
  return s;
}

// 6x16 micro-tile: 12 accumulators + 2 B vectors + 1 broadcast fit the 16 ymm registers.
constexpr int MR = 6, NR = 16;
constexpr long KC = 256, MC = 120, NC = 2048;

static inline void ukernel(long kc, const float* __restrict A, long lda, const float* __restrict B,
                           float* __restrict C, long ldc, bool acc) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
         c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (long p = 0; p < kc; p++) {
    __m256 b0 = _mm256_load_ps(B), b1 = _mm256_load_ps(B + 8);
    __m256 a;
    a = _mm256_broadcast_ss(A + 0);
    c00 = _mm256_fmadd_ps(a, b0, c00);
    c01 = _mm256_fmadd_ps(a, b1, c01);
    a = _mm256_broadcast_ss(A + 1);
    c10 = _mm256_fmadd_ps(a, b0, c10);
    c11 = _mm256_fmadd_ps(a, b1, c11);
    a = _mm256_broadcast_ss(A + 2);
    c20 = _mm256_fmadd_ps(a, b0, c20);
    c21 = _mm256_fmadd_ps(a, b1, c21);
    a = _mm256_broadcast_ss(A + 3);
    c30 = _mm256_fmadd_ps(a, b0, c30);
    c31 = _mm256_fmadd_ps(a, b1, c31);
    a = _mm256_broadcast_ss(A + 4);
    c40 = _mm256_fmadd_ps(a, b0, c40);
    c41 = _mm256_fmadd_ps(a, b1, c41);
    a = _mm256_broadcast_ss(A + 5);
    c50 = _mm256_fmadd_ps(a, b0, c50);
    c51 = _mm256_fmadd_ps(a, b1, c51);
    A += lda;
    B += NR;
  }
#define AUNET_ST(r, x0, x1)                                                       \
  {                                                                               \
    float* cr = C + (r) * ldc;                                                    \
    if (acc) {                                                                    \
      x0 = _mm256_add_ps(x0, _mm256_loadu_ps(cr));                                \
      x1 = _mm256_add_ps(x1, _mm256_loadu_ps(cr + 8));                            \
    }                                                                             \
    _mm256_storeu_ps(cr, x0);                                                     \
    _mm256_storeu_ps(cr + 8, x1);                                                 \
  }
  AUNET_ST(0, c00, c01)
  AUNET_ST(1, c10, c11)
  AUNET_ST(2, c20, c21)
  AUNET_ST(3, c30, c31)
  AUNET_ST(4, c40, c41)
  AUNET_ST(5, c50, c51)
#undef AUNET_ST
}

#include "kernels.inc"

}  // namespace

const Kernels* kernels_avx2() { return &kTable; }

}  // namespace aunet

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif
