// Held-out evaluation in bits per byte. Text is packed exactly as for training (spec section 8), so every id
// after the first is predicted once with the same context a training row gives it; the last partial row is
// evaluated at its own length instead of being dropped or padded.
//
// Accounting: the numerator is the total cross-entropy (nats) of every predicted id, bytes and the EOS/BOS of
// document boundaries alike (the model has to pay for ending a document); the denominators are the number of
// predicted BYTES (ids < 256) and of characters among them (bytes that are not UTF-8 continuation bytes).

import { noGrad, scoped } from "../engine/tensor.js";
import type { AUNet } from "../model/aunet.js";
import { RowPacker, type PackedDoc } from "../data/packing.js";

export interface EvalResult {
  /** Predicted ids (bytes + document boundaries). */
  positions: number;
  bytes: number;
  chars: number;
  nats: number;
  natsPerByte: number;
  bitsPerByte: number;
  natsPerChar: number;
  bitsPerChar: number;
  /** Mean loss per predicted id (the training loss's definition). */
  loss: number;
}

export class EvalAccumulator {
  positions = 0;
  bytes = 0;
  chars = 0;
  nats = 0;

  add(rowLoss: Float32Array, targets: Int32Array): void {
    for (let i = 0; i < targets.length; i++) {
      this.nats += rowLoss[i];
      const t = targets[i];
      if (t < 256) {
        this.bytes++;
        if ((t & 0xc0) !== 0x80) this.chars++;
      }
    }
    this.positions += targets.length;
  }

  result(): EvalResult {
    const ln2 = Math.LN2;
    return {
      positions: this.positions,
      bytes: this.bytes,
      chars: this.chars,
      nats: this.nats,
      natsPerByte: this.nats / this.bytes,
      bitsPerByte: this.nats / this.bytes / ln2,
      natsPerChar: this.nats / this.chars,
      bitsPerChar: this.nats / this.chars / ln2,
      loss: this.nats / this.positions,
    };
  }
}

/** Thrown by an evaluation whose `interrupt` hook asked it to stop. */
export class EvalInterrupted extends Error {
  constructor() {
    super("evaluation interrupted");
    this.name = "EvalInterrupted";
  }
}

/**
 * Evaluate the model on a stream of documents, B rows of S bytes at a time. `interrupt`, awaited after every
 * batch, lets a caller's event loop run (signals) and abandon the evaluation by answering true.
 */
export async function evaluateDocs(
  model: AUNet,
  next: () => Promise<PackedDoc | null>,
  B: number,
  S: number,
  onBatch?: (acc: EvalAccumulator) => void,
  interrupt?: () => Promise<boolean>,
): Promise<EvalResult> {
  const packer = new RowPacker<null>(S, async () => {
    const d = await next();
    return d === null ? null : { doc: d, pos: null };
  });
  const acc = new EvalAccumulator();
  const tokens = new Int32Array(B * S),
    mask = new Int32Array(B * S),
    targets = new Int32Array(B * S);
  const ids = new Int32Array(S + 1),
    m = new Int32Array(S + 1);
  let full = 0;
  const flush = (rows: number, len: number) => {
    if (rows === 0) return;
    const n = rows * len;
    const rowLoss = scoped(() =>
      noGrad(() =>
        model
          .loss(tokens.subarray(0, n), mask.subarray(0, n), targets.subarray(0, n), rows, len)
          .rowLoss.toFloat32(),
      ),
    );
    acc.add(rowLoss, targets.subarray(0, n));
    onBatch?.(acc);
  };
  for (;;) {
    const n = await packer.fill(ids, m);
    if (n === S + 1) {
      tokens.set(ids.subarray(0, S), full * S);
      mask.set(m.subarray(0, S), full * S);
      targets.set(ids.subarray(1), full * S);
      if (++full === B) {
        flush(full, S);
        full = 0;
        if (interrupt && (await interrupt())) throw new EvalInterrupted();
      }
      continue;
    }
    flush(full, S);
    if (n >= 2) {
      // The last, shorter row, evaluated on its own at its own length.
      const len = n - 1;
      tokens.set(ids.subarray(0, len), 0);
      mask.set(m.subarray(0, len), 0);
      targets.set(ids.subarray(1, n), 0);
      flush(1, len);
    }
    return acc.result();
  }
}

/** Evaluate on documents held in memory (the validation set). */
export function evaluateList(
  model: AUNet,
  docs: readonly PackedDoc[],
  B: number,
  S: number,
  interrupt?: () => Promise<boolean>,
): Promise<EvalResult> {
  let i = 0;
  return evaluateDocs(model, async () => (i < docs.length ? docs[i++] : null), B, S, undefined, interrupt);
}
