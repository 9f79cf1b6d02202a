// Declarations shared by the N-API layer (addon.cc), the thread pool (threadpool.cc) and the per-ISA kernel
// translation units (isa_*.cc). Kernels see raw pointers only: every size and index check happens in
// addon.cc before a kernel runs, so kernels never throw and never run on unchecked input.
#pragma once

#include <cstddef>
#include <cstdint>

namespace aunet {

// ---- thread pool (threadpool.cc) ----

// Runs fn over chunks [c*grain, min(n, (c+1)*grain)) of [0, n). Chunks are handed out dynamically, so a
// kernel whose result must not depend on the schedule writes per-chunk results and combines them in chunk
// order. Calls made from inside a running task run serially on the calling thread (no nested parallelism).
typedef void (*TaskFn)(void* ctx, long begin, long end);
void pool_run(long n, long grain, TaskFn fn, void* ctx);
int pool_threads();
void pool_set_threads(int n);
void pool_shutdown();
bool pool_in_task();

// ---- aligned scratch memory ----
void* aligned_malloc(size_t bytes);
void aligned_free(void* p);

// ---- kernel parameter blocks ----
struct AttnParams {
  long batch, sq, sk, nh, nkv, hd, qoff, window;
  float scale;
};

struct AdamParams {
  // Derived in double by the caller, then used in float by the kernel.
  float beta1, beta2, one_minus_beta1, one_minus_beta2, grad_scale, decay, step_size, inv_bc2s, eps;
};

// One set of kernels per instruction set; addon.cc picks the best one the CPU supports at load time.
struct Kernels {
  const char* isa;
  int mr, nr;  // GEMM micro-tile, reported for diagnostics
  void (*fill)(float* o, long n, float v);
  void (*copy)(float* o, const float* a, long n);
  void (*add)(float* o, const float* a, const float* b, long n);
  void (*axpy)(float* o, const float* a, float alpha, long n);
  void (*scale)(float* o, const float* a, float alpha, long n);
  double (*sum)(const float* a, long n);
  double (*sumsq)(const float* a, long n);
  void (*matmul)(float* c, const float* a, const float* b, long m, long n, long k, bool ta, bool tb, bool acc);
  void (*gather)(float* out, const float* src, const int32_t* idx, long nidx, long dim);
  void (*scatter_add)(float* dst, const float* src, const int32_t* idx, long nidx, long dim);
  void (*rmsnorm)(float* out, float* rstd, const float* x, const float* w, long rows, long dim, float eps);
  void (*rmsnorm_bwd)(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd,
                      long rows, long dim);
  void (*swiglu)(float* o, const float* a, const float* b, long n);
  void (*swiglu_bwd)(float* da, float* db, const float* g, const float* a, const float* b, long n);
  void (*rope)(float* out, const float* x, const float* cs, const float* sn, long rows, long seq, long nh, long hd,
               const int32_t* pos, bool backward);
  void (*attention)(float* out, float* lse, const float* q, const float* k, const float* v, const AttnParams& p);
  void (*attention_bwd)(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, const AttnParams& p);
  void (*indexed_linear)(float* out, const float* x, const float* w, const int32_t* pos, long rows, long din,
                         long dout, long npos);
  void (*indexed_linear_bwd)(float* dx, float* dw, const float* g, const float* x, const float* w,
                             const int32_t* pos, long rows, long din, long dout, long npos);
  void (*cross_entropy)(float* loss, float* lse, const float* logits, const int32_t* t, long rows, long vocab);
  void (*cross_entropy_bwd)(float* dl, const float* dloss, const float* logits, const float* lse, const int32_t* t,
                            long rows, long vocab);
  void (*adamw)(float* p, const float* g, float* m, float* v, long n, const AdamParams& ap);
};

const Kernels* kernels_generic();
#if defined(__x86_64__) || defined(_M_X64)
const Kernels* kernels_avx2();
const Kernels* kernels_avx512();
#endif

}  // namespace aunet
