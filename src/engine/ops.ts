// Differentiable ops. Each is coarse (one backend kernel forward, one or two backward) so that a fast backend
// implements it as a single fused kernel. Inputs are dense row-major tensors; "rows" means the product of all
// leading dimensions.

import type { AttentionParams, Storage } from "./backend.js";
import { Tensor, record, scratch, sizeOf, type Shape } from "./tensor.js";

function check(cond: boolean, msg: () => string): void {
  if (!cond) throw new Error(msg());
}

function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * Where a kernel that writes several gradients at once should write them: each input's gradient, except that
 * an input that needs none gets a scratch, and so does an input passed twice (swiglu(x, x)): kernels may not
 * write two outputs that alias, so the second contribution lands in a scratch that `done` adds back.
 */
function gradTargets(ts: readonly Tensor[]): { grads: Storage[]; done: () => void } {
  const be = ts[0].backend;
  const scratches: Storage[] = [];
  const adds: [Storage, Storage][] = [];
  const seen = new Set<Tensor>();
  const grads = ts.map((t) => {
    if (t.requiresGrad && !seen.has(t)) {
      seen.add(t);
      return t.ensureGrad().storage;
    }
    const s = be.alloc(t.size);
    scratches.push(s);
    if (t.requiresGrad) adds.push([t.ensureGrad().storage, s]);
    return s;
  });
  const done = () => {
    for (const [g, s] of adds) be.axpy(g, s, 1);
    for (const s of scratches) be.release(s);
  };
  return { grads, done };
}

/** A view with another shape over the same storage. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  check(sizeOf(shape) === x.size, () => `reshape [${x.shape}] -> [${shape}]`);
  const out = new Tensor(x.backend, x.storage, shape);
  record(out, [x], (g) => {
    if (x.requiresGrad) x.backend.axpy(x.ensureGrad().storage, g.storage, 1);
  });
  return out;
}

export function add(a: Tensor, b: Tensor): Tensor {
  check(sameShape(a.shape, b.shape), () => `add [${a.shape}] + [${b.shape}]`);
  const be = a.backend;
  const out = Tensor.empty(be, a.shape);
  be.add(out.storage, a.storage, b.storage);
  record(out, [a, b], (g) => {
    if (a.requiresGrad) be.axpy(a.ensureGrad().storage, g.storage, 1);
    if (b.requiresGrad) be.axpy(b.ensureGrad().storage, g.storage, 1);
  });
  return out;
}

export function scale(a: Tensor, alpha: number): Tensor {
  const be = a.backend;
  const out = Tensor.empty(be, a.shape);
  be.scale(out.storage, a.storage, alpha);
  record(out, [a], (g) => {
    if (a.requiresGrad) be.axpy(a.ensureGrad().storage, g.storage, alpha);
  });
  return out;
}

/** Sum of all elements, as a [1] tensor. */
export function sum(a: Tensor): Tensor {
  const be = a.backend;
  const out = Tensor.zeros(be, [1]);
  be.reduceSum(out.storage, a.storage, 1);
  record(out, [a], (g) => {
    if (!a.requiresGrad) return;
    // The seed stays on the device: spread it over a's shape, then accumulate.
    const spread = be.alloc(a.size, false);
    be.broadcast(spread, g.storage, 1);
    be.axpy(a.ensureGrad().storage, spread, 1);
    be.release(spread);
  });
  return out;
}

export function mean(a: Tensor): Tensor {
  return scale(sum(a), 1 / a.size);
}

/** 2-D matmul with optional transposes: op(a) [m,k] x op(b) [k,n]. */
export function matmul(a: Tensor, b: Tensor, transA = false, transB = false): Tensor {
  check(
    a.shape.length === 2 && b.shape.length === 2,
    () => `matmul needs 2-D, got [${a.shape}] [${b.shape}]`,
  );
  const m = transA ? a.shape[1] : a.shape[0];
  const k = transA ? a.shape[0] : a.shape[1];
  const kb = transB ? b.shape[1] : b.shape[0];
  const n = transB ? b.shape[0] : b.shape[1];
  check(k === kb, () => `matmul inner dims ${k} vs ${kb}`);
  const be = a.backend;
  const out = Tensor.empty(be, [m, n]);
  be.matmul(out.storage, a.storage, b.storage, { m, n, k, transA, transB, accumulate: false });
  record(out, [a, b], (g) => {
    // C = op(A) op(B): dop(A) = G op(B)^T, dop(B) = op(A)^T G, then undo the op on the stored layout.
    if (a.requiresGrad) {
      const ga = a.ensureGrad().storage;
      if (!transA)
        be.matmul(ga, g.storage, b.storage, {
          m,
          n: k,
          k: n,
          transA: false,
          transB: !transB,
          accumulate: true,
        });
      else
        be.matmul(ga, b.storage, g.storage, {
          m: k,
          n: m,
          k: n,
          transA: transB,
          transB: true,
          accumulate: true,
        });
    }
    if (b.requiresGrad) {
      const gb = b.ensureGrad().storage;
      if (!transB)
        be.matmul(gb, a.storage, g.storage, {
          m: k,
          n,
          k: m,
          transA: !transA,
          transB: false,
          accumulate: true,
        });
      else
        be.matmul(gb, g.storage, a.storage, {
          m: n,
          n: k,
          k: m,
          transA: true,
          transB: transA,
          accumulate: true,
        });
    }
  });
  return out;
}

/** y = x W^T for x [..., in] and W [out, in] (nn.Linear without bias). */
export function linear(x: Tensor, w: Tensor): Tensor {
  const inF = w.shape[1],
    outF = w.shape[0];
  check(x.dim(-1) === inF, () => `linear: input [${x.shape}] vs weight [${w.shape}]`);
  const rows = x.size / inF;
  const y = matmul(reshape(x, [rows, inF]), w, false, true);
  return reshape(y, [...x.shape.slice(0, -1), outF]);
}

/** Rows of `table` [V, d] picked by ids; output shape [...idsShape, d]. */
export function embedding(table: Tensor, ids: Int32Array, idsShape: Shape): Tensor {
  const dim = table.shape[1];
  check(sizeOf(idsShape) === ids.length, () => `embedding ids shape`);
  const V = table.shape[0];
  for (const id of ids) check(id >= 0 && id < V, () => `token id ${id} outside vocabulary of ${V}`);
  const be = table.backend;
  const out = Tensor.empty(be, [...idsShape, dim]);
  be.embedding(out.storage, table.storage, ids, dim);
  record(out, [table], (g) => {
    if (table.requiresGrad) be.embeddingBackward(table.ensureGrad().storage, g.storage, ids, dim);
  });
  return out;
}

/** out[i] = x[idx[i]] over rows of x viewed as [rows, d]. Output [idx.length, d]. */
export function gatherRows(x: Tensor, idx: Int32Array): Tensor {
  const dim = x.dim(-1);
  const rows = x.size / dim;
  for (const i of idx) check(i >= 0 && i < rows, () => `gatherRows index ${i} outside ${rows} rows`);
  const be = x.backend;
  const out = Tensor.empty(be, [idx.length, dim]);
  be.gatherRows(out.storage, x.storage, idx, dim);
  record(out, [x], (g) => {
    if (x.requiresGrad) be.scatterAddRows(x.ensureGrad().storage, g.storage, idx, dim);
  });
  return out;
}

/** A zero tensor [nRows, d] with src[i] added at row idx[i]. */
export function scatterAddRows(src: Tensor, idx: Int32Array, nRows: number): Tensor {
  const dim = src.dim(-1);
  check(
    src.size / dim === idx.length,
    () => `scatterAddRows: ${idx.length} indices for ${src.size / dim} rows`,
  );
  for (const i of idx) check(i >= 0 && i < nRows, () => `scatterAddRows index ${i} outside ${nRows} rows`);
  const be = src.backend;
  const out = Tensor.zeros(be, [nRows, dim]);
  be.scatterAddRows(out.storage, src.storage, idx, dim);
  record(out, [src], (g) => {
    if (!src.requiresGrad) return;
    const tmp = be.alloc(src.size);
    be.gatherRows(tmp, g.storage, idx, dim);
    be.axpy(src.ensureGrad().storage, tmp, 1);
    be.release(tmp);
  });
  return out;
}

export function rmsnorm(x: Tensor, w: Tensor, eps: number): Tensor {
  const dim = w.shape[0];
  check(x.dim(-1) === dim, () => `rmsnorm: input [${x.shape}] vs weight [${w.shape}]`);
  const be = x.backend;
  const out = Tensor.empty(be, x.shape);
  const rstd = scratch(be, x.size / dim, false);
  be.rmsnorm(out.storage, rstd, x.storage, w.storage, dim, eps);
  record(out, [x, w], (g) => {
    // Both gradients come out of one kernel; give it a scratch for whichever is not wanted.
    const dx = x.requiresGrad ? x.ensureGrad().storage : be.alloc(x.size);
    const dw = w.requiresGrad ? w.ensureGrad().storage : be.alloc(dim);
    be.rmsnormBackward({ dx, dw, dout: g.storage, x: x.storage, w: w.storage, rstd }, dim);
    if (!x.requiresGrad) be.release(dx);
    if (!w.requiresGrad) be.release(dw);
  });
  return out;
}

/** silu(a) * b, the SwiGLU gate. */
export function swiglu(a: Tensor, b: Tensor): Tensor {
  check(sameShape(a.shape, b.shape), () => `swiglu [${a.shape}] vs [${b.shape}]`);
  const be = a.backend;
  const out = Tensor.empty(be, a.shape);
  be.swiglu(out.storage, a.storage, b.storage);
  record(out, [a, b], (g) => {
    const t = gradTargets([a, b]);
    be.swigluBackward(t.grads[0], t.grads[1], g.storage, a.storage, b.storage);
    t.done();
  });
  return out;
}

/** Rotary tables for one stage: cos/sin [maxPos, headDim/2], not trainable. */
export interface RopeTables {
  cos: Tensor;
  sin: Tensor;
  maxPos: number;
}

/**
 * RoPE on x [B, S, H, hd] (interleaved pairs). Positions are 0..S-1 per row unless `positions` (one per
 * B*S row) is given.
 */
export function rope(x: Tensor, tables: RopeTables, positions: Int32Array | null = null): Tensor {
  check(x.shape.length === 4, () => `rope expects [B,S,H,hd], got [${x.shape}]`);
  const [B, S, H, hd] = x.shape;
  check(
    tables.cos.shape[1] * 2 === hd,
    () => `rope table for head dim ${tables.cos.shape[1] * 2}, got ${hd}`,
  );
  if (positions) for (const p of positions) check(p >= 0 && p < tables.maxPos, () => `rope position ${p}`);
  else check(S <= tables.maxPos, () => `sequence of ${S} beyond rope table of ${tables.maxPos}`);
  const p = { rows: B * S, seq: S, nHeads: H, headDim: hd, positions };
  const be = x.backend;
  const out = Tensor.empty(be, x.shape);
  be.rope(out.storage, x.storage, tables.cos.storage, tables.sin.storage, p);
  record(out, [x], (g) => {
    if (x.requiresGrad)
      be.ropeBackward(x.ensureGrad().storage, g.storage, tables.cos.storage, tables.sin.storage, p);
  });
  return out;
}

export interface AttentionOptions {
  /** 0 or null: full causal attention. */
  window?: number | null;
  /** Query i sits at position qOffset + i among the keys (generation with a cache); default sk - sq. */
  qOffset?: number;
}

/** Causal softmax attention. q [B,Sq,H,hd], k/v [B,Sk,Hkv,hd] -> [B,Sq,H,hd]. */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const [B, sq, H, hd] = q.shape;
  const [Bk, sk, Hkv, hdk] = k.shape;
  check(
    B === Bk && hd === hdk && sameShape(k.shape, v.shape) && H % Hkv === 0,
    () => `attention shapes q [${q.shape}] k [${k.shape}] v [${v.shape}]`,
  );
  const p: AttentionParams = {
    batch: B,
    sq,
    sk,
    nHeads: H,
    nKvHeads: Hkv,
    headDim: hd,
    qOffset: opts.qOffset ?? sk - sq,
    window: opts.window ?? 0,
    scale: 1 / Math.sqrt(hd),
  };
  const be = q.backend;
  const out = Tensor.empty(be, q.shape);
  const lse = scratch(be, B * H * sq, false);
  be.attention(out.storage, lse, q.storage, k.storage, v.storage, p);
  record(out, [q, k, v], (g) => {
    const t = gradTargets([q, k, v]);
    be.attentionBackward(
      {
        dq: t.grads[0],
        dk: t.grads[1],
        dv: t.grads[2],
        dout: g.storage,
        q: q.storage,
        k: k.storage,
        v: v.storage,
        out: out.storage,
        lse,
      },
      p,
    );
    t.done();
  });
  return out;
}

/** out[r] = W[pos[r]] x[r] for x [rows, dIn], W [P, dOut, dIn]: a separate linear map per position. */
export function indexedLinear(x: Tensor, w: Tensor, pos: Int32Array): Tensor {
  const [P, dOut, dIn] = w.shape;
  const rows = x.size / dIn;
  check(x.dim(-1) === dIn && rows === pos.length, () => `indexedLinear x [${x.shape}] W [${w.shape}]`);
  for (const p of pos) check(p >= 0 && p < P, () => `indexedLinear position ${p} outside ${P}`);
  const be = x.backend;
  const out = Tensor.empty(be, [rows, dOut]);
  const p = { pos, dIn, dOut };
  be.indexedLinear(out.storage, x.storage, w.storage, p);
  record(out, [x, w], (g) => {
    const dx = x.requiresGrad ? x.ensureGrad().storage : be.alloc(x.size);
    const dw = w.requiresGrad ? w.ensureGrad().storage : be.alloc(w.size);
    be.indexedLinearBackward({ dx, dw, dout: g.storage, x: x.storage, w: w.storage }, p);
    if (!x.requiresGrad) be.release(dx);
    if (!w.requiresGrad) be.release(dw);
  });
  return out;
}

/**
 * Mean cross-entropy of logits [rows, V] (through log-softmax) against integer targets: a [1] tensor.
 * Also returns the per-row losses [rows] (nats), which evaluation reads; both stay on the device.
 */
export function crossEntropy(logits: Tensor, targets: Int32Array): { loss: Tensor; rowLoss: Tensor } {
  const V = logits.dim(-1);
  const rows = logits.size / V;
  check(rows === targets.length, () => `crossEntropy: ${targets.length} targets for ${rows} rows`);
  for (const t of targets) check(t >= 0 && t < V, () => `target ${t} outside vocabulary of ${V}`);
  const be = logits.backend;
  const rowLoss = Tensor.empty(be, [rows]);
  const lse = scratch(be, rows, false);
  be.crossEntropy(rowLoss.storage, lse, logits.storage, targets, V);
  const loss = Tensor.empty(be, [1]);
  be.reduceSum(loss.storage, rowLoss.storage, 1 / rows);
  record(loss, [logits], (g) => {
    if (!logits.requiresGrad) return;
    // d(mean)/d(row loss) = seed / rows for every row, computed from the seed where it lives.
    const dl = be.alloc(rows, false);
    be.broadcast(dl, g.storage, 1 / rows);
    be.crossEntropyBackward(logits.ensureGrad().storage, dl, logits.storage, lse, targets, V);
    be.release(dl);
  });
  return { loss, rowLoss };
}

/**
 * Copy rows [srcRow, srcRow + rows) of src into rows [dstRow, ...) of dst, both viewed as rows of their last
 * dimension, on the device (KV caches, generation state). Not differentiable.
 */
export function copyRows(dst: Tensor, dstRow: number, src: Tensor, srcRow: number, rows: number): void {
  const dim = src.dim(-1);
  check(dst.dim(-1) === dim, () => `copyRows: rows of ${src.dim(-1)} into rows of ${dst.dim(-1)}`);
  check(
    rows >= 0 &&
      srcRow >= 0 &&
      dstRow >= 0 &&
      (srcRow + rows) * dim <= src.size &&
      (dstRow + rows) * dim <= dst.size,
    () =>
      `copyRows: rows [${srcRow}, ${srcRow + rows}) of [${src.shape}] into row ${dstRow} of [${dst.shape}]`,
  );
  check(dst.storage !== src.storage, () => "copyRows: source and destination alias");
  if (rows > 0) dst.backend.copyRows(dst.storage, src.storage, { dim, rows, srcRow, dstRow });
}
