// The environment variables that choose and tune a backend, checked in one place: a value that is set but
// invalid is a one-line UserError, never a silent fallback to a default.
//   AUNET_BACKEND   auto (the default: native, then WebGPU on a hardware adapter, then wasm, then ref) | cpu
//                   (alias native) | webgpu | wasm | ref
//   AUNET_THREADS   native kernel threads, an integer in [1, 1024] (default: every available core)
//   AUNET_ISA       generic | avx2 | avx512: force the native kernel set (default: the best the CPU has)
//   AUNET_POOL_MB   megabytes of released native buffers kept for reuse, a number >= 0 (default 8192)
// An empty value counts as unset.

import { UserError } from "../util/errors.js";

export interface BackendEnv {
  backend: "auto" | "cpu" | "webgpu" | "wasm" | "ref";
  threads?: number;
  isa?: "generic" | "avx2" | "avx512";
  poolMb?: number;
}

export const MAX_THREADS = 1024;
const ISAS = ["generic", "avx2", "avx512"] as const;

function shown(v: string): string {
  return JSON.stringify(v.length > 40 ? v.slice(0, 40) + "..." : v);
}

/** The backend settings of `env` (process.env by default), validated. */
export function readBackendEnv(env: Record<string, string | undefined> = process.env): BackendEnv {
  const get = (k: string) => (env[k] ?? "").trim();
  const out: BackendEnv = { backend: "auto" };

  const backend = get("AUNET_BACKEND").toLowerCase();
  if (backend === "ref" || backend === "wasm" || backend === "webgpu") out.backend = backend;
  else if (backend === "cpu" || backend === "native") out.backend = "cpu";
  else if (backend !== "" && backend !== "auto")
    throw new UserError(
      `AUNET_BACKEND must be auto, cpu, webgpu, wasm or ref, got ${shown(get("AUNET_BACKEND"))}`,
    );

  const threads = get("AUNET_THREADS");
  if (threads !== "") {
    const n = Number(threads);
    if (!Number.isInteger(n) || n < 1 || n > MAX_THREADS)
      throw new UserError(`AUNET_THREADS must be an integer from 1 to ${MAX_THREADS}, got ${shown(threads)}`);
    out.threads = n;
  }

  const isa = get("AUNET_ISA").toLowerCase();
  if (isa !== "") {
    if (!(ISAS as readonly string[]).includes(isa))
      throw new UserError(`AUNET_ISA must be one of ${ISAS.join(", ")}, got ${shown(get("AUNET_ISA"))}`);
    out.isa = isa as BackendEnv["isa"];
  }

  const pool = get("AUNET_POOL_MB");
  if (pool !== "") {
    const mb = Number(pool);
    if (!Number.isFinite(mb) || mb < 0)
      throw new UserError(`AUNET_POOL_MB must be a number of megabytes >= 0, got ${shown(pool)}`);
    out.poolMb = mb;
  }
  return out;
}
