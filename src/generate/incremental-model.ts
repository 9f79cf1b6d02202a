// AU-Net one byte at a time (paper section 2.1.2, spec section 10).
//
// Each stage is a causal transformer over its own sequence, so it can advance by one position with a KV cache,
// but it only advances at its own positions: the encoder and decoder of stage i run for a byte of level
// v >= i, the trunk only when v = nL. Everything the stages exchange is local in time:
// - pooling into stage i+1 takes the stage-i encoder output at the boundary byte itself (gather, down_norm,
//   trans_down), so it is computed in the same step;
// - upsampling into stage i reads the LATEST output of stage i+1 (computed this step when the byte is a
//   boundary, otherwise kept from an earlier step) and the offset of the byte from that boundary (mod 16);
// - the skip connection of decoder i is the encoder-i output of the same step.
// So the logits of a step equal those of a full forward over all bytes so far with the same levels, and with
// the caps (max_seqlens) off, which is what inference wants: a cap would freeze the coarse stages once a
// prompt is long enough.
//
// Several sequences advance together: the linear maps of a stage run once over every row that reaches it,
// and only attention is per row (each row reads its own cache).
//
// The caches and the latest coarse vectors stay on the device (copyRows): only the logits of a step come back
// to the host, for sampling. A long prompt is prefilled in chunks through the caches, so its memory is bounded
// by the chunk, not the prompt.

import type { AUNet } from "../model/aunet.js";
import { ropeAngles } from "../model/aunet.js";
import { nKvHeads, windowOf } from "../model/config.js";
import { MAX_POS } from "../model/pooling.js";
import * as op from "../engine/ops.js";
import type { RopeTables } from "../engine/ops.js";
import { Tensor, noGrad, scoped } from "../engine/tensor.js";
import { KvCache } from "./kv-cache.js";

/** What one sequence carries from one step to the next. */
export class SequenceState {
  /** KV caches by transformer ("encoders.0", "trunk", "decoders.0", ...), one per layer. */
  readonly caches = new Map<string, KvCache[]>();
  /** Positions so far in each stage's own sequence: the RoPE position of the next one. */
  readonly length: number[];
  /** Per pooling level i: offset of the latest stage-i position from the boundary that opened its segment. */
  readonly offset: Int32Array;
  /** Per stage s >= 1: the output of stage s at its latest position [1, d_s], on the device (null for stage 0). */
  readonly latest: (Tensor | null)[];

  /** `capacity`: positions each cache makes room for up front (see KvCache). */
  constructor(model: AUNet, capacity = 0) {
    const c = model.config;
    const n = model.nStages;
    const add = (prefix: string, stage: number) =>
      this.caches.set(
        prefix,
        Array.from(
          { length: c.layers[stage] },
          () =>
            new KvCache(model.backend, nKvHeads(c, stage), c.head_dims[stage], windowOf(c, stage), capacity),
        ),
      );
    for (let i = 0; i < n - 1; i++) {
      add(`encoders.${i}`, i);
      add(`decoders.${i}`, i);
    }
    add("trunk", n - 1);
    this.length = new Array<number>(n).fill(0);
    this.offset = new Int32Array(n - 1);
    const be = model.backend;
    this.latest = c.dimensions.map((d, s) => (s === 0 ? null : new Tensor(be, be.alloc(d), [1, d])));
  }

  /** Bytes consumed so far (prompt included). */
  get bytes(): number {
    return this.length[0];
  }

  /** Key/value slots held by all caches together (bounded when every stage has a sliding window). */
  get cacheSlots(): number {
    let n = 0;
    for (const layers of this.caches.values()) for (const c of layers) n += c.capacity;
    return n;
  }

  /** Return the caches' memory to the backend; the state must not be used afterwards. */
  release(): void {
    for (const layers of this.caches.values()) for (const c of layers) c.release();
    for (const t of this.latest) if (t) t.backend.release(t.storage);
  }
}

type Attend = (layer: number, q: Tensor, k: Tensor, v: Tensor) => Tensor;

/** Bytes per pass of a prefill (and of `feed`): bounds the activations a long input needs at once. */
export const DEFAULT_CHUNK = 1024;

export interface PrefillOptions {
  /** Bytes per pass (default DEFAULT_CHUNK). */
  chunk?: number;
  /** Called after each chunk with the bytes done so far and the total. */
  onProgress?: (done: number, total: number) => void;
  /** Positions the caches make room for up front, e.g. prompt + maximum output (they grow past it). */
  capacity?: number;
}

export class IncrementalAUNet {
  /** Per stage: positions it processed in steps since construction (how often it ran for new bytes). */
  readonly stageRuns: number[];
  /** Per stage: positions it processed in prefills. */
  readonly prefillRuns: number[];

  constructor(readonly model: AUNet) {
    this.stageRuns = new Array<number>(model.nStages).fill(0);
    this.prefillRuns = new Array<number>(model.nStages).fill(0);
  }

  get nLevels(): number {
    return this.model.nLevels;
  }

  /**
   * Run a prompt through every stage, filling a fresh state's caches. `levels` are the prompt's levels;
   * position 0 is forced to the top level (it is the BOS that every stage starts from) and levels above nL
   * count as nL. The prompt goes through in chunks of `chunk` bytes (each a pass per stage over its new
   * positions, attending to the caches), so memory is bounded by the chunk and the caches, not the prompt.
   * Returns the logits [V] of the last byte.
   */
  prefill(
    tokens: ArrayLike<number>,
    levels: ArrayLike<number>,
    opts: PrefillOptions = {},
  ): { state: SequenceState; logits: Float32Array } {
    const L = tokens.length;
    if (L === 0) throw new Error("prefill needs at least one token (the BOS)");
    if (levels.length !== L) throw new Error(`prefill: ${levels.length} levels for ${L} tokens`);
    const nL = this.nLevels;
    const lm = Int32Array.from(levels, (v) => Math.min(Math.max(v, 0), nL));
    lm[0] = nL;
    const state = new SequenceState(this.model, opts.capacity ?? 0);
    let logits: Float32Array = new Float32Array(0);
    try {
      logits = this.feed(state, Int32Array.from(tokens), lm, { ...opts, allLogits: false });
    } catch (e) {
      state.release();
      throw e;
    }
    return { state, logits };
  }

  /**
   * Feed a sequence `tokens` with their levels (clamped to [0, nL]) in chunks: the caches grow by their
   * positions. Returns the logits of the last token [V], or of every token [n, V] with `allLogits`.
   */
  feed(
    state: SequenceState,
    tokens: Int32Array,
    levels: Int32Array,
    opts: PrefillOptions & { allLogits?: boolean } = {},
  ): Float32Array {
    const chunk = opts.chunk ?? DEFAULT_CHUNK;
    if (!Number.isInteger(chunk) || chunk < 1)
      throw new RangeError(`chunk must be an integer >= 1, got ${chunk}`);
    const n = tokens.length;
    const V = this.model.config.vocab_size;
    const out = new Float32Array(opts.allLogits ? n * V : V);
    for (let a = 0; a < n; a += chunk) {
      const b = Math.min(n, a + chunk);
      const lv = levels.subarray(a, b).map((v) => Math.min(Math.max(v, 0), this.nLevels));
      const logits = this.extend(state, tokens.subarray(a, b), lv, opts.allLogits === true);
      if (opts.allLogits) out.set(logits, a * V);
      else if (b === n) out.set(logits);
      opts.onProgress?.(b, n);
    }
    return out;
  }

  /**
   * Advance one sequence by a chunk of tokens: each stage runs once over the chunk's positions at that stage,
   * attending to its caches. The same computation as `step` for several bytes at once, and as a full
   * forward over everything fed so far. Returns the logits of the last token [V] (every token's with `all`).
   */
  private extend(state: SequenceState, tokens: Int32Array, lv: Int32Array, all: boolean): Float32Array {
    const m = this.model;
    const c = m.config;
    const be = m.backend;
    const nL = this.nLevels;
    const T = tokens.length;
    // at[s]: chunk-local byte indices of the new stage-s positions.
    const at: number[][] = [];
    for (let s = 0; s <= nL; s++) at.push(Array.from(lv.keys()).filter((j) => lv[j] >= s));
    const logits = noGrad(() =>
      scoped(() => {
        const stage = (prefix: string, s: number, x: Tensor) => this.extendStage(state, prefix, s, x);
        let x = op.embedding(m.p("tok_embeddings.weight"), tokens, [1, T]);
        const res: Tensor[] = [];
        // Stage outputs at their new positions, for the coarse vectors of the stage below.
        const outs: (Tensor | null)[] = new Array<Tensor | null>(nL + 1).fill(null);
        let depth = 0;
        for (let i = 0; i < nL && at[i].length > 0; i++) {
          x = stage(`encoders.${i}`, i, x);
          res.push(x);
          if (at[i + 1].length === 0) break;
          const local = Int32Array.from(at[i].flatMap((j, k) => (lv[j] > i ? [k] : [])));
          x = op.reshape(this.down(i, x, local), [1, local.length, c.dimensions[i + 1]]);
          depth = i + 1;
        }
        if (depth === nL && at[nL].length > 0) outs[nL] = x = stage("trunk", nL, x);
        for (let i = Math.min(depth, nL - 1); i >= 0; i--) {
          const u = this.upChunk(state, at, lv, i, outs[i + 1]);
          x = stage(`decoders.${i}`, i, c.residuals[i] ? op.add(res[i], u) : u);
          outs[i] = x;
        }
        // The coarse vectors carried to the next chunk, and the offsets from the latest boundaries.
        for (let s = 1; s <= nL; s++) {
          const o = outs[s];
          if (o) op.copyRows(state.latest[s]!, 0, o, o.size / o.dim(-1) - 1, 1);
        }
        for (let i = 0; i < nL; i++)
          for (const j of at[i]) state.offset[i] = lv[j] > i ? 0 : (state.offset[i] + 1) % MAX_POS;
        const last = op.gatherRows(x, Int32Array.of(T - 1));
        return this.vocab(all ? x : last).toFloat32();
      }),
    );
    at.forEach((pos, s) => {
      state.length[s] += pos.length;
      this.prefillRuns[s] += pos.length;
    });
    return logits;
  }

  /** One transformer of stage s over a chunk's new positions [1, n, d], through the caches. */
  private extendStage(state: SequenceState, prefix: string, s: number, x: Tensor): Tensor {
    const n = x.dim(1);
    const start = state.length[s];
    const rope = ropeTable(
      this.model,
      s,
      Int32Array.from({ length: n }, (_, t) => start + t),
    );
    const caches = state.caches.get(prefix)!;
    const window = windowOf(this.model.config, s);
    return this.transformer(prefix, s, x, rope, null, (l, q, k, v) => {
      const kv = caches[l].extend(k, v, n);
      return op.attention(q, kv.k, kv.v, { qOffset: kv.qOffset, window });
    });
  }

  /**
   * What stage i+1 adds to each new stage-i position of a chunk (without the skip connection): [1, n_i, d_i].
   * A position's coarse vector is the stage-(i+1) output at the latest boundary at or before it: one of this
   * chunk's (`coarse`, the new stage-(i+1) outputs) or, before the chunk's first boundary, the state's latest.
   */
  private upChunk(
    state: SequenceState,
    at: readonly number[][],
    lv: Int32Array,
    i: number,
    coarse: Tensor | null,
  ): Tensor {
    const m = this.model;
    const c = m.config;
    const be = m.backend;
    const t = `transitions.${i}`;
    const di = c.dimensions[i],
      dn = c.dimensions[i + 1];
    const nNew = coarse ? coarse.size / dn : 0;
    // Row 0: the latest vector from before the chunk; rows 1..: the chunk's new ones.
    const table = Tensor.empty(be, [1 + nNew, dn]);
    op.copyRows(table, 0, state.latest[i + 1]!, 0, 1);
    if (coarse) op.copyRows(table, 1, coarse, 0, nNew);
    const rep = new Int32Array(at[i].length),
      pos = new Int32Array(at[i].length);
    let seg = 0,
      off = state.offset[i];
    at[i].forEach((j, k) => {
      if (lv[j] > i) {
        seg++;
        off = 0;
      } else off = (off + 1) % MAX_POS;
      rep[k] = seg;
      pos[k] = off;
    });
    const n = at[i].length;
    const norm = (g: Tensor) => op.rmsnorm(g, m.p(`${t}.up_norm.weight`), c.block.norm_eps);
    let u: Tensor;
    if (c.pooling_type === "simple") {
      // No repetition: the coarse vector lands only on its own boundary byte, every other row gets nothing.
      const local = Int32Array.from(at[i].flatMap((j, k) => (lv[j] > i ? [k] : [])));
      if (local.length === 0) u = Tensor.zeros(be, [n, di]);
      else {
        const y = op.linear(
          norm(
            op.gatherRows(
              table,
              Int32Array.from(local, (k) => rep[k]),
            ),
          ),
          m.p(`${t}.trans_up.weight`),
        );
        u = op.scatterAddRows(y, local, n);
      }
    } else {
      const g = norm(op.gatherRows(table, rep));
      if (c.pooling_type === "simple_indexed_matmul")
        u = op.add(
          op.linear(g, m.p(`${t}.trans_up.weight`)),
          op.indexedLinear(g, m.p(`${t}.indexed_linear.weight`), pos),
        );
      else {
        const pe = op.embedding(m.p(`${t}.pos_encoding.weight`), pos, [n]);
        u = op.linear(op.add(g, pe), m.p(`${t}.trans_up.weight`));
      }
    }
    return op.reshape(u, [1, n, di]);
  }

  /**
   * Advance each sequence by one token at the given level (its incremental level; levels above nL count as
   * nL). Returns the logits [n, V] of the new tokens, one row per state. A step that throws leaves the states
   * unusable.
   */
  step(states: readonly SequenceState[], tokens: ArrayLike<number>, levels: ArrayLike<number>): Float32Array {
    const m = this.model;
    const c = m.config;
    const nL = this.nLevels;
    const n = states.length;
    if (tokens.length !== n || levels.length !== n)
      throw new Error(`step: ${tokens.length} tokens and ${levels.length} levels for ${n} sequences`);
    if (n === 0) return new Float32Array(0);
    const lv = Int32Array.from(levels, (v) => Math.min(Math.max(v, 0), nL));
    // rowsAt[s]: the sequences whose new byte reaches stage s, in batch order.
    const rowsAt: number[][] = [];
    for (let s = 0; s <= nL; s++) rowsAt.push(states.map((_, r) => r).filter((r) => lv[r] >= s));
    let depth = 0;
    while (depth < nL && rowsAt[depth + 1].length > 0) depth++;

    const logits = noGrad(() =>
      scoped(() => {
        // Encoder i and decoder i sit at the same stage-i positions: one RoPE table serves both.
        const ropes = rowsAt.map((rows, s) => (s <= depth ? this.ropeRows(states, rows, s) : null));
        const stage = (prefix: string, s: number, x: Tensor) =>
          this.stepStage(states, rowsAt[s], prefix, s, x, ropes[s]!);
        let x = op.embedding(m.p("tok_embeddings.weight"), Int32Array.from(tokens), [n, 1]);
        const res: Tensor[] = [];
        for (let i = 0; i < Math.min(depth + 1, nL); i++) {
          x = stage(`encoders.${i}`, i, x);
          res.push(x);
          if (i < depth) x = this.down(i, x, boundaryRows(rowsAt[i], lv, i));
        }
        if (depth === nL) {
          x = stage("trunk", nL, x);
          if (nL > 0) setLatest(states, rowsAt[nL], nL, x);
        }
        // A boundary of level v opens a new segment at every level below v; the byte moves one further from
        // its boundary at level v itself.
        states.forEach((st, r) => {
          for (let i = 0; i < nL; i++) {
            if (lv[r] > i) st.offset[i] = 0;
            else if (lv[r] === i) st.offset[i] = (st.offset[i] + 1) % MAX_POS;
          }
        });
        for (let i = Math.min(depth, nL - 1); i >= 0; i--) {
          const u = this.up(states, rowsAt[i], lv, i);
          x = stage(`decoders.${i}`, i, c.residuals[i] ? op.add(res[i], u) : u);
          if (i > 0) setLatest(states, rowsAt[i], i, x);
        }
        return this.vocab(x).toFloat32();
      }),
    );
    for (let s = 0; s <= depth; s++) {
      for (const r of rowsAt[s]) states[r].length[s]++;
      this.stageRuns[s] += rowsAt[s].length;
    }
    return logits;
  }

  /** vocab(vocab_norm(x)) for x [..., d0] -> [rows, V]. */
  private vocab(x: Tensor): Tensor {
    const m = this.model;
    const d0 = m.config.dimensions[0];
    const flat = op.reshape(x, [x.size / d0, d0]);
    return op.linear(op.rmsnorm(flat, m.p("vocab_norm.weight"), m.config.norm_eps), m.p("vocab.weight"));
  }

  /**
   * One transformer of stage s for the new position of each of `rows` (x [rows, 1, d]). The projections run
   * batched; attention runs per row against that row's cache, where every visible slot is inside the window
   * (the ring holds exactly the last W positions), so no mask is needed beyond "all of them".
   */
  private stepStage(
    states: readonly SequenceState[],
    rows: readonly number[],
    prefix: string,
    s: number,
    x: Tensor,
    rope: RopeTables,
  ): Tensor {
    const be = this.model.backend;
    const positions = Int32Array.from(rows, (_, j) => j);
    return this.transformer(prefix, s, x, rope, positions, (l, q, k, v) => {
      if (rows.length === 1) {
        // One row: its query is already the right tensor, no need to split the batch.
        const cache = states[rows[0]].caches.get(prefix)![l];
        cache.append(k, v, 0, 1);
        const kv = cache.view();
        return op.attention(q, kv.k, kv.v, { qOffset: cache.visible - 1 });
      }
      // Each row attends to its own cache: split the queries row by row on the device, then reassemble.
      const H = q.dim(2);
      const out = Tensor.empty(be, q.shape);
      rows.forEach((r, j) => {
        const cache = states[r].caches.get(prefix)![l];
        cache.append(k, v, j, 1);
        const kv = cache.view();
        const qr = Tensor.empty(be, [1, 1, H, q.dim(3)]);
        op.copyRows(qr, 0, q, j * H, H);
        op.copyRows(out, j * H, op.attention(qr, kv.k, kv.v, { qOffset: cache.visible - 1 }), 0, H);
      });
      return out;
    });
  }

  /** The blocks of one transformer (AUNet.block), with RoPE rows and attention supplied by the caller. */
  private transformer(
    prefix: string,
    s: number,
    x: Tensor,
    rope: RopeTables,
    positions: Int32Array | null,
    attend: Attend,
  ): Tensor {
    for (let l = 0; l < this.model.config.layers[s]; l++)
      x = this.model.block(`${prefix}.layers.${l}`, s, x, {
        rope,
        positions,
        attend: (q, k, v) => attend(l, q, k, v),
      });
    return x;
  }

  /** RoPE rows for the next position of each of `rows` at stage s (row j of the table is row j's angle). */
  private ropeRows(states: readonly SequenceState[], rows: readonly number[], s: number): RopeTables {
    return ropeTable(
      this.model,
      s,
      Int32Array.from(rows, (r) => states[r].length[s]),
    );
  }

  /** Pool the encoder-i outputs of the rows whose byte is a boundary of level > i: [k, 1, d_{i+1}]. */
  private down(i: number, x: Tensor, local: Int32Array): Tensor {
    const m = this.model;
    const c = m.config;
    const t = `transitions.${i}`;
    const g = op.gatherRows(x, local);
    const y = op.linear(
      op.rmsnorm(g, m.p(`${t}.down_norm.weight`), c.block.norm_eps),
      m.p(`${t}.trans_down.weight`),
    );
    return op.reshape(y, [local.length, 1, c.dimensions[i + 1]]);
  }

  /**
   * What stage i+1 adds to each of `rows` at stage i (without the skip connection): [rows, 1, d_i], from the
   * latest stage-(i+1) vector and the row's offset since that boundary (spec section 7, step 5).
   */
  private up(states: readonly SequenceState[], rows: readonly number[], lv: Int32Array, i: number): Tensor {
    const m = this.model;
    const c = m.config;
    const be = m.backend;
    const t = `transitions.${i}`;
    const di = c.dimensions[i],
      dn = c.dimensions[i + 1];
    const coarse = (rs: readonly number[]) => {
      const g = Tensor.empty(be, [rs.length, dn]);
      rs.forEach((r, j) => op.copyRows(g, j, states[r].latest[i + 1]!, 0, 1));
      return op.rmsnorm(g, m.p(`${t}.up_norm.weight`), c.block.norm_eps);
    };
    let u: Tensor;
    if (c.pooling_type === "simple") {
      // No repetition: the coarse vector lands only on its own boundary byte, every other row gets nothing.
      const local = boundaryRows(rows, lv, i);
      if (local.length === 0) u = Tensor.zeros(be, [rows.length, di]);
      else {
        const y = op.linear(coarse(Array.from(local, (j) => rows[j])), m.p(`${t}.trans_up.weight`));
        u = op.scatterAddRows(y, local, rows.length);
      }
    } else {
      const g = coarse(rows);
      const pos = Int32Array.from(rows, (r) => states[r].offset[i]);
      if (c.pooling_type === "simple_indexed_matmul")
        u = op.add(
          op.linear(g, m.p(`${t}.trans_up.weight`)),
          op.indexedLinear(g, m.p(`${t}.indexed_linear.weight`), pos),
        );
      else {
        const pe = op.embedding(m.p(`${t}.pos_encoding.weight`), pos, [rows.length]);
        u = op.linear(op.add(g, pe), m.p(`${t}.trans_up.weight`));
      }
    }
    return op.reshape(u, [rows.length, 1, di]);
  }
}

/** Positions (within `rows`) of the rows whose level pools them into stage i+1. */
function boundaryRows(rows: readonly number[], lv: Int32Array, i: number): Int32Array {
  const out: number[] = [];
  rows.forEach((r, j) => {
    if (lv[r] > i) out.push(j);
  });
  return Int32Array.from(out);
}

/** Remember each row's stage-s output [rows, 1, d_s] as its latest coarse vector (a copy on the device). */
function setLatest(states: readonly SequenceState[], rows: readonly number[], s: number, x: Tensor): void {
  rows.forEach((r, j) => op.copyRows(states[r].latest[s]!, 0, x, j, 1));
}

/**
 * A RoPE table whose row j holds the angles of positions[j]. Built per call from the same float32 recipe as
 * the model's tables, so positions may run past max_seqlens without growing any table with the generation.
 */
function ropeTable(model: AUNet, s: number, positions: Int32Array): RopeTables {
  const hd = model.config.head_dims[s];
  const { cos, sin } = ropeAngles(hd, positions, model.config.block.rope_theta);
  const n = positions.length;
  return {
    cos: Tensor.from(model.backend, cos, [n, hd / 2]),
    sin: Tensor.from(model.backend, sin, [n, hd / 2]),
    maxPos: n,
  };
}
