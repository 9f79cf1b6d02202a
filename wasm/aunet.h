// Declarations shared by the wasm kernel files. Every export takes byte offsets into the module's own linear
// memory (plain pointers here) and element counts; the TypeScript side (src/backends/wasm.ts) checks sizes and
// indices before calling, so kernels never see unchecked input.
#pragma once

#include <stdint.h>

#define EXPORT(name) __attribute__((export_name(#name)))

// ---- memory (mem.c) ----
void* mem_alloc(long bytes);
void mem_free(void* p, long bytes);

// A growable buffer owned by one kernel, reused between calls (no allocation in steady state).
typedef struct {
  void* p;
  long bytes;
} Scratch;
void* scratch(Scratch* s, long bytes);

// ---- GEMM (gemm.c) ----
// op(A)(i, p) = A[i*rsa + p*csa], op(B)(p, j) = B[p*rsb + j*csb], C(i, j) = C[i*ldc + j];
// C = op(A) op(B), or C += ... when acc.
typedef struct {
  long m, n, k;
  const float* A;
  long rsa, csa;
  const float* B;
  long rsb, csb;
  float* C;
  long ldc;
  int acc;
} Gemm;
void gemm(const Gemm* g);
