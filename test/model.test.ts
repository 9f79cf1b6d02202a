// The AU-Net model: golden fixtures from the official code, exactness of the dynamic-length pooling, gradients
// of the whole model against finite differences, and config validation.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, existsSync } from "node:fs";
import { join } from "node:path";
import { RefBackend } from "../src/backends/ref.js";
import { defaultBackend } from "../src/backends/index.js";
import { AUNet } from "../src/model/aunet.js";
import { parseConfig, countParams, ffnHidden, type ModelConfig } from "../src/model/config.js";
import { checkFixture } from "../src/eval/check-fixture.js";
import { backward, noGrad, clearTape } from "../src/engine/tensor.js";
import { UserError } from "../src/util/errors.js";
import { Rng } from "../src/util/rng.js";
import { FIXTURES, hasFixtures, randInts } from "./helpers.js";

const fixtureDirs = hasFixtures
  ? readdirSync(FIXTURES)
      .map((d) => join(FIXTURES, d))
      .filter((d) => existsSync(join(d, "expected.safetensors")))
  : [];

if (fixtureDirs.length === 0)
  test("check-fixture on the shared fixtures", (t) => t.skip(`no fixtures under ${FIXTURES}`));
for (const dir of fixtureDirs) {
  test(`check-fixture ${dir.split("/").pop()}`, () => {
    const r = checkFixture(dir, defaultBackend());
    assert.ok(r.logitsMaxAbsErr <= 1e-4, `logits error ${r.logitsMaxAbsErr}`);
    assert.ok(r.lossRelErr <= 1e-5, `loss error ${r.lossRelErr}`);
    assert.ok(r.worstGrad.relErr <= 1e-3, `gradient ${r.worstGrad.name} error ${r.worstGrad.relErr}`);
    for (const [k, v] of Object.entries(r.integers)) assert.ok(v, `${k} differs`);
    assert.equal(r.generate.length, 2);
    for (const g of r.generate) assert.ok(g.pass, `${g.trace}: ${JSON.stringify(g)}`);
    assert.ok(r.pass);
  });
}

function randomConfig(
  rng: Rng,
  nStages: number,
  pooling: ModelConfig["pooling_type"],
): ReturnType<typeof parseConfig> {
  const dims = [16, 24, 32, 40].slice(0, nStages);
  const S = 40;
  const caps = [S, 17, 9, 5].slice(0, nStages);
  return parseConfig({
    model: {
      dimensions: dims,
      head_dims: [8, 8, 8, 8].slice(0, nStages),
      layers: [1, 1, 1, 1].slice(0, nStages),
      sliding_windows: [7, 5, null, 3].slice(0, nStages),
      max_seqlens: caps,
      residuals: [true, false, true].slice(0, nStages - 1),
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
    data: { seq_len: S, regex: { strategy: { word1: "1@1", word2: "2@1", word4: "4@1" } } },
  });
}

test("dynamic-length pooling equals the official fixed shapes at every real position", () => {
  const rng = new Rng(21);
  for (const n of [1, 2, 3, 4])
    for (const pooling of ["simple_indexed_matmul", "simple_repeat", "simple"] as const) {
      const cfg = randomConfig(rng, n, pooling);
      const model = new AUNet(cfg.model, new RefBackend());
      const B = 3,
        S = 40;
      const tokens = randInts(rng, B * S, 258);
      // Dense boundaries so that the caps bind at every level.
      const levels = new Int32Array(B * S);
      for (let i = 0; i < levels.length; i++) levels[i] = rng.next() < 0.5 ? rng.int(n) : 0;
      const [fixed, dyn] = noGrad(() => [
        model.forward(tokens, levels, B, S, { padToCap: true }).logits.toFloat32(),
        model.forward(tokens, levels, B, S).logits.toFloat32(),
      ]);
      let worst = 0;
      for (let i = 0; i < fixed.length; i++) worst = Math.max(worst, Math.abs(fixed[i] - dyn[i]));
      assert.ok(worst < 1e-5, `${n} stages ${pooling}: ${worst}`);
    }
});

test("whole-model gradients against finite differences (float64)", () => {
  const rng = new Rng(22);
  const be = new RefBackend({ float64: true });
  for (const pooling of ["simple_indexed_matmul", "simple_repeat", "simple"] as const) {
    const cfg = randomConfig(rng, 3, pooling);
    const model = new AUNet(cfg.model, be);
    const B = 2,
      S = 40;
    const tokens = randInts(rng, B * S, 258);
    const targets = randInts(rng, B * S, 258);
    const levels = new Int32Array(B * S);
    for (let i = 0; i < levels.length; i++) levels[i] = rng.next() < 0.4 ? rng.int(3) : 0;
    clearTape();
    model.zeroGrad();
    backward(model.loss(tokens, levels, targets, B, S).loss);
    const lossAt = () => noGrad(() => be.readRaw(model.loss(tokens, levels, targets, B, S).loss.storage)[0]);
    for (const [name, p] of model.params) {
      const x = be.readRaw(p.storage);
      const g = be.readRaw(p.grad!.storage);
      // A few entries per tensor keep this fast; the op tests cover every element.
      for (let trial = 0; trial < 2; trial++) {
        const i = rng.int(x.length);
        const v = x[i],
          h = 1e-5;
        x[i] = v + h;
        const fp = lossAt();
        x[i] = v - h;
        const fm = lossAt();
        x[i] = v;
        const fd = (fp - fm) / (2 * h);
        assert.ok(
          Math.abs(fd - g[i]) <= 1e-6 + 1e-4 * Math.abs(fd),
          `${pooling} ${name}[${i}]: fd ${fd} vs ${g[i]}`,
        );
      }
    }
  }
});

test("parameter counts and FFN sizes match the official code", () => {
  const block = {
    rope_theta: 5e5,
    multiple_of: 256,
    norm_eps: 1e-5,
    ffn_dim_multiplier: null,
    n_kv_heads: null,
  };
  assert.equal(ffnHidden(256, block), 768);
  assert.equal(ffnHidden(512, block), 1536);
  assert.equal(ffnHidden(2048, block), 5632);
  const official2B1level = parseConfig({
    model: {
      dimensions: [512, 2048],
      layers: [3, 25],
      head_dims: [64, 128],
      residuals: [true],
      sliding_windows: [512, 4096],
      max_seqlens: [-1, 3200],
      block: { rope_theta: 500000.0, multiple_of: 256 },
      pooling_type: "simple_indexed_matmul",
    },
    data: { seq_len: 8192, regex: { strategy: { word1: "1@1" } } },
  });
  assert.equal(countParams(official2B1level.model).total, 1324203008);
});

test("bad configs give one clear UserError", () => {
  const base = () => ({
    model: { dimensions: [32, 64], head_dims: [16, 16], layers: [1, 1], max_seqlens: [64, 32] } as Record<
      string,
      unknown
    >,
    data: { seq_len: 64, regex: { strategy: { word1: "1@1" } } } as Record<string, unknown>,
  });
  const bad: [string, (c: ReturnType<typeof base>) => void, RegExp][] = [
    ["lengths disagree", (c) => (c.model.layers = [1]), /must agree/],
    ["cap grows", (c) => (c.model.max_seqlens = [64, 128]), /must not grow/],
    ["head dim", (c) => (c.model.head_dims = [12, 16]), /not a multiple|even/],
    ["pooling", (c) => (c.model.pooling_type = "mean"), /pooling_type/],
    ["strategy value", (c) => (c.data.regex = { strategy: { word1: 1 } }), /string/],
    [
      "strategy key",
      (c) => (c.data.regex = { strategy: { sentence1: "1@1" } }),
      /unknown|word|pretok|punct/i,
    ],
    ["kv heads", (c) => (c.model.block = { n_kv_heads: 3 }), /n_kv_heads/],
    ["unknown key", (c) => (c.model.dimension = [1]), /unknown key/],
  ];
  for (const [what, mutate, re] of bad) {
    const c = base();
    mutate(c);
    assert.throws(
      () => parseConfig(c),
      (e: unknown) => e instanceof UserError && re.test(e.message) && !e.message.includes("\n"),
      what,
    );
  }
});
