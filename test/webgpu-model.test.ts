// A whole AU-Net on the WebGPU backend against the reference backend: the forward logits, and every parameter
// gradient of a backward pass seeded with a given dL/dlogits, read back asynchronously at the end. The seed
// stands in for the loss because the op layer's cross-entropy reads the per-row losses synchronously
// (src/engine/ops.ts crossEntropy and sum), which WebGPU cannot do. Random 3-stage models cover the three
// pooling types, sliding windows, grouped-query attention and residuals on and off. Then the synchronous
// form (the device in a worker thread) runs the whole official check on a shared fixture: logits, loss,
// every gradient, pooling indices and the generation traces.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { RefBackend } from "../src/backends/ref.js";
import { WebGPUBackend, createWebGPUBackend } from "../src/backends/webgpu/index.js";
import { WebGPUWorkerBackend } from "../src/backends/webgpu/sync.js";
import { checkFixture } from "../src/eval/check-fixture.js";
import { AUNet } from "../src/model/aunet.js";
import { parseConfig, type ModelConfig } from "../src/model/config.js";
import { Tensor, backward, clearTape } from "../src/engine/tensor.js";
import { Rng } from "../src/util/rng.js";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { FIXTURES, randn, randInts } from "./helpers.js";

let gpu: WebGPUBackend | null = null;
let skip: string | false = false;

before(async () => {
  try {
    gpu = await createWebGPUBackend();
  } catch (e) {
    if (process.env.AUNET_REQUIRE_WEBGPU === "1") throw e;
    skip = `no WebGPU adapter: ${(e as Error).message}`;
  }
});

after(() => gpu?.destroy());

function config(rng: Rng, pooling: ModelConfig["pooling_type"]): ModelConfig {
  return parseConfig({
    model: {
      dimensions: [16, 24, 32],
      head_dims: [8, 8, 8],
      layers: [1, 1, 1],
      sliding_windows: [7, 5, null],
      max_seqlens: [40, 17, 9],
      residuals: [true, false],
      block: {
        rope_theta: 1000 + rng.int(1000),
        multiple_of: 8,
        norm_eps: 1e-6,
        n_kv_heads: 1,
        ffn_dim_multiplier: 1.3,
      },
      pooling_type: pooling,
      seed: rng.int(1000),
    },
    data: { seq_len: 40, regex: { strategy: { word1: "1@1", word2: "2@1" } } },
  }).model;
}

function maxRelErr(got: Float32Array, want: Float32Array): number {
  let err = 0,
    mag = 0;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs(got[i] - want[i]));
    mag = Math.max(mag, Math.abs(want[i]));
  }
  return err / (1 + mag);
}

// Whole-model float32 error against the float32 reference, measured at most 1.8e-6 on these models (SwiftShader);
// the bound leaves a 5x margin.
const TOL = 1e-5;

for (const pooling of ["simple_indexed_matmul", "simple_repeat", "simple"] as const)
  test(`webgpu: whole-model forward and backward, ${pooling} pooling`, async (t) => {
    if (skip) return t.skip(skip);
    const be = gpu!;
    const rng = new Rng(31);
    const cfg = config(rng, pooling);
    const B = 2,
      S = 40;
    const tokens = randInts(rng, B * S, 258);
    const levels = new Int32Array(B * S);
    for (let i = 0; i < levels.length; i++) levels[i] = rng.next() < 0.4 ? rng.int(3) : 0;
    const seed = randn(rng, B * S * cfg.vocab_size, 1e-2);

    const run = (backend: RefBackend | WebGPUBackend) => {
      const model = new AUNet(cfg, backend);
      clearTape();
      const { logits } = model.forward(tokens, levels, B, S);
      backward(logits, Tensor.from(backend, seed, logits.shape));
      return { model, logits };
    };
    const want = run(new RefBackend());
    const got = run(be);
    const logitsErr = maxRelErr(await be.readAsync(got.logits.storage), want.logits.toFloat32());
    let worst = { name: "logits", err: logitsErr };
    for (const [name, p] of want.model.params) {
      const g = got.model.params.get(name)!.grad;
      assert.ok(g && p.grad, `${name}: no gradient`);
      const err = maxRelErr(await be.readAsync(g.storage), p.grad.toFloat32());
      if (err > worst.err) worst = { name, err };
    }
    t.diagnostic(`largest relative error ${worst.err.toExponential(2)} (${worst.name})`);
    assert.ok(logitsErr <= TOL, `logits error ${logitsErr}`);
    assert.ok(worst.err <= TOL, `${worst.name} error ${worst.err}`);
  });

const FIXTURE = join(FIXTURES, "2stage_word_english");

test("webgpu (worker, synchronous interface): check-fixture on an official fixture", async (t) => {
  if (skip) return t.skip(skip);
  if (!existsSync(join(FIXTURE, "expected.safetensors"))) return t.skip(`no fixture at ${FIXTURE}`);
  const be = new WebGPUWorkerBackend();
  try {
    const r = checkFixture(FIXTURE, be);
    // The CPU backends' tolerances (test/model.test.ts).
    assert.ok(r.logitsMaxAbsErr <= 1e-4, `logits error ${r.logitsMaxAbsErr}`);
    assert.ok(r.lossRelErr <= 1e-5, `loss error ${r.lossRelErr}`);
    assert.ok(r.worstGrad.relErr <= 1e-3, `gradient ${r.worstGrad.name} error ${r.worstGrad.relErr}`);
    for (const [k, v] of Object.entries(r.integers)) assert.ok(v, `${k} differs`);
    for (const g of r.generate) assert.ok(g.pass, `${g.trace}: ${JSON.stringify(g)}`);
    assert.ok(r.pass);
  } finally {
    be.destroy();
  }
});

test("webgpu (worker): synchronous reads and sums; a failed call is reported by the next read", (t) => {
  if (skip) return t.skip(skip);
  const be = new WebGPUWorkerBackend();
  try {
    const a = be.fromFloat32(Float32Array.from([1, 2, 3, 4, 5]));
    assert.deepEqual(Array.from(be.read(a)), [1, 2, 3, 4, 5]);
    assert.equal(be.sum(a), 15);
    assert.equal(be.sumSquares(a), 55);
    const b = be.alloc(5);
    be.scale(b, a, 2);
    assert.deepEqual(Array.from(be.read(b)), [2, 4, 6, 8, 10]);
    be.release(b);
    be.scale(b, a, 2); // a released storage: the worker fails this call, the next answer says so
    assert.throws(() => be.read(a), /scale: webgpu worker: unknown storage/);
    assert.deepEqual(Array.from(be.read(a)), [1, 2, 3, 4, 5]);
  } finally {
    be.destroy();
  }
});
