// A byte-level BPE tokenizer (GPT-2 style) for the baseline of the paper's comparison: text is pre-split into
// chunks by a simple regex, merges are learnt from chunk frequencies, and encoding applies merges by rank inside
// each chunk. Ids 0..255 are the bytes and 256/257 are BOS/EOS exactly as in the byte vocabulary, so any byte
// string, invalid UTF-8 included, encodes losslessly and nothing is ever unknown; merge r gets id 258 + r.
//
// Why not the Hugging Face `tokenizers` npm package: it installs from the registry (its tarball bundles
// prebuilt binaries) and trains BPE, but its Node binding (0.23) exposes no trainer options, so the vocabulary
// size cannot be chosen, and its string API cannot carry invalid UTF-8. This trainer is small and exact.
//
// Pre-splitting runs on a latin1 view of the bytes (one char per byte), so the regex sees every byte string
// and never fails on invalid UTF-8. Letters are ASCII letters plus every byte >= 0x80, which keeps multi-byte
// characters inside their words; whitespace is the ASCII set only.

import { BOS, EOS } from "../data/bytes.js";
import { UserError } from "../util/errors.js";

/** GPT-2's pattern with byte classes: contractions, ` ?letters`, ` ?digits`, ` ?other`, whitespace runs. */
export const PRESPLIT_PATTERN =
  "'(?:s|t|re|ve|m|ll|d)| ?[A-Za-z\\x80-\\xff]+| ?[0-9]+| ?[^\\t\\n\\v\\f\\r A-Za-z0-9\\x80-\\xff]+|[\\t\\n\\v\\f\\r ]+(?![^\\t\\n\\v\\f\\r ])|[\\t\\n\\v\\f\\r ]+";

/** Ids below this are bytes and the two document markers; merges come after. */
export const FIRST_MERGE_ID = 258;

const FORMAT = "aunet-bpe";

export function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
}

/** The pre-split chunks of a byte string, as latin1 strings (their concatenation is the input). */
export function presplit(bytes: Uint8Array): string[] {
  return latin1(bytes).match(new RegExp(PRESPLIT_PATTERN, "g")) ?? [];
}

export interface BpeTrainOptions {
  /** Total vocabulary: 256 bytes + BOS + EOS + merges. */
  vocabSize: number;
  /** Pairs seen fewer times than this are never merged (training stops early). */
  minFrequency?: number;
}

/** Chunk frequencies of a corpus, accumulated document by document (memory grows with distinct chunks only). */
export class ChunkCounter {
  readonly counts = new Map<string, number>();
  add(bytes: Uint8Array): void {
    for (const c of presplit(bytes)) this.counts.set(c, (this.counts.get(c) ?? 0) + 1);
  }
}

// Pair keys pack two ids below 2^20 into one exact double.
const PAIR = 1 << 20;
const pairKey = (a: number, b: number) => a * PAIR + b;

/**
 * A max-heap of (count, pair) with lazy invalidation: counts change all the time, so stale entries stay in the
 * heap and are skipped (or re-pushed with their current count) when they surface. Ties go to the smaller pair
 * key, which makes training deterministic.
 */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];

  get size(): number {
    return this.keys.length;
  }

  private above(i: number, j: number): boolean {
    const ci = this.counts[i],
      cj = this.counts[j];
    return ci > cj || (ci === cj && this.keys[i] < this.keys[j]);
  }

  private swap(i: number, j: number): void {
    [this.counts[i], this.counts[j]] = [this.counts[j], this.counts[i]];
    [this.keys[i], this.keys[j]] = [this.keys[j], this.keys[i]];
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    for (let i = this.keys.length - 1; i > 0;) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  pop(): { count: number; key: number } {
    const top = { count: this.counts[0], key: this.keys[0] };
    const lastC = this.counts.pop()!,
      lastK = this.keys.pop()!;
    if (this.keys.length > 0) {
      this.counts[0] = lastC;
      this.keys[0] = lastK;
      const n = this.keys.length;
      for (let i = 0; ;) {
        const l = 2 * i + 1,
          r = l + 1;
        let best = i;
        if (l < n && this.above(l, best)) best = l;
        if (r < n && this.above(r, best)) best = r;
        if (best === i) break;
        this.swap(i, best);
        i = best;
      }
    }
    return top;
  }
}

/**
 * Learn merges from chunk frequencies. Each distinct chunk is a symbol sequence weighted by its frequency;
 * a merge rewrites only the chunks that contain its pair (found through a pair -> chunks index) and updates
 * the pair counts by subtracting those chunks' old pairs and adding their new ones.
 */
export function trainBpe(counts: ReadonlyMap<string, number>, opts: BpeTrainOptions): BpeTokenizer {
  const nMerges = opts.vocabSize - FIRST_MERGE_ID;
  if (!Number.isInteger(opts.vocabSize) || nMerges < 0 || opts.vocabSize > PAIR)
    throw new UserError(
      `BPE vocabulary size must be an integer from ${FIRST_MERGE_ID} (bytes + BOS + EOS) to ${PAIR}, got ${opts.vocabSize}`,
    );
  const minFreq = Math.max(1, opts.minFrequency ?? 2);
  // Sorted so that chunk indices, and with them everything downstream, do not depend on insertion order.
  const entries = [...counts.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const words: number[][] = entries.map(([s]) => Array.from(s, (ch) => ch.charCodeAt(0)));
  const freq = entries.map(([, c]) => c);
  const pairCount = new Map<number, number>();
  const where = new Map<number, Set<number>>();
  const addPairs = (w: number, sign: number) => {
    const syms = words[w];
    for (let i = 0; i + 1 < syms.length; i++) {
      const k = pairKey(syms[i], syms[i + 1]);
      pairCount.set(k, (pairCount.get(k) ?? 0) + sign * freq[w]);
      if (sign > 0) {
        let s = where.get(k);
        if (!s) where.set(k, (s = new Set()));
        s.add(w);
      }
    }
  };
  for (let w = 0; w < words.length; w++) addPairs(w, 1);
  const heap = new PairHeap();
  for (const [k, c] of pairCount) heap.push(c, k);

  const merges: [number, number][] = [];
  while (merges.length < nMerges && heap.size > 0) {
    const { count, key } = heap.pop();
    const current = pairCount.get(key) ?? 0;
    if (count !== current) {
      if (current > 0) heap.push(current, key);
      continue;
    }
    if (current < minFreq) break;
    const a = Math.floor(key / PAIR),
      b = key % PAIR;
    const id = FIRST_MERGE_ID + merges.length;
    merges.push([a, b]);
    const touched = new Set<number>();
    for (const w of where.get(key) ?? []) {
      const syms = words[w];
      let has = false;
      for (let i = 0; i + 1 < syms.length && !has; i++) has = syms[i] === a && syms[i + 1] === b;
      if (!has) continue; // the index is lazy: an earlier merge may have consumed the pair here
      for (let i = 0; i + 1 < syms.length; i++) touched.add(pairKey(syms[i], syms[i + 1]));
      addPairs(w, -1);
      const out: number[] = [];
      for (let i = 0; i < syms.length; i++) {
        if (i + 1 < syms.length && syms[i] === a && syms[i + 1] === b) {
          out.push(id);
          i++;
        } else out.push(syms[i]);
      }
      words[w] = out;
      addPairs(w, 1);
      for (let i = 0; i + 1 < out.length; i++) touched.add(pairKey(out[i], out[i + 1]));
    }
    where.delete(key);
    pairCount.delete(key);
    for (const k of touched) {
      const c = pairCount.get(k) ?? 0;
      if (c > 0) heap.push(c, k);
      else pairCount.delete(k);
    }
  }
  return new BpeTokenizer(merges);
}

/** A trained tokenizer: merges in rank order. Immutable apart from its encoding cache. */
export class BpeTokenizer {
  /** Bytes of every id (BOS/EOS: none). */
  readonly pieces: Uint8Array[];
  private readonly rank = new Map<number, number>();
  private readonly cache = new Map<string, Int32Array>();

  constructor(readonly merges: readonly (readonly [number, number])[]) {
    this.pieces = [];
    for (let b = 0; b < 256; b++) this.pieces.push(Uint8Array.of(b));
    this.pieces.push(new Uint8Array(0), new Uint8Array(0)); // BOS, EOS
    merges.forEach(([a, b], r) => {
      const id = FIRST_MERGE_ID + r;
      if (!(a >= 0 && a < id && b >= 0 && b < id) || a === BOS || a === EOS || b === BOS || b === EOS)
        throw new UserError(`BPE merge ${r} refers to ids (${a}, ${b}) that do not exist before it`);
      const p = new Uint8Array(this.pieces[a].length + this.pieces[b].length);
      p.set(this.pieces[a]);
      p.set(this.pieces[b], this.pieces[a].length);
      this.pieces.push(p);
      this.rank.set(pairKey(a, b), r);
    });
  }

  get vocabSize(): number {
    return FIRST_MERGE_ID + this.merges.length;
  }

  /** Apply merges by rank inside one chunk (lowest-ranked pair first, all its occurrences at once). */
  private encodeChunk(chunk: string): Int32Array {
    const hit = this.cache.get(chunk);
    if (hit) return hit;
    let syms = Array.from(chunk, (ch) => ch.charCodeAt(0));
    for (;;) {
      let best = -1;
      for (let i = 0; i + 1 < syms.length; i++) {
        const r = this.rank.get(pairKey(syms[i], syms[i + 1]));
        if (r !== undefined && (best < 0 || r < best)) best = r;
      }
      if (best < 0) break;
      const [a, b] = this.merges[best];
      const out: number[] = [];
      for (let i = 0; i < syms.length; i++) {
        if (i + 1 < syms.length && syms[i] === a && syms[i + 1] === b) {
          out.push(FIRST_MERGE_ID + best);
          i++;
        } else out.push(syms[i]);
      }
      syms = out;
    }
    const ids = Int32Array.from(syms);
    // Chunks repeat heavily (Zipf); bounding the cache keeps memory flat on huge corpora.
    if (this.cache.size < 1 << 18) this.cache.set(chunk, ids);
    return ids;
  }

  encode(bytes: Uint8Array): Int32Array {
    const parts = presplit(bytes).map((c) => this.encodeChunk(c));
    const out = new Int32Array(parts.reduce((s, p) => s + p.length, 0));
    let k = 0;
    for (const p of parts) {
      out.set(p, k);
      k += p.length;
    }
    return out;
  }

  /** The bytes of some ids; BOS and EOS contribute nothing. */
  decode(ids: ArrayLike<number>): Uint8Array {
    let n = 0;
    for (let i = 0; i < ids.length; i++) n += this.piece(ids[i]).length;
    const out = new Uint8Array(n);
    let k = 0;
    for (let i = 0; i < ids.length; i++) {
      const p = this.piece(ids[i]);
      out.set(p, k);
      k += p.length;
    }
    return out;
  }

  private piece(id: number): Uint8Array {
    const p = this.pieces[id];
    if (!p) throw new Error(`token id ${id} is outside the vocabulary of ${this.vocabSize}`);
    return p;
  }

  toJSON(): BpeJson {
    return {
      format: FORMAT,
      version: 1,
      pattern: PRESPLIT_PATTERN,
      vocab_size: this.vocabSize,
      special: { bos: BOS, eos: EOS },
      merges: this.merges.map(([a, b]) => [a, b]),
    };
  }

  static fromJSON(raw: unknown, what = "tokenizer"): BpeTokenizer {
    const r = raw as Partial<BpeJson> | null;
    if (typeof r !== "object" || r === null || r.format !== FORMAT)
      throw new UserError(`${what}: not an aunet BPE tokenizer (format "${FORMAT}")`);
    if (r.version !== 1) throw new UserError(`${what}: unsupported tokenizer version ${String(r.version)}`);
    if (r.pattern !== PRESPLIT_PATTERN)
      throw new UserError(`${what}: its pre-split pattern differs from this version's; retrain it`);
    if (!Array.isArray(r.merges) || r.merges.some((m) => !Array.isArray(m) || m.length !== 2))
      throw new UserError(`${what}: 'merges' must be a list of [a, b] id pairs`);
    const merges = r.merges.map(([a, b]) => {
      if (!Number.isInteger(a) || !Number.isInteger(b))
        throw new UserError(`${what}: merge ids must be integers`);
      return [a, b] as [number, number];
    });
    const tok = new BpeTokenizer(merges);
    if (r.vocab_size !== tok.vocabSize)
      throw new UserError(`${what}: vocab_size ${r.vocab_size} disagrees with ${merges.length} merges`);
    return tok;
  }
}

export interface BpeJson {
  format: string;
  version: number;
  pattern: string;
  vocab_size: number;
  special: { bos: number; eos: number };
  merges: [number, number][];
}
