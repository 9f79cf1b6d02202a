// Few-shot translation: line-aligned source/reference files, a prompt of k example pairs followed by the
// source line, greedy generation up to the end of the line, and corpus BLEU/chrF against the references.
//
// The template describes one example, `{src_lang}: {src}\n{tgt_lang}: {tgt}` by default, and must end with
// {tgt}; examples are joined by a blank line. The query is the template cut before {tgt} with trailing spaces
// removed, so the model writes the space before its translation itself, as it saw in the examples.

import { UserError } from "../util/errors.js";
import { encodeText } from "../data/bytes.js";
import type { Generator } from "../generate/generator.js";
import { corpusBleu, type BleuScore } from "./bleu.js";
import { corpusChrf, type ChrfScore } from "./chrf.js";

export const DEFAULT_TRANSLATION_TEMPLATE = "{src_lang}: {src}\n{tgt_lang}: {tgt}";

export interface TranslationPair {
  /** Line in the files (1-based). */
  line: number;
  src: string;
  ref: string;
}

export interface TranslationPrompt {
  template: string;
  srcLang: string;
  tgtLang: string;
}

export interface TranslateOptions {
  /** Prompts generated together (default 8). */
  batch?: number;
  /** Default: twice the longest source line in bytes plus 32. */
  maxBytes?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface TranslationResult extends TranslationPair {
  hypothesis: string;
}

export interface TranslateReport {
  shots: number;
  items: number;
  bleu: BleuScore;
  chrf: ChrfScore;
  results: TranslationResult[];
}

/** Pair two line-aligned files; a different number of lines is the user's mistake. */
export function alignLines(
  src: readonly string[],
  ref: readonly string[],
  srcName: string,
  refName: string,
): TranslationPair[] {
  if (src.length !== ref.length)
    throw new UserError(
      `${srcName} has ${src.length} lines but ${refName} has ${ref.length}; they must be line-aligned`,
    );
  return src.map((s, i): TranslationPair => ({ line: i + 1, src: s, ref: ref[i] }));
}

export function checkTranslationTemplate(template: string): string {
  const count = (p: string) => template.split(p).length - 1;
  if (count("{src}") !== 1 || count("{tgt}") !== 1 || !template.endsWith("{tgt}"))
    throw new UserError(
      `--template must contain {src} once and end with {tgt}, got ${JSON.stringify(template)}`,
    );
  return template;
}

export function translationPrompt(
  examples: readonly TranslationPair[],
  src: string,
  p: TranslationPrompt,
): string {
  // One pass, so that text filled in is never searched for placeholders again.
  const fill = (src: string, tgt: string) =>
    p.template.replace(/\{(src_lang|tgt_lang|src|tgt)\}/g, (_, k: string) =>
      k === "src_lang" ? p.srcLang : k === "tgt_lang" ? p.tgtLang : k === "src" ? src : tgt,
    );
  const query = fill(src, "").replace(/[ \t]+$/, "");
  return [...examples.map((e) => fill(e.src, e.ref)), query].join("\n\n");
}

export function evaluateTranslation(
  generator: Generator,
  examples: readonly TranslationPair[],
  pairs: readonly TranslationPair[],
  prompt: TranslationPrompt,
  opts: TranslateOptions = {},
): TranslateReport {
  const batch = opts.batch ?? 8;
  if (!Number.isInteger(batch) || batch < 1)
    throw new RangeError(`batch must be an integer >= 1, got ${batch}`);
  let longest = 0;
  for (const p of pairs) longest = Math.max(longest, encodeText(p.src).length);
  const maxBytes = opts.maxBytes ?? 2 * longest + 32;
  const results: TranslationResult[] = [];
  for (let start = 0; start < pairs.length; start += batch) {
    const chunk = pairs.slice(start, start + batch);
    const gens = generator.generate(
      chunk.map((p) => translationPrompt(examples, p.src, prompt)),
      { temperature: 0, maxBytes, stop: ["\n"] },
    );
    chunk.forEach((p, i) => results.push({ ...p, hypothesis: gens[i].text.trim() }));
    opts.onProgress?.(results.length, pairs.length);
  }
  const hyps = results.map((r) => r.hypothesis);
  const refs = [results.map((r) => r.ref)];
  return {
    shots: examples.length,
    items: results.length,
    bleu: corpusBleu(hyps, refs),
    chrf: corpusChrf(hyps, refs),
    results,
  };
}
