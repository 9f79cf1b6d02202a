// CUTE-style evaluation: few-shot prompts from the task file, greedy generation to the closing quote (or a
// newline), exact match against the label. The first `shots` rows are the examples and are not scored, so
// every scored row sees the same prompt prefix.

import type { Generator } from "../generate/generator.js";
import { bootstrapMeans, type BootstrapOptions, type Estimate } from "./bootstrap.js";
import { cutePrompt, type CuteQuestion, type CuteRow } from "./cute-format.js";
import { encodeText } from "../data/bytes.js";

export interface CuteOptions {
  shots?: number;
  /** Compare lower-cased (CUTE does for its word-level tasks). */
  caseInsensitive?: boolean;
  /**
   * Most bytes generated per row. Default: the longest label in bytes plus 16, enough for any output that
   * can still match after trimming, and it stops models that never close the quote early.
   */
  maxBytes?: number;
  /** Prompts generated together (default 8). */
  batch?: number;
  /** Score at most this many rows after the examples. */
  limit?: number;
  bootstrap?: BootstrapOptions;
  onProgress?: (done: number, total: number) => void;
}

export interface CuteItemResult {
  line: number;
  label: string;
  output: string;
  correct: boolean;
}

export interface CuteReport {
  shots: number;
  items: number;
  accuracy: Estimate;
  results: CuteItemResult[];
}

/** The answer in a generation: trimmed, with CUTE's optional lower-casing. */
export function cuteMatches(output: string, label: string, caseInsensitive: boolean): boolean {
  const a = output.trim();
  return caseInsensitive ? a.toLowerCase() === label.toLowerCase() : a === label;
}

export function evaluateCute(
  generator: Generator,
  rows: readonly CuteRow[],
  q: CuteQuestion,
  opts: CuteOptions = {},
): CuteReport {
  const shots = opts.shots ?? 4;
  const batch = opts.batch ?? 8;
  if (!Number.isInteger(shots) || shots < 0)
    throw new RangeError(`shots must be an integer >= 0, got ${shots}`);
  if (!Number.isInteger(batch) || batch < 1)
    throw new RangeError(`batch must be an integer >= 1, got ${batch}`);
  const examples = rows.slice(0, shots);
  const scored = rows.slice(shots, opts.limit === undefined ? undefined : shots + opts.limit);
  let longest = 0;
  for (const r of rows) longest = Math.max(longest, encodeText(r.label).length);
  const maxBytes = opts.maxBytes ?? longest + 16;
  const results: CuteItemResult[] = [];
  for (let start = 0; start < scored.length; start += batch) {
    const chunk = scored.slice(start, start + batch);
    const gens = generator.generate(
      chunk.map((r) => cutePrompt(examples, r, q)),
      { temperature: 0, maxBytes, stop: ['"', "\n"] },
    );
    chunk.forEach((r, i) => {
      const output = gens[i].text;
      results.push({
        line: r.line,
        label: r.label,
        output,
        correct: cuteMatches(output, r.label, opts.caseInsensitive ?? false),
      });
    });
    opts.onProgress?.(results.length, scored.length);
  }
  const [accuracy] = bootstrapMeans([Float64Array.from(results, (r) => (r.correct ? 1 : 0))], opts.bootstrap);
  return { shots: examples.length, items: results.length, accuracy, results };
}
