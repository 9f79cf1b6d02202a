// The continuous batcher: sequences that join at different steps and leave at different times produce exactly
// what Generator.generate produces for each alone (same seed, same sampling), stop strings included; cancelling
// frees the place at once; a full queue refuses.
import { test } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { RefBackend } from "../src/backends/ref.js";
import { Generator } from "../src/generate/generator.js";
import { loadModelDir } from "../src/io/model-dir.js";
import { AUNet } from "../src/model/aunet.js";
import { Batcher, type Job } from "../src/serve/batcher.js";
import type { SamplingOptions } from "../src/generate/sampling.js";

function generator(): Generator {
  const { config, weights } = loadModelDir(resolve("models/aunet-moby"));
  return new Generator(new AUNet(config.model, new RefBackend(), weights), config.strategy);
}

interface Result {
  text: string;
  reason: string;
  levels: number[];
}

function job(
  prompt: string,
  maxBytes: number,
  sampling: SamplingOptions,
  seed: number,
  stop: string[],
  done: (r: Result) => void,
): Job {
  const text: string[] = [];
  const levels: number[] = [];
  return {
    prompt,
    maxBytes,
    sampling,
    seed,
    stop,
    topLogprobs: 0,
    onChunk: (c) => {
      text.push(c.text);
      levels.push(...c.tokens.map((t) => t.level));
    },
    onDone: (reason) => done({ text: text.join(""), reason, levels }),
    onError: (e) => {
      throw e;
    },
  };
}

test("batcher: sequences joining and leaving mid-batch equal each one generated alone", async () => {
  const gen = generator();
  const sampled = { temperature: 0.9, topK: 20, topP: 0.95 };
  const greedy = { temperature: 0, topK: 0, topP: 1 };
  const specs = [
    { prompt: "Call me Ishmael.", maxBytes: 40, sampling: sampled, seed: 3, stop: [] as string[] },
    { prompt: "The whale", maxBytes: 25, sampling: greedy, seed: 0, stop: [] },
    { prompt: "", maxBytes: 30, sampling: sampled, seed: 11, stop: ["e"] },
  ];
  const alone = specs.map((s) => {
    const [g] = gen.generate([s.prompt], { ...s.sampling, maxBytes: s.maxBytes, seed: s.seed, stop: s.stop });
    // A stop string's bytes are not output, so the batcher reports no levels for them.
    const shown = g.stopReason === "stop" ? g.tokens.slice(0, Buffer.byteLength(g.text)) : g.tokens;
    return { text: g.text, reason: g.stopReason, levels: shown.map((t) => t.level) };
  });

  // Steps run only when the test says so: the second job joins after 5 steps, the third after 12.
  let pending: (() => void) | null = null;
  const batcher = new Batcher(gen, { maxBatch: 4, maxQueue: 0, defer: (fn) => (pending = fn) });
  const step = () => {
    const f = pending;
    pending = null;
    f?.();
  };
  const results: (Result | null)[] = specs.map(() => null);
  const submit = (i: number) => {
    const s = specs[i];
    assert.ok(batcher.submit(job(s.prompt, s.maxBytes, s.sampling, s.seed, s.stop, (r) => (results[i] = r))));
  };
  submit(0);
  for (let i = 0; i < 5; i++) step();
  assert.equal(batcher.activeCount, 1);
  submit(1);
  for (let i = 0; i < 7; i++) step();
  assert.equal(batcher.activeCount, 2);
  submit(2);
  while (pending) step();
  assert.deepEqual(results, alone);
  assert.equal(alone[2].reason, "stop", "the case with a stop string stops on it");
  assert.equal(batcher.activeCount, 0);
  await batcher.idle();
});

test("batcher: a full batch and queue refuse; cancelling frees the place", () => {
  const gen = generator();
  let pending: (() => void) | null = null;
  const batcher = new Batcher(gen, { maxBatch: 1, maxQueue: 1, defer: (fn) => (pending = fn) });
  const greedy = { temperature: 0, topK: 0, topP: 1 };
  let chunks = 0;
  const a = batcher.submit({ ...job("A", 1000, greedy, 0, [], () => {}), onChunk: () => chunks++ });
  const b = batcher.submit(job("B", 5, greedy, 0, [], () => {}));
  assert.ok(a && b);
  assert.equal(batcher.submit(job("C", 5, greedy, 0, [], () => {})), null);
  pending!();
  assert.equal(batcher.activeCount, 1);
  assert.equal(batcher.waitingCount, 1);
  a.cancel();
  assert.equal(batcher.activeCount, 0);
  const seen = chunks;
  pending!();
  assert.equal(chunks, seen, "a cancelled job gets no more output");
  assert.equal(batcher.activeCount, 1, "the queued job took the place");
  b.cancel();
  assert.ok(batcher.canAccept(2));
});
