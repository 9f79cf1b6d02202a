// Loader for the native CPU backend (C++ addon). Until the addon exists this reports it unavailable.
import type { Backend } from "../engine/backend.js";

export function loadNativeBackend(): { backend: Backend | null; error: string } {
  return { backend: null, error: "native addon not built" };
}
