// Paths that must agree bit for bit on the reference backend, which evaluates every position with the same
// operations in the same order however the work is split: incremental generation (prefill, then one byte per
// step with KV caches) against a full forward over the same bytes, on the official fixtures and on random
// models with windows, several stages, every pooling type and GQA. (Dynamic-length against padded pooling is
// in test/model.test.ts; test/generate.test.ts bounds the same paths on every backend with a tolerance.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { RefBackend } from "../src/backends/ref.js";
import { AUNet } from "../src/model/aunet.js";
import { parseConfig, type ModelConfig } from "../src/model/config.js";
import { loadModelDir, readJsonFile } from "../src/io/model-dir.js";
import { noGrad } from "../src/engine/tensor.js";
import { IncrementalAUNet } from "../src/generate/incremental-model.js";
import { Rng } from "../src/util/rng.js";
import { MODEL_FIXTURES, fixturePath, needFixtures, randInts } from "./helpers.js";

const V = 258;

/** Positions where `got` and `want` differ in any bit of any logit (-0 and 0 count as equal). */
function differing(got: Float32Array, want: Float32Array): number {
  assert.equal(got.length, want.length);
  let n = 0;
  for (let i = 0; i < got.length; i++) if (!(got[i] === want[i])) n++;
  return n;
}

/** Incremental logits of every position from `p0 - 1` on, against one full forward (caps off). */
function incrementalVsFull(model: AUNet, tokens: number[], levels: number[], p0: number): number {
  const n = tokens.length;
  const full = noGrad(() =>
    model.forward(Int32Array.from(tokens), Int32Array.from(levels), 1, n, { caps: false }).logits.toFloat32(),
  );
  const inc = new IncrementalAUNet(model);
  const { state, logits } = inc.prefill(tokens.slice(0, p0), levels.slice(0, p0));
  let bad = differing(logits, full.subarray((p0 - 1) * V, p0 * V));
  for (let pos = p0; pos < n; pos++) {
    const got = inc.step([state], [tokens[pos]], [levels[pos]]);
    bad += differing(got, full.subarray(pos * V, (pos + 1) * V));
  }
  return bad;
}

for (const name of MODEL_FIXTURES)
  test(
    `incremental generation equals a full forward bit for bit: ${name} (reference backend)`,
    {
      skip: needFixtures(`${name}/generate_teacher/generate.json`, `${name}/generate/generate.json`),
    },
    () => {
      const dir = fixturePath(name)!;
      const { config, weights } = loadModelDir(dir);
      const model = new AUNet(config.model, new RefBackend(), weights);
      for (const trace of ["generate_teacher", "generate"]) {
        const meta = readJsonFile(join(dir, trace, "generate.json")) as {
          tokens: number[];
          level_mask: number[];
          steps: { pos: number }[];
        };
        const bad = incrementalVsFull(model, meta.tokens, meta.level_mask, meta.steps[0].pos + 1);
        assert.equal(bad, 0, `${trace}: ${bad} logits differ`);
      }
    },
  );

test("incremental generation equals a full forward bit for bit: random models (reference backend)", () => {
  const rng = new Rng(31);
  for (const n of [1, 2, 3, 4])
    for (const pooling of [
      "simple_indexed_matmul",
      "simple_repeat",
      "simple",
    ] as ModelConfig["pooling_type"][]) {
      if (n === 1 && pooling !== "simple_indexed_matmul") continue;
      const cfg = parseConfig({
        model: {
          dimensions: [16, 32, 48, 64].slice(0, n),
          head_dims: [8, 8, 8, 8].slice(0, n),
          layers: [2, 1, 1, 1].slice(0, n),
          // Windows shorter than the sequence (the caches wrap) and one stage without a window.
          sliding_windows: [7, 5, null, 3].slice(0, n),
          max_seqlens: [16, 6, 4, 2].slice(0, n),
          residuals: [true, false, true].slice(0, n - 1),
          block: { rope_theta: 500 + rng.int(1000), multiple_of: 8, n_kv_heads: 1 + rng.int(2) },
          pooling_type: pooling,
          seed: rng.int(1000),
        },
        data: { regex: { strategy: { word1: "1@1", word2: "2@1", word4: "4@1" } } },
      });
      const model = new AUNet(cfg.model, new RefBackend());
      const S = 37;
      const tokens = Array.from(randInts(rng, S, 256));
      const levels = tokens.map(() => (rng.next() < 0.4 ? 1 + rng.int(n + 1) : 0));
      const bad = incrementalVsFull(model, tokens, levels, 1 + rng.int(9));
      assert.equal(bad, 0, `${n} stages, ${pooling}: ${bad} logits differ`);
    }
});
