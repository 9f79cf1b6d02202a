// Downstream evaluation on user-supplied files: multiple choice by log-likelihood, CUTE-style character tasks,
// few-shot translation with sacreBLEU-compatible BLEU/chrF, and bits per byte per file.
export { scoreContinuations, requestRow } from "./loglik.js";
export type { ContinuationRequest, ContinuationScore, LoglikOptions } from "./loglik.js";
export { parseMcqJsonl, parseMcqObject, detectLayout, hellaswagPreprocess } from "./mcq-format.js";
export type { McqItem, McqLayout } from "./mcq-format.js";
export { evaluateMcq, mcqMetrics, scoreItem } from "./mcq.js";
export type { McqItemScore, McqOptions, McqReport } from "./mcq.js";
export { bootstrapMeans, quantile } from "./bootstrap.js";
export type { BootstrapOptions, Estimate } from "./bootstrap.js";
export {
  CUTE_TASKS,
  CUTE_CASE_INSENSITIVE,
  checkTemplate,
  cutePrompt,
  cuteTaskFromPath,
  parseCuteTsv,
  question,
} from "./cute-format.js";
export type { CuteQuestion, CuteRow, CuteTable } from "./cute-format.js";
export { evaluateCute, cuteMatches } from "./cute.js";
export type { CuteItemResult, CuteOptions, CuteReport } from "./cute.js";
export { corpusBleu, computeBleu, tokenize13a } from "./bleu.js";
export type { BleuOptions, BleuScore, BleuSmoothing, BleuTokenizer } from "./bleu.js";
export { corpusChrf, chrfFromStats } from "./chrf.js";
export type { ChrfOptions, ChrfScore } from "./chrf.js";
export {
  DEFAULT_TRANSLATION_TEMPLATE,
  alignLines,
  checkTranslationTemplate,
  evaluateTranslation,
  translationPrompt,
} from "./translate.js";
export type {
  TranslateOptions,
  TranslateReport,
  TranslationPair,
  TranslationPrompt,
  TranslationResult,
} from "./translate.js";
export { bitsPerByteByFile, sumResults } from "./bpb.js";
export type { BpbOptions, BpbReport, FileBpb } from "./bpb.js";
export { readTextFile, splitLines } from "./files.js";
