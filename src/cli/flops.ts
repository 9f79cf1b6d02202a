// `aunet flops`: parameters and training FLOPs per byte of a config (spec section 9), with the bytes per
// position of every stage measured on a corpus, and the same for a BPE transformer with the config's trunk
// shape, whose bytes per token are measured with a BPE tokenizer (trained on the corpus, or given).

import fs from "node:fs";
import path from "node:path";
import { UserError } from "../util/errors.js";
import { list, num, parseFlags, str } from "./flags.js";
import { countParams, numStages } from "../model/config.js";
import {
  applyOverrides,
  loadRawConfig,
  packageRoot,
  parseRunConfig,
  presetNames,
} from "../train/run-config.js";
import { flopsPerByte, flopsPerToken, measurePositions, weightsPerPosition } from "../train/flops.js";
import { DataStats, discoverSources } from "../data/sources.js";
import { orderedDocs } from "../data/loader.js";
import { packAll, packDocument } from "../data/packing.js";
import { BpeTokenizer, ChunkCounter, FIRST_MERGE_ID, trainBpe } from "../baselines/bpe.js";
import { tokenModelConfig } from "../baselines/transformer.js";
import { readJsonFile } from "../io/model-dir.js";

export const FLOPS_HELP = `usage: aunet flops --config <preset|file.json> [options]

Prints parameters (with and without embeddings) and training FLOPs per byte: per stage 6 N_i + 6 d_i L_i S_i
(S_i the attention context, bounded by a sliding window) divided by k_i, the average bytes per stage-i position
measured on the corpus. Also a BPE transformer with the trunk's width and depth: FLOPs per token, and per byte
with its bytes per token measured by a BPE tokenizer.

options:
  --config C        a preset (${presetNames().join(", ")}) or a config file (official params.json layout)
  --seq N           bytes per row (rescales the pooled caps)
  --data P...       corpus for the measurements (default: the shipped corpus/moby-dick.txt)
  --max-bytes N     measure on at most N bytes of it (default 4000000)
  --vocab V         BPE vocabulary trained on the corpus (default 4096)
  --tokenizer F     use this tokenizer.json (from 'aunet compare') instead of training one
  --json            machine-readable output
  -h, --help        show this text
`;

const SPEC = {
  config: { kind: "string" },
  seq: { kind: "string" },
  data: { kind: "list" },
  "max-bytes": { kind: "string" },
  vocab: { kind: "string" },
  tokenizer: { kind: "string" },
  json: { kind: "bool" },
  help: { kind: "bool" },
} as const;

export interface FlopsReport {
  config: string;
  seqLen: number;
  params: number;
  nonEmbeddingParams: number;
  stages: { stage: number; positions: number; bytesPerPosition: number; weightsPerPosition: number }[];
  flopsPerByte: number;
  bpe: {
    vocabSize: number;
    bytesPerToken: number;
    seqLen: number;
    params: number;
    nonEmbeddingParams: number;
    flopsPerToken: number;
    flopsPerByte: number;
  };
  corpusBytes: number;
}

export async function flopsReport(o: {
  config: string;
  seq?: number;
  data: string[];
  maxBytes: number;
  vocab: number;
  tokenizer?: string;
}): Promise<FlopsReport> {
  const cfg = parseRunConfig(applyOverrides(loadRawConfig(o.config), { seq: o.seq }));
  const m = cfg.aunet.model;
  const S = cfg.aunet.seqLen;
  const stats = new DataStats();
  const files = discoverSources(o.data, stats, "--data");
  const texts: Uint8Array[] = [];
  let corpusBytes = 0;
  for await (const d of orderedDocs(files, {
    docBytes: cfg.docBytes,
    stats,
    heldOut: null,
    maxBytes: o.maxBytes,
  })) {
    texts.push(d);
    corpusBytes += d.length;
  }
  const rows = (
    await packAll(
      texts.map((t) => packDocument(t, cfg.aunet.strategy)),
      S,
    )
  )
    .filter((r) => r.ids.length === S + 1)
    .map((r) => r.mask.subarray(0, S));
  if (rows.length === 0) throw new UserError(`flops: the corpus is shorter than one row of ${S} bytes`);
  const measured = measurePositions(m, rows, S);
  const N = weightsPerPosition(m);

  let tok: BpeTokenizer;
  if (o.tokenizer) tok = BpeTokenizer.fromJSON(readJsonFile(o.tokenizer), o.tokenizer);
  else {
    const counter = new ChunkCounter();
    for (const t of texts) counter.add(t);
    tok = trainBpe(counter.counts, { vocabSize: o.vocab });
  }
  const tokens = texts.reduce((s, t) => s + tok.encode(t).length, 0);
  const bytesPerToken = corpusBytes / tokens;
  const last = numStages(m) - 1;
  const bpeS = Math.max(8, Math.round(S / bytesPerToken));
  const bm = tokenModelConfig({
    dim: m.dimensions[last],
    layers: m.layers[last],
    headDim: m.head_dims[last],
    seqLen: bpeS,
    vocabSize: tok.vocabSize,
    seed: m.seed,
    ropeTheta: m.block.rope_theta,
    multipleOf: m.block.multiple_of,
  });
  const fpt = flopsPerToken(bm, bpeS);
  const p = countParams(m),
    bp = countParams(bm);
  return {
    config: o.config,
    seqLen: S,
    params: p.total,
    nonEmbeddingParams: p.nonEmbedding,
    stages: measured.positions.map((pos, i) => ({
      stage: i,
      positions: pos,
      bytesPerPosition: measured.positions[0] / pos,
      weightsPerPosition: N[i],
    })),
    flopsPerByte: flopsPerByte(m, measured.positions, measured.rows),
    bpe: {
      vocabSize: tok.vocabSize,
      bytesPerToken,
      seqLen: bpeS,
      params: bp.total,
      nonEmbeddingParams: bp.nonEmbedding,
      flopsPerToken: fpt,
      flopsPerByte: fpt / bytesPerToken,
    },
    corpusBytes,
  };
}

function fmt(x: number): string {
  return x >= 1e4 ? x.toExponential(3) : x.toPrecision(4);
}

export async function flopsCommand(argv: string[]): Promise<number> {
  const f = parseFlags("aunet flops", argv, SPEC);
  if (f.has("help")) {
    process.stdout.write(FLOPS_HELP);
    return 0;
  }
  const config = str(f, "config");
  if (!config) throw new UserError("aunet flops: --config <preset|file.json> is required");
  const tokenizer = str(f, "tokenizer");
  if (tokenizer && !fs.existsSync(tokenizer)) throw new UserError(`--tokenizer: no such file ${tokenizer}`);
  const r = await flopsReport({
    config,
    seq: num(f, "seq", { int: true, min: 2 }),
    data: list(f, "data") ?? [path.join(packageRoot(), "corpus", "moby-dick.txt")],
    maxBytes: num(f, "max-bytes", { int: true, min: 1 }) ?? 4_000_000,
    vocab: num(f, "vocab", { int: true, min: FIRST_MERGE_ID }) ?? 4096,
    tokenizer,
  });
  if (f.has("json")) {
    process.stdout.write(JSON.stringify(r, null, 2) + "\n");
    return 0;
  }
  const lines = [
    `${r.config}: ${r.stages.length} stage(s), rows of ${r.seqLen} bytes, measured on ${r.corpusBytes} bytes`,
    `parameters: ${r.params.toLocaleString("en-US")} (${r.nonEmbeddingParams.toLocaleString("en-US")} without embeddings)`,
    ...r.stages.map(
      (s) =>
        `  stage ${s.stage}: N_i ${s.weightsPerPosition.toLocaleString("en-US")} weights per position, k_i ${s.bytesPerPosition.toFixed(3)} bytes per position`,
    ),
    `training FLOPs per byte: ${fmt(r.flopsPerByte)}`,
    `BPE transformer (trunk shape, vocab ${r.bpe.vocabSize}, ${r.bpe.bytesPerToken.toFixed(3)} bytes/token, rows of ${r.bpe.seqLen} tokens):`,
    `  parameters: ${r.bpe.params.toLocaleString("en-US")} (${r.bpe.nonEmbeddingParams.toLocaleString("en-US")} without embeddings)`,
    `  training FLOPs per token: ${fmt(r.bpe.flopsPerToken)}, per byte: ${fmt(r.bpe.flopsPerByte)}`,
  ];
  process.stdout.write(lines.join("\n") + "\n");
  return 0;
}
