// The official training stack's files (facebookresearch/lingua, apps/aunet): a consolidated checkpoint
// directory (`consolidated.pth` = torch.save({"model": state_dict, "optim": ...}), `params.json` = the TrainArgs
// dump) and the training YAML that apps.aunet.train reads.
//
// What lingua reads back from a consolidated directory (apps/aunet/generate.py, load_consolidated_model_and_
// tokenizer): params.json's `model`, `data.tokenizer`, `data.regex` and `distributed.model_dtype`, then
// torch.load(consolidated.pth, weights_only=True)["model"] into a strict load_state_dict. The writers below
// produce exactly that, with every other TrainArgs field at lingua's defaults.

import fs from "node:fs";
import path from "node:path";
import { UserError } from "../util/errors.js";
import { isObj } from "../util/json.js";
import { writeJsonAtomic, writeFileAtomic } from "./atomic.js";
import { readJsonFile } from "./model-dir.js";
import { OPTIM_DEFAULTS } from "./lingua-args.js";
import {
  OrderedDict,
  TorchTensor,
  openTorchCheckpoint,
  writeTorchSave,
  type SaveValue,
} from "./torch-pickle.js";
import { parseConfig, paramSpecs, type AUNetConfig } from "../model/config.js";

export const CONSOLIDATED_NAME = "consolidated.pth";
export const PARAMS_NAME = "params.json";

type Obj = Record<string, unknown>;

// ---------------------------------------------------------------------------------------------------------------
// Weights

/** The state dict inside a torch checkpoint: `root["model"]` (lingua), or the root itself if it is one. */
function stateDictOf(root: unknown, source: string): Map<unknown, unknown> {
  if (root instanceof Map && root.get("model") instanceof Map)
    return root.get("model") as Map<unknown, unknown>;
  if (root instanceof Map && [...root.values()].every((v) => v instanceof TorchTensor)) return root;
  throw new UserError(`${source} holds neither {"model": state_dict} (lingua) nor a bare state dict`);
}

export interface TorchWeights {
  weights: Map<string, Float32Array>;
  /** State-dict entries the config has no parameter for (buffers, other heads): left out. */
  ignored: string[];
}

/** The config's parameters from a torch checkpoint, checked by name and shape, as float32. */
export function readTorchWeights(file: string, config: AUNetConfig): TorchWeights {
  const ckpt = openTorchCheckpoint(file);
  try {
    const sd = stateDictOf(ckpt.root, file);
    const weights = new Map<string, Float32Array>();
    const wanted = new Set<string>();
    for (const spec of paramSpecs(config.model)) {
      wanted.add(spec.name);
      const t = sd.get(spec.name);
      if (t === undefined) throw new UserError(`${file} lacks ${spec.name}: it does not match its config`);
      if (!(t instanceof TorchTensor)) throw new UserError(`${file}: ${spec.name} is not a tensor`);
      if (t.shape.length !== spec.shape.length || t.shape.some((v, i) => v !== spec.shape[i]))
        throw new UserError(
          `${file}: ${spec.name} has shape [${t.shape}] but the config needs [${spec.shape}]`,
        );
      const w = t.toFloat32();
      for (let i = 0; i < w.length; i++)
        if (!Number.isFinite(w[i])) throw new UserError(`${file}: ${spec.name} contains NaN or infinity`);
      weights.set(spec.name, w);
    }
    const ignored = [...sd.keys()].filter((k) => !wanted.has(String(k))).map(String);
    return { weights, ignored };
  } finally {
    ckpt.close();
  }
}

export interface LinguaCheckpoint extends TorchWeights {
  config: AUNetConfig;
  /** params.json as written, for carrying the rest of the training config along. */
  params: Obj;
}

/** A lingua consolidated directory (consolidated.pth + params.json). */
export function readLinguaDir(dir: string): LinguaCheckpoint {
  const file = path.join(dir, CONSOLIDATED_NAME);
  const paramsFile = path.join(dir, PARAMS_NAME);
  if (!fs.existsSync(file)) throw new UserError(`${dir} has no ${CONSOLIDATED_NAME}`);
  if (!fs.existsSync(paramsFile))
    throw new UserError(`${dir} has no ${PARAMS_NAME} (lingua writes one next to ${CONSOLIDATED_NAME})`);
  const params = readJsonFile(paramsFile);
  if (!isObj(params)) throw new UserError(`${paramsFile}: not a JSON object`);
  let config: AUNetConfig;
  try {
    config = parseConfig(params);
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`${paramsFile}: ${e.message}`);
    throw e;
  }
  return { config, params, ...readTorchWeights(file, config) };
}

// ---------------------------------------------------------------------------------------------------------------
// params.json

// lingua's TrainArgs defaults (commit 437d680), in its field order: the layout CheckpointManager.save dumps.
function trainArgsDefaults(): Obj {
  return {
    name: "lingua",
    dump_dir: "",
    seed: 42,
    grad_acc_steps: 1,
    gc_collect_freq: 1000,
    probe_freq: null,
    steps: 1000,
    data: {
      root_dir: null,
      sources: {},
      batch_size: 2,
      seq_len: 2048,
      n_views: 2,
      seed: 42,
      add_bos: true,
      add_eos: true,
      load_async: true,
      prefetch_size: 64,
      tokenizer: { name: "bytes", path: null },
      regex: { strategy: {} },
    },
    optim: {
      ...OPTIM_DEFAULTS,
      annealing_step: 1000,
      decay_fraction: 0.1,
      exp_factor: 0.5,
    },
    model: {},
    distributed: {
      dp_shard: 1,
      dp_replicate: 1,
      tp_size: 1,
      selective_activation_checkpointing: false,
      compile: false,
      fsdp_type: "no_shard",
      model_dtype: "bf16",
      float8_recipe: null,
      float8_filter: "layers\\.[0-9]+\\.",
      matmul_allow_tf32: false,
      detect_anomaly: false,
      compile_cache_size_limit: 8,
      spawn_method: "forkserver",
    },
    env: {
      MKL_SERVICE_FORCE_INTEL: "GNU",
      OMP_NUM_THREADS: "1",
      MKL_NUM_THREADS: "1",
      ENABLE_INTRA_NODE_COMM: "1",
      TORCH_NCCL_AVOID_RECORD_STREAMS: "1",
      NCCL_IB_TIMEOUT: "22",
      NCCL_DEBUG: "INFO",
      TORCH_NCCL_ASYNC_ERROR_HANDLING: "1",
    },
    checkpoint: {
      dump: { every: 1000, keep: 0 },
      eval: { every: 1000, keep: 0 },
      path: null,
      init_ckpt_path: null,
      continue_training_from_init: false,
    },
    profiling: {
      run: false,
      trace_folder: "profiling",
      mem_warmup: 100,
      mem_steps: 2,
      profile_warmup: 102,
      profile_steps: 2,
    },
    logging: { freq: 10, acc_freq: null, wandb: null },
    async_eval_gpus: null,
    eval: null,
  };
}

// lingua's BaseTransformerArgs fields that AU-Net ignores (each stage takes dims from the lists) but that its
// dump contains; kept from the source when present.
const BLOCK_DEFAULTS: Obj = {
  dim: 512,
  n_layers: 8,
  head_dim: null,
  n_heads: null,
  n_kv_heads: null,
  ffn_dim_multiplier: null,
  multiple_of: 256,
  norm_eps: 1e-5,
  rope_theta: 10000.0,
  init_base_std: null,
  init_std_factor: "disabled",
  max_seqlen: 1024,
};

// Free-form maps in TrainArgs: the source's value replaces the default whole.
const FREE_FORM = new Set(["data.sources", "env", "data.regex.strategy", "eval"]);

// Overlays `src` on `base`, keeping only keys `base` knows, so a source written by this project's trainer (which
// has sections of its own) still yields a file lingua's structured config accepts.
function mergeKnown(base: Obj, src: unknown, at = ""): Obj {
  if (!isObj(src)) return base;
  const out: Obj = {};
  for (const [k, v] of Object.entries(base)) {
    const where = at ? `${at}.${k}` : k;
    if (!(k in src)) out[k] = v;
    else if (FREE_FORM.has(where)) out[k] = structuredClone(src[k]);
    else if (isObj(v) && Object.keys(v).length > 0) out[k] = mergeKnown(v, src[k], where);
    else out[k] = structuredClone(src[k]);
  }
  return out;
}

/** The model section in lingua's layout: our config plus the block fields lingua dumps. */
function linguaModel(config: AUNetConfig, raw: unknown): Obj {
  const m = config.model;
  const rawBlock = isObj(raw) && isObj(raw.model) && isObj(raw.model.block) ? raw.model.block : {};
  return {
    dimensions: [...m.dimensions],
    head_dims: [...m.head_dims],
    layers: [...m.layers],
    sliding_windows: m.sliding_windows === null ? null : [...m.sliding_windows],
    max_seqlens: [...m.max_seqlens],
    residuals: [...m.residuals],
    block: { ...mergeKnown(BLOCK_DEFAULTS, rawBlock), ...m.block },
    pooling_type: m.pooling_type,
    seed: m.seed,
    vocab_size: m.vocab_size,
    lambda_level: m.lambda_level,
    norm_eps: m.norm_eps,
  };
}

/**
 * A complete lingua params.json for `config`: the model and splitter from `config`, everything else from `raw`
 * (an earlier params.json or a training config) where lingua has that field, else lingua's defaults.
 */
export function linguaParams(config: AUNetConfig, raw?: unknown): Obj {
  const p = mergeKnown(trainArgsDefaults(), raw);
  p.model = linguaModel(config, raw);
  const data = p.data as Obj;
  data.seq_len = config.seqLen;
  data.add_bos = true;
  data.add_eos = true;
  data.tokenizer = { name: "bytes", path: null };
  data.regex = { strategy: { ...config.strategyRaw } };
  // These weights are float32; lingua casts the model to model_dtype when it loads a consolidated directory,
  // so keep fp32 unless the source said otherwise.
  const dist = p.distributed as Obj;
  if (!(isObj(raw) && isObj(raw.distributed) && "model_dtype" in raw.distributed)) dist.model_dtype = "fp32";
  return p;
}

/** Writes `dir/consolidated.pth` ({"model": OrderedDict}) and `dir/params.json`, creating `dir`. */
export function writeLinguaDir(
  dir: string,
  config: AUNetConfig,
  weights: ReadonlyMap<string, Float32Array>,
  raw?: unknown,
  opts: { zip64?: "auto" | "always" } = {},
): void {
  const sd = new OrderedDict<SaveValue>();
  for (const spec of paramSpecs(config.model)) {
    const data = weights.get(spec.name);
    if (!data) throw new UserError(`no weights for ${spec.name}`);
    sd.set(spec.name, { shape: spec.shape, data });
  }
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new UserError(`cannot create ${dir}: ${e instanceof Error ? e.message : String(e)}`);
  }
  writeTorchSave(path.join(dir, CONSOLIDATED_NAME), new Map<string, SaveValue>([["model", sd]]), opts);
  writeJsonAtomic(path.join(dir, PARAMS_NAME), linguaParams(config, raw));
}

// ---------------------------------------------------------------------------------------------------------------
// Training YAML

/**
 * A config file for `apps.aunet.train` that builds this model: the fields that differ from lingua's defaults
 * (optimizer, schedule, batch, checkpointing from `raw` where given), with max_seqlens[0] and vocab_size left at
 * -1 for train.py to fill from data.seq_len and the byte tokenizer, as the official configs do. The data
 * location is the one thing only the user can supply.
 */
export function linguaYaml(config: AUNetConfig, raw?: unknown): string {
  const p = linguaParams(config, raw);
  const m = p.model as Obj;
  const data = p.data as Obj;
  const ck = p.checkpoint as Obj;
  const block = config.model.block;
  const cfg: Obj = {
    name: p.name === "lingua" ? "aunet" : p.name,
    // TrainArgs.dump_dir is a non-optional str: null would not merge, so an unknown one is left out (lingua
    // then stops with "Dump dir not set").
    ...(p.dump_dir === "" ? {} : { dump_dir: p.dump_dir }),
    seed: p.seed,
    steps: p.steps,
    grad_acc_steps: p.grad_acc_steps,
    optim: p.optim,
    distributed: { fsdp_type: "full_shard", compile: true, model_dtype: "bf16" },
    model: {
      dimensions: m.dimensions,
      head_dims: m.head_dims,
      layers: m.layers,
      residuals: m.residuals,
      sliding_windows: m.sliding_windows,
      max_seqlens: [-1, ...config.model.max_seqlens.slice(1)],
      block: {
        rope_theta: block.rope_theta,
        multiple_of: block.multiple_of,
        norm_eps: block.norm_eps,
        ffn_dim_multiplier: block.ffn_dim_multiplier,
        n_kv_heads: block.n_kv_heads,
      },
      lambda_level: m.lambda_level,
      pooling_type: m.pooling_type,
      norm_eps: m.norm_eps,
      vocab_size: -1,
      seed: m.seed,
    },
    data: {
      root_dir: data.root_dir,
      sources: data.sources,
      batch_size: data.batch_size,
      seq_len: data.seq_len,
      n_views: data.n_views,
      add_bos: true,
      add_eos: true,
      tokenizer: { name: "bytes" },
      regex: data.regex,
    },
    checkpoint: { dump: ck.dump },
    logging: { freq: (p.logging as Obj).freq },
  };
  const head = [
    "# AU-Net training config for lingua (facebookresearch/lingua, apps/aunet), generated by `aunet convert --to lingua-yaml`.",
    "# Launch: python -m lingua.stool script=apps.aunet.train config=THIS_FILE nodes=<n> account=<acct> qos=<qos>",
    "#     or: torchrun --nproc-per-node 8 -m apps.aunet.train config=THIS_FILE",
  ];
  const todo: string[] = [];
  if (!("dump_dir" in cfg)) todo.push("dump_dir (where checkpoints and logs go)");
  if (data.root_dir === null || !isObj(data.sources) || Object.keys(data.sources).length === 0)
    todo.push("data.root_dir and data.sources (lingua's shuffled jsonl chunks: <root_dir>/<source>/...)");
  if (todo.length) head.push(`# Fill in before training: ${todo.join("; ")}.`);
  return `${head.join("\n")}\n${yamlLines(cfg, 0).join("\n")}\n`;
}

/** Writes the YAML atomically. */
export function writeLinguaYaml(file: string, config: AUNetConfig, raw?: unknown): void {
  writeFileAtomic(file, linguaYaml(config, raw));
}

// YAML 1.1 (PyYAML, which OmegaConf uses) reads "1e-08" as a string: floats need a dot before the exponent.
function yamlScalar(v: unknown): string {
  if (v === null || v === undefined) return "null";
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "number") {
    if (!Number.isFinite(v)) return Number.isNaN(v) ? ".nan" : v > 0 ? ".inf" : "-.inf";
    const s = String(v);
    return /e/.test(s) && !/\./.test(s) ? s.replace("e", ".0e") : s;
  }
  if (typeof v === "string") {
    // Plain when unambiguous (a config key or a word), quoted otherwise; JSON strings are valid YAML.
    return /^[A-Za-z_][A-Za-z0-9_./-]*$/.test(v) && !/^(true|false|yes|no|on|off|null|y|n)$/i.test(v)
      ? v
      : JSON.stringify(v);
  }
  return JSON.stringify(v);
}

function yamlLines(o: Obj, indent: number): string[] {
  const pad = " ".repeat(indent);
  const lines: string[] = [];
  for (const [k, v] of Object.entries(o)) {
    const key = /^[A-Za-z_][A-Za-z0-9_.]*$/.test(k) ? k : JSON.stringify(k);
    if (isObj(v) && Object.keys(v).length > 0) {
      lines.push(`${pad}${key}:`, ...yamlLines(v, indent + 2));
    } else if (isObj(v)) {
      lines.push(`${pad}${key}: {}`);
    } else if (Array.isArray(v)) {
      lines.push(`${pad}${key}: [${v.map(yamlScalar).join(", ")}]`);
    } else {
      lines.push(`${pad}${key}: ${yamlScalar(v)}`);
    }
  }
  return lines;
}
