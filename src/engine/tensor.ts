// Float32 tensors with a tape-based reverse mode.
//
// A tensor is a shape plus a Storage owned by a backend; data never leaves the backend unless asked for
// (toFloat32). Every differentiable op records one tape entry whose backward closure accumulates into the
// gradients of its inputs. `backward(loss)` replays the tape in reverse. Inside `noGrad` nothing is recorded.

import type { Backend, Storage } from "./backend.js";

export type Shape = readonly number[];

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

interface TapeEntry {
  output: Tensor;
  inputs: Tensor[];
  backward: (gradOut: Tensor) => void;
}

let tape: TapeEntry[] = [];
let gradEnabled = true;

// Allocation scopes: storages allocated for activations and op scratch inside `scoped()` are released when it
// returns, so a backend with its own memory pool reuses the same buffers every training step. Gradients of
// leaves (parameters) are allocated outside any scope and persist.
const scopes: { backend: Backend; storage: Storage }[][] = [];

/** Allocate a zeroed storage that belongs to the innermost scope (if any). */
export function scratch(backend: Backend, size: number, zero = true): Storage {
  const s = backend.alloc(size, zero);
  if (scopes.length > 0) scopes[scopes.length - 1].push({ backend, storage: s });
  return s;
}

/**
 * Run fn and release every storage allocated inside it, except those of the tensors it returns in `keep`.
 * The tape must have been consumed (backward) or cleared before the scope ends.
 */
export function scoped<T>(fn: () => T, keep: (result: T) => Tensor[] = () => []): T {
  const frame: { backend: Backend; storage: Storage }[] = [];
  scopes.push(frame);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    clearTape();
    for (const f of frame) f.backend.release(f.storage);
    throw e;
  }
  scopes.pop();
  const kept = new Set<Storage>(keep(result).map((t) => t.storage));
  const parent = scopes[scopes.length - 1];
  for (const f of frame) {
    if (!kept.has(f.storage)) f.backend.release(f.storage);
    else if (parent) parent.push(f);
  }
  return result;
}

export class Tensor {
  readonly shape: Shape;
  readonly size: number;
  grad: Tensor | null = null;
  /** Set on parameters and on any op output that depends on one. */
  requiresGrad: boolean;
  /** Keep this intermediate's gradient after backward (inspection, fixture checks). */
  retainGrad = false;

  constructor(
    readonly backend: Backend,
    readonly storage: Storage,
    shape: Shape,
    requiresGrad = false,
  ) {
    this.shape = [...shape];
    this.size = sizeOf(shape);
    if (storage.size < this.size) throw new Error(`storage of ${storage.size} for shape [${shape}]`);
    this.requiresGrad = requiresGrad;
  }

  static zeros(backend: Backend, shape: Shape, requiresGrad = false): Tensor {
    return new Tensor(backend, scratch(backend, sizeOf(shape)), shape, requiresGrad);
  }

  /** A tensor whose contents are unspecified: for outputs that a kernel overwrites entirely. */
  static empty(backend: Backend, shape: Shape): Tensor {
    return new Tensor(backend, scratch(backend, sizeOf(shape), false), shape);
  }

  static from(backend: Backend, data: Float32Array | number[], shape: Shape, requiresGrad = false): Tensor {
    const arr = data instanceof Float32Array ? data : Float32Array.from(data);
    if (arr.length !== sizeOf(shape)) throw new Error(`${arr.length} values for shape [${shape}]`);
    const t = new Tensor(backend, scratch(backend, arr.length, false), shape, requiresGrad);
    backend.write(t.storage, arr, 0);
    return t;
  }

  /** The data on the host, waiting for the device (never called inside a training step). */
  toFloat32(): Float32Array {
    const a = this.backend.readSync(this.storage);
    return a.length === this.size ? a : a.subarray(0, this.size);
  }

  /** The data on the host, without blocking: an asynchronous device resolves it when its queue has run. */
  async read(): Promise<Float32Array> {
    const a = await this.backend.read(this.storage);
    return a.length === this.size ? a : a.subarray(0, this.size);
  }

  item(): number {
    return this.toFloat32()[0];
  }

  dim(i: number): number {
    return this.shape[i < 0 ? this.shape.length + i : i];
  }

  /** The gradient buffer, allocated (zeroed) on first use. */
  ensureGrad(): Tensor {
    if (!this.grad) this.grad = new Tensor(this.backend, this.backend.alloc(this.size), this.shape);
    return this.grad;
  }

  zeroGrad(): void {
    if (this.grad) this.backend.fill(this.grad.storage, 0);
  }
}

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Run fn without recording anything on the tape (inference, optimiser updates). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/**
 * Record an op. Returns true when the output needs a gradient, in which case `backward` will be called with
 * the output's gradient during `backward()`.
 */
export function record(output: Tensor, inputs: Tensor[], backward: (gradOut: Tensor) => void): void {
  if (!gradEnabled) return;
  if (!inputs.some((t) => t.requiresGrad)) return;
  output.requiresGrad = true;
  tape.push({ output, inputs, backward });
}

/** Reverse-mode sweep from a scalar (or from an explicit seed gradient). Clears the tape. */
export function backward(loss: Tensor, seed?: Tensor): void {
  const entries = tape;
  tape = [];
  if (!loss.requiresGrad) throw new Error("backward() on a tensor that does not require grad");
  const g = loss.ensureGrad();
  if (seed) loss.backend.copy(g.storage, seed.storage);
  else loss.backend.fill(g.storage, 1);
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i];
    if (!e.output.grad) continue; // does not reach the loss
    e.backward(e.output.grad);
    // Intermediate gradients are dead once propagated; parameters keep theirs (they have no tape entry).
    if (!e.output.retainGrad) {
      e.output.backend.release(e.output.grad.storage);
      e.output.grad = null;
    }
  }
}

/** Drop a tape without running it (e.g. after an exception mid-forward). */
export function clearTape(): void {
  tape = [];
}
