// Training: schedule and optimiser semantics, exact resume, checkpoint atomicity (including kill -9 mid-save),
// config-mismatch refusal, presets, FLOPs accounting and the train/eval CLI end to end.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { RefBackend } from "../src/backends/ref.js";
import { Tensor } from "../src/engine/tensor.js";
import { countParams, parseConfig } from "../src/model/config.js";
import { UserError } from "../src/util/errors.js";
import { lrAt, lrFactor, type ScheduleConfig } from "../src/train/schedule.js";
import { AdamW, clipScale } from "../src/train/optimizer.js";
import {
  applyOverrides,
  loadRawConfig,
  parseRunConfig,
  presetNames,
  toParamsJson,
} from "../src/train/run-config.js";
import {
  listCheckpoints,
  loadCheckpoint,
  loadLatest,
  resolveCheckpointDir,
  saveCheckpoint,
} from "../src/train/checkpoint.js";
import { train, type TrainOptions, type TrainSummary } from "../src/train/trainer.js";
import { flopsPerByte, weightsPerPosition } from "../src/train/flops.js";
import { readSafetensors } from "../src/io/safetensors.js";
import { niceTicks, renderChart } from "../src/train/plot.js";
import { trainCommand } from "../src/cli/train.js";
import { evalCommand } from "../src/cli/eval.js";
import { FIXTURES, hasFixtures } from "./helpers.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
const MOBY = path.join(ROOT, "corpus", "moby-dick.txt");

const tmpdirs: string[] = [];
test.after(() => {
  for (const d of tmpdirs) fs.rmSync(d, { recursive: true, force: true });
});

function tmpdir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "aunet-train-"));
  tmpdirs.push(d);
  return d;
}

/** A small slice of the shipped corpus, so that the tests train on real English but stay fast. */
function smallCorpus(dir: string, bytes = 24000): { train: string; val: string } {
  const text = fs.readFileSync(MOBY, "utf8");
  const trainPath = path.join(dir, "train.txt");
  const valPath = path.join(dir, "val.txt");
  fs.writeFileSync(trainPath, text.slice(0, bytes));
  fs.writeFileSync(valPath, text.slice(bytes, bytes + 3000));
  return { train: trainPath, val: valPath };
}

const quiet = { quiet: true } as const;

test("schedule: lingua's cosine with LambdaLR semantics (first update at lr 0)", () => {
  const c: ScheduleConfig = {
    scheduler: "cosine",
    warmup: 10,
    steps: 100,
    lrMinRatio: 0.01,
    cycleLength: 1,
    cosineTheta: 1,
  };
  // Values printed by lingua/optim.py lr_cosine(step, 10, 100, 1.0, 1.0, 0.01).
  const official: [number, number][] = [
    [0, 0.0],
    [1, 0.1],
    [5, 0.5],
    [9, 0.9],
    [10, 1.0],
    [11, 0.9996984593744525],
    [30, 0.884191999343894],
    [55, 0.505],
    [99, 0.010301540625547598],
    [100, 1.0], // lingua's sign flip at exactly n_steps; never used for an update
    [101, 0.01],
    [150, 0.01],
  ];
  for (const [s, want] of official)
    assert.ok(Math.abs(lrFactor(s, c) - want) < 1e-12, `step ${s}: ${lrFactor(s, c)} vs ${want}`);
  assert.equal(lrAt(1, 2e-3, c), 0);
  assert.equal(lrAt(11, 2e-3, c), 2e-3);
  assert.ok(Math.abs(lrAt(100, 1, c) - 0.010301540625547598) < 1e-12);
  assert.equal(lrFactor(3, { ...c, scheduler: "constant" }), 1);
  assert.ok(Math.abs(lrFactor(55, { ...c, scheduler: "linear" }) - (0.5 * 0.01 + 0.5)) < 1e-12);
  // warmup == steps must not divide by zero.
  assert.ok(Number.isFinite(lrFactor(10, { ...c, warmup: 10, steps: 10 })));
});

test("clipping: clip_grad_norm_'s factor, and AdamW matches torch's update on clipped gradients", () => {
  assert.equal(clipScale(0.5, 1), 1);
  assert.ok(Math.abs(clipScale(4, 1) - 1 / (4 + 1e-6)) < 1e-15);
  assert.equal(clipScale(100, 0), 1);
  const be = new RefBackend();
  const w0 = [0.5, -1, 2, 0.25, -0.75, 1.5];
  const p = Tensor.from(be, w0, [2, 3], true);
  const params = new Map([["w", p]]);
  const opt = new AdamW(params, be, { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clip: 0.2 });
  const grads = [
    [3, -4, 0, 1, 2, -2],
    [0.1, 0.2, -0.3, 0.4, -0.5, 0.6],
    [-1, 1, -1, 1, -1, 1],
  ];
  // torch.optim.AdamW in float64 (decoupled decay; bias-corrected step size; eps outside the sqrt).
  const w = w0.slice(),
    m = new Array(6).fill(0),
    v = new Array(6).fill(0);
  const lrs = [1e-2, 5e-3, 2e-3];
  for (let t = 1; t <= 3; t++) {
    be.write(p.ensureGrad().storage, Float32Array.from(grads[t - 1]), 0);
    const update = opt.update(lrs[t - 1]);
    const norm = update.gradNorm.item();
    const want = Math.hypot(...Float32Array.from(grads[t - 1]));
    assert.ok(Math.abs(norm - want) < 1e-6 * want);
    const scale = update.clipScale.item();
    assert.ok(Math.abs(scale - clipScale(norm, 0.2)) < 1e-6 * scale, `clip scale ${scale}`);
    const lr = lrs[t - 1];
    for (let i = 0; i < 6; i++) {
      const g = Math.fround(grads[t - 1][i]) * scale;
      w[i] *= 1 - lr * 0.1;
      m[i] = 0.9 * m[i] + 0.1 * g;
      v[i] = 0.95 * v[i] + 0.05 * g * g;
      const denom = Math.sqrt(v[i]) / Math.sqrt(1 - 0.95 ** t) + 1e-8;
      w[i] -= (lr / (1 - 0.9 ** t)) * (m[i] / denom);
    }
    const got = p.toFloat32();
    for (let i = 0; i < 6; i++)
      assert.ok(Math.abs(got[i] - w[i]) < 1e-6, `step ${t} w[${i}] ${got[i]} vs ${w[i]}`);
  }
  assert.equal(opt.step, 3);
});

test("presets: all parse; the paper configs have the official parameter counts", () => {
  const names = presetNames();
  for (const n of ["tiny", "mini", "small", "base", "aunet2-1b", "aunet3-2b"])
    assert.ok(names.includes(n), `preset ${n}`);
  for (const n of names) parseRunConfig(loadRawConfig(n));
  const one = parseRunConfig(loadRawConfig("aunet2-1b"));
  // apps/aunet/configs/2B_1level.yaml, counted by the official model.
  assert.equal(countParams(one.aunet.model).total, 1_324_203_008);
  assert.deepEqual(one.aunet.model.max_seqlens, [8192, 3200]);
  assert.deepEqual(one.aunet.strategyRaw, { word1: "1@1" });
  assert.equal(one.optim.clip, 0.2);
  const two = parseRunConfig(loadRawConfig("aunet3-2b"));
  // 2B_2level.yaml: 3 x 2 layers at 512, 6 x 2 at 2048, 12 at 3456, two transitions, embeddings.
  assert.equal(countParams(two.aunet.model).total, 2_503_624_064);
  assert.deepEqual(two.aunet.model.max_seqlens, [8192, 1600, 928]);
  assert.throws(() => loadRawConfig("no-such-preset"), /unknown preset 'no-such-preset'/);
});

test("config overrides: --seq rescales the pooled caps, --seed seeds data and init", () => {
  const raw = applyOverrides(loadRawConfig("small"), { seq: 512, seed: 9, lr: 1e-3 });
  const c = parseRunConfig(raw);
  assert.deepEqual(c.aunet.model.max_seqlens, [512, 192]);
  assert.equal(c.seed, 9);
  assert.equal(c.aunet.model.seed, 9);
  assert.equal(c.optim.lr, 1e-3);
  // params.json keeps the official layout: model + data sections that parse back to the same config.
  const back = parseConfig(toParamsJson(c));
  assert.deepEqual(back.model, c.aunet.model);
  assert.equal(back.seqLen, 512);
  assert.throws(() => parseRunConfig({ ...loadRawConfig("tiny"), optim: { beta2: 1.5 } }), /optim.beta2/);
});

function tinyOptions(dir: string, over: Partial<TrainOptions> = {}): TrainOptions {
  const corpus = smallCorpus(dir);
  const raw = applyOverrides(loadRawConfig("tiny"), {
    steps: 10,
    gradAcc: 2,
    ckptEvery: 3,
    keep: 2,
    valEvery: 4,
  });
  return {
    config: parseRunConfig(raw),
    data: [corpus.train],
    out: path.join(dir, "run"),
    backend: new RefBackend(),
    ...quiet,
    ...over,
  };
}

function fileBytes(p: string): Buffer {
  return fs.readFileSync(p);
}

test("resume: N steps straight == N/2 + resume + N/2, bit for bit (weights and optimizer state)", async () => {
  const dir = tmpdir();
  const straight = await train(tinyOptions(dir, { out: path.join(dir, "straight") }));
  assert.equal(straight.step, 10);
  const half = await train(tinyOptions(dir, { out: path.join(dir, "halves"), stopAfter: 5 }));
  assert.equal(half.step, 5);
  assert.equal(half.stoppedBy, "stop-after");
  const rest = await train(tinyOptions(dir, { out: path.join(dir, "halves"), resume: true }));
  assert.equal(rest.step, 10);
  const a = path.join(dir, "straight", "checkpoints", "step_00000010");
  const b = path.join(dir, "halves", "checkpoints", "step_00000010");
  assert.ok(
    fileBytes(path.join(a, "model.safetensors")).equals(fileBytes(path.join(b, "model.safetensors"))),
    "weights differ",
  );
  assert.ok(
    fileBytes(path.join(a, "optim.safetensors")).equals(fileBytes(path.join(b, "optim.safetensors"))),
    "moments differ",
  );
  const sa = JSON.parse(fs.readFileSync(path.join(a, "state.json"), "utf8"));
  const sb = JSON.parse(fs.readFileSync(path.join(b, "state.json"), "utf8"));
  assert.deepEqual(sa.data, sb.data);
  // The training losses logged after the resume are the straight run's.
  const losses = (run: string) =>
    fs
      .readFileSync(path.join(dir, run, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l))
      .filter((r) => r.kind === "train")
      .map((r) => [r.step, r.loss]);
  assert.deepEqual(losses("halves"), losses("straight"));
  // keep = 2: only the last two checkpoints remain.
  assert.deepEqual(
    listCheckpoints(path.join(dir, "straight")).map((c) => c.step),
    [9, 10],
  );
  assert.ok(fs.readFileSync(path.join(dir, "straight", "curve.svg"), "utf8").startsWith("<svg"));
  assert.ok(straight.val.length >= 3, "validation ran at the start, periodically and at the end");
  assert.ok(straight.val[straight.val.length - 1].bpb < straight.val[0].bpb, "validation bpb did not fall");
});

test("resume: refuses a different model config, different data, and an existing run without --resume", async () => {
  const dir = tmpdir();
  const opts = tinyOptions(dir, { stopAfter: 2 });
  await train(opts);
  await assert.rejects(() => train({ ...opts, stopAfter: 3 }), /already holds checkpoints.*--resume/);
  const other = parseRunConfig(applyOverrides(loadRawConfig("tiny"), { seq: 32 }));
  await assert.rejects(
    () => train({ ...opts, config: other, resume: true }),
    (e: unknown) =>
      e instanceof UserError && /different model config/.test(e.message) && /seq_len/.test(e.message),
  );
  const wider = loadRawConfig("tiny");
  (wider.model as Record<string, unknown>).dimensions = [32, 96];
  await assert.rejects(
    () => train({ ...opts, config: parseRunConfig(wider), resume: true }),
    /model\.dimensions/,
  );
  const otherData = path.join(dir, "other.txt");
  fs.writeFileSync(otherData, "something else entirely\n\nand more");
  await assert.rejects(() => train({ ...opts, data: [otherData], resume: true }), /training data differs/);
  const reseeded = parseRunConfig(
    applyOverrides(loadRawConfig("tiny"), {
      steps: 10,
      gradAcc: 2,
      ckptEvery: 3,
      keep: 2,
      valEvery: 4,
      seed: 8,
    }),
  );
  await assert.rejects(
    () => train({ ...opts, config: reseeded, resume: true }),
    /--resume continues .* as it was configured; refusing to change seed: checkpoint has 7, this run asks for 8/,
  );
  // The matching config resumes fine.
  const r = await train({ ...opts, stopAfter: 4, resume: true });
  assert.equal(r.step, 4);
});

test("checkpoints: leftover temp directories and a damaged latest never break loading", async () => {
  const dir = tmpdir();
  const opts = tinyOptions(dir, { stopAfter: 6 });
  await train(opts);
  const root = path.join(opts.out, "checkpoints");
  // A save killed half-way leaves a hidden temp directory with a partial file: it is not a checkpoint.
  const tmp = path.join(root, ".tmp-step_00000099-1-dead");
  fs.mkdirSync(tmp);
  fs.writeFileSync(path.join(tmp, "model.safetensors"), "garbage");
  assert.deepEqual(
    listCheckpoints(opts.out).map((c) => c.step),
    [3, 6],
  );
  assert.equal(resolveCheckpointDir(opts.out), path.join(root, "step_00000006"));
  // A latest checkpoint damaged after the fact (disk trouble): resume falls back to the previous one.
  fs.writeFileSync(path.join(root, "step_00000006", "model.safetensors"), "truncated");
  const notes: string[] = [];
  const latest = loadLatest(opts.out, (s) => notes.push(s));
  assert.equal(latest?.state?.step, 3);
  assert.match(notes[0], /skipping damaged checkpoint .*step_00000006/);
  const r = await train({ ...opts, stopAfter: 7, resume: true });
  assert.equal(r.step, 7);
  assert.ok(!fs.existsSync(tmp), "the next save cleans up stale temp directories");
});

test("checkpoints: kill -9 during saves always leaves a loadable latest checkpoint", async () => {
  const dir = tmpdir();
  const modUrl = new URL("../src/train/checkpoint.js", import.meta.url).href;
  const script = path.join(dir, "saver.mjs");
  // A child that saves ~16 MB checkpoints in a loop until killed.
  fs.writeFileSync(
    script,
    `import { saveCheckpoint } from ${JSON.stringify(modUrl)};
const n = 1 << 21;
const params = JSON.parse(process.argv[3]);
for (let step = Number(process.argv[4]); ; step++) {
  const w = new Float32Array(n).fill(step);
  const shapes = new Map([["tok_embeddings.weight", [n]]]);
  const weights = new Map([["tok_embeddings.weight", w]]);
  saveCheckpoint(process.argv[2], { step, shapes, weights, m: weights, v: weights, params,
    state: { version: 1, step, data: null, sources: [], rng: { seed: 0, derivation: "" }, metrics: {} } }, 2);
  if (step === Number(process.argv[4])) process.stdout.write("saved\\n");
}
`,
  );
  const params = { model: { dimensions: [8], layers: [0], head_dims: [8] }, data: { seq_len: 8 } };
  const run = path.join(dir, "run");
  let start = 1;
  for (let round = 0; round < 4; round++) {
    const child = spawn(process.execPath, [script, run, JSON.stringify(params), String(start)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    await new Promise<void>((res) => child.stdout!.once("data", () => res()));
    await new Promise((res) => setTimeout(res, 40 + 70 * round));
    child.kill("SIGKILL");
    await new Promise((res) => child.once("exit", res));
    const all = listCheckpoints(run);
    assert.ok(all.length >= 1);
    const latest = all[all.length - 1];
    // Every visible checkpoint is complete: all four files, each parses, contents match the step.
    for (const c of all) {
      for (const f of ["model.safetensors", "optim.safetensors", "params.json", "state.json"])
        assert.ok(fs.existsSync(path.join(c.dir, f)), `${c.dir} lacks ${f}`);
      const state = JSON.parse(fs.readFileSync(path.join(c.dir, "state.json"), "utf8"));
      assert.equal(state.step, c.step);
    }
    const w = readSafetensors(path.join(latest.dir, "model.safetensors")).getFloat32("tok_embeddings.weight");
    assert.equal(w[w.length - 1], latest.step);
    start = latest.step + 1;
  }
});

test("flops: per-byte model FLOPs follow spec section 9 (6N + 6 d L S per position, over bytes per position)", () => {
  const one = parseConfig({
    model: { dimensions: [64], layers: [2], head_dims: [32], max_seqlens: [128] },
    data: { seq_len: 128 },
  });
  const N = weightsPerPosition(one.model);
  // A plain transformer: per byte 6 N + 6 d L S with N = layers + vocab head.
  const want = 6 * N[0] + 6 * 64 * 2 * 128;
  assert.ok(Math.abs(flopsPerByte(one.model, [4 * 128], 4) - want) < 1e-6);
  const nonEmb = countParams(one.model).nonEmbedding;
  assert.equal(N[0], nonEmb - 64 + 258 * 64 + 64); // all weights but the embedding lookup
  const two = parseRunConfig(loadRawConfig("small")).aunet.model;
  const fewer = flopsPerByte(two, [1024, 100], 8);
  const more = flopsPerByte(two, [1024, 300], 8);
  assert.ok(more > fewer, "more pooled positions per byte cost more");
});

test("plot: nice ticks and a well-formed SVG", () => {
  assert.deepEqual(niceTicks(0, 8.2), [0, 2, 4, 6, 8]);
  assert.deepEqual(niceTicks(3.1, 3.55, 5), [3.1, 3.2, 3.3, 3.4, 3.5]);
  const svg = renderChart(
    [
      {
        name: "a <b>",
        points: [
          [0, 8],
          [1, 4],
          [2, 3],
        ],
        color: "#000",
      },
    ],
    { title: "t & t", xLabel: "x", yLabel: "y" },
  );
  assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /<polyline points="/);
  assert.match(svg, /a &lt;b&gt;/);
  assert.match(svg, /t &amp; t/);
  assert.match(svg.trim(), /<\/svg>$/);
});

test("CLI: aunet train then aunet eval, in-process", async () => {
  const dir = tmpdir();
  const corpus = smallCorpus(dir);
  const out = path.join(dir, "run");
  const code = await trainCommand(
    [
      "--config",
      "tiny",
      "--data",
      corpus.train,
      "--val",
      corpus.val,
      "--out",
      out,
      "--steps",
      "6",
      "--batch",
      "2",
      "--seq",
      "48",
      "--seed",
      "3",
    ],
    quiet,
  );
  assert.equal(code, 0);
  const params = JSON.parse(
    fs.readFileSync(path.join(out, "checkpoints", "step_00000006", "params.json"), "utf8"),
  );
  assert.deepEqual(params.model.max_seqlens, [48, 18]);
  assert.equal(params.data.seq_len, 48);
  assert.deepEqual(params.data.regex.strategy, { word1: "1@1" });
  const metrics = fs
    .readFileSync(path.join(out, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  const t = metrics.find((r) => r.kind === "train");
  for (const k of [
    "step",
    "loss",
    "bpb",
    "lr",
    "grad_norm",
    "bytes_per_s",
    "mfu",
    "flops_per_byte",
    "positions",
  ])
    assert.ok(k in t, `metrics lack ${k}`);
  assert.equal(t.positions[0], 2 * 48);
  assert.ok(t.positions[1] > 0 && t.positions[1] <= 2 * 18);

  let text = "";
  const sink = { write: (s: string) => (text += s) };
  assert.equal(await evalCommand(["--ckpt", out, "--data", corpus.val, "--json"], sink), 0);
  const r = JSON.parse(text);
  assert.equal(r.step, 6);
  // Every byte of the file except the blank runs between plain-text documents is evaluated.
  const size = fs.statSync(corpus.val).size;
  assert.ok(r.bytes > 0.95 * size && r.bytes <= size, `${r.bytes} of ${size} bytes evaluated`);
  assert.ok(r.bitsPerByte > 0 && r.bitsPerByte < 9, `bpb ${r.bitsPerByte}`);
  assert.ok(Math.abs(r.natsPerByte - r.bitsPerByte * Math.LN2) < 1e-9);
  text = "";
  assert.equal(await evalCommand(["--ckpt", out, "--data", corpus.val], sink), 0);
  assert.match(text, /bits per byte +\d+\.\d{4}/);
  assert.match(text, /nats per char +\d+\.\d{4}/);

  await assert.rejects(
    () =>
      trainCommand(
        ["--config", "tiny", "--data", path.join(dir, "missing.txt"), "--out", path.join(dir, "r2")],
        quiet,
      ),
    /missing\.txt: no such file/,
  );
  await assert.rejects(
    () => trainCommand(["--config", "tiny", "--data", corpus.train, "--out", out, "--lr", "-1"], quiet),
    /--lr must be a number > 0/,
  );
  await assert.rejects(
    () => evalCommand(["--ckpt", path.join(dir, "nothing"), "--data", corpus.val], sink),
    /no such checkpoint/,
  );
});

test("eval: a shared fixture directory loads as a checkpoint", { skip: !hasFixtures }, async () => {
  const fx = path.join(FIXTURES, "2stage_word_english");
  let text = "";
  const code = await evalCommand(
    ["--ckpt", fx, "--data", path.join(fx, "text.txt"), "--json", "--max-bytes", "600"],
    {
      write: (s: string) => (text += s),
    },
  );
  assert.equal(code, 0);
  const r = JSON.parse(text);
  assert.equal(r.step, null);
  assert.equal(r.seqLen, 256);
  assert.ok(Number.isFinite(r.bitsPerByte));
});

test(
  "train --init: any model directory (a shared fixture) seeds the weights; its params.json is a config",
  { skip: !hasFixtures },
  async () => {
    const fx = path.join(FIXTURES, "2stage_word_english");
    const dir = tmpdir();
    const out = path.join(dir, "run");
    let summary: TrainSummary | undefined;
    const argv = [
      "--config",
      path.join(fx, "params.json"),
      "--init",
      fx,
      "--data",
      path.join(fx, "text.txt"),
      "--out",
      out,
    ];
    await trainCommand([...argv, "--steps", "1", "--warmup", "0", "--val-fraction", "0"], {
      ...quiet,
      onSummary: (s) => (summary = s),
    });
    assert.equal(summary?.step, 1);
    // Step 1 with warmup 0 runs at the full learning rate, so the weights moved away from the fixture's.
    const before = readSafetensors(path.join(fx, "model.safetensors")).getFloat32("vocab.weight");
    const after = readSafetensors(
      path.join(out, "checkpoints", "step_00000001", "model.safetensors"),
    ).getFloat32("vocab.weight");
    assert.equal(after.length, before.length);
    assert.ok(after.some((x, i) => x !== before[i]));
    const wrong = path.join(dir, "wrong.json");
    const raw = JSON.parse(fs.readFileSync(path.join(fx, "params.json"), "utf8"));
    raw.model.layers = [1, 2];
    fs.writeFileSync(wrong, JSON.stringify(raw));
    await assert.rejects(
      () =>
        trainCommand(
          [
            "--config",
            wrong,
            "--init",
            fx,
            "--data",
            path.join(fx, "text.txt"),
            "--out",
            path.join(dir, "r2"),
          ],
          quiet,
        ),
      /--init .* different model config/,
    );
  },
);

test("checkpoint: saveCheckpoint replaces a checkpoint of the same step atomically", () => {
  const dir = tmpdir();
  const shapes = new Map([["w", [2]]]);
  const payload = (x: number) => ({
    step: 5,
    shapes,
    weights: new Map([["w", Float32Array.of(x, x)]]),
    m: new Map([["w", Float32Array.of(0, 0)]]),
    v: new Map([["w", Float32Array.of(0, 0)]]),
    params: {},
    state: {
      version: 1 as const,
      step: 5,
      data: null,
      sources: [],
      rng: { seed: 0, derivation: "" },
      metrics: {},
    },
  });
  saveCheckpoint(dir, payload(1), 3);
  saveCheckpoint(dir, payload(2), 3);
  const all = listCheckpoints(dir);
  assert.equal(all.length, 1);
  assert.deepEqual(fs.readdirSync(path.join(dir, "checkpoints")), ["step_00000005"]);
  assert.throws(() => loadCheckpoint(all[0].dir), /params.json/); // no model config in this synthetic one
});
