// The reference backend: plain TypeScript, clear rather than fast, the oracle for every other backend.
// It runs anywhere JavaScript runs (Node, browsers). It can be built over float64 arrays so that tests can
// check gradients against finite differences without float32 noise.

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

type Arr = Float32Array | Float64Array;

export class RefStorage implements Storage {
  constructor(readonly data: Arr) {}
  get size(): number {
    return this.data.length;
  }
}

function d(s: Storage): Arr {
  return (s as RefStorage).data;
}

export class RefBackend implements Backend {
  readonly name: string;
  private readonly f64: boolean;

  constructor(opts: { float64?: boolean } = {}) {
    this.f64 = opts.float64 === true;
    this.name = this.f64 ? "ref64" : "ref";
  }

  private make(n: number): Arr {
    return this.f64 ? new Float64Array(n) : new Float32Array(n);
  }

  alloc(size: number, _zero = true): Storage {
    return new RefStorage(this.make(size));
  }
  fromFloat32(data: Float32Array): Storage {
    const a = this.make(data.length);
    a.set(data);
    return new RefStorage(a);
  }
  /** Only for tests on a float64 backend: the raw values. */
  readRaw(s: Storage): Arr {
    return d(s);
  }
  read(s: Storage): Promise<Float32Array> {
    return Promise.resolve(this.readSync(s));
  }
  readSync(s: Storage): Float32Array {
    return Float32Array.from(d(s));
  }
  write(s: Storage, data: Float32Array, offset: number): void {
    d(s).set(data, offset);
  }
  release(_s: Storage): void {
    // Garbage collected.
  }

  fill(out: Storage, value: number): void {
    d(out).fill(value);
  }
  copy(out: Storage, a: Storage): void {
    d(out).set(d(a));
  }
  add(out: Storage, a: Storage, b: Storage): void {
    const o = d(out),
      x = d(a),
      y = d(b);
    for (let i = 0; i < o.length; i++) o[i] = x[i] + y[i];
  }
  axpy(out: Storage, a: Storage, alpha: number): void {
    const o = d(out),
      x = d(a);
    for (let i = 0; i < o.length; i++) o[i] += alpha * x[i];
  }
  scale(out: Storage, a: Storage, alpha: number): void {
    const o = d(out),
      x = d(a);
    for (let i = 0; i < o.length; i++) o[i] = alpha * x[i];
  }
  reduceSum(out: Storage, a: Storage, alpha: number): void {
    const x = d(a);
    let s = 0;
    for (let i = 0; i < x.length; i++) s += x[i];
    d(out)[0] = alpha * s;
  }
  broadcast(out: Storage, a: Storage, alpha: number): void {
    d(out).fill(alpha * d(a)[0]);
  }
  copyRows(dst: Storage, src: Storage, p: CopyRowsParams): void {
    const { dim, rows, srcRow, dstRow } = p;
    d(dst).set(d(src).subarray(srcRow * dim, (srcRow + rows) * dim), dstRow * dim);
  }

  matmul(out: Storage, a: Storage, b: Storage, p: MatmulParams): void {
    const C = d(out),
      A = d(a),
      B = d(b);
    const { m, n, k, transA, transB } = p;
    if (!p.accumulate) C.fill(0, 0, m * n);
    // Row i of C accumulates in a float64 scratch row, so results do not depend on loop order.
    const acc = new Float64Array(n);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) acc[j] = C[i * n + j];
      if (!transB) {
        for (let kk = 0; kk < k; kk++) {
          const av = transA ? A[kk * m + i] : A[i * k + kk];
          if (av === 0) continue;
          const bo = kk * n;
          for (let j = 0; j < n; j++) acc[j] += av * B[bo + j];
        }
      } else {
        for (let j = 0; j < n; j++) {
          let s = 0;
          const bo = j * k;
          if (transA) for (let kk = 0; kk < k; kk++) s += A[kk * m + i] * B[bo + kk];
          else {
            const ao = i * k;
            for (let kk = 0; kk < k; kk++) s += A[ao + kk] * B[bo + kk];
          }
          acc[j] += s;
        }
      }
      for (let j = 0; j < n; j++) C[i * n + j] = acc[j];
    }
  }

  embedding(out: Storage, table: Storage, ids: Int32Array, dim: number): void {
    this.gatherRows(out, table, ids, dim);
  }
  embeddingBackward(dtable: Storage, dout: Storage, ids: Int32Array, dim: number): void {
    this.scatterAddRows(dtable, dout, ids, dim);
  }
  gatherRows(out: Storage, src: Storage, idx: Int32Array, dim: number): void {
    const o = d(out),
      s = d(src);
    for (let i = 0; i < idx.length; i++) o.set(s.subarray(idx[i] * dim, idx[i] * dim + dim), i * dim);
  }
  scatterAddRows(dst: Storage, src: Storage, idx: Int32Array, dim: number): void {
    const o = d(dst),
      s = d(src);
    for (let i = 0; i < idx.length; i++) {
      const oo = idx[i] * dim,
        so = i * dim;
      for (let j = 0; j < dim; j++) o[oo + j] += s[so + j];
    }
  }

  rmsnorm(out: Storage, rstd: Storage, x: Storage, w: Storage, dim: number, eps: number): void {
    const o = d(out),
      r = d(rstd),
      X = d(x),
      W = d(w);
    const rows = X.length / dim;
    for (let i = 0; i < rows; i++) {
      let ss = 0;
      for (let j = 0; j < dim; j++) ss += X[i * dim + j] * X[i * dim + j];
      const rs = 1 / Math.sqrt(ss / dim + eps);
      r[i] = rs;
      const rsr = r[i];
      for (let j = 0; j < dim; j++) o[i * dim + j] = X[i * dim + j] * rsr * W[j];
    }
  }
  rmsnormBackward(g: RmsnormGrads, dim: number): void {
    const DX = d(g.dx),
      DW = d(g.dw),
      DO = d(g.dout),
      X = d(g.x),
      W = d(g.w),
      R = d(g.rstd);
    const rows = X.length / dim;
    for (let i = 0; i < rows; i++) {
      const rs = R[i];
      // y = x * rs * w; dL/dx = rs * (g*w) - x * rs^3 * mean(g*w*x)
      let dot = 0;
      for (let j = 0; j < dim; j++) dot += DO[i * dim + j] * W[j] * X[i * dim + j];
      const c = (dot / dim) * rs * rs * rs;
      for (let j = 0; j < dim; j++) {
        const gi = DO[i * dim + j];
        DX[i * dim + j] += gi * W[j] * rs - X[i * dim + j] * c;
        DW[j] += gi * X[i * dim + j] * rs;
      }
    }
  }
  swiglu(out: Storage, a: Storage, b: Storage): void {
    const o = d(out),
      A = d(a),
      B = d(b);
    for (let i = 0; i < o.length; i++) {
      const x = A[i];
      o[i] = (x / (1 + Math.exp(-x))) * B[i];
    }
  }
  swigluBackward(da: Storage, db: Storage, dout: Storage, a: Storage, b: Storage): void {
    const DA = d(da),
      DB = d(db),
      G = d(dout),
      A = d(a),
      B = d(b);
    for (let i = 0; i < G.length; i++) {
      const x = A[i];
      const sg = 1 / (1 + Math.exp(-x));
      DB[i] += G[i] * x * sg;
      DA[i] += G[i] * B[i] * sg * (1 + x * (1 - sg));
    }
  }

  private ropeApply(
    out: Arr,
    x: Arr,
    C: Arr,
    S: Arr,
    p: RopeParams,
    sign: number,
    accumulate: boolean,
  ): void {
    const half = p.headDim / 2;
    for (let r = 0; r < p.rows; r++) {
      const pos = p.positions ? p.positions[r] : r % p.seq;
      for (let h = 0; h < p.nHeads; h++) {
        const base = (r * p.nHeads + h) * p.headDim;
        for (let j = 0; j < half; j++) {
          const c = C[pos * half + j],
            s = sign * S[pos * half + j];
          const x0 = x[base + 2 * j],
            x1 = x[base + 2 * j + 1];
          const y0 = x0 * c - x1 * s,
            y1 = x0 * s + x1 * c;
          if (accumulate) {
            out[base + 2 * j] += y0;
            out[base + 2 * j + 1] += y1;
          } else {
            out[base + 2 * j] = y0;
            out[base + 2 * j + 1] = y1;
          }
        }
      }
    }
  }
  rope(out: Storage, x: Storage, cos: Storage, sin: Storage, p: RopeParams): void {
    this.ropeApply(d(out), d(x), d(cos), d(sin), p, 1, false);
  }
  ropeBackward(dx: Storage, dout: Storage, cos: Storage, sin: Storage, p: RopeParams): void {
    this.ropeApply(d(dx), d(dout), d(cos), d(sin), p, -1, true);
  }

  private keyRange(p: AttentionParams, i: number): [number, number] {
    const qpos = p.qOffset + i;
    const hi = Math.min(qpos, p.sk - 1);
    const lo = p.window > 0 ? Math.max(0, qpos - p.window + 1) : 0;
    return [lo, hi];
  }

  attention(out: Storage, lse: Storage, q: Storage, k: Storage, v: Storage, p: AttentionParams): void {
    const O = d(out),
      L = d(lse),
      Q = d(q),
      K = d(k),
      V = d(v);
    const { batch, sq, sk, nHeads: H, nKvHeads: Hkv, headDim: hd, scale } = p;
    const group = H / Hkv;
    const scores = new Float64Array(sk);
    const acc = new Float64Array(hd);
    for (let b = 0; b < batch; b++)
      for (let h = 0; h < H; h++) {
        const kh = Math.floor(h / group);
        for (let i = 0; i < sq; i++) {
          const [lo, hi] = this.keyRange(p, i);
          const qo = ((b * sq + i) * H + h) * hd;
          let mx = -Infinity;
          for (let j = lo; j <= hi; j++) {
            const ko = ((b * sk + j) * Hkv + kh) * hd;
            let s = 0;
            for (let t = 0; t < hd; t++) s += Q[qo + t] * K[ko + t];
            s *= scale;
            scores[j] = s;
            if (s > mx) mx = s;
          }
          let den = 0;
          acc.fill(0);
          for (let j = lo; j <= hi; j++) {
            const e = Math.exp(scores[j] - mx);
            den += e;
            const vo = ((b * sk + j) * Hkv + kh) * hd;
            for (let t = 0; t < hd; t++) acc[t] += e * V[vo + t];
          }
          for (let t = 0; t < hd; t++) O[qo + t] = hi >= lo ? acc[t] / den : 0;
          L[(b * H + h) * sq + i] = hi >= lo ? mx + Math.log(den) : -Infinity;
        }
      }
  }

  attentionBackward(g: AttentionGrads, p: AttentionParams): void {
    const DQ = d(g.dq),
      DK = d(g.dk),
      DV = d(g.dv),
      DO = d(g.dout),
      Q = d(g.q),
      K = d(g.k),
      V = d(g.v),
      O = d(g.out),
      L = d(g.lse);
    const { batch, sq, sk, nHeads: H, nKvHeads: Hkv, headDim: hd, scale } = p;
    const group = H / Hkv;
    for (let b = 0; b < batch; b++)
      for (let h = 0; h < H; h++) {
        const kh = Math.floor(h / group);
        for (let i = 0; i < sq; i++) {
          const [lo, hi] = this.keyRange(p, i);
          if (hi < lo) continue;
          const qo = ((b * sq + i) * H + h) * hd;
          const l = L[(b * H + h) * sq + i];
          // D = sum_t dout * out (the softmax-Jacobian correction term).
          let D = 0;
          for (let t = 0; t < hd; t++) D += DO[qo + t] * O[qo + t];
          for (let j = lo; j <= hi; j++) {
            const ko = ((b * sk + j) * Hkv + kh) * hd;
            let s = 0;
            for (let t = 0; t < hd; t++) s += Q[qo + t] * K[ko + t];
            const pr = Math.exp(s * scale - l);
            let dp = 0;
            for (let t = 0; t < hd; t++) {
              dp += DO[qo + t] * V[ko + t];
              DV[ko + t] += pr * DO[qo + t];
            }
            const ds = pr * (dp - D) * scale;
            for (let t = 0; t < hd; t++) {
              DQ[qo + t] += ds * K[ko + t];
              DK[ko + t] += ds * Q[qo + t];
            }
          }
        }
      }
  }

  indexedLinear(out: Storage, x: Storage, w: Storage, p: IndexedLinearParams): void {
    const { pos, dIn, dOut } = p;
    const O = d(out),
      X = d(x),
      W = d(w);
    for (let r = 0; r < pos.length; r++) {
      const wo = pos[r] * dOut * dIn;
      for (let o = 0; o < dOut; o++) {
        let s = 0;
        for (let i = 0; i < dIn; i++) s += W[wo + o * dIn + i] * X[r * dIn + i];
        O[r * dOut + o] = s;
      }
    }
  }
  indexedLinearBackward(g: IndexedLinearGrads, p: IndexedLinearParams): void {
    const { pos, dIn, dOut } = p;
    const DX = d(g.dx),
      DW = d(g.dw),
      G = d(g.dout),
      X = d(g.x),
      W = d(g.w);
    for (let r = 0; r < pos.length; r++) {
      const wo = pos[r] * dOut * dIn;
      for (let o = 0; o < dOut; o++) {
        const go = G[r * dOut + o];
        if (go === 0) continue;
        for (let i = 0; i < dIn; i++) {
          DX[r * dIn + i] += W[wo + o * dIn + i] * go;
          DW[wo + o * dIn + i] += go * X[r * dIn + i];
        }
      }
    }
  }

  crossEntropy(loss: Storage, lse: Storage, logits: Storage, targets: Int32Array, vocab: number): void {
    const Lo = d(loss),
      Ls = d(lse),
      X = d(logits);
    for (let r = 0; r < targets.length; r++) {
      const o = r * vocab;
      let mx = -Infinity;
      for (let j = 0; j < vocab; j++) if (X[o + j] > mx) mx = X[o + j];
      let s = 0;
      for (let j = 0; j < vocab; j++) s += Math.exp(X[o + j] - mx);
      const l = mx + Math.log(s);
      Ls[r] = l;
      Lo[r] = l - X[o + targets[r]];
    }
  }
  crossEntropyBackward(
    dlogits: Storage,
    dloss: Storage,
    logits: Storage,
    lse: Storage,
    targets: Int32Array,
    vocab: number,
  ): void {
    const DX = d(dlogits),
      G = d(dloss),
      X = d(logits),
      Ls = d(lse);
    for (let r = 0; r < targets.length; r++) {
      const o = r * vocab,
        g = G[r],
        l = Ls[r];
      for (let j = 0; j < vocab; j++) DX[o + j] += g * Math.exp(X[o + j] - l);
      DX[o + targets[r]] -= g;
    }
  }

  clipGradNorm(p: ClipGradNormParams): void {
    let ss = 0;
    for (const g of p.grads) {
      const x = d(g);
      for (let i = 0; i < x.length; i++) ss += x[i] * x[i];
    }
    const norm = Math.sqrt(ss);
    d(p.norm)[0] = norm;
    d(p.scale)[0] = !Number.isFinite(norm) ? NaN : p.maxNorm > 0 ? Math.min(1, p.maxNorm / (norm + 1e-6)) : 1;
  }

  adamw(param: Storage, grad: Storage, m: Storage, v: Storage, p: AdamWParams): void {
    const gradScale = d(p.gradScale)[0];
    if (!Number.isFinite(gradScale)) return; // a non-finite gradient norm: the step is skipped
    const P = d(param),
      G = d(grad),
      M = d(m),
      Vv = d(v);
    const bc1 = 1 - Math.pow(p.beta1, p.step);
    const bc2 = 1 - Math.pow(p.beta2, p.step);
    const stepSize = p.lr / bc1;
    const bc2s = Math.sqrt(bc2);
    const decay = 1 - p.lr * p.weightDecay;
    for (let i = 0; i < P.length; i++) {
      const g = G[i] * gradScale;
      M[i] = p.beta1 * M[i] + (1 - p.beta1) * g;
      Vv[i] = p.beta2 * Vv[i] + (1 - p.beta2) * g * g;
      P[i] = P[i] * decay - (stepSize * M[i]) / (Math.sqrt(Vv[i]) / bc2s + p.eps);
    }
  }
}
