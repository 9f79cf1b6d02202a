// Declarations shared by the N-API layer (addon.cc), the thread pool (threadpool.cc) and the per-ISA kernel
// translation units (isa_*.cc). Kernels see raw pointers only: every size and index check happens in
// addon.cc before a kernel runs, so kernels never throw and never run on unchecked input.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernel_list.h"

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

// One set of kernels per instruction set; addon.cc picks the best one the CPU supports at load time. The members
// come from the kernel list (kernel_list.h).
struct Kernels {
  const char* isa;
  int mr, nr;  // GEMM micro-tile, reported for diagnostics
#define AUNET_KERNEL_MEMBER(name, ret, params) ret(*name) params;
  AUNET_ISA_KERNELS(AUNET_KERNEL_MEMBER)
#undef AUNET_KERNEL_MEMBER
};

const Kernels* kernels_generic();
#if defined(__x86_64__) || defined(_M_X64)
const Kernels* kernels_avx2();
const Kernels* kernels_avx512();
#endif

}  // namespace aunet
