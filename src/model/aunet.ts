// The AU-Net model (spec sections 4, 5 and 7): byte embeddings, encoder stages with pooling between them, a
// trunk, and decoder stages with multi-linear upsampling and skip connections, then vocab_norm + vocab.
// Parameters live in one Map under their official state-dict names.

import type { Backend } from "../engine/backend.js";
import { Tensor, noGrad } from "../engine/tensor.js";
import * as op from "../engine/ops.js";
import type { RopeTables } from "../engine/ops.js";
import { UserError } from "../util/errors.js";
import { Rng } from "../util/rng.js";
import { type ModelConfig, paramSpecs, nHeads, nKvHeads, windowOf, numStages } from "./config.js";
import { computePools, flattenRows, type PoolLevel } from "./pooling.js";

/**
 * cos/sin of the RoPE angles of the given positions [positions.length, headDim/2], computed the way the official
 * code does, in float32 step by step, so that a row depends only on its position (generation builds rows for
 * arbitrary positions and must match the full tables bit for bit).
 */
export function ropeAngles(
  headDim: number,
  positions: ArrayLike<number>,
  theta: number,
): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const f = Math.fround;
  const freqs = new Float32Array(half);
  for (let j = 0; j < half; j++) freqs[j] = f(1 / f(Math.pow(theta, f(f(2 * j) / headDim))));
  const n = positions.length;
  const cos = new Float32Array(n * half),
    sin = new Float32Array(n * half);
  for (let r = 0; r < n; r++) {
    const t = positions[r];
    for (let j = 0; j < half; j++) {
      const a = f(t * freqs[j]);
      cos[r * half + j] = Math.cos(a);
      sin[r * half + j] = Math.sin(a);
    }
  }
  return { cos, sin };
}

/**
 * RoPE tables for positions 0..maxPos-1. Their storages are allocated outside any `scoped` frame: the tables
 * live as long as the model, even when they are (re)built in the middle of a scoped step.
 */
export function ropeTables(backend: Backend, headDim: number, maxPos: number, theta: number): RopeTables {
  const half = headDim / 2;
  const positions = new Int32Array(maxPos);
  for (let t = 0; t < maxPos; t++) positions[t] = t;
  const { cos, sin } = ropeAngles(headDim, positions, theta);
  return {
    cos: new Tensor(backend, backend.fromFloat32(cos), [maxPos, half]),
    sin: new Tensor(backend, backend.fromFloat32(sin), [maxPos, half]),
    maxPos,
  };
}

export interface ForwardOptions {
  /** Pad pooled sequences to their caps exactly like the official fixed shapes (fixture checks). */
  padToCap?: boolean;
  /** Keep stage inputs/outputs (named like the fixtures' act.*) for inspection and gradient checks. */
  keepActivations?: boolean;
  /**
   * Honour max_seqlens (default true, as in training). Inference turns the caps off: the sequence may then be
   * longer than max_seqlens[0], every boundary is pooled, and RoPE tables grow as needed.
   */
  caps?: boolean;
}

export interface ForwardResult {
  logits: Tensor;
  pools: PoolLevel[];
  /** Stage activations by fixture name (act.encoders.0.out, ...), when asked for. */
  acts: Map<string, Tensor>;
}

/** How a block gets its positions and attention when not running a whole sequence (generation). */
export interface BlockOptions {
  /** RoPE table to index (default: the stage's training table). */
  rope?: RopeTables;
  /** RoPE row of each of the B*S rows (default: 0..S-1 per batch row). */
  positions?: Int32Array | null;
  /** Attention over q [B,S,H,hd], k/v [B,S,Hkv,hd] (default: causal with the stage's window). */
  attend?: (q: Tensor, k: Tensor, v: Tensor) => Tensor;
}

/**
 * Ids come from files (fixtures, checkpoints' data) as well as from the byte pipeline: one outside the
 * vocabulary would index past the embedding table, so it is refused with its position.
 */
export function checkTokenIds(tokens: ArrayLike<number>, vocabSize: number): void {
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (!(Number.isInteger(t) && t >= 0 && t < vocabSize))
      throw new UserError(
        `token id ${t} at position ${i} is outside the vocabulary: ids are 0-255 (bytes), 256 (BOS) and 257 (EOS)`,
      );
  }
}

export class AUNet {
  readonly params = new Map<string, Tensor>();
  readonly rope: RopeTables[];
  readonly nStages: number;

  constructor(
    readonly config: ModelConfig,
    readonly backend: Backend,
    weights?: Map<string, Float32Array>,
  ) {
    this.nStages = numStages(config);
    const rng = new Rng(config.seed);
    for (const spec of paramSpecs(config)) {
      const size = spec.shape.reduce((a, b) => a * b, 1);
      let data: Float32Array;
      const given = weights?.get(spec.name);
      if (weights) {
        if (!given) throw new Error(`missing parameter ${spec.name}`);
        if (given.length !== size)
          throw new Error(`parameter ${spec.name}: ${given.length} values for [${spec.shape}]`);
        data = given;
      } else {
        data = new Float32Array(size);
        if (spec.init === "ones") data.fill(1);
        else if (spec.init === "normal1") for (let i = 0; i < size; i++) data[i] = rng.normal();
        else for (let i = 0; i < size; i++) data[i] = rng.truncNormal(spec.init);
      }
      this.params.set(spec.name, Tensor.from(backend, data, spec.shape, true));
    }
    this.rope = [];
    for (let i = 0; i < this.nStages; i++)
      this.rope.push(
        ropeTables(backend, config.head_dims[i], config.max_seqlens[i], config.block.rope_theta),
      );
  }

  /**
   * The RoPE tables of a stage, grown (doubling, so that repeated calls stay cheap) to cover positions below
   * maxPos; rows depend only on their position, so a grown table agrees with the original on its prefix.
   */
  ropeFor(stage: number, maxPos: number): RopeTables {
    const cur = this.rope[stage];
    if (maxPos <= cur.maxPos) return cur;
    // The old tables are not released: a recorded tape may still read them.
    const m = this.config;
    const grown = ropeTables(
      this.backend,
      m.head_dims[stage],
      Math.max(maxPos, 2 * cur.maxPos),
      m.block.rope_theta,
    );
    this.rope[stage] = grown;
    return grown;
  }

  p(name: string): Tensor {
    const t = this.params.get(name);
    if (!t) throw new Error(`no parameter ${name}`);
    return t;
  }

  /** Number of pooling levels (n - 1). */
  get nLevels(): number {
    return this.nStages - 1;
  }

  /**
   * One pre-norm transformer block: h = x + Attn(norm(x)); out = h + FFN(norm(h)). x is [B, S, d].
   * Generation reuses it with its own RoPE rows and an attention over its KV caches (`opts`).
   */
  block(prefix: string, stage: number, x: Tensor, opts: BlockOptions = {}): Tensor {
    const m = this.config;
    const [B, S, d] = x.shape;
    const H = nHeads(m, stage),
      Hkv = nKvHeads(m, stage),
      hd = m.head_dims[stage];
    const eps = m.block.norm_eps;
    const rope = opts.rope ?? this.rope[stage];
    const positions = opts.positions ?? null;
    const w = (name: string) => this.p(`${prefix}.${name}.weight`);
    const a = op.rmsnorm(x, w("attention_norm"), eps);
    const q = op.rope(op.reshape(op.linear(a, w("attention.wq")), [B, S, H, hd]), rope, positions);
    const k = op.rope(op.reshape(op.linear(a, w("attention.wk")), [B, S, Hkv, hd]), rope, positions);
    const v = op.reshape(op.linear(a, w("attention.wv")), [B, S, Hkv, hd]);
    const o = opts.attend ? opts.attend(q, k, v) : op.attention(q, k, v, { window: windowOf(m, stage) });
    const h = op.add(x, op.linear(op.reshape(o, [B, S, d]), w("attention.wo")));
    const f = op.rmsnorm(h, w("ffn_norm"), eps);
    const g = op.swiglu(op.linear(f, w("feed_forward.w1")), op.linear(f, w("feed_forward.w3")));
    return op.add(h, op.linear(g, w("feed_forward.w2")));
  }

  /** All blocks of a stage ("encoders.i", "decoders.i" or "trunk"). */
  stage(prefix: string, stage: number, x: Tensor): Tensor {
    for (let l = 0; l < this.config.layers[stage]; l++) x = this.block(`${prefix}.layers.${l}`, stage, x);
    return x;
  }

  /** Pool stage-i vectors [B, lenIn, d_i] into stage i+1: gather at boundaries, down_norm, trans_down. */
  down(i: number, x: Tensor, pool: PoolLevel, B: number): Tensor {
    const t = `transitions.${i}`;
    const g = op.gatherRows(x, flattenRows(pool.idx, B, pool.lenIn));
    const y = op.linear(
      op.rmsnorm(g, this.p(`${t}.down_norm.weight`), this.config.block.norm_eps),
      this.p(`${t}.trans_down.weight`),
    );
    return op.reshape(y, [B, pool.lenOut, this.config.dimensions[i + 1]]);
  }

  /** Upsample stage-(i+1) vectors [B, lenOut, d_{i+1}] to stage i: [B, lenIn, d_i] (without the residual). */
  up(i: number, x: Tensor, pool: PoolLevel, B: number): Tensor {
    const m = this.config;
    const t = `transitions.${i}`;
    const di = m.dimensions[i];
    const n = op.rmsnorm(x, this.p(`${t}.up_norm.weight`), m.block.norm_eps);
    let u: Tensor;
    if (m.pooling_type === "simple") {
      // No repetition: each real slot lands only on its own boundary position.
      const y = op.reshape(op.linear(n, this.p(`${t}.trans_up.weight`)), [B * pool.lenOut, di]);
      let count = 0;
      for (let b = 0; b < B; b++) count += pool.nsel[b];
      const slots = new Int32Array(count),
        targets = new Int32Array(count);
      let c = 0;
      for (let b = 0; b < B; b++)
        for (let k = 0; k < pool.nsel[b]; k++) {
          slots[c] = b * pool.lenOut + k;
          targets[c++] = b * pool.lenIn + pool.idx[b * pool.lenOut + k];
        }
      u = op.scatterAddRows(op.gatherRows(y, slots), targets, B * pool.lenIn);
    } else {
      const g = op.gatherRows(n, flattenRows(pool.rep, B, pool.lenOut));
      if (m.pooling_type === "simple_indexed_matmul")
        u = op.add(
          op.linear(g, this.p(`${t}.trans_up.weight`)),
          op.indexedLinear(g, this.p(`${t}.indexed_linear.weight`), pool.pos),
        );
      else {
        const pe = op.embedding(this.p(`${t}.pos_encoding.weight`), pool.pos, [pool.pos.length]);
        u = op.linear(op.add(g, pe), this.p(`${t}.trans_up.weight`));
      }
    }
    return op.reshape(u, [B, pool.lenIn, di]);
  }

  /**
   * Full forward over tokens [B, S] with their level masks [B, S] (position 0 of every row is forced to the
   * top level). Returns logits [B, S, V].
   */
  forward(
    tokens: Int32Array,
    levelMask: Int32Array,
    B: number,
    S: number,
    opts: ForwardOptions = {},
  ): ForwardResult {
    const m = this.config;
    if (tokens.length !== B * S || levelMask.length !== B * S)
      throw new Error(`forward: expected ${B}x${S} tokens and level masks`);
    checkTokenIds(tokens, m.vocab_size);
    const caps = opts.caps !== false;
    if (caps && S > m.max_seqlens[0])
      throw new Error(`sequence of ${S} bytes is longer than max_seqlens[0] = ${m.max_seqlens[0]}`);
    const acts = new Map<string, Tensor>();
    const keep = (name: string, t: Tensor) => {
      if (opts.keepActivations) acts.set(name, t);
    };
    const pools = computePools(
      levelMask,
      B,
      S,
      caps ? m.max_seqlens : m.max_seqlens.map(() => S),
      this.nLevels,
      opts.padToCap === true,
    );
    if (!caps) {
      this.ropeFor(0, S);
      pools.forEach((pl, i) => this.ropeFor(i + 1, pl.lenOut));
    }
    let x = op.embedding(this.p("tok_embeddings.weight"), tokens, [B, S]);
    const residuals: Tensor[] = [];
    for (let i = 0; i < this.nLevels; i++) {
      if (i > 0) keep(`act.encoders.${i}.in`, x);
      x = this.stage(`encoders.${i}`, i, x);
      keep(`act.encoders.${i}.out`, x);
      residuals.push(x);
      x = this.down(i, x, pools[i], B);
    }
    const trunkPrefix = "trunk";
    if (this.nLevels > 0) keep("act.trunk.in", x);
    x = this.stage(trunkPrefix, this.nStages - 1, x);
    if (this.nLevels > 0) keep("act.trunk.out", x);
    for (let i = this.nLevels - 1; i >= 0; i--) {
      const u = this.up(i, x, pools[i], B);
      x = m.residuals[i] ? op.add(residuals[i], u) : u;
      keep(`act.decoders.${i}.in`, x);
      x = this.stage(`decoders.${i}`, i, x);
      keep(`act.decoders.${i}.out`, x);
    }
    const logits = op.linear(op.rmsnorm(x, this.p("vocab_norm.weight"), m.norm_eps), this.p("vocab.weight"));
    return { logits, pools, acts };
  }

  /** Mean cross-entropy over all B*S positions (BOS/EOS targets included), as the official loss. */
  loss(
    tokens: Int32Array,
    levelMask: Int32Array,
    targets: Int32Array,
    B: number,
    S: number,
    opts: ForwardOptions = {},
  ): ForwardResult & { loss: Tensor; rowLoss: Tensor } {
    const V = this.config.vocab_size;
    checkTokenIds(targets, V);
    const r = this.forward(tokens, levelMask, B, S, opts);
    const { loss, rowLoss } = op.crossEntropy(op.reshape(r.logits, [B * S, V]), targets);
    return { ...r, loss, rowLoss };
  }

  zeroGrad(): void {
    for (const t of this.params.values()) t.zeroGrad();
  }

  /** Weights as host float32 arrays, in state-dict order. */
  stateDict(): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const [k, t] of this.params) out.set(k, t.toFloat32());
    return out;
  }

  loadStateDict(weights: Map<string, Float32Array>): void {
    noGrad(() => {
      for (const [k, t] of this.params) {
        const w = weights.get(k);
        if (!w) throw new Error(`missing parameter ${k}`);
        if (w.length !== t.size) throw new Error(`parameter ${k}: ${w.length} values for [${t.shape}]`);
        this.backend.write(t.storage, w, 0);
      }
    });
  }
}
