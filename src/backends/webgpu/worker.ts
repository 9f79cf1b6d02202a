// The worker half of WebGPUWorkerBackend (sync.ts): owns the device and a WebGPUBackend, runs the calls the
// main thread posts in order, and answers the calls that return data by writing into shared memory and
// waking the main thread, which waits on it with Atomics.wait.
import { parentPort, workerData } from "node:worker_threads";
import type { Storage } from "../../engine/backend.js";
import { createWebGPUBackend, type WebGPUBackend } from "./backend.js";

export interface Call {
  op: string;
  args: unknown[];
  /** For calls with an answer: where it goes (float32 data, or a float64 scalar). */
  reply?: SharedArrayBuffer;
}

const control = new Int32Array(workerData.control as SharedArrayBuffer);
const message = new Uint8Array(workerData.message as SharedArrayBuffer);
const storages = new Map<number, Storage>();
let be: WebGPUBackend;
/** The first error of a call without an answer, reported by the next call with one. */
let pending: string | null = null;

/** control[0]: 0 waiting, 1 done, 2 failed (message in `message`, its byte length in control[1]). */
function signal(error: string | null): void {
  if (error) {
    const bytes = new TextEncoder().encode(error).subarray(0, message.length);
    message.set(bytes);
    control[1] = bytes.length;
  }
  Atomics.store(control, 0, error ? 2 : 1);
  Atomics.notify(control, 0);
}

function resolve(x: unknown): unknown {
  if (x && typeof x === "object" && "$s" in x) {
    const s = storages.get((x as { $s: number }).$s);
    if (!s) throw new Error(`webgpu worker: unknown storage ${(x as { $s: number }).$s}`);
    return s;
  }
  return x;
}

async function answer(c: Call): Promise<void> {
  const s = resolve(c.args[0]) as Storage;
  if (c.op === "read") new Float32Array(c.reply!).set(await be.readAsync(s));
  else if (c.op === "sum") new Float64Array(c.reply!)[0] = await be.sumAsync(s);
  else if (c.op === "sumSquares") new Float64Array(c.reply!)[0] = await be.sumSquaresAsync(s);
  else throw new Error(`webgpu worker: no answer for ${c.op}`);
}

function apply(c: Call): void {
  const [id] = c.args as number[];
  if (c.op === "alloc") storages.set(id, be.alloc(c.args[1] as number, c.args[2] as boolean));
  else if (c.op === "fromFloat32") storages.set(id, be.fromFloat32(c.args[1] as Float32Array));
  else if (c.op === "release") {
    be.release(storages.get(id)!);
    storages.delete(id);
  } else {
    const f = (be as unknown as Record<string, (...a: unknown[]) => void>)[c.op];
    f.apply(be, c.args.map(resolve));
  }
}

let queue: Promise<void> = Promise.resolve();

async function handle(c: Call): Promise<void> {
  if (c.op === "destroy") {
    be.destroy();
    signal(null);
    return;
  }
  if (!c.reply) {
    try {
      apply(c);
    } catch (e) {
      pending ??= `${c.op}: ${(e as Error).message}`;
    }
    return;
  }
  try {
    if (pending) throw new Error(pending);
    await answer(c);
    signal(null);
  } catch (e) {
    pending = null;
    signal((e as Error).message);
  }
}

createWebGPUBackend(workerData.options).then(
  (b) => {
    be = b;
    control[2] = b.software ? 1 : 0;
    const name = new TextEncoder().encode(b.adapterName);
    message.set(name.subarray(0, message.length));
    control[1] = Math.min(name.length, message.length);
    Atomics.store(control, 0, 1);
    Atomics.notify(control, 0);
    // Calls run strictly in order, an answered one included, even though answering awaits the device.
    parentPort!.on("message", (c: Call) => {
      queue = queue.then(() => handle(c));
    });
  },
  (e: Error) => signal(e.message),
);
