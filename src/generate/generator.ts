// Text generation with AU-Net: prompts are prefilled, then every byte is sampled, given its level and fed back
// through the incremental model, several prompts at once. Output is handed over as text as soon as it is whole
// UTF-8 and certainly not part of a stop string.

import type { AUNet } from "../model/aunet.js";
import type { SplitStrategy } from "../data/splitter.js";
import { BOS, EOS, Utf8StreamDecoder, encodeText, isByteId } from "../data/bytes.js";
import { Rng } from "../util/rng.js";
import { IncrementalAUNet, type PrefillOptions, type SequenceState } from "./incremental-model.js";
import { ByteLevels } from "./levels.js";
import { DEFAULT_SAMPLING, Sampler, logProbOf, type SamplingOptions } from "./sampling.js";
import { StopFilter } from "./stop.js";

export interface GenerateOptions extends Partial<SamplingOptions> {
  /** Most tokens to sample per prompt (default 256). */
  maxBytes?: number;
  /** Prompt i samples from Rng(seed + i), so a prompt's output does not depend on the rest of the batch. */
  seed?: number;
  /** Generation of a prompt ends when its output ends with one of these; the stop string is not output. */
  stop?: readonly string[];
  /** Each piece of a prompt's output, as soon as it is complete UTF-8 (never half a character). */
  onText?: (prompt: number, text: string) => void;
  /** Every sampled token, stop-string bytes and the final EOS included. */
  onToken?: (prompt: number, token: GeneratedToken) => void;
  /** Progress of a long prompt's prefill: bytes done so far and the total, after each chunk. */
  onPrefill?: (prompt: number, done: number, total: number) => void;
}

export interface GeneratedToken {
  /** 0..255 a byte, 256 BOS, 257 EOS. */
  id: number;
  /** The level it was fed back with (incremental splitter; BOS at the top level). */
  level: number;
  /** Natural log of its probability under the model (temperature 1, before top-k/top-p). */
  logProb: number;
}

export type StopReason = "eos" | "stop" | "max_bytes";

export interface Generation {
  text: string;
  tokens: GeneratedToken[];
  stopReason: StopReason;
}

/** A prompt's bytes behind the BOS that starts every document. */
export function promptTokens(prompt: string | Uint8Array): Int32Array {
  const bytes = typeof prompt === "string" ? encodeText(prompt) : prompt;
  const tokens = new Int32Array(bytes.length + 1);
  tokens[0] = BOS;
  tokens.set(bytes, 1);
  return tokens;
}

interface Row {
  index: number;
  state: SequenceState;
  logits: Float32Array;
  levels: ByteLevels;
  sampler: Sampler;
  stop: StopFilter;
  decoder: Utf8StreamDecoder;
  text: string[];
  tokens: GeneratedToken[];
  stopReason: StopReason | null;
}

export class Generator {
  readonly incremental: IncrementalAUNet;

  constructor(
    readonly model: AUNet,
    readonly strategy: SplitStrategy,
  ) {
    this.incremental = new IncrementalAUNet(model);
  }

  /**
   * Prefill a prompt (BOS added) in chunks: its state, the logits of its last byte and the levels of what
   * follows. `opts.capacity` counts the bytes expected after the prompt.
   */
  start(
    prompt: string | Uint8Array,
    opts: PrefillOptions = {},
  ): { state: SequenceState; logits: Float32Array; levels: ByteLevels } {
    const tokens = promptTokens(prompt);
    const levels = new ByteLevels(this.strategy, this.model.nLevels);
    const { state, logits } = this.incremental.prefill(tokens, levels.prompt(tokens), {
      ...opts,
      capacity: tokens.length + (opts.capacity ?? 0),
    });
    return { state, logits, levels };
  }

  generate(prompts: readonly (string | Uint8Array)[], opts: GenerateOptions = {}): Generation[] {
    const maxBytes = opts.maxBytes ?? 256;
    if (!Number.isInteger(maxBytes) || maxBytes < 0)
      throw new RangeError(`max bytes must be an integer >= 0, got ${maxBytes}`);
    const sampling: SamplingOptions = {
      temperature: opts.temperature ?? DEFAULT_SAMPLING.temperature,
      topK: opts.topK ?? DEFAULT_SAMPLING.topK,
      topP: opts.topP ?? DEFAULT_SAMPLING.topP,
    };
    const seed = opts.seed ?? 0;
    const rows: Row[] = prompts.map((p, index) => ({
      index,
      ...this.start(p, {
        capacity: maxBytes,
        onProgress: opts.onPrefill && ((done, total) => opts.onPrefill!(index, done, total)),
      }),
      sampler: new Sampler(sampling, new Rng(seed + index)),
      stop: new StopFilter(opts.stop ?? []),
      decoder: new Utf8StreamDecoder(),
      text: [],
      tokens: [],
      stopReason: null,
    }));
    const emit = (row: Row, piece: string) => {
      if (piece.length === 0) return;
      row.text.push(piece);
      opts.onText?.(row.index, piece);
    };
    const finish = (row: Row, reason: StopReason) => {
      row.stopReason = reason;
      if (reason !== "stop") for (const b of row.stop.flush()) emit(row, row.decoder.push(b));
      emit(row, row.decoder.flush());
      row.state.release();
    };

    let live = rows;
    try {
      if (maxBytes === 0) for (const row of rows) finish(row, "max_bytes");
      while (live.length > 0 && maxBytes > 0) {
        const fed: Row[] = [];
        const ids: number[] = [];
        const levels: number[] = [];
        for (const row of live) {
          const id = row.sampler.sample(row.logits);
          const token = { id, level: row.levels.next(id), logProb: logProbOf(row.logits, id) };
          row.tokens.push(token);
          opts.onToken?.(row.index, token);
          if (id === EOS) {
            finish(row, "eos");
            continue;
          }
          if (isByteId(id)) {
            const { out, stopped } = row.stop.push(id);
            for (const b of out) emit(row, row.decoder.push(b));
            if (stopped) {
              finish(row, "stop");
              continue;
            }
          }
          if (row.tokens.length >= maxBytes) {
            finish(row, "max_bytes");
            continue;
          }
          fed.push(row);
          ids.push(id);
          levels.push(token.level);
        }
        if (fed.length > 0) {
          const logits = this.incremental.step(
            fed.map((r) => r.state),
            ids,
            levels,
          );
          const V = logits.length / fed.length;
          fed.forEach((r, j) => (r.logits = logits.subarray(j * V, (j + 1) * V)));
        }
        live = fed;
      }
    } finally {
      // After an exception (a callback's, say) the unfinished rows still hold cache memory.
      for (const row of rows) if (row.stopReason === null) row.state.release();
    }
    return rows.map((r) => ({
      text: r.text.join(""),
      tokens: r.tokens,
      stopReason: r.stopReason ?? "max_bytes",
    }));
  }
}
