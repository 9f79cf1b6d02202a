// The worker half of WebGPUWorkerBackend (sync.ts): owns the device and a WebGPUBackend, runs the calls the
// main thread posts in order, and answers reads: a synchronous one by writing into shared memory and waking
// the main thread, which waits on it with Atomics.wait; an asynchronous one by posting the data back.
import { parentPort, workerData } from "node:worker_threads";
import type { Storage } from "../../engine/backend.js";
import { createWebGPUBackend, type WebGPUBackend } from "./backend.js";

export interface Call {
  op: string;
  args: unknown[];
  /** For a synchronous read: where the float32 data goes. */
  reply?: SharedArrayBuffer;
  /** For an asynchronous read: its request id, echoed in the ReadAnswer message. */
  readId?: number;
}

/** The answer to an asynchronous read, posted to the main thread: the data, or why there is none. */
export interface ReadAnswer {
  id: number;
  data?: ArrayBuffer;
  error?: string;
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

/** The worker's storages for the ids in an encoded argument (sync.ts encodeArg), inside objects and lists too. */
function resolve(x: unknown): unknown {
  if (x instanceof Int32Array || x instanceof Float32Array || x === null || typeof x !== "object") return x;
  if (Array.isArray(x)) return x.map(resolve);
  if ("$s" in x) {
    const s = storages.get((x as { $s: number }).$s);
    if (!s) throw new Error(`webgpu worker: unknown storage ${(x as { $s: number }).$s}`);
    return s;
  }
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(x)) o[k] = resolve(v);
  return o;
}

async function read(c: Call): Promise<Float32Array> {
  if (c.op !== "read") throw new Error(`webgpu worker: no answer for ${c.op}`);
  return be.read(resolve(c.args[0]) as Storage);
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
  if (c.readId !== undefined) {
    const id = c.readId;
    try {
      if (pending) throw new Error(pending);
      const data = (await read(c)).buffer as ArrayBuffer;
      parentPort!.postMessage({ id, data } satisfies ReadAnswer, [data]);
    } catch (e) {
      pending = null;
      parentPort!.postMessage({ id, error: (e as Error).message } satisfies ReadAnswer);
    }
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
    new Float32Array(c.reply).set(await read(c));
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
