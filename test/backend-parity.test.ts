// Every registered backend (test/backends.ts) against the reference backend, op by op, in the style of
// tinygrad's helper_test_op: a table of kernels x shapes (awkward sizes that are no multiple of any vector
// width or tile, every matmul transpose, windows, grouped-query heads, query offsets, RoPE with positions,
// cross-entropy, AdamW, copyRows, the device scalars), each run on fresh copies of the same random inputs
// in both backends, every output compared.
//
// Error: max |got - want| over an output divided by max |want| (a value is judged against the scale of its
// tensor, not against itself where it happens to be near zero); reductions divide by the sum of the
// magnitudes they add instead, since their terms may cancel. Tolerances per op (TOL below) are the worst
// error measured over every configuration of the native backend (3 kernel sets x 1-2 threads), times about
// 10, rounded up to 1, 2 or 5 x 10^k. AUNET_PARITY_MEASURE=1 prints the measured worst errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { AttentionParams, Backend, Storage } from "../src/engine/backend.js";
import { Rng } from "../src/util/rng.js";
import { BACKENDS, REFERENCE } from "./backends.js";
import { randn } from "./helpers.js";

type Bufs = Record<string, Storage>;

interface Case {
  op: string;
  name: string;
  inputs: Record<string, Float32Array>;
  /** The storages each backend writes, compared after the run. */
  outputs: string[];
  run(be: Backend, s: Bufs): void;
  /** For reductions: the magnitude an output's error is judged against (default: max |want|). */
  scale?: (out: string) => number;
}

// Worst relative errors measured on the native backend over every configuration (x86-64, avx512/avx2/generic,
// 1 and 2 threads), and the tolerance: about 10x that, rounded up. Where nothing was measured (0: both
// backends round the same double-precision result once), one float32 rounding of the result (6e-8) is allowed,
// times about 10, for backends that accumulate otherwise.
const TOL: Record<string, number> = {
  elementwise: 1e-6, // measured 6.8e-8
  reduce: 1e-6, // measured 0
  rows: 0, // copies: exact
  matmul: 1e-5, // measured 7.8e-7 (also scatterAdd, whose repeated rows add in another order)
  rmsnorm: 5e-6, // measured 4.9e-7
  swiglu: 5e-6, // measured 3.0e-7
  rope: 1e-6, // measured 9.5e-8
  attention: 2e-5, // measured 1.8e-6
  indexedLinear: 5e-6, // measured 3.9e-7
  crossEntropy: 2e-5, // measured 1.3e-6
  clipGradNorm: 1e-6, // measured 0
  adamw: 5e-6, // measured 4.2e-7
};

const cases: Case[] = [];
const rng = new Rng(2026);
const data = (n: number, scale = 1) => randn(rng, n, scale);
const ints = (n: number, hi: number) => Int32Array.from({ length: n }, () => rng.int(hi));
const sumAbs = (a: Float32Array) => a.reduce((s, x) => s + Math.abs(x), 0);

// ---- elementwise, device scalars, rows ----
for (const n of [1, 7, 17, 513, 40000, 100003]) {
  cases.push({
    op: "elementwise",
    name: `add/axpy/scale/fill/copy n=${n}`,
    inputs: { a: data(n), b: data(n), o: data(n), f: data(n), c: data(n) },
    outputs: ["o", "a", "f", "c"],
    run(be, s) {
      be.add(s.o, s.a, s.b);
      be.add(s.o, s.o, s.a); // out aliases an input
      be.axpy(s.o, s.b, -0.37);
      be.scale(s.a, s.a, 1.7);
      be.fill(s.f, 2.5);
      be.copy(s.c, s.b);
    },
  });
  const x = data(n);
  cases.push({
    op: "reduce",
    name: `reduceSum/broadcast n=${n}`,
    inputs: { x, r: data(2), out: data(n) },
    outputs: ["r", "out"],
    run(be, s) {
      be.reduceSum(s.r, s.x, -0.5);
      be.broadcast(s.out, s.r, 3);
    },
    scale: () => 1.5 * sumAbs(x),
  });
}
for (const [dim, rows, srcRow, dstRow, n] of [
  [1, 1, 0, 0, 1],
  [7, 3, 2, 5, 10],
  [128, 17, 0, 40, 64],
  [33, 64, 100, 0, 200],
]) {
  cases.push({
    op: "rows",
    name: `copyRows dim=${dim} rows=${n} ${srcRow}->${dstRow}`,
    inputs: { src: data((srcRow + n) * dim), dst: data((dstRow + n + rows) * dim) },
    outputs: ["dst"],
    run: (be, s) => be.copyRows(s.dst, s.src, { dim, rows: n, srcRow, dstRow }),
  });
}
for (const [rows, dim, n] of [
  [10, 1, 25],
  [50, 33, 64],
  [7, 130, 300],
]) {
  const idx = ints(n, rows);
  cases.push({
    op: "rows",
    name: `gather/scatterAdd/embedding rows=${rows} dim=${dim} n=${n}`,
    inputs: {
      src: data(rows * dim),
      out: data(n * dim),
      e: data(n * dim),
      dst: data(rows * dim),
      g: data(n * dim),
    },
    outputs: ["out", "e"],
    run(be, s) {
      be.gatherRows(s.out, s.src, idx, dim);
      be.embedding(s.e, s.src, idx, dim);
    },
  });
  cases.push({
    op: "matmul", // repeated indices accumulate: summation order may differ
    name: `scatterAdd/embeddingBackward rows=${rows} dim=${dim} n=${n}`,
    inputs: { dst: data(rows * dim), d2: data(rows * dim), g: data(n * dim) },
    outputs: ["dst", "d2"],
    run(be, s) {
      be.scatterAddRows(s.dst, s.g, idx, dim);
      be.embeddingBackward(s.d2, s.g, idx, dim);
    },
  });
}

// ---- matmul: every transpose, accumulate or not ----
for (const [m, n, k] of [
  [1, 1, 1],
  [3, 5, 7],
  [1, 300, 200],
  [4, 129, 65],
  [17, 33, 65],
  [64, 64, 64],
  [129, 70, 257],
])
  for (const transA of [false, true])
    for (const transB of [false, true])
      for (const accumulate of [false, true])
        cases.push({
          op: "matmul",
          name: `matmul ${m}x${n}x${k} ${transA ? "T" : "N"}${transB ? "T" : "N"}${accumulate ? " acc" : ""}`,
          inputs: { a: data(m * k), b: data(k * n), c: data(m * n) },
          outputs: ["c"],
          run: (be, s) => be.matmul(s.c, s.a, s.b, { m, n, k, transA, transB, accumulate }),
        });

// ---- normalisation, activations ----
for (const [rows, dim] of [
  [1, 1],
  [3, 7],
  [37, 64],
  [5, 130],
  [300, 48],
]) {
  cases.push({
    op: "rmsnorm",
    name: `rmsnorm fwd/bwd ${rows}x${dim}`,
    inputs: {
      x: data(rows * dim),
      w: data(dim),
      out: data(rows * dim),
      rstd: data(rows),
      g: data(rows * dim),
      dx: data(rows * dim),
      dw: data(dim),
    },
    outputs: ["out", "rstd", "dx", "dw"],
    run(be, s) {
      be.rmsnorm(s.out, s.rstd, s.x, s.w, dim, 1e-5);
      be.rmsnormBackward({ dx: s.dx, dw: s.dw, dout: s.g, x: s.x, w: s.w, rstd: s.rstd }, dim);
    },
  });
}
for (const n of [1, 7, 17, 513, 40000]) {
  cases.push({
    op: "swiglu",
    name: `swiglu fwd/bwd n=${n}`,
    inputs: { a: data(n, 3), b: data(n), o: data(n), g: data(n), da: data(n), db: data(n) },
    outputs: ["o", "da", "db"],
    run(be, s) {
      be.swiglu(s.o, s.a, s.b);
      be.swigluBackward(s.da, s.db, s.g, s.a, s.b);
    },
  });
}

// ---- rope: default positions and explicit ones (generation) ----
for (const [B, S, H, hd, explicit] of [
  [1, 1, 1, 2, false],
  [2, 9, 3, 8, false],
  [1, 37, 4, 32, true],
  [3, 5, 2, 64, true],
] as [number, number, number, number, boolean][]) {
  const maxPos = S + 11;
  const half = hd / 2;
  const cos = Float32Array.from({ length: maxPos * half }, (_, i) => Math.cos(i * 0.37));
  const sin = Float32Array.from({ length: maxPos * half }, (_, i) => Math.sin(i * 0.37));
  const positions = explicit ? ints(B * S, maxPos) : null;
  const n = B * S * H * hd;
  const p = { rows: B * S, seq: S, nHeads: H, headDim: hd, positions };
  cases.push({
    op: "rope",
    name: `rope fwd/bwd B${B} S${S} H${H} hd${hd}${explicit ? " positions" : ""}`,
    inputs: { x: data(n), cos, sin, out: data(n), g: data(n), dx: data(n) },
    outputs: ["out", "dx"],
    run(be, s) {
      be.rope(s.out, s.x, s.cos, s.sin, p);
      be.ropeBackward(s.dx, s.g, s.cos, s.sin, p);
    },
  });
}

// ---- attention: windows, GQA, query offsets, the few-query (generation) path and its long-cache split ----
for (const [batch, sq, sk, nHeads, nKvHeads, headDim, qOffset, window] of [
  [1, 1, 1, 1, 1, 8, 0, 0],
  [2, 7, 7, 2, 1, 16, 0, 0],
  [1, 65, 65, 4, 2, 32, 0, 0],
  [2, 70, 70, 3, 3, 8, 0, 16],
  [1, 130, 130, 2, 2, 64, 0, 7],
  [1, 5, 40, 4, 4, 32, 35, 0],
  [1, 1, 300, 4, 2, 32, 299, 0],
  [2, 3, 50, 4, 1, 16, 47, 9],
  [1, 1, 2500, 4, 4, 32, 2499, 0],
  [1, 2, 2200, 2, 1, 24, 2198, 1500],
  [1, 30, 90, 2, 1, 32, 60, 20],
]) {
  const p: AttentionParams = {
    batch,
    sq,
    sk,
    nHeads,
    nKvHeads,
    headDim,
    qOffset,
    window,
    scale: 1 / Math.sqrt(headDim),
  };
  const nq = batch * sq * nHeads * headDim,
    nk = batch * sk * nKvHeads * headDim;
  cases.push({
    op: "attention",
    name: `attention fwd/bwd B${batch} sq${sq} sk${sk} H${nHeads}/${nKvHeads} hd${headDim} off${qOffset} win${window}`,
    inputs: {
      q: data(nq),
      k: data(nk),
      v: data(nk),
      out: data(nq),
      lse: data(batch * nHeads * sq),
      g: data(nq),
      dq: data(nq),
      dk: data(nk),
      dv: data(nk),
    },
    outputs: ["out", "lse", "dq", "dk", "dv"],
    run(be, s) {
      be.attention(s.out, s.lse, s.q, s.k, s.v, p);
      be.attentionBackward(
        { dq: s.dq, dk: s.dk, dv: s.dv, dout: s.g, q: s.q, k: s.k, v: s.v, out: s.out, lse: s.lse },
        p,
      );
    },
  });
}

// ---- upsampling ----
for (const [rows, P, dIn, dOut] of [
  [1, 1, 1, 1],
  [30, 5, 16, 8],
  [100, 2, 100, 33],
  [64, 16, 48, 64],
]) {
  const pos = ints(rows, P);
  const ip = { pos, dIn, dOut };
  cases.push({
    op: "indexedLinear",
    name: `indexedLinear fwd/bwd rows=${rows} P=${P} ${dIn}->${dOut}`,
    inputs: {
      x: data(rows * dIn),
      w: data(P * dOut * dIn),
      out: data(rows * dOut),
      g: data(rows * dOut),
      dx: data(rows * dIn),
      dw: data(P * dOut * dIn),
    },
    outputs: ["out", "dx", "dw"],
    run(be, s) {
      be.indexedLinear(s.out, s.x, s.w, ip);
      be.indexedLinearBackward({ dx: s.dx, dw: s.dw, dout: s.g, x: s.x, w: s.w }, ip);
    },
  });
}

// ---- loss and optimiser ----
for (const [rows, vocab] of [
  [1, 2],
  [7, 258],
  [100, 33],
  [33, 4096],
]) {
  const targets = ints(rows, vocab);
  cases.push({
    op: "crossEntropy",
    name: `crossEntropy fwd/bwd ${rows}x${vocab}`,
    inputs: {
      x: data(rows * vocab, 4),
      loss: data(rows),
      lse: data(rows),
      dl: data(rows),
      dx: data(rows * vocab),
    },
    outputs: ["loss", "lse", "dx"],
    run(be, s) {
      be.crossEntropy(s.loss, s.lse, s.x, targets, vocab);
      be.crossEntropyBackward(s.dx, s.dl, s.x, s.lse, targets, vocab);
    },
  });
}
for (const [sizes, maxNorm] of [
  [[1], 0],
  [[7, 513, 40000], 1],
  [[100003, 3], 1e6],
] as [number[], number][]) {
  const grads: Record<string, Float32Array> = {};
  sizes.forEach((n, i) => (grads[`g${i}`] = data(n)));
  cases.push({
    op: "clipGradNorm",
    name: `clipGradNorm sizes=${sizes} max=${maxNorm}`,
    inputs: { ...grads, norm: data(1), scale: data(1) },
    outputs: ["norm", "scale"],
    run: (be, s) =>
      be.clipGradNorm({ norm: s.norm, scale: s.scale, grads: sizes.map((_, i) => s[`g${i}`]), maxNorm }),
  });
}
for (const bad of [Infinity, NaN])
  cases.push({
    op: "clipGradNorm",
    name: `clipGradNorm and adamw with a ${bad} gradient: the update is skipped`,
    inputs: {
      g: Float32Array.of(1, bad, 2),
      p: data(3),
      m: data(3),
      v: data(3).map(Math.abs),
      n: data(1),
      s: data(1),
    },
    outputs: ["n", "s", "p", "m", "v"],
    run(be, s) {
      be.clipGradNorm({ norm: s.n, scale: s.s, grads: [s.g], maxNorm: 0 });
      be.adamw(s.p, s.g, s.m, s.v, {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weightDecay: 0.1,
        step: 1,
        gradScale: s.s,
      });
    },
  });
for (const n of [1, 7, 17, 513, 40000]) {
  cases.push({
    op: "adamw",
    name: `adamw 5 steps n=${n}`,
    inputs: {
      p: data(n),
      m: new Float32Array(n),
      v: new Float32Array(n),
      g1: data(n),
      g2: data(n),
      g3: data(n, 10),
      gs: Float32Array.of(0.7),
    },
    outputs: ["p", "m", "v"],
    run(be, s) {
      for (let step = 1; step <= 5; step++)
        be.adamw(s.p, s[`g${1 + (step % 3)}`], s.m, s.v, {
          lr: 1e-2,
          beta1: 0.9,
          beta2: 0.95,
          eps: 1e-8,
          weightDecay: 0.1,
          step,
          gradScale: s.gs,
        });
    },
  });
}

function relErr(got: Float32Array, want: Float32Array, scale: number): number {
  assert.equal(got.length, want.length);
  let err = 0,
    mag = scale;
  for (let i = 0; i < want.length; i++) {
    if (got[i] === want[i] || (Number.isNaN(got[i]) && Number.isNaN(want[i]))) continue; // also infinities
    if (!Number.isFinite(got[i]) || !Number.isFinite(want[i])) return Infinity;
    err = Math.max(err, Math.abs(got[i] - want[i]));
  }
  if (scale === 0) for (const w of want) if (Number.isFinite(w)) mag = Math.max(mag, Math.abs(w));
  return err === 0 ? 0 : err / Math.max(mag, 1e-30);
}

/** Run a case on a backend: fresh storages from the inputs, then the outputs read back. */
function runCase(be: Backend, c: Case): Map<string, Float32Array> {
  const s: Bufs = {};
  for (const [k, v] of Object.entries(c.inputs)) s[k] = be.fromFloat32(v);
  c.run(be, s);
  const out = new Map(c.outputs.map((k) => [k, be.readSync(s[k])]));
  for (const st of Object.values(s)) be.release(st);
  return out;
}

const reference = REFERENCE.load() as Backend;
const wants = new Map(cases.map((c) => [c, runCase(reference, c)]));

for (const reg of BACKENDS) {
  if (reg === REFERENCE) continue;
  test(`parity: ${reg.name} against the reference backend, ${cases.length} cases`, (t) => {
    const be = reg.load();
    if (typeof be === "string") {
      t.skip(be);
      return;
    }
    const worst = new Map<string, { err: number; where: string }>();
    for (const config of reg.configurations?.(be) ?? [reg.name])
      for (const c of cases) {
        const got = runCase(be, c);
        for (const [k, want] of wants.get(c)!) {
          const err = relErr(got.get(k)!, want, c.scale?.(k) ?? 0);
          const w = worst.get(c.op);
          if (!w || err > w.err) worst.set(c.op, { err, where: `${config} ${c.name} ${k}` });
          assert.ok(
            process.env.AUNET_PARITY_MEASURE === "1" || err <= TOL[c.op],
            `${reg.name} ${config}: ${c.name}: ${k} relative error ${err.toExponential(2)} > ${TOL[c.op]}`,
          );
        }
      }
    if (process.env.AUNET_PARITY_MEASURE === "1")
      for (const [op, w] of worst) console.log(`${op}: ${w.err.toExponential(2)} (${w.where})`);
  });
}
