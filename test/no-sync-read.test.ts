// A training step never waits for the device: forward, backward, gradient clipping and the AdamW update make
// no synchronous host read on any registered backend (test/backends.ts). The loss, the per-row losses, the
// gradient norm and the clip scale stay on the device until asked for, and can then be read asynchronously.
// A counting wrapper around the backend records every readSync.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Backend } from "../src/engine/backend.js";
import { Tensor, backward, scoped } from "../src/engine/tensor.js";
import * as op from "../src/engine/ops.js";
import { AUNet } from "../src/model/aunet.js";
import { parseConfig } from "../src/model/config.js";
import { levelMask } from "../src/data/splitter.js";
import { AdamW, OFFICIAL_ADAMW, clipScale } from "../src/train/optimizer.js";
import { readStepValues, trainStep, type StepOptions } from "../src/train/step.js";
import { BACKENDS } from "./backends.js";

/** `inner` with its synchronous reads counted. */
function counting(inner: Backend): { backend: Backend; reads: () => number } {
  let reads = 0;
  const backend = new Proxy(inner, {
    get(target, prop, receiver) {
      const v: unknown = Reflect.get(target, prop, receiver);
      if (typeof v !== "function") return v;
      const fn = v as (...args: unknown[]) => unknown;
      return (...args: unknown[]) => {
        if (prop === "readSync") reads++;
        return fn.apply(target, args);
      };
    },
  });
  return { backend, reads: () => reads };
}

const cfg = parseConfig({
  model: {
    dimensions: [16, 24, 32],
    head_dims: [8, 8, 8],
    layers: [1, 1, 1],
    sliding_windows: [9, null, null],
    max_seqlens: [32, 12, 6],
    residuals: [true, true],
    block: { rope_theta: 500, multiple_of: 8, n_kv_heads: 1 },
    pooling_type: "simple_indexed_matmul",
    seed: 4,
  },
  data: { seq_len: 32, regex: { strategy: { word1: "1@1", word2: "2@1" } } },
});

function batch(B: number, S: number) {
  const text = new TextEncoder().encode(
    "the model pools words, then pairs of words, and upsamples. ".repeat(3),
  );
  const tokens = new Int32Array(B * S),
    targets = new Int32Array(B * S),
    mask = new Int32Array(B * S);
  for (let b = 0; b < B; b++) {
    const row = text.subarray(b * 5, b * 5 + S + 1);
    mask.set(levelMask(row.subarray(0, S), cfg.strategy), b * S);
    for (let i = 0; i < S; i++) {
      tokens[b * S + i] = row[i];
      targets[b * S + i] = row[i + 1];
    }
  }
  return { tokens, targets, mask };
}

for (const reg of BACKENDS)
  test(`a training step makes no synchronous host read (${reg.name})`, async (t) => {
    const inner = reg.load();
    if (typeof inner === "string") {
      t.skip(inner);
      return;
    }
    const { backend, reads } = counting(inner);
    const model = new AUNet(cfg.model, backend);
    const opt = new AdamW(model.params, backend, OFFICIAL_ADAMW);
    const B = 2,
      S = 32;
    // The project's one training step (src/train/step.ts), as the trainer runs it, with 2 micro-batches.
    const options: StepOptions<ReturnType<typeof batch>> = {
      model: {
        loss: (b) => model.loss(b.tokens, b.mask, b.targets, B, S).loss,
        zeroGrad: () => model.zeroGrad(),
      },
      optimizer: opt,
      gradAcc: 2,
      nextBatch: async () => batch(B, S),
    };
    const first = await trainStep(options, 1e-3);
    const second = await trainStep(options, 1e-3);
    assert.equal(reads(), 0, "synchronous reads during two steps");
    // Everything the steps produced is readable afterwards, asynchronously (readStepValues uses read()).
    for (const values of [first, second]) {
      const v = await readStepValues(values);
      assert.equal(v.microLosses.length, 2);
      assert.ok(v.microLosses.every((x) => Number.isFinite(x) && x > 0));
      assert.ok(v.gradNorm > 0 && Number.isFinite(v.gradNorm));
      assert.ok(Math.abs(v.clipScale - clipScale(v.gradNorm, OFFICIAL_ADAMW.clip)) <= 1e-6 * v.clipScale);
    }
    assert.equal(reads(), 0, "readStepValues reads asynchronously");
  });

for (const reg of BACKENDS)
  test(`the per-row losses stay on the device until read (${reg.name})`, async (t) => {
    const inner = reg.load();
    if (typeof inner === "string") {
      t.skip(inner);
      return;
    }
    const { backend, reads } = counting(inner);
    const model = new AUNet(cfg.model, backend);
    const B = 2,
      S = 32;
    const { tokens, targets, mask } = batch(B, S);
    const out = model.loss(tokens, mask, targets, B, S);
    backward(out.loss);
    assert.equal(reads(), 0);
    const [loss, rows] = await Promise.all([out.loss.read(), out.rowLoss.read()]);
    assert.equal(rows.length, B * S);
    assert.ok(Math.abs(loss[0] - rows.reduce((a, b) => a + b, 0) / (B * S)) < 1e-5 * loss[0]);
  });

for (const reg of BACKENDS)
  test(`backward through sum and mean seeds from the device (${reg.name})`, (t) => {
    const inner = reg.load();
    if (typeof inner === "string") {
      t.skip(inner);
      return;
    }
    const { backend, reads } = counting(inner);
    const x = Tensor.from(backend, [1, -2, 3, 0.5, 2, -1], [2, 3], true);
    scoped(() => backward(op.scale(op.add(op.sum(x), op.mean(op.swiglu(x, x))), 3)));
    assert.equal(reads(), 0);
    // d/dx [3 sum(x) + 3 mean(silu(x) x)] = 3 + (3/6) d(silu(x) x)/dx
    const g = x.grad!.toFloat32();
    const xs = [1, -2, 3, 0.5, 2, -1];
    xs.forEach((v, i) => {
      const s = 1 / (1 + Math.exp(-v));
      const want = 3 + 0.5 * (v * s + v * s * (1 + v * (1 - s)));
      assert.ok(Math.abs(g[i] - want) < 1e-5, `${g[i]} vs ${want}`);
    });
  });

for (const reg of BACKENDS)
  test(`an update with a non-finite gradient norm leaves the weights as they were (${reg.name})`, (t) => {
    const backend = reg.load();
    if (typeof backend === "string") {
      t.skip(backend);
      return;
    }
    const w = Tensor.from(backend, [1, -2, 3], [3], true);
    const opt = new AdamW(new Map([["w", w]]), backend, OFFICIAL_ADAMW);
    backend.write(w.ensureGrad().storage, Float32Array.of(0.5, NaN, 1), 0);
    const u = opt.update(1e-2);
    assert.ok(Number.isNaN(u.gradNorm.item()) && Number.isNaN(u.clipScale.item()));
    assert.deepEqual(Array.from(w.toFloat32()), [1, -2, 3]);
  });
