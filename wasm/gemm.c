// GEMM, BLIS-style: op(A) and op(B) are described by element strides, so every transpose combination (and the
// strided tiles of attention and the indexed linear) goes through the same packing routines and one
// register-blocked micro-kernel of MR rows x NR columns (NR/4 vectors of 4 floats).
#include "aunet.h"
#include "simd.h"

// 2 x 16: 8 accumulators, 4 B vectors and a broadcast. Measured on this project's machine (Zen 5, Node 20,
// 256^3 and 192x256x512, best of 60): 2x16 ran at 45 GFLOP/s, 2x8 at 43, 1x16 at 35, 4x16 at 23 (V8's
// code generator maps wasm locals onto the 16 xmm registers of x86-64, and the larger tiles do not fit),
// which is close to this core's rate for separate 4-lane multiplies and adds.
#define MR 2
#define NV 4
#define NR (4 * NV)
#define KC 256
#define MC 64
#define NC 1024

static Scratch packA, packB;

// Packs an mc x kc block of op(A) into MR-row panels laid out [p][MR], zero-padding the last panel.
static void pack_a(long mc, long kc, const float* A, long rsa, long csa, float* __restrict Ap) {
  for (long i0 = 0; i0 < mc; i0 += MR) {
    long mr = lmin(MR, mc - i0);
    const float* a = A + i0 * rsa;
    for (long p = 0; p < kc; p++) {
      const float* ap = a + p * csa;
      float* dst = Ap + p * MR;
      long i = 0;
      for (; i < mr; i++) dst[i] = ap[i * rsa];
      for (; i < MR; i++) dst[i] = 0.f;
    }
    Ap += MR * kc;
  }
}

// Packs a kc x nc block of op(B) into NR-column panels laid out [p][NR], zero-padding the last panel.
static void pack_b(long kc, long nc, const float* B, long rsb, long csb, float* __restrict Bp) {
  for (long j0 = 0; j0 < nc; j0 += NR) {
    long nr = lmin(NR, nc - j0);
    const float* b = B + j0 * csb;
    if (csb == 1 && nr == NR) {
      for (long p = 0; p < kc; p++)
        for (int v = 0; v < NV; v++) vst(Bp + p * NR + 4 * v, vld(b + p * rsb + 4 * v));
    } else {
      // Transposed (or ragged) source: walk each column, which is contiguous when rsb == 1.
      for (long j = 0; j < nr; j++) {
        const float* bj = b + j * csb;
        for (long p = 0; p < kc; p++) Bp[p * NR + j] = bj[p * rsb];
      }
      for (long j = nr; j < NR; j++)
        for (long p = 0; p < kc; p++) Bp[p * NR + j] = 0.f;
    }
    Bp += NR * kc;
  }
}

// C[MR x NR] (+)= Ap panel x Bp panel over kc.
static inline void ukernel(long kc, const float* __restrict A, const float* __restrict B, float* __restrict C,
                           long ldc, int acc) {
  vf c[MR][NV];
  for (int i = 0; i < MR; i++)
    for (int v = 0; v < NV; v++) c[i][v] = vset(0.f);
  for (long p = 0; p < kc; p++) {
    vf b[NV];
    for (int v = 0; v < NV; v++) b[v] = vld(B + 4 * v);
    for (int i = 0; i < MR; i++) {
      vf a = wasm_v128_load32_splat(A + i);
      for (int v = 0; v < NV; v++) c[i][v] = vmad(a, b[v], c[i][v]);
    }
    A += MR;
    B += NR;
  }
  for (int i = 0; i < MR; i++)
    for (int v = 0; v < NV; v++) {
      float* cp = C + i * ldc + 4 * v;
      vst(cp, acc ? vadd(vld(cp), c[i][v]) : c[i][v]);
    }
}

static void macro_kernel(long mc, long nc, long kc, const float* Ap, const float* Bp, float* C, long ldc, int acc) {
  __attribute__((aligned(16))) float tile[MR * NR];
  for (long j0 = 0; j0 < nc; j0 += NR) {
    long nr = lmin(NR, nc - j0);
    const float* bp = Bp + (j0 / NR) * NR * kc;
    for (long i0 = 0; i0 < mc; i0 += MR) {
      long mr = lmin(MR, mc - i0);
      const float* ap = Ap + (i0 / MR) * MR * kc;
      float* c = C + i0 * ldc + j0;
      if (mr == MR && nr == NR) {
        ukernel(kc, ap, bp, c, ldc, acc);
      } else {
        ukernel(kc, ap, bp, tile, NR, 0);
        for (long i = 0; i < mr; i++)
          for (long j = 0; j < nr; j++) c[i * ldc + j] = acc ? c[i * ldc + j] + tile[i * NR + j] : tile[i * NR + j];
      }
    }
  }
}

// A few rows against B stored [n, k] (x W^T, as in every linear layer at generation time): packing the whole
// of B for one row would cost as much memory traffic as the product itself, so each output is a dot product
// of two contiguous vectors, in 4 vector accumulators (16 lanes).
#define SMALL_M 4
static void gemm_small_m_nt(const Gemm* g) {
  for (long j = 0; j < g->n; j++) {
    const float* b = g->B + j * g->csb;
    for (long i = 0; i < g->m; i++) {
      const float* a = g->A + i * g->rsa;
      vf s0 = vset(0.f), s1 = s0, s2 = s0, s3 = s0;
      long p = 0;
      for (; p + 16 <= g->k; p += 16) {
        s0 = vmad(vld(a + p), vld(b + p), s0);
        s1 = vmad(vld(a + p + 4), vld(b + p + 4), s1);
        s2 = vmad(vld(a + p + 8), vld(b + p + 8), s2);
        s3 = vmad(vld(a + p + 12), vld(b + p + 12), s3);
      }
      float s = vhsum(vadd(vadd(s0, s1), vadd(s2, s3)));
      for (; p < g->k; p++) s += a[p] * b[p];
      float* c = g->C + i * g->ldc + j;
      *c = g->acc ? *c + s : s;
    }
  }
}

void gemm(const Gemm* g) {
  if (g->m <= 0 || g->n <= 0) return;
  if (g->k <= 0) {
    if (!g->acc)
      for (long i = 0; i < g->m; i++) __builtin_memset(g->C + i * g->ldc, 0, (unsigned long)g->n * sizeof(float));
    return;
  }
  if (g->m <= SMALL_M && g->csa == 1 && g->rsb == 1) {
    gemm_small_m_nt(g);
    return;
  }
  long kcMax = lmin(KC, g->k);
  long mcMax = lmin(MC, ((g->m + MR - 1) / MR) * MR);
  long ncMax = lmin(NC, ((g->n + NR - 1) / NR) * NR);
  float* Ap = scratch(&packA, mcMax * kcMax * (long)sizeof(float));
  float* Bp = scratch(&packB, ncMax * kcMax * (long)sizeof(float));
  for (long jc = 0; jc < g->n; jc += NC) {
    long nc = lmin(NC, g->n - jc);
    for (long pc = 0; pc < g->k; pc += KC) {
      long kc = lmin(KC, g->k - pc);
      int acc = g->acc || pc > 0;
      pack_b(kc, nc, g->B + pc * g->rsb + jc * g->csb, g->rsb, g->csb, Bp);
      for (long ic = 0; ic < g->m; ic += MC) {
        long mc = lmin(MC, g->m - ic);
        pack_a(mc, kc, g->A + ic * g->rsa + pc * g->csa, g->rsa, g->csa, Ap);
        macro_kernel(mc, nc, kc, Ap, Bp, g->C + ic * g->ldc + jc, g->ldc, acc);
      }
    }
  }
}

// out[m,n] (+)= op(A)[m,k] op(B)[k,n]; A stored [k,m] when ta, B stored [n,k] when tb.
EXPORT(matmul)
void wa_matmul(float* C, const float* A, const float* B, long m, long n, long k, int ta, int tb, int acc) {
  Gemm g = {m, n, k, A, ta ? 1 : k, ta ? m : 1, B, tb ? 1 : n, tb ? k : 1, C, n, acc};
  gemm(&g);
}
