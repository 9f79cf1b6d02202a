// WebGPU behind the whole Backend interface, synchronous reads included, for Node: the device and the
// WebGPUBackend live in a worker thread (worker.ts); each call is posted to it in order. readSync blocks the
// main thread with Atomics.wait until the worker has the data. That is the only way to read a GPU buffer
// synchronously: WebGPU's mapAsync completes on the event loop of the thread that owns the device, which here
// is not the one waiting. read (a Promise) does not block: the worker posts the data back as a message.
// Everything else streams without waiting.
import { Worker } from "node:worker_threads";
import { existsSync } from "node:fs";
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
import type { WebGPUOptions } from "./backend.js";
import { SOFTWARE_ICDS } from "./gpu.js";
import type { Call, ReadAnswer } from "./worker.js";

class WorkerStorage implements Storage {
  constructor(
    readonly size: number,
    readonly id: number,
  ) {}
}

/** Longest wait for the device to come up or for an answer (software adapters compile shaders slowly). */
const TIMEOUT_MS = 10 * 60 * 1000;

function encodeArg(x: unknown): unknown {
  if (x instanceof WorkerStorage) return { $s: x.id };
  // A copy of just the viewed elements: posting a view would clone its whole underlying buffer.
  if (x instanceof Int32Array || x instanceof Float32Array) return x.slice();
  if (Array.isArray(x)) return x.map(encodeArg);
  if (x && typeof x === "object") {
    const o: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(x)) o[k] = encodeArg(v);
    return o;
  }
  return x;
}

export class WebGPUWorkerBackend implements Backend {
  readonly name = "webgpu";
  readonly adapterName: string;
  readonly software: boolean;
  private readonly worker: Worker;
  private readonly control = new Int32Array(new SharedArrayBuffer(12));
  private readonly message = new Uint8Array(new SharedArrayBuffer(4096));
  private nextId = 1;
  /** Asynchronous reads posted and not yet answered, by request id. */
  private readonly reads = new Map<number, { resolve(d: Float32Array): void; reject(e: Error): void }>();
  private nextRead = 1;

  constructor(opts: WebGPUOptions = {}) {
    let worker = this.start(opts);
    const icd = SOFTWARE_ICDS.find((p) => existsSync(p));
    if (worker.error && !process.env.VK_ICD_FILENAMES && icd) {
      // No hardware adapter. A worker's process.env is its own copy, so the worker cannot redirect the Vulkan
      // loader itself; the main thread points it at a software driver and starts a new worker.
      process.env.VK_ICD_FILENAMES = icd;
      worker = this.start(opts);
    }
    if (worker.error) throw new Error(`webgpu: ${worker.error}`);
    this.worker = worker.worker;
    this.worker.on("message", (a: ReadAnswer) => this.answered(a));
    this.adapterName = this.text();
    this.software = this.control[2] === 1;
  }

  private start(options: WebGPUOptions): { worker: Worker; error: string | null } {
    Atomics.store(this.control, 0, 0);
    const worker = new Worker(new URL("./worker.js", import.meta.url), {
      workerData: { control: this.control.buffer, message: this.message.buffer, options },
    });
    // The worker must not keep the process alive on its own; it ends with it.
    worker.unref();
    const error = this.wait();
    if (error) void worker.terminate();
    return { worker, error };
  }

  private text(): string {
    return new TextDecoder().decode(this.message.slice(0, this.control[1]));
  }

  /** Block until the worker signals; returns its error message, if any. */
  private wait(): string | null {
    if (Atomics.wait(this.control, 0, 0, TIMEOUT_MS) === "timed-out")
      return "the WebGPU worker did not answer in time";
    return this.control[0] === 2 ? this.text() : null;
  }

  private post(op: string, ...args: unknown[]): void {
    const c: Call = { op, args: args.map(encodeArg) };
    this.worker.postMessage(c);
  }

  private ask(op: string, s: Storage, bytes: number): SharedArrayBuffer {
    const reply = new SharedArrayBuffer(Math.max(8, bytes));
    Atomics.store(this.control, 0, 0);
    const c: Call = { op, args: [encodeArg(s)], reply };
    this.worker.postMessage(c);
    const error = this.wait();
    if (error) throw new Error(`webgpu: ${error}`);
    return reply;
  }

  private answered(a: ReadAnswer): void {
    const r = this.reads.get(a.id)!;
    this.reads.delete(a.id);
    // An unanswered read keeps the process alive (the worker is unref'd otherwise), so awaiting it cannot
    // end the program early.
    if (this.reads.size === 0) this.worker.unref();
    if (a.error !== undefined) r.reject(new Error(`webgpu: ${a.error}`));
    else r.resolve(new Float32Array(a.data!));
  }

  /** Finish the device's work and end the worker. */
  destroy(): void {
    Atomics.store(this.control, 0, 0);
    this.worker.postMessage({ op: "destroy", args: [] });
    this.wait();
    void this.worker.terminate();
  }

  alloc(size: number, zero = true): Storage {
    const s = new WorkerStorage(size, this.nextId++);
    this.post("alloc", s.id, size, zero);
    return s;
  }
  fromFloat32(data: Float32Array): Storage {
    const s = new WorkerStorage(data.length, this.nextId++);
    this.post("fromFloat32", s.id, data);
    return s;
  }
  readSync(s: Storage): Float32Array {
    return new Float32Array(this.ask("read", s, s.size * 4)).slice(0, s.size);
  }
  read(s: Storage): Promise<Float32Array> {
    const id = this.nextRead++;
    if (this.reads.size === 0) this.worker.ref();
    const answer = new Promise<Float32Array>((resolve, reject) => this.reads.set(id, { resolve, reject }));
    const c: Call = { op: "read", args: [encodeArg(s)], readId: id };
    this.worker.postMessage(c);
    return answer;
  }
  write(s: Storage, data: Float32Array, offset: number): void {
    this.post("write", s, data, offset);
  }
  release(s: Storage): void {
    this.post("release", (s as WorkerStorage).id);
  }
  fill(out: Storage, value: number): void {
    this.post("fill", out, value);
  }
  copy(out: Storage, a: Storage): void {
    this.post("copy", out, a);
  }
  copyRows(dst: Storage, src: Storage, p: CopyRowsParams): void {
    this.post("copyRows", dst, src, p);
  }
  add(out: Storage, a: Storage, b: Storage): void {
    this.post("add", out, a, b);
  }
  axpy(out: Storage, a: Storage, alpha: number): void {
    this.post("axpy", out, a, alpha);
  }
  scale(out: Storage, a: Storage, alpha: number): void {
    this.post("scale", out, a, alpha);
  }
  reduceSum(out: Storage, a: Storage, alpha: number): void {
    this.post("reduceSum", out, a, alpha);
  }
  broadcast(out: Storage, a: Storage, alpha: number): void {
    this.post("broadcast", out, a, alpha);
  }
  matmul(out: Storage, a: Storage, b: Storage, p: MatmulParams): void {
    this.post("matmul", out, a, b, p);
  }
  embedding(out: Storage, table: Storage, ids: Int32Array, dim: number): void {
    this.post("embedding", out, table, ids, dim);
  }
  embeddingBackward(dtable: Storage, dout: Storage, ids: Int32Array, dim: number): void {
    this.post("embeddingBackward", dtable, dout, ids, dim);
  }
  gatherRows(out: Storage, src: Storage, idx: Int32Array, dim: number): void {
    this.post("gatherRows", out, src, idx, dim);
  }
  scatterAddRows(dst: Storage, src: Storage, idx: Int32Array, dim: number): void {
    this.post("scatterAddRows", dst, src, idx, dim);
  }
  rmsnorm(out: Storage, rstd: Storage, x: Storage, w: Storage, dim: number, eps: number): void {
    this.post("rmsnorm", out, rstd, x, w, dim, eps);
  }
  rmsnormBackward(g: RmsnormGrads, dim: number): void {
    this.post("rmsnormBackward", g, dim);
  }
  swiglu(out: Storage, a: Storage, b: Storage): void {
    this.post("swiglu", out, a, b);
  }
  swigluBackward(da: Storage, db: Storage, dout: Storage, a: Storage, b: Storage): void {
    this.post("swigluBackward", da, db, dout, a, b);
  }
  rope(out: Storage, x: Storage, cos: Storage, sin: Storage, p: RopeParams): void {
    this.post("rope", out, x, cos, sin, p);
  }
  ropeBackward(dx: Storage, dout: Storage, cos: Storage, sin: Storage, p: RopeParams): void {
    this.post("ropeBackward", dx, dout, cos, sin, p);
  }
  attention(out: Storage, lse: Storage, q: Storage, k: Storage, v: Storage, p: AttentionParams): void {
    this.post("attention", out, lse, q, k, v, p);
  }
  attentionBackward(g: AttentionGrads, p: AttentionParams): void {
    this.post("attentionBackward", g, p);
  }
  indexedLinear(out: Storage, x: Storage, w: Storage, p: IndexedLinearParams): void {
    this.post("indexedLinear", out, x, w, p);
  }
  indexedLinearBackward(g: IndexedLinearGrads, p: IndexedLinearParams): void {
    this.post("indexedLinearBackward", g, p);
  }
  crossEntropy(loss: Storage, lse: Storage, logits: Storage, targets: Int32Array, vocab: number): void {
    this.post("crossEntropy", loss, lse, logits, targets, vocab);
  }
  crossEntropyBackward(
    dlogits: Storage,
    dloss: Storage,
    logits: Storage,
    lse: Storage,
    targets: Int32Array,
    vocab: number,
  ): void {
    this.post("crossEntropyBackward", dlogits, dloss, logits, lse, targets, vocab);
  }
  clipGradNorm(p: ClipGradNormParams): void {
    this.post("clipGradNorm", p);
  }
  adamw(param: Storage, grad: Storage, m: Storage, v: Storage, p: AdamWParams): void {
    this.post("adamw", param, grad, m, v, p);
  }
}
