// Log-likelihood of a text (optionally after a prompt) through the same path that generation takes: the prompt
// is prefilled, then each byte of the text is scored from the current logits and fed with its incremental
// level, exactly as if the model had sampled it.

import { encodeText } from "../data/bytes.js";
import type { Generator } from "./generator.js";
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

export function scoreText(
  generator: Generator,
  text: string | Uint8Array,
  prompt: string | Uint8Array = "",
): Score {
  const bytes = typeof text === "string" ? encodeText(text) : text;
  const start = generator.start(prompt);
  const { state, levels } = start;
  let logits = start.logits;
  const scored: ScoredByte[] = [];
  let total = 0;
  try {
    for (let i = 0; i < bytes.length; i++) {
      const byte = bytes[i];
      const logProb = logProbOf(logits, byte);
      const level = levels.next(byte);
      scored.push({ byte, level, logProb });
      total += logProb;
      if (i + 1 < bytes.length) logits = generator.incremental.step([state], [byte], [level]);
    }
  } finally {
    state.release();
  }
  return { bytes: scored, logLikelihood: total, bitsPerByte: -total / Math.LN2 / bytes.length };
}
