// Log-likelihood of a text (optionally after a prompt) through the same path that generation takes: the prompt
// is prefilled, then each byte of the text is scored from the current logits and fed with its incremental
// level, exactly as if the model had sampled it. The text is fed in chunks (one pass per stage per chunk, with
// the logits of every byte of the chunk), so a long text takes bounded memory and reports progress.

import { encodeText } from "../data/bytes.js";
import type { Generator } from "./generator.js";
import { DEFAULT_CHUNK } from "./incremental-model.js";
import { logProbOf } from "./sampling.js";

export interface ScoredByte {
  byte: number;
  /** The level it was fed with (for the last byte: the level it would be fed with). */
  level: number;
  /** Natural log of its probability given everything before it. */
  logProb: number;
}

export interface Score {
  bytes: ScoredByte[];
  /** Sum of the log-probabilities, in nats. */
  logLikelihood: number;
  /** -logLikelihood / ln 2 / number of bytes (NaN for an empty text). */
  bitsPerByte: number;
}

export interface ScoreOptions {
  /** Bytes per pass through the model (default DEFAULT_CHUNK): bounds memory for any length of text. */
  chunk?: number;
  /** Called after each chunk of the text with the bytes scored so far and the total. */
  onProgress?: (done: number, total: number) => void;
}

export function scoreText(
  generator: Generator,
  text: string | Uint8Array,
  prompt: string | Uint8Array = "",
  opts: ScoreOptions = {},
): Score {
  const bytes = typeof text === "string" ? encodeText(text) : text;
  const n = bytes.length;
  const chunk = opts.chunk ?? DEFAULT_CHUNK;
  const start = generator.start(prompt, { chunk, capacity: n });
  const { state, levels } = start;
  const V = start.logits.length;
  // The logits that predict the next byte to score.
  let prev = start.logits;
  const scored: ScoredByte[] = [];
  let total = 0;
  try {
    for (let a = 0, b = 0; a < n; a = b) {
      b = Math.min(n, a + chunk);
      const lv = Int32Array.from(bytes.subarray(a, b), (x) => levels.next(x));
      // The text's last byte is scored but never fed: nothing is predicted from it.
      const fed = b === n ? b - a - 1 : b - a;
      const rows =
        fed > 0
          ? generator.incremental.feed(
              state,
              Int32Array.from(bytes.subarray(a, a + fed)),
              lv.subarray(0, fed),
              {
                chunk: fed,
                allLogits: true,
              },
            )
          : new Float32Array(0);
      for (let i = a; i < b; i++) {
        const row = i === a ? prev : rows.subarray((i - a - 1) * V, (i - a) * V);
        const logProb = logProbOf(row, bytes[i]);
        scored.push({ byte: bytes[i], level: lv[i - a], logProb });
        total += logProb;
      }
      if (fed > 0) prev = rows.subarray((fed - 1) * V, fed * V);
      opts.onProgress?.(b, n);
    }
  } finally {
    state.release();
  }
  return { bytes: scored, logLikelihood: total, bitsPerByte: -total / Math.LN2 / bytes.length };
}
