// Backend selection: AUNET_BACKEND=cpu|ref picks explicitly; by default the native CPU backend when its addon
// was built, else the reference backend.
import type { Backend } from "../engine/backend.js";
import { RefBackend } from "./ref.js";
import { UserError } from "../util/errors.js";
import { loadNativeBackend } from "./native.js";
import { readBackendEnv } from "./env.js";

let current: Backend | null = null;

export function defaultBackend(): Backend {
  if (current) return current;
  const want = readBackendEnv().backend; // every AUNET_* variable checked, whichever backend is chosen
  if (want === "ref") current = new RefBackend();
  else if (want === "cpu") {
    const nb = loadNativeBackend();
    if (!nb.backend) throw new UserError(`AUNET_BACKEND=${want}: native backend unavailable (${nb.error})`);
    current = nb.backend;
  } else {
    const nb = loadNativeBackend();
    if (!nb.backend && typeof process !== "undefined" && process.stderr)
      process.stderr.write(
        `aunet: native CPU backend unavailable (${nb.error}); using the slower reference backend\n`,
      );
    current = nb.backend ?? new RefBackend();
  }
  return current;
}

export function setDefaultBackend(b: Backend): void {
  current = b;
}
