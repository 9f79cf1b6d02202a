// The simplest correct sampler: for every new byte, a full forward over the whole sequence so far, with level
// masks recomputed by the splitter over that sequence. Quadratic in the length and without KV caches, but it
// needs nothing beyond model.forward, so it is the reference a cached generator can be checked against and
// the stand-in until one exists. The window is the model's byte length (max_seqlens[0]); longer contexts keep
// only the most recent bytes, starting a new BOS-led window the way training rows start at a top-level boundary.

import { BOS, EOS, Utf8StreamDecoder } from "../data/bytes.js";
import { levelMask, type SplitStrategy } from "../data/splitter.js";
import { noGrad } from "../engine/tensor.js";
import type { AUNet } from "../model/aunet.js";
import { Rng } from "../util/rng.js";

export interface SampleOptions {
  maxBytes: number;
  /** 0 = greedy. */
  temperature: number;
  /** Sample among the k most likely ids only (0 = all). */
  topK: number;
  seed: number;
  /** Stop at EOS (default true). */
  stopAtEos?: boolean;
  /** Receives the text as it is completed (a character at a time). */
  onText?: (s: string) => void;
}

/** Pick an id from logits with temperature and top-k, using `rng`. */
export function sampleLogits(logits: Float32Array, temperature: number, topK: number, rng: Rng): number {
  const V = logits.length;
  if (temperature <= 0) {
    let best = 0;
    for (let i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  let ids = Array.from({ length: V }, (_, i) => i);
  if (topK > 0 && topK < V) ids = ids.sort((a, b) => logits[b] - logits[a]).slice(0, topK);
  let max = -Infinity;
  for (const i of ids) max = Math.max(max, logits[i]);
  const w = ids.map((i) => Math.exp((logits[i] - max) / temperature));
  const total = w.reduce((a, b) => a + b, 0);
  let u = rng.next() * total;
  for (let j = 0; j < ids.length; j++) {
    u -= w[j];
    if (u < 0) return ids[j];
  }
  return ids[ids.length - 1];
}

/** Continue `prompt` (bytes) by up to `maxBytes` sampled bytes. Returns the new ids (EOS included if sampled). */
export function generateNaive(
  model: AUNet,
  strategy: SplitStrategy,
  prompt: Uint8Array,
  o: SampleOptions,
): number[] {
  const rng = new Rng(o.seed);
  const window = model.config.max_seqlens[0];
  const seq: number[] = [BOS, ...prompt];
  const out: number[] = [];
  const decoder = new Utf8StreamDecoder();
  const V = model.config.vocab_size;
  for (let n = 0; n < o.maxBytes; n++) {
    const ctx = seq.length <= window ? seq : [BOS, ...seq.slice(seq.length - window + 1)];
    const ids = Int32Array.from(ctx);
    // The splitter sees bytes only: BOS/EOS restart its state and get level 0, then the model lifts position 0.
    const levels = levelMask(ids, strategy);
    const S = ids.length;
    const logits = noGrad(() => model.forward(ids, levels, 1, S).logits.toFloat32());
    const next = sampleLogits(logits.subarray((S - 1) * V, S * V), o.temperature, o.topK, rng);
    out.push(next);
    if (next === EOS && o.stopAtEos !== false) break;
    seq.push(next);
    const text = decoder.push(next);
    if (text && o.onText) o.onText(text);
  }
  const rest = decoder.flush();
  if (rest && o.onText) o.onText(rest);
  return out;
}
