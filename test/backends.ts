// The backends under test. A new backend (WebAssembly, WebGPU, ...) registers itself here, once, and inherits
// every check written against this list: the op-by-op parity suite against the reference backend
// (test/backend-parity.test.ts) and the no-synchronous-read training step (test/no-sync-read.test.ts).
import type { Backend } from "../src/engine/backend.js";
import { RefBackend } from "../src/backends/ref.js";
import { loadNativeBackend } from "../src/backends/native.js";
import { loadWasmBackend } from "../src/backends/wasm-node.js";
import { WebGPUWorkerBackend } from "../src/backends/webgpu/sync.js";

export interface RegisteredBackend {
  name: string;
  /** The backend, or a reason why it is not available on this machine (the test is then skipped). */
  load(): Backend | string;
  /**
   * Configurations to check one after the other (kernel sets, thread counts): each call switches the
   * backend to one and returns its label; the last call restores the original. Default: one configuration.
   */
  configurations?(backend: Backend): Iterable<string>;
}

export const REFERENCE: RegisteredBackend = { name: "ref", load: () => new RefBackend() };

export const BACKENDS: RegisteredBackend[] = [
  REFERENCE,
  {
    name: "cpu",
    load: () => loadNativeBackend().backend ?? `native addon not built: ${loadNativeBackend().error}`,
    *configurations() {
      const nb = loadNativeBackend().backend!;
      const isa0 = nb.isa,
        threads0 = nb.threads;
      try {
        for (const isa of nb.supportedIsas())
          for (const threads of [1, 2]) {
            nb.setIsa(isa);
            nb.setThreads(threads);
            yield `${isa}/${threads}t`;
          }
      } finally {
        nb.setIsa(isa0);
        nb.setThreads(threads0);
      }
    },
  },
  {
    name: "wasm",
    load: () => loadWasmBackend().backend ?? `WebAssembly module unavailable: ${loadWasmBackend().error}`,
  },
  {
    // The worker form: the suites read synchronously between steps. One device per test process, made on first
    // use (a software adapter takes seconds to start); its worker ends with the process.
    name: "webgpu",
    load: () => (webgpu ??= loadWebGPU()),
  },
];

let webgpu: Backend | string | undefined;

function loadWebGPU(): Backend | string {
  try {
    return new WebGPUWorkerBackend();
  } catch (e) {
    if (process.env.AUNET_REQUIRE_WEBGPU === "1") throw e;
    return `no WebGPU adapter: ${(e as Error).message}`;
  }
}
