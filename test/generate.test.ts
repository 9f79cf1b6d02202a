// Incremental generation: exactness against the official traces and against full forwards of random models,
// bounded caches, sampling, stop strings, UTF-8 streaming, batching and scoring.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { RefBackend } from "../src/backends/ref.js";
import { defaultBackend } from "../src/backends/index.js";
import type { Backend } from "../src/engine/backend.js";
import { AUNet } from "../src/model/aunet.js";
import { parseConfig, type ModelConfig } from "../src/model/config.js";
import { loadModelDir, readJsonFile } from "../src/io/model-dir.js";
import { readSafetensors } from "../src/io/safetensors.js";
import { noGrad } from "../src/engine/tensor.js";
import { IncrementalAUNet, type SequenceState } from "../src/generate/incremental-model.js";
import { Generator, promptTokens } from "../src/generate/generator.js";
import { Sampler, logProbOf } from "../src/generate/sampling.js";
import { StopFilter } from "../src/generate/stop.js";
import { ByteLevels } from "../src/generate/levels.js";
import { scoreText } from "../src/generate/score.js";
import { parseStrategy } from "../src/data/splitter.js";
import { decodeBytes, encodeText } from "../src/data/bytes.js";
import { Rng } from "../src/util/rng.js";
import { FIXTURES, hasFixtures, randInts } from "./helpers.js";
import { maxAbsDiff } from "../src/util/compare.js";

const V = 258;

const fixtureDirs = hasFixtures
  ? readdirSync(FIXTURES)
      .map((d) => join(FIXTURES, d))
      .filter((d) => existsSync(join(d, "model.safetensors")))
  : [];

for (const dir of fixtureDirs)
  for (const trace of ["generate_teacher", "generate"]) {
    const tdir = join(dir, trace);
    if (!existsSync(join(tdir, "generate.json"))) continue;
    test(`incremental logits equal the official trace ${dir.split("/").pop()}/${trace}`, () => {
      const { config, weights } = loadModelDir(dir);
      const model = new AUNet(config.model, new RefBackend(), weights);
      const meta = readJsonFile(join(tdir, "generate.json")) as {
        tokens: number[];
        level_mask: number[];
        steps: { pos: number; next: number }[];
      };
      const want = readSafetensors(join(tdir, "generate_logits.safetensors")).getFloat32("logits");
      const inc = new IncrementalAUNet(model);
      const p0 = meta.steps[0].pos + 1;
      const { state, logits } = inc.prefill(meta.tokens.slice(0, p0), meta.level_mask.slice(0, p0));
      let worst = maxAbsDiff(logits, want.subarray(0, V));
      for (let i = 1; i < meta.steps.length; i++) {
        const pos = meta.steps[i].pos;
        assert.equal(pos, p0 + i - 1);
        const got = inc.step([state], [meta.tokens[pos]], [meta.level_mask[pos]]);
        worst = Math.max(worst, maxAbsDiff(got, want.subarray(i * V, (i + 1) * V)));
      }
      assert.ok(worst <= 1e-4, `max abs error ${worst}`);
    });
  }

function randomModel(
  rng: Rng,
  nStages: number,
  pooling: ModelConfig["pooling_type"],
  residuals: boolean,
  backend: Backend = new RefBackend(),
): AUNet {
  const cfg = parseConfig({
    model: {
      dimensions: [16, 32, 48, 64].slice(0, nStages),
      head_dims: [8, 8, 8, 8].slice(0, nStages),
      layers: [2, 1, 1, 1].slice(0, nStages),
      // Windows shorter than the sequences (rings wrap), one stage without a window (cache grows).
      sliding_windows: [7, 5, null, 3].slice(0, nStages),
      // Small caps: they must NOT apply at inference.
      max_seqlens: [16, 6, 4, 2].slice(0, nStages),
      residuals: [residuals, !residuals, residuals].slice(0, nStages - 1),
      block: { rope_theta: 500 + rng.int(1000), multiple_of: 8, n_kv_heads: 1 + rng.int(2) },
      pooling_type: pooling,
      seed: rng.int(1000),
    },
    data: { regex: { strategy: { word1: "1@1", word2: "2@1", word4: "4@1" } } },
  });
  return new AUNet(cfg.model, backend);
}

type Pooling = ModelConfig["pooling_type"];
const CASES: [number, Pooling, boolean][] = [];
for (const n of [1, 2, 3, 4])
  for (const pooling of ["simple_indexed_matmul", "simple_repeat", "simple"] as const)
    for (const residuals of [true, false])
      if (n > 1 || (pooling === "simple_indexed_matmul" && residuals)) CASES.push([n, pooling, residuals]);

// Every case on the reference backend; a few on the default one when it is another (the native kernels).
const RUNS: [Backend, [number, Pooling, boolean][]][] = [[new RefBackend(), CASES]];
if (defaultBackend().name !== "ref")
  RUNS.push([
    defaultBackend(),
    [
      [2, "simple_indexed_matmul", true],
      [4, "simple_repeat", false],
    ],
  ]);

for (const [backend, cases] of RUNS)
  test(`incremental logits equal a full forward (caps off) on random models, batched (${backend.name})`, () => {
    const rng = new Rng(5);
    for (const [n, pooling, residuals] of cases) {
      const model = randomModel(rng, n, pooling, residuals, backend);
      const inc = new IncrementalAUNet(model);
      // Three sequences of different lengths, prompts of different lengths, stepping together.
      const lengths = [41, 30, 36];
      const prompts = [1, 9, 17];
      const seqs = lengths.map((S) => {
        const tokens = randInts(rng, S, 256);
        const levels = new Int32Array(S);
        for (let t = 0; t < S; t++) levels[t] = rng.next() < 0.4 ? 1 + rng.int(n + 1) : 0;
        const full = noGrad(() => model.forward(tokens, levels, 1, S, { caps: false }).logits.toFloat32());
        return { tokens, levels, full };
      });
      const states: SequenceState[] = [];
      let worst = 0;
      seqs.forEach((s, b) => {
        const p = prompts[b];
        const r = inc.prefill(s.tokens.subarray(0, p), s.levels.subarray(0, p));
        states.push(r.state);
        worst = Math.max(worst, maxAbsDiff(r.logits, s.full.subarray((p - 1) * V, p * V)));
      });
      for (let t = 1; ; t++) {
        const live = seqs.map((s, b) => b).filter((b) => prompts[b] + t <= lengths[b]);
        if (live.length === 0) break;
        const pos = live.map((b) => prompts[b] + t - 1);
        const out = inc.step(
          live.map((b) => states[b]),
          live.map((b, j) => seqs[b].tokens[pos[j]]),
          live.map((b, j) => seqs[b].levels[pos[j]]),
        );
        live.forEach((b, j) => {
          const want = seqs[b].full.subarray(pos[j] * V, (pos[j] + 1) * V);
          worst = Math.max(worst, maxAbsDiff(out.subarray(j * V, (j + 1) * V), want));
        });
      }
      assert.ok(worst <= 1e-4, `${n} stages, ${pooling}, residuals ${residuals}: ${worst}`);
    }
  });

test("a prompt prefilled in chunks gives the same logits and caches as in one pass (exact on the reference backend)", () => {
  const rng = new Rng(12);
  for (const [n, pooling, residuals] of CASES) {
    const model = randomModel(rng, n, pooling, residuals);
    const inc = new IncrementalAUNet(model);
    // Longer than every window (rings wrap inside a chunk and across chunks), with boundaries at every level.
    const L = 53;
    const tokens = randInts(rng, L, 256);
    const levels = Int32Array.from({ length: L }, () => (rng.next() < 0.4 ? 1 + rng.int(n + 1) : 0));
    const whole = inc.prefill(tokens, levels, { chunk: L });
    const next = [97, 32, 98],
      nextLv = [0, n, 0];
    const after = (state: SequenceState) => next.map((t, i) => inc.step([state], [t], [nextLv[i]]));
    const wantLength = [...whole.state.length],
      wantOffset = whole.state.offset.slice();
    const wantAfter = after(whole.state);
    for (const chunk of [1, 4, 7, 16]) {
      const progress: number[] = [];
      const r = inc.prefill(tokens, levels, { chunk, onProgress: (done) => progress.push(done) });
      assert.deepEqual(r.logits, whole.logits, `${n} stages ${pooling} chunk ${chunk}`);
      assert.deepEqual(r.state.length, wantLength);
      assert.deepEqual(r.state.offset, wantOffset);
      assert.deepEqual(after(r.state), wantAfter, `${n} stages ${pooling} chunk ${chunk}: steps after`);
      assert.equal(progress.length, Math.ceil(L / chunk));
      assert.equal(progress[progress.length - 1], L);
      r.state.release();
    }
    whole.state.release();
  }
});

test("score in chunks equals score byte by byte, with progress", () => {
  const rng = new Rng(13);
  const model = randomModel(rng, 3, "simple_indexed_matmul", true);
  const gen = new Generator(model, parseStrategy({ word1: "1@1", word2: "2@1" }));
  const text = "the cat sat on the mat, and then it sat on the hat. ".repeat(2);
  const want = scoreText(gen, text, "once", { chunk: 1 });
  const done: number[] = [];
  const got = scoreText(gen, text, "once", { chunk: 9, onProgress: (d) => done.push(d) });
  assert.deepEqual(got.bytes, want.bytes);
  assert.equal(got.logLikelihood, want.logLikelihood);
  assert.equal(done.length, Math.ceil(encodeText(text).length / 9));
});

test("sliding-window caches stay bounded; caches without a window grow", () => {
  const rng = new Rng(6);
  const model = randomModel(rng, 3, "simple_indexed_matmul", true);
  const inc = new IncrementalAUNet(model);
  const { state } = inc.prefill([256], [0]);
  for (let t = 0; t < 300; t++) inc.step([state], [t % 7 === 0 ? 32 : 97], [t % 7 === 0 ? 1 + (t % 3) : 0]);
  for (const [prefix, layers] of state.caches) {
    const window = prefix.endsWith(".0") ? 7 : prefix.endsWith(".1") ? 5 : 0;
    for (const c of layers) {
      if (window > 0) assert.ok(c.capacity <= window, `${prefix}: ${c.capacity} slots for window ${window}`);
      else assert.ok(c.capacity >= c.length, `${prefix} keeps every position`);
    }
  }
  assert.equal(state.bytes, 301);
  assert.ok(inc.stageRuns[0] === 300 && inc.stageRuns[1] < 300 && inc.stageRuns[2] < inc.stageRuns[1]);
});

for (const dir of fixtureDirs) {
  const tdir = join(dir, "generate");
  if (!existsSync(join(tdir, "generate.json"))) continue;
  test(`greedy generation reproduces the official trace ${dir.split("/").pop()}`, () => {
    const { config, weights } = loadModelDir(dir);
    const model = new AUNet(config.model, new RefBackend(), weights);
    const meta = readJsonFile(join(tdir, "generate.json")) as { prompt: string; generated_tokens: number[] };
    const n = meta.generated_tokens.length;
    const [g] = new Generator(model, config.strategy).generate([meta.prompt], {
      temperature: 0,
      maxBytes: n,
    });
    assert.deepEqual(
      g.tokens.map((t) => t.id),
      meta.generated_tokens,
    );
    assert.equal(g.stopReason, "max_bytes");
  });
}

function smallGenerator(seed: number): Generator {
  const rng = new Rng(seed);
  const model = randomModel(rng, 3, "simple_indexed_matmul", true);
  return new Generator(model, parseStrategy({ word1: "1@1", word2: "2@1" }));
}

test("a batch generates what each prompt generates alone (seeded sampling, stop strings)", () => {
  const gen = smallGenerator(7);
  const prompts = ["", "The cat sat on the mat. ", "Ünïcödé → 文字 ", "12 34"];
  const opts = {
    temperature: 1.3,
    topK: 40,
    topP: 0.95,
    maxBytes: 60,
    stop: [..."abcdefghijklmnop", "\u00e9"],
  };
  const batch = gen.generate(prompts, { ...opts, seed: 11 });
  prompts.forEach((p, i) => {
    const [alone] = gen.generate([p], { ...opts, seed: 11 + i });
    assert.deepEqual(alone, batch[i]);
  });
  // Different lengths of output: the rows did not all run for the same number of steps.
  assert.ok(new Set(batch.map((g) => g.tokens.length)).size > 1);
  assert.ok(batch.some((g) => g.stopReason === "stop"));
});

test("streamed text is whole UTF-8 pieces that add up to the decoded bytes", () => {
  const gen = smallGenerator(8);
  const pieces: string[][] = [[], []];
  const out = gen.generate(["a", "b"], {
    temperature: 2,
    maxBytes: 120,
    seed: 3,
    onText: (i, t) => pieces[i].push(t),
  });
  out.forEach((g, i) => {
    for (const p of pieces[i]) assert.equal(Buffer.from(p, "utf8").toString("utf8"), p, "no lone surrogate");
    assert.equal(pieces[i].join(""), g.text);
    assert.equal(g.text, decodeBytes(g.tokens.map((t) => t.id)));
  });
});

test("stop strings are cut from the output, even when they arrive byte by byte", () => {
  const f = new StopFilter(["lo w", "\u00e9"]);
  const bytes = encodeText("hello world");
  const emitted: number[] = [];
  let stopped = false;
  for (const b of bytes) {
    const r = f.push(b);
    emitted.push(...r.out);
    if (r.stopped) {
      stopped = true;
      break;
    }
  }
  assert.ok(stopped);
  assert.equal(decodeBytes(emitted), "hel");
  const g = new StopFilter(["xyz"]);
  const held = [...encodeText("axy")].flatMap((b) => g.push(b).out);
  assert.equal(decodeBytes(held), "a");
  assert.equal(decodeBytes(g.flush()), "xy");
});

test("sampling: greedy, top-k, top-p and seeds", () => {
  const logits = Float32Array.from([0, 3, 1, 2.5, -1]);
  assert.equal(new Sampler({ temperature: 0, topK: 0, topP: 1 }, new Rng(1)).sample(logits), 1);
  const draw = (o: { temperature: number; topK: number; topP: number }, seed: number) => {
    const s = new Sampler(o, new Rng(seed));
    return Array.from({ length: 400 }, () => s.sample(logits));
  };
  assert.deepEqual(new Set(draw({ temperature: 5, topK: 2, topP: 1 }, 1)), new Set([1, 3]));
  // p(1) = 0.53, p(3) = 0.32 at temperature 1: top-p 0.6 keeps exactly those two.
  assert.deepEqual(new Set(draw({ temperature: 1, topK: 0, topP: 0.6 }, 2)), new Set([1, 3]));
  assert.deepEqual(new Set(draw({ temperature: 1, topK: 0, topP: 0.1 }, 2)), new Set([1]));
  assert.equal(new Set(draw({ temperature: 1, topK: 0, topP: 1 }, 3)).size, 5);
  assert.deepEqual(
    draw({ temperature: 0.7, topK: 0, topP: 1 }, 4),
    draw({ temperature: 0.7, topK: 0, topP: 1 }, 4),
  );
  assert.throws(() => new Sampler({ temperature: -1, topK: 0, topP: 1 }, new Rng(1)), RangeError);
  assert.throws(() => new Sampler({ temperature: 1, topK: 0, topP: 0 }, new Rng(1)), RangeError);
  assert.ok(
    Math.abs(
      logProbOf(logits, 1) - Math.log(Math.exp(3) / [0, 3, 1, 2.5, -1].reduce((a, x) => a + Math.exp(x), 0)),
    ) < 1e-12,
  );
});

test("score gives the log-probabilities and levels that generation saw", () => {
  const gen = smallGenerator(9);
  const prompt = "Once upon a time, ";
  const [g] = gen.generate([prompt], { temperature: 0.9, seed: 5, maxBytes: 40 });
  const bytes = g.tokens.filter((t) => t.id < 256);
  assert.equal(bytes.length, g.tokens.length, "no EOS in this run");
  const s = scoreText(gen, Uint8Array.from(bytes.map((t) => t.id)), prompt);
  assert.equal(s.bytes.length, bytes.length);
  s.bytes.forEach((b, i) => {
    assert.equal(b.level, bytes[i].level);
    assert.ok(Math.abs(b.logProb - bytes[i].logProb) < 1e-9);
  });
  const total = bytes.reduce((a, t) => a + t.logProb, 0);
  assert.ok(Math.abs(s.logLikelihood - total) < 1e-9);
  assert.ok(Math.abs(s.bitsPerByte - -total / Math.LN2 / bytes.length) < 1e-9);
});

test("score equals a full forward over the prompt and text with the same levels", () => {
  const gen = smallGenerator(10);
  const prompt = "ab cd\n";
  const text = "ef gh ij\n\nkl, mn 12";
  const s = scoreText(gen, text, prompt);
  const tokens = promptTokens(prompt + text);
  const P = tokens.length - s.bytes.length;
  const levels = new ByteLevels(parseStrategy({ word1: "1@1", word2: "2@1" }), 2).prompt(
    tokens.subarray(0, P),
  );
  const all = Int32Array.from([...levels, ...s.bytes.map((b) => b.level)]);
  const logits = noGrad(() =>
    gen.model.forward(tokens, all, 1, tokens.length, { caps: false }).logits.toFloat32(),
  );
  s.bytes.forEach((b, i) => {
    const row = logits.subarray((P - 1 + i) * V, (P + i) * V);
    assert.ok(Math.abs(logProbOf(row, b.byte) - b.logProb) < 1e-4);
  });
});

test("generation stops at EOS, which is not part of the text", () => {
  const gen = smallGenerator(12);
  // A zero vocab_norm makes every logit 0: sampling is uniform, so an EOS comes soon enough with this seed.
  const w = gen.model.stateDict();
  w.get("vocab_norm.weight")!.fill(0);
  gen.model.loadStateDict(w);
  const [g] = gen.generate(["x"], { maxBytes: 5000, seed: 1 });
  assert.equal(g.stopReason, "eos");
  assert.equal(g.tokens[g.tokens.length - 1].id, 257);
  assert.ok(Math.abs(g.tokens[0].logProb - -Math.log(V)) < 1e-6);
  assert.equal(g.text, decodeBytes(g.tokens.map((t) => t.id)));
});
