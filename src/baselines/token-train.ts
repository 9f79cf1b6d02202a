// Training and evaluation of the BPE baseline. Each step is the byte trainer's `trainStep` (src/train/step.ts)
// over token rows: AdamW with the official settings, global-norm clipping, warmup + cosine from schedule.ts.
// It keeps no checkpoints: a baseline run of the comparison is short and is simply rerun.
//
// Data: documents become `[BOS, tokens, EOS]` and are packed into rows of S+1 ids exactly as byte documents are
// (RowPacker), epoch after epoch in a seeded random document order. The whole tokenized corpus is held in memory
// (4 bytes per token, about 1.2x the text), which suits the corpora a comparison on one machine uses.
//
// Bits per byte: the total negative log-likelihood (nats) of every predicted id, tokens and document ends alike,
// divided by the number of bytes of the documents' text and by ln 2, so that it is directly comparable with the
// byte models' figure (whose numerator likewise includes the document ends).

import type { Backend } from "../engine/backend.js";
import { BOS, EOS } from "../data/bytes.js";
import { RowPacker, type PackedDoc } from "../data/packing.js";
import { evaluateList } from "../train/evaluate.js";
import { AdamW, OFFICIAL_ADAMW } from "../train/optimizer.js";
import { readStepValues, trainStep, type StepOptions } from "../train/step.js";
import { yieldToEventLoop, type StopRequest } from "../train/signals.js";
import { lrAt, type ScheduleConfig } from "../train/schedule.js";
import { Progress, type ProgressSink } from "../train/progress.js";
import { UserError } from "../util/errors.js";
import { Rng } from "../util/rng.js";
import type { BpeTokenizer } from "./bpe.js";
import { TokenTransformer } from "./transformer.js";
import type { ModelConfig } from "../model/config.js";

/** Documents as token ids with the document markers, plus the bytes of text they hold. */
export interface TokenDocs {
  docs: PackedDoc[];
  bytes: number;
  tokens: number;
}

export function tokenizeDocs(tok: BpeTokenizer, texts: readonly Uint8Array[]): TokenDocs {
  let bytes = 0,
    tokens = 0;
  const docs = texts.map((t) => {
    const ids = tok.encode(t);
    const all = new Int32Array(ids.length + 2);
    all[0] = BOS;
    all.set(ids, 1);
    all[ids.length + 1] = EOS;
    bytes += t.length;
    tokens += ids.length;
    // Level masks exist only for byte models; RowPacker carries them along, so they are zeros here.
    return { tokens: all, mask: new Int32Array(all.length) };
  });
  return { docs, bytes, tokens };
}

/** Endless training rows: every epoch visits the documents in a new seeded order. */
export class TokenRows {
  private readonly packer: RowPacker<number>;
  private order: number[] = [];
  private cursor = 0;
  private epoch = 0;

  constructor(
    private readonly docs: readonly PackedDoc[],
    readonly S: number,
    private readonly seed: number,
  ) {
    if (docs.length === 0) throw new UserError("no training documents for the BPE baseline");
    this.packer = new RowPacker(S, async () => {
      if (this.cursor === this.order.length) this.reshuffle();
      return { doc: this.docs[this.order[this.cursor]], pos: this.cursor++ };
    });
  }

  private reshuffle(): void {
    this.order = this.docs.map((_, i) => i);
    new Rng(this.seed * 1000003 + this.epoch++).shuffle(this.order);
    this.cursor = 0;
  }

  async batch(B: number): Promise<{ tokens: Int32Array; targets: Int32Array }> {
    const S = this.S;
    const tokens = new Int32Array(B * S),
      targets = new Int32Array(B * S);
    const ids = new Int32Array(S + 1),
      mask = new Int32Array(S + 1);
    for (let b = 0; b < B; b++) {
      await this.packer.fill(ids, mask);
      tokens.set(ids.subarray(0, S), b * S);
      targets.set(ids.subarray(1), b * S);
    }
    return { tokens, targets };
  }
}

/** Bits per byte of a token model on documents holding `bytes` bytes of text (see the header). */
export async function tokenBitsPerByte(model: TokenTransformer, val: TokenDocs, B: number): Promise<number> {
  const S = model.config.max_seqlens[0];
  // evaluateList also counts "bytes" as ids < 256, which means nothing for tokens; only its nats are used.
  const r = await evaluateList(model.net, val.docs, B, S);
  return r.nats / val.bytes / Math.LN2;
}

export interface TokenTrainOptions {
  config: ModelConfig;
  train: TokenDocs;
  val: TokenDocs;
  batchRows: number;
  steps: number;
  lr: number;
  warmup: number;
  lrMinRatio: number;
  clip: number;
  seed: number;
  backend: Backend;
  sink?: ProgressSink;
  quiet?: boolean;
  /** Stop early (after the current step) once this is requested; the result says so. */
  stop?: StopRequest;
}

export interface TokenTrainResult {
  steps: number;
  tokens: number;
  finalLoss: number;
  valBpb: number;
  trainSeconds: number;
  /** True when a stop request ended the run before its steps (valBpb is then NaN). */
  interrupted: boolean;
}

export async function trainTokenModel(o: TokenTrainOptions): Promise<TokenTrainResult> {
  const S = o.config.max_seqlens[0];
  const B = o.batchRows;
  const model = new TokenTransformer(o.config, o.backend);
  const opt = new AdamW(model.net.params, o.backend, { ...OFFICIAL_ADAMW, clip: o.clip });
  const sched: ScheduleConfig = {
    scheduler: "cosine",
    warmup: o.warmup,
    steps: o.steps,
    lrMinRatio: o.lrMinRatio,
    cycleLength: 1,
    cosineTheta: 1,
  };
  const rows = new TokenRows(o.train.docs, S, o.seed);
  const progress = new Progress(o.sink ?? process.stderr, 50, o.quiet === true);
  const bytesPerToken = o.train.bytes / Math.max(1, o.train.tokens);
  type Batch = { tokens: Int32Array; targets: Int32Array };
  const stepOptions: StepOptions<Batch> = {
    // Scoped inside trainStep: the activations (logits alone are rows x S x vocab floats) are released at once,
    // not whenever the garbage collector finalises them, which at a 4096 vocabulary is the difference with
    // running out of memory.
    model: { loss: (b) => model.loss(b.tokens, b.targets, B, S).loss, zeroGrad: () => model.net.zeroGrad() },
    optimizer: opt,
    gradAcc: 1,
    nextBatch: () => rows.batch(B),
  };
  let seconds = 0,
    loss = NaN,
    step = 0;
  while (step < o.steps && !o.stop?.requested) {
    const t0 = performance.now();
    const values = await trainStep(stepOptions, lrAt(step + 1, o.lr, sched));
    step++;
    seconds += (performance.now() - t0) / 1000;
    const read = await readStepValues(values);
    loss = read.loss;
    if (!Number.isFinite(loss) || !Number.isFinite(read.gradNorm))
      throw new UserError(`BPE baseline diverged at step ${step} (loss ${loss}); try a lower learning rate`);
    progress.update({
      step,
      total: o.steps,
      loss,
      // Per-token loss over bytes per token: the training analogue of the validation figure.
      bpb: loss / Math.LN2 / bytesPerToken,
      bytesPerSec: (step * B * S * bytesPerToken) / seconds,
      etaSec: ((o.steps - step) * seconds) / step,
      valBpb: null,
    });
    await yieldToEventLoop();
  }
  progress.done();
  const interrupted = step < o.steps;
  const valBpb = interrupted ? NaN : await tokenBitsPerByte(model, o.val, B);
  return { steps: step, tokens: step * B * S, finalLoss: loss, valBpb, trainSeconds: seconds, interrupted };
}
