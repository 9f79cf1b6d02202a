// The native CPU backend: C++ kernels (native/, built at install time by scripts/build-native.mjs into
// build/Release/aunet_native.node) behind the Backend interface. Storages are 64-byte aligned native buffers
// recycled through a pool on release; the op layer only ever holds them as opaque handles.
//
// AUNET_THREADS sets the kernel thread count (default: every available core); AUNET_ISA=generic|avx2|avx512
// forces a kernel set (default: the best this CPU supports).
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { UserError } from "../util/errors.js";
import { readBackendEnv } from "./env.js";
import type {
  AdamWParams,
  AttentionParams,
  Backend,
  MatmulParams,
  RopeParams,
  Storage,
} from "../engine/backend.js";

type H = object;

/** The addon's exports (native/addon.cc). */
interface Addon {
  alloc(n: number, zero?: boolean): H;
  fromFloat32(a: Float32Array): H;
  read(h: H): Float32Array;
  write(h: H, a: Float32Array, offset: number): void;
  release(h: H): void;
  poolStats(): PoolStats;
  trimPool(): void;
  setThreads(n: number): void;
  getThreads(): number;
  isa(): string;
  setIsa(name: string): boolean;
  supportedIsas(): string[];
  fill(o: H, v: number): void;
  copy(o: H, a: H): void;
  add(o: H, a: H, b: H): void;
  axpy(o: H, a: H, alpha: number): void;
  scale(o: H, a: H, alpha: number): void;
  sum(a: H): number;
  reduceSum(o: H, a: H, alpha: number): void;
  sumSquares(a: H): number;
  matmul(o: H, a: H, b: H, m: number, n: number, k: number, ta: boolean, tb: boolean, acc: boolean): void;
  gather(o: H, src: H, idx: Int32Array, dim: number): void;
  scatterAdd(dst: H, src: H, idx: Int32Array, dim: number): void;
  rmsnorm(o: H, rstd: H, x: H, w: H, dim: number, eps: number): void;
  rmsnormBackward(dx: H, dw: H, dout: H, x: H, w: H, rstd: H, dim: number): void;
  swiglu(o: H, a: H, b: H): void;
  swigluBackward(da: H, db: H, dout: H, a: H, b: H): void;
  rope(
    o: H,
    x: H,
    cos: H,
    sin: H,
    rows: number,
    seq: number,
    nHeads: number,
    headDim: number,
    positions: Int32Array | null,
    backward: boolean,
  ): void;
  attention(o: H, lse: H, q: H, k: H, v: H, ...p: AttnArgs): void;
  attentionBackward(dq: H, dk: H, dv: H, dout: H, q: H, k: H, v: H, out: H, lse: H, ...p: AttnArgs): void;
  indexedLinear(o: H, x: H, w: H, pos: Int32Array, dIn: number, dOut: number): void;
  indexedLinearBackward(dx: H, dw: H, dout: H, x: H, w: H, pos: Int32Array, dIn: number, dOut: number): void;
  crossEntropy(loss: H, lse: H, logits: H, targets: Int32Array, vocab: number): void;
  crossEntropyBackward(dl: H, dloss: H, logits: H, lse: H, targets: Int32Array, vocab: number): void;
  adamw(
    p: H,
    g: H,
    m: H,
    v: H,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    step: number,
    gradScale: number,
  ): void;
}

type AttnArgs = [number, number, number, number, number, number, number, number, number];

export interface PoolStats {
  /** Storages that needed new memory from the system. */
  freshAllocs: number;
  /** Storages served from released memory. */
  reusedAllocs: number;
  liveBytes: number;
  pooledBytes: number;
  limitBytes: number;
}

class NativeStorage implements Storage {
  constructor(
    readonly size: number,
    readonly h: H,
  ) {}
}

function h(s: Storage): H {
  const x = (s as NativeStorage).h;
  if (x === undefined) throw new TypeError("native backend: storage belongs to another backend");
  return x;
}

function attnArgs(p: AttentionParams): AttnArgs {
  return [p.batch, p.sq, p.sk, p.nHeads, p.nKvHeads, p.headDim, p.qOffset, p.window, p.scale];
}

export class NativeBackend implements Backend {
  readonly name = "cpu";

  constructor(private readonly a: Addon) {}

  /** Kernel threads (the calling thread included). Takes effect for the next kernel. */
  setThreads(n: number): void {
    this.a.setThreads(Math.max(1, Math.floor(n)));
  }
  get threads(): number {
    return this.a.getThreads();
  }
  /** The instruction set of the kernels in use: "avx512", "avx2" or "generic". */
  get isa(): string {
    return this.a.isa();
  }
  /** Switches kernel set (for tests and benchmarks); false if this CPU lacks it. */
  setIsa(name: string): boolean {
    return this.a.setIsa(name);
  }
  supportedIsas(): string[] {
    return this.a.supportedIsas();
  }
  poolStats(): PoolStats {
    return this.a.poolStats();
  }
  /** Returns pooled (released) memory to the system. */
  trimPool(): void {
    this.a.trimPool();
  }

  alloc(size: number, zero = true): Storage {
    return new NativeStorage(size, this.a.alloc(size, zero));
  }
  fromFloat32(data: Float32Array): Storage {
    return new NativeStorage(data.length, this.a.fromFloat32(data));
  }
  read(s: Storage): Float32Array {
    return this.a.read(h(s));
  }
  write(s: Storage, data: Float32Array, offset: number): void {
    this.a.write(h(s), data, offset);
  }
  release(s: Storage): void {
    this.a.release(h(s));
  }

  fill(out: Storage, value: number): void {
    this.a.fill(h(out), value);
  }
  copy(out: Storage, a: Storage): void {
    this.a.copy(h(out), h(a));
  }
  add(out: Storage, a: Storage, b: Storage): void {
    this.a.add(h(out), h(a), h(b));
  }
  axpy(out: Storage, a: Storage, alpha: number): void {
    this.a.axpy(h(out), h(a), alpha);
  }
  scale(out: Storage, a: Storage, alpha: number): void {
    this.a.scale(h(out), h(a), alpha);
  }
  sum(a: Storage): number {
    return this.a.sum(h(a));
  }
  reduceSum(out: Storage, a: Storage, alpha: number): void {
    this.a.reduceSum(h(out), h(a), alpha);
  }
  sumSquares(a: Storage): number {
    return this.a.sumSquares(h(a));
  }

  matmul(out: Storage, a: Storage, b: Storage, p: MatmulParams): void {
    this.a.matmul(h(out), h(a), h(b), p.m, p.n, p.k, p.transA, p.transB, p.accumulate);
  }

  embedding(out: Storage, table: Storage, ids: Int32Array, dim: number): void {
    this.a.gather(h(out), h(table), ids, dim);
  }
  embeddingBackward(dtable: Storage, dout: Storage, ids: Int32Array, dim: number): void {
    this.a.scatterAdd(h(dtable), h(dout), ids, dim);
  }
  gatherRows(out: Storage, src: Storage, idx: Int32Array, dim: number): void {
    this.a.gather(h(out), h(src), idx, dim);
  }
  scatterAddRows(dst: Storage, src: Storage, idx: Int32Array, dim: number): void {
    this.a.scatterAdd(h(dst), h(src), idx, dim);
  }

  rmsnorm(out: Storage, rstd: Storage, x: Storage, w: Storage, dim: number, eps: number): void {
    this.a.rmsnorm(h(out), h(rstd), h(x), h(w), dim, eps);
  }
  rmsnormBackward(
    dx: Storage,
    dw: Storage,
    dout: Storage,
    x: Storage,
    w: Storage,
    rstd: Storage,
    dim: number,
  ): void {
    this.a.rmsnormBackward(h(dx), h(dw), h(dout), h(x), h(w), h(rstd), dim);
  }
  swiglu(out: Storage, a: Storage, b: Storage): void {
    this.a.swiglu(h(out), h(a), h(b));
  }
  swigluBackward(da: Storage, db: Storage, dout: Storage, a: Storage, b: Storage): void {
    this.a.swigluBackward(h(da), h(db), h(dout), h(a), h(b));
  }

  rope(out: Storage, x: Storage, cos: Storage, sin: Storage, p: RopeParams): void {
    this.a.rope(h(out), h(x), h(cos), h(sin), p.rows, p.seq, p.nHeads, p.headDim, p.positions, false);
  }
  ropeBackward(dx: Storage, dout: Storage, cos: Storage, sin: Storage, p: RopeParams): void {
    this.a.rope(h(dx), h(dout), h(cos), h(sin), p.rows, p.seq, p.nHeads, p.headDim, p.positions, true);
  }
  attention(out: Storage, lse: Storage, q: Storage, k: Storage, v: Storage, p: AttentionParams): void {
    this.a.attention(h(out), h(lse), h(q), h(k), h(v), ...attnArgs(p));
  }
  attentionBackward(
    dq: Storage,
    dk: Storage,
    dv: Storage,
    dout: Storage,
    q: Storage,
    k: Storage,
    v: Storage,
    out: Storage,
    lse: Storage,
    p: AttentionParams,
  ): void {
    this.a.attentionBackward(h(dq), h(dk), h(dv), h(dout), h(q), h(k), h(v), h(out), h(lse), ...attnArgs(p));
  }

  indexedLinear(out: Storage, x: Storage, w: Storage, pos: Int32Array, dIn: number, dOut: number): void {
    this.a.indexedLinear(h(out), h(x), h(w), pos, dIn, dOut);
  }
  indexedLinearBackward(
    dx: Storage,
    dw: Storage,
    dout: Storage,
    x: Storage,
    w: Storage,
    pos: Int32Array,
    dIn: number,
    dOut: number,
  ): void {
    this.a.indexedLinearBackward(h(dx), h(dw), h(dout), h(x), h(w), pos, dIn, dOut);
  }

  crossEntropy(loss: Storage, lse: Storage, logits: Storage, targets: Int32Array, vocab: number): void {
    this.a.crossEntropy(h(loss), h(lse), h(logits), targets, vocab);
  }
  crossEntropyBackward(
    dlogits: Storage,
    dloss: Storage,
    logits: Storage,
    lse: Storage,
    targets: Int32Array,
    vocab: number,
  ): void {
    this.a.crossEntropyBackward(h(dlogits), h(dloss), h(logits), h(lse), targets, vocab);
  }

  adamw(param: Storage, grad: Storage, m: Storage, v: Storage, p: AdamWParams): void {
    this.a.adamw(
      h(param),
      h(grad),
      h(m),
      h(v),
      p.lr,
      p.beta1,
      p.beta2,
      p.eps,
      p.weightDecay,
      p.step,
      p.gradScale,
    );
  }
}

/** Where install puts the addon: <package root>/build/Release (this file is dist/src/backends/native.js). */
export function nativeAddonPath(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  return path.resolve(here, "..", "..", "..", "build", "Release", "aunet_native.node");
}

function defaultThreads(): number {
  const env = readBackendEnv().threads;
  if (env !== undefined) return env;
  return typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length || 1;
}

let loaded: { backend: NativeBackend | null; error: string } | null = null;

/** The native backend, or null with the reason when the addon is missing or fails to load. */
export function loadNativeBackend(): { backend: NativeBackend | null; error: string } {
  if (loaded) return loaded;
  const file = nativeAddonPath();
  try {
    const req = createRequire(import.meta.url);
    const addon = req(file) as Addon;
    addon.setThreads(defaultThreads());
    const isa = readBackendEnv().isa;
    if (isa !== undefined && addon.isa() !== isa)
      throw new UserError(`AUNET_ISA=${isa}: this CPU does not support it (its best is ${addon.isa()})`);
    loaded = { backend: new NativeBackend(addon), error: "" };
  } catch (e) {
    if (e instanceof UserError) throw e;
    const msg = e instanceof Error ? e.message.split("\n")[0] : String(e);
    loaded = { backend: null, error: `cannot load ${file}: ${msg} (run npm install to build it)` };
  }
  return loaded;
}
