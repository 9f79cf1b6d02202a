// `aunet compare`: the paper's central experiment in miniature. For each compute budget C and each model kind,
// build the family's shape (shapes.ts), measure its training FLOPs per byte (or per token) on the training data,
// take the learning rate and batch from the paper's laws (laws.ts, clamped for tiny budgets), choose the number
// of steps so that steps x FLOPs per step = C (rounded down), train, and evaluate validation bits per byte.
// AU-Net and the byte transformer train with the project's trainer; the BPE baseline with token-train.ts.
//
// Equal compute is equal FLOPs by the paper's formula, not equal wall time: AU-Net's deep stages run at a
// fraction of the positions, so at equal FLOPs it sees more bytes than the byte transformer.

import fs from "node:fs";
import path from "node:path";
import type { Backend } from "../engine/backend.js";
import { defaultBackend } from "../backends/index.js";
import { UserError } from "../util/errors.js";
import { countParams, type ModelConfig } from "../model/config.js";
import { DataStats, discoverSources, type SourceFile } from "../data/sources.js";
import { isHeldOut, orderedDocs } from "../data/loader.js";
import { packAll, packDocument } from "../data/packing.js";
import type { SplitStrategy } from "../data/splitter.js";
import { writeFileAtomic, writeJsonAtomic } from "../io/atomic.js";
import { flopsPerByte, flopsPerToken, measurePositions } from "../train/flops.js";
import { parseRunConfig, type RunConfig } from "../train/run-config.js";
import { train } from "../train/trainer.js";
import type { ProgressSink } from "../train/progress.js";
import type { StopRequest, StopSignalName } from "../train/signals.js";
import { ChunkCounter, trainBpe, type BpeTokenizer } from "./bpe.js";
import { lawDefaults, type LawDefaults } from "./laws.js";
import { byteFamilyModel, familyShape, headDimFor, type FamilyShape } from "./shapes.js";
import { tokenModelConfig } from "./transformer.js";
import { tokenizeDocs, trainTokenModel, type TokenDocs } from "./token-train.js";
import { compareMarkdown, compareSvg } from "./compare-report.js";

export type BaselineKind = "byte" | "aunet2" | "aunet3" | "bpe";
export const BASELINE_KINDS: readonly BaselineKind[] = ["byte", "aunet2", "aunet3", "bpe"];

// The paper's recipe where it is not a law (spec section 9).
const CLIP = 0.2;
const LR_MIN_RATIO = 0.01;
const WARMUP_FRACTION = 0.05;
// Without --val, this fraction of the training documents is held out (chosen by hash, as the trainer does).
const VAL_FRACTION = 0.01;
// FLOPs per byte are measured on the first this many bytes of training text.
const MEASURE_BYTES = 1 << 20;
const DOC_BYTES = 8192;

export interface CompareOptions {
  budgets: number[];
  data: string[];
  val?: string[];
  models: BaselineKind[];
  out: string;
  /** Bytes per training row of the byte models; the BPE rows hold about as many bytes. */
  seqLen: number;
  vocabSize: number;
  seed: number;
  /** Validation text budget in bytes (whole documents). */
  valBytes: number;
  backend?: Backend;
  sink?: ProgressSink;
  quiet?: boolean;
  /** Ends the comparison after the current step of the current run (the CLI's SIGINT/SIGTERM). */
  stop?: StopRequest;
}

export interface CompareRow {
  budget: number;
  model: BaselineKind;
  shape: string;
  params: number;
  nonEmbeddingParams: number;
  /** Positions per training row (bytes, or tokens for BPE). */
  seqLen: number;
  /** Average bytes per position of each stage (BPE: bytes per token). */
  bytesPerPosition: number[];
  flopsPerByte: number;
  batchRows: number;
  batchBytes: number;
  steps: number;
  warmup: number;
  /** steps x FLOPs per step: the budget rounded down to whole steps. */
  trainFlops: number;
  bytesTrained: number;
  lr: number;
  law: LawDefaults;
  valBpb: number;
  trainSeconds: number;
  wallSeconds: number;
}

export interface CompareResult {
  rows: CompareRow[];
  command: string;
  corpus: { trainBytes: number; valBytes: number; bpeBytesPerToken: number | null };
  files: { json: string; markdown: string; svg: string };
  /** The signal that cut the comparison short (the rows are the runs finished before it). */
  interrupted: StopSignalName | null;
}

interface Texts {
  train: Uint8Array[];
  val: Uint8Array[];
  trainBytes: number;
  valBytes: number;
}

async function readTexts(
  files: SourceFile[],
  valFiles: SourceFile[] | null,
  valBytes: number,
): Promise<Texts> {
  const stats = new DataStats();
  const train: Uint8Array[] = [],
    val: Uint8Array[] = [];
  for await (const d of orderedDocs(files, { docBytes: DOC_BYTES, stats, heldOut: null, maxBytes: 0 }))
    (valFiles === null && isHeldOut(d, VAL_FRACTION) ? val : train).push(d);
  if (valFiles)
    for await (const d of orderedDocs(valFiles, {
      docBytes: DOC_BYTES,
      stats,
      heldOut: null,
      maxBytes: valBytes,
    }))
      val.push(d);
  else {
    // The trainer keeps held-out documents in file order up to the same budget.
    let total = 0;
    const kept = val.filter((d) => (total < valBytes ? ((total += d.length), true) : false));
    val.splice(0, val.length, ...kept);
  }
  if (train.length === 0) throw new UserError("compare: no training text in --data");
  if (val.length === 0) throw new UserError("compare: no validation text (give --val or more --data)");
  const sum = (xs: Uint8Array[]) => xs.reduce((s, x) => s + x.length, 0);
  return { train, val, trainBytes: sum(train), valBytes: sum(val) };
}

/** Level masks of the training rows (the first MEASURE_BYTES of text) for measuring positions per stage. */
async function sampleMasks(texts: Texts, strategy: SplitStrategy, S: number): Promise<Int32Array[]> {
  const docs = [];
  let bytes = 0;
  for (const t of texts.train) {
    if (bytes >= MEASURE_BYTES) break;
    docs.push(packDocument(t, strategy));
    bytes += t.length;
  }
  const rows = (await packAll(docs, S))
    .filter((r) => r.ids.length === S + 1)
    .map((r) => r.mask.subarray(0, S));
  if (rows.length === 0)
    throw new UserError(`compare: the training text is shorter than one row of ${S} bytes`);
  return rows;
}

function shapeText(m: ModelConfig): string {
  return `dims [${m.dimensions}], layers [${m.layers}]`;
}

interface Plan {
  law: LawDefaults;
  rows: number;
  steps: number;
  warmup: number;
  trainFlops: number;
  batchBytes: number;
  bytes: number;
}

function plan(
  budget: number,
  family: "aunet" | "bpe",
  perUnit: number,
  S: number,
  bytesPerUnit: number,
): Plan {
  const law = lawDefaults(family, budget, perUnit);
  const rows = Math.max(1, Math.round(law.batch / S));
  const steps = Math.floor(budget / (perUnit * rows * S));
  if (steps < 1)
    throw new UserError(
      `compare: a budget of ${budget.toExponential(2)} FLOPs is less than one step of one row (${(perUnit * S).toExponential(2)} FLOPs); raise --budget or lower --seq`,
    );
  return {
    law,
    rows,
    steps,
    warmup: Math.max(1, Math.round(WARMUP_FRACTION * steps)),
    trainFlops: steps * rows * S * perUnit,
    batchBytes: rows * S * bytesPerUnit,
    bytes: steps * rows * S * bytesPerUnit,
  };
}

function makeRow(
  budget: number,
  model: BaselineKind,
  m: ModelConfig,
  seqLen: number,
  bytesPerPosition: number[],
  flopsPerByte: number,
  p: Plan,
  trained: { valBpb: number; trainSeconds: number },
): CompareRow {
  const params = countParams(m);
  return {
    budget,
    model,
    shape: shapeText(m),
    params: params.total,
    nonEmbeddingParams: params.nonEmbedding,
    seqLen,
    bytesPerPosition,
    flopsPerByte,
    batchRows: p.rows,
    batchBytes: p.batchBytes,
    steps: p.steps,
    warmup: p.warmup,
    trainFlops: p.trainFlops,
    bytesTrained: p.bytes,
    lr: p.law.lr,
    law: p.law,
    valBpb: trained.valBpb,
    trainSeconds: trained.trainSeconds,
    wallSeconds: 0,
  };
}

function runConfig(
  kind: Exclude<BaselineKind, "bpe">,
  shape: FamilyShape,
  o: CompareOptions,
  p: { steps: number; rows: number; lr: number; warmup: number },
): RunConfig {
  const { model, strategy } = byteFamilyModel(kind, shape, o.seqLen, o.seed);
  return parseRunConfig({
    name: kind,
    seed: o.seed,
    steps: p.steps,
    grad_acc_steps: 1,
    optim: {
      lr: p.lr,
      weight_decay: 0.1,
      epsilon: 1e-8,
      beta1: 0.9,
      beta2: 0.95,
      clip: CLIP,
      scheduler: "cosine",
      warmup: p.warmup,
      lr_min_ratio: LR_MIN_RATIO,
    },
    model,
    data: {
      batch_size: p.rows,
      seq_len: o.seqLen,
      regex: { strategy },
      doc_bytes: DOC_BYTES,
      shuffle_window: 1024,
    },
    checkpoint: { dump: { every: p.steps, keep: 1 } },
    logging: { freq: 100 },
    validation: { every: 0, max_bytes: o.valBytes, fraction: VAL_FRACTION },
  });
}

function budgetTag(c: number): string {
  return c.toExponential(1).replace("+", "");
}

export async function compare(o: CompareOptions, command = ""): Promise<CompareResult> {
  if (o.budgets.length === 0) throw new UserError("compare: give at least one --budget");
  if (o.models.length === 0) throw new UserError("compare: give at least one model in --models");
  const backend = o.backend ?? defaultBackend();
  const say = (s: string) => {
    if (!o.quiet) (o.sink ?? process.stderr).write(s + "\n");
  };
  const stats = new DataStats();
  const files = discoverSources(o.data, stats, "--data");
  const valFiles = o.val && o.val.length > 0 ? discoverSources(o.val, stats, "--val") : null;
  const texts = await readTexts(files, valFiles, o.valBytes);
  say(`compare: ${texts.trainBytes} bytes of training text, ${texts.valBytes} bytes of validation text`);
  fs.mkdirSync(o.out, { recursive: true });

  let tok: BpeTokenizer | null = null;
  let bpeTrain: TokenDocs | null = null,
    bpeVal: TokenDocs | null = null;
  if (o.models.includes("bpe")) {
    const counter = new ChunkCounter();
    for (const t of texts.train) counter.add(t);
    tok = trainBpe(counter.counts, { vocabSize: o.vocabSize });
    writeJsonAtomic(path.join(o.out, "tokenizer.json"), tok.toJSON());
    bpeTrain = tokenizeDocs(tok, texts.train);
    bpeVal = tokenizeDocs(tok, texts.val);
    say(
      `compare: BPE tokenizer with ${tok.vocabSize} ids, ${(bpeTrain.bytes / bpeTrain.tokens).toFixed(3)} bytes per token on the training text`,
    );
  }

  const rows: CompareRow[] = [];
  runs: for (const budget of o.budgets) {
    const shape = familyShape(budget);
    for (const kind of o.models) {
      const t0 = performance.now();
      const runDir = path.join(o.out, "runs", `${kind}-${budgetTag(budget)}`);
      let row: CompareRow;
      if (kind === "bpe") {
        const bpt = bpeTrain!.bytes / bpeTrain!.tokens;
        const S = Math.max(8, Math.round(o.seqLen / bpt));
        const m = tokenModelConfig({
          dim: shape.dim,
          layers: shape.layers,
          headDim: headDimFor(shape.dim),
          seqLen: S,
          vocabSize: tok!.vocabSize,
          seed: o.seed,
        });
        const fpt = flopsPerToken(m, S);
        const p = plan(budget, "bpe", fpt, S, bpt);
        say(
          `\n== ${kind} @ ${budget.toExponential(2)} FLOPs: ${shapeText(m)}, vocab ${tok!.vocabSize}, ${p.steps} steps of ${p.rows}x${S} tokens, lr ${p.law.lr.toPrecision(3)}`,
        );
        const r = await trainTokenModel({
          config: m,
          train: bpeTrain!,
          val: bpeVal!,
          batchRows: p.rows,
          steps: p.steps,
          lr: p.law.lr,
          warmup: p.warmup,
          lrMinRatio: LR_MIN_RATIO,
          clip: CLIP,
          seed: o.seed,
          backend,
          sink: o.sink,
          quiet: o.quiet,
          stop: o.stop,
        });
        row = makeRow(budget, kind, m, S, [bpt], fpt / bpt, p, r);
      } else {
        const S = o.seqLen;
        const probe = runConfig(kind, shape, o, { steps: 1, rows: 1, lr: 1e-3, warmup: 1 });
        const m = probe.aunet.model;
        const measured = measurePositions(m, await sampleMasks(texts, probe.aunet.strategy, S), S);
        const fpb = flopsPerByte(m, measured.positions, measured.rows);
        const p = plan(budget, "aunet", fpb, S, 1);
        const cfg = runConfig(kind, shape, o, {
          steps: p.steps,
          rows: p.rows,
          lr: p.law.lr,
          warmup: p.warmup,
        });
        say(
          `\n== ${kind} @ ${budget.toExponential(2)} FLOPs: ${shapeText(m)}, ${p.steps} steps of ${p.rows}x${S} bytes, lr ${p.law.lr.toPrecision(3)}`,
        );
        fs.rmSync(runDir, { recursive: true, force: true });
        const s = await train({
          config: cfg,
          data: o.data,
          val: o.val,
          out: runDir,
          backend,
          sink: o.sink,
          quiet: o.quiet,
          stop: o.stop,
        });
        const bytesPerPosition = measured.positions.map((x) => measured.positions[0] / x);
        row = makeRow(budget, kind, m, S, bytesPerPosition, fpb, p, {
          valBpb: s.finalVal?.bitsPerByte ?? NaN,
          trainSeconds: s.trainSeconds,
        });
      }
      if (o.stop?.requested) {
        say(
          `compare: stopped by ${o.stop.received} during ${kind} @ ${budget.toExponential(2)} FLOPs; the results hold the runs finished before it`,
        );
        break runs;
      }
      row.wallSeconds = (performance.now() - t0) / 1000;
      say(`${kind} @ ${budget.toExponential(2)}: validation ${row.valBpb.toFixed(4)} bits/byte`);
      rows.push(row);
    }
  }

  const result: CompareResult = {
    rows,
    command,
    corpus: {
      trainBytes: texts.trainBytes,
      valBytes: texts.valBytes,
      bpeBytesPerToken: bpeTrain ? bpeTrain.bytes / bpeTrain.tokens : null,
    },
    files: {
      json: path.join(o.out, "compare.json"),
      markdown: path.join(o.out, "compare.md"),
      svg: path.join(o.out, "compare.svg"),
    },
    interrupted: o.stop?.received ?? null,
  };
  writeJsonAtomic(result.files.json, {
    ...result,
    backend: backend.name,
    options: { ...o, backend: undefined, sink: undefined },
  });
  if (rows.length > 0) {
    writeFileAtomic(result.files.markdown, compareMarkdown(result));
    writeFileAtomic(result.files.svg, compareSvg(result.rows));
  }
  return result;
}
