// The keys and values of one attention layer for one sequence, kept between generation steps.
//
// A stage with a sliding window W only ever reads the last W positions, so its cache is a ring of W slots and
// memory stays bounded however long the generation runs; a stage without a window keeps every position and
// grows by doubling. Keys are stored after RoPE (at their own positions), so the order of the slots does not
// matter to attention: a query sees every valid slot, and softmax is a sum over them.
//
// Storages are allocated with `backend.alloc` rather than inside a `scoped` frame: they outlive every step.

import type { Backend, Storage } from "../engine/backend.js";
import { Tensor } from "../engine/tensor.js";

const MIN_SLOTS = 16;

export class KvCache {
  private keys: Storage;
  private values: Storage;
  private slots: number;
  /** Positions appended so far (the position of the next one). */
  length = 0;

  /** `window`: 0 for a stage without a sliding window (the cache grows), else W (a ring of W slots). */
  constructor(
    private readonly backend: Backend,
    readonly nKvHeads: number,
    readonly headDim: number,
    readonly window: number,
  ) {
    this.slots = window > 0 ? Math.min(window, MIN_SLOTS) : MIN_SLOTS;
    this.keys = backend.alloc(this.slots * this.rowSize);
    this.values = backend.alloc(this.slots * this.rowSize);
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
   * Append `count` consecutive positions whose keys/values are rows of `k`/`v` [count, rowSize] (host memory).
   * For a ring only the last W of them are kept: the earlier ones are outside every later query's window.
   */
  append(k: Float32Array, v: Float32Array, count: number): void {
    const rs = this.rowSize;
    const end = this.length + count;
    this.reserve(this.window > 0 ? Math.min(end, this.window) : end);
    const first = this.window > 0 ? Math.max(this.length, end - this.window) : this.length;
    for (let t = first; t < end; t++) {
      const slot = this.window > 0 ? t % this.window : t;
      const r = t - this.length;
      this.backend.write(this.keys, k.subarray(r * rs, (r + 1) * rs), slot * rs);
      this.backend.write(this.values, v.subarray(r * rs, (r + 1) * rs), slot * rs);
    }
    this.length = end;
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
    const keys = this.backend.alloc(n * rs);
    const values = this.backend.alloc(n * rs);
    const used = this.length * rs;
    if (used > 0) {
      this.backend.write(keys, this.backend.read(this.keys).subarray(0, used), 0);
      this.backend.write(values, this.backend.read(this.values).subarray(0, used), 0);
    }
    this.backend.release(this.keys);
    this.backend.release(this.values);
    this.keys = keys;
    this.values = values;
    this.slots = n;
  }
}
