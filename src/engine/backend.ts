// The private interface between the op layer (engine/ops.ts) and a compute backend.
//
// Every tensor's data lives in a `Storage` owned by a backend, so a backend can keep it outside the JS heap
// (native memory, GPU buffers). The op layer never touches element data directly: it only passes storages,
// shapes and small integer index arrays (Int32Array, host memory) to these kernels.
//
// Conventions shared by every kernel:
// - All tensors are dense row-major. Sizes are element counts.
// - Forward kernels WRITE their outputs.
// - Backward kernels ACCUMULATE (+=) into every gradient output, so that a tensor used twice simply receives
//   both contributions and the engine never needs a separate add.
// - Output storages never alias inputs unless a kernel says so.
// - Scalars that a step computes (the loss, the gradient norm, the clip scale) are [1] storages: they stay on
//   the device, and kernels that need them (a backward's seed, AdamW's gradient scale) read them there. Only
//   `read`/`readSync` bring data to the host, so an asynchronous device (WebGPU) can queue a whole training
//   step without waiting for it (the design of jax-js's src/backend.ts: `read` returns a Promise beside a
//   blocking `readSync`).
// - Kernels with many storages take them as one object, named, so that two of the same type cannot be swapped
//   by position.

export interface Storage {
  /** Number of elements. */
  readonly size: number;
}

export interface MatmulParams {
  m: number;
  n: number;
  k: number;
  /** A is stored [k, m] (and used transposed) instead of [m, k]. */
  transA: boolean;
  /** B is stored [n, k] (and used transposed) instead of [k, n]. */
  transB: boolean;
  /** out += op(A) op(B) instead of out = op(A) op(B). */
  accumulate: boolean;
}

export interface AttentionParams {
  batch: number;
  /** Query positions per batch row. */
  sq: number;
  /** Key/value positions per batch row. */
  sk: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  /** Query i sits at position qOffset + i; key j at position j (causal: key <= query). */
  qOffset: number;
  /** Each query sees keys with 0 <= qpos - kpos < window; 0 means no window. */
  window: number;
  scale: number;
}

export interface RopeParams {
  /** Rows of the [rows, nHeads, headDim] input (rows = batch * seq). */
  rows: number;
  seq: number;
  nHeads: number;
  headDim: number;
  /** Position of row r: positions[r] when given, else r % seq. */
  positions: Int32Array | null;
}

export interface AdamWParams {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step count, for bias correction. */
  step: number;
  /**
   * A [1] storage: gradients are multiplied by its value first (global-norm clipping, see clipGradNorm). When
   * it is not finite (clipGradNorm saw a non-finite norm) the update is skipped: parameters and moments stay.
   */
  gradScale: Storage;
}

export interface ClipGradNormParams {
  /** [1] out: sqrt of the sum of squares of every element of every gradient (accumulated in double). */
  norm: Storage;
  /**
   * [1] out: torch's clip_grad_norm_ coefficient, min(1, maxNorm / (norm + 1e-6)); 1 when maxNorm <= 0; NaN
   * when the norm is not finite (AdamW then skips the update).
   */
  scale: Storage;
  grads: readonly Storage[];
  maxNorm: number;
}

export interface CopyRowsParams {
  /** Floats per row. */
  dim: number;
  /** Rows to copy. */
  rows: number;
  /** First row read in src. */
  srcRow: number;
  /** First row written in dst. */
  dstRow: number;
}

export interface RmsnormGrads {
  /** Accumulated: input gradient [rows, dim]. */
  dx: Storage;
  /** Accumulated: weight gradient [dim]. */
  dw: Storage;
  dout: Storage;
  x: Storage;
  w: Storage;
  /** From the forward: 1/rms per row. */
  rstd: Storage;
}

export interface AttentionGrads {
  /** Accumulated: [B,Sq,H,hd]. */
  dq: Storage;
  /** Accumulated: [B,Sk,Hkv,hd]. */
  dk: Storage;
  /** Accumulated: [B,Sk,Hkv,hd]. */
  dv: Storage;
  dout: Storage;
  q: Storage;
  k: Storage;
  v: Storage;
  /** The forward's output and log-sum-exp. */
  out: Storage;
  lse: Storage;
}

export interface IndexedLinearGrads {
  /** Accumulated: [rows, dIn]. */
  dx: Storage;
  /** Accumulated: [P, dOut, dIn]. */
  dw: Storage;
  dout: Storage;
  x: Storage;
  w: Storage;
}

export interface IndexedLinearParams {
  /** Matrix of each row: W[pos[r]]. */
  pos: Int32Array;
  dIn: number;
  dOut: number;
}

export interface Backend {
  readonly name: string;

  // ---- storage ----
  /** A storage of `size` elements, zero-filled unless `zero` is false (then its contents are unspecified). */
  alloc(size: number, zero?: boolean): Storage;
  fromFloat32(data: Float32Array): Storage;
  /** A copy of the data as float32, once every kernel queued before this call has run. */
  read(s: Storage): Promise<Float32Array>;
  /**
   * The same, blocking until the data is on the host. For CPU backends, tests and code outside a training
   * step; a step (forward, backward, clipping, update) never calls it.
   */
  readSync(s: Storage): Float32Array;
  /** Copy `data` into s starting at element `offset`. */
  write(s: Storage, data: Float32Array, offset: number): void;
  /** The storage will not be used again (lets a backend recycle memory). */
  release(s: Storage): void;

  // ---- elementwise (n = out.size) ----
  fill(out: Storage, value: number): void;
  copy(out: Storage, a: Storage): void;
  /** out = a + b (out may alias a or b). */
  add(out: Storage, a: Storage, b: Storage): void;
  /** out += alpha * a (out may not alias a). */
  axpy(out: Storage, a: Storage, alpha: number): void;
  /** out = alpha * a (out may alias a). */
  scale(out: Storage, a: Storage, alpha: number): void;
  /** out[0] = alpha * sum(a), accumulated in double precision, on the device. */
  reduceSum(out: Storage, a: Storage, alpha: number): void;
  /** out[i] = alpha * a[0] for every element of out: a device scalar spread over a storage. */
  broadcast(out: Storage, a: Storage, alpha: number): void;
  /** dst rows [dstRow, dstRow + rows) = src rows [srcRow, srcRow + rows), rows of `dim` (no aliasing). */
  copyRows(dst: Storage, src: Storage, p: CopyRowsParams): void;

  // ---- dense linear algebra ----
  /** out[m,n] (+)= op(A)[m,k] op(B)[k,n]. */
  matmul(out: Storage, a: Storage, b: Storage, p: MatmulParams): void;

  // ---- embedding / rows ----
  /** out[i,:] = table[ids[i],:], out is [ids.length, dim]. */
  embedding(out: Storage, table: Storage, ids: Int32Array, dim: number): void;
  /** dtable[ids[i],:] += dout[i,:]. */
  embeddingBackward(dtable: Storage, dout: Storage, ids: Int32Array, dim: number): void;
  /** out[i,:] = src[idx[i],:] (same kernel as embedding; kept separate for clarity of intent). */
  gatherRows(out: Storage, src: Storage, idx: Int32Array, dim: number): void;
  /** dst[idx[i],:] += src[i,:]; idx may repeat. */
  scatterAddRows(dst: Storage, src: Storage, idx: Int32Array, dim: number): void;

  // ---- normalisation and activations ----
  /** out = x * rsqrt(mean(x^2) + eps) * w per row of `dim`; writes rstd[row]. */
  rmsnorm(out: Storage, rstd: Storage, x: Storage, w: Storage, dim: number, eps: number): void;
  rmsnormBackward(g: RmsnormGrads, dim: number): void;
  /** out = silu(a) * b. */
  swiglu(out: Storage, a: Storage, b: Storage): void;
  swigluBackward(da: Storage, db: Storage, dout: Storage, a: Storage, b: Storage): void;

  // ---- positional / attention ----
  /**
   * Rotary embedding of interleaved pairs (x[2j], x[2j+1]) by angle pos * freq[j]; cos/sin are tables
   * [maxPos, headDim/2]. out may alias x.
   */
  rope(out: Storage, x: Storage, cos: Storage, sin: Storage, p: RopeParams): void;
  /** dx += R(-angle) dout. */
  ropeBackward(dx: Storage, dout: Storage, cos: Storage, sin: Storage, p: RopeParams): void;
  /**
   * Causal (optionally sliding-window) softmax attention. q [B,Sq,H,hd], k/v [B,Sk,Hkv,hd]; query head h
   * reads kv head floor(h / (H/Hkv)). out [B,Sq,H,hd]; lse [B,H,Sq] (log-sum-exp of the scaled scores, kept
   * for the backward).
   */
  attention(out: Storage, lse: Storage, q: Storage, k: Storage, v: Storage, p: AttentionParams): void;
  attentionBackward(g: AttentionGrads, p: AttentionParams): void;

  // ---- upsampling ----
  /** out[r,:] = W[pos[r]] x[r,:] with W [P, dOut, dIn], x [rows, dIn], out [rows, dOut]. */
  indexedLinear(out: Storage, x: Storage, w: Storage, p: IndexedLinearParams): void;
  /** dx[r] += W[pos[r]]^T dout[r]; dW[pos[r]] += dout[r] x[r]^T. */
  indexedLinearBackward(g: IndexedLinearGrads, p: IndexedLinearParams): void;

  // ---- loss ----
  /**
   * Per-row cross-entropy of logits [rows, vocab] against integer targets, through a log-softmax:
   * loss[r] = lse[r] - logits[r, t[r]]. Writes loss [rows] and lse [rows].
   */
  crossEntropy(loss: Storage, lse: Storage, logits: Storage, targets: Int32Array, vocab: number): void;
  /** dlogits[r,:] += dloss[r] * (softmax(logits[r,:]) - onehot(t[r])). */
  crossEntropyBackward(
    dlogits: Storage,
    dloss: Storage,
    logits: Storage,
    lse: Storage,
    targets: Int32Array,
    vocab: number,
  ): void;

  // ---- optimiser ----
  /** Global gradient norm and clip coefficient of a set of gradients, on the device. */
  clipGradNorm(p: ClipGradNormParams): void;
  /** In-place AdamW (decoupled weight decay, official semantics) on one parameter. */
  adamw(param: Storage, grad: Storage, m: Storage, v: Storage, p: AdamWParams): void;
}
