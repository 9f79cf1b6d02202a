// Backend selection: `auto` takes native, then WebGPU, then wasm, then the reference backend and says why;
// names select one explicitly (AUNET_BACKEND, setDefaultBackend), and an unavailable or unknown name is one
// clear line.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join, resolve } from "node:path";
import { chooseBackend, selectBackend, type BackendLoad } from "../src/backends/index.js";
import { RefBackend } from "../src/backends/ref.js";
import { loadWasmBackend } from "../src/backends/wasm-node.js";
import { UserError } from "../src/util/errors.js";
import { takeBackendFlag } from "../src/cli/main.js";
import { FIXTURES, hasFixtures } from "./helpers.js";

const MAIN = resolve("dist/src/cli/main.js");

/** A loader where only `available` load (the others fail with a reason naming them). */
function only(...available: string[]): (name: string) => BackendLoad {
  return (name) => {
    if (!available.includes(name)) return { backend: null, reason: `no ${name} here` };
    const backend = name === "wasm" ? loadWasmBackend().backend : new RefBackend();
    return { backend, reason: `${name} found` };
  };
}

test("auto: native, then WebGPU, then wasm, then reference, each skipped one with its reason", () => {
  const c1 = chooseBackend(only("wasm", "ref"));
  assert.equal(c1.backend.name, "wasm");
  assert.match(
    c1.reason,
    /^wasm: wasm found; cpu unavailable: no cpu here; webgpu unavailable: no webgpu here$/,
  );
  const c2 = chooseBackend(only("ref"));
  assert.equal(c2.backend.name, "ref");
  assert.match(c2.reason, /cpu unavailable.*webgpu unavailable.*wasm unavailable: no wasm here/);
  const c3 = chooseBackend(only("cpu", "wasm", "ref"));
  assert.equal(c3.reason, "ref: cpu found"); // the stand-in for cpu is a RefBackend
});

test("backends by name; unknown and unavailable names are user errors", () => {
  assert.equal(selectBackend("wasm").backend.name, "wasm");
  assert.equal(selectBackend(" REF ").backend.name, "ref");
  assert.match(selectBackend("wasm").reason, /asked for by name/);
  assert.throws(
    () => selectBackend("tpu"),
    (e: unknown) => e instanceof UserError && /one of auto/.test(e.message),
  );
  // WebGPU is there where Dawn finds an adapter (SwiftShader counts when asked for by name), else a user error.
  try {
    const gpu = selectBackend("webgpu");
    assert.equal(gpu.backend.name, "webgpu");
    assert.match(gpu.reason, /^webgpu: WebGPU on .+ \(asked for by name\)$/);
    (gpu.backend as unknown as { destroy(): void }).destroy();
  } catch (e) {
    assert.ok(e instanceof UserError && /webgpu unavailable/.test(e.message), String(e));
  }
});

test("AUNET_BACKEND=wasm runs check-fixture on the wasm backend and says so", (t) => {
  if (!hasFixtures) return t.skip(`no fixtures under ${FIXTURES}`);
  const r = spawnSync(
    process.execPath,
    [MAIN, "check-fixture", join(FIXTURES, "2stage_word_english"), "--json"],
    {
      encoding: "utf8",
      env: { ...process.env, AUNET_BACKEND: "wasm" },
      timeout: 120_000,
    },
  );
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { backend: string; pass: boolean };
  assert.equal(report.backend, "wasm");
  assert.equal(report.pass, true);
  assert.match(
    r.stderr,
    /^aunet: backend wasm: WebAssembly SIMD backend \(.*aunet\.wasm\) \(asked for by name\)$/m,
  );
});

test("an unknown AUNET_BACKEND is one line and exit 1", () => {
  const r = spawnSync(process.execPath, [MAIN, "check-fixture", "nowhere"], {
    encoding: "utf8",
    env: { ...process.env, AUNET_BACKEND: "tpu" },
  });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^aunet: AUNET_BACKEND must be auto, cpu, webgpu, wasm or ref, got "tpu"\n$/);
});

test("--backend NAME: every command takes it, it wins over AUNET_BACKEND, a bad name is one line", () => {
  assert.deepEqual(takeBackendFlag(["--ckpt", "m", "--backend", "wasm", "--json"]), {
    backend: "wasm",
    args: ["--ckpt", "m", "--json"],
  });
  assert.deepEqual(takeBackendFlag(["--backend=ref", "--", "--backend"]), {
    backend: "ref",
    args: ["--", "--backend"],
  });
  assert.throws(() => takeBackendFlag(["--backend"]), UserError);
  const score = (backend: string) =>
    spawnSync(
      process.execPath,
      [MAIN, "score", "--ckpt", "models/aunet-moby", "--text", " the whale", "--json", "--backend", backend],
      { encoding: "utf8", env: { ...process.env, AUNET_BACKEND: "ref" }, timeout: 120_000 },
    );
  const onWasm = score("wasm");
  assert.equal(onWasm.status, 0, onWasm.stderr);
  assert.match(onWasm.stderr, /^aunet: backend wasm: .*\(asked for by name\)$/m);
  const onRef = score("ref");
  assert.equal(onRef.status, 0, onRef.stderr);
  const nats = (r: { stdout: string }) => (JSON.parse(r.stdout) as { log_likelihood: number }).log_likelihood;
  assert.ok(Math.abs(nats(onWasm) - nats(onRef)) <= 1e-4 * Math.abs(nats(onRef)));
  const bad = score("tpu");
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^aunet: backend must be one of auto, cpu, webgpu, wasm, ref; got "tpu"\n$/);
});
