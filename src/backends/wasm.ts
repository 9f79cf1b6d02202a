// The WebAssembly SIMD backend: the kernels of wasm/*.c, compiled by clang to one freestanding wasm32 module
// (128-bit SIMD, no libc, no imports), behind the Backend interface. It runs wherever WebAssembly SIMD does:
// Node without the native addon, and browsers. This file is browser-portable (no Node built-ins); Node's
// loader, which finds the .wasm file on disk, is ./wasm-node.ts.
//
// Storages are ranges of the module's linear memory, allocated by the module's own allocator (size classes
// with free lists, the memory grown as needed). Released storages go back to its pool; storages that are
// dropped without release() are returned by a FinalizationRegistry. Sizes and indices are checked here before
// a kernel runs, so kernels never read or write outside their storages.
import type {
  AdamWParams,
  AttentionGrads,
  AttentionParams,
  Backend,
  ClipGradNormParams,
  CopyRowsParams,
  IndexedLinearGrads,
  IndexedLinearParams,
  MatmulParams,
  RmsnormGrads,
  RopeParams,
  Storage,
} from "../engine/backend.js";

type Ptr = number;

/** The module's exports (wasm/*.c, EXPORT(name)). Pointers are byte offsets into `memory`. */
export interface WasmKernels {
  memory: WebAssembly.Memory;
  alloc(bytes: number, zero: number): Ptr;
  free(p: Ptr, bytes: number): void;
  liveBytes(): number;
  pooledBytes(): number;
  fill(o: Ptr, n: number, v: number): void;
  copy(o: Ptr, a: Ptr, n: number): void;
  add(o: Ptr, a: Ptr, b: Ptr, n: number): void;
  axpy(o: Ptr, a: Ptr, alpha: number, n: number): void;
  scale(o: Ptr, a: Ptr, alpha: number, n: number): void;
  sum(a: Ptr, n: number): number;
  sumSquares(a: Ptr, n: number): number;
  reduceSum(o: Ptr, a: Ptr, n: number, alpha: number): void;
  matmul(c: Ptr, a: Ptr, b: Ptr, m: number, n: number, k: number, ta: number, tb: number, acc: number): void;
  gather(o: Ptr, src: Ptr, idx: Ptr, nidx: number, dim: number): void;
  scatterAdd(dst: Ptr, src: Ptr, idx: Ptr, nidx: number, dim: number): void;
  rmsnorm(o: Ptr, rstd: Ptr, x: Ptr, w: Ptr, rows: number, dim: number, eps: number): void;
  rmsnormBackward(dx: Ptr, dw: Ptr, dout: Ptr, x: Ptr, w: Ptr, rstd: Ptr, rows: number, dim: number): void;
  swiglu(o: Ptr, a: Ptr, b: Ptr, n: number): void;
  swigluBackward(da: Ptr, db: Ptr, dout: Ptr, a: Ptr, b: Ptr, n: number): void;
  rope(
    o: Ptr,
    x: Ptr,
    cos: Ptr,
    sin: Ptr,
    rows: number,
    seq: number,
    nHeads: number,
    headDim: number,
    positions: Ptr, // 0: row r sits at r % seq
    backward: number,
  ): void;
  attention(o: Ptr, lse: Ptr, q: Ptr, k: Ptr, v: Ptr, ...p: AttnArgs): void;
  attentionBackward(
    dq: Ptr,
    dk: Ptr,
    dv: Ptr,
    dout: Ptr,
    q: Ptr,
    k: Ptr,
    v: Ptr,
    out: Ptr,
    lse: Ptr,
    ...p: AttnArgs
  ): void;
  indexedLinear(
    o: Ptr,
    x: Ptr,
    w: Ptr,
    pos: Ptr,
    rows: number,
    dIn: number,
    dOut: number,
    nPos: number,
  ): void;
  indexedLinearBackward(
    dx: Ptr,
    dw: Ptr,
    dout: Ptr,
    x: Ptr,
    w: Ptr,
    pos: Ptr,
    rows: number,
    dIn: number,
    dOut: number,
    nPos: number,
  ): void;
  crossEntropy(loss: Ptr, lse: Ptr, logits: Ptr, t: Ptr, rows: number, vocab: number): void;
  crossEntropyBackward(dl: Ptr, dloss: Ptr, logits: Ptr, lse: Ptr, t: Ptr, rows: number, vocab: number): void;
  adamw(p: Ptr, g: Ptr, m: Ptr, v: Ptr, n: number, ...c: AdamArgs): void;
}

type AttnArgs = [number, number, number, number, number, number, number, number, number];
type AdamArgs = [number, number, number, number, number, number, number, number, number];

/** Bytes of one storage at most: the module's allocator hands out blocks below 2^30 bytes. */
const MAX_BYTES = 2 ** 30;

class WasmStorage implements Storage {
  constructor(
    readonly size: number,
    public ptr: Ptr,
    readonly owner: WasmBackend,
  ) {}
}

function fail(what: string): never {
  throw new RangeError(`wasm backend: ${what}`);
}
function need(ok: boolean, what: string): void {
  if (!ok) fail(what);
}
function checkIndices(a: Int32Array, limit: number, what: string): void {
  for (let i = 0; i < a.length; i++)
    if (!(a[i] >= 0 && a[i] < limit)) fail(`${what} ${a[i]} at ${i} out of range [0, ${limit})`);
}

// The module traps in one case only: a kernel's scratch buffer cannot be allocated because the memory cannot
// grow (the 4 GiB of wasm32, or the engine's limit). Say so instead of "RuntimeError: unreachable".
function explainTraps(exports: WebAssembly.Exports): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(exports)) {
    if (typeof f !== "function") {
      out[name] = f;
      continue;
    }
    out[name] = (...args: unknown[]) => {
      try {
        return (f as (...a: unknown[]) => unknown)(...args);
      } catch (e) {
        if (e instanceof WebAssembly.RuntimeError)
          throw new RangeError(
            `wasm backend: ${name} ran out of memory for its scratch space (${e.message})`,
          );
        throw e;
      }
    };
  }
  return out;
}

function attnArgs(p: AttentionParams): AttnArgs {
  return [p.batch, p.sq, p.sk, p.nHeads, p.nKvHeads, p.headDim, p.qOffset, p.window, p.scale];
}

// The AdamW constants, derived in double as the native backend does, then used in float by the kernel.
function adamArgs(p: AdamWParams, gradScale: number): AdamArgs {
  return [
    p.beta1,
    p.beta2,
    1 - p.beta1,
    1 - p.beta2,
    gradScale,
    1 - p.lr * p.weightDecay,
    p.lr / (1 - Math.pow(p.beta1, p.step)),
    1 / Math.sqrt(1 - Math.pow(p.beta2, p.step)),
    p.eps,
  ];
}

export class WasmBackend implements Backend {
  readonly name = "wasm";
  private readonly k: WasmKernels;
  private f32: Float32Array;
  private i32: Int32Array;
  // One reusable block for the index arrays a kernel takes (ids, positions, targets): at most one per call.
  private idxPtr: Ptr = 0;
  private idxBytes = 0;
  private readonly finalizer: FinalizationRegistry<{ ptr: Ptr; bytes: number }>;

  constructor(instance: WebAssembly.Instance) {
    this.k = explainTraps(instance.exports) as unknown as WasmKernels;
    this.f32 = new Float32Array(this.k.memory.buffer);
    this.i32 = new Int32Array(this.k.memory.buffer);
    this.finalizer = new FinalizationRegistry(({ ptr, bytes }) => this.k.free(ptr, bytes));
  }

  /** Instantiates a compiled kernel module (synchronous: fine in Node and in workers). */
  static fromModule(module: WebAssembly.Module): WasmBackend {
    return new WasmBackend(new WebAssembly.Instance(module, {}));
  }

  /** Compiles and instantiates the kernels from their bytes or a fetch() response (browsers). */
  static async create(source: BufferSource | Response | PromiseLike<Response>): Promise<WasmBackend> {
    const src = await source;
    let module: WebAssembly.Module;
    if (typeof Response !== "undefined" && src instanceof Response) {
      if (!src.ok) throw new Error(`wasm backend: fetching the kernel module failed (HTTP ${src.status})`);
      // Streaming compilation needs the application/wasm content type; other servers get the plain path.
      const copy = src.clone();
      try {
        module = await WebAssembly.compileStreaming(src);
      } catch {
        module = await WebAssembly.compile(await copy.arrayBuffer());
      }
    } else module = await WebAssembly.compile(src as BufferSource);
    return new WasmBackend(await WebAssembly.instantiate(module, {}));
  }

  /** Bytes held by live storages and scratch, and bytes pooled for reuse. */
  memoryStats(): { liveBytes: number; pooledBytes: number; memoryBytes: number } {
    return {
      liveBytes: this.k.liveBytes(),
      pooledBytes: this.k.pooledBytes(),
      memoryBytes: this.k.memory.buffer.byteLength,
    };
  }

  // Views over the linear memory, renewed after the memory has grown (growth detaches the old buffer).
  private heapF32(): Float32Array {
    if (this.f32.buffer !== this.k.memory.buffer) {
      this.f32 = new Float32Array(this.k.memory.buffer);
      this.i32 = new Int32Array(this.k.memory.buffer);
    }
    return this.f32;
  }
  private heapI32(): Int32Array {
    this.heapF32();
    return this.i32;
  }

  private p(s: Storage): Ptr {
    if (!(s instanceof WasmStorage) || s.owner !== this)
      throw new TypeError("wasm backend: storage belongs to another backend");
    if (s.ptr < 0) throw new TypeError("wasm backend: storage used after release");
    return s.ptr;
  }

  /** Copies an index array into the module's memory; valid until the next call that takes indices. */
  private indices(a: Int32Array): Ptr {
    const bytes = Math.max(4, a.length * 4);
    if (bytes > this.idxBytes) {
      if (this.idxPtr) this.k.free(this.idxPtr, this.idxBytes);
      this.idxPtr = this.allocBytes(bytes, false);
      this.idxBytes = bytes;
    }
    this.heapI32().set(a, this.idxPtr >> 2);
    return this.idxPtr;
  }

  private allocBytes(bytes: number, zero: boolean): Ptr {
    need(bytes <= MAX_BYTES, `a storage of ${bytes} bytes is over the 1 GiB limit`);
    const ptr = this.k.alloc(bytes, zero ? 1 : 0);
    if (ptr === 0)
      fail(`out of memory allocating ${bytes} bytes (memory: ${this.k.memory.buffer.byteLength})`);
    return ptr;
  }

  // ---- storage ----

  alloc(size: number, zero = true): Storage {
    need(Number.isInteger(size) && size >= 0, `alloc: bad size ${size}`);
    const s = new WasmStorage(size, this.allocBytes(size * 4, zero), this);
    this.finalizer.register(s, { ptr: s.ptr, bytes: size * 4 }, s);
    return s;
  }
  fromFloat32(data: Float32Array): Storage {
    const s = this.alloc(data.length, false);
    this.heapF32().set(data, (s as WasmStorage).ptr >> 2);
    return s;
  }
  // The module's memory is host memory: a read never waits, so the asynchronous form simply resolves.
  readSync(s: Storage): Float32Array {
    const p = this.p(s) >> 2;
    return this.heapF32().slice(p, p + s.size);
  }
  async read(s: Storage): Promise<Float32Array> {
    return this.readSync(s);
  }
  write(s: Storage, data: Float32Array, offset: number): void {
    need(offset >= 0 && offset + data.length <= s.size, "write past the end of the storage");
    this.heapF32().set(data, (this.p(s) >> 2) + offset);
  }
  release(s: Storage): void {
    const ws = s as WasmStorage;
    const ptr = this.p(s);
    this.finalizer.unregister(ws);
    ws.ptr = -1;
    this.k.free(ptr, s.size * 4);
  }

  // ---- elementwise ----

  fill(out: Storage, value: number): void {
    this.k.fill(this.p(out), out.size, value);
  }
  copy(out: Storage, a: Storage): void {
    need(a.size <= out.size, "copy: source larger than destination");
    this.k.copy(this.p(out), this.p(a), a.size);
  }
  add(out: Storage, a: Storage, b: Storage): void {
    need(a.size >= out.size && b.size >= out.size, "add: input smaller than output");
    this.k.add(this.p(out), this.p(a), this.p(b), out.size);
  }
  axpy(out: Storage, a: Storage, alpha: number): void {
    need(a.size >= out.size, "axpy: input smaller than output");
    need(out !== a, "axpy: output may not alias the input");
    this.k.axpy(this.p(out), this.p(a), alpha, out.size);
  }
  scale(out: Storage, a: Storage, alpha: number): void {
    need(a.size >= out.size, "scale: input smaller than output");
    this.k.scale(this.p(out), this.p(a), alpha, out.size);
  }
  reduceSum(out: Storage, a: Storage, alpha: number): void {
    need(out.size >= 1, "reduceSum: out is empty");
    this.k.reduceSum(this.p(out), this.p(a), a.size, alpha);
  }
  broadcast(out: Storage, a: Storage, alpha: number): void {
    need(a.size >= 1, "broadcast: the scalar is empty");
    this.k.fill(this.p(out), out.size, alpha * this.heapF32()[this.p(a) >> 2]);
  }
  copyRows(dst: Storage, src: Storage, p: CopyRowsParams): void {
    const { dim, rows, srcRow, dstRow } = p;
    need(dim >= 0 && rows >= 0 && srcRow >= 0 && dstRow >= 0, "copyRows: negative size or row");
    need(
      (srcRow + rows) * dim <= src.size && (dstRow + rows) * dim <= dst.size,
      "copyRows: rows past the end",
    );
    need(dst !== src, "copyRows: dst may not alias src");
    this.k.copy(this.p(dst) + dstRow * dim * 4, this.p(src) + srcRow * dim * 4, rows * dim);
  }

  // ---- dense linear algebra ----

  matmul(out: Storage, a: Storage, b: Storage, p: MatmulParams): void {
    const { m, n, k } = p;
    need(
      m * k <= a.size && k * n <= b.size && m * n <= out.size,
      "matmul: a storage is smaller than its matrix",
    );
    need(out !== a && out !== b, "matmul: out may not alias an input");
    this.k.matmul(this.p(out), this.p(a), this.p(b), m, n, k, +p.transA, +p.transB, +p.accumulate);
  }

  // ---- embedding / rows ----

  embedding(out: Storage, table: Storage, ids: Int32Array, dim: number): void {
    this.gatherRows(out, table, ids, dim);
  }
  embeddingBackward(dtable: Storage, dout: Storage, ids: Int32Array, dim: number): void {
    this.scatterAddRows(dtable, dout, ids, dim);
  }
  gatherRows(out: Storage, src: Storage, idx: Int32Array, dim: number): void {
    need(dim > 0 && idx.length * dim <= out.size, "gather: out smaller than idx.length*dim");
    checkIndices(idx, Math.floor(src.size / dim), "gather index");
    this.k.gather(this.p(out), this.p(src), this.indices(idx), idx.length, dim);
  }
  scatterAddRows(dst: Storage, src: Storage, idx: Int32Array, dim: number): void {
    need(dim > 0 && idx.length * dim <= src.size, "scatterAdd: src smaller than idx.length*dim");
    need(dst !== src, "scatterAdd: dst may not alias src");
    checkIndices(idx, Math.floor(dst.size / dim), "scatterAdd index");
    this.k.scatterAdd(this.p(dst), this.p(src), this.indices(idx), idx.length, dim);
  }

  // ---- normalisation and activations ----

  rmsnorm(out: Storage, rstd: Storage, x: Storage, w: Storage, dim: number, eps: number): void {
    need(dim > 0 && x.size % dim === 0, "rmsnorm: x.size must be a multiple of dim");
    const rows = x.size / dim;
    need(out.size >= x.size && rstd.size >= rows && w.size >= dim, "rmsnorm: output or weight too small");
    this.k.rmsnorm(this.p(out), this.p(rstd), this.p(x), this.p(w), rows, dim, eps);
  }
  rmsnormBackward(g: RmsnormGrads, dim: number): void {
    const { dx, dw, dout, x, w, rstd } = g;
    need(dim > 0 && x.size % dim === 0, "rmsnormBackward: x.size must be a multiple of dim");
    const rows = x.size / dim;
    need(
      dx.size >= x.size && dout.size >= x.size && dw.size >= dim && w.size >= dim && rstd.size >= rows,
      "rmsnormBackward: storage too small",
    );
    const q = [dx, dw, dout, x, w, rstd].map((s) => this.p(s)) as [Ptr, Ptr, Ptr, Ptr, Ptr, Ptr];
    this.k.rmsnormBackward(...q, rows, dim);
  }
  swiglu(out: Storage, a: Storage, b: Storage): void {
    need(a.size >= out.size && b.size >= out.size, "swiglu: input smaller than output");
    this.k.swiglu(this.p(out), this.p(a), this.p(b), out.size);
  }
  swigluBackward(da: Storage, db: Storage, dout: Storage, a: Storage, b: Storage): void {
    const n = dout.size;
    need(da.size >= n && db.size >= n && a.size >= n && b.size >= n, "swigluBackward: storage too small");
    this.k.swigluBackward(this.p(da), this.p(db), this.p(dout), this.p(a), this.p(b), n);
  }

  // ---- positional / attention ----

  private ropeCall(
    out: Storage,
    x: Storage,
    cos: Storage,
    sin: Storage,
    p: RopeParams,
    backward: boolean,
  ): void {
    const { rows, seq, nHeads, headDim } = p;
    need(headDim > 0 && headDim % 2 === 0, "rope: headDim must be even and positive");
    const n = rows * nHeads * headDim;
    need(n <= x.size && n <= out.size, "rope: storage smaller than rows*nHeads*headDim");
    const maxPos = Math.floor(Math.min(cos.size, sin.size) / (headDim / 2));
    let pos = 0;
    if (p.positions) {
      need(p.positions.length >= rows, "rope: positions shorter than rows");
      checkIndices(p.positions.subarray(0, rows), maxPos, "rope position");
      pos = this.indices(p.positions);
    } else {
      need(rows === 0 || seq > 0, "rope: seq must be positive");
      need(rows === 0 || Math.min(seq, rows) <= maxPos, "rope: seq exceeds the cos/sin tables");
    }
    need(!backward || out !== x, "ropeBackward: dx may not alias dout");
    const ptrs = [out, x, cos, sin].map((s) => this.p(s)) as [Ptr, Ptr, Ptr, Ptr];
    this.k.rope(...ptrs, rows, seq, nHeads, headDim, pos, +backward);
  }
  rope(out: Storage, x: Storage, cos: Storage, sin: Storage, p: RopeParams): void {
    this.ropeCall(out, x, cos, sin, p, false);
  }
  ropeBackward(dx: Storage, dout: Storage, cos: Storage, sin: Storage, p: RopeParams): void {
    this.ropeCall(dx, dout, cos, sin, p, true);
  }

  private checkAttention(
    q: Storage,
    k: Storage,
    v: Storage,
    out: Storage,
    lse: Storage,
    p: AttentionParams,
  ): void {
    need(
      p.nHeads > 0 && p.nKvHeads > 0 && p.nHeads % p.nKvHeads === 0,
      "attention: nHeads must be a multiple of nKvHeads",
    );
    need(p.headDim > 0, "attention: headDim must be positive");
    need(
      p.batch >= 0 && p.sq >= 0 && p.sk >= 0 && p.qOffset >= 0 && p.window >= 0,
      "attention: negative size",
    );
    const nq = p.batch * p.sq * p.nHeads * p.headDim,
      nk = p.batch * p.sk * p.nKvHeads * p.headDim;
    need(nq <= q.size && nq <= out.size, "attention: q/out smaller than batch*sq*nHeads*headDim");
    need(nk <= k.size && nk <= v.size, "attention: k/v smaller than batch*sk*nKvHeads*headDim");
    need(p.batch * p.nHeads * p.sq <= lse.size, "attention: lse smaller than batch*nHeads*sq");
  }
  attention(out: Storage, lse: Storage, q: Storage, k: Storage, v: Storage, p: AttentionParams): void {
    this.checkAttention(q, k, v, out, lse, p);
    const ptrs = [out, lse, q, k, v].map((s) => this.p(s)) as [Ptr, Ptr, Ptr, Ptr, Ptr];
    this.k.attention(...ptrs, ...attnArgs(p));
  }
  attentionBackward(g: AttentionGrads, p: AttentionParams): void {
    const { dq, dk, dv, dout, q, k, v, out, lse } = g;
    this.checkAttention(q, k, v, out, lse, p);
    this.checkAttention(dq, dk, dv, dout, lse, p);
    const ptrs = [dq, dk, dv, dout, q, k, v, out, lse].map((s) => this.p(s));
    this.k.attentionBackward(...(ptrs as [Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr]), ...attnArgs(p));
  }

  // ---- upsampling ----

  private checkIndexed(
    x: Storage,
    out: Storage,
    w: Storage,
    pos: Int32Array,
    dIn: number,
    dOut: number,
  ): number {
    need(dIn > 0 && dOut > 0, "indexedLinear: dims must be positive");
    need(pos.length * dIn <= x.size && pos.length * dOut <= out.size, "indexedLinear: x or out too small");
    const nPos = Math.floor(w.size / (dIn * dOut));
    checkIndices(pos, nPos, "indexedLinear position");
    return nPos;
  }
  indexedLinear(out: Storage, x: Storage, w: Storage, p: IndexedLinearParams): void {
    const { pos, dIn, dOut } = p;
    const nPos = this.checkIndexed(x, out, w, pos, dIn, dOut);
    const ptrs = [out, x, w].map((s) => this.p(s)) as [Ptr, Ptr, Ptr];
    this.k.indexedLinear(...ptrs, this.indices(pos), pos.length, dIn, dOut, nPos);
  }
  indexedLinearBackward(g: IndexedLinearGrads, p: IndexedLinearParams): void {
    const { dx, dw, dout, x, w } = g;
    const { pos, dIn, dOut } = p;
    const nPos = this.checkIndexed(x, dout, w, pos, dIn, dOut);
    need(pos.length * dIn <= dx.size && dw.size >= w.size, "indexedLinearBackward: dx or dw too small");
    const ptrs = [dx, dw, dout, x, w].map((s) => this.p(s)) as [Ptr, Ptr, Ptr, Ptr, Ptr];
    this.k.indexedLinearBackward(...ptrs, this.indices(pos), pos.length, dIn, dOut, nPos);
  }

  // ---- loss ----

  crossEntropy(loss: Storage, lse: Storage, logits: Storage, targets: Int32Array, vocab: number): void {
    const rows = targets.length;
    need(vocab > 0, "crossEntropy: vocab must be positive");
    need(
      rows * vocab <= logits.size && loss.size >= rows && lse.size >= rows,
      "crossEntropy: storage too small",
    );
    checkIndices(targets, vocab, "crossEntropy target");
    const ptrs = [loss, lse, logits].map((s) => this.p(s)) as [Ptr, Ptr, Ptr];
    this.k.crossEntropy(...ptrs, this.indices(targets), rows, vocab);
  }
  crossEntropyBackward(
    dlogits: Storage,
    dloss: Storage,
    logits: Storage,
    lse: Storage,
    targets: Int32Array,
    vocab: number,
  ): void {
    const rows = targets.length;
    need(vocab > 0, "crossEntropyBackward: vocab must be positive");
    need(
      rows * vocab <= logits.size && rows * vocab <= dlogits.size && dloss.size >= rows && lse.size >= rows,
      "crossEntropyBackward: storage too small",
    );
    checkIndices(targets, vocab, "crossEntropyBackward target");
    const ptrs = [dlogits, dloss, logits, lse].map((s) => this.p(s)) as [Ptr, Ptr, Ptr, Ptr];
    this.k.crossEntropyBackward(...ptrs, this.indices(targets), rows, vocab);
  }

  // ---- optimiser ----

  clipGradNorm(p: ClipGradNormParams): void {
    // Sum of squares accumulated in double by the kernel, per gradient, then across them as the reference does.
    let ss = 0;
    for (const g of p.grads) ss += this.k.sumSquares(this.p(g), g.size);
    const norm = Math.sqrt(ss);
    const heap = this.heapF32();
    heap[this.p(p.norm) >> 2] = norm;
    // A non-finite norm gives a NaN scale, and AdamW then skips the update (the interface's rule).
    heap[this.p(p.scale) >> 2] = !Number.isFinite(norm)
      ? NaN
      : p.maxNorm > 0
        ? Math.min(1, p.maxNorm / (norm + 1e-6))
        : 1;
  }
  adamw(param: Storage, grad: Storage, m: Storage, v: Storage, p: AdamWParams): void {
    const n = param.size;
    need(grad.size >= n && m.size >= n && v.size >= n, "adamw: grad/m/v smaller than param");
    const gradScale = this.heapF32()[this.p(p.gradScale) >> 2];
    if (!Number.isFinite(gradScale)) return; // a non-finite gradient norm: the step is skipped
    this.k.adamw(this.p(param), this.p(grad), this.p(m), this.p(v), n, ...adamArgs(p, gradScale));
  }
}
