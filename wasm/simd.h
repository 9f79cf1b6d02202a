// The 128-bit vector vocabulary every kernel is written in (wasm SIMD: 4 float lanes), plus the few scalar
// maths functions a freestanding build has to bring itself (there is no libm: -nostdlib).
#pragma once

#include <stdint.h>
#include <wasm_simd128.h>

typedef v128_t vf;
#define W 4

static inline vf vld(const float* p) { return wasm_v128_load(p); }
static inline void vst(float* p, vf a) { wasm_v128_store(p, a); }
static inline vf vset(float x) { return wasm_f32x4_splat(x); }
static inline vf vadd(vf a, vf b) { return wasm_f32x4_add(a, b); }
static inline vf vsub(vf a, vf b) { return wasm_f32x4_sub(a, b); }
static inline vf vmul(vf a, vf b) { return wasm_f32x4_mul(a, b); }
static inline vf vdiv(vf a, vf b) { return wasm_f32x4_div(a, b); }
// No fused multiply-add in baseline wasm SIMD (relaxed SIMD's is allowed to differ between engines): a
// rounded multiply, then a rounded add.
static inline vf vmad(vf a, vf b, vf c) { return wasm_f32x4_add(wasm_f32x4_mul(a, b), c); }
// pmax is the plain compare-and-select (x86 maxps): no NaN canonicalisation, so it is one instruction.
static inline vf vmax(vf a, vf b) { return wasm_f32x4_pmax(a, b); }
static inline vf vsqrt(vf a) { return wasm_f32x4_sqrt(a); }

static inline float vhsum(vf a) {
  return (wasm_f32x4_extract_lane(a, 0) + wasm_f32x4_extract_lane(a, 1)) +
         (wasm_f32x4_extract_lane(a, 2) + wasm_f32x4_extract_lane(a, 3));
}
static inline float vhmax(vf a) {
  float x = wasm_f32x4_extract_lane(a, 0), y = wasm_f32x4_extract_lane(a, 1);
  float z = wasm_f32x4_extract_lane(a, 2), w = wasm_f32x4_extract_lane(a, 3);
  float m = x > y ? x : y, n = z > w ? z : w;
  return m > n ? m : n;
}

// Cephes-style expf (about 1 ulp on the clamped range). Inputs below -87.3 give exactly 0, which masked
// attention scores rely on.
static inline vf vexp(vf x) {
  const vf lo = vset(-87.33654f), hi = vset(88.3762626647949f);
  v128_t under = wasm_f32x4_lt(x, lo);
  x = wasm_f32x4_pmin(wasm_f32x4_pmax(x, lo), hi);
  vf fx = wasm_f32x4_nearest(vmul(x, vset(1.44269504088896341f)));
  x = vsub(x, vmul(fx, vset(0.693359375f)));
  x = vsub(x, vmul(fx, vset(-2.12194440e-4f)));
  vf y = vset(1.9875691500E-4f);
  y = vmad(y, x, vset(1.3981999507E-3f));
  y = vmad(y, x, vset(8.3334519073E-3f));
  y = vmad(y, x, vset(4.1665795894E-2f));
  y = vmad(y, x, vset(1.6666665459E-1f));
  y = vmad(y, x, vset(5.0000001201E-1f));
  y = vmad(y, vmul(x, x), vadd(x, vset(1.0f)));
  v128_t e = wasm_i32x4_shl(wasm_i32x4_add(wasm_i32x4_trunc_sat_f32x4(fx), wasm_i32x4_splat(127)), 23);
  y = vmul(y, e);
  return wasm_v128_andnot(y, under);
}

static inline float expf_(float x) { return wasm_f32x4_extract_lane(vexp(vset(x)), 0); }

// Natural logarithm in double precision: x = 2^e m with m in [sqrt(1/2), sqrt(2)), then
// log m = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.172, whose odd series reaches 1e-17 by s^23.
static inline double log_(double x) {
  if (!(x > 0)) return x == 0 ? -__builtin_inf() : __builtin_nan("");
  if (x == __builtin_inf()) return x;
  union {
    double d;
    uint64_t u;
  } b = {x};
  int e = (int)((b.u >> 52) & 0x7ff) - 1023;
  if (e == -1023) {  // subnormal: scale into the normal range first
    b.d = x * 18014398509481984.0;  // 2^54
    e = (int)((b.u >> 52) & 0x7ff) - 1023 - 54;
  }
  b.u = (b.u & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;  // m in [1, 2)
  double m = b.d;
  if (m > 1.4142135623730951) {
    m *= 0.5;
    e += 1;
  }
  double s = (m - 1) / (m + 1), s2 = s * s, t = 0;
  for (int k = 23; k >= 3; k -= 2) t = (t + 1.0 / k) * s2;
  return e * 0.6931471805599453 + 2 * s * (1 + t);
}

static inline long lmin(long a, long b) { return a < b ? a : b; }
static inline long lmax(long a, long b) { return a > b ? a : b; }
