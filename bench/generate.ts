// Generation speed: bytes/s of the incremental AU-Net generating 1,000 bytes after a 1,000-byte prompt, against
// recomputing a full forward for every byte (what a naive sampler does), for two randomly initialised models.
//
// Two ways to produce the 1,000 bytes:
// - sampled: what the random model samples (near-uniform bytes: few spaces, but invalid UTF-8 and punctuation
//   are boundaries too), EOS included, fed on like any token;
// - text: the continuation of the prompt in the corpus, fed as if sampled (the same work per byte), so that
//   boundaries come at the rate of real English: the realistic case, and the one compared with the full
//   forward.
// The full forward is timed at a few lengths between prompt+1 and prompt+generated and averaged (its cost is
// close to linear in the length there), instead of running it 1,000 times.
//
// usage: node dist/bench/generate.js [--prompt-bytes N] [--bytes N] [--full-samples N] [--models small,medium]

import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { AUNet } from "../src/model/aunet.js";
import { parseConfig } from "../src/model/config.js";
import { defaultBackend } from "../src/backends/index.js";
import { noGrad } from "../src/engine/tensor.js";
import { Generator, promptTokens } from "../src/generate/generator.js";
import { ByteLevels } from "../src/generate/levels.js";
import { DEFAULT_SAMPLING, Sampler } from "../src/generate/sampling.js";
import { Rng } from "../src/util/rng.js";

// The same two configurations as the training-step benchmark (bench/configs/<name>.json).
const MODELS = ["aunet_small", "aunet_medium"];
const CONFIG_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "bench", "configs");

interface ModeResult {
  bytesPerSec: number;
  seconds: number;
  stageRuns: number[];
}

interface ModelResult {
  model: string;
  params: number;
  backend: string;
  prefillMs: number;
  prefillRuns: number[];
  sampled: ModeResult;
  text: ModeResult;
  fullForward: { bytesPerSec: number; lengths: number[]; msPerForward: number[] };
  speedup: number;
  cacheSlots: number;
}

function bench(
  name: string,
  corpus: Uint8Array,
  promptBytes: number,
  genBytes: number,
  fullSamples: number,
): ModelResult {
  const cfg = parseConfig(JSON.parse(readFileSync(path.join(CONFIG_DIR, `${name}.json`), "utf8")));
  const model = new AUNet(cfg.model, defaultBackend());
  const params = [...model.params.values()].reduce((a, t) => a + t.size, 0);
  const prompt = corpus.subarray(0, promptBytes);
  const continuation = corpus.subarray(promptBytes, promptBytes + genBytes);
  const gen = new Generator(model, cfg.strategy);
  gen.generate([prompt.subarray(0, 64)], { maxBytes: 32, seed: 1 }); // JIT warm-up

  const inc = gen.incremental;
  // One loop for both ways of choosing bytes, with the work of generation per byte: choose, level, step.
  const run = (choose: (logits: Float32Array, i: number) => number) => {
    const { state, logits: first, levels } = gen.start(prompt);
    const before = [...inc.stageRuns];
    const chosen = new Int32Array(genBytes);
    const lv = new Int32Array(genBytes);
    let logits = first;
    const t0 = performance.now();
    for (let i = 0; i < genBytes; i++) {
      chosen[i] = choose(logits, i);
      lv[i] = levels.next(chosen[i]);
      // An EOS from the random model is fed on like any token: the run always makes genBytes steps.
      logits = inc.step([state], [chosen[i]], [lv[i]]);
    }
    const seconds = (performance.now() - t0) / 1000;
    const cached = state.cacheSlots;
    state.release();
    const mode: ModeResult = {
      bytesPerSec: genBytes / seconds,
      seconds,
      stageRuns: inc.stageRuns.map((v, s) => v - before[s]),
    };
    return { mode, levels: lv, cached };
  };

  const t0 = performance.now();
  const started = gen.start(prompt);
  const prefillMs = performance.now() - t0;
  const prefillRuns = started.state.length.slice();
  started.state.release();
  const sampler = new Sampler(DEFAULT_SAMPLING, new Rng(7));
  const sampled = run((logits) => sampler.sample(logits));
  const text = run((_, i) => continuation[i]);
  const textLevels = text.levels;
  const cacheSlots = text.cached;

  // Full forward per byte, over the same bytes and levels (caps off: the sequences pass max_seqlens[0]).
  const tokens = promptTokens(new Uint8Array([...prompt, ...continuation]));
  const P = promptBytes + 1;
  const allLevels = new Int32Array(tokens.length);
  allLevels.set(new ByteLevels(cfg.strategy, model.nLevels).prompt(tokens.subarray(0, P)));
  allLevels.set(textLevels, P);
  const lengths = Array.from({ length: fullSamples }, (_, k) =>
    fullSamples === 1
      ? P + Math.floor(genBytes / 2)
      : P + Math.round((k * (genBytes - 1)) / (fullSamples - 1)),
  );
  const msPerForward = lengths.map((n) => {
    const t = performance.now();
    noGrad(() => model.forward(tokens.subarray(0, n), allLevels.subarray(0, n), 1, n, { caps: false }));
    return performance.now() - t;
  });
  const avgMs = msPerForward.reduce((a, b) => a + b, 0) / msPerForward.length;
  const textBps = text.mode.bytesPerSec;

  return {
    model: name,
    params,
    backend: model.backend.name,
    prefillMs,
    prefillRuns,
    sampled: sampled.mode,
    text: text.mode,
    fullForward: { bytesPerSec: 1000 / avgMs, lengths, msPerForward },
    speedup: textBps / (1000 / avgMs),
    cacheSlots,
  };
}

function main(): void {
  const { values } = parseArgs({
    options: {
      "prompt-bytes": { type: "string", default: "1000" },
      bytes: { type: "string", default: "1000" },
      "full-samples": { type: "string", default: "3" },
      models: { type: "string", default: "aunet_small,aunet_medium" },
      corpus: { type: "string", default: "corpus/moby-dick.txt" },
    },
  });
  const promptBytes = Number(values["prompt-bytes"]);
  const genBytes = Number(values.bytes);
  const fullSamples = Number(values["full-samples"]);
  const corpus = new Uint8Array(readFileSync(values.corpus));
  if (corpus.length < promptBytes + genBytes)
    throw new Error(`${values.corpus} is shorter than prompt + bytes`);
  const names = values.models.split(",").map((m) => (m.startsWith("aunet_") ? m : `aunet_${m}`));
  for (const n of names)
    if (!MODELS.includes(n)) throw new Error(`unknown model ${n} (${MODELS.join(", ")})`);

  const results = names.map((n) => bench(n, corpus, promptBytes, genBytes, fullSamples));
  const f = (x: number, d = 1) => x.toFixed(d);
  const rows = [
    [
      "model",
      "params",
      "prefill ms",
      "sampled B/s",
      "text B/s",
      "full fwd B/s",
      "speedup",
      "stage runs (sampled)",
      "stage runs (text)",
    ],
    ...results.map((r) => [
      r.model,
      `${f(r.params / 1e6, 2)}M`,
      f(r.prefillMs, 0),
      f(r.sampled.bytesPerSec),
      f(r.text.bytesPerSec),
      f(r.fullForward.bytesPerSec, 2),
      `${f(r.speedup, 0)}x`,
      r.sampled.stageRuns.join("/"),
      r.text.stageRuns.join("/"),
    ]),
  ];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  console.log(
    `generation after a ${promptBytes}-byte prompt, ${genBytes} bytes, backend ${results[0]?.backend ?? "?"}; ` +
      `speedup = text B/s over full-forward B/s`,
  );
  for (const r of rows) console.log(r.map((v, c) => v.padEnd(widths[c])).join("  "));
  console.log(JSON.stringify({ promptBytes, bytes: genBytes, results }));
}

main();
