// The allocator behind every storage and every kernel scratch buffer: size classes (four per power of two, so
// at most 25% of a block is slack) with a free list each, carved from the top of the heap, which grows the
// linear memory a page run at a time. Released blocks are pooled for reuse, never returned (wasm memory
// cannot shrink). Blocks are 64-byte aligned; callers pass the size back when freeing, so no headers.
#include "aunet.h"

extern unsigned char __heap_base;

#define NCLASS 96
static void* free_list[NCLASS];
static uintptr_t top;
static long pooled_bytes, live_bytes;

// Class of a request and its capacity: 64..256 bytes in steps of 64, then 2^e + s 2^(e-2) for s = 1..4.
static int size_class(long bytes, long* cap) {
  if (bytes <= 256) {
    long c = (bytes + 63) & ~63L;
    if (c == 0) c = 64;
    *cap = c;
    return (int)(c / 64 - 1);
  }
  int e = 63 - __builtin_clzll((unsigned long long)(bytes - 1));  // 2^e < bytes <= 2^(e+1)
  long step = 1L << (e - 2);
  long s = (bytes - (1L << e) + step - 1) / step;  // 1..4
  *cap = (1L << e) + s * step;
  return 4 + (e - 8) * 4 + (int)(s - 1);
}

void* mem_alloc(long bytes) {
  if (bytes < 0 || bytes > (1L << 30)) return 0;  // capacities stay below 2^31 (long is 32-bit here)
  long cap;
  int c = size_class(bytes, &cap);
  void* p = free_list[c];
  if (p) {
    free_list[c] = *(void**)p;
    pooled_bytes -= cap;
    live_bytes += cap;
    return p;
  }
  if (top == 0) top = ((uintptr_t)&__heap_base + 63) & ~(uintptr_t)63;
  unsigned long long end = (unsigned long long)__builtin_wasm_memory_size(0) * 65536ULL;
  unsigned long long need = (unsigned long long)top + (unsigned long long)cap;
  if (need > 4294967296ULL) return 0;
  if (need > end) {
    unsigned long long pages = (need - end + 65535) / 65536;
    if (__builtin_wasm_memory_grow(0, (unsigned long)pages) == (unsigned long)-1) return 0;
  }
  p = (void*)top;
  top += cap;
  live_bytes += cap;
  return p;
}

void mem_free(void* p, long bytes) {
  if (!p) return;
  long cap;
  int c = size_class(bytes, &cap);
  *(void**)p = free_list[c];
  free_list[c] = p;
  pooled_bytes += cap;
  live_bytes -= cap;
}

void* scratch(Scratch* s, long bytes) {
  if (bytes > s->bytes) {
    mem_free(s->p, s->bytes);
    s->p = mem_alloc(bytes);
    s->bytes = bytes;
    // Out of memory inside a kernel: trap (the caller sees a RuntimeError) rather than write through 0.
    if (!s->p) __builtin_trap();
  }
  return s->p;
}

// Exported for the storage pool on the TypeScript side. alloc returns 0 when memory is exhausted.
EXPORT(alloc) void* wa_alloc(long bytes, int zero) {
  void* p = mem_alloc(bytes);
  if (p && zero) __builtin_memset(p, 0, (unsigned long)bytes);
  return p;
}
EXPORT(free) void wa_free(void* p, long bytes) { mem_free(p, bytes); }
EXPORT(liveBytes) long wa_live_bytes(void) { return live_bytes; }
EXPORT(pooledBytes) long wa_pooled_bytes(void) { return pooled_bytes; }
