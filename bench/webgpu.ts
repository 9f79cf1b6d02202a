// WebGPU kernel benchmarks: GEMM (both kernels: workgroup-memory tiles and register blocks) and fused
// attention forward and backward, in GFLOP/s, with the adapter's name. Timing covers whole batches of launches
// ended by a read (the only completion signal WebGPU gives), so it includes submission overhead.
//
//   npm run build && node dist/bench/webgpu.js            default sizes (small: software adapters are slow)
//   node dist/bench/webgpu.js --sizes 256,512,1024 --seq 512
//   node dist/bench/webgpu.js --json
//
// GEMM counts 2mnk flops. Attention counts 4 hd flops per visible (query, key) pair forward (scores and the
// weighted sum) and 2.5x that backward, the usual FlashAttention convention.
import type { AttentionParams, Storage } from "../src/engine/backend.js";
import { createWebGPUBackend, type GemmPath, type WebGPUBackend } from "../src/backends/webgpu/index.js";

const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const JSON_ONLY = argv.includes("--json");
const SIZES = (opt("--sizes") ?? "128,256,512").split(",").map(Number);
const SEQ = Number(opt("--seq") ?? 256);
const MIN_SECONDS = Number(opt("--seconds") ?? 0.5);
const log = (s: string) => {
  if (!JSON_ONLY) console.log(s);
};

function random(be: WebGPUBackend, n: number): Storage {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin(i * 12.9898) * 0.5;
  return be.fromFloat32(a);
}

/** Seconds per call of fn, repeating until MIN_SECONDS have passed; `done` waits for the device. */
async function time(fn: () => void, done: () => Promise<unknown>): Promise<number> {
  fn();
  await done(); // compiles the pipelines outside the timing
  let reps = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) fn();
    await done();
    const s = (performance.now() - t0) / 1000;
    if (s >= MIN_SECONDS || reps >= 1 << 16) return s / reps;
    reps = Math.max(reps * 2, Math.ceil((reps * MIN_SECONDS) / Math.max(s, 1e-6)));
  }
}

interface Row {
  kernel: string;
  shape: string;
  gflops: number;
}

async function gemm(path: GemmPath, rows: Row[]): Promise<void> {
  const be = await createWebGPUBackend({ gemm: path });
  for (const n of SIZES) {
    const a = random(be, n * n),
      b = random(be, n * n),
      c = be.alloc(n * n);
    for (const [transA, transB] of [
      [false, false],
      [false, true],
      [true, false],
    ]) {
      const p = { m: n, n, k: n, transA, transB, accumulate: false };
      const s = await time(
        () => be.matmul(c, a, b, p),
        () => be.read(c),
      );
      const shape = `${n}^3 ${transA ? "T" : "N"}${transB ? "T" : "N"}`;
      rows.push({ kernel: `gemm ${path}`, shape, gflops: (2 * n * n * n) / s / 1e9 });
      log(
        `${`gemm ${path}`.padEnd(22)} ${shape.padEnd(20)} ${rows[rows.length - 1].gflops.toFixed(2)} GFLOP/s`,
      );
    }
    for (const x of [a, b, c]) be.release(x);
  }
  be.destroy();
}

async function attention(rows: Row[]): Promise<string> {
  const be = await createWebGPUBackend();
  for (const [H, Hkv, hd, window] of [
    [4, 4, 64, 0],
    [8, 2, 32, 0],
    [4, 4, 64, 128],
  ]) {
    const p: AttentionParams = {
      batch: 1,
      sq: SEQ,
      sk: SEQ,
      nHeads: H,
      nKvHeads: Hkv,
      headDim: hd,
      qOffset: 0,
      window,
      scale: 1 / Math.sqrt(hd),
    };
    const nq = SEQ * H * hd,
      nk = SEQ * Hkv * hd;
    const q = random(be, nq),
      k = random(be, nk),
      v = random(be, nk),
      o = be.alloc(nq),
      lse = be.alloc(H * SEQ),
      g = random(be, nq);
    const dq = be.alloc(nq),
      dk = be.alloc(nk),
      dv = be.alloc(nk);
    let pairs = 0;
    for (let i = 0; i < SEQ; i++) pairs += window > 0 ? Math.min(i + 1, window) : i + 1;
    const fwdFlops = 4 * hd * pairs * H;
    const shape = `S=${SEQ} H=${H}/${Hkv} hd=${hd}${window ? ` W=${window}` : ""}`;
    const sf = await time(
      () => be.attention(o, lse, q, k, v, p),
      () => be.read(lse),
    );
    const sb = await time(
      () => be.attentionBackward({ dq, dk, dv, dout: g, q, k, v, out: o, lse }, p),
      () => be.read(dk),
    );
    rows.push({ kernel: "attention fwd", shape, gflops: fwdFlops / sf / 1e9 });
    rows.push({ kernel: "attention bwd", shape, gflops: (2.5 * fwdFlops) / sb / 1e9 });
    for (const r of rows.slice(-2))
      log(`${r.kernel.padEnd(22)} ${r.shape.padEnd(20)} ${r.gflops.toFixed(2)} GFLOP/s`);
    for (const x of [q, k, v, o, lse, g, dq, dk, dv]) be.release(x);
  }
  const name = `${be.adapterName}${be.software ? ", software adapter" : ""}`;
  be.destroy();
  return name;
}

const rows: Row[] = [];
const probe = await createWebGPUBackend();
log(
  `adapter: ${probe.adapterName} (${probe.software ? "software" : "hardware"}; default GEMM ${probe.gemmPath})`,
);
probe.destroy();
await gemm("register", rows);
await gemm("tiled", rows);
const adapter = await attention(rows);
if (JSON_ONLY) console.log(JSON.stringify({ adapter, rows }, null, 2));
