// The one list of kernels: each is declared here once, and everything else is generated from this list.
//
// AUNET_ISA_KERNELS(X): the per-instruction-set kernels, X(name, return type, (parameters)). It generates the
// function-pointer members of `Kernels` (common.h) and each ISA's table (kernels.inc: k_<name>), so a table
// entry is bound to its kernel by name; two kernels of the same type can no longer be swapped by position.
//
// AUNET_JS_KERNELS(X): the compute kernels the addon exports to JavaScript, X(name, signature). It generates
// the export table, the declarations of the N-API wrappers (K_<name>, addon.cc), the argument check that runs
// before each wrapper, and `kernelSignatures()`, which test/addon-kernels.test.ts compares with the TypeScript
// table that types the `Addon` interface (src/backends/native.ts). One letter per argument:
//   S storage   N number   I non-negative integer   B boolean   A Int32Array   P Int32Array or null
//   L array of storages
#pragma once

#define AUNET_ISA_KERNELS(X)                                                                                    \
  X(fill, void, (float* o, long n, float v))                                                                   \
  X(copy, void, (float* o, const float* a, long n))                                                            \
  X(add, void, (float* o, const float* a, const float* b, long n))                                             \
  X(axpy, void, (float* o, const float* a, float alpha, long n))                                               \
  X(scale, void, (float* o, const float* a, float alpha, long n))                                              \
  X(sum, double, (const float* a, long n))                                                                     \
  X(sumsq, double, (const float* a, long n))                                                                   \
  X(matmul, void, (float* c, const float* a, const float* b, long m, long n, long k, bool ta, bool tb, bool acc)) \
  X(gather, void, (float* out, const float* src, const int32_t* idx, long nidx, long dim))                     \
  X(scatter_add, void, (float* dst, const float* src, const int32_t* idx, long nidx, long dim))                \
  X(rmsnorm, void, (float* out, float* rstd, const float* x, const float* w, long rows, long dim, float eps))  \
  X(rmsnorm_bwd, void,                                                                                         \
    (float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd, long rows,    \
     long dim))                                                                                                \
  X(swiglu, void, (float* o, const float* a, const float* b, long n))                                          \
  X(swiglu_bwd, void, (float* da, float* db, const float* g, const float* a, const float* b, long n))          \
  X(rope, void,                                                                                                \
    (float* out, const float* x, const float* cs, const float* sn, long rows, long seq, long nh, long hd,      \
     const int32_t* pos, bool backward))                                                                       \
  X(attention, void,                                                                                           \
    (float* out, float* lse, const float* q, const float* k, const float* v, const AttnParams& p))             \
  X(attention_bwd, void,                                                                                       \
    (float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k, const float* v,       \
     const float* out, const float* lse, const AttnParams& p))                                                 \
  X(indexed_linear, void,                                                                                      \
    (float* out, const float* x, const float* w, const int32_t* pos, long rows, long din, long dout, long npos)) \
  X(indexed_linear_bwd, void,                                                                                  \
    (float* dx, float* dw, const float* g, const float* x, const float* w, const int32_t* pos, long rows,      \
     long din, long dout, long npos))                                                                          \
  X(cross_entropy, void, (float* loss, float* lse, const float* logits, const int32_t* t, long rows, long vocab)) \
  X(cross_entropy_bwd, void,                                                                                   \
    (float* dl, const float* dloss, const float* logits, const float* lse, const int32_t* t, long rows,        \
     long vocab))                                                                                              \
  X(adamw, void, (float* p, const float* g, float* m, float* v, long n, const AdamParams& ap))

#define AUNET_JS_KERNELS(X)                                                        \
  X(fill, "SN")                     /* (out, value) */                             \
  X(copy, "SS")                     /* (out, a) */                                 \
  X(add, "SSS")                     /* (out, a, b) */                              \
  X(axpy, "SSN")                    /* (out, a, alpha) */                          \
  X(scale, "SSN")                   /* (out, a, alpha) */                          \
  X(reduceSum, "SSN")               /* (out, a, alpha) */                          \
  X(broadcast, "SSN")               /* (out, a, alpha) */                          \
  X(copyRows, "SSIIII")             /* (dst, src, dim, rows, srcRow, dstRow) */    \
  X(matmul, "SSSIIIBBB")            /* (out, a, b, m, n, k, transA, transB, acc) */ \
  X(gather, "SSAI")                 /* (out, src, idx, dim) */                     \
  X(scatterAdd, "SSAI")             /* (dst, src, idx, dim) */                     \
  X(rmsnorm, "SSSSIN")              /* (out, rstd, x, w, dim, eps) */              \
  X(rmsnormBackward, "SSSSSSI")     /* (dx, dw, dout, x, w, rstd, dim) */          \
  X(swiglu, "SSS")                  /* (out, a, b) */                              \
  X(swigluBackward, "SSSSS")        /* (da, db, dout, a, b) */                     \
  X(rope, "SSSSIIIIPB")             /* (out, x, cos, sin, rows, seq, nHeads, headDim, positions, backward) */ \
  X(attention, "SSSSSIIIIIIIIN")    /* (out, lse, q, k, v, batch, sq, sk, nHeads, nKvHeads, headDim, qOffset, window, scale) */ \
  X(attentionBackward, "SSSSSSSSSIIIIIIIIN") /* (dq, dk, dv, dout, q, k, v, out, lse, ...attention params) */ \
  X(indexedLinear, "SSSAII")        /* (out, x, w, pos, dIn, dOut) */              \
  X(indexedLinearBackward, "SSSSSAII") /* (dx, dw, dout, x, w, pos, dIn, dOut) */  \
  X(crossEntropy, "SSSAI")          /* (loss, lse, logits, targets, vocab) */      \
  X(crossEntropyBackward, "SSSSAI") /* (dlogits, dloss, logits, lse, targets, vocab) */ \
  X(clipGradNorm, "SSLN")           /* (norm, scale, grads, maxNorm) */            \
  X(adamw, "SSSSNNNNNIS")           /* (param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, gradScale) */
