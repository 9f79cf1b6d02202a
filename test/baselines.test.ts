// Baselines and the equal-compute comparison: the BPE tokenizer, the token transformer, FLOPs accounting for
// token models and measured stage positions, the paper's hyper-parameter laws, and `compare` end to end.

import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { RefBackend } from "../src/backends/ref.js";
import { backward } from "../src/engine/tensor.js";
import { noGrad } from "../src/engine/tensor.js";
import { UserError } from "../src/util/errors.js";
import { Rng } from "../src/util/rng.js";
import { BOS, EOS } from "../src/data/bytes.js";
import { BpeTokenizer, ChunkCounter, FIRST_MERGE_ID, presplit, trainBpe } from "../src/baselines/bpe.js";
import { TokenTransformer, tokenModelConfig } from "../src/baselines/transformer.js";
import { tokenBitsPerByte, tokenizeDocs } from "../src/baselines/token-train.js";
import { LR_MAX, MIN_STEPS, lawBatch, lawDefaults, lawLr } from "../src/baselines/laws.js";
import { familyShape } from "../src/baselines/shapes.js";
import { compare } from "../src/baselines/compare.js";
import { compareCommand, parseBudgets, parseModels } from "../src/cli/compare.js";
import { flopsReport } from "../src/cli/flops.js";
import { flopsPerByte, flopsPerToken, measurePositions } from "../src/train/flops.js";
import { AdamW, OFFICIAL_ADAMW } from "../src/train/optimizer.js";
import { parseConfig, type ModelConfig } from "../src/model/config.js";
import { loadConfigFromDir } from "../src/io/model-dir.js";
import { fixturePath } from "./helpers.js";

interface LinguaEstimate {
  max_seqlens: number[];
  flops_per_token: number;
  non_embed_flops_per_token: number;
}
const CONFIGS = fileURLToPath(new URL("../../configs/", import.meta.url));

const enc = (s: string) => new Uint8Array(Buffer.from(s, "utf8"));
const CORPUS = path.resolve("corpus/moby-dick.txt");

test("bpe: known merges on the classic hand example (ties go to the smaller pair)", () => {
  const counts = new Map([
    ["low", 5],
    ["lower", 2],
    ["newest", 6],
    ["widest", 3],
  ]);
  const tok = trainBpe(counts, { vocabSize: FIRST_MERGE_ID + 3 });
  const c = (s: string) => s.charCodeAt(0);
  // e-s and s-t both occur 9 times: e-s wins the tie; then "es"+t (9), then l-o over o-w (7 each).
  assert.deepEqual(tok.merges, [
    [c("e"), c("s")],
    [FIRST_MERGE_ID, c("t")],
    [c("l"), c("o")],
  ]);
  assert.deepEqual([...tok.encode(enc("lowest"))], [FIRST_MERGE_ID + 2, c("w"), FIRST_MERGE_ID + 1]);
  assert.equal(Buffer.from(tok.pieces[FIRST_MERGE_ID + 1]).toString(), "est");
});

test("bpe: training is deterministic and independent of the order chunks were counted in", () => {
  const text = fs.readFileSync(CORPUS).subarray(0, 60_000);
  const a = new ChunkCounter();
  a.add(new Uint8Array(text));
  const reversed = new Map([...a.counts.entries()].reverse());
  const t1 = trainBpe(a.counts, { vocabSize: 600 });
  const t2 = trainBpe(reversed, { vocabSize: 600 });
  assert.equal(t1.vocabSize, 600);
  assert.deepEqual(t1.merges, t2.merges);
  // The first merges of English text are the obvious ones.
  const first = t1.merges.slice(0, 3).map(([x, y]) => Buffer.from(t1.decode([x, y])).toString());
  assert.ok(first.includes(" t") || first.includes("he"), `first merges ${JSON.stringify(first)}`);
});

test("bpe: encode/decode round-trips arbitrary bytes, invalid UTF-8 included; save/load keeps it", () => {
  const counter = new ChunkCounter();
  counter.add(enc("the cat sat on the mat; the hat is flat. 123 456 'll 've\n\n  x"));
  const tok = trainBpe(counter.counts, { vocabSize: 300 });
  const rng = new Rng(5);
  const cases = [
    new Uint8Array(0),
    Uint8Array.of(0xff, 0xfe, 0x80, 0xc3, 0x20, 0x74, 0x68, 0x65, 0xe2, 0x82),
    enc("the cat — naïve café 日本 \t\r\n  the mat"),
  ];
  for (let i = 0; i < 20; i++) {
    const b = new Uint8Array(1 + rng.int(200));
    for (let j = 0; j < b.length; j++) b[j] = rng.int(256);
    cases.push(b);
  }
  const again = BpeTokenizer.fromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
  for (const b of cases) {
    assert.equal(presplit(b).join(""), Buffer.from(b).toString("latin1"));
    const ids = tok.encode(b);
    assert.ok(ids.every((id) => id < tok.vocabSize && id !== BOS && id !== EOS));
    assert.deepEqual(tok.decode(ids), b);
    assert.deepEqual(again.encode(b), ids);
  }
  assert.ok(tok.encode(enc("the cat")).length < 7, "merges shorten known text");
  assert.deepEqual(tok.decode([BOS, 104, 105, EOS]), enc("hi"));
});

test("bpe: bad vocabularies and files are user errors", () => {
  assert.throws(() => trainBpe(new Map([["ab", 3]]), { vocabSize: 100 }), UserError);
  assert.throws(() => BpeTokenizer.fromJSON({}), UserError);
  assert.throws(
    () => BpeTokenizer.fromJSON({ ...new BpeTokenizer([]).toJSON(), merges: [[1, 999]] }),
    UserError,
  );
  assert.throws(() => BpeTokenizer.fromJSON({ ...new BpeTokenizer([]).toJSON(), vocab_size: 5 }), UserError);
  // Fewer merges than asked when pairs run out: the tokenizer is simply smaller.
  assert.equal(trainBpe(new Map([["ab", 3]]), { vocabSize: 400 }).vocabSize, FIRST_MERGE_ID + 1);
});

const tinyTokenConfig = (V: number, S: number) =>
  tokenModelConfig({ dim: 32, layers: 1, headDim: 16, seqLen: S, vocabSize: V, seed: 3 });

test("token transformer: official-style names, loss falls, bits per byte = NLL / bytes / ln 2", async () => {
  const backend = new RefBackend();
  const counter = new ChunkCounter();
  const text = enc("the cat sat on the mat. the dog sat on the log. ".repeat(4));
  counter.add(text);
  const tok = trainBpe(counter.counts, { vocabSize: 280 });
  const S = 16;
  const model = new TokenTransformer(tinyTokenConfig(tok.vocabSize, S), backend);
  const names = [...model.net.params.keys()];
  assert.ok(names.includes("tok_embeddings.weight") && names.includes("vocab.weight"));
  assert.ok(names.includes("trunk.layers.0.attention.wq.weight") && names.includes("vocab_norm.weight"));
  assert.deepEqual(model.net.p("tok_embeddings.weight").shape, [tok.vocabSize, 32]);

  const docs = tokenizeDocs(tok, [text]);
  const ids = docs.docs[0].tokens;
  const tokens = ids.slice(0, S),
    targets = ids.slice(1, S + 1);
  const opt = new AdamW(model.net.params, backend, OFFICIAL_ADAMW);
  const losses: number[] = [];
  for (let i = 0; i < 8; i++) {
    const r = model.loss(tokens, targets, 1, S);
    backward(r.loss);
    losses.push(r.loss.item());
    opt.update(1e-2);
    model.net.zeroGrad();
  }
  assert.ok(losses[7] < losses[0] - 0.5, `loss ${losses[0]} -> ${losses[7]}`);

  // One short document fits one (partial) row: the figure is its summed NLL over its bytes.
  const small = tokenizeDocs(tok, [enc("the cat sat.")]);
  const all = small.docs[0].tokens;
  const n = all.length - 1;
  const evalModel = new TokenTransformer(tinyTokenConfig(tok.vocabSize, 64), backend);
  const r = noGrad(() => evalModel.loss(all.slice(0, n), all.slice(1), 1, n));
  const nats = r.rowLoss.toFloat32().reduce((s, x) => s + x, 0);
  const bpb = await tokenBitsPerByte(evalModel, small, 4);
  assert.equal(small.bytes, 12);
  assert.ok(Math.abs(bpb - nats / 12 / Math.LN2) < 1e-9, `${bpb} vs ${nats / 12 / Math.LN2}`);
});

test("flops: a hand-computed one-stage config, windows, and measured positions per stage", () => {
  // d 32, one layer, FFN 96 (int(2*4*32/3) = 85 rounded up to 32): layer weights 2*32*32 + 2*32*32 + 3*32*96
  // + 2*32 = 13376; N = 13376 + the head 258*32 + vocab_norm 32 = 21664. Context of a row of 8: 8.
  const m = tinyTokenConfig(258, 8);
  assert.equal(flopsPerToken(m, 8), 6 * 21664 + 6 * 32 * 1 * 8);
  const windowed = { ...m, sliding_windows: [4] };
  // With W = 4 over s = 8 the context averages W (2s - W) / s = 6.
  assert.equal(flopsPerToken(windowed, 8), 6 * 21664 + 6 * 32 * 6);
  // A bigger vocabulary only adds head weights.
  assert.equal(flopsPerToken(tinyTokenConfig(4096, 8), 8) - flopsPerToken(m, 8), 6 * (4096 - 258) * 32);

  const two = parseConfig({
    model: { dimensions: [16, 32], layers: [1, 1], head_dims: [16, 16], max_seqlens: [8, 8] },
    data: { regex: { strategy: { word1: "1@1" } } },
  }).model;
  const mask = Int32Array.from([0, 0, 1, 0, 0, 1, 0, 0]); // position 0 is forced to the top level
  const got = measurePositions(two, [mask, mask], 8);
  assert.deepEqual(got, { rows: 2, positions: [16, 6] });
  // By hand, FFN 256 at both stages (multiple_of 256). Stage 0 (8 bytes a row): two layers of
  // 4*16*16 + 3*16*256 + 2*16 = 13344, the head 258*16 + 16, up_norm + trans_up + one indexed_linear slice
  // 32 + 2*16*32: N0 = 31888, context 8. Stage 1 (3 positions a row): one layer of 4*32*32 + 3*32*256 + 2*32 =
  // 28736, down_norm + trans_down 16 + 16*32: N1 = 29264, context 3.
  const hand = (16 * (6 * 31888 + 6 * 16 * 2 * 8) + 6 * (6 * 29264 + 6 * 32 * 1 * 3)) / 16;
  assert.equal(flopsPerByte(two, got.positions, got.rows), hand);
  assert.throws(() => flopsPerToken(two, 8));
});

test("flops: multi-stage configs against lingua's own estimator (positions at the caps) and a hand count", () => {
  const file = fixturePath("lingua_estimates.json");
  assert.ok(file, "lingua_estimates.json is part of the in-repo fixtures");
  const estimates = (JSON.parse(fs.readFileSync(file, "utf8")) as { configs: Record<string, LinguaEstimate> })
    .configs;
  const presets: Record<string, string> = {
    "official 2B_1level.yaml": "aunet2-1b",
    "official 2B_2level.yaml": "aunet3-2b",
  };
  const modelOf = (name: string): ModelConfig => {
    if (presets[name]) {
      const j = JSON.parse(fs.readFileSync(path.join(CONFIGS, `${presets[name]}.json`), "utf8"));
      return parseConfig({ model: j.model, data: { seq_len: j.data.seq_len, regex: j.data.regex } }).model;
    }
    const dir = fixturePath(name.replace(/^fixture /, ""));
    assert.ok(dir, `no fixture for ${name}`);
    return loadConfigFromDir(dir).model;
  };
  assert.equal(Object.keys(estimates).length, 5);
  for (const [name, e] of Object.entries(estimates)) {
    const m = modelOf(name);
    // One row with every stage at its cap, as lingua's estimator assumes.
    const ours = flopsPerByte(m, e.max_seqlens, 1);
    // lingua counts 4 d^2 + 3 d ffn per layer, the head, and attention as we do; it leaves out the RMSNorm
    // weights (2 d per layer, vocab_norm), the transitions (down_norm + trans_down per stage-(i+1)
    // position; up_norm + trans_up + one indexed_linear slice per stage-i position). Those, and nothing
    // else, separate the two counts.
    const d = m.dimensions,
      n = d.length;
    let omitted = 0;
    for (let i = 0; i < n; i++) {
      const layers = i < n - 1 ? 2 * m.layers[i] : m.layers[i];
      let w = 2 * d[i] * layers + (i === 0 ? d[0] : d[i - 1] * d[i] + d[i - 1]);
      if (i < n - 1) w += d[i + 1] + 2 * d[i] * d[i + 1];
      omitted += (e.max_seqlens[i] / e.max_seqlens[0]) * 6 * w;
    }
    assert.ok(Math.abs(ours - omitted - e.flops_per_token) <= 1e-12 * ours, `${name}: ${ours} - ${omitted}`);
    assert.equal(e.flops_per_token - e.non_embed_flops_per_token, 6 * m.vocab_size * d[0], name);
  }
  // 2stage_word_english by hand: dims 64 and 128, FFN 192 and 352 (multiple_of 32), no windows. Stage 0
  // (256 bytes, context 256): two layers of 4*64*64 + 3*64*192 + 2*64 = 53376, the head 258*64 + 64,
  // up_norm + trans_up + slice 128 + 2*64*128: N0 = 139840. Stage 1 (64 positions, context 64): one layer of
  // 4*128*128 + 3*128*352 + 2*128 = 200960, down_norm + trans_down 64 + 64*128: N1 = 209216.
  const english = modelOf("fixture 2stage_word_english");
  const hand = 6 * 139840 + 6 * 64 * 2 * 256 + (64 / 256) * (6 * 209216 + 6 * 128 * 1 * 64);
  assert.equal(flopsPerByte(english, [256, 64], 1), hand);
  assert.equal(hand, 1361760);
});

test("flops report: measured on a corpus, with a BPE model of the trunk's shape", async () => {
  const r = await flopsReport({ config: "tiny", data: [CORPUS], maxBytes: 30_000, vocab: 400 });
  assert.equal(r.stages.length, 2);
  assert.equal(r.stages[0].bytesPerPosition, 1);
  assert.ok(r.stages[1].bytesPerPosition > 3 && r.stages[1].bytesPerPosition < 8);
  assert.ok(r.flopsPerByte > 0 && r.nonEmbeddingParams < r.params);
  assert.equal(r.bpe.vocabSize, 400);
  assert.ok(r.bpe.bytesPerToken > 1.5);
  assert.ok(
    Math.abs(r.bpe.flopsPerByte * r.bpe.bytesPerToken - r.bpe.flopsPerToken) < 1e-6 * r.bpe.flopsPerToken,
  );
  await assert.rejects(
    flopsReport({ config: "no-such-preset", data: [CORPUS], maxBytes: 1000, vocab: 300 }),
    UserError,
  );
});

test("laws: the paper's values and the documented clamping", () => {
  const close = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.abs(b);
  assert.ok(close(lawLr("aunet", 1e20), 6.6 * 1e20 ** -0.176));
  assert.ok(Math.abs(lawLr("aunet", 1e20) - 1.993e-3) < 1e-6); // the paper's 1B runs used 1.65e-3
  assert.ok(Math.abs(lawBatch("aunet", 1e20) / 1.736e6 - 1) < 1e-3);
  assert.ok(Math.abs(lawLr("bpe", 1e20) - 5.566e-3) < 1e-6);
  assert.ok(Math.abs(lawBatch("bpe", 1e20) / 1.2464e6 - 1) < 1e-3);
  const big = lawDefaults("aunet", 1e20, 1e9);
  assert.equal(big.lr, big.rawLr);
  assert.equal(big.lrClamped || big.batchClamped, false);
  const tiny = lawDefaults("bpe", 1e12, 1e6);
  assert.equal(tiny.lr, LR_MAX);
  assert.ok(tiny.lrClamped && tiny.batchClamped);
  assert.equal(tiny.batch, 1e12 / 1e6 / MIN_STEPS);
  assert.deepEqual(familyShape(1e9), { dim: 32, layers: 1 });
  assert.ok(familyShape(1e16).dim > familyShape(1e12).dim);
});

test("compare: end to end at a minuscule budget, equal FLOPs per model, reports written", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "aunet-compare-"));
  try {
    const text = fs.readFileSync(CORPUS);
    fs.writeFileSync(path.join(dir, "train.txt"), text.subarray(0, 40_000));
    fs.writeFileSync(path.join(dir, "val.txt"), text.subarray(500_000, 503_000));
    const out = path.join(dir, "out");
    const budget = 2e9;
    const r = await compare({
      budgets: [budget],
      data: [path.join(dir, "train.txt")],
      val: [path.join(dir, "val.txt")],
      models: ["byte", "aunet2", "aunet3", "bpe"],
      out,
      seqLen: 32,
      vocabSize: 300,
      seed: 1,
      valBytes: 4000,
      quiet: true,
    });
    assert.deepEqual(
      r.rows.map((x) => x.model),
      ["byte", "aunet2", "aunet3", "bpe"],
    );
    for (const row of r.rows) {
      assert.ok(
        Number.isFinite(row.valBpb) && row.valBpb > 0 && row.valBpb < 12,
        `${row.model} ${row.valBpb}`,
      );
      assert.ok(row.trainFlops <= budget && row.trainFlops > 0.9 * budget, `${row.model} ${row.trainFlops}`);
      assert.ok(row.steps >= 1);
    }
    const aunet2 = r.rows.find((x) => x.model === "aunet2")!;
    assert.ok(aunet2.bytesPerPosition[1] > 2, "words are several bytes long");
    const json = JSON.parse(fs.readFileSync(r.files.json, "utf8")) as { rows: unknown[] };
    assert.equal(json.rows.length, 4);
    assert.match(fs.readFileSync(r.files.markdown, "utf8"), /\| AU-Net 2 \|/);
    assert.match(fs.readFileSync(r.files.svg, "utf8"), /^<svg/);
    assert.equal(
      BpeTokenizer.fromJSON(JSON.parse(fs.readFileSync(path.join(out, "tokenizer.json"), "utf8"))).vocabSize,
      300,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("compare: bad inputs are one-line user errors", async () => {
  assert.throws(() => parseBudgets("1e12,abc"), UserError);
  assert.throws(() => parseBudgets("-5"), UserError);
  assert.deepEqual(parseBudgets("3e12, 1e12,3e12"), [1e12, 3e12]);
  assert.throws(() => parseModels("aunet2,gpt"), UserError);
  await assert.rejects(compareCommand(["--data", CORPUS]), UserError);
  await assert.rejects(compareCommand(["--budget", "1e12"]), UserError);
  await assert.rejects(compareCommand(["--budget", "1e12", "--data", CORPUS, "--vocab", "10"]), UserError);
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "aunet-compare-bad-"));
  try {
    await assert.rejects(
      compareCommand(["--budget", "1e3", "--data", CORPUS, "--models", "byte", "--quiet", "--out", out]),
      /less than one step/,
    );
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
  await assert.rejects(
    compare({
      budgets: [1e9],
      data: ["/no/such/file.txt"],
      models: ["byte"],
      out: os.tmpdir(),
      seqLen: 32,
      vocabSize: 300,
      seed: 1,
      valBytes: 1000,
      quiet: true,
    }),
    UserError,
  );
});
