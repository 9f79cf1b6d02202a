// The WebGPU backend in a real browser: headless Chromium (Debian's `chromium`, on SwiftShader here) loads a
// page served over http://127.0.0.1 that imports the compiled modules as they are, builds a small AU-Net on
// navigator.gpu and on the reference backend, runs a forward and a backward pass on both, and posts the
// largest difference back to the server, which then ends the browser.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { readFile } from "node:fs/promises";
import { existsSync, rmSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { spawn } from "node:child_process";
import { join, resolve, normalize, sep } from "node:path";

const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/chromium-headless-shell"].find(
  (p) => existsSync(p),
);

// The page's script: everything it imports is the package's own browser-portable code.
const PAGE = `<!doctype html><html><head><title>aunet webgpu</title></head><body><pre id="out">pending</pre>
<script type="module">
import { createWebGPUBackend } from "/dist/src/backends/webgpu/index.js";
import { RefBackend } from "/dist/src/backends/ref.js";
import { AUNet } from "/dist/src/model/aunet.js";
import { parseConfig } from "/dist/src/model/config.js";
import { Tensor, backward, clearTape } from "/dist/src/engine/tensor.js";
const out = document.getElementById("out");
try {
  const gpu = await createWebGPUBackend();
  const cfg = parseConfig({
    model: {
      dimensions: [16, 24], head_dims: [8, 8], layers: [1, 1], sliding_windows: [5, null],
      max_seqlens: [24, 9], residuals: [true],
      block: { rope_theta: 1000, multiple_of: 8, norm_eps: 1e-6, n_kv_heads: 1, ffn_dim_multiplier: 1.3 },
      pooling_type: "simple_indexed_matmul", seed: 7,
    },
    data: { seq_len: 24, regex: { strategy: { word1: "1@1" } } },
  }).model;
  const B = 2, S = 24, V = cfg.vocab_size;
  const tokens = Int32Array.from({ length: B * S }, (_, i) => (i * 37) % 256);
  const levels = Int32Array.from({ length: B * S }, (_, i) => (i % 5 === 0 ? 1 : 0));
  const seed = Float32Array.from({ length: B * S * V }, (_, i) => Math.sin(i) * 1e-2);
  const run = (be) => {
    const model = new AUNet(cfg, be);
    clearTape();
    const { logits } = model.forward(tokens, levels, B, S);
    backward(logits, Tensor.from(be, seed, logits.shape));
    return { model, logits };
  };
  const rel = (got, want) => {
    let err = 0, mag = 0;
    for (let i = 0; i < want.length; i++) { err = Math.max(err, Math.abs(got[i] - want[i])); mag = Math.max(mag, Math.abs(want[i])); }
    return err / (1 + mag);
  };
  const want = run(new RefBackend());
  const got = run(gpu);
  let worst = rel(await gpu.read(got.logits.storage), want.logits.toFloat32());
  for (const [name, p] of want.model.params)
    worst = Math.max(worst, rel(await gpu.read(got.model.params.get(name).grad.storage), p.grad.toFloat32()));
  report({ adapter: gpu.adapterName, worst });
} catch (e) {
  report({ error: String(e && e.message || e) });
}
function report(r) {
  out.textContent = JSON.stringify(r);
  fetch("/result", { method: "POST", body: JSON.stringify(r) });
}
</script></body></html>`;

interface Result {
  adapter?: string;
  worst?: number;
  error?: string;
}

/**
 * Serves the page at /, the compiled modules under /dist and nothing else; resolves `result` with what the
 * page posts to /result.
 */
function serve(root: string): Promise<{ server: Server; result: Promise<Result> }> {
  let deliver: (r: Result) => void = () => {};
  const result = new Promise<Result>((ok) => (deliver = ok));
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    if (url.pathname === "/") {
      res.writeHead(200, { "content-type": "text/html" }).end(PAGE);
      return;
    }
    if (url.pathname === "/result" && req.method === "POST") {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => {
        res.writeHead(204).end();
        deliver(JSON.parse(body) as Result);
      });
      return;
    }
    const file = normalize(resolve(root, `.${url.pathname}`));
    if (!file.startsWith(resolve(root, "dist") + sep) || !file.endsWith(".js")) {
      res.writeHead(404).end();
      return;
    }
    readFile(file).then(
      (data) => res.writeHead(200, { "content-type": "text/javascript" }).end(data),
      () => res.writeHead(404).end(),
    );
  });
  return new Promise((ok) => server.listen(0, "127.0.0.1", () => ok({ server, result })));
}

test("webgpu in headless Chromium: a model's forward and backward match the reference", async (t) => {
  if (!CHROMIUM) {
    if (process.env.AUNET_REQUIRE_WEBGPU === "1") assert.fail("no chromium executable");
    return t.skip("no chromium executable");
  }
  const { server, result } = await serve(process.cwd());
  const port = (server.address() as { port: number }).port;
  const profile = await mkdtemp(join(tmpdir(), "aunet-chromium-"));
  const browser = spawn(
    CHROMIUM,
    [
      "--headless",
      "--no-sandbox",
      "--enable-unsafe-webgpu",
      "--enable-features=Vulkan",
      "--use-webgpu-adapter=swiftshader",
      "--use-angle=swiftshader",
      `--user-data-dir=${profile}`,
      `http://127.0.0.1:${port}/`,
    ],
    { stdio: "ignore" },
  );
  const exited = new Promise<number | null>((ok) => browser.on("exit", ok));
  let timer: NodeJS.Timeout | undefined;
  try {
    const r = await Promise.race([
      result,
      new Promise<Result>((_, fail) => {
        timer = setTimeout(() => fail(new Error("no result from the page in 180 s")), 180_000);
        void exited.then((code) => fail(new Error(`chromium exited (${code}) before the page reported`)));
      }),
    ]);
    assert.equal(r.error, undefined, r.error);
    t.diagnostic(`adapter: ${r.adapter}; largest relative error ${r.worst!.toExponential(2)}`);
    // As test/webgpu-model.test.ts: measured below 2e-6 (SwiftShader), a 5x margin.
    assert.ok(r.worst! <= 1e-5, `error ${r.worst}`);
  } finally {
    clearTimeout(timer);
    if (browser.exitCode === null) browser.kill();
    await exited;
    server.close();
    rmSync(profile, { recursive: true, force: true });
  }
});
