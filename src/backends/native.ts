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

type H = object;

/**
 * The addon's compute kernels and their signatures, one letter per argument (native/kernel_list.h, where the
 * addon's own table is declared): S storage, N number, I non-negative integer, B boolean, A Int32Array,
 * P Int32Array or null, L array of storages. The `Addon` interface below is derived from this table, and
 * test/addon-kernels.test.ts checks that the built addon exports exactly these kernels with these signatures.
 */
export const KERNEL_SIGNATURES = {
  fill: "SN",
  copy: "SS",
  add: "SSS",
  axpy: "SSN",
  scale: "SSN",
  reduceSum: "SSN",
  broadcast: "SSN",
  copyRows: "SSIIII",
  matmul: "SSSIIIBBB",
  gather: "SSAI",
  scatterAdd: "SSAI",
  rmsnorm: "SSSSIN",
  rmsnormBackward: "SSSSSSI",
  swiglu: "SSS",
  swigluBackward: "SSSSS",
  rope: "SSSSIIIIPB",
  attention: "SSSSSIIIIIIIIN",
  attentionBackward: "SSSSSSSSSIIIIIIIIN",
  indexedLinear: "SSSAII",
  indexedLinearBackward: "SSSSSAII",
  crossEntropy: "SSSAI",
  crossEntropyBackward: "SSSSAI",
  clipGradNorm: "SSLN",
  adamw: "SSSSNNNNNIS",
} as const;

type ArgOf<C extends string> = C extends "S"
  ? H
  : C extends "N" | "I"
    ? number
    : C extends "B"
      ? boolean
      : C extends "A"
        ? Int32Array
        : C extends "P"
          ? Int32Array | null
          : C extends "L"
            ? H[]
            : never;
type ArgsOf<Sig extends string> = Sig extends `${infer C}${infer Rest}` ? [ArgOf<C>, ...ArgsOf<Rest>] : [];
type KernelFns = {
  [K in keyof typeof KERNEL_SIGNATURES]: (...args: ArgsOf<(typeof KERNEL_SIGNATURES)[K]>) => void;
};

/** The addon's exports (native/addon.cc): storage and configuration functions, then the kernels. */
export interface Addon extends KernelFns {
  alloc(n: number, zero?: boolean, reuse?: H): H;
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
  kernelSignatures(): Record<string, string>;
}

/** The addon's exports other than the kernels. */
export const ADDON_UTILITIES = [
  "alloc",
  "fromFloat32",
  "read",
  "write",
  "release",
  "poolStats",
  "trimPool",
  "setThreads",
  "getThreads",
  "isa",
  "setIsa",
  "supportedIsas",
  "kernelSignatures",
] as const;

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
    /** The addon's handle; null once released (the handle may then serve another storage). */
    public h: H | null,
  ) {}
}

function h(s: Storage): H {
  const x = (s as NativeStorage).h;
  if (x === undefined) throw new TypeError("native backend: storage belongs to another backend");
  if (x === null) throw new Error("native backend: storage used after release");
  return x;
}

// Released handles kept for reuse (see alloc); beyond this many, a released handle is left to the collector.
const SPARE_HANDLES = 4096;

function attnArgs(p: AttentionParams): AttnArgs {
  return [p.batch, p.sq, p.sk, p.nHeads, p.nKvHeads, p.headDim, p.qOffset, p.window, p.scale];
}

export class NativeBackend implements Backend {
  readonly name = "cpu";

  private readonly spare: H[] = [];

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
    // A released handle takes the new memory: no new handle (and no finalizer for Node to run later) per
    // allocation in steady state.
    const reuse = this.spare.pop();
    return new NativeStorage(size, this.a.alloc(size, zero, reuse));
  }
  fromFloat32(data: Float32Array): Storage {
    return new NativeStorage(data.length, this.a.fromFloat32(data));
  }
  read(s: Storage): Promise<Float32Array> {
    // Kernels run synchronously on the calling thread, so the data is ready now.
    return Promise.resolve(this.a.read(h(s)));
  }
  readSync(s: Storage): Float32Array {
    return this.a.read(h(s));
  }
  write(s: Storage, data: Float32Array, offset: number): void {
    this.a.write(h(s), data, offset);
  }
  release(s: Storage): void {
    const ns = s as NativeStorage;
    if (ns.h === null) return;
    const handle = h(s);
    this.a.release(handle);
    ns.h = null;
    if (this.spare.length < SPARE_HANDLES) this.spare.push(handle);
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
  reduceSum(out: Storage, a: Storage, alpha: number): void {
    this.a.reduceSum(h(out), h(a), alpha);
  }
  broadcast(out: Storage, a: Storage, alpha: number): void {
    this.a.broadcast(h(out), h(a), alpha);
  }
  copyRows(dst: Storage, src: Storage, p: CopyRowsParams): void {
    this.a.copyRows(h(dst), h(src), p.dim, p.rows, p.srcRow, p.dstRow);
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
  rmsnormBackward(g: RmsnormGrads, dim: number): void {
    this.a.rmsnormBackward(h(g.dx), h(g.dw), h(g.dout), h(g.x), h(g.w), h(g.rstd), dim);
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
  attentionBackward(g: AttentionGrads, p: AttentionParams): void {
    this.a.attentionBackward(
      h(g.dq),
      h(g.dk),
      h(g.dv),
      h(g.dout),
      h(g.q),
      h(g.k),
      h(g.v),
      h(g.out),
      h(g.lse),
      ...attnArgs(p),
    );
  }

  indexedLinear(out: Storage, x: Storage, w: Storage, p: IndexedLinearParams): void {
    this.a.indexedLinear(h(out), h(x), h(w), p.pos, p.dIn, p.dOut);
  }
  indexedLinearBackward(g: IndexedLinearGrads, p: IndexedLinearParams): void {
    this.a.indexedLinearBackward(h(g.dx), h(g.dw), h(g.dout), h(g.x), h(g.w), p.pos, p.dIn, p.dOut);
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

  clipGradNorm(p: ClipGradNormParams): void {
    this.a.clipGradNorm(h(p.norm), h(p.scale), p.grads.map(h), p.maxNorm);
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
      h(p.gradScale),
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
