// Parity of every WebGPU kernel with the reference backend, on small and awkward shapes (sizes not multiples
// of the tiles, GQA, windows, repeated indices). On a machine without a GPU this runs on a software Vulkan
// adapter (SwiftShader from Debian's chromium, found by src/backends/webgpu/gpu.ts); where none exists the
// tests skip with the reason, unless AUNET_REQUIRE_WEBGPU=1 (CI) makes that a failure.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { Backend, Storage } from "../src/engine/backend.js";
import { RefBackend } from "../src/backends/ref.js";
import { WebGPUBackend, acquireDevice, segmentsOf, type GpuDevice } from "../src/backends/webgpu/index.js";
import { Rng } from "../src/util/rng.js";
import { randn, randInts } from "./helpers.js";

let gpu: GpuDevice | null = null;
let register: WebGPUBackend;
let tiled: WebGPUBackend;
let skip: string | false = false;
const ref = new RefBackend();

before(async () => {
  try {
    gpu = await acquireDevice();
  } catch (e) {
    if (process.env.AUNET_REQUIRE_WEBGPU === "1") throw e;
    skip = `no WebGPU adapter: ${(e as Error).message}`;
    return;
  }
  register = new WebGPUBackend(gpu, { gemm: "register" });
  tiled = new WebGPUBackend(gpu, { gemm: "tiled" });
});

after(() => {
  register?.flush();
  tiled?.destroy();
});

type Inputs = Record<string, Float32Array>;

/**
 * Run `fn` on the reference backend and on `gpu` with the same inputs (outputs start as given, so that
 * accumulating kernels are checked against non-zero starting values) and compare every output. The error
 * measure is max |gpu - ref| / (1 + max |ref|).
 */
async function parity(
  gpuBe: WebGPUBackend,
  inputs: Inputs,
  outputs: string[],
  fn: (be: Backend, s: Record<string, Storage>) => void,
  tol: number,
): Promise<number> {
  const load = (be: Backend) => {
    const s: Record<string, Storage> = {};
    for (const [k, v] of Object.entries(inputs)) s[k] = be.fromFloat32(v);
    return s;
  };
  const sr = load(ref);
  const sg = load(gpuBe);
  fn(ref, sr);
  fn(gpuBe, sg);
  let worst = 0;
  for (const name of outputs) {
    const want = ref.readSync(sr[name]);
    const got = await gpuBe.read(sg[name]);
    assert.equal(got.length, want.length, name);
    let err = 0,
      mag = 0;
    for (let i = 0; i < want.length; i++) {
      if (!Number.isFinite(want[i])) {
        assert.equal(got[i], want[i], `${name}[${i}]`);
        continue;
      }
      err = Math.max(err, Math.abs(got[i] - want[i]));
      mag = Math.max(mag, Math.abs(want[i]));
    }
    const rel = err / (1 + mag);
    assert.ok(rel <= tol, `${name}: error ${rel.toExponential(2)} > ${tol}`);
    worst = Math.max(worst, rel);
  }
  worstInTest = Math.max(worstInTest, worst);
  for (const s of Object.values(sg)) gpuBe.release(s);
  return worst;
}

// float32 kernels summing up to a few hundred products differ from the float64-accumulating reference by a
// few ulps; the worst case measured here is 5.4e-7 (GEMM, SwiftShader), the bound leaves a 3.7x
// margin.
const TOL = 2e-6;

test("webgpu: adapter found", (t) => {
  if (skip) return t.skip(skip);
  t.diagnostic(`adapter: ${gpu!.adapterName}, software: ${gpu!.software}`);
  assert.ok(gpu!.adapterName.length > 0);
});

/** The largest error parity() saw in the running test, reported as a diagnostic (the tolerance's basis). */
let worstInTest = 0;

function maybe(name: string, fn: () => Promise<void>): void {
  test(name, async (t) => {
    if (skip) return t.skip(skip);
    worstInTest = 0;
    await fn();
    t.diagnostic(`largest relative error ${worstInTest.toExponential(2)}`);
  });
}

maybe("webgpu: elementwise, fill, copy, copyRows, aliasing", async () => {
  const rng = new Rng(1);
  const n = 1237;
  const inputs = { a: randn(rng, n), b: randn(rng, n), o: randn(rng, n), o2: randn(rng, n) };
  await parity(
    register,
    inputs,
    ["o", "o2", "a", "b"],
    (be, s) => {
      be.add(s.o, s.a, s.b);
      be.axpy(s.o, s.a, -0.75);
      be.scale(s.o2, s.b, 3);
      be.add(s.a, s.a, s.b); // out aliases an input
      be.scale(s.b, s.b, 0.5);
    },
    TOL,
  );
  await parity(
    register,
    inputs,
    ["o", "o2"],
    (be, s) => {
      be.fill(s.o, 2.5);
      be.copy(s.o2, s.a);
      be.swiglu(s.o, s.o2, s.b);
    },
    TOL,
  );
  const rows = { src: randn(rng, 7 * 5), dst: randn(rng, 9 * 5) };
  await parity(
    register,
    rows,
    ["dst"],
    (be, s) => be.copyRows(s.dst, s.src, { dim: 5, rows: 4, srcRow: 1, dstRow: 3 }),
    0,
  );
});

maybe("webgpu: reductions on the device (sum, broadcast, global gradient norm and clip scale)", async () => {
  const rng = new Rng(2);
  for (const n of [1, 255, 1000, 70001]) {
    const a = randn(rng, n);
    let s = 0,
      ss = 0;
    for (const x of a) {
      s += x;
      ss += x * x;
    }
    const st = register.fromFloat32(a);
    const out = register.alloc(1),
      spread = register.alloc(3);
    register.reduceSum(out, st, 0.5);
    register.broadcast(spread, out, -2);
    assert.ok(Math.abs((await register.read(out))[0] - 0.5 * s) <= 1e-5 * (1 + Math.sqrt(ss)));
    assert.deepEqual(
      Array.from(await register.read(spread)),
      Array(3).fill(-2 * (await register.read(out))[0]),
    );
    // Global norm over two tensors (the same one twice), then torch's clip factor, all on the device.
    const scale = register.alloc(1),
      norm = register.alloc(1);
    const nrm = Math.sqrt(2 * ss);
    for (const maxNorm of [1, 0]) {
      register.clipGradNorm({ norm, scale, grads: [st, st], maxNorm });
      assert.ok(Math.abs((await register.read(norm))[0] - nrm) <= 1e-5 * nrm);
      const want = maxNorm > 0 ? Math.min(1, maxNorm / (nrm + 1e-6)) : 1;
      assert.ok(Math.abs((await register.read(scale))[0] - want) <= 1e-5 * want);
    }
    for (const x of [st, out, spread, scale, norm]) register.release(x);
  }
  assert.throws(() => register.readSync(register.alloc(1)), /asynchronously only: use read\(\)/);
});

maybe("webgpu: GEMM, every transpose, all three kernels, awkward sizes, accumulate", async () => {
  const rng = new Rng(3);
  for (const be of [register, tiled])
    for (const [m, n, k] of [
      [1, 1, 1],
      [5, 7, 3],
      [33, 65, 17],
      [70, 9, 129],
      [12, 20, 8], // vec4 loads in every layout but TT
      [13, 8, 16], // vec4 for NT and NN, not TN (m)
      [36, 44, 64],
    ])
      for (const transA of [false, true])
        for (const transB of [false, true])
          for (const accumulate of [false, true]) {
            const inputs = { a: randn(rng, m * k), b: randn(rng, k * n), c: randn(rng, m * n) };
            const p = { m, n, k, transA, transB, accumulate };
            await parity(be, inputs, ["c"], (b, s) => b.matmul(s.c, s.a, s.b, p), TOL);
          }
});

maybe("webgpu: embedding, gather, scatter-add with repeated indices", async () => {
  const rng = new Rng(4);
  const dim = 13,
    V = 11;
  const ids = new Int32Array([3, 0, 3, 10, 3, 7, 0, 1, 10]);
  const inputs = {
    table: randn(rng, V * dim),
    out: randn(rng, ids.length * dim),
    dtable: randn(rng, V * dim),
    g: randn(rng, ids.length * dim),
  };
  await parity(
    register,
    inputs,
    ["out", "dtable"],
    (be, s) => {
      be.embedding(s.out, s.table, ids, dim);
      be.embeddingBackward(s.dtable, s.g, ids, dim);
      be.scatterAddRows(s.dtable, s.out, ids, dim);
    },
    TOL,
  );
  const { seg, segments } = segmentsOf(ids);
  assert.equal(segments, 5);
  assert.deepEqual(Array.from(seg.subarray(0, 5)), [0, 1, 3, 7, 10]);
});

maybe("webgpu: RMSNorm, SwiGLU, RoPE forward and backward", async () => {
  const rng = new Rng(5);
  const rows = 19,
    dim = 24;
  const inputs = {
    x: randn(rng, rows * dim),
    w: randn(rng, dim),
    out: new Float32Array(rows * dim),
    rstd: new Float32Array(rows),
    dx: randn(rng, rows * dim),
    dw: randn(rng, dim),
    g: randn(rng, rows * dim),
    da: randn(rng, rows * dim),
    db: randn(rng, rows * dim),
  };
  await parity(
    register,
    inputs,
    ["out", "rstd", "dx", "dw", "da", "db"],
    (be, s) => {
      be.rmsnorm(s.out, s.rstd, s.x, s.w, dim, 1e-5);
      be.rmsnormBackward({ dx: s.dx, dw: s.dw, dout: s.g, x: s.x, w: s.w, rstd: s.rstd }, dim);
      be.swigluBackward(s.da, s.db, s.g, s.x, s.out);
    },
    TOL,
  );
  const B = 2,
    S = 5,
    H = 3,
    hd = 8,
    maxPos = 40;
  const half = hd / 2;
  const cos = new Float32Array(maxPos * half),
    sin = new Float32Array(maxPos * half);
  for (let p = 0; p < maxPos; p++)
    for (let j = 0; j < half; j++) {
      cos[p * half + j] = Math.cos(p * 10000 ** (-j / half));
      sin[p * half + j] = Math.sin(p * 10000 ** (-j / half));
    }
  const n = B * S * H * hd;
  const ri = { x: randn(rng, n), o: randn(rng, n), dx: randn(rng, n), cos, sin };
  for (const positions of [null, randInts(rng, B * S, maxPos)]) {
    const p = { rows: B * S, seq: S, nHeads: H, headDim: hd, positions };
    await parity(
      register,
      ri,
      ["o", "dx", "x"],
      (be, s) => {
        be.rope(s.o, s.x, s.cos, s.sin, p);
        be.ropeBackward(s.dx, s.o, s.cos, s.sin, p);
        be.rope(s.x, s.x, s.cos, s.sin, p); // in place
      },
      TOL,
    );
  }
});

maybe("webgpu: fused attention forward and backward (causal, window, GQA, cached queries)", async () => {
  const rng = new Rng(6);
  const cases = [
    { batch: 2, sq: 9, sk: 9, nHeads: 4, nKvHeads: 2, headDim: 8, qOffset: 0, window: 0 },
    { batch: 1, sq: 13, sk: 13, nHeads: 3, nKvHeads: 1, headDim: 16, qOffset: 0, window: 4 },
    { batch: 2, sq: 3, sk: 11, nHeads: 2, nKvHeads: 2, headDim: 4, qOffset: 8, window: 5 },
    { batch: 1, sq: 1, sk: 6, nHeads: 2, nKvHeads: 1, headDim: 8, qOffset: 5, window: 0 },
    { batch: 2, sq: 7, sk: 7, nHeads: 2, nKvHeads: 1, headDim: 6, qOffset: 0, window: 3 }, // scalar lanes
  ];
  for (const c of cases) {
    const p = { ...c, scale: 1 / Math.sqrt(c.headDim) };
    const nq = c.batch * c.sq * c.nHeads * c.headDim;
    const nk = c.batch * c.sk * c.nKvHeads * c.headDim;
    const inputs = {
      q: randn(rng, nq),
      k: randn(rng, nk),
      v: randn(rng, nk),
      g: randn(rng, nq),
      out: new Float32Array(nq),
      lse: new Float32Array(c.batch * c.nHeads * c.sq),
      dq: randn(rng, nq),
      dk: randn(rng, nk),
      dv: randn(rng, nk),
    };
    await parity(
      register,
      inputs,
      ["out", "lse", "dq", "dk", "dv"],
      (be, s) => {
        be.attention(s.out, s.lse, s.q, s.k, s.v, p);
        be.attentionBackward(
          { dq: s.dq, dk: s.dk, dv: s.dv, dout: s.g, q: s.q, k: s.k, v: s.v, out: s.out, lse: s.lse },
          p,
        );
      },
      TOL,
    );
  }
});

maybe("webgpu: indexed linear of the upsampling, forward and backward", async () => {
  const rng = new Rng(7);
  const P = 4,
    dIn = 10,
    dOut = 7;
  const pos = new Int32Array([0, 3, 3, 1, 0, 3, 2, 0, 0, 1, 3]);
  const rows = pos.length;
  const inputs = {
    x: randn(rng, rows * dIn),
    w: randn(rng, P * dOut * dIn),
    out: new Float32Array(rows * dOut),
    g: randn(rng, rows * dOut),
    dx: randn(rng, rows * dIn),
    dw: randn(rng, P * dOut * dIn),
  };
  await parity(
    register,
    inputs,
    ["out", "dx", "dw"],
    (be, s) => {
      be.indexedLinear(s.out, s.x, s.w, { pos, dIn, dOut });
      be.indexedLinearBackward({ dx: s.dx, dw: s.dw, dout: s.g, x: s.x, w: s.w }, { pos, dIn, dOut });
    },
    TOL,
  );
});

maybe("webgpu: fused cross-entropy forward and backward", async () => {
  const rng = new Rng(8);
  const rows = 23,
    V = 259;
  const targets = randInts(rng, rows, V);
  const inputs = {
    logits: randn(rng, rows * V, 3),
    loss: new Float32Array(rows),
    lse: new Float32Array(rows),
    dloss: randn(rng, rows),
    dlogits: randn(rng, rows * V),
  };
  await parity(
    register,
    inputs,
    ["loss", "lse", "dlogits"],
    (be, s) => {
      be.crossEntropy(s.loss, s.lse, s.logits, targets, V);
      be.crossEntropyBackward(s.dlogits, s.dloss, s.logits, s.lse, targets, V);
    },
    TOL,
  );
});

maybe("webgpu: AdamW, gradient scale read from a device scalar", async () => {
  const rng = new Rng(9);
  const n = 301;
  const m0 = randn(rng, n, 0.1);
  const v0 = randn(rng, n, 0.1).map((x) => x * x);
  const inputs = { p: randn(rng, n), g: randn(rng, n), m: m0, v: v0, scale: new Float32Array([0.37]) };
  const ap = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 3 };
  await parity(
    register,
    inputs,
    ["p", "m", "v"],
    (be, s) => {
      be.adamw(s.p, s.g, s.m, s.v, { ...ap, gradScale: s.scale });
      be.fill(s.scale, 1.5); // the next update reads the scalar as it is then
      be.adamw(s.p, s.g, s.m, s.v, { ...ap, step: 4, gradScale: s.scale });
    },
    TOL,
  );
});

test("webgpu: the backend's import graph is free of Node modules (it loads in a page)", () => {
  const seen = new Set<string>();
  const stack = [resolve("src/backends/webgpu/index.ts")];
  while (stack.length > 0) {
    const file = stack.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const src = readFileSync(file, "utf8");
    for (const m of src.matchAll(/^\s*(?:import|export)\b[^;]*?from\s+"([^"]+)"/gm)) {
      assert.ok(m[1].startsWith("."), `${file} imports ${m[1]}`);
      stack.push(resolve(dirname(file), m[1].replace(/\.js$/, ".ts")));
    }
  }
  assert.ok(seen.has(resolve("src/backends/webgpu/kernels.ts")));
});
