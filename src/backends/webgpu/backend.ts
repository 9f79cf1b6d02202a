/// <reference types="@webgpu/types" />
// The WebGPU backend: every storage is a GPU buffer, every kernel a WGSL compute shader (kernels.ts). Work is
// recorded into one command encoder and submitted in batches; nothing comes back to the host until a read,
// which is asynchronous as WebGPU requires (mapAsync). Buffers are pooled by size, so a training step that
// allocates the same activations every time reuses the same buffers.
//
// Ordering: uniforms and index lists go into transient buffers written with queue.writeBuffer, which the
// queue runs before the batch that uses them; a transient buffer returns to its pool only after that batch
// is submitted. Writes into storages are staged in the encoder itself, so they stay in program order.

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
} from "../../engine/backend.js";
import { acquireDevice, type GpuDevice } from "./gpu.js";
import * as K from "./kernels.js";
import { WG, type Kernel } from "./wgsl.js";

export class GpuStorage implements Storage {
  constructor(
    readonly size: number,
    readonly buffer: GPUBuffer,
  ) {}
}

/** Which GEMM kernel runs: workgroup-memory tiles (GPUs) or register blocks without barriers (CPU adapters). */
export type GemmPath = "tiled" | "register";

export interface WebGPUOptions {
  /** Default: "register" on software adapters, else "tiled". */
  gemm?: GemmPath;
}

type Arg = GpuStorage | GPUBuffer;

const STORAGE_USAGE = 0x80 | 0x08 | 0x04; // STORAGE | COPY_DST | COPY_SRC
const UNIFORM_USAGE = 0x40 | 0x08; // UNIFORM | COPY_DST
const READBACK_USAGE = 0x01 | 0x08; // MAP_READ | COPY_DST
const MAP_READ = 0x01;
/** Dispatches per submitted batch: bounds the transient buffers held and the latency of a read. */
const BATCH = 128;

const kernels = new Map<string, Kernel>();

/** The kernel built by f(...args), built once: kernel sources are long strings, launches are many. */
function kern<A extends unknown[]>(f: (...args: A) => Kernel, ...args: A): Kernel {
  const key = `${f.name}${JSON.stringify(args)}`;
  let k = kernels.get(key);
  if (!k) {
    k = f(...args);
    kernels.set(key, k);
  }
  return k;
}

/** Bytes of a buffer for n float32 / int32 elements: whole vec4s, so any binding is a valid size. */
function bytesFor(n: number): number {
  return Math.max(16, Math.ceil((n * 4) / 16) * 16);
}

class BufferPool {
  private readonly free = new Map<number, GPUBuffer[]>();
  constructor(
    private readonly device: GPUDevice,
    private readonly usage: number,
  ) {}
  take(bytes: number): GPUBuffer {
    const list = this.free.get(bytes);
    const b = list?.pop();
    return b ?? this.device.createBuffer({ size: bytes, usage: this.usage });
  }
  give(b: GPUBuffer): void {
    const list = this.free.get(b.size);
    if (list) list.push(b);
    else this.free.set(b.size, [b]);
  }
  destroy(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
  }
}

/**
 * Destination rows grouped into segments, for atomic-free scatter-adds: seg = [dest (U), start (U + 1),
 * order (N)], where sources order[start[u] .. start[u+1]) all add into row dest[u].
 */
export function segmentsOf(idx: Int32Array): { seg: Uint32Array; segments: number } {
  const order = Array.from(idx.keys()).sort((a, b) => idx[a] - idx[b] || a - b);
  const dest: number[] = [];
  const start: number[] = [];
  for (let t = 0; t < order.length; t++)
    if (t === 0 || idx[order[t]] !== idx[order[t - 1]]) {
      dest.push(idx[order[t]]);
      start.push(t);
    }
  start.push(order.length);
  const U = dest.length;
  const seg = new Uint32Array(2 * U + 1 + order.length);
  seg.set(dest, 0);
  seg.set(start, U);
  seg.set(order, 2 * U + 1);
  return { seg, segments: U };
}

export class WebGPUBackend implements Backend {
  readonly name = "webgpu";
  readonly adapterName: string;
  readonly software: boolean;
  readonly gemmPath: GemmPath;
  private readonly device: GPUDevice;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly storagePool: BufferPool;
  private readonly transientPool: BufferPool;
  private readonly uniformPool: BufferPool;
  private readonly readbackPool: BufferPool;
  private encoder: GPUCommandEncoder | null = null;
  private dispatches = 0;
  /** Buffers used by the open batch, returned to their pools once it is submitted. */
  private inFlight: { pool: BufferPool; buffer: GPUBuffer }[] = [];
  private staging: GPUBuffer[] = [];
  private deviceError: string | null = null;
  private readonly dummy: GpuStorage;

  constructor(gpu: GpuDevice, opts: WebGPUOptions = {}) {
    this.device = gpu.device;
    this.adapterName = gpu.adapterName;
    this.software = gpu.software;
    this.gemmPath = opts.gemm ?? (gpu.software ? "register" : "tiled");
    this.storagePool = new BufferPool(this.device, STORAGE_USAGE);
    this.transientPool = new BufferPool(this.device, STORAGE_USAGE);
    this.uniformPool = new BufferPool(this.device, UNIFORM_USAGE);
    this.readbackPool = new BufferPool(this.device, READBACK_USAGE);
    this.device.addEventListener("uncapturederror", (ev) => {
      this.deviceError ??= (ev as GPUUncapturedErrorEvent).error.message;
    });
    this.dummy = this.alloc(4) as GpuStorage;
  }

  /** Release the device; the backend cannot be used afterwards. */
  destroy(): void {
    this.flush();
    this.device.destroy();
  }

  // ---- plumbing ----

  private pipeline(k: Kernel): GPUComputePipeline {
    let p = this.pipelines.get(k.key);
    if (!p) {
      const module = this.device.createShaderModule({ code: k.code, label: k.key });
      p = this.device.createComputePipeline({
        layout: "auto",
        compute: { module, entryPoint: "main" },
        label: k.key,
      });
      this.pipelines.set(k.key, p);
    }
    return p;
  }

  private enc(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  /** Submit the open batch. */
  flush(): void {
    if (this.encoder) {
      this.device.queue.submit([this.encoder.finish()]);
      this.encoder = null;
    }
    this.dispatches = 0;
    for (const f of this.inFlight) f.pool.give(f.buffer);
    this.inFlight = [];
    for (const b of this.staging) b.destroy();
    this.staging = [];
  }

  private transient(pool: BufferPool, bytes: number): GPUBuffer {
    const b = pool.take(bytes);
    this.inFlight.push({ pool, buffer: b });
    return b;
  }

  /** An index list (host Int32Array or Uint32Array) as a transient storage buffer. */
  private indices(a: Int32Array | Uint32Array): GPUBuffer {
    const b = this.transient(this.transientPool, bytesFor(a.length));
    if (a.length > 0) this.device.queue.writeBuffer(b, 0, a.buffer, a.byteOffset, a.byteLength);
    return b;
  }

  private uniforms(k: Kernel, values: Record<string, number>): GPUBuffer {
    const fields = k.params.length > 0 ? k.params : [["unused", "u32"] as const];
    const data = new ArrayBuffer(Math.ceil((fields.length * 4) / 16) * 16);
    const view = new DataView(data);
    fields.forEach(([name, type], i) => {
      const v = values[name] ?? 0;
      if (type === "f32") view.setFloat32(i * 4, v, true);
      else if (type === "i32") view.setInt32(i * 4, v, true);
      else view.setUint32(i * 4, v, true);
    });
    const b = this.transient(this.uniformPool, data.byteLength);
    this.device.queue.writeBuffer(b, 0, data);
    return b;
  }

  /**
   * Launch `k` with its storage bindings in declaration order over `groups` workgroups. A buffer bound
   * twice where one binding writes is not allowed in WebGPU; the read-only occurrence then reads a copy
   * (this is how kernels whose output may alias an input, like add or rope, stay correct).
   */
  private run(
    k: Kernel,
    args: Arg[],
    values: Record<string, number>,
    groups: [number, number, number],
  ): void {
    if (groups[0] === 0 || groups[1] === 0 || groups[2] === 0) return;
    const bufs = args.map((a) => (a instanceof GpuStorage ? a.buffer : a));
    const written = new Set(bufs.filter((_, i) => k.bindings[i][1] === "read_write"));
    const encoder = this.enc();
    for (let i = 0; i < bufs.length; i++)
      if (k.bindings[i][1] === "read" && written.has(bufs[i])) {
        const copy = this.transient(this.transientPool, bufs[i].size);
        encoder.copyBufferToBuffer(bufs[i], 0, copy, 0, bufs[i].size);
        bufs[i] = copy;
      }
    const pipeline = this.pipeline(k);
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: this.uniforms(k, values) } }];
    bufs.forEach((buffer, i) => entries.push({ binding: i + 1, resource: { buffer } }));
    const bind = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bind);
    pass.dispatchWorkgroups(groups[0], groups[1], groups[2]);
    pass.end();
    if (++this.dispatches >= BATCH) this.flush();
  }

  /** Workgroups for n invocations of a 1-D kernel, folded into two dimensions past the 65535 limit. */
  private grid(n: number): [number, number, number] {
    const groups = Math.ceil(n / WG);
    if (groups <= 65535) return [groups, 1, 1];
    return [65535, Math.ceil(groups / 65535), 1];
  }

  // ---- storage ----

  alloc(size: number, zero = true): Storage {
    const s = new GpuStorage(size, this.storagePool.take(bytesFor(size)));
    if (zero) this.enc().clearBuffer(s.buffer);
    return s;
  }
  fromFloat32(data: Float32Array): Storage {
    const s = this.alloc(data.length, false);
    this.write(s, data, 0);
    return s;
  }
  /**
   * WebGPU maps a buffer only asynchronously, on the event loop of the thread that owns the device, so this
   * form cannot block for it: use `read`, or WebGPUWorkerBackend (sync.ts), whose readSync waits for a worker.
   */
  readSync(_s: Storage): Float32Array {
    throw new Error(
      "the webgpu backend reads device memory asynchronously only: use read() (a Promise), " +
        "or the worker form WebGPUWorkerBackend for synchronous reads",
    );
  }
  /** A copy of the data as float32, after every kernel recorded so far has run. */
  async read(s: Storage): Promise<Float32Array> {
    const src = (s as GpuStorage).buffer;
    const bytes = bytesFor(s.size);
    const rb = this.readbackPool.take(bytes);
    this.enc().copyBufferToBuffer(src, 0, rb, 0, bytes);
    this.flush();
    await rb.mapAsync(MAP_READ);
    const out = new Float32Array(rb.getMappedRange(0, bytes).slice(0, s.size * 4));
    rb.unmap();
    this.readbackPool.give(rb);
    const err = this.deviceError;
    if (err) {
      this.deviceError = null;
      throw new Error(`webgpu: ${err}`);
    }
    return out;
  }
  write(s: Storage, data: Float32Array, offset: number): void {
    if (data.length === 0) return;
    // Staged through a mapped buffer copied in the encoder, so the write lands after the kernels before it.
    const n = Math.ceil(data.byteLength / 4) * 4;
    const stage = this.device.createBuffer({ size: n, usage: 0x04 /* COPY_SRC */, mappedAtCreation: true });
    new Float32Array(stage.getMappedRange()).set(data);
    stage.unmap();
    this.enc().copyBufferToBuffer(stage, 0, (s as GpuStorage).buffer, offset * 4, n);
    this.staging.push(stage);
  }
  release(s: Storage): void {
    this.storagePool.give((s as GpuStorage).buffer);
  }

  // ---- elementwise ----

  fill(out: Storage, value: number): void {
    this.run(kern(K.fillKernel), [out as GpuStorage], { n: out.size, value }, this.grid(out.size));
  }
  copy(out: Storage, a: Storage): void {
    if (out.size === 0) return;
    this.enc().copyBufferToBuffer((a as GpuStorage).buffer, 0, (out as GpuStorage).buffer, 0, out.size * 4);
  }
  copyRows(dst: Storage, src: Storage, p: CopyRowsParams): void {
    const { dim, rows, srcRow, dstRow } = p;
    if (rows * dim === 0) return;
    const b = (x: Storage) => (x as GpuStorage).buffer;
    this.enc().copyBufferToBuffer(b(src), srcRow * dim * 4, b(dst), dstRow * dim * 4, rows * dim * 4);
  }
  add(out: Storage, a: Storage, b: Storage): void {
    const args = [out, a, b] as GpuStorage[];
    this.run(kern(K.addKernel), args, { n: out.size }, this.grid(out.size));
  }
  axpy(out: Storage, a: Storage, alpha: number): void {
    const args = [out, a] as GpuStorage[];
    this.run(kern(K.axpyKernel, true), args, { n: out.size, alpha }, this.grid(out.size));
  }
  scale(out: Storage, a: Storage, alpha: number): void {
    const args = [out, a] as GpuStorage[];
    this.run(kern(K.axpyKernel, false), args, { n: out.size, alpha }, this.grid(out.size));
  }

  // ---- reductions ----

  /** out[0] = alpha * sum(a) (or of a^2), plus out[0] when accumulating: two passes, all on the device. */
  private reduce(out: Storage, a: Storage, alpha: number, squares: boolean, accumulate: boolean): void {
    const groups = Math.max(1, Math.min(K.REDUCE_WG, Math.ceil(a.size / (K.REDUCE_WG * 4))));
    // Intermediates that live across two launches are pooled storages, not transient buffers: a batch may be
    // submitted between the launches, and a transient buffer given back then could be refilled by a
    // queue.writeBuffer that the queue runs before the second launch.
    const partial = this.alloc(groups, false) as GpuStorage;
    const partialArgs = [partial, a as GpuStorage];
    this.run(kern(K.reducePartialKernel, squares), partialArgs, { n: a.size, groups }, [groups, 1, 1]);
    const finalArgs = [out as GpuStorage, partial];
    this.run(kern(K.reduceFinalKernel, accumulate), finalArgs, { groups, alpha }, [1, 1, 1]);
    this.release(partial);
  }
  reduceSum(out: Storage, a: Storage, alpha: number): void {
    this.reduce(out, a, alpha, false, false);
  }
  broadcast(out: Storage, a: Storage, alpha: number): void {
    const args = [out, a] as GpuStorage[];
    this.run(kern(K.broadcastKernel), args, { n: out.size, alpha }, this.grid(out.size));
  }

  // ---- dense linear algebra ----

  matmul(out: Storage, a: Storage, b: Storage, p: MatmulParams): void {
    const { m, n, k } = p;
    if (m === 0 || n === 0) return;
    const shape = { transA: p.transA, transB: p.transB };
    const values = { m, n, k, accumulate: p.accumulate ? 1 : 0, transA: +p.transA, transB: +p.transB };
    const args = [out, a, b] as GpuStorage[];
    if (this.gemmPath === "tiled") {
      const t = K.GEMM_TILE;
      this.run(kern(K.gemmTiledKernel), args, values, [Math.ceil(n / t), Math.ceil(m / t), 1]);
    } else {
      const groups: [number, number, number] = [Math.ceil(n / 32), Math.ceil(m / 32), 1];
      const vec4 = K.gemmVec4Fits(shape, m, n, k);
      this.run(kern(vec4 ? K.gemmVec4Kernel : K.gemmRegisterKernel, shape), args, values, groups);
    }
  }

  // ---- embedding / rows ----

  embedding(out: Storage, table: Storage, ids: Int32Array, dim: number): void {
    this.gatherRows(out, table, ids, dim);
  }
  embeddingBackward(dtable: Storage, dout: Storage, ids: Int32Array, dim: number): void {
    this.scatterAddRows(dtable, dout, ids, dim);
  }
  gatherRows(out: Storage, src: Storage, idx: Int32Array, dim: number): void {
    const n = idx.length * dim;
    const args = [out as GpuStorage, src as GpuStorage, this.indices(idx)];
    this.run(kern(K.gatherRowsKernel), args, { n, dim }, this.grid(n));
  }
  scatterAddRows(dst: Storage, src: Storage, idx: Int32Array, dim: number): void {
    const { seg, segments } = segmentsOf(idx);
    const n = segments * dim;
    const args = [dst as GpuStorage, src as GpuStorage, this.indices(seg)];
    this.run(kern(K.scatterAddRowsKernel), args, { n, dim, segments }, this.grid(n));
  }

  // ---- normalisation and activations ----

  rmsnorm(out: Storage, rstd: Storage, x: Storage, w: Storage, dim: number, eps: number): void {
    const rows = x.size / dim;
    const args = [out, rstd, x, w] as GpuStorage[];
    this.run(kern(K.rmsnormKernel), args, { rows, dim, eps }, this.grid(rows));
  }
  rmsnormBackward(g: RmsnormGrads, dim: number): void {
    const { dx, dw, dout, x, w, rstd } = g;
    const rows = x.size / dim;
    const dxArgs = [dx, dout, x, w, rstd] as GpuStorage[];
    this.run(kern(K.rmsnormBackwardDxKernel), dxArgs, { rows, dim }, this.grid(rows));
    const dwArgs = [dw, dout, x, rstd] as GpuStorage[];
    this.run(kern(K.rmsnormBackwardDwKernel), dwArgs, { rows, dim }, this.grid(dim));
  }
  swiglu(out: Storage, a: Storage, b: Storage): void {
    const args = [out, a, b] as GpuStorage[];
    this.run(kern(K.swigluKernel), args, { n: out.size }, this.grid(out.size));
  }
  swigluBackward(da: Storage, db: Storage, dout: Storage, a: Storage, b: Storage): void {
    const args = [da, db, dout, a, b] as GpuStorage[];
    this.run(kern(K.swigluBackwardKernel), args, { n: dout.size }, this.grid(dout.size));
  }

  // ---- positional / attention ----

  private ropeRun(backward: boolean, out: Storage, x: Storage, cos: Storage, sin: Storage, p: RopeParams) {
    const half = p.headDim / 2;
    const n = p.rows * p.nHeads * half;
    const pos = p.positions ? this.indices(p.positions) : this.dummy;
    const args = [out as GpuStorage, x as GpuStorage, cos as GpuStorage, sin as GpuStorage, pos];
    const values = { n, seq: p.seq, nHeads: p.nHeads, half, hasPositions: p.positions ? 1 : 0 };
    this.run(kern(K.ropeKernel, backward), args, values, this.grid(n));
  }
  rope(out: Storage, x: Storage, cos: Storage, sin: Storage, p: RopeParams): void {
    this.ropeRun(false, out, x, cos, sin, p);
  }
  ropeBackward(dx: Storage, dout: Storage, cos: Storage, sin: Storage, p: RopeParams): void {
    this.ropeRun(true, dx, dout, cos, sin, p);
  }

  private attValues(p: AttentionParams): Record<string, number> {
    return {
      batch: p.batch,
      sq: p.sq,
      sk: p.sk,
      nHeads: p.nHeads,
      nKvHeads: p.nKvHeads,
      qOffset: p.qOffset,
      window: p.window,
      scale: p.scale,
      negInf: -Infinity,
    };
  }
  attention(out: Storage, lse: Storage, q: Storage, k: Storage, v: Storage, p: AttentionParams): void {
    const n = p.batch * p.nHeads * p.sq;
    const args = [out, lse, q, k, v] as GpuStorage[];
    this.run(kern(K.attentionKernel, p.headDim), args, this.attValues(p), this.grid(n));
  }
  attentionBackward(g: AttentionGrads, p: AttentionParams): void {
    const { dq, dk, dv, dout, q, k, v, out, lse } = g;
    const rows = p.batch * p.nHeads * p.sq;
    const dsum = this.alloc(rows, false) as GpuStorage; // a pooled storage: see reduce

    const values = this.attValues(p);
    const s = (x: Storage) => x as GpuStorage;
    const dqArgs = [s(dq), dsum, s(dout), s(q), s(k), s(v), s(out), s(lse)];
    this.run(kern(K.attentionBackwardDqKernel, p.headDim), dqArgs, values, this.grid(rows));
    const dkvArgs = [s(dk), s(dv), s(dout), s(q), s(k), s(v), dsum, s(lse)];
    const keys = p.batch * p.nKvHeads * p.sk;
    this.run(kern(K.attentionBackwardDkvKernel, p.headDim), dkvArgs, values, this.grid(keys));
    this.release(dsum);
  }

  // ---- upsampling ----

  indexedLinear(out: Storage, x: Storage, w: Storage, p: IndexedLinearParams): void {
    const { pos, dIn, dOut } = p;
    const n = pos.length * dOut;
    const args = [out as GpuStorage, x as GpuStorage, w as GpuStorage, this.indices(pos)];
    this.run(kern(K.indexedLinearKernel), args, { n, dIn, dOut }, this.grid(n));
  }
  indexedLinearBackward(g: IndexedLinearGrads, p: IndexedLinearParams): void {
    const { dx, dw, dout, x, w } = g;
    const { pos, dIn, dOut } = p;
    const nx = pos.length * dIn;
    const dxArgs = [dx as GpuStorage, dout as GpuStorage, w as GpuStorage, this.indices(pos)];
    this.run(kern(K.indexedLinearBackwardDxKernel), dxArgs, { n: nx, dIn, dOut }, this.grid(nx));
    const { seg, segments } = segmentsOf(pos);
    const nw = segments * dOut * dIn;
    const dwArgs = [dw as GpuStorage, dout as GpuStorage, x as GpuStorage, this.indices(seg)];
    this.run(kern(K.indexedLinearBackwardDwKernel), dwArgs, { n: nw, dIn, dOut, segments }, this.grid(nw));
  }

  // ---- loss ----

  crossEntropy(loss: Storage, lse: Storage, logits: Storage, targets: Int32Array, vocab: number): void {
    const rows = targets.length;
    const args = [loss as GpuStorage, lse as GpuStorage, logits as GpuStorage, this.indices(targets)];
    this.run(kern(K.crossEntropyKernel), args, { rows, vocab }, this.grid(rows));
  }
  crossEntropyBackward(
    dlogits: Storage,
    dloss: Storage,
    logits: Storage,
    lse: Storage,
    targets: Int32Array,
    vocab: number,
  ): void {
    const n = targets.length * vocab;
    const s = (x: Storage) => x as GpuStorage;
    const args = [s(dlogits), s(dloss), s(logits), s(lse), this.indices(targets)];
    this.run(kern(K.crossEntropyBackwardKernel), args, { n, vocab }, this.grid(n));
  }

  // ---- optimiser ----

  /**
   * The global norm as torch's clip_grad_norm_ computes it, without a host round trip: every gradient's sum
   * of squares accumulates into one device scalar (two-pass tree reductions), then one invocation turns it
   * into the norm and the clip coefficient.
   */
  clipGradNorm(p: ClipGradNormParams): void {
    const ss = this.alloc(1, p.grads.length === 0);
    p.grads.forEach((g, i) => this.reduce(ss, g, 1, true, i > 0));
    const args = [p.scale, p.norm, ss] as GpuStorage[];
    this.run(kern(K.clipScaleKernel), args, { maxNorm: p.maxNorm }, [1, 1, 1]);
    this.release(ss);
  }
  adamw(param: Storage, grad: Storage, m: Storage, v: Storage, p: AdamWParams): void {
    // Bias corrections in float64 on the host, as the reference backend does.
    const bc1 = 1 - Math.pow(p.beta1, p.step);
    const bc2 = 1 - Math.pow(p.beta2, p.step);
    const values = {
      n: param.size,
      beta1: p.beta1,
      beta2: p.beta2,
      eps: p.eps,
      stepSize: p.lr / bc1,
      bc2sqrt: Math.sqrt(bc2),
      decay: 1 - p.lr * p.weightDecay,
    };
    const args = [param, grad, m, v, p.gradScale] as GpuStorage[];
    this.run(kern(K.adamwKernel), args, values, this.grid(param.size));
  }
}

/** A WebGPU backend on the best adapter this runtime offers (navigator.gpu, or Dawn in Node). */
export async function createWebGPUBackend(opts: WebGPUOptions = {}): Promise<WebGPUBackend> {
  return new WebGPUBackend(await acquireDevice(), opts);
}
