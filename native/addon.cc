// N-API entry points of the native CPU backend. This layer owns storages (64-byte aligned native buffers
// behind napi externals, recycled through a size-keyed pool), validates every size and index that reaches a
// kernel (a bad call from JS must throw, never corrupt memory), and dispatches to the kernel set chosen for
// this CPU at load time.
#include <napi.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common.h"

namespace aunet {
namespace {

// ---------------------------------------------------------------------------------------------------------
// Kernel selection

const Kernels* g_k = nullptr;

bool isa_supported(const std::string& name) {
  if (name == "generic") return true;
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (name == "avx2") return avx2;
  if (name == "avx512")
    return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#endif
  return false;
}

const Kernels* isa_table(const std::string& name) {
#if defined(__x86_64__) || defined(_M_X64)
  if (name == "avx512") return kernels_avx512();
  if (name == "avx2") return kernels_avx2();
#endif
  return kernels_generic();
}

const Kernels* pick_kernels() {
  const char* want = std::getenv("AUNET_ISA");
  if (want && *want && isa_supported(want)) return isa_table(want);
  for (const char* n : {"avx512", "avx2"})
    if (isa_supported(n)) return isa_table(n);
  return kernels_generic();
}

// ---------------------------------------------------------------------------------------------------------
// Storage

struct Buf {
  float* p;
  size_t n;    // elements
  size_t cap;  // elements actually allocated (the pool key)
};

struct MemPool {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<float*>> free;
  size_t pooled_bytes = 0, live_bytes = 0, limit_bytes = 0;
  double fresh = 0, reused = 0;
};
MemPool* g_mem = new MemPool();  // never destroyed: finalizers may run during teardown

size_t cap_for(size_t n) {
  size_t c = (n + 15) & ~size_t(15);  // whole 64-byte lines
  return c == 0 ? 16 : c;
}

float* mem_take(size_t cap, bool* fresh) {
  {
    std::lock_guard<std::mutex> lk(g_mem->mu);
    auto it = g_mem->free.find(cap);
    if (it != g_mem->free.end() && !it->second.empty()) {
      float* p = it->second.back();
      it->second.pop_back();
      g_mem->pooled_bytes -= cap * sizeof(float);
      g_mem->live_bytes += cap * sizeof(float);
      g_mem->reused++;
      *fresh = false;
      return p;
    }
    g_mem->fresh++;
    g_mem->live_bytes += cap * sizeof(float);
  }
  *fresh = true;
  return (float*)aligned_malloc(cap * sizeof(float));
}

void mem_give(float* p, size_t cap) {
  std::lock_guard<std::mutex> lk(g_mem->mu);
  g_mem->live_bytes -= cap * sizeof(float);
  if (g_mem->pooled_bytes + cap * sizeof(float) <= g_mem->limit_bytes) {
    g_mem->free[cap].push_back(p);
    g_mem->pooled_bytes += cap * sizeof(float);
  } else {
    aligned_free(p);
  }
}

// V8 does not see native buffers: without telling it how much memory the storages it holds keep alive, it
// would rarely collect storages that were never released explicitly, and native memory would balloon.
void external_memory(Napi::Env env, Buf* b, int sign) {
  Napi::MemoryManagement::AdjustExternalMemory(env, sign * (int64_t)(b->cap * sizeof(float)));
}

void finalize_buf(Napi::Env env, Buf* b) {
  if (b->p) {
    mem_give(b->p, b->cap);
    external_memory(env, b, -1);
  }
  delete b;
}

Napi::Value make_storage(Napi::Env env, size_t n, bool zero) {
  Buf* b = new Buf{nullptr, n, cap_for(n)};
  bool fresh;
  b->p = mem_take(b->cap, &fresh);
  if (!b->p) {
    delete b;
    throw Napi::Error::New(env, "aunet native: out of memory allocating " + std::to_string(n) + " floats");
  }
  if (zero) g_k->fill(b->p, (long)b->cap, 0.f);
  external_memory(env, b, +1);
  return Napi::External<Buf>::New(env, b, finalize_buf);
}

Buf* arg_buf(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (!v.IsExternal()) throw Napi::TypeError::New(info.Env(), "aunet native: argument " + std::to_string(i) + " is not a storage");
  Buf* b = v.As<Napi::External<Buf>>().Data();
  if (!b || !b->p) throw Napi::Error::New(info.Env(), "aunet native: storage used after release");
  return b;
}

double arg_num(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) throw Napi::TypeError::New(info.Env(), "aunet native: argument " + std::to_string(i) + " is not a number");
  return v.As<Napi::Number>().DoubleValue();
}

// A non-negative integer size/count argument.
long arg_size(const Napi::CallbackInfo& info, size_t i) {
  double d = arg_num(info, i);
  if (!(d >= 0) || d != std::floor(d) || d > 9.0e15)
    throw Napi::RangeError::New(info.Env(), "aunet native: argument " + std::to_string(i) + " must be a non-negative integer");
  return (long)d;
}

bool arg_bool(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value();
  return arg_num(info, i) != 0;
}

struct I32 {
  const int32_t* p;
  long n;
};
I32 arg_i32(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Napi::TypeError::New(info.Env(), "aunet native: argument " + std::to_string(i) + " must be an Int32Array");
  auto a = v.As<Napi::Int32Array>();
  return {a.Data(), (long)a.ElementLength()};
}

void need(const Napi::CallbackInfo& info, bool ok, const char* what) {
  if (!ok) throw Napi::RangeError::New(info.Env(), std::string("aunet native: ") + what);
}

void check_indices(const Napi::CallbackInfo& info, const I32& a, long limit, const char* what) {
  for (long i = 0; i < a.n; i++)
    if (a.p[i] < 0 || a.p[i] >= limit)
      throw Napi::RangeError::New(info.Env(), std::string("aunet native: ") + what + " index " +
                                                  std::to_string(a.p[i]) + " out of range [0, " +
                                                  std::to_string(limit) + ")");
}

// ---------------------------------------------------------------------------------------------------------
// Storage API

// alloc(n, zero = true, reuse?): outputs that a kernel overwrites entirely skip the zero fill. `reuse`, a
// released storage handle, gets the new memory instead of a new handle: Node runs the finalizers of collected
// handles only when the event loop turns (SetImmediate), so a synchronous loop (a generation, a training step)
// that made a new handle per allocation piled up finalizer records without bound.
Napi::Value Alloc(const Napi::CallbackInfo& info) {
  bool zero = info.Length() < 2 || !info[1].IsBoolean() || info[1].As<Napi::Boolean>().Value();
  size_t n = (size_t)arg_size(info, 0);
  if (info.Length() < 3 || !info[2].IsExternal()) return make_storage(info.Env(), n, zero);
  Buf* b = info[2].As<Napi::External<Buf>>().Data();
  if (!b || b->p) throw Napi::Error::New(info.Env(), "aunet native: alloc can only reuse a released storage");
  b->n = n;
  b->cap = cap_for(n);
  bool fresh;
  b->p = mem_take(b->cap, &fresh);
  if (!b->p) throw Napi::Error::New(info.Env(), "aunet native: out of memory allocating " + std::to_string(n) + " floats");
  if (zero) g_k->fill(b->p, (long)b->cap, 0.f);
  external_memory(info.Env(), b, +1);
  return info[2];
}

Napi::Value FromFloat32(const Napi::CallbackInfo& info) {
  Napi::Value v = info[0];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(info.Env(), "aunet native: fromFloat32 needs a Float32Array");
  auto a = v.As<Napi::Float32Array>();
  size_t n = a.ElementLength();
  Napi::Value s = make_storage(info.Env(), n, false);
  Buf* b = s.As<Napi::External<Buf>>().Data();
  if (n) memcpy(b->p, a.Data(), n * sizeof(float));
  if (b->cap > n) memset(b->p + n, 0, (b->cap - n) * sizeof(float));
  return s;
}

Napi::Value Read(const Napi::CallbackInfo& info) {
  Buf* b = arg_buf(info, 0);
  auto out = Napi::Float32Array::New(info.Env(), b->n);
  if (b->n) memcpy(out.Data(), b->p, b->n * sizeof(float));
  return out;
}

Napi::Value Write(const Napi::CallbackInfo& info) {
  Buf* b = arg_buf(info, 0);
  Napi::Value v = info[1];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(info.Env(), "aunet native: write needs a Float32Array");
  auto a = v.As<Napi::Float32Array>();
  long off = arg_size(info, 2);
  need(info, (size_t)off + a.ElementLength() <= b->n, "write past the end of the storage");
  if (a.ElementLength()) memcpy(b->p + off, a.Data(), a.ElementLength() * sizeof(float));
  return info.Env().Undefined();
}

Napi::Value Release(const Napi::CallbackInfo& info) {
  Napi::Value v = info[0];
  if (!v.IsExternal()) throw Napi::TypeError::New(info.Env(), "aunet native: release needs a storage");
  Buf* b = v.As<Napi::External<Buf>>().Data();
  if (b && b->p) {
    mem_give(b->p, b->cap);
    external_memory(info.Env(), b, -1);
    b->p = nullptr;
  }
  return info.Env().Undefined();
}

Napi::Value PoolStats(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  std::lock_guard<std::mutex> lk(g_mem->mu);
  o.Set("freshAllocs", g_mem->fresh);
  o.Set("reusedAllocs", g_mem->reused);
  o.Set("liveBytes", (double)g_mem->live_bytes);
  o.Set("pooledBytes", (double)g_mem->pooled_bytes);
  o.Set("limitBytes", (double)g_mem->limit_bytes);
  return o;
}

Napi::Value TrimPool(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lk(g_mem->mu);
  for (auto& kv : g_mem->free)
    for (float* p : kv.second) aligned_free(p);
  g_mem->free.clear();
  g_mem->pooled_bytes = 0;
  return info.Env().Undefined();
}

// ---------------------------------------------------------------------------------------------------------
// Configuration

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  long n = arg_size(info, 0);
  pool_set_threads((int)(n < 1 ? 1 : n));
  return info.Env().Undefined();
}
Napi::Value GetThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), pool_threads()); }

Napi::Value GetIsa(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), g_k->isa); }

Napi::Value SetIsa(const Napi::CallbackInfo& info) {
  if (!info[0].IsString()) throw Napi::TypeError::New(info.Env(), "aunet native: setIsa needs a string");
  std::string n = info[0].As<Napi::String>().Utf8Value();
  if (!isa_supported(n)) return Napi::Boolean::New(info.Env(), false);
  g_k = isa_table(n);
  return Napi::Boolean::New(info.Env(), true);
}

Napi::Value SupportedIsas(const Napi::CallbackInfo& info) {
  Napi::Array a = Napi::Array::New(info.Env());
  uint32_t i = 0;
  for (const char* n : {"avx512", "avx2", "generic"})
    if (isa_supported(n)) a.Set(i++, Napi::String::New(info.Env(), n));
  return a;
}

// ---------------------------------------------------------------------------------------------------------
// Elementwise

Napi::Value K_fill(const Napi::CallbackInfo& info) {
  Buf* o = arg_buf(info, 0);
  g_k->fill(o->p, (long)o->n, (float)arg_num(info, 1));
  return info.Env().Undefined();
}

Napi::Value K_copy(const Napi::CallbackInfo& info) {
  Buf *o = arg_buf(info, 0), *a = arg_buf(info, 1);
  need(info, a->n <= o->n, "copy: source larger than destination");
  if (o->p != a->p) g_k->copy(o->p, a->p, (long)a->n);
  return info.Env().Undefined();
}

Napi::Value K_add(const Napi::CallbackInfo& info) {
  Buf *o = arg_buf(info, 0), *a = arg_buf(info, 1), *b = arg_buf(info, 2);
  need(info, a->n >= o->n && b->n >= o->n, "add: input smaller than output");
  g_k->add(o->p, a->p, b->p, (long)o->n);
  return info.Env().Undefined();
}

Napi::Value K_axpy(const Napi::CallbackInfo& info) {
  Buf *o = arg_buf(info, 0), *a = arg_buf(info, 1);
  need(info, a->n >= o->n, "axpy: input smaller than output");
  need(info, o->p != a->p, "axpy: output may not alias the input");
  g_k->axpy(o->p, a->p, (float)arg_num(info, 2), (long)o->n);
  return info.Env().Undefined();
}

Napi::Value K_scale(const Napi::CallbackInfo& info) {
  Buf *o = arg_buf(info, 0), *a = arg_buf(info, 1);
  need(info, a->n >= o->n, "scale: input smaller than output");
  g_k->scale(o->p, a->p, (float)arg_num(info, 2), (long)o->n);
  return info.Env().Undefined();
}


// reduceSum(out, a, alpha): out[0] = alpha * sum(a), without a round trip of the sum through JS
Napi::Value K_reduceSum(const Napi::CallbackInfo& info) {
  Buf *o = arg_buf(info, 0), *a = arg_buf(info, 1);
  double alpha = arg_num(info, 2);
  need(info, o->n >= 1, "reduceSum: out is empty");
  o->p[0] = (float)(alpha * g_k->sum(a->p, (long)a->n));
  return info.Env().Undefined();
}

// broadcast(out, a, alpha): out[i] = alpha * a[0], a device scalar spread over out (a backward's seed)
Napi::Value K_broadcast(const Napi::CallbackInfo& info) {
  Buf *o = arg_buf(info, 0), *a = arg_buf(info, 1);
  need(info, a->n >= 1, "broadcast: a is empty");
  g_k->fill(o->p, (long)o->n, (float)(arg_num(info, 2) * a->p[0]));
  return info.Env().Undefined();
}

// copyRows(dst, src, dim, rows, srcRow, dstRow): KV caches and generation state, without leaving native memory
Napi::Value K_copyRows(const Napi::CallbackInfo& info) {
  Buf *d = arg_buf(info, 0), *s = arg_buf(info, 1);
  long dim = arg_size(info, 2), rows = arg_size(info, 3), sr = arg_size(info, 4), dr = arg_size(info, 5);
  need(info, (double)(sr + rows) * dim <= (double)s->n, "copyRows: rows past the end of src");
  need(info, (double)(dr + rows) * dim <= (double)d->n, "copyRows: rows past the end of dst");
  need(info, d->p != s->p, "copyRows: dst may not alias src");
  if (rows > 0 && dim > 0) g_k->copy(d->p + dr * dim, s->p + sr * dim, rows * dim);
  return info.Env().Undefined();
}


// ---------------------------------------------------------------------------------------------------------
// Linear algebra and rows

// matmul(out, a, b, m, n, k, transA, transB, accumulate)
Napi::Value K_matmul(const Napi::CallbackInfo& info) {
  Buf *o = arg_buf(info, 0), *a = arg_buf(info, 1), *b = arg_buf(info, 2);
  long m = arg_size(info, 3), n = arg_size(info, 4), k = arg_size(info, 5);
  bool ta = arg_bool(info, 6), tb = arg_bool(info, 7), acc = arg_bool(info, 8);
  need(info, (double)m * k <= (double)a->n, "matmul: A smaller than m*k");
  need(info, (double)k * n <= (double)b->n, "matmul: B smaller than k*n");
  need(info, (double)m * n <= (double)o->n, "matmul: out smaller than m*n");
  need(info, o->p != a->p && o->p != b->p, "matmul: out may not alias an input");
  g_k->matmul(o->p, a->p, b->p, m, n, k, ta, tb, acc);
  return info.Env().Undefined();
}

// gather(out, src, idx, dim): also the embedding forward
Napi::Value K_gather(const Napi::CallbackInfo& info) {
  Buf *o = arg_buf(info, 0), *s = arg_buf(info, 1);
  I32 idx = arg_i32(info, 2);
  long dim = arg_size(info, 3);
  need(info, dim > 0, "gather: dim must be positive");
  need(info, (double)idx.n * dim <= (double)o->n, "gather: out smaller than ids.length*dim");
  check_indices(info, idx, (long)(s->n / dim), "gather");
  g_k->gather(o->p, s->p, idx.p, idx.n, dim);
  return info.Env().Undefined();
}

// scatterAdd(dst, src, idx, dim): also the embedding backward
Napi::Value K_scatterAdd(const Napi::CallbackInfo& info) {
  Buf *d = arg_buf(info, 0), *s = arg_buf(info, 1);
  I32 idx = arg_i32(info, 2);
  long dim = arg_size(info, 3);
  need(info, dim > 0, "scatterAdd: dim must be positive");
  need(info, (double)idx.n * dim <= (double)s->n, "scatterAdd: src smaller than idx.length*dim");
  need(info, d->p != s->p, "scatterAdd: dst may not alias src");
  check_indices(info, idx, (long)(d->n / dim), "scatterAdd");
  g_k->scatter_add(d->p, s->p, idx.p, idx.n, dim);
  return info.Env().Undefined();
}

// ---------------------------------------------------------------------------------------------------------
// Normalisation and activations

// rmsnorm(out, rstd, x, w, dim, eps)
Napi::Value K_rmsnorm(const Napi::CallbackInfo& info) {
  Buf *o = arg_buf(info, 0), *r = arg_buf(info, 1), *x = arg_buf(info, 2), *w = arg_buf(info, 3);
  long dim = arg_size(info, 4);
  need(info, dim > 0 && x->n % dim == 0, "rmsnorm: x.size must be a multiple of dim");
  long rows = (long)(x->n / dim);
  need(info, o->n >= x->n && r->n >= (size_t)rows && w->n >= (size_t)dim, "rmsnorm: output or weight too small");
  g_k->rmsnorm(o->p, r->p, x->p, w->p, rows, dim, (float)arg_num(info, 5));
  return info.Env().Undefined();
}

// rmsnormBackward(dx, dw, dout, x, w, rstd, dim)
Napi::Value K_rmsnormBackward(const Napi::CallbackInfo& info) {
  Buf *dx = arg_buf(info, 0), *dw = arg_buf(info, 1), *g = arg_buf(info, 2), *x = arg_buf(info, 3),
      *w = arg_buf(info, 4), *r = arg_buf(info, 5);
  long dim = arg_size(info, 6);
  need(info, dim > 0 && x->n % dim == 0, "rmsnormBackward: x.size must be a multiple of dim");
  long rows = (long)(x->n / dim);
  need(info, dx->n >= x->n && g->n >= x->n && dw->n >= (size_t)dim && w->n >= (size_t)dim && r->n >= (size_t)rows,
       "rmsnormBackward: storage too small");
  g_k->rmsnorm_bwd(dx->p, dw->p, g->p, x->p, w->p, r->p, rows, dim);
  return info.Env().Undefined();
}

Napi::Value K_swiglu(const Napi::CallbackInfo& info) {
  Buf *o = arg_buf(info, 0), *a = arg_buf(info, 1), *b = arg_buf(info, 2);
  need(info, a->n >= o->n && b->n >= o->n, "swiglu: input smaller than output");
  g_k->swiglu(o->p, a->p, b->p, (long)o->n);
  return info.Env().Undefined();
}

// swigluBackward(da, db, dout, a, b)
Napi::Value K_swigluBackward(const Napi::CallbackInfo& info) {
  Buf *da = arg_buf(info, 0), *db = arg_buf(info, 1), *g = arg_buf(info, 2), *a = arg_buf(info, 3),
      *b = arg_buf(info, 4);
  size_t n = g->n;
  need(info, da->n >= n && db->n >= n && a->n >= n && b->n >= n, "swigluBackward: storage too small");
  g_k->swiglu_bwd(da->p, db->p, g->p, a->p, b->p, (long)n);
  return info.Env().Undefined();
}

// rope(out, x, cos, sin, rows, seq, nHeads, headDim, positions|null, backward)
Napi::Value K_rope(const Napi::CallbackInfo& info) {
  Buf *o = arg_buf(info, 0), *x = arg_buf(info, 1), *c = arg_buf(info, 2), *s = arg_buf(info, 3);
  long rows = arg_size(info, 4), seq = arg_size(info, 5), nh = arg_size(info, 6), hd = arg_size(info, 7);
  bool backward = arg_bool(info, 9);
  need(info, hd > 0 && hd % 2 == 0, "rope: headDim must be even and positive");
  long half = hd / 2;
  long maxPos = (long)((c->n < s->n ? c->n : s->n) / half);
  double n = (double)rows * nh * hd;
  need(info, n <= (double)x->n && n <= (double)o->n, "rope: storage smaller than rows*nHeads*headDim");
  const int32_t* pos = nullptr;
  if (!info[8].IsNull() && !info[8].IsUndefined()) {
    I32 p = arg_i32(info, 8);
    need(info, p.n >= rows, "rope: positions shorter than rows");
    I32 head{p.p, rows};
    check_indices(info, head, maxPos, "rope position");
    pos = p.p;
  } else {
    need(info, rows == 0 || seq > 0, "rope: seq must be positive");
    need(info, rows == 0 || (seq < rows ? seq : rows) <= maxPos, "rope: seq exceeds the cos/sin tables");
  }
  need(info, !backward || o->p != x->p, "ropeBackward: dx may not alias dout");
  g_k->rope(o->p, x->p, c->p, s->p, rows, seq, nh, hd, pos, backward);
  return info.Env().Undefined();
}

// ---------------------------------------------------------------------------------------------------------
// Attention

AttnParams attn_params(const Napi::CallbackInfo& info, size_t i) {
  AttnParams p;
  p.batch = arg_size(info, i);
  p.sq = arg_size(info, i + 1);
  p.sk = arg_size(info, i + 2);
  p.nh = arg_size(info, i + 3);
  p.nkv = arg_size(info, i + 4);
  p.hd = arg_size(info, i + 5);
  p.qoff = arg_size(info, i + 6);
  p.window = arg_size(info, i + 7);
  p.scale = (float)arg_num(info, i + 8);
  need(info, p.nh > 0 && p.nkv > 0 && p.nh % p.nkv == 0, "attention: nHeads must be a multiple of nKvHeads");
  need(info, p.hd > 0, "attention: headDim must be positive");
  return p;
}

void check_attn(const Napi::CallbackInfo& info, const AttnParams& p, Buf* q, Buf* k, Buf* v, Buf* o, Buf* lse) {
  double nq = (double)p.batch * p.sq * p.nh * p.hd, nk = (double)p.batch * p.sk * p.nkv * p.hd;
  need(info, nq <= (double)q->n && nq <= (double)o->n, "attention: q/out smaller than batch*sq*nHeads*headDim");
  need(info, nk <= (double)k->n && nk <= (double)v->n, "attention: k/v smaller than batch*sk*nKvHeads*headDim");
  need(info, (double)p.batch * p.nh * p.sq <= (double)lse->n, "attention: lse smaller than batch*nHeads*sq");
}

// attention(out, lse, q, k, v, batch, sq, sk, nHeads, nKvHeads, headDim, qOffset, window, scale)
Napi::Value K_attention(const Napi::CallbackInfo& info) {
  Buf *o = arg_buf(info, 0), *l = arg_buf(info, 1), *q = arg_buf(info, 2), *k = arg_buf(info, 3),
      *v = arg_buf(info, 4);
  AttnParams p = attn_params(info, 5);
  check_attn(info, p, q, k, v, o, l);
  g_k->attention(o->p, l->p, q->p, k->p, v->p, p);
  return info.Env().Undefined();
}

// attentionBackward(dq, dk, dv, dout, q, k, v, out, lse, ...params)
Napi::Value K_attentionBackward(const Napi::CallbackInfo& info) {
  Buf *dq = arg_buf(info, 0), *dk = arg_buf(info, 1), *dv = arg_buf(info, 2), *g = arg_buf(info, 3),
      *q = arg_buf(info, 4), *k = arg_buf(info, 5), *v = arg_buf(info, 6), *o = arg_buf(info, 7),
      *l = arg_buf(info, 8);
  AttnParams p = attn_params(info, 9);
  check_attn(info, p, q, k, v, o, l);
  check_attn(info, p, dq, dk, dv, g, l);
  g_k->attention_bwd(dq->p, dk->p, dv->p, g->p, q->p, k->p, v->p, o->p, l->p, p);
  return info.Env().Undefined();
}

// ---------------------------------------------------------------------------------------------------------
// Indexed linear

// indexedLinear(out, x, w, pos, dIn, dOut)
Napi::Value K_indexedLinear(const Napi::CallbackInfo& info) {
  Buf *o = arg_buf(info, 0), *x = arg_buf(info, 1), *w = arg_buf(info, 2);
  I32 pos = arg_i32(info, 3);
  long din = arg_size(info, 4), dout = arg_size(info, 5);
  need(info, din > 0 && dout > 0, "indexedLinear: dims must be positive");
  long npos = (long)(w->n / ((size_t)din * dout));
  need(info, (double)pos.n * din <= (double)x->n && (double)pos.n * dout <= (double)o->n,
       "indexedLinear: x/out smaller than rows*dim");
  check_indices(info, pos, npos, "indexedLinear position");
  g_k->indexed_linear(o->p, x->p, w->p, pos.p, pos.n, din, dout, npos);
  return info.Env().Undefined();
}

// indexedLinearBackward(dx, dw, dout, x, w, pos, dIn, dOut)
Napi::Value K_indexedLinearBackward(const Napi::CallbackInfo& info) {
  Buf *dx = arg_buf(info, 0), *dw = arg_buf(info, 1), *g = arg_buf(info, 2), *x = arg_buf(info, 3),
      *w = arg_buf(info, 4);
  I32 pos = arg_i32(info, 5);
  long din = arg_size(info, 6), dout = arg_size(info, 7);
  need(info, din > 0 && dout > 0, "indexedLinearBackward: dims must be positive");
  long npos = (long)(w->n / ((size_t)din * dout));
  need(info, dw->n >= w->n, "indexedLinearBackward: dw smaller than w");
  need(info, (double)pos.n * din <= (double)x->n && (double)pos.n * din <= (double)dx->n &&
                 (double)pos.n * dout <= (double)g->n,
       "indexedLinearBackward: storage smaller than rows*dim");
  check_indices(info, pos, npos, "indexedLinearBackward position");
  g_k->indexed_linear_bwd(dx->p, dw->p, g->p, x->p, w->p, pos.p, pos.n, din, dout, npos);
  return info.Env().Undefined();
}

// ---------------------------------------------------------------------------------------------------------
// Loss and optimiser

// crossEntropy(loss, lse, logits, targets, vocab)
Napi::Value K_crossEntropy(const Napi::CallbackInfo& info) {
  Buf *loss = arg_buf(info, 0), *lse = arg_buf(info, 1), *x = arg_buf(info, 2);
  I32 t = arg_i32(info, 3);
  long vocab = arg_size(info, 4);
  need(info, vocab > 0, "crossEntropy: vocab must be positive");
  need(info, (double)t.n * vocab <= (double)x->n && loss->n >= (size_t)t.n && lse->n >= (size_t)t.n,
       "crossEntropy: storage too small");
  check_indices(info, t, vocab, "crossEntropy target");
  g_k->cross_entropy(loss->p, lse->p, x->p, t.p, t.n, vocab);
  return info.Env().Undefined();
}

// crossEntropyBackward(dlogits, dloss, logits, lse, targets, vocab)
Napi::Value K_crossEntropyBackward(const Napi::CallbackInfo& info) {
  Buf *dl = arg_buf(info, 0), *g = arg_buf(info, 1), *x = arg_buf(info, 2), *lse = arg_buf(info, 3);
  I32 t = arg_i32(info, 4);
  long vocab = arg_size(info, 5);
  need(info, vocab > 0, "crossEntropyBackward: vocab must be positive");
  double n = (double)t.n * vocab;
  need(info, n <= (double)x->n && n <= (double)dl->n && g->n >= (size_t)t.n && lse->n >= (size_t)t.n,
       "crossEntropyBackward: storage too small");
  check_indices(info, t, vocab, "crossEntropyBackward target");
  g_k->cross_entropy_bwd(dl->p, g->p, x->p, lse->p, t.p, t.n, vocab);
  return info.Env().Undefined();
}

// clipGradNorm(norm, scale, grads, maxNorm): torch's clip_grad_norm_ total norm and coefficient, on the device.
// Per-gradient sums of squares in double, added in list order (independent of the thread count).
Napi::Value K_clipGradNorm(const Napi::CallbackInfo& info) {
  Buf *norm = arg_buf(info, 0), *scale = arg_buf(info, 1);
  Napi::Array grads = info[2].As<Napi::Array>();
  double maxNorm = arg_num(info, 3);
  need(info, norm->n >= 1 && scale->n >= 1, "clipGradNorm: norm and scale need one element");
  double ss = 0;
  for (uint32_t i = 0; i < grads.Length(); i++) {
    Napi::Value v = grads.Get(i);
    if (!v.IsExternal()) throw Napi::TypeError::New(info.Env(), "aunet native: clipGradNorm: grads[" + std::to_string(i) + "] is not a storage");
    Buf* g = v.As<Napi::External<Buf>>().Data();
    if (!g || !g->p) throw Napi::Error::New(info.Env(), "aunet native: storage used after release");
    ss += g_k->sumsq(g->p, (long)g->n);
  }
  double total = std::sqrt(ss);
  norm->p[0] = (float)total;
  // A non-finite norm gives a NaN scale, with or without clipping: AdamW then skips the update, and the
  // caller, seeing the norm, decides to stop (the weights are never silently turned into NaN).
  scale->p[0] = !std::isfinite(total) ? NAN : maxNorm > 0 ? (float)std::fmin(1.0, maxNorm / (total + 1e-6)) : 1.f;
  return info.Env().Undefined();
}

// adamw(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, gradScale): gradScale is a [1] storage
Napi::Value K_adamw(const Napi::CallbackInfo& info) {
  Buf *p = arg_buf(info, 0), *g = arg_buf(info, 1), *m = arg_buf(info, 2), *v = arg_buf(info, 3);
  double lr = arg_num(info, 4), b1 = arg_num(info, 5), b2 = arg_num(info, 6), eps = arg_num(info, 7),
         wd = arg_num(info, 8), step = arg_num(info, 9);
  Buf* gsb = arg_buf(info, 10);
  need(info, gsb->n >= 1, "adamw: gradScale is empty");
  double gs = gsb->p[0];
  size_t n = p->n;
  need(info, g->n >= n && m->n >= n && v->n >= n, "adamw: grad/m/v smaller than param");
  if (!std::isfinite(gs)) return info.Env().Undefined();  // a non-finite gradient norm: the step is skipped
  AdamParams ap;
  ap.beta1 = (float)b1;
  ap.beta2 = (float)b2;
  ap.one_minus_beta1 = (float)(1 - b1);
  ap.one_minus_beta2 = (float)(1 - b2);
  ap.grad_scale = (float)gs;
  ap.decay = (float)(1 - lr * wd);
  ap.step_size = (float)(lr / (1 - std::pow(b1, step)));
  ap.inv_bc2s = (float)(1 / std::sqrt(1 - std::pow(b2, step)));
  ap.eps = (float)eps;
  g_k->adamw(p->p, g->p, m->p, v->p, (long)n, ap);
  return info.Env().Undefined();
}

// ---------------------------------------------------------------------------------------------------------
// The kernel table (kernel_list.h): one entry per exported kernel, with its signature

struct KernelEntry {
  const char* name;
  const char* sig;
  Napi::Value (*f)(const Napi::CallbackInfo&);
};

const KernelEntry kKernelTable[] = {
#define AUNET_JS_ENTRY(name, sig) {#name, sig, K_##name},
    AUNET_JS_KERNELS(AUNET_JS_ENTRY)
#undef AUNET_JS_ENTRY
};

const char* arg_kind(char c) {
  switch (c) {
    case 'S': return "a storage";
    case 'N': return "a number";
    case 'I': return "a non-negative integer";
    case 'B': return "a boolean";
    case 'A': return "an Int32Array";
    case 'P': return "an Int32Array or null";
    case 'L': return "an array of storages";
  }
  return "?";
}

bool arg_matches(const Napi::Value& v, char c) {
  switch (c) {
    case 'S': return v.IsExternal();
    case 'N': return v.IsNumber();
    case 'I': {
      if (!v.IsNumber()) return false;
      double d = v.As<Napi::Number>().DoubleValue();
      return d >= 0 && d == std::floor(d) && d <= 9.0e15;
    }
    case 'B': return v.IsBoolean();
    case 'A': return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array;
    case 'P': return v.IsNull() || arg_matches(v, 'A');
    case 'L': return v.IsArray();
  }
  return false;
}

// Every compute kernel enters here: argument count and types are checked against the declared signature, so
// a wrapper only checks sizes and indices.
Napi::Value CheckedKernel(const Napi::CallbackInfo& info) {
  const KernelEntry* k = (const KernelEntry*)info.Data();
  size_t n = std::strlen(k->sig);
  if (info.Length() != n)
    throw Napi::TypeError::New(info.Env(), std::string("aunet native: ") + k->name + " takes " + std::to_string(n) +
                                               " arguments, got " + std::to_string(info.Length()));
  for (size_t i = 0; i < n; i++)
    if (!arg_matches(info[i], k->sig[i]))
      throw Napi::TypeError::New(info.Env(), std::string("aunet native: ") + k->name + ": argument " +
                                                 std::to_string(i) + " must be " + arg_kind(k->sig[i]));
  return k->f(info);
}

// kernelSignatures(): { name: signature } for every compute kernel (checked against the TypeScript table)
Napi::Value KernelSignatures(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  for (const KernelEntry& k : kKernelTable) o.Set(k.name, k.sig);
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  if (!g_k) g_k = pick_kernels();
  if (g_mem->limit_bytes == 0) {
    // Pooled (released, not yet reused) memory is capped; past this, released buffers go back to the system.
    const char* mb = std::getenv("AUNET_POOL_MB");
    double lim = mb && *mb ? std::atof(mb) : 8192.0;
    g_mem->limit_bytes = (size_t)(lim * 1024.0 * 1024.0);
  }
  env.AddCleanupHook([]() { pool_shutdown(); });
  struct Fn {
    const char* name;
    Napi::Value (*f)(const Napi::CallbackInfo&);
  };
  static const Fn fns[] = {
      {"alloc", Alloc},
      {"fromFloat32", FromFloat32},
      {"read", Read},
      {"write", Write},
      {"release", Release},
      {"poolStats", PoolStats},
      {"trimPool", TrimPool},
      {"setThreads", SetThreads},
      {"getThreads", GetThreads},
      {"isa", GetIsa},
      {"setIsa", SetIsa},
      {"supportedIsas", SupportedIsas},
      {"kernelSignatures", KernelSignatures},
  };
  for (const Fn& f : fns) exports.Set(f.name, Napi::Function::New(env, f.f, f.name));
  // Compute kernels: the arguments are checked against the kernel's signature before its wrapper runs.
  for (const KernelEntry& k : kKernelTable)
    exports.Set(k.name, Napi::Function::New(env, CheckedKernel, k.name, (void*)&k));
  return exports;
}

}  // namespace
}  // namespace aunet

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return aunet::Init(env, exports); }

NODE_API_MODULE(aunet_native, InitModule)
