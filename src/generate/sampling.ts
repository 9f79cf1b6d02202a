// Choosing the next byte from a row of logits: greedy, or sampling at a temperature from the top-k and/or
// nucleus (top-p) set, with a seeded generator so that a run can be repeated exactly.

import type { Rng } from "../util/rng.js";

export interface SamplingOptions {
  /** 0 picks the most likely byte (greedy); otherwise logits are divided by it before the softmax. */
  temperature: number;
  /** Keep only the k most likely bytes (0: all). */
  topK: number;
  /** Keep the smallest set of most likely bytes whose probability reaches p (1: all). */
  topP: number;
}

export const DEFAULT_SAMPLING: SamplingOptions = { temperature: 1, topK: 0, topP: 1 };

/** Reject options that cannot describe a distribution, with the offending value. */
export function checkSampling(o: SamplingOptions): void {
  if (!(o.temperature >= 0) || !Number.isFinite(o.temperature))
    throw new RangeError(`temperature must be a finite number >= 0, got ${o.temperature}`);
  if (!Number.isInteger(o.topK) || o.topK < 0)
    throw new RangeError(`top-k must be an integer >= 0, got ${o.topK}`);
  if (!(o.topP > 0 && o.topP <= 1)) throw new RangeError(`top-p must be in (0, 1], got ${o.topP}`);
}

/** Index of the largest value (the first one on ties). */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** log softmax(x)[i], in double precision. */
export function logProbOf(x: ArrayLike<number>, i: number): number {
  let mx = -Infinity;
  for (let j = 0; j < x.length; j++) if (x[j] > mx) mx = x[j];
  let s = 0;
  for (let j = 0; j < x.length; j++) s += Math.exp(x[j] - mx);
  return x[i] - mx - Math.log(s);
}

export class Sampler {
  private readonly order: number[] = [];
  private probs = new Float64Array(0);

  constructor(
    readonly options: SamplingOptions,
    private readonly rng: Rng,
  ) {
    checkSampling(options);
  }

  /** The next token id for one row of logits. */
  sample(logits: ArrayLike<number>): number {
    const { temperature, topK, topP } = this.options;
    if (temperature === 0 || topK === 1) return argmax(logits);
    const n = logits.length;
    if (this.probs.length !== n) this.probs = new Float64Array(n);
    const p = this.probs;
    let mx = -Infinity;
    for (let i = 0; i < n; i++) if (logits[i] > mx) mx = logits[i];
    let total = 0;
    for (let i = 0; i < n; i++) total += p[i] = Math.exp((logits[i] - mx) / temperature);
    const order = this.order;
    order.length = 0;
    for (let i = 0; i < n; i++) order.push(i);
    let keep = n;
    if (topK > 0 || topP < 1) {
      // Most likely first; ties keep the lower id first so that the cut is deterministic.
      order.sort((a, b) => p[b] - p[a] || a - b);
      if (topK > 0) keep = Math.min(keep, topK);
      if (topP < 1) {
        let mass = 0;
        for (let j = 0; j < keep; j++) {
          mass += p[order[j]] / total;
          if (mass >= topP) {
            keep = j + 1;
            break;
          }
        }
      }
      total = 0;
      for (let j = 0; j < keep; j++) total += p[order[j]];
    }
    let u = this.rng.next() * total;
    for (let j = 0; j < keep; j++) {
      u -= p[order[j]];
      if (u < 0) return order[j];
    }
    return order[keep - 1];
  }
}
