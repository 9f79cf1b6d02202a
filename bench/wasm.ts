// The WebAssembly SIMD backend against the native CPU backend on the same machine and the same shapes:
// GEMM (every transpose) and fused attention GFLOP/s, and the bytes/s of a training step. The native backend
// runs one thread (the wasm backend is single-threaded), so the ratio compares kernels, not core counts.
//
//   npm run bench:wasm              all benchmarks
//   npm run bench:wasm -- --quick   fewer repetitions
//   npm run bench:wasm -- --json    JSON on stdout instead of the table
import { loadNativeBackend } from "../src/backends/native.js";
import { loadWasmBackend } from "../src/backends/wasm-node.js";
import type { AttentionParams, Backend } from "../src/engine/backend.js";
import { backward, scoped } from "../src/engine/tensor.js";
import { AUNet } from "../src/model/aunet.js";
import { parseConfig } from "../src/model/config.js";
import { levelMask } from "../src/data/splitter.js";
import { AdamW, OFFICIAL_ADAMW } from "../src/train/optimizer.js";

const argv = process.argv.slice(2);
const QUICK = argv.includes("--quick");
const JSON_ONLY = argv.includes("--json");
const MIN_SECONDS = QUICK ? 0.15 : 0.5;
const log = (s: string) => {
  if (!JSON_ONLY) console.log(s);
};

function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2147483648 - 1;
  }
  return a;
}

/**
 * Best time per call in seconds: warm up, then repeat until MIN_SECONDS have passed (at least 3 calls). The time
 * is this process's CPU time, not wall time, so that other processes on a busy machine do not count: both
 * backends run on this one thread (the native one is set to 1 thread).
 */
function time(fn: () => void): number {
  fn();
  let best = Infinity,
    total = 0,
    reps = 0;
  while (reps < 3 || total < MIN_SECONDS) {
    const c0 = process.cpuUsage();
    fn();
    const c = process.cpuUsage(c0);
    const dt = (c.user + c.system) / 1e6;
    best = Math.min(best, dt);
    total += dt;
    reps++;
  }
  return best;
}

interface Row {
  kernel: string;
  shape: string;
  op: string;
  /** GFLOP/s (kernels) or bytes/s (training step) per backend name. */
  rate: Record<string, number>;
}

function gemmRates(be: Backend): Row[] {
  const shapes: [number, number, number][] = [
    [256, 256, 256],
    [192, 256, 512],
    [512, 512, 512],
    [1024, 1024, 1024],
    [1024, 256, 1024], // a linear layer of aunet_small: 1024 positions, 256 -> 1024
    [1024, 1024, 256],
    [4, 1024, 256], // a few rows against a weight (generation)
  ];
  const rows: Row[] = [];
  for (const [m, n, k] of shapes) {
    const a = be.fromFloat32(randn(m * k, 1)),
      b = be.fromFloat32(randn(k * n, 2)),
      c = be.alloc(m * n);
    for (const [transA, transB] of [
      [false, false],
      [false, true],
      [true, false],
    ] as [boolean, boolean][]) {
      const t = time(() => be.matmul(c, a, b, { m, n, k, transA, transB, accumulate: false }));
      rows.push({
        kernel: "matmul",
        shape: `${m}x${n}x${k}`,
        op: `${transA ? "T" : "N"}${transB ? "T" : "N"}`,
        rate: { [be.name]: (2 * m * n * k) / t / 1e9 },
      });
    }
    for (const s of [a, b, c]) be.release(s);
  }
  return rows;
}

/** Visible (query, key) pairs of a causal / windowed attention, for FLOP counts. */
function visiblePairs(p: AttentionParams): number {
  let n = 0;
  for (let i = 0; i < p.sq; i++) {
    const qpos = p.qOffset + i;
    const hi = Math.min(qpos, p.sk - 1);
    const lo = p.window > 0 ? Math.max(0, qpos - p.window + 1) : 0;
    n += Math.max(0, hi - lo + 1);
  }
  return n * p.batch * p.nHeads;
}

function attentionRates(be: Backend): Row[] {
  const rows: Row[] = [];
  for (const window of [0, 256]) {
    const p: AttentionParams = {
      batch: 2,
      sq: 1024,
      sk: 1024,
      nHeads: 4,
      nKvHeads: 4,
      headDim: 32,
      qOffset: 0,
      window,
      scale: 1 / Math.sqrt(32),
    };
    const nq = p.batch * p.sq * p.nHeads * p.headDim;
    const [q, k, v, g] = [3, 4, 5, 6].map((s) => be.fromFloat32(randn(nq, s)));
    const out = be.alloc(nq),
      lse = be.alloc(p.batch * p.nHeads * p.sq);
    const [dq, dk, dv] = [0, 1, 2].map(() => be.alloc(nq));
    const pairs = visiblePairs(p);
    const tf = time(() => be.attention(out, lse, q, k, v, p));
    const tb = time(() => be.attentionBackward({ dq, dk, dv, dout: g, q, k, v, out, lse }, p));
    // forward: QK^T and PV, 2 flops each per pair and head dim; backward: five such products
    const shape = `B${p.batch} S${p.sq} H${p.nHeads} hd${p.headDim} w${window || "none"}`;
    rows.push({
      kernel: "attention",
      shape,
      op: "fwd",
      rate: { [be.name]: (4 * pairs * p.headDim) / tf / 1e9 },
    });
    rows.push({
      kernel: "attention",
      shape,
      op: "bwd",
      rate: { [be.name]: (10 * pairs * p.headDim) / tb / 1e9 },
    });
    for (const s of [q, k, v, g, out, lse, dq, dk, dv]) be.release(s);
  }
  return rows;
}

/** Bytes/s of a full training step (forward, backward, AdamW) of the `small` preset's model, 4 x 256 bytes. */
function trainRate(be: Backend): Row {
  const cfg = parseConfig({
    model: {
      dimensions: [128, 256],
      head_dims: [32, 32],
      layers: [2, 2],
      max_seqlens: [256, 64],
      sliding_windows: null,
      residuals: [true],
      block: { multiple_of: 64 },
      seed: 1,
    },
    data: { seq_len: 256, regex: { strategy: { word1: "1@1" } } },
  });
  const B = 4,
    S = 256;
  const text = new TextEncoder().encode(
    "the byte level model pools words into a shorter sequence. ".repeat(40),
  );
  const tokens = new Int32Array(B * S),
    targets = new Int32Array(B * S),
    mask = new Int32Array(B * S);
  for (let b = 0; b < B; b++) {
    const row = text.subarray(b * 13, b * 13 + S + 1);
    mask.set(levelMask(row.subarray(0, S), cfg.strategy), b * S);
    for (let i = 0; i < S; i++) {
      tokens[b * S + i] = row[i];
      targets[b * S + i] = row[i + 1];
    }
  }
  const model = new AUNet(cfg.model, be);
  const optim = new AdamW(model.params, be, OFFICIAL_ADAMW);
  const t = time(() =>
    scoped(() => {
      backward(model.loss(tokens, mask, targets, B, S).loss);
      optim.update(1e-3);
      model.zeroGrad();
    }),
  );
  return {
    kernel: "train step",
    shape: `small model, ${B}x${S} bytes`,
    op: "bytes/s",
    rate: { [be.name]: (B * S) / t },
  };
}

function main(): void {
  const wasm = loadWasmBackend();
  if (!wasm.backend) throw new Error(`wasm backend unavailable: ${wasm.error}`);
  const backends: Backend[] = [wasm.backend];
  const native = loadNativeBackend().backend;
  if (native) {
    native.setThreads(1);
    backends.push(native);
  } else log(`(native backend unavailable: ${loadNativeBackend().error})`);
  log(`wasm module: ${wasm.file}; native: ${native ? `isa ${native.isa}, 1 thread` : "none"}\n`);

  const merged: Row[] = [];
  for (const be of backends) {
    const rows = [...gemmRates(be), ...attentionRates(be), trainRate(be)];
    rows.forEach((r, i) => {
      if (!merged[i]) merged[i] = { ...r, rate: {} };
      Object.assign(merged[i].rate, r.rate);
    });
  }
  if (JSON_ONLY) {
    console.log(JSON.stringify({ backends: backends.map((b) => b.name), rows: merged }, null, 2));
    return;
  }
  const cols = ["kernel", "shape", "op", ...backends.map((b) => b.name), ...(native ? ["wasm/cpu"] : [])];
  const cells = merged.map((r) => [
    r.kernel,
    r.shape,
    r.op,
    ...backends.map((b) => r.rate[b.name].toFixed(r.op === "bytes/s" ? 0 : 1)),
    ...(native ? [`${((100 * r.rate.wasm) / r.rate.cpu).toFixed(0)}%`] : []),
  ]);
  const w = cols.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i].length)));
  log("GFLOP/s (kernels) and bytes/s (training step)");
  log(cols.map((c, i) => c.padStart(w[i])).join("  "));
  for (const r of cells) log(r.map((c, i) => c.padStart(w[i])).join("  "));
}

main();
