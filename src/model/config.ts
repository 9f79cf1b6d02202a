// AU-Net configuration in the official layout (lingua `HierarchicalArgs` + data.regex.strategy), parsed and
// validated so that anything the official code would crash on is refused here with one clear sentence.

import { UserError } from "../util/errors.js";
import { parseStrategy, type SplitStrategy } from "../data/splitter.js";
import { VOCAB_SIZE } from "../data/bytes.js";
import { isObj } from "../util/json.js";

export type PoolingType = "simple_indexed_matmul" | "simple_repeat" | "simple";
const POOLING_TYPES: readonly PoolingType[] = ["simple_indexed_matmul", "simple_repeat", "simple"];

export interface BlockConfig {
  rope_theta: number;
  multiple_of: number;
  norm_eps: number;
  ffn_dim_multiplier: number | null;
  n_kv_heads: number | null;
}

/** The model section, resolved (max_seqlens[0] is the byte sequence length). */
export interface ModelConfig {
  dimensions: number[];
  head_dims: number[];
  layers: number[];
  sliding_windows: (number | null)[] | null;
  max_seqlens: number[];
  residuals: boolean[];
  block: BlockConfig;
  pooling_type: PoolingType;
  seed: number;
  vocab_size: number;
  lambda_level: number;
  norm_eps: number;
}

export interface AUNetConfig {
  model: ModelConfig;
  /** The splitter strategy, an ordered map such as {word1: "1@1", word2: "2@1"}. */
  strategy: SplitStrategy;
  /** The raw strategy object as written in configs (kept for round-tripping params.json). */
  strategyRaw: Record<string, string>;
  seqLen: number;
}

/** Number of transformer stages n (encoders/decoders n-1, one trunk). */
export function numStages(m: ModelConfig): number {
  return m.dimensions.length;
}

/** Official FFN hidden size: int(2*4d/3), times ffn_dim_multiplier, rounded up to multiple_of. */
export function ffnHidden(dim: number, block: BlockConfig): number {
  let h = Math.floor((2 * 4 * dim) / 3);
  if (block.ffn_dim_multiplier !== null) h = Math.floor(block.ffn_dim_multiplier * h);
  return block.multiple_of * Math.ceil(h / block.multiple_of);
}

export function nHeads(m: ModelConfig, stage: number): number {
  return m.dimensions[stage] / m.head_dims[stage];
}

export function nKvHeads(m: ModelConfig, stage: number): number {
  return m.block.n_kv_heads ?? nHeads(m, stage);
}

/** Window of stage i (0 = none). Decoder i uses encoder i's window; the trunk the last one. */
export function windowOf(m: ModelConfig, stage: number): number {
  const w = m.sliding_windows?.[stage] ?? null;
  return w === null ? 0 : w;
}

type Json = unknown;

/**
 * The largest shapes a config may ask for. Far above the paper's models (dimensions up to 4096, a few dozen
 * layers, 8 KB sequences) and below what would overflow a JS array or take minutes before any check: `layers:
 * [1e8, 1]` used to build 9e8 parameter descriptions (4.5 GB) and `seq_len: 1e9` to fail deep inside with a
 * RangeError after 4 GB. Whether a valid config fits the machine is a separate question: see impliedMemory.
 */
export const CONFIG_LIMITS = {
  maxStages: 8,
  maxDimension: 32768,
  maxLayers: 1024,
  /** Bytes per sequence (max_seqlens[0], data.seq_len) and any other stage's cap. */
  maxSeqLen: 1 << 20,
  maxSlidingWindow: 1 << 20,
  /** Elements of one parameter tensor: a Float32Array must be able to hold it. */
  maxTensorElements: 2 ** 31 - 1,
  maxParameters: 1e11,
} as const;

function intList(v: Json, name: string, lo: number, hi: number): number[] {
  if (!Array.isArray(v) || v.length === 0)
    throw new UserError(`model.${name} must be a non-empty list of integers`);
  if (v.length > CONFIG_LIMITS.maxStages)
    throw new UserError(
      `model.${name} has ${v.length} entries; at most ${CONFIG_LIMITS.maxStages} stages are supported`,
    );
  return v.map((x, i) => {
    if (typeof x !== "number" || !Number.isInteger(x))
      throw new UserError(`model.${name}[${i}] must be an integer, got ${JSON.stringify(x)}`);
    if (x < lo || x > hi)
      throw new UserError(`model.${name}[${i}] = ${x} is out of range: it must lie in [${lo}, ${hi}]`);
    return x;
  });
}

/** A sequence length from the config or a flag: an integer in [1, maxSeqLen]. */
function seqLength(v: Json, name: string): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > CONFIG_LIMITS.maxSeqLen)
    throw new UserError(
      `${name} must be an integer from 1 to ${CONFIG_LIMITS.maxSeqLen} (bytes per sequence), got ${JSON.stringify(v)}`,
    );
  return v;
}

function num(v: Json, name: string, dflt: number): number {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "number" || !Number.isFinite(v))
    throw new UserError(`${name} must be a number, got ${JSON.stringify(v)}`);
  return v;
}

const KNOWN_MODEL_KEYS = new Set([
  "dimensions",
  "head_dims",
  "layers",
  "sliding_windows",
  "max_seqlens",
  "residuals",
  "block",
  "pooling_type",
  "seed",
  "vocab_size",
  "lambda_level",
  "norm_eps",
]);

/**
 * Parse the official layout: `{model: {...}, data: {seq_len, regex: {strategy}}}` (params.json / config.json).
 * `overrides.seqLen` resolves max_seqlens[0] = -1 when there is no data section.
 */
export function parseConfig(raw: Json, overrides: { seqLen?: number } = {}): AUNetConfig {
  if (!isObj(raw)) throw new UserError("config must be a JSON object with 'model' and 'data' sections");
  const mr = raw.model;
  if (!isObj(mr))
    throw new UserError("config has no 'model' section (the official layout: {model: {...}, data: {...}})");
  for (const k of Object.keys(mr))
    if (!KNOWN_MODEL_KEYS.has(k)) throw new UserError(`unknown key model.${k}`);
  const data = isObj(raw.data) ? raw.data : {};

  const L = CONFIG_LIMITS;
  const dimensions = intList(mr.dimensions, "dimensions", 1, L.maxDimension);
  const n = dimensions.length;
  const layers = intList(mr.layers, "layers", 0, L.maxLayers);
  const head_dims = intList(mr.head_dims, "head_dims", 1, L.maxDimension);
  // -1 (max_seqlens[0] only) stands for data.seq_len.
  let max_seqlens =
    mr.max_seqlens === undefined || mr.max_seqlens === null
      ? null
      : intList(mr.max_seqlens, "max_seqlens", -1, L.maxSeqLen);
  for (const [name, list] of [
    ["layers", layers],
    ["head_dims", head_dims],
  ] as const)
    if (list.length !== n)
      throw new UserError(
        `model.${name} has ${list.length} entries but model.dimensions has ${n}: they must agree`,
      );

  const dataSeq = data.seq_len;
  let seqLen =
    overrides.seqLen !== undefined
      ? seqLength(overrides.seqLen, "the sequence length")
      : dataSeq === undefined || dataSeq === null
        ? undefined
        : seqLength(dataSeq, "data.seq_len");
  if (max_seqlens === null) {
    if (n > 1) throw new UserError("model.max_seqlens is required when there is more than one stage");
    if (seqLen === undefined)
      throw new UserError("no sequence length: set model.max_seqlens or data.seq_len");
    max_seqlens = [seqLen];
  }
  if (max_seqlens.length !== n)
    throw new UserError(`model.max_seqlens has ${max_seqlens.length} entries but model.dimensions has ${n}`);
  if (max_seqlens[0] === -1) {
    if (seqLen === undefined) throw new UserError("model.max_seqlens[0] is -1 but no data.seq_len is given");
    max_seqlens[0] = seqLen;
  }
  seqLen = max_seqlens[0];

  for (let i = 0; i < n; i++) {
    if (dimensions[i] <= 0) throw new UserError(`model.dimensions[${i}] must be positive`);
    if (layers[i] < 0) throw new UserError(`model.layers[${i}] must be >= 0`);
    if (head_dims[i] <= 0 || head_dims[i] % 2 !== 0)
      throw new UserError(`model.head_dims[${i}] must be a positive even number (RoPE rotates pairs)`);
    if (dimensions[i] % head_dims[i] !== 0)
      throw new UserError(
        `model.dimensions[${i}] = ${dimensions[i]} is not a multiple of head_dims[${i}] = ${head_dims[i]}`,
      );
    if (max_seqlens[i] <= 0) throw new UserError(`model.max_seqlens[${i}] must be positive`);
    if (head_dims[i] > dimensions[i])
      throw new UserError(
        `model.head_dims[${i}] = ${head_dims[i]} exceeds model.dimensions[${i}] = ${dimensions[i]}`,
      );
    if (i > 0 && max_seqlens[i] > max_seqlens[i - 1])
      throw new UserError(
        `model.max_seqlens must not grow with depth: max_seqlens[${i}] = ${max_seqlens[i]} > max_seqlens[${i - 1}] = ${max_seqlens[i - 1]}`,
      );
  }

  let sliding_windows: (number | null)[] | null = null;
  if (mr.sliding_windows !== undefined && mr.sliding_windows !== null) {
    if (!Array.isArray(mr.sliding_windows) || mr.sliding_windows.length !== n)
      throw new UserError(`model.sliding_windows must be null or a list of ${n} entries (one per stage)`);
    sliding_windows = mr.sliding_windows.map((w, i) => {
      if (w === null) return null;
      if (typeof w !== "number" || !Number.isInteger(w) || w <= 0 || w > L.maxSlidingWindow)
        throw new UserError(
          `model.sliding_windows[${i}] must be null or an integer from 1 to ${L.maxSlidingWindow}, got ${JSON.stringify(w)}`,
        );
      return w;
    });
  }

  let residuals: boolean[];
  if (mr.residuals === undefined || mr.residuals === null) residuals = new Array<boolean>(n - 1).fill(true);
  else {
    if (!Array.isArray(mr.residuals) || mr.residuals.some((r) => typeof r !== "boolean"))
      throw new UserError("model.residuals must be a list of booleans");
    residuals = mr.residuals as boolean[];
    // The official code replaces an empty list by all-true (`args.residuals or [True]*...`).
    if (residuals.length === 0) residuals = new Array<boolean>(n - 1).fill(true);
    if (residuals.length < n - 1)
      throw new UserError(
        `model.residuals has ${residuals.length} entries, need ${n - 1} (one per pooling level)`,
      );
    residuals = residuals.slice(0, n - 1);
  }

  const br = mr.block === undefined || mr.block === null ? {} : mr.block;
  if (!isObj(br)) throw new UserError("model.block must be an object");
  const nKv = br.n_kv_heads;
  const block: BlockConfig = {
    rope_theta: num(br.rope_theta, "model.block.rope_theta", 10000),
    multiple_of: num(br.multiple_of, "model.block.multiple_of", 256),
    norm_eps: num(br.norm_eps, "model.block.norm_eps", 1e-5),
    ffn_dim_multiplier:
      br.ffn_dim_multiplier === undefined || br.ffn_dim_multiplier === null
        ? null
        : num(br.ffn_dim_multiplier, "model.block.ffn_dim_multiplier", 1),
    n_kv_heads: nKv === undefined || nKv === null ? null : num(nKv, "model.block.n_kv_heads", 1),
  };
  if (!Number.isInteger(block.multiple_of) || block.multiple_of <= 0 || block.multiple_of > 1 << 16)
    throw new UserError(`model.block.multiple_of must be an integer from 1 to ${1 << 16}`);
  if (block.rope_theta <= 0) throw new UserError("model.block.rope_theta must be positive");
  if (block.norm_eps < 0) throw new UserError("model.block.norm_eps must be >= 0");
  if (block.ffn_dim_multiplier !== null && !(block.ffn_dim_multiplier > 0 && block.ffn_dim_multiplier <= 64))
    throw new UserError("model.block.ffn_dim_multiplier must be positive and at most 64");
  if (block.n_kv_heads !== null) {
    if (!Number.isInteger(block.n_kv_heads) || block.n_kv_heads <= 0)
      throw new UserError("model.block.n_kv_heads must be a positive integer or null");
    for (let i = 0; i < n; i++) {
      const h = dimensions[i] / head_dims[i];
      if (h % block.n_kv_heads !== 0)
        throw new UserError(
          `stage ${i} has ${h} heads, not a multiple of model.block.n_kv_heads = ${block.n_kv_heads}`,
        );
    }
  }
  for (const k of Object.keys(br))
    if (k === "n_heads" && br.n_heads !== null && br.n_heads !== undefined)
      throw new UserError(
        "model.block.n_heads is derived from dimensions/head_dims per stage; leave it null",
      );

  const pooling = mr.pooling_type ?? "simple_indexed_matmul";
  if (typeof pooling !== "string" || !POOLING_TYPES.includes(pooling as PoolingType))
    throw new UserError(
      `model.pooling_type must be one of ${POOLING_TYPES.join(", ")}; got ${JSON.stringify(pooling)}`,
    );

  const vocab_size = num(mr.vocab_size, "model.vocab_size", VOCAB_SIZE);
  if (mr.vocab_size !== undefined && mr.vocab_size !== -1 && vocab_size !== VOCAB_SIZE)
    throw new UserError(`model.vocab_size must be ${VOCAB_SIZE} (256 bytes + BOS + EOS), got ${vocab_size}`);
  const lambda_level = num(mr.lambda_level, "model.lambda_level", 0);
  if (lambda_level !== 0)
    throw new UserError(
      "model.lambda_level > 0 (the auxiliary level-prediction loss) is not supported; use 0",
    );

  // The splitter: data.regex.strategy, else the one-level word splitter.
  const regex = isObj(data.regex) ? data.regex : {};
  const strategyRaw = regex.strategy ?? defaultStrategy(n);
  const strategy = parseStrategy(strategyRaw);
  const strategyObj = strategyRaw as Record<string, string>;
  if (n > 1 && strategy.entries.length < n - 1)
    throw new UserError(
      `the splitter strategy has ${strategy.entries.length} levels but the model pools ${n - 1} times; add entries (e.g. word2: "2@1")`,
    );

  const model: ModelConfig = {
    dimensions,
    head_dims,
    layers,
    sliding_windows,
    max_seqlens,
    residuals,
    block,
    pooling_type: pooling as PoolingType,
    seed: num(mr.seed, "model.seed", 42),
    vocab_size: VOCAB_SIZE,
    lambda_level,
    norm_eps: num(mr.norm_eps, "model.norm_eps", 1e-5),
  };
  checkSize(model);
  return { model, strategy, strategyRaw: { ...strategyObj }, seqLen };
}

// Within the per-field ranges a config can still describe tensors no Float32Array can hold; refuse those by
// arithmetic, before anything is allocated.
function checkSize(m: ModelConfig): void {
  const L = CONFIG_LIMITS;
  for (let i = 0; i < m.dimensions.length; i++) {
    const d = m.dimensions[i];
    const biggest = Math.max(
      ffnHidden(d, m.block) * d,
      i + 1 < m.dimensions.length ? 16 * d * m.dimensions[i + 1] : 0,
    );
    if (biggest > L.maxTensorElements)
      throw new UserError(
        `stage ${i} (dimension ${d}) needs a weight matrix of ${biggest} elements, more than the ${L.maxTensorElements} one tensor can hold`,
      );
  }
  const total = countParams(m).total;
  if (total > L.maxParameters)
    throw new UserError(
      `the config has ${total.toExponential(2)} parameters, more than the ${L.maxParameters.toExponential(0)} supported`,
    );
}

function defaultStrategy(n: number): Record<string, string> {
  const s: Record<string, string> = {};
  for (let i = 1; i < Math.max(n, 2); i++) s[`word${2 ** (i - 1)}`] = `${2 ** (i - 1)}@1`;
  return s;
}

/** The config in the official params.json layout (model + data sections). */
export function toOfficialJson(c: AUNetConfig): { model: ModelConfig; data: Record<string, unknown> } {
  return {
    model: structuredClone(c.model),
    data: {
      seq_len: c.seqLen,
      add_bos: true,
      add_eos: true,
      tokenizer: { name: "bytes" },
      regex: { strategy: { ...c.strategyRaw } },
    },
  };
}

export interface ParamSpec {
  name: string;
  shape: number[];
  /** Standard deviation of the truncated-normal init, or "ones" for norms, "normal1" for nn.Embedding. */
  init: number | "ones" | "normal1";
}

/** Every parameter in the official state-dict order, with its shape and initialisation. */
export function paramSpecs(m: ModelConfig): ParamSpec[] {
  const n = m.dimensions.length;
  const d0 = m.dimensions[0];
  const V = m.vocab_size;
  const specs: ParamSpec[] = [
    { name: "tok_embeddings.weight", shape: [V, d0], init: d0 ** -0.5 },
    { name: "vocab_norm.weight", shape: [d0], init: "ones" },
    { name: "vocab.weight", shape: [V, d0], init: d0 ** -0.5 },
  ];
  const layer = (prefix: string, stage: number) => {
    const d = m.dimensions[stage],
      hd = m.head_dims[stage];
    const kv = nKvHeads(m, stage) * hd;
    const h = ffnHidden(d, m.block);
    specs.push(
      { name: `${prefix}.attention.wq.weight`, shape: [d, d], init: d ** -0.5 },
      { name: `${prefix}.attention.wk.weight`, shape: [kv, d], init: d ** -0.5 },
      { name: `${prefix}.attention.wv.weight`, shape: [kv, d], init: d ** -0.5 },
      { name: `${prefix}.attention.wo.weight`, shape: [d, d], init: d ** -0.5 },
      { name: `${prefix}.feed_forward.w1.weight`, shape: [h, d], init: d ** -0.5 },
      { name: `${prefix}.feed_forward.w3.weight`, shape: [h, d], init: d ** -0.5 },
      { name: `${prefix}.feed_forward.w2.weight`, shape: [d, h], init: h ** -0.5 },
      { name: `${prefix}.attention_norm.weight`, shape: [d], init: "ones" },
      { name: `${prefix}.ffn_norm.weight`, shape: [d], init: "ones" },
    );
  };
  for (const kind of ["encoders", "decoders"])
    for (let i = 0; i < n - 1; i++)
      for (let l = 0; l < m.layers[i]; l++) layer(`${kind}.${i}.layers.${l}`, i);
  for (let i = 0; i < n - 1; i++) {
    const di = m.dimensions[i],
      dn = m.dimensions[i + 1];
    const t = `transitions.${i}`;
    specs.push(
      { name: `${t}.down_norm.weight`, shape: [di], init: "ones" },
      { name: `${t}.trans_down.weight`, shape: [dn, di], init: di ** -0.5 },
      { name: `${t}.up_norm.weight`, shape: [dn], init: "ones" },
      { name: `${t}.trans_up.weight`, shape: [di, dn], init: dn ** -0.5 },
    );
    if (m.pooling_type === "simple_indexed_matmul")
      specs.push({ name: `${t}.indexed_linear.weight`, shape: [16, di, dn], init: dn ** -0.5 });
    if (m.pooling_type === "simple_repeat")
      specs.push({ name: `${t}.pos_encoding.weight`, shape: [16, dn], init: "normal1" });
  }
  for (let l = 0; l < m.layers[n - 1]; l++) layer(`trunk.layers.${l}`, n - 1);
  return specs;
}

/**
 * Parameter counts, by arithmetic over the same shapes paramSpecs lists (so it costs nothing however many
 * layers a config asks for; a test checks the two agree).
 */
export function countParams(m: ModelConfig): { total: number; nonEmbedding: number } {
  const n = m.dimensions.length;
  const emb = 2 * m.vocab_size * m.dimensions[0];
  let total = emb + m.dimensions[0];
  const layer = (stage: number): number => {
    const d = m.dimensions[stage];
    const kv = nKvHeads(m, stage) * m.head_dims[stage];
    return 2 * d * d + 2 * kv * d + 3 * ffnHidden(d, m.block) * d + 2 * d;
  };
  for (let i = 0; i < n - 1; i++) {
    const di = m.dimensions[i],
      dn = m.dimensions[i + 1];
    total += 2 * m.layers[i] * layer(i) + di + dn + 2 * di * dn;
    if (m.pooling_type === "simple_indexed_matmul") total += 16 * di * dn;
    if (m.pooling_type === "simple_repeat") total += 16 * dn;
  }
  total += m.layers[n - 1] * layer(n - 1);
  return { total, nonEmbedding: total - emb };
}

export interface MemoryEstimate {
  parameters: number;
  /** The weights as float32. */
  weightBytes: number;
  /** Training only: gradients and the two AdamW moments, float32 each. */
  optimizerBytes: number;
  /** What the activations of one step hold at their peak (training keeps every layer's; inference one). */
  activationBytes: number;
  totalBytes: number;
}

/**
 * The memory a config implies for `batch` rows of `seqLen` bytes (default: max_seqlens[0]), training or not.
 * An estimate for refusing absurd runs before they allocate, not an accounting: activations count, per layer
 * and position, the saved inputs of the attention and feed-forward blocks (about 12 d + 3 ffn floats) and the
 * attention scores and probabilities (2 per head and visible key, windows included), plus the logits.
 */
export function impliedMemory(
  m: ModelConfig,
  opts: { batch?: number; seqLen?: number; training?: boolean } = {},
): MemoryEstimate {
  const batch = opts.batch ?? 1;
  const training = opts.training ?? true;
  const n = m.dimensions.length;
  const parameters = countParams(m).total;
  const seq0 = opts.seqLen ?? m.max_seqlens[0];
  let layerFloats = 0;
  let largestLayer = 0;
  for (let i = 0; i < n; i++) {
    const positions = i === 0 ? seq0 : Math.min(m.max_seqlens[i], seq0);
    const w = windowOf(m, i);
    const keys = w > 0 ? Math.min(w, positions) : positions;
    const d = m.dimensions[i];
    const perLayer =
      batch * positions * (12 * d + 3 * ffnHidden(d, m.block)) + 2 * batch * nHeads(m, i) * positions * keys;
    const count = i === n - 1 ? m.layers[i] : 2 * m.layers[i];
    layerFloats += count * perLayer;
    if (count > 0) largestLayer = Math.max(largestLayer, perLayer);
  }
  const logitFloats = 3 * batch * seq0 * m.vocab_size;
  const weightBytes = 4 * parameters;
  const optimizerBytes = training ? 3 * weightBytes : 0;
  const activationBytes = 4 * ((training ? layerFloats : largestLayer) + logitFloats);
  return {
    parameters,
    weightBytes,
    optimizerBytes,
    activationBytes,
    totalBytes: weightBytes + optimizerBytes + activationBytes,
  };
}

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(bytes < 2 ** 30 ? 3 : 1)} GiB`;
}

/** Throws a UserError naming the parts when impliedMemory exceeds `limitBytes` (the caller's budget). */
export function checkMemory(
  m: ModelConfig,
  opts: { batch?: number; seqLen?: number; training?: boolean },
  limitBytes: number,
): MemoryEstimate {
  const est = impliedMemory(m, opts);
  if (est.totalBytes > limitBytes) {
    const what = (opts.training ?? true) ? "training" : "running";
    throw new UserError(
      `${what} this config would need about ${gib(est.totalBytes)} (${est.parameters} parameters: weights ` +
        `${gib(est.weightBytes)}` +
        (est.optimizerBytes ? `, gradients and AdamW moments ${gib(est.optimizerBytes)}` : "") +
        `; activations for ${opts.batch ?? 1} x ${opts.seqLen ?? m.max_seqlens[0]} bytes about ` +
        `${gib(est.activationBytes)}), more than the ${gib(limitBytes)} allowed: use a smaller model, batch or sequence length`,
    );
  }
  return est;
}
