// Node's loader for the WebAssembly backend: the kernels built at install time (build/wasm/aunet.wasm, when
// clang was there) or else the prebuilt module shipped in the package (wasm/aunet.wasm).
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { WasmBackend } from "./wasm.js";

/** Candidate module files, most specific first (this file is dist/src/backends/wasm-node.js). */
export function wasmModulePaths(): string[] {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
  return [path.join(root, "build", "wasm", "aunet.wasm"), path.join(root, "wasm", "aunet.wasm")];
}

let loaded: { backend: WasmBackend | null; error: string; file: string } | null = null;

/** The wasm backend, or null with the reason (no module file, or an engine without WebAssembly SIMD). */
export function loadWasmBackend(): { backend: WasmBackend | null; error: string; file: string } {
  if (loaded) return loaded;
  const file = wasmModulePaths().find((f) => existsSync(f));
  if (!file) {
    loaded = { backend: null, error: `no kernel module at ${wasmModulePaths().join(" or ")}`, file: "" };
    return loaded;
  }
  try {
    loaded = { backend: WasmBackend.fromModule(new WebAssembly.Module(readFileSync(file))), error: "", file };
  } catch (e) {
    const msg = e instanceof Error ? e.message.split("\n")[0] : String(e);
    loaded = { backend: null, error: `cannot load ${file}: ${msg}`, file };
  }
  return loaded;
}
