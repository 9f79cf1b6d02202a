// Log-likelihood of continuations given contexts, many at once, for multiple-choice scoring.
//
// Each request is scored with one full forward over `[BOS] + context + continuation` (the last byte dropped:
// nothing is predicted from it), with the levels that generation would give those bytes: the context split as
// a whole prompt, every continuation byte at its incremental level (generate/levels.ts). Since a full forward
// with given levels equals the incremental model fed the same levels (generate/incremental-model.ts), the
// numbers are those of `scoreText(generator, continuation, context)`, i.e. a proper left-to-right probability
// of the continuation. Whole-text levels (the training mask) would differ in rare spots such as `word \n`,
// where a byte's level depends on the bytes after it and so would leak the continuation into its own score.
//
// Why full forwards rather than the KV-cached path: rows from different items and choices batch into one
// forward of B rows, so the work is a few large matrix products instead of one small step per continuation
// byte. Recomputing the shared context once per choice still comes out 4-6x faster on the native backend
// (fixture models, ~150-byte contexts), and about even on the reference backend. Rows are sorted by length before batching so that little padding is computed; padding goes after
// the real bytes, which (attention being causal and filler pooling slots coming last) leaves the real
// positions' logits unchanged.
//
// A request longer than LONG_REQUEST bytes takes the KV-cached path instead (context prefilled in chunks, then
// the continuation fed in chunks), so that its memory is the caches plus one chunk rather than a forward over
// the whole request at once (a 200 KB choice needed 3.9 GB that way).

import { BOS } from "../data/bytes.js";
import type { SplitStrategy } from "../data/splitter.js";
import { noGrad, scoped } from "../engine/tensor.js";
import { ByteLevels } from "../generate/levels.js";
import { DEFAULT_CHUNK, IncrementalAUNet } from "../generate/incremental-model.js";
import { argmax, logProbOf } from "../generate/sampling.js";
import type { AUNet } from "../model/aunet.js";

export interface ContinuationRequest {
  context: Uint8Array;
  /** At least one byte. */
  continuation: Uint8Array;
}

export interface ContinuationScore {
  /** Sum of the natural-log probabilities of the continuation's bytes. */
  logLikelihood: number;
  /** Whether every continuation byte was the model's most likely next byte (lm-eval-harness `is_greedy`). */
  greedy: boolean;
}

/** Bytes above which a request is scored through the KV caches in chunks instead of in a batched forward. */
export const LONG_REQUEST = 4096;

export interface LoglikOptions {
  /** Rows per forward (default 16). */
  batch?: number;
  /** Bytes per pass for long requests (default DEFAULT_CHUNK). */
  chunk?: number;
  /** Requests longer than this many bytes take the KV-cached path (default LONG_REQUEST). */
  longRequest?: number;
  /** Called after each forward with the number of requests scored so far. */
  onProgress?: (done: number, total: number) => void;
}

/** Input ids and their generation-time levels for one request (the final continuation byte is not input). */
export function requestRow(
  req: ContinuationRequest,
  strategy: SplitStrategy,
  nLevels: number,
): { tokens: Int32Array; levels: Int32Array } {
  const { context, continuation } = req;
  const n = context.length + continuation.length;
  const tokens = new Int32Array(n);
  tokens[0] = BOS;
  tokens.set(context, 1);
  tokens.set(continuation.subarray(0, continuation.length - 1), 1 + context.length);
  const byteLevels = new ByteLevels(strategy, nLevels);
  const levels = new Int32Array(n);
  levels.set(byteLevels.prompt(tokens.subarray(0, 1 + context.length)));
  for (let i = 1 + context.length; i < n; i++) levels[i] = byteLevels.next(tokens[i]);
  return { tokens, levels };
}

export function scoreContinuations(
  model: AUNet,
  strategy: SplitStrategy,
  requests: readonly ContinuationRequest[],
  opts: LoglikOptions = {},
): ContinuationScore[] {
  const batch = opts.batch ?? 16;
  if (!Number.isInteger(batch) || batch < 1)
    throw new RangeError(`batch must be an integer >= 1, got ${batch}`);
  requests.forEach((r, i) => {
    if (r.continuation.length === 0) throw new RangeError(`request ${i} has an empty continuation`);
  });
  const V = model.config.vocab_size;
  const out: ContinuationScore[] = new Array(requests.length);
  const order = requests.map((_, i) => i);
  const len = (i: number) => requests[i].context.length + requests[i].continuation.length;
  order.sort((a, b) => len(b) - len(a) || a - b);
  let done = 0;
  // Longest first: the long requests lead the order.
  let first = 0;
  const inc = new IncrementalAUNet(model);
  for (; first < order.length && len(order[first]) > (opts.longRequest ?? LONG_REQUEST); first++) {
    const i = order[first];
    out[i] = scoreLong(inc, strategy, requests[i], opts.chunk ?? DEFAULT_CHUNK);
    opts.onProgress?.(++done, requests.length);
  }
  for (let start = first; start < order.length; start += batch) {
    const ids = order.slice(start, start + batch);
    const rows = ids.map((i) => requestRow(requests[i], strategy, model.nLevels));
    const B = rows.length;
    const S = rows[0].tokens.length;
    const tokens = new Int32Array(B * S);
    const levels = new Int32Array(B * S);
    rows.forEach((r, b) => {
      tokens.set(r.tokens, b * S);
      levels.set(r.levels, b * S);
    });
    const logits = noGrad(() =>
      scoped(() => model.forward(tokens, levels, B, S, { caps: false }).logits.toFloat32()),
    );
    ids.forEach((i, b) => {
      const { context, continuation } = requests[i];
      let ll = 0;
      let greedy = true;
      for (let j = 0; j < continuation.length; j++) {
        const off = (b * S + context.length + j) * V;
        const row = logits.subarray(off, off + V);
        const target = continuation[j];
        ll += logProbOf(row, target);
        if (greedy && argmax(row) !== target) greedy = false;
      }
      out[i] = { logLikelihood: ll, greedy };
    });
    done += B;
    opts.onProgress?.(done, requests.length);
  }
  return out;
}

/** One request through the KV caches: the context prefilled, the continuation fed, in chunks. */
function scoreLong(
  inc: IncrementalAUNet,
  strategy: SplitStrategy,
  req: ContinuationRequest,
  chunk: number,
): ContinuationScore {
  const { tokens, levels } = requestRow(req, strategy, inc.nLevels);
  const nc = 1 + req.context.length;
  const { state, logits } = inc.prefill(tokens.subarray(0, nc), levels.subarray(0, nc), {
    chunk,
    capacity: tokens.length,
  });
  const V = logits.length;
  let ll = 0;
  let greedy = true;
  const score = (row: Float32Array, target: number) => {
    ll += logProbOf(row, target);
    if (greedy && argmax(row) !== target) greedy = false;
  };
  try {
    score(logits, req.continuation[0]);
    // Continuation byte j + 1 is predicted by the logits of input position nc + j.
    for (let a = nc; a < tokens.length; a += chunk) {
      const b = Math.min(tokens.length, a + chunk);
      const rows = inc.feed(state, tokens.subarray(a, b), levels.subarray(a, b), { chunk, allLogits: true });
      for (let p = a; p < b; p++)
        score(rows.subarray((p - a) * V, (p - a + 1) * V), req.continuation[p - nc + 1]);
    }
  } finally {
    state.release();
  }
  return { logLikelihood: ll, greedy };
}
