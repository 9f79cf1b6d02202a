// Corpus chrF as sacreBLEU 2.x computes it by default (`CHRF()`: character n-grams up to 6, no word n-grams,
// beta 2, whitespace removed before extracting n-grams, no epsilon smoothing): per order, hypothesis, reference
// and matched n-gram counts are summed over the corpus (per segment the reference with the best chrF is
// used); precision and recall are averaged over the orders that occur in both, and combined into F-beta.
// With `epsSmoothing` the per-order F scores are averaged instead (chrF++.py / NLTK / Moses behaviour).

import { pySplit } from "./pystr.js";

export interface ChrfOptions {
  charOrder?: number;
  /** 2 gives chrF++. */
  wordOrder?: number;
  beta?: number;
  lowercase?: boolean;
  /** Keep whitespace inside character n-grams. */
  whitespace?: boolean;
  epsSmoothing?: boolean;
}

export interface ChrfScore {
  /** 0..100. */
  score: number;
  /** [hyp, ref, match] n-gram counts per order, characters first, summed over the corpus. */
  stats: number[];
}

const PUNCTS = new Set(Array.from("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"));

function charNgrams(line: string, maxOrder: number, whitespace: boolean): Map<string, number>[] {
  // Python indexes strings by code point, so n-grams are taken over code points, not UTF-16 units.
  const chars = Array.from(whitespace ? line : pySplit(line).join(""));
  const out: Map<string, number>[] = [];
  for (let n = 1; n <= maxOrder; n++) {
    const m = new Map<string, number>();
    for (let i = 0; i + n <= chars.length; i++) {
      const g = chars.slice(i, i + n).join("");
      m.set(g, (m.get(g) ?? 0) + 1);
    }
    out.push(m);
  }
  return out;
}

/** sacreBLEU's _remove_punctuation: one punctuation mark split off the end (else the start) of each word. */
function chrfWords(sent: string): string[] {
  const out: string[] = [];
  for (const w of pySplit(sent)) {
    const cps = Array.from(w);
    if (cps.length === 1) out.push(w);
    else if (PUNCTS.has(cps[cps.length - 1])) out.push(cps.slice(0, -1).join(""), cps[cps.length - 1]);
    else if (PUNCTS.has(cps[0])) out.push(cps[0], cps.slice(1).join(""));
    else out.push(w);
  }
  return out;
}

function wordNgrams(words: readonly string[], n: number): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i + n <= words.length; i++) {
    const g = words.slice(i, i + n).join(" ");
    m.set(g, (m.get(g) ?? 0) + 1);
  }
  return m;
}

function allNgrams(sent: string, o: Required<ChrfOptions>): Map<string, number>[] {
  const grams = charNgrams(sent, o.charOrder, o.whitespace);
  if (o.wordOrder > 0) {
    const words = chrfWords(sent);
    for (let n = 1; n <= o.wordOrder; n++) grams.push(wordNgrams(words, n));
  }
  return grams;
}

function resolve(opts: ChrfOptions): Required<ChrfOptions> {
  return {
    charOrder: opts.charOrder ?? 6,
    wordOrder: opts.wordOrder ?? 0,
    beta: opts.beta ?? 2,
    lowercase: opts.lowercase ?? false,
    whitespace: opts.whitespace ?? false,
    epsSmoothing: opts.epsSmoothing ?? false,
  };
}

/** sacreBLEU's CHRF._compute_f_score on flattened [hyp, ref, match] statistics. */
export function chrfFromStats(stats: readonly number[], opts: ChrfOptions = {}): number {
  const o = resolve(opts);
  const order = o.charOrder + o.wordOrder;
  const eps = 1e-16;
  const factor = o.beta ** 2;
  let score = 0;
  let effective = 0;
  let avgPrec = 0;
  let avgRec = 0;
  for (let i = 0; i < order; i++) {
    const [nHyp, nRef, nMatch] = stats.slice(3 * i, 3 * i + 3);
    const prec = nHyp > 0 ? nMatch / nHyp : eps;
    const rec = nRef > 0 ? nMatch / nRef : eps;
    const denom = factor * prec + rec;
    score += denom > 0 ? ((1 + factor) * prec * rec) / denom : eps;
    if (nHyp > 0 && nRef > 0) {
      avgPrec += prec;
      avgRec += rec;
      effective++;
    }
  }
  if (o.epsSmoothing) return (100 * score) / order;
  if (effective === 0) return 0;
  avgPrec /= effective;
  avgRec /= effective;
  if (avgPrec + avgRec === 0) return 0;
  return (100 * ((1 + factor) * avgPrec * avgRec)) / (factor * avgPrec + avgRec);
}

/** Corpus chrF; `references[k][i]` is the k-th reference of segment i, as for corpusBleu. */
export function corpusChrf(
  hypotheses: readonly string[],
  references: readonly (readonly (string | undefined)[])[],
  opts: ChrfOptions = {},
): ChrfScore {
  const o = resolve(opts);
  const order = o.charOrder + o.wordOrder;
  if (references.length === 0) throw new RangeError("corpus chrF needs at least one reference stream");
  for (const stream of references)
    if (stream.length !== hypotheses.length)
      throw new RangeError(
        `a reference stream has ${stream.length} segments for ${hypotheses.length} hypotheses`,
      );
  const prep = (s: string) => (o.lowercase ? s.toLowerCase() : s);
  const totals = new Array<number>(3 * order).fill(0);
  hypotheses.forEach((hyp, i) => {
    const hypGrams = allNgrams(prep(hyp), o);
    let best: number[] = [];
    let bestF = -1;
    for (const stream of references) {
      const ref = stream[i];
      if (ref === undefined) continue;
      const refGrams = allNgrams(prep(ref), o);
      const stats: number[] = [];
      hypGrams.forEach((h, k) => {
        const r = refGrams[k];
        let hypCount = 0;
        let match = 0;
        for (const [g, c] of h) {
          hypCount += c;
          match += Math.min(c, r.get(g) ?? 0);
        }
        let refCount = 0;
        for (const c of r.values()) refCount += c;
        stats.push(r.size > 0 ? hypCount : 0, refCount, match);
      });
      const f = chrfFromStats(stats, o);
      if (f > bestF) {
        bestF = f;
        best = stats;
      }
    }
    best.forEach((v, k) => (totals[k] += v));
  });
  return { score: chrfFromStats(totals, o), stats: totals };
}
