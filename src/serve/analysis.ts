// What the playground shows over a text: the splitter's levels (what `aunet split` prints) and, with a model,
// every byte's log-probability, level and the model's top candidates at its position. Browser-portable: the
// server answers /v1/score and /v1/split with it, and the static playground calls it directly.

import { encodeText } from "../data/bytes.js";
import { levelMask, type SplitStrategy } from "../data/splitter.js";
import type { Generator } from "../generate/generator.js";
import { logProbOf } from "../generate/sampling.js";
import { topOf } from "./batcher.js";

export interface ScoredPosition {
  byte: number;
  /** The level it is fed with during generation (incremental splitter), as `aunet score --json` reports. */
  level: number;
  /** Natural log of its probability given everything before it. */
  logProb: number;
  /** The model's most likely bytes at this position (what it expected here), most likely first. */
  top: { id: number; logProb: number }[];
}

export interface TextScore {
  bytes: ScoredPosition[];
  logLikelihood: number;
  bitsPerByte: number;
}

export interface ScoreOptions {
  /** Candidates reported per position (default 5). */
  top?: number;
  /** Awaited every `every` bytes, so that a long text lets other work run (a server's streams, a page). */
  pause?: () => Promise<void>;
  every?: number;
  /** Checked at each pause: scoring stops (and rejects) once it is aborted. */
  signal?: AbortSignal;
}

/**
 * `scoreText` (src/generate/score.ts) with the top-k candidates of every position: the prompt is prefilled,
 * then each byte is scored from the current logits and fed with its incremental level, so the numbers are
 * those of `aunet score --json`.
 */
export async function scoreWithTop(
  generator: Generator,
  text: string | Uint8Array,
  prompt: string | Uint8Array = "",
  opts: ScoreOptions = {},
): Promise<TextScore> {
  const bytes = typeof text === "string" ? encodeText(text) : text;
  const k = opts.top ?? 5;
  const every = opts.every ?? 64;
  const start = generator.start(prompt);
  const { state, levels } = start;
  let logits = start.logits;
  const scored: ScoredPosition[] = [];
  let total = 0;
  try {
    for (let i = 0; i < bytes.length; i++) {
      if (opts.pause && i > 0 && i % every === 0) {
        await opts.pause();
        opts.signal?.throwIfAborted();
      }
      const byte = bytes[i];
      const logProb = logProbOf(logits, byte);
      const level = levels.next(byte);
      scored.push({ byte, level, logProb, top: topOf(logits, k) });
      total += logProb;
      if (i + 1 < bytes.length) logits = generator.incremental.step([state], [byte], [level]);
    }
  } finally {
    state.release();
  }
  return { bytes: scored, logLikelihood: total, bitsPerByte: -total / Math.LN2 / bytes.length };
}

/** The whole-text level of every byte: `aunet split`'s `masks`. */
export function splitLevels(text: string | Uint8Array, strategy: SplitStrategy): Int32Array {
  return levelMask(typeof text === "string" ? encodeText(text) : text, strategy);
}
