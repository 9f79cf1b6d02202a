// Continuous batching over the incremental AU-Net: every running sequence advances by one byte per step, all in
// one call of the incremental model; a new request is prefilled and joins at the next step, a finished or
// cancelled one leaves at once and frees its caches. `Generator.generate` runs a fixed batch to the end; a
// server needs sequences to come and go, so this loop is built from the same parts (prefill, sampler, stop
// filter, UTF-8 decoder) and takes the same decisions byte by byte, hence the same output for the same seed.
//
// Browser-portable (no Node built-ins): the playground runs it too, with its own way to yield between steps.

import { EOS, Utf8StreamDecoder, isByteId } from "../data/bytes.js";
import type { Generator, GeneratedToken, StopReason } from "../generate/generator.js";
import type { SequenceState } from "../generate/incremental-model.js";
import type { ByteLevels } from "../generate/levels.js";
import { Sampler, logProbOf, type SamplingOptions } from "../generate/sampling.js";
import { StopFilter } from "../generate/stop.js";
import { Rng } from "../util/rng.js";

export interface StreamToken extends GeneratedToken {
  /** The `topLogprobs` most likely ids at this position with their log-probabilities, most likely first. */
  top?: { id: number; logProb: number }[];
}

/** One piece of output: whole UTF-8 text and the tokens whose bytes it holds (in order). */
export interface Chunk {
  text: string;
  tokens: StreamToken[];
}

export interface Job {
  prompt: string | Uint8Array;
  maxBytes: number;
  sampling: SamplingOptions;
  seed: number;
  stop: readonly string[];
  /** How many alternatives to report per token (0: none). */
  topLogprobs: number;
  onChunk(chunk: Chunk): void;
  onDone(reason: StopReason, tokens: number): void;
  /** The job failed (its prompt could not be prefilled, a callback threw); it has left the batch. */
  onError(err: unknown): void;
}

export interface BatcherOptions {
  /** Sequences that step together (the rest wait). */
  maxBatch: number;
  /** Sequences that may wait for a place in the batch; more are refused. */
  maxQueue: number;
  /** Run `fn` soon, after pending I/O (Node: setImmediate; a page: a macrotask). */
  defer: (fn: () => void) => void;
}

interface Row {
  job: Job;
  state: SequenceState;
  logits: Float32Array;
  levels: ByteLevels;
  sampler: Sampler;
  stop: StopFilter;
  decoder: Utf8StreamDecoder;
  /** Tokens whose bytes are held back by the stop filter or the decoder, oldest first. */
  held: StreamToken[];
  /** Bytes of `held` that the stop filter has let through but the decoder has not yet completed. */
  undecoded: number;
  count: number;
  done: boolean;
}

/** Handle of a submitted job. */
export interface Ticket {
  /** Leave the batch (or the queue) now; no more callbacks. */
  cancel(): void;
}

export class Batcher {
  private readonly waiting: { job: Job; cancelled: boolean }[] = [];
  private active: Row[] = [];
  private scheduled = false;
  private idleWaiters: (() => void)[] = [];
  /** Steps run and sequence-steps done (for statistics). */
  steps = 0;
  rowSteps = 0;

  constructor(
    readonly generator: Generator,
    readonly options: BatcherOptions,
  ) {}

  get activeCount(): number {
    return this.active.length;
  }
  get waitingCount(): number {
    return this.waiting.length;
  }

  /** Whether `n` more sequences fit (running or queued). */
  canAccept(n: number): boolean {
    const { maxBatch, maxQueue } = this.options;
    return this.active.length + this.waiting.length + n <= maxBatch + maxQueue;
  }

  /** Queue a job; it joins the batch at the next step with a free place. Null when full. */
  submit(job: Job): Ticket | null {
    if (!this.canAccept(1)) return null;
    const entry = { job, cancelled: false };
    this.waiting.push(entry);
    this.schedule();
    return {
      cancel: () => {
        entry.cancelled = true;
        const w = this.waiting.indexOf(entry);
        if (w >= 0) this.waiting.splice(w, 1);
        const row = this.active.find((r) => r.job === job);
        if (row) this.retire(row);
        this.notifyIdle();
      },
    };
  }

  /** Resolves when nothing runs or waits. */
  idle(): Promise<void> {
    if (this.active.length === 0 && this.waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private notifyIdle(): void {
    if (this.active.length > 0 || this.waiting.length > 0) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.options.defer(() => {
      this.scheduled = false;
      this.tick();
      if (this.active.length > 0 || this.waiting.length > 0) this.schedule();
      else this.notifyIdle();
    });
  }

  private admit(): void {
    while (this.active.length < this.options.maxBatch && this.waiting.length > 0) {
      const { job } = this.waiting.shift()!;
      let row: Row;
      try {
        const start = this.generator.start(job.prompt);
        row = {
          job,
          ...start,
          sampler: new Sampler(job.sampling, new Rng(job.seed)),
          stop: new StopFilter(job.stop),
          decoder: new Utf8StreamDecoder(),
          held: [],
          undecoded: 0,
          count: 0,
          done: false,
        };
      } catch (e) {
        job.onError(e);
        continue;
      }
      this.active.push(row);
      if (job.maxBytes === 0) this.finish(row, "max_bytes");
    }
  }

  /** One step: admit waiting jobs, sample a byte for every running sequence, feed them back together. */
  private tick(): void {
    this.admit();
    const fed: Row[] = [];
    const ids: number[] = [];
    const levels: number[] = [];
    for (const row of this.active) {
      if (row.done) continue;
      try {
        const id = row.sampler.sample(row.logits);
        const token: StreamToken = { id, level: row.levels.next(id), logProb: logProbOf(row.logits, id) };
        if (row.job.topLogprobs > 0) token.top = topOf(row.logits, row.job.topLogprobs);
        row.count++;
        if (this.consume(row, token)) continue;
        if (row.count >= row.job.maxBytes) {
          this.finish(row, "max_bytes");
          continue;
        }
        fed.push(row);
        ids.push(id);
        levels.push(token.level);
      } catch (e) {
        this.fail(row, e);
      }
    }
    if (fed.length > 0) {
      try {
        const logits = this.generator.incremental.step(
          fed.map((r) => r.state),
          ids,
          levels,
        );
        const V = logits.length / fed.length;
        fed.forEach((r, j) => (r.logits = logits.subarray(j * V, (j + 1) * V)));
        this.steps++;
        this.rowSteps += fed.length;
      } catch (e) {
        // A failed step fails the sequences in it, never the loop (and so never the other requests).
        for (const r of fed) this.fail(r, e);
      }
    }
    this.active = this.active.filter((r) => !r.done);
  }

  /** Route a sampled token through the stop filter and decoder; true when the sequence ended with it. */
  private consume(row: Row, token: StreamToken): boolean {
    if (token.id === EOS) {
      row.held.push(token);
      this.finish(row, "eos");
      return true;
    }
    if (!isByteId(token.id)) {
      // BOS: no text, fed back like any token (as Generator.generate does).
      this.emit(row, "", [token]);
      return false;
    }
    row.held.push(token);
    const { out, stopped } = row.stop.push(token.id);
    this.decode(row, out);
    if (stopped) {
      this.finish(row, "stop");
      return true;
    }
    return false;
  }

  /** Decode bytes the stop filter released; text goes out with the tokens it completes. */
  private decode(row: Row, bytes: readonly number[]): void {
    for (const b of bytes) {
      const text = row.decoder.push(b);
      row.undecoded++;
      if (text.length > 0) this.release(row, text);
    }
  }

  private release(row: Row, text: string): void {
    // The decoder may still hold the last byte(s) of a character; the tokens it released are those before.
    const n = Math.min(row.undecoded, row.held.length);
    const tokens = row.held.splice(0, n);
    row.undecoded -= n;
    this.emit(row, text, tokens);
  }

  private emit(row: Row, text: string, tokens: StreamToken[]): void {
    if (text.length === 0 && tokens.length === 0) return;
    row.job.onChunk({ text, tokens });
  }

  private finish(row: Row, reason: StopReason): void {
    if (row.done) return;
    try {
      if (reason !== "stop") this.decode(row, row.stop.flush());
      const tail = row.decoder.flush();
      // The tokens of a stop string are dropped with it; anything else still held (the EOS, the bytes of an
      // unfinished character) leaves with the last chunk.
      const tokens = reason === "stop" ? row.held.slice(0, row.undecoded) : row.held;
      row.held = [];
      if (tail.length > 0 || tokens.length > 0) row.job.onChunk({ text: tail, tokens });
      this.retire(row);
      row.job.onDone(reason, row.count);
    } catch (e) {
      this.fail(row, e);
    }
  }

  private fail(row: Row, e: unknown): void {
    this.retire(row);
    row.job.onError(e);
  }

  private retire(row: Row): void {
    if (row.done) return;
    row.done = true;
    row.state.release();
    this.active = this.active.filter((r) => r !== row);
  }
}

/** The k most likely ids of a row of logits, with their log-probabilities. */
export function topOf(logits: Float32Array, k: number): { id: number; logProb: number }[] {
  let mx = -Infinity;
  for (let j = 0; j < logits.length; j++) if (logits[j] > mx) mx = logits[j];
  let s = 0;
  for (let j = 0; j < logits.length; j++) s += Math.exp(logits[j] - mx);
  const lse = mx + Math.log(s);
  const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b);
  return order.slice(0, k).map((id) => ({ id, logProb: logits[id] - lse }));
}
