// Every op's backward against central finite differences, in float64 (the reference backend over Float64Array),
// on random inputs with odd sizes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RefBackend } from "../src/backends/ref.js";
import { Tensor, backward, noGrad, clearTape } from "../src/engine/tensor.js";
import * as op from "../src/engine/ops.js";
import { Rng } from "../src/util/rng.js";
import { randn, randInts } from "./helpers.js";

const be = new RefBackend({ float64: true });
const raw = (t: Tensor) => be.readRaw(t.storage);

/**
 * Check d<f(inputs), R>/d input against finite differences for every element of every input that requires
 * grad. f must build its output from the given tensors only. An input whose gradient is zero everywhere must
 * be listed in `zeroGrad` (then both sides must be exactly zero): an undeclared all-zero gradient would pass
 * by comparing 0 with 0.
 */
function gradCheck(
  name: string,
  inputs: Tensor[],
  f: (xs: Tensor[]) => Tensor,
  rng: Rng,
  tol = 1e-6,
  zeroGrad: number[] = [],
): void {
  clearTape();
  for (const x of inputs) x.grad = null;
  const out = f(inputs);
  const R = Tensor.from(be, randn(rng, out.size), out.shape);
  backward(out, R);
  const r = raw(R);
  const objective = () =>
    noGrad(() => {
      const o = raw(f(inputs));
      let s = 0;
      for (let i = 0; i < o.length; i++) s += o[i] * r[i];
      return s;
    });
  const h = 1e-6;
  inputs.forEach((x, xi) => {
    if (!x.requiresGrad) return;
    const xs = raw(x);
    const g = x.grad ? raw(x.grad) : new Float64Array(x.size);
    let worst = 0,
      scale = 1e-12;
    for (let i = 0; i < xs.length; i++) {
      const v = xs[i];
      xs[i] = v + h;
      const fp = objective();
      xs[i] = v - h;
      const fm = objective();
      xs[i] = v;
      const fd = (fp - fm) / (2 * h);
      worst = Math.max(worst, Math.abs(fd - g[i]));
      scale = Math.max(scale, Math.abs(fd));
    }
    if (zeroGrad.includes(xi)) {
      assert.ok(worst < 1e-9 && g.every((v) => v === 0), `${name}: input ${xi} should have no gradient`);
      return;
    }
    assert.ok(scale > 1e-3, `${name}: input ${xi} has no gradient to check (largest ${scale})`);
    assert.ok(worst / scale < tol, `${name}: input ${xi} gradient error ${worst / scale} (scale ${scale})`);
  });
}

const param = (rng: Rng, shape: number[], s = 1) =>
  Tensor.from(
    be,
    randn(
      rng,
      shape.reduce((a, b) => a * b, 1),
      s,
    ),
    shape,
    true,
  );

test("matmul, all transposes, odd sizes", () => {
  const rng = new Rng(1);
  for (const [m, n, k] of [
    [3, 5, 7],
    [1, 13, 2],
    [6, 1, 5],
  ])
    for (const ta of [false, true])
      for (const tb of [false, true]) {
        const a = param(rng, ta ? [k, m] : [m, k]);
        const b = param(rng, tb ? [n, k] : [k, n]);
        gradCheck(`matmul ${m}x${n}x${k} ${ta}${tb}`, [a, b], ([x, y]) => op.matmul(x, y, ta, tb), rng);
      }
});

test("matmul forward equals the definition", () => {
  const rng = new Rng(2);
  const a = param(rng, [4, 3]),
    b = param(rng, [5, 3]);
  const c = raw(op.matmul(a, b, false, true));
  const A = raw(a),
    B = raw(b);
  for (let i = 0; i < 4; i++)
    for (let j = 0; j < 5; j++) {
      let s = 0;
      for (let k = 0; k < 3; k++) s += A[i * 3 + k] * B[j * 3 + k];
      assert.ok(Math.abs(c[i * 5 + j] - s) < 1e-12);
    }
});

test("linear, add, scale, reshape, sum, mean", () => {
  const rng = new Rng(3);
  const x = param(rng, [2, 3, 5]),
    w = param(rng, [7, 5]),
    y = param(rng, [2, 3, 7]);
  gradCheck("linear", [x, w], ([a, b]) => op.linear(a, b), rng);
  gradCheck("add+scale", [x, x], ([a, b]) => op.scale(op.add(a, b), -0.7), rng);
  gradCheck("reshape", [y], ([a]) => op.reshape(a, [6, 7]), rng);
  gradCheck("sum", [y], ([a]) => op.sum(a), rng);
  gradCheck("mean", [y], ([a]) => op.mean(a), rng);
});

test("embedding, gatherRows, scatterAddRows (repeated indices)", () => {
  const rng = new Rng(4);
  const table = param(rng, [11, 6]);
  const ids = Int32Array.from([3, 0, 3, 10, 7, 3, 1]);
  gradCheck("embedding", [table], ([t]) => op.embedding(t, ids, [7]), rng);
  gradCheck("gatherRows", [table], ([t]) => op.gatherRows(t, ids), rng);
  const src = param(rng, [7, 6]);
  gradCheck("scatterAddRows", [src], ([s]) => op.scatterAddRows(s, ids, 12), rng);
  assert.throws(() => op.embedding(table, Int32Array.from([11]), [1]), /outside vocabulary/);
});

test("rmsnorm and swiglu", () => {
  const rng = new Rng(5);
  const x = param(rng, [5, 9]),
    w = param(rng, [9]);
  gradCheck("rmsnorm", [x, w], ([a, b]) => op.rmsnorm(a, b, 1e-5), rng);
  const a = param(rng, [4, 7], 2),
    b = param(rng, [4, 7]);
  gradCheck("swiglu", [a, b], ([p, q]) => op.swiglu(p, q), rng);
});

test("rope, sequential and explicit positions", () => {
  const rng = new Rng(6);
  const hd = 6,
    maxPos = 20;
  const cos = new Float32Array(maxPos * 3),
    sin = new Float32Array(maxPos * 3);
  for (let t = 0; t < maxPos; t++)
    for (let j = 0; j < 3; j++) {
      cos[t * 3 + j] = Math.cos(t * 0.3 ** j);
      sin[t * 3 + j] = Math.sin(t * 0.3 ** j);
    }
  const tables = { cos: Tensor.from(be, cos, [maxPos, 3]), sin: Tensor.from(be, sin, [maxPos, 3]), maxPos };
  const x = param(rng, [2, 5, 3, hd]);
  gradCheck("rope", [x], ([a]) => op.rope(a, tables), rng);
  const pos = randInts(rng, 10, maxPos);
  gradCheck("rope positions", [x], ([a]) => op.rope(a, tables, pos), rng);
  // Rotation preserves the norm of every pair.
  const y = raw(op.rope(x, tables));
  const xr = raw(x);
  for (let i = 0; i < xr.length; i += 2)
    assert.ok(Math.abs(xr[i] ** 2 + xr[i + 1] ** 2 - y[i] ** 2 - y[i + 1] ** 2) < 1e-6);
});

test("attention: causal, sliding windows, grouped-query, query offset", () => {
  const rng = new Rng(7);
  for (const cfg of [
    { B: 2, sq: 5, sk: 5, H: 2, Hkv: 2, hd: 4, window: 0 },
    { B: 1, sq: 7, sk: 7, H: 4, Hkv: 2, hd: 3, window: 3 },
    { B: 2, sq: 6, sk: 6, H: 3, Hkv: 1, hd: 2, window: 1 },
    { B: 1, sq: 3, sk: 8, H: 2, Hkv: 1, hd: 4, window: 4 },
    { B: 1, sq: 4, sk: 4, H: 1, Hkv: 1, hd: 5, window: 100 },
  ]) {
    const q = param(rng, [cfg.B, cfg.sq, cfg.H, cfg.hd]);
    const k = param(rng, [cfg.B, cfg.sk, cfg.Hkv, cfg.hd]);
    const v = param(rng, [cfg.B, cfg.sk, cfg.Hkv, cfg.hd]);
    gradCheck(
      `attention ${JSON.stringify(cfg)}`,
      [q, k, v],
      ([a, b, c]) => op.attention(a, b, c, { window: cfg.window }),
      rng,
      1e-6,
      // A window of 1: every query attends to itself alone, so q and k do not affect the output.
      cfg.window === 1 ? [0, 1] : [],
    );
  }
});

test("attention equals an explicit masked softmax", () => {
  const rng = new Rng(8);
  const [B, S, H, hd, W] = [1, 6, 2, 4, 2];
  const q = param(rng, [B, S, H, hd]),
    k = param(rng, [B, S, H, hd]),
    v = param(rng, [B, S, H, hd]);
  const o = raw(op.attention(q, k, v, { window: W }));
  const Q = raw(q),
    K = raw(k),
    V = raw(v);
  for (let h = 0; h < H; h++)
    for (let i = 0; i < S; i++) {
      const w: number[] = [];
      for (let j = 0; j < S; j++) {
        if (j > i || i - j >= W) {
          w.push(-Infinity);
          continue;
        }
        let s = 0;
        for (let t = 0; t < hd; t++) s += Q[(i * H + h) * hd + t] * K[(j * H + h) * hd + t];
        w.push(s / Math.sqrt(hd));
      }
      const mx = Math.max(...w);
      const e = w.map((x) => Math.exp(x - mx));
      const z = e.reduce((a, b) => a + b, 0);
      for (let t = 0; t < hd; t++) {
        let s = 0;
        for (let j = 0; j < S; j++) s += (e[j] / z) * V[(j * H + h) * hd + t];
        assert.ok(Math.abs(o[(i * H + h) * hd + t] - s) < 1e-12);
      }
    }
});

test("indexedLinear", () => {
  const rng = new Rng(9);
  const x = param(rng, [9, 5]),
    w = param(rng, [4, 3, 5]);
  const pos = Int32Array.from([0, 3, 3, 1, 0, 2, 3, 0, 1]);
  gradCheck("indexedLinear", [x, w], ([a, b]) => op.indexedLinear(a, b, pos), rng);
});

test("crossEntropy (mean over rows, through log-softmax)", () => {
  const rng = new Rng(10);
  const logits = param(rng, [6, 11], 3);
  const t = randInts(rng, 6, 11);
  gradCheck("crossEntropy", [logits], ([l]) => op.crossEntropy(l, t).loss, rng);
  const { loss, rowLoss } = op.crossEntropy(logits, t);
  const L = raw(logits);
  let total = 0;
  for (let r = 0; r < 6; r++) {
    let z = 0;
    for (let j = 0; j < 11; j++) z += Math.exp(L[r * 11 + j]);
    const nll = Math.log(z) - L[r * 11 + t[r]];
    assert.ok(Math.abs(rowLoss.toFloat32()[r] - nll) < 1e-5);
    total += nll;
  }
  assert.ok(Math.abs(raw(loss)[0] - total / 6) < 1e-12);
});

test("no-grad mode records nothing; grads accumulate across uses", () => {
  const rng = new Rng(11);
  const x = param(rng, [3, 4]);
  const y = noGrad(() => op.scale(x, 2));
  assert.equal(y.requiresGrad, false);
  x.grad = null;
  const z = op.sum(op.add(x, x));
  backward(z);
  assert.ok(raw(x.grad!).every((g) => Math.abs(g - 2) < 1e-12));
});

test("AdamW update matches the closed form for one step", () => {
  const p = be.fromFloat32(Float32Array.from([1, -2])),
    g = be.fromFloat32(Float32Array.from([0.5, 0.25])),
    m = be.alloc(2),
    v = be.alloc(2);
  be.adamw(p, g, m, v, {
    lr: 0.1,
    beta1: 0.9,
    beta2: 0.95,
    eps: 1e-8,
    weightDecay: 0.1,
    step: 1,
    gradScale: be.fromFloat32(Float32Array.of(1)),
  });
  const P = be.readRaw(p);
  // Step 1: m_hat = g, v_hat = g^2, so the update is lr * sign(g) (up to eps), after decay by (1 - lr*wd).
  assert.ok(Math.abs(P[0] - (1 * 0.99 - 0.1)) < 1e-6);
  assert.ok(Math.abs(P[1] - (-2 * 0.99 - 0.1)) < 1e-6);
});
