// Backend selection. AUNET_BACKEND (or setDefaultBackend(name)) picks one by name: cpu (= native), webgpu, wasm,
// ref. `auto` (the default) takes the first that is available, in this order: the native CPU backend, WebGPU on
// a hardware adapter, the WebAssembly SIMD backend, the reference backend; and says why. The choice and its
// reason are kept (backendChoice()); one line goes to stderr when the choice is not the native backend, or
// always with AUNET_VERBOSE=1.
import type { Backend } from "../engine/backend.js";
import { RefBackend } from "./ref.js";
import { UserError } from "../util/errors.js";
import { loadNativeBackend } from "./native.js";
import { loadWasmBackend } from "./wasm-node.js";
import { readBackendEnv } from "./env.js";

import { WebGPUWorkerBackend } from "./webgpu/sync.js";

export { createWebGPUBackend } from "./webgpu/index.js";

/** What a backend loader reports: the backend, or null and why it is unavailable. */
export interface BackendLoad {
  backend: Backend | null;
  /** Why it is unavailable; or, when available, a short description (file, instruction set, adapter). */
  reason: string;
}

export interface BackendChoice {
  backend: Backend;
  /** One line: which backend and why (the candidates passed over and their reasons). */
  reason: string;
}

export const BACKEND_NAMES = ["auto", "cpu", "webgpu", "wasm", "ref"] as const;

// The WebGPU backend plugs in here: its loader must answer synchronously, so a WebGPU module requests its
// adapter beforehand (asynchronously) and reports the result, refusing software fallback adapters for `auto`.
let webgpuLoader: ((purpose: "auto" | "explicit") => BackendLoad) | null = null;

/** Registers the WebGPU backend's loader (called by the WebGPU module once it has looked for an adapter). */
export function registerWebGPU(load: (purpose: "auto" | "explicit") => BackendLoad): void {
  webgpuLoader = load;
}

function loadByName(name: string, purpose: "auto" | "explicit"): BackendLoad {
  switch (name) {
    case "cpu":
    case "native": {
      const nb = loadNativeBackend();
      return nb.backend
        ? {
            backend: nb.backend,
            reason: `native CPU backend (${nb.backend.isa}, ${nb.backend.threads} threads)`,
          }
        : { backend: null, reason: nb.error };
    }
    case "webgpu":
      return webgpuLoader ? webgpuLoader(purpose) : loadWebGPUWorker(purpose);
    case "wasm": {
      const wb = loadWasmBackend();
      return wb.backend
        ? { backend: wb.backend, reason: `WebAssembly SIMD backend (${wb.file})` }
        : { backend: null, reason: wb.error };
    }
    case "ref":
      return { backend: new RefBackend(), reason: "reference backend" };
    default:
      throw new UserError(`backend must be one of ${BACKEND_NAMES.join(", ")}; got "${name}"`);
  }
}

/** Node: the WebGPU backend in a worker thread (Dawn); `auto` passes over software fallback adapters. */
function loadWebGPUWorker(purpose: "auto" | "explicit"): BackendLoad {
  let gpu: WebGPUWorkerBackend;
  try {
    gpu = new WebGPUWorkerBackend();
  } catch (e) {
    return { backend: null, reason: (e as Error).message };
  }
  if (purpose === "auto" && gpu.software) {
    gpu.destroy();
    return { backend: null, reason: `only a software adapter (${gpu.adapterName})` };
  }
  return { backend: gpu, reason: `WebGPU on ${gpu.adapterName}${gpu.software ? " (software adapter)" : ""}` };
}

export const AUTO_ORDER = ["cpu", "webgpu", "wasm", "ref"] as const;

/**
 * The `auto` choice: the first available of AUTO_ORDER, with the reasons for the ones skipped. `load` is the
 * loader by name (tests pass one that hides backends).
 */
export function chooseBackend(
  load: (name: string) => BackendLoad = (n) => loadByName(n, "auto"),
): BackendChoice {
  const skipped: string[] = [];
  for (const name of AUTO_ORDER) {
    const r = load(name);
    if (r.backend) {
      const why = skipped.length > 0 ? `; ${skipped.join("; ")}` : "";
      return { backend: r.backend, reason: `${r.backend.name}: ${r.reason}${why}` };
    }
    skipped.push(`${name} unavailable: ${r.reason}`);
  }
  throw new Error("unreachable: the reference backend is always available");
}

/** The backend `name` names ("auto" chooses); a named backend that is unavailable is a UserError. */
export function selectBackend(name: string): BackendChoice {
  const want = name.trim().toLowerCase();
  if (want === "" || want === "auto") return chooseBackend();
  const r = loadByName(want, "explicit");
  if (!r.backend) throw new UserError(`backend ${want} unavailable: ${r.reason}`);
  return { backend: r.backend, reason: `${r.backend.name}: ${r.reason} (asked for by name)` };
}

let current: BackendChoice | null = null;

function verbose(): boolean {
  return typeof process !== "undefined" && (process.env.AUNET_VERBOSE ?? "") === "1";
}

function announce(c: BackendChoice): void {
  if ((c.backend.name !== "cpu" || verbose()) && typeof process !== "undefined" && process.stderr)
    process.stderr.write(`aunet: backend ${c.reason}\n`);
}

/** The backend in use: set by setDefaultBackend, else chosen once from AUNET_BACKEND (default auto). */
export function defaultBackend(): Backend {
  if (!current) {
    const env = readBackendEnv().backend; // every AUNET_* variable checked, whichever backend is chosen
    try {
      current = selectBackend(env);
    } catch (e) {
      if (e instanceof UserError) throw new UserError(`AUNET_BACKEND=${env}: ${e.message}`);
      throw e;
    }
    announce(current);
  }
  return current.backend;
}

/** Which backend is in use and why (chooses it first if nothing has asked for one yet). */
export function backendChoice(): BackendChoice {
  defaultBackend();
  return current!;
}

/** Use this backend, or the one this name selects ("auto", "cpu", "webgpu", "wasm", "ref"), from now on. */
export function setDefaultBackend(b: Backend | string): void {
  if (typeof b === "string") {
    current = selectBackend(b);
    announce(current);
  } else current = { backend: b, reason: `${b.name}: set by the program` };
}
