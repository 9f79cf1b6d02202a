// A persistent thread pool: the calling (JS main) thread always takes part, so n threads means n-1 workers.
// Workers spin briefly after a job before sleeping on a condition variable: kernels arrive in quick
// succession during training, and a futex wake per kernel would cost more than many small kernels.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "common.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
static inline void cpu_relax() { _mm_pause(); }
#elif defined(__aarch64__)
static inline void cpu_relax() { asm volatile("yield"); }
#else
static inline void cpu_relax() {}
#endif

namespace aunet {

void* aligned_malloc(size_t bytes) {
  size_t rounded = (bytes + 63) & ~size_t(63);
  if (rounded == 0) rounded = 64;
  return std::aligned_alloc(64, rounded);
}
void aligned_free(void* p) { std::free(p); }

namespace {

struct Job {
  TaskFn fn;
  void* ctx;
  long n, grain, nchunks;
  std::atomic<long> next;
};

// Everything is heap-allocated and never destroyed by static destructors: Node may call exit() while
// workers sleep, and destroying a joinable std::thread would abort. pool_shutdown (an env cleanup hook)
// joins them instead.
//
// Job hand-off. `state` holds (job generation << 32 | workers inside the job). A worker must join (CAS the
// count up while the generation still matches) before it touches the job, and the caller closes the job
// (CAS to 0) once every chunk is taken and no joined worker remains. So the caller never waits for a worker
// that has not woken up yet (on a loaded machine it may not run for milliseconds): the caller then simply
// runs the remaining chunks itself, and a late worker finds the job closed.
struct Pool {
  std::mutex mu;
  std::condition_variable wake_cv;
  std::atomic<uint64_t> gen{0};
  std::atomic<uint64_t> state{0};
  Job* job = nullptr;
  bool stop = false;
  std::vector<std::thread> workers;
  int nthreads = 1;
  std::mutex run_mu;  // one job at a time (several JS worker threads may share the addon)
};

Pool* g_pool = new Pool();
thread_local bool t_in_task = false;

constexpr int kSpinIters = 20000;  // roughly 50-100 us of pause instructions

void run_chunks(Job* j) {
  for (;;) {
    long c = j->next.fetch_add(1, std::memory_order_relaxed);
    if (c >= j->nchunks) break;
    long b = c * j->grain;
    long e = b + j->grain;
    if (e > j->n) e = j->n;
    j->fn(j->ctx, b, e);
  }
}

// `seen` is the generation at creation (read under run_mu), not at thread start: a job published before the
// new thread first runs must still be seen as new.
void worker_main(Pool* P, uint64_t seen) {
  t_in_task = true;
  for (;;) {
    int spins = 0;
    while (P->gen.load(std::memory_order_acquire) == seen && spins < kSpinIters) {
      cpu_relax();
      spins++;
    }
    {
      std::unique_lock<std::mutex> lk(P->mu);
      P->wake_cv.wait(lk, [&] { return P->gen.load(std::memory_order_acquire) != seen || P->stop; });
      if (P->stop) return;
    }
    seen = P->gen.load(std::memory_order_acquire);
    uint64_t s = P->state.load(std::memory_order_acquire);
    bool joined = false;
    while ((s >> 32) == (seen & 0xffffffffu)) {
      if (P->state.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
        joined = true;
        break;
      }
    }
    if (!joined) continue;
    run_chunks(P->job);
    P->state.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void stop_workers(Pool* P) {
  {
    std::lock_guard<std::mutex> lk(P->mu);
    P->stop = true;
  }
  P->wake_cv.notify_all();
  for (auto& t : P->workers) t.join();
  P->workers.clear();
  P->stop = false;
}

void start_workers(Pool* P, int n) {
  P->nthreads = n < 1 ? 1 : n;
  uint64_t g = P->gen.load(std::memory_order_acquire);
  for (int i = 1; i < P->nthreads; i++) P->workers.emplace_back(worker_main, P, g);
}

}  // namespace

bool pool_in_task() { return t_in_task; }

int pool_threads() { return g_pool->nthreads; }

void pool_set_threads(int n) {
  if (n < 1) n = 1;
  if (n > 256) n = 256;
  std::lock_guard<std::mutex> run(g_pool->run_mu);
  if (n == g_pool->nthreads && (int)g_pool->workers.size() == n - 1) return;
  stop_workers(g_pool);
  start_workers(g_pool, n);
}

void pool_shutdown() {
  std::lock_guard<std::mutex> run(g_pool->run_mu);
  stop_workers(g_pool);
}

void pool_run(long n, long grain, TaskFn fn, void* ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  long nchunks = (n + grain - 1) / grain;
  Pool* P = g_pool;
  if (nchunks == 1 || t_in_task || P->nthreads <= 1) {
    fn(ctx, 0, n);
    return;
  }
  std::lock_guard<std::mutex> run(P->run_mu);
  if ((int)P->workers.size() != P->nthreads - 1) start_workers(P, P->nthreads);
  Job j;
  j.fn = fn;
  j.ctx = ctx;
  j.n = n;
  j.grain = grain;
  j.nchunks = nchunks;
  j.next.store(0, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lk(P->mu);
    uint64_t g = P->gen.load(std::memory_order_relaxed) + 1;
    if ((g & 0xffffffffu) == 0) g++;  // generation 0 in `state` means "closed"
    P->job = &j;
    P->state.store((g & 0xffffffffu) << 32, std::memory_order_release);
    P->gen.store(g, std::memory_order_release);
  }
  P->wake_cv.notify_all();
  t_in_task = true;
  run_chunks(&j);
  t_in_task = false;
  // Close the job once no joined worker is still running a chunk.
  int spins = 0;
  for (;;) {
    uint64_t s = P->state.load(std::memory_order_acquire);
    if ((s & 0xffffffffu) == 0 &&
        P->state.compare_exchange_weak(s, 0, std::memory_order_acq_rel, std::memory_order_acquire))
      break;
    if (++spins < kSpinIters)
      cpu_relax();
    else
      std::this_thread::yield();
  }
  P->job = nullptr;
}

}  // namespace aunet
