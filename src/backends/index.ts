// Backend selection: AUNET_BACKEND=cpu|ref picks explicitly; by default the native CPU backend when its addon
// was built, else the reference backend.
import type { Backend } from "../engine/backend.js";
import { RefBackend } from "./ref.js";
import { UserError } from "../util/errors.js";
import { loadNativeBackend } from "./native.js";

import { WebGPUWorkerBackend } from "./webgpu/sync.js";

export { createWebGPUBackend } from "./webgpu/index.js";

let current: Backend | null = null;

export function defaultBackend(): Backend {
  if (current) return current;
  const want = (process.env.AUNET_BACKEND ?? "").trim().toLowerCase();
  if (want === "ref") current = new RefBackend();
  else if (want === "cpu" || want === "native") {
    const nb = loadNativeBackend();
    if (!nb.backend) throw new UserError(`AUNET_BACKEND=${want}: native backend unavailable (${nb.error})`);
    current = nb.backend;
  } else if (want === "" || want === "auto") {
    const nb = loadNativeBackend();
    if (!nb.backend && typeof process !== "undefined" && process.stderr)
      process.stderr.write(
        `aunet: native CPU backend unavailable (${nb.error}); using the slower reference backend\n`,
      );
    current = nb.backend ?? new RefBackend();
  } else if (want === "webgpu") {
    try {
      current = new WebGPUWorkerBackend();
    } catch (e) {
      throw new UserError(`AUNET_BACKEND=webgpu: ${(e as Error).message}`);
    }
  } else throw new UserError(`AUNET_BACKEND must be cpu, ref or webgpu, got "${want}"`);
  return current;
}

export function setDefaultBackend(b: Backend): void {
  current = b;
}
