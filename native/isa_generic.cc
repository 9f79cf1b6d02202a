// Portable kernels: plain C++ (the compiler may still auto-vectorise for the baseline ISA). Used on CPUs
// without AVX2+FMA and on non-x86 machines.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common.h"

namespace aunet {
namespace {

#define AUNET_ISA_NAME "generic"

// A one-lane "vector": the shared kernel code is written against this small interface.
struct VF {
  float v;
};
constexpr int W = 1;
static inline VF vld(const float* p) { return {*p}; }
static inline void vst(float* p, VF a) { *p = a.v; }
static inline VF vld_n(const float* p, int n, float fill) { return {n > 0 ? *p : fill}; }
static inline void vst_n(float* p, VF a, int n) {
  if (n > 0) *p = a.v;
}
static inline VF vset(float x) { return {x}; }
static inline VF vadd(VF a, VF b) { return {a.v + b.v}; }
static inline VF vsub(VF a, VF b) { return {a.v - b.v}; }
static inline VF vmul(VF a, VF b) { return {a.v * b.v}; }
static inline VF vdiv(VF a, VF b) { return {a.v / b.v}; }
static inline VF vfma(VF a, VF b, VF c) { return {a.v * b.v + c.v}; }
static inline VF vmax(VF a, VF b) { return {a.v > b.v ? a.v : b.v}; }
static inline VF vsqrt(VF a) { return {std::sqrt(a.v)}; }
static inline float vhsum(VF a) { return a.v; }
static inline float vhmax(VF a) { return a.v; }
static inline VF vexp(VF a) { return {std::exp(a.v)}; }
// x where lo <= d < hi, else other
static inline VF vsel_range(VF d, float lo, float hi, VF x, VF other) { return d.v >= lo && d.v < hi ? x : other; }

static inline double sum_d(const float* p, long n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  long i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += p[i];
    s1 += p[i + 1];
    s2 += p[i + 2];
    s3 += p[i + 3];
  }
  for (; i < n; i++) s0 += p[i];
  return (s0 + s1) + (s2 + s3);
}
static inline double sumsq_d(const float* p, long n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  long i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += (double)p[i] * p[i];
    s1 += (double)p[i + 1] * p[i + 1];
    s2 += (double)p[i + 2] * p[i + 2];
    s3 += (double)p[i + 3] * p[i + 3];
  }
  for (; i < n; i++) s0 += (double)p[i] * p[i];
  return (s0 + s1) + (s2 + s3);
}

// GEMM micro-tile: small enough for 16 SSE/NEON registers once the compiler vectorises the j loops.
constexpr int MR = 4, NR = 16;
constexpr long KC = 256, MC = 128, NC = 2048;

static inline void ukernel(long kc, const float* __restrict A, long lda, const float* __restrict B,
                           float* __restrict C, long ldc, bool acc) {
  float c[MR][NR];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) c[i][j] = 0.f;
  for (long p = 0; p < kc; p++) {
    for (int i = 0; i < MR; i++) {
      float a = A[i];
      for (int j = 0; j < NR; j++) c[i][j] += a * B[j];
    }
    A += lda;
    B += NR;
  }
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) C[i * ldc + j] = acc ? C[i * ldc + j] + c[i][j] : c[i][j];
}

#include "kernels.inc"

}  // namespace

const Kernels* kernels_generic() { return &kTable; }

}  // namespace aunet
