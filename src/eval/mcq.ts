// Multiple choice by log-likelihood: every choice's continuation is scored given the item's context, and the
// prediction is the most likely choice, raw (acc) or divided by the choice's length (acc_norm). lm-eval-harness
// normalises by characters; for a byte-level model the length in bytes is the other natural unit, so both
// are reported. Ties go to the first choice, as numpy's argmax does.

import { encodeText } from "../data/bytes.js";
import type { SplitStrategy } from "../data/splitter.js";
import type { AUNet } from "../model/aunet.js";
import { bootstrapMeans, type BootstrapOptions, type Estimate } from "./bootstrap.js";
import { scoreContinuations, type ContinuationRequest } from "./loglik.js";
import type { McqItem } from "./mcq-format.js";
import { pyLen } from "./pystr.js";

export interface McqItemScore {
  line: number;
  gold: number;
  /** Natural-log likelihood of each choice's continuation. */
  logLikelihoods: number[];
  /** Whether each continuation is the model's greedy continuation. */
  greedy: boolean[];
  /** Length of each choice (without the delimiter) in characters and in UTF-8 bytes. */
  chars: number[];
  bytes: number[];
  pred: number;
  predNormChar: number;
  predNormByte: number;
}

export interface McqReport {
  items: number;
  acc: Estimate;
  /** lm-eval-harness acc_norm: log-likelihood per character of the choice. */
  accNormChar: Estimate;
  /** The same per UTF-8 byte. */
  accNormByte: Estimate;
  scores: McqItemScore[];
}

export interface McqOptions {
  /** Rows (choices) per forward. */
  batch?: number;
  bootstrap?: BootstrapOptions;
  onProgress?: (done: number, total: number) => void;
}

function firstArgmax(xs: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
  return best;
}

/** Predictions of one item from its choices' log-likelihoods. */
export function scoreItem(item: McqItem, logLikelihoods: number[], greedy: boolean[]): McqItemScore {
  const chars = item.choices.map(pyLen);
  const bytes = item.choices.map((c) => encodeText(c).length);
  return {
    line: item.line,
    gold: item.gold,
    logLikelihoods,
    greedy,
    chars,
    bytes,
    pred: firstArgmax(logLikelihoods),
    predNormChar: firstArgmax(logLikelihoods.map((ll, i) => ll / chars[i])),
    predNormByte: firstArgmax(logLikelihoods.map((ll, i) => ll / bytes[i])),
  };
}

/** Accuracies with bootstrap intervals from per-item scores. */
export function mcqMetrics(scores: McqItemScore[], bootstrap: BootstrapOptions = {}): McqReport {
  const col = (f: (s: McqItemScore) => number) => Float64Array.from(scores, (s) => (f(s) === s.gold ? 1 : 0));
  const [acc, accNormChar, accNormByte] = bootstrapMeans(
    [col((s) => s.pred), col((s) => s.predNormChar), col((s) => s.predNormByte)],
    bootstrap,
  );
  return { items: scores.length, acc, accNormChar, accNormByte, scores };
}

export function evaluateMcq(
  model: AUNet,
  strategy: SplitStrategy,
  items: readonly McqItem[],
  opts: McqOptions = {},
): McqReport {
  const requests: ContinuationRequest[] = [];
  for (const item of items) {
    const context = encodeText(item.context);
    for (const c of item.continuations) requests.push({ context, continuation: encodeText(c) });
  }
  const results = scoreContinuations(model, strategy, requests, {
    batch: opts.batch,
    onProgress: opts.onProgress,
  });
  let k = 0;
  const scores = items.map((item) => {
    const r = results.slice(k, (k += item.continuations.length));
    return scoreItem(
      item,
      r.map((x) => x.logLikelihood),
      r.map((x) => x.greedy),
    );
  });
  return mcqMetrics(scores, opts.bootstrap);
}
