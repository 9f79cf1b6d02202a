// The keys and values of one attention layer for one sequence, kept between generation steps.
//
// A stage with a sliding window W only ever reads the last W positions, so its cache is a ring of W slots and
// memory stays bounded however long the generation runs; a stage without a window keeps every position and
// grows by doubling. Keys are stored after RoPE (at their own positions), so the order of the slots does not
// matter to attention: a query sees every valid slot, and softmax is a sum over them.
//
// Storages are allocated with `backend.alloc` rather than inside a `scoped` frame: they outlive every step. Keys
// and values only ever move on the device (copyRows), never through the host.

import type { Backend, Storage } from "../engine/backend.js";
import { Tensor } from "../engine/tensor.js";

const MIN_SLOTS = 16;

export class KvCache {
  private keys: Storage;
  private values: Storage;
  private slots: number;
  /** Positions appended so far (the position of the next one). */
  length = 0;

  /**
   * `window`: 0 for a stage without a sliding window (the cache grows), else W (a ring of W slots).
   * `capacity`: positions to make room for up front (a generation knows its prompt and its maximum length);
   * the slots are not written until used, so the memory of a large reservation that is never reached stays
   * virtual, and a cache that reaches it never reallocates (no copies, nothing left behind in a pool).
   */
  constructor(
    private readonly backend: Backend,
    readonly nKvHeads: number,
    readonly headDim: number,
    readonly window: number,
    capacity = 0,
  ) {
    const want = Math.max(MIN_SLOTS, capacity);
    this.slots = window > 0 ? Math.min(window, want) : want;
    this.keys = backend.alloc(this.slots * this.rowSize, false);
    this.values = backend.alloc(this.slots * this.rowSize, false);
  }

  get rowSize(): number {
    return this.nKvHeads * this.headDim;
  }

  /** Number of positions a query at the latest position attends to. */
  get visible(): number {
    return this.window > 0 ? Math.min(this.length, this.window) : this.length;
  }

  /** Slots currently allocated (bounded by the window for sliding-window stages). */
  get capacity(): number {
    return this.slots;
  }

  /**
   * Append `count` consecutive positions whose keys/values are rows [row, row + count) of `k`/`v` (viewed as
   * rows of n_kv_heads * head_dim), copied on the device. For a ring only the last W of them are kept: the
   * earlier ones are outside every later query's window.
   */
  append(k: Tensor, v: Tensor, row: number, count: number): void {
    const end = this.length + count;
    this.reserve(this.window > 0 ? Math.min(end, this.window) : end);
    let t = this.window > 0 ? Math.max(this.length, end - this.window) : this.length;
    while (t < end) {
      // A ring wraps at most once: copy the run of positions up to the end of the slots, then the rest.
      const slot = this.window > 0 ? t % this.window : t;
      const n = Math.min(end - t, this.slots - slot);
      this.copy(this.keys, slot, k, row + t - this.length, n);
      this.copy(this.values, slot, v, row + t - this.length, n);
      t += n;
    }
    this.length = end;
  }

  /**
   * Keys and values for a chunk of `count` new queries whose keys/values are the rows of `k`/`v`, and the
   * chunk's first query position among them; the new positions are appended. Without a window the cache is
   * in position order, so the new rows are appended first and the whole cache is the answer (no copy). A ring
   * is not in position order and the chunk may overwrite keys its own earlier queries need, so the visible
   * positions and the new ones are laid out in order in a scratch pair first.
   */
  extend(k: Tensor, v: Tensor, count: number): { k: Tensor; v: Tensor; qOffset: number } {
    if (this.window === 0) {
      const qOffset = this.length;
      this.append(k, v, 0, count);
      return { ...this.view(), qOffset };
    }
    const vis = this.visible;
    const shape = [1, vis + count, this.nKvHeads, this.headDim];
    const kk = Tensor.empty(this.backend, shape),
      vv = Tensor.empty(this.backend, shape);
    for (let t = this.length - vis; t < this.length;) {
      const slot = t % this.window;
      const n = Math.min(this.length - t, this.slots - slot);
      const p = { dim: this.rowSize, rows: n, srcRow: slot, dstRow: t - (this.length - vis) };
      this.backend.copyRows(kk.storage, this.keys, p);
      this.backend.copyRows(vv.storage, this.values, p);
      t += n;
    }
    const p = { dim: this.rowSize, rows: count, srcRow: 0, dstRow: vis };
    this.backend.copyRows(kk.storage, k.storage, p);
    this.backend.copyRows(vv.storage, v.storage, p);
    this.append(k, v, 0, count);
    return { k: kk, v: vv, qOffset: vis };
  }

  /** Keys and values of every visible position as [1, visible, n_kv_heads, head_dim] views (no copy). */
  view(): { k: Tensor; v: Tensor } {
    const shape = [1, this.visible, this.nKvHeads, this.headDim];
    return { k: new Tensor(this.backend, this.keys, shape), v: new Tensor(this.backend, this.values, shape) };
  }

  /** Hand the storages back to the backend; the cache must not be used afterwards. */
  release(): void {
    this.backend.release(this.keys);
    this.backend.release(this.values);
  }

  /** Grow to at least `slots` slots, keeping the contents (only before a ring has wrapped). */
  private reserve(slots: number): void {
    if (slots <= this.slots) return;
    let n = this.slots;
    while (n < slots) n *= 2;
    if (this.window > 0) n = Math.min(n, this.window);
    const rs = this.rowSize;
    const keys = this.backend.alloc(n * rs, false);
    const values = this.backend.alloc(n * rs, false);
    const p = { dim: rs, rows: this.length, srcRow: 0, dstRow: 0 };
    if (this.length > 0) {
      this.backend.copyRows(keys, this.keys, p);
      this.backend.copyRows(values, this.values, p);
    }
    this.backend.release(this.keys);
    this.backend.release(this.values);
    this.keys = keys;
    this.values = values;
    this.slots = n;
  }

  /** Rows [row, row + n) of src (rows of rowSize) into slots [slot, slot + n) of dst. */
  private copy(dst: Storage, slot: number, src: Tensor, row: number, n: number): void {
    if ((row + n) * this.rowSize > src.size)
      throw new Error(`KvCache: rows ${row}..${row + n} past [${src.shape}]`);
    this.backend.copyRows(dst, src.storage, { dim: this.rowSize, rows: n, srcRow: row, dstRow: slot });
  }
}
