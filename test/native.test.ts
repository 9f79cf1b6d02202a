// The native CPU backend against the reference backend, kernel by kernel, on random data and awkward shapes
// (sizes that are not multiples of any vector width or GEMM tile), for every kernel set this CPU supports
// (avx512 / avx2 / generic) and for 1 and 2 threads.
//
// Tolerances. Errors are measured as max |native - ref| over the output divided by max |ref| (so a value is
// judged against the scale of its tensor, not against itself where it happens to be near zero). The
// reference computes in float64 and rounds once; the native kernels accumulate in float32 (doubles for
// sums, norms and log-sum-exp), so their error grows like eps32 * sqrt(terms) ~ 6e-8 * sqrt(k): below 2e-6
// for every reduction length used here. TOL = 1e-5 leaves margin for that, while any indexing, masking or
// transpose mistake shows up as an O(1) relative error. Reductions returned in double (sum, sumSquares) are
// held to 1e-12 of the sum of magnitudes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RefBackend } from "../src/backends/ref.js";
import { loadNativeBackend, type NativeBackend } from "../src/backends/native.js";
import type { AttentionParams, Backend, RopeParams, Storage } from "../src/engine/backend.js";
import { backward, scoped } from "../src/engine/tensor.js";
import { AUNet } from "../src/model/aunet.js";
import { parseConfig } from "../src/model/config.js";
import { levelMask } from "../src/data/splitter.js";
import { AdamW, OFFICIAL_ADAMW } from "../src/train/optimizer.js";
import { rng } from "./helpers.js";

const TOL = 1e-5;
const loaded = loadNativeBackend();
const ref = new RefBackend();
const SKIP = `native addon not built: ${loaded.error}`;

// ---- helpers ----

let seed = 1;
function randn(n: number, scale = 1): Float32Array {
  const r = rng(seed++);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12),
      v = r();
    a[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return a;
}
function randInt(n: number, hi: number): Int32Array {
  const r = rng(seed++);
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.floor(r() * hi);
  return a;
}

function relErr(got: Float32Array, want: Float32Array): number {
  assert.equal(got.length, want.length, "length");
  let num = 0,
    den = 0;
  for (let i = 0; i < want.length; i++) {
    const w = want[i],
      g = got[i];
    if (w === g) continue; // also equal infinities
    if (!Number.isFinite(w) || !Number.isFinite(g)) return Infinity;
    num = Math.max(num, Math.abs(g - w));
  }
  for (let i = 0; i < want.length; i++) if (Number.isFinite(want[i])) den = Math.max(den, Math.abs(want[i]));
  return num === 0 ? 0 : num / Math.max(den, 1e-30);
}

function close(what: string, got: Float32Array, want: Float32Array, tol = TOL): void {
  const e = relErr(got, want);
  assert.ok(e <= tol, `${what}: relative error ${e.toExponential(2)} > ${tol}`);
}

/** The same data in both backends. */
class Pair {
  readonly n: Storage;
  readonly r: Storage;
  constructor(
    private readonly nb: Backend,
    data: Float32Array,
  ) {
    this.n = nb.fromFloat32(data);
    this.r = ref.fromFloat32(data);
  }
  check(what: string, tol = TOL): void {
    close(what, this.nb.readSync(this.n), ref.readSync(this.r), tol);
  }
  /**
   * Error relative to `scale` when that exceeds the result's own magnitude: for sums whose terms cancel, float
   * rounding is relative to the terms, not to the (small) result.
   */
  checkAgainst(what: string, scale: number, tol = TOL): void {
    const got = this.nb.readSync(this.n),
      want = ref.readSync(this.r);
    let err = 0,
      mag = scale;
    for (let i = 0; i < want.length; i++) {
      err = Math.max(err, Math.abs(got[i] - want[i]));
      mag = Math.max(mag, Math.abs(want[i]));
    }
    assert.ok(err / mag <= tol, `${what}: error ${(err / mag).toExponential(2)} relative to ${mag} > ${tol}`);
  }
}

type Suite = (nb: NativeBackend, tag: string) => void;

/** Runs a check for each kernel set and thread count. */
function each(name: string, fn: Suite): void {
  test(name, (t) => {
    const nb = loaded.backend;
    if (!nb) {
      t.skip(SKIP);
      return;
    }
    const isa0 = nb.isa,
      th0 = nb.threads;
    try {
      for (const isa of nb.supportedIsas()) {
        assert.ok(nb.setIsa(isa));
        for (const threads of [1, 2]) {
          nb.setThreads(threads);
          fn(nb, `${isa}/${threads}t`);
        }
      }
    } finally {
      nb.setIsa(isa0);
      nb.setThreads(th0);
    }
  });
}

const SIZES = [1, 7, 13, 17, 100, 513, 40000, 100003];

// ---- storage ----

test("native: storage round trip, pool reuse and errors", (t) => {
  const nb = loaded.backend;
  if (!nb) {
    t.skip(SKIP);
    return;
  }
  const z = nb.alloc(37);
  assert.equal(z.size, 37);
  assert.deepEqual(Array.from(nb.readSync(z)), new Array(37).fill(0));
  const d = randn(37);
  nb.write(z, d.subarray(5, 20), 5);
  const back = nb.readSync(z);
  for (let i = 0; i < 37; i++) assert.equal(back[i], i >= 5 && i < 20 ? d[i] : 0);
  assert.throws(() => nb.write(z, new Float32Array(10), 30), /past the end/);
  nb.release(z);
  assert.throws(() => nb.readSync(z), /after release/);
  assert.throws(() => nb.readSync(ref.alloc(3)), /another backend/);

  // A recycled buffer comes back zero-filled, and a steady alloc/release cycle allocates nothing new.
  const s = nb.fromFloat32(randn(1000));
  nb.release(s);
  const again = nb.alloc(1000);
  assert.ok(nb.readSync(again).every((x) => x === 0));
  nb.release(again);
  const sizes = [1000, 17, 4096, 65536, 3];
  const cycle = () => {
    const ss = sizes.map((n) => nb.alloc(n));
    for (const x of ss) nb.release(x);
  };
  cycle();
  const before = nb.poolStats().freshAllocs;
  for (let i = 0; i < 20; i++) cycle();
  assert.equal(nb.poolStats().freshAllocs, before, "steady-state cycle allocated new memory");
});

test("native: invalid arguments throw instead of touching memory", (t) => {
  const nb = loaded.backend;
  if (!nb) {
    t.skip(SKIP);
    return;
  }
  const a = nb.alloc(6),
    b = nb.alloc(6),
    c = nb.alloc(4);
  const mm = { m: 2, n: 2, k: 3, transA: false, transB: false, accumulate: false };
  nb.matmul(c, a, b, mm);
  assert.throws(() => nb.matmul(c, a, b, { ...mm, k: 4 }), /A smaller/);
  assert.throws(() => nb.gatherRows(c, a, new Int32Array([0, 3]), 2), /out of range/);
  assert.throws(() => nb.scatterAddRows(a, c, new Int32Array([-1]), 2), /out of range/);
  const lse = nb.alloc(2),
    loss = nb.alloc(2);
  assert.throws(() => nb.crossEntropy(loss, lse, a, new Int32Array([0, 3]), 3), /out of range/);
  assert.throws(
    () => nb.indexedLinear(c, a, b, { pos: new Int32Array([0, 1]), dIn: 3, dOut: 2 }),
    /out of range/,
  );
  const p: AttentionParams = {
    batch: 1,
    sq: 2,
    sk: 2,
    nHeads: 3,
    nKvHeads: 2,
    headDim: 1,
    qOffset: 0,
    window: 0,
    scale: 1,
  };
  assert.throws(() => nb.attention(c, lse, a, a, a, p), /multiple of nKvHeads/);
});

// ---- elementwise ----

each("native: fill, copy, add, axpy, scale, reduceSum, clipGradNorm", (nb, tag) => {
  for (const n of SIZES) {
    const x = new Pair(nb, randn(n)),
      y = new Pair(nb, randn(n)),
      o = new Pair(nb, randn(n));
    for (const be of [nb, ref] as Backend[]) {
      const S = (p: Pair) => (be === ref ? p.r : p.n);
      be.add(S(o), S(x), S(y));
    }
    o.check(`${tag} add n=${n}`);
    for (const be of [nb, ref] as Backend[]) {
      const S = (p: Pair) => (be === ref ? p.r : p.n);
      be.add(S(o), S(o), S(x)); // out aliases a
      be.axpy(S(o), S(y), -0.37);
      be.scale(S(x), S(x), 1.7); // out aliases a
    }
    o.check(`${tag} add/axpy n=${n}`);
    x.check(`${tag} scale n=${n}`);
    // Sums are checked on the native tensor's own values (scale above may round differently in the last
    // bit), against a float64 JS loop.
    const xs = nb.readSync(x.n);
    let want = 0,
      mag = 0,
      wq = 0;
    for (const v of xs) {
      want += v;
      mag += Math.abs(v);
      wq += v * v;
    }
    // The device scalars are float32: the double-accumulated value rounded once.
    const rs = nb.alloc(2);
    nb.reduceSum(rs, x.n, -0.5);
    const got = nb.readSync(rs)[0];
    assert.ok(Math.abs(got - -0.5 * want) <= 1e-12 * mag + Math.abs(6e-8 * got), `${tag} reduceSum n=${n}`);
    assert.equal(nb.readSync(rs)[1], 0, `${tag} reduceSum n=${n} wrote past out[0]`);
    const norm = nb.alloc(1),
      scale = nb.alloc(1);
    nb.clipGradNorm({ norm, scale, grads: [x.n], maxNorm: 0 });
    const gq = nb.readSync(norm)[0];
    assert.ok(
      Math.abs(gq - Math.sqrt(wq)) <= 6e-8 * gq,
      `${tag} clipGradNorm n=${n}: ${gq} vs ${Math.sqrt(wq)}`,
    );
    assert.equal(nb.readSync(scale)[0], 1, `${tag} clip scale without clipping`);
    nb.fill(o.n, 2.5);
    ref.fill(o.r, 2.5);
    o.check(`${tag} fill n=${n}`, 0);
    nb.copy(o.n, y.n);
    ref.copy(o.r, y.r);
    o.check(`${tag} copy n=${n}`, 0);
  }
});

// ---- GEMM ----

const GEMM_SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 513, 7],
  [13, 1, 100],
  [7, 13, 17],
  [17, 100, 13],
  [100, 17, 513],
  [33, 65, 129],
  [129, 257, 385], // crosses the K block (384 for avx512, 256 otherwise) and the M block
  [15, 3100, 9], // crosses the N block
];

each("native: matmul, all transposes, with and without accumulate", (nb, tag) => {
  for (const [m, n, k] of GEMM_SHAPES)
    for (const transA of [false, true])
      for (const transB of [false, true])
        for (const accumulate of [false, true]) {
          const a = new Pair(nb, randn(m * k)),
            b = new Pair(nb, randn(k * n)),
            c = new Pair(nb, randn(m * n));
          const p = { m, n, k, transA, transB, accumulate };
          nb.matmul(c.n, a.n, b.n, p);
          ref.matmul(c.r, a.r, b.r, p);
          c.check(`${tag} matmul ${m}x${n}x${k} tA=${transA} tB=${transB} acc=${accumulate}`);
        }
});

test("native: results do not depend on the thread count", (t) => {
  const nb = loaded.backend;
  if (!nb) {
    t.skip(SKIP);
    return;
  }
  const th0 = nb.threads;
  const run = (threads: number) => {
    nb.setThreads(threads);
    const a = nb.fromFloat32(randnSeeded(300 * 200, 7)),
      b = nb.fromFloat32(randnSeeded(200 * 150, 8)),
      c = nb.alloc(300 * 150);
    nb.matmul(c, a, b, { m: 300, n: 150, k: 200, transA: false, transB: false, accumulate: false });
    const dst = nb.alloc(50 * 150);
    nb.scatterAddRows(
      dst,
      c,
      Int32Array.from({ length: 300 }, (_, i) => (i * 7) % 50),
      150,
    );
    const s = nb.alloc(1);
    nb.reduceSum(s, c, 1);
    return [nb.readSync(c), nb.readSync(dst), nb.readSync(s)[0]] as const;
  };
  try {
    const [c1, d1, s1] = run(1);
    const [c2, d2, s2] = run(2);
    assert.deepEqual(c2, c1);
    assert.deepEqual(d2, d1);
    assert.equal(s2, s1);
  } finally {
    nb.setThreads(th0);
  }
});

function randnSeeded(n: number, s: number): Float32Array {
  const keep = seed;
  seed = s;
  const a = randn(n);
  seed = keep;
  return a;
}

// ---- rows ----

each("native: embedding, gatherRows, scatterAddRows (repeated indices)", (nb, tag) => {
  for (const dim of [1, 7, 17, 100, 513]) {
    const rows = 13,
      nIdx = 29;
    const table = new Pair(nb, randn(rows * dim));
    const idx = randInt(nIdx, rows);
    const out = new Pair(nb, randn(nIdx * dim));
    nb.embedding(out.n, table.n, idx, dim);
    ref.embedding(out.r, table.r, idx, dim);
    out.check(`${tag} embedding dim=${dim}`, 0);
    nb.gatherRows(out.n, table.n, idx, dim);
    ref.gatherRows(out.r, table.r, idx, dim);
    out.check(`${tag} gather dim=${dim}`, 0);
    nb.scatterAddRows(table.n, out.n, idx, dim);
    ref.scatterAddRows(table.r, out.r, idx, dim);
    table.check(`${tag} scatterAdd dim=${dim}`);
    nb.embeddingBackward(table.n, out.n, idx, dim);
    ref.embeddingBackward(table.r, out.r, idx, dim);
    table.check(`${tag} embeddingBackward dim=${dim}`);
  }
});

// ---- normalisation and activations ----

each("native: rmsnorm forward and backward", (nb, tag) => {
  for (const [rows, dim] of [
    [1, 1],
    [3, 7],
    [13, 17],
    [5, 100],
    [4, 513],
    [300, 64],
  ]) {
    const x = new Pair(nb, randn(rows * dim, 3)),
      w = new Pair(nb, randn(dim));
    const out = new Pair(nb, new Float32Array(rows * dim)),
      rstd = new Pair(nb, new Float32Array(rows));
    nb.rmsnorm(out.n, rstd.n, x.n, w.n, dim, 1e-5);
    ref.rmsnorm(out.r, rstd.r, x.r, w.r, dim, 1e-5);
    out.check(`${tag} rmsnorm out ${rows}x${dim}`);
    rstd.check(`${tag} rmsnorm rstd ${rows}x${dim}`);
    const g = new Pair(nb, randn(rows * dim)),
      dx = new Pair(nb, randn(rows * dim)),
      dw = new Pair(nb, randn(dim));
    nb.rmsnormBackward({ dx: dx.n, dw: dw.n, dout: g.n, x: x.n, w: w.n, rstd: rstd.n }, dim);
    ref.rmsnormBackward({ dx: dx.r, dw: dw.r, dout: g.r, x: x.r, w: w.r, rstd: rstd.r }, dim);
    dx.check(`${tag} rmsnorm dx ${rows}x${dim}`);
    dw.check(`${tag} rmsnorm dw ${rows}x${dim}`);
  }
});

each("native: swiglu forward and backward", (nb, tag) => {
  for (const n of SIZES) {
    // wide inputs so that exp saturates at both ends
    const a = new Pair(nb, randn(n, 12)),
      b = new Pair(nb, randn(n));
    const o = new Pair(nb, randn(n));
    nb.swiglu(o.n, a.n, b.n);
    ref.swiglu(o.r, a.r, b.r);
    o.check(`${tag} swiglu n=${n}`);
    const g = new Pair(nb, randn(n)),
      da = new Pair(nb, randn(n)),
      db = new Pair(nb, randn(n));
    nb.swigluBackward(da.n, db.n, g.n, a.n, b.n);
    ref.swigluBackward(da.r, db.r, g.r, a.r, b.r);
    da.check(`${tag} swiglu da n=${n}`);
    db.check(`${tag} swiglu db n=${n}`);
  }
});

// ---- rope ----

each("native: rope forward (in place) and backward, with and without positions", (nb, tag) => {
  for (const [batch, seq, nHeads, headDim, withPos] of [
    [1, 1, 1, 2, false],
    [2, 7, 3, 6, false],
    [3, 13, 2, 34, true],
    [1, 100, 4, 64, true],
  ] as [number, number, number, number, boolean][]) {
    const half = headDim / 2,
      maxPos = 128;
    const ang = new Float32Array(maxPos * half),
      cos = new Float32Array(maxPos * half),
      sin = new Float32Array(maxPos * half);
    for (let p = 0; p < maxPos; p++)
      for (let j = 0; j < half; j++) {
        ang[p * half + j] = p * Math.pow(10000, (-2 * j) / headDim);
        cos[p * half + j] = Math.cos(ang[p * half + j]);
        sin[p * half + j] = Math.sin(ang[p * half + j]);
      }
    const C = new Pair(nb, cos),
      S = new Pair(nb, sin);
    const rows = batch * seq;
    const p: RopeParams = { rows, seq, nHeads, headDim, positions: withPos ? randInt(rows, maxPos) : null };
    const x = new Pair(nb, randn(rows * nHeads * headDim));
    nb.rope(x.n, x.n, C.n, S.n, p);
    ref.rope(x.r, x.r, C.r, S.r, p);
    x.check(`${tag} rope ${rows}x${nHeads}x${headDim}`);
    const g = new Pair(nb, randn(rows * nHeads * headDim)),
      dx = new Pair(nb, randn(rows * nHeads * headDim));
    nb.ropeBackward(dx.n, g.n, C.n, S.n, p);
    ref.ropeBackward(dx.r, g.r, C.r, S.r, p);
    dx.check(`${tag} ropeBackward ${rows}x${nHeads}x${headDim}`);
  }
});

// ---- attention ----

const ATTN: Omit<AttentionParams, "scale">[] = [
  { batch: 1, sq: 1, sk: 1, nHeads: 1, nKvHeads: 1, headDim: 8, qOffset: 0, window: 0 },
  { batch: 2, sq: 7, sk: 7, nHeads: 2, nKvHeads: 1, headDim: 16, qOffset: 0, window: 0 },
  { batch: 1, sq: 13, sk: 13, nHeads: 4, nKvHeads: 2, headDim: 32, qOffset: 0, window: 5 },
  { batch: 1, sq: 17, sk: 17, nHeads: 3, nKvHeads: 3, headDim: 13, qOffset: 0, window: 1 },
  { batch: 1, sq: 100, sk: 100, nHeads: 2, nKvHeads: 1, headDim: 32, qOffset: 0, window: 0 },
  { batch: 1, sq: 65, sk: 130, nHeads: 2, nKvHeads: 2, headDim: 32, qOffset: 65, window: 0 },
  { batch: 2, sq: 70, sk: 150, nHeads: 4, nKvHeads: 1, headDim: 64, qOffset: 80, window: 40 },
  { batch: 1, sq: 200, sk: 200, nHeads: 1, nKvHeads: 1, headDim: 64, qOffset: 0, window: 1000 },
  { batch: 1, sq: 130, sk: 130, nHeads: 2, nKvHeads: 1, headDim: 128, qOffset: 0, window: 64 },
  // queries past every key's window: rows with no visible key (out 0, lse -inf)
  { batch: 1, sq: 9, sk: 10, nHeads: 2, nKvHeads: 1, headDim: 8, qOffset: 12, window: 5 },
  // a few queries against a long cache (generation's path: keys read in place)
  { batch: 2, sq: 1, sk: 300, nHeads: 4, nKvHeads: 2, headDim: 32, qOffset: 299, window: 0 },
  { batch: 1, sq: 3, sk: 50, nHeads: 2, nKvHeads: 1, headDim: 20, qOffset: 47, window: 7 },
  { batch: 1, sq: 1, sk: 64, nHeads: 1, nKvHeads: 1, headDim: 64, qOffset: 10, window: 3 },
  { batch: 1, sq: 4, sk: 10, nHeads: 2, nKvHeads: 2, headDim: 8, qOffset: 12, window: 5 },
];

each("native: attention forward and backward (causal, windows, GQA, qOffset)", (nb, tag) => {
  for (const c of ATTN) {
    const p: AttentionParams = { ...c, scale: 1 / Math.sqrt(c.headDim) };
    const nq = p.batch * p.sq * p.nHeads * p.headDim,
      nk = p.batch * p.sk * p.nKvHeads * p.headDim;
    const what = `${tag} attn B${p.batch} sq${p.sq} sk${p.sk} H${p.nHeads}/${p.nKvHeads} hd${p.headDim} off${p.qOffset} w${p.window}`;
    const q = new Pair(nb, randn(nq, 1.5)),
      k = new Pair(nb, randn(nk, 1.5)),
      v = new Pair(nb, randn(nk));
    const out = new Pair(nb, randn(nq)),
      lse = new Pair(nb, randn(p.batch * p.nHeads * p.sq));
    nb.attention(out.n, lse.n, q.n, k.n, v.n, p);
    ref.attention(out.r, lse.r, q.r, k.r, v.r, p);
    out.check(`${what} out`);
    lse.check(`${what} lse`);
    const g = new Pair(nb, randn(nq)),
      dq = new Pair(nb, randn(nq)),
      dk = new Pair(nb, randn(nk)),
      dv = new Pair(nb, randn(nk));
    nb.attentionBackward(
      { dq: dq.n, dk: dk.n, dv: dv.n, dout: g.n, q: q.n, k: k.n, v: v.n, out: out.n, lse: lse.n },
      p,
    );
    ref.attentionBackward(
      { dq: dq.r, dk: dk.r, dv: dv.r, dout: g.r, q: q.r, k: k.r, v: v.r, out: out.r, lse: lse.r },
      p,
    );
    dq.check(`${what} dq`);
    dk.check(`${what} dk`);
    dv.check(`${what} dv`);
  }
});

// ---- indexed linear ----

each("native: indexedLinear forward and backward (strided and scattered groups)", (nb, tag) => {
  for (const [rows, P, dIn, dOut, pattern] of [
    [1, 1, 1, 1, "mod"],
    [12, 3, 7, 13, "mod"],
    [17, 4, 13, 17, "random"],
    [100, 2, 100, 33, "random"],
    [64, 4, 64, 128, "mod"],
    [30, 5, 16, 8, "same"],
  ] as [number, number, number, number, string][]) {
    const pos =
      pattern === "mod"
        ? Int32Array.from({ length: rows }, (_, r) => r % P)
        : pattern === "same"
          ? new Int32Array(rows).fill(P - 1)
          : randInt(rows, P);
    const what = `${tag} indexedLinear rows=${rows} P=${P} ${dIn}->${dOut} ${pattern}`;
    const x = new Pair(nb, randn(rows * dIn)),
      w = new Pair(nb, randn(P * dOut * dIn));
    const out = new Pair(nb, randn(rows * dOut));
    nb.indexedLinear(out.n, x.n, w.n, { pos, dIn, dOut });
    ref.indexedLinear(out.r, x.r, w.r, { pos, dIn, dOut });
    out.check(what);
    const g = new Pair(nb, randn(rows * dOut)),
      dx = new Pair(nb, randn(rows * dIn)),
      dw = new Pair(nb, randn(P * dOut * dIn));
    nb.indexedLinearBackward({ dx: dx.n, dw: dw.n, dout: g.n, x: x.n, w: w.n }, { pos, dIn, dOut });
    ref.indexedLinearBackward({ dx: dx.r, dw: dw.r, dout: g.r, x: x.r, w: w.r }, { pos, dIn, dOut });
    dx.check(`${what} dx`);
    dw.check(`${what} dw`);
  }
});

// ---- loss ----

each("native: crossEntropy forward and backward", (nb, tag) => {
  for (const [rows, vocab] of [
    [1, 1],
    [7, 7],
    [13, 17],
    [5, 256],
    [3, 513],
    [200, 100],
  ]) {
    const logits = new Pair(nb, randn(rows * vocab, 4));
    const t = randInt(rows, vocab);
    const loss = new Pair(nb, new Float32Array(rows)),
      lse = new Pair(nb, new Float32Array(rows));
    nb.crossEntropy(loss.n, lse.n, logits.n, t, vocab);
    ref.crossEntropy(loss.r, lse.r, logits.r, t, vocab);
    lse.check(`${tag} crossEntropy lse ${rows}x${vocab}`);
    // loss = lse - logit can cancel, so it is judged against the scale of the lse it came from
    const lr = ref.readSync(loss.r),
      ln = nb.readSync(loss.n),
      scale = Math.max(...Array.from(ref.readSync(lse.r), Math.abs), 1);
    for (let i = 0; i < rows; i++)
      assert.ok(Math.abs(ln[i] - lr[i]) <= TOL * scale, `${tag} crossEntropy loss ${rows}x${vocab}`);
    const g = new Pair(nb, randn(rows)),
      dl = new Pair(nb, randn(rows * vocab));
    nb.crossEntropyBackward(dl.n, g.n, logits.n, lse.n, t, vocab);
    ref.crossEntropyBackward(dl.r, g.r, logits.r, lse.r, t, vocab);
    dl.check(`${tag} crossEntropyBackward ${rows}x${vocab}`);
  }
});

// ---- optimiser ----

each("native: adamw over several steps", (nb, tag) => {
  for (const n of [1, 7, 17, 513, 40000]) {
    const param = new Pair(nb, randn(n)),
      m = new Pair(nb, new Float32Array(n)),
      v = new Pair(nb, new Float32Array(n));
    let gmax = 0;
    for (let step = 1; step <= 5; step++) {
      const g = randn(n);
      for (const x of g) gmax = Math.max(gmax, Math.abs(x) * 0.7);
      const grad = new Pair(nb, g);
      const p = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step };
      nb.adamw(param.n, grad.n, m.n, v.n, { ...p, gradScale: nb.fromFloat32(Float32Array.of(0.7)) });
      ref.adamw(param.r, grad.r, m.r, v.r, { ...p, gradScale: ref.fromFloat32(Float32Array.of(0.7)) });
    }
    param.check(`${tag} adamw param n=${n}`);
    // m sums terms of either sign, each (1 - beta1) g: measure its error against their size.
    m.checkAgainst(`${tag} adamw m n=${n}`, 0.1 * gmax);
    v.check(`${tag} adamw v n=${n}`);
  }
});

test("a steady-state training step allocates no new native memory", (t) => {
  const { backend: nb } = loadNativeBackend();
  if (!nb) return t.skip("native addon not built");
  const cfg = parseConfig({
    model: {
      dimensions: [32, 64],
      head_dims: [16, 16],
      layers: [1, 1],
      max_seqlens: [64, 24],
      sliding_windows: [16, 8],
    },
    data: { seq_len: 64, regex: { strategy: { word1: "1@1" } } },
  });
  const model = new AUNet(cfg.model, nb);
  const optim = new AdamW(model.params, nb, OFFICIAL_ADAMW);
  const text = new TextEncoder().encode(
    "the byte level model pools words into a shorter sequence, then upsamples. ".repeat(4),
  );
  const B = 2,
    S = 64;
  const tokens = new Int32Array(B * S),
    targets = new Int32Array(B * S),
    mask = new Int32Array(B * S);
  for (let b = 0; b < B; b++) {
    const row = text.subarray(b * 7, b * 7 + S + 1);
    mask.set(levelMask(row.subarray(0, S), cfg.strategy), b * S);
    for (let i = 0; i < S; i++) {
      tokens[b * S + i] = row[i];
      targets[b * S + i] = row[i + 1];
    }
  }
  const step = () =>
    scoped(() => {
      backward(model.loss(tokens, mask, targets, B, S).loss);
      optim.update(1e-3);
      model.zeroGrad();
    });
  for (let i = 0; i < 3; i++) step();
  const before = nb.poolStats();
  for (let i = 0; i < 20; i++) step();
  const after = nb.poolStats();
  assert.equal(after.freshAllocs, before.freshAllocs, "steady-state steps took new memory from the system");
  assert.equal(after.liveBytes, before.liveBytes);
});
