// Kernel benchmarks for the native CPU backend: GEMM throughput against the machine's f32 peak and fused
// attention forward/backward. Prints a table and writes JSON (bench/results.json, or --out FILE; --json
// prints the JSON to stdout instead of the table).
//
//   npm run bench                 all benchmarks, 1 and 2 threads
//   npm run bench -- --quick      fewer repetitions
//   npm run bench -- --threads 1,2,4
//   npm run bench -- --no-train   kernels only (no full training steps)
//
// Peak: 169 GFLOP/s per core (two 512-bit FMA pipes x 16 lanes x 2 flops x ~2.6 GHz on the reference AMD
// EPYC); override with AUNET_PEAK_GFLOPS_PER_CORE for another machine.
import { writeFileSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadNativeBackend, type NativeBackend } from "../src/backends/native.js";
import type { AttentionParams, Storage } from "../src/engine/backend.js";
import { Profiler, type OpStat } from "../src/backends/profile.js";
import { flopsPerByte, measurePositions, mfu } from "../src/train/flops.js";
import { AUNet } from "../src/model/aunet.js";
import { parseConfig } from "../src/model/config.js";
import { levelMask } from "../src/data/splitter.js";
import { AdamW, OFFICIAL_ADAMW } from "../src/train/optimizer.js";
import { readStepValues, trainStep, type StepOptions } from "../src/train/step.js";

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(name);
const opt = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const QUICK = flag("--quick");
const JSON_ONLY = flag("--json");
const THREADS = (opt("--threads") ?? "1,2").split(",").map((s) => Math.max(1, parseInt(s, 10)));
const OUT = opt("--out") ?? path.join("bench", "results.json");
const PEAK_PER_CORE = Number(process.env.AUNET_PEAK_GFLOPS_PER_CORE ?? 169);
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

/** Best time per call in seconds: warm up, then repeat until MIN_SECONDS have passed (at least 3 calls). */
function time(fn: () => void): number {
  fn();
  let best = Infinity,
    total = 0,
    reps = 0;
  while (reps < 3 || total < MIN_SECONDS) {
    const t0 = process.hrtime.bigint();
    fn();
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    best = Math.min(best, dt);
    total += dt;
    reps++;
  }
  return best;
}

interface Row {
  [k: string]: string | number | boolean;
}

function table(rows: Row[], cols: string[]): void {
  const w = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? "").length)));
  log(cols.map((c, i) => c.padStart(w[i])).join("  "));
  for (const r of rows) log(cols.map((c, i) => String(r[c] ?? "").padStart(w[i])).join("  "));
  log("");
}

function benchGemm(nb: NativeBackend): Row[] {
  const shapes: [number, number, number][] = [
    [512, 512, 512],
    [1024, 1024, 1024],
    [4096, 256, 1024],
    [4096, 1024, 256],
  ];
  const rows: Row[] = [];
  for (const [m, n, k] of shapes) {
    const a = nb.fromFloat32(randn(m * k, 1)),
      b = nb.fromFloat32(randn(k * n, 2)),
      c = nb.alloc(m * n);
    for (const threads of THREADS) {
      nb.setThreads(threads);
      for (const [transA, transB] of [
        [false, false],
        [false, true],
        [true, false],
      ] as [boolean, boolean][]) {
        const p = { m, n, k, transA, transB, accumulate: false };
        const t = time(() => nb.matmul(c, a, b, p));
        const gflops = (2 * m * n * k) / t / 1e9;
        rows.push({
          kernel: "matmul",
          shape: `${m}x${n}x${k}`,
          op: `${transA ? "T" : "N"}${transB ? "T" : "N"}`,
          threads,
          ms: +(t * 1e3).toFixed(3),
          gflops: +gflops.toFixed(1),
          pctPeak: +((100 * gflops) / (PEAK_PER_CORE * threads)).toFixed(1),
        });
      }
    }
    for (const s of [a, b, c]) nb.release(s);
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

function benchAttention(nb: NativeBackend): Row[] {
  const rows: Row[] = [];
  for (const window of [0, 256]) {
    const p: AttentionParams = {
      batch: 4,
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
    const q = nb.fromFloat32(randn(nq, 3)),
      k = nb.fromFloat32(randn(nq, 4)),
      v = nb.fromFloat32(randn(nq, 5)),
      g = nb.fromFloat32(randn(nq, 6));
    const out = nb.alloc(nq),
      lse = nb.alloc(p.batch * p.nHeads * p.sq);
    const dq = nb.alloc(nq),
      dk = nb.alloc(nq),
      dv = nb.alloc(nq);
    const pairs = visiblePairs(p);
    for (const threads of THREADS) {
      nb.setThreads(threads);
      const tf = time(() => nb.attention(out, lse, q, k, v, p));
      const tb = time(() => nb.attentionBackward({ dq, dk, dv, dout: g, q, k, v, out, lse }, p));
      // forward: QK^T and PV, 2 flops each per pair and head dim; backward: five such products
      const ff = 4 * pairs * p.headDim,
        fb = 10 * pairs * p.headDim;
      const shape = `B${p.batch} S${p.sq} H${p.nHeads} hd${p.headDim} w${window || "none"}`;
      for (const [dir, t, f] of [
        ["fwd", tf, ff],
        ["bwd", tb, fb],
      ] as [string, number, number][])
        rows.push({
          kernel: "attention",
          shape,
          op: dir,
          threads,
          ms: +(t * 1e3).toFixed(3),
          gflops: +(f / t / 1e9).toFixed(1),
          pctPeak: +((100 * (f / t / 1e9)) / (PEAK_PER_CORE * threads)).toFixed(1),
        });
    }
    for (const s of [q, k, v, g, out, lse, dq, dk, dv] as Storage[]) nb.release(s);
  }
  return rows;
}

// Full training steps (forward, backward, gradient norm, AdamW) of the two model configurations stored in
// bench/configs/, on synthetic word-like bytes, as the trainer runs them. Reported as bytes/s, model FLOPs
// utilisation (spec section 9 FLOPs per byte with the measured positions per stage) against the peak of the
// threads used, the ratio to the official PyTorch code's throughput on this machine, and a per-op profile.
const TRAIN_CONFIGS = ["aunet_small", "aunet_medium"];
/** Official lingua implementation, 2 threads, this machine (bytes/s; from the issue that set the targets). */
const OFFICIAL_BYTES_PER_S: Record<string, number> = { aunet_small: 1400, aunet_medium: 950 };
const TRAIN_BATCH = Number(opt("--train-batch") ?? 4);

function syntheticBytes(n: number, seed: number): Uint8Array {
  const words = [
    "the",
    "a",
    "model",
    "byte",
    "level",
    "of",
    "and",
    "pooling",
    "net",
    "is",
    "to",
    "in",
    "unet",
  ];
  const out = new Uint8Array(n);
  let s = seed >>> 0,
    i = 0;
  while (i < n) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const w = words[s % words.length] + (s % 7 === 0 ? ". " : " ");
    for (let c = 0; c < w.length && i < n; c++) out[i++] = w.charCodeAt(c);
  }
  return out;
}

interface TrainBench {
  rows: Row[];
  profiles: { config: string; threads: number; ops: (OpStat & { pct: number })[] }[];
}

async function benchTrainStep(nb: NativeBackend): Promise<TrainBench> {
  const out: TrainBench = { rows: [], profiles: [] };
  if (flag("--no-train")) return out;
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const name of TRAIN_CONFIGS) {
    // dist/bench/bench.js -> bench/configs/<name>.json at the package root.
    const file = path.resolve(here, "..", "..", "bench", "configs", `${name}.json`);
    const cfg = parseConfig(JSON.parse(readFileSync(file, "utf8")));
    const B = TRAIN_BATCH,
      S = cfg.model.max_seqlens[0];
    const bytes = syntheticBytes(B * (S + 1), 11);
    const tokens = new Int32Array(B * S),
      targets = new Int32Array(B * S),
      mask = new Int32Array(B * S);
    const rowMasks: Int32Array[] = [];
    for (let b = 0; b < B; b++) {
      const row = bytes.subarray(b * (S + 1), (b + 1) * (S + 1));
      for (let t = 0; t < S; t++) {
        tokens[b * S + t] = row[t];
        targets[b * S + t] = row[t + 1];
      }
      const m = levelMask(row.subarray(0, S), cfg.strategy);
      rowMasks.push(m);
      mask.set(m, b * S);
    }
    const { positions } = measurePositions(cfg.model, rowMasks, S);
    const fpb = flopsPerByte(cfg.model, positions, B);
    const profiler = new Profiler();
    const be = profiler.wrap(nb);
    const model = new AUNet(cfg.model, be);
    const optim = new AdamW(model.params, be, OFFICIAL_ADAMW);
    const stepOptions: StepOptions<null> = {
      model: { loss: () => model.loss(tokens, mask, targets, B, S).loss, zeroGrad: () => model.zeroGrad() },
      optimizer: optim,
      gradAcc: 1,
      nextBatch: async () => null,
    };
    // The trainer's step, with its values read as the trainer reads them (once per step here).
    const step = async () => readStepValues(await trainStep(stepOptions, 1e-4));
    for (const threads of THREADS) {
      nb.setThreads(threads);
      await step(); // warm-up: JIT, pool buffers, scratch
      const reps = QUICK ? 2 : 4;
      let best = Infinity;
      profiler.reset();
      for (let i = 0; i < reps; i++) {
        const t0 = process.hrtime.bigint();
        await step();
        best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
      }
      const bytesPerS = (B * S) / best;
      out.rows.push({
        kernel: "train_step",
        shape: `${name} B${B} S${S}`,
        threads,
        ms: +(best * 1e3).toFixed(1),
        bytesPerS: Math.round(bytesPerS),
        gflopPerStep: +((fpb * B * S) / 1e9).toFixed(1),
        mfuPct: +(100 * mfu(fpb, bytesPerS, threads) * (169 / PEAK_PER_CORE)).toFixed(1),
        vsOfficial: +(bytesPerS / OFFICIAL_BYTES_PER_S[name]).toFixed(1),
      });
      const ops = profiler.report();
      const total = ops.reduce((a, o) => a + o.ms, 0);
      out.profiles.push({
        config: name,
        threads,
        ops: ops.map((o) => ({
          op: o.op,
          calls: Math.round(o.calls / reps),
          ms: +(o.ms / reps).toFixed(2),
          pct: +((100 * o.ms) / total).toFixed(1),
        })),
      });
    }
  }
  return out;
}

async function main(): Promise<void> {
  const { backend: nb, error } = loadNativeBackend();
  if (!nb) {
    console.error(`bench: native backend unavailable: ${error}`);
    process.exit(1);
  }
  const t0 = nb.threads;
  log(
    `aunet native backend: isa=${nb.isa}, peak ${PEAK_PER_CORE} GFLOP/s per core, threads ${THREADS.join(",")}\n`,
  );
  const gemm = benchGemm(nb);
  table(gemm, ["kernel", "shape", "op", "threads", "ms", "gflops", "pctPeak"]);
  const attn = benchAttention(nb);
  table(attn, ["kernel", "shape", "op", "threads", "ms", "gflops", "pctPeak"]);
  let train: TrainBench = { rows: [], profiles: [] };
  try {
    train = await benchTrainStep(nb);
  } catch (e) {
    log(`train-step benchmark skipped: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (train.rows.length) {
    log(
      "Training step: bytes/s, model FLOPs utilisation (% of the peak of the threads used), vs official PyTorch",
    );
    table(train.rows, Object.keys(train.rows[0]));
    for (const p of train.profiles) {
      log(`Per-op profile: ${p.config}, ${p.threads} thread(s), one step (time inside kernels)`);
      table(p.ops.slice(0, 14) as unknown as Row[], ["op", "calls", "ms", "pct"]);
    }
  }
  nb.setThreads(t0);
  const result = {
    date: new Date().toISOString(),
    isa: nb.isa,
    peakGflopsPerCore: PEAK_PER_CORE,
    node: process.version,
    gemm,
    attention: attn,
    trainStep: train.rows,
    trainProfile: train.profiles,
  };
  if (JSON_ONLY) console.log(JSON.stringify(result, null, 2));
  else {
    mkdirSync(path.dirname(OUT), { recursive: true });
    writeFileSync(OUT, JSON.stringify(result, null, 2) + "\n");
    log(`wrote ${OUT}`);
  }
}

await main();
