// Corpus BLEU exactly as sacreBLEU 2.x computes it by default (`BLEU()`: tokenize 13a, smooth "exp", mixed
// case, max order 4, no effective order), so that numbers are comparable with published sacreBLEU scores:
// n-gram matches are clipped per segment against the maximum count over the references, summed over the
// corpus, and combined once; the brevity penalty uses, per segment, the reference length closest to the
// hypothesis length (ties to the shorter). Options cover the other sacreBLEU settings its tests exercise.

import { pyRstrip, pySplit } from "./pystr.js";

export type BleuTokenizer = "13a" | "none";
export type BleuSmoothing = "exp" | "none" | "floor" | "add-k";

export interface BleuOptions {
  tokenize?: BleuTokenizer;
  smooth?: BleuSmoothing;
  /** For "floor" (default 0.1) and "add-k" (default 1). */
  smoothValue?: number;
  lowercase?: boolean;
  maxOrder?: number;
  effectiveOrder?: boolean;
}

export interface BleuScore {
  /** 0..100. */
  score: number;
  /** Clipped matches and hypothesis n-grams per order (after add-k smoothing, as sacreBLEU reports them). */
  counts: number[];
  totals: number[];
  /** Percent precision per order (smoothed). */
  precisions: number[];
  bp: number;
  sysLen: number;
  refLen: number;
}

// mteval-v13a's language-dependent part: ASCII symbols and punctuation become tokens; period and comma too,
// except inside numbers; a dash after a digit.
const RE_SYMBOLS = new RegExp("([{-~[-` -&(-+:-@/])", "gu");
const RE_PERIOD_AFTER = /([^0-9])([.,])/gu;
const RE_PERIOD_BEFORE = /([.,])([^0-9])/gu;
const RE_DIGIT_DASH = /([0-9])(-)/gu;

/** sacreBLEU's Tokenizer13a. */
export function tokenize13a(line: string): string {
  let s = line.replaceAll("<skipped>", "").replaceAll("-\n", "").replaceAll("\n", " ");
  if (s.includes("&"))
    s = s.replaceAll("&quot;", '"').replaceAll("&amp;", "&").replaceAll("&lt;", "<").replaceAll("&gt;", ">");
  s = ` ${s} `
    .replace(RE_SYMBOLS, " $1 ")
    .replace(RE_PERIOD_AFTER, "$1 $2 ")
    .replace(RE_PERIOD_BEFORE, " $1 $2")
    .replace(RE_DIGIT_DASH, "$1 $2 ");
  return pySplit(s).join(" ");
}

const SMOOTH_DEFAULTS: Record<BleuSmoothing, number> = { none: 0, floor: 0.1, "add-k": 1, exp: 0 };

function ngramCounts(tokens: readonly string[], maxOrder: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let n = 1; n <= maxOrder; n++)
    for (let i = 0; i + n <= tokens.length; i++) {
      // Tokens hold no whitespace, so a space-joined key is unambiguous; the order is recovered from it.
      const key = tokens.slice(i, i + n).join(" ");
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  return counts;
}

function closestRefLen(hypLen: number, refLens: readonly number[]): number {
  let bestDiff = -1;
  let best = -1;
  for (const r of refLens) {
    const d = Math.abs(hypLen - r);
    if (bestDiff === -1 || d < bestDiff) {
      bestDiff = d;
      best = r;
    } else if (d === bestDiff && r < best) best = r;
  }
  return best;
}

/** sacreBLEU's BLEU.compute_bleu: the score from corpus sufficient statistics. */
export function computeBleu(
  correct: readonly number[],
  total: readonly number[],
  sysLen: number,
  refLen: number,
  opts: BleuOptions = {},
): BleuScore {
  const smooth = opts.smooth ?? "exp";
  const smoothValue = opts.smoothValue ?? SMOOTH_DEFAULTS[smooth];
  const maxOrder = opts.maxOrder ?? 4;
  const counts = correct.slice();
  const totals = total.slice();
  let bp = 1;
  if (sysLen < refLen) bp = sysLen > 0 ? Math.exp(1 - refLen / sysLen) : 0;
  const precisions = new Array<number>(maxOrder).fill(0);
  if (!counts.some((c) => c !== 0)) return { score: 0, counts, totals, precisions, bp, sysLen, refLen };
  let smoothMteval = 1;
  let effOrder = maxOrder;
  for (let n = 1; n <= maxOrder; n++) {
    if (smooth === "add-k" && n > 1) {
      counts[n - 1] += smoothValue;
      totals[n - 1] += smoothValue;
    }
    if (totals[n - 1] === 0) break;
    if (opts.effectiveOrder) effOrder = n;
    if (counts[n - 1] === 0) {
      if (smooth === "exp") {
        smoothMteval *= 2;
        precisions[n - 1] = 100 / (smoothMteval * totals[n - 1]);
      } else if (smooth === "floor") precisions[n - 1] = (100 * smoothValue) / totals[n - 1];
    } else precisions[n - 1] = (100 * counts[n - 1]) / totals[n - 1];
  }
  // sacreBLEU's my_log floors log(0) so that a zero precision gives a zero score instead of NaN.
  let sum = 0;
  for (let n = 0; n < effOrder; n++) sum += precisions[n] === 0 ? -9999999999 : Math.log(precisions[n]);
  return { score: bp * Math.exp(sum / effOrder), counts, totals, precisions, bp, sysLen, refLen };
}

/**
 * Corpus BLEU of hypotheses against one or more reference streams: `references[k][i]` is the k-th reference
 * of segment i (sacreBLEU's layout); a missing (undefined) entry means segment i has fewer references.
 */
export function corpusBleu(
  hypotheses: readonly string[],
  references: readonly (readonly (string | undefined)[])[],
  opts: BleuOptions = {},
): BleuScore {
  const maxOrder = opts.maxOrder ?? 4;
  if (references.length === 0) throw new RangeError("corpus BLEU needs at least one reference stream");
  for (const stream of references)
    if (stream.length !== hypotheses.length)
      throw new RangeError(
        `a reference stream has ${stream.length} segments for ${hypotheses.length} hypotheses`,
      );
  const prep = (s: string): string[] => {
    const t = opts.lowercase ? s.toLowerCase() : s;
    const r = pyRstrip(t);
    return pySplit((opts.tokenize ?? "13a") === "13a" ? tokenize13a(r) : r);
  };
  const correct = new Array<number>(maxOrder).fill(0);
  const total = new Array<number>(maxOrder).fill(0);
  let sysLen = 0;
  let refLen = 0;
  hypotheses.forEach((hyp, i) => {
    const refNgrams = new Map<string, number>();
    const refLens: number[] = [];
    for (const stream of references) {
      const ref = stream[i];
      if (ref === undefined) continue;
      const toks = prep(ref);
      refLens.push(toks.length);
      for (const [g, c] of ngramCounts(toks, maxOrder)) refNgrams.set(g, Math.max(refNgrams.get(g) ?? 0, c));
    }
    const hypToks = prep(hyp);
    sysLen += hypToks.length;
    refLen += closestRefLen(hypToks.length, refLens);
    for (const [g, c] of ngramCounts(hypToks, maxOrder)) {
      const n = g.split(" ").length - 1;
      total[n] += c;
      correct[n] += Math.min(c, refNgrams.get(g) ?? 0);
    }
  });
  return computeBleu(correct, total, sysLen, refLen, opts);
}
