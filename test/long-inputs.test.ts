// Long inputs go through the KV caches in bounded chunks: a multiple-choice continuation longer than the
// batched path allows is scored through the caches with the same result, and a long generation keeps each
// cache's memory to what its positions need (reserved up front, never copied into a larger buffer), and native
// storage handles are recycled rather than left to finalizers that only run when the event loop turns.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RefBackend } from "../src/backends/ref.js";
import { AUNet } from "../src/model/aunet.js";
import { parseConfig } from "../src/model/config.js";
import { scoreContinuations } from "../src/eval/loglik.js";
import { Generator } from "../src/generate/generator.js";
import { encodeText } from "../src/data/bytes.js";
import { loadNativeBackend } from "../src/backends/native.js";
import type { Storage } from "../src/engine/backend.js";

function tinyModel() {
  const cfg = parseConfig({
    model: {
      dimensions: [16, 24],
      head_dims: [8, 8],
      layers: [1, 1],
      sliding_windows: [9, null],
      max_seqlens: [32, 8],
      residuals: [true],
      block: { rope_theta: 500, multiple_of: 8 },
      pooling_type: "simple_indexed_matmul",
      seed: 3,
    },
    data: { regex: { strategy: { word1: "1@1" } } },
  });
  return { model: new AUNet(cfg.model, new RefBackend()), strategy: cfg.strategy };
}

test("a long continuation is scored through the caches in chunks, as the batched forward scores it", () => {
  const { model, strategy } = tinyModel();
  const requests = [
    { context: encodeText("the cat sat on the "), continuation: encodeText("mat, then the hat; then") },
    { context: encodeText("a"), continuation: encodeText(" dog ran.") },
  ];
  const batched = scoreContinuations(model, strategy, requests);
  const progress: number[] = [];
  // Every request over 10 bytes takes the cached path, in chunks of 4 bytes.
  const cached = scoreContinuations(model, strategy, requests, {
    longRequest: 10,
    chunk: 4,
    onProgress: (done) => progress.push(done),
  });
  // The two paths compute the same float32 logits on the reference backend (measured difference: 0), so
  // equality up to float64 summation order (1e-12) is required.
  for (let i = 0; i < requests.length; i++) {
    assert.ok(
      Math.abs(cached[i].logLikelihood - batched[i].logLikelihood) <=
        1e-9 * Math.abs(batched[i].logLikelihood),
      `request ${i}: ${cached[i].logLikelihood} vs ${batched[i].logLikelihood}`,
    );
    assert.equal(cached[i].greedy, batched[i].greedy);
  }
  assert.deepEqual(progress, [1, 2]);
});

test("a generation's caches are sized once for prompt + output and never grow", () => {
  const { model, strategy } = tinyModel();
  const gen = new Generator(model, strategy);
  const { state } = gen.start("hello", { capacity: 200 });
  const trunk = state.caches.get("trunk")![0];
  assert.equal(trunk.capacity, 206);
  for (let i = 0; i < 200; i++) gen.incremental.step([state], [97], [i % 5 === 0 ? 1 : 0]);
  assert.equal(trunk.capacity, 206, "no reallocation within the reserved length");
  assert.equal(state.caches.get("encoders.0")![0].capacity, 9, "a ring stays at its window");
  state.release();
});

test("native storages recycle released handles (no finalizer left per allocation in a synchronous loop)", (t) => {
  const nb = loadNativeBackend().backend;
  if (!nb) {
    t.skip("native addon not built");
    return;
  }
  const handle = (s: Storage) => (s as unknown as { h: object | null }).h;
  const a = nb.alloc(100);
  const h = handle(a);
  nb.release(a);
  assert.equal(handle(a), null);
  assert.throws(() => nb.readSync(a), /used after release/);
  nb.release(a); // a second release is harmless
  const b = nb.alloc(37);
  assert.equal(handle(b), h, "the released handle serves the next allocation");
  assert.equal(nb.readSync(b).length, 37);
  assert.ok(nb.readSync(b).every((x) => x === 0));
  nb.release(b);
});
